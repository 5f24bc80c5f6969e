/*
 * The matrix product on cuBLASLt.
 *
 * Layout: cuBLASLt is column-major, libvit row-major. A row-major C [M, N]
 * is a column-major C^T [N, M], and C^T = op(B)^T · op(A)^T, so cuBLASLt's
 * first operand is B and its second A, each with its transpose flag as given
 * (vit_cuda_gemm_layout_of); no data moves. A strided batch is each
 * layout's batch count and offset.
 *
 * Precision (the backend's, fixed at creation):
 *   FP32  float32 operands, CUBLAS_COMPUTE_32F: float32 arithmetic;
 *   TF32  float32 operands, CUBLAS_COMPUTE_32F_FAST_TF32: tensor cores
 *         with 10-bit mantissas, float32 accumulation;
 *   BF16  A and B rounded to bfloat16 into the backend's scratch just
 *         before the product (one pass over each operand; weights are small
 *         next to a batch of activations, so casting them per call costs
 *         less than keeping a cast copy in step with every update), their
 *         rows padded to 16 bytes (attention's T = 197 columns would
 *         otherwise keep the tensor cores off their fast paths), float32
 *         accumulation, bias and output.
 * A shape cuBLASLt finds no algorithm for runs on cuBLAS's
 * cublasGemmStridedBatchedEx instead (with a warning in the log).
 *
 * Epilogues: the bias is cuBLASLt's BIAS epilogue. cuBLASLt's GELU
 * epilogues compute the tanh approximation, while libvit's GELU is the exact
 * erf form (PyTorch's nn.GELU(), timm's checkpoints); so VIT_EPILOGUE_GELU is
 * the BIAS epilogue followed by libvit's own GELU kernel in place.
 * GELU_AUX_BIAS, DGELU and BGRADB need outputs vit_gemm cannot name (an
 * auxiliary pre-activation, a bias gradient), so the table's
 * gelu_bias_backward entry does that work.
 *
 * Caching: descriptors and the chosen algorithm are kept per key (shape,
 * leading dimensions, flags, batch strides and the pointers' alignment) in
 * an open-addressing table owned by the backend; a hit costs a hash and one
 * cublasLtMatmul call.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda.h"
#include "cuda/kernels.h"

/* ------------------------------------------------------------ layout */
void vit_cuda_gemm_layout_of(const vit_gemm *g, vit_cuda_gemm_layout *l) {
    l->op_first = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    l->first_rows = (uint64_t)(g->trans_b ? g->K : g->N);
    l->first_cols = (uint64_t)(g->trans_b ? g->N : g->K);
    l->first_ld = g->ldb;
    l->op_second = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    l->second_rows = (uint64_t)(g->trans_a ? g->M : g->K);
    l->second_cols = (uint64_t)(g->trans_a ? g->K : g->M);
    l->second_ld = g->lda;
    l->out_rows = (uint64_t)g->N;
    l->out_cols = (uint64_t)g->M;
    l->out_ld = g->ldc;
}

/* -------------------------------------------------------------- plan */
void vit_cuda_gemm_plan_destroy(vit_cuda_gemm_plan *p) {
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->desc) cublasLtMatmulDescDestroy(p->desc);
    memset(p, 0, sizeof *p);
}

static vit_status layout(cublasLtMatrixLayout_t *out, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld,
                         int batch, int64_t stride) {
    VIT_TRY(vit_cublas_check(cublasLtMatrixLayoutCreate(out, type, rows, cols, ld), "creating a matrix layout"));
    if (batch > 1) {
        int32_t count = batch;
        VIT_TRY(vit_cublas_check(
            cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count),
            "setting the batch count"));
        VIT_TRY(vit_cublas_check(
            cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
            "setting the batch stride"));
    }
    return VIT_OK;
}

static vit_status plan_build(vit_cuda_gemm_plan *p, const vit_gemm *g, int batch, ptrdiff_t stride_a,
                             ptrdiff_t stride_b, ptrdiff_t stride_c, vit_precision precision) {
    vit_cuda_gemm_layout l;
    vit_cuda_gemm_layout_of(g, &l);
    const cublasComputeType_t compute =
        precision == VIT_PRECISION_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const cudaDataType_t in = precision == VIT_PRECISION_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    VIT_TRY(vit_cublas_check(cublasLtMatmulDescCreate(&p->desc, compute, CUDA_R_32F), "creating a matmul descriptor"));
    VIT_TRY(vit_cublas_check(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &l.op_first, sizeof l.op_first),
        "setting transa"));
    VIT_TRY(vit_cublas_check(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &l.op_second, sizeof l.op_second),
        "setting transb"));
    if (g->bias) {
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        const cudaDataType_t bias_type = CUDA_R_32F;
        VIT_TRY(vit_cublas_check(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
                                 "setting the bias epilogue"));
        VIT_TRY(vit_cublas_check(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                                &bias_type, sizeof bias_type),
                                 "setting the bias type"));
    }
    VIT_TRY(layout(&p->a, in, l.first_rows, l.first_cols, l.first_ld, batch, stride_b));
    VIT_TRY(layout(&p->b, in, l.second_rows, l.second_cols, l.second_ld, batch, stride_a));
    VIT_TRY(layout(&p->c, CUDA_R_32F, l.out_rows, l.out_cols, l.out_ld, batch, stride_c));
    return VIT_OK;
}

vit_status vit_cuda_gemm_plan_build(vit_cuda_gemm_plan *p, const vit_gemm *g, int batch, ptrdiff_t stride_a,
                                    ptrdiff_t stride_b, ptrdiff_t stride_c, vit_precision precision) {
    memset(p, 0, sizeof *p);
    VIT_TRY(vit_gemm_check("CUDA gemm", g, batch, stride_a, stride_b, stride_c));
    if (precision != VIT_PRECISION_FP32 && precision != VIT_PRECISION_TF32 && precision != VIT_PRECISION_BF16)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "CUDA gemm: precision %d is not fp32, tf32 or bf16", (int)precision);
    if (g->M == 0 || g->N == 0 || g->K == 0 || batch == 0)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "CUDA gemm: an empty product %dx%dx%d (batch %d) has no plan", g->M,
                        g->N, g->K, batch);
    vit_status s = plan_build(p, g, batch, stride_a, stride_b, stride_c, precision);
    if (s != VIT_OK) vit_cuda_gemm_plan_destroy(p);
    return s;
}

/* ------------------------------------------------------------- cache */
enum { KEY_TRANS_A = 1, KEY_TRANS_B = 2, KEY_ACCUMULATE = 4, KEY_BIAS = 8 };

/* All fields 8 bytes or two 4-byte fields in a row: no padding (hashed as words). */
typedef struct gemm_key {
    int64_t M, N, K, lda, ldb, ldc;
    int64_t batch, stride_a, stride_b, stride_c;
    int32_t flags;
    int32_t align; /* log2 of the alignment of A, B, C, bias, 4 bits each */
} gemm_key;

typedef struct gemm_entry {
    gemm_key key;
    bool used;
    vit_cuda_gemm_plan plan;
} gemm_entry;

struct vit_cuda_gemm_cache {
    gemm_entry *table;
    size_t cap, count;
};

#define CACHE_CAP 1024u /* flushed at 3/4 full: a model uses a few dozen shapes */

static void cache_flush(vit_cuda_gemm_cache *c) {
    for (size_t i = 0; i < c->cap; i++)
        if (c->table[i].used) vit_cuda_gemm_plan_destroy(&c->table[i].plan), c->table[i].used = false;
    c->count = 0;
}

void vit_cuda_gemm_cache_destroy(vit_cuda_gemm_cache *c) {
    if (!c) return;
    if (c->table) cache_flush(c);
    free(c->table);
    free(c);
}

/* log2 of the alignment, up to 16 bytes, of every batch item of an operand.
 * Capped at 16 (what cuBLASLt's vectorised kernels ask for) so that buffers
 * aligned to 64 or 256 bytes share a plan, and the same product gives the
 * same bits from any of them. */
static int align_log2(const void *p, ptrdiff_t stride_bytes, int batch) {
    uintptr_t a = (uintptr_t)p | 16u;
    if (batch > 1) a |= (uintptr_t)stride_bytes;
    int l = 0;
    while (!(a & 1u)) a >>= 1, l++;
    return l;
}

static vit_status choose_algo(vit_cuda_state *s, vit_cuda_gemm_plan *p, const gemm_key *k) {
    cublasLtMatmulPreference_t pref = NULL;
    VIT_TRY(vit_cublas_check(cublasLtMatmulPreferenceCreate(&pref), "creating a preference"));
    const size_t ws = VIT_CUDA_WORKSPACE;
    const uint32_t aa = 1u << (k->align & 15), ab = 1u << (k->align >> 4 & 15), ac = 1u << (k->align >> 8 & 15);
    /* cuBLASLt's A is our B and its B our A */
    const struct {
        cublasLtMatmulPreferenceAttributes_t attr;
        const void *value;
        size_t size;
    } prefs[] = {{CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws},
                 {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &ab, sizeof ab},
                 {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &aa, sizeof aa},
                 {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof ac},
                 {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof ac}};
    vit_status st = VIT_OK;
    for (size_t i = 0; i < sizeof prefs / sizeof prefs[0] && st == VIT_OK; i++)
        st = vit_cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, prefs[i].attr, prefs[i].value, prefs[i].size),
                              "setting the algorithm preferences");
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (st == VIT_OK)
        st = vit_cublas_check(cublasLtMatmulAlgoGetHeuristic(s->lt, p->desc, p->a, p->b, p->c, p->c, pref, 1, &res,
                                                             &found),
                              "choosing an algorithm");
    cublasLtMatmulPreferenceDestroy(pref);
    VIT_TRY(st);
    if (found < 1) {
        vit_log(NULL, VIT_LOG_WARN,
                "cuBLASLt has no algorithm for %lldx%lldx%lld (batch %lld, lda %lld, ldb %lld, ldc %lld): "
                "this product runs on cuBLAS's gemm",
                (long long)k->M, (long long)k->N, (long long)k->K, (long long)k->batch, (long long)k->lda,
                (long long)k->ldb, (long long)k->ldc);
        return VIT_OK;
    }
    p->algo = res.algo;
    p->have_algo = true;
    return VIT_OK;
}

static vit_status plan_get(vit_cuda_state *s, const gemm_key *k, const vit_gemm *g, vit_cuda_gemm_plan **out) {
    vit_cuda_gemm_cache *c = s->gemm;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (c) c->table = calloc(CACHE_CAP, sizeof *c->table);
        if (!c || !c->table) {
            free(c);
            return vit_fail(VIT_ERR_OUT_OF_MEMORY, "CUDA gemm: no host memory for the plan cache");
        }
        c->cap = CACHE_CAP;
        s->gemm = c;
    }
    size_t i = vit_hash_words(k, sizeof *k) & (c->cap - 1);
    for (; c->table[i].used; i = (i + 1) & (c->cap - 1))
        if (!memcmp(&c->table[i].key, k, sizeof *k)) {
            *out = &c->table[i].plan;
            return VIT_OK;
        }
    if (c->count + 1 > c->cap * 3 / 4) {
        cache_flush(c);
        i = vit_hash_words(k, sizeof *k) & (c->cap - 1);
    }
    gemm_entry *e = &c->table[i];
    VIT_TRY(vit_cuda_gemm_plan_build(&e->plan, g, (int)k->batch, (ptrdiff_t)k->stride_a, (ptrdiff_t)k->stride_b,
                                     (ptrdiff_t)k->stride_c, s->precision));
    vit_status st = choose_algo(s, &e->plan, k);
    if (st != VIT_OK) {
        vit_cuda_gemm_plan_destroy(&e->plan);
        return st;
    }
    e->key = *k;
    e->used = true;
    c->count++;
    *out = &e->plan;
    return VIT_OK;
}

/* -------------------------------------------------------------- run */
/* The same product on cuBLAS's strided-batched gemm, for the shapes
 * cuBLASLt has no algorithm for; the bias is then a separate pass. */
static vit_status run_cublas(vit_cuda_state *s, const vit_gemm *g, int batch, ptrdiff_t sa, ptrdiff_t sb,
                             ptrdiff_t sc) {
    if (!s->blas) {
        VIT_TRY(vit_cublas_check(cublasCreate(&s->blas), "creating the cuBLAS handle"));
        VIT_TRY(vit_cublas_check(cublasSetStream(s->blas, s->stream), "setting cuBLAS's stream"));
        VIT_TRY(vit_cublas_check(cublasSetWorkspace(s->blas, s->workspace, VIT_CUDA_WORKSPACE),
                                 "setting cuBLAS's workspace"));
    }
    vit_cuda_gemm_layout l;
    vit_cuda_gemm_layout_of(g, &l);
    const cudaDataType_t in = s->precision == VIT_PRECISION_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    const cublasComputeType_t compute =
        s->precision == VIT_PRECISION_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const float alpha = 1.0f, beta = g->accumulate ? 1.0f : 0.0f;
    VIT_TRY(vit_cublas_check(cublasGemmStridedBatchedEx(s->blas, l.op_first, l.op_second, g->N, g->M, g->K, &alpha,
                                                        g->B, in, g->ldb, sb, g->A, in, g->lda, sa, &beta, g->C,
                                                        CUDA_R_32F, g->ldc, sc, batch, compute, CUBLAS_GEMM_DEFAULT),
                             "gemm"));
    if (!g->bias) return VIT_OK;
    return vit_cuda_check(vit_cuk_bias_rows(g->C, g->bias, batch, g->M, g->N, g->ldc, sc, s->stream), "gemm: bias");
}

/* An operand of rows x cols (row stride ld, item stride stride) rounded to
 * bfloat16 into dst, its rows padded to a multiple of 8 elements (16 bytes,
 * what the tensor cores' fast paths load): returns the new row stride. */
static vit_status operand_bf16(vit_cuda_state *s, void *dst, const float *src, int batch, int rows, int cols, int ld,
                               ptrdiff_t stride, int *ld_out) {
    *ld_out = (cols + 7) / 8 * 8;
    return vit_cuda_check(vit_cuk_to_bf16(dst, src, batch, rows, cols, ld, stride, *ld_out, s->stream),
                          "gemm: rounding an operand to bf16");
}

static vit_status run(vit_backend *be, const vit_gemm *g0, int batch, ptrdiff_t sa, ptrdiff_t sb, ptrdiff_t sc) {
    vit_cuda_state *s = vit_cuda_of(be);
    vit_gemm g = *g0;
    const bool bf16 = s->precision == VIT_PRECISION_BF16;
    const size_t esz = bf16 ? 2 : 4;
    if (bf16) {
        const int ra = g.trans_a ? g.K : g.M, ca = g.trans_a ? g.M : g.K;
        const int rb = g.trans_b ? g.N : g.K, cb = g.trans_b ? g.K : g.N;
        const int64_t na = (int64_t)batch * ra * ((ca + 7) / 8 * 8), nb = (int64_t)batch * rb * ((cb + 7) / 8 * 8);
        const size_t off_b = ((size_t)na * 2 + 255) / 256 * 256;
        void *buf;
        VIT_TRY(vit_cuda_scratch(s, off_b + (size_t)nb * 2, &buf));
        int lda, ldb;
        VIT_TRY(operand_bf16(s, buf, g.A, batch, ra, ca, g.lda, sa, &lda));
        VIT_TRY(operand_bf16(s, (char *)buf + off_b, g.B, batch, rb, cb, g.ldb, sb, &ldb));
        g.A = buf; /* now bf16: only the address matters below */
        g.B = (const float *)((char *)buf + off_b);
        g.lda = lda, g.ldb = ldb;
        sa = (ptrdiff_t)ra * lda, sb = (ptrdiff_t)rb * ldb;
    }
    gemm_key k;
    memset(&k, 0, sizeof k);
    k.M = g.M, k.N = g.N, k.K = g.K, k.lda = g.lda, k.ldb = g.ldb, k.ldc = g.ldc;
    k.batch = batch;
    if (batch > 1) k.stride_a = sa, k.stride_b = sb, k.stride_c = sc;
    k.flags = (g.trans_a ? KEY_TRANS_A : 0) | (g.trans_b ? KEY_TRANS_B : 0) | (g.accumulate ? KEY_ACCUMULATE : 0) |
              (g.bias ? KEY_BIAS : 0);
    k.align = align_log2(g.A, sa * (ptrdiff_t)esz, batch) | align_log2(g.B, sb * (ptrdiff_t)esz, batch) << 4 |
              align_log2(g.C, sc * 4, batch) << 8 | (g.bias ? align_log2(g.bias, 0, 1) : 0) << 12;
    vit_cuda_gemm_plan *p = NULL;
    VIT_TRY(plan_get(s, &k, &g, &p));
    if (!p->have_algo) {
        VIT_TRY(run_cublas(s, &g, batch, sa, sb, sc));
    } else {
        if (g.bias)
            VIT_TRY(vit_cublas_check(
                cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias),
                "setting the bias"));
        const float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;
        VIT_TRY(vit_cublas_check(cublasLtMatmul(s->lt, p->desc, &alpha, g.B, p->a, g.A, p->b, &beta, g.C, p->c, g.C,
                                                p->c, &p->algo, s->workspace, VIT_CUDA_WORKSPACE, s->stream),
                                 "matmul"));
    }
    if (g.epilogue == VIT_EPILOGUE_GELU) {
        const bool dense = g.ldc == g.N && (batch == 1 || sc == (ptrdiff_t)g.M * g.N);
        if (dense)
            return vit_cuda_check(vit_cuk_gelu_forward(g.C, g.C, (int64_t)batch * g.M * g.N, s->stream), "gemm: GELU");
        for (int b = 0; b < batch; b++)
            for (int m = 0; m < g.M; m++) {
                float *row = g.C + (ptrdiff_t)b * sc + (ptrdiff_t)m * g.ldc;
                VIT_TRY(vit_cuda_check(vit_cuk_gelu_forward(row, row, g.N, s->stream), "gemm: GELU"));
            }
    }
    return VIT_OK;
}

/* K == 0: C = bias (then GELU), or unchanged when accumulating. */
static vit_status empty_k(vit_backend *be, const vit_gemm *g, int batch, ptrdiff_t sc) {
    if (g->accumulate) return VIT_OK;
    if (g->bias || g->epilogue != VIT_EPILOGUE_NONE)
        return vit_fail(VIT_ERR_UNSUPPORTED, "CUDA gemm: K = 0 with a bias or an epilogue");
    vit_cuda_state *s = vit_cuda_of(be);
    for (int b = 0; b < batch; b++)
        VIT_TRY(vit_cuda_check(cudaMemset2DAsync(g->C + (ptrdiff_t)b * sc, (size_t)g->ldc * sizeof(float), 0,
                                                 (size_t)g->N * sizeof(float), (size_t)g->M, s->stream),
                               "gemm: zeroing C"));
    return VIT_OK;
}

vit_status vit_cuda_gemm_batched(vit_backend *be, const vit_gemm *g, int batch, ptrdiff_t stride_a,
                                 ptrdiff_t stride_b, ptrdiff_t stride_c) {
    VIT_TRY(vit_gemm_check("CUDA gemm_batched", g, batch, stride_a, stride_b, stride_c));
    if (batch == 0 || g->M == 0 || g->N == 0) return VIT_OK;
    if (g->K == 0) return empty_k(be, g, batch, stride_c);
    return run(be, g, batch, stride_a, stride_b, stride_c);
}

vit_status vit_cuda_gemm(vit_backend *be, const vit_gemm *g) {
    VIT_TRY(vit_gemm_check("CUDA gemm", g, 1, 0, 0, 0));
    if (g->M == 0 || g->N == 0) return VIT_OK;
    if (g->K == 0) return empty_k(be, g, 1, 0);
    return run(be, g, 1, 0, 0, 0);
}
