/* Token plumbing on the tape: class token + position embedding, residuals
 * with DropPath, dropout, and pooling. */
#include "ops/ops.h"

/* node: in = {patch, cls, pos}, dims = {B, N, D} */
static vit_status embed_tokens_backward(vit_tape *tape, const vit_node *node) {
    vit_value *patch = node->in[0], *cls = node->in[1], *pos = node->in[2];
    float *dpatch = patch->requires_grad ? vit_tape_grad(tape, patch) : NULL;
    if (patch->requires_grad && !dpatch) return vit_last_status();
    return tape->be->ops->embed_tokens_backward(tape->be, dpatch, cls->requires_grad ? cls->grad : NULL,
                                                pos->requires_grad ? pos->grad : NULL, node->out->grad,
                                                node->dims[0], node->dims[1], node->dims[2]);
}

vit_value *vit_op_embed_tokens(vit_tape *tape, vit_value *patch, vit_value *cls, vit_value *pos, int B, int N,
                               int D) {
    bool record = vit_tape_wants(tape, patch, cls, pos);
    vit_value *tokens = vit_tape_value(tape, (int64_t)B * (N + 1) * D, record);
    if (!tokens) return NULL;
    if (tape->be->ops->embed_tokens_forward(tape->be, tokens->data, patch->data, cls->data, pos->data, B, N, D) !=
        VIT_OK)
        return NULL;
    if (record) {
        vit_node node = {.backward = embed_tokens_backward, .out = tokens, .in = {patch, cls, pos},
                         .dims = {B, N, D}};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return tokens;
}

/* node: in = {x, y}, saved = {scale or NULL}, dims = {B, per (fits int: B * T * D per sample is T * D)} */
static vit_status residual_backward(vit_tape *tape, const vit_node *node) {
    vit_value *x = node->in[0], *y = node->in[1];
    float *dx = x->requires_grad ? vit_tape_grad(tape, x) : NULL;
    float *dy = y->requires_grad ? vit_tape_grad(tape, y) : NULL;
    if ((x->requires_grad && !dx) || (y->requires_grad && !dy)) return vit_last_status();
    return tape->be->ops->residual_backward(tape->be, dx, dy, node->out->grad, node->saved[0], node->dims[0],
                                            node->dims[1]);
}

vit_value *vit_op_residual(vit_tape *tape, vit_value *x, vit_value *y, const float *scale, int B, int64_t per) {
    bool record = vit_tape_wants(tape, x, y, NULL);
    /* The sum takes over the branch's storage (see ops.h); a transient y's
     * storage is shared, so that one gets a buffer of its own. */
    vit_value *out = y->producer < 0 ? vit_tape_wrap(tape, y->data, NULL, B * per, record)
                                     : vit_tape_value(tape, B * per, record);
    if (!out) return NULL;
    if (tape->be->ops->residual_forward(tape->be, out->data, x->data, y->data, scale, B, per) != VIT_OK) return NULL;
    if (record) {
        vit_node node = {.backward = residual_backward, .out = out, .in = {x, y}, .saved = {(void *)scale},
                         .dims = {B, (int)per}};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return out;
}

/* node: in = {x}, scalar = {p}, key */
static vit_status dropout_backward(vit_tape *tape, const vit_node *node) {
    vit_value *x = node->in[0];
    float *dx = vit_tape_grad(tape, x);
    if (!dx) return vit_last_status();
    return tape->be->ops->dropout_backward(tape->be, dx, node->out->grad, x->numel, node->scalar[0], node->key);
}

vit_value *vit_op_dropout(vit_tape *tape, vit_value *x, float p, uint64_t key) {
    if (p <= 0.0f) return x;
    bool record = vit_tape_wants(tape, x, NULL, NULL);
    vit_value *y = vit_tape_value(tape, x->numel, record);
    if (!y) return NULL;
    if (tape->be->ops->dropout_forward(tape->be, y->data, x->data, x->numel, p, key) != VIT_OK) return NULL;
    if (record) {
        vit_node node = {.backward = dropout_backward, .out = y, .in = {x}, .scalar = {p}, .key = key};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return y;
}

/* node: in = {tokens}, dims = {B, T, D, avg} */
static vit_status pool_backward(vit_tape *tape, const vit_node *node) {
    vit_value *tokens = node->in[0];
    float *dt = vit_tape_grad(tape, tokens);
    if (!dt) return vit_last_status();
    return tape->be->ops->pool_backward(tape->be, dt, node->out->grad, node->dims[0], node->dims[1], node->dims[2],
                                        node->dims[3]);
}

vit_value *vit_op_pool(vit_tape *tape, vit_value *tokens, int B, int T, int D, int avg) {
    bool record = vit_tape_wants(tape, tokens, NULL, NULL);
    vit_value *out = vit_tape_value(tape, (int64_t)B * D, record);
    if (!out) return NULL;
    if (tape->be->ops->pool_forward(tape->be, out->data, tokens->data, B, T, D, avg) != VIT_OK) return NULL;
    if (record) {
        vit_node node = {.backward = pool_backward, .out = out, .in = {tokens}, .dims = {B, T, D, avg}};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return out;
}
