/* Multi-head self-attention core on the tape (the qkv and output projections
 * are ordinary linear ops around it). */
#include <math.h>
#include <omp.h>

#include "cpu/kernels.h"
#include "ops/ops.h"

/* node: in = {qkv}, saved = {probs}, dims = {B, T, H, hd}, scalar = {drop_p}, key */
static vit_status attention_backward(vit_tape *tape, const vit_node *node) {
    vit_value *qkv = node->in[0];
    float *dqkv = vit_tape_grad(tape, qkv);
    if (!dqkv) return VIT_ERR_OUT_OF_MEMORY;
    int B = node->dims[0], T = node->dims[1], H = node->dims[2], hd = node->dims[3];
    float *scratch = vit_arena_floats(&tape->arena, vit_attention_scratch_floats(T, hd, omp_get_max_threads()));
    if (!scratch) return VIT_ERR_OUT_OF_MEMORY;
    return vit_attention_backward(dqkv, node->out->grad, qkv->data, node->saved[0], B, T, H, hd,
                                  1.0f / sqrtf((float)hd), node->scalar[0], node->key, scratch);
}

vit_value *vit_op_attention(vit_tape *tape, vit_value *qkv, int B, int T, int H, int hd, float drop_p,
                            uint64_t key) {
    bool record = vit_tape_wants(tape, qkv, NULL, NULL);
    vit_value *out = vit_tape_value(tape, (int64_t)B * T * H * hd, record);
    float *probs = record ? vit_arena_floats(&tape->arena, (size_t)B * H * T * T) : NULL;
    float *scratch = vit_arena_floats(&tape->arena, vit_attention_scratch_floats(T, hd, omp_get_max_threads()));
    if (!out || !scratch || (record && !probs)) return NULL;
    if (vit_attention_forward(out->data, probs, qkv->data, B, T, H, hd, 1.0f / sqrtf((float)hd), drop_p, key,
                              scratch) != VIT_OK)
        return NULL;
    if (record) {
        vit_node node = {.backward = attention_backward, .out = out, .in = {qkv}, .saved = {probs},
                         .dims = {B, T, H, hd}, .scalar = {drop_p}, .key = key};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return out;
}
