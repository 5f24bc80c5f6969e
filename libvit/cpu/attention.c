/*
 * Multi-head self-attention core: softmax(q k^T * scale) (dropout) @ v, one
 * (batch, head) block per task, parallel over B * H. Each block is done by one
 * thread in a fixed order, so results do not depend on the thread count.
 *
 * Long sequences without dropout (ViT-B/16's 197 tokens) take another road in
 * training, where the probabilities are kept for backward: each head's
 * products through the backend's gemm, which oneDNN runs at the
 * linear layers' rate (230-245 GFLOP/s on two AVX-512 cores, against 55-80
 * for the blocks below at 50-65 tokens), with the row-wise softmax (and its backward) in
 * between, one image at a time so its scores stay in cache.
 *
 * GCC will not vectorise a float dot product without -ffast-math (it may not
 * reorder the sum), so every product is written as row updates instead,
 * acc[:] += sum_s c_s x_s[:], over unit-stride rows: K and V are packed per
 * block into scratch (transposed where the product needs it).
 */
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cpu/kernels.h"
#include "cpu/vmath.h"

/* Offset of qkv[b, t, part, h, 0]; part 0 = q, 1 = k, 2 = v. */
static inline size_t qkv_at(int b, int t, int part, int h, int T, int H, int hd) {
    return ((((size_t)b * T + t) * 3 + part) * H + h) * (size_t)hd;
}

/* Asks for a block's T rows of hd floats (token stride ts) ahead of use.
 * The rows lie a token apart, further than a page holds a few of, so the
 * hardware's stride prefetch hardly follows them, and the first loop over
 * them would wait for each row's cache lines in turn. */
static inline void prefetch_rows(const float *x, size_t ts, int T, int hd, bool for_write) {
    for (int t = 0; t < T; t++)
        for (int d = 0; d < hd; d += 16) {
            if (for_write)
                __builtin_prefetch(x + t * ts + d, 1);
            else
                __builtin_prefetch(x + t * ts + d, 0);
        }
}

/* acc[0..w) += sum over s < n of c[s * cs] * x[s * xs + 0..w). Four rows per
 * pass: each load and store of acc then carries four multiply-adds, which is
 * what keeps these loops from being bound by acc's memory traffic. */
VIT_INLINE void rows_axpy(float *restrict acc, const float *restrict c, size_t cs, const float *restrict x,
                             size_t xs, int n, int w) {
    int s = 0;
    for (; s + 4 <= n; s += 4) {
        const float c0 = c[s * cs], c1 = c[(s + 1) * cs], c2 = c[(s + 2) * cs], c3 = c[(s + 3) * cs];
        const float *x0 = x + s * xs, *x1 = x0 + xs, *x2 = x1 + xs, *x3 = x2 + xs;
        for (int k = 0; k < w; k++) acc[k] += c0 * x0[k] + c1 * x1[k] + c2 * x2[k] + c3 * x3[k];
    }
    for (; s < n; s++) {
        const float c0 = c[s * cs], *x0 = x + s * xs;
        for (int k = 0; k < w; k++) acc[k] += c0 * x0[k];
    }
}

/* The register tile of the small per-head products: TILE_ROWS output rows by
 * TILE_COLS columns of accumulators stay in vector registers over the whole
 * sum, and every load of x serves all the rows, so the loop is bound by
 * multiply-adds rather than by loads and stores. AVX-512's 32 registers hold
 * an 8 x 16 tile (eight zmm) with room for the operands; AVX2's 16 hold
 * 4 x 16 (eight ymm), SSE's 16 a 2 x 16 (eight xmm). The T-long rows
 * (scores, their gradients, k^T, v^T) are padded with zero columns to a
 * multiple of TILE_COLS, so those products never take the narrow column
 * tail. */
enum { TILE_COLS = 16 };
#if VIT_CPU_ISA == 2
enum { TILE_ROWS = 8 };
#elif VIT_CPU_ISA == 1
enum { TILE_ROWS = 4 };
#else
enum { TILE_ROWS = 2 };
#endif
enum { TILE_VECS = TILE_COLS / VIT_VEC };

static inline int padded_cols(int T) { return (T + TILE_COLS - 1) / TILE_COLS * TILE_COLS; }

/* Tiles of fewer rows are this many registers wide where the columns allow
 * (see tile_product). */
enum { WIDE_VECS = 4 };

/* Columns k0 .. of the product below in whole tiles of rows x vecs
 * registers (both constants at each call); returns where the tiles end. */
VIT_INLINE int tile_columns(float *restrict c, size_t cr, const float *restrict a, size_t ar, size_t as,
                            const float *restrict x, size_t xs, int n, int w, int k0, const int rows, const int vecs,
                            const bool add) {
    for (; k0 + vecs * VIT_VEC <= w; k0 += vecs * VIT_VEC) {
        vit_vec acc[TILE_ROWS][WIDE_VECS];
        for (int r = 0; r < rows; r++)
            for (int v = 0; v < vecs; v++)
                acc[r][v] = add ? *(const vit_vec_u *)(c + r * cr + k0 + v * VIT_VEC) : (vit_vec){0};
        for (int s = 0; s < n; s++) {
            vit_vec xr[WIDE_VECS];
            for (int v = 0; v < vecs; v++) xr[v] = *(const vit_vec_u *)(x + s * xs + k0 + v * VIT_VEC);
            for (int r = 0; r < rows; r++) {
                const float coef = a[r * ar + s * as];
                for (int v = 0; v < vecs; v++) acc[r][v] += coef * xr[v];
            }
        }
        for (int r = 0; r < rows; r++)
            for (int v = 0; v < vecs; v++) *(vit_vec_u *)(c + r * cr + k0 + v * VIT_VEC) = acc[r][v];
    }
    return k0;
}

/* For r < rows (a constant at each call, at most TILE_ROWS):
 * c[r * cr + 0..w) = (add ? c[...] : 0) + sum over s < n of a[r * ar + s * as] * x[s * xs + 0..w).
 * Each accumulator is its own chain of dependent multiply-adds, and the unit
 * needs about TILE_ROWS * TILE_VECS of them to stay busy through the adds'
 * latency, so a tile of fewer rows is wider: up to WIDE_VECS registers, then
 * half that, then TILE_VECS for what is left. Every element is still the same
 * sum in the same order, whatever tile it falls in. */
VIT_INLINE void tile_product(float *restrict c, size_t cr, const float *restrict a, size_t ar, size_t as,
                             const float *restrict x, size_t xs, int n, int w, const int rows, const bool add) {
    const int fit = TILE_ROWS * TILE_VECS / rows, wide = fit < WIDE_VECS ? fit : WIDE_VECS;
    int k0 = tile_columns(c, cr, a, ar, as, x, xs, n, w, 0, rows, wide, add);
    if (wide / 2 > TILE_VECS) k0 = tile_columns(c, cr, a, ar, as, x, xs, n, w, k0, rows, wide / 2, add);
    if (wide > TILE_VECS) k0 = tile_columns(c, cr, a, ar, as, x, xs, n, w, k0, rows, TILE_VECS, add);
    if (k0 < w)
        for (int r = 0; r < rows; r++) {
            float *cr0 = c + r * cr + k0;
            if (!add)
                for (int k = 0; k < w - k0; k++) cr0[k] = 0.0f;
            rows_axpy(cr0, a + r * ar, as, x + k0, xs, n, w - k0);
        }
}

/* The same product for any number of rows: whole tiles, then (AVX-512) one
 * of four rows, one of two, then a single row, each as wide as tile_product
 * makes it. */
VIT_INLINE void block_product(float *restrict c, size_t cr, const float *restrict a, size_t ar, size_t as,
                              const float *restrict x, size_t xs, int n, int w, int rows, bool add) {
    int r = 0;
    for (; r + TILE_ROWS <= rows; r += TILE_ROWS)
        tile_product(c + r * cr, cr, a + r * ar, ar, as, x, xs, n, w, TILE_ROWS, add);
    if (TILE_ROWS > 4 && r + 4 <= rows) {
        tile_product(c + r * cr, cr, a + r * ar, ar, as, x, xs, n, w, 4, add);
        r += 4;
    }
    if (TILE_ROWS > 2 && r + 2 <= rows) {
        tile_product(c + r * cr, cr, a + r * ar, ar, as, x, xs, n, w, 2, add);
        r += 2;
    }
    if (r < rows) tile_product(c + r * cr, cr, a + r * ar, ar, as, x, xs, n, w, 1, add);
}

/* m[j] = the dropout factor of row element j (0 or 1 / (1 - p)). The mask is a
 * pure function of (key, element index), so backward regenerates it instead
 * of storing B * H * T * T bytes. */
static void mask_row(float *restrict m, int T, float drop_p, float keep, uint64_t key, uint64_t base) {
    for (int j = 0; j < T; j++) m[j] = vit_rng_uniform(key, base + (uint64_t)j) >= drop_p ? keep : 0.0f;
}

/* kt [hd, Tp], qs [T, hd], score and dropped-score rows [TILE_ROWS, Tp] each
 * (Tp = padded_cols(T)). */
static size_t forward_scratch(int T, int hd) {
    const size_t Tp = (size_t)padded_cols(T);
    return (size_t)hd * Tp + (size_t)T * hd + 2 * (size_t)TILE_ROWS * Tp;
}

/* From this many tokens the products go through gemm (see the top): below,
 * one head's products are too small for oneDNN to beat the blocks here. */
enum { GEMM_MIN_T = 128 };

static bool by_gemm(int T, float drop_p) { return T >= GEMM_MIN_T && drop_p == 0.0f; }
/* Whether forward keeps the probabilities for backward. Below GEMM_MIN_T
 * backward recomputes them a block at a time instead: one more T x T x hd
 * product per block (a sixth of attention's work) buys back B * H * T * T
 * floats per layer, which at Fashion-MNIST's 50 tokens and 3 heads is 1.6
 * times a [B, T, D] activation in every block. */
static bool keeps_probs(int T) { return T >= GEMM_MIN_T; }
/* ds, dropped probabilities and recomputed probabilities [T, Tp] each, vt and
 * kt [hd, Tp], qs [T, hd], one mask row [Tp]. */
static size_t backward_scratch(int T, int hd) {
    const size_t Tp = (size_t)padded_cols(T);
    return 3 * (size_t)T * Tp + 2 * (size_t)hd * Tp + (size_t)T * hd + Tp;
}

/* saved: the probabilities [B, H, T, T] before dropout (none below
 * GEMM_MIN_T); scratch: one block's working set per thread of the team the
 * call will fork. */
void vit_attention_sizes(vit_backend *be, int B, int T, int H, int hd, size_t *saved_bytes, size_t *scratch_bytes) {
    (void)be;
    const int threads = omp_get_max_threads();
    const size_t f = forward_scratch(T, hd), b = backward_scratch(T, hd);
    *saved_bytes = keeps_probs(T) ? (size_t)B * H * T * T * sizeof(float) : 0;
    size_t per_call = (size_t)(threads > 1 ? threads : 1) * (f > b ? f : b);
    const size_t scores = (size_t)H * T * T; /* by gemm: one image's scores, or their gradients */
    if (T >= GEMM_MIN_T && scores > per_call) per_call = scores;
    *scratch_bytes = per_call * sizeof(float);
}

/* row [T] = softmax(row * scale). The rows' loops below call a function of
 * the level for each row rather than carry the level themselves: clang
 * outlines an OpenMP loop's body into a function without the caller's
 * target, and the level's intrinsics inlined there do not compile. */
VIT_VECTORIZED static void softmax_row_scaled(float *row, int T, float scale) {
    for (int j = 0; j < T; j++) row[j] *= scale;
    vit_softmax_row(row, row, T);
}

/* rows [n, T] = softmax(rows * scale), row by row. */
static void softmax_rows_scaled(float *rows, int64_t n, int T, float scale) {
#pragma omp parallel for schedule(dynamic, vit_dynamic_chunk(n, 32))
    for (int64_t r = 0; r < n; r++) softmax_row_scaled(rows + r * T, T, scale);
}

/* Forward of one image b by products: S_h = q_h k_h^T into scores [H, T, T]
 * (probs when kept, else scratch), softmax(scale S_h), out_h = S_h v_h. */
static vit_status forward_image_by_gemm(vit_backend *be, float *out, float *scores, const float *qkv, int b, int T,
                                        int H, int hd, float scale) {
    const int ts = 3 * H * hd, os = H * hd; /* token strides of qkv and out */
    const float *x = qkv + (size_t)b * T * ts;
    for (int h = 0; h < H; h++) {
        vit_gemm g = {.M = T, .N = T, .K = hd, .A = x + h * hd, .lda = ts, .B = x + (H + h) * hd, .ldb = ts,
                      .trans_b = true, .C = scores + (size_t)h * T * T, .ldc = T};
        VIT_TRY(be->ops->gemm(be, &g));
    }
    softmax_rows_scaled(scores, (int64_t)H * T, T, scale);
    for (int h = 0; h < H; h++) {
        vit_gemm g = {.M = T, .N = hd, .K = T, .A = scores + (size_t)h * T * T, .lda = T, .B = x + (2 * H + h) * hd,
                      .ldb = ts, .C = out + (size_t)b * T * os + h * hd, .ldc = os};
        VIT_TRY(be->ops->gemm(be, &g));
    }
    return VIT_OK;
}

/* d [T] = scale * p * (d - sum(d * p)): softmax's backward of one row. */
VIT_VECTORIZED static void softmax_backward_row(float *d, const float *p, int T, float scale) {
    const float dd = vit_dot(d, p, T);
    for (int j = 0; j < T; j++) d[j] = p[j] * (d[j] - dd) * scale;
}

/* ds [n, T] = scale * p * (ds - rowsum(ds * p)), row by row. */
static void softmax_backward_rows(float *ds, const float *p, int64_t n, int T, float scale) {
#pragma omp parallel for schedule(dynamic, vit_dynamic_chunk(n, 32))
    for (int64_t r = 0; r < n; r++) softmax_backward_row(ds + r * T, p + r * T, T, scale);
}

/* Backward of one image b by products (see block_backward for the algebra,
 * without dropout): dA_h = dO_h v_h^T into ds [H, T, T], dS in place, then
 * dq_h += dS_h k_h, dk_h += dS_h^T q_h, dv_h += P_h^T dO_h (= for a fresh dqkv). */
static vit_status backward_image_by_gemm(vit_backend *be, float *dqkv, bool accumulate, const float *dout,
                                         const float *qkv, const float *probs, float *ds, int b, int T, int H, int hd,
                                         float scale) {
    const int ts = 3 * H * hd, os = H * hd;
    const size_t tt = (size_t)T * T;
    const float *x = qkv + (size_t)b * T * ts, *go = dout + (size_t)b * T * os, *p = probs + (size_t)b * H * tt;
    float *dx = dqkv + (size_t)b * T * ts;
    for (int h = 0; h < H; h++) {
        vit_gemm g = {.M = T, .N = T, .K = hd, .A = go + h * hd, .lda = os, .B = x + (2 * H + h) * hd, .ldb = ts,
                      .trans_b = true, .C = ds + h * tt, .ldc = T};
        VIT_TRY(be->ops->gemm(be, &g));
    }
    softmax_backward_rows(ds, p, (int64_t)H * T, T, scale);
    for (int h = 0; h < H; h++) {
        const float *dsh = ds + h * tt;
        vit_gemm dq = {.M = T, .N = hd, .K = T, .A = dsh, .lda = T, .B = x + (H + h) * hd, .ldb = ts,
                       .C = dx + h * hd, .ldc = ts, .accumulate = accumulate};
        vit_gemm dk = {.M = T, .N = hd, .K = T, .A = dsh, .lda = T, .trans_a = true, .B = x + h * hd, .ldb = ts,
                       .C = dx + (H + h) * hd, .ldc = ts, .accumulate = accumulate};
        vit_gemm dv = {.M = T, .N = hd, .K = T, .A = p + h * tt, .lda = T, .trans_a = true, .B = go + h * hd,
                       .ldb = os, .C = dx + (2 * H + h) * hd, .ldc = ts, .accumulate = accumulate};
        VIT_TRY(be->ops->gemm(be, &dq));
        VIT_TRY(be->ops->gemm(be, &dk));
        VIT_TRY(be->ops->gemm(be, &dv));
    }
    return VIT_OK;
}

/* One scratch area per thread: the caller's (from its arena) when given,
 * else one allocation for this call. */
static float *take_scratch(float *given, int *threads, int blocks, size_t per, bool *owned) {
    int nt = omp_get_max_threads();
    if (nt > blocks) nt = blocks;
    if (nt < 1) nt = 1;
    *threads = nt;
    *owned = !given;
    return given ? given : malloc((size_t)nt * per * sizeof(float));
}

#if VIT_CPU_ISA > 0
/* xt [8 rows apart by xts] = the 8 x 8 block x [8 rows apart by xs]
 * transposed, in registers: eight loads of eight floats, three rounds of
 * shuffles, eight stores of eight. */
VIT_VECTORIZED VIT_INLINE void transpose_8x8(float *restrict xt, size_t xts, const float *restrict x, size_t xs) {
    __m256 r[8], t[8], s[8];
    for (int l = 0; l < 8; l++) r[l] = _mm256_loadu_ps(x + l * xs);
    for (int l = 0; l < 8; l += 2) { /* t[l] = r[l], r[l+1] interleaved: a00 a10 a01 a11 | a04 a14 a05 a15 */
        t[l] = _mm256_unpacklo_ps(r[l], r[l + 1]);
        t[l + 1] = _mm256_unpackhi_ps(r[l], r[l + 1]);
    }
    for (int l = 0; l < 8; l += 4) { /* s[l + m] = column m (and m + 4) of rows l .. l + 3 */
        s[l] = _mm256_shuffle_ps(t[l], t[l + 2], 0x44);
        s[l + 1] = _mm256_shuffle_ps(t[l], t[l + 2], 0xee);
        s[l + 2] = _mm256_shuffle_ps(t[l + 1], t[l + 3], 0x44);
        s[l + 3] = _mm256_shuffle_ps(t[l + 1], t[l + 3], 0xee);
    }
    for (int m = 0; m < 4; m++) {
        _mm256_storeu_ps(xt + m * xts, _mm256_permute2f128_ps(s[m], s[m + 4], 0x20));
        _mm256_storeu_ps(xt + (m + 4) * xts, _mm256_permute2f128_ps(s[m], s[m + 4], 0x31));
    }
}
#endif

/* xt [hd, Tp] = x^T from one block's rows x (token stride ts), columns T..Tp
 * zero. Whole 8 x 8 blocks go through registers. The loops below (the
 * baseline's, and the tails') take eight tokens at a time, a store of eight
 * floats along xt's row per eight loads: element-wise stores a row of xt
 * apart were a third of the forward kernel's time, and GCC's loop
 * interchange would turn any plain loop order back into them. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_LOOP_INTERCHANGE __attribute__((noinline, optimize("no-loop-interchange")))
#else
#define NO_LOOP_INTERCHANGE __attribute__((noinline))
#endif
NO_LOOP_INTERCHANGE VIT_VECTORIZED static void
transpose_rows(float *restrict xt, const float *restrict x, size_t ts, int T, int Tp, int hd) {
    int j = 0;
#if VIT_CPU_ISA > 0
    const int hd8 = hd / 8 * 8;
    for (; j + 8 <= T; j += 8) {
        for (int d = 0; d < hd8; d += 8) transpose_8x8(xt + (size_t)d * Tp + j, (size_t)Tp, x + j * ts + d, ts);
        for (int d = hd8; d < hd; d++)
            for (int l = 0; l < 8; l++) xt[(size_t)d * Tp + j + l] = x[(j + l) * ts + d];
    }
#endif
    for (; j + 8 <= T; j += 8)
        for (int d = 0; d < hd; d++)
            for (int l = 0; l < 8; l++) xt[(size_t)d * Tp + j + l] = x[(j + l) * ts + d];
    for (; j < T; j++)
        for (int d = 0; d < hd; d++) xt[(size_t)d * Tp + j] = x[j * ts + d];
    for (int d = 0; d < hd; d++)
        for (j = T; j < Tp; j++) xt[(size_t)d * Tp + j] = 0.0f;
}

/* kt [hd, Tp] = k^T and qs [T, hd] = q * scale (timm scales q before the
 * product) from one block's rows of qkv (token stride ts). */
VIT_INLINE void pack_qk(float *restrict kt, float *restrict qs, const float *restrict q, const float *restrict k,
                        size_t ts, int T, int Tp, int hd, float scale) {
    transpose_rows(kt, k, ts, T, Tp, hd);
    for (int j = 0; j < T; j++)
        for (int d = 0; d < hd; d++) qs[(size_t)j * hd + d] = q[j * ts + d] * scale;
}

/* p [rows, Tp] = softmax(qs kt) for query rows i0 .. i0 + rows (columns T..Tp
 * zero): the one code for forward and for backward's recompute, so both get
 * the same bits. */
VIT_VECTORIZED VIT_INLINE void prob_rows(float *restrict p, const float *restrict qs, const float *restrict kt,
                                         int i0, int rows, int T, int Tp, int hd) {
    block_product(p, Tp, qs + (size_t)i0 * hd, hd, 1, kt, Tp, hd, Tp, rows, false);
    for (int r = 0; r < rows; r++) vit_softmax_row(p + (size_t)r * Tp, p + (size_t)r * Tp, T);
}

/* Query rows are done TILE_ROWS at a time: scores, softmax, dropout, then
 * the output rows straight into out. */
VIT_VECTORIZED static void block_forward(float *restrict out, float *restrict probs, const float *restrict qkv,
                                         int b, int h, int T, int H, int hd, float scale, float drop_p,
                                         uint64_t key, float *restrict scratch) {
    const size_t ts = (size_t)3 * H * hd, os = (size_t)H * hd; /* token strides of qkv and out */
    const int Tp = padded_cols(T);
    const float *q = qkv + qkv_at(b, 0, 0, h, T, H, hd);
    const float *k = qkv + qkv_at(b, 0, 1, h, T, H, hd);
    const float *v = qkv + qkv_at(b, 0, 2, h, T, H, hd);
    float *kt = scratch, *qs = kt + (size_t)hd * Tp, *srows = qs + (size_t)T * hd,
          *arows = srows + (size_t)TILE_ROWS * Tp;
    for (int part = 0; part < 3; part++) prefetch_rows(q + part * H * hd, ts, T, hd, false);
    pack_qk(kt, qs, q, k, ts, T, Tp, hd, scale);
    const float keep = vit_dropout_keep_scale(drop_p);
    for (int i0 = 0; i0 < T; i0 += TILE_ROWS) {
        const int rows = T - i0 < TILE_ROWS ? T - i0 : TILE_ROWS;
        prob_rows(srows, qs, kt, i0, rows, T, Tp, hd);
        const float *ar = srows;
        for (int r = 0; r < rows; r++) {
            float *sri = srows + (size_t)r * Tp;
            /* probs keeps the pre-dropout softmax for backward when it is kept at all. */
            if (probs)
                for (int j = 0; j < T; j++) probs[(size_t)(i0 + r) * T + j] = sri[j];
            if (drop_p > 0.0f) {
                float *ari = arows + (size_t)r * Tp;
                mask_row(ari, T, drop_p, keep, key, (((uint64_t)b * H + h) * T + i0 + r) * T);
                for (int j = 0; j < T; j++) ari[j] *= sri[j];
                ar = arows;
            }
        }
        block_product(out + ((size_t)b * T + i0) * os + (size_t)h * hd, os, ar, Tp, 1, v, ts, T, hd, rows, false);
    }
}

vit_status vit_attention_forward(vit_backend *be, float *out, void *saved, const float *qkv, int B, int T, int H,
                                 int hd, float scale, float drop_p, uint64_t drop_key, void *given_scratch) {
    float *probs = keeps_probs(T) ? saved : NULL;
    VIT_CHECK_ARG(out && qkv && B > 0 && T > 0 && H > 0 && hd > 0, "attention: bad arguments");
    /* Without probabilities to keep (inference) the register tiles beat the
     * products at AVX2 and AVX-512 (ViT-B/16's layer at batch 1 on the
     * AVX-512 EPYC: 0.78 against 1.06 ms, bench_attention's inference
     * forward): a block's scores never leave L1. The baseline's 2 x 16 tiles
     * do not. */
    if (by_gemm(T, drop_p) && (probs || VIT_CPU_ISA == 0)) {
        VIT_CHECK_ARG(probs || given_scratch, "attention: no scratch for the scores");
        for (int b = 0; b < B; b++)
            VIT_TRY(forward_image_by_gemm(be, out, probs ? probs + (size_t)b * H * T * T : given_scratch, qkv, b, T,
                                          H, hd, scale));
        return VIT_OK;
    }
    const int blocks = B * H;
    const size_t per = forward_scratch(T, hd);
    int nt;
    bool owned;
    float *scratch = take_scratch(given_scratch, &nt, blocks, per, &owned);
    if (!scratch) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "attention: %d x %zu floats of scratch", nt, per);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int bh = 0; bh < blocks; bh++)
        block_forward(out, probs ? probs + (size_t)bh * T * T : NULL, qkv, bh / H, bh % H, T, H, hd, scale, drop_p,
                      drop_key, scratch + (size_t)omp_get_thread_num() * per);
    if (owned) free(scratch);
    return VIT_OK;
}

/*
 * With A = dropout(P) and out = A V:
 *   dA = dO V^T,  dP = dropout(dA) (same mask and scale),
 *   dS = P * (dP - rowsum(dP * P)),
 *   dQ = scale dS K,  dK = scale dS^T Q,  dV = A^T dO.
 * dS (and A) are kept whole for the block so dK and dV are each summed in one
 * accumulator and added to dqkv once (or written, for a fresh dqkv: a pass
 * that reads nothing of it, a quarter of the backward's time at 50 tokens).
 * Everything of a block lands in its own slice of dqkv, so blocks never
 * write the same memory.
 */
VIT_VECTORIZED static void block_backward(float *restrict dqkv, bool accumulate, const float *restrict dout,
                                          const float *restrict qkv, const float *restrict probs, int b, int h,
                                          int T, int H, int hd, float scale, float drop_p, uint64_t key,
                                          float *restrict scratch) {
    const size_t ts = (size_t)3 * H * hd, os = (size_t)H * hd; /* token strides of qkv and dout */
    const int Tp = padded_cols(T);
    const size_t q0 = qkv_at(b, 0, 0, h, T, H, hd), k0 = qkv_at(b, 0, 1, h, T, H, hd),
                 v0 = qkv_at(b, 0, 2, h, T, H, hd);
    const float *go = dout + ((size_t)b * T * H + h) * hd;
    float *ds = scratch, *am = ds + (size_t)T * Tp, *pr = am + (size_t)T * Tp, *vt = pr + (size_t)T * Tp,
          *kt = vt + (size_t)hd * Tp, *qs = kt + (size_t)hd * Tp, *mrow = qs + (size_t)T * hd;
    size_t ps = (size_t)T; /* row stride of probs */
    for (int part = 0; part < 3; part++) {
        prefetch_rows(qkv + q0 + part * H * hd, ts, T, hd, false);
        prefetch_rows(dqkv + q0 + part * H * hd, ts, T, hd, true);
    }
    prefetch_rows(go, os, T, hd, false);
    if (!probs) { /* not kept: recompute them as forward did */
        pack_qk(kt, qs, qkv + q0, qkv + k0, ts, T, Tp, hd, scale);
        for (int i0 = 0; i0 < T; i0 += TILE_ROWS)
            prob_rows(pr + (size_t)i0 * Tp, qs, kt, i0, T - i0 < TILE_ROWS ? T - i0 : TILE_ROWS, T, Tp, hd);
        probs = pr, ps = (size_t)Tp;
    }
    const int drop = drop_p > 0.0f;
    const float *a = drop ? am : probs;
    const size_t as = drop ? (size_t)Tp : ps; /* row stride of a */
    transpose_rows(vt, qkv + v0, ts, T, Tp, hd);
    const float keep = vit_dropout_keep_scale(drop_p);

    for (int i0 = 0; i0 < T; i0 += TILE_ROWS) {
        const int rows = T - i0 < TILE_ROWS ? T - i0 : TILE_ROWS;
        block_product(ds + (size_t)i0 * Tp, Tp, go + i0 * os, os, 1, vt, Tp, hd, Tp, rows, false); /* dA rows */
        for (int i = i0; i < i0 + rows; i++) {
            const float *p = probs + (size_t)i * ps;
            float *dsi = ds + (size_t)i * Tp;
            if (drop) {
                mask_row(mrow, T, drop_p, keep, key, (((uint64_t)b * H + h) * T + i) * T);
                for (int j = 0; j < T; j++) {
                    am[(size_t)i * Tp + j] = p[j] * mrow[j];
                    dsi[j] *= mrow[j];
                }
            }
            const float dd = vit_dot(dsi, p, T);
            for (int j = 0; j < T; j++) dsi[j] = p[j] * (dsi[j] - dd) * scale; /* scale * dS */
        }
        block_product(dqkv + q0 + i0 * ts, ts, ds + (size_t)i0 * Tp, Tp, 1, qkv + k0, ts, T, hd, rows, accumulate);
    }
    /* Columns j of dS and A are the coefficients of dK and dV rows j. */
    for (int j0 = 0; j0 < T; j0 += TILE_ROWS) {
        const int rows = T - j0 < TILE_ROWS ? T - j0 : TILE_ROWS;
        block_product(dqkv + k0 + j0 * ts, ts, ds + j0, 1, Tp, qkv + q0, ts, T, hd, rows, accumulate);
        block_product(dqkv + v0 + j0 * ts, ts, a + j0, 1, as, go, os, T, hd, rows, accumulate);
    }
}

vit_status vit_attention_backward(vit_backend *be, float *dqkv, bool accumulate, const float *dout, const float *qkv,
                                  const float *out, const void *saved, int B, int T, int H, int hd, float scale,
                                  float drop_p, uint64_t drop_key, void *given_scratch) {
    (void)out; /* the probabilities are kept whole: no need to rebuild them from out */
    const float *probs = keeps_probs(T) ? saved : NULL;
    VIT_CHECK_ARG(dqkv && dout && qkv && B > 0 && T > 0 && H > 0 && hd > 0, "attention backward: bad arguments");
    VIT_CHECK_ARG(probs || !keeps_probs(T), "attention backward: probs were not kept by the forward pass");
    if (by_gemm(T, drop_p)) {
        VIT_CHECK_ARG(given_scratch, "attention backward: no scratch for the score gradients");
        for (int b = 0; b < B; b++)
            VIT_TRY(backward_image_by_gemm(be, dqkv, accumulate, dout, qkv, probs, given_scratch, b, T, H, hd,
                                           scale));
        return VIT_OK;
    }
    const int blocks = B * H;
    const size_t per = backward_scratch(T, hd);
    int nt;
    bool owned;
    float *scratch = take_scratch(given_scratch, &nt, blocks, per, &owned);
    if (!scratch) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "attention backward: %d x %zu floats of scratch", nt, per);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int bh = 0; bh < blocks; bh++)
        block_backward(dqkv, accumulate, dout, qkv, probs ? probs + (size_t)bh * T * T : NULL, bh / H, bh % H, T, H,
                       hd, scale, drop_p, drop_key, scratch + (size_t)omp_get_thread_num() * per);
    if (owned) free(scratch);
    return VIT_OK;
}
