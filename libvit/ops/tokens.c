/* Token plumbing on the tape: class and register tokens + position
 * embedding, residuals with DropPath, layer scale, dropout, and pooling. */
#include "ops/ops.h"

/* node: in = {patch, cls, reg, pos} (cls, reg may be NULL), dims = {B, N, D, R, pos_prefix} */
static vit_status embed_tokens_backward(vit_tape *tape, const vit_node *node) {
    vit_value *patch = node->in[0], *cls = node->in[1], *reg = node->in[2], *pos = node->in[3];
    float *dpatch = patch->requires_grad ? vit_tape_grad(tape, patch) : NULL;
    if (patch->requires_grad && !dpatch) return vit_last_status();
    return tape->be->ops->embed_tokens_backward(tape->be, dpatch, cls && cls->requires_grad ? cls->grad : NULL,
                                                reg && reg->requires_grad ? reg->grad : NULL,
                                                pos->requires_grad ? pos->grad : NULL, node->out->grad,
                                                node->dims[0], node->dims[1], node->dims[2], node->dims[3],
                                                cls != NULL, node->dims[4]);
}

vit_value *vit_op_embed_tokens(vit_tape *tape, vit_value *patch, vit_value *cls, vit_value *reg, vit_value *pos,
                               int B, int N, int D, int R, bool pos_prefix) {
    bool record = vit_tape_wants(tape, patch, cls, pos) || vit_tape_wants(tape, reg, NULL, NULL);
    int P = (cls != NULL) + R;
    vit_value *tokens = vit_tape_value(tape, (int64_t)B * (P + N) * D, record);
    if (!tokens) return NULL;
    if (tape->be->ops->embed_tokens_forward(tape->be, tokens->data, patch->data, cls ? cls->data : NULL,
                                            reg ? reg->data : NULL, pos->data, B, N, D, R, pos_prefix) != VIT_OK)
        return NULL;
    if (record) {
        vit_node node = {.backward = embed_tokens_backward, .out = tokens, .in = {patch, cls, reg, pos},
                         .dims = {B, N, D, R, pos_prefix}};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return tokens;
}

/* node: in = {x, y}, saved = {scale or NULL}, dims = {B, per (fits int: B * T * D per sample is T * D)}
 * dx += dout; dy += scale * dout. Without DropPath the stream x takes dout's
 * buffer itself and a new branch gradient is a copy, so the residual stream's
 * gradient flows through the whole network in one buffer, never zero-filled. */
static vit_status residual_backward(vit_tape *tape, const vit_node *node) {
    vit_value *x = node->in[0], *y = node->in[1], *out = node->out;
    const float *scale = node->saved[0];
    const vit_backend_ops *ops = tape->be->ops;
    if (!scale && y->requires_grad && !y->grad) {
        bool accumulate;
        float *dy = vit_tape_grad_to_write(tape, y, &accumulate);
        if (!dy) return vit_last_status();
        VIT_TRY(ops->copy(tape->be, dy, out->grad, (size_t)out->numel * sizeof(float), VIT_COPY_ON_DEVICE));
        y = NULL;
    }
    if (!scale && x->requires_grad && vit_tape_grad_hand_over(out, x)) x = NULL;
    float *dx = x && x->requires_grad ? vit_tape_grad(tape, x) : NULL;
    float *dy = y && y->requires_grad ? vit_tape_grad(tape, y) : NULL;
    if ((x && x->requires_grad && !dx) || (y && y->requires_grad && !dy)) return vit_last_status();
    if (!dx && !dy) return VIT_OK;
    return ops->residual_backward(tape->be, dx, dy, out->grad, scale, node->dims[0], node->dims[1]);
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

/* node: in = {tokens}, dims = {B, T, D, avg, skip} */
static vit_status pool_backward(vit_tape *tape, const vit_node *node) {
    vit_value *tokens = node->in[0];
    float *dt = vit_tape_grad(tape, tokens);
    if (!dt) return vit_last_status();
    return tape->be->ops->pool_backward(tape->be, dt, node->out->grad, node->dims[0], node->dims[1], node->dims[2],
                                        node->dims[3], node->dims[4]);
}

vit_value *vit_op_pool(vit_tape *tape, vit_value *tokens, int B, int T, int D, int avg, int skip) {
    bool record = vit_tape_wants(tape, tokens, NULL, NULL);
    vit_value *out = vit_tape_value(tape, (int64_t)B * D, record);
    if (!out) return NULL;
    if (tape->be->ops->pool_forward(tape->be, out->data, tokens->data, B, T, D, avg, skip) != VIT_OK) return NULL;
    if (record) {
        vit_node node = {.backward = pool_backward, .out = out, .in = {tokens}, .dims = {B, T, D, avg, skip}};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return out;
}

/* node: in = {x, gamma}, dims = {rows, C} */
static vit_status scale_channels_backward(vit_tape *tape, const vit_node *node) {
    vit_value *x = node->in[0], *gamma = node->in[1];
    float *dx = x->requires_grad ? vit_tape_grad(tape, x) : NULL;
    if (x->requires_grad && !dx) return vit_last_status();
    return tape->be->ops->scale_channels_backward(tape->be, dx, gamma->requires_grad ? gamma->grad : NULL,
                                                  node->out->grad, x->data, gamma->data, node->dims[0],
                                                  node->dims[1]);
}

/* Backward reads x: its output is a new value, so a residual written over it
 * (vit_op_residual) leaves x intact. */
vit_value *vit_op_scale_channels(vit_tape *tape, vit_value *x, vit_value *gamma, int64_t rows, int C) {
    bool record = vit_tape_wants(tape, x, gamma, NULL);
    vit_value *y = vit_tape_value(tape, rows * C, record);
    if (!y) return NULL;
    if (tape->be->ops->scale_channels_forward(tape->be, y->data, x->data, gamma->data, rows, C) != VIT_OK)
        return NULL;
    if (record) {
        vit_node node = {.backward = scale_channels_backward, .out = y, .in = {x, gamma}, .dims = {(int)rows, C}};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return y;
}
