/*
 * bench_gemm: GFLOP/s of the CPU backend's gemm at ViT shapes.
 *
 *   bench_gemm [--threads N] [--reps R] [--warmup W] [--quick] [--no-any] [--only TEXT]
 *   bench_gemm --workload NAME [--threads N] [--reps R] [--warmup W]
 *
 * --only keeps the rows whose name contains TEXT (e.g. "vitb", "dW", "attn").
 * --workload prints one JSON line: the rate of the matrix products of one of
 * vit-bench's workloads (patch embedding, qkv, proj, fc1 + GELU, fc2, head at
 * the workload's batch, inference on packed weights where libvit packs them;
 * with their dX and dW products for training), as total
 * FLOPs over the sum of best times: the ceiling a whole step is compared to
 * (the best, not the median, as a ceiling should not move with the noise of
 * a shared machine).
 *
 * Each row is 2*M*N*K / time, the median (and best) of R timed calls after W
 * warm-up calls, on 64-byte aligned buffers of uniform random values.
 * Linear layers are y = x W^T + b (A = x [tokens, in], B = W [out, in] with
 * trans_b); backward: dX += dY W (no trans) and dW += dY^T X (trans_a).
 *
 * Both modes also measure the processor's multiply-add peak at the vector
 * width libvit dispatches (AVX-512, AVX2 or 4-wide; VIT_MAX_CPU_ISA caps it as it
 * caps libvit): independent chains of vector FMAs on every thread, enough of
 * them to cover the FMA latency on every x86 core seen, nothing loaded or
 * stored. No product can exceed it, so it is what the ceiling and a whole
 * step's rate (libvit's, ONNX Runtime's) are measured against.
 *
 * The "any-B" columns answer whether letting oneDNN choose the weights layout
 * (format_tag_any, weights reordered once, as a packed-weight API would do
 * per optimizer step) would pay: they show the layout oneDNN picks for B and
 * the speed of the matmul on it; "plain" means it kept the row-major layout,
 * so packing could not help.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

#include "core/backend.h"
#include "workloads.h"

typedef struct shape {
    const char *name;
    int M, N, K;
    bool ta, tb, acc, bias, gelu;
} shape;

/* ViT-B/16 at batch 16: 16 * 197 tokens, D = 768, MLP 3072 ("vitb1": batch 1, 197 tokens). */
#define VB_T (16 * 197)
/* fmnist-size ViT: 128 images * 50 tokens, D = 96, MLP 384. */
#define FM_T (128 * 50)

static const shape shapes[] = {
    {"vitb qkv     fwd  x.Wt+b", VB_T, 2304, 768, false, true, false, true, false},
    {"vitb proj    fwd  x.Wt+b", VB_T, 768, 768, false, true, false, true, false},
    {"vitb fc1     fwd  gelu(x.Wt+b)", VB_T, 3072, 768, false, true, false, true, true},
    {"vitb fc2     fwd  x.Wt+b", VB_T, 768, 3072, false, true, false, true, false},
    {"vitb qkv     dX += dY.W", VB_T, 768, 2304, false, false, true, false, false},
    {"vitb proj    dX += dY.W", VB_T, 768, 768, false, false, true, false, false},
    {"vitb fc1     dX += dY.W", VB_T, 768, 3072, false, false, true, false, false},
    {"vitb fc2     dX += dY.W", VB_T, 3072, 768, false, false, true, false, false},
    {"vitb qkv     dW += dYt.X", 2304, 768, VB_T, true, false, true, false, false},
    {"vitb proj    dW += dYt.X", 768, 768, VB_T, true, false, true, false, false},
    {"vitb fc1     dW += dYt.X", 3072, 768, VB_T, true, false, true, false, false},
    {"vitb fc2     dW += dYt.X", 768, 3072, VB_T, true, false, true, false, false},
    {"vitb1 qkv    fwd  x.Wt+b", 197, 2304, 768, false, true, false, true, false},
    {"vitb1 proj   fwd  x.Wt+b", 197, 768, 768, false, true, false, true, false},
    {"vitb1 fc1    fwd  gelu(x.Wt+b)", 197, 3072, 768, false, true, false, true, true},
    {"vitb1 fc2    fwd  x.Wt+b", 197, 768, 3072, false, true, false, true, false},
    {"fmnist qkv   fwd  x.Wt+b", FM_T, 288, 96, false, true, false, true, false},
    {"fmnist proj  fwd  x.Wt+b", FM_T, 96, 96, false, true, false, true, false},
    {"fmnist fc1   fwd  gelu(x.Wt+b)", FM_T, 384, 96, false, true, false, true, true},
    {"fmnist fc2   fwd  x.Wt+b", FM_T, 96, 384, false, true, false, true, false},
    {"fmnist qkv   dX += dY.W", FM_T, 96, 288, false, false, true, false, false},
    {"fmnist proj  dX += dY.W", FM_T, 96, 96, false, false, true, false, false},
    {"fmnist fc1   dX += dY.W", FM_T, 96, 384, false, false, true, false, false},
    {"fmnist fc2   dX += dY.W", FM_T, 384, 96, false, false, true, false, false},
    {"fmnist qkv   dW += dYt.X", 288, 96, FM_T, true, false, true, false, false},
    {"fmnist proj  dW += dYt.X", 96, 96, FM_T, true, false, true, false, false},
    {"fmnist fc1   dW += dYt.X", 384, 96, FM_T, true, false, true, false, false},
    {"fmnist fc2   dW += dYt.X", 96, 384, FM_T, true, false, true, false, false},
};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *rand_floats(size_t n, uint64_t seed) {
    float *p = vit_alloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_gemm: out of memory (%zu floats)\n", n);
        exit(1);
    }
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
    }
    return p;
}

typedef struct timing {
    double median, best;
} timing;

static timing summarize(double *t, int reps) {
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    timing r = {reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]), t[0]};
    return r;
}

/* ------------------------------------------------------ the CPU backend */
/* The backend (its primitive cache), made on first use. */
static vit_backend *g_backend;

static vit_backend *backend(void) {
    if (!g_backend && vit_backend_create_cpu(&g_backend) != VIT_OK) {
        fprintf(stderr, "bench_gemm: %s\n", vit_last_error());
        exit(1);
    }
    return g_backend;
}

static void release_backend(void) {
    vit_backend_release(g_backend);
    g_backend = NULL;
}


static int time_gemm(const vit_gemm *g, int warmup, int reps, timing *out) {
    double *t = malloc((size_t)reps * sizeof *t);
    for (int i = 0; i < warmup + reps; i++) {
        double t0 = now();
        vit_status st = backend()->ops->gemm(backend(), g);
        double dt = now() - t0;
        if (st != VIT_OK) {
            fprintf(stderr, "bench_gemm: gemm failed: %s\n", vit_last_error());
            free(t);
            return -1;
        }
        if (i >= warmup) t[i - warmup] = dt;
    }
    *out = summarize(t, reps);
    free(t);
    return 0;
}

/* ------------------------------------------------- multiply-add peak */

/* Twelve accumulators: FMA latency 4 cycles x 2 pipes needs 8 in flight; 12
 * leave room and still fit in 16 vector registers. GCC keeps vector-typed
 * locals in registers where an array of them would go to the stack. */
#define PEAK_CHAINS(V, FMA)                                                                          \
    V a0 = init, a1 = init + 1, a2 = init + 2, a3 = init + 3, a4 = init + 4, a5 = init + 5;          \
    V a6 = init + 6, a7 = init + 7, a8 = init + 8, a9 = init + 9, a10 = init + 10, a11 = init + 11; \
    for (long i = 0; i < iters; i++) {                                                               \
        a0 = FMA(a0), a1 = FMA(a1), a2 = FMA(a2), a3 = FMA(a3), a4 = FMA(a4), a5 = FMA(a5);         \
        a6 = FMA(a6), a7 = FMA(a7), a8 = FMA(a8), a9 = FMA(a9), a10 = FMA(a10), a11 = FMA(a11);    \
    }                                                                                                \
    V sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;                              \
    float total = 0.0f;                                                                              \
    for (size_t k = 0; k < sizeof sum / sizeof(float); k++) total += sum[k];                         \
    return total

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float chains_avx512(long iters, float seed) {
    const v16 init = {seed}, mul = init * 0.0f + 0.999f, add = init * 0.0f + 1e-4f;
#define FMA16(a) __builtin_ia32_vfmaddps512_mask(a, mul, add, (unsigned short)-1, 4)
    PEAK_CHAINS(v16, FMA16);
#undef FMA16
}

__attribute__((target("avx2,fma"))) static float chains_avx2(long iters, float seed) {
    const v8 init = {seed}, mul = init * 0.0f + 0.999f, add = init * 0.0f + 1e-4f;
#define FMA8(a) __builtin_ia32_vfmaddps256(a, mul, add)
    PEAK_CHAINS(v8, FMA8);
#undef FMA8
}

#endif

static float chains_baseline(long iters, float seed) { /* multiply, then add: SSE2 has no FMA */
    const v4 init = {seed}, mul = init * 0.0f + 0.999f, add = init * 0.0f + 1e-4f;
#define MULADD4(a) ((a) * mul + add)
    PEAK_CHAINS(v4, MULADD4);
#undef MULADD4
}

/* GFLOP/s of vector multiply-adds on all OpenMP threads, best of five runs. */
static double fma_peak(void) {
    const vit_cpu_isa isa = vit_cpu_isa_dispatched();
    const int lanes = isa == VIT_CPU_ISA_AVX512 ? 16 : isa == VIT_CPU_ISA_AVX2 ? 8 : 4;
    const long iters = 20000000; /* ~35 ms at 3.4 GHz and 2 FMAs a cycle */
    double best = 0.0;
    volatile float sink = 0.0f;
    for (int run = 0; run < 5; run++) {
        int threads = 1;
        double t0 = now();
#pragma omp parallel reduction(+ : sink)
        {
#pragma omp single
            threads = omp_get_num_threads();
            float seed = 1e-3f * (float)omp_get_thread_num();
#if defined(__x86_64__)
            sink += isa == VIT_CPU_ISA_AVX512 ? chains_avx512(iters, seed)
                    : isa == VIT_CPU_ISA_AVX2 ? chains_avx2(iters, seed)
                                              : chains_baseline(iters, seed);
#else
            sink += chains_baseline(iters, seed);
#endif
        }
        double rate = 2.0 * 12 * lanes * (double)iters * threads / (now() - t0) * 1e-9;
        if (rate > best) best = rate;
    }
    return best;
}

/* ------------------------------------------- oneDNN with weights layout any */

#define DNNL_OK(call)                                                                  \
    do {                                                                               \
        dnnl_status_t st_ = (call);                                                    \
        if (st_ != dnnl_success) {                                                     \
            fprintf(stderr, "bench_gemm: %s failed: status %d\n", #call, (int)st_);  \
            goto out;                                                                  \
        }                                                                              \
    } while (0)

/* Describe a weights layout: "plain ab", "plain ba" or "blocked ..." */
static void layout_str(const dnnl_memory_desc_t *md, char *buf, size_t cap) {
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    if (md->format_kind != dnnl_blocked) {
        snprintf(buf, cap, "kind %d", (int)md->format_kind);
    } else if (b->inner_nblks == 0) {
        snprintf(buf, cap, "plain %s", b->strides[md->ndims - 1] == 1 ? "ab" : "ba");
    } else {
        int n = snprintf(buf, cap, "blocked");
        for (int i = 0; i < b->inner_nblks && n > 0 && (size_t)n < cap; i++)
            n += snprintf(buf + n, cap - (size_t)n, " %c%ld", (int)('a' + b->inner_idxs[i]), (long)b->inner_blks[i]);
    }
}

/* The matmul of shape s with B's layout left to oneDNN: B (given row-major,
 * trans_b as in s) is reordered once into the chosen layout, then the
 * matmul alone is timed. */
static int time_any(dnnl_engine_t eng, dnnl_stream_t strm, const shape *s, const vit_gemm *g, int warmup, int reps,
                    timing *out, char *layout, size_t cap, double *reorder_s, char *impl, size_t icap) {
    int rc = -1;
    double *t = malloc((size_t)reps * sizeof *t);
    dnnl_memory_desc_t amd, bmd_user, bmd_any, cmd, biasmd;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t prim = NULL, reorder = NULL;
    dnnl_memory_t ma = NULL, mb_user = NULL, mb = NULL, mc = NULL, mbias = NULL;
    void *packed = NULL;
    dnnl_dims_t ad = {s->M, s->K}, as = {s->ta ? 1 : g->lda, s->ta ? g->lda : 1};
    dnnl_dims_t bd = {s->K, s->N}, bs = {s->tb ? 1 : g->ldb, s->tb ? g->ldb : 1};
    dnnl_dims_t cd = {s->M, s->N}, cs = {g->ldc, 1}, biasd = {1, s->N};
    DNNL_OK(dnnl_memory_desc_init_by_strides(&amd, 2, ad, dnnl_f32, as));
    DNNL_OK(dnnl_memory_desc_init_by_strides(&bmd_user, 2, bd, dnnl_f32, bs));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&bmd_any, 2, bd, dnnl_f32, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_strides(&cmd, 2, cd, dnnl_f32, cs));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&biasmd, 2, biasd, dnnl_f32, dnnl_ab));
    DNNL_OK(dnnl_matmul_desc_init(&desc, &amd, &bmd_any, s->bias ? &biasmd : NULL, &cmd));
    DNNL_OK(dnnl_primitive_attr_create(&attr));
    DNNL_OK(dnnl_post_ops_create(&po));
    if (s->acc) DNNL_OK(dnnl_post_ops_append_sum(po, 1.0f));
    if (s->gelu) DNNL_OK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f));
    DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, po));
    DNNL_OK(dnnl_primitive_desc_create(&pd, &desc, attr, eng, NULL));
    const char *impl_name = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl_name);
    snprintf(impl, icap, "%s", impl_name);
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    layout_str(wmd, layout, cap);
    DNNL_OK(dnnl_primitive_create(&prim, pd));
    packed = vit_alloc(dnnl_memory_desc_get_size(wmd));
    if (!packed) goto out;
    DNNL_OK(dnnl_memory_create(&ma, &amd, eng, (void *)(uintptr_t)g->A));
    DNNL_OK(dnnl_memory_create(&mb_user, &bmd_user, eng, (void *)(uintptr_t)g->B));
    DNNL_OK(dnnl_memory_create(&mb, wmd, eng, packed));
    DNNL_OK(dnnl_memory_create(&mc, &cmd, eng, g->C));
    if (s->bias) DNNL_OK(dnnl_memory_create(&mbias, &biasmd, eng, (void *)(uintptr_t)g->bias));
    DNNL_OK(dnnl_reorder_primitive_desc_create(&rpd, &bmd_user, eng, wmd, eng, NULL));
    DNNL_OK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, mb_user}, {DNNL_ARG_TO, mb}};
    double best_reorder = 1e30;
    for (int i = 0; i < 5; i++) {
        double t0 = now();
        DNNL_OK(dnnl_primitive_execute(reorder, strm, 2, rargs));
        DNNL_OK(dnnl_stream_wait(strm));
        double dt = now() - t0;
        if (dt < best_reorder) best_reorder = dt;
    }
    *reorder_s = best_reorder;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}, {DNNL_ARG_BIAS, mbias}};
    for (int i = 0; i < warmup + reps; i++) {
        double t0 = now();
        DNNL_OK(dnnl_primitive_execute(prim, strm, s->bias ? 4 : 3, args));
        DNNL_OK(dnnl_stream_wait(strm));
        double dt = now() - t0;
        if (i >= warmup) t[i - warmup] = dt;
    }
    *out = summarize(t, reps);
    rc = 0;
out:
    if (prim) dnnl_primitive_destroy(prim);
    if (reorder) dnnl_primitive_destroy(reorder);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (po) dnnl_post_ops_destroy(po);
    if (ma) dnnl_memory_destroy(ma);
    if (mb_user) dnnl_memory_destroy(mb_user);
    if (mb) dnnl_memory_destroy(mb);
    if (mc) dnnl_memory_destroy(mc);
    if (mbias) dnnl_memory_destroy(mbias);
    vit_free(packed);
    free(t);
    return rc;
}

/* ------------------------------------------------------------------ main */

/* Attention's batched products for one ViT-B image: 12 heads, T = 197,
 * hd = 64, heads interleaved in the qkv rows. */
static void bench_attention(int warmup, int reps, const char *only) {
    const int T = 197, H = 12, hd = 64, W = 3 * H * hd;
    float *qkv = rand_floats((size_t)T * W, 7), *S = rand_floats((size_t)H * T * T, 8);
    float *O = rand_floats((size_t)T * H * hd, 9);
    struct {
        const char *name;
        vit_gemm g;
        ptrdiff_t sa, sb, sc;
    } cases[] = {
        {"vitb attn S = Q.Kt (12 heads)",
         {.M = T, .N = T, .K = hd, .A = qkv, .lda = W, .B = qkv + H * hd, .ldb = W, .trans_b = true, .C = S, .ldc = T},
         hd, hd, (ptrdiff_t)T * T},
        {"vitb attn O = P.V  (12 heads)",
         {.M = T, .N = hd, .K = T, .A = S, .lda = T, .B = qkv + 2 * H * hd, .ldb = W, .C = O, .ldc = H * hd},
         (ptrdiff_t)T * T, hd, hd},
        {"vitb attn dP = dO.Vt (12 heads)",
         {.M = T, .N = T, .K = hd, .A = O, .lda = H * hd, .B = qkv + 2 * H * hd, .ldb = W, .trans_b = true, .C = S,
          .ldc = T},
         hd, hd, (ptrdiff_t)T * T},
    };
    double *t = malloc((size_t)reps * sizeof *t);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const vit_gemm *g = &cases[c].g;
        if (only && !strstr(cases[c].name, only)) continue;
        int ok = 1;
        for (int i = 0; i < warmup + reps && ok; i++) {
            double t0 = now();
            if (backend()->ops->gemm_batched(backend(), g, H, cases[c].sa, cases[c].sb, cases[c].sc) != VIT_OK) {
                fprintf(stderr, "bench_gemm: batched failed: %s\n", vit_last_error());
                ok = 0;
            }
            if (i >= warmup) t[i - warmup] = now() - t0;
        }
        if (!ok) continue;
        timing tm = summarize(t, reps);
        double flops = 2.0 * g->M * g->N * g->K * H;
        printf("%-32s %5d %5d %5d %3s %3s | %9.3f %7.1f %7.1f |\n", cases[c].name, g->M, g->N, g->K,
               g->trans_a ? "T" : "N", g->trans_b ? "T" : "N", tm.median * 1e3, flops / tm.median * 1e-9,
               flops / tm.best * 1e-9);
    }
    free(t);
    vit_free(qkv), vit_free(S), vit_free(O);
}

/* Best seconds of one product of shape s on fresh random operands; < 0 on
 * failure. With packed, B gets a weight stamp, as in libvit's forward
 * products, so it runs on packed weights where the ISA packs them (the packing
 * itself falls in the warm-up). */
static double best_gemm(const shape *s, bool packed, int warmup, int reps, uint64_t seed) {
    vit_gemm g = {.M = s->M, .N = s->N, .K = s->K, .trans_a = s->ta, .trans_b = s->tb, .accumulate = s->acc,
                  .epilogue = s->gelu ? VIT_EPILOGUE_GELU : VIT_EPILOGUE_NONE,
                  .b_stamp = packed ? vit_stamp_next() : 0};
    g.lda = s->ta ? s->M : s->K;
    g.ldb = s->tb ? s->K : s->N;
    g.ldc = s->N;
    float *A = rand_floats((size_t)s->M * s->K, seed), *B = rand_floats((size_t)s->K * s->N, seed + 1);
    float *C = rand_floats((size_t)s->M * s->N, seed + 2), *bias = s->bias ? rand_floats((size_t)s->N, seed + 3) : NULL;
    g.A = A, g.B = B, g.C = C, g.bias = bias;
    timing tm;
    double r = time_gemm(&g, warmup, reps, &tm) == 0 ? tm.best : -1.0;
    backend()->ops->forget_weights(backend(), B, (size_t)s->K * s->N * sizeof *B);
    vit_free(A), vit_free(B), vit_free(C), vit_free(bias);
    return r;
}

static int bench_workload(const vit_bench_workload *w, int threads, int warmup, int reps) {
    const int grid = w->img / w->patch, n = grid * grid, t = n + 1, d = w->dim, hid = (int)(w->dim * w->mlp);
    const int pk = w->channels * w->patch * w->patch, rows = w->batch * t;
    /* {M, N, K, with GELU, count per step}: the forward linear products y = x W^T + b. */
    struct { int M, N, K, gelu, count; } layers[] = {
        {w->batch * n, d, pk, 0, 1}, {rows, 3 * d, d, 0, w->depth}, {rows, d, d, 0, w->depth},
        {rows, hid, d, 1, w->depth}, {rows, d, hid, 0, w->depth}, {w->batch, w->classes, d, 0, 1},
    };
    double flops = 0.0, seconds = 0.0;
    uint64_t seed = 1;
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        const int M = layers[i].M, N = layers[i].N, K = layers[i].K;
        shape fwd = {"fwd", M, N, K, false, true, false, true, layers[i].gelu != 0};
        shape dx = {"dX", M, K, N, false, false, true, false, false};   /* dX += dY W */
        shape dw = {"dW", N, K, M, true, false, true, false, false};    /* dW += dY^T X */
        const shape *todo[3] = {&fwd, w->train ? &dw : NULL, w->train && i > 0 ? &dx : NULL};
        for (int k = 0; k < 3; k++) {
            if (!todo[k]) continue;
            /* forward products run on packed weights as libvit's do: always in
             * inference, in training for weights up to 256 K floats (ops/linear.c) */
            const bool packed = k == 0 && (!w->train || (int64_t)N * K <= (1 << 18));
            double sec = best_gemm(todo[k], packed, warmup, reps, seed += 4);
            if (sec < 0) return 1;
            flops += 2.0 * M * N * K * layers[i].count;
            seconds += sec * layers[i].count;
        }
    }
    printf("{\"workload\": \"%s\", \"threads\": %d, \"matmul_gflops\": %.2f, \"fma_peak_gflops\": %.2f, "
           "\"cpu_isa\": \"%s\"}\n",
           w->name, threads, flops / seconds * 1e-9, fma_peak(), vit_cpu_isa_name(vit_cpu_isa_dispatched()));
    return 0;
}

int main(int argc, char **argv) {
    int threads = 2, reps = 20, warmup = 3, do_any = 1;
    const char *only = NULL, *workload = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--workload") && i + 1 < argc) workload = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) reps = 5, warmup = 1;
        else if (!strcmp(argv[i], "--no-any")) do_any = 0;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--threads N] [--reps R] [--warmup W] [--quick] [--no-any] [--only TEXT | --workload NAME]\n",
                    argv[0]);
            return 2;
        }
    }
    if (threads < 1 || reps < 1 || warmup < 0) {
        fprintf(stderr, "bench_gemm: bad --threads/--reps/--warmup\n");
        return 2;
    }
    omp_set_num_threads(threads);
    if (workload) {
        for (size_t k = 0; k < VIT_BENCH_WORKLOADS; k++)
            if (!strcmp(vit_bench_workloads[k].name, workload)) {
                int rc = bench_workload(&vit_bench_workloads[k], threads, warmup, reps);
                release_backend();
                return rc;
            }
        fprintf(stderr, "bench_gemm: unknown workload '%s'\n", workload);
        return 2;
    }

    const dnnl_version_t *v = dnnl_version();
    printf("bench_gemm: oneDNN %d.%d.%d, cpu isa %d, %d threads, median (best) of %d after %d warm-up; "
           "multiply-add peak (%s) %.1f GFLOP/s\n", v->major, v->minor, v->patch, (int)dnnl_get_effective_cpu_isa(),
           omp_get_max_threads(), reps, warmup, vit_cpu_isa_name(vit_cpu_isa_dispatched()), fma_peak());
    printf("%-32s %5s %5s %5s %3s %3s | %9s %7s %7s | %-13s %7s %9s %s\n", "product", "M", "N", "K", "tA", "tB",
           "ms", "GFLOP/s", "best", "any-B layout", "GFLOP/s", "reorder", "impl");

    dnnl_engine_t eng = NULL;
    dnnl_stream_t strm = NULL;
    if (do_any && (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success ||
                   dnnl_stream_create(&strm, eng, dnnl_stream_default_flags) != dnnl_success)) {
        fprintf(stderr, "bench_gemm: no oneDNN engine\n");
        return 1;
    }

    int failures = 0;
    for (int i = 0; i < NSHAPES; i++) {
        const shape *s = &shapes[i];
        if (only && !strstr(s->name, only)) continue;
        vit_gemm g = {.M = s->M, .N = s->N, .K = s->K, .trans_a = s->ta, .trans_b = s->tb, .accumulate = s->acc,
                      .epilogue = s->gelu ? VIT_EPILOGUE_GELU : VIT_EPILOGUE_NONE};
        g.lda = s->ta ? s->M : s->K;
        g.ldb = s->tb ? s->K : s->N;
        g.ldc = s->N;
        float *A = rand_floats((size_t)s->M * s->K, 1 + (uint64_t)i);
        float *B = rand_floats((size_t)s->K * s->N, 100 + (uint64_t)i);
        float *C = rand_floats((size_t)s->M * s->N, 200 + (uint64_t)i);
        float *bias = s->bias ? rand_floats((size_t)s->N, 300 + (uint64_t)i) : NULL;
        g.A = A, g.B = B, g.C = C, g.bias = bias;
        double flops = 2.0 * s->M * s->N * s->K;
        timing tm;
        if (time_gemm(&g, warmup, reps, &tm) != 0) {
            failures++;
        } else {
            printf("%-32s %5d %5d %5d %3s %3s | %9.3f %7.1f %7.1f |", s->name, s->M, s->N, s->K, s->ta ? "T" : "N",
                   s->tb ? "T" : "N", tm.median * 1e3, flops / tm.median * 1e-9, flops / tm.best * 1e-9);
            timing ta;
            char layout[64] = "", impl[64] = "";
            double reorder_s = 0.0;
            if (do_any && !s->acc) {
                if (time_any(eng, strm, s, &g, warmup, reps, &ta, layout, sizeof layout, &reorder_s, impl,
                             sizeof impl) == 0)
                    printf(" %-13s %7.1f %7.3fms %s", layout, flops / ta.median * 1e-9, reorder_s * 1e3, impl);
                else
                    printf(" (any-B failed)");
            }
            printf("\n");
            fflush(stdout);
        }
        vit_free(A), vit_free(B), vit_free(C), vit_free(bias);
    }
    bench_attention(warmup, reps, only);
    release_backend();
    if (strm) dnnl_stream_destroy(strm);
    if (eng) dnnl_engine_destroy(eng);
    return failures ? 1 : 0;
}
