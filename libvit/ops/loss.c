/* The training loss on the tape: softmax cross-entropy with label smoothing. */
#include "ops/ops.h"

/* node: in = {logits}, saved = {probs}, labels, dims = {B, C}, scalar = {smoothing} */
static vit_status cross_entropy_backward(vit_tape *tape, const vit_node *node) {
    vit_value *logits = node->in[0];
    float *dlogits = vit_tape_grad(tape, logits);
    if (!dlogits) return vit_last_status();
    return tape->be->ops->cross_entropy_backward(tape->be, dlogits, node->saved[0], node->labels, node->dims[0],
                                                 node->dims[1], node->scalar[0], node->out->grad);
}

vit_value *vit_op_cross_entropy(vit_tape *tape, vit_value *logits, const int32_t *labels, int B, int C,
                                float smoothing) {
    bool record = vit_tape_wants(tape, logits, NULL, NULL);
    vit_value *loss = vit_tape_value(tape, 1, record);
    float *probs = vit_tape_floats(tape, (int64_t)B * C);
    if (!loss || !probs) return NULL;
    if (tape->be->ops->cross_entropy_forward(tape->be, loss->data, probs, logits->data, labels, B, C, smoothing) !=
        VIT_OK)
        return NULL;
    if (record) {
        vit_node node = {.backward = cross_entropy_backward, .out = loss, .in = {logits}, .saved = {probs},
                         .labels = labels, .dims = {B, C}, .scalar = {smoothing}};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return loss;
}
