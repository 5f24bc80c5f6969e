/* The tape: values, nodes and the reverse replay. */
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

void vit_tape_init(vit_tape *tape, vit_backend *be) {
    memset(tape, 0, sizeof *tape);
    tape->be = be;
    vit_arena_init(&tape->data, be);
    vit_arena_init(&tape->arena, NULL);
}

void vit_tape_release(vit_tape *tape) {
    vit_arena_release(&tape->data);
    vit_arena_release(&tape->arena);
    free(tape->nodes);
    memset(tape, 0, sizeof *tape);
}

void vit_tape_reset(vit_tape *tape, bool recording) {
    vit_arena_reset(&tape->data);
    vit_arena_reset(&tape->arena);
    tape->count = 0;
    tape->recording = recording;
    tape->spare = NULL;
    tape->spare_count = 0;
    tape->shared = NULL;
    tape->shared_numel = 0;
}

vit_value *vit_tape_wrap(vit_tape *tape, float *data, float *grad, int64_t n, bool requires_grad) {
    vit_value *v = vit_arena_alloc(&tape->arena, sizeof *v);
    if (!v) return NULL;
    v->data = data;
    v->grad = grad;
    v->numel = n;
    v->requires_grad = requires_grad && tape->recording;
    v->grad_owned = false;
    v->producer = -1;
    v->stamp = 0;
    return v;
}

float *vit_tape_floats(vit_tape *tape, int64_t n) { return vit_arena_floats(&tape->data, (size_t)n); }

void *vit_tape_upload(vit_tape *tape, const void *host, size_t bytes) {
    void *dev = vit_arena_alloc(&tape->data, bytes);
    if (dev && tape->be->ops->copy(tape->be, dev, host, bytes, VIT_COPY_TO_DEVICE) != VIT_OK) return NULL;
    return dev;
}

vit_value *vit_tape_value(vit_tape *tape, int64_t n, bool requires_grad) {
    float *data = vit_tape_floats(tape, n);
    if (!data) return NULL;
    return vit_tape_wrap(tape, data, NULL, n, requires_grad);
}

vit_value *vit_tape_transient(vit_tape *tape, int64_t n, bool requires_grad) {
    if (n > tape->shared_numel) {
        /* Shapes repeat every block, so this grows once or twice per step;
         * values made before keep pointing at the old buffer, which stays
         * valid (they are recomputed before use anyway). */
        float *grown = vit_tape_floats(tape, n);
        if (!grown) return NULL;
        tape->shared = grown;
        tape->shared_numel = n;
    }
    return vit_tape_wrap(tape, tape->shared, NULL, n, requires_grad);
}

void vit_tape_set_producer(vit_tape *tape, vit_value *v) { v->producer = tape->count - 1; }

const float *vit_tape_data(vit_tape *tape, const vit_value *v) {
    if (v->producer >= 0) {
        const vit_node *node = &tape->nodes[v->producer];
        if (node->recompute(tape, node, v->data) != VIT_OK) return NULL;
    }
    return v->data;
}

const float *vit_tape_data_after_grad(vit_tape *tape, vit_value *v) {
    if (v->producer < 0 || !v->grad) return vit_tape_data(tape, v);
    vit_node *node = &tape->nodes[v->producer];
    if (!node->recompute_backward || node->ran) return vit_tape_data(tape, v); /* ran: only the recompute is left */
    if (node->recompute_backward(tape, node, v->data) != VIT_OK) return NULL;
    node->ran = true;
    return v->data;
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

float *vit_tape_grad_to_write(vit_tape *tape, vit_value *v, bool *accumulate) {
    *accumulate = v->grad != NULL;
    if (v->grad) return v->grad;
    for (int i = 0; i < tape->spare_count; i++)
        if (tape->spare[i].numel == v->numel) {
            v->grad = tape->spare[i].data;
            tape->spare[i] = tape->spare[--tape->spare_count];
            v->grad_owned = true;
            return v->grad;
        }
    v->grad = vit_arena_floats(&tape->data, (size_t)v->numel);
    v->grad_owned = v->grad != NULL;
    return v->grad;
}

float *vit_tape_grad(vit_tape *tape, vit_value *v) {
    bool accumulate;
    float *g = vit_tape_grad_to_write(tape, v, &accumulate);
    if (g && !accumulate && tape->be->ops->zero(tape->be, g, (size_t)v->numel * sizeof(float)) != VIT_OK) return NULL;
    return g;
}

bool vit_tape_grad_hand_over(vit_value *from, vit_value *to) {
    if (to->grad || !from->grad_owned || from->numel != to->numel) return false;
    to->grad = from->grad;
    to->grad_owned = true;
    from->grad_owned = false; /* so backward does not recycle it from under to */
    return true;
}

/* A value is the output of exactly one node and only that node's backward
 * reads its gradient, so once it has run the buffer can serve a later
 * (earlier-layer) gradient of the same size: blocks repeat their shapes, so
 * activation gradients then take about one block's worth of memory instead
 * of the whole network's. */
static void recycle_grad(vit_tape *tape, vit_value *v) {
    if (!v->grad_owned) return;
    tape->spare[tape->spare_count++] = (vit_spare_grad){v->grad, v->numel};
    v->grad = NULL;
    v->grad_owned = false;
}

vit_status vit_tape_backward(vit_tape *tape, vit_value *out, const float *seed_grad) {
    if (!out || !out->requires_grad)
        return vit_fail(VIT_ERR_STATE, "backward: the last forward recorded no tape (grad off or inference)");
    float *g = vit_tape_grad(tape, out);
    if (!g) return vit_last_status();
    /* g is freshly zeroed: 0 + seed is seed exactly. */
    VIT_TRY(seed_grad ? tape->be->ops->copy(tape->be, g, seed_grad, (size_t)out->numel * sizeof(float),
                                            VIT_COPY_ON_DEVICE)
                      : tape->be->ops->fill(tape->be, g, 1.0f, out->numel));
    tape->spare = vit_arena_alloc(&tape->arena, (size_t)tape->count * sizeof *tape->spare);
    if (!tape->spare) return VIT_ERR_OUT_OF_MEMORY;
    tape->spare_count = 0;
    for (int i = tape->count - 1; i >= 0; i--) {
        const vit_node *node = &tape->nodes[i];
        if (node->out->grad) { /* else nothing downstream of this node reached the loss */
            if (!node->ran) VIT_TRY(node->backward(tape, node));
            recycle_grad(tape, node->out);
        }
        if (tape->after_node) VIT_TRY(tape->after_node(tape->after_user, i));
    }
    tape->spare = NULL;
    tape->spare_count = 0;
    /* A tape replays once: a second backward would double-count. */
    tape->count = 0;
    tape->recording = false;
    return VIT_OK;
}
