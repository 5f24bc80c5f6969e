/* Steady-state training and inference steps make no allocation from libvit's
 * code: activations, saved tensors and gradients come from the arena, which
 * keeps its memory, and oneDNN's primitives and scratch are cached. This
 * program interposes malloc and friends (glibc's __libc_* do the work) and
 * counts the calls made from libvit.so during steps after the first two.
 * (oneDNN's own dnnl_primitive_execute builds a small argument map with
 * operator new on every call; that is outside libvit and not counted.) */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vit/vit.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static volatile int counting;
static volatile long calls;

/* Counts a call when counting and the caller's code lies in libvit.so. */
static void count(const void *caller) {
    Dl_info info;
    if (counting && dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "libvit"))
        __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
}

void *malloc(size_t n) {
    count(__builtin_return_address(0));
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    count(__builtin_return_address(0));
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    count(__builtin_return_address(0));
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n) {
    count(__builtin_return_address(0));
    return __libc_memalign(align, n);
}
void *memalign(size_t align, size_t n) {
    count(__builtin_return_address(0));
    return __libc_memalign(align, n);
}
int posix_memalign(void **out, size_t align, size_t n) {
    count(__builtin_return_address(0));
    *out = __libc_memalign(align, n);
    return *out ? 0 : 12;
}

#define CHECK(call) do { vit_status s_ = (call); if (s_ != VIT_OK) { \
    fprintf(stderr, "%s: %s\n", #call, vit_last_error()); return 1; } } while (0)

static int steps(vit_model *m, vit_optimizer *opt, vit_tensor *x, vit_tensor *y, vit_tensor *out, int train,
                 int n, long *allocs) {
    for (int s = 0; s < n; s++) {
        if (s == 2) {
            calls = 0;
            counting = 1;
        }
        float loss;
        if (train) CHECK(vit_optimizer_zero_grad(opt));
        CHECK(vit_model_forward(m, x, out));
        if (train) {
            CHECK(vit_model_loss(m, y, 0.1f, &loss));
            CHECK(vit_model_backward(m));
            CHECK(vit_optimizer_step(opt));
        }
    }
    counting = 0;
    *allocs = calls;
    return 0;
}

int main(void) {
    vit_context *ctx;
    vit_config *cfg;
    vit_model *m;
    vit_optimizer *opt;
    vit_tensor *x, *y, *out;
    CHECK(vit_context_create(&ctx));
    CHECK(vit_context_set_int(ctx, VIT_CTX_THREADS, 2));
    CHECK(vit_config_create(&cfg));
    CHECK(vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, 16));
    CHECK(vit_config_set_int(cfg, VIT_CFG_PATCH_SIZE, 4));
    CHECK(vit_config_set_int(cfg, VIT_CFG_DIM, 24));
    CHECK(vit_config_set_int(cfg, VIT_CFG_DEPTH, 2));
    CHECK(vit_config_set_int(cfg, VIT_CFG_HEADS, 2));
    CHECK(vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, 5));
    CHECK(vit_config_set_float(cfg, VIT_CFG_DROP_RATE, 0.1));
    CHECK(vit_config_set_float(cfg, VIT_CFG_ATTN_DROP_RATE, 0.1));
    CHECK(vit_config_set_float(cfg, VIT_CFG_DROP_PATH_RATE, 0.1));
    CHECK(vit_model_create(ctx, cfg, &m));
    CHECK(vit_adamw_create(m, &opt));
    int64_t si[4] = {8, 3, 16, 16}, sl[1] = {8}, so[2] = {8, 5};
    CHECK(vit_tensor_create(ctx, VIT_DTYPE_F32, 4, si, &x));
    CHECK(vit_tensor_create(ctx, VIT_DTYPE_I32, 1, sl, &y));
    CHECK(vit_tensor_create(ctx, VIT_DTYPE_F32, 2, so, &out));
    long train_allocs, infer_allocs;
    CHECK(vit_model_set_training(m, 1));
    if (steps(m, opt, x, y, out, 1, 6, &train_allocs)) return 1;
    CHECK(vit_model_set_training(m, 0));
    CHECK(vit_model_set_grad(m, 0));
    if (steps(m, opt, x, y, out, 0, 6, &infer_allocs)) return 1;
    printf("allocations in 4 steady training steps: %ld; in 4 inference steps: %ld\n", train_allocs, infer_allocs);
    vit_tensor_destroy(x);
    vit_tensor_destroy(y);
    vit_tensor_destroy(out);
    vit_optimizer_destroy(opt);
    vit_model_destroy(m);
    vit_config_destroy(cfg);
    vit_context_destroy(ctx);
    return train_allocs == 0 && infer_allocs == 0 ? 0 : 1;
}
