/* Model configuration: keys, defaults, validation and timm presets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

static void set_defaults(struct vit_config *c) {
    *c = (struct vit_config){.img_size = 224, .patch_size = 16, .in_channels = 3, .num_classes = 1000,
                             .dim = 768, .depth = 12, .heads = 12, .qkv_bias = 1, .patch_norm = 0,
                             .global_pool = VIT_POOL_TOKEN, .mlp_ratio = 4.0, .ln_eps = 1e-6};
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
    case VIT_CFG_PATCH_NORM: ok = value == 0 || value == 1; break;
    case VIT_CFG_GLOBAL_POOL: ok = value == VIT_POOL_TOKEN || value == VIT_POOL_AVG; break;
    case VIT_CFG_IMG_SIZE: ok = value >= 1 && value <= 8192; break;
    case VIT_CFG_NUM_CLASSES: ok = value >= 1 && value <= 1000000; break;
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
    int64_t grid = c->img_size / c->patch_size;
    if (grid * grid + 1 > 1000000)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "config: %lld tokens is too many", (long long)(grid * grid + 1));
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

const char *vit_preset_name(int index) {
    if (index < 0 || index >= (int)(sizeof preset_names / sizeof *preset_names)) return NULL;
    return preset_names[index];
}

vit_status vit_config_set_preset(vit_config *cfg, const char *name) {
    VIT_CHECK_ARG(cfg, "vit_config_set_preset: cfg is NULL");
    VIT_CHECK_ARG(name, "vit_config_set_preset: name is NULL");
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
            cfg->mlp_ratio = 4.0;
            cfg->qkv_bias = 1;
            cfg->ln_eps = 1e-6;
            return VIT_OK;
        }
    }
    return vit_fail(VIT_ERR_NOT_FOUND, "vit_config_set_preset: unknown preset '%s' (e.g. vit_tiny_patch16_224)", name);
}
