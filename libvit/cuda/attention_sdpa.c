/*
 * The CUDA backend's attention through cuDNN's fused SDPA (cuda/sdpa.h) in
 * BF16 mode: libvit's activations are fp32, so q, k, v (and out, dout) are
 * rounded to bf16 into the attention memory, cuDNN runs on them, and its
 * bf16 results are widened back (dqkv accumulated, as the table's contract
 * says).
 *
 * Whether cuDNN serves a call is decided the same way in forward and in
 * backward, from the precision, the dropout rate and the plan cache (a shape
 * either has both its training plans or falls back for good), so backward
 * knows without asking the device that saved holds cuDNN's statistics
 * [B, H, T] fp32 rather than the probabilities of libvit's own path.
 */
#include "cuda/cuda.h"
#include "cuda/kernels.h"
#include "cuda/sdpa.h"

#define ALIGN 256

static size_t up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

/* dst [rows, cols] bf16 <- src [rows, cols] fp32, both dense */
static cudaError_t round_bf16(void *dst, const float *src, int64_t rows, int64_t cols, cudaStream_t st) {
    return vit_cuk_to_bf16(dst, src, 1, rows, cols, cols, rows * cols, cols, st);
}

/* The handle and the plan cache, made on first use (cuDNN is loaded only by
 * programs that run bf16 attention); NULL when cuDNN cannot be had, said once. */
static vit_sdpa_cache *cache_of(vit_cuda_state *s) {
    if (s->sdpa || s->sdpa_unavailable) return s->sdpa;
    cudnnStatus_t st = cudnnCreate(&s->dnn);
    if (!st) st = cudnnSetStream(s->dnn, s->stream);
    if (st) {
        vit_log(NULL, VIT_LOG_WARN, "CUDA attention: cuDNN unavailable (%s); using libvit's own kernels",
                cudnnGetErrorString(st));
    } else if (vit_sdpa_cache_create(&s->sdpa, s->dnn, NULL) != VIT_OK) {
        size_t v = cudnnGetVersion();
        vit_log(NULL, VIT_LOG_WARN, "CUDA attention: no cuDNN fused attention (cuDNN %zu.%zu.%zu loaded, 9.13.1 or "
                "newer needed, or no memory); using libvit's own kernels", v / 10000, v / 100 % 100, v % 100);
    }
    s->sdpa_unavailable = !s->sdpa;
    return s->sdpa;
}

void vit_cuda_sdpa_release(vit_cuda_state *s) {
    vit_sdpa_cache_destroy(s->sdpa);
    if (s->dnn) cudnnDestroy(s->dnn);
    s->sdpa = NULL, s->dnn = NULL;
}

/* cuDNN's workspace for this call, or false: libvit's own path (logged the
 * first time, with cuDNN's reason). */
static bool serves(vit_cuda_state *s, bool training, int B, int T, int H, int hd, float drop_p, size_t *fwd,
                   size_t *bwd) {
    if (s->precision != VIT_PRECISION_BF16) return false;
    if (drop_p > 0.0f) {
        if (!s->sdpa_logged_dropout)
            vit_log(NULL, VIT_LOG_INFO, "CUDA attention: attention dropout on, so libvit's own kernels (its mask "
                    "is libvit's counter hash; cuDNN's would differ)");
        s->sdpa_logged_dropout = true;
        return false;
    }
    vit_sdpa_cache *c = cache_of(s);
    if (!c) return false;
    *fwd = *bwd = 0;
    vit_status st = training ? vit_sdpa_workspace_bytes(c, VIT_SDPA_FORWARD_TRAINING, B, T, H, hd, fwd)
                             : vit_sdpa_workspace_bytes(c, VIT_SDPA_FORWARD_INFERENCE, B, T, H, hd, fwd);
    if (st == VIT_OK && training) st = vit_sdpa_workspace_bytes(c, VIT_SDPA_BACKWARD, B, T, H, hd, bwd);
    if (st != VIT_OK && !s->logged_attention) {
        s->logged_attention = true;
        vit_log(NULL, VIT_LOG_WARN, "CUDA attention: %s; using libvit's own kernels", vit_sdpa_message(c));
    }
    return st == VIT_OK;
}

vit_status vit_cuda_sdpa_forward(vit_backend *be, float *out, void *saved, const float *qkv, int B, int T, int H,
                                 int hd, float scale, float drop_p, bool *ran) {
    vit_cuda_state *s = vit_cuda_of(be);
    size_t fwd = 0, bwd = 0;
    *ran = false;
    if (!serves(s, saved != NULL, B, T, H, hd, drop_p, &fwd, &bwd)) return VIT_OK;
    const size_t n = (size_t)B * T * H * hd;
    const int64_t rows = (int64_t)B * T, D = (int64_t)H * hd;
    void *mem;
    VIT_TRY(vit_cuda_attn_memory(s, up(3 * n * 2) + up(n * 2) + up(fwd), &mem));
    char *qkv16 = mem, *out16 = qkv16 + up(3 * n * 2), *ws = out16 + up(n * 2);
    VIT_TRY(vit_cuda_check(round_bf16(qkv16, qkv, rows, 3 * D, s->stream), "attention_forward: qkv"));
    VIT_TRY(vit_sdpa_forward(s->sdpa, out16, saved, qkv16, B, T, H, hd, scale, ws, fwd));
    VIT_TRY(vit_cuda_check(vit_cuk_from_bf16(out, out16, (int64_t)n, 0, s->stream), "attention_forward: out"));
    *ran = true;
    return VIT_OK;
}

vit_status vit_cuda_sdpa_backward(vit_backend *be, float *dqkv, const float *dout, const float *qkv,
                                  const float *out, const void *saved, int B, int T, int H, int hd, float scale,
                                  float drop_p, bool *ran) {
    vit_cuda_state *s = vit_cuda_of(be);
    size_t fwd = 0, bwd = 0;
    *ran = false;
    if (!serves(s, true, B, T, H, hd, drop_p, &fwd, &bwd)) return VIT_OK;
    const size_t n = (size_t)B * T * H * hd, big = up(3 * n * 2), small = up(n * 2);
    const int64_t rows = (int64_t)B * T, D = (int64_t)H * hd;
    void *mem;
    VIT_TRY(vit_cuda_attn_memory(s, 2 * big + 2 * small + up(bwd), &mem));
    char *qkv16 = mem, *dqkv16 = qkv16 + big, *out16 = dqkv16 + big, *dout16 = out16 + small, *ws = dout16 + small;
    /* out was widened from bf16, so rounding it again gives cuDNN's out exactly */
    VIT_TRY(vit_cuda_check(round_bf16(qkv16, qkv, rows, 3 * D, s->stream), "attention_backward: qkv"));
    VIT_TRY(vit_cuda_check(round_bf16(out16, out, rows, D, s->stream), "attention_backward: out"));
    VIT_TRY(vit_cuda_check(round_bf16(dout16, dout, rows, D, s->stream), "attention_backward: dout"));
    VIT_TRY(vit_sdpa_backward(s->sdpa, dqkv16, dout16, qkv16, out16, saved, B, T, H, hd, scale, ws, bwd));
    VIT_TRY(vit_cuda_check(vit_cuk_from_bf16(dqkv, dqkv16, (int64_t)(3 * n), 1, s->stream),
                           "attention_backward: dqkv"));
    *ran = true;
    return VIT_OK;
}
