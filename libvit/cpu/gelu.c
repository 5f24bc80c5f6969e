/*
 * Exact (erf) GELU and QuickGELU over spans; the per-element math (vit_gelu,
 * vit_quick_gelu and their gradients) is core/scalar.h's, shared with the
 * device kernels, and vectorises.
 */
#include <math.h>
#include <omp.h>

#include "core/scalar.h"
#include "cpu/kernels.h"

/* Elementwise work is cut into fixed spans so a thread gets enough to amortise
 * the fork and the erff calls, and tiny tensors stay on one thread. */
enum { GELU_SPAN = 4096 };

typedef enum { GELU_FORWARD, GELU_BACKWARD, QUICK_FORWARD, QUICK_BACKWARD } act_pass;

VIT_VECTORIZED static void gelu_span_forward(float *out, const float *inp, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = vit_gelu(inp[i]);
}

/* dout NULL: in place, dinp = dinp * f'(inp) (see backend.h) */
VIT_VECTORIZED static void gelu_span_backward(float *restrict dinp, const float *restrict inp,
                                              const float *restrict dout, int64_t n) {
    if (!dout)
        for (int64_t i = 0; i < n; i++) dinp[i] *= vit_gelu_grad(inp[i]);
    else
        for (int64_t i = 0; i < n; i++) dinp[i] += dout[i] * vit_gelu_grad(inp[i]);
}

/* gelu_span_backward, and out = GELU(inp) from the same loads: the output
 * again, for a reader that needs it after GELU's backward could run. One
 * loop, erf once per element: gelu_span_forward then gelu_span_backward on
 * the same row took the fused pass over tiny-c32-train's 4160 x 768 from
 * 3.3 to 6.5 ms (two threads, AVX-512 EPYC). */
VIT_VECTORIZED static void gelu_span_both(float *restrict out, float *restrict dinp, const float *restrict inp,
                                          const float *restrict dout, int64_t n) {
    if (!dout)
        for (int64_t i = 0; i < n; i++) out[i] = vit_gelu(inp[i]), dinp[i] *= vit_gelu_grad(inp[i]);
    else
        for (int64_t i = 0; i < n; i++) out[i] = vit_gelu(inp[i]), dinp[i] += dout[i] * vit_gelu_grad(inp[i]);
}

VIT_VECTORIZED static void quick_span_forward(float *out, const float *inp, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = vit_quick_gelu(inp[i]);
}

VIT_VECTORIZED static void quick_span_backward(float *restrict dinp, const float *restrict inp,
                                               const float *restrict dout, int64_t n) {
    if (!dout)
        for (int64_t i = 0; i < n; i++) dinp[i] *= vit_quick_gelu_grad(inp[i]);
    else
        for (int64_t i = 0; i < n; i++) dinp[i] += dout[i] * vit_quick_gelu_grad(inp[i]);
}

/* out = act(inp), or out (dinp) += dout * act'(inp), in place when they alias */
static vit_status run(act_pass pass, float *out, const float *inp, const float *dout, int64_t n) {
    if (dout == out) dout = NULL; /* the span loops' restrict pointers must not alias */
    const int64_t spans = (n + GELU_SPAN - 1) / GELU_SPAN;
#pragma omp parallel for schedule(dynamic, vit_dynamic_chunk(spans, 8)) if (spans > 1)
    for (int64_t s = 0; s < spans; s++) {
        const int64_t i0 = s * GELU_SPAN, len = n - i0 < GELU_SPAN ? n - i0 : GELU_SPAN;
        switch (pass) {
        case GELU_FORWARD: gelu_span_forward(out + i0, inp + i0, len); break;
        case GELU_BACKWARD: gelu_span_backward(out + i0, inp + i0, dout ? dout + i0 : NULL, len); break;
        case QUICK_FORWARD: quick_span_forward(out + i0, inp + i0, len); break;
        case QUICK_BACKWARD: quick_span_backward(out + i0, inp + i0, dout ? dout + i0 : NULL, len); break;
        }
    }
    return VIT_OK;
}

vit_status vit_gelu_forward(vit_backend *be, float *out, const float *inp, int64_t n) {
    (void)be;
    return run(GELU_FORWARD, out, inp, NULL, n);
}

vit_status vit_gelu_backward(vit_backend *be, float *dinp, const float *inp, const float *dout, int64_t n) {
    (void)be;
    return run(GELU_BACKWARD, dinp, inp, dout, n);
}

/* Columns a thread sums in one walk over the rows: their double sums (8 KiB)
 * stay in L1. */
enum { GELU_BIAS_COLS = 1024 };

/* Columns [c0, c0 + n) of dinp [rows, C] as gelu_span_backward, and
 * dbias [c0, c0 + n) += their sums, each column's over the rows in order in
 * double, as bias_backward adds them; with out, out = GELU(inp) over the
 * same columns. A row's columns are read and written in one stretch: column
 * strips a few cache lines wide, walked a row apart, made this pass slower
 * than GELU's backward and the bias sums apart. */
VIT_VECTORIZED static void gelu_bias_columns(float *restrict out, float *restrict dinp, float *restrict dbias,
                                             const float *restrict inp, const float *restrict dout, int64_t rows,
                                             int C, int c0, int n) {
    double acc[GELU_BIAS_COLS];
    for (int k0 = c0; k0 < c0 + n; k0 += GELU_BIAS_COLS) {
        const int m = c0 + n - k0 < GELU_BIAS_COLS ? c0 + n - k0 : GELU_BIAS_COLS;
        for (int l = 0; l < m; l++) acc[l] = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            const int64_t at = r * C + k0;
            float *d = dinp + at;
            if (out)
                gelu_span_both(out + at, d, inp + at, dout ? dout + at : NULL, m);
            else
                gelu_span_backward(d, inp + at, dout ? dout + at : NULL, m);
            for (int l = 0; l < m; l++) acc[l] += d[l];
        }
        for (int l = 0; l < m; l++) dbias[k0 + l] += (float)acc[l];
    }
}

/* Each thread takes one stretch of columns (kernels.h's strips, one per
 * thread), so every column's sum runs over the rows in the same order on any
 * thread count: dbias has bias_backward's bits for the dinp written. */
vit_status vit_gelu_bias_backward(vit_backend *be, float *out, float *dinp, float *dbias, const float *inp,
                                  const float *dout, int64_t rows, int C) {
    (void)be;
    if (dout == dinp) dout = NULL; /* in place (see run) */
    const int blocks = (C + 15) / 16, threads = rows * C > 65536 ? omp_get_max_threads() : 1;
    const int strips = threads < blocks ? threads : blocks;
#pragma omp parallel for schedule(static) if (strips > 1)
    for (int s = 0; s < strips; s++) {
        int c0, n;
        vit_strip(C, strips, s, &c0, &n);
        gelu_bias_columns(out, dinp, dbias, inp, dout, rows, C, c0, n);
    }
    return VIT_OK;
}

vit_status vit_quick_gelu_forward(vit_backend *be, float *out, const float *inp, int64_t n) {
    (void)be;
    return run(QUICK_FORWARD, out, inp, NULL, n);
}

vit_status vit_quick_gelu_backward(vit_backend *be, float *dinp, const float *inp, const float *dout, int64_t n) {
    (void)be;
    return run(QUICK_BACKWARD, dinp, inp, dout, n);
}
