/*
 * Two contexts driven from two threads at once give the same bits as the same
 * work done one after the other: one thread trains a model while another
 * predicts with a second model, each also running its own loader over the
 * same dataset. Built with ThreadSanitizer in CI (tools/tsan.supp says what
 * is suppressed and why); a plain build checks the bits alone.
 *
 * $VIT_TEST_CONTEXT_THREADS sets each context's OpenMP team (2 by default).
 * The ThreadSanitizer run sets 1: libgomp is not instrumented, so its
 * barriers are invisible to the sanitizer, and every parallel loop would be
 * reported; what that run checks is what the contexts and the loaders' own
 * threads share. Within a team, results that do not depend on the thread
 * count are checked by the kernel tests (1, 2 and 3 threads, same bits).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vit/vit.h>

enum { B = 8, IMG = 16, CLASSES = 10, STEPS = 40, BATCHES = 40 };

static char data_dir[64];

/* A small MNIST-style dataset: 16x16 gray images of noise over a class-dependent ramp. */
static int write_idx(void) {
    static const struct {
        const char *prefix;
        int n;
    } splits[] = {{"train", 96}, {"t10k", 48}};
    for (int s = 0; s < 2; s++) {
        char path[160];
        int n = splits[s].n;
        unsigned char head[16] = {0, 0, 8, 3, 0, 0, 0, (unsigned char)n, 0, 0, 0, IMG, 0, 0, 0, IMG};
        snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", data_dir, splits[s].prefix);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(head, 1, 16, f) != 16) return 0;
        uint32_t r = 12345u + (uint32_t)s;
        for (int i = 0; i < n * IMG * IMG; i++) {
            r = r * 1664525u + 1013904223u;
            fputc((int)((i / IMG % IMG) * (1 + i / (IMG * IMG) % CLASSES) + (r >> 27)) & 255, f);
        }
        fclose(f);
        unsigned char lhead[8] = {0, 0, 8, 1, 0, 0, 0, (unsigned char)n};
        snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", data_dir, splits[s].prefix);
        f = fopen(path, "wb");
        if (!f || fwrite(lhead, 1, 8, f) != 8) return 0;
        for (int i = 0; i < n; i++) fputc(i % CLASSES, f);
        fclose(f);
    }
    return 1;
}

typedef struct job {
    int train;          /* 1: train a model; 0: predict with one */
    uint64_t seed;
    float logits[B * CLASSES];
    float params[64];   /* the first floats of the head's weight after the work */
    uint64_t batches;   /* a digest of every batch the loader gave */
    char error[512];
} job;

#define TRY(call) do { if ((call) != VIT_OK) { \
    snprintf(j->error, sizeof j->error, "%s: %s", #call, vit_last_error()); goto done; } } while (0)

static uint64_t digest(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

static void *run(void *arg) {
    job *j = arg;
    vit_context *ctx = NULL;
    vit_config *cfg = NULL;
    vit_model *m = NULL;
    vit_optimizer *opt = NULL;
    vit_dataset *ds = NULL;
    vit_transform *tf = NULL;
    vit_loader *ld = NULL;
    vit_tensor *images = NULL, *labels = NULL, *logits = NULL;
    TRY(vit_context_create(&ctx));
    const char *threads = getenv("VIT_TEST_CONTEXT_THREADS");
    TRY(vit_context_set_int(ctx, VIT_CTX_THREADS, threads ? atoi(threads) : 2));
    TRY(vit_context_set_int(ctx, VIT_CTX_SEED, (int64_t)j->seed));
    TRY(vit_config_create(&cfg));
    TRY(vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, IMG));
    TRY(vit_config_set_int(cfg, VIT_CFG_PATCH_SIZE, 4));
    TRY(vit_config_set_int(cfg, VIT_CFG_IN_CHANNELS, 1));
    TRY(vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, CLASSES));
    TRY(vit_config_set_int(cfg, VIT_CFG_DIM, 32));
    TRY(vit_config_set_int(cfg, VIT_CFG_DEPTH, 2));
    TRY(vit_config_set_int(cfg, VIT_CFG_HEADS, 4));
    TRY(vit_config_set_float(cfg, VIT_CFG_DROP_RATE, 0.1));
    TRY(vit_model_create(ctx, cfg, &m));
    TRY(vit_dataset_open(ctx, data_dir, VIT_DATA_IDX, j->train ? VIT_SPLIT_TRAIN : VIT_SPLIT_VAL, &ds));
    TRY(vit_transform_create(ctx, &tf));
    TRY(vit_transform_set_int(tf, VIT_TF_SIZE, IMG));
    TRY(vit_transform_set_int(tf, VIT_TF_TRAIN, j->train));
    TRY(vit_transform_set_float(tf, VIT_TF_FLIP_P, 0.5));
    TRY(vit_loader_create(ds, tf, B, &ld));
    TRY(vit_loader_set_int(ld, VIT_LD_WORKERS, 2));
    TRY(vit_tensor_create(ctx, VIT_DTYPE_F32, 4, (int64_t[]){B, 1, IMG, IMG}, &images));
    TRY(vit_tensor_create(ctx, VIT_DTYPE_I32, 1, (int64_t[]){B}, &labels));
    TRY(vit_tensor_create(ctx, VIT_DTYPE_F32, 2, (int64_t[]){B, CLASSES}, &logits));
    if (j->train) {
        TRY(vit_adamw_create(m, &opt));
        TRY(vit_model_set_training(m, 1));
    } else {
        TRY(vit_model_set_grad(m, 0));
    }
    j->batches = 0xCBF29CE484222325ull;
    int64_t epoch = 0;
    TRY(vit_loader_start_epoch(ld, epoch));
    for (int s = 0; s < (j->train ? STEPS : BATCHES); s++) {
        int n = 0;
        float loss = 0.0f;
        TRY(vit_loader_next(ld, images, labels, &n));
        if (n == 0) { /* the epoch is over: the next one */
            TRY(vit_loader_start_epoch(ld, ++epoch));
            TRY(vit_loader_next(ld, images, labels, &n));
        }
        void *px, *lab;
        TRY(vit_tensor_data(images, &px));
        TRY(vit_tensor_data(labels, &lab));
        j->batches = digest(digest(j->batches, px, sizeof(float) * B * IMG * IMG), lab, sizeof(int32_t) * B);
        TRY(vit_model_forward(m, images, logits));
        if (j->train) {
            TRY(vit_optimizer_zero_grad(opt));
            TRY(vit_model_loss(m, labels, 0.1f, &loss));
            TRY(vit_model_backward(m));
            TRY(vit_optimizer_step(opt));
        }
    }
    TRY(vit_tensor_read(logits, j->logits, sizeof j->logits));
    {
        float w[CLASSES * 32];
        TRY(vit_model_param_read(m, "head.weight", w, sizeof w));
        memcpy(j->params, w, sizeof j->params);
    }
done:
    vit_tensor_destroy(images);
    vit_tensor_destroy(labels);
    vit_tensor_destroy(logits);
    vit_loader_destroy(ld);
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
    vit_optimizer_destroy(opt);
    vit_model_destroy(m);
    vit_config_destroy(cfg);
    vit_context_destroy(ctx);
    return NULL;
}

static int same(const char *what, const job *a, const job *b) {
    if (a->error[0] || b->error[0]) {
        fprintf(stderr, "%s: %s%s\n", what, a->error, b->error);
        return 0;
    }
    int ok = !memcmp(a->logits, b->logits, sizeof a->logits) && !memcmp(a->params, b->params, sizeof a->params) &&
             a->batches == b->batches;
    if (!ok) fprintf(stderr, "%s: concurrent and sequential runs differ\n", what);
    return ok;
}

int main(void) {
    snprintf(data_dir, sizeof data_dir, "/tmp/vit_threads.XXXXXX");
    if (!mkdtemp(data_dir) || !write_idx()) return 1;
    job seq[2] = {{.train = 1, .seed = 11}, {.train = 0, .seed = 22}};
    job par[2] = {{.train = 1, .seed = 11}, {.train = 0, .seed = 22}};
    for (int i = 0; i < 2; i++) run(&seq[i]);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, run, &par[i]) != 0) return 1;
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    int ok = same("training thread", &seq[0], &par[0]) & same("predicting thread", &seq[1], &par[1]);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", data_dir);
    printf("two contexts on two threads (training with a loader; predicting with a loader): %s\n",
           ok ? "the same bits as one after the other" : "FAILED");
    return ok ? 0 : 1;
}
