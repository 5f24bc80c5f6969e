/* What a step keeps in memory, read off the model's arena: a training step's
 * cost per block is what backward reads and nothing more (LayerNorm and GELU
 * outputs recomputed, residual sums over their branch, activation gradients
 * recycled), inference keeps one block's temporaries, and a model used only
 * for inference never allocates gradients, and weights packed for the
 * products cost one copy of the linear layers' weights. The expected sizes
 * are counted from the architecture, not taken from a run. */
#include <check.h>
#include <stdlib.h>

#include <vit/vit.h>

#include "core/backend.h"
#include "cpu/cpu.h"
#include "isa_level.h"
#include "nn/nn.h"

#define BATCH 16
#define IMG 28
#define PATCH 4
#define DIM 96
#define HEADS 3
#define HIDDEN (4 * DIM)
#define CLASSES 10
#define TOKENS ((IMG / PATCH) * (IMG / PATCH) + 1)

static vit_context *ctx;
static vit_tensor *images, *logits, *labels;

static vit_model *make_model(int depth) {
    vit_config *cfg;
    vit_model *m;
    ck_assert_int_eq(vit_config_create(&cfg), VIT_OK);
    vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, IMG);
    vit_config_set_int(cfg, VIT_CFG_PATCH_SIZE, PATCH);
    vit_config_set_int(cfg, VIT_CFG_IN_CHANNELS, 1);
    vit_config_set_int(cfg, VIT_CFG_DIM, DIM);
    vit_config_set_int(cfg, VIT_CFG_DEPTH, depth);
    vit_config_set_int(cfg, VIT_CFG_HEADS, HEADS);
    vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, CLASSES);
    ck_assert_int_eq(vit_model_create(ctx, cfg, &m), VIT_OK);
    vit_config_destroy(cfg);
    return m;
}

static void setup(void) {
    ck_assert_int_eq(vit_context_create(&ctx), VIT_OK);
    vit_context_set_int(ctx, VIT_CTX_THREADS, 2);
    int64_t si[4] = {BATCH, 1, IMG, IMG}, so[2] = {BATCH, CLASSES}, sl[1] = {BATCH};
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 4, si, &images), VIT_OK);
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 2, so, &logits), VIT_OK);
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_I32, 1, sl, &labels), VIT_OK);
    float *x;
    int32_t *y;
    vit_tensor_data(images, (void **)&x);
    vit_tensor_data(labels, (void **)&y);
    for (int i = 0; i < BATCH * IMG * IMG; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (int b = 0; b < BATCH; b++) y[b] = b % CLASSES;
}

static void teardown(void) {
    vit_tensor_destroy(images);
    vit_tensor_destroy(logits);
    vit_tensor_destroy(labels);
    vit_context_destroy(ctx);
}

/* Arena bytes of one training step (forward, loss, backward) of a model of this depth. */
static double train_step_bytes(int depth) {
    vit_model *m = make_model(depth);
    float loss;
    ck_assert_int_eq(vit_model_forward(m, images, logits), VIT_OK);
    ck_assert_int_eq(vit_model_loss(m, labels, 0.0f, &loss), VIT_OK);
    ck_assert_int_eq(vit_model_backward(m), VIT_OK);
    /* the data arena (activations) and the host one (value and node records) */
    double bytes = (double)(m->tape.data.used_total + m->tape.arena.used_total);
    vit_model_destroy(m);
    return bytes;
}

static double inference_bytes(int depth, vit_model **keep) {
    vit_model *m = make_model(depth);
    ck_assert_int_eq(vit_model_set_grad(m, 0), VIT_OK);
    /* The first forward, which grows the arena chunk by chunk: a block that
     * spills into a new chunk must be given back all the same. */
    ck_assert_int_eq(vit_model_forward(m, images, logits), VIT_OK);
    const vit_arena *a = &m->tape.data; /* inference rewinds: the high-water mark is the peak */
    double bytes = (double)(a->peak > a->used_total ? a->peak : a->used_total);
    *keep = m;
    return bytes;
}

START_TEST(training_block_keeps_what_backward_reads) {
    const double M = (double)BATCH * TOKENS;
    /* Kept per block for backward: the two LayerNorms' mean and rstd (4 M),
     * qkv (3 M D, attention's input), attention's output (M D, proj's
     * input), the two residual sums (2 M D, the next LayerNorms' inputs) and
     * fc1's pre-activation (M Dh, GELU's input); the probabilities (B H T^2)
     * only from 128 tokens: below, backward recomputes them. */
    const double probs = TOKENS >= 128 ? (double)BATCH * HEADS * TOKENS * TOKENS : 0.0;
    const double kept = 4.0 * (4 * M + 6 * M * DIM + M * HIDDEN + probs);
    const double per_block = (train_step_bytes(6) - train_step_bytes(2)) / 4;
    /* Attention's per-call scratch, node and value records and 64-byte
     * rounding come on top: a few percent. Keeping LayerNorm or GELU outputs,
     * a residual's branch or one more block of gradients would add 10-60 %. */
    ck_assert_msg(per_block <= 1.05 * kept, "a training block takes %.0f bytes, expected at most %.0f (1.05 x %.0f)",
                  per_block, 1.05 * kept, kept);
    ck_assert_msg(per_block >= kept, "a training block takes %.0f bytes, less than the %.0f backward reads",
                  per_block, kept);
}
END_TEST

START_TEST(inference_keeps_one_block) {
    vit_model *m3, *m7;
    const double b3 = inference_bytes(3, &m3), b7 = inference_bytes(7, &m7);
    /* Each block's temporaries are released when it ends and its output
     * replaces its input: more blocks add no memory at all. (Both depths
     * have a middle block: the first one's input lies below its mark and
     * the last one works on the class token alone, so each peaks lower.) */
    const double one_activation = 4.0 * BATCH * TOKENS * DIM;
    ck_assert_msg(b7 - b3 < 0.1 * one_activation, "4 more blocks took %.0f more bytes in inference", b7 - b3);
    /* and gradients are never allocated */
    ck_assert_ptr_null(m3->grads);
    ck_assert_ptr_null(m7->grads);
    vit_model_destroy(m3);
    vit_model_destroy(m7);
}
END_TEST

START_TEST(gradients_allocated_on_first_training_forward) {
    vit_model *m = make_model(1);
    ck_assert_ptr_null(m->grads);
    float g[CLASSES];
    ck_assert_int_eq(vit_model_grad_read(m, "head.bias", g, sizeof g), VIT_OK); /* zeros, still no buffer */
    for (int i = 0; i < CLASSES; i++) ck_assert_float_eq(g[i], 0.0f);
    ck_assert_ptr_null(m->grads);
    ck_assert_int_eq(vit_model_forward(m, images, logits), VIT_OK);
    ck_assert_ptr_nonnull(m->grads);
    vit_model_destroy(m);
}
END_TEST

/* On AVX-512 oneDNN reads the linear layers' weights (patch embedding, qkv,
 * proj, fc1, fc2, head) in blocks, and at AVX2 libvit's own product reads
 * them in panels of 16 outputs: inference keeps one packed copy of each,
 * made on the first forward, kept while the weights stay, remade in place
 * after a write, freed with the model. At the baseline level nothing is
 * copied. */
START_TEST(packed_weights_cost_one_copy) {
    const int depth = 2;
    vit_model *m = make_model(depth);
    vit_backend *be = m->be;
    ck_assert_uint_eq(vit_cpu_packed_bytes(be), 0);
    ck_assert_int_eq(vit_model_set_grad(m, 0), VIT_OK);
    ck_assert_int_eq(vit_model_forward(m, images, logits), VIT_OK);
    const size_t packed = vit_cpu_packed_bytes(be);
    /* {out, in, layers, rows in inference, rows in training} of the linear
     * layers: inference runs the last block's proj and MLP on the class
     * tokens only. oneDNN's packed copy of W [out, in] pads in to a multiple
     * of 16 and out to one of 64 (BA16a64b); the AVX2 level's pads out to 16
     * and packs only for products of 64 rows or more (cpu/matmul.c) */
    const int64_t all = BATCH * TOKENS, cls = BATCH;
    const int64_t layers[][5] = {
        {DIM, PATCH * PATCH, 1, BATCH * (TOKENS - 1), BATCH * (TOKENS - 1)},
        {3 * DIM, DIM, depth, all, all},
        {DIM, DIM, depth - 1, all, all},    {DIM, DIM, 1, cls, all},
        {HIDDEN, DIM, depth - 1, all, all}, {HIDDEN, DIM, 1, cls, all},
        {DIM, HIDDEN, depth - 1, all, all}, {DIM, HIDDEN, 1, cls, all},
        {CLASSES, DIM, 1, BATCH, BATCH},
    };
    double plain = 0, padded = 0, panels = 0, panels_after_training = 0;
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        int64_t out = layers[i][0], in = layers[i][1], n = layers[i][2];
        double copy = 4.0 * (double)((out + 15) / 16 * 16 * in * n);
        plain += 4.0 * (double)(out * in * n);
        padded += 4.0 * (double)((out + 63) / 64 * 64 * ((in + 15) / 16 * 16) * n);
        if (layers[i][3] >= 64) panels += copy;
        if (layers[i][3] >= 64 || layers[i][4] >= 64) panels_after_training += copy;
    }
    const bool avx2 = vit_cpu_isa_dispatched() == VIT_CPU_ISA_AVX2;
    if (vit_cpu_isa_dispatched() == VIT_CPU_ISA_AVX512) {
        ck_assert_msg(packed >= plain && packed <= padded,
                      "packed weights take %zu bytes; the linear weights are %.0f, padded to blocks %.0f", packed,
                      plain, padded);
    } else if (avx2) {
        ck_assert_msg(packed == panels, "packed weights take %zu bytes, not the %.0f of their 16-output panels",
                      packed, panels);
    } else {
        ck_assert_msg(packed == 0, "%zu bytes of packed weights where oneDNN keeps plain layouts", packed);
    }
    /* a write makes the next forward pack again, into the same memory */
    float w[DIM];
    ck_assert_int_eq(vit_model_param_read(m, "blocks.0.attn.proj.bias", w, sizeof w), VIT_OK);
    ck_assert_int_eq(vit_model_param_write(m, "blocks.0.attn.proj.bias", w, sizeof w), VIT_OK);
    ck_assert_int_eq(vit_model_forward(m, images, logits), VIT_OK);
    ck_assert_uint_eq(vit_cpu_packed_bytes(be), packed);
    /* a training forward packs weights this small too (ops/linear.c), into
     * the same copies: no more memory, but at AVX2 for the last block's,
     * which now run on every token */
    ck_assert_int_eq(vit_model_set_grad(m, 1), VIT_OK);
    ck_assert_int_eq(vit_model_forward(m, images, logits), VIT_OK);
    ck_assert_uint_eq(vit_cpu_packed_bytes(be), avx2 ? (size_t)panels_after_training : packed);
    vit_backend_retain(be);
    vit_model_destroy(m);
    ck_assert_uint_eq(vit_cpu_packed_bytes(be), 0);
    vit_backend_release(be);
}
END_TEST

int main(void) {
    skip_unless_isa_level_available("test_memory");
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("memory");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, training_block_keeps_what_backward_reads);
    tcase_add_test(tc, inference_keeps_one_block);
    tcase_add_test(tc, gradients_allocated_on_first_training_forward);
    tcase_add_test(tc, packed_weights_cost_one_copy);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
