/*
 * Patch embedding as patchify + GEMM: a convolution whose kernel equals its
 * stride reads every pixel once, so copying patches out costs one pass and
 * lets the GEMM engine do the arithmetic. Pixels beyond the last whole patch
 * (H or W not a multiple of p) are ignored, as the strided conv ignores them.
 */
#include <string.h>

#include "cpu/kernels.h"

vit_status vit_patchify(vit_backend *be, float *patches, const float *images, int B, int Cin, int H, int W, int p) {
    (void)be;
    const int gh = H / p, gw = W / p, N = gh * gw;
    const size_t K = (size_t)Cin * p * p;
#pragma omp parallel for schedule(static) if ((int64_t)B * N * K > 16384)
    for (int64_t bn = 0; bn < (int64_t)B * N; bn++) {
        const int b = (int)(bn / N), n = (int)(bn % N), gy = n / gw, gx = n % gw;
        float *dst = patches + bn * K;
        for (int c = 0; c < Cin; c++)
            for (int i = 0; i < p; i++) {
                const float *src = images + (((size_t)b * Cin + c) * H + (size_t)gy * p + i) * W + (size_t)gx * p;
                memcpy(dst + ((size_t)c * p + i) * p, src, (size_t)p * sizeof(float));
            }
    }
    return VIT_OK;
}

/* Patches do not overlap, so each task adds into pixels no other task touches. */
vit_status vit_unpatchify_add(vit_backend *be, float *dimages, const float *dpatches, int B, int Cin, int H, int W,
                              int p) {
    (void)be;
    const int gh = H / p, gw = W / p, N = gh * gw;
    const size_t K = (size_t)Cin * p * p;
#pragma omp parallel for schedule(static) if ((int64_t)B * N * K > 16384)
    for (int64_t bn = 0; bn < (int64_t)B * N; bn++) {
        const int b = (int)(bn / N), n = (int)(bn % N), gy = n / gw, gx = n % gw;
        const float *src = dpatches + bn * K;
        for (int c = 0; c < Cin; c++)
            for (int i = 0; i < p; i++) {
                float *restrict dst = dimages + (((size_t)b * Cin + c) * H + (size_t)gy * p + i) * W + (size_t)gx * p;
                const float *restrict s = src + ((size_t)c * p + i) * p;
                for (int j = 0; j < p; j++) dst[j] += s[j];
            }
    }
    return VIT_OK;
}
