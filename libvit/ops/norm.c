/* LayerNorm, GELU and QuickGELU on the tape. */
#include "ops/ops.h"

/* node: in = {x, w, b}, saved = {mean, rstd}, dims = {rows, C}, scalar = {eps} */
static vit_status layernorm_backward(vit_tape *tape, const vit_node *node) {
    vit_value *x = node->in[0], *w = node->in[1], *b = node->in[2];
    float *dx = x->requires_grad ? vit_tape_grad(tape, x) : NULL;
    if (x->requires_grad && !dx) return vit_last_status();
    return tape->be->ops->layernorm_backward(tape->be, dx, w->requires_grad ? w->grad : NULL,
                                             b->requires_grad ? b->grad : NULL, node->out->grad, x->data, w->data,
                                             node->saved[0], node->saved[1], node->dims[0], node->dims[1]);
}

/* The same code as the forward pass, so the output is bit for bit the same. */
static vit_status layernorm_recompute(vit_tape *tape, const vit_node *node, float *out) {
    const vit_value *x = node->in[0], *w = node->in[1], *b = node->in[2];
    return tape->be->ops->layernorm_forward(tape->be, out, NULL, NULL, x->data, w->data, b->data, node->dims[0],
                                            node->dims[1], node->scalar[0]);
}

static vit_value *layernorm(vit_tape *tape, vit_value *x, vit_value *w, vit_value *b, int64_t rows, int C, float eps,
                            bool transient) {
    bool record = vit_tape_wants(tape, x, w, b);
    vit_value *y = record && transient ? vit_tape_transient(tape, rows * C, true)
                                       : vit_tape_value(tape, rows * C, record);
    float *mean = record ? vit_tape_floats(tape, rows) : NULL;
    float *rstd = record ? vit_tape_floats(tape, rows) : NULL;
    if (!y || (record && (!mean || !rstd))) return NULL;
    if (tape->be->ops->layernorm_forward(tape->be, y->data, mean, rstd, x->data, w->data, b->data, rows, C, eps) !=
        VIT_OK)
        return NULL;
    if (record) {
        vit_node node = {.backward = layernorm_backward, .out = y, .in = {x, w, b}, .saved = {mean, rstd},
                         .dims = {(int)rows, C}, .scalar = {eps}, .recompute = layernorm_recompute};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
        if (transient) vit_tape_set_producer(tape, y);
    }
    return y;
}

vit_value *vit_op_layernorm(vit_tape *tape, vit_value *x, vit_value *w, vit_value *b, int64_t rows, int C,
                            float eps) {
    return layernorm(tape, x, w, b, rows, C, eps, true);
}

vit_value *vit_op_layernorm_kept(vit_tape *tape, vit_value *x, vit_value *w, vit_value *b, int64_t rows, int C,
                                 float eps) {
    return layernorm(tape, x, w, b, rows, C, eps, false);
}

static vit_status gelu_recompute(vit_tape *tape, const vit_node *node, float *out) {
    const vit_backend_ops *ops = tape->be->ops;
    return (node->dims[0] ? ops->quick_gelu_forward : ops->gelu_forward)(tape->be, out, node->in[0]->data,
                                                                       node->in[0]->numel);
}

/* node: in = {x, b}, dims = {quick, rows, C}: the exact GELU or QuickGELU,
 * and with b the bias gradient of the linear layer that made x, the column
 * sums of x's gradient [rows, C]. This node runs just before x's linear
 * layer, after every other reader of x, so x's gradient is final when this
 * node has written it. x usually takes over the output's gradient buffer and
 * the backend turns it into its own in place: the MLP's widest gradient is
 * then never zero-filled or held twice. out (NULL: none) also gets the
 * output again, from the same pass over x. */
static vit_status gelu_grads(vit_tape *tape, const vit_node *node, float *out) {
    vit_value *x = node->in[0], *b = node->in[1];
    const float *dout = vit_tape_grad_hand_over(node->out, x) ? x->grad : node->out->grad;
    float *dx = vit_tape_grad(tape, x);
    if (!dx) return vit_last_status();
    const vit_backend_ops *ops = tape->be->ops;
    if (b && b->requires_grad)
        return ops->gelu_bias_backward(tape->be, out, dx, b->grad, x->data, dout, node->dims[1], node->dims[2]);
    if (out) VIT_TRY(gelu_recompute(tape, node, out));
    return (node->dims[0] ? ops->quick_gelu_backward : ops->gelu_backward)(tape->be, dx, x->data, dout, x->numel);
}

static vit_status gelu_backward(vit_tape *tape, const vit_node *node) { return gelu_grads(tape, node, NULL); }

static vit_value *activation(vit_tape *tape, vit_value *x, bool quick, vit_value *b, int64_t rows, int C) {
    bool record = vit_tape_wants(tape, x, NULL, NULL);
    vit_value *y = record ? vit_tape_transient(tape, x->numel, true) : vit_tape_value(tape, x->numel, false);
    if (!y) return NULL;
    const vit_backend_ops *ops = tape->be->ops;
    if ((quick ? ops->quick_gelu_forward : ops->gelu_forward)(tape->be, y->data, x->data, x->numel) != VIT_OK)
        return NULL;
    if (record) {
        vit_node node = {.backward = gelu_backward, .out = y, .in = {x, b}, .dims = {quick, (int)rows, C},
                         .recompute = gelu_recompute, .recompute_backward = b ? gelu_grads : NULL};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
        vit_tape_set_producer(tape, y);
    }
    return y;
}

vit_value *vit_op_gelu(vit_tape *tape, vit_value *x) { return activation(tape, x, false, NULL, 0, 0); }

vit_value *vit_op_gelu_bias(vit_tape *tape, vit_value *x, vit_value *b, int64_t rows, int C) {
    return activation(tape, x, false, b, rows, C);
}

vit_value *vit_op_quick_gelu(vit_tape *tape, vit_value *x) { return activation(tape, x, true, NULL, 0, 0); }
