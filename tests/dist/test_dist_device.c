/*
 * A GPU model and the communicator, on a machine without a GPU (host-side,
 * every build): a CPU model whose backend is marked as a GPU's stands in
 * for a GPU model, and a communicator with the one-rank transport but a
 * size of 2 for a launch of two ranks. With the CUDA module of
 * tests/cuda/fake_module.c built with -DFAKE_THIS_BUILD (this build's
 * handshake, no NCCL) loaded:
 *   1. two ranks: vit_model_set_comm refuses with VIT_ERR_UNSUPPORTED naming
 *      NCCL, the module's file and -Dnccl=enabled; the model stays usable;
 *   2. one rank: the communicator attaches without NCCL (VIT_COMM_NCCL 0)
 *      and backward gives the gradients of the model without one, bit for bit;
 *   3. one rank with VIT_COMM_NCCL_MIN_RANKS 1 (NCCL asked for): refused;
 *   4. the settings: VIT_COMM_NCCL_MIN_RANKS accepts 1 and 2 only,
 *      VIT_COMM_NCCL is read-only.
 * Usage: test_dist_device FAKE_MODULE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "cuda/module.h"
#include "dist/dist.h"
#include "nn/nn.h"
#include "vit/vit.h"
#include "../tiny_vit.h"

static int failures;
#define CHECK(cond, ...)                                         \
    do {                                                         \
        if (!(cond)) {                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fprintf(stderr, "\n");                               \
            failures++;                                          \
        }                                                        \
    } while (0)
#define OK(call)                                                                                 \
    do {                                                                                         \
        vit_status s_ = (call);                                                                  \
        if (s_ != VIT_OK) {                                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, vit_last_error()); \
            exit(EXIT_FAILURE);                                                                  \
        }                                                                                        \
    } while (0)

enum { B = 4, IMG = 8, CLASSES = 3 };

/* A communicator of size ranks over the one-rank transport (nothing is sent). */
static vit_comm *fake_comm(int size) {
    vit_comm *c = calloc(1, sizeof *c);
    *c = (vit_comm){.host = &vit_transport_self, .size = size, .bucket_bytes = 1 << 20, .timeout_ms = 1000,
                    .overlap = 1, .refs = 1, .nccl_min_ranks = 2};
    return c;
}

/* One forward, loss and backward; the gradients into g (total floats). */
static void step(vit_context *ctx, vit_model *m, float *g, int64_t total) {
    float img[B * IMG * IMG];
    int32_t lab[B];
    for (int i = 0; i < B * IMG * IMG; i++) img[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
    for (int i = 0; i < B; i++) lab[i] = i % CLASSES;
    const int64_t si[4] = {B, 1, IMG, IMG}, sl[1] = {B}, so[2] = {B, CLASSES};
    vit_tensor *x, *y, *z;
    OK(vit_tensor_create(ctx, VIT_DTYPE_F32, 4, si, &x));
    OK(vit_tensor_create(ctx, VIT_DTYPE_I32, 1, sl, &y));
    OK(vit_tensor_create(ctx, VIT_DTYPE_F32, 2, so, &z));
    OK(vit_tensor_write(x, img, sizeof img));
    OK(vit_tensor_write(y, lab, sizeof lab));
    float loss;
    OK(vit_model_zero_grad(m));
    OK(vit_model_forward(m, x, z));
    OK(vit_model_loss(m, y, 0.0f, &loss));
    OK(vit_model_backward(m));
    memcpy(g, m->grads, (size_t)total * sizeof(float)); /* host memory: the CPU backend's */
    vit_tensor_destroy(x), vit_tensor_destroy(y), vit_tensor_destroy(z);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_dist_device FAKE_MODULE\n");
        return 2;
    }
    if (vit_comm_launch_size() > 1) {
        printf("SKIP: started among several ranks; this test fakes its ranks\n");
        return 77;
    }
    /* Load the module as a GPU context would (it then fails: no GPU). */
    setenv("VIT_CUDA_MODULE", argv[1], 1);
    vit_backend *none = NULL;
    vit_status s = vit_backend_create_cuda(0, VIT_PRECISION_FP32, NULL, &none);
    CHECK(s == VIT_ERR_UNSUPPORTED && strstr(vit_last_error(), "fake module: no GPU"), "loading %s: %d %s", argv[1],
          s, vit_last_error());
    CHECK(vit_cuda_module_nccl(NULL) == NULL, "the fake module has no NCCL");

    vit_context *ctx;
    OK(vit_context_create(&ctx));
    OK(vit_context_set_int(ctx, VIT_CTX_SEED, 3));
    OK(vit_context_set_int(ctx, VIT_CTX_THREADS, 1));
    vit_model *m;
    OK(tiny_vit(ctx, IMG, CLASSES, 16, 1, 2, &m));
    OK(vit_model_set_training(m, 1));
    int64_t total;
    OK(vit_model_num_params(m, &total));
    float *want = malloc((size_t)total * sizeof(float)), *got = malloc((size_t)total * sizeof(float));
    step(ctx, m, want, total); /* no communicator */

    /* What a GPU model looks like to dist/: memory the host cannot use directly. */
    vit_backend *be = m->be;
    const bool host_memory = be->host_memory;
    const vit_device device = be->device;
    be->host_memory = false;
    be->device = VIT_DEVICE_CUDA;

    /* 1. two ranks */
    vit_comm *two = fake_comm(2);
    s = vit_model_set_comm(m, two);
    const char *e = vit_last_error();
    printf("two ranks, GPU model, no NCCL: %s: %s\n", vit_status_string(s), e);
    CHECK(s == VIT_ERR_UNSUPPORTED, "status %d", s);
    CHECK(strstr(e, "NCCL") && strstr(e, "-Dnccl=enabled") && strstr(e, argv[1]) && strstr(e, "2 rank"),
          "message: %s", e);
    int64_t v = -1;
    OK(vit_comm_get_int(two, VIT_COMM_NCCL, &v));
    CHECK(v == 0, "VIT_COMM_NCCL %lld after the refusal", (long long)v);
    CHECK(m->comm == NULL && m->dist == NULL, "the refused communicator stayed attached");
    vit_comm_destroy(two);

    /* 2. one rank: attached, nothing reduced */
    vit_comm *one = fake_comm(1);
    OK(vit_model_set_comm(m, one));
    OK(vit_comm_get_int(one, VIT_COMM_NCCL, &v));
    CHECK(v == 0 && m->dist == NULL, "one rank opened NCCL (%lld)", (long long)v);
    be->host_memory = host_memory, be->device = device; /* the step runs on the CPU */
    step(ctx, m, got, total);
    CHECK(memcmp(got, want, (size_t)total * sizeof(float)) == 0, "one rank changed the gradients");
    be->host_memory = false, be->device = VIT_DEVICE_CUDA;
    printf("one rank, GPU model: attached without NCCL, the same gradients\n");

    /* 3. one rank, NCCL asked for */
    OK(vit_comm_set_int(one, VIT_COMM_NCCL_MIN_RANKS, 1));
    s = vit_model_set_comm(m, one);
    CHECK(s == VIT_ERR_UNSUPPORTED && strstr(vit_last_error(), "without NCCL"), "min ranks 1: %d %s", s,
          vit_last_error());

    /* 4. settings */
    OK(vit_comm_get_int(one, VIT_COMM_NCCL_MIN_RANKS, &v));
    CHECK(v == 1, "VIT_COMM_NCCL_MIN_RANKS %lld", (long long)v);
    CHECK(vit_comm_set_int(one, VIT_COMM_NCCL_MIN_RANKS, 0) == VIT_ERR_INVALID_ARGUMENT, "0 accepted");
    CHECK(vit_comm_set_int(one, VIT_COMM_NCCL_MIN_RANKS, 3) == VIT_ERR_INVALID_ARGUMENT, "3 accepted");
    CHECK(vit_comm_set_int(one, VIT_COMM_NCCL, 1) == VIT_ERR_INVALID_ARGUMENT, "VIT_COMM_NCCL written");
    vit_comm_destroy(one);

    be->host_memory = host_memory, be->device = device;
    vit_model_destroy(m);
    vit_context_destroy(ctx);
    free(want), free(got);
    if (failures) return EXIT_FAILURE;
    printf("PASS\n");
    return EXIT_SUCCESS;
}
