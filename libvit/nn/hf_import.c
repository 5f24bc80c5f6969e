/* transformers ViT checkpoints -> timm's layout (nn/hf_import.h).
 *
 * transformers' ViTLayer is timm's Block under other names (layernorm_before
 * = norm1, attention.output.dense = attn.proj, ...) except that query, key
 * and value are three Linears; timm's qkv Linear is their rows stacked, q
 * first, each head's channels contiguous as in transformers. The final
 * "layernorm" is timm's norm, "classifier" its head on the class token. */
#include "nn/hf_import.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/image.h" /* vit_read_file */
#include "io/json.h"

#define CONFIG_MAX_BYTES ((int64_t)64 << 20) /* config.json with 21k ImageNet labels is ~1 MB */
#define MAX_LAYERS 100000
#define HF_EPS 1e-12 /* ViTConfig's layer_norm_eps default */

/* ---------------------------------------------------------- config.json */
/* The keys libvit reads; 0 / -1 / NULL when absent. */
typedef struct hf_config {
    int64_t hidden, layers, heads, intermediate, image, patch, channels;
    double eps; /* 0: absent */
    int qkv_bias;
    char *class_names; /* id2label as a JSON array, index order */
    int64_t labels;
} hf_config;

/* An integer key, or for image_size / patch_size also a [h, w] pair, which
 * must be square. */
static vit_status cfg_int(const char *what, const vit_json *root, const char *key, bool pair, int64_t *out) {
    const vit_json *v = vit_json_get(root, key);
    *out = 0;
    if (!v) return VIT_OK;
    if (pair && v->type == VIT_JSON_ARRAY && v->len == 2 && v->items[0].type == VIT_JSON_INT &&
        v->items[1].type == VIT_JSON_INT) {
        if (v->items[0].integer != v->items[1].integer)
            return vit_fail(VIT_ERR_UNSUPPORTED, "%s: %s [%lld, %lld]: only square images and patches are supported",
                            what, key, (long long)v->items[0].integer, (long long)v->items[1].integer);
        v = &v->items[0];
    }
    if (v->type != VIT_JSON_INT)
        return vit_fail(VIT_ERR_FORMAT, "%s: %s is %s, not an integer%s", what, key, vit_json_type_name(v->type),
                        pair ? " or a pair of them" : "");
    if (v->integer < 1 || v->integer > ((int64_t)1 << 30))
        return vit_fail(VIT_ERR_FORMAT, "%s: %s = %lld is out of range", what, key, (long long)v->integer);
    *out = v->integer;
    return VIT_OK;
}

/* id2label {"0": "tench", ...} -> ["tench", ...]; keys must be 0 .. n-1. */
static vit_status cfg_labels(const char *what, const vit_json *root, hf_config *c) {
    const vit_json *v = vit_json_get(root, "id2label");
    if (!v) return VIT_OK;
    if (v->type != VIT_JSON_OBJECT)
        return vit_fail(VIT_ERR_FORMAT, "%s: id2label is %s, not an object", what, vit_json_type_name(v->type));
    const vit_json **by_id = calloc(v->len ? v->len : 1, sizeof *by_id);
    if (!by_id) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    vit_status s = VIT_OK;
    for (size_t i = 0; s == VIT_OK && i < v->len; i++) {
        const vit_json *e = &v->items[i];
        char *end, canonical[24];
        errno = 0;
        long long id = strtoll(e->key, &end, 10);
        snprintf(canonical, sizeof canonical, "%lld", id); /* not "01", "+1", " 1" */
        if (errno || *end || strlen(canonical) != e->key_len || strcmp(canonical, e->key) != 0 || id < 0 ||
            (size_t)id >= v->len)
            s = vit_fail(VIT_ERR_FORMAT, "%s: id2label key \"%.40s\" is not a class index 0 .. %zu", what, e->key,
                         v->len - 1);
        else if (e->type != VIT_JSON_STRING)
            s = vit_fail(VIT_ERR_FORMAT, "%s: id2label \"%s\" is %s, not a string", what, e->key,
                         vit_json_type_name(e->type));
        else if (by_id[id])
            s = vit_fail(VIT_ERR_FORMAT, "%s: id2label gives class %lld twice", what, id);
        else
            by_id[id] = e;
    }
    vit_json_buf b = {0};
    vit_json_buf_raw(&b, "[", 1);
    for (size_t i = 0; s == VIT_OK && i < v->len; i++) {
        if (i) vit_json_buf_raw(&b, ",", 1);
        vit_json_buf_string(&b, by_id[i]->str);
    }
    vit_json_buf_raw(&b, "]", 1);
    free(by_id);
    if (s == VIT_OK && b.failed) s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    if (s != VIT_OK) {
        vit_json_buf_free(&b);
        return s;
    }
    c->class_names = b.data;
    c->labels = (int64_t)v->len;
    return VIT_OK;
}

static vit_status cfg_parse(const char *what, const char *text, size_t len, hf_config *c) {
    vit_json_doc *doc;
    VIT_TRY(vit_json_parse(text, len, NULL, what, &doc));
    const vit_json *root = doc->root, *v;
    vit_status s = VIT_OK;
    if (root->type != VIT_JSON_OBJECT)
        s = vit_fail(VIT_ERR_FORMAT, "%s: is %s, not a JSON object", what, vit_json_type_name(root->type));
    if (s == VIT_OK && (v = vit_json_get(root, "model_type")) &&
        (v->type != VIT_JSON_STRING || strcmp(v->str, "vit") != 0))
        s = vit_fail(VIT_ERR_UNSUPPORTED, "%s: model_type %s%.40s%s: only \"vit\" (transformers' ViTModel and "
                     "ViTForImageClassification) loads", what, v->type == VIT_JSON_STRING ? "\"" : "",
                     v->type == VIT_JSON_STRING ? v->str : vit_json_type_name(v->type),
                     v->type == VIT_JSON_STRING ? "\"" : "");
    /* libvit's MLP has the exact (erf) GELU, transformers' "gelu" */
    if (s == VIT_OK && (v = vit_json_get(root, "hidden_act")) &&
        (v->type != VIT_JSON_STRING || strcmp(v->str, "gelu") != 0))
        s = vit_fail(VIT_ERR_UNSUPPORTED, "%s: hidden_act %s%.40s%s is not supported: libvit's MLP uses the exact "
                     "(erf) GELU, \"gelu\"", what, v->type == VIT_JSON_STRING ? "\"" : "",
                     v->type == VIT_JSON_STRING ? v->str : vit_json_type_name(v->type),
                     v->type == VIT_JSON_STRING ? "\"" : "");
    if (s == VIT_OK) s = cfg_int(what, root, "hidden_size", false, &c->hidden);
    if (s == VIT_OK) s = cfg_int(what, root, "num_hidden_layers", false, &c->layers);
    if (s == VIT_OK) s = cfg_int(what, root, "num_attention_heads", false, &c->heads);
    if (s == VIT_OK) s = cfg_int(what, root, "intermediate_size", false, &c->intermediate);
    if (s == VIT_OK) s = cfg_int(what, root, "image_size", true, &c->image);
    if (s == VIT_OK) s = cfg_int(what, root, "patch_size", true, &c->patch);
    if (s == VIT_OK) s = cfg_int(what, root, "num_channels", false, &c->channels);
    if (s == VIT_OK && (v = vit_json_get(root, "layer_norm_eps"))) {
        bool num = v->type == VIT_JSON_INT || v->type == VIT_JSON_NUMBER;
        if (!num || !(v->number > 0) || !isfinite(v->number))
            s = vit_fail(VIT_ERR_FORMAT, "%s: layer_norm_eps is not a positive number", what);
        else
            c->eps = v->number;
    }
    if (s == VIT_OK && (v = vit_json_get(root, "qkv_bias"))) {
        if (v->type != VIT_JSON_BOOL)
            s = vit_fail(VIT_ERR_FORMAT, "%s: qkv_bias is %s, not true or false", what, vit_json_type_name(v->type));
        else
            c->qkv_bias = v->boolean;
    }
    if (s == VIT_OK) s = cfg_labels(what, root, c);
    vit_json_free(doc);
    return s;
}

/* preprocessor_config.json's image_mean / image_std as "a,b,c" (one value
 * stands for every channel), unless do_normalize is false. */
static vit_status pre_stat(const char *what, const vit_json *root, const char *key, char *out, size_t cap) {
    const vit_json *v = vit_json_get(root, key);
    *out = '\0';
    if (!v) return VIT_OK;
    size_t n = v->type == VIT_JSON_ARRAY ? v->len : 1;
    if (n < 1 || n > 4)
        return vit_fail(VIT_ERR_FORMAT, "%s: %s has %zu values, not 1 to 4", what, key, n);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const vit_json *x = v->type == VIT_JSON_ARRAY ? &v->items[i] : v;
        if ((x->type != VIT_JSON_INT && x->type != VIT_JSON_NUMBER) || !isfinite(x->number))
            return vit_fail(VIT_ERR_FORMAT, "%s: %s holds %s, not a number", what, key, vit_json_type_name(x->type));
        char num[40];
        vit_format_real(num, sizeof num, x->number);
        at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? "," : "", num);
    }
    return VIT_OK;
}

static vit_status pre_parse(const char *what, const char *text, size_t len, char *mean, char *std, size_t cap) {
    vit_json_doc *doc;
    VIT_TRY(vit_json_parse(text, len, NULL, what, &doc));
    const vit_json *root = doc->root, *norm = vit_json_get(root, "do_normalize");
    vit_status s = VIT_OK;
    *mean = *std = '\0';
    if (root->type != VIT_JSON_OBJECT)
        s = vit_fail(VIT_ERR_FORMAT, "%s: is %s, not a JSON object", what, vit_json_type_name(root->type));
    else if (!norm || norm->type != VIT_JSON_BOOL || norm->boolean) {
        s = pre_stat(what, root, "image_mean", mean, cap);
        if (s == VIT_OK) s = pre_stat(what, root, "image_std", std, cap);
    }
    vit_json_free(doc);
    return s;
}

/* Reads dir-of(model)/name into *text; *text stays NULL when there is no such file. */
static vit_status read_beside(const char *model_path, const char *name, char **path, uint8_t **text, size_t *len) {
    const char *slash = strrchr(model_path, '/');
    int dir = slash ? (int)(slash - model_path) + 1 : 0;
    *text = NULL;
    if (asprintf(path, "%.*s%s", dir, model_path, name) < 0) {
        *path = NULL;
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", model_path);
    }
    struct stat st;
    if (stat(*path, &st) != 0 && errno == ENOENT) return VIT_OK;
    size_t cap = 0;
    vit_status s = vit_read_file(*path, CONFIG_MAX_BYTES, text, &cap, len);
    if (s != VIT_OK) {
        free(*text);
        *text = NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- tensors */
/* Symbolic shapes: D width, H MLP width, K classes, C channels, P patch. */
typedef enum { S_D, S_DD, S_H, S_HD, S_DH, S_K, S_KD, S_PATCH, S_TOKEN, S_POS } shape_kind;

/* One tensor of a layer: transformers' suffix after "encoder.layer.N.", timm's after "blocks.N.". */
static const struct {
    const char *hf, *timm;
    shape_kind shape;
    bool qkv_bias; /* only when the attention has biases */
} layer_tensors[] = {
    {"layernorm_before.weight", "norm1.weight", S_D, false},
    {"layernorm_before.bias", "norm1.bias", S_D, false},
    {"attention.attention.query.weight", "attn.qkv.weight", S_DD, false},
    {"attention.attention.key.weight", NULL, S_DD, false}, /* NULL: fused into the entry before */
    {"attention.attention.value.weight", NULL, S_DD, false},
    {"attention.attention.query.bias", "attn.qkv.bias", S_D, true},
    {"attention.attention.key.bias", NULL, S_D, true},
    {"attention.attention.value.bias", NULL, S_D, true},
    {"attention.output.dense.weight", "attn.proj.weight", S_DD, false},
    {"attention.output.dense.bias", "attn.proj.bias", S_D, false},
    {"layernorm_after.weight", "norm2.weight", S_D, false},
    {"layernorm_after.bias", "norm2.bias", S_D, false},
    {"intermediate.dense.weight", "mlp.fc1.weight", S_HD, false},
    {"intermediate.dense.bias", "mlp.fc1.bias", S_H, false},
    {"output.dense.weight", "mlp.fc2.weight", S_DH, false},
    {"output.dense.bias", "mlp.fc2.bias", S_D, false},
};
#define N_LAYER_TENSORS (sizeof layer_tensors / sizeof layer_tensors[0])

/* The rest; prefixed with "vit." in a ViTForImageClassification except the classifier. */
static const struct {
    const char *hf, *timm;
    shape_kind shape;
    bool prefixed;
} top_tensors[] = {
    {"embeddings.cls_token", "cls_token", S_TOKEN, true},
    {"embeddings.position_embeddings", "pos_embed", S_POS, true},
    {"embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight", S_PATCH, true},
    {"embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias", S_D, true},
    {"layernorm.weight", "norm.weight", S_D, true},
    {"layernorm.bias", "norm.bias", S_D, true},
    {"classifier.weight", "head.weight", S_KD, false},
    {"classifier.bias", "head.bias", S_K, false},
    {"pooler.dense.weight", NULL, S_DD, true}, /* ViTModel's pooler: not part of the classifier, skipped */
    {"pooler.dense.bias", NULL, S_D, true},
};
#define N_TOP_TENSORS (sizeof top_tensors / sizeof top_tensors[0])
#define TOP_CLASSIFIER 6

typedef struct entry {
    char name[48];
    int ndim;
    int64_t shape[4];
    const vit_st_tensor *src[3]; /* q, k, v for qkv; else src[0] */
    int nsrc;
} entry;

typedef struct convert {
    const vit_st_file *f;
    const char *path, *prefix;
    int64_t D, H, K, C, P, T, depth;
    bool qkv_bias, head;
    entry *entries;
    size_t count, cap;
} convert;

static int shape_of(const convert *c, shape_kind k, int64_t *s) {
    switch (k) {
    case S_D: s[0] = c->D; return 1;
    case S_DD: s[0] = c->D, s[1] = c->D; return 2;
    case S_H: s[0] = c->H; return 1;
    case S_HD: s[0] = c->H, s[1] = c->D; return 2;
    case S_DH: s[0] = c->D, s[1] = c->H; return 2;
    case S_K: s[0] = c->K; return 1;
    case S_KD: s[0] = c->K, s[1] = c->D; return 2;
    case S_PATCH: s[0] = c->D, s[1] = c->C, s[2] = c->P, s[3] = c->P; return 4;
    case S_TOKEN: s[0] = 1, s[1] = 1, s[2] = c->D; return 3;
    case S_POS: s[0] = 1, s[1] = c->T, s[2] = c->D; return 3;
    }
    return 0;
}

static const vit_st_tensor *find(const convert *c, bool prefixed, const char *fmt, ...) VIT_PRINTF(3, 4);
static const vit_st_tensor *find(const convert *c, bool prefixed, const char *fmt, ...) {
    char name[160];
    int n = snprintf(name, sizeof name, "%s", prefixed ? c->prefix : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + n, sizeof name - (size_t)n, fmt, ap);
    va_end(ap);
    return vit_st_find(c->f, name);
}

/* Whether name is a tensor of the model c describes (pooler included). */
static bool expected(const convert *c, const char *name) {
    size_t pl = strlen(c->prefix);
    bool prefixed = strncmp(name, c->prefix, pl) == 0;
    for (size_t i = 0; i < N_TOP_TENSORS; i++)
        if (top_tensors[i].prefixed ? prefixed && !strcmp(name + pl, top_tensors[i].hf)
                                    : !strcmp(name, top_tensors[i].hf))
            return i < TOP_CLASSIFIER || i >= TOP_CLASSIFIER + 2 || c->head;
    long long layer;
    int used = 0;
    if (!prefixed || sscanf(name + pl, "encoder.layer.%lld.%n", &layer, &used) != 1 || used == 0 || layer < 0 ||
        layer >= c->depth)
        return false;
    char canonical[48];
    snprintf(canonical, sizeof canonical, "encoder.layer.%lld.", layer);
    if (strncmp(name + pl, canonical, (size_t)used) != 0) return false; /* "01", "+1" */
    for (size_t i = 0; i < N_LAYER_TENSORS; i++)
        if (!strcmp(name + pl + used, layer_tensors[i].hf)) return !layer_tensors[i].qkv_bias || c->qkv_bias;
    return false;
}

/* Checks tensor t (named hf, NULL if absent) has shape k; adds it to the
 * entries, or to the last entry when timm is NULL (k and v of qkv). */
static vit_status take(convert *c, const vit_st_tensor *t, const char *hf, const char *timm, shape_kind k,
                       int layer) {
    int64_t want[4];
    int nd = shape_of(c, k, want);
    char a[96], b[96];
    if (!t)
        return vit_fail(VIT_ERR_NOT_FOUND, "%s: tensor \"%s\" is missing (a transformers ViT of this shape needs "
                        "it: %s)", c->path, hf, vit_shape_str(a, sizeof a, nd, want));
    bool same = t->ndim == nd;
    for (int d = 0; same && d < nd; d++) same = t->shape[d] == want[d];
    if (!same)
        return vit_fail(VIT_ERR_SHAPE, "%s: tensor \"%s\" is %s, expected %s (width %lld from the patch "
                        "projection, MLP width %lld from layer 0)", c->path, t->name,
                        vit_shape_str(a, sizeof a, t->ndim, t->shape), vit_shape_str(b, sizeof b, nd, want),
                        (long long)c->D, (long long)c->H);
    if (t->dtype != VIT_ST_F32 && t->dtype != VIT_ST_F16 && t->dtype != VIT_ST_BF16 && t->dtype != VIT_ST_F64)
        return vit_fail(VIT_ERR_DTYPE, "%s: tensor \"%s\" is %s, not floating point", c->path, t->name,
                        vit_st_dtype_name(t->dtype));
    if (!timm) { /* stacked below the previous entry's rows */
        entry *e = &c->entries[c->count - 1];
        e->src[e->nsrc++] = t;
        e->shape[0] += want[0];
        return VIT_OK;
    }
    if (c->count == c->cap) { /* grown as tensors check out: a bogus layer index costs nothing */
        size_t cap = c->cap ? 2 * c->cap : 64;
        entry *grown = realloc(c->entries, cap * sizeof *grown);
        if (!grown) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", c->path);
        c->entries = grown;
        c->cap = cap;
    }
    entry *e = &c->entries[c->count++];
    memset(e, 0, sizeof *e);
    if (layer >= 0) snprintf(e->name, sizeof e->name, "blocks.%d.%s", layer, timm);
    else snprintf(e->name, sizeof e->name, "%s", timm);
    e->ndim = nd;
    memcpy(e->shape, want, sizeof want);
    e->src[0] = t;
    e->nsrc = 1;
    return VIT_OK;
}

static vit_status fill(void *user, size_t index, void *dst, size_t bytes) {
    const convert *c = user;
    const entry *e = &c->entries[index];
    float *out = dst;
    (void)bytes; /* the shapes were checked: the sources fill it exactly */
    for (int i = 0; i < e->nsrc; i++) {
        VIT_TRY(vit_st_read_f32(c->f, e->src[i], out, (size_t)e->src[i]->numel));
        out += e->src[i]->numel;
    }
    return VIT_OK;
}

/* The model's dimensions from the tensors; the ones config.json states must agree. */
static vit_status dimensions(convert *c, const hf_config *cfg, const char *cfg_path) {
    const char *path = c->path;
    char a[96];
    const vit_st_tensor *pe = find(c, true, "embeddings.patch_embeddings.projection.weight");
    const vit_st_tensor *pos = find(c, true, "embeddings.position_embeddings");
    const vit_st_tensor *fc1 = find(c, true, "encoder.layer.0.intermediate.dense.weight");
    const vit_st_tensor *head = find(c, false, "classifier.weight");
    if (pe->ndim != 4 || pe->shape[2] != pe->shape[3] || pe->shape[0] < 1 || pe->shape[1] < 1 || pe->shape[2] < 1)
        return vit_fail(VIT_ERR_UNSUPPORTED, "%s: tensor \"%s\" is %s, not [width, channels, patch, patch]", path,
                        pe->name, vit_shape_str(a, sizeof a, pe->ndim, pe->shape));
    c->D = pe->shape[0], c->C = pe->shape[1], c->P = pe->shape[2];
    char hf[160];
    if (!pos || !fc1) {
        snprintf(hf, sizeof hf, "%s%s", c->prefix, pos ? "encoder.layer.0.intermediate.dense.weight"
                                                       : "embeddings.position_embeddings");
        return vit_fail(VIT_ERR_NOT_FOUND, "%s: tensor \"%s\" is missing", path, hf);
    }
    if (pos->ndim != 3 || pos->shape[1] < 2)
        return vit_fail(VIT_ERR_SHAPE, "%s: tensor \"%s\" is %s, not [1, 1 + patches, %lld]", path, pos->name,
                        vit_shape_str(a, sizeof a, pos->ndim, pos->shape), (long long)c->D);
    c->T = pos->shape[1];
    c->H = fc1->ndim == 2 ? fc1->shape[0] : 0;
    c->head = head != NULL;
    c->K = head && head->ndim == 2 ? head->shape[0] : 0;
    size_t pl = strlen(c->prefix);
    const char *last = NULL; /* a tensor of the last layer */
    for (size_t i = 0; i < vit_st_count(c->f); i++) {
        const char *name = vit_st_at(c->f, i)->name;
        long long layer;
        int used = 0;
        if (!strncmp(name, c->prefix, pl) && sscanf(name + pl, "encoder.layer.%lld.%n", &layer, &used) == 1 &&
            used > 0 && layer >= 0 && layer < MAX_LAYERS && layer + 1 > c->depth) {
            c->depth = layer + 1;
            last = name;
        }
    }
    c->qkv_bias = find(c, true, "encoder.layer.0.attention.attention.query.bias") != NULL;

    /* config.json against the tensors */
    const struct {
        const char *key;
        int64_t said, have;
        const char *from;
    } agree[] = {
        {"hidden_size", cfg->hidden, c->D, pe->name},
        {"num_channels", cfg->channels, c->C, pe->name},
        {"patch_size", cfg->patch, c->P, pe->name},
        {"intermediate_size", cfg->intermediate, c->H, fc1->name},
        {"num_hidden_layers", cfg->layers, c->depth, last},
    };
    for (size_t i = 0; i < sizeof agree / sizeof agree[0]; i++)
        if (agree[i].said && agree[i].said != agree[i].have)
            return vit_fail(VIT_ERR_SHAPE, "%s: %s is %lld, but the tensors say %lld (%s in %s)", cfg_path,
                            agree[i].key, (long long)agree[i].said, (long long)agree[i].have, agree[i].from, path);
    if (cfg->image) {
        int64_t g = cfg->image / c->P;
        if (g * g + 1 != c->T)
            return vit_fail(VIT_ERR_SHAPE, "%s: image_size %lld in patches of %lld is %lld x %lld patches, but "
                            "\"%s\" in %s is %s", cfg_path, (long long)cfg->image, (long long)c->P, (long long)g,
                            (long long)g, pos->name, path, vit_shape_str(a, sizeof a, pos->ndim, pos->shape));
    }
    if (cfg->qkv_bias >= 0 && cfg->qkv_bias != c->qkv_bias)
        return vit_fail(VIT_ERR_SHAPE, "%s: qkv_bias is %s, but %s has %s", cfg_path, cfg->qkv_bias ? "true" : "false",
                        path, c->qkv_bias ? "query.bias tensors" : "no query.bias tensor");
    if (cfg->heads && c->D % cfg->heads != 0)
        return vit_fail(VIT_ERR_SHAPE, "%s: num_attention_heads %lld does not divide the width %lld", cfg_path,
                        (long long)cfg->heads, (long long)c->D);
    if (cfg->class_names && c->head && cfg->labels != c->K)
        return vit_fail(VIT_ERR_SHAPE, "%s: id2label names %lld classes, but \"%s\" in %s is %s", cfg_path,
                        (long long)cfg->labels, head->name, path, vit_shape_str(a, sizeof a, head->ndim, head->shape));
    return VIT_OK;
}

/* Every tensor of the file is one of the model's, and every one of the
 * model's is there with its shape: the entries, in timm's order. */
static vit_status collect(convert *c) {
    for (size_t i = 0; i < vit_st_count(c->f); i++) {
        const vit_st_tensor *t = vit_st_at(c->f, i);
        char a[96];
        if (!expected(c, t->name))
            return vit_fail(VIT_ERR_FORMAT, "%s: tensor \"%s\" %s is not part of a transformers ViT%s (%lld layers, "
                            "%s query/key/value bias)", c->path, t->name, vit_shape_str(a, sizeof a, t->ndim, t->shape),
                            *c->prefix ? "ForImageClassification" : "Model or ViTForImageClassification",
                            (long long)c->depth, c->qkv_bias ? "with" : "without");
    }
    char hf[160];
    for (size_t i = 0; i < 4; i++) { /* embeddings */
        snprintf(hf, sizeof hf, "%s%s", c->prefix, top_tensors[i].hf);
        VIT_TRY(take(c, vit_st_find(c->f, hf), hf, top_tensors[i].timm, top_tensors[i].shape, -1));
    }
    for (int64_t l = 0; l < c->depth; l++)
        for (size_t i = 0; i < N_LAYER_TENSORS; i++) {
            if (layer_tensors[i].qkv_bias && !c->qkv_bias) continue;
            snprintf(hf, sizeof hf, "%sencoder.layer.%lld.%s", c->prefix, (long long)l, layer_tensors[i].hf);
            VIT_TRY(take(c, vit_st_find(c->f, hf), hf, layer_tensors[i].timm, layer_tensors[i].shape, (int)l));
        }
    for (size_t i = 4; i < N_TOP_TENSORS; i++) {
        snprintf(hf, sizeof hf, "%s%s", top_tensors[i].prefixed ? c->prefix : "", top_tensors[i].hf);
        const vit_st_tensor *t = vit_st_find(c->f, hf);
        if (!top_tensors[i].timm) { /* the pooler */
            if (t) vit_log(NULL, VIT_LOG_INFO, "%s: skipping \"%s\" (ViTModel's pooler; the head reads the class "
                           "token after the final norm)", c->path, hf);
            continue;
        }
        if (i >= TOP_CLASSIFIER && !c->head) continue;
        VIT_TRY(take(c, t, hf, top_tensors[i].timm, top_tensors[i].shape, -1));
    }
    return VIT_OK;
}

bool vit_hf_detect(const vit_st_file *f) {
    return vit_st_find(f, "vit.embeddings.patch_embeddings.projection.weight") ||
           vit_st_find(f, "embeddings.patch_embeddings.projection.weight");
}

/* Metadata of the converted file: ours first, then the file's own keys we do not set. */
static void meta_push(vit_st_meta *m, size_t *n, const char *key, const char *value) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(m[i].key, key)) return;
    m[(*n)++] = (vit_st_meta){key, value};
}

vit_status vit_hf_convert(const vit_st_file *f, bool need_head, vit_st_file **out) {
    *out = NULL;
    convert c = {.f = f, .path = vit_st_path(f)};
    c.prefix = vit_st_find(f, "vit.embeddings.patch_embeddings.projection.weight") ? "vit." : "";
    hf_config cfg = {.qkv_bias = -1};
    char *cfg_path = NULL, *pre_path = NULL;
    uint8_t *text = NULL;
    size_t len = 0;
    char mean[128] = "", std[128] = "", eps[40], heads[24];
    vit_st_meta *meta = NULL;

    vit_status s = read_beside(c.path, "config.json", &cfg_path, &text, &len);
    if (s == VIT_OK && text) s = cfg_parse(cfg_path, (const char *)text, len, &cfg);
    free(text);
    text = NULL;
    if (s == VIT_OK) s = read_beside(c.path, "preprocessor_config.json", &pre_path, &text, &len);
    if (s == VIT_OK && text) s = pre_parse(pre_path, (const char *)text, len, mean, std, sizeof mean);
    free(text);
    if (s == VIT_OK) s = dimensions(&c, &cfg, cfg_path);
    if (s == VIT_OK && need_head && !c.head)
        s = vit_fail(VIT_ERR_NOT_FOUND, "%s: no \"classifier.weight\": a transformers ViTModel (a backbone without a "
                     "classification head) does not make a model on its own; create one with the number of classes "
                     "you need and load this file into it with vit_model_load_weights(model, path, "
                     "VIT_LOAD_ALLOW_HEAD_MISMATCH) (vit-train --pretrained)", c.path);
    if (s == VIT_OK) s = collect(&c);

    size_t nm = 0, file_meta = vit_st_metadata_count(f);
    if (s == VIT_OK && !(meta = calloc(file_meta + 5, sizeof *meta)))
        s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", c.path);
    if (s == VIT_OK) {
        vit_format_real(eps, sizeof eps, cfg.eps > 0 ? cfg.eps : HF_EPS);
        meta_push(meta, &nm, "vit.ln_eps", eps);
        if (cfg.heads) {
            snprintf(heads, sizeof heads, "%lld", (long long)cfg.heads);
            meta_push(meta, &nm, "vit.heads", heads);
        }
        if (cfg.class_names && c.head) meta_push(meta, &nm, "class_names", cfg.class_names);
        if (*mean) meta_push(meta, &nm, "mean", mean);
        if (*std) meta_push(meta, &nm, "std", std);
        for (size_t i = 0; i < file_meta; i++) {
            const char *k, *v;
            vit_st_metadata_at(f, i, &k, &v);
            meta_push(meta, &nm, k, v);
        }
        vit_st_entry *e = calloc(c.count ? c.count : 1, sizeof *e);
        for (size_t i = 0; e && i < c.count; i++) {
            e[i].name = c.entries[i].name;
            e[i].dtype = VIT_ST_F32;
            e[i].ndim = c.entries[i].ndim;
            memcpy(e[i].shape, c.entries[i].shape, sizeof c.entries[i].shape);
        }
        /* later messages name timm's tensors: say so with the file's name */
        char *name = NULL;
        if (e && asprintf(&name, "%s (in timm's names)", c.path) < 0) name = NULL;
        if (!e || !name) s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", c.path);
        else s = vit_st_build(name, e, c.count, meta, nm, fill, &c, out);
        free(name);
        free(e);
        if (s == VIT_OK)
            vit_log(NULL, VIT_LOG_INFO, "%s: transformers ViT%s of %lld layers, converted to timm's layout", c.path,
                    c.head ? "ForImageClassification" : "Model", (long long)c.depth);
    }
    free(meta);
    free(c.entries);
    free(cfg.class_names);
    free(cfg_path);
    free(pre_path);
    return s;
}
