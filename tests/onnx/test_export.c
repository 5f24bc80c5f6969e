/* vit_model_export_onnx read back with protobuf-c's own parser: the graph's
 * interface, opset and IR version, every parameter as an initializer with
 * the model's bytes, the metadata, the operators; external data; the
 * family options; bad arguments. Runs in the
 * sanitizer builds too (test_onnx.py checks the numbers, through Python). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/onnx.pb-c.h"
#include "vit/vit.h"

static vit_context *ctx;
static vit_model *model;
static char path[64];

static void setup(void) {
    vit_config *cfg = NULL;
    ck_assert_int_eq(vit_context_create(&ctx), VIT_OK);
    ck_assert_int_eq(vit_config_create(&cfg), VIT_OK);
    const int64_t ints[][2] = {{VIT_CFG_IMG_SIZE, 16}, {VIT_CFG_PATCH_SIZE, 4}, {VIT_CFG_IN_CHANNELS, 3},
                               {VIT_CFG_NUM_CLASSES, 5}, {VIT_CFG_DIM, 16},   {VIT_CFG_DEPTH, 2},
                               {VIT_CFG_HEADS, 2},       {VIT_CFG_PATCH_NORM, 1}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        ck_assert_int_eq(vit_config_set_int(cfg, (vit_config_key)ints[i][0], ints[i][1]), VIT_OK);
    ck_assert_int_eq(vit_model_create(ctx, cfg, &model), VIT_OK);
    vit_config_destroy(cfg);
    ck_assert_int_eq(vit_model_set_metadata(model, "class_names", "[\"a\",\"b\",\"c\",\"d\",\"e\"]"), VIT_OK);
    ck_assert_int_eq(vit_model_set_metadata(model, "mean", "0.5,0.5,0.5"), VIT_OK);
    snprintf(path, sizeof path, "/tmp/vit_onnx_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    fclose(fdopen(fd, "w"));
}

static void teardown(void) {
    char data[80];
    snprintf(data, sizeof data, "%s.data", path);
    unlink(data);
    unlink(path);
    vit_model_destroy(model);
    vit_context_destroy(ctx);
}

static Onnx__ModelProto *read_back(void) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)n);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, (size_t)n, buf);
    free(buf);
    ck_assert_ptr_nonnull(m);
    return m;
}

static const Onnx__TensorProto *initializer(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_initializer; i++)
        if (!strcmp(g->initializer[i]->name, name)) return g->initializer[i];
    return NULL;
}

static void check_dims(const Onnx__ValueInfoProto *vi, const char *name, int n, const int64_t *dims) {
    ck_assert_str_eq(vi->name, name);
    ck_assert_int_eq(vi->type->value_case, ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE);
    ck_assert_int_eq(vi->type->tensor_type->elem_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    const Onnx__TensorShapeProto *s = vi->type->tensor_type->shape;
    ck_assert_int_eq(s->n_dim, n);
    for (int i = 0; i < n; i++) {
        if (dims[i] < 0) {
            ck_assert_int_eq(s->dim[i]->value_case, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM);
            ck_assert_str_eq(s->dim[i]->dim_param, "batch");
        } else {
            ck_assert_int_eq(s->dim[i]->value_case, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE);
            ck_assert_int_eq(s->dim[i]->dim_value, dims[i]);
        }
    }
}

START_TEST(dynamic_batch_graph) {
    ck_assert_int_eq(vit_model_export_onnx(model, path, NULL), VIT_OK);
    Onnx__ModelProto *m = read_back();
    ck_assert_int_eq(m->ir_version, 8);
    ck_assert_int_eq(m->n_opset_import, 1);
    ck_assert_str_eq(m->opset_import[0]->domain, "");
    ck_assert_int_eq(m->opset_import[0]->version, 17);
    ck_assert_str_eq(m->producer_name, "libvit");
    const Onnx__GraphProto *g = m->graph;
    ck_assert_int_eq(g->n_input, 1);
    ck_assert_int_eq(g->n_output, 1);
    check_dims(g->input[0], "images", 4, (const int64_t[]){-1, 3, 16, 16});
    check_dims(g->output[0], "logits", 2, (const int64_t[]){-1, 5});
    /* Every parameter, under its name, with the model's bytes. */
    int count = 0;
    ck_assert_int_eq(vit_model_param_count(model, &count), VIT_OK);
    for (int i = 0; i < count; i++) {
        const char *name;
        int ndim;
        int64_t shape[VIT_MAX_DIMS], numel = 1;
        ck_assert_int_eq(vit_model_param_info(model, i, &name, &ndim, shape), VIT_OK);
        const Onnx__TensorProto *t = initializer(g, name);
        ck_assert_msg(t != NULL, "no initializer %s", name);
        ck_assert_int_eq(t->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
        ck_assert_int_eq(t->n_dims, ndim);
        for (int d = 0; d < ndim; d++) {
            ck_assert_int_eq(t->dims[d], shape[d]);
            numel *= shape[d];
        }
        float *want = malloc((size_t)numel * sizeof *want);
        ck_assert_int_eq(vit_model_param_read(model, name, want, (size_t)numel * sizeof *want), VIT_OK);
        ck_assert(t->has_raw_data && t->raw_data.len == (size_t)numel * sizeof(float));
        ck_assert_msg(!memcmp(t->raw_data.data, want, t->raw_data.len), "%s: other bytes", name);
        free(want);
    }
    /* The model's metadata, verbatim. */
    int found = 0;
    for (size_t i = 0; i < m->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *p = m->metadata_props[i];
        if (!strcmp(p->key, "class_names")) found += !strcmp(p->value, "[\"a\",\"b\",\"c\",\"d\",\"e\"]");
        if (!strcmp(p->key, "mean")) found += !strcmp(p->value, "0.5,0.5,0.5");
    }
    ck_assert_int_eq(found, 2);
    /* Standard operators only; one LayerNormalization per norm (patch, 2 per block, final). */
    static const char *const allowed[] = {"Conv",   "Reshape",   "Transpose", "LayerNormalization",
                                          "Shape",  "Concat",    "Expand",    "Add",
                                          "Gemm",   "Gather",    "MatMul",    "Mul",
                                          "Softmax", "Div",      "Erf"};
    int norms = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *node = g->node[i];
        int ok = 0;
        for (size_t a = 0; a < sizeof allowed / sizeof allowed[0]; a++) ok |= !strcmp(node->op_type, allowed[a]);
        ck_assert_msg(ok, "operator %s", node->op_type);
        ck_assert(node->domain == NULL || !*node->domain);
        norms += !strcmp(node->op_type, "LayerNormalization");
    }
    ck_assert_int_eq(norms, 1 + 2 * 2 + 1);
    ck_assert_str_eq(g->node[g->n_node - 1]->output[0], "logits");
    onnx__model_proto__free_unpacked(m, NULL);
}
END_TEST

START_TEST(fixed_batch_opset_external_data) {
    vit_onnx_options *opts = NULL;
    ck_assert_int_eq(vit_onnx_options_create(&opts), VIT_OK);
    ck_assert_int_eq(vit_onnx_options_set_int(opts, VIT_ONNX_BATCH, 7), VIT_OK);
    ck_assert_int_eq(vit_onnx_options_set_int(opts, VIT_ONNX_OPSET, 19), VIT_OK);
    ck_assert_int_eq(vit_onnx_options_set_int(opts, VIT_ONNX_EXTERNAL_DATA, 1), VIT_OK);
    ck_assert_int_eq(vit_model_export_onnx(model, path, opts), VIT_OK);
    vit_onnx_options_destroy(opts);
    Onnx__ModelProto *m = read_back();
    ck_assert_int_eq(m->opset_import[0]->version, 19);
    ck_assert_int_eq(m->ir_version, 9);
    check_dims(m->graph->input[0], "images", 4, (const int64_t[]){7, 3, 16, 16});
    check_dims(m->graph->output[0], "logits", 2, (const int64_t[]){7, 5});
    /* The qkv weight [48, 16] (3 KiB) lies in the data file, named relative to the model's folder. */
    const Onnx__TensorProto *t = initializer(m->graph, "blocks.0.attn.qkv.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert(!t->has_raw_data && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL);
    ck_assert_int_eq(t->n_external_data, 3);
    ck_assert_str_eq(t->external_data[0]->key, "location");
    char location[80], data[80];
    snprintf(location, sizeof location, "%s.data", strrchr(path, '/') + 1);
    ck_assert_str_eq(t->external_data[0]->value, location);
    ck_assert_str_eq(t->external_data[1]->key, "offset");
    ck_assert_str_eq(t->external_data[2]->key, "length");
    long offset = atol(t->external_data[1]->value);
    ck_assert_int_eq(offset % 4096, 0);
    ck_assert_int_eq(atol(t->external_data[2]->value), 48 * 16 * 4);
    float want[48 * 16], got[48 * 16];
    ck_assert_int_eq(vit_model_param_read(model, "blocks.0.attn.qkv.weight", want, sizeof want), VIT_OK);
    snprintf(data, sizeof data, "%s.data", path);
    FILE *f = fopen(data, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, offset, SEEK_SET), 0);
    ck_assert_int_eq(fread(got, 1, sizeof got, f), sizeof got);
    fclose(f);
    ck_assert(!memcmp(got, want, sizeof got));
    /* Small tensors stay inline. */
    t = initializer(m->graph, "blocks.0.norm1.bias");
    ck_assert(t && t->has_raw_data && t->n_external_data == 0);
    onnx__model_proto__free_unpacked(m, NULL);
}
END_TEST

/* The family options together: no class token, pre-norm, no patch bias,
 * layer scale, QuickGELU, the attention pool (which takes no registers), no
 * head; then registers. */
START_TEST(family_options) {
    vit_config *cfg = NULL;
    vit_model *fam = NULL;
    ck_assert_int_eq(vit_model_get_config(model, &cfg), VIT_OK);
    const int64_t ints[][2] = {{VIT_CFG_PATCH_NORM, 0},  {VIT_CFG_CLASS_TOKEN, 0},
                               {VIT_CFG_NO_EMBED_CLASS, 1},
                               {VIT_CFG_PRE_NORM, 1},    {VIT_CFG_PATCH_BIAS, 0},
                               {VIT_CFG_QUICK_GELU, 1},  {VIT_CFG_GLOBAL_POOL, VIT_POOL_MAP},
                               {VIT_CFG_NUM_CLASSES, 0}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        ck_assert_int_eq(vit_config_set_int(cfg, (vit_config_key)ints[i][0], ints[i][1]), VIT_OK);
    ck_assert_int_eq(vit_config_set_float(cfg, VIT_CFG_INIT_VALUES, 1e-5), VIT_OK);
    vit_status s = vit_model_create(ctx, cfg, &fam);
    vit_config_destroy(cfg);
    ck_assert_msg(s == VIT_OK, "%s", vit_last_error());
    ck_assert_int_eq(vit_model_export_onnx(fam, path, NULL), VIT_OK);
    Onnx__ModelProto *m = read_back();
    const Onnx__GraphProto *g = m->graph;
    check_dims(g->output[0], "features", 2, (const int64_t[]){-1, 16});
    ck_assert_ptr_nonnull(initializer(g, "attn_pool.latent"));
    ck_assert_ptr_nonnull(initializer(g, "blocks.1.ls2.gamma"));
    ck_assert_ptr_null(initializer(g, "cls_token"));
    ck_assert_ptr_null(initializer(g, "patch_embed.proj.bias"));
    int sigmoids = 0, erfs = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        sigmoids += !strcmp(g->node[i]->op_type, "Sigmoid");
        erfs += !strcmp(g->node[i]->op_type, "Erf");
    }
    ck_assert_int_eq(sigmoids, 2 + 1); /* each block's MLP and the pool's */
    ck_assert_int_eq(erfs, 0);
    onnx__model_proto__free_unpacked(m, NULL);
    vit_model_destroy(fam);
    fam = NULL;
    /* Register tokens beside the class token, pos_embed over the patches only. */
    ck_assert_int_eq(vit_model_get_config(model, &cfg), VIT_OK);
    ck_assert_int_eq(vit_config_set_int(cfg, VIT_CFG_REG_TOKENS, 4), VIT_OK);
    ck_assert_int_eq(vit_config_set_int(cfg, VIT_CFG_NO_EMBED_CLASS, 1), VIT_OK);
    s = vit_model_create(ctx, cfg, &fam);
    vit_config_destroy(cfg);
    ck_assert_msg(s == VIT_OK, "%s", vit_last_error());
    ck_assert_int_eq(vit_model_export_onnx(fam, path, NULL), VIT_OK);
    m = read_back();
    const Onnx__TensorProto *reg = initializer(m->graph, "reg_token");
    ck_assert(reg && reg->n_dims == 3 && reg->dims[1] == 4);
    ck_assert_ptr_nonnull(initializer(m->graph, "cls_token"));
    onnx__model_proto__free_unpacked(m, NULL);
    vit_model_destroy(fam);
}
END_TEST

START_TEST(bad_arguments) {
    vit_onnx_options *opts = NULL;
    ck_assert_int_eq(vit_onnx_options_create(NULL), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_onnx_options_create(&opts), VIT_OK);
    ck_assert_int_eq(vit_onnx_options_set_int(opts, VIT_ONNX_OPSET, 16), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "VIT_ONNX_OPSET 16"));
    ck_assert_int_eq(vit_onnx_options_set_int(opts, VIT_ONNX_OPSET, 22), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_onnx_options_set_int(opts, VIT_ONNX_BATCH, -1), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "VIT_ONNX_BATCH -1"));
    ck_assert_int_eq(vit_onnx_options_set_int(opts, (vit_onnx_option)99, 1), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_onnx_options_set_int(NULL, VIT_ONNX_BATCH, 1), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_model_export_onnx(NULL, path, opts), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_model_export_onnx(model, NULL, opts), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_model_export_onnx(model, "", opts), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_model_export_onnx(model, "/nonexistent/folder/m.onnx", opts), VIT_ERR_IO);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "/nonexistent/folder/m.onnx"));
    vit_onnx_options_destroy(opts);
    vit_onnx_options_destroy(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("onnx");
    TCase *tc = tcase_create("onnx");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, dynamic_batch_graph);
    tcase_add_test(tc, fixed_batch_opset_external_data);
    tcase_add_test(tc, family_options);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
