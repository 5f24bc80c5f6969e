/*
 * The CPU matrix product: the one interface every op uses, so the engine
 * behind it (oneDNN today) can change without touching the ops.
 */
#ifndef VIT_CPU_MATMUL_H
#define VIT_CPU_MATMUL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core.h"

typedef enum vit_epilogue {
    VIT_EPILOGUE_NONE = 0,
    VIT_EPILOGUE_GELU = 1 /* exact erf GELU applied after the bias */
} vit_epilogue;

/* C[M, N] (= or +=) op(A)[M, K] · op(B)[K, N] (+ bias[N]) (then epilogue).
 * Row-major; A is [M, K] with row stride lda, or [K, M] when trans_a;
 * B is [K, N] with row stride ldb, or [N, K] when trans_b (a linear layer's
 * weight [out, in] is B with trans_b). */
typedef struct vit_gemm {
    int M, N, K;
    const float *A;
    int lda;
    bool trans_a;
    const float *B;
    int ldb;
    bool trans_b;
    float *C;
    int ldc;
    bool accumulate;     /* C += product (bias and epilogue must then be off) */
    const float *bias;   /* [N] or NULL */
    vit_epilogue epilogue;
} vit_gemm;

vit_status vit_cpu_gemm(const vit_gemm *g);

/* batch independent products; operand i starts stride_* floats after operand 0. */
vit_status vit_cpu_gemm_batched(const vit_gemm *g, int batch, ptrdiff_t stride_a, ptrdiff_t stride_b,
                                ptrdiff_t stride_c);

/* Drop cached engine state (primitives, scratch); called at library unload and by tests. */
void vit_cpu_gemm_release_cache(void);

#endif
