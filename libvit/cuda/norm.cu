/* Row kernels (one warp per row): LayerNorm, softmax, cross-entropy; and the
 * deterministic reductions: column sums in fixed row chunks, sum of squares
 * in fixed element chunks, each finished by adding the partial sums in order. */
#include "cuda/launch.cuh"

/* -------------------------------------------------------------- LayerNorm */
/* Two passes over the row (mean, then the centred squares), both over x
 * shifted by the row's first element: when |mean| >> std a float sum of x
 * itself loses the spread (rows offset by 10 came out 1.6e-6 off, twice the
 * kernel test's tolerance, where the CPU sums in double), while the shifted
 * values are of the spread's size and keep it, without doubles. */
__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                         const float *b, int64_t rows, int C, float eps) {
    const int lane = threadIdx.x % 32;
    VIT_CUK_FOR_ROWS(r, rows) {
        const float *x = inp + r * C;
        const float x0 = x[0];
        float s = 0.0f;
        for (int i = lane; i < C; i += 32) s += x[i] - x0;
        const float shifted_mean = vit_warp_sum(s) / (float)C;
        float q = 0.0f;
        for (int i = lane; i < C; i += 32) {
            const float centred = (x[i] - x0) - shifted_mean;
            q += centred * centred;
        }
        const float rs = 1.0f / sqrtf(vit_warp_sum(q) / (float)C + eps);
        float *y = out + r * C;
        for (int i = lane; i < C; i += 32)
            y[i] = ((x[i] - x0) - shifted_mean) * rs * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
        if (lane == 0) {
            if (mean) mean[r] = x0 + shifted_mean;
            if (rstd) rstd[r] = rs;
        }
    }
}
extern "C" cudaError_t vit_cuk_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                                 const float *weight, const float *bias, int64_t rows, int C, float eps,
                                                 cudaStream_t st) {
    layernorm_forward_kernel<<<vit_cuk_row_blocks(rows), 32 * VIT_CUK_WARPS_PER_BLOCK, 0, st>>>(
        out, mean, rstd, inp, weight, bias, rows, C, eps);
    return cudaGetLastError();
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w */
__global__ void layernorm_backward_input_kernel(float *dinp, const float *dout, const float *inp, const float *w,
                                                const float *mean, const float *rstd, int64_t rows, int C) {
    const int lane = threadIdx.x % 32;
    VIT_CUK_FOR_ROWS(r, rows) {
        const float *x = inp + r * C, *dy = dout + r * C;
        const float mu = mean[r], rs = rstd[r];
        float sg = 0.0f, sgx = 0.0f;
        for (int i = lane; i < C; i += 32) {
            const float g = dy[i] * (w ? w[i] : 1.0f), xh = (x[i] - mu) * rs;
            sg += g;
            sgx += g * xh;
        }
        const float mg = vit_warp_sum(sg) / (float)C, mgx = vit_warp_sum(sgx) / (float)C;
        float *dx = dinp + r * C;
        for (int i = lane; i < C; i += 32) {
            const float g = dy[i] * (w ? w[i] : 1.0f), xh = (x[i] - mu) * rs;
            dx[i] += rs * (g - mg - xh * mgx);
        }
    }
}
extern "C" cudaError_t vit_cuk_layernorm_backward_input(float *dinp, const float *dout, const float *inp,
                                                        const float *weight, const float *mean, const float *rstd,
                                                        int64_t rows, int C, cudaStream_t st) {
    layernorm_backward_input_kernel<<<vit_cuk_row_blocks(rows), 32 * VIT_CUK_WARPS_PER_BLOCK, 0, st>>>(
        dinp, dout, inp, weight, mean, rstd, rows, C);
    return cudaGetLastError();
}

/* ------------------------------------------------------------ column sums */
/* Block (32, 8) per 32 columns and one chunk of VIT_CUK_CHUNK_ROWS rows:
 * thread row ty takes rows ty, ty + 8, ...; the 8 sums are added in order. */
__global__ void colsum_partial_kernel(float *partial, const float *dout, const float *inp, const float *mean,
                                      const float *rstd, int64_t rows, int C) {
    __shared__ float part[8][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    const int64_t r0 = (int64_t)blockIdx.y * VIT_CUK_CHUNK_ROWS;
    const int64_t r1 = r0 + VIT_CUK_CHUNK_ROWS < rows ? r0 + VIT_CUK_CHUNK_ROWS : rows;
    float s = 0.0f;
    if (c < C)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
            const float g = dout[r * C + c];
            s += mean ? g * (inp[r * C + c] - mean[r]) * rstd[r] : inp ? g * inp[r * C + c] : g;
        }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float t = part[0][threadIdx.x];
        for (int k = 1; k < 8; k++) t += part[k][threadIdx.x];
        partial[(int64_t)blockIdx.y * C + c] = t;
    }
}
__global__ void colsum_finish_kernel(float *out, const float *partial, int chunks, int C) {
    VIT_CUK_FOR(c, C) {
        double s = 0.0;
        for (int k = 0; k < chunks; k++) s += partial[(int64_t)k * C + c];
        out[c] += (float)s;
    }
}
extern "C" cudaError_t vit_cuk_colsum_partial(float *partial, const float *dout, const float *inp, const float *mean,
                                              const float *rstd, int64_t rows, int C, cudaStream_t st) {
    const int64_t chunks = (rows + VIT_CUK_CHUNK_ROWS - 1) / VIT_CUK_CHUNK_ROWS;
    if (chunks == 0 || C == 0) return cudaSuccess;
    if (chunks > 65535) return cudaErrorInvalidConfiguration;
    colsum_partial_kernel<<<dim3((unsigned)((C + 31) / 32), (unsigned)chunks), dim3(32, 8), 0, st>>>(
        partial, dout, inp, mean, rstd, rows, C);
    return cudaGetLastError();
}
extern "C" cudaError_t vit_cuk_colsum_finish(float *out, const float *partial, int chunks, int C, cudaStream_t st) {
    colsum_finish_kernel<<<vit_cuk_blocks(C), VIT_CUK_THREADS, 0, st>>>(out, partial, chunks, C);
    return cudaGetLastError();
}

/* ---------------------------------------------------------------- softmax */
__global__ void softmax_forward_kernel(float *out, const float *inp, int64_t rows, int C, float scale) {
    const int lane = threadIdx.x % 32;
    VIT_CUK_FOR_ROWS(r, rows) {
        const float *x = inp + r * C;
        float *y = out + r * C;
        float mx = -INFINITY;
        for (int i = lane; i < C; i += 32) mx = fmaxf(mx, x[i] * scale);
        mx = vit_warp_max(mx);
        float s = 0.0f;
        for (int i = lane; i < C; i += 32) {
            const float e = vit_expf(x[i] * scale - mx);
            y[i] = e;
            s += e;
        }
        const float inv = 1.0f / vit_warp_sum(s);
        for (int i = lane; i < C; i += 32) y[i] *= inv;
    }
}
extern "C" cudaError_t vit_cuk_softmax_forward(float *out, const float *inp, int64_t rows, int C, float scale,
                                               cudaStream_t st) {
    softmax_forward_kernel<<<vit_cuk_row_blocks(rows), 32 * VIT_CUK_WARPS_PER_BLOCK, 0, st>>>(out, inp, rows, C,
                                                                                              scale);
    return cudaGetLastError();
}

__global__ void softmax_backward_kernel(float *dinp, const float *out, const float *dout, int64_t rows, int C,
                                        float scale, int accumulate, float drop_p, float keep, uint64_t key) {
    const int lane = threadIdx.x % 32;
    VIT_CUK_FOR_ROWS(r, rows) {
        const float *y = out + r * C, *dy = dout + r * C;
        float *dx = dinp + r * C;
        const uint64_t base = (uint64_t)r * (uint64_t)C;
#define GRAD(i) (drop_p > 0.0f ? (vit_rng_uniform(key, base + (i)) >= drop_p ? dy[i] * keep : 0.0f) : dy[i])
        float s = 0.0f;
        for (int i = lane; i < C; i += 32) s += y[i] * GRAD(i);
        const float dot = vit_warp_sum(s);
        for (int i = lane; i < C; i += 32) {
            const float d = scale * y[i] * (GRAD(i) - dot);
            dx[i] = accumulate ? dx[i] + d : d;
        }
#undef GRAD
    }
}
extern "C" cudaError_t vit_cuk_softmax_backward(float *dinp, const float *out, const float *dout, int64_t rows, int C,
                                                float scale, int accumulate, float drop_p, uint64_t key,
                                                cudaStream_t st) {
    softmax_backward_kernel<<<vit_cuk_row_blocks(rows), 32 * VIT_CUK_WARPS_PER_BLOCK, 0, st>>>(
        dinp, out, dout, rows, C, scale, accumulate, drop_p, vit_dropout_keep_scale(drop_p), key);
    return cudaGetLastError();
}

/* ---------------------------------------------------------- cross-entropy */
/* As the CPU: log p = x - (max + log sum exp(x - max)) in double, never log(softmax). */
__global__ void cross_entropy_rows_kernel(float *probs, double *rowloss, const float *logits, const int32_t *labels,
                                          int B, int C, float smoothing) {
    const int lane = threadIdx.x % 32;
    VIT_CUK_FOR_ROWS(b, B) {
        const float *x = logits + b * C;
        float *p = probs + b * C;
        float mx = -INFINITY;
        for (int i = lane; i < C; i += 32) mx = fmaxf(mx, x[i]);
        mx = vit_warp_max(mx);
        double s = 0.0, sx = 0.0;
        for (int i = lane; i < C; i += 32) {
            const float e = expf(x[i] - mx);
            p[i] = e;
            s += e;
            sx += x[i];
        }
        s = vit_warp_sum_d(s);
        sx = vit_warp_sum_d(sx);
        const float inv = (float)(1.0 / s);
        for (int i = lane; i < C; i += 32) p[i] *= inv;
        if (lane == 0) {
            const double lse = (double)mx + log(s);
            const int32_t label = labels[b];
            const double lp = label >= 0 && label < C ? (double)x[label] - lse : NAN;
            double loss = -(1.0 - (double)smoothing) * lp;
            if (smoothing != 0.0f) loss -= (double)smoothing / C * (sx - C * lse);
            rowloss[b] = loss;
        }
    }
}
__global__ void mean_in_order_kernel(float *loss, const double *rowloss, int B) {
    double t = 0.0;
    for (int b = 0; b < B; b++) t += rowloss[b];
    *loss = (float)(t / B);
}
extern "C" cudaError_t vit_cuk_cross_entropy_forward(float *loss, float *probs, double *rowloss, const float *logits,
                                                     const int32_t *labels, int B, int C, float smoothing,
                                                     cudaStream_t st) {
    cross_entropy_rows_kernel<<<vit_cuk_row_blocks(B), 32 * VIT_CUK_WARPS_PER_BLOCK, 0, st>>>(
        probs, rowloss, logits, labels, B, C, smoothing);
    mean_in_order_kernel<<<1, 1, 0, st>>>(loss, rowloss, B);
    return cudaGetLastError();
}

__global__ void cross_entropy_backward_kernel(float *dlogits, const float *probs, const int32_t *labels, int B, int C,
                                              float smoothing, const float *dloss) {
    const float g = *dloss / (float)B;
    const float off = smoothing / (float)C, on = off + (1.0f - smoothing);
    VIT_CUK_FOR(e, (int64_t)B * C) {
        const int c = (int)(e % C);
        dlogits[e] += g * (probs[e] - (c == labels[e / C] ? on : off));
    }
}
extern "C" cudaError_t vit_cuk_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *labels, int B,
                                                      int C, float smoothing, const float *dloss, cudaStream_t st) {
    cross_entropy_backward_kernel<<<vit_cuk_blocks((int64_t)B * C), VIT_CUK_THREADS, 0, st>>>(dlogits, probs, labels,
                                                                                               B, C, smoothing, dloss);
    return cudaGetLastError();
}

/* ---------------------------------------------------------- sum of squares */
__global__ void sum_squares_partial_kernel(double *partial, const float *x, int64_t n) {
    __shared__ double part[VIT_CUK_THREADS];
    const int64_t i0 = (int64_t)blockIdx.x * VIT_CUK_CHUNK_ELEMS;
    const int64_t i1 = i0 + VIT_CUK_CHUNK_ELEMS < n ? i0 + VIT_CUK_CHUNK_ELEMS : n;
    double s = 0.0;
    for (int64_t i = i0 + threadIdx.x; i < i1; i += VIT_CUK_THREADS) s += (double)x[i] * x[i];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = VIT_CUK_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = part[0];
}
__global__ void sum_in_order_kernel(double *result, const double *partial, int64_t chunks) {
    double t = 0.0;
    for (int64_t k = 0; k < chunks; k++) t += partial[k];
    *result = t;
}
extern "C" cudaError_t vit_cuk_sum_squares(double *result, double *partial, const float *x, int64_t n,
                                           cudaStream_t st) {
    const int64_t chunks = (n + VIT_CUK_CHUNK_ELEMS - 1) / VIT_CUK_CHUNK_ELEMS;
    if (chunks > 0x7fffffff) return cudaErrorInvalidConfiguration;
    if (chunks > 0) sum_squares_partial_kernel<<<(unsigned)chunks, VIT_CUK_THREADS, 0, st>>>(partial, x, n);
    sum_in_order_kernel<<<1, 1, 0, st>>>(result, partial, chunks);
    return cudaGetLastError();
}
