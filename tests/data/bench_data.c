/* Throughput figures for docs/data.md.
 *   1. Decode a 500x375 JPEG and resize it to 224x224 f32 (what a loader
 *      worker does per image), on one thread: images/s per core.
 *   2. The loader on Fashion-MNIST (/usr/share/datasets/fashion-mnist),
 *      batch 128 at 28x28, 0 / 1 / 2 workers, with and without augmentation.
 * Run: meson test -C build --benchmark --suite data -v */
#include <time.h>

#include "data/data.h"
#include "fixtures.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: a per-core rate that other users of a shared
 * machine do not distort (wall time is printed alongside). */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* fixtures.h's writers assert through Check, which needs a running test. */
static void write_jpeg(const char *path, const unsigned char *rgb, int w, int h) {
    tjhandle tj = tjInitCompress();
    unsigned char *out = NULL;
    unsigned long size = 0;
    FILE *f = fopen(path, "wb");
    if (!f || tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &out, &size, TJSAMP_420, 90, 0) != 0 ||
        fwrite(out, 1, size, f) != size) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
    tjFree(out);
    tjDestroy(tj);
}

static void bench_jpeg(vit_context *ctx, const char *dir) {
    unsigned char *pic = fx_picture(500, 375, 1);
    char p[512];
    snprintf(p, sizeof p, "%s/bench.jpg", dir);
    write_jpeg(p, pic, 500, 375);
    vit_transform *tf;
    vit_transform_create(ctx, &tf);
    vit_transform_set_int(tf, VIT_TF_NORMALIZE, VIT_NORM_IMAGENET);
    vit_scratch s;
    vit_scratch_init(&s);
    float *out = malloc(3 * 224 * 224 * sizeof(float));
    int n = 0;
    double t0 = now(), c0 = cpu_now(), t;
    do {
        if (vit_image_read(&s.dec, p, 3, 224, &s.decoded) != VIT_OK) {
            fprintf(stderr, "decode: %s\n", vit_last_error());
            exit(1);
        }
        vit_view v = {s.decoded.data, s.decoded.w, s.decoded.h, 3};
        vit_transform_apply(tf, &v, 3, 0, 0, out, &s);
        n++;
    } while ((t = now() - t0) < 4.0);
    double c = cpu_now() - c0;
    printf("JPEG 500x375 decode + bilinear resize to 224x224 + normalize, 1 thread: %.0f images/s per core "
           "(%.2f ms CPU each; wall %.0f images/s)\n", n / c, 1e3 * c / n, n / t);
    /* The parts, for the record. */
    n = 0;
    t0 = now();
    c0 = cpu_now();
    do {
        vit_image_read(&s.dec, p, 3, 0, &s.decoded);
        n++;
    } while ((t = now() - t0) < 2.0);
    printf("  decode alone: %.2f ms CPU\n", 1e3 * (cpu_now() - c0) / n);
    n = 0;
    t0 = now();
    c0 = cpu_now();
    do {
        vit_view v = {s.decoded.data, s.decoded.w, s.decoded.h, 3};
        vit_transform_apply(tf, &v, 3, 0, 0, out, &s);
        n++;
    } while ((t = now() - t0) < 2.0);
    printf("  resize + normalize alone: %.2f ms CPU\n", 1e3 * (cpu_now() - c0) / n);
    free(out);
    vit_scratch_release(&s);
    vit_transform_destroy(tf);
    free(pic);
}

static void bench_loader(vit_context *ctx) {
    const char *path = "/usr/share/datasets/fashion-mnist";
    vit_dataset *ds;
    if (vit_dataset_open(ctx, path, VIT_DATA_IDX, VIT_SPLIT_TRAIN, &ds) != VIT_OK) {
        printf("loader: %s (skipped)\n", vit_last_error());
        return;
    }
    int64_t shape[4] = {128, 1, 28, 28}, lshape[1] = {128};
    vit_tensor *im, *lb;
    vit_tensor_create(ctx, VIT_DTYPE_F32, 4, shape, &im);
    vit_tensor_create(ctx, VIT_DTYPE_I32, 1, lshape, &lb);
    for (int aug = 0; aug < 2; aug++) {
        vit_transform *tf;
        vit_transform_create(ctx, &tf);
        vit_transform_set_int(tf, VIT_TF_SIZE, 28);
        vit_transform_set_int(tf, VIT_TF_NORMALIZE, VIT_NORM_HALF);
        if (aug) {
            vit_transform_set_float(tf, VIT_TF_FLIP_P, 0.5);
            vit_transform_set_float(tf, VIT_TF_ROTATION, 10);
        }
        for (int workers = 0; workers <= 2; workers++) {
            vit_loader *ld;
            vit_loader_create(ds, tf, 128, &ld);
            vit_loader_set_int(ld, VIT_LD_WORKERS, workers);
            int64_t batches = 0;
            double t0 = now();
            for (int epoch = 0; epoch < 2; epoch++) {
                vit_loader_start_epoch(ld, epoch);
                int count;
                while (vit_loader_next(ld, im, lb, &count) == VIT_OK && count > 0) batches++;
            }
            double t = now() - t0;
            printf("loader Fashion-MNIST batch 128 28x28 %s, %d worker%s: %.0f batches/s (%.0f images/s)\n",
                   aug ? "flip+rotate(10)" : "no augmentation", workers, workers == 1 ? "" : "s", batches / t,
                   batches * 128 / t);
            vit_loader_destroy(ld);
        }
        vit_transform_destroy(tf);
    }
    vit_tensor_destroy(im);
    vit_tensor_destroy(lb);
    vit_dataset_destroy(ds);
}

int main(void) {
    vit_context *ctx;
    vit_context_create(&ctx);
    char tmpl[] = "/tmp/vit-bench-XXXXXX";
    char *dir = mkdtemp(tmpl);
    bench_jpeg(ctx, dir);
    bench_loader(ctx);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    vit_context_destroy(ctx);
    return 0;
}
