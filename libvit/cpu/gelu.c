/*
 * Exact (erf) GELU, as nn.GELU() with approximate='none': the tanh form would
 * drift from PyTorch checkpoints by ~1e-3. erf and exp come from cpu/vmath.h
 * so the loops vectorise.
 */
#include <math.h>

#include "cpu/kernels.h"
#include "cpu/vmath.h"

/* Elementwise work is cut into fixed spans so a thread gets enough to amortise
 * the fork and the erff calls, and tiny tensors stay on one thread. */
enum { GELU_SPAN = 4096 };

static const float inv_sqrt2 = 0.70710678118654752f;
static const float inv_sqrt_2pi = 0.39894228040143268f;

VIT_VECTORIZED static void gelu_span_forward(float *out, const float *inp, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float x = inp[i];
        out[i] = x * 0.5f * (1.0f + vit_erff(x * inv_sqrt2));
    }
}

void vit_gelu_forward(float *out, const float *inp, int64_t n) {
    const int64_t spans = (n + GELU_SPAN - 1) / GELU_SPAN;
#pragma omp parallel for schedule(static) if (spans > 1)
    for (int64_t s = 0; s < spans; s++) {
        const int64_t i0 = s * GELU_SPAN;
        gelu_span_forward(out + i0, inp + i0, n - i0 < GELU_SPAN ? n - i0 : GELU_SPAN);
    }
}

/* d/dx = Phi(x) + x * phi(x) */
VIT_VECTORIZED static void gelu_span_backward(float *restrict dinp, const float *restrict inp,
                                              const float *restrict dout, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float x = inp[i];
        const float cdf = 0.5f * (1.0f + vit_erff(x * inv_sqrt2));
        const float pdf = vit_expf(-0.5f * x * x) * inv_sqrt_2pi;
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void vit_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n) {
    const int64_t spans = (n + GELU_SPAN - 1) / GELU_SPAN;
#pragma omp parallel for schedule(static) if (spans > 1)
    for (int64_t s = 0; s < spans; s++) {
        const int64_t i0 = s * GELU_SPAN;
        gelu_span_backward(dinp + i0, inp + i0, dout + i0, n - i0 < GELU_SPAN ? n - i0 : GELU_SPAN);
    }
}
