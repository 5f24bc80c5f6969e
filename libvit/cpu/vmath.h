/*
 * Branch-free float exp and erf that the compiler vectorises (libm's erff and
 * expf are scalar calls). Accuracy is within a few ulp of libm over the ranges
 * the kernels use; tests/cpu/test_kernels.c measures both against double.
 */
#ifndef VIT_CPU_VMATH_H
#define VIT_CPU_VMATH_H

#include <stdint.h>
#include <string.h>

#include "cpu/kernels.h"

/* e^x for x in [-87, 88]; smaller inputs give ~1e-38 rather than 0. */
VIT_INLINE float vit_expf(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* x = n ln2 + r, |r| <= ln2 / 2, with ln2 split so n ln2 is exact. */
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    /* Degree-6 Taylor polynomial: error below 1.5e-7 relative on |r| <= 0.347. */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* erf(x) as x P(x^2) / Q(x^2) on [-4, 4], where float erf reaches +-1. */
VIT_INLINE float vit_erff(float x) {
    x = x < -4.0f ? -4.0f : x;
    x = x > 4.0f ? 4.0f : x;
    const float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return x * p / q;
}

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
