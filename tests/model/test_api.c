/* Bad input to the model and optimizer API: a status and a message, never a crash. */
#include <check.h>
#include <string.h>

#include <vit/vit.h>

static vit_context *ctx;
static vit_config *cfg;

static void setup(void) {
    ck_assert_int_eq(vit_context_create(&ctx), VIT_OK);
    ck_assert_int_eq(vit_config_create(&cfg), VIT_OK);
    vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, 16);
    vit_config_set_int(cfg, VIT_CFG_PATCH_SIZE, 4);
    vit_config_set_int(cfg, VIT_CFG_DIM, 12);
    vit_config_set_int(cfg, VIT_CFG_DEPTH, 1);
    vit_config_set_int(cfg, VIT_CFG_HEADS, 3);
    vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, 4);
}

static void teardown(void) {
    vit_config_destroy(cfg);
    vit_context_destroy(ctx);
}

static void expect(vit_status got, vit_status want, const char *needle) {
    ck_assert_int_eq(got, want);
    ck_assert_msg(strstr(vit_last_error(), needle), "message '%s' lacks '%s'", vit_last_error(), needle);
}

START_TEST(config_errors) {
    expect(vit_config_set_int(cfg, VIT_CFG_MLP_RATIO, 4), VIT_ERR_INVALID_ARGUMENT, "vit_config_set_float");
    expect(vit_config_set_float(cfg, VIT_CFG_DIM, 4), VIT_ERR_INVALID_ARGUMENT, "vit_config_set_int");
    expect(vit_config_set_int(cfg, (vit_config_key)999, 4), VIT_ERR_INVALID_ARGUMENT, "unknown key");
    expect(vit_config_set_int(cfg, VIT_CFG_DIM, 0), VIT_ERR_INVALID_ARGUMENT, "VIT_CFG_DIM");
    expect(vit_config_set_int(cfg, VIT_CFG_GLOBAL_POOL, 7), VIT_ERR_INVALID_ARGUMENT, "VIT_CFG_GLOBAL_POOL");
    expect(vit_config_set_float(cfg, VIT_CFG_DROP_RATE, 1.0), VIT_ERR_INVALID_ARGUMENT, "VIT_CFG_DROP_RATE");
    expect(vit_config_set_float(cfg, VIT_CFG_LN_EPS, -1), VIT_ERR_INVALID_ARGUMENT, "VIT_CFG_LN_EPS");
    expect(vit_config_set_preset(cfg, "vit_gigantic_patch3_7"), VIT_ERR_NOT_FOUND, "vit_gigantic_patch3_7");
    expect(vit_config_set_int(NULL, VIT_CFG_DIM, 8), VIT_ERR_INVALID_ARGUMENT, "cfg is NULL");

    vit_model *m = (vit_model *)1;
    vit_config_set_int(cfg, VIT_CFG_HEADS, 5);
    expect(vit_model_create(ctx, cfg, &m), VIT_ERR_INVALID_ARGUMENT, "heads 5 do not divide dim 12");
    ck_assert_ptr_null(m);
    vit_config_set_int(cfg, VIT_CFG_HEADS, 3);
    vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, 18);
    expect(vit_model_create(ctx, cfg, &m), VIT_ERR_INVALID_ARGUMENT, "not divisible by patch size 4");
    expect(vit_model_create(NULL, cfg, &m), VIT_ERR_INVALID_ARGUMENT, "ctx is NULL");
    expect(vit_model_create(ctx, NULL, &m), VIT_ERR_INVALID_ARGUMENT, "cfg is NULL");
}
END_TEST

START_TEST(presets) {
    int64_t dim, depth, heads, patch, img;
    for (int i = 0; vit_preset_name(i); i++) ck_assert_int_eq(vit_config_set_preset(cfg, vit_preset_name(i)), VIT_OK);
    ck_assert_int_eq(vit_config_set_preset(cfg, "vit_small_patch32_384"), VIT_OK);
    vit_config_get_int(cfg, VIT_CFG_DIM, &dim);
    vit_config_get_int(cfg, VIT_CFG_DEPTH, &depth);
    vit_config_get_int(cfg, VIT_CFG_HEADS, &heads);
    vit_config_get_int(cfg, VIT_CFG_PATCH_SIZE, &patch);
    vit_config_get_int(cfg, VIT_CFG_IMG_SIZE, &img);
    ck_assert_int_eq(dim, 384);
    ck_assert_int_eq(depth, 12);
    ck_assert_int_eq(heads, 6);
    ck_assert_int_eq(patch, 32);
    ck_assert_int_eq(img, 384);
    ck_assert_int_eq(vit_config_set_preset(cfg, "vit_huge_patch14_224"), VIT_OK);
    vit_config_get_int(cfg, VIT_CFG_DIM, &dim);
    ck_assert_int_eq(dim, 1280);
}
END_TEST

START_TEST(forward_errors) {
    vit_model *m;
    ck_assert_int_eq(vit_model_create(ctx, cfg, &m), VIT_OK);
    vit_tensor *img, *bad, *logits, *labels, *flabels;
    int64_t s_img[4] = {2, 3, 16, 16}, s_bad[4] = {2, 1, 16, 16}, s_log[2] = {2, 4}, s_lab[1] = {2};
    vit_tensor_create(ctx, VIT_DTYPE_F32, 4, s_img, &img);
    vit_tensor_create(ctx, VIT_DTYPE_F32, 4, s_bad, &bad);
    vit_tensor_create(ctx, VIT_DTYPE_F32, 2, s_log, &logits);
    vit_tensor_create(ctx, VIT_DTYPE_I32, 1, s_lab, &labels);
    vit_tensor_create(ctx, VIT_DTYPE_F32, 1, s_lab, &flabels);
    float loss;
    expect(vit_model_loss(m, labels, 0, &loss), VIT_ERR_STATE, "no forward");
    expect(vit_model_backward(m), VIT_ERR_STATE, "vit_model_loss");
    expect(vit_model_forward(m, bad, logits), VIT_ERR_SHAPE, "[2, 1, 16, 16], expected [?, 3, 16, 16]");
    expect(vit_model_forward(m, logits, logits), VIT_ERR_SHAPE, "images");
    expect(vit_model_forward(m, labels, logits), VIT_ERR_DTYPE, "i32");
    expect(vit_model_forward(NULL, img, logits), VIT_ERR_INVALID_ARGUMENT, "model is NULL");
    expect(vit_model_forward(m, NULL, logits), VIT_ERR_INVALID_ARGUMENT, "images");
    ck_assert_int_eq(vit_model_forward(m, img, logits), VIT_OK);
    expect(vit_model_loss(m, flabels, 0, &loss), VIT_ERR_DTYPE, "labels");
    int32_t lab[2] = {1, 4};
    vit_tensor_write(labels, lab, sizeof lab);
    expect(vit_model_loss(m, labels, 0, &loss), VIT_ERR_INVALID_ARGUMENT, "labels[1] = 4");
    lab[1] = 3;
    vit_tensor_write(labels, lab, sizeof lab);
    expect(vit_model_loss(m, labels, 1.5f, &loss), VIT_ERR_INVALID_ARGUMENT, "label_smoothing");
    ck_assert_int_eq(vit_model_loss(m, labels, 0.1f, &loss), VIT_OK);
    ck_assert_int_eq(vit_model_backward(m), VIT_OK);
    /* The tape replays once. */
    expect(vit_model_backward(m), VIT_ERR_STATE, "vit_model_loss");

    float buf[4];
    expect(vit_model_param_read(m, "head.bias", buf, 3 * sizeof(float)), VIT_ERR_SHAPE, "head.bias");
    expect(vit_model_param_read(m, "no.such", buf, sizeof buf), VIT_ERR_NOT_FOUND, "no.such");
    ck_assert_int_eq(vit_model_param_read(m, "head.bias", buf, sizeof buf), VIT_OK);
    expect(vit_model_param_info(m, 10000, NULL, NULL, NULL), VIT_ERR_INVALID_ARGUMENT, "index 10000");
    int32_t idx[2];
    expect(vit_topk(logits, 5, idx, NULL), VIT_ERR_INVALID_ARGUMENT, "k = 5");

    vit_optimizer *opt;
    ck_assert_int_eq(vit_adamw_create(m, &opt), VIT_OK);
    expect(vit_optimizer_set_float(opt, VIT_OPT_BETA1, 1.0), VIT_ERR_INVALID_ARGUMENT, "out of range");
    expect(vit_optimizer_set_float(opt, VIT_OPT_LR, -1.0), VIT_ERR_INVALID_ARGUMENT, "out of range");
    expect(vit_optimizer_set_float(opt, (vit_optim_param)99, 1.0), VIT_ERR_INVALID_ARGUMENT, "99");
    expect(vit_optimizer_set_int(opt, VIT_OPT_DECAY_EXEMPT, 2), VIT_ERR_INVALID_ARGUMENT, "0 or 1");
    expect(vit_optimizer_state_read(opt, VIT_OPT_STATE_EXP_AVG, "nope", buf, sizeof buf), VIT_ERR_NOT_FOUND, "nope");
    vit_optimizer *none = (vit_optimizer *)1;
    expect(vit_adamw_create(NULL, &none), VIT_ERR_INVALID_ARGUMENT, "model is NULL");
    ck_assert_ptr_null(none);
    vit_optimizer_destroy(opt);
    vit_optimizer_destroy(NULL);

    vit_tensor_destroy(img);
    vit_tensor_destroy(bad);
    vit_tensor_destroy(logits);
    vit_tensor_destroy(labels);
    vit_tensor_destroy(flabels);
    vit_model_destroy(m);
    vit_model_destroy(NULL);
    vit_config_destroy(NULL);
}
END_TEST

START_TEST(family_options) {
    int64_t v;
    double d;
    expect(vit_config_set_int(cfg, VIT_CFG_REG_TOKENS, 65), VIT_ERR_INVALID_ARGUMENT, "VIT_CFG_REG_TOKENS");
    expect(vit_config_set_int(cfg, VIT_CFG_FC_NORM, 2), VIT_ERR_INVALID_ARGUMENT, "VIT_CFG_FC_NORM");
    expect(vit_config_set_int(cfg, VIT_CFG_QUICK_GELU, 2), VIT_ERR_INVALID_ARGUMENT, "VIT_CFG_QUICK_GELU");
    expect(vit_config_set_float(cfg, VIT_CFG_INIT_VALUES, -1), VIT_ERR_INVALID_ARGUMENT, "VIT_CFG_INIT_VALUES");
    expect(vit_config_set_int(cfg, VIT_CFG_INIT_VALUES, 1), VIT_ERR_INVALID_ARGUMENT, "real key");
    vit_model *m = (vit_model *)1;
    vit_config_set_int(cfg, VIT_CFG_CLASS_TOKEN, 0);
    expect(vit_model_create(ctx, cfg, &m), VIT_ERR_INVALID_ARGUMENT, "class-token pooling needs a class token");
    ck_assert_ptr_null(m);
    vit_config_set_int(cfg, VIT_CFG_GLOBAL_POOL, VIT_POOL_MAP);
    vit_config_set_int(cfg, VIT_CFG_REG_TOKENS, 2);
    expect(vit_model_create(ctx, cfg, &m), VIT_ERR_INVALID_ARGUMENT, "attention pooling");

    /* a family preset sets its options; a plain one puts timm's defaults back */
    ck_assert_int_eq(vit_config_set_preset(cfg, "vit_small_patch14_reg4_dinov2"), VIT_OK);
    vit_config_get_int(cfg, VIT_CFG_REG_TOKENS, &v);
    ck_assert_int_eq(v, 4);
    vit_config_get_int(cfg, VIT_CFG_NO_EMBED_CLASS, &v);
    ck_assert_int_eq(v, 1);
    vit_config_get_int(cfg, VIT_CFG_IMG_SIZE, &v);
    ck_assert_int_eq(v, 518);
    vit_config_get_float(cfg, VIT_CFG_INIT_VALUES, &d);
    ck_assert_double_eq(d, 1e-5);
    ck_assert_int_eq(vit_config_set_preset(cfg, "vit_base_patch16_siglip_224"), VIT_OK);
    vit_config_get_int(cfg, VIT_CFG_GLOBAL_POOL, &v);
    ck_assert_int_eq(v, VIT_POOL_MAP);
    ck_assert_int_eq(vit_config_validate(cfg), VIT_OK);
    ck_assert_int_eq(vit_config_set_preset(cfg, "vit_base_patch16_224"), VIT_OK);
    ck_assert_int_eq(vit_config_validate(cfg), VIT_OK);
    vit_config_get_int(cfg, VIT_CFG_CLASS_TOKEN, &v);
    ck_assert_int_eq(v, 1);
    vit_config_get_int(cfg, VIT_CFG_REG_TOKENS, &v);
    ck_assert_int_eq(v, 0);
    vit_config_get_int(cfg, VIT_CFG_GLOBAL_POOL, &v);
    ck_assert_int_eq(v, VIT_POOL_TOKEN);
    ck_assert_int_eq(vit_config_set_preset(cfg, "vit_base_patch16_clip_quickgelu_224"), VIT_OK);
    vit_config_get_int(cfg, VIT_CFG_QUICK_GELU, &v);
    ck_assert_int_eq(v, 1);
    vit_config_get_int(cfg, VIT_CFG_PATCH_BIAS, &v);
    ck_assert_int_eq(v, 0);
}
END_TEST

START_TEST(features_errors) {
    vit_config_set_int(cfg, VIT_CFG_REG_TOKENS, 2);
    vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, 0);
    vit_model *m;
    ck_assert_int_eq(vit_model_create(ctx, cfg, &m), VIT_OK);
    int T = 0, prefix = 0;
    ck_assert_int_eq(vit_model_token_count(m, &T, &prefix), VIT_OK);
    ck_assert_int_eq(T, 1 + 2 + 16);
    ck_assert_int_eq(prefix, 3);
    vit_tensor *img, *feat, *tok, *labels;
    int64_t s_img[4] = {2, 3, 16, 16}, s_feat[2] = {2, 12}, s_tok[3] = {2, 18, 12}, s_lab[1] = {2};
    vit_tensor_create(ctx, VIT_DTYPE_F32, 4, s_img, &img);
    vit_tensor_create(ctx, VIT_DTYPE_F32, 2, s_feat, &feat);
    vit_tensor_create(ctx, VIT_DTYPE_F32, 3, s_tok, &tok);
    vit_tensor_create(ctx, VIT_DTYPE_I32, 1, s_lab, &labels);
    expect(vit_model_forward_tokens(m, img, tok), VIT_ERR_SHAPE, "vit_model_forward_tokens: tokens");
    expect(vit_model_forward_features(m, img, tok), VIT_ERR_SHAPE, "vit_model_forward_features: features");
    expect(vit_model_forward_features(NULL, img, feat), VIT_ERR_INVALID_ARGUMENT, "model is NULL");
    expect(vit_model_token_count(NULL, &T, NULL), VIT_ERR_INVALID_ARGUMENT, "model is NULL");
    ck_assert_int_eq(vit_model_forward_features(m, img, feat), VIT_OK);
    /* features record nothing: no loss to take */
    float loss;
    expect(vit_model_loss(m, labels, 0, &loss), VIT_ERR_STATE, "no forward");
    /* without a head, forward gives the pooled features and there is no loss */
    ck_assert_int_eq(vit_model_forward(m, img, feat), VIT_OK);
    expect(vit_model_loss(m, labels, 0, &loss), VIT_ERR_STATE, "no head");
    vit_tensor_destroy(img);
    vit_tensor_destroy(feat);
    vit_tensor_destroy(tok);
    vit_tensor_destroy(labels);
    vit_model_destroy(m);
}
END_TEST

/* Each family option through a training step and the features calls: what
 * the sanitizer and valgrind builds run (the numbers are PyTorch parity's). */
START_TEST(family_steps) {
    static const struct {
        vit_config_key key;
        int64_t value;
        vit_config_key key2;
        int64_t value2;
    } opts[] = {
        {VIT_CFG_CLASS_TOKEN, 0, VIT_CFG_GLOBAL_POOL, VIT_POOL_AVG},
        {VIT_CFG_REG_TOKENS, 3, VIT_CFG_NO_EMBED_CLASS, 1},
        {VIT_CFG_PRE_NORM, 1, VIT_CFG_PATCH_BIAS, 0},
        {VIT_CFG_QUICK_GELU, 1, VIT_CFG_FC_NORM, 1},
        {VIT_CFG_CLASS_TOKEN, 0, VIT_CFG_GLOBAL_POOL, VIT_POOL_MAP},
        {VIT_CFG_GLOBAL_POOL, VIT_POOL_AVG, VIT_CFG_FC_NORM, 0},
    };
    int64_t s_img[4] = {2, 3, 16, 16}, s_log[2] = {2, 4}, s_lab[1] = {2}, s_feat[2] = {2, 12};
    vit_tensor *img, *logits, *labels, *feat;
    vit_tensor_create(ctx, VIT_DTYPE_F32, 4, s_img, &img);
    vit_tensor_create(ctx, VIT_DTYPE_F32, 2, s_log, &logits);
    vit_tensor_create(ctx, VIT_DTYPE_I32, 1, s_lab, &labels);
    vit_tensor_create(ctx, VIT_DTYPE_F32, 2, s_feat, &feat);
    float pixels[2 * 3 * 16 * 16];
    for (size_t i = 0; i < sizeof pixels / sizeof *pixels; i++) pixels[i] = (float)(i % 7) / 7.0f - 0.4f;
    int32_t lab[2] = {1, 3};
    vit_tensor_write(img, pixels, sizeof pixels);
    vit_tensor_write(labels, lab, sizeof lab);
    for (size_t o = 0; o < sizeof opts / sizeof *opts; o++)
        for (int layer_scale = 0; layer_scale < 2; layer_scale++) {
            vit_config *c;
            vit_model *m;
            ck_assert_int_eq(vit_config_copy(cfg, &c), VIT_OK);
            ck_assert_int_eq(vit_config_set_int(c, opts[o].key, opts[o].value), VIT_OK);
            ck_assert_int_eq(vit_config_set_int(c, opts[o].key2, opts[o].value2), VIT_OK);
            ck_assert_int_eq(vit_config_set_float(c, VIT_CFG_INIT_VALUES, layer_scale ? 0.1 : 0.0), VIT_OK);
            ck_assert_msg(vit_model_create(ctx, c, &m) == VIT_OK, "option %zu: %s", o, vit_last_error());
            float loss;
            ck_assert_int_eq(vit_model_forward(m, img, logits), VIT_OK);
            ck_assert_int_eq(vit_model_loss(m, labels, 0.1f, &loss), VIT_OK);
            ck_assert_int_eq(vit_model_backward(m), VIT_OK);
            int T, prefix;
            vit_model_token_count(m, &T, &prefix);
            int64_t s_tok[3] = {2, T, 12};
            vit_tensor *tok;
            vit_tensor_create(ctx, VIT_DTYPE_F32, 3, s_tok, &tok);
            ck_assert_int_eq(vit_model_forward_features(m, img, feat), VIT_OK);
            ck_assert_int_eq(vit_model_forward_tokens(m, img, tok), VIT_OK);
            vit_model_set_grad(m, 0);
            ck_assert_int_eq(vit_model_forward(m, img, logits), VIT_OK);
            vit_tensor_destroy(tok);
            vit_model_destroy(m);
            vit_config_destroy(c);
        }
    vit_tensor_destroy(img);
    vit_tensor_destroy(logits);
    vit_tensor_destroy(labels);
    vit_tensor_destroy(feat);
}
END_TEST

int main(void) {
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, presets);
    tcase_add_test(tc, forward_errors);
    tcase_add_test(tc, family_options);
    tcase_add_test(tc, features_errors);
    tcase_add_test(tc, family_steps);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
