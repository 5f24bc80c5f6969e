/* Multi-head self-attention core on the tape, and the attention of the
 * attention-pool head's learned queries (the qkv and output projections
 * are ordinary linear ops around it). What forward keeps for backward, and
 * the working memory of both, are opaque bytes whose sizes the backend gives:
 * the CPU keeps the probability matrix, a fused GPU kernel softmax statistics. */
#include <math.h>

#include "ops/ops.h"

/* node: in = {qkv}, saved = {state}, dims = {B, T, H, hd}, scalar = {drop_p}, key */
static vit_status attention_backward(vit_tape *tape, const vit_node *node) {
    vit_backend *be = tape->be;
    vit_value *qkv = node->in[0];
    bool accumulate;
    float *dqkv = vit_tape_grad_to_write(tape, qkv, &accumulate);
    if (!dqkv) return vit_last_status();
    int B = node->dims[0], T = node->dims[1], H = node->dims[2], hd = node->dims[3];
    size_t saved_bytes, scratch_bytes;
    be->ops->attention_sizes(be, B, T, H, hd, &saved_bytes, &scratch_bytes);
    /* The scratch is the call's alone (the stream orders its reuse on a device). */
    vit_arena_mark mark = vit_arena_save(&tape->data);
    void *scratch = vit_arena_alloc(&tape->data, scratch_bytes);
    if (!scratch) return vit_last_status();
    vit_status st = be->ops->attention_backward(be, dqkv, accumulate, node->out->grad, qkv->data, node->out->data,
                                                node->saved[0], B, T, H, hd, 1.0f / sqrtf((float)hd),
                                                node->scalar[0], node->key, scratch);
    vit_arena_rewind(&tape->data, mark);
    return st;
}

vit_value *vit_op_attention(vit_tape *tape, vit_value *qkv, int B, int T, int H, int hd, float drop_p,
                            uint64_t key) {
    vit_backend *be = tape->be;
    bool record = vit_tape_wants(tape, qkv, NULL, NULL);
    size_t saved_bytes, scratch_bytes;
    be->ops->attention_sizes(be, B, T, H, hd, &saved_bytes, &scratch_bytes);
    vit_value *out = vit_tape_value(tape, (int64_t)B * T * H * hd, record);
    void *saved = record && saved_bytes ? vit_arena_alloc(&tape->data, saved_bytes) : NULL;
    if (!out || (record && saved_bytes && !saved)) return NULL;
    vit_arena_mark mark = vit_arena_save(&tape->data);
    void *scratch = vit_arena_alloc(&tape->data, scratch_bytes);
    if (!scratch) return NULL;
    vit_status st = be->ops->attention_forward(be, out->data, saved, qkv->data, B, T, H, hd, 1.0f / sqrtf((float)hd),
                                               drop_p, key, scratch);
    vit_arena_rewind(&tape->data, mark);
    if (st != VIT_OK) return NULL;
    if (record) {
        vit_node node = {.backward = attention_backward, .out = out, .in = {qkv}, .saved = {saved},
                         .dims = {B, T, H, hd}, .scalar = {drop_p}, .key = key};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return out;
}

/* node: in = {q, kv}, saved = {probs}, dims = {B, L, N, H, hd} */
static vit_status pool_attention_backward(vit_tape *tape, const vit_node *node) {
    vit_backend *be = tape->be;
    vit_value *q = node->in[0], *kv = node->in[1];
    int B = node->dims[0], L = node->dims[1], N = node->dims[2], H = node->dims[3], hd = node->dims[4];
    float *dq = q->requires_grad ? vit_tape_grad(tape, q) : NULL;
    float *dkv = kv->requires_grad ? vit_tape_grad(tape, kv) : NULL;
    float *scratch = vit_tape_floats(tape, (int64_t)B * H * L * N);
    const float *qd = vit_tape_data(tape, q), *kvd = vit_tape_data(tape, kv);
    if ((q->requires_grad && !dq) || (kv->requires_grad && !dkv) || !scratch || !qd || !kvd)
        return vit_last_status();
    return be->ops->pool_attention_backward(be, dq, dkv, node->out->grad, qd, kvd, node->saved[0], B, L, N, H, hd,
                                            1.0f / sqrtf((float)hd), scratch);
}

vit_value *vit_op_pool_attention(vit_tape *tape, vit_value *q, vit_value *kv, int B, int L, int N, int H, int hd) {
    vit_backend *be = tape->be;
    bool record = vit_tape_wants(tape, q, kv, NULL);
    const int64_t n_probs = (int64_t)B * H * L * N;
    vit_value *out = vit_tape_value(tape, (int64_t)B * L * H * hd, record);
    float *probs = vit_tape_floats(tape, n_probs); /* the probabilities, or scratch in inference */
    if (!out || !probs) return NULL;
    if (be->ops->pool_attention_forward(be, out->data, record ? probs : NULL, q->data, kv->data, B, L, N, H, hd,
                                        1.0f / sqrtf((float)hd), probs) != VIT_OK)
        return NULL;
    if (record) {
        vit_node node = {.backward = pool_attention_backward, .out = out, .in = {q, kv}, .saved = {probs},
                         .dims = {B, L, N, H, hd}};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return out;
}
