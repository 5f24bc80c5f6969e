/*
 * Row helpers of the CPU kernels, written so the compiler vectorises them;
 * exp and erf come from core/scalar.h.
 */
#ifndef VIT_CPU_VMATH_H
#define VIT_CPU_VMATH_H

#include "core/scalar.h"
#include "cpu/kernels.h"

/* y[0..n) = softmax(x[0..n)), max-subtracted; y may be x. The max and the
 * sum run in eight fixed lanes: that keeps every loop vectorisable without
 * -ffast-math (which would let the compiler reorder a float sum), and the
 * order does not depend on the thread count. */
VIT_INLINE void vit_softmax_row(float *y, const float *x, int n) {
    float lane[8];
    int j = 0;
    for (int l = 0; l < 8; l++) lane[l] = x[0];
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) lane[l] = x[j + l] > lane[l] ? x[j + l] : lane[l];
    float mx = lane[0];
    for (int l = 1; l < 8; l++) mx = lane[l] > mx ? lane[l] : mx;
    for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    for (j = 0; j < n; j++) y[j] = vit_expf(x[j] - mx);
    for (int l = 0; l < 8; l++) lane[l] = 0.0f;
    for (j = 0; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) lane[l] += y[j + l];
    double sum = 0.0;
    for (int l = 0; l < 8; l++) sum += lane[l];
    for (; j < n; j++) sum += y[j];
    const float inv = (float)(1.0 / sum);
    for (j = 0; j < n; j++) y[j] *= inv;
}

/* sum of a[i] * b[i] over eight fixed lanes (see vit_softmax_row). */
VIT_INLINE float vit_dot(const float *a, const float *b, int n) {
    float lane[8] = {0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) lane[l] += a[j + l] * b[j + l];
    double sum = 0.0;
    for (int l = 0; l < 8; l++) sum += lane[l];
    for (; j < n; j++) sum += (double)a[j] * b[j];
    return (float)sum;
}

#endif
