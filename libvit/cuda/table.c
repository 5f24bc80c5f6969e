/*
 * The CUDA backend's table: each kernel entry checks what the kernel cannot
 * (the shapes that size a launch), enqueues its kernels on the backend's
 * stream and turns a launch error into a vit_status naming the entry.
 */
#include "cuda/cuda.h"
#include "cuda/kernels.h"

#define STREAM(be) (vit_cuda_of(be)->stream)
#define LAUNCH(call, what) return vit_cuda_check((call), (what))

/* Column sums of dout [rows, C] (times inp, or times the normalised input
 * when mean is given) added into out [C], in fixed row chunks. */
static vit_status column_sums(vit_backend *be, float *out, const float *dout, const float *inp, const float *mean,
                              const float *rstd, int64_t rows, int C, const char *what) {
    if (!out || rows <= 0 || C <= 0) return VIT_OK;
    const int64_t chunks = (rows + VIT_CUK_CHUNK_ROWS - 1) / VIT_CUK_CHUNK_ROWS;
    if (chunks > 65535)
        return vit_fail(VIT_ERR_SHAPE, "CUDA %s: %lld rows exceed %d", what, (long long)rows, 65535 * VIT_CUK_CHUNK_ROWS);
    void *partial;
    VIT_TRY(vit_cuda_scratch(vit_cuda_of(be), (size_t)chunks * C * sizeof(float), &partial));
    VIT_TRY(vit_cuda_check(vit_cuk_colsum_partial(partial, dout, inp, mean, rstd, rows, C, STREAM(be)), what));
    LAUNCH(vit_cuk_colsum_finish(out, partial, (int)chunks, C, STREAM(be)), what);
}

static vit_status layernorm_forward(vit_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                    const float *weight, const float *bias, int64_t rows, int C, float eps) {
    if (rows <= 0 || C <= 0) return VIT_OK;
    LAUNCH(vit_cuk_layernorm_forward(out, mean, rstd, inp, weight, bias, rows, C, eps, STREAM(be)),
           "layernorm_forward");
}

static vit_status layernorm_backward(vit_backend *be, float *dinp, float *dweight, float *dbias, const float *dout,
                                     const float *inp, const float *weight, const float *mean, const float *rstd,
                                     int64_t rows, int C) {
    if (rows <= 0 || C <= 0) return VIT_OK;
    if (!mean || !rstd) return vit_fail(VIT_ERR_INVALID_ARGUMENT, "CUDA layernorm_backward: mean or rstd is NULL");
    if (dinp)
        VIT_TRY(vit_cuda_check(
            vit_cuk_layernorm_backward_input(dinp, dout, inp, weight, mean, rstd, rows, C, STREAM(be)),
            "layernorm_backward"));
    VIT_TRY(column_sums(be, dweight, dout, inp, mean, rstd, rows, C, "layernorm_backward (weight)"));
    return column_sums(be, dbias, dout, NULL, NULL, NULL, rows, C, "layernorm_backward (bias)");
}

static vit_status gelu_forward(vit_backend *be, float *out, const float *inp, int64_t n) {
    if (n <= 0) return VIT_OK;
    LAUNCH(vit_cuk_gelu_forward(out, inp, n, STREAM(be)), "gelu_forward");
}

static vit_status gelu_backward(vit_backend *be, float *dinp, const float *inp, const float *dout, int64_t n) {
    if (n <= 0) return VIT_OK;
    LAUNCH(vit_cuk_gelu_backward(dinp, inp, dout, n, STREAM(be)), "gelu_backward");
}

/* gelu_forward's and gelu_backward's kernels, then bias_backward's column sums. */
static vit_status gelu_bias_backward(vit_backend *be, float *out, float *dinp, float *dbias, const float *inp,
                                     const float *dout, int64_t rows, int C) {
    if (out) VIT_TRY(gelu_forward(be, out, inp, rows * C));
    VIT_TRY(gelu_backward(be, dinp, inp, dout, rows * C));
    return column_sums(be, dbias, dinp, NULL, NULL, NULL, rows, C, "gelu_bias_backward (bias)");
}

static vit_status quick_gelu_forward(vit_backend *be, float *out, const float *inp, int64_t n) {
    if (n <= 0) return VIT_OK;
    LAUNCH(vit_cuk_quick_gelu_forward(out, inp, n, STREAM(be)), "quick_gelu_forward");
}

static vit_status quick_gelu_backward(vit_backend *be, float *dinp, const float *inp, const float *dout, int64_t n) {
    if (n <= 0) return VIT_OK;
    LAUNCH(vit_cuk_quick_gelu_backward(dinp, inp, dout, n, STREAM(be)), "quick_gelu_backward");
}

static vit_status softmax_forward(vit_backend *be, float *out, const float *inp, int64_t rows, int C) {
    if (rows <= 0 || C <= 0) return VIT_OK;
    LAUNCH(vit_cuk_softmax_forward(out, inp, rows, C, 1.0f, STREAM(be)), "softmax_forward");
}

static vit_status softmax_backward(vit_backend *be, float *dinp, const float *out, const float *dout, int64_t rows,
                                   int C) {
    if (rows <= 0 || C <= 0) return VIT_OK;
    LAUNCH(vit_cuk_softmax_backward(dinp, out, dout, rows, C, 1.0f, 1, 0.0f, 0, STREAM(be)), "softmax_backward");
}

static vit_status cross_entropy_forward(vit_backend *be, float *loss, float *probs, const float *logits,
                                        const int32_t *labels, int B, int C, float smoothing) {
    if (B <= 0 || C <= 0) return vit_cuda_zero(be, loss, sizeof *loss);
    void *rowloss;
    VIT_TRY(vit_cuda_scratch(vit_cuda_of(be), (size_t)B * sizeof(double), &rowloss));
    LAUNCH(vit_cuk_cross_entropy_forward(loss, probs, rowloss, logits, labels, B, C, smoothing, STREAM(be)),
           "cross_entropy_forward");
}

static vit_status cross_entropy_backward(vit_backend *be, float *dlogits, const float *probs, const int32_t *labels,
                                         int B, int C, float smoothing, const float *dloss) {
    if (B <= 0 || C <= 0) return VIT_OK;
    LAUNCH(vit_cuk_cross_entropy_backward(dlogits, probs, labels, B, C, smoothing, dloss, STREAM(be)),
           "cross_entropy_backward");
}

static vit_status patchify(vit_backend *be, float *patches, const float *images, int B, int Cin, int H, int W, int p) {
    if (p <= 0) return vit_fail(VIT_ERR_INVALID_ARGUMENT, "CUDA patchify: patch size %d", p);
    LAUNCH(vit_cuk_patchify(patches, images, B, Cin, H, W, p, STREAM(be)), "patchify");
}

static vit_status unpatchify_add(vit_backend *be, float *dimages, const float *dpatches, int B, int Cin, int H, int W,
                                 int p) {
    if (p <= 0) return vit_fail(VIT_ERR_INVALID_ARGUMENT, "CUDA unpatchify_add: patch size %d", p);
    if ((int64_t)B * Cin * H * W == 0) return VIT_OK;
    LAUNCH(vit_cuk_unpatchify_add(dimages, dpatches, B, Cin, H, W, p, STREAM(be)), "unpatchify_add");
}

static vit_status embed_tokens_forward(vit_backend *be, float *tokens, const float *patch, const float *cls,
                                       const float *reg, const float *pos, int B, int N, int D, int R, int pos_prefix) {
    if ((int64_t)B * D == 0) return VIT_OK;
    LAUNCH(vit_cuk_embed_tokens_forward(tokens, patch, cls, reg, pos, B, N, D, R, pos_prefix, STREAM(be)),
           "embed_tokens_forward");
}

static vit_status embed_tokens_backward(vit_backend *be, float *dpatch, float *dcls, float *dreg, float *dpos,
                                        const float *dtokens, int B, int N, int D, int R, int has_cls, int pos_prefix) {
    if ((int64_t)B * D == 0) return VIT_OK;
    LAUNCH(vit_cuk_embed_tokens_backward(dpatch, dcls, dreg, dpos, dtokens, B, N, D, R, has_cls, pos_prefix,
                                         STREAM(be)),
           "embed_tokens_backward");
}

static vit_status residual_forward(vit_backend *be, float *out, const float *x, const float *y, const float *scale,
                                   int B, int64_t per) {
    if (B <= 0 || per <= 0) return VIT_OK;
    LAUNCH(vit_cuk_residual_forward(out, x, y, scale, B, per, STREAM(be)), "residual_forward");
}

static vit_status residual_backward(vit_backend *be, float *dx, float *dy, const float *dout, const float *scale,
                                    int B, int64_t per) {
    if (B <= 0 || per <= 0 || (!dx && !dy)) return VIT_OK;
    LAUNCH(vit_cuk_residual_backward(dx, dy, dout, scale, B, per, STREAM(be)), "residual_backward");
}

static vit_status dropout_forward(vit_backend *be, float *out, const float *inp, int64_t n, float p, uint64_t key) {
    if (n <= 0) return VIT_OK;
    if (p <= 0.0f) return out == inp ? VIT_OK : vit_cuda_copy(be, out, inp, (size_t)n * sizeof(float), VIT_COPY_ON_DEVICE);
    LAUNCH(vit_cuk_dropout(out, inp, n, p, key, 0, STREAM(be)), "dropout_forward");
}

static vit_status dropout_backward(vit_backend *be, float *dinp, const float *dout, int64_t n, float p, uint64_t key) {
    if (n <= 0) return VIT_OK;
    if (p <= 0.0f) LAUNCH(vit_cuk_add(dinp, dinp, dout, n, STREAM(be)), "dropout_backward");
    LAUNCH(vit_cuk_dropout(dinp, dout, n, p, key, 1, STREAM(be)), "dropout_backward");
}

static vit_status pool_forward(vit_backend *be, float *out, const float *tokens, int B, int T, int D, int avg,
                               int skip) {
    if ((int64_t)B * D == 0) return VIT_OK;
    LAUNCH(vit_cuk_pool_forward(out, tokens, B, T, D, avg, skip, STREAM(be)), "pool_forward");
}

static vit_status pool_backward(vit_backend *be, float *dtokens, const float *dout, int B, int T, int D, int avg,
                                int skip) {
    if ((int64_t)B * T * D == 0) return VIT_OK;
    LAUNCH(vit_cuk_pool_backward(dtokens, dout, B, T, D, avg, skip, STREAM(be)), "pool_backward");
}

static vit_status scale_channels_forward(vit_backend *be, float *out, const float *inp, const float *gamma,
                                         int64_t rows, int C) {
    if (rows <= 0 || C <= 0) return VIT_OK;
    LAUNCH(vit_cuk_scale_channels_forward(out, inp, gamma, rows, C, STREAM(be)), "scale_channels_forward");
}

static vit_status scale_channels_backward(vit_backend *be, float *dinp, float *dgamma, const float *dout,
                                          const float *inp, const float *gamma, int64_t rows, int C) {
    if (rows <= 0 || C <= 0) return VIT_OK;
    if (dinp)
        VIT_TRY(vit_cuda_check(vit_cuk_scale_channels_backward(dinp, dout, gamma, rows, C, STREAM(be)),
                               "scale_channels_backward"));
    return column_sums(be, dgamma, dout, inp, NULL, NULL, rows, C, "scale_channels_backward (gamma)");
}

static vit_status add(vit_backend *be, float *out, const float *a, const float *b, int64_t n) {
    if (n <= 0) return VIT_OK;
    LAUNCH(vit_cuk_add(out, a, b, n, STREAM(be)), "add");
}

static vit_status bias_backward(vit_backend *be, float *dbias, const float *dout, int64_t rows, int C) {
    return column_sums(be, dbias, dout, NULL, NULL, NULL, rows, C, "bias_backward");
}

static vit_status resample_bicubic(vit_backend *be, float *out, int gh_out, int gw_out, const float *inp, int gh_in,
                                   int gw_in, int D) {
    if ((int64_t)gh_out * gw_out * D == 0) return VIT_OK;
    LAUNCH(vit_cuk_resample_bicubic(out, gh_out, gw_out, inp, gh_in, gw_in, D, STREAM(be)), "resample_bicubic");
}

static vit_status resample_bicubic_backward(vit_backend *be, float *dinp, int gh_in, int gw_in, const float *dout,
                                            int gh_out, int gw_out, int D) {
    if ((int64_t)gh_out * gw_out * D == 0) return VIT_OK;
    LAUNCH(vit_cuk_resample_bicubic_backward(dinp, gh_in, gw_in, dout, gh_out, gw_out, D, STREAM(be)),
           "resample_bicubic_backward");
}

static vit_status adamw_update(vit_backend *be, float *param, float *m, float *v, const float *grad, int64_t n,
                               const vit_adamw_consts *k) {
    if (n <= 0) return VIT_OK;
    LAUNCH(vit_cuk_adamw(param, m, v, grad, n, *k, STREAM(be)), "adamw_update");
}

static vit_status sum_squares(vit_backend *be, const float *x, int64_t n, double *result) {
    const int64_t chunks = n > 0 ? (n + VIT_CUK_CHUNK_ELEMS - 1) / VIT_CUK_CHUNK_ELEMS : 0;
    void *buf;
    VIT_TRY(vit_cuda_scratch(vit_cuda_of(be), (size_t)(chunks + 1) * sizeof(double), &buf));
    double *res = buf;
    VIT_TRY(vit_cuda_check(vit_cuk_sum_squares(res, res + 1, x, n > 0 ? n : 0, STREAM(be)), "sum_squares"));
    return vit_cuda_copy(be, result, res, sizeof *result, VIT_COPY_TO_HOST);
}

const vit_backend_ops vit_cuda_ops = {
    .name = "cuda",
    .destroy = vit_cuda_destroy,
    .alloc = vit_cuda_alloc,
    .free = vit_cuda_free,
    .copy = vit_cuda_copy,
    .zero = vit_cuda_zero,
    .fill = vit_cuda_fill,
    .sync = vit_cuda_sync,
    .gemm = vit_cuda_gemm,
    .gemm_batched = vit_cuda_gemm_batched,
    .layernorm_forward = layernorm_forward,
    .layernorm_backward = layernorm_backward,
    .gelu_forward = gelu_forward,
    .gelu_backward = gelu_backward,
    .gelu_bias_backward = gelu_bias_backward,
    .quick_gelu_forward = quick_gelu_forward,
    .quick_gelu_backward = quick_gelu_backward,
    .softmax_forward = softmax_forward,
    .softmax_backward = softmax_backward,
    .attention_sizes = vit_cuda_attention_sizes,
    .attention_forward = vit_cuda_attention_forward,
    .attention_backward = vit_cuda_attention_backward,
    .pool_attention_forward = vit_cuda_pool_attention_forward,
    .pool_attention_backward = vit_cuda_pool_attention_backward,
    .cross_entropy_forward = cross_entropy_forward,
    .cross_entropy_backward = cross_entropy_backward,
    .patchify = patchify,
    .unpatchify_add = unpatchify_add,
    .embed_tokens_forward = embed_tokens_forward,
    .embed_tokens_backward = embed_tokens_backward,
    .residual_forward = residual_forward,
    .residual_backward = residual_backward,
    .dropout_forward = dropout_forward,
    .dropout_backward = dropout_backward,
    .pool_forward = pool_forward,
    .pool_backward = pool_backward,
    .scale_channels_forward = scale_channels_forward,
    .scale_channels_backward = scale_channels_backward,
    .add = add,
    .bias_backward = bias_backward,
    .resample_bicubic = resample_bicubic,
    .resample_bicubic_backward = resample_bicubic_backward,
    .adamw_update = adamw_update,
    .sum_squares = sum_squares,
    .host_alloc = vit_cuda_host_alloc,
    .host_free = vit_cuda_host_free,
    .upload_async = vit_cuda_upload_async,
    .upload_wait = vit_cuda_upload_wait,
};
