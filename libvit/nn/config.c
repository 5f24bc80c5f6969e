/* Model configuration: keys, defaults, validation and timm presets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

static void set_defaults(struct vit_config *c) {
    *c = (struct vit_config){.img_size = 224, .patch_size = 16, .in_channels = 3, .num_classes = 1000,
                             .dim = 768, .depth = 12, .heads = 12, .qkv_bias = 1, .patch_norm = 0,
                             .global_pool = VIT_POOL_TOKEN, .mlp_ratio = 4.0, .ln_eps = 1e-6,
                             .class_token = 1, .patch_bias = 1, .fc_norm = -1};
}

vit_status vit_config_create(vit_config **out) {
    VIT_CHECK_ARG(out, "vit_config_create: out is NULL");
    *out = malloc(sizeof **out);
    if (!*out) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_config_create: no memory");
    set_defaults(*out);
    return VIT_OK;
}

void vit_config_destroy(vit_config *cfg) { free(cfg); }

vit_status vit_config_copy(const vit_config *src, vit_config **out) {
    VIT_CHECK_ARG(out, "vit_config_copy: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(src, "vit_config_copy: src is NULL");
    VIT_TRY(vit_config_create(out));
    **out = *src;
    return VIT_OK;
}

static int64_t *int_slot(vit_config *c, vit_config_key key) {
    switch (key) {
    case VIT_CFG_IMG_SIZE: return &c->img_size;
    case VIT_CFG_PATCH_SIZE: return &c->patch_size;
    case VIT_CFG_IN_CHANNELS: return &c->in_channels;
    case VIT_CFG_NUM_CLASSES: return &c->num_classes;
    case VIT_CFG_DIM: return &c->dim;
    case VIT_CFG_DEPTH: return &c->depth;
    case VIT_CFG_HEADS: return &c->heads;
    case VIT_CFG_QKV_BIAS: return &c->qkv_bias;
    case VIT_CFG_PATCH_NORM: return &c->patch_norm;
    case VIT_CFG_GLOBAL_POOL: return &c->global_pool;
    case VIT_CFG_CLASS_TOKEN: return &c->class_token;
    case VIT_CFG_REG_TOKENS: return &c->reg_tokens;
    case VIT_CFG_NO_EMBED_CLASS: return &c->no_embed_class;
    case VIT_CFG_PRE_NORM: return &c->pre_norm;
    case VIT_CFG_PATCH_BIAS: return &c->patch_bias;
    case VIT_CFG_QUICK_GELU: return &c->quick_gelu;
    case VIT_CFG_FC_NORM: return &c->fc_norm;
    default: return NULL;
    }
}

static double *float_slot(vit_config *c, vit_config_key key) {
    switch (key) {
    case VIT_CFG_MLP_RATIO: return &c->mlp_ratio;
    case VIT_CFG_DROP_RATE: return &c->drop_rate;
    case VIT_CFG_ATTN_DROP_RATE: return &c->attn_drop_rate;
    case VIT_CFG_DROP_PATH_RATE: return &c->drop_path_rate;
    case VIT_CFG_LN_EPS: return &c->ln_eps;
    case VIT_CFG_INIT_VALUES: return &c->init_values;
    default: return NULL;
    }
}

static const char *key_name(vit_config_key key) {
    switch (key) {
    case VIT_CFG_IMG_SIZE: return "VIT_CFG_IMG_SIZE";
    case VIT_CFG_PATCH_SIZE: return "VIT_CFG_PATCH_SIZE";
    case VIT_CFG_IN_CHANNELS: return "VIT_CFG_IN_CHANNELS";
    case VIT_CFG_NUM_CLASSES: return "VIT_CFG_NUM_CLASSES";
    case VIT_CFG_DIM: return "VIT_CFG_DIM";
    case VIT_CFG_DEPTH: return "VIT_CFG_DEPTH";
    case VIT_CFG_HEADS: return "VIT_CFG_HEADS";
    case VIT_CFG_QKV_BIAS: return "VIT_CFG_QKV_BIAS";
    case VIT_CFG_PATCH_NORM: return "VIT_CFG_PATCH_NORM";
    case VIT_CFG_GLOBAL_POOL: return "VIT_CFG_GLOBAL_POOL";
    case VIT_CFG_MLP_RATIO: return "VIT_CFG_MLP_RATIO";
    case VIT_CFG_DROP_RATE: return "VIT_CFG_DROP_RATE";
    case VIT_CFG_ATTN_DROP_RATE: return "VIT_CFG_ATTN_DROP_RATE";
    case VIT_CFG_DROP_PATH_RATE: return "VIT_CFG_DROP_PATH_RATE";
    case VIT_CFG_LN_EPS: return "VIT_CFG_LN_EPS";
    case VIT_CFG_CLASS_TOKEN: return "VIT_CFG_CLASS_TOKEN";
    case VIT_CFG_REG_TOKENS: return "VIT_CFG_REG_TOKENS";
    case VIT_CFG_NO_EMBED_CLASS: return "VIT_CFG_NO_EMBED_CLASS";
    case VIT_CFG_PRE_NORM: return "VIT_CFG_PRE_NORM";
    case VIT_CFG_PATCH_BIAS: return "VIT_CFG_PATCH_BIAS";
    case VIT_CFG_QUICK_GELU: return "VIT_CFG_QUICK_GELU";
    case VIT_CFG_FC_NORM: return "VIT_CFG_FC_NORM";
    case VIT_CFG_INIT_VALUES: return "VIT_CFG_INIT_VALUES";
    }
    return "unknown key";
}

vit_status vit_config_set_int(vit_config *cfg, vit_config_key key, int64_t value) {
    VIT_CHECK_ARG(cfg, "vit_config_set_int: cfg is NULL");
    int64_t *slot = int_slot(cfg, key);
    if (!slot) {
        if (float_slot(cfg, key))
            return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_config_set_int: %s is a real key; use vit_config_set_float",
                            key_name(key));
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_config_set_int: unknown key %d", (int)key);
    }
    bool ok;
    switch (key) {
    case VIT_CFG_QKV_BIAS:
    case VIT_CFG_PATCH_NORM:
    case VIT_CFG_CLASS_TOKEN:
    case VIT_CFG_NO_EMBED_CLASS:
    case VIT_CFG_PRE_NORM:
    case VIT_CFG_PATCH_BIAS:
    case VIT_CFG_QUICK_GELU: ok = value == 0 || value == 1; break;
    case VIT_CFG_FC_NORM: ok = value >= -1 && value <= 1; break;
    case VIT_CFG_REG_TOKENS: ok = value >= 0 && value <= 64; break;
    case VIT_CFG_GLOBAL_POOL: ok = value == VIT_POOL_TOKEN || value == VIT_POOL_AVG || value == VIT_POOL_MAP; break;
    case VIT_CFG_IMG_SIZE: ok = value >= 1 && value <= 8192; break;
    case VIT_CFG_NUM_CLASSES: ok = value >= 0 && value <= 1000000; break; /* 0: no head */
    default: ok = value >= 1 && value <= 65536; break;
    }
    VIT_CHECK_ARG(ok, "vit_config_set_int: %s = %lld is out of range", key_name(key), (long long)value);
    *slot = value;
    return VIT_OK;
}

vit_status vit_config_get_int(const vit_config *cfg, vit_config_key key, int64_t *value) {
    VIT_CHECK_ARG(cfg, "vit_config_get_int: cfg is NULL");
    VIT_CHECK_ARG(value, "vit_config_get_int: value is NULL");
    int64_t *slot = int_slot((vit_config *)cfg, key);
    VIT_CHECK_ARG(slot, "vit_config_get_int: %s is not an integer key", key_name(key));
    *value = *slot;
    return VIT_OK;
}

vit_status vit_config_set_float(vit_config *cfg, vit_config_key key, double value) {
    VIT_CHECK_ARG(cfg, "vit_config_set_float: cfg is NULL");
    double *slot = float_slot(cfg, key);
    if (!slot) {
        if (int_slot(cfg, key))
            return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_config_set_float: %s is an integer key; use vit_config_set_int",
                            key_name(key));
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_config_set_float: unknown key %d", (int)key);
    }
    bool ok;
    switch (key) {
    case VIT_CFG_MLP_RATIO: ok = value > 0 && value <= 64; break;
    case VIT_CFG_LN_EPS: ok = value > 0 && value < 1; break;
    case VIT_CFG_INIT_VALUES: ok = value >= 0 && value <= 1e3; break;
    default: ok = value >= 0 && value < 1; break; /* probabilities */
    }
    VIT_CHECK_ARG(ok, "vit_config_set_float: %s = %g is out of range", key_name(key), value);
    *slot = value;
    return VIT_OK;
}

vit_status vit_config_get_float(const vit_config *cfg, vit_config_key key, double *value) {
    VIT_CHECK_ARG(cfg, "vit_config_get_float: cfg is NULL");
    VIT_CHECK_ARG(value, "vit_config_get_float: value is NULL");
    double *slot = float_slot((vit_config *)cfg, key);
    VIT_CHECK_ARG(slot, "vit_config_get_float: %s is not a real key", key_name(key));
    *value = *slot;
    return VIT_OK;
}

vit_status vit_config_validate(const vit_config *c) {
    VIT_CHECK_ARG(c, "vit_config_validate: cfg is NULL");
    if (c->img_size % c->patch_size)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "config: image size %lld is not divisible by patch size %lld",
                        (long long)c->img_size, (long long)c->patch_size);
    if (c->dim % c->heads)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "config: heads %lld do not divide dim %lld", (long long)c->heads,
                        (long long)c->dim);
    int64_t hidden = (int64_t)(c->dim * c->mlp_ratio);
    if (hidden < 1) return vit_fail(VIT_ERR_INVALID_ARGUMENT, "config: mlp ratio %g gives no hidden units", c->mlp_ratio);
    if (c->global_pool == VIT_POOL_TOKEN && !c->class_token)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "config: class-token pooling needs a class token "
                        "(VIT_CFG_CLASS_TOKEN = 0: set VIT_CFG_GLOBAL_POOL to VIT_POOL_AVG)");
    if (c->global_pool == VIT_POOL_MAP && (c->class_token || c->reg_tokens || c->fc_norm == 1))
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "config: attention pooling (VIT_POOL_MAP) takes no class token, no "
                        "register tokens and no fc_norm");
    int64_t grid = c->img_size / c->patch_size, tokens = grid * grid + c->class_token + c->reg_tokens;
    if (tokens > 1000000)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "config: %lld tokens is too many", (long long)tokens);
    return VIT_OK;
}

/* timm's ViT family: name, dim, depth, heads. */
static const struct preset {
    const char *family;
    int dim, depth, heads;
} families[] = {
    {"vit_tiny", 192, 12, 3},   {"vit_small", 384, 12, 6}, {"vit_base", 768, 12, 12},
    {"vit_large", 1024, 24, 16}, {"vit_huge", 1280, 32, 16},
};

/* Every name timm publishes for these families at 224 (and 384). */
static const char *const preset_names[] = {
    "vit_tiny_patch16_224",  "vit_tiny_patch16_384",  "vit_small_patch16_224", "vit_small_patch16_384",
    "vit_small_patch32_224", "vit_small_patch32_384", "vit_base_patch16_224",  "vit_base_patch16_384",
    "vit_base_patch32_224",  "vit_base_patch32_384",  "vit_large_patch16_224", "vit_large_patch16_384",
    "vit_large_patch32_224", "vit_large_patch32_384", "vit_huge_patch14_224",  NULL,
};

/* timm's family variants: the plain model's sizes plus these options, as
 * their timm model functions set them (vision_transformer.py). */
enum { V_GAP = 1, V_CLIP = 2, V_QUICK = 4, V_DINOV2 = 8, V_REG4 = 16, V_DEIT3 = 32, V_SIGLIP_GAP = 64, V_SIGLIP = 128 };
static const struct variant {
    const char *name;
    int dim, depth, heads, patch, img, flags;
} variants[] = {
    {"vit_base_patch16_gap_224", 768, 12, 16, 16, 224, V_GAP},
    {"vit_base_patch32_clip_224", 768, 12, 12, 32, 224, V_CLIP},
    {"vit_base_patch16_clip_224", 768, 12, 12, 16, 224, V_CLIP},
    {"vit_large_patch14_clip_224", 1024, 24, 16, 14, 224, V_CLIP},
    {"vit_base_patch32_clip_quickgelu_224", 768, 12, 12, 32, 224, V_CLIP | V_QUICK},
    {"vit_base_patch16_clip_quickgelu_224", 768, 12, 12, 16, 224, V_CLIP | V_QUICK},
    {"vit_large_patch14_clip_quickgelu_224", 1024, 24, 16, 14, 224, V_CLIP | V_QUICK},
    {"vit_base_patch16_siglip_224", 768, 12, 12, 16, 224, V_SIGLIP},
    {"vit_base_patch16_siglip_256", 768, 12, 12, 16, 256, V_SIGLIP},
    {"vit_base_patch16_siglip_384", 768, 12, 12, 16, 384, V_SIGLIP},
    {"vit_base_patch16_siglip_gap_224", 768, 12, 12, 16, 224, V_SIGLIP_GAP},
    {"vit_small_patch14_dinov2", 384, 12, 6, 14, 518, V_DINOV2},
    {"vit_base_patch14_dinov2", 768, 12, 12, 14, 518, V_DINOV2},
    {"vit_large_patch14_dinov2", 1024, 24, 16, 14, 518, V_DINOV2},
    {"vit_small_patch14_reg4_dinov2", 384, 12, 6, 14, 518, V_DINOV2 | V_REG4},
    {"vit_base_patch14_reg4_dinov2", 768, 12, 12, 14, 518, V_DINOV2 | V_REG4},
    {"vit_large_patch14_reg4_dinov2", 1024, 24, 16, 14, 518, V_DINOV2 | V_REG4},
    {"deit3_small_patch16_224", 384, 12, 6, 16, 224, V_DEIT3},
    {"deit3_base_patch16_224", 768, 12, 12, 16, 224, V_DEIT3},
    {"deit3_large_patch16_224", 1024, 24, 16, 16, 224, V_DEIT3},
};
#define N_PLAIN (sizeof preset_names / sizeof *preset_names - 1)
#define N_VARIANTS (sizeof variants / sizeof *variants)

const char *vit_preset_name(int index) {
    if (index < 0) return NULL;
    if ((size_t)index < N_PLAIN) return preset_names[index];
    if ((size_t)index < N_PLAIN + N_VARIANTS) return variants[index - N_PLAIN].name;
    return NULL;
}

/* The plain model's options (timm's VisionTransformer defaults); the pooling
 * stays as it was, but for the attention pool. */
static void plain_options(struct vit_config *c) {
    c->mlp_ratio = 4.0;
    c->qkv_bias = 1;
    c->ln_eps = 1e-6;
    c->class_token = 1;
    c->reg_tokens = 0;
    c->no_embed_class = 0;
    c->pre_norm = 0;
    c->patch_bias = 1;
    c->quick_gelu = 0;
    c->fc_norm = -1;
    c->init_values = 0.0;
    if (c->global_pool == VIT_POOL_MAP) c->global_pool = VIT_POOL_TOKEN; /* it takes no class token */
}

static void apply_variant(struct vit_config *c, const struct variant *v) {
    c->dim = v->dim;
    c->depth = v->depth;
    c->heads = v->heads;
    c->patch_size = v->patch;
    c->img_size = v->img;
    plain_options(c);
    c->global_pool = VIT_POOL_TOKEN;
    if (v->flags & (V_GAP | V_SIGLIP_GAP)) { /* class_token=False, global_pool='avg', fc_norm=False */
        c->class_token = 0;
        c->global_pool = VIT_POOL_AVG;
        c->fc_norm = 0;
    }
    if (v->flags & V_SIGLIP) { /* class_token=False, global_pool='map' */
        c->class_token = 0;
        c->global_pool = VIT_POOL_MAP;
    }
    if (v->flags & V_CLIP) { /* pre_norm=True (and so no patch bias), LayerNorm eps 1e-5 */
        c->pre_norm = 1;
        c->patch_bias = 0;
        c->ln_eps = 1e-5;
    }
    if (v->flags & V_QUICK) c->quick_gelu = 1;
    if (v->flags & V_DINOV2) c->init_values = 1e-5;
    if (v->flags & V_REG4) {
        c->reg_tokens = 4;
        c->no_embed_class = 1;
    }
    if (v->flags & V_DEIT3) {
        c->no_embed_class = 1;
        c->init_values = 1e-6;
    }
}

vit_status vit_config_set_preset(vit_config *cfg, const char *name) {
    VIT_CHECK_ARG(cfg, "vit_config_set_preset: cfg is NULL");
    VIT_CHECK_ARG(name, "vit_config_set_preset: name is NULL");
    for (size_t i = 0; i < N_VARIANTS; i++) {
        if (strcmp(variants[i].name, name)) continue;
        apply_variant(cfg, &variants[i]);
        return VIT_OK;
    }
    for (int i = 0; preset_names[i]; i++) {
        if (strcmp(preset_names[i], name)) continue;
        for (size_t f = 0; f < sizeof families / sizeof *families; f++) {
            size_t len = strlen(families[f].family);
            if (strncmp(name, families[f].family, len) || name[len] != '_') continue;
            int patch = 0, img = 0;
            if (sscanf(name + len, "_patch%d_%d", &patch, &img) != 2) break;
            cfg->dim = families[f].dim;
            cfg->depth = families[f].depth;
            cfg->heads = families[f].heads;
            cfg->patch_size = patch;
            cfg->img_size = img;
            plain_options(cfg);
            return VIT_OK;
        }
    }
    return vit_fail(VIT_ERR_NOT_FOUND, "vit_config_set_preset: unknown preset '%s' (e.g. vit_tiny_patch16_224)", name);
}
