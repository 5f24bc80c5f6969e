/*
 * Attention with a few learned queries (timm's AttentionPoolLatent): L query
 * rows shared by the batch attend over each sample's N tokens. Small next to
 * the blocks (L is 1 in every timm model), so plain loops: one task per
 * (sample, head) forward, per (query, head) for the query's gradient, which
 * sums over the batch in order and so is the same on any thread count.
 */
#include <math.h>

#include "cpu/kernels.h"

VIT_VECTORIZED static float dot(const float *restrict a, const float *restrict b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

VIT_VECTORIZED static void axpy(float *restrict y, float a, const float *restrict x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* p [N] = softmax over j of scale * q . k_j (k rows 2 * H * hd apart) */
static void probabilities(float *p, const float *q, const float *k, int N, int stride, int hd, float scale) {
    float mx = -INFINITY;
    for (int j = 0; j < N; j++) {
        p[j] = scale * dot(q, k + (size_t)j * stride, hd);
        if (p[j] > mx) mx = p[j];
    }
    float sum = 0.0f;
    for (int j = 0; j < N; j++) sum += p[j] = expf(p[j] - mx);
    for (int j = 0; j < N; j++) p[j] /= sum;
}

vit_status vit_pool_attention_forward(vit_backend *be, float *out, float *probs, const float *q, const float *kv,
                                      int B, int L, int N, int H, int hd, float scale, float *scratch) {
    (void)be;
    const int D = H * hd, stride = 2 * D;
#pragma omp parallel for schedule(static) collapse(2) if ((int64_t)B * N * D > 65536)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *k = kv + (size_t)b * N * stride + (size_t)h * hd, *v = k + D;
            for (int l = 0; l < L; l++) {
                const size_t row = ((size_t)(b * H + h) * L + l) * N;
                float *p = probs ? probs + row : scratch + row;
                probabilities(p, q + (size_t)l * D + (size_t)h * hd, k, N, stride, hd, scale);
                float *o = out + ((size_t)b * L + l) * D + (size_t)h * hd;
                for (int d = 0; d < hd; d++) o[d] = 0.0f;
                for (int j = 0; j < N; j++) axpy(o, p[j], v + (size_t)j * stride, hd);
            }
        }
    return VIT_OK;
}

vit_status vit_pool_attention_backward(vit_backend *be, float *dq, float *dkv, const float *dout, const float *q,
                                       const float *kv, const float *probs, int B, int L, int N, int H, int hd,
                                       float scale, float *scratch) {
    (void)be;
    const int D = H * hd, stride = 2 * D;
    /* dscore [B, H, L, N] in scratch: scale * p_j (dout . v_j - sum_i p_i dout . v_i) */
#pragma omp parallel for schedule(static) collapse(2) if ((int64_t)B * N * D > 65536)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *k = kv + (size_t)b * N * stride + (size_t)h * hd, *v = k + D;
            for (int l = 0; l < L; l++) {
                const size_t row = ((size_t)(b * H + h) * L + l) * N;
                const float *p = probs + row, *g = dout + ((size_t)b * L + l) * D + (size_t)h * hd;
                float *ds = scratch + row, mean = 0.0f;
                for (int j = 0; j < N; j++) mean += p[j] * (ds[j] = dot(g, v + (size_t)j * stride, hd));
                for (int j = 0; j < N; j++) ds[j] = scale * p[j] * (ds[j] - mean);
                if (!dkv) continue;
                float *dk = dkv + (size_t)b * N * stride + (size_t)h * hd, *dv = dk + D;
                const float *qh = q + (size_t)l * D + (size_t)h * hd;
                for (int j = 0; j < N; j++) {
                    axpy(dk + (size_t)j * stride, ds[j], qh, hd);
                    axpy(dv + (size_t)j * stride, p[j], g, hd);
                }
            }
        }
    if (!dq) return VIT_OK;
#pragma omp parallel for schedule(static) collapse(2) if ((int64_t)B * N * D > 65536)
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            float *d = dq + (size_t)l * D + (size_t)h * hd;
            for (int b = 0; b < B; b++) {
                const float *k = kv + (size_t)b * N * stride + (size_t)h * hd;
                const float *ds = scratch + ((size_t)(b * H + h) * L + l) * N;
                for (int j = 0; j < N; j++) axpy(d, ds[j], k + (size_t)j * stride, hd);
            }
        }
    return VIT_OK;
}
