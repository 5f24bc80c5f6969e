/* The benchmark workloads of docs/performance.md, shared by vit-bench and
 * bench/bench_gemm (which measures the matrix-product rate at their shapes). */
#ifndef VIT_BENCH_WORKLOADS_H
#define VIT_BENCH_WORKLOADS_H

typedef struct vit_bench_workload {
    const char *name;
    int img, patch, channels, dim, depth, heads;
    double mlp;
    int classes, batch, train;
} vit_bench_workload;

static const vit_bench_workload vit_bench_workloads[] = {
    {"fmnist-train", 28, 4, 1, 96, 6, 3, 4.0, 10, 128, 1},
    {"tiny-c32-train", 32, 4, 3, 192, 12, 3, 4.0, 10, 64, 1},
    {"seed-b16-train", 224, 16, 3, 768, 12, 12, 4.0, 2, 4, 1},
    {"b16-infer-b1", 224, 16, 3, 768, 12, 12, 4.0, 1000, 1, 0},
    {"b16-infer-b16", 224, 16, 3, 768, 12, 12, 4.0, 1000, 16, 0},
    /* ViT-B/16 at ImageNet's shape, for GPUs (vit-bench --batch sets the batch) */
    {"b16-train", 224, 16, 3, 768, 12, 12, 4.0, 1000, 64, 1},
    {"b16-infer", 224, 16, 3, 768, 12, 12, 4.0, 1000, 64, 0},
};

/* Forward FLOPs per image (2 x multiply-adds) of every matrix product,
 * attention included; docs/performance.md derives it. Training counts 3x
 * (forward, and two products per product in backward). */
static inline double vit_bench_forward_flops(const vit_bench_workload *w) {
    double n = (double)(w->img / w->patch) * (w->img / w->patch), t = n + 1, d = w->dim;
    double hidden = (double)(int)(w->dim * w->mlp);
    double patch = 2 * n * w->channels * w->patch * w->patch * d;
    double block = 2 * t * d * 3 * d + 2 * 2 * t * t * d + 2 * t * d * d + 2 * 2 * t * d * hidden;
    return patch + w->depth * block + 2 * d * w->classes;
}

/* Of those, what libvit's inference does not compute: the workloads pool
 * the class token, so the last block's projection and MLP run on it alone. */
static inline double vit_bench_skipped_forward_flops(const vit_bench_workload *w) {
    if (w->train) return 0.0;
    double n = (double)(w->img / w->patch) * (w->img / w->patch), d = w->dim;
    double hidden = (double)(int)(w->dim * w->mlp);
    return n * (2 * d * d + 2 * 2 * d * hidden);
}

#define VIT_BENCH_WORKLOADS (sizeof vit_bench_workloads / sizeof *vit_bench_workloads)

#endif
