/*
 * Row-wise softmax. The max is subtracted so exp never overflows.
 * out may alias inp: each element is read before it is written.
 */
#include <math.h>

#include "cpu/kernels.h"
#include "cpu/vmath.h"

VIT_VECTORIZED static void softmax_row(float *y, const float *x, int C) { vit_softmax_row(y, x, C); }

vit_status vit_softmax_forward(vit_backend *be, float *out, const float *inp, int64_t rows, int C) {
    (void)be;
#pragma omp parallel for schedule(static) if (rows * C > 16384)
    for (int64_t r = 0; r < rows; r++) softmax_row(out + r * C, inp + r * C, C);
    return VIT_OK;
}

/* dx = y * (dy - sum(dy * y)) */
VIT_VECTORIZED static void softmax_row_backward(float *restrict dx, const float *restrict y,
                                                const float *restrict dy, int C) {
    const float d = vit_dot(dy, y, C);
    for (int c = 0; c < C; c++) dx[c] += y[c] * (dy[c] - d);
}

vit_status vit_softmax_backward(vit_backend *be, float *dinp, const float *out, const float *dout, int64_t rows,
                                int C) {
    (void)be;
#pragma omp parallel for schedule(static) if (rows * C > 16384)
    for (int64_t r = 0; r < rows; r++) softmax_row_backward(dinp + r * C, out + r * C, dout + r * C, C);
    return VIT_OK;
}
