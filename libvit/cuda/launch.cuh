/* Launch shapes shared by the .cu files. */
#ifndef VIT_CUDA_LAUNCH_CUH
#define VIT_CUDA_LAUNCH_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda/kernels.h"

#define VIT_CUK_THREADS 256
#define VIT_CUK_WARPS_PER_BLOCK 8

/* Blocks for a grid-stride loop over n elements. */
static inline unsigned vit_cuk_blocks(int64_t n) {
    int64_t b = (n + VIT_CUK_THREADS - 1) / VIT_CUK_THREADS;
    return (unsigned)(b < 1 ? 1 : b > 65536 ? 65536 : b);
}

/* Blocks for one warp per row. */
static inline unsigned vit_cuk_row_blocks(int64_t rows) {
    int64_t b = (rows + VIT_CUK_WARPS_PER_BLOCK - 1) / VIT_CUK_WARPS_PER_BLOCK;
    return (unsigned)(b < 1 ? 1 : b > 65536 ? 65536 : b);
}

#define VIT_CUK_FOR(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* Rows handled one per warp, grid-stride. */
#define VIT_CUK_FOR_ROWS(r, rows)                                                                          \
    for (int64_t r = (int64_t)blockIdx.x * VIT_CUK_WARPS_PER_BLOCK + threadIdx.x / 32; r < (rows);         \
         r += (int64_t)gridDim.x * VIT_CUK_WARPS_PER_BLOCK)

/* Butterfly sums over a warp: every lane ends with the same value, formed in
 * the same order on every run. */
__device__ __forceinline__ float vit_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double vit_warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float vit_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

#endif
