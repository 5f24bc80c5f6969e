/* Bicubic resampling of a [gh, gw, D] grid as the CPU's (cpu/bicubic.c):
 * Keys' cubic with A = -0.75, taps clamped, weights formed in double and
 * rounded once, rows summed before columns. The backward gives each thread
 * one channel d and walks the outputs in order: race-free and deterministic. */
#include "cuda/launch.cuh"

struct taps {
    int idx[4];
    float w[4];
};

__device__ static taps cubic_taps(int dst, int in, int out) {
    const double A = -0.75;
    const double real = ((double)dst + 0.5) * in / out - 0.5;
    const double fl = floor(real), t = real - fl;
    taps k;
#define CUBIC1(x) (((A + 2.0) * (x) - (A + 3.0)) * (x) * (x) + 1.0)
#define CUBIC2(x) ((((A * (x) - 5.0 * A) * (x) + 8.0 * A) * (x)) - 4.0 * A)
    k.w[0] = (float)CUBIC2(t + 1.0);
    k.w[1] = (float)CUBIC1(t);
    k.w[2] = (float)CUBIC1(1.0 - t);
    k.w[3] = (float)CUBIC2(2.0 - t);
#undef CUBIC1
#undef CUBIC2
    for (int j = 0; j < 4; j++) {
        const int i = (int)fl - 1 + j;
        k.idx[j] = i < 0 ? 0 : i > in - 1 ? in - 1 : i;
    }
    return k;
}

__global__ void bicubic_kernel(float *out, int gh_out, int gw_out, const float *inp, int gh_in, int gw_in, int D) {
    VIT_CUK_FOR(e, (int64_t)gh_out * gw_out * D) {
        const int d = (int)(e % D);
        const int64_t o = e / D;
        const taps ty = cubic_taps((int)(o / gw_out), gh_in, gh_out), tx = cubic_taps((int)(o % gw_out), gw_in, gw_out);
        float acc = 0.0f;
        for (int a = 0; a < 4; a++) {
            const float *r = inp + (int64_t)ty.idx[a] * gw_in * D + d;
            const float v = (r[(int64_t)tx.idx[0] * D] * tx.w[0] + r[(int64_t)tx.idx[1] * D] * tx.w[1] +
                             r[(int64_t)tx.idx[2] * D] * tx.w[2] + r[(int64_t)tx.idx[3] * D] * tx.w[3]) *
                            ty.w[a];
            acc = a == 0 ? v : acc + v;
        }
        out[e] = acc;
    }
}

__global__ void bicubic_backward_kernel(float *dinp, int gh_in, int gw_in, const float *dout, int gh_out, int gw_out,
                                        int D) {
    VIT_CUK_FOR(d, D) {
        for (int oy = 0; oy < gh_out; oy++) {
            const taps ty = cubic_taps(oy, gh_in, gh_out);
            for (int ox = 0; ox < gw_out; ox++) {
                const taps tx = cubic_taps(ox, gw_in, gw_out);
                const float g = dout[((int64_t)oy * gw_out + ox) * D + d];
                for (int a = 0; a < 4; a++)
                    for (int c = 0; c < 4; c++)
                        dinp[((int64_t)ty.idx[a] * gw_in + tx.idx[c]) * D + d] += ty.w[a] * tx.w[c] * g;
            }
        }
    }
}

extern "C" cudaError_t vit_cuk_resample_bicubic(float *out, int gh_out, int gw_out, const float *inp, int gh_in,
                                                int gw_in, int D, cudaStream_t st) {
    const int64_t n = (int64_t)gh_out * gw_out * D;
    if (gh_out == gh_in && gw_out == gw_in)
        return cudaMemcpyAsync(out, inp, (size_t)n * sizeof(float), cudaMemcpyDeviceToDevice, st);
    bicubic_kernel<<<vit_cuk_blocks(n), VIT_CUK_THREADS, 0, st>>>(out, gh_out, gw_out, inp, gh_in, gw_in, D);
    return cudaGetLastError();
}

extern "C" cudaError_t vit_cuk_resample_bicubic_backward(float *dinp, int gh_in, int gw_in, const float *dout,
                                                         int gh_out, int gw_out, int D, cudaStream_t st) {
    if (gh_out == gh_in && gw_out == gw_in) return vit_cuk_add(dinp, dinp, dout, (int64_t)gh_in * gw_in * D, st);
    bicubic_backward_kernel<<<vit_cuk_blocks(D), VIT_CUK_THREADS, 0, st>>>(dinp, gh_in, gw_in, dout, gh_out, gw_out,
                                                                            D);
    return cudaGetLastError();
}
