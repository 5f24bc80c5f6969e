/*
 * AdamW, in the order and float arithmetic of torch.optim.AdamW's
 * single-tensor path (torch 1.13):
 *   param.mul_(1 - lr * wd)
 *   exp_avg.mul_(b1).add_(g, alpha=1 - b1)
 *   exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
 *   denom = (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-lr / bc1)
 * The scalars are formed in double and rounded once to float, as torch does
 * with Python floats applied to a float tensor.
 */
#include <math.h>

#include "cpu/kernels.h"

enum { SPAN = 8192, SQ_CHUNKS = 256 };

VIT_VECTORIZED static void adamw_span(float *restrict p, float *restrict m, float *restrict v,
                                      const float *restrict grad, int64_t n, float decay, float b1, float one_b1,
                                      float b2, float one_b2, float sqrt_bc2, float eps, float neg_step,
                                      float gscale) {
    for (int64_t i = 0; i < n; i++) {
        const float g = grad[i] * gscale;
        const float pi = p[i] * decay;
        const float mi = m[i] * b1 + g * one_b1;
        const float vi = v[i] * b2 + (g * g) * one_b2;
        const float denom = sqrtf(vi) / sqrt_bc2 + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + neg_step * (mi / denom);
    }
}

void vit_adamw_update(float *param, float *m, float *v, const float *grad, int64_t n, float lr, float beta1,
                      float beta2, float eps, float weight_decay, float bc1, float bc2, float grad_scale) {
    const float decay = (float)(1.0 - (double)lr * weight_decay);
    const float one_b1 = (float)(1.0 - (double)beta1), one_b2 = (float)(1.0 - (double)beta2);
    const float sqrt_bc2 = (float)sqrt((double)bc2);
    const float neg_step = (float)(-(double)lr / bc1);
    const int64_t spans = (n + SPAN - 1) / SPAN;
#pragma omp parallel for schedule(static) if (spans > 4)
    for (int64_t k = 0; k < spans; k++) {
        const int64_t i0 = k * SPAN, len = n - i0 < SPAN ? n - i0 : SPAN;
        adamw_span(param + i0, m + i0, v + i0, grad + i0, len, decay, beta1, one_b1, beta2, one_b2, sqrt_bc2, eps,
                   neg_step, grad_scale);
    }
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
double vit_sum_squares(const float *x, int64_t n) {
    double part[SQ_CHUNKS] = {0};
    const int chunks = n < SQ_CHUNKS ? (int)n : SQ_CHUNKS;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int k = 0; k < chunks; k++) {
        const int64_t i0 = n * k / chunks, i1 = n * (k + 1) / chunks;
        part[k] = sum_squares_span(x + i0, i1 - i0);
    }
    double total = 0.0;
    for (int k = 0; k < chunks; k++) total += part[k];
    return total;
}
