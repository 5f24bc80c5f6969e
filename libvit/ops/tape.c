/* The tape: values, nodes and the reverse replay. */
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

void vit_tape_init(vit_tape *tape) {
    memset(tape, 0, sizeof *tape);
    vit_arena_init(&tape->arena);
}

void vit_tape_release(vit_tape *tape) {
    vit_arena_release(&tape->arena);
    free(tape->nodes);
    memset(tape, 0, sizeof *tape);
}

void vit_tape_reset(vit_tape *tape, bool recording) {
    vit_arena_reset(&tape->arena);
    tape->count = 0;
    tape->recording = recording;
}

vit_value *vit_tape_wrap(vit_tape *tape, float *data, float *grad, int64_t n, bool requires_grad) {
    vit_value *v = vit_arena_alloc(&tape->arena, sizeof *v);
    if (!v) return NULL;
    v->data = data;
    v->grad = grad;
    v->numel = n;
    v->requires_grad = requires_grad && tape->recording;
    return v;
}

vit_value *vit_tape_value(vit_tape *tape, int64_t n, bool requires_grad) {
    float *data = vit_arena_floats(&tape->arena, (size_t)n);
    if (!data) return NULL;
    return vit_tape_wrap(tape, data, NULL, n, requires_grad);
}

bool vit_tape_wants(const vit_tape *tape, const vit_value *a, const vit_value *b, const vit_value *c) {
    return tape->recording && ((a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad));
}

vit_status vit_tape_push(vit_tape *tape, const vit_node *node) {
    if (tape->count == tape->cap) {
        int cap = tape->cap ? tape->cap * 2 : 256;
        vit_node *grown = realloc(tape->nodes, (size_t)cap * sizeof *grown);
        if (!grown) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "tape: cannot grow to %d nodes", cap);
        tape->nodes = grown;
        tape->cap = cap;
    }
    tape->nodes[tape->count++] = *node;
    return VIT_OK;
}

float *vit_tape_grad(vit_tape *tape, vit_value *v) {
    if (!v->grad) v->grad = vit_arena_zeros(&tape->arena, (size_t)v->numel);
    return v->grad;
}

vit_status vit_tape_backward(vit_tape *tape, vit_value *out, const float *seed_grad) {
    if (!out || !out->requires_grad)
        return vit_fail(VIT_ERR_STATE, "backward: the last forward recorded no tape (grad off or inference)");
    float *g = vit_tape_grad(tape, out);
    if (!g) return VIT_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; i < out->numel; i++) g[i] += seed_grad ? seed_grad[i] : 1.0f;
    for (int i = tape->count - 1; i >= 0; i--) {
        const vit_node *node = &tape->nodes[i];
        if (!node->out->grad) continue; /* nothing downstream of this node reached the loss */
        VIT_TRY(node->backward(tape, node));
    }
    /* A tape replays once: a second backward would double-count. */
    tape->count = 0;
    tape->recording = false;
    return VIT_OK;
}
