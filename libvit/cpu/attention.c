/*
 * Multi-head self-attention core: softmax(q k^T * scale) (dropout) @ v, one
 * (batch, head) block per task, parallel over B * H. Each block is done by one
 * thread in a fixed order, so results do not depend on the thread count.
 *
 * GCC will not vectorise a float dot product without -ffast-math (it may not
 * reorder the sum), so every product is written as row updates instead,
 * acc[:] += sum_s c_s x_s[:], over unit-stride rows: K and V are packed per
 * block into scratch (transposed where the product needs it).
 */
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cpu/kernels.h"
#include "cpu/vmath.h"

/* Offset of qkv[b, t, part, h, 0]; part 0 = q, 1 = k, 2 = v. */
static inline size_t qkv_at(int b, int t, int part, int h, int T, int H, int hd) {
    return ((((size_t)b * T + t) * 3 + part) * H + h) * (size_t)hd;
}

/* acc[0..w) += sum over s < n of c[s * cs] * x[s * xs + 0..w). Four rows per
 * pass: each load and store of acc then carries four multiply-adds, which is
 * what keeps these loops from being bound by acc's memory traffic. */
static inline void rows_axpy(float *restrict acc, const float *restrict c, size_t cs, const float *restrict x,
                             size_t xs, int n, int w) {
    int s = 0;
    for (; s + 4 <= n; s += 4) {
        const float c0 = c[s * cs], c1 = c[(s + 1) * cs], c2 = c[(s + 2) * cs], c3 = c[(s + 3) * cs];
        const float *x0 = x + s * xs, *x1 = x0 + xs, *x2 = x1 + xs, *x3 = x2 + xs;
        for (int k = 0; k < w; k++) acc[k] += c0 * x0[k] + c1 * x1[k] + c2 * x2[k] + c3 * x3[k];
    }
    for (; s < n; s++) {
        const float c0 = c[s * cs], *x0 = x + s * xs;
        for (int k = 0; k < w; k++) acc[k] += c0 * x0[k];
    }
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

static size_t forward_scratch(int T, int hd) { return 2 * (size_t)T * hd + 2 * (size_t)T + 2 * (size_t)hd; }
static size_t backward_scratch(int T, int hd) { return 2 * (size_t)T * T + (size_t)T * hd + (size_t)T + hd; }

size_t vit_attention_scratch_floats(int T, int hd, int threads) {
    size_t f = forward_scratch(T, hd), b = backward_scratch(T, hd);
    return (size_t)(threads > 1 ? threads : 1) * (f > b ? f : b);
}

/* One scratch area per thread: the caller's (from its arena) when given,
 * else one allocation for this call. */
static float *take_scratch(float *given, int *threads, int blocks, size_t per, bool *owned) {
    int nt = omp_get_max_threads();
    if (nt > blocks) nt = blocks;
    if (nt < 1) nt = 1;
    *threads = nt;
    *owned = !given;
    return given ? given : malloc((size_t)nt * per * sizeof(float));
}

VIT_VECTORIZED static void block_forward(float *restrict out, float *restrict probs, const float *restrict qkv,
                                         int b, int h, int T, int H, int hd, float scale, float drop_p,
                                         uint64_t key, float *restrict scratch) {
    const size_t ts = (size_t)3 * H * hd; /* qkv stride between tokens */
    const float *q = qkv + qkv_at(b, 0, 0, h, T, H, hd);
    const float *k = qkv + qkv_at(b, 0, 1, h, T, H, hd);
    const float *v = qkv + qkv_at(b, 0, 2, h, T, H, hd);
    float *kt = scratch, *vp = kt + (size_t)T * hd, *srow = vp + (size_t)T * hd, *arow = srow + T,
          *qs = arow + T, *o = qs + hd;
    for (int j = 0; j < T; j++)
        for (int d = 0; d < hd; d++) {
            kt[(size_t)d * T + j] = k[j * ts + d];
            vp[(size_t)j * hd + d] = v[j * ts + d];
        }
    const float keep = keep_scale(drop_p);
    for (int i = 0; i < T; i++) {
        /* probs keeps the pre-dropout softmax for backward; inference uses scratch. */
        float *s = probs ? probs + (size_t)i * T : srow;
        for (int d = 0; d < hd; d++) qs[d] = q[i * ts + d] * scale; /* timm scales q before the product */
        for (int j = 0; j < T; j++) s[j] = 0.0f;
        rows_axpy(s, qs, 1, kt, T, hd, T);

        float mx = s[0];
        for (int j = 1; j < T; j++) mx = s[j] > mx ? s[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < T; j++) {
            s[j] = vit_expf(s[j] - mx);
            sum += s[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int j = 0; j < T; j++) s[j] *= inv;

        const float *a = s;
        if (drop_p > 0.0f) {
            mask_row(arow, T, drop_p, keep, key, (((uint64_t)b * H + h) * T + i) * T);
            for (int j = 0; j < T; j++) arow[j] *= s[j];
            a = arow;
        }
        for (int d = 0; d < hd; d++) o[d] = 0.0f;
        rows_axpy(o, a, 1, vp, hd, T, hd);
        float *oi = out + (((size_t)b * T + i) * H + h) * hd;
        for (int d = 0; d < hd; d++) oi[d] = o[d];
    }
}

vit_status vit_attention_forward(float *out, float *probs, const float *qkv, int B, int T, int H, int hd,
                                 float scale, float drop_p, uint64_t drop_key, float *given_scratch) {
    VIT_CHECK_ARG(out && qkv && B > 0 && T > 0 && H > 0 && hd > 0, "attention: bad arguments");
    const int blocks = B * H;
    const size_t per = forward_scratch(T, hd);
    int nt;
    bool owned;
    float *scratch = take_scratch(given_scratch, &nt, blocks, per, &owned);
    if (!scratch) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "attention: %d x %zu floats of scratch", nt, per);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int bh = 0; bh < blocks; bh++)
        block_forward(out, probs ? probs + (size_t)bh * T * T : NULL, qkv, bh / H, bh % H, T, H, hd, scale, drop_p,
                      drop_key, scratch + (size_t)omp_get_thread_num() * per);
    if (owned) free(scratch);
    return VIT_OK;
}

/*
 * With A = dropout(P) and out = A V:
 *   dA = dO V^T,  dP = dropout(dA) (same mask and scale),
 *   dS = P * (dP - rowsum(dP * P)),
 *   dQ = scale dS K,  dK = scale dS^T Q,  dV = A^T dO.
 * dS (and A) are kept whole for the block so dK and dV are each summed in one
 * accumulator and added to dqkv once. Everything of a block lands in its own
 * slice of dqkv, so blocks never write the same memory.
 */
VIT_VECTORIZED static void block_backward(float *restrict dqkv, const float *restrict dout,
                                          const float *restrict qkv, const float *restrict probs, int b, int h,
                                          int T, int H, int hd, float scale, float drop_p, uint64_t key,
                                          float *restrict scratch) {
    const size_t ts = (size_t)3 * H * hd, os = (size_t)H * hd; /* token strides of qkv and dout */
    const size_t q0 = qkv_at(b, 0, 0, h, T, H, hd), k0 = qkv_at(b, 0, 1, h, T, H, hd),
                 v0 = qkv_at(b, 0, 2, h, T, H, hd);
    const float *go = dout + ((size_t)b * T * H + h) * hd;
    float *ds = scratch, *am = ds + (size_t)T * T, *vt = am + (size_t)T * T, *mrow = vt + (size_t)T * hd,
          *acc = mrow + T;
    const int drop = drop_p > 0.0f;
    const float *a = drop ? am : probs;
    for (int j = 0; j < T; j++)
        for (int d = 0; d < hd; d++) vt[(size_t)d * T + j] = qkv[v0 + j * ts + d];
    const float keep = keep_scale(drop_p);

    for (int i = 0; i < T; i++) {
        const float *p = probs + (size_t)i * T;
        float *dsi = ds + (size_t)i * T;
        for (int j = 0; j < T; j++) dsi[j] = 0.0f;
        rows_axpy(dsi, go + i * os, 1, vt, T, hd, T); /* dA row */
        if (drop) {
            mask_row(mrow, T, drop_p, keep, key, (((uint64_t)b * H + h) * T + i) * T);
            for (int j = 0; j < T; j++) {
                am[(size_t)i * T + j] = p[j] * mrow[j];
                dsi[j] *= mrow[j];
            }
        }
        double dot = 0.0;
        for (int j = 0; j < T; j++) dot += dsi[j] * p[j];
        const float dd = (float)dot;
        for (int j = 0; j < T; j++) dsi[j] = p[j] * (dsi[j] - dd) * scale; /* scale * dS */

        for (int d = 0; d < hd; d++) acc[d] = 0.0f;
        rows_axpy(acc, dsi, 1, qkv + k0, ts, T, hd);
        float *dq = dqkv + q0 + i * ts;
        for (int d = 0; d < hd; d++) dq[d] += acc[d];
    }
    for (int j = 0; j < T; j++) {
        for (int d = 0; d < hd; d++) acc[d] = 0.0f;
        rows_axpy(acc, ds + j, T, qkv + q0, ts, T, hd);
        float *dk = dqkv + k0 + j * ts;
        for (int d = 0; d < hd; d++) dk[d] += acc[d];

        for (int d = 0; d < hd; d++) acc[d] = 0.0f;
        rows_axpy(acc, a + j, T, go, os, T, hd);
        float *dv = dqkv + v0 + j * ts;
        for (int d = 0; d < hd; d++) dv[d] += acc[d];
    }
}

vit_status vit_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *probs, int B,
                                  int T, int H, int hd, float scale, float drop_p, uint64_t drop_key,
                                  float *given_scratch) {
    VIT_CHECK_ARG(dqkv && dout && qkv && B > 0 && T > 0 && H > 0 && hd > 0, "attention backward: bad arguments");
    VIT_CHECK_ARG(probs, "attention backward: probs were not kept by the forward pass");
    const int blocks = B * H;
    const size_t per = backward_scratch(T, hd);
    int nt;
    bool owned;
    float *scratch = take_scratch(given_scratch, &nt, blocks, per, &owned);
    if (!scratch) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "attention backward: %d x %zu floats of scratch", nt, per);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int bh = 0; bh < blocks; bh++)
        block_backward(dqkv, dout, qkv, probs + (size_t)bh * T * T, bh / H, bh % H, T, H, hd, scale, drop_p,
                       drop_key, scratch + (size_t)omp_get_thread_num() * per);
    if (owned) free(scratch);
    return VIT_OK;
}
