/* Model and optimizer checkpoints through the public API: round trips with
 * identical logits, timm-layout files with inferred configurations against
 * timm's logits, fine-tuning loads, and every refusal naming its tensor. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "expected.h"
#include "io/safetensors.h"
#include "io_test_util.h"
#include "vit/vit.h"

static char dir[512];
static vit_context *ctx;

static void setup(void) {
    ck_assert_ptr_nonnull(io_scratch_dir(dir, sizeof dir));
    ck_assert_int_eq(vit_context_create(&ctx), VIT_OK);
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_THREADS, 2), VIT_OK);
}

static void teardown(void) {
    vit_context_destroy(ctx);
    io_rm_rf(dir);
}

static const char *in_dir(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

/* A small model; every test varies what it needs. */
static vit_model *small_model(int img, int classes, int depth, int pool, int patch_norm, int qkv_bias) {
    vit_config *cfg;
    ck_assert_int_eq(vit_config_create(&cfg), VIT_OK);
    int64_t v[][2] = {{VIT_CFG_IMG_SIZE, img},       {VIT_CFG_PATCH_SIZE, 4},   {VIT_CFG_IN_CHANNELS, 3},
                      {VIT_CFG_NUM_CLASSES, classes}, {VIT_CFG_DIM, 64},         {VIT_CFG_DEPTH, depth},
                      {VIT_CFG_HEADS, 4},             {VIT_CFG_QKV_BIAS, qkv_bias}, {VIT_CFG_PATCH_NORM, patch_norm},
                      {VIT_CFG_GLOBAL_POOL, pool}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_int_eq(vit_config_set_int(cfg, (vit_config_key)v[i][0], v[i][1]), VIT_OK);
    ck_assert_int_eq(vit_config_set_float(cfg, VIT_CFG_MLP_RATIO, 2.5), VIT_OK);
    ck_assert_int_eq(vit_config_set_float(cfg, VIT_CFG_LN_EPS, 1e-5), VIT_OK);
    ck_assert_int_eq(vit_config_set_float(cfg, VIT_CFG_DROP_PATH_RATE, 0.1), VIT_OK);
    vit_model *m;
    ck_assert_int_eq(vit_model_create(ctx, cfg, &m), VIT_OK);
    vit_config_destroy(cfg);
    ck_assert_int_eq(vit_model_set_grad(m, 0), VIT_OK);
    return m;
}

static vit_tensor *images_tensor(int B, int C, int img, const float *data) {
    int64_t shape[4] = {B, C, img, img};
    vit_tensor *t;
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 4, shape, &t), VIT_OK);
    size_t n = (size_t)B * C * img * img;
    float *buf = malloc(n * 4);
    for (size_t i = 0; i < n; i++) buf[i] = data ? data[i] : sinf((float)i * 0.37f);
    ck_assert_int_eq(vit_tensor_write(t, buf, n * 4), VIT_OK);
    free(buf);
    return t;
}

/* logits of the model for images, malloc'ed [B * classes] */
static float *logits_of(vit_model *m, const vit_tensor *images, int B, int classes) {
    int64_t shape[2] = {B, classes};
    vit_tensor *l;
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 2, shape, &l), VIT_OK);
    ck_assert_int_eq(vit_model_forward(m, images, l), VIT_OK);
    float *out = malloc((size_t)B * classes * 4);
    ck_assert_int_eq(vit_tensor_read(l, out, (size_t)B * classes * 4), VIT_OK);
    vit_tensor_destroy(l);
    return out;
}

static float *param(const vit_model *m, const char *name, size_t n) {
    float *p = malloc(n * 4);
    ck_assert_int_eq(vit_model_param_read(m, name, p, n * 4), VIT_OK);
    return p;
}

typedef struct meta_seen {
    char dim[32], version[32], kind[32], pool[32], classes[256], epoch[32];
    int count;
} meta_seen;

static void collect(void *user, const char *key, const char *value) {
    meta_seen *s = user;
    s->count++;
    if (!strcmp(key, "vit.dim")) snprintf(s->dim, sizeof s->dim, "%s", value);
    if (!strcmp(key, "libvit.version")) snprintf(s->version, sizeof s->version, "%s", value);
    if (!strcmp(key, "libvit.kind")) snprintf(s->kind, sizeof s->kind, "%s", value);
    if (!strcmp(key, "vit.global_pool")) snprintf(s->pool, sizeof s->pool, "%s", value);
    if (!strcmp(key, "class_names")) snprintf(s->classes, sizeof s->classes, "%s", value);
    if (!strcmp(key, "train.epoch")) snprintf(s->epoch, sizeof s->epoch, "%s", value);
}

/* ------------------------------------------------------------ round trip */
START_TEST(model_round_trip) {
    vit_model *m = small_model(16, 5, 2, VIT_POOL_AVG, 1, 0);
    ck_assert_int_eq(vit_model_set_metadata(m, "class_names", "[\"cat\",\"dog \\\"x\\\"\",\"caf\xc3\xa9\",\"d\",\"e\"]"), VIT_OK);
    ck_assert_int_eq(vit_model_set_metadata(m, "mean", "0.485,0.456,0.406"), VIT_OK);
    vit_tensor *img = images_tensor(3, 3, 16, NULL);
    float *before = logits_of(m, img, 3, 5);

    char path[600];
    in_dir(path, sizeof path, "model.safetensors");
    ck_assert_int_eq(vit_model_save(m, path), VIT_OK);
    ck_assert_int_eq(vit_model_save(m, path), VIT_OK); /* over an existing file */
    vit_model *l;
    ck_assert_int_eq(vit_model_load(ctx, path, &l), VIT_OK);
    ck_assert_int_eq(vit_model_set_grad(l, 0), VIT_OK);
    float *after = logits_of(l, img, 3, 5);
    ck_assert_mem_eq(before, after, 15 * 4); /* bit-identical */

    /* the whole configuration came back, reals exactly */
    vit_config *a, *b;
    ck_assert_int_eq(vit_model_get_config(m, &a), VIT_OK);
    ck_assert_int_eq(vit_model_get_config(l, &b), VIT_OK);
    for (int k = VIT_CFG_IMG_SIZE; k <= VIT_CFG_GLOBAL_POOL; k++) {
        int64_t x, y;
        ck_assert_int_eq(vit_config_get_int(a, (vit_config_key)k, &x), VIT_OK);
        ck_assert_int_eq(vit_config_get_int(b, (vit_config_key)k, &y), VIT_OK);
        ck_assert_int_eq(x, y);
    }
    for (int k = VIT_CFG_MLP_RATIO; k <= VIT_CFG_LN_EPS; k++) {
        double x, y;
        ck_assert_int_eq(vit_config_get_float(a, (vit_config_key)k, &x), VIT_OK);
        ck_assert_int_eq(vit_config_get_float(b, (vit_config_key)k, &y), VIT_OK);
        ck_assert(x == y);
    }
    vit_config_destroy(a);
    vit_config_destroy(b);

    const char *v;
    ck_assert_int_eq(vit_model_get_metadata(l, "class_names", &v), VIT_OK);
    ck_assert_str_eq(v, "[\"cat\",\"dog \\\"x\\\"\",\"caf\xc3\xa9\",\"d\",\"e\"]");
    ck_assert_int_eq(vit_model_get_metadata(l, "mean", &v), VIT_OK);
    ck_assert_str_eq(v, "0.485,0.456,0.406");
    ck_assert_int_eq(vit_model_get_metadata(l, "format", &v), VIT_OK);
    ck_assert_ptr_null(v); /* reserved keys stay in the file */

    meta_seen seen = {0};
    ck_assert_int_eq(vit_checkpoint_read_metadata(path, collect, &seen), VIT_OK);
    ck_assert_str_eq(seen.dim, "64");
    ck_assert_str_eq(seen.version, vit_version_string());
    ck_assert_str_eq(seen.kind, "model");
    ck_assert_str_eq(seen.pool, "avg");
    ck_assert_int_eq(seen.count, 3 + 23 + 2); /* common, every vit_config key, the model's own */

    /* a reserved key in the model's metadata is refused, the file kept */
    ck_assert_int_eq(vit_model_set_metadata(m, "vit.custom", "1"), VIT_OK);
    ck_assert_int_eq(vit_model_save(m, path), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "vit.custom"));
    vit_model_destroy(l);
    ck_assert_int_eq(vit_model_load(ctx, path, &l), VIT_OK);

    free(before);
    free(after);
    vit_tensor_destroy(img);
    vit_model_destroy(l);
    vit_model_destroy(m);
}
END_TEST

/* ------------------------------------------------ timm-layout reference */
static void timm_file(const char *base, const int64_t want[10], double ratio) {
    const char *ref = reference_dir();
    if (!ref) return;
    char path[600], epath[600];
    snprintf(path, sizeof path, "%s/%s.safetensors", ref, base);
    snprintf(epath, sizeof epath, "%s/%s.expected", ref, base);
    vit_model *m;
    ck_assert_int_eq(vit_model_load(ctx, path, &m), VIT_OK);
    vit_config *cfg;
    ck_assert_int_eq(vit_model_get_config(m, &cfg), VIT_OK);
    for (int k = VIT_CFG_IMG_SIZE; k <= VIT_CFG_GLOBAL_POOL; k++) {
        int64_t x;
        ck_assert_int_eq(vit_config_get_int(cfg, (vit_config_key)k, &x), VIT_OK);
        ck_assert_msg(x == want[k - 1], "%s: config key %d is %lld, want %lld", base, k, (long long)x,
                      (long long)want[k - 1]);
    }
    double r, eps;
    ck_assert_int_eq(vit_config_get_float(cfg, VIT_CFG_MLP_RATIO, &r), VIT_OK);
    ck_assert_int_eq(vit_config_get_float(cfg, VIT_CFG_LN_EPS, &eps), VIT_OK);
    ck_assert(r == ratio && eps == 1e-6);
    vit_config_destroy(cfg);

    expected e;
    ck_assert(expected_load(&e, epath));
    uint64_t n_img, n_log;
    float *images = expected_get(&e, "__images__", &n_img), *want_logits = expected_get(&e, "__logits__", &n_log);
    int B = 2, C = (int)want[VIT_CFG_IN_CHANNELS - 1], img = (int)want[VIT_CFG_IMG_SIZE - 1];
    int K = (int)want[VIT_CFG_NUM_CLASSES - 1];
    ck_assert_uint_eq(n_img, (uint64_t)B * C * img * img);
    ck_assert_uint_eq(n_log, (uint64_t)B * K);
    vit_tensor *t = images_tensor(B, C, img, images);
    ck_assert_int_eq(vit_model_set_grad(m, 0), VIT_OK);
    float *got = logits_of(m, t, B, K);
    for (int i = 0; i < B * K; i++)
        ck_assert_msg(fabsf(got[i] - want_logits[i]) < 1e-4f + 1e-4f * fabsf(want_logits[i]),
                      "%s logit %d: %.7g vs timm %.7g", base, i, got[i], want_logits[i]);
    free(got);
    free(images);
    free(want_logits);
    vit_tensor_destroy(t);
    expected_free(&e);
    vit_model_destroy(m);
}

START_TEST(timm_layout_inference) {
    if (!reference_dir()) return;
    /* img, patch, chans, classes, dim, depth, heads, qkv_bias, patch_norm, pool */
    const int64_t token[10] = {16, 4, 3, 5, 128, 2, 2, 1, 0, VIT_POOL_TOKEN};
    timm_file("timm_token", token, 4.0);
    const int64_t avg[10] = {24, 8, 1, 7, 192, 3, 3, 0, 1, VIT_POOL_AVG};
    timm_file("timm_avg", avg, 2.0);
}
END_TEST

/* ------------------------------------------------------------ fine-tuning */
START_TEST(load_weights_for_fine_tuning) {
    if (!reference_dir()) return;
    char path[600], epath[600];
    snprintf(path, sizeof path, "%s/timm_token.safetensors", reference_dir());
    snprintf(epath, sizeof epath, "%s/timm_token.expected", reference_dir());
    /* the same architecture at 24 px (grid 6 instead of 4) with 10 classes */
    vit_config *cfg;
    ck_assert_int_eq(vit_config_create(&cfg), VIT_OK);
    int64_t v[][2] = {{VIT_CFG_IMG_SIZE, 24}, {VIT_CFG_PATCH_SIZE, 4}, {VIT_CFG_IN_CHANNELS, 3},
                      {VIT_CFG_NUM_CLASSES, 10}, {VIT_CFG_DIM, 128}, {VIT_CFG_DEPTH, 2}, {VIT_CFG_HEADS, 2},
                      {VIT_CFG_QKV_BIAS, 1}, {VIT_CFG_PATCH_NORM, 0}, {VIT_CFG_GLOBAL_POOL, VIT_POOL_TOKEN}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_int_eq(vit_config_set_int(cfg, (vit_config_key)v[i][0], v[i][1]), VIT_OK);
    ck_assert_int_eq(vit_config_set_float(cfg, VIT_CFG_MLP_RATIO, 4.0), VIT_OK);
    vit_model *m;
    ck_assert_int_eq(vit_model_create(ctx, cfg, &m), VIT_OK);
    vit_config_destroy(cfg);
    float *head0 = param(m, "head.weight", 10 * 128), *cls0 = param(m, "cls_token", 128);

    /* without the flag the head refuses, naming itself; nothing was written */
    ck_assert_int_eq(vit_model_load_weights(m, path, 0), VIT_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "\"head.weight\""));
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "timm_token.safetensors"));
    float *cls1 = param(m, "cls_token", 128);
    ck_assert_mem_eq(cls0, cls1, 128 * 4);
    free(cls1);

    ck_assert_int_eq(vit_model_load_weights(m, path, VIT_LOAD_ALLOW_HEAD_MISMATCH), VIT_OK);
    float *head1 = param(m, "head.weight", 10 * 128);
    ck_assert_mem_eq(head0, head1, 10 * 128 * 4); /* kept as initialised */

    expected e;
    ck_assert(expected_load(&e, epath));
    uint64_t n;
    float *want = expected_get(&e, "__pos_embed_resampled__", &n);
    ck_assert_uint_eq(n, 37 * 128);
    float *pos = param(m, "pos_embed", 37 * 128);
    ck_assert_mem_eq(pos, want, 128 * 4); /* class-token row as is */
    for (uint64_t i = 128; i < n; i++)
        ck_assert_msg(fabsf(pos[i] - want[i]) < 1e-5f, "pos_embed[%llu]: %.7g vs torch %.7g", (unsigned long long)i,
                      pos[i], want[i]);
    float *qkv = param(m, "blocks.0.attn.qkv.weight", 3 * 128 * 128);
    float *wq = expected_get(&e, "blocks.0.attn.qkv.weight", &n);
    ck_assert_mem_eq(qkv, wq, n * 4); /* BF16 widened exactly */
    free(qkv);
    free(wq);
    free(want);
    free(pos);
    expected_free(&e);
    free(head0);
    free(head1);
    free(cls0);
    vit_model_destroy(m);
}
END_TEST

START_TEST(missing_and_extra_tensors) {
    char p2[600];
    vit_model *two = small_model(16, 5, 2, VIT_POOL_TOKEN, 0, 1);
    ck_assert_int_eq(vit_model_save(two, in_dir(p2, sizeof p2, "two.safetensors")), VIT_OK);

    vit_model *three = small_model(16, 5, 3, VIT_POOL_TOKEN, 0, 1);
    ck_assert_int_eq(vit_model_load_weights(three, p2, 0), VIT_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "\"blocks.2.norm1.weight\" is missing"));

    vit_model *one = small_model(16, 5, 1, VIT_POOL_TOKEN, 0, 1);
    ck_assert_int_eq(vit_model_load_weights(one, p2, 0), VIT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "\"blocks.1.norm1.weight\""));
    ck_assert_int_eq(vit_model_load_weights(one, p2, VIT_LOAD_IGNORE_EXTRA), VIT_OK);
    float *a = param(one, "blocks.0.mlp.fc2.weight", 64 * 160), *b = param(two, "blocks.0.mlp.fc2.weight", 64 * 160);
    ck_assert_mem_eq(a, b, 64 * 160 * 4);
    free(a);
    free(b);

    vit_model *avg = small_model(16, 5, 2, VIT_POOL_AVG, 0, 1);
    ck_assert_int_eq(vit_model_load_weights(avg, p2, 0), VIT_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "\"fc_norm.weight\""));
    ck_assert_int_eq(vit_model_load_weights(avg, p2, 4), VIT_ERR_INVALID_ARGUMENT);

    vit_model_destroy(avg);
    vit_model_destroy(one);
    vit_model_destroy(three);
    vit_model_destroy(two);
}
END_TEST

/* Rewrites src into dst: drop a tensor, add one, retype one, change a metadata value. */
typedef struct edit {
    const char *drop, *add, *as_i32, *meta_key, *meta_value;
} edit;

static void rewrite(const char *src, const char *dst, edit ed) {
    vit_st_file *f;
    ck_assert_int_eq(vit_st_open(src, &f), VIT_OK);
    size_t n = vit_st_count(f), k = 0, nm = vit_st_metadata_count(f), km = 0;
    vit_st_entry *e = calloc(n + 1, sizeof *e);
    vit_st_meta *m = calloc(nm + 1, sizeof *m);
    static const float extra[2] = {1, 2};
    for (size_t i = 0; i < n; i++) {
        const vit_st_tensor *t = vit_st_at(f, i);
        if (ed.drop && !strcmp(t->name, ed.drop)) continue;
        e[k].name = t->name;
        e[k].dtype = ed.as_i32 && !strcmp(t->name, ed.as_i32) ? VIT_ST_I32 : t->dtype;
        e[k].ndim = t->ndim;
        memcpy(e[k].shape, t->shape, sizeof t->shape);
        e[k].data = vit_st_raw(f, t);
        k++;
    }
    if (ed.add) e[k++] = (vit_st_entry){ed.add, VIT_ST_F32, 1, {2}, extra};
    bool replaced = false;
    for (size_t i = 0; i < nm; i++) {
        vit_st_metadata_at(f, i, &m[km].key, &m[km].value);
        if (ed.meta_key && !strcmp(m[km].key, ed.meta_key)) m[km].value = ed.meta_value, replaced = true;
        km++;
    }
    if (ed.meta_key && !replaced) m[km++] = (vit_st_meta){ed.meta_key, ed.meta_value};
    ck_assert_int_eq(vit_st_write(dst, e, k, m, km, NULL, NULL), VIT_OK);
    free(e);
    free(m);
    vit_st_close(f);
}

START_TEST(malformed_checkpoints) {
    char src[600], bad[600];
    vit_model *m = small_model(16, 5, 2, VIT_POOL_TOKEN, 0, 1);
    ck_assert_int_eq(vit_model_save(m, in_dir(src, sizeof src, "m.safetensors")), VIT_OK);
    in_dir(bad, sizeof bad, "bad.safetensors");
    vit_model *l = (vit_model *)&l;

    rewrite(src, bad, (edit){.drop = "blocks.1.norm2.bias"});
    ck_assert_int_eq(vit_model_load(ctx, bad, &l), VIT_ERR_NOT_FOUND);
    ck_assert_ptr_null(l);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "\"blocks.1.norm2.bias\" is missing"));
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "bad.safetensors"));

    rewrite(src, bad, (edit){.add = "blocks.0.extra"});
    ck_assert_int_eq(vit_model_load(ctx, bad, &l), VIT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "\"blocks.0.extra\""));

    rewrite(src, bad, (edit){.as_i32 = "norm.weight"});
    ck_assert_int_eq(vit_model_load(ctx, bad, &l), VIT_ERR_DTYPE);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "\"norm.weight\" is I32"));

    rewrite(src, bad, (edit){.meta_key = "vit.num_classes", .meta_value = "6"});
    ck_assert_int_eq(vit_model_load(ctx, bad, &l), VIT_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "\"head.weight\" is [5, 64] in the file but [6, 64]"));

    rewrite(src, bad, (edit){.meta_key = "vit.depth", .meta_value = "2x"});
    ck_assert_int_eq(vit_model_load(ctx, bad, &l), VIT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "vit.depth"));

    rewrite(src, bad, (edit){.meta_key = "vit.heads", .meta_value = "3"}); /* 3 does not divide 64 */
    ck_assert_int_ne(vit_model_load(ctx, bad, &l), VIT_OK);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "bad.safetensors"));

    rewrite(src, bad, (edit){.meta_key = "libvit.kind", .meta_value = "optimizer"});
    ck_assert_int_eq(vit_model_load(ctx, bad, &l), VIT_ERR_FORMAT);
    ck_assert_msg(strstr(vit_last_error(), "optimizer checkpoint"), "%s", vit_last_error());

    /* no libvit metadata and no timm tensors to infer from */
    vit_st_entry e[] = {{"weights", VIT_ST_F32, 1, {2}, (const float[2]){1, 2}}};
    ck_assert_int_eq(vit_st_write(bad, e, 1, NULL, 0, NULL, NULL), VIT_OK);
    ck_assert_int_eq(vit_model_load(ctx, bad, &l), VIT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "patch_embed.proj.weight"));

    /* not safetensors at all; missing */
    ck_assert_int_eq(io_spit(bad, "\x10\0\0\0\0\0\0\0not json at all!", 24), 0);
    ck_assert_int_eq(vit_model_load(ctx, bad, &l), VIT_ERR_FORMAT);
    ck_assert_int_eq(vit_model_load(ctx, in_dir(bad, sizeof bad, "nope.safetensors"), &l), VIT_ERR_IO);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "nope.safetensors"));
    vit_model_destroy(m);
}
END_TEST

/* -------------------------------------------------------------- optimizer */
static void train_steps(vit_model *m, vit_optimizer *o, int steps) {
    vit_tensor *img = images_tensor(2, 3, 16, NULL);
    int64_t ls = 2;
    vit_tensor *labels, *logits;
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_I32, 1, &ls, &labels), VIT_OK);
    int32_t lab[2] = {1, 3};
    ck_assert_int_eq(vit_tensor_write(labels, lab, sizeof lab), VIT_OK);
    int64_t lshape[2] = {2, 5};
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 2, lshape, &logits), VIT_OK);
    ck_assert_int_eq(vit_model_set_grad(m, 1), VIT_OK);
    for (int s = 0; s < steps; s++) {
        float loss;
        ck_assert_int_eq(vit_optimizer_zero_grad(o), VIT_OK);
        ck_assert_int_eq(vit_model_forward(m, img, logits), VIT_OK);
        ck_assert_int_eq(vit_model_loss(m, labels, 0.1f, &loss), VIT_OK);
        ck_assert_int_eq(vit_model_backward(m), VIT_OK);
        ck_assert_int_eq(vit_optimizer_step(o), VIT_OK);
    }
    vit_tensor_destroy(img);
    vit_tensor_destroy(labels);
    vit_tensor_destroy(logits);
}

START_TEST(optimizer_round_trip) {
    char mp[600], op[600];
    vit_model *m = small_model(16, 5, 2, VIT_POOL_TOKEN, 0, 1);
    vit_optimizer *o;
    ck_assert_int_eq(vit_adamw_create(m, &o), VIT_OK);
    ck_assert_int_eq(vit_optimizer_set_float(o, VIT_OPT_LR, 3e-4), VIT_OK);
    ck_assert_int_eq(vit_optimizer_set_float(o, VIT_OPT_WEIGHT_DECAY, 0.05), VIT_OK);
    ck_assert_int_eq(vit_optimizer_set_int(o, VIT_OPT_DECAY_EXEMPT, 1), VIT_OK);
    train_steps(m, o, 2);

    ck_assert_int_eq(vit_model_save(m, in_dir(mp, sizeof mp, "m.safetensors")), VIT_OK);
    const char *keys[] = {"train.epoch", "train.order_seed"}, *values[] = {"7", "12345"};
    ck_assert_int_eq(vit_optimizer_save_ex(o, m, in_dir(op, sizeof op, "o.safetensors"), 2, keys, values), VIT_OK);
    meta_seen seen = {0};
    ck_assert_int_eq(vit_checkpoint_read_metadata(op, collect, &seen), VIT_OK);
    ck_assert_str_eq(seen.kind, "optimizer");
    ck_assert_str_eq(seen.epoch, "7");

    /* resume: a fresh model and optimizer from the files */
    vit_model *m2;
    vit_optimizer *o2;
    ck_assert_int_eq(vit_model_load(ctx, mp, &m2), VIT_OK);
    ck_assert_int_eq(vit_adamw_create(m2, &o2), VIT_OK);
    ck_assert_int_eq(vit_optimizer_load(o2, m2, op), VIT_OK);
    int64_t step;
    double lr, wd;
    ck_assert_int_eq(vit_optimizer_get_int(o2, VIT_OPT_STEP, &step), VIT_OK);
    ck_assert_int_eq(vit_optimizer_get_float(o2, VIT_OPT_LR, &lr), VIT_OK);
    ck_assert_int_eq(vit_optimizer_get_float(o2, VIT_OPT_WEIGHT_DECAY, &wd), VIT_OK);
    ck_assert_int_eq(step, 2);
    ck_assert(lr == 3e-4 && wd == 0.05);
    float *v1 = malloc(64 * 4), *v2 = malloc(64 * 4);
    ck_assert_int_eq(vit_optimizer_state_read(o, VIT_OPT_STATE_EXP_AVG_SQ, "norm.weight", v1, 64 * 4), VIT_OK);
    ck_assert_int_eq(vit_optimizer_state_read(o2, VIT_OPT_STATE_EXP_AVG_SQ, "norm.weight", v2, 64 * 4), VIT_OK);
    ck_assert_mem_eq(v1, v2, 64 * 4);
    free(v1);
    free(v2);

    /* one more step on each: identical parameters */
    train_steps(m, o, 1);
    train_steps(m2, o2, 1);
    int count;
    ck_assert_int_eq(vit_model_param_count(m, &count), VIT_OK);
    for (int i = 0; i < count; i++) {
        const char *name;
        int nd;
        int64_t shape[VIT_MAX_DIMS], numel = 1;
        ck_assert_int_eq(vit_model_param_info(m, i, &name, &nd, shape), VIT_OK);
        for (int d = 0; d < nd; d++) numel *= shape[d];
        float *a = param(m, name, (size_t)numel), *b = param(m2, name, (size_t)numel);
        ck_assert_msg(memcmp(a, b, (size_t)numel * 4) == 0, "parameter %s differs after resuming", name);
        free(a);
        free(b);
    }

    /* the wrong kind of file either way, and an optimizer for another model */
    ck_assert_int_eq(vit_optimizer_load(o2, m2, mp), VIT_ERR_FORMAT);
    ck_assert_msg(strstr(vit_last_error(), "model checkpoint"), "%s", vit_last_error());
    vit_model *l;
    ck_assert_int_eq(vit_model_load(ctx, op, &l), VIT_ERR_FORMAT);
    vit_model *other = small_model(16, 5, 3, VIT_POOL_TOKEN, 0, 1);
    vit_optimizer *o3;
    ck_assert_int_eq(vit_adamw_create(other, &o3), VIT_OK);
    ck_assert_int_eq(vit_optimizer_load(o3, other, op), VIT_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "exp_avg.blocks.2."));
    const char *bad_keys[] = {"optim.lr"};
    ck_assert_int_eq(vit_optimizer_save_ex(o, m, op, 1, bad_keys, values), VIT_ERR_INVALID_ARGUMENT);

    vit_optimizer_destroy(o3);
    vit_model_destroy(other);
    vit_optimizer_destroy(o2);
    vit_model_destroy(m2);
    vit_optimizer_destroy(o);
    vit_model_destroy(m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, model_round_trip);
    tcase_add_test(tc, timm_layout_inference);
    tcase_add_test(tc, load_weights_for_fine_tuning);
    tcase_add_test(tc, missing_and_extra_tensors);
    tcase_add_test(tc, malformed_checkpoints);
    tcase_add_test(tc, optimizer_round_trip);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
