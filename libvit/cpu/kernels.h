/*
 * CPU kernels on raw pointers and shapes. They know nothing of models, files
 * or the tape. Conventions:
 *   - outputs first, shapes in the comment;
 *   - every gradient ACCUMULATES (+=) into its buffer, so a value used twice
 *     (a residual) simply receives both contributions;
 *   - reductions (parameter gradients, losses, norms) give the same bits
 *     whatever the thread count: column strips or fixed chunks summed in order;
 *   - randomness comes from vit_rng_uniform(key, element index): the same key
 *     gives the same mask whatever the thread count.
 */
#ifndef VIT_CPU_KERNELS_H
#define VIT_CPU_KERNELS_H

#include <stdint.h>

#include "core/core.h"

/* GCC/Clang function multi-versioning: one binary, the widest vector path the
 * running CPU has is chosen when the library loads (no -march=native). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang_analyzer__) && !defined(VIT_NO_CLONES)
#define VIT_VECTORIZED __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define VIT_VECTORIZED
#endif

/* For helpers of VIT_VECTORIZED functions: a helper the compiler chooses not
 * to inline is built once, for the default target, so it must be inlined into
 * each clone to get that clone's vector width and FMA. */
#if defined(__GNUC__)
#define VIT_INLINE static inline __attribute__((always_inline))
#else
#define VIT_INLINE static inline
#endif

/* ---------------------------------------------------------------- LayerNorm */
/* out [rows, C]; mean, rstd [rows] saved for backward (may be NULL). */
void vit_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int64_t rows, int C, float eps);
/* dinp [rows, C], dweight, dbias [C] (each may be NULL). */
void vit_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int64_t rows, int C);

/* --------------------------------------------------------------------- GELU */
/* Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)), as PyTorch's nn.GELU(). out [n] */
void vit_gelu_forward(float *out, const float *inp, int64_t n);
void vit_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n);

/* ------------------------------------------------------------------ softmax */
/* Row-wise softmax, max-subtracted. out [rows, C] */
void vit_softmax_forward(float *out, const float *inp, int64_t rows, int C);
void vit_softmax_backward(float *dinp, const float *out, const float *dout, int64_t rows, int C);

/* ---------------------------------------------------------------- attention */
/* Multi-head self-attention core after the fused qkv projection.
 * qkv [B, T, 3, H, hd] (timm: qkv(x).reshape(B, T, 3, H, hd)); out [B, T, H * hd]
 * (heads concatenated, as .transpose(1, 2).reshape(B, T, C)).
 * probs [B, H, T, T]: softmax(q k^T * scale) before dropout, kept for backward
 * (NULL in inference). Attention dropout with probability drop_p drops
 * element ((b * H + h) * T + i) * T + j iff vit_rng_uniform(drop_key, that) < drop_p
 * and scales the rest by 1 / (1 - drop_p). */
/* scratch: vit_attention_scratch_floats(T, hd, omp_get_max_threads()) floats
 * (from the caller's arena, so a training step allocates nothing), or NULL to
 * allocate for the call. */
size_t vit_attention_scratch_floats(int T, int hd, int threads);
vit_status vit_attention_forward(float *out, float *probs, const float *qkv, int B, int T, int H, int hd,
                                 float scale, float drop_p, uint64_t drop_key, float *scratch);
vit_status vit_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *probs, int B,
                                  int T, int H, int hd, float scale, float drop_p, uint64_t drop_key,
                                  float *scratch);

/* ------------------------------------------------------------ cross-entropy */
/* probs [B, C] (softmax, saved for backward); labels [B] in 0..C-1. Label
 * smoothing s as PyTorch: target = (1 - s) * onehot + s / C. Returns the mean
 * loss over the batch (computed in double). */
float vit_cross_entropy_forward(float *probs, const float *logits, const int32_t *labels, int B, int C,
                                float smoothing);
/* dlogits [B, C] += dloss / B * (probs - target) */
void vit_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *labels, int B, int C,
                                float smoothing, float dloss);

/* ----------------------------------------------------------- patch embedding */
/* A convolution whose kernel equals its stride is patchify + GEMM.
 * patches [B, N, Cin * p * p], N = (H / p) * (W / p) in row-major grid order;
 * each patch flattened (c, i, j) to match a conv weight [D, Cin, p, p]. */
void vit_patchify(float *patches, const float *images, int B, int Cin, int H, int W, int p);
/* dimages [B, Cin, H, W] += the patches' gradients put back in place. */
void vit_unpatchify_add(float *dimages, const float *dpatches, int B, int Cin, int H, int W, int p);

/* ---------------------------------------------------- tokens and residuals */
/* tokens [B, 1 + N, D]: row 0 = cls [D] + pos[0]; row 1 + n = patch[b, n] + pos[1 + n].
 * pos [1 + N, D]. */
void vit_embed_tokens_forward(float *tokens, const float *patch, const float *cls, const float *pos, int B,
                              int N, int D);
/* dpatch [B, N, D], dcls [D], dpos [1 + N, D] (each may be NULL) += */
void vit_embed_tokens_backward(float *dpatch, float *dcls, float *dpos, const float *dtokens, int B, int N,
                               int D);

/* out [B, per] = x + scale[b] * y (DropPath: scale is 0 or 1 / keep per
 * sample; NULL means 1). out may be x or y. */
void vit_residual_forward(float *out, const float *x, const float *y, const float *scale, int B,
                          int64_t per);
/* dx, dy [B, per] += (either may be NULL) */
void vit_residual_backward(float *dx, float *dy, const float *dout, const float *scale, int B, int64_t per);

/* out [n] = inp * mask / (1 - p), mask_i = vit_rng_uniform(key, i) >= p. out may alias inp. */
void vit_dropout_forward(float *out, const float *inp, int64_t n, float p, uint64_t key);
void vit_dropout_backward(float *dinp, const float *dout, int64_t n, float p, uint64_t key);

/* out [B, D]: token 0 (avg = 0), or the mean of tokens 1..T-1 (avg = 1). tokens [B, T, D] */
void vit_pool_forward(float *out, const float *tokens, int B, int T, int D, int avg);
void vit_pool_backward(float *dtokens, const float *dout, int B, int T, int D, int avg);

/* out [n] = a + b, dst may alias a. */
void vit_add(float *out, const float *a, const float *b, int64_t n);
/* out[r, :] += bias summed... : dbias [C] += sum over rows of dout [rows, C] */
void vit_bias_backward(float *dbias, const float *dout, int64_t rows, int C);

/* ------------------------------------------------------- bicubic resampling */
/* A grid of vectors [gh_in, gw_in, D] to [gh_out, gw_out, D], as
 * torch.nn.functional.interpolate(mode='bicubic', align_corners=False,
 * antialias=False) on the [D, gh, gw] view (A = -0.75, edges clamped):
 * timm's resample_abs_pos_embed. */
void vit_resample_bicubic(float *out, int gh_out, int gw_out, const float *inp, int gh_in, int gw_in, int D);
/* Its adjoint: dinp [gh_in, gw_in, D] += */
void vit_resample_bicubic_backward(float *dinp, int gh_in, int gw_in, const float *dout, int gh_out,
                                   int gw_out, int D);

/* ------------------------------------------------------------------- AdamW */
/* One AdamW update over n floats, PyTorch semantics:
 *   p -= lr * wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   p -= lr / bc1 * m / (sqrt(v / bc2) + eps)   with g = grad * grad_scale,
 * bc1 = 1 - b1^t, bc2 = 1 - b2^t. */
void vit_adamw_update(float *param, float *m, float *v, const float *grad, int64_t n, float lr, float beta1,
                      float beta2, float eps, float weight_decay, float bc1, float bc2, float grad_scale);
/* sum of squares in double */
double vit_sum_squares(const float *x, int64_t n);

#endif
