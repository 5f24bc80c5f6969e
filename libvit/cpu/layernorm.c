/*
 * LayerNorm over the last dimension, as torch.nn.LayerNorm (biased variance).
 *
 * Row statistics are accumulated in double in eight fixed lanes: the lanes let
 * GCC vectorise without -ffast-math, the fixed order gives the same bits on
 * every target clone, and double keeps the variance accurate when |mean| >> std.
 */
#include <math.h>
#include <omp.h>
#include <stddef.h>

#include "cpu/kernels.h"
#include "cpu/vmath.h"

static inline double fold8(const double *s) {
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

VIT_VECTORIZED static void ln_row_forward(float *restrict y, float *mean, float *rstd, const float *restrict x,
                                          const float *restrict w, const float *restrict b, int C, float eps) {
    double s[8] = {0};
    int c = 0;
    for (; c + 8 <= C; c += 8)
        for (int l = 0; l < 8; l++) s[l] += x[c + l];
    double sum = fold8(s);
    for (; c < C; c++) sum += x[c];
    const double mu = sum / C;

    /* Two passes rather than E[x^2] - E[x]^2, which cancels catastrophically. */
    double q[8] = {0};
    c = 0;
    for (; c + 8 <= C; c += 8)
        for (int l = 0; l < 8; l++) {
            const double d = x[c + l] - mu;
            q[l] += d * d;
        }
    double var = fold8(q);
    for (; c < C; c++) var += (x[c] - mu) * (x[c] - mu);
    var /= C;

    const float r = (float)(1.0 / sqrt(var + (double)eps));
    /* The mean as a float pair: x - m_hi is exact when x is near the mean, so
     * an offset input (|mean| >> std) does not lose the rounding of the mean,
     * times rstd, in every output. */
    const float m_hi = (float)mu, m_lo = (float)(mu - m_hi);
    if (mean) *mean = m_hi;
    if (rstd) *rstd = r;
    /* weight / bias NULL mean an elementwise_affine=False LayerNorm; the
     * invariant tests are unswitched out of the loop by the compiler. */
    for (c = 0; c < C; c++) y[c] = ((x[c] - m_hi) - m_lo) * r * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
}

/* Rows are handed out about 32 K floats at a time (cpu/kernels.h). */
static int row_chunk(int64_t rows, int C) { return vit_dynamic_chunk(rows, C >= 32768 ? 1 : 32768 / C); }

vit_status vit_layernorm_forward(vit_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                 const float *weight, const float *bias, int64_t rows, int C, float eps) {
    (void)be;
#pragma omp parallel for schedule(dynamic, row_chunk(rows, C)) if (rows * C > 16384)
    for (int64_t r = 0; r < rows; r++)
        ln_row_forward(out + r * C, mean ? mean + r : NULL, rstd ? rstd + r : NULL, inp + r * C, weight, bias, C,
                       eps);
    return VIT_OK;
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * weight
 * (weight NULL = ones). */
VIT_VECTORIZED static void ln_row_backward(float *restrict dx, const float *restrict dy, const float *restrict x,
                                           const float *restrict w, float m, float r, int C) {
    double sg[8] = {0}, sgx[8] = {0};
    int c = 0;
    for (; c + 8 <= C; c += 8)
        for (int l = 0; l < 8; l++) {
            const float g = dy[c + l] * (w ? w[c + l] : 1.0f);
            sg[l] += g;
            sgx[l] += g * ((x[c + l] - m) * r);
        }
    double a = fold8(sg), bx = fold8(sgx);
    for (; c < C; c++) {
        const float g = dy[c] * (w ? w[c] : 1.0f);
        a += g;
        bx += g * ((x[c] - m) * r);
    }
    const float ma = (float)(a / C), mb = (float)(bx / C);
    for (c = 0; c < C; c++) dx[c] += r * (dy[c] * (w ? w[c] : 1.0f) - ma - (x[c] - m) * r * mb);
}

/* dw, db [0..cols) += the sums over every row, in order, of g * xhat and g,
 * in double; cols is a constant multiple of VIT_VEC at each call, at most two
 * registers of floats, so the sums (eight registers of doubles) stay in
 * registers across the rows. */
VIT_VECTORIZED VIT_INLINE void ln_param_cols(float *restrict dw, float *restrict db, const float *restrict dy,
                                             const float *restrict x, const float *restrict mean,
                                             const float *restrict rstd, int64_t rows, int C, const int cols) {
    vit_vecd aw[2 * VIT_VEC / VIT_VECD] = {0}, ab[2 * VIT_VEC / VIT_VECD] = {0};
    for (int64_t r = 0; r < rows; r++) {
        const float m = mean[r], s = rstd[r];
        for (int v = 0; v < cols / VIT_VECD; v++) {
            const size_t at = (size_t)r * C + (size_t)v * VIT_VECD;
            const vit_vech g = vit_vech_load(dy + at), xhat = (vit_vech_load(x + at) - m) * s;
            aw[v] += vit_vecd_widen(g * xhat);
            ab[v] += vit_vecd_widen(g);
        }
    }
    for (int v = 0; v < cols / VIT_VECD; v++)
        for (int l = 0; l < VIT_VECD; l++) {
            if (dw) dw[v * VIT_VECD + l] += (float)aw[v][l];
            if (db) db[v * VIT_VECD + l] += (float)ab[v][l];
        }
}

/* dweight and dbias sum over every row. Each thread owns strips of columns
 * (kernels.h) and walks all rows in order, so there is no scratch, no atomics,
 * and the result is the same bits whatever the thread count. */
VIT_VECTORIZED static void ln_param_strip(float *dw, float *db, const float *restrict dy, const float *restrict x,
                                          const float *restrict mean, const float *restrict rstd, int64_t rows,
                                          int C, int c0, int n) {
    int c = c0;
    for (; c + 2 * VIT_VEC <= c0 + n; c += 2 * VIT_VEC)
        ln_param_cols(dw ? dw + c : NULL, db ? db + c : NULL, dy + c, x + c, mean, rstd, rows, C, 2 * VIT_VEC);
    if (c + VIT_VEC <= c0 + n) {
        ln_param_cols(dw ? dw + c : NULL, db ? db + c : NULL, dy + c, x + c, mean, rstd, rows, C, VIT_VEC);
        c += VIT_VEC;
    }
    for (; c < c0 + n; c++) {
        double aw = 0.0, ab = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            const float g = dy[r * C + c];
            aw += g * ((x[r * C + c] - mean[r]) * rstd[r]);
            ab += g;
        }
        if (dw) dw[c] += (float)aw;
        if (db) db[c] += (float)ab;
    }
}

vit_status vit_layernorm_backward(vit_backend *be, float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, const float *mean, const float *rstd,
                                  int64_t rows, int C) {
    (void)be;
    if (dinp) {
#pragma omp parallel for schedule(dynamic, row_chunk(rows, C)) if (rows * C > 16384)
        for (int64_t r = 0; r < rows; r++)
            ln_row_backward(dinp + r * C, dout + r * C, inp + r * C, weight, mean[r], rstd[r], C);
    }
    if (dweight || dbias) {
        const int strips = vit_strip_count(C, omp_get_max_threads());
#pragma omp parallel for schedule(static) if (rows * C > 16384)
        for (int s = 0; s < strips; s++) {
            int c0, n;
            vit_strip(C, strips, s, &c0, &n);
            ln_param_strip(dweight, dbias, dout, inp, mean, rstd, rows, C, c0, n);
        }
    }
    return VIT_OK;
}
