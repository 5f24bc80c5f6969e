/*
 * Token embedding, residuals, dropout, pooling and small sums: memory-bound
 * loops. Work is cut into fixed spans so threads get whole cache-friendly runs
 * and per-sample factors stay loop-invariant (no division per element).
 */
#include <omp.h>
#include <string.h>

#include "cpu/kernels.h"
#include "cpu/vmath.h"

enum { SPAN = 8192 };

static inline int64_t span_len(int64_t total, int64_t i0) {
    return total - i0 < SPAN ? total - i0 : SPAN;
}

/* ------------------------------------------------------- tokens */
VIT_VECTORIZED static void add_rows(float *restrict out, const float *restrict a, const float *restrict b, int D) {
    for (int d = 0; d < D; d++) out[d] = a[d] + b[d];
}

/* The source row of token t: the class token, a register or a patch. */
static inline const float *token_source(const float *patch, const float *cls, const float *reg, int b, int t, int N,
                                        int D, int P) {
    if (t >= P) return patch + ((size_t)b * N + t - P) * D;
    return cls && t == 0 ? cls : reg + (size_t)(t - (cls != NULL)) * D;
}

vit_status vit_embed_tokens_forward(vit_backend *be, float *tokens, const float *patch, const float *cls,
                                    const float *reg, const float *pos, int B, int N, int D, int R, int pos_prefix) {
    (void)be;
    const int P = (cls != NULL) + R, T = P + N;
#pragma omp parallel for schedule(static) if ((int64_t)B * T * D > 65536)
    for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
        const int b = (int)(bt / T), t = (int)(bt % T);
        const float *src = token_source(patch, cls, reg, b, t, N, D, P);
        if (pos_prefix || t >= P)
            add_rows(tokens + bt * D, src, pos + (size_t)(pos_prefix ? t : t - P) * D, D);
        else
            memcpy(tokens + bt * D, src, (size_t)D * sizeof(float));
    }
    return VIT_OK;
}

/* dpos, dcls and dreg sum over the batch: each token row is one task that adds
 * the samples in order, so the sum is the same on any number of threads. */
VIT_VECTORIZED static void embed_row_backward(float *dpatch, float *dprefix, float *dpos, const float *restrict dtok,
                                              int B, int N, int D, int P, int t) {
    const size_t bstride = (size_t)(P + N) * D;
    for (int b = 0; b < B; b++) {
        const float *restrict g = dtok + b * bstride + (size_t)t * D;
        if (dpos)
            for (int d = 0; d < D; d++) dpos[d] += g[d];
        if (t < P && dprefix)
            for (int d = 0; d < D; d++) dprefix[d] += g[d];
        if (t >= P && dpatch) {
            float *restrict dp = dpatch + ((size_t)b * N + t - P) * D;
            for (int d = 0; d < D; d++) dp[d] += g[d];
        }
    }
}

vit_status vit_embed_tokens_backward(vit_backend *be, float *dpatch, float *dcls, float *dreg, float *dpos,
                                     const float *dtokens, int B, int N, int D, int R, int has_cls, int pos_prefix) {
    (void)be;
    const int P = (has_cls != 0) + R;
#pragma omp parallel for schedule(static) if ((int64_t)B * (P + N) * D > 65536)
    for (int t = 0; t < P + N; t++) {
        float *dprefix = t >= P ? NULL : has_cls && t == 0 ? dcls : dreg ? dreg + (size_t)(t - (has_cls != 0)) * D : NULL;
        float *dp = !dpos ? NULL : pos_prefix ? dpos + (size_t)t * D : t >= P ? dpos + (size_t)(t - P) * D : NULL;
        embed_row_backward(dpatch, dprefix, dp, dtokens, B, N, D, P, t);
    }
    return VIT_OK;
}

/* ---------------------------------------------------- residuals */
VIT_VECTORIZED static void axpy_to(float *out, const float *x, const float *restrict y, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = x[i] + s * y[i];
}

/* y = x + s * y: the residual written over its branch's storage. */
VIT_VECTORIZED static void axpy_into(float *restrict y, const float *restrict x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] + s * y[i];
}

vit_status vit_residual_forward(vit_backend *be, float *out, const float *x, const float *y, const float *scale,
                                int B, int64_t per) {
    (void)be;
    const int64_t spans = (per + SPAN - 1) / SPAN;
#pragma omp parallel for schedule(static) if (B * per > 65536)
    for (int64_t k = 0; k < B * spans; k++) {
        const int b = (int)(k / spans);
        const int64_t i0 = (k % spans) * SPAN, off = b * per + i0;
        const float s = scale ? scale[b] : 1.0f;
        if (out == y)
            axpy_into(out + off, x + off, s, span_len(per, i0));
        else
            axpy_to(out + off, x + off, y + off, s, span_len(per, i0));
    }
    return VIT_OK;
}

VIT_VECTORIZED static void residual_span_backward(float *restrict dx, float *restrict dy, const float *restrict g,
                                                  float s, int64_t n) {
    if (dx)
        for (int64_t i = 0; i < n; i++) dx[i] += g[i];
    if (dy)
        for (int64_t i = 0; i < n; i++) dy[i] += s * g[i];
}

vit_status vit_residual_backward(vit_backend *be, float *dx, float *dy, const float *dout, const float *scale, int B,
                                 int64_t per) {
    (void)be;
    const int64_t spans = (per + SPAN - 1) / SPAN;
#pragma omp parallel for schedule(static) if (B * per > 65536)
    for (int64_t k = 0; k < B * spans; k++) {
        const int b = (int)(k / spans);
        const int64_t i0 = (k % spans) * SPAN, off = b * per + i0;
        residual_span_backward(dx ? dx + off : NULL, dy ? dy + off : NULL, dout + off, scale ? scale[b] : 1.0f,
                               span_len(per, i0));
    }
    return VIT_OK;
}

/* ------------------------------------------------------ dropout */
/* Not vectorised: the 64-bit multiplies of the hash per element have no
 * AVX2 form, so these loops stay scalar code. */
static void dropout_span(float *out, const float *inp, int64_t i0, int64_t n, float p, float keep, uint64_t key,
                         int accumulate) {
    for (int64_t i = 0; i < n; i++) {
        const float v = vit_rng_uniform(key, (uint64_t)(i0 + i)) >= p ? inp[i] * keep : 0.0f;
        out[i] = accumulate ? out[i] + v : v;
    }
}

static void dropout_run(float *out, const float *inp, int64_t n, float p, uint64_t key, int accumulate) {
    const float keep = vit_dropout_keep_scale(p);
    const int64_t spans = (n + SPAN - 1) / SPAN;
#pragma omp parallel for schedule(static) if (spans > 1)
    for (int64_t k = 0; k < spans; k++)
        dropout_span(out + k * SPAN, inp + k * SPAN, k * SPAN, span_len(n, k * SPAN), p, keep, key, accumulate);
}

vit_status vit_dropout_forward(vit_backend *be, float *out, const float *inp, int64_t n, float p, uint64_t key) {
    (void)be;
    if (p <= 0.0f) {
        if (out != inp) memcpy(out, inp, (size_t)n * sizeof(float));
        return VIT_OK;
    }
    dropout_run(out, inp, n, p, key, 0);
    return VIT_OK;
}

vit_status vit_dropout_backward(vit_backend *be, float *dinp, const float *dout, int64_t n, float p, uint64_t key) {
    (void)be;
    if (p <= 0.0f) {
        vit_add(be, dinp, dinp, dout, n);
        return VIT_OK;
    }
    dropout_run(dinp, dout, n, p, key, 1);
    return VIT_OK;
}

/* ------------------------------------------------------ pooling */
VIT_VECTORIZED static void pool_sample(float *restrict out, const float *restrict tok, int T, int D, int avg,
                                       int skip) {
    if (!avg || T <= skip) {
        /* nothing to average: fall back to the first token */
        for (int d = 0; d < D; d++) out[d] = tok[d];
        return;
    }
    for (int d = 0; d < D; d++) out[d] = tok[(size_t)skip * D + d];
    for (int t = skip + 1; t < T; t++)
        for (int d = 0; d < D; d++) out[d] += tok[(size_t)t * D + d];
    const float inv = 1.0f / (float)(T - skip);
    for (int d = 0; d < D; d++) out[d] *= inv;
}

vit_status vit_pool_forward(vit_backend *be, float *out, const float *tokens, int B, int T, int D, int avg,
                            int skip) {
    (void)be;
#pragma omp parallel for schedule(static) if ((int64_t)B * T * D > 65536)
    for (int b = 0; b < B; b++) pool_sample(out + (size_t)b * D, tokens + (size_t)b * T * D, T, D, avg, skip);
    return VIT_OK;
}

VIT_VECTORIZED static void pool_sample_backward(float *restrict dtok, const float *restrict g, int T, int D,
                                                int avg, int skip) {
    if (!avg || T <= skip) {
        for (int d = 0; d < D; d++) dtok[d] += g[d];
        return;
    }
    const float inv = 1.0f / (float)(T - skip);
    for (int t = skip; t < T; t++)
        for (int d = 0; d < D; d++) dtok[(size_t)t * D + d] += g[d] * inv;
}

vit_status vit_pool_backward(vit_backend *be, float *dtokens, const float *dout, int B, int T, int D, int avg,
                             int skip) {
    (void)be;
#pragma omp parallel for schedule(static) if ((int64_t)B * T * D > 65536)
    for (int b = 0; b < B; b++)
        pool_sample_backward(dtokens + (size_t)b * T * D, dout + (size_t)b * D, T, D, avg, skip);
    return VIT_OK;
}

/* --------------------------------------------------- layer scale */
VIT_VECTORIZED static void scale_row(float *out, const float *inp, const float *restrict gamma, int C) {
    for (int c = 0; c < C; c++) out[c] = inp[c] * gamma[c];
}

VIT_VECTORIZED static void scale_row_backward(float *restrict dinp, const float *restrict dout,
                                              const float *restrict gamma, int C) {
    for (int c = 0; c < C; c++) dinp[c] += dout[c] * gamma[c];
}

vit_status vit_scale_channels_forward(vit_backend *be, float *out, const float *inp, const float *gamma, int64_t rows,
                                      int C) {
    (void)be;
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; r++) scale_row(out + r * C, inp + r * C, gamma, C);
    return VIT_OK;
}

/* out[0..cols) += the sum over rows, in order, of g[r * C + 0..cols) (times
 * x[r * C + ..] where x is given), in double. cols is a constant multiple of
 * VIT_VEC at each call, at most four registers of floats, so the sums (eight
 * registers of doubles) stay in registers across the rows: sums in an array
 * went through memory at every row. */
VIT_VECTORIZED VIT_INLINE void column_sums(float *restrict out, const float *restrict g, const float *restrict x,
                                           int64_t rows, int C, const int cols) {
    vit_vecd acc[4 * VIT_VEC / VIT_VECD] = {0};
    for (int64_t r = 0; r < rows; r++)
        for (int v = 0; v < cols / VIT_VECD; v++) {
            const size_t at = (size_t)r * C + (size_t)v * VIT_VECD;
            const vit_vecd gd = vit_vecd_widen(vit_vech_load(g + at));
            acc[v] += x ? gd * vit_vecd_widen(vit_vech_load(x + at)) : gd;
        }
    for (int v = 0; v < cols / VIT_VECD; v++)
        for (int l = 0; l < VIT_VECD; l++) out[v * VIT_VECD + l] += (float)acc[v][l];
}

/* The sums of column_sums over a strip of n columns: register-wide blocks,
 * then the columns past the last whole register one by one. */
VIT_VECTORIZED VIT_INLINE void column_strip(float *restrict out, const float *restrict g, const float *restrict x,
                                            int64_t rows, int C, int n) {
    int c = 0;
    for (; c + 4 * VIT_VEC <= n; c += 4 * VIT_VEC) column_sums(out + c, g + c, x ? x + c : NULL, rows, C, 4 * VIT_VEC);
    if (c + 2 * VIT_VEC <= n) {
        column_sums(out + c, g + c, x ? x + c : NULL, rows, C, 2 * VIT_VEC);
        c += 2 * VIT_VEC;
    }
    if (c + VIT_VEC <= n) {
        column_sums(out + c, g + c, x ? x + c : NULL, rows, C, VIT_VEC);
        c += VIT_VEC;
    }
    for (; c < n; c++) {
        double acc = 0.0;
        for (int64_t r = 0; r < rows; r++) acc += x ? (double)g[r * C + c] * x[r * C + c] : g[r * C + c];
        out[c] += (float)acc;
    }
}

/* dgamma as bias_strip, the sums of g * x. */
VIT_VECTORIZED static void scale_strip(float *restrict dgamma, const float *restrict g, const float *restrict x,
                                       int64_t rows, int C, int n) {
    column_strip(dgamma, g, x, rows, C, n);
}

vit_status vit_scale_channels_backward(vit_backend *be, float *dinp, float *dgamma, const float *dout,
                                       const float *inp, const float *gamma, int64_t rows, int C) {
    (void)be;
    if (dinp) {
#pragma omp parallel for schedule(static) if (rows * C > 65536)
        for (int64_t r = 0; r < rows; r++) scale_row_backward(dinp + r * C, dout + r * C, gamma, C);
    }
    if (dgamma) {
        const int strips = vit_strip_count(C, omp_get_max_threads());
#pragma omp parallel for schedule(static) if (rows * C > 65536)
        for (int s = 0; s < strips; s++) {
            int c0, n;
            vit_strip(C, strips, s, &c0, &n);
            scale_strip(dgamma + c0, dout + c0, inp + c0, rows, C, n);
        }
    }
    return VIT_OK;
}

/* -------------------------------------------------------- sums */
VIT_VECTORIZED static void add_span(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

vit_status vit_add(vit_backend *be, float *out, const float *a, const float *b, int64_t n) {
    (void)be;
    const int64_t spans = (n + SPAN - 1) / SPAN;
#pragma omp parallel for schedule(static) if (spans > 8)
    for (int64_t k = 0; k < spans; k++) add_span(out + k * SPAN, a + k * SPAN, b + k * SPAN, span_len(n, k * SPAN));
    return VIT_OK;
}

/* Column strips (kernels.h), each walking every row in order: deterministic
 * on any thread count, no scratch. Sums are kept in double across the (many) rows. */
VIT_VECTORIZED static void bias_strip(float *restrict dbias, const float *restrict g, int64_t rows, int C, int n) {
    column_strip(dbias, g, NULL, rows, C, n);
}

vit_status vit_bias_backward(vit_backend *be, float *dbias, const float *dout, int64_t rows, int C) {
    (void)be;
    const int strips = vit_strip_count(C, omp_get_max_threads());
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int s = 0; s < strips; s++) {
        int c0, n;
        vit_strip(C, strips, s, &c0, &n);
        bias_strip(dbias + c0, dout + c0, rows, C, n);
    }
    return VIT_OK;
}
