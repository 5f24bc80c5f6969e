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
 * With "nccl", the module built with -DFAKE_NCCL as well (an NCCL of one
 * rank in host memory that records its calls, tests/cuda/fake_nccl.h), the
 * GPU path of dist/ on two (faked) ranks:
 *   5. attaching opens NCCL (VIT_COMM_NCCL 1) and broadcasts every parameter
 *      byte through it; backward averages every gradient float exactly once
 *      through it, in buckets from the last parameter to the first, in
 *      numbered slots, polled until done (a collective is done at its
 *      second poll); the gradients are those of the model without a
 *      communicator, bit for bit; the statistics count the bytes.
 * Usage: test_dist_device FAKE_MODULE [nccl]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "cuda/module.h"
#include "dist/dist.h"
#include "nn/nn.h"
#include "../cuda/fake_nccl.h"
#include "vit/vit.h"
#include "../tiny_vit.h"

#include "../check_macros.h"

enum { B = 4, IMG = 8, CLASSES = 3 };

/* A communicator of size ranks over the one-rank transport (nothing is sent). */
static vit_comm *fake_comm(int size) {
    vit_comm *c = calloc(1, sizeof *c);
    *c = (vit_comm){.host = &vit_transport_self, .size = size, .bucket_bytes = 1 << 20, .timeout_ms = 1000,
                    .overlap = 1, .refs = 1, .nccl_min_ranks = 2};
    return c;
}

/* What a GPU model looks like to dist/: memory the host cannot use directly.
 * (The forward refuses the context's host tensors for such a model, so only
 * the calls of dist/ see it.) */
static void as_gpu(vit_model *m, bool gpu) {
    m->be->host_memory = !gpu;
    m->be->device = gpu ? VIT_DEVICE_CUDA : VIT_DEVICE_CPU;
}

/* One forward, loss and backward (by a GPU model if gpu_backward); the
 * gradients into g (total floats). */
static void step(vit_context *ctx, vit_model *m, float *g, int64_t total, bool gpu_backward) {
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
    as_gpu(m, gpu_backward);
    vit_status s = vit_model_backward(m);
    as_gpu(m, false);
    OK(s);
    memcpy(g, m->grads, (size_t)total * sizeof(float)); /* host memory: the CPU backend's */
    vit_tensor_destroy(x), vit_tensor_destroy(y), vit_tensor_destroy(z);
}

/* 1-4. with the module without NCCL */
static void refusals(vit_context *ctx, vit_model *m, const float *want, float *got, int64_t total,
                     const char *module) {
    vit_status s;
    as_gpu(m, true);
    /* 1. two ranks */
    vit_comm *two = fake_comm(2);
    s = vit_model_set_comm(m, two);
    const char *e = vit_last_error();
    printf("two ranks, GPU model, no NCCL: %s: %s\n", vit_status_string(s), e);
    CHECK(s == VIT_ERR_UNSUPPORTED, "status %d", s);
    CHECK(strstr(e, "NCCL") && strstr(e, "-Dnccl=enabled") && strstr(e, module) && strstr(e, "2 rank"),
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
    as_gpu(m, false);
    step(ctx, m, got, total, true);
    as_gpu(m, true);
    CHECK(memcmp(got, want, (size_t)total * sizeof(float)) == 0, "one rank changed the gradients");
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
}

/* 5. through the fake NCCL; want: the gradients without a communicator */
static void nccl_glue(vit_context *ctx, vit_model *m, const float *want, float *got, int64_t total) {
    vit_comm *c = fake_comm(2);
    OK(vit_comm_set_int(c, VIT_COMM_BUCKET_BYTES, 4096)); /* several buckets */
    as_gpu(m, true);
    OK(vit_model_set_comm(m, c));
    as_gpu(m, false);
    int64_t v = 0;
    OK(vit_comm_get_int(c, VIT_COMM_NCCL, &v));
    CHECK(v == 1, "VIT_COMM_NCCL %lld", (long long)v);
    const struct vit_cuda_nccl *nc = c->nccl;
    CHECK(nc && nc->size == 2 && nc->rank == 0, "the fake NCCL was not opened for rank 0 of 2");
    if (!nc) exit(EXIT_FAILURE);
    CHECK(nc->broadcasts == 1 && nc->broadcast_bytes == total * (int64_t)sizeof(float),
          "%d broadcasts of %lld bytes, the parameters are %lld", nc->broadcasts, (long long)nc->broadcast_bytes,
          (long long)(total * (int64_t)sizeof(float)));
    step(ctx, m, got, total, true);
    printf("fake NCCL: %d buckets averaged, %lld floats of %lld, %d polls not yet done, %d out of order\n",
           nc->averages, (long long)nc->averaged_floats, (long long)total, nc->not_done_seen, nc->out_of_order);
    CHECK(nc->averages >= 2 && nc->averaged_floats == total, "%d buckets, %lld floats", nc->averages,
          (long long)nc->averaged_floats);
    CHECK(nc->first + nc->first_count == m->grads + total && nc->last == m->grads,
          "the buckets do not start at the last parameter and end at the first");
    CHECK(nc->out_of_order == 0 && nc->bad_slots == 0, "%d buckets out of order, %d slots out of turn",
          nc->out_of_order, nc->bad_slots);
    CHECK(nc->not_done_seen > 0, "no collective was ever waited for");
    CHECK(memcmp(got, want, (size_t)total * sizeof(float)) == 0, "the gradients changed");
    double bytes = 0, backwards = 0;
    OK(vit_comm_get_float(c, VIT_COMM_STAT_BYTES, &bytes));
    OK(vit_comm_get_float(c, VIT_COMM_STAT_BACKWARDS, &backwards));
    CHECK(bytes == (double)total * sizeof(float) && backwards == 1, "statistics: %g bytes, %g backwards", bytes,
          backwards);
    OK(vit_model_set_comm(m, NULL));
    vit_comm_destroy(c);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "nccl"))) {
        fprintf(stderr, "usage: test_dist_device FAKE_MODULE [nccl]\n");
        return 2;
    }
    const bool with_nccl = argc == 3;
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
    CHECK((vit_cuda_module_nccl(NULL) != NULL) == with_nccl, "the fake module's NCCL table");

    vit_context *ctx;
    OK(vit_context_create(&ctx));
    OK(vit_context_set_int(ctx, VIT_CTX_SEED, 3));
    OK(vit_context_set_int(ctx, VIT_CTX_THREADS, 1));
    vit_model *m;
    OK(tiny_vit(ctx, IMG, CLASSES, 16, 1, 2, &m));
    OK(vit_model_set_training(m, 1));
    const int64_t total = m->total; /* the flat buffer: the parameters and their alignment padding */
    float *want = malloc((size_t)total * sizeof(float)), *got = malloc((size_t)total * sizeof(float));
    step(ctx, m, want, total, false); /* no communicator */

    if (with_nccl) nccl_glue(ctx, m, want, got, total);
    else refusals(ctx, m, want, got, total, argv[1]);
    vit_model_destroy(m);
    vit_context_destroy(ctx);
    free(want), free(got);
    if (failures) return EXIT_FAILURE;
    printf("PASS\n");
    return EXIT_SUCCESS;
}
