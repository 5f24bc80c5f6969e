/*
 * Row-wise softmax. The max is subtracted so exp never overflows; the row sum
 * is kept in double (the exps are scalar libm calls, so it costs nothing).
 * out may alias inp: each element is read before it is written.
 */
#include <math.h>

#include "cpu/kernels.h"

VIT_VECTORIZED static void softmax_row(float *y, const float *x, int C) {
    float mx = x[0];
    for (int c = 1; c < C; c++) mx = x[c] > mx ? x[c] : mx;
    double sum = 0.0;
    for (int c = 0; c < C; c++) {
        const float e = expf(x[c] - mx);
        y[c] = e;
        sum += e;
    }
    const float inv = (float)(1.0 / sum);
    for (int c = 0; c < C; c++) y[c] *= inv;
}

void vit_softmax_forward(float *out, const float *inp, int64_t rows, int C) {
#pragma omp parallel for schedule(static) if (rows * C > 16384)
    for (int64_t r = 0; r < rows; r++) softmax_row(out + r * C, inp + r * C, C);
}

/* dx = y * (dy - sum(dy * y)) */
VIT_VECTORIZED static void softmax_row_backward(float *restrict dx, const float *restrict y,
                                                const float *restrict dy, int C) {
    double s[8] = {0};
    int c = 0;
    for (; c + 8 <= C; c += 8)
        for (int l = 0; l < 8; l++) s[l] += dy[c + l] * y[c + l];
    double dot = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; c < C; c++) dot += dy[c] * y[c];
    const float d = (float)dot;
    for (c = 0; c < C; c++) dx[c] += y[c] * (dy[c] - d);
}

void vit_softmax_backward(float *dinp, const float *out, const float *dout, int64_t rows, int C) {
#pragma omp parallel for schedule(static) if (rows * C > 16384)
    for (int64_t r = 0; r < rows; r++) softmax_row_backward(dinp + r * C, out + r * C, dout + r * C, C);
}
