/*
 * Multi-head self-attention core: softmax(q k^T * scale) (dropout) @ v, one
 * (batch, head) block per task, parallel over B * H. Each block is done by one
 * thread in a fixed order, so results do not depend on the thread count.
 *
 * GCC will not vectorise a float dot product without -ffast-math (it may not
 * reorder the sum), so every product is written as axpy loops over a
 * contiguous row instead: K and V are first packed per block into scratch
 * (K transposed), which also turns the strided qkv rows into unit stride.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "cpu/kernels.h"

/* Offset of qkv[b, t, part, h, 0]; part 0 = q, 1 = k, 2 = v. */
static inline size_t qkv_at(int b, int t, int part, int h, int T, int H, int hd) {
    return ((((size_t)b * T + t) * 3 + part) * H + h) * (size_t)hd;
}

/* 1 / (1 - p) for kept elements; p >= 1 drops everything. */
static inline float keep_scale(float p) {
    return p <= 0.0f ? 1.0f : p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
}

/* m[j] = the dropout factor of row element j (0 or 1 / (1 - p)). The mask is a
 * pure function of (key, element index), so backward regenerates it instead
 * of storing B * H * T * T bytes. */
static void mask_row(float *restrict m, int T, float drop_p, float keep, uint64_t key, uint64_t base) {
    for (int j = 0; j < T; j++) m[j] = vit_rng_uniform(key, base + (uint64_t)j) >= drop_p ? keep : 0.0f;
}

static size_t scratch_floats(int T, int hd) {
    return 2 * (size_t)T * hd + 2 * (size_t)T + (size_t)hd;
}

static float *alloc_scratch(int *threads, int blocks, int T, int hd) {
    int nt = omp_get_max_threads();
    if (nt > blocks) nt = blocks;
    if (nt < 1) nt = 1;
    *threads = nt;
    return malloc((size_t)nt * scratch_floats(T, hd) * sizeof(float));
}

VIT_VECTORIZED static void block_forward(float *restrict out, float *restrict probs, const float *restrict qkv,
                                         int b, int h, int T, int H, int hd, float scale, float drop_p,
                                         uint64_t key, float *restrict scratch) {
    const size_t ts = (size_t)3 * H * hd; /* qkv stride between tokens */
    const float *q = qkv + qkv_at(b, 0, 0, h, T, H, hd);
    const float *k = qkv + qkv_at(b, 0, 1, h, T, H, hd);
    const float *v = qkv + qkv_at(b, 0, 2, h, T, H, hd);
    float *kt = scratch, *vp = kt + (size_t)T * hd, *srow = vp + (size_t)T * hd, *mrow = srow + T,
          *o = mrow + T;
    for (int j = 0; j < T; j++)
        for (int d = 0; d < hd; d++) {
            kt[(size_t)d * T + j] = k[j * ts + d];
            vp[(size_t)j * hd + d] = v[j * ts + d];
        }
    const float keep = keep_scale(drop_p);
    for (int i = 0; i < T; i++) {
        const float *qi = q + i * ts;
        /* probs keeps the pre-dropout softmax for backward; inference uses scratch. */
        float *s = probs ? probs + (size_t)i * T : srow;
        for (int j = 0; j < T; j++) s[j] = 0.0f;
        for (int d = 0; d < hd; d++) {
            const float qd = qi[d] * scale; /* timm scales q before the product */
            const float *kd = kt + (size_t)d * T;
            for (int j = 0; j < T; j++) s[j] += qd * kd[j];
        }
        float mx = s[0];
        for (int j = 1; j < T; j++) mx = s[j] > mx ? s[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < T; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int j = 0; j < T; j++) s[j] *= inv;

        const int drop = drop_p > 0.0f;
        if (drop) mask_row(mrow, T, drop_p, keep, key, (((uint64_t)b * H + h) * T + i) * T);
        for (int d = 0; d < hd; d++) o[d] = 0.0f;
        for (int j = 0; j < T; j++) {
            const float aj = drop ? s[j] * mrow[j] : s[j];
            const float *vj = vp + (size_t)j * hd;
            for (int d = 0; d < hd; d++) o[d] += aj * vj[d];
        }
        float *oi = out + (((size_t)b * T + i) * H + h) * hd;
        for (int d = 0; d < hd; d++) oi[d] = o[d];
    }
}

vit_status vit_attention_forward(float *out, float *probs, const float *qkv, int B, int T, int H, int hd,
                                 float scale, float drop_p, uint64_t drop_key) {
    VIT_CHECK_ARG(out && qkv && B > 0 && T > 0 && H > 0 && hd > 0, "attention: bad arguments");
    const int blocks = B * H;
    int nt;
    float *scratch = alloc_scratch(&nt, blocks, T, hd);
    if (!scratch) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "attention: %d x %zu floats of scratch", nt,
                                  scratch_floats(T, hd));
    const size_t per = scratch_floats(T, hd);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int bh = 0; bh < blocks; bh++) {
        const int b = bh / H, h = bh % H;
        block_forward(out, probs ? probs + (size_t)bh * T * T : NULL, qkv, b, h, T, H, hd, scale, drop_p, drop_key,
                      scratch + (size_t)omp_get_thread_num() * per);
    }
    free(scratch);
    return VIT_OK;
}

/*
 * With A = dropout(P) and out = A V:
 *   dV = A^T dO,  dA = dO V^T,  dP = dropout(dA) (same mask and scale),
 *   dS = P * (dP - rowsum(dP * P)),  dQ = scale dS K,  dK = scale dS^T Q.
 * Everything of a block lands in that block's own slice of dqkv, so blocks
 * never write the same memory.
 */
VIT_VECTORIZED static void block_backward(float *restrict dqkv, const float *restrict dout,
                                          const float *restrict qkv, const float *restrict probs, int b, int h,
                                          int T, int H, int hd, float scale, float drop_p, uint64_t key,
                                          float *restrict scratch) {
    const size_t ts = (size_t)3 * H * hd;
    const size_t q0 = qkv_at(b, 0, 0, h, T, H, hd), k0 = qkv_at(b, 0, 1, h, T, H, hd),
                 v0 = qkv_at(b, 0, 2, h, T, H, hd);
    float *vt = scratch, *da = vt + (size_t)T * hd, *mrow = da + T, *dq = mrow + T;
    for (int j = 0; j < T; j++)
        for (int d = 0; d < hd; d++) vt[(size_t)d * T + j] = qkv[v0 + j * ts + d];
    const float keep = keep_scale(drop_p);
    for (int i = 0; i < T; i++) {
        const float *p = probs + (size_t)i * T;
        const float *go = dout + (((size_t)b * T + i) * H + h) * hd;
        const float *qi = qkv + q0 + i * ts;

        for (int j = 0; j < T; j++) da[j] = 0.0f;
        for (int d = 0; d < hd; d++) {
            const float g = go[d];
            const float *vd = vt + (size_t)d * T;
            for (int j = 0; j < T; j++) da[j] += g * vd[j];
        }
        const int drop = drop_p > 0.0f;
        if (drop) {
            mask_row(mrow, T, drop_p, keep, key, (((uint64_t)b * H + h) * T + i) * T);
            for (int j = 0; j < T; j++) da[j] *= mrow[j];
        }
        for (int j = 0; j < T; j++) {
            const float aj = drop ? p[j] * mrow[j] : p[j];
            float *dvj = dqkv + v0 + j * ts;
            for (int d = 0; d < hd; d++) dvj[d] += aj * go[d];
        }

        double dot = 0.0;
        for (int j = 0; j < T; j++) dot += da[j] * p[j];
        const float dd = (float)dot;
        for (int j = 0; j < T; j++) da[j] = p[j] * (da[j] - dd) * scale; /* now scale * dS */

        for (int d = 0; d < hd; d++) dq[d] = 0.0f;
        for (int j = 0; j < T; j++) {
            const float g = da[j];
            const float *kj = qkv + k0 + j * ts;
            float *dkj = dqkv + k0 + j * ts;
            for (int d = 0; d < hd; d++) {
                dq[d] += g * kj[d];
                dkj[d] += g * qi[d];
            }
        }
        float *dqi = dqkv + q0 + i * ts;
        for (int d = 0; d < hd; d++) dqi[d] += dq[d];
    }
}

vit_status vit_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *probs, int B,
                                  int T, int H, int hd, float scale, float drop_p, uint64_t drop_key) {
    VIT_CHECK_ARG(dqkv && dout && qkv && B > 0 && T > 0 && H > 0 && hd > 0, "attention backward: bad arguments");
    VIT_CHECK_ARG(probs, "attention backward: probs were not kept by the forward pass");
    const int blocks = B * H;
    int nt;
    float *scratch = alloc_scratch(&nt, blocks, T, hd);
    if (!scratch) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "attention backward: %d x %zu floats of scratch", nt,
                                  scratch_floats(T, hd));
    const size_t per = scratch_floats(T, hd);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int bh = 0; bh < blocks; bh++) {
        const int b = bh / H, h = bh % H;
        block_backward(dqkv, dout, qkv, probs + (size_t)bh * T * T, b, h, T, H, hd, scale, drop_p, drop_key,
                       scratch + (size_t)omp_get_thread_num() * per);
    }
    free(scratch);
    return VIT_OK;
}
