/* Element-wise kernels and layout changes: fill, bf16 conversion, add, GELU,
 * dropout, residual + DropPath, patches, tokens, pooling, attention's
 * layouts, AdamW. One thread per output element: no reductions here except
 * pooling and the token gradients, each output summed by one thread in order. */
#include <cuda_bf16.h>

#include "cuda/launch.cuh"

__global__ void fill_kernel(float *p, float value, int64_t n) {
    VIT_CUK_FOR(i, n) p[i] = value;
}
extern "C" cudaError_t vit_cuk_fill(float *p, float value, int64_t n, cudaStream_t st) {
    fill_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(p, value, n);
    return cudaGetLastError();
}

/* dst [items, rows, ld_dst] bfloat16 (columns cols.. ld_dst zero) from src
 * items at stride_src, rows at ld_src. */
__global__ void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, int64_t rows, int64_t cols, int64_t ld_src,
                               int64_t stride_src, int64_t ld_dst, int64_t n) {
    VIT_CUK_FOR(e, n) {
        const int64_t c = e % ld_dst, r = e / ld_dst % rows, i = e / (ld_dst * rows);
        dst[e] = __float2bfloat16_rn(c < cols ? src[i * stride_src + r * ld_src + c] : 0.0f);
    }
}
extern "C" cudaError_t vit_cuk_to_bf16(void *dst, const float *src, int64_t items, int64_t rows, int64_t cols,
                                       int64_t ld_src, int64_t stride_src, int64_t ld_dst, cudaStream_t st) {
    const int64_t n = items * rows * ld_dst;
    to_bf16_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>((__nv_bfloat16 *)dst, src, rows, cols, ld_src,
                                                                  stride_src, ld_dst, n);
    return cudaGetLastError();
}

__global__ void bias_rows_kernel(float *C, const float *bias, int64_t M, int64_t N, int64_t ldc, int64_t stride_c,
                                 int64_t n) {
    VIT_CUK_FOR(e, n) {
        const int64_t c = e % N, r = e / N % M, i = e / (N * M);
        C[i * stride_c + r * ldc + c] += bias[c];
    }
}
extern "C" cudaError_t vit_cuk_bias_rows(float *C, const float *bias, int64_t items, int64_t M, int64_t N, int64_t ldc,
                                         int64_t stride_c, cudaStream_t st) {
    const int64_t n = items * M * N;
    bias_rows_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(C, bias, M, N, ldc, stride_c, n);
    return cudaGetLastError();
}

__global__ void from_bf16_kernel(float *dst, const __nv_bfloat16 *src, int64_t n, int accumulate) {
    VIT_CUK_FOR(i, n) dst[i] = (accumulate ? dst[i] : 0.0f) + __bfloat162float(src[i]);
}
extern "C" cudaError_t vit_cuk_from_bf16(float *dst, const void *src, int64_t n, int accumulate, cudaStream_t st) {
    from_bf16_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(dst, (const __nv_bfloat16 *)src, n, accumulate);
    return cudaGetLastError();
}

__global__ void add_kernel(float *out, const float *a, const float *b, int64_t n) {
    VIT_CUK_FOR(i, n) out[i] = a[i] + b[i];
}
extern "C" cudaError_t vit_cuk_add(float *out, const float *a, const float *b, int64_t n, cudaStream_t st) {
    add_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(out, a, b, n);
    return cudaGetLastError();
}

/* ------------------------------------------------- GELU and QuickGELU */
/* out = f(inp); dinp += dout * f'(inp), f one of scalar.h's activations;
 * dinp == dout: dinp = dout * f'(inp) in place (each thread reads its element first) */
struct gelu_fn {
    __device__ float operator()(float x) const { return vit_gelu(x); }
    __device__ float grad(float x) const { return vit_gelu_grad(x); }
};
struct quick_gelu_fn {
    __device__ float operator()(float x) const { return vit_quick_gelu(x); }
    __device__ float grad(float x) const { return vit_quick_gelu_grad(x); }
};
template <class F> __global__ void activation_forward_kernel(float *out, const float *inp, int64_t n) {
    VIT_CUK_FOR(i, n) out[i] = F()(inp[i]);
}
template <class F>
__global__ void activation_backward_kernel(float *dinp, const float *inp, const float *dout, int64_t n) {
    if (dinp == dout)
        VIT_CUK_FOR(i, n) dinp[i] *= F().grad(inp[i]);
    else
        VIT_CUK_FOR(i, n) dinp[i] += dout[i] * F().grad(inp[i]);
}
template <class F> static cudaError_t activation_forward(float *out, const float *inp, int64_t n, cudaStream_t st) {
    activation_forward_kernel<F><<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(out, inp, n);
    return cudaGetLastError();
}
template <class F>
static cudaError_t activation_backward(float *dinp, const float *inp, const float *dout, int64_t n, cudaStream_t st) {
    activation_backward_kernel<F><<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(dinp, inp, dout, n);
    return cudaGetLastError();
}
extern "C" cudaError_t vit_cuk_gelu_forward(float *out, const float *inp, int64_t n, cudaStream_t st) {
    return activation_forward<gelu_fn>(out, inp, n, st);
}
extern "C" cudaError_t vit_cuk_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n,
                                             cudaStream_t st) {
    return activation_backward<gelu_fn>(dinp, inp, dout, n, st);
}
extern "C" cudaError_t vit_cuk_quick_gelu_forward(float *out, const float *inp, int64_t n, cudaStream_t st) {
    return activation_forward<quick_gelu_fn>(out, inp, n, st);
}
extern "C" cudaError_t vit_cuk_quick_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n,
                                                   cudaStream_t st) {
    return activation_backward<quick_gelu_fn>(dinp, inp, dout, n, st);
}

/* --------------------------------------------------------- layer scale */
__global__ void scale_channels_forward_kernel(float *out, const float *inp, const float *gamma, int C, int64_t n) {
    VIT_CUK_FOR(i, n) out[i] = inp[i] * gamma[i % C];
}
__global__ void scale_channels_backward_kernel(float *dinp, const float *dout, const float *gamma, int C, int64_t n) {
    VIT_CUK_FOR(i, n) dinp[i] += dout[i] * gamma[i % C];
}
extern "C" cudaError_t vit_cuk_scale_channels_forward(float *out, const float *inp, const float *gamma, int64_t rows,
                                                      int C, cudaStream_t st) {
    const int64_t n = rows * C;
    scale_channels_forward_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(out, inp, gamma, C, n);
    return cudaGetLastError();
}
extern "C" cudaError_t vit_cuk_scale_channels_backward(float *dinp, const float *dout, const float *gamma, int64_t rows,
                                                       int C, cudaStream_t st) {
    const int64_t n = rows * C;
    scale_channels_backward_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(dinp, dout, gamma, C, n);
    return cudaGetLastError();
}

/* --------------------------------------------------------------- dropout */
__global__ void dropout_kernel(float *out, const float *inp, int64_t n, float p, float keep, uint64_t key,
                               int accumulate) {
    /* rounded multiply and add, never one fused FMA: the CPU's bits */
    VIT_CUK_FOR(i, n) {
        const float v = vit_rng_uniform(key, (uint64_t)i) >= p ? __fmul_rn(inp[i], keep) : 0.0f;
        out[i] = accumulate ? __fadd_rn(out[i], v) : v;
    }
}
extern "C" cudaError_t vit_cuk_dropout(float *out, const float *inp, int64_t n, float p, uint64_t key, int accumulate,
                                       cudaStream_t st) {
    dropout_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(out, inp, n, p, vit_dropout_keep_scale(p), key,
                                                                   accumulate);
    return cudaGetLastError();
}

/* -------------------------------------------------------------- residual */
__global__ void residual_forward_kernel(float *out, const float *x, const float *y, const float *scale, int64_t per,
                                        int64_t n) {
    VIT_CUK_FOR(i, n) out[i] = x[i] + (scale ? scale[i / per] : 1.0f) * y[i];
}
__global__ void residual_backward_kernel(float *dx, float *dy, const float *dout, const float *scale, int64_t per,
                                         int64_t n) {
    VIT_CUK_FOR(i, n) {
        const float g = dout[i];
        if (dx) dx[i] += g;
        if (dy) dy[i] += (scale ? scale[i / per] : 1.0f) * g;
    }
}
extern "C" cudaError_t vit_cuk_residual_forward(float *out, const float *x, const float *y, const float *scale, int B,
                                                int64_t per, cudaStream_t st) {
    const int64_t n = (int64_t)B * per;
    residual_forward_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(out, x, y, scale, per, n);
    return cudaGetLastError();
}
extern "C" cudaError_t vit_cuk_residual_backward(float *dx, float *dy, const float *dout, const float *scale, int B,
                                                 int64_t per, cudaStream_t st) {
    const int64_t n = (int64_t)B * per;
    residual_backward_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(dx, dy, dout, scale, per, n);
    return cudaGetLastError();
}

/* --------------------------------------------------------------- patches */
/* patches [B, gh * gw, Cin * p * p], element (b, n, (c, i, j)) */
__global__ void patchify_kernel(float *patches, const float *images, int Cin, int H, int W, int p, int gw,
                                int64_t per_patch, int64_t patches_per_image, int64_t n) {
    VIT_CUK_FOR(e, n) {
        const int64_t k = e % per_patch, pn = e / per_patch;
        const int64_t b = pn / patches_per_image, q = pn % patches_per_image;
        const int c = (int)(k / (p * p)), i = (int)(k / p % p), j = (int)(k % p);
        const int y = (int)(q / gw) * p + i, x = (int)(q % gw) * p + j;
        patches[e] = images[((b * Cin + c) * H + y) * W + x];
    }
}
/* One thread per image element: each belongs to at most one patch. */
__global__ void unpatchify_add_kernel(float *dimages, const float *dpatches, int Cin, int H, int W, int p, int gh,
                                      int gw, int64_t n) {
    VIT_CUK_FOR(e, n) {
        const int x = (int)(e % W), y = (int)(e / W % H), c = (int)(e / ((int64_t)W * H) % Cin);
        const int64_t b = e / ((int64_t)W * H * Cin);
        if (y >= gh * p || x >= gw * p) continue;
        const int64_t q = (int64_t)(y / p) * gw + x / p, k = ((int64_t)c * p + y % p) * p + x % p;
        dimages[e] += dpatches[(b * gh * gw + q) * ((int64_t)Cin * p * p) + k];
    }
}
extern "C" cudaError_t vit_cuk_patchify(float *patches, const float *images, int B, int Cin, int H, int W, int p,
                                        cudaStream_t st) {
    const int gh = H / p, gw = W / p;
    const int64_t per_patch = (int64_t)Cin * p * p, n = (int64_t)B * gh * gw * per_patch;
    if (n == 0) return cudaSuccess;
    patchify_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(patches, images, Cin, H, W, p, gw, per_patch,
                                                                   (int64_t)gh * gw, n);
    return cudaGetLastError();
}
extern "C" cudaError_t vit_cuk_unpatchify_add(float *dimages, const float *dpatches, int B, int Cin, int H, int W,
                                              int p, cudaStream_t st) {
    const int64_t n = (int64_t)B * Cin * H * W;
    unpatchify_add_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(dimages, dpatches, Cin, H, W, p, H / p,
                                                                         W / p, n);
    return cudaGetLastError();
}

/* ---------------------------------------------------------------- tokens */
/* tokens [B, P + N, D], P = has_cls + R: the class token, the registers, the
 * patches; pos added to every row (pos_prefix) or to the patch rows only. */
__global__ void embed_tokens_forward_kernel(float *tokens, const float *patch, const float *cls, const float *reg,
                                            const float *pos, int N, int D, int P, int pos_prefix, int64_t n) {
    VIT_CUK_FOR(e, n) {
        const int d = (int)(e % D), t = (int)(e / D % (P + N));
        const int64_t b = e / ((int64_t)D * (P + N));
        const float v = t >= P ? patch[(b * N + t - P) * D + d] : cls && t == 0 ? cls[d]
                                                                               : reg[(int64_t)(t - (cls != NULL)) * D + d];
        tokens[e] = pos_prefix || t >= P ? v + pos[(int64_t)(pos_prefix ? t : t - P) * D + d] : v;
    }
}
/* dpatch: one thread per element; dcls, dreg, dpos: one thread per (t, d),
 * the batch summed in order. */
__global__ void embed_tokens_backward_kernel(float *dpatch, float *dcls, float *dreg, float *dpos,
                                             const float *dtokens, int B, int N, int D, int P, int has_cls,
                                             int pos_prefix) {
    const int64_t per = (int64_t)(P + N) * D;
    if (dpatch)
        VIT_CUK_FOR(e, (int64_t)B * N * D) {
            const int64_t d = e % D, bn = e / D, b = bn / N, t = bn % N + P;
            dpatch[e] += dtokens[b * per + t * D + d];
        }
    VIT_CUK_FOR(e, per) {
        const int t = (int)(e / D), d = (int)(e % D);
        float *dprefix = t >= P ? NULL : has_cls && t == 0 ? dcls : dreg ? dreg + (int64_t)(t - (has_cls != 0)) * D : NULL;
        float *dp = !dpos ? NULL : pos_prefix ? dpos + (int64_t)t * D : t >= P ? dpos + (int64_t)(t - P) * D : NULL;
        if (!dprefix && !dp) continue;
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += dtokens[(int64_t)b * per + e];
        if (dp) dp[d] += s;
        if (dprefix) dprefix[d] += s;
    }
}
extern "C" cudaError_t vit_cuk_embed_tokens_forward(float *tokens, const float *patch, const float *cls,
                                                    const float *reg, const float *pos, int B, int N, int D, int R,
                                                    int pos_prefix, cudaStream_t st) {
    const int P = (cls != NULL) + R;
    const int64_t n = (int64_t)B * (P + N) * D;
    embed_tokens_forward_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(tokens, patch, cls, reg, pos, N, D, P,
                                                                               pos_prefix, n);
    return cudaGetLastError();
}
extern "C" cudaError_t vit_cuk_embed_tokens_backward(float *dpatch, float *dcls, float *dreg, float *dpos,
                                                     const float *dtokens, int B, int N, int D, int R, int has_cls,
                                                     int pos_prefix, cudaStream_t st) {
    const int P = (has_cls != 0) + R;
    embed_tokens_backward_kernel<<<vit_cuk_blocks((int64_t)B * (P + N) * D), VIT_CUK_THREADS, 0, st>>>(
        dpatch, dcls, dreg, dpos, dtokens, B, N, D, P, has_cls, pos_prefix);
    return cudaGetLastError();
}

/* --------------------------------------------------------------- pooling */
/* token 0, or the mean of tokens skip..T-1 (T <= skip: token 0, as the CPU) */
__global__ void pool_forward_kernel(float *out, const float *tokens, int B, int T, int D, int avg, int skip) {
    VIT_CUK_FOR(e, (int64_t)B * D) {
        const int64_t b = e / D, d = e % D;
        const float *tok = tokens + b * T * D + d;
        if (!avg || T <= skip) {
            out[e] = tok[0];
            continue;
        }
        float s = tok[(int64_t)skip * D];
        for (int t = skip + 1; t < T; t++) s += tok[(int64_t)t * D];
        out[e] = s * (1.0f / (float)(T - skip));
    }
}
__global__ void pool_backward_kernel(float *dtokens, const float *dout, int B, int T, int D, int avg, int skip) {
    VIT_CUK_FOR(e, (int64_t)B * T * D) {
        const int64_t d = e % D, t = e / D % T, b = e / ((int64_t)T * D);
        const float g = dout[b * D + d];
        if (!avg || T <= skip) {
            if (t == 0) dtokens[e] += g;
        } else if (t >= skip) {
            dtokens[e] += g * (1.0f / (float)(T - skip));
        }
    }
}
extern "C" cudaError_t vit_cuk_pool_forward(float *out, const float *tokens, int B, int T, int D, int avg, int skip,
                                            cudaStream_t st) {
    pool_forward_kernel<<<vit_cuk_blocks((int64_t)B * D), VIT_CUK_THREADS, 0, st>>>(out, tokens, B, T, D, avg, skip);
    return cudaGetLastError();
}
extern "C" cudaError_t vit_cuk_pool_backward(float *dtokens, const float *dout, int B, int T, int D, int avg, int skip,
                                             cudaStream_t st) {
    pool_backward_kernel<<<vit_cuk_blocks((int64_t)B * T * D), VIT_CUK_THREADS, 0, st>>>(dtokens, dout, B, T, D, avg,
                                                                                          skip);
    return cudaGetLastError();
}

/* ----------------------------------------------------- attention layouts */
/* e indexes qkv [B, T, 3, H, hd]; its place in three [B, H, T, hd] tensors. */
__device__ __forceinline__ int64_t qkv_split_index(int64_t e, int B, int T, int H, int hd) {
    const int64_t d = e % hd, h = e / hd % H, w = e / ((int64_t)hd * H) % 3, t = e / ((int64_t)hd * H * 3) % T;
    const int64_t b = e / ((int64_t)hd * H * 3 * T);
    return (((w * B + b) * H + h) * T + t) * hd + d;
}
__global__ void qkv_split_kernel(float *dst3, const float *qkv, int B, int T, int H, int hd, int64_t n) {
    VIT_CUK_FOR(e, n) dst3[qkv_split_index(e, B, T, H, hd)] = qkv[e];
}
__global__ void qkv_merge_add_kernel(float *dqkv, const float *src3, int B, int T, int H, int hd, int64_t n) {
    VIT_CUK_FOR(e, n) dqkv[e] += src3[qkv_split_index(e, B, T, H, hd)];
}
/* e indexes [B, T, H, hd]; its place in [B, H, T, hd]. */
__global__ void heads_kernel(float *dst, const float *src, int B, int T, int H, int hd, int to_heads, int64_t n) {
    VIT_CUK_FOR(e, n) {
        const int64_t d = e % hd, h = e / hd % H, t = e / ((int64_t)hd * H) % T, b = e / ((int64_t)hd * H * T);
        const int64_t f = ((b * H + h) * T + t) * hd + d;
        if (to_heads)
            dst[f] = src[e];
        else
            dst[e] = src[f];
    }
}
extern "C" cudaError_t vit_cuk_qkv_split(float *dst3, const float *qkv, int B, int T, int H, int hd, cudaStream_t st) {
    const int64_t n = (int64_t)B * T * 3 * H * hd;
    qkv_split_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(dst3, qkv, B, T, H, hd, n);
    return cudaGetLastError();
}
extern "C" cudaError_t vit_cuk_qkv_merge_add(float *dqkv, const float *src3, int B, int T, int H, int hd,
                                             cudaStream_t st) {
    const int64_t n = (int64_t)B * T * 3 * H * hd;
    qkv_merge_add_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(dqkv, src3, B, T, H, hd, n);
    return cudaGetLastError();
}
extern "C" cudaError_t vit_cuk_heads(float *dst, const float *src, int B, int T, int H, int hd, int to_heads,
                                     cudaStream_t st) {
    const int64_t n = (int64_t)B * T * H * hd;
    heads_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(dst, src, B, T, H, hd, to_heads, n);
    return cudaGetLastError();
}

/* ----------------------------------------------------------------- AdamW */
/* One pass over the flat buffers: each element read and written once. */
__global__ void adamw_kernel(float *param, float *m, float *v, const float *grad, int64_t n, vit_adamw_consts k) {
    VIT_CUK_FOR(i, n) {
        float p = param[i], mi = m[i], vi = v[i];
        vit_adamw_element(&p, &mi, &vi, grad[i], &k);
        param[i] = p, m[i] = mi, v[i] = vi;
    }
}
extern "C" cudaError_t vit_cuk_adamw(float *param, float *m, float *v, const float *grad, int64_t n,
                                     vit_adamw_consts k, cudaStream_t st) {
    adamw_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(param, m, v, grad, n, k);
    return cudaGetLastError();
}
