/*
 * Multi-head attention on the GPU, libvit's own: batched products through
 * the backend's cuBLASLt gemm (so in BF16 mode their operands are bfloat16
 * like every other product) around a softmax kernel, forward and backward,
 * deterministic (no atomics: every output element is one product's or one
 * thread's).
 *
 *   forward   q, k, v [B, H, T, hd] <- qkv [B, T, 3, H, hd]
 *             P = softmax(scale * q k^T)          [B, H, T, T]  (saved)
 *             Pd = P * mask / (1 - p)             (dropout, if any)
 *             o = Pd v  -> out [B, T, H, hd]
 *   backward  dV = Pd^T dO;  dPd = dO v^T;
 *             dS = scale * P * (dP - rowsum(P * dP)),  dP = dPd * mask / (1 - p);
 *             dQ = dS k;  dK = dS^T q;  dqkv += [dQ, dK, dV]
 *
 * The mask of element ((b * H + h) * T + i) * T + j is
 * vit_rng_uniform(key, that index) >= p, as on the CPU, and is recomputed in
 * backward rather than stored. Saved state is P itself (the CPU's layout,
 * so the kernel tests read it as the CPU's probabilities). Working memory
 * (permuted q, k, v, the gradients, dropped probabilities) is the backend's
 * own and reused across calls, so the op layer's per-call scratch is empty.
 *
 * At T = 197, D = 64 (ViT-B/16) this unfused path keeps P, ~0.47 GB per
 * layer at batch 256 in float32; a fused kernel (cuDNN's SDPA) keeps softmax
 * statistics instead.
 */
#include "cuda/cuda.h"
#include "cuda/kernels.h"

void vit_cuda_attention_sizes(vit_backend *be, int B, int T, int H, int hd, size_t *saved_bytes,
                              size_t *scratch_bytes) {
    (void)be;
    (void)hd;
    /* A fused path's saved statistics [B, H, T] fit in this too. */
    *saved_bytes = (size_t)B * H * T * T * sizeof(float);
    *scratch_bytes = 64;
}

/* Batched over B * H: C_i [M, N] = op(A_i) op(B_i). */
static vit_status bmm(vit_backend *be, float *C, const float *A, bool ta, const float *Bm, bool tb, int M, int N, int K,
                      int batch) {
    const vit_gemm g = {.M = M, .N = N, .K = K, .A = A, .lda = ta ? M : K, .trans_a = ta, .B = Bm,
                        .ldb = tb ? K : N, .trans_b = tb, .C = C, .ldc = N};
    return vit_cuda_gemm_batched(be, &g, batch, (ptrdiff_t)M * K, (ptrdiff_t)K * N, (ptrdiff_t)M * N);
}

/* Floats rounded up to 64 (256 bytes): every buffer carved from the
 * attention memory starts as aligned as an allocation does. */
static int64_t padded(int64_t n) { return (n + 63) / 64 * 64; }

static vit_status check_shape(const char *fn, int B, int T, int H, int hd) {
    if (B < 0 || T < 0 || H < 0 || hd < 0)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "CUDA %s: negative shape B %d T %d H %d hd %d", fn, B, T, H, hd);
    if ((int64_t)B * H > 65535 * 32 || (int64_t)B * H * T * T > ((int64_t)1 << 40))
        return vit_fail(VIT_ERR_SHAPE, "CUDA %s: B %d x H %d x T %d is too large", fn, B, H, T);
    return VIT_OK;
}

vit_status vit_cuda_attention_forward(vit_backend *be, float *out, void *saved, const float *qkv, int B, int T, int H,
                                      int hd, float scale, float drop_p, uint64_t drop_key, void *scratch) {
    (void)scratch;
    VIT_TRY(check_shape("attention_forward", B, T, H, hd));
    if ((int64_t)B * T * H * hd == 0) return VIT_OK;
    vit_cuda_state *s = vit_cuda_of(be);
    /* In BF16 mode, cuDNN's fused forward when it takes the shape (saved then
     * holds its statistics); otherwise libvit's own path below. */
    bool fused = false;
    VIT_TRY(vit_cuda_sdpa_forward(be, out, saved, qkv, B, T, H, hd, scale, drop_p, &fused));
    if (fused) return VIT_OK;
    /* q, k, v consecutive (as vit_cuk_qkv_split writes them), then o, the
     * dropped probabilities and, in inference, the probabilities */
    const int64_t n = (int64_t)B * H * T * hd, np = (int64_t)B * H * T * T, bh = (int64_t)B * H;
    void *mem;
    VIT_TRY(vit_cuda_attn_memory(s, (size_t)(padded(3 * n) + padded(n) + padded(np) + (saved ? 0 : np)) * sizeof(float),
                                 &mem));
    float *q = mem, *k = q + n, *v = k + n, *o = q + padded(3 * n), *pd = o + padded(n);
    float *P = saved ? saved : pd + padded(np);
    VIT_TRY(vit_cuda_check(vit_cuk_qkv_split(q, qkv, B, T, H, hd, s->stream), "attention_forward: qkv"));
    VIT_TRY(bmm(be, P, q, false, k, true, T, T, hd, (int)bh));
    VIT_TRY(vit_cuda_check(vit_cuk_softmax_forward(P, P, bh * T, T, scale, s->stream), "attention_forward: softmax"));
    const float *probs = P;
    if (drop_p > 0.0f) {
        VIT_TRY(vit_cuda_check(vit_cuk_dropout(pd, P, np, drop_p, drop_key, 0, s->stream), "attention_forward: dropout"));
        probs = pd;
    }
    VIT_TRY(bmm(be, o, probs, false, v, false, T, hd, T, (int)bh));
    return vit_cuda_check(vit_cuk_heads(out, o, B, T, H, hd, 0, s->stream), "attention_forward: heads");
}

vit_status vit_cuda_attention_backward(vit_backend *be, float *dqkv, bool accumulate, const float *dout,
                                       const float *qkv, const float *out, const void *saved, int B, int T, int H,
                                       int hd, float scale, float drop_p, uint64_t drop_key, void *scratch) {
    (void)scratch;
    (void)out;
    VIT_TRY(check_shape("attention_backward", B, T, H, hd));
    if (!saved)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT,
                        "CUDA attention_backward: no saved state (the forward ran without recording)");
    if ((int64_t)B * T * H * hd == 0) return VIT_OK;
    vit_cuda_state *s = vit_cuda_of(be);
    /* Both paths below add into dqkv: a fresh buffer is zeroed first. */
    if (!accumulate) VIT_TRY(be->ops->zero(be, dqkv, (size_t)B * T * 3 * H * hd * sizeof(float)));
    /* cuDNN's fused backward, for the forwards it ran */
    bool fused = false;
    VIT_TRY(vit_cuda_sdpa_backward(be, dqkv, dout, qkv, out, saved, B, T, H, hd, scale, drop_p, &fused));
    if (fused) return VIT_OK;
    /* q, k, v consecutive; dO; dq, dk, dv consecutive (as vit_cuk_qkv_merge_add
     * reads them); the dropped probabilities; their gradient */
    const int64_t n = (int64_t)B * H * T * hd, np = (int64_t)B * H * T * T, bh = (int64_t)B * H;
    void *mem;
    VIT_TRY(vit_cuda_attn_memory(s, (size_t)(2 * padded(3 * n) + padded(n) + 2 * padded(np)) * sizeof(float), &mem));
    float *q = mem, *k = q + n, *v = k + n, *dO = q + padded(3 * n);
    float *dq = dO + padded(n), *dk = dq + n, *dv = dk + n;
    float *pd = dq + padded(3 * n), *dp = pd + padded(np);
    const float *P = saved;
    VIT_TRY(vit_cuda_check(vit_cuk_qkv_split(q, qkv, B, T, H, hd, s->stream), "attention_backward: qkv"));
    VIT_TRY(vit_cuda_check(vit_cuk_heads(dO, dout, B, T, H, hd, 1, s->stream), "attention_backward: heads"));
    const float *probs = P;
    if (drop_p > 0.0f) {
        VIT_TRY(vit_cuda_check(vit_cuk_dropout(pd, P, np, drop_p, drop_key, 0, s->stream), "attention_backward: dropout"));
        probs = pd;
    }
    VIT_TRY(bmm(be, dv, probs, true, dO, false, T, hd, T, (int)bh));
    VIT_TRY(bmm(be, dp, dO, false, v, true, T, T, hd, (int)bh));
    /* in place: each element is read, then written, by the same thread */
    VIT_TRY(vit_cuda_check(vit_cuk_softmax_backward(dp, P, dp, bh * T, T, scale, 0, drop_p, drop_key, s->stream),
                           "attention_backward: softmax"));
    VIT_TRY(bmm(be, dq, dp, false, k, false, T, hd, T, (int)bh));
    VIT_TRY(bmm(be, dk, dp, true, q, false, T, hd, T, (int)bh));
    return vit_cuda_check(vit_cuk_qkv_merge_add(dqkv, dq, B, T, H, hd, s->stream), "attention_backward: dqkv");
}

/* ------------------------------------------------ learned-query attention */
/* timm's AttentionPoolLatent: L queries q [L, H * hd] shared by the batch
 * over each sample's kv [B, N, 2, H, hd]. Products batched over the heads
 * (a head's rows are hd apart in q, kv and out), one call per sample; the
 * query's gradient sums the samples in order (accumulating products). Small
 * next to the blocks (L = 1 in timm's models). */
static vit_status head_bmm(vit_backend *be, float *C, int ldc, ptrdiff_t sc, const float *A, int lda, ptrdiff_t sa,
                           bool ta, const float *Bm, int ldb, ptrdiff_t sb, bool tb, int M, int N, int K, int H,
                           bool acc) {
    const vit_gemm g = {.M = M, .N = N, .K = K, .A = A, .lda = lda, .trans_a = ta, .B = Bm, .ldb = ldb,
                        .trans_b = tb, .C = C, .ldc = ldc, .accumulate = acc};
    return vit_cuda_gemm_batched(be, &g, H, sa, sb, sc);
}

vit_status vit_cuda_pool_attention_forward(vit_backend *be, float *out, float *probs, const float *q, const float *kv,
                                           int B, int L, int N, int H, int hd, float scale, float *scratch) {
    if ((int64_t)B * L * H * hd == 0) return VIT_OK;
    if (N <= 0) return vit_fail(VIT_ERR_INVALID_ARGUMENT, "CUDA pool_attention_forward: N = %d", N);
    vit_cuda_state *s = vit_cuda_of(be);
    float *P = probs ? probs : scratch; /* [B, H, L, N] */
    const int D = H * hd, kvrow = 2 * H * hd;
    for (int b = 0; b < B; b++) {
        const float *k = kv + (size_t)b * N * kvrow, *v = k + D;
        float *Pb = P + (size_t)b * H * L * N;
        /* S_h [L, N] = q_h [L, hd] k_h^T */
        VIT_TRY(head_bmm(be, Pb, N, (ptrdiff_t)L * N, q, D, hd, false, k, kvrow, hd, true, L, N, hd, H, false));
        /* out_h [L, hd] = P_h v_h, at column h * hd of out [L, H * hd] */
        VIT_TRY(vit_cuda_check(vit_cuk_softmax_forward(Pb, Pb, (int64_t)H * L, N, scale, s->stream),
                               "pool_attention_forward: softmax"));
        VIT_TRY(head_bmm(be, out + (size_t)b * L * D, D, hd, Pb, N, (ptrdiff_t)L * N, false, v, kvrow, hd, false, L,
                         hd, N, H, false));
    }
    return VIT_OK;
}

vit_status vit_cuda_pool_attention_backward(vit_backend *be, float *dq, float *dkv, const float *dout, const float *q,
                                            const float *kv, const float *probs, int B, int L, int N, int H, int hd,
                                            float scale, float *scratch) {
    if (!probs)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "CUDA pool_attention_backward: no probabilities (an inference forward)");
    if ((int64_t)B * L * H * hd == 0 || (!dq && !dkv)) return VIT_OK;
    vit_cuda_state *s = vit_cuda_of(be);
    const int D = H * hd, kvrow = 2 * H * hd;
    for (int b = 0; b < B; b++) {
        const float *k = kv + (size_t)b * N * kvrow, *v = k + D, *g = dout + (size_t)b * L * D;
        const float *Pb = probs + (size_t)b * H * L * N;
        float *dS = scratch + (size_t)b * H * L * N;
        /* dP_h [L, N] = dout_h [L, hd] v_h^T, then dS = scale * P * (dP - rowsum(P * dP)) in place */
        VIT_TRY(head_bmm(be, dS, N, (ptrdiff_t)L * N, g, D, hd, false, v, kvrow, hd, true, L, N, hd, H, false));
        VIT_TRY(vit_cuda_check(vit_cuk_softmax_backward(dS, Pb, dS, (int64_t)H * L, N, scale, 0, 0.0f, 0, s->stream),
                               "pool_attention_backward: softmax"));
        if (dq) /* dq_h [L, hd] += dS_h k_h: the samples in order */
            VIT_TRY(head_bmm(be, dq, D, hd, dS, N, (ptrdiff_t)L * N, false, k, kvrow, hd, false, L, hd, N, H, true));
        if (dkv) {
            float *dk = dkv + (size_t)b * N * kvrow, *dv = dk + D;
            /* dk_h [N, hd] += dS_h^T q_h;  dv_h [N, hd] += P_h^T dout_h */
            VIT_TRY(head_bmm(be, dk, kvrow, hd, dS, N, (ptrdiff_t)L * N, true, q, D, hd, false, N, hd, L, H, true));
            VIT_TRY(head_bmm(be, dv, kvrow, hd, Pb, N, (ptrdiff_t)L * N, true, g, D, hd, false, N, hd, L, H, true));
        }
    }
    return VIT_OK;
}
