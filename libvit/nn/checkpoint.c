/* Model and optimizer checkpoints as safetensors files (vit/checkpoint.h).
 *
 * Everything here goes through the public model/optimizer API (parameters by
 * name), so the file layout does not depend on how the model stores them.
 * Loads check the whole file against the model before writing anything. */
#include "vit/checkpoint.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "nn/hf_import.h"
#include "nn/nn.h"

#define KEY_VERSION "libvit.version"
#define KEY_KIND "libvit.kind"
#define KEY_FORMAT "format" /* safetensors.torch writes "pt"; other tools look for it */

/* Configuration keys in metadata: every vit_config key as a decimal string. */
typedef enum { CFG_INT, CFG_REAL, CFG_POOL } cfg_kind;
static const struct {
    const char *name;
    vit_config_key key;
    cfg_kind kind;
} cfg_keys[] = {
    {"vit.img_size", VIT_CFG_IMG_SIZE, CFG_INT},
    {"vit.patch_size", VIT_CFG_PATCH_SIZE, CFG_INT},
    {"vit.in_channels", VIT_CFG_IN_CHANNELS, CFG_INT},
    {"vit.num_classes", VIT_CFG_NUM_CLASSES, CFG_INT},
    {"vit.dim", VIT_CFG_DIM, CFG_INT},
    {"vit.depth", VIT_CFG_DEPTH, CFG_INT},
    {"vit.heads", VIT_CFG_HEADS, CFG_INT},
    {"vit.qkv_bias", VIT_CFG_QKV_BIAS, CFG_INT},
    {"vit.patch_norm", VIT_CFG_PATCH_NORM, CFG_INT},
    {"vit.global_pool", VIT_CFG_GLOBAL_POOL, CFG_POOL},
    {"vit.mlp_ratio", VIT_CFG_MLP_RATIO, CFG_REAL},
    {"vit.drop_rate", VIT_CFG_DROP_RATE, CFG_REAL},
    {"vit.attn_drop_rate", VIT_CFG_ATTN_DROP_RATE, CFG_REAL},
    {"vit.drop_path_rate", VIT_CFG_DROP_PATH_RATE, CFG_REAL},
    {"vit.ln_eps", VIT_CFG_LN_EPS, CFG_REAL},
    {"vit.class_token", VIT_CFG_CLASS_TOKEN, CFG_INT},
    {"vit.reg_tokens", VIT_CFG_REG_TOKENS, CFG_INT},
    {"vit.no_embed_class", VIT_CFG_NO_EMBED_CLASS, CFG_INT},
    {"vit.pre_norm", VIT_CFG_PRE_NORM, CFG_INT},
    {"vit.patch_bias", VIT_CFG_PATCH_BIAS, CFG_INT},
    {"vit.quick_gelu", VIT_CFG_QUICK_GELU, CFG_INT},
    {"vit.fc_norm", VIT_CFG_FC_NORM, CFG_INT},
    {"vit.init_values", VIT_CFG_INIT_VALUES, CFG_REAL},
};
#define N_CFG_KEYS (sizeof cfg_keys / sizeof cfg_keys[0])

/* Optimizer hyperparameters in metadata ("optim.step" is separate: an int). */
static const struct {
    const char *name;
    vit_optim_param param;
    bool is_int;
} opt_keys[] = {
    {"optim.step", VIT_OPT_STEP, true},
    {"optim.lr", VIT_OPT_LR, false},
    {"optim.beta1", VIT_OPT_BETA1, false},
    {"optim.beta2", VIT_OPT_BETA2, false},
    {"optim.eps", VIT_OPT_EPS, false},
    {"optim.weight_decay", VIT_OPT_WEIGHT_DECAY, false},
    {"optim.clip_grad_norm", VIT_OPT_CLIP_GRAD_NORM, false},
    {"optim.decay_exempt", VIT_OPT_DECAY_EXEMPT, true},
};
#define N_OPT_KEYS (sizeof opt_keys / sizeof opt_keys[0])

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* Keys libvit writes itself; a caller's metadata may not use them. */
static bool reserved_key(const char *key) {
    return strcmp(key, KEY_FORMAT) == 0 || starts_with(key, "libvit.") || starts_with(key, "vit.");
}

/* Whole-string number parsing: metadata is text and "12abc" must not pass. */
static bool parse_int(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

static bool parse_real(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = vit_strtod_c(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}


static bool is_float_dtype(vit_st_dtype d) {
    return d == VIT_ST_F32 || d == VIT_ST_F16 || d == VIT_ST_BF16 || d == VIT_ST_F64;
}

/* A string table that owns its strings, for metadata and tensor names. */
typedef struct strings {
    char **items;
    size_t count, cap;
    bool failed;
} strings;

static const char *strings_add(strings *s, const char *fmt, ...) VIT_PRINTF(2, 3);
static const char *strings_add(strings *s, const char *fmt, ...) {
    if (s->failed) return "";
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **items = realloc(s->items, cap * sizeof *items);
        if (!items) { s->failed = true; return ""; }
        s->items = items;
        s->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *str = NULL;
    int n = vasprintf(&str, fmt, ap);
    va_end(ap);
    if (n < 0) { s->failed = true; return ""; }
    s->items[s->count++] = str;
    return str;
}

static void strings_free(strings *s) {
    for (size_t i = 0; i < s->count; i++) free(s->items[i]);
    free(s->items);
}

/* Metadata under construction: pairs point into a strings table. */
typedef struct meta_list {
    vit_st_meta *items;
    size_t count, cap;
    strings *store;
    bool failed;
} meta_list;

static void meta_add(meta_list *m, const char *key, const char *value) {
    if (m->failed) return;
    if (m->count == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        vit_st_meta *items = realloc(m->items, cap * sizeof *items);
        if (!items) { m->failed = true; return; }
        m->items = items;
        m->cap = cap;
    }
    m->items[m->count].key = strings_add(m->store, "%s", key);
    m->items[m->count].value = strings_add(m->store, "%s", value);
    m->count++;
}

static void meta_common(meta_list *m, const char *kind) {
    meta_add(m, KEY_FORMAT, "pt");
    meta_add(m, KEY_VERSION, vit_version_string());
    meta_add(m, KEY_KIND, kind);
}

static vit_status open_checked(const char *path, const char *kind, vit_st_file **out) {
    VIT_TRY(vit_st_open(path, out));
    const char *k = vit_st_metadata(*out, KEY_KIND);
    /* Files without a kind (timm's) count as models. */
    vit_status s = VIT_OK;
    if (k && strcmp(k, kind) != 0)
        s = vit_fail(VIT_ERR_FORMAT, "%s: is a libvit %.40s checkpoint, not a %s checkpoint", path, k, kind);
    else if (!k && strcmp(kind, "model") != 0)
        s = vit_fail(VIT_ERR_FORMAT, "%s: is not a libvit %s checkpoint (no %s metadata)", path, kind, KEY_KIND);
    if (s != VIT_OK) { /* k points into the file: close only after formatting */
        vit_st_close(*out);
        *out = NULL;
    }
    return s;
}

/* A model file. One in Hugging Face transformers' layout comes back converted
 * to timm's (nn/hf_import.c); need_head: refuse one without a classifier. */
static vit_status open_model(const char *path, bool need_head, vit_st_file **out) {
    VIT_TRY(open_checked(path, "model", out));
    if (!vit_hf_detect(*out)) return VIT_OK;
    vit_st_file *timm;
    vit_status s = vit_hf_convert(*out, need_head, &timm);
    vit_st_close(*out);
    *out = s == VIT_OK ? timm : NULL;
    return s;
}

/* ====================================================================== save */
typedef struct param_list {
    int count;
    const char **names;
    int *ndim;
    int64_t (*shape)[VIT_MAX_DIMS];
} param_list;

static void params_free(param_list *p) {
    free(p->names);
    free(p->ndim);
    free(p->shape);
}

static vit_status params_get(const vit_model *model, param_list *p) {
    memset(p, 0, sizeof *p);
    VIT_TRY(vit_model_param_count(model, &p->count));
    size_t n = p->count > 0 ? (size_t)p->count : 1;
    p->names = calloc(n, sizeof *p->names);
    p->ndim = calloc(n, sizeof *p->ndim);
    p->shape = calloc(n, sizeof *p->shape);
    if (!p->names || !p->ndim || !p->shape) {
        params_free(p);
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "out of memory listing parameters");
    }
    for (int i = 0; i < p->count; i++) {
        vit_status s = vit_model_param_info(model, i, &p->names[i], &p->ndim[i], p->shape[i]);
        if (s != VIT_OK) {
            params_free(p);
            return s;
        }
    }
    return VIT_OK;
}

static int params_find(const param_list *p, const char *name) {
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->names[i], name) == 0) return i;
    return -1;
}

static vit_status fill_param(void *user, size_t index, void *dst, size_t bytes) {
    const vit_model *model = user;
    const char *name;
    int ndim;
    int64_t shape[VIT_MAX_DIMS];
    VIT_TRY(vit_model_param_info(model, (int)index, &name, &ndim, shape));
    vit_status s = vit_model_param_read(model, name, dst, bytes);
    if (s != VIT_OK) vit_error_prefix("parameter \"%s\"", name);
    return s;
}

static vit_status config_meta(const vit_model *model, meta_list *m) {
    vit_config *cfg;
    VIT_TRY(vit_model_get_config(model, &cfg));
    for (size_t i = 0; i < N_CFG_KEYS; i++) {
        char buf[64];
        vit_status s;
        if (cfg_keys[i].kind == CFG_REAL) {
            double v;
            s = vit_config_get_float(cfg, cfg_keys[i].key, &v);
            vit_format_real(buf, sizeof buf, v);
        } else {
            int64_t v;
            s = vit_config_get_int(cfg, cfg_keys[i].key, &v);
            if (cfg_keys[i].kind == CFG_POOL)
                snprintf(buf, sizeof buf, "%s", v == VIT_POOL_AVG ? "avg" : v == VIT_POOL_MAP ? "map" : "token");
            else snprintf(buf, sizeof buf, "%lld", (long long)v);
        }
        if (s != VIT_OK) {
            vit_config_destroy(cfg);
            return s;
        }
        meta_add(m, cfg_keys[i].name, buf);
    }
    vit_config_destroy(cfg);
    return VIT_OK;
}

vit_status vit_model_save(const vit_model *model, const char *path) {
    VIT_CHECK_ARG(model, "vit_model_save: model is NULL");
    VIT_CHECK_ARG(path && *path, "vit_model_save: path is NULL or empty");
    param_list p;
    VIT_TRY(params_get(model, &p));
    strings store = {0};
    meta_list m = {.store = &store};
    vit_st_entry *e = calloc(p.count > 0 ? (size_t)p.count : 1, sizeof *e);
    vit_status s = e ? VIT_OK : vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);

    for (int i = 0; s == VIT_OK && i < p.count; i++) {
        e[i].name = p.names[i];
        e[i].dtype = VIT_ST_F32;
        e[i].ndim = p.ndim[i];
        memcpy(e[i].shape, p.shape[i], sizeof p.shape[i]);
    }
    if (s == VIT_OK) {
        meta_common(&m, "model");
        s = config_meta(model, &m);
    }
    for (int i = 0; s == VIT_OK; i++) {
        const char *key, *value;
        s = vit_model_metadata_key(model, i, &key);
        if (s != VIT_OK || !key) break;
        if (reserved_key(key)) {
            s = vit_fail(VIT_ERR_INVALID_ARGUMENT, "%s: model metadata key \"%s\" is reserved for libvit", path, key);
            break;
        }
        s = vit_model_get_metadata(model, key, &value);
        if (s == VIT_OK && value) meta_add(&m, key, value);
    }
    if (s == VIT_OK && (m.failed || store.failed)) s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    if (s == VIT_OK) s = vit_st_write(path, e, (size_t)p.count, m.items, m.count, fill_param, (void *)model);

    free(m.items);
    strings_free(&store);
    free(e);
    params_free(&p);
    return s;
}

/* ====================================================================== load */
/* What to do with each model parameter. */
typedef enum { PLAN_COPY, PLAN_RESAMPLE, PLAN_KEEP } plan_kind;

static bool is_head(const char *name) { return starts_with(name, "head."); }

/* tokens = prefix + g * g for a whole g > 0 (prefix: the pos_embed rows of
 * the class and register tokens, vit_config_pos_prefix). */
static bool square_grid(int64_t tokens, int64_t prefix, int64_t *g) {
    /* past 2^40 tokens r * r could overflow; no model has a grid that large */
    if (tokens - prefix < 1 || tokens - prefix > ((int64_t)1 << 40)) return false;
    int64_t r = (int64_t)llround(sqrt((double)(tokens - prefix)));
    *g = r;
    return r > 0 && r * r == tokens - prefix;
}

/* Checks every tensor of f against the model and decides, per parameter, to
 * copy, resample (pos_embed on another grid) or keep (head, when allowed). */
static vit_status plan_load(const vit_st_file *f, const param_list *p, int64_t pos_prefix, int flags,
                            plan_kind *plan, const vit_st_tensor **src, size_t *max_floats) {
    const char *path = vit_st_path(f);
    bool head_mismatch = false;
    char a[96], b[96];
    *max_floats = 0;
    for (int i = 0; i < p->count; i++) {
        const vit_st_tensor *t = vit_st_find(f, p->names[i]);
        int64_t numel = 1;
        for (int d = 0; d < p->ndim[i]; d++) numel *= p->shape[i][d];
        if ((size_t)numel > *max_floats) *max_floats = (size_t)numel;
        src[i] = t;
        plan[i] = PLAN_COPY;
        if (!t) {
            if (is_head(p->names[i]) && (flags & VIT_LOAD_ALLOW_HEAD_MISMATCH)) {
                head_mismatch = true;
                continue;
            }
            return vit_fail(VIT_ERR_NOT_FOUND, "%s: tensor \"%s\" is missing (the model needs %s)", path,
                            p->names[i], vit_shape_str(a, sizeof a, p->ndim[i], p->shape[i]));
        }
        if (!is_float_dtype(t->dtype))
            return vit_fail(VIT_ERR_DTYPE, "%s: tensor \"%s\" is %s, not floating point", path, t->name,
                            vit_st_dtype_name(t->dtype));
        if (t->numel > (uint64_t)(SIZE_MAX / sizeof(float)))
            return vit_fail(VIT_ERR_SHAPE, "%s: tensor \"%s\" is too large", path, t->name);
        if ((size_t)t->numel > *max_floats) *max_floats = (size_t)t->numel;
        bool same = t->ndim == p->ndim[i];
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == p->shape[i][d];
        if (same) continue;

        int64_t g_in, g_out;
        if (strcmp(t->name, "pos_embed") == 0 && t->ndim == 3 && p->ndim[i] == 3 && t->shape[0] == 1 &&
            t->shape[2] == p->shape[i][2] && square_grid(t->shape[1], pos_prefix, &g_in) &&
            square_grid(p->shape[i][1], pos_prefix, &g_out) &&
            g_in <= 4096) {
            plan[i] = PLAN_RESAMPLE;
            continue;
        }
        if (is_head(t->name) && (flags & VIT_LOAD_ALLOW_HEAD_MISMATCH)) {
            head_mismatch = true;
            continue;
        }
        return vit_fail(VIT_ERR_SHAPE, "%s: tensor \"%s\" is %s in the file but %s in the model%s", path, t->name,
                        vit_shape_str(a, sizeof a, t->ndim, t->shape), vit_shape_str(b, sizeof b, p->ndim[i], p->shape[i]),
                        is_head(t->name) ? " (VIT_LOAD_ALLOW_HEAD_MISMATCH keeps the model's head)" : "");
    }
    /* A head is kept or loaded as a whole: half of an old head is no use. */
    if (head_mismatch)
        for (int i = 0; i < p->count; i++)
            if (is_head(p->names[i])) plan[i] = PLAN_KEEP;

    if (!(flags & VIT_LOAD_IGNORE_EXTRA))
        for (size_t k = 0; k < vit_st_count(f); k++) {
            const vit_st_tensor *t = vit_st_at(f, k);
            if (params_find(p, t->name) < 0)
                return vit_fail(VIT_ERR_FORMAT, "%s: tensor \"%s\" %s is not a parameter of the model", path, t->name,
                                vit_shape_str(a, sizeof a, t->ndim, t->shape));
        }
    return VIT_OK;
}

/* pos_embed [1, P + gi*gi, D] -> [1, P + go*go, D] (host buffers): the P
 * rows of the class and register tokens as they are, the grid rows
 * bicubically on the model's backend, as timm's resample_abs_pos_embed with
 * num_prefix_tokens = P. */
static vit_status resample_pos_embed(const vit_model *model, float *out, const float *in, int64_t tokens_in,
                                     int64_t tokens_out, int64_t D) {
    vit_backend *be = model->be;
    const int64_t P = vit_config_pos_prefix(&model->cfg);
    int64_t gi = 0, go = 0;
    square_grid(tokens_in, P, &gi);
    square_grid(tokens_out, P, &go);
    const size_t in_bytes = (size_t)(gi * gi * D) * sizeof(float), out_bytes = (size_t)(go * go * D) * sizeof(float);
    float *dev_in = be->ops->alloc(be, in_bytes), *dev_out = be->ops->alloc(be, out_bytes);
    vit_status s = dev_in && dev_out ? VIT_OK : vit_last_status();
    if (s == VIT_OK) s = be->ops->copy(be, dev_in, in + P * D, in_bytes, VIT_COPY_TO_DEVICE);
    if (s == VIT_OK) s = be->ops->resample_bicubic(be, dev_out, (int)go, (int)go, dev_in, (int)gi, (int)gi, (int)D);
    if (s == VIT_OK) s = be->ops->copy(be, out + P * D, dev_out, out_bytes, VIT_COPY_TO_HOST);
    memcpy(out, in, (size_t)(P * D) * sizeof(float));
    be->ops->free(be, dev_in);
    be->ops->free(be, dev_out);
    return s;
}

static vit_status load_into(vit_model *model, const vit_st_file *f, int flags) {
    param_list p;
    VIT_TRY(params_get(model, &p));
    size_t n = p.count > 0 ? (size_t)p.count : 1, max_floats = 0;
    plan_kind *plan = calloc(n, sizeof *plan);
    const vit_st_tensor **src = calloc(n, sizeof *src);
    float *buf = NULL, *tmp = NULL;
    vit_status s = plan && src ? VIT_OK : vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", vit_st_path(f));
    if (s == VIT_OK) s = plan_load(f, &p, vit_config_pos_prefix(&model->cfg), flags, plan, src, &max_floats);
    if (s == VIT_OK) {
        buf = malloc(max_floats ? max_floats * sizeof(float) : 1);
        tmp = malloc(max_floats ? max_floats * sizeof(float) : 1);
        if (!buf || !tmp) s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", vit_st_path(f));
    }
    for (int i = 0; s == VIT_OK && i < p.count; i++) {
        if (plan[i] == PLAN_KEEP) {
            vit_log(NULL, VIT_LOG_INFO, "%s: keeping the model's %s", vit_st_path(f), p.names[i]);
            continue;
        }
        const vit_st_tensor *t = src[i];
        s = vit_st_read_f32(f, t, buf, (size_t)t->numel);
        float *data = buf;
        size_t count = (size_t)t->numel;
        if (s == VIT_OK && plan[i] == PLAN_RESAMPLE) {
            vit_log(NULL, VIT_LOG_INFO, "%s: resampling pos_embed from %lld to %lld tokens", vit_st_path(f),
                    (long long)t->shape[1], (long long)p.shape[i][1]);
            s = resample_pos_embed(model, tmp, buf, t->shape[1], p.shape[i][1], p.shape[i][2]);
            data = tmp;
            count = (size_t)(p.shape[i][1] * p.shape[i][2]);
        }
        if (s == VIT_OK) s = vit_model_param_write(model, p.names[i], data, count * sizeof(float));
        if (s != VIT_OK) vit_error_prefix("%s: tensor \"%s\"", vit_st_path(f), p.names[i]);
    }
    free(buf);
    free(tmp);
    free(plan);
    free(src);
    params_free(&p);
    return s;
}

vit_status vit_model_load_weights(vit_model *model, const char *path, int flags) {
    VIT_CHECK_ARG(model, "vit_model_load_weights: model is NULL");
    VIT_CHECK_ARG(path, "vit_model_load_weights: path is NULL");
    VIT_CHECK_ARG(!(flags & ~(VIT_LOAD_ALLOW_HEAD_MISMATCH | VIT_LOAD_IGNORE_EXTRA)),
                  "vit_model_load_weights: unknown flags 0x%x", (unsigned)flags);
    vit_st_file *f;
    VIT_TRY(open_model(path, false, &f));
    vit_status s = load_into(model, f, flags);
    vit_st_close(f);
    return s;
}

/* -------------------------------------------------- configuration inference */
static const vit_st_tensor *need(const vit_st_file *f, const char *name, int ndim, vit_status *s) {
    const vit_st_tensor *t = vit_st_find(f, name);
    if (*s != VIT_OK) return t;
    if (!t)
        *s = vit_fail(VIT_ERR_FORMAT, "%s: no tensor \"%s\": cannot infer the model configuration (not a timm ViT?)",
                      vit_st_path(f), name);
    else if (t->ndim != ndim)
        *s = vit_fail(VIT_ERR_SHAPE, "%s: tensor \"%s\" has %d dimensions, a timm ViT has %d", vit_st_path(f), name,
                      t->ndim, ndim);
    return t;
}

/* timm's heads for a known width (ViT-H has 16 heads of 80), else heads of
 * 64 channels as in every other timm ViT, else one head. */
static int64_t infer_heads(int64_t dim) {
    for (int i = 0; vit_preset_name(i); i++) {
        vit_config *c;
        if (vit_config_create(&c) != VIT_OK) break;
        int64_t d = 0, h = 0;
        bool ok = vit_config_set_preset(c, vit_preset_name(i)) == VIT_OK &&
                  vit_config_get_int(c, VIT_CFG_DIM, &d) == VIT_OK && vit_config_get_int(c, VIT_CFG_HEADS, &h) == VIT_OK;
        vit_config_destroy(c);
        if (ok && d == dim) return h;
    }
    for (int64_t h = dim / 64; h > 1; h--)
        if (dim % h == 0) return h;
    return 1;
}

/* Shapes -> configuration, for a timm state_dict saved as safetensors. */
static vit_status infer_config(const vit_st_file *f, vit_config *cfg) {
    vit_status s = VIT_OK;
    const char *path = vit_st_path(f);
    const vit_st_tensor *pe = need(f, "patch_embed.proj.weight", 4, &s);
    const vit_st_tensor *pos = need(f, "pos_embed", 3, &s);
    const vit_st_tensor *fc1 = need(f, "blocks.0.mlp.fc1.weight", 2, &s);
    /* Optional in timm's family: no class token (_gap, SigLIP), no head
     * (num_classes=0, DINOv2), registers (_reg4). */
    const vit_st_tensor *cls = vit_st_find(f, "cls_token"), *reg = vit_st_find(f, "reg_token");
    const vit_st_tensor *head = vit_st_find(f, "head.weight");
    if (s == VIT_OK && head && head->ndim != 2) need(f, "head.weight", 2, &s);
    if (s == VIT_OK && cls && cls->ndim != 3) need(f, "cls_token", 3, &s);
    if (s == VIT_OK && reg && reg->ndim != 3) need(f, "reg_token", 3, &s);
    if (s != VIT_OK) return s;
    int64_t D = pe->shape[0], C = pe->shape[1], P = pe->shape[2], g;
    char a[96];
    /* The shapes are the file's word: bound them by the configuration's own
     * limits before any arithmetic (a 0 or 2^62 here would divide by zero or
     * overflow below). */
    if (D < 1 || D > 65536 || C < 1 || C > 65536 || P < 1 || P > 65536)
        return vit_fail(VIT_ERR_UNSUPPORTED, "%s: patch_embed.proj.weight %s: width, channels and patch size must be "
                        "1 .. 65536", path, vit_shape_str(a, sizeof a, pe->ndim, pe->shape));
    if (pe->shape[3] != P)
        return vit_fail(VIT_ERR_UNSUPPORTED, "%s: patch_embed.proj.weight: non-square %lldx%lld patches", path,
                        (long long)P, (long long)pe->shape[3]);
    if (fc1->shape[0] < 1 || fc1->shape[0] > 64 * D)
        return vit_fail(VIT_ERR_UNSUPPORTED, "%s: blocks.0.mlp.fc1.weight %s: hidden width must be 1 .. 64 x %lld",
                        path, vit_shape_str(a, sizeof a, fc1->ndim, fc1->shape), (long long)D);
    int64_t R = reg ? reg->shape[1] : 0, prefix = (cls != NULL) + R;
    if (reg && (R < 1 || R > 64 || reg->shape[2] != D))
        return vit_fail(VIT_ERR_UNSUPPORTED, "%s: reg_token %s is not [1, 1..64, %lld]", path,
                        vit_shape_str(a, sizeof a, reg->ndim, reg->shape), (long long)D);
    /* pos_embed has rows for the class and register tokens (timm's default)
     * or for the patches only (no_embed_class: DeiT-III, DINOv2 _reg). */
    bool no_embed_class = false;
    if (pos->shape[2] != D || !square_grid(pos->shape[1], prefix, &g)) {
        no_embed_class = prefix > 0 && pos->shape[2] == D && square_grid(pos->shape[1], 0, &g);
        if (!no_embed_class)
            return vit_fail(VIT_ERR_UNSUPPORTED, "%s: pos_embed [1, %lld, %lld] is not %lld class and register "
                            "tokens plus a square grid of width %lld, nor a square grid",
                            path, (long long)pos->shape[1], (long long)pos->shape[2], (long long)prefix, (long long)D);
    }
    int64_t depth = 0;
    for (size_t i = 0; i < vit_st_count(f); i++) {
        long long b;
        int used = 0;
        if (sscanf(vit_st_at(f, i)->name, "blocks.%lld.%n", &b, &used) == 1 && used > 0 && b >= 0 && b < 100000 &&
            b + 1 > depth)
            depth = b + 1;
    }
    bool pre_norm = vit_st_find(f, "norm_pre.weight") != NULL, fc_norm = vit_st_find(f, "fc_norm.weight") != NULL;
    bool attn_pool = vit_st_find(f, "attn_pool.latent") != NULL; /* timm's global_pool='map' */
    double ratio = (double)fc1->shape[0] / (double)D;
    /* the model computes hidden = (int)(dim * ratio): make sure that lands */
    while ((int64_t)((double)D * ratio) < fc1->shape[0]) ratio = nextafter(ratio, INFINITY);

    int64_t ints[][2] = {
        {VIT_CFG_IMG_SIZE, g * P},
        {VIT_CFG_PATCH_SIZE, P},
        {VIT_CFG_IN_CHANNELS, C},
        {VIT_CFG_NUM_CLASSES, head ? head->shape[0] : 0},
        {VIT_CFG_DIM, D},
        {VIT_CFG_DEPTH, depth},
        {VIT_CFG_HEADS, infer_heads(D)},
        {VIT_CFG_QKV_BIAS, vit_st_find(f, "blocks.0.attn.qkv.bias") != NULL},
        {VIT_CFG_PATCH_NORM, vit_st_find(f, "patch_embed.norm.weight") != NULL},
        {VIT_CFG_CLASS_TOKEN, cls != NULL},
        {VIT_CFG_REG_TOKENS, R},
        {VIT_CFG_NO_EMBED_CLASS, no_embed_class},
        {VIT_CFG_PRE_NORM, pre_norm},
        {VIT_CFG_PATCH_BIAS, vit_st_find(f, "patch_embed.proj.bias") != NULL},
        /* average pooling: after fc_norm, or (no class token and no fc_norm:
         * the _gap models' fc_norm=False) of the normalised tokens */
        {VIT_CFG_GLOBAL_POOL, attn_pool ? VIT_POOL_MAP : fc_norm || !cls ? VIT_POOL_AVG : VIT_POOL_TOKEN},
        {VIT_CFG_FC_NORM, fc_norm ? 1 : cls ? -1 : 0},
    };
    for (size_t i = 0; s == VIT_OK && i < sizeof ints / sizeof ints[0]; i++)
        s = vit_config_set_int(cfg, (vit_config_key)ints[i][0], ints[i][1]);
    if (s == VIT_OK) s = vit_config_set_float(cfg, VIT_CFG_MLP_RATIO, ratio);
    /* timm's models with norm_pre are its CLIP models, whose LayerNorms use eps 1e-5 */
    if (s == VIT_OK) s = vit_config_set_float(cfg, VIT_CFG_LN_EPS, pre_norm ? 1e-5 : 1e-6);
    /* the gammas' initial value does not matter once they are loaded */
    if (s == VIT_OK && vit_st_find(f, "blocks.0.ls1.gamma")) s = vit_config_set_float(cfg, VIT_CFG_INIT_VALUES, 1e-5);
    if (s != VIT_OK) vit_error_prefix("%s: configuration inferred from the tensor shapes", path);
    return s;
}

/* Every parameter but pos_embed (which may be resampled) must come from a
 * tensor of the same shape, so a configuration that needs more values than
 * the file's floating-point tensors hold cannot load: refuse it before
 * building the model, so metadata claiming a huge model costs nothing. */
static vit_status check_config_fits(const vit_st_file *f, const struct vit_config *c) {
    /* Validated ranges: dim, channels and depth <= 2^16, patch <= 2^13 (the
     * image is <= 8192), hidden <= 2^22, classes < 2^20; so every term is
     * below 2^59 and the sum cannot overflow. */
    uint64_t D = (uint64_t)c->dim, H = (uint64_t)(c->dim * c->mlp_ratio), K = (uint64_t)c->num_classes,
             P = (uint64_t)c->patch_size;
    uint64_t block = 4 * D + 3 * D * D + (c->qkv_bias ? 3 * D : 0) + D * D + D + H * D + H + D * H + D +
                     (c->init_values > 0 ? 2 * D : 0);
    uint64_t need = (uint64_t)(c->class_token + c->reg_tokens) * D + D * (uint64_t)c->in_channels * P * P +
                    (c->patch_bias ? D : 0) + (c->patch_norm ? 2 * D : 0) + (c->pre_norm ? 2 * D : 0) +
                    (uint64_t)c->depth * block + 2 * D + K * D + K +
                    (c->global_pool == VIT_POOL_MAP ? D + 3 * D * D + 3 * D + D * D + D + 2 * D + 2 * H * D + H + D : 0);
    uint64_t have = 0;
    for (size_t i = 0; i < vit_st_count(f); i++) {
        const vit_st_tensor *t = vit_st_at(f, i);
        if (is_float_dtype(t->dtype)) have += t->numel; /* at most the file's size */
    }
    if (need > have)
        return vit_fail(VIT_ERR_FORMAT, "%s: the configuration (dim %lld, depth %lld, %lld classes, patch %lld, "
                        "MLP %lld) needs %llu parameter values besides pos_embed, but the file's tensors hold %llu",
                        vit_st_path(f), (long long)c->dim, (long long)c->depth, (long long)c->num_classes,
                        (long long)c->patch_size, (long long)H, (unsigned long long)need, (unsigned long long)have);
    return VIT_OK;
}

/* "vit.*" metadata keys override what the shapes said. */
static vit_status apply_config_meta(const vit_st_file *f, vit_config *cfg) {
    for (size_t i = 0; i < N_CFG_KEYS; i++) {
        const char *v = vit_st_metadata(f, cfg_keys[i].name);
        if (!v) continue;
        int64_t iv;
        double dv;
        bool ok;
        vit_status s;
        if (cfg_keys[i].kind == CFG_REAL) {
            ok = parse_real(v, &dv);
            s = ok ? vit_config_set_float(cfg, cfg_keys[i].key, dv) : VIT_OK;
        } else {
            if (cfg_keys[i].kind == CFG_POOL && !strcmp(v, "token")) iv = VIT_POOL_TOKEN, ok = true;
            else if (cfg_keys[i].kind == CFG_POOL && !strcmp(v, "avg")) iv = VIT_POOL_AVG, ok = true;
            else if (cfg_keys[i].kind == CFG_POOL && !strcmp(v, "map")) iv = VIT_POOL_MAP, ok = true;
            else ok = parse_int(v, &iv);
            s = ok ? vit_config_set_int(cfg, cfg_keys[i].key, iv) : VIT_OK;
        }
        if (!ok) return vit_fail(VIT_ERR_FORMAT, "%s: metadata %s = \"%.60s\" is not a valid value", vit_st_path(f),
                                 cfg_keys[i].name, v);
        if (s != VIT_OK) {
            vit_error_prefix("%s: metadata %s", vit_st_path(f), cfg_keys[i].name);
            return s;
        }
    }
    return VIT_OK;
}

vit_status vit_model_load(vit_context *ctx, const char *path, vit_model **out) {
    VIT_CHECK_ARG(out, "vit_model_load: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(ctx, "vit_model_load: ctx is NULL");
    VIT_CHECK_ARG(path, "vit_model_load: path is NULL");
    vit_st_file *f;
    VIT_TRY(open_model(path, true, &f));
    vit_config *cfg = NULL;
    vit_model *model = NULL;
    vit_status s = vit_config_create(&cfg);
    if (s == VIT_OK) s = infer_config(f, cfg);
    if (s == VIT_OK) s = apply_config_meta(f, cfg);
    if (s == VIT_OK && (s = vit_config_validate(cfg)) != VIT_OK) vit_error_prefix("%s: configuration", path);
    if (s == VIT_OK) s = check_config_fits(f, cfg);
    if (s == VIT_OK) s = vit_model_create(ctx, cfg, &model);
    if (s == VIT_OK) s = load_into(model, f, 0);
    for (size_t i = 0; s == VIT_OK && i < vit_st_metadata_count(f); i++) {
        const char *k, *v;
        vit_st_metadata_at(f, i, &k, &v);
        if (reserved_key(k)) {
            if (starts_with(k, "vit.")) {
                bool known = false;
                for (size_t c = 0; c < N_CFG_KEYS; c++) known |= !strcmp(k, cfg_keys[c].name);
                if (!known) vit_log(ctx, VIT_LOG_WARN, "%s: ignoring unknown configuration key %s", path, k);
            }
            continue;
        }
        s = vit_model_set_metadata(model, k, v);
    }
    vit_config_destroy(cfg);
    vit_st_close(f);
    if (s != VIT_OK) {
        vit_model_destroy(model);
        return s;
    }
    *out = model;
    return VIT_OK;
}

/* ================================================================ optimizer */
typedef struct opt_fill {
    const vit_optimizer *opt;
    const param_list *p;
} opt_fill;

static vit_status fill_state(void *user, size_t index, void *dst, size_t bytes) {
    const opt_fill *of = user;
    size_t n = (size_t)of->p->count;
    vit_optim_state which = index < n ? VIT_OPT_STATE_EXP_AVG : VIT_OPT_STATE_EXP_AVG_SQ;
    const char *name = of->p->names[index % n];
    vit_status s = vit_optimizer_state_read(of->opt, which, name, dst, bytes);
    if (s != VIT_OK) vit_error_prefix("optimizer state of \"%s\"", name);
    return s;
}

static vit_status optimizer_meta(const vit_optimizer *opt, meta_list *m) {
    meta_common(m, "optimizer");
    meta_add(m, "optim.type", "adamw");
    for (size_t i = 0; i < N_OPT_KEYS; i++) {
        char buf[64];
        if (opt_keys[i].is_int) {
            int64_t v;
            VIT_TRY(vit_optimizer_get_int(opt, opt_keys[i].param, &v));
            snprintf(buf, sizeof buf, "%lld", (long long)v);
        } else {
            double v;
            VIT_TRY(vit_optimizer_get_float(opt, opt_keys[i].param, &v));
            vit_format_real(buf, sizeof buf, v);
        }
        meta_add(m, opt_keys[i].name, buf);
    }
    return VIT_OK;
}

vit_status vit_optimizer_save_ex(const vit_optimizer *opt, const vit_model *model, const char *path, int n_extra,
                                 const char *const *keys, const char *const *values) {
    VIT_CHECK_ARG(opt && model, "vit_optimizer_save: optimizer or model is NULL");
    VIT_CHECK_ARG(path && *path, "vit_optimizer_save: path is NULL or empty");
    VIT_CHECK_ARG(n_extra >= 0 && (n_extra == 0 || (keys && values)), "vit_optimizer_save: bad extra metadata");
    for (int i = 0; i < n_extra; i++) {
        VIT_CHECK_ARG(keys[i] && values[i], "vit_optimizer_save: extra metadata %d is NULL", i);
        VIT_CHECK_ARG(!reserved_key(keys[i]) && !starts_with(keys[i], "optim."),
                      "vit_optimizer_save: extra metadata key \"%s\" is reserved for libvit", keys[i]);
    }
    param_list p;
    VIT_TRY(params_get(model, &p));
    strings store = {0};
    meta_list m = {.store = &store};
    size_t n = (size_t)p.count;
    vit_st_entry *e = calloc(2 * n + 1, sizeof *e);
    vit_status s = e ? VIT_OK : vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    for (size_t i = 0; s == VIT_OK && i < 2 * n; i++) {
        const char *name = p.names[i % n];
        e[i].name = strings_add(&store, "%s.%s", i < n ? "exp_avg" : "exp_avg_sq", name);
        e[i].dtype = VIT_ST_F32;
        e[i].ndim = p.ndim[i % n];
        memcpy(e[i].shape, p.shape[i % n], sizeof p.shape[0]);
    }
    if (s == VIT_OK) s = optimizer_meta(opt, &m);
    for (int i = 0; s == VIT_OK && i < n_extra; i++) meta_add(&m, keys[i], values[i]);
    if (s == VIT_OK && (m.failed || store.failed)) s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    opt_fill of = {opt, &p};
    if (s == VIT_OK) s = vit_st_write(path, e, 2 * n, m.items, m.count, fill_state, &of);
    free(m.items);
    strings_free(&store);
    free(e);
    params_free(&p);
    return s;
}

vit_status vit_optimizer_save(const vit_optimizer *opt, const vit_model *model, const char *path) {
    return vit_optimizer_save_ex(opt, model, path, 0, NULL, NULL);
}

vit_status vit_optimizer_load(vit_optimizer *opt, const vit_model *model, const char *path) {
    VIT_CHECK_ARG(opt && model, "vit_optimizer_load: optimizer or model is NULL");
    VIT_CHECK_ARG(path, "vit_optimizer_load: path is NULL");
    vit_st_file *f;
    VIT_TRY(open_checked(path, "optimizer", &f));
    param_list p;
    vit_status s = params_get(model, &p);
    if (s != VIT_OK) {
        vit_st_close(f);
        return s;
    }
    size_t n = (size_t)p.count, max_floats = 0;
    const vit_st_tensor **src = calloc(2 * n + 1, sizeof *src);
    int64_t ints[N_OPT_KEYS];
    double reals[N_OPT_KEYS];
    bool present[N_OPT_KEYS] = {0};
    char a[96], b[96];
    if (!src) s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    const char *type = vit_st_metadata(f, "optim.type");
    if (s == VIT_OK && type && strcmp(type, "adamw") != 0)
        s = vit_fail(VIT_ERR_FORMAT, "%s: optimizer type \"%s\", expected \"adamw\"", path, type);

    /* check all of it first: tensors, then the metadata numbers */
    for (size_t i = 0; s == VIT_OK && i < 2 * n; i++) {
        char name[320];
        snprintf(name, sizeof name, "%s.%s", i < n ? "exp_avg" : "exp_avg_sq", p.names[i % n]);
        const vit_st_tensor *t = src[i] = vit_st_find(f, name);
        int nd = p.ndim[i % n];
        const int64_t *shape = p.shape[i % n];
        bool same = t && t->ndim == nd;
        for (int d = 0; same && d < nd; d++) same = t->shape[d] == shape[d];
        if (!t) s = vit_fail(VIT_ERR_NOT_FOUND, "%s: tensor \"%s\" is missing", path, name);
        else if (!is_float_dtype(t->dtype))
            s = vit_fail(VIT_ERR_DTYPE, "%s: tensor \"%s\" is %s, not floating point", path, name,
                         vit_st_dtype_name(t->dtype));
        else if (!same)
            s = vit_fail(VIT_ERR_SHAPE, "%s: tensor \"%s\" is %s in the file but the parameter is %s", path, name,
                         vit_shape_str(a, sizeof a, t->ndim, t->shape), vit_shape_str(b, sizeof b, nd, shape));
        else if ((size_t)t->numel > max_floats) max_floats = (size_t)t->numel;
    }
    if (s == VIT_OK && vit_st_count(f) != 2 * n) {
        /* same count means every tensor was matched above; otherwise name one */
        for (size_t k = 0; k < vit_st_count(f); k++) {
            const char *name = vit_st_at(f, k)->name;
            const char *param = starts_with(name, "exp_avg_sq.") ? name + 11 : starts_with(name, "exp_avg.") ? name + 8 : name;
            if (param == name || params_find(&p, param) < 0) {
                s = vit_fail(VIT_ERR_FORMAT, "%s: tensor \"%s\" does not belong to any parameter of the model", path,
                             name);
                break;
            }
        }
    }
    for (size_t i = 0; s == VIT_OK && i < N_OPT_KEYS; i++) {
        const char *v = vit_st_metadata(f, opt_keys[i].name);
        if (!v) continue;
        present[i] = true;
        bool ok = opt_keys[i].is_int ? parse_int(v, &ints[i]) : parse_real(v, &reals[i]);
        if (!ok) s = vit_fail(VIT_ERR_FORMAT, "%s: metadata %s = \"%.60s\" is not a number", path, opt_keys[i].name, v);
    }

    float *buf = s == VIT_OK ? malloc(max_floats ? max_floats * sizeof(float) : 1) : NULL;
    if (s == VIT_OK && !buf) s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    for (size_t i = 0; s == VIT_OK && i < 2 * n; i++) {
        s = vit_st_read_f32(f, src[i], buf, (size_t)src[i]->numel);
        if (s == VIT_OK)
            s = vit_optimizer_state_write(opt, i < n ? VIT_OPT_STATE_EXP_AVG : VIT_OPT_STATE_EXP_AVG_SQ,
                                          p.names[i % n], buf, (size_t)src[i]->numel * sizeof(float));
        if (s != VIT_OK) vit_error_prefix("%s: tensor \"%s\"", path, src[i]->name);
    }
    for (size_t i = 0; s == VIT_OK && i < N_OPT_KEYS; i++) {
        if (!present[i]) continue;
        s = opt_keys[i].is_int ? vit_optimizer_set_int(opt, opt_keys[i].param, ints[i])
                               : vit_optimizer_set_float(opt, opt_keys[i].param, reals[i]);
        if (s != VIT_OK) vit_error_prefix("%s: metadata %s", path, opt_keys[i].name);
    }
    free(buf);
    free(src);
    params_free(&p);
    vit_st_close(f);
    return s;
}

vit_status vit_checkpoint_read_metadata(const char *path, vit_metadata_fn fn, void *user) {
    VIT_CHECK_ARG(path && fn, "vit_checkpoint_read_metadata: path or fn is NULL");
    vit_st_file *f;
    VIT_TRY(vit_st_open(path, &f));
    for (size_t i = 0; i < vit_st_metadata_count(f); i++) {
        const char *k, *v;
        vit_st_metadata_at(f, i, &k, &v);
        fn(user, k, v);
    }
    vit_st_close(f);
    return VIT_OK;
}
