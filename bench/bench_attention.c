/*
 * bench_attention: one attention layer's forward and backward through the
 * CPU backend's table (the ISA level VIT_MAX_CPU_ISA allows), best of R calls,
 * and the forward of inference (nothing kept for backward), which may take
 * another road. The backward writes a fresh gradient, as in a training step;
 * the figure in brackets adds into one.
 *
 *   bench_attention B T H HD [REPS]      e.g. 128 50 3 32 (fmnist), 4 197 12 64 (ViT-B/16)
 *
 * Threads from OMP_NUM_THREADS. GFLOP/s counts q.k^T and (softmax).v forward
 * (4 T^2 hd per head and image) and twice that backward.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/backend.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *uniform(size_t n, unsigned seed) {
    float *p = vit_alloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_attention: out of memory\n");
        exit(1);
    }
    srand(seed);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s B T H HD [REPS]\n", argv[0]);
        return 2;
    }
    const int B = atoi(argv[1]), T = atoi(argv[2]), H = atoi(argv[3]), hd = atoi(argv[4]);
    const int reps = argc > 5 ? atoi(argv[5]) : 15;
    if (B < 1 || T < 1 || H < 1 || hd < 1 || reps < 1) {
        fprintf(stderr, "bench_attention: B, T, H, HD and REPS must be positive\n");
        return 2;
    }
    const size_t nqkv = (size_t)B * T * 3 * H * hd, nout = (size_t)B * T * H * hd;
    float *qkv = uniform(nqkv, 1), *dout = uniform(nout, 2), *dqkv = uniform(nqkv, 3);
    vit_backend *be;
    if (vit_backend_create_cpu(&be) != VIT_OK) return 1;
    size_t saved_bytes, scratch_bytes;
    be->ops->attention_sizes(be, B, T, H, hd, &saved_bytes, &scratch_bytes);
    float *out = vit_alloc(nout * sizeof(float));
    void *saved = vit_alloc(saved_bytes), *scratch = vit_alloc(scratch_bytes);
    if (!out || !saved || !scratch) return 1;
    const float scale = 1.0f / sqrtf((float)hd);
    double fwd = 1e30, bwd = 1e30, bwd_add = 1e30, infer = 1e30;
    for (int r = 0; r < reps; r++) {
        double ti = now();
        if (be->ops->attention_forward(be, out, NULL, qkv, B, T, H, hd, scale, 0.0f, 1, scratch) != VIT_OK) return 1;
        double t0 = now();
        if (be->ops->attention_forward(be, out, saved, qkv, B, T, H, hd, scale, 0.0f, 1, scratch) != VIT_OK) return 1;
        double t1 = now();
        for (int accumulate = 0; accumulate < 2; accumulate++) {
            double tb = now();
            if (be->ops->attention_backward(be, dqkv, accumulate, dout, qkv, out, saved, B, T, H, hd, scale, 0.0f, 1,
                                            scratch) != VIT_OK)
                return 1;
            const double t = now() - tb;
            double *best = accumulate ? &bwd_add : &bwd;
            if (t < *best) *best = t;
        }
        if (t0 - ti < infer) infer = t0 - ti;
        if (t1 - t0 < fwd) fwd = t1 - t0;
    }
    const double flops = 4.0 * T * T * hd * H * B;
    printf("attention (%s) B %d T %d H %d hd %d, %d threads: forward %.2f ms (%.1f GFLOP/s), backward %.2f ms "
           "(%.1f GFLOP/s; %.2f ms adding), inference forward %.2f ms (%.1f GFLOP/s)\n",
           be->ops->name, B, T, H, hd, omp_get_max_threads(), fwd * 1e3, flops / fwd * 1e-9, bwd * 1e3,
           2 * flops / bwd * 1e-9, bwd_add * 1e3, infer * 1e3, flops / infer * 1e-9);
    vit_free(qkv), vit_free(dout), vit_free(dqkv), vit_free(out), vit_free(saved), vit_free(scratch);
    vit_backend_release(be);
    return 0;
}
