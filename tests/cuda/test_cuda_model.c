/*
 * The whole model on the GPU against the CPU, through the public API only:
 *   1. a program that never asks for a GPU has loaded no CUDA library;
 *   2. one set of weights (a checkpoint written by the CPU model), one batch,
 *      dropout, attention dropout and DropPath on: the training-mode logits,
 *      the loss and every parameter gradient of the float32 GPU model match
 *      the CPU's (the masks are the same counter-based draws on both
 *      devices), and the bf16 model's match to bf16's precision;
 *   3. 50 AdamW steps on Fashion-MNIST from the same weights and batches:
 *      the loss falls on the GPU as on the CPU (float32: the same curve
 *      within a few percent; bf16: falling as far);
 *   4. the checkpoint written by the trained GPU model loads on the CPU and
 *      gives the GPU's logits;
 *   5. the loader fills GPU tensors (overlapped uploads) as it fills host ones.
 * Without a usable GPU it reports itself skipped (exit 77) with the reason,
 * after check 1. Fashion-MNIST comes from $VIT_FMNIST_DIR (default Debian's
 * dataset-fashion-mnist); without it check 3 is skipped with a note.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vit/vit.h"

#include "../check_macros.h"

enum { IMG = 28, PATCH = 7, CH = 1, CLASSES = 10, BATCH = 32, STEPS = 50 };

static int cuda_libraries_loaded(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof line, f))
        found |= strstr(line, "libcudart") || strstr(line, "libcublas") || strstr(line, "libcudnn") ||
                 strstr(line, "libvit-cuda");
    fclose(f);
    return found;
}

static vit_context *context(int cuda, vit_precision precision) {
    vit_context *ctx;
    OK(vit_context_create(&ctx));
    OK(vit_context_set_int(ctx, VIT_CTX_SEED, 7));
    if (cuda) {
        OK(vit_context_set_int(ctx, VIT_CTX_DEVICE, VIT_DEVICE_CUDA));
        OK(vit_context_set_int(ctx, VIT_CTX_PRECISION, precision));
    }
    return ctx;
}

static vit_model *tiny_model(vit_context *ctx, double drop) {
    vit_config *cfg;
    vit_model *m;
    OK(vit_config_create(&cfg));
    OK(vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, IMG));
    OK(vit_config_set_int(cfg, VIT_CFG_PATCH_SIZE, PATCH));
    OK(vit_config_set_int(cfg, VIT_CFG_IN_CHANNELS, CH));
    OK(vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, CLASSES));
    OK(vit_config_set_int(cfg, VIT_CFG_DIM, 48));
    OK(vit_config_set_int(cfg, VIT_CFG_DEPTH, 2));
    OK(vit_config_set_int(cfg, VIT_CFG_HEADS, 3));
    OK(vit_config_set_float(cfg, VIT_CFG_DROP_RATE, drop));
    OK(vit_config_set_float(cfg, VIT_CFG_ATTN_DROP_RATE, drop));
    OK(vit_config_set_float(cfg, VIT_CFG_DROP_PATH_RATE, drop));
    OK(vit_model_create(ctx, cfg, &m));
    vit_config_destroy(cfg);
    return m;
}

static vit_tensor *tensor(vit_context *ctx, vit_dtype t, int nd, const int64_t *shape, const void *host, size_t bytes) {
    vit_tensor *x;
    OK(vit_tensor_create(ctx, t, nd, shape, &x));
    if (host) OK(vit_tensor_write(x, host, bytes));
    return x;
}

/* max |a - b| / max |b| */
static double rel_max(const float *a, const float *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(fabs((double)a[i] - b[i]) <= d)) d = fabs((double)a[i] - b[i]); /* NaN wins */
        m = fmax(m, fabs((double)b[i]));
    }
    return d / (m + 1e-30);
}

typedef struct pass {
    float logits[BATCH * CLASSES];
    float loss;
    float *grads; /* every parameter's gradient, concatenated */
    size_t ngrad;
} pass;

/* One training-mode forward, loss and backward of the model in path on ctx. */
static void run_pass(vit_context *ctx, const char *path, const float *img, const int32_t *lab, pass *out) {
    vit_model *m;
    OK(vit_model_load(ctx, path, &m));
    OK(vit_model_set_training(m, 1));
    const int64_t si[4] = {BATCH, CH, IMG, IMG}, sl[1] = {BATCH}, so[2] = {BATCH, CLASSES};
    vit_tensor *x = tensor(ctx, VIT_DTYPE_F32, 4, si, img, sizeof(float) * BATCH * CH * IMG * IMG);
    vit_tensor *y = tensor(ctx, VIT_DTYPE_I32, 1, sl, lab, sizeof(int32_t) * BATCH);
    vit_tensor *z = tensor(ctx, VIT_DTYPE_F32, 2, so, NULL, 0);
    OK(vit_model_zero_grad(m));
    OK(vit_model_forward(m, x, z));
    OK(vit_model_loss(m, y, 0.1f, &out->loss));
    OK(vit_model_backward(m));
    OK(vit_tensor_read(z, out->logits, sizeof out->logits));
    int64_t total;
    int count;
    OK(vit_model_num_params(m, &total));
    OK(vit_model_param_count(m, &count));
    out->grads = malloc(sizeof(float) * (size_t)total);
    out->ngrad = 0;
    for (int i = 0; i < count; i++) {
        const char *name;
        int nd;
        int64_t shape[4], n = 1;
        OK(vit_model_param_info(m, i, &name, &nd, shape));
        for (int d = 0; d < nd; d++) n *= shape[d];
        OK(vit_model_grad_read(m, name, out->grads + out->ngrad, sizeof(float) * (size_t)n));
        out->ngrad += (size_t)n;
    }
    vit_tensor_destroy(x), vit_tensor_destroy(y), vit_tensor_destroy(z);
    vit_model_destroy(m);
}

static void compare_pass(const char *path, const float *img, const int32_t *lab) {
    pass cpu, gpu32, gpu16;
    vit_context *c = context(0, VIT_PRECISION_FP32), *g32 = context(1, VIT_PRECISION_FP32),
                *g16 = context(1, VIT_PRECISION_BF16);
    run_pass(c, path, img, lab, &cpu);
    run_pass(g32, path, img, lab, &gpu32);
    run_pass(g16, path, img, lab, &gpu16);
    const double l32 = rel_max(gpu32.logits, cpu.logits, BATCH * CLASSES);
    const double d32 = rel_max(gpu32.grads, cpu.grads, cpu.ngrad);
    const double l16 = rel_max(gpu16.logits, cpu.logits, BATCH * CLASSES);
    const double d16 = rel_max(gpu16.grads, cpu.grads, cpu.ngrad);
    printf("fp32 GPU vs CPU: logits %.2e, loss %.7g vs %.7g, gradients %.2e (of the largest)\n", l32, gpu32.loss,
           cpu.loss, d32);
    printf("bf16 GPU vs CPU: logits %.2e, loss %.7g vs %.7g, gradients %.2e\n", l16, gpu16.loss, cpu.loss, d16);
    CHECK(l32 <= 1e-4, "fp32 logits differ by %.3g", l32);
    CHECK(fabs(gpu32.loss - cpu.loss) <= 1e-5 * fabs(cpu.loss), "fp32 loss %g vs %g", gpu32.loss, cpu.loss);
    CHECK(d32 <= 1e-3, "fp32 gradients differ by %.3g", d32);
    CHECK(l16 <= 3e-2, "bf16 logits differ by %.3g", l16);
    CHECK(fabs(gpu16.loss - cpu.loss) <= 2e-2 * fabs(cpu.loss), "bf16 loss %g vs %g", gpu16.loss, cpu.loss);
    CHECK(d16 <= 1e-1, "bf16 gradients differ by %.3g", d16);
    free(cpu.grads), free(gpu32.grads), free(gpu16.grads);
    vit_context_destroy(c), vit_context_destroy(g32), vit_context_destroy(g16);
}

/* 50 steps from the weights in path over the given batches; losses[STEPS]. */
static void train(vit_context *ctx, const char *path, const float *img, const int32_t *lab, float *losses,
                  const char *save_to) {
    vit_model *m;
    vit_optimizer *opt;
    OK(vit_model_load(ctx, path, &m));
    OK(vit_model_set_training(m, 1));
    OK(vit_adamw_create(m, &opt));
    OK(vit_optimizer_set_float(opt, VIT_OPT_LR, 1e-3));
    const int64_t si[4] = {BATCH, CH, IMG, IMG}, sl[1] = {BATCH}, so[2] = {BATCH, CLASSES};
    const size_t per = (size_t)BATCH * CH * IMG * IMG;
    vit_tensor *x = tensor(ctx, VIT_DTYPE_F32, 4, si, NULL, 0), *y = tensor(ctx, VIT_DTYPE_I32, 1, sl, NULL, 0);
    vit_tensor *z = tensor(ctx, VIT_DTYPE_F32, 2, so, NULL, 0);
    for (int s = 0; s < STEPS; s++) {
        OK(vit_tensor_write(x, img + (size_t)s * per, per * sizeof(float)));
        OK(vit_tensor_write(y, lab + (size_t)s * BATCH, BATCH * sizeof(int32_t)));
        OK(vit_optimizer_zero_grad(opt));
        OK(vit_model_forward(m, x, z));
        OK(vit_model_loss(m, y, 0.0f, &losses[s]));
        OK(vit_model_backward(m));
        OK(vit_optimizer_step(opt));
    }
    if (save_to) OK(vit_model_save(m, save_to));
    vit_tensor_destroy(x), vit_tensor_destroy(y), vit_tensor_destroy(z);
    vit_optimizer_destroy(opt);
    vit_model_destroy(m);
}

static double mean(const float *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / n;
}

/* The loader into GPU tensors (page-locked staging, uploads queued behind
 * the work in flight, two buffers alternating) gives the batches it gives
 * into host tensors, bit for bit. */
static void check_loader_upload(vit_dataset *ds, vit_transform *tf, const float *img, const int32_t *lab) {
    enum { N = 5 };
    vit_context *g = context(1, VIT_PRECISION_BF16);
    vit_loader *ld;
    OK(vit_loader_create(ds, tf, BATCH, &ld));
    OK(vit_loader_start_epoch(ld, 0));
    const int64_t si[4] = {BATCH, CH, IMG, IMG}, sl[1] = {BATCH};
    const size_t per = (size_t)BATCH * CH * IMG * IMG;
    vit_tensor *x[N], *y[N];
    for (int s = 0; s < N; s++) { /* N batches in flight before any is read back */
        int count;
        x[s] = tensor(g, VIT_DTYPE_F32, 4, si, NULL, 0), y[s] = tensor(g, VIT_DTYPE_I32, 1, sl, NULL, 0);
        OK(vit_loader_next(ld, x[s], y[s], &count));
        CHECK(count == BATCH, "batch %d: %d rows", s, count);
    }
    float *hx = malloc(per * sizeof(float));
    int32_t hy[BATCH];
    for (int s = 0; s < N; s++) {
        OK(vit_tensor_read(x[s], hx, per * sizeof(float)));
        OK(vit_tensor_read(y[s], hy, sizeof hy));
        CHECK(!memcmp(hx, img + (size_t)s * per, per * sizeof(float)) && !memcmp(hy, lab + (size_t)s * BATCH, sizeof hy),
              "batch %d loaded into GPU tensors differs from the host's", s);
        vit_tensor_destroy(x[s]), vit_tensor_destroy(y[s]);
    }
    free(hx);
    vit_loader_destroy(ld);
    vit_context_destroy(g);
    printf("loader into GPU tensors: %d batches as on the host\n", N);
}

/* Fashion-MNIST's test split as STEPS batches; 0 when it is not there. */
static int fmnist_batches(float *img, int32_t *lab) {
    const char *dir = getenv("VIT_FMNIST_DIR");
    if (!dir || !*dir) dir = "/usr/share/datasets/fashion-mnist";
    vit_context *ctx = context(0, VIT_PRECISION_FP32);
    vit_dataset *ds;
    if (vit_dataset_open(ctx, dir, VIT_DATA_IDX, VIT_SPLIT_VAL, &ds) != VIT_OK) {
        printf("note: no Fashion-MNIST at %s (%s): the training check is skipped\n", dir, vit_last_error());
        vit_context_destroy(ctx);
        return 0;
    }
    vit_transform *tf;
    vit_loader *ld;
    OK(vit_transform_create(ctx, &tf));
    OK(vit_transform_set_int(tf, VIT_TF_SIZE, IMG));
    OK(vit_transform_set_int(tf, VIT_TF_TRAIN, 0));
    OK(vit_loader_create(ds, tf, BATCH, &ld));
    OK(vit_loader_start_epoch(ld, 0));
    const int64_t si[4] = {BATCH, CH, IMG, IMG}, sl[1] = {BATCH};
    vit_tensor *x = tensor(ctx, VIT_DTYPE_F32, 4, si, NULL, 0), *y = tensor(ctx, VIT_DTYPE_I32, 1, sl, NULL, 0);
    const size_t per = (size_t)BATCH * CH * IMG * IMG;
    for (int s = 0; s < STEPS; s++) {
        int count;
        OK(vit_loader_next(ld, x, y, &count));
        OK(vit_tensor_read(x, img + (size_t)s * per, per * sizeof(float)));
        OK(vit_tensor_read(y, lab + (size_t)s * BATCH, BATCH * sizeof(int32_t)));
    }
    vit_tensor_destroy(x), vit_tensor_destroy(y);
    vit_loader_destroy(ld);
    check_loader_upload(ds, tf, img, lab);
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
    vit_context_destroy(ctx);
    return 1;
}

int main(void) {
    /* 1. a CPU program maps no CUDA library */
    {
        vit_context *c = context(0, VIT_PRECISION_FP32);
        vit_model *m = tiny_model(c, 0.0);
        vit_model_destroy(m);
        vit_context_destroy(c);
        CHECK(!cuda_libraries_loaded(), "a CPU-only program has a CUDA library mapped");
    }
    vit_context *probe;
    OK(vit_context_create(&probe));
    if (vit_context_set_int(probe, VIT_CTX_DEVICE, VIT_DEVICE_CUDA) != VIT_OK) {
        printf("SKIP: no usable GPU: %s\n", vit_last_error());
        vit_context_destroy(probe);
        return failures ? EXIT_FAILURE : 77;
    }
    vit_context_destroy(probe);

    char dir[] = "/tmp/vit-cuda-model-XXXXXX", init[256], trained[256];
    if (!mkdtemp(dir)) return EXIT_FAILURE;
    snprintf(init, sizeof init, "%s/init.safetensors", dir);
    snprintf(trained, sizeof trained, "%s/gpu.safetensors", dir);
    {
        vit_context *c = context(0, VIT_PRECISION_FP32);
        vit_model *m = tiny_model(c, 0.1);
        OK(vit_model_save(m, init));
        vit_model_destroy(m);
        vit_context_destroy(c);
    }

    /* 2. one pass: logits, loss, gradients */
    const size_t per = (size_t)BATCH * CH * IMG * IMG;
    float *img = malloc(sizeof(float) * per * STEPS);
    int32_t *lab = malloc(sizeof(int32_t) * BATCH * STEPS);
    srand(3);
    for (size_t i = 0; i < per; i++) img[i] = (float)rand() / RAND_MAX;
    for (int b = 0; b < BATCH; b++) lab[b] = b % CLASSES;
    compare_pass(init, img, lab);

    /* 3. 50 steps */
    if (fmnist_batches(img, lab)) {
        float lc[STEPS], l32[STEPS], l16[STEPS];
        vit_context *c = context(0, VIT_PRECISION_FP32), *g32 = context(1, VIT_PRECISION_FP32),
                    *g16 = context(1, VIT_PRECISION_BF16);
        train(c, init, img, lab, lc, NULL);
        train(g32, init, img, lab, l32, trained);
        train(g16, init, img, lab, l16, NULL);
        const double c0 = mean(lc, 10), c1 = mean(lc + STEPS - 10, 10);
        const double a0 = mean(l32, 10), a1 = mean(l32 + STEPS - 10, 10), b1 = mean(l16 + STEPS - 10, 10);
        printf("mean loss, first / last 10 steps: CPU %.4f / %.4f, GPU fp32 %.4f / %.4f, GPU bf16 %.4f / %.4f\n", c0, c1,
               a0, a1, mean(l16, 10), b1);
        CHECK(c1 < 0.9 * c0, "the CPU's loss did not fall (%.4f -> %.4f)", c0, c1);
        CHECK(a1 < 0.9 * a0, "the GPU's fp32 loss did not fall (%.4f -> %.4f)", a0, a1);
        CHECK(fabs(a1 - c1) <= 0.05 * c1, "fp32: GPU %.4f vs CPU %.4f after %d steps", a1, c1, STEPS);
        CHECK(b1 <= 1.1 * c1, "bf16: GPU %.4f vs CPU %.4f after %d steps", b1, c1, STEPS);

        /* 4. the GPU's checkpoint on the CPU */
        vit_model *mg, *mc;
        OK(vit_model_load(g32, trained, &mg));
        OK(vit_model_load(c, trained, &mc));
        const int64_t si[4] = {BATCH, CH, IMG, IMG}, so[2] = {BATCH, CLASSES};
        vit_tensor *xg = tensor(g32, VIT_DTYPE_F32, 4, si, img, per * sizeof(float));
        vit_tensor *xc = tensor(c, VIT_DTYPE_F32, 4, si, img, per * sizeof(float));
        vit_tensor *zg = tensor(g32, VIT_DTYPE_F32, 2, so, NULL, 0), *zc = tensor(c, VIT_DTYPE_F32, 2, so, NULL, 0);
        OK(vit_model_forward(mg, xg, zg));
        OK(vit_model_forward(mc, xc, zc));
        float a[BATCH * CLASSES], b[BATCH * CLASSES];
        OK(vit_tensor_read(zg, a, sizeof a));
        OK(vit_tensor_read(zc, b, sizeof b));
        const double d = rel_max(a, b, BATCH * CLASSES);
        printf("checkpoint written on the GPU, logits on the CPU vs the GPU: %.2e\n", d);
        CHECK(d <= 1e-4, "the GPU's checkpoint gives other logits on the CPU (%.3g)", d);
        vit_tensor_destroy(xg), vit_tensor_destroy(xc), vit_tensor_destroy(zg), vit_tensor_destroy(zc);
        vit_model_destroy(mg), vit_model_destroy(mc);
        vit_context_destroy(c), vit_context_destroy(g32), vit_context_destroy(g16);
    }
    unlink(init), unlink(trained), rmdir(dir);
    free(img), free(lab);
    return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
