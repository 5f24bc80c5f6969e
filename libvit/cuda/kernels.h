/*
 * Launchers of the CUDA kernels (the .cu files), callable from C. Each
 * enqueues on stream st and returns cudaGetLastError() (a launch error);
 * errors of the kernel itself surface at the next synchronising call.
 * Shapes and contracts are those of the backend table entry of the same
 * name (core/backend.h); per-element math comes from core/scalar.h, so masks,
 * GELU and AdamW are the CPU's.
 *
 * Reductions are deterministic: each output is summed by one thread or one
 * block in a fixed order, or in fixed row chunks (VIT_CUK_CHUNK_ROWS) whose
 * partial sums a second kernel adds in order; no atomics.
 */
#ifndef VIT_CUDA_KERNELS_H
#define VIT_CUDA_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "core/scalar.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows per partial sum of a column reduction: partial buffers hold
 * ceil(rows / VIT_CUK_CHUNK_ROWS) x C floats. */
#define VIT_CUK_CHUNK_ROWS 64
/* Elements per partial sum of sum_squares. */
#define VIT_CUK_CHUNK_ELEMS 16384

cudaError_t vit_cuk_fill(float *p, float value, int64_t n, cudaStream_t st);
/* dst [items, rows, ld_dst] bfloat16, rounded to nearest even, from items
 * of src [rows, cols] (row stride ld_src, item stride stride_src); columns
 * cols..ld_dst are zero. */
cudaError_t vit_cuk_to_bf16(void *dst, const float *src, int64_t items, int64_t rows, int64_t cols, int64_t ld_src,
                            int64_t stride_src, int64_t ld_dst, cudaStream_t st);
/* C [items, M, N] (row stride ldc, item stride stride_c) += bias [N] on every row */
cudaError_t vit_cuk_bias_rows(float *C, const float *bias, int64_t items, int64_t M, int64_t N, int64_t ldc,
                              int64_t stride_c, cudaStream_t st);
/* dst [n] (= or +=) src [n] bfloat16 widened */
cudaError_t vit_cuk_from_bf16(float *dst, const void *src, int64_t n, int accumulate, cudaStream_t st);
cudaError_t vit_cuk_add(float *out, const float *a, const float *b, int64_t n, cudaStream_t st);

cudaError_t vit_cuk_gelu_forward(float *out, const float *inp, int64_t n, cudaStream_t st);
cudaError_t vit_cuk_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n, cudaStream_t st);
/* out = (accumulate ? out : 0) + (u(key, i) >= p ? inp * keep : 0) */
cudaError_t vit_cuk_dropout(float *out, const float *inp, int64_t n, float p, uint64_t key, int accumulate,
                            cudaStream_t st);
cudaError_t vit_cuk_residual_forward(float *out, const float *x, const float *y, const float *scale, int B,
                                     int64_t per, cudaStream_t st);
cudaError_t vit_cuk_residual_backward(float *dx, float *dy, const float *dout, const float *scale, int B, int64_t per,
                                      cudaStream_t st);

cudaError_t vit_cuk_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                      const float *bias, int64_t rows, int C, float eps, cudaStream_t st);
/* dinp [rows, C] += the input gradient (mean, rstd from the forward) */
cudaError_t vit_cuk_layernorm_backward_input(float *dinp, const float *dout, const float *inp, const float *weight,
                                             const float *mean, const float *rstd, int64_t rows, int C,
                                             cudaStream_t st);
/* partial [chunks, C] = per row chunk, the column sums of dout (inp NULL),
 * of dout * inp (mean NULL: layer scale's gradient) or of
 * dout * (inp - mean) * rstd (LayerNorm's weight gradient). */
cudaError_t vit_cuk_colsum_partial(float *partial, const float *dout, const float *inp, const float *mean,
                                   const float *rstd, int64_t rows, int C, cudaStream_t st);
/* out [C] += the chunks' sums, added in chunk order (in double). */
cudaError_t vit_cuk_colsum_finish(float *out, const float *partial, int chunks, int C, cudaStream_t st);

/* out = softmax(scale * inp) by rows (may alias). */
cudaError_t vit_cuk_softmax_forward(float *out, const float *inp, int64_t rows, int C, float scale, cudaStream_t st);
/* g = dout, times the dropout mask and 1 / (1 - p) when p > 0 (element index
 * = row * C + column); d = scale * out * (g - sum(out * g)); dinp = (accumulate ? dinp : 0) + d. */
cudaError_t vit_cuk_softmax_backward(float *dinp, const float *out, const float *dout, int64_t rows, int C,
                                     float scale, int accumulate, float drop_p, uint64_t key, cudaStream_t st);

/* rowloss [B] doubles of scratch; loss [1] = their mean, summed in order. */
cudaError_t vit_cuk_cross_entropy_forward(float *loss, float *probs, double *rowloss, const float *logits,
                                          const int32_t *labels, int B, int C, float smoothing, cudaStream_t st);
cudaError_t vit_cuk_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *labels, int B, int C,
                                           float smoothing, const float *dloss, cudaStream_t st);

cudaError_t vit_cuk_patchify(float *patches, const float *images, int B, int Cin, int H, int W, int p,
                             cudaStream_t st);
cudaError_t vit_cuk_unpatchify_add(float *dimages, const float *dpatches, int B, int Cin, int H, int W, int p,
                                   cudaStream_t st);
cudaError_t vit_cuk_embed_tokens_forward(float *tokens, const float *patch, const float *cls, const float *reg,
                                         const float *pos, int B, int N, int D, int R, int pos_prefix, cudaStream_t st);
cudaError_t vit_cuk_embed_tokens_backward(float *dpatch, float *dcls, float *dreg, float *dpos, const float *dtokens,
                                          int B, int N, int D, int R, int has_cls, int pos_prefix, cudaStream_t st);
cudaError_t vit_cuk_pool_forward(float *out, const float *tokens, int B, int T, int D, int avg, int skip,
                                 cudaStream_t st);
cudaError_t vit_cuk_pool_backward(float *dtokens, const float *dout, int B, int T, int D, int avg, int skip,
                                  cudaStream_t st);
cudaError_t vit_cuk_quick_gelu_forward(float *out, const float *inp, int64_t n, cudaStream_t st);
cudaError_t vit_cuk_quick_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n, cudaStream_t st);
/* layer scale: out = inp * gamma by columns; dinp += dout * gamma */
cudaError_t vit_cuk_scale_channels_forward(float *out, const float *inp, const float *gamma, int64_t rows, int C,
                                           cudaStream_t st);
cudaError_t vit_cuk_scale_channels_backward(float *dinp, const float *dout, const float *gamma, int64_t rows, int C,
                                            cudaStream_t st);

cudaError_t vit_cuk_resample_bicubic(float *out, int gh_out, int gw_out, const float *inp, int gh_in, int gw_in,
                                     int D, cudaStream_t st);
cudaError_t vit_cuk_resample_bicubic_backward(float *dinp, int gh_in, int gw_in, const float *dout, int gh_out,
                                              int gw_out, int D, cudaStream_t st);

cudaError_t vit_cuk_adamw(float *param, float *m, float *v, const float *grad, int64_t n, vit_adamw_consts k,
                          cudaStream_t st);
/* partial [ceil(n / VIT_CUK_CHUNK_ELEMS)] doubles, then *result (device) their sum in order. */
cudaError_t vit_cuk_sum_squares(double *result, double *partial, const float *x, int64_t n, cudaStream_t st);

/* Attention's layouts: qkv [B, T, 3, H, hd] <-> q, k, v each [B, H, T, hd]
 * (consecutive in dst3 / src3), and [B, T, H, hd] <-> [B, H, T, hd]. */
cudaError_t vit_cuk_qkv_split(float *dst3, const float *qkv, int B, int T, int H, int hd, cudaStream_t st);
cudaError_t vit_cuk_qkv_merge_add(float *dqkv, const float *src3, int B, int T, int H, int hd, cudaStream_t st);
/* to_heads: dst [B, H, T, hd] = src [B, T, H, hd]; else dst [B, T, H, hd] = src [B, H, T, hd]. */
cudaError_t vit_cuk_heads(float *dst, const float *src, int B, int T, int H, int hd, int to_heads, cudaStream_t st);

#ifdef __cplusplus
}
#endif

#endif
