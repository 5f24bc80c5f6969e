/*
 * The CPU matrix product on oneDNN's matmul primitive (C API, OpenMP runtime).
 *
 * Layout: row-major operands become oneDNN memory descriptors by strides, so
 * a transposed operand is only a swapped pair of strides (never a copy), a
 * leading dimension larger than the width is just a larger stride, and a
 * strided batch is a third, outer dimension. C += A.B is the sum post-op and
 * the bias is the matmul bias argument. The GELU epilogue is not oneDNN's
 * gelu_erf post-op but libvit's own GELU kernel (the backend's gelu_forward),
 * run on each row slice right after its product while the slice is still in
 * cache (ViT-B/16's fc1 on the AVX-512 EPYC: 6.2 against 6.6 ms at batch 1,
 * 94 against 103 at batch 16, medians of five interleaved bench_gemm runs),
 * and inference then gets the same GELU bits as training.
 *
 * Caching and threading:
 *   - Creating a primitive walks oneDNN's implementation list and costs
 *     ~0.2 ms (the first one in a process ~10-60 ms), against ~1 us of
 *     overhead for a cached call, so created primitives are kept in a small
 *     open-addressing hash table keyed by every parameter that changes the
 *     primitive: shapes, leading dimensions, trans flags, accumulate, bias,
 *     batch, batch strides and the OpenMP thread count (oneDNN
 *     sizes its work split when the primitive is created). Data pointers are
 *     not part of the key: each entry keeps its memory objects and only
 *     swaps their data handles per call.
 *   - The table, the engine, the stream and the scratchpad belong to one
 *     vit_cpu_matmul, which the CPU backend of a context owns. libvit's rule
 *     is that a context is used by one thread at a time (different contexts
 *     run concurrently on different threads), so no lock is needed on the
 *     hot path, the cached memory objects have their handles rewritten
 *     without races, and a stream or scratchpad is never shared by
 *     concurrent executions. The duplicated cost across contexts is small:
 *     oneDNN's own primitive cache shares the JIT kernels between identical
 *     primitives.
 *   - Scratchpad is user-managed: one 64-byte aligned buffer per context,
 *     grown when a new primitive needs more, so steady state allocates
 *     nothing on libvit's side (oneDNN itself still makes 7-9 small mallocs
 *     per execution, for its argument maps and GEMM packing buffers; the C
 *     API offers no way to hand it those).
 *   - A tall product with a small B (a small model's layers over a batch of
 *     tokens) runs in row slices; with at least as many slices as threads,
 *     and for a weight gradient over such a batch in one column band per
 *     thread, each thread runs its own parts on one oneDNN thread, with a
 *     stream, a scratchpad and memory objects of its own (parts_by_thread).
 *   - Small products (under SMALL_FLOPS) run on one thread: oneDNN's GEMM
 *     already keeps such sizes on one thread, but its bias pass still
 *     forks the OpenMP team, which at 8^3..64^3 costs up to 2x the time.
 *   - A batched product whose layout oneDNN's fast path cannot take (its
 *     memory descriptor is rejected or only the reference implementation
 *     accepts it) runs as a loop of 2-D products; that decision is cached too.
 *
 * Packed weights: a 2-D product whose B carries a stamp (vit_gemm.b_stamp, a
 * weight whose contents stay fixed while the stamp does) lets oneDNN choose
 * B's layout (format_tag_any). Where it chooses a blocked one (brgemm on
 * AVX-512 CPUs: BA16a64b), B is reordered once into a buffer of this state,
 * keyed by B's address and both layouts, and reordered again only when the
 * stamp changes; the plain path would otherwise copy B into blocks inside
 * every call, on every thread. At the AVX2 level, where oneDNN keeps a plain
 * layout, a stamped B goes to libvit's own product instead (cpu/packed_gemm.h:
 * B packed once into panels of 16 columns, same list, same stamps), except
 * for products oneDNN runs whole over many rows (own_product_takes); at the
 * baseline level the stamp changes nothing. The copies live until forget
 * (the weights' owner frees them) or the state's destruction; if one cannot
 * be allocated the product runs on B as it is.
 */
#include "cpu/matmul.h"
#include "cpu/packed_gemm.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

/* ------------------------------------------------------------------ cache */

static void *mutable_ptr(const void *p) { return (void *)(uintptr_t)p; }

enum {
    KEY_TRANS_A = 1 << 0,
    KEY_TRANS_B = 1 << 1,
    KEY_ACCUMULATE = 1 << 2,
    KEY_BIAS = 1 << 3,
    KEY_PACK_B = 1 << 4
};

/* All fields 8 bytes or two 4-byte fields in a row: no padding, so memcmp
 * and the word-wise hash see only the fields (the key is memset first too). */
typedef struct gemm_key {
    int64_t M, N, K, lda, ldb, ldc;
    int64_t batch, stride_a, stride_b, stride_c;
    int32_t flags;
    int32_t threads;
} gemm_key;

enum { MEM_SRC, MEM_WEI, MEM_BIAS, MEM_DST, MEM_SCRATCH, MEM_COUNT };

/* How an entry whose primitive reads B in a blocked layout gets B there. */
typedef struct pack_plan {
    dnnl_memory_desc_t user, packed; /* B as the caller lays it out; as the primitive reads it */
    dnnl_primitive_t reorder;
    dnnl_memory_t from, to;          /* the reorder's operands (handles set per call) */
    size_t bytes;                    /* of the packed copy */
} pack_plan;

typedef struct gemm_entry {
    gemm_key key;
    bool used;
    bool loop;                  /* batched: run as a loop of 2-D products */
    dnnl_primitive_t prim;
    dnnl_memory_t mem[MEM_COUNT];
    size_t scratch_bytes;
    pack_plan *plan;            /* non-NULL: the primitive reads a packed copy of B */
    dnnl_memory_t (*helper_mem)[MEM_COUNT]; /* mem's like for each helper thread of parts_by_thread */
    int helper_mem_count;
} gemm_entry;

/* One weight reordered into one layout: oneDNN's packed, or with own set
 * cpu/packed_gemm.h's panels (packed unused). */
typedef struct packed_weight {
    const float *B;
    uint64_t stamp;             /* of the contents buf holds; 0: none yet */
    bool own;
    dnnl_memory_desc_t user, packed;
    void *buf;
    size_t bytes;
} packed_weight;

struct vit_cpu_matmul {
    vit_backend *be;            /* whose gelu_forward is the GELU epilogue */
    bool own_packing;           /* stamped weights go to cpu/packed_gemm.h's product */
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    gemm_entry *table;          /* capacity a power of two */
    size_t cap, count;
    void *scratch;
    size_t scratch_cap;
    /* A model has a few hundred weights at most, each packed in one or two
     * layouts: a list scanned by address costs less than a microsecond. */
    packed_weight *packs;
    size_t pack_count, pack_cap;
    size_t packed_bytes;
    /* A stream and a scratchpad for each helper thread of parts_by_thread
     * (a stream and a scratchpad never serve two executions at once). */
    dnnl_stream_t *helper_streams;
    void **helper_scratch;
    int helpers;
    size_t helper_scratch_cap;
};
typedef struct vit_cpu_matmul gemm_state;

/* 2*M*N*K*batch below which a product runs on one thread (~80^3: measured
 * crossover of a biased product with 1 vs 2 threads on a 2-core EPYC). */
#define SMALL_FLOPS (1.0 * (1 << 20))

#define CACHE_INITIAL_CAP 64u
#define CACHE_MAX_CAP 4096u     /* at 3/4 of this the table is flushed, not grown */

static void plan_destroy(pack_plan *p) {
    if (!p) return;
    if (p->reorder) dnnl_primitive_destroy(p->reorder);
    if (p->from) dnnl_memory_destroy(p->from);
    if (p->to) dnnl_memory_destroy(p->to);
    free(p);
}

static void entry_clear(gemm_entry *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    for (int i = 0; i < MEM_COUNT; i++)
        if (e->mem[i]) dnnl_memory_destroy(e->mem[i]);
    for (int h = 0; h < e->helper_mem_count; h++)
        for (int i = 0; i < MEM_COUNT; i++)
            if (e->helper_mem[h][i]) dnnl_memory_destroy(e->helper_mem[h][i]);
    free(e->helper_mem);
    plan_destroy(e->plan);
    memset(e, 0, sizeof *e);
}

static void table_flush(gemm_state *s) {
    for (size_t i = 0; i < s->cap; i++)
        if (s->table[i].used) entry_clear(&s->table[i]);
    s->count = 0;
}

void vit_cpu_matmul_destroy(vit_cpu_matmul *s) {
    if (!s) return;
    if (s->table) {
        table_flush(s);
        free(s->table);
    }
    if (s->stream) dnnl_stream_destroy(s->stream);
    for (int h = 0; h < s->helpers; h++) {
        if (s->helper_streams[h]) dnnl_stream_destroy(s->helper_streams[h]);
        vit_free(s->helper_scratch[h]);
    }
    free(s->helper_streams);
    free(s->helper_scratch);
    if (s->engine) dnnl_engine_destroy(s->engine);
    vit_free(s->scratch);
    for (size_t i = 0; i < s->pack_count; i++) vit_free(s->packs[i].buf);
    free(s->packs);
    free(s);
}

static vit_status dnnl_fail(dnnl_status_t st, const char *what, const gemm_key *k) {
    vit_status vs = st == dnnl_out_of_memory ? VIT_ERR_OUT_OF_MEMORY : VIT_ERR_INTERNAL;
    return vit_fail(vs, "oneDNN matmul %dx%dx%d (batch %d): %s: status %s", (int)k->M, (int)k->N, (int)k->K,
                    (int)k->batch, what, dnnl_status2str(st));
}

vit_status vit_cpu_matmul_create(vit_cpu_matmul **out, vit_backend *be, vit_cpu_isa isa) {
    *out = NULL;
    gemm_state *s = calloc(1, sizeof *s);
    if (s) s->table = calloc(CACHE_INITIAL_CAP, sizeof *s->table);
    if (!s || !s->table) {
        free(s);
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "oneDNN matmul: no memory for the primitive cache");
    }
    s->be = be;
    s->own_packing = isa == VIT_CPU_ISA_AVX2;
    s->cap = CACHE_INITIAL_CAP;
    dnnl_status_t st = dnnl_engine_create(&s->engine, dnnl_cpu, 0);
    const char *what = "engine";
    if (st == dnnl_success) {
        what = "stream";
        st = dnnl_stream_create(&s->stream, s->engine, dnnl_stream_default_flags);
    } else {
        s->engine = NULL;
    }
    if (st != dnnl_success) {
        if (what[0] == 's') s->stream = NULL;
        vit_cpu_matmul_destroy(s);
        return vit_fail(st == dnnl_out_of_memory ? VIT_ERR_OUT_OF_MEMORY : VIT_ERR_INTERNAL,
                        "oneDNN matmul: %s creation failed: status %s", what, dnnl_status2str(st));
    }
    *out = s;
    return VIT_OK;
}

static gemm_entry *table_find(gemm_state *s, const gemm_key *k, uint64_t h) {
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        gemm_entry *e = &s->table[i];
        if (!e->used) return NULL;
        if (memcmp(&e->key, k, sizeof *k) == 0) return e;
    }
}

/* A free slot for a key of hash h (not present); grows or flushes the table as needed. */
static gemm_entry *table_slot(gemm_state *s, uint64_t h) {
    if ((s->count + 1) * 4 > s->cap * 3) {
        gemm_entry *big = s->cap < CACHE_MAX_CAP ? calloc(s->cap * 2, sizeof *big) : NULL;
        if (big) {
            size_t ncap = s->cap * 2, mask = ncap - 1;
            for (size_t i = 0; i < s->cap; i++) {
                if (!s->table[i].used) continue;
                size_t j = (size_t)vit_hash_words(&s->table[i].key, sizeof s->table[i].key) & mask;
                while (big[j].used) j = (j + 1) & mask;
                big[j] = s->table[i];
            }
            free(s->table);
            s->table = big;
            s->cap = ncap;
        } else {
            table_flush(s); /* at the cap (or out of memory): start over */
        }
    }
    size_t mask = s->cap - 1;
    size_t i = (size_t)h & mask;
    while (s->table[i].used) i = (i + 1) & mask;
    return &s->table[i];
}

static vit_status scratch_reserve(gemm_state *s, size_t bytes) {
    if (bytes <= s->scratch_cap) return VIT_OK;
    size_t want = bytes + (bytes >> 2);
    void *p = vit_alloc(want);
    if (!p) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "oneDNN matmul: no memory for a %zu-byte scratchpad", want);
    vit_free(s->scratch);
    s->scratch = p;
    s->scratch_cap = want;
    return VIT_OK;
}

/* ------------------------------------------------------------- primitives */

/* Operand descriptors for one key. Returns the failing dnnl status. */
static dnnl_status_t make_mds(const gemm_key *k, dnnl_memory_desc_t *a, dnnl_memory_desc_t *b,
                              dnnl_memory_desc_t *bias, dnnl_memory_desc_t *c, int *which) {
    const bool ta = k->flags & KEY_TRANS_A, tb = k->flags & KEY_TRANS_B;
    dnnl_dims_t ad, as, bd, bs, cd, cs, biasd;
    int nd;
    if (k->batch > 1) {
        nd = 3;
        /* A zero batch stride is a broadcast operand: batch dimension 1, whose
         * stride (never used) steps over the whole operand to pass oneDNN's
         * layout check. */
        ad[0] = k->stride_a ? k->batch : 1;
        as[0] = k->stride_a ? k->stride_a : (ta ? k->K : k->M) * k->lda;
        bd[0] = k->stride_b ? k->batch : 1;
        bs[0] = k->stride_b ? k->stride_b : (tb ? k->N : k->K) * k->ldb;
        cd[0] = k->batch;
        cs[0] = k->stride_c;
        biasd[0] = 1;
    } else {
        nd = 2;
    }
    int o = nd - 2;
    ad[o] = k->M, ad[o + 1] = k->K;
    as[o] = ta ? 1 : k->lda, as[o + 1] = ta ? k->lda : 1;
    bd[o] = k->K, bd[o + 1] = k->N;
    bs[o] = tb ? 1 : k->ldb, bs[o + 1] = tb ? k->ldb : 1;
    cd[o] = k->M, cd[o + 1] = k->N;
    cs[o] = k->ldc, cs[o + 1] = 1;
    biasd[o] = 1, biasd[o + 1] = k->N;

    dnnl_status_t st;
    *which = 0;
    if ((st = dnnl_memory_desc_init_by_strides(a, nd, ad, dnnl_f32, as)) != dnnl_success) return st;
    *which = 1;
    if ((st = dnnl_memory_desc_init_by_strides(b, nd, bd, dnnl_f32, bs)) != dnnl_success) return st;
    *which = 2;
    if ((st = dnnl_memory_desc_init_by_strides(c, nd, cd, dnnl_f32, cs)) != dnnl_success) return st;
    *which = 3;
    return dnnl_memory_desc_init_by_tag(bias, nd, biasd, dnnl_f32, nd == 3 ? dnnl_abc : dnnl_ab);
}

/* For a stamped B: the primitive descriptor with B in the layout oneDNN
 * prefers, and e->plan, when that layout is blocked. Otherwise *pd stays
 * NULL and the caller makes the plain one (so does a shape oneDNN cannot do
 * with a free layout: packing is only ever an option). */
static dnnl_status_t plan_create(gemm_state *s, gemm_entry *e, const gemm_key *k, const dnnl_memory_desc_t *amd,
                                 const dnnl_memory_desc_t *bmd, const dnnl_memory_desc_t *biasmd,
                                 const dnnl_memory_desc_t *cmd, const_dnnl_primitive_attr_t attr,
                                 dnnl_primitive_desc_t *pd) {
    dnnl_memory_desc_t any;
    dnnl_matmul_desc_t desc;
    dnnl_dims_t dims = {k->K, k->N};
    *pd = NULL;
    if (dnnl_memory_desc_init_by_tag(&any, 2, dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_matmul_desc_init(&desc, amd, &any, biasmd, cmd) != dnnl_success ||
        dnnl_primitive_desc_create(pd, &desc, attr, s->engine, NULL) != dnnl_success) {
        *pd = NULL;
        return dnnl_success;
    }
    const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(*pd, dnnl_query_weights_md, 0);
    if (!w || w->format_kind != dnnl_blocked || w->format_desc.blocking.inner_nblks == 0) {
        dnnl_primitive_desc_destroy(*pd); /* a plain layout: B as it is does as well */
        *pd = NULL;
        return dnnl_success;
    }
    pack_plan *p = calloc(1, sizeof *p);
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_status_t st = p ? dnnl_success : dnnl_out_of_memory;
    if (p) {
        p->user = *bmd;
        p->packed = *w;
        p->bytes = dnnl_memory_desc_get_size(w);
        st = dnnl_reorder_primitive_desc_create(&rpd, bmd, s->engine, w, s->engine, NULL);
    }
    if (st == dnnl_success) st = dnnl_primitive_create(&p->reorder, rpd);
    if (st == dnnl_success) st = dnnl_memory_create(&p->from, bmd, s->engine, DNNL_MEMORY_NONE);
    if (st == dnnl_success) st = dnnl_memory_create(&p->to, w, s->engine, DNNL_MEMORY_NONE);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (st != dnnl_success) {
        plan_destroy(p);
        dnnl_primitive_desc_destroy(*pd);
        *pd = NULL;
        return st;
    }
    e->plan = p;
    return dnnl_success;
}

/* Create the primitive (and its memory objects) for key k into e. For a
 * batched key, a layout only the reference implementation takes marks the
 * entry as a loop instead of failing. */
static vit_status entry_create(gemm_state *s, gemm_entry *e, const gemm_key *k) {
    dnnl_memory_desc_t amd, bmd, biasmd, cmd;
    int which;
    dnnl_status_t st = make_mds(k, &amd, &bmd, &biasmd, &cmd, &which);
    if (st != dnnl_success) {
        if (k->batch > 1) {
            e->loop = true;
            return VIT_OK;
        }
        static const char *const names[] = {"A descriptor", "B descriptor", "C descriptor", "bias descriptor"};
        return dnnl_fail(st, names[which], k);
    }

    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    const char *what = "matmul descriptor";
    if ((st = dnnl_matmul_desc_init(&desc, &amd, &bmd, (k->flags & KEY_BIAS) ? &biasmd : NULL, &cmd)) !=
        dnnl_success) {
        if (k->batch > 1 && st == dnnl_invalid_arguments) { /* e.g. both A and B broadcast */
            e->loop = true;
            st = dnnl_success;
        }
        goto done;
    }
    what = "attributes";
    if ((st = dnnl_primitive_attr_create(&attr)) != dnnl_success) goto done;
    if ((st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) != dnnl_success) goto done;
    if ((st = dnnl_post_ops_create(&po)) != dnnl_success) goto done;
    if ((k->flags & KEY_ACCUMULATE) && (st = dnnl_post_ops_append_sum(po, 1.0f)) != dnnl_success) goto done;
    if ((st = dnnl_primitive_attr_set_post_ops(attr, po)) != dnnl_success) goto done;
    what = "primitive descriptor";
    if ((k->flags & KEY_PACK_B) &&
        (st = plan_create(s, e, k, &amd, &bmd, (k->flags & KEY_BIAS) ? &biasmd : NULL, &cmd, attr, &pd)) !=
            dnnl_success)
        goto done;
    if (!pd && (st = dnnl_primitive_desc_create(&pd, &desc, attr, s->engine, NULL)) != dnnl_success) {
        pd = NULL;
        if (k->batch > 1 && st == dnnl_unimplemented) {
            e->loop = true;
            st = dnnl_success;
        }
        goto done;
    }
    if (k->batch > 1) {
        const char *impl = NULL;
        if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
            strncmp(impl, "ref", 3) == 0) {
            e->loop = true; /* the 2-D products take the optimized GEMM */
            goto done;
        }
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    {
        vit_status vs = scratch_reserve(s, e->scratch_bytes);
        if (vs != VIT_OK) {
            dnnl_primitive_desc_destroy(pd);
            dnnl_primitive_attr_destroy(attr);
            dnnl_post_ops_destroy(po);
            return vs;
        }
    }
    what = "memory objects";
    if ((st = dnnl_memory_create(&e->mem[MEM_SRC], &amd, s->engine, DNNL_MEMORY_NONE)) != dnnl_success ||
        (st = dnnl_memory_create(&e->mem[MEM_WEI], e->plan ? &e->plan->packed : &bmd, s->engine,
                                 DNNL_MEMORY_NONE)) != dnnl_success ||
        (st = dnnl_memory_create(&e->mem[MEM_DST], &cmd, s->engine, DNNL_MEMORY_NONE)) != dnnl_success ||
        ((k->flags & KEY_BIAS) &&
         (st = dnnl_memory_create(&e->mem[MEM_BIAS], &biasmd, s->engine, DNNL_MEMORY_NONE)) != dnnl_success) ||
        (e->scratch_bytes &&
         (st = dnnl_memory_create(&e->mem[MEM_SCRATCH], smd, s->engine, DNNL_MEMORY_NONE)) != dnnl_success))
        goto done;
    what = "primitive";
    if ((st = dnnl_primitive_create(&e->prim, pd)) != dnnl_success) {
        e->prim = NULL;
        goto done;
    }

done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (po) dnnl_post_ops_destroy(po);
    if (st != dnnl_success) return dnnl_fail(st, what, k);
    return VIT_OK;
}

/* The cached entry for k, created on first use. On failure nothing is cached. */
static vit_status entry_get(gemm_state *s, const gemm_key *k, gemm_entry **out) {
    uint64_t h = vit_hash_words(k, sizeof *k);
    gemm_entry *e = table_find(s, k, h);
    if (!e) {
        gemm_entry fresh;
        memset(&fresh, 0, sizeof fresh);
        vit_status vs = entry_create(s, &fresh, k);
        if (vs != VIT_OK) {
            entry_clear(&fresh);
            return vs;
        }
        fresh.key = *k;
        fresh.used = true;
        e = table_slot(s, h);
        *e = fresh;
        s->count++;
    }
    *out = e;
    return VIT_OK;
}

/* ------------------------------------------------------- packed weights */

/* The list's copy of B laid out as user describes it, in oneDNN's layout
 * packed or (own, packed NULL) in packed_gemm's; made, with bytes of buffer
 * and no contents yet, where there is none. */
static vit_status pack_slot(gemm_state *s, const float *B, bool own, const dnnl_memory_desc_t *user,
                            const dnnl_memory_desc_t *packed, size_t bytes, packed_weight **out) {
    for (size_t i = 0; i < s->pack_count; i++) {
        packed_weight *c = &s->packs[i];
        if (c->B == B && c->own == own && dnnl_memory_desc_equal(&c->user, user) &&
            (own || dnnl_memory_desc_equal(&c->packed, packed))) {
            *out = c;
            return VIT_OK;
        }
    }
    if (s->pack_count == s->pack_cap) {
        size_t cap = s->pack_cap ? 2 * s->pack_cap : 64;
        packed_weight *grown = realloc(s->packs, cap * sizeof *grown);
        if (!grown) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "CPU matmul: no memory for the packed-weight list");
        s->packs = grown;
        s->pack_cap = cap;
    }
    void *buf = vit_alloc(bytes);
    if (!buf) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "CPU matmul: no memory for a %zu-byte packed weight", bytes);
    packed_weight *pw = &s->packs[s->pack_count++];
    *pw = (packed_weight){.B = B, .own = own, .user = *user, .buf = buf, .bytes = bytes};
    if (packed) pw->packed = *packed;
    s->packed_bytes += bytes;
    *out = pw;
    return VIT_OK;
}

/* The packed copy of g->B for plan, reordered now unless it holds g->b_stamp's contents already. */
static vit_status packed_b(gemm_state *s, const pack_plan *plan, const vit_gemm *g, const float **out) {
    packed_weight *pw;
    VIT_TRY(pack_slot(s, g->B, false, &plan->user, &plan->packed, plan->bytes, &pw));
    if (pw->stamp != g->b_stamp) {
        pw->stamp = 0; /* until the reorder has succeeded */
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, plan->from}, {DNNL_ARG_TO, plan->to}};
        dnnl_status_t st = dnnl_memory_set_data_handle(plan->from, mutable_ptr(g->B));
        if (st == dnnl_success) st = dnnl_memory_set_data_handle(plan->to, pw->buf);
        if (st == dnnl_success) st = dnnl_primitive_execute(plan->reorder, s->stream, 2, args);
        if (st == dnnl_success) st = dnnl_stream_wait(s->stream);
        if (st != dnnl_success) {
            gemm_key k;
            memset(&k, 0, sizeof k);
            k.M = g->M, k.N = g->N, k.K = g->K, k.batch = 1;
            return dnnl_fail(st, "reorder of B", &k);
        }
        pw->stamp = g->b_stamp;
    }
    *out = pw->buf;
    return VIT_OK;
}

void vit_cpu_matmul_forget(vit_cpu_matmul *s, const void *p, size_t bytes) {
    if (!s) return;
    const char *lo = p, *hi = lo + bytes;
    for (size_t i = 0; i < s->pack_count;) {
        const char *b = (const char *)s->packs[i].B;
        if (b >= lo && b < hi) {
            vit_free(s->packs[i].buf);
            s->packed_bytes -= s->packs[i].bytes;
            s->packs[i] = s->packs[--s->pack_count];
        } else {
            i++;
        }
    }
}

size_t vit_cpu_matmul_packed_bytes(const vit_cpu_matmul *s) { return s ? s->packed_bytes : 0; }

/* Runs e's primitive on g's operands (B: g->B or its packed copy) through the
 * memory objects mem (e->mem's like), on stream with scratch. Returns the
 * failing oneDNN status and what failed, so that a worker thread can hand
 * its failure to the calling one. */
static dnnl_status_t entry_exec(const gemm_entry *e, const dnnl_memory_t *mem, dnnl_stream_t stream, void *scratch,
                                const vit_gemm *g, const float *B, const char **what) {
    dnnl_exec_arg_t args[MEM_COUNT];
    int n = 0;
    dnnl_status_t st;
    *what = "set data handle";
    if ((st = dnnl_memory_set_data_handle(mem[MEM_SRC], mutable_ptr(g->A))) != dnnl_success) return st;
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mem[MEM_SRC]};
    if ((st = dnnl_memory_set_data_handle(mem[MEM_WEI], mutable_ptr(B))) != dnnl_success) return st;
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mem[MEM_WEI]};
    if (mem[MEM_BIAS]) {
        if ((st = dnnl_memory_set_data_handle(mem[MEM_BIAS], mutable_ptr(g->bias))) != dnnl_success) return st;
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mem[MEM_BIAS]};
    }
    if ((st = dnnl_memory_set_data_handle(mem[MEM_DST], g->C)) != dnnl_success) return st;
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mem[MEM_DST]};
    if (mem[MEM_SCRATCH]) {
        if ((st = dnnl_memory_set_data_handle(mem[MEM_SCRATCH], scratch)) != dnnl_success) return st;
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mem[MEM_SCRATCH]};
    }
    *what = "execute";
    if ((st = dnnl_primitive_execute(e->prim, stream, n, args)) != dnnl_success) return st;
    return dnnl_stream_wait(stream);
}

static vit_status entry_run(gemm_state *s, gemm_entry *e, const vit_gemm *g, const float *B) {
    const char *what;
    dnnl_status_t st = entry_exec(e, e->mem, s->stream, s->scratch, g, B, &what);
    return st == dnnl_success ? VIT_OK : dnnl_fail(st, what, &e->key);
}

/* C = GELU(C) over M rows of N, row stride ldc. */
static vit_status apply_gelu(gemm_state *s, float *C, int M, int N, int ldc) {
    if (ldc == N) return s->be->ops->gelu_forward(s->be, C, C, (int64_t)M * N);
    for (int m = 0; m < M; m++) {
        float *row = C + (ptrdiff_t)m * ldc;
        VIT_TRY(s->be->ops->gelu_forward(s->be, row, row, N));
    }
    return VIT_OK;
}

/* K == 0: the product is zero, so C = epilogue(bias or 0), or C unchanged when accumulating. */
static vit_status fill_empty_k(gemm_state *s, const vit_gemm *g, float *C) {
    if (g->accumulate) return VIT_OK;
    for (int m = 0; m < g->M; m++) {
        float *row = C + (ptrdiff_t)m * g->ldc;
        for (int n = 0; n < g->N; n++) row[n] = g->bias ? g->bias[n] : 0.0f;
    }
    return g->epilogue == VIT_EPILOGUE_GELU ? apply_gelu(s, C, g->M, g->N, g->ldc) : VIT_OK;
}

static void key_init(gemm_key *k, const vit_gemm *g, int threads) {
    memset(k, 0, sizeof *k);
    k->M = g->M, k->N = g->N, k->K = g->K;
    k->lda = g->lda, k->ldb = g->ldb, k->ldc = g->ldc;
    k->batch = 1;
    k->flags = (g->trans_a ? KEY_TRANS_A : 0) | (g->trans_b ? KEY_TRANS_B : 0) |
               (g->accumulate ? KEY_ACCUMULATE : 0) | (g->bias ? KEY_BIAS : 0) | (g->b_stamp ? KEY_PACK_B : 0);
    k->threads = threads;
}

static vit_status gemm_2d(gemm_state *s, const vit_gemm *g, int threads) {
    if (g->epilogue == VIT_EPILOGUE_GELU) { /* the product, then GELU while it is in cache */
        vit_gemm product = *g;
        product.epilogue = VIT_EPILOGUE_NONE;
        VIT_TRY(gemm_2d(s, &product, threads));
        return apply_gelu(s, g->C, g->M, g->N, g->ldc);
    }
    gemm_key k;
    key_init(&k, g, threads);
    gemm_entry *e;
    VIT_TRY(entry_get(s, &k, &e));
    const float *B = g->B;
    if (e->plan) {
        vit_status st = packed_b(s, e->plan, g, &B);
        if (st == VIT_ERR_OUT_OF_MEMORY) { /* the plain product needs no copy */
            vit_gemm plain = *g;
            plain.b_stamp = 0;
            return gemm_2d(s, &plain, threads);
        }
        VIT_TRY(st);
    }
    return entry_run(s, e, g, B);
}

/* A tall product with a small B (a small model's linear layers over a whole
 * batch of tokens: 6400 x 288 x 96) runs as slices of about SLICE_ROWS rows:
 * on the AVX-512 EPYC oneDNN's brgemm ran such products at 100-145 GFLOP/s
 * whole and 145-185 in slices (ViT-B/16's, with a B of 0.6-2.4 M floats,
 * gain nothing). */
enum { SLICE_ROWS = 800, SLICE_MAX_B = 1 << 18 };

/* How a product is cut into parts for the threads: row slices of size rows
 * (of A and C), or column bands of size columns (of B, C and the bias). */
typedef struct cut {
    bool columns;
    int size;
} cut;

/* Part i of g under c (the last may be smaller). */
static vit_gemm part_of(const vit_gemm *g, cut c, int i) {
    vit_gemm part = *g;
    const int at = i * c.size;
    if (c.columns) {
        part.N = g->N - at < c.size ? g->N - at : c.size;
        part.B = g->B + (g->trans_b ? (ptrdiff_t)at * g->ldb : (ptrdiff_t)at);
        part.C = g->C + at;
        if (g->bias) part.bias = g->bias + at;
    } else {
        part.M = g->M - at < c.size ? g->M - at : c.size;
        part.A = g->A + (g->trans_a ? (ptrdiff_t)at : (ptrdiff_t)at * g->lda);
        part.C = g->C + (ptrdiff_t)at * g->ldc;
    }
    return part;
}

static int parts_of(const vit_gemm *g, cut c) { return ((c.columns ? g->N : g->M) + c.size - 1) / c.size; }

/* Streams and scratchpads of at least bytes for a team of threads threads:
 * the calling thread (0) runs on the state's own, helper thread t on
 * helper_streams[t - 1] and helper_scratch[t - 1]. */
static vit_status team_reserve(gemm_state *s, int threads, size_t bytes) {
    VIT_TRY(scratch_reserve(s, bytes));
    const int helpers = threads - 1;
    if (helpers > s->helpers) {
        dnnl_stream_t *streams = realloc(s->helper_streams, (size_t)helpers * sizeof *streams);
        if (streams) s->helper_streams = streams;
        void **scratch = streams ? realloc(s->helper_scratch, (size_t)helpers * sizeof *scratch) : NULL;
        if (scratch) s->helper_scratch = scratch;
        if (!streams || !scratch)
            return vit_fail(VIT_ERR_OUT_OF_MEMORY, "oneDNN matmul: no memory for %d streams", helpers);
        for (int h = s->helpers; h < helpers; h++) {
            dnnl_status_t st = dnnl_stream_create(&s->helper_streams[h], s->engine, dnnl_stream_default_flags);
            if (st != dnnl_success)
                return vit_fail(st == dnnl_out_of_memory ? VIT_ERR_OUT_OF_MEMORY : VIT_ERR_INTERNAL,
                                "oneDNN matmul: stream creation failed: status %s", dnnl_status2str(st));
            s->helper_scratch[h] = NULL;
            s->helpers = h + 1;
        }
    }
    /* every helper's scratchpad holds helper_scratch_cap bytes */
    const bool grow = bytes > s->helper_scratch_cap;
    const size_t want = grow ? bytes + (bytes >> 2) : s->helper_scratch_cap;
    for (int h = 0; h < s->helpers; h++) {
        if (s->helper_scratch[h] && !grow) continue;
        void *p = vit_alloc(want ? want : 64);
        if (!p) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "oneDNN matmul: no memory for a %zu-byte scratchpad", want);
        vit_free(s->helper_scratch[h]);
        s->helper_scratch[h] = p;
    }
    s->helper_scratch_cap = want;
    return VIT_OK;
}

/* Memory objects like e->mem for each helper thread of a team of threads
 * (the calling thread uses e->mem). */
static vit_status entry_helper_mem(gemm_state *s, gemm_entry *e, int threads) {
    const int helpers = threads - 1;
    if (e->helper_mem_count >= helpers) return VIT_OK;
    dnnl_memory_t(*mem)[MEM_COUNT] = realloc(e->helper_mem, (size_t)helpers * sizeof *mem);
    if (!mem) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "oneDNN matmul: no memory for %d threads' operands", threads);
    e->helper_mem = mem;
    for (int h = e->helper_mem_count; h < helpers; h++) {
        for (int i = 0; i < MEM_COUNT; i++) mem[h][i] = NULL;
        e->helper_mem_count = h + 1; /* entry_clear destroys what this row holds */
        for (int i = 0; i < MEM_COUNT; i++) {
            const dnnl_memory_desc_t *md;
            if (!e->mem[i]) continue;
            dnnl_status_t st = dnnl_memory_get_memory_desc(e->mem[i], &md);
            if (st == dnnl_success) st = dnnl_memory_create(&mem[h][i], md, s->engine, DNNL_MEMORY_NONE);
            if (st != dnnl_success) {
                mem[h][i] = NULL;
                return dnnl_fail(st, "memory objects", &e->key);
            }
        }
    }
    return VIT_OK;
}

/* The parts of a product shared out among the threads, each taking the next
 * part as it comes free (a slower core takes fewer) and running it on one
 * thread of oneDNN, instead of every part on all threads: one fork and join
 * per product instead of one per part, and each thread streams its own rows
 * or columns. On the AVX-512 EPYC, 8 row slices of Fashion-MNIST's products
 * (6400 x 96..384 x 96..384) ran at 150-170 against 60-80 GFLOP/s with their
 * operands out of cache, as a step finds them, and 8-15 % faster from L3; its
 * weight gradients (96..384 x 96..384 x 6400) in two column bands 15-20 %
 * faster from L3. Each part is a one-thread product of its own: row slices,
 * cut by the shape alone, give one thread's bits whichever thread runs them;
 * bands, cut by the thread count, may sum in another order than the whole
 * product. *taken is false where the caller's road must do it instead: a
 * packed B for bands, or B's packed copy could not be allocated. */
static vit_status parts_by_thread(gemm_state *s, const vit_gemm *g, int threads, cut c, bool *taken) {
    *taken = false;
    const int parts = parts_of(g, c);
    const vit_gemm first = part_of(g, c, 0), last = part_of(g, c, parts - 1);
    gemm_key kf, kl;
    key_init(&kf, &first, 1);
    key_init(&kl, &last, 1);
    gemm_entry *ef, *el;
    omp_set_num_threads(1); /* each part's primitive is made for one thread */
    vit_status st = entry_get(s, &kf, &ef);
    if (st == VIT_OK) st = entry_get(s, &kl, &el);
    if (st == VIT_OK) st = entry_get(s, &kf, &ef); /* a lookup: creating el may have moved the table */
    omp_set_num_threads(threads);
    VIT_TRY(st);
    if (c.columns && (ef->plan || el->plan)) return VIT_OK; /* each band would need its own packed copy */
    const float *Bf = NULL, *Bl = NULL; /* packed copies of B; NULL: each part reads its own B */
    if (ef->plan && (st = packed_b(s, ef->plan, &first, &Bf)) != VIT_OK)
        return st == VIT_ERR_OUT_OF_MEMORY ? VIT_OK : st;
    if (el->plan && (st = packed_b(s, el->plan, &last, &Bl)) != VIT_OK)
        return st == VIT_ERR_OUT_OF_MEMORY ? VIT_OK : st;
    VIT_TRY(team_reserve(s, threads, ef->scratch_bytes > el->scratch_bytes ? ef->scratch_bytes : el->scratch_bytes));
    VIT_TRY(entry_helper_mem(s, ef, threads));
    VIT_TRY(entry_helper_mem(s, el, threads));
    /* the first failure, reported by this thread: errors are per thread */
    dnnl_status_t failed = dnnl_success;
    const char *failed_what = NULL;
    vit_status epilogue = VIT_OK;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num();
        bool stopped = false;
#pragma omp for schedule(dynamic, 1) nowait
        for (int k = 0; k < parts; k++) {
            if (stopped) continue;
            const vit_gemm part = part_of(g, c, k);
            const gemm_entry *e = k == parts - 1 ? el : ef;
            const char *what;
            const float *packed = k == parts - 1 ? Bl : Bf;
            const float *B = packed ? packed : part.B;
            dnnl_status_t ds = t ? entry_exec(e, e->helper_mem[t - 1], s->helper_streams[t - 1],
                                              s->helper_scratch[t - 1], &part, B, &what)
                                 : entry_exec(e, e->mem, s->stream, s->scratch, &part, B, &what);
            vit_status vs = ds == dnnl_success && g->epilogue == VIT_EPILOGUE_GELU
                                ? apply_gelu(s, part.C, part.M, part.N, part.ldc)
                                : VIT_OK;
            if (ds != dnnl_success || vs != VIT_OK) {
#pragma omp critical(vit_matmul_parts)
                if (failed == dnnl_success && epilogue == VIT_OK) failed = ds, failed_what = what, epilogue = vs;
                stopped = true;
            }
        }
    }
    if (failed != dnnl_success) return dnnl_fail(failed, failed_what, &ef->key);
    if (epilogue != VIT_OK)
        return vit_fail(epilogue, "oneDNN matmul %dx%dx%d: the GELU epilogue failed", g->M, g->N, g->K);
    *taken = true;
    return VIT_OK;
}

/* A weight gradient's product (dW += dY^T X: a small output summed over a
 * batch of tokens) in one column band per thread, of whole 16-column blocks. */
static bool weight_gradient(const vit_gemm *g, int threads) {
    return g->trans_a && g->K >= 2 * SLICE_ROWS && (int64_t)g->M * g->N <= SLICE_MAX_B && g->N >= 16 * threads;
}

/* n / parts rounded up to whole 16-row or 16-column blocks. */
static int share_of_16(int n, int parts) { return ((n + parts - 1) / parts + 15) / 16 * 16; }

static vit_status gemm_parts(gemm_state *s, const vit_gemm *g, int threads) {
    if (threads > 1 && weight_gradient(g, threads)) {
        const cut bands = {.columns = true, .size = share_of_16(g->N, threads)};
        bool taken;
        VIT_TRY(parts_by_thread(s, g, threads, bands, &taken));
        if (taken) return VIT_OK;
    }
    if (g->M < 2 * SLICE_ROWS || (int64_t)g->N * g->K > SLICE_MAX_B) return gemm_2d(s, g, threads);
    /* the slices depend on the shape alone: a row's bits may depend on its slice's height */
    const int slices = (g->M + SLICE_ROWS - 1) / SLICE_ROWS;
    const cut rows = {.columns = false, .size = share_of_16(g->M, slices)};
    if (threads > 1 && parts_of(g, rows) >= threads) {
        bool taken;
        VIT_TRY(parts_by_thread(s, g, threads, rows, &taken));
        if (taken) return VIT_OK;
    }
    for (int i = 0; i < parts_of(g, rows); i++) {
        const vit_gemm part = part_of(g, rows, i);
        VIT_TRY(gemm_2d(s, &part, threads));
    }
    return VIT_OK;
}

/* ------------------------------------------- libvit's own packed product */

/* Below this many rows a product is bound by reading B (each weight used in
 * fewer multiply-adds than this) more than by the multiply-adds the panels
 * speed up, and the copy costs memory: ViT-B/16's last block at batch 16,
 * which runs its MLP on the 16 class tokens only, took b16-infer-b16's
 * peak from 529 to 549 MiB. */
enum { OWN_MIN_ROWS = 64 };

/* The products that go to packed_gemm's: a stamped B at the AVX2 level,
 * except where gemm_parts gives oneDNN the whole product over many rows,
 * which amortise its copy of B: ViT-B/16's at batch 16 (3152 rows) ran at
 * 208-210 GFLOP/s there against 203-205 on packed weights (in the model,
 * AVX2 on the AVX-512 EPYC), while at batch 1 (197 rows) packed weights
 * took them from 170-173 to 173-205 (median of seven runs 201), and
 * tiny-c32-train's step, in row slices, gained 13 %. */
static bool own_product_takes(const gemm_state *s, const vit_gemm *g) {
    const bool whole_and_tall = g->M >= 2 * SLICE_ROWS && (int64_t)g->N * g->K > SLICE_MAX_B;
    return s->own_packing && g->b_stamp && !g->trans_a && g->M >= OWN_MIN_ROWS && !whole_and_tall;
}

/* g->B in packed_gemm's panels, packed now unless the copy holds g->b_stamp's contents already. */
static vit_status own_packed_b(gemm_state *s, const vit_gemm *g, const float **out) {
    const dnnl_dims_t dims = {g->K, g->N};
    const dnnl_dims_t strides = {g->trans_b ? 1 : g->ldb, g->trans_b ? g->ldb : 1};
    dnnl_memory_desc_t user;
    dnnl_status_t st = dnnl_memory_desc_init_by_strides(&user, 2, dims, dnnl_f32, strides);
    if (st != dnnl_success) {
        gemm_key k;
        key_init(&k, g, 1);
        return dnnl_fail(st, "B descriptor", &k);
    }
    packed_weight *pw;
    VIT_TRY(pack_slot(s, g->B, true, &user, NULL, vit_packed_gemm_bytes(g->N, g->K), &pw));
    if (pw->stamp != g->b_stamp) {
        vit_packed_gemm_pack(pw->buf, g->B, g->ldb, g->trans_b, g->N, g->K);
        pw->stamp = g->b_stamp;
    }
    *out = pw->buf;
    return VIT_OK;
}

static vit_status gelu_block(void *state, float *C, int rows, int cols, int ldc) {
    return apply_gelu(state, C, rows, cols, ldc);
}

/* *taken is false where B's packed copy could not be allocated: the caller's
 * road (oneDNN on B as it is) must do the product. */
static vit_status own_product(gemm_state *s, const vit_gemm *g, int threads, bool *taken) {
    const float *packed;
    vit_status st = own_packed_b(s, g, &packed);
    *taken = st != VIT_ERR_OUT_OF_MEMORY;
    if (st != VIT_OK) return *taken ? st : VIT_OK;
    const vit_packed_epilogue gelu = {.run = gelu_block, .ctx = s};
    st = vit_packed_gemm_run(g->C, g->ldc, g->A, g->lda, packed, g->bias, g->M, g->N, g->K, g->accumulate,
                             g->epilogue == VIT_EPILOGUE_GELU ? &gelu : NULL, threads);
    return st == VIT_OK ? VIT_OK : vit_fail(st, "CPU matmul %dx%dx%d: the GELU epilogue failed", g->M, g->N, g->K);
}

vit_status vit_cpu_gemm(vit_cpu_matmul *s, const vit_gemm *g) {
    VIT_TRY(vit_gemm_check("vit_cpu_gemm", g, 1, 0, 0, 0));
    if (g->M == 0 || g->N == 0) return VIT_OK;
    if (g->K == 0) return fill_empty_k(s, g, g->C);
    int threads = omp_get_max_threads();
    const bool small = threads > 1 && 2.0 * g->M * g->N * g->K < SMALL_FLOPS;
    if (own_product_takes(s, g)) {
        bool taken;
        VIT_TRY(own_product(s, g, small ? 1 : threads, &taken));
        if (taken) return VIT_OK;
    }
    if (!small) return gemm_parts(s, g, threads);
    omp_set_num_threads(1); /* this thread's ICV only; oneDNN reads it at execution */
    vit_status st = gemm_2d(s, g, 1);
    omp_set_num_threads(threads);
    return st;
}

static vit_status batched(gemm_state *s, const vit_gemm *g, int batch, ptrdiff_t stride_a, ptrdiff_t stride_b,
                          ptrdiff_t stride_c, int threads) {
    if (batch == 1) return gemm_2d(s, g, threads);
    if (g->epilogue == VIT_EPILOGUE_GELU) {
        vit_gemm product = *g;
        product.epilogue = VIT_EPILOGUE_NONE;
        VIT_TRY(batched(s, &product, batch, stride_a, stride_b, stride_c, threads));
        for (int i = 0; i < batch; i++) {
            float *Ci = g->C + (ptrdiff_t)i * stride_c;
            VIT_TRY(apply_gelu(s, Ci, g->M, g->N, g->ldc));
        }
        return VIT_OK;
    }
    gemm_key k;
    key_init(&k, g, threads);
    k.batch = batch;
    k.stride_a = stride_a, k.stride_b = stride_b, k.stride_c = stride_c;
    gemm_entry *e;
    VIT_TRY(entry_get(s, &k, &e));
    if (!e->loop) return entry_run(s, e, g, g->B);
    for (int i = 0; i < batch; i++) {
        vit_gemm gi = *g;
        gi.A = g->A + (ptrdiff_t)i * stride_a;
        gi.B = g->B + (ptrdiff_t)i * stride_b;
        gi.C = g->C + (ptrdiff_t)i * stride_c;
        VIT_TRY(gemm_2d(s, &gi, threads));
    }
    return VIT_OK;
}

vit_status vit_cpu_gemm_batched(vit_cpu_matmul *s, const vit_gemm *g, int batch, ptrdiff_t stride_a,
                                ptrdiff_t stride_b, ptrdiff_t stride_c) {
    static const char fn[] = "vit_cpu_gemm_batched";
    VIT_TRY(vit_gemm_check(fn, g, batch, stride_a, stride_b, stride_c));
    if (batch == 0 || g->M == 0 || g->N == 0) return VIT_OK;
    if (g->K == 0) {
        for (int i = 0; i < batch; i++) VIT_TRY(fill_empty_k(s, g, g->C + (ptrdiff_t)i * stride_c));
        return VIT_OK;
    }
    int threads = omp_get_max_threads();
    bool small = threads > 1 && 2.0 * g->M * g->N * g->K * batch < SMALL_FLOPS;
    vit_gemm unstamped = *g; /* batched operands are activations: nothing to pack */
    unstamped.b_stamp = 0;
    if (small) omp_set_num_threads(1);
    vit_status st = batched(s, &unstamped, batch, stride_a, stride_b, stride_c, small ? 1 : threads);
    if (small) omp_set_num_threads(threads);
    return st;
}

void vit_cpu_matmul_cap_isa(vit_cpu_isa isa) {
    if (isa == VIT_CPU_ISA_AVX512) return; /* the top level: oneDNN keeps its own choice */
    dnnl_status_t st = dnnl_set_max_cpu_isa(isa == VIT_CPU_ISA_AVX2 ? dnnl_cpu_isa_avx2 : dnnl_cpu_isa_sse41);
    if (st != dnnl_success)
        vit_log(NULL, VIT_LOG_WARN, "oneDNN refused the ISA cap %s (status %s): its products keep their own ISA",
                vit_cpu_isa_name(isa), dnnl_status2str(st));
}
