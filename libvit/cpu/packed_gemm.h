/*
 * libvit's own product on packed weights, for the AVX2 level (cpu/matmul.c
 * decides when it runs): C [M, N] (+)= A [M, K] . B [K, N] (+ bias), with B
 * packed once per weight stamp into panels of 16 columns. Built with the
 * AVX2 level's kernels, so only on x86-64; elsewhere these are never called.
 */
#ifndef VIT_CPU_PACKED_GEMM_H
#define VIT_CPU_PACKED_GEMM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core.h"

/* Runs on a block of C [rows, cols] (row stride ldc) once the product has
 * written it, while it is in cache (the GELU epilogue). */
typedef struct vit_packed_epilogue {
    vit_status (*run)(void *ctx, float *C, int rows, int cols, int ldc);
    void *ctx;
} vit_packed_epilogue;

#if defined(__x86_64__)

/* Bytes of B [K, N] packed: whole panels of 16 columns, the last zero-padded. */
size_t vit_packed_gemm_bytes(int N, int K);

/* packed = B in panels of 16 columns (cpu/packed_gemm.c gives the layout).
 * B is B [K, N] with row stride ldb or, with trans_b, B^T stored [N, K] (a
 * linear layer's W as PyTorch stores it). Runs on the OpenMP team when B is
 * large. */
void vit_packed_gemm_pack(float *packed, const float *B, int ldb, bool trans_b, int N, int K);

/* C [M, N] (row stride ldc) = A [M, K] (row stride lda) . packed (+ bias [N]),
 * or += when accumulate, then ep (may be NULL) on each block, on up to
 * threads threads. Each element is summed in the same order whatever the
 * thread count. Returns ep's first failure. */
vit_status vit_packed_gemm_run(float *C, int ldc, const float *A, int lda, const float *packed, const float *bias,
                               int M, int N, int K, bool accumulate, const vit_packed_epilogue *ep, int threads);

#else
static inline size_t vit_packed_gemm_bytes(int N, int K) { return (void)N, (void)K, 0; }
static inline void vit_packed_gemm_pack(float *packed, const float *B, int ldb, bool trans_b, int N, int K) {
    (void)packed, (void)B, (void)ldb, (void)trans_b, (void)N, (void)K;
}
static inline vit_status vit_packed_gemm_run(float *C, int ldc, const float *A, int lda, const float *packed,
                                             const float *bias, int M, int N, int K, bool accumulate,
                                             const vit_packed_epilogue *ep, int threads) {
    (void)C, (void)ldc, (void)A, (void)lda, (void)packed, (void)bias, (void)M, (void)N, (void)K;
    (void)accumulate, (void)ep, (void)threads;
    return vit_fail(VIT_ERR_UNSUPPORTED, "the packed-weight product is the AVX2 level's (x86-64)");
}
#endif

#endif
