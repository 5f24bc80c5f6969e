/*
 * Bicubic resampling of a [gh, gw, D] grid of vectors, as torch's
 * upsample_bicubic2d (align_corners=False, no antialias): Keys' cubic
 * convolution with A = -0.75, taps clamped to the border, rows summed before
 * columns (height outermost).
 *
 * torch evaluates the coordinate and the weight cubics in float, where their
 * terms (up to 4|A| = 3) cancel down to weights near 0 and leave ~1e-7 of
 * absolute error in each weight; here they are evaluated in double and
 * rounded once, which is closer to the exact interpolant. Both agree with it,
 * and with each other, to ~1e-6.
 */
#include <math.h>
#include <string.h>

#include "cpu/kernels.h"

enum { STRIP = 64 };

static const double A = -0.75; /* torch's choice, not the A = -0.5 of many image libraries */
static inline double cubic1(double x) { return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0; } /* |x| <= 1 */
static inline double cubic2(double x) { return ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A; } /* 1 < |x| < 2 */

typedef struct taps {
    int idx[4];
    float w[4];
} taps;

/* Source coordinate (dst + 0.5) * in / out - 0.5, not clamped at 0 for cubic;
 * the four taps floor - 1 .. floor + 2 clamped into [0, in - 1]. With in ==
 * out the weights are exactly {0, 1, 0, 0}: an identity resample is exact. */
static taps cubic_taps(int dst, int in, int out) {
    const double real = ((double)dst + 0.5) * in / out - 0.5;
    const double fl = floor(real);
    const double t = real - fl;
    taps k;
    k.w[0] = (float)cubic2(t + 1.0);
    k.w[1] = (float)cubic1(t);
    k.w[2] = (float)cubic1(1.0 - t);
    k.w[3] = (float)cubic2(2.0 - t);
    for (int j = 0; j < 4; j++) {
        const int i = (int)fl - 1 + j;
        k.idx[j] = i < 0 ? 0 : i > in - 1 ? in - 1 : i;
    }
    return k;
}

/* out[D] = sum_y wy (sum_x wx in[y, x]), each sum left to right as torch does. */
VIT_VECTORIZED static void resample_pixel(float *restrict out, const float *restrict inp, const taps *ty,
                                          const taps *tx, int gw_in, int D) {
    for (int a = 0; a < 4; a++) {
        const float *r = inp + (size_t)ty->idx[a] * gw_in * D;
        const float *p0 = r + (size_t)tx->idx[0] * D, *p1 = r + (size_t)tx->idx[1] * D,
                    *p2 = r + (size_t)tx->idx[2] * D, *p3 = r + (size_t)tx->idx[3] * D;
        const float w0 = tx->w[0], w1 = tx->w[1], w2 = tx->w[2], w3 = tx->w[3], wy = ty->w[a];
        if (a == 0)
            for (int d = 0; d < D; d++) out[d] = (p0[d] * w0 + p1[d] * w1 + p2[d] * w2 + p3[d] * w3) * wy;
        else
            for (int d = 0; d < D; d++) out[d] += (p0[d] * w0 + p1[d] * w1 + p2[d] * w2 + p3[d] * w3) * wy;
    }
}

vit_status vit_resample_bicubic(vit_backend *be, float *out, int gh_out, int gw_out, const float *inp, int gh_in,
                                int gw_in, int D) {
    (void)be;
    if (gh_out == gh_in && gw_out == gw_in) {
        memcpy(out, inp, (size_t)gh_in * gw_in * D * sizeof(float));
        return VIT_OK;
    }
#pragma omp parallel for schedule(static) if ((int64_t)gh_out * gw_out * D > 16384)
    for (int64_t o = 0; o < (int64_t)gh_out * gw_out; o++) {
        const int oy = (int)(o / gw_out), ox = (int)(o % gw_out);
        const taps ty = cubic_taps(oy, gh_in, gh_out), tx = cubic_taps(ox, gw_in, gw_out);
        resample_pixel(out + o * D, inp, &ty, &tx, gw_in, D);
    }
    return VIT_OK;
}

/* The adjoint scatters each output gradient onto its 16 taps with the same
 * weights. Taps of neighbouring outputs overlap, so threads split the vector
 * dimension instead of the grid: each owns a strip of D and walks the outputs
 * in order, which is race-free and gives the same sums on any thread count. */
VIT_VECTORIZED static void resample_strip_backward(float *dinp, int gh_in, int gw_in, const float *dout,
                                                   int gh_out, int gw_out, int D, int d0, int n) {
    for (int oy = 0; oy < gh_out; oy++) {
        const taps ty = cubic_taps(oy, gh_in, gh_out);
        for (int ox = 0; ox < gw_out; ox++) {
            const taps tx = cubic_taps(ox, gw_in, gw_out);
            const float *restrict g = dout + ((size_t)oy * gw_out + ox) * D + d0;
            for (int a = 0; a < 4; a++)
                for (int c = 0; c < 4; c++) {
                    const float w = ty.w[a] * tx.w[c];
                    float *restrict di = dinp + ((size_t)ty.idx[a] * gw_in + tx.idx[c]) * D + d0;
                    for (int d = 0; d < n; d++) di[d] += w * g[d];
                }
        }
    }
}

vit_status vit_resample_bicubic_backward(vit_backend *be, float *dinp, int gh_in, int gw_in, const float *dout,
                                         int gh_out, int gw_out, int D) {
    (void)be;
    if (gh_out == gh_in && gw_out == gw_in) {
        vit_add(be, dinp, dinp, dout, (int64_t)gh_in * gw_in * D);
        return VIT_OK;
    }
    const int strips = (D + STRIP - 1) / STRIP;
#pragma omp parallel for schedule(static) if ((int64_t)gh_out * gw_out * D > 16384)
    for (int s = 0; s < strips; s++) {
        const int d0 = s * STRIP;
        resample_strip_backward(dinp, gh_in, gw_in, dout, gh_out, gw_out, D, d0, D - d0 < STRIP ? D - d0 : STRIP);
    }
    return VIT_OK;
}
