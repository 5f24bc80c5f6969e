/* Model behaviour through the public API: initialisation, the tape, modes,
 * gradient accumulation, reproducible dropout, finite differences, metrics,
 * and that training lowers the loss. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <vit/vit.h>
#include "isa_level.h"

#define B 3
#define C 3
#define IMG 12
#define CLASSES 5

static vit_context *ctx;
static vit_tensor *images, *logits, *labels;

static vit_model *make_model(uint64_t seed, double drop) {
    vit_config *cfg;
    vit_model *m;
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_SEED, (int64_t)seed), VIT_OK);
    ck_assert_int_eq(vit_config_create(&cfg), VIT_OK);
    vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, IMG);
    vit_config_set_int(cfg, VIT_CFG_PATCH_SIZE, 4);
    vit_config_set_int(cfg, VIT_CFG_IN_CHANNELS, C);
    vit_config_set_int(cfg, VIT_CFG_DIM, 15);
    vit_config_set_int(cfg, VIT_CFG_DEPTH, 2);
    vit_config_set_int(cfg, VIT_CFG_HEADS, 3);
    vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, CLASSES);
    vit_config_set_float(cfg, VIT_CFG_DROP_RATE, drop);
    vit_config_set_float(cfg, VIT_CFG_ATTN_DROP_RATE, drop);
    vit_config_set_float(cfg, VIT_CFG_DROP_PATH_RATE, drop);
    ck_assert_int_eq(vit_model_create(ctx, cfg, &m), VIT_OK);
    vit_config_destroy(cfg);
    return m;
}

static void setup(void) {
    ck_assert_int_eq(vit_context_create(&ctx), VIT_OK);
    vit_context_set_int(ctx, VIT_CTX_THREADS, 2);
    int64_t si[4] = {B, C, IMG, IMG}, sl[2] = {B, CLASSES}, sb[1] = {B};
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 4, si, &images), VIT_OK);
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 2, sl, &logits), VIT_OK);
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_I32, 1, sb, &labels), VIT_OK);
    float *x;
    vit_tensor_data(images, (void **)&x);
    srand(3);
    for (int i = 0; i < B * C * IMG * IMG; i++) x[i] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
    int32_t *y;
    vit_tensor_data(labels, (void **)&y);
    for (int b = 0; b < B; b++) y[b] = (b * 2 + 1) % CLASSES;
}

static void teardown(void) {
    vit_tensor_destroy(images);
    vit_tensor_destroy(logits);
    vit_tensor_destroy(labels);
    vit_context_destroy(ctx);
}

static float step_loss(vit_model *m) {
    float loss;
    ck_assert_int_eq(vit_model_forward(m, images, logits), VIT_OK);
    ck_assert_int_eq(vit_model_loss(m, labels, 0.0f, &loss), VIT_OK);
    return loss;
}

static void read_logits(float *out) { ck_assert_int_eq(vit_tensor_read(logits, out, B * CLASSES * 4), VIT_OK); }

START_TEST(seeded_init) {
    vit_model *a = make_model(11, 0), *b = make_model(11, 0), *c = make_model(12, 0);
    int n;
    vit_model_param_count(a, &n);
    ck_assert_int_eq(n, 4 + 2 * 12 + 4);
    float wa[45 * 15], wb[45 * 15], wc[45 * 15];
    ck_assert_int_eq(vit_model_param_read(a, "blocks.1.attn.qkv.weight", wa, sizeof wa), VIT_OK);
    vit_model_param_read(b, "blocks.1.attn.qkv.weight", wb, sizeof wb);
    vit_model_param_read(c, "blocks.1.attn.qkv.weight", wc, sizeof wc);
    ck_assert_mem_eq(wa, wb, sizeof wa);
    ck_assert(memcmp(wa, wc, sizeof wa) != 0);
    /* trunc_normal(0.02): the sample std is near 0.02 and nothing beyond 2. */
    double ss = 0;
    for (int i = 0; i < 45 * 15; i++) {
        ss += (double)wa[i] * wa[i];
        ck_assert(fabsf(wa[i]) <= 2.0f);
    }
    ck_assert_double_eq_tol(sqrt(ss / (45 * 15)), 0.02, 0.003);
    float nw[15];
    vit_model_param_read(a, "blocks.0.norm1.weight", nw, sizeof nw);
    for (int i = 0; i < 15; i++) ck_assert_float_eq(nw[i], 1.0f);
    vit_model_destroy(a);
    vit_model_destroy(b);
    vit_model_destroy(c);
}
END_TEST

START_TEST(grad_accumulates_and_zeroes) {
    vit_model *m = make_model(1, 0);
    float g1[15 * 48], g2[15 * 48];
    step_loss(m);
    ck_assert_int_eq(vit_model_backward(m), VIT_OK);
    vit_model_grad_read(m, "patch_embed.proj.weight", g1, sizeof g1);
    step_loss(m);
    ck_assert_int_eq(vit_model_backward(m), VIT_OK);
    vit_model_grad_read(m, "patch_embed.proj.weight", g2, sizeof g2);
    double nz = 0;
    for (int i = 0; i < 15 * 48; i++) {
        ck_assert_float_eq_tol(g2[i], 2.0f * g1[i], 1e-6f + 1e-5f * fabsf(g1[i]));
        nz += fabsf(g1[i]);
    }
    ck_assert(nz > 0);
    ck_assert_int_eq(vit_model_zero_grad(m), VIT_OK);
    vit_model_grad_read(m, "patch_embed.proj.weight", g2, sizeof g2);
    for (int i = 0; i < 15 * 48; i++) ck_assert_float_eq(g2[i], 0.0f);
    vit_model_destroy(m);
}
END_TEST

START_TEST(inference_records_nothing) {
    vit_model *m = make_model(1, 0.2);
    float a[B * CLASSES], b[B * CLASSES];
    step_loss(m);
    read_logits(a);
    ck_assert_int_eq(vit_model_set_grad(m, 0), VIT_OK);
    float loss = step_loss(m);
    ck_assert(isfinite(loss));
    read_logits(b);
    /* Eval mode without grad computes the same function (fused GELU path,
     * and the last block's projection and MLP on the class token alone). */
    for (int i = 0; i < B * CLASSES; i++) ck_assert_float_eq_tol(a[i], b[i], 1e-5f);
    ck_assert_int_eq(vit_model_backward(m), VIT_ERR_STATE);
    vit_model_destroy(m);
}
END_TEST

START_TEST(dropout_is_reproducible) {
    vit_model *m = make_model(5, 0.3);
    float eval[B * CLASSES], t1[B * CLASSES], t2[B * CLASSES], again[B * CLASSES];
    step_loss(m);
    read_logits(eval);
    vit_model_set_training(m, 1);
    uint64_t state;
    vit_model_get_rng_state(m, &state);
    step_loss(m);
    read_logits(t1);
    step_loss(m);
    read_logits(t2);
    ck_assert(memcmp(t1, eval, sizeof t1) != 0);
    ck_assert(memcmp(t1, t2, sizeof t1) != 0);
    vit_model_set_rng_state(m, state);
    step_loss(m);
    read_logits(again);
    ck_assert_mem_eq(t1, again, sizeof t1);
    vit_model_destroy(m);
}
END_TEST

/* Central differences of the float32 loss, on a few entries of several
 * parameters: a coarse end-to-end check (the per-op checks are in double). */
START_TEST(finite_differences) {
    vit_model *m = make_model(2, 0);
    const char *names[] = {"cls_token", "pos_embed", "blocks.0.attn.qkv.weight", "blocks.1.mlp.fc2.bias",
                           "blocks.1.norm2.weight", "head.weight"};
    step_loss(m);
    vit_model_backward(m);
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        int n;
        vit_model_param_count(m, &n);
        int64_t shape[4], numel = 1;
        int ndim = 0;
        for (int i = 0; i < n; i++) {
            const char *name;
            vit_model_param_info(m, i, &name, &ndim, shape);
            if (!strcmp(name, names[k])) break;
        }
        for (int d = 0; d < ndim; d++) numel *= shape[d];
        float *w = malloc((size_t)numel * 4), *g = malloc((size_t)numel * 4);
        vit_model_param_read(m, names[k], w, (size_t)numel * 4);
        vit_model_grad_read(m, names[k], g, (size_t)numel * 4);
        for (int64_t j = 0; j < numel; j += numel / 3 + 1) {
            float keep = w[j], h = 2e-3f;
            w[j] = keep + h;
            vit_model_param_write(m, names[k], w, (size_t)numel * 4);
            double up = step_loss(m);
            w[j] = keep - h;
            vit_model_param_write(m, names[k], w, (size_t)numel * 4);
            double down = step_loss(m);
            w[j] = keep;
            vit_model_param_write(m, names[k], w, (size_t)numel * 4);
            double fd = (up - down) / (2.0 * h);
            ck_assert_msg(fabs(fd - g[j]) <= 2e-3 + 0.05 * fabs(fd), "%s[%lld]: fd %g vs grad %g", names[k],
                          (long long)j, fd, (double)g[j]);
        }
        free(w);
        free(g);
    }
    vit_model_destroy(m);
}
END_TEST

START_TEST(topk_and_accuracy) {
    int64_t s[2] = {2, 4}, sb[1] = {2};
    vit_tensor *l, *y;
    vit_tensor_create(ctx, VIT_DTYPE_F32, 2, s, &l);
    vit_tensor_create(ctx, VIT_DTYPE_I32, 1, sb, &y);
    float v[8] = {0.1f, 2.0f, -1.0f, 1.0f, 5.0f, 5.0f, 0.0f, 7.0f};
    int32_t lab[2] = {3, 0};
    vit_tensor_write(l, v, sizeof v);
    vit_tensor_write(y, lab, sizeof lab);
    int32_t idx[4];
    float p[4];
    ck_assert_int_eq(vit_topk(l, 2, idx, p), VIT_OK);
    ck_assert_int_eq(idx[0], 1);
    ck_assert_int_eq(idx[1], 3);
    ck_assert_int_eq(idx[2], 3);
    ck_assert_int_eq(idx[3], 0); /* a tie keeps the lower index */
    double z = exp(0.1) + exp(2.0) + exp(-1.0) + exp(1.0);
    ck_assert_float_eq_tol(p[0], (float)(exp(2.0) / z), 1e-6f);
    ck_assert_float_eq_tol(p[1], (float)(exp(1.0) / z), 1e-6f);
    int64_t hits;
    ck_assert_int_eq(vit_accuracy(l, y, 1, &hits), VIT_OK);
    ck_assert_int_eq(hits, 0);
    ck_assert_int_eq(vit_accuracy(l, y, 2, &hits), VIT_OK);
    ck_assert_int_eq(hits, 2);
    vit_tensor_destroy(l);
    vit_tensor_destroy(y);
}
END_TEST

START_TEST(training_lowers_loss) {
    vit_model *m = make_model(3, 0.1);
    vit_model_set_training(m, 1);
    vit_optimizer *opt;
    ck_assert_int_eq(vit_adamw_create(m, &opt), VIT_OK);
    ck_assert_int_eq(vit_optimizer_set_float(opt, VIT_OPT_LR, 3e-3), VIT_OK);
    ck_assert_int_eq(vit_optimizer_set_float(opt, VIT_OPT_CLIP_GRAD_NORM, 1.0), VIT_OK);
    ck_assert_int_eq(vit_optimizer_set_int(opt, VIT_OPT_DECAY_EXEMPT, 1), VIT_OK);
    float first = 0, last = 0;
    for (int s = 0; s < 60; s++) {
        vit_optimizer_zero_grad(opt);
        last = step_loss(m);
        if (s == 0) first = last;
        ck_assert_int_eq(vit_model_backward(m), VIT_OK);
        ck_assert_int_eq(vit_optimizer_step(opt), VIT_OK);
    }
    int64_t steps;
    vit_optimizer_get_int(opt, VIT_OPT_STEP, &steps);
    ck_assert_int_eq(steps, 60);
    double norm;
    vit_optimizer_get_float(opt, VIT_OPT_LAST_GRAD_NORM, &norm);
    ck_assert(norm > 0 && isfinite(norm));
    ck_assert_msg(last < 0.5f * first, "loss %g -> %g", first, last);
    vit_optimizer_destroy(opt);
    vit_model_destroy(m);
}
END_TEST

/* Every parameter of from written into to. */
static void copy_params(vit_model *to, vit_model *from) {
    int n;
    vit_model_param_count(from, &n);
    for (int i = 0; i < n; i++) {
        const char *name;
        int ndim;
        int64_t shape[4], numel = 1;
        vit_model_param_info(from, i, &name, &ndim, shape);
        for (int d = 0; d < ndim; d++) numel *= shape[d];
        float *w = malloc((size_t)numel * 4);
        ck_assert_int_eq(vit_model_param_read(from, name, w, (size_t)numel * 4), VIT_OK);
        ck_assert_int_eq(vit_model_param_write(to, name, w, (size_t)numel * 4), VIT_OK);
        free(w);
    }
}

/* m's logits against those of a new model given m's weights before its first forward. */
static void expect_fresh_model_agrees(vit_model *m, const char *what) {
    float got[B * CLASSES], want[B * CLASSES];
    vit_model_set_grad(m, 0);
    step_loss(m);
    read_logits(got);
    vit_model *fresh = make_model(99, 0);
    vit_model_set_grad(fresh, 0);
    copy_params(fresh, m);
    step_loss(fresh);
    read_logits(want);
    for (int i = 0; i < B * CLASSES; i++)
        ck_assert_msg(fabsf(got[i] - want[i]) <= 1e-6f, "%s: logit %d is %.9g, a fresh model gives %.9g", what, i,
                      got[i], want[i]);
    vit_model_destroy(fresh);
}

/* Products may read weights reordered once per version of the weights
 * (packed, on AVX-512 CPUs): a parameter write or an optimizer step must
 * reach the very next forward, in inference and in training. */
START_TEST(weight_writes_reach_the_next_forward) {
    vit_model *m = make_model(7, 0);
    float before[B * CLASSES], after[B * CLASSES];
    vit_model_set_grad(m, 0);
    step_loss(m);
    read_logits(before);
    const char *names[] = {"patch_embed.proj.weight", "blocks.0.mlp.fc1.weight", "blocks.1.attn.qkv.weight",
                           "blocks.1.attn.proj.weight", "blocks.1.mlp.fc2.weight", "head.weight"};
    float w[60 * 15]; /* the largest: fc1 [4 D, D] */
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        int idx = 0, n, ndim;
        int64_t shape[4], numel = 1;
        const char *name = NULL;
        vit_model_param_count(m, &n);
        while (idx < n && (vit_model_param_info(m, idx, &name, &ndim, shape), strcmp(name, names[k]))) idx++;
        ck_assert_int_lt(idx, n);
        for (int d = 0; d < ndim; d++) numel *= shape[d];
        ck_assert_int_le(numel, 60 * 15);
        ck_assert_int_eq(vit_model_param_read(m, names[k], w, (size_t)numel * 4), VIT_OK);
        for (int64_t i = 0; i < numel; i++) w[i] = 1.5f * w[i] + 0.01f;
        ck_assert_int_eq(vit_model_param_write(m, names[k], w, (size_t)numel * 4), VIT_OK);
    }
    expect_fresh_model_agrees(m, "after parameter writes");
    read_logits(after);
    ck_assert(memcmp(before, after, sizeof before) != 0);

    vit_optimizer *opt;
    ck_assert_int_eq(vit_adamw_create(m, &opt), VIT_OK);
    ck_assert_int_eq(vit_optimizer_set_float(opt, VIT_OPT_LR, 1e-2), VIT_OK);
    for (int s = 0; s < 2; s++) { /* a training forward after a step, too */
        vit_model_set_grad(m, 1);
        step_loss(m);
        ck_assert_int_eq(vit_model_backward(m), VIT_OK);
        ck_assert_int_eq(vit_optimizer_step(opt), VIT_OK);
    }
    expect_fresh_model_agrees(m, "after optimizer steps");
    read_logits(before);
    ck_assert(memcmp(before, after, sizeof before) != 0);
    vit_optimizer_destroy(opt);
    vit_model_destroy(m);
}
END_TEST

int main(void) {
    skip_unless_isa_level_available("test_model");
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, seeded_init);
    tcase_add_test(tc, grad_accumulates_and_zeroes);
    tcase_add_test(tc, inference_records_nothing);
    tcase_add_test(tc, dropout_is_reproducible);
    tcase_add_test(tc, finite_differences);
    tcase_add_test(tc, topk_and_accuracy);
    tcase_add_test(tc, training_lowers_loss);
    tcase_add_test(tc, weight_writes_reach_the_next_forward);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
