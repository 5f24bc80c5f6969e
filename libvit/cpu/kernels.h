/*
 * CPU kernels on raw pointers and shapes, reached only through the CPU
 * backend's table (cpu/table.c). They know nothing of models, files or the
 * tape. Conventions (those of core/backend.h):
 *   - outputs first, shapes in the comment;
 *   - every gradient ACCUMULATES (+=) into its buffer, so a value used twice
 *     (a residual) simply receives both contributions;
 *   - reductions (parameter gradients, losses, norms) give the same bits
 *     whatever the thread count: column strips or fixed chunks summed in order;
 *   - the loops that carry a step's time (a product's row slices, attention
 *     blocks and softmax rows, LayerNorm rows, GELU spans) hand out their
 *     pieces, fixed by the shape, as threads come free (schedule(dynamic)):
 *     on a shared machine one core may run slower for a while, and a static
 *     split makes every such loop wait for it. What a piece computes does not
 *     depend on the thread that runs it;
 *   - randomness comes from vit_rng_uniform(key, element index): the same key
 *     gives the same mask whatever the thread count.
 */
#ifndef VIT_CPU_KERNELS_H
#define VIT_CPU_KERNELS_H

#include <omp.h>
#include <stdint.h>

#include "core/backend.h"
#include "core/core.h"

/* Multi-versioning: the kernel files are compiled once per ISA level with
 * VIT_CPU_ISA = 0 (baseline), 1 (AVX2 + FMA) or 2 (AVX-512F); the
 * vectorised loops carry that level's target attribute and every kernel
 * symbol gets the level's suffix, so one binary holds all three, and
 * cpu/backend.c picks a level's table at run time (no -march=native, and
 * $VIT_MAX_CPU_ISA can cap it). Only the loops marked VIT_VECTORIZED are
 * built for the wider ISA; the rest (thread dispatch, scalar set-up) is the
 * same baseline code at every level, so the levels differ only where the
 * vector width and FMA matter. */
#if !defined(VIT_CPU_ISA)
#error "cpu/kernels.h is compiled once per ISA level: define VIT_CPU_ISA (see libvit/cpu/meson.build)"
#endif
#if VIT_CPU_ISA == 2
#define VIT_VECTORIZED __attribute__((target("avx512f")))
#define VIT_ISA_NAME(f) f##_avx512
#elif VIT_CPU_ISA == 1
#define VIT_VECTORIZED __attribute__((target("avx2,fma")))
#define VIT_ISA_NAME(f) f##_avx2
#else
#define VIT_VECTORIZED
#define VIT_ISA_NAME(f) f##_baseline
#endif

#define vit_layernorm_forward VIT_ISA_NAME(vit_layernorm_forward)
#define vit_layernorm_backward VIT_ISA_NAME(vit_layernorm_backward)
#define vit_gelu_forward VIT_ISA_NAME(vit_gelu_forward)
#define vit_gelu_backward VIT_ISA_NAME(vit_gelu_backward)
#define vit_gelu_bias_backward VIT_ISA_NAME(vit_gelu_bias_backward)
#define vit_quick_gelu_forward VIT_ISA_NAME(vit_quick_gelu_forward)
#define vit_quick_gelu_backward VIT_ISA_NAME(vit_quick_gelu_backward)
#define vit_pool_attention_forward VIT_ISA_NAME(vit_pool_attention_forward)
#define vit_pool_attention_backward VIT_ISA_NAME(vit_pool_attention_backward)
#define vit_scale_channels_forward VIT_ISA_NAME(vit_scale_channels_forward)
#define vit_scale_channels_backward VIT_ISA_NAME(vit_scale_channels_backward)
#define vit_softmax_forward VIT_ISA_NAME(vit_softmax_forward)
#define vit_softmax_backward VIT_ISA_NAME(vit_softmax_backward)
#define vit_attention_sizes VIT_ISA_NAME(vit_attention_sizes)
#define vit_attention_forward VIT_ISA_NAME(vit_attention_forward)
#define vit_attention_backward VIT_ISA_NAME(vit_attention_backward)
#define vit_cross_entropy_forward VIT_ISA_NAME(vit_cross_entropy_forward)
#define vit_cross_entropy_backward VIT_ISA_NAME(vit_cross_entropy_backward)
#define vit_patchify VIT_ISA_NAME(vit_patchify)
#define vit_unpatchify_add VIT_ISA_NAME(vit_unpatchify_add)
#define vit_embed_tokens_forward VIT_ISA_NAME(vit_embed_tokens_forward)
#define vit_embed_tokens_backward VIT_ISA_NAME(vit_embed_tokens_backward)
#define vit_residual_forward VIT_ISA_NAME(vit_residual_forward)
#define vit_residual_backward VIT_ISA_NAME(vit_residual_backward)
#define vit_dropout_forward VIT_ISA_NAME(vit_dropout_forward)
#define vit_dropout_backward VIT_ISA_NAME(vit_dropout_backward)
#define vit_pool_forward VIT_ISA_NAME(vit_pool_forward)
#define vit_pool_backward VIT_ISA_NAME(vit_pool_backward)
#define vit_add VIT_ISA_NAME(vit_add)
#define vit_bias_backward VIT_ISA_NAME(vit_bias_backward)
#define vit_resample_bicubic VIT_ISA_NAME(vit_resample_bicubic)
#define vit_resample_bicubic_backward VIT_ISA_NAME(vit_resample_bicubic_backward)
#define vit_adamw_update VIT_ISA_NAME(vit_adamw_update)
#define vit_sum_squares VIT_ISA_NAME(vit_sum_squares)

/* The chunk of a dynamic schedule over n pieces: at most most_pieces (enough
 * work that handing a chunk out, an atomic add, is small beside it), yet four
 * chunks a thread where n allows, so that a small call still spreads over
 * the team. */
static inline int vit_dynamic_chunk(int64_t n, int most_pieces) {
    const int64_t c = n / (4 * (int64_t)omp_get_max_threads());
    return c < 1 ? 1 : c > most_pieces ? most_pieces : (int)c;
}

/* Column strips for the column sums of parameter gradients (bias, LayerNorm,
 * channel scale): whole 16-column blocks, at most VIT_STRIP_COLS columns (the
 * double accumulators of a strip stay in L1), as many strips for each thread
 * and the threads' columns equal to within a block. Every column is summed
 * over the rows in order whatever its strip, so the split changes no bits. */
enum { VIT_STRIP_COLS = 64 };

static inline int vit_strip_count(int C, int threads) {
    const int blocks = (C + 15) / 16, per_thread = (blocks + threads - 1) / threads;
    const int strips = threads * ((per_thread + VIT_STRIP_COLS / 16 - 1) / (VIT_STRIP_COLS / 16));
    return strips < blocks ? strips : blocks;
}

/* Strip s of strips over C columns: its first column and its width. */
static inline void vit_strip(int C, int strips, int s, int *c0, int *n) {
    const int blocks = (C + 15) / 16, end = 16 * (int)((int64_t)blocks * (s + 1) / strips);
    *c0 = 16 * (int)((int64_t)blocks * s / strips);
    *n = (end < C ? end : C) - *c0;
}

/* Each kernel has the signature of its backend table entry
 * (core/backend.h, which gives the shapes and the contract), so cpu/table.c
 * lists them as they are. */

/* LayerNorm */
vit_status vit_layernorm_forward(vit_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                 const float *weight, const float *bias, int64_t rows, int C, float eps);
vit_status vit_layernorm_backward(vit_backend *be, float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, const float *mean, const float *rstd,
                                  int64_t rows, int C);

/* GELU */
vit_status vit_gelu_forward(vit_backend *be, float *out, const float *inp, int64_t n);
vit_status vit_gelu_backward(vit_backend *be, float *dinp, const float *inp, const float *dout, int64_t n);
vit_status vit_gelu_bias_backward(vit_backend *be, float *out, float *dinp, float *dbias, const float *inp,
                                  const float *dout, int64_t rows, int C);
vit_status vit_quick_gelu_forward(vit_backend *be, float *out, const float *inp, int64_t n);
vit_status vit_quick_gelu_backward(vit_backend *be, float *dinp, const float *inp, const float *dout, int64_t n);

/* softmax */
vit_status vit_softmax_forward(vit_backend *be, float *out, const float *inp, int64_t rows, int C);
vit_status vit_softmax_backward(vit_backend *be, float *dinp, const float *out, const float *dout, int64_t rows,
                                int C);

/* attention */
void vit_attention_sizes(vit_backend *be, int B, int T, int H, int hd, size_t *saved_bytes, size_t *scratch_bytes);
vit_status vit_attention_forward(vit_backend *be, float *out, void *saved, const float *qkv, int B, int T, int H,
                                 int hd, float scale, float drop_p, uint64_t drop_key, void *given_scratch);
vit_status vit_attention_backward(vit_backend *be, float *dqkv, bool accumulate, const float *dout, const float *qkv,
                                  const float *out, const void *saved, int B, int T, int H, int hd, float scale,
                                  float drop_p, uint64_t drop_key, void *given_scratch);

/* attention of learned queries (the attention-pool head) */
vit_status vit_pool_attention_forward(vit_backend *be, float *out, float *probs, const float *q, const float *kv,
                                      int B, int L, int N, int H, int hd, float scale, float *scratch);
vit_status vit_pool_attention_backward(vit_backend *be, float *dq, float *dkv, const float *dout, const float *q,
                                       const float *kv, const float *probs, int B, int L, int N, int H, int hd,
                                       float scale, float *scratch);

/* cross-entropy */
vit_status vit_cross_entropy_forward(vit_backend *be, float *loss, float *probs, const float *logits,
                                     const int32_t *labels, int B, int C, float smoothing);
vit_status vit_cross_entropy_backward(vit_backend *be, float *dlogits, const float *probs, const int32_t *labels,
                                      int B, int C, float smoothing, const float *dloss);

/* patch embedding */
vit_status vit_patchify(vit_backend *be, float *patches, const float *images, int B, int Cin, int H, int W, int p);
vit_status vit_unpatchify_add(vit_backend *be, float *dimages, const float *dpatches, int B, int Cin, int H, int W,
                              int p);

/* tokens, residuals, dropout, pooling, sums */
vit_status vit_embed_tokens_forward(vit_backend *be, float *tokens, const float *patch, const float *cls,
                                    const float *reg, const float *pos, int B, int N, int D, int R, int pos_prefix);
vit_status vit_embed_tokens_backward(vit_backend *be, float *dpatch, float *dcls, float *dreg, float *dpos,
                                     const float *dtokens, int B, int N, int D, int R, int has_cls, int pos_prefix);
vit_status vit_residual_forward(vit_backend *be, float *out, const float *x, const float *y, const float *scale,
                                int B, int64_t per);
vit_status vit_residual_backward(vit_backend *be, float *dx, float *dy, const float *dout, const float *scale, int B,
                                 int64_t per);
vit_status vit_dropout_forward(vit_backend *be, float *out, const float *inp, int64_t n, float p, uint64_t key);
vit_status vit_dropout_backward(vit_backend *be, float *dinp, const float *dout, int64_t n, float p, uint64_t key);
vit_status vit_pool_forward(vit_backend *be, float *out, const float *tokens, int B, int T, int D, int avg,
                            int skip);
vit_status vit_pool_backward(vit_backend *be, float *dtokens, const float *dout, int B, int T, int D, int avg,
                             int skip);
vit_status vit_scale_channels_forward(vit_backend *be, float *out, const float *inp, const float *gamma, int64_t rows,
                                      int C);
vit_status vit_scale_channels_backward(vit_backend *be, float *dinp, float *dgamma, const float *dout,
                                       const float *inp, const float *gamma, int64_t rows, int C);
vit_status vit_add(vit_backend *be, float *out, const float *a, const float *b, int64_t n);
vit_status vit_bias_backward(vit_backend *be, float *dbias, const float *dout, int64_t rows, int C);

/* bicubic resampling */
vit_status vit_resample_bicubic(vit_backend *be, float *out, int gh_out, int gw_out, const float *inp, int gh_in,
                                int gw_in, int D);
vit_status vit_resample_bicubic_backward(vit_backend *be, float *dinp, int gh_in, int gw_in, const float *dout,
                                         int gh_out, int gw_out, int D);

/* AdamW and the gradient norm */
vit_status vit_adamw_update(vit_backend *be, float *param, float *m, float *v, const float *grad, int64_t n,
                            const vit_adamw_consts *k);
vit_status vit_sum_squares(vit_backend *be, const float *x, int64_t n, double *result);

#endif
