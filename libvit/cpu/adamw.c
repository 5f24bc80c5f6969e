/*
 * AdamW over spans of the flat buffers (the rule, torch's order and float
 * arithmetic, is vit_adamw_element in core/scalar.h), and the sum of squares
 * behind gradient clipping.
 */
#include <math.h>

#include "cpu/kernels.h"

enum { SPAN = 8192, SQ_CHUNKS = 256 };

/* The constants are copied into a local: the buffers cannot alias it, so
 * they stay in registers and the loop vectorises. */
VIT_VECTORIZED static void adamw_span(float *restrict p, float *restrict m, float *restrict v,
                                      const float *restrict grad, int64_t n, const vit_adamw_consts *consts) {
    const vit_adamw_consts k = *consts;
    for (int64_t i = 0; i < n; i++) vit_adamw_element(&p[i], &m[i], &v[i], grad[i], &k);
}

vit_status vit_adamw_update(vit_backend *be, float *param, float *m, float *v, const float *grad, int64_t n,
                            const vit_adamw_consts *k) {
    (void)be;
    const int64_t spans = (n + SPAN - 1) / SPAN;
#pragma omp parallel for schedule(static) if (spans > 4)
    for (int64_t s = 0; s < spans; s++) {
        const int64_t i0 = s * SPAN, len = n - i0 < SPAN ? n - i0 : SPAN;
        adamw_span(param + i0, m + i0, v + i0, grad + i0, len, k);
    }
    return VIT_OK;
}

/* Eight double lanes in a fixed order: vectorisable without -ffast-math and
 * the same bits on every target clone. */
VIT_VECTORIZED static double sum_squares_span(const float *restrict x, int64_t n) {
    double s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) s[l] += (double)x[i + l] * x[i + l];
    double t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; i < n; i++) t += (double)x[i] * x[i];
    return t;
}

/* A fixed number of chunks, not one per thread: the total has the same bits
 * whatever the thread count (gradient clipping then never depends on it). */
vit_status vit_sum_squares(vit_backend *be, const float *x, int64_t n, double *result) {
    (void)be;
    double part[SQ_CHUNKS] = {0};
    const int chunks = n < SQ_CHUNKS ? (int)n : SQ_CHUNKS;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int k = 0; k < chunks; k++) {
        const int64_t i0 = n * k / chunks, i1 = n * (k + 1) / chunks;
        part[k] = sum_squares_span(x + i0, i1 - i0);
    }
    double total = 0.0;
    for (int k = 0; k < chunks; k++) total += part[k];
    *result = total;
    return VIT_OK;
}
