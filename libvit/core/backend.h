/*
 * The backend table: everything that touches a device's memory or runs on
 * its processors, behind one set of function pointers, called eagerly (no
 * graph). The context picks a backend; ops, the tape, the model and the
 * optimizer call through the table and know nothing of the device.
 *
 * Conventions of every kernel entry (docs/backends.md has the full contract):
 *   - pointers are device memory from this backend's alloc (or a tensor's);
 *   - outputs first, shapes in the comment;
 *   - every gradient ACCUMULATES (+=) into its buffer, so a value used twice
 *     (a residual) receives both contributions;
 *   - results do not depend on the thread count or launch shape: reductions
 *     run in a fixed order, random masks are vit_rng_uniform(key, index);
 *   - each returns a vit_status (a device error becomes one with the
 *     library's own message); host-side results (a loss, a norm) come back
 *     only through copy or the entries that say so.
 */
#ifndef VIT_CORE_BACKEND_H
#define VIT_CORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* ---------------------------------------------------------------- products */
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
    /* Nonzero: B is a weight whose contents stay the same for as long as
     * this stamp does (vit_stamp_next), so the backend may keep B reordered
     * into the layout its products prefer, made once per (B, stamp) and
     * reused; 0: B is read as it is. */
    uint64_t b_stamp;
} vit_gemm;

/* Sizes, leading dimensions, flags and pointers of a (batched: batch items,
 * operand i at stride_* floats from operand 0; 2-D: batch 1, strides 0)
 * product, and that C items do not overlap; fn names the caller. */
vit_status vit_gemm_check(const char *fn, const vit_gemm *g, int batch, ptrdiff_t stride_a, ptrdiff_t stride_b,
                          ptrdiff_t stride_c);

/* ------------------------------------------------------------------ memory */
typedef enum vit_copy_kind {
    VIT_COPY_TO_DEVICE = 0,   /* host -> device */
    VIT_COPY_TO_HOST = 1,     /* device -> host */
    VIT_COPY_ON_DEVICE = 2    /* device -> device; the ranges may overlap (memmove) */
} vit_copy_kind;

typedef struct vit_backend vit_backend;

typedef struct vit_backend_ops {
    const char *name; /* "cpu-avx512", "cpu-avx2", "cpu-baseline", ... */

    /* Releases the backend's own state (vit_backend_release calls it). */
    void (*destroy)(vit_backend *be);

    /* Memory. alloc: 64-byte aligned, not zeroed; NULL with the thread error
     * set (VIT_ERR_OUT_OF_MEMORY) on failure. free(NULL) is a no-op. */
    void *(*alloc)(vit_backend *be, size_t bytes);
    void (*free)(vit_backend *be, void *p);
    vit_status (*copy)(vit_backend *be, void *dst, const void *src, size_t bytes, vit_copy_kind kind);
    vit_status (*zero)(vit_backend *be, void *p, size_t bytes);
    vit_status (*fill)(vit_backend *be, float *p, float value, int64_t n);
    /* Waits until every queued operation has finished. */
    vit_status (*sync)(vit_backend *be);

    /* The matrix product; batched: operand i starts stride_* floats after operand 0. */
    vit_status (*gemm)(vit_backend *be, const vit_gemm *g);
    vit_status (*gemm_batched)(vit_backend *be, const vit_gemm *g, int batch, ptrdiff_t stride_a,
                               ptrdiff_t stride_b, ptrdiff_t stride_c);
    /* The weights in [p, p + bytes) are about to be freed: drop what gemm
     * derived from them (reordered copies made for a b_stamp). May be NULL
     * (a backend that keeps nothing). */
    void (*forget_weights)(vit_backend *be, const void *p, size_t bytes);

    /* LayerNorm over the last dimension (biased variance), as torch.nn.LayerNorm.
     * out [rows, C]; mean, rstd [rows] saved for backward (may be NULL);
     * weight, bias [C] (NULL: ones, zeros). */
    vit_status (*layernorm_forward)(vit_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                    const float *weight, const float *bias, int64_t rows, int C, float eps);
    /* dinp [rows, C], dweight, dbias [C] (each may be NULL) += */
    vit_status (*layernorm_backward)(vit_backend *be, float *dinp, float *dweight, float *dbias, const float *dout,
                                     const float *inp, const float *weight, const float *mean, const float *rstd,
                                     int64_t rows, int C);

    /* Exact GELU (vit_gelu). out [n]; dinp [n] += dout * gelu'(inp), or, with
     * dinp == dout, the output's gradient becomes the input's in place:
     * dinp = dout * gelu'(inp). */
    vit_status (*gelu_forward)(vit_backend *be, float *out, const float *inp, int64_t n);
    vit_status (*gelu_backward)(vit_backend *be, float *dinp, const float *inp, const float *dout, int64_t n);
    /* gelu_backward over dinp [rows, C], then dbias [C] += the column sums of
     * dinp (as bias_backward, bit for bit): the bias gradient of the linear
     * layer before the GELU, taken while dinp is being written or still in
     * cache rather than read back from memory later. out [rows, C] (NULL:
     * none) = GELU(inp) in the same pass, the GELU's output again for its
     * reader's weight gradient (equal to gelu_forward's to a rounding in the
     * last place of a row's final elements, where C leaves a part-filled
     * register). */
    vit_status (*gelu_bias_backward)(vit_backend *be, float *out, float *dinp, float *dbias, const float *inp,
                                     const float *dout, int64_t rows, int C);
    /* QuickGELU x * sigmoid(1.702 x) (vit_quick_gelu, OpenAI CLIP), the same contract. */
    vit_status (*quick_gelu_forward)(vit_backend *be, float *out, const float *inp, int64_t n);
    vit_status (*quick_gelu_backward)(vit_backend *be, float *dinp, const float *inp, const float *dout, int64_t n);

    /* Row-wise softmax, max-subtracted. out [rows, C] (may alias inp); dinp += */
    vit_status (*softmax_forward)(vit_backend *be, float *out, const float *inp, int64_t rows, int C);
    vit_status (*softmax_backward)(vit_backend *be, float *dinp, const float *out, const float *dout,
                                   int64_t rows, int C);

    /* Multi-head self-attention after the fused qkv projection.
     * qkv [B, T, 3, H, hd] (timm's qkv(x).reshape(B, T, 3, H, hd));
     * out [B, T, H * hd] (heads concatenated). scores = q k^T * scale;
     * attention dropout drops probability element ((b * H + h) * T + i) * T + j
     * iff vit_rng_uniform(drop_key, that) < drop_p.
     * saved: what forward keeps for backward, opaque bytes of the size
     * attention_sizes gives (NULL in inference, and when that size is 0:
     * backward then recomputes what it needs); scratch: per-call working
     * memory of the size it gives, for forward and backward alike. */
    void (*attention_sizes)(vit_backend *be, int B, int T, int H, int hd, size_t *saved_bytes,
                            size_t *scratch_bytes);
    vit_status (*attention_forward)(vit_backend *be, float *out, void *saved, const float *qkv, int B, int T, int H,
                                    int hd, float scale, float drop_p, uint64_t drop_key, void *scratch);
    /* dqkv [B, T, 3, H, hd] += (accumulate) or = the gradient, the latter
     * for a fresh buffer, which is then neither zeroed nor read; out is the
     * forward's output. */
    vit_status (*attention_backward)(vit_backend *be, float *dqkv, bool accumulate, const float *dout,
                                     const float *qkv, const float *out, const void *saved, int B, int T, int H,
                                     int hd, float scale, float drop_p, uint64_t drop_key, void *scratch);

    /* Attention of L learned queries over each sample's N tokens (timm's
     * AttentionPoolLatent, no dropout): q [L, H * hd] shared by the batch,
     * kv [B, N, 2, H, hd] (its kv(x).reshape(B, N, 2, H, hd)); out [B, L, H * hd].
     * probs [B, H, L, N]: the softmax, kept for backward (NULL in inference);
     * scratch [B, H, L, N] floats of working memory.
     * Backward: dq [L, H * hd] (sums over the batch in a fixed order), dkv (each may be NULL) += */
    vit_status (*pool_attention_forward)(vit_backend *be, float *out, float *probs, const float *q, const float *kv,
                                         int B, int L, int N, int H, int hd, float scale, float *scratch);
    vit_status (*pool_attention_backward)(vit_backend *be, float *dq, float *dkv, const float *dout, const float *q,
                                          const float *kv, const float *probs, int B, int L, int N, int H, int hd,
                                          float scale, float *scratch);

    /* Softmax cross-entropy with PyTorch's label smoothing s:
     * loss [1] = mean over b of -(1 - s) log p[b, label] - (s / C) sum_c log p[b, c];
     * probs [B, C] saved for backward; labels [B] in 0..C-1 (device memory). */
    vit_status (*cross_entropy_forward)(vit_backend *be, float *loss, float *probs, const float *logits,
                                        const int32_t *labels, int B, int C, float smoothing);
    /* dlogits [B, C] += dloss[0] / B * (probs - target); dloss [1] in device memory. */
    vit_status (*cross_entropy_backward)(vit_backend *be, float *dlogits, const float *probs,
                                         const int32_t *labels, int B, int C, float smoothing,
                                         const float *dloss);

    /* patches [B, N, Cin * p * p] from images [B, Cin, H, W], N = (H / p) * (W / p)
     * in row-major grid order, each patch flattened (c, i, j) as a conv weight
     * [D, Cin, p, p] is; dimages += the patches' gradients put back in place. */
    vit_status (*patchify)(vit_backend *be, float *patches, const float *images, int B, int Cin, int H, int W,
                           int p);
    vit_status (*unpatchify_add)(vit_backend *be, float *dimages, const float *dpatches, int B, int Cin, int H,
                                 int W, int p);

    /* tokens [B, P + N, D], P = (cls != NULL) + R prefix rows: the class token
     * cls [D] (NULL: none), then the registers reg [R, D] (NULL when R = 0), then
     * patch [B, N, D]. pos is added to every row (pos [P + N, D], pos_prefix = 1)
     * or to the patch rows only (pos [N, D], pos_prefix = 0: timm's no_embed_class).
     * Backward: dpatch [B, N, D], dcls [D], dreg [R, D], dpos (each may be NULL) += */
    vit_status (*embed_tokens_forward)(vit_backend *be, float *tokens, const float *patch, const float *cls,
                                       const float *reg, const float *pos, int B, int N, int D, int R,
                                       int pos_prefix);
    vit_status (*embed_tokens_backward)(vit_backend *be, float *dpatch, float *dcls, float *dreg, float *dpos,
                                        const float *dtokens, int B, int N, int D, int R, int has_cls,
                                        int pos_prefix);

    /* out [B, per] = x + scale[b] * y (DropPath: scale [B] is 0 or 1 / keep
     * per sample, device memory; NULL means 1). out may be x or y.
     * Backward: dx, dy [B, per] += (either may be NULL). */
    vit_status (*residual_forward)(vit_backend *be, float *out, const float *x, const float *y,
                                   const float *scale, int B, int64_t per);
    vit_status (*residual_backward)(vit_backend *be, float *dx, float *dy, const float *dout, const float *scale,
                                    int B, int64_t per);

    /* out [n] = inp * mask * vit_dropout_keep_scale(p), mask_i = vit_rng_uniform(key, i) >= p;
     * out may alias inp. Backward: dinp += the same of dout. */
    vit_status (*dropout_forward)(vit_backend *be, float *out, const float *inp, int64_t n, float p,
                                  uint64_t key);
    vit_status (*dropout_backward)(vit_backend *be, float *dinp, const float *dout, int64_t n, float p,
                                   uint64_t key);

    /* out [B, D]: token 0 (avg = 0) or the mean of tokens skip..T-1 (avg = 1) of
     * tokens [B, T, D] (skip: the class and register tokens). */
    vit_status (*pool_forward)(vit_backend *be, float *out, const float *tokens, int B, int T, int D, int avg,
                               int skip);
    vit_status (*pool_backward)(vit_backend *be, float *dtokens, const float *dout, int B, int T, int D, int avg,
                                int skip);

    /* Layer scale: out [rows, C] = inp * gamma [C] (out may alias inp).
     * Backward: dinp [rows, C] += dout * gamma; dgamma [C] += column sums of
     * dout * inp (each may be NULL; fixed summation order). */
    vit_status (*scale_channels_forward)(vit_backend *be, float *out, const float *inp, const float *gamma,
                                         int64_t rows, int C);
    vit_status (*scale_channels_backward)(vit_backend *be, float *dinp, float *dgamma, const float *dout,
                                          const float *inp, const float *gamma, int64_t rows, int C);

    /* out [n] = a + b (out may alias a). */
    vit_status (*add)(vit_backend *be, float *out, const float *a, const float *b, int64_t n);
    /* dbias [C] += the column sums of dout [rows, C]. */
    vit_status (*bias_backward)(vit_backend *be, float *dbias, const float *dout, int64_t rows, int C);

    /* A grid of vectors [gh_in, gw_in, D] to [gh_out, gw_out, D] as
     * torch.nn.functional.interpolate(mode='bicubic', align_corners=False)
     * on the [D, gh, gw] view (timm's resample_abs_pos_embed); backward is
     * its adjoint, dinp += */
    vit_status (*resample_bicubic)(vit_backend *be, float *out, int gh_out, int gw_out, const float *inp,
                                   int gh_in, int gw_in, int D);
    vit_status (*resample_bicubic_backward)(vit_backend *be, float *dinp, int gh_in, int gw_in,
                                            const float *dout, int gh_out, int gw_out, int D);

    /* One AdamW step over n floats of the flat buffers (vit_adamw_element). */
    vit_status (*adamw_update)(vit_backend *be, float *param, float *m, float *v, const float *grad, int64_t n,
                               const vit_adamw_consts *k);
    /* *result (host) = sum of x[i]^2 in double, the same bits on any thread count. */
    vit_status (*sum_squares)(vit_backend *be, const float *x, int64_t n, double *result);

    /* Overlapped uploads (optional: NULL in a backend whose memory is the
     * host's). host_alloc gives page-locked host memory (NULL with the thread
     * error set on failure); upload_async queues a copy of bytes from such
     * memory to device memory after the work already queued and returns at
     * once with a ticket; the source must stay untouched until
     * upload_wait(ticket) has returned. The data loader uses them so that the
     * next batch's upload is queued behind the current step instead of
     * waiting for it. */
    void *(*host_alloc)(vit_backend *be, size_t bytes);
    void (*host_free)(vit_backend *be, void *p);
    vit_status (*upload_async)(vit_backend *be, void *dst, const void *src, size_t bytes, uint64_t *ticket);
    vit_status (*upload_wait)(vit_backend *be, uint64_t ticket);
} vit_backend_ops;

/* A backend instance: its table, its device and its own state. Reference
 * counted: the context holds one reference and every tensor another, so a
 * tensor may outlive its context. */
struct vit_backend {
    const vit_backend_ops *ops;
    vit_device device;
    /* Allocations are host pointers the library may read and write directly
     * (the CPU): initialisation and parameter reads then skip a staging copy. */
    bool host_memory;
    int refs;
    void *state; /* the backend's own */
};

/* The CPU backend at the ISA level this process dispatches (vit_cpu_isa). */
vit_status vit_backend_create_cpu(vit_backend **out);
/* The CPU backend at an explicit ISA level, for tests and benchmarks;
 * VIT_ERR_UNSUPPORTED when the processor lacks it. */
vit_status vit_backend_create_cpu_isa(vit_cpu_isa isa, vit_backend **out);
/* The highest ISA level the processor has, capped by $VIT_MAX_CPU_ISA (read
 * once per process); what vit_backend_create_cpu uses. */
vit_cpu_isa vit_cpu_isa_dispatched(void);
/* Whether the processor has isa, regardless of the cap. */
bool vit_cpu_isa_supported(vit_cpu_isa isa);
const char *vit_cpu_isa_name(vit_cpu_isa isa);

/* The CUDA backend of libvit-cuda.so (core/device.c loads it) on GPU
 * device_index with products in precision (FP32, TF32 or BF16, resolved);
 * VIT_ERR_UNSUPPORTED naming the cause when the module, the CUDA libraries
 * or a usable GPU are missing. ctx (may be NULL) receives its log lines. */
vit_status vit_backend_create_cuda(int device_index, vit_precision precision, const vit_context *ctx,
                                   vit_backend **out);

vit_backend *vit_backend_retain(vit_backend *be);
void vit_backend_release(vit_backend *be); /* NULL is a no-op */

#endif
