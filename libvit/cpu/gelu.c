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

/* The widest rows whose double sums (8 KiB) stay in L1 through one walk. */
enum { GELU_BIAS_COLS = 1024 };

/* Rows [r0, r1) of dinp [rows, C] as gelu_span_backward, one row at a time;
 * with out, out = GELU(inp) from the same loads. Never inlined: both ways of
 * vit_gelu_bias_backward run this code on every row, so dinp gets the same
 * bits either way, also where C leaves a register part-filled. */
__attribute__((noinline)) VIT_VECTORIZED static void gelu_rows(float *restrict out, float *restrict dinp,
                                                               const float *restrict inp, const float *restrict dout,
                                                               int64_t r0, int64_t r1, int C) {
    for (int64_t r = r0; r < r1; r++) {
        const int64_t at = r * C;
        if (out)
            gelu_span_both(out + at, dinp + at, inp + at, dout ? dout + at : NULL, C);
        else
            gelu_span_backward(dinp + at, inp + at, dout ? dout + at : NULL, C);
    }
}

/* gelu_rows over every row, and dbias [C] += dinp's column sums as each row
 * is written, each column's over the rows in order in double, as
 * bias_backward adds them. C <= GELU_BIAS_COLS. */
VIT_VECTORIZED static void gelu_bias_rows(float *restrict out, float *restrict dinp, float *restrict dbias,
                                          const float *restrict inp, const float *restrict dout, int64_t rows,
                                          int C) {
    double acc[GELU_BIAS_COLS];
    for (int l = 0; l < C; l++) acc[l] = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        gelu_rows(out, dinp, inp, dout, r, r + 1, C);
        const float *d = dinp + r * C;
        for (int l = 0; l < C; l++) acc[l] += d[l];
    }
    for (int l = 0; l < C; l++) dbias[l] += (float)acc[l];
}

/* One walk over whole rows, the sums taken as dinp is written, where one
 * thread has the rows and they are at most GELU_BIAS_COLS wide. Otherwise
 * GELU's pass over the rows, then bias_backward's over the gradient it
 * leaves in cache: a walk over part of each row, a row apart, loses the
 * prefetchers. The threads' column strips this pass took before were 1.8 to
 * 2.4 times as slow on two threads at the Fashion-MNIST recipe's 6400 x 512,
 * 1.7 to 2.0 times at tiny-c32-train's 4160 x 768, and 1.2 to 1.3 times at
 * 788 x 3072 on one thread (AVX-512 EPYC). Both ways each column is summed
 * over the rows in order, in double, as bias_backward sums it: the same
 * bits on any thread count. */
vit_status vit_gelu_bias_backward(vit_backend *be, float *out, float *dinp, float *dbias, const float *inp,
                                  const float *dout, int64_t rows, int C) {
    if (dout == dinp) dout = NULL; /* in place (see run) */
    if (C <= GELU_BIAS_COLS && (rows * C <= 65536 || omp_get_max_threads() == 1)) {
        gelu_bias_rows(out, dinp, dbias, inp, dout, rows, C);
        return VIT_OK;
    }
    const int64_t per = C >= GELU_SPAN ? 1 : GELU_SPAN / C, pieces = (rows + per - 1) / per;
#pragma omp parallel for schedule(dynamic, vit_dynamic_chunk(pieces, 8)) if (pieces > 1)
    for (int64_t p = 0; p < pieces; p++)
        gelu_rows(out, dinp, inp, dout, p * per, (p + 1) * per < rows ? (p + 1) * per : rows, C);
    return vit_bias_backward(be, dbias, dinp, rows, C);
}

vit_status vit_quick_gelu_forward(vit_backend *be, float *out, const float *inp, int64_t n) {
    (void)be;
    return run(QUICK_FORWARD, out, inp, NULL, n);
}

vit_status vit_quick_gelu_backward(vit_backend *be, float *dinp, const float *inp, const float *dout, int64_t n) {
    (void)be;
    return run(QUICK_BACKWARD, dinp, inp, dout, n);
}
