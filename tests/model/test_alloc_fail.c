/*
 * Allocation-failure sweep: for each scenario (creating a context, model and
 * optimizer; a training step; inference; opening a dataset and loading a
 * batch; saving and loading checkpoints; decoding PNG and JPEG images; ONNX
 * export), run it once per allocation it makes, the n-th allocation failing, n = 1, 2, ...
 * until a run makes no more allocations than n - 1. Each failing run must
 * return VIT_ERR_OUT_OF_MEMORY (or succeed, where libvit can do without the
 * memory), never crash; the handles it was given must still work, and once
 * everything is destroyed nothing allocated by libvit may remain.
 *
 * The program interposes malloc and friends (glibc's __libc_* do the work).
 * Failures are injected into calls made from libvit.so and from the libraries
 * it reads files with (libpng, zlib, TurboJPEG), whose errors libvit must turn
 * into statuses; not into oneDNN or the OpenMP runtime, which treat an
 * allocation failure as fatal. Live blocks allocated from libvit.so are
 * tracked by address: that is the leak check, with or without a sanitizer
 * (a sanitizer build cannot interpose malloc, so this test is plain-build
 * only).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vit/vit.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

/* ------------------------------------------------------------ interposer */
enum { WATCH_NONE = 0, WATCH_LIBVIT = 1, WATCH_CODEC = 2 };

static volatile int armed;        /* counting and failing */
static volatile long fail_at;     /* the allocation (1-based) that fails; 0 = none */
static volatile long seen;        /* watched allocations since armed */
static volatile long injected;    /* failures injected since armed */
static __thread int in_hook;

/* Which library the caller's code lies in. */
static int watched(const void *caller) {
    Dl_info info;
    if (in_hook || !dladdr(caller, &info) || !info.dli_fname) return WATCH_NONE;
    const char *f = strrchr(info.dli_fname, '/');
    f = f ? f + 1 : info.dli_fname;
    if (!strncmp(f, "libvit.so", 9)) return WATCH_LIBVIT;
    if (!strncmp(f, "libpng", 6) || !strncmp(f, "libz.so", 7) || !strncmp(f, "libturbojpeg", 12) ||
        !strncmp(f, "libjpeg", 7))
        return WATCH_CODEC;
    return WATCH_NONE;
}

/* Live blocks from libvit.so, by address (open addressing, a spin lock:
 * OpenMP and loader threads allocate too). */
#define LIVE_CAP (1u << 18)
static void *live[LIVE_CAP];
static volatile long live_count;
static volatile int live_lock;
static volatile int tracking;
#define TOMB ((void *)1)

static void lock(void) {
    while (__atomic_exchange_n(&live_lock, 1, __ATOMIC_ACQUIRE)) {}
}
static void unlock(void) { __atomic_store_n(&live_lock, 0, __ATOMIC_RELEASE); }
static size_t slot_of(const void *p) { return ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> 46; }

static void live_add(void *p) {
    lock();
    size_t i = slot_of(p) & (LIVE_CAP - 1);
    while (live[i] && live[i] != TOMB) i = (i + 1) & (LIVE_CAP - 1);
    live[i] = p;
    live_count++;
    unlock();
}

static void live_remove(void *p) {
    if (!p || !live_count) return;
    lock();
    for (size_t i = slot_of(p) & (LIVE_CAP - 1); live[i]; i = (i + 1) & (LIVE_CAP - 1))
        if (live[i] == p) {
            live[i] = TOMB;
            live_count--;
            break;
        }
    unlock();
}

/* Whether this call fails; w is the caller's library. */
static int should_fail(int w) {
    if (w == WATCH_NONE || !armed) return 0;
    long n = __atomic_add_fetch(&seen, 1, __ATOMIC_RELAXED);
    if (n != fail_at) return 0;
    __atomic_add_fetch(&injected, 1, __ATOMIC_RELAXED);
    errno = ENOMEM;
    return 1;
}

static void *track(int w, void *p) {
    if (p && w == WATCH_LIBVIT && tracking) live_add(p);
    return p;
}

void *malloc(size_t n) {
    int w = watched(__builtin_return_address(0));
    return should_fail(w) ? NULL : track(w, __libc_malloc(n));
}
void *calloc(size_t a, size_t b) {
    int w = watched(__builtin_return_address(0));
    return should_fail(w) ? NULL : track(w, __libc_calloc(a, b));
}
void *realloc(void *p, size_t n) {
    int w = watched(__builtin_return_address(0));
    if (should_fail(w)) return NULL;
    void *q = __libc_realloc(p, n);
    if (q) {
        live_remove(p);
        track(w, q);
    }
    return q;
}
void *aligned_alloc(size_t align, size_t n) {
    int w = watched(__builtin_return_address(0));
    return should_fail(w) ? NULL : track(w, __libc_memalign(align, n));
}
void *memalign(size_t align, size_t n) {
    int w = watched(__builtin_return_address(0));
    return should_fail(w) ? NULL : track(w, __libc_memalign(align, n));
}
int posix_memalign(void **out, size_t align, size_t n) {
    int w = watched(__builtin_return_address(0));
    if (should_fail(w)) return ENOMEM;
    *out = track(w, __libc_memalign(align, n));
    return *out ? 0 : ENOMEM;
}
void free(void *p) {
    live_remove(p);
    __libc_free(p);
}

/* ------------------------------------------------------------- scenarios */
#define TRY(call) do { vit_status s_ = (call); if (s_ != VIT_OK) { st = s_; goto done; } } while (0)
#define SETUP(call) do { if ((call) != VIT_OK) { \
    fprintf(stderr, "setup %s: %s\n", #call, vit_last_error()); exit(1); } } while (0)

static char tmpdir[64];
static const char *skimage = "/usr/lib/python3/dist-packages/skimage/data";
static const char *fmnist = "/usr/share/datasets/fashion-mnist";

enum { B = 4, IMG = 16, CLASSES = 5 };

static vit_status small_model(vit_context *ctx, vit_model **out) {
    vit_config *cfg = NULL;
    vit_status st = vit_config_create(&cfg);
    if (st == VIT_OK) st = vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, IMG);
    if (st == VIT_OK) st = vit_config_set_int(cfg, VIT_CFG_PATCH_SIZE, 4);
    if (st == VIT_OK) st = vit_config_set_int(cfg, VIT_CFG_IN_CHANNELS, 3);
    if (st == VIT_OK) st = vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, CLASSES);
    if (st == VIT_OK) st = vit_config_set_int(cfg, VIT_CFG_DIM, 24);
    if (st == VIT_OK) st = vit_config_set_int(cfg, VIT_CFG_DEPTH, 2);
    if (st == VIT_OK) st = vit_config_set_int(cfg, VIT_CFG_HEADS, 2);
    if (st == VIT_OK) st = vit_model_create(ctx, cfg, out);
    vit_config_destroy(cfg);
    return st;
}

/* Long-lived handles for the scenarios that work on existing ones; made and
 * destroyed outside the armed window, but tracked for leaks. */
typedef struct fixture {
    vit_context *ctx;
    vit_model *model;
    vit_optimizer *opt;
    vit_tensor *images, *labels, *logits;
} fixture;

static void fixture_make(fixture *f) {
    memset(f, 0, sizeof *f);
    SETUP(vit_context_create(&f->ctx));
    SETUP(vit_context_set_int(f->ctx, VIT_CTX_THREADS, 2));
    SETUP(small_model(f->ctx, &f->model));
    SETUP(vit_adamw_create(f->model, &f->opt));
    SETUP(vit_model_set_training(f->model, 1));
    SETUP(vit_tensor_create(f->ctx, VIT_DTYPE_F32, 4, (int64_t[]){B, 3, IMG, IMG}, &f->images));
    SETUP(vit_tensor_create(f->ctx, VIT_DTYPE_I32, 1, (int64_t[]){B}, &f->labels));
    SETUP(vit_tensor_create(f->ctx, VIT_DTYPE_F32, 2, (int64_t[]){B, CLASSES}, &f->logits));
    float px[B * 3 * IMG * IMG];
    for (size_t i = 0; i < sizeof px / sizeof px[0]; i++) px[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    int32_t lab[B] = {0, 1, 2, 4};
    SETUP(vit_tensor_write(f->images, px, sizeof px));
    SETUP(vit_tensor_write(f->labels, lab, sizeof lab));
}

static void fixture_free(fixture *f) {
    vit_tensor_destroy(f->images);
    vit_tensor_destroy(f->labels);
    vit_tensor_destroy(f->logits);
    vit_optimizer_destroy(f->opt);
    vit_model_destroy(f->model);
    vit_context_destroy(f->ctx);
}

static fixture fx;

static vit_status create_handles(void) {
    vit_context *ctx = NULL;
    vit_model *m = NULL;
    vit_optimizer *o = NULL;
    vit_status st = VIT_OK;
    TRY(vit_context_create(&ctx));
    TRY(small_model(ctx, &m));
    TRY(vit_adamw_create(m, &o));
done:
    vit_optimizer_destroy(o);
    vit_model_destroy(m);
    vit_context_destroy(ctx);
    return st;
}

/* A new model's first step makes the allocations a steady one does not
 * (gradients, the arena's chunks, the tape, the product cache). */
static vit_status first_step(void) {
    fixture f = {0};
    float loss;
    vit_status st = VIT_OK;
    TRY(vit_context_create(&f.ctx));
    TRY(small_model(f.ctx, &f.model));
    TRY(vit_adamw_create(f.model, &f.opt));
    TRY(vit_tensor_create(f.ctx, VIT_DTYPE_F32, 4, (int64_t[]){B, 3, IMG, IMG}, &f.images));
    TRY(vit_tensor_create(f.ctx, VIT_DTYPE_I32, 1, (int64_t[]){B}, &f.labels));
    TRY(vit_tensor_create(f.ctx, VIT_DTYPE_F32, 2, (int64_t[]){B, CLASSES}, &f.logits));
    TRY(vit_model_forward(f.model, f.images, f.logits));
    TRY(vit_model_loss(f.model, f.labels, 0.0f, &loss));
    TRY(vit_model_backward(f.model));
    TRY(vit_optimizer_step(f.opt));
done:
    fixture_free(&f);
    return st;
}

static vit_status train_step(void) {
    float loss;
    vit_status st = VIT_OK;
    TRY(vit_model_set_grad(fx.model, 1));
    TRY(vit_optimizer_zero_grad(fx.opt));
    TRY(vit_model_forward(fx.model, fx.images, fx.logits));
    TRY(vit_model_loss(fx.model, fx.labels, 0.1f, &loss));
    TRY(vit_model_backward(fx.model));
    TRY(vit_optimizer_step(fx.opt));
done:
    return st;
}

static vit_status inference(void) {
    int32_t top[B];
    vit_status st = VIT_OK;
    TRY(vit_model_set_grad(fx.model, 0));
    TRY(vit_model_forward(fx.model, fx.images, fx.logits));
    TRY(vit_topk(fx.logits, 1, top, NULL));
done:
    return st;
}

static vit_status dataset_batch(void) {
    vit_dataset *ds = NULL;
    vit_transform *tf = NULL;
    vit_loader *ld = NULL;
    vit_tensor *img = NULL, *lab = NULL;
    vit_status st = VIT_OK;
    int n = 0;
    TRY(vit_dataset_open(fx.ctx, fmnist, VIT_DATA_IDX, VIT_SPLIT_VAL, &ds));
    TRY(vit_transform_create(fx.ctx, &tf));
    TRY(vit_transform_set_int(tf, VIT_TF_SIZE, IMG));
    TRY(vit_transform_set_int(tf, VIT_TF_CHANNELS, 3));
    TRY(vit_transform_set_float(tf, VIT_TF_FLIP_P, 0.5));
    TRY(vit_loader_create(ds, tf, B, &ld));
    TRY(vit_loader_set_int(ld, VIT_LD_WORKERS, 2));
    TRY(vit_loader_start_epoch(ld, 0));
    TRY(vit_tensor_create(fx.ctx, VIT_DTYPE_F32, 4, (int64_t[]){B, 3, IMG, IMG}, &img));
    TRY(vit_tensor_create(fx.ctx, VIT_DTYPE_I32, 1, (int64_t[]){B}, &lab));
    TRY(vit_loader_next(ld, img, lab, &n));
done:
    vit_tensor_destroy(img);
    vit_tensor_destroy(lab);
    vit_loader_destroy(ld);
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
    return st;
}

/* CIFAR-10 (binary batches) and an image folder, written by make_datasets:
 * opening one split and decoding a sample of each. */
static char cifar_dir[96], folder_dir[96];

static vit_status other_datasets(void) {
    static const char *const roots[] = {cifar_dir, folder_dir};
    static const vit_data_format formats[] = {VIT_DATA_CIFAR10, VIT_DATA_FOLDER};
    vit_status st = VIT_OK;
    for (int i = 0; i < 2 && st == VIT_OK; i++) {
        vit_dataset *ds = NULL;
        vit_tensor *img = NULL;
        int32_t label;
        st = vit_dataset_open(fx.ctx, roots[i], formats[i], VIT_SPLIT_VAL, &ds);
        if (st == VIT_OK) st = vit_dataset_get(ds, 0, &img, &label);
        vit_tensor_destroy(img);
        vit_dataset_destroy(ds);
    }
    return st;
}

static int make_datasets(void) {
    char path[256];
    snprintf(cifar_dir, sizeof cifar_dir, "%s/cifar", tmpdir);
    snprintf(folder_dir, sizeof folder_dir, "%s/folder", tmpdir);
    if (mkdir(cifar_dir, 0700) != 0 || mkdir(folder_dir, 0700) != 0) return 0;
    snprintf(path, sizeof path, "%s/test_batch.bin", cifar_dir);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    for (int r = 0; r < 12; r++) { /* label byte, then 3 x 32 x 32 pixels */
        fputc(r % 10, f);
        for (int i = 0; i < 3 * 32 * 32; i++) fputc((r * 31 + i) & 255, f);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/batches.meta.txt", cifar_dir);
    if (!(f = fopen(path, "w"))) return 0;
    fputs("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n", f);
    fclose(f);
    static const char *const classes[] = {"cat", "coffee"}, *const files[] = {"chelsea.png", "coffee.png"};
    for (int split = 0; split < 2; split++) {
        snprintf(path, sizeof path, "%s/%s", folder_dir, split ? "val" : "train");
        if (mkdir(path, 0700) != 0) return 0;
        for (int c = 0; c < 2; c++) {
            snprintf(path, sizeof path, "%s/%s/%s", folder_dir, split ? "val" : "train", classes[c]);
            if (mkdir(path, 0700) != 0) return 0;
            char cmd[512];
            snprintf(cmd, sizeof cmd, "cp %s/%s %s/", skimage, files[c], path);
            if (system(cmd) != 0) return 0;
        }
    }
    return 1;
}

static vit_status checkpoints(void) {
    char model_path[128], opt_path[128];
    snprintf(model_path, sizeof model_path, "%s/m.safetensors", tmpdir);
    snprintf(opt_path, sizeof opt_path, "%s/o.safetensors", tmpdir);
    vit_model *m = NULL;
    vit_optimizer *o = NULL;
    vit_status st = VIT_OK;
    TRY(vit_model_set_metadata(fx.model, "classes", "a,b,c,d,e"));
    TRY(vit_model_save(fx.model, model_path));
    TRY(vit_optimizer_save(fx.opt, fx.model, opt_path));
    TRY(vit_model_load(fx.ctx, model_path, &m));
    TRY(vit_adamw_create(m, &o));
    TRY(vit_optimizer_load(o, m, opt_path));
    TRY(vit_model_load_weights(m, model_path, 0));
done:
    vit_optimizer_destroy(o);
    vit_model_destroy(m);
    return st;
}

static vit_status images(void) {
    static const char *const files[] = {"chelsea.png", "rocket.jpg", "coffee.png"};
    vit_transform *tf = NULL;
    vit_tensor *out = NULL;
    vit_status st = VIT_OK;
    TRY(vit_transform_create(fx.ctx, &tf));
    TRY(vit_transform_set_int(tf, VIT_TF_SIZE, 32));
    TRY(vit_tensor_create(fx.ctx, VIT_DTYPE_F32, 3, (int64_t[]){3, 32, 32}, &out));
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", skimage, files[i]);
        TRY(vit_image_load(tf, path, out));
    }
done:
    vit_tensor_destroy(out);
    vit_transform_destroy(tf);
    return st;
}

/* A build without ONNX export has nothing to sweep here. */
static vit_status onnx_export(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/m.onnx", tmpdir);
    vit_onnx_options *opts = NULL;
    vit_status st = VIT_OK;
    TRY(vit_onnx_options_create(&opts));
    TRY(vit_onnx_options_set_int(opts, VIT_ONNX_BATCH, 3));
    st = vit_model_export_onnx(fx.model, path, opts);
    if (st == VIT_ERR_UNSUPPORTED) {
        st = VIT_OK;
        goto done;
    }
    TRY(st);
    TRY(vit_onnx_options_set_int(opts, VIT_ONNX_EXTERNAL_DATA, 1));
    TRY(vit_model_export_onnx(fx.model, path, opts));
done:
    vit_onnx_options_destroy(opts);
    return st;
}

/* ------------------------------------------------------------------ sweep */
typedef struct scenario {
    const char *name;
    vit_status (*run)(void);
    int uses_fixture; /* after a failure, the fixture's handles must still work */
} scenario;

static int sweep(const scenario *sc, long *runs, long *failures) {
    int bad = 0;
    for (long n = 1;; n++) {
        seen = injected = 0;
        fail_at = n;
        armed = 1;
        vit_status st = sc->run();
        armed = 0;
        const long made = seen;
        if (!injected) { /* the run made fewer than n allocations: swept */
            if (st != VIT_OK) {
                fprintf(stderr, "%s: fails without an injected failure: %s\n", sc->name, vit_last_error());
                return 1;
            }
            printf("%s: %ld allocation failures injected, each handled (%ld watched allocations)\n", sc->name,
                   n - 1, made);
            *runs += n;
            *failures += n - 1;
            return bad;
        }
        if (st != VIT_OK && st != VIT_ERR_OUT_OF_MEMORY) {
            fprintf(stderr, "%s: allocation %ld failed and the call returned %s (%s), not out of memory\n",
                    sc->name, n, vit_status_string(st), vit_last_error());
            bad = 1;
        }
        /* The fixture's handles are usable after the failure. */
        if (sc->uses_fixture && train_step() != VIT_OK) {
            fprintf(stderr, "%s: after failing allocation %ld the model no longer trains: %s\n", sc->name, n,
                    vit_last_error());
            return 1;
        }
        if (bad && n > 100000) return 1;
    }
}

int main(void) {
    if (access(fmnist, R_OK) != 0 || access(skimage, R_OK) != 0) {
        printf("SKIP: needs %s (dataset-fashion-mnist) and %s (python3-skimage)\n", fmnist, skimage);
        return 77;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vit_alloc_fail.XXXXXX");
    if (!mkdtemp(tmpdir) || !make_datasets()) return 1;
    static const scenario scenarios[] = {
        {"context, model and optimizer creation", create_handles, 0},
        {"first training step of a new model", first_step, 0},
        {"training step", train_step, 1},
        {"inference", inference, 1},
        {"dataset, loader and one batch", dataset_batch, 1},
        {"CIFAR-10 and image-folder datasets", other_datasets, 1},
        {"checkpoint save and load", checkpoints, 1},
        {"PNG and JPEG decoding", images, 1},
        {"ONNX export", onnx_export, 1},
    };
    int bad = 0;
    long runs = 0, failures = 0;
    tracking = 1;
    fixture_make(&fx);
    /* Warm-up: first-use state (oneDNN's engine, the arena's first chunks)
     * is made once, so each sweep starts from the steady state. */
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (scenarios[i].run() != VIT_OK) {
            fprintf(stderr, "%s: fails with no injected failure: %s\n", scenarios[i].name, vit_last_error());
            return 1;
        }
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) bad |= sweep(&scenarios[i], &runs, &failures);
    fixture_free(&fx);
    if (live_count != 0) {
        fprintf(stderr, "%ld blocks allocated by libvit are still live after every handle was destroyed\n",
                live_count);
        bad = 1;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    printf("%ld runs, %ld allocation failures injected: %s\n", runs, failures, bad ? "FAILED" : "all handled");
    return bad;
}
