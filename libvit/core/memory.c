/* Aligned host allocations and the per-step arena (host or device chunks). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/core.h"

#define VIT_ALIGN 64
#define VIT_ARENA_MIN_CHUNK (1u << 20)

void *vit_alloc(size_t bytes) {
    size_t rounded = (bytes + VIT_ALIGN - 1) / VIT_ALIGN * VIT_ALIGN;
    if (rounded < bytes) return NULL;
    void *p = aligned_alloc(VIT_ALIGN, rounded ? rounded : VIT_ALIGN);
    if (p) memset(p, 0, rounded);
    return p;
}

void vit_free(void *p) { free(p); }

uint64_t vit_stamp_next(void) {
    static _Atomic uint64_t last;
    return atomic_fetch_add(&last, 1) + 1;
}

struct vit_arena_chunk {
    vit_arena_chunk *next;
    size_t cap, used;
    unsigned char *base;
};

void vit_arena_init(vit_arena *a, vit_backend *backend) {
    memset(a, 0, sizeof *a);
    a->backend = backend;
}

static void free_chunk(vit_arena *a, vit_arena_chunk *c) {
    if (a->backend)
        a->backend->ops->free(a->backend, c->base);
    else
        free(c->base);
    free(c);
}

static void free_chunks(vit_arena *a, vit_arena_chunk *c) {
    while (c) {
        vit_arena_chunk *next = c->next;
        free_chunk(a, c);
        c = next;
    }
}

void vit_arena_release(vit_arena *a) {
    free_chunks(a, a->chunks);
    memset(a, 0, sizeof *a);
}

static vit_arena_chunk *new_chunk(vit_arena *a, size_t cap) {
    vit_arena_chunk *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->base = a->backend ? a->backend->ops->alloc(a->backend, cap) : aligned_alloc(VIT_ALIGN, cap);
    if (!c->base) {
        free(c);
        return NULL;
    }
    c->cap = cap;
    c->used = 0;
    c->next = NULL;
    return c;
}

/* After the first step the arena knows its peak; it then keeps one chunk of
 * that size, so later steps of the same shape never call malloc. */
void vit_arena_reset(vit_arena *a) {
    if (a->used_total > a->peak) a->peak = a->used_total;
    a->used_total = 0;
    if (!a->chunks) return;
    if (a->chunks->next || a->chunks->cap < a->peak) {
        size_t cap = a->peak;
        free_chunks(a, a->chunks);
        a->chunks = new_chunk(a, cap < VIT_ARENA_MIN_CHUNK ? VIT_ARENA_MIN_CHUNK : cap);
        /* A failed allocation leaves no chunk; the next alloc retries. */
        return;
    }
    a->chunks->used = 0;
}

void *vit_arena_alloc(vit_arena *a, size_t bytes) {
    size_t need = (bytes + VIT_ALIGN - 1) / VIT_ALIGN * VIT_ALIGN;
    if (need < bytes) {
        vit_fail(VIT_ERR_OUT_OF_MEMORY, "arena: request of %zu bytes overflows", bytes);
        return NULL;
    }
    vit_arena_chunk *c = a->chunks;
    if (!c || c->cap - c->used < need) {
        size_t cap = c ? c->cap * 2 : VIT_ARENA_MIN_CHUNK;
        if (cap < need) cap = need;
        vit_arena_chunk *fresh = new_chunk(a, cap);
        if (!fresh) {
            vit_fail(VIT_ERR_OUT_OF_MEMORY, "arena: cannot allocate %zu bytes for activations", cap);
            return NULL;
        }
        fresh->next = c;
        a->chunks = c = fresh;
    }
    void *p = c->base + c->used;
    c->used += need;
    a->used_total += need;
    return p;
}

/* The ranges may overlap (a backend's copy on the device is a memmove). */
static bool move_down(vit_arena *a, void *dst, const void *src, size_t bytes) {
    if (a->backend) return a->backend->ops->copy(a->backend, dst, src, bytes, VIT_COPY_ON_DEVICE) == VIT_OK;
    memmove(dst, src, bytes);
    return true;
}

void *vit_arena_rewind_keep(vit_arena *a, vit_arena_mark mark, const void *data, size_t bytes,
                            vit_arena_mark *at) {
    if (a->used_total > a->peak) a->peak = a->used_total;
    vit_arena_chunk *c = a->chunks;
    if (c && c == mark.chunk) {
        vit_arena_rewind(a, mark);
        if (at) *at = vit_arena_save(a);
        void *low = vit_arena_alloc(a, bytes); /* at the mark: below data, and it fits */
        return move_down(a, low, data, bytes) ? low : NULL;
    }
    /* data, the last allocation, is in the newest chunk c; mark is in an
     * older one (or NULL: before the first chunk). */
    vit_arena_chunk **link = &c->next;
    while (*link && *link != mark.chunk) {
        vit_arena_chunk *dead = *link;
        *link = dead->next;
        free_chunk(a, dead);
    }
    if (mark.chunk) mark.chunk->used = mark.used;
    if (!move_down(a, c->base, data, bytes)) return NULL;
    c->used = (bytes + VIT_ALIGN - 1) / VIT_ALIGN * VIT_ALIGN;
    a->used_total = mark.used_total + c->used;
    if (at) *at = (vit_arena_mark){c, 0, mark.used_total};
    return c->base;
}

float *vit_arena_floats(vit_arena *a, size_t n) {
    if (n > SIZE_MAX / sizeof(float)) {
        vit_fail(VIT_ERR_OUT_OF_MEMORY, "arena: %zu floats overflow", n);
        return NULL;
    }
    return vit_arena_alloc(a, n * sizeof(float));
}

float *vit_arena_zeros(vit_arena *a, size_t n) {
    float *p = vit_arena_floats(a, n);
    if (p && a->backend && a->backend->ops->zero(a->backend, p, n * sizeof(float)) != VIT_OK) return NULL;
    if (p && !a->backend) memset(p, 0, n * sizeof(float));
    return p;
}

vit_arena_mark vit_arena_save(const vit_arena *a) {
    vit_arena_mark m = {a->chunks, a->chunks ? a->chunks->used : 0, a->used_total};
    return m;
}

void vit_arena_rewind(vit_arena *a, vit_arena_mark mark) {
    if (!mark.chunk || a->chunks != mark.chunk) return; /* a newer chunk holds live data: keep all */
    if (a->used_total > a->peak) a->peak = a->used_total;
    a->chunks->used = mark.used;
    a->used_total = mark.used_total;
}
