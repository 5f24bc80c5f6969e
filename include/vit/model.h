/*
 * libvit models: a configuration handle, the Vision Transformer, forward,
 * loss, backward on the model's tape, parameters by timm name, and metrics.
 */
#ifndef VIT_MODEL_H
#define VIT_MODEL_H

#include "core.h"

VIT_EXTERN_C_BEGIN

/* ------------------------------------------------------------- configuration */
typedef struct vit_config vit_config;

/* Keys of a model configuration. Integer keys take vit_config_set_int, real
 * keys vit_config_set_float; using the wrong setter is VIT_ERR_INVALID_ARGUMENT. */
typedef enum vit_config_key {
    VIT_CFG_IMG_SIZE = 1,       /* int: square input side in pixels (default 224) */
    VIT_CFG_PATCH_SIZE = 2,     /* int: patch side (16); must divide IMG_SIZE */
    VIT_CFG_IN_CHANNELS = 3,    /* int: image channels (3) */
    VIT_CFG_NUM_CLASSES = 4,    /* int: classes of the head (1000); 0: no head, forward gives the pooled features */
    VIT_CFG_DIM = 5,            /* int: embedding width (768) */
    VIT_CFG_DEPTH = 6,          /* int: transformer blocks (12) */
    VIT_CFG_HEADS = 7,          /* int: attention heads (12); must divide DIM */
    VIT_CFG_QKV_BIAS = 8,       /* int 0/1: bias on the fused qkv projection (1) */
    VIT_CFG_PATCH_NORM = 9,     /* int 0/1: LayerNorm after the patch projection, the seed's variant (0) */
    VIT_CFG_GLOBAL_POOL = 10,   /* int vit_pool: class token, mean of patch tokens or attention pool (token) */
    /* timm's ViT family options (timm's VisionTransformer argument in brackets): */
    VIT_CFG_CLASS_TOKEN = 11,   /* int 0/1: a class token "cls_token" [1, 1, D] first in the sequence (1) [class_token] */
    VIT_CFG_REG_TOKENS = 12,    /* int 0..64: register tokens "reg_token" [1, R, D] after the class token (0) [reg_tokens] */
    VIT_CFG_NO_EMBED_CLASS = 13,/* int 0/1: pos_embed covers the patch tokens only, class and register
                                   tokens get none (0; DeiT-III, DINOv2 with registers) [no_embed_class] */
    VIT_CFG_PRE_NORM = 14,      /* int 0/1: LayerNorm "norm_pre" after the position embedding, before the
                                   blocks (0; CLIP) [pre_norm] */
    VIT_CFG_PATCH_BIAS = 15,    /* int 0/1: bias on the patch projection (1; timm's CLIP models have none) */
    VIT_CFG_QUICK_GELU = 16,    /* int 0/1: the MLP's activation is x * sigmoid(1.702 x) instead of the exact
                                   GELU (0; OpenAI CLIP) [act_layer='quick_gelu'] */
    VIT_CFG_FC_NORM = 17,       /* int -1/0/1: the final LayerNorm after pooling as "fc_norm" (1) or on
                                   every token before pooling as "norm" (0); -1 (default): after
                                   pooling exactly when pooling is average [fc_norm] */
    VIT_CFG_MLP_RATIO = 32,     /* real: MLP hidden width / DIM (4.0) */
    VIT_CFG_DROP_RATE = 33,     /* real: dropout after pos-embed, attn proj and MLP (0) */
    VIT_CFG_ATTN_DROP_RATE = 34,/* real: dropout on attention probabilities (0) */
    VIT_CFG_DROP_PATH_RATE = 35,/* real: stochastic depth, linear 0..rate over the blocks (0) */
    VIT_CFG_LN_EPS = 36,        /* real: LayerNorm epsilon (1e-6 as timm; the seed's nn.LayerNorm uses 1e-5) */
    VIT_CFG_INIT_VALUES = 37    /* real: layer scale "blocks.N.ls1.gamma", "ls2.gamma" [D] initialised to
                                   this value; 0 (default) = no layer scale (DINOv2 1e-5, DeiT-III 1e-6) [init_values] */
} vit_config_key;

typedef enum vit_pool {
    VIT_POOL_TOKEN = 0, /* the class token's features (timm global_pool='token') */
    VIT_POOL_AVG = 1,   /* mean of the patch tokens (class and register tokens excluded), then
                           fc_norm unless VIT_CFG_FC_NORM is 0 (timm global_pool='avg') */
    VIT_POOL_MAP = 2    /* attention pooling: timm's AttentionPoolLatent head "attn_pool.*" (one
                           learned query, q and kv projections, proj, norm, MLP) over the
                           normalised patch tokens (timm global_pool='map', SigLIP); needs
                           no class or register tokens */
} vit_pool;

/* A configuration with ViT-B/16 at 224 defaults. */
VIT_API vit_status vit_config_create(vit_config **out);
VIT_API void vit_config_destroy(vit_config *cfg);
VIT_API vit_status vit_config_copy(const vit_config *src, vit_config **out);
VIT_API vit_status vit_config_set_int(vit_config *cfg, vit_config_key key, int64_t value);
VIT_API vit_status vit_config_get_int(const vit_config *cfg, vit_config_key key, int64_t *value);
VIT_API vit_status vit_config_set_float(vit_config *cfg, vit_config_key key, double value);
VIT_API vit_status vit_config_get_float(const vit_config *cfg, vit_config_key key, double *value);
/* Apply a timm preset by name: "vit_tiny_patch16_224", "vit_small_patch32_384",
 * "vit_base_patch16_224", "vit_large_patch32_224", "vit_huge_patch14_224", ...
 * Sets DIM, DEPTH, HEADS, PATCH_SIZE, IMG_SIZE, MLP_RATIO, QKV_BIAS and LN_EPS, and
 * every family option (CLASS_TOKEN ... INIT_VALUES, GLOBAL_POOL) to the preset's:
 * "vit_base_patch16_gap_224" (no class token, average pool), "vit_base_patch16_clip_224"
 * (pre_norm, no patch bias, eps 1e-5), "vit_base_patch16_clip_quickgelu_224",
 * "vit_small_patch14_dinov2" (layer scale, 518 px), "vit_small_patch14_reg4_dinov2"
 * (4 registers), "deit3_small_patch16_224", ... (vit_preset_name lists them). */
VIT_API vit_status vit_config_set_preset(vit_config *cfg, const char *name);
/* The preset names libvit knows: index 0.. until it returns NULL. */
VIT_API const char *vit_preset_name(int index);
/* Check the configuration as a whole (heads divide dim, patch divides image, ...). */
VIT_API vit_status vit_config_validate(const vit_config *cfg);

/* ------------------------------------------------------------------- model */
typedef struct vit_model vit_model;

/* Builds the model on the context's device and initialises it as timm does
 * (truncated normal 0.02 for linear weights and pos_embed, cls_token 1e-6
 * normal, zero biases, LayerNorm ones/zeros), from the context's seed. */
VIT_API vit_status vit_model_create(vit_context *ctx, const vit_config *cfg, vit_model **out);
VIT_API void vit_model_destroy(vit_model *model);
VIT_API vit_status vit_model_get_config(const vit_model *model, vit_config **out); /* a copy */

/* Training mode turns dropout, attention dropout and DropPath on (default off). */
VIT_API vit_status vit_model_set_training(vit_model *model, int training);
/* With grad on (default on), forward records the tape that backward replays;
 * with it off (inference) nothing is recorded and activations are not kept. */
VIT_API vit_status vit_model_set_grad(vit_model *model, int enabled);

/* Counter of training-mode forwards that keys the dropout and DropPath masks;
 * saved with a checkpoint and restored on resume for bit-identical runs. */
VIT_API vit_status vit_model_get_rng_state(const vit_model *model, uint64_t *state);
VIT_API vit_status vit_model_set_rng_state(vit_model *model, uint64_t state);

/* images [B, C, H, W] f32 -> logits [B, num_classes] f32 (both caller tensors).
 * Starts a new step: the previous step's tape and activations are released. */
VIT_API vit_status vit_model_forward(vit_model *model, const vit_tensor *images, vit_tensor *logits);

/* Features out, for a model used as an embedding backbone (inference: nothing
 * is recorded for backward, whatever vit_model_set_grad says).
 * Pooled features [B, DIM]: what the head would read, timm's
 * forward_head(forward_features(x), pre_logits=True): the class token after
 * the final norm, or the mean of the patch tokens (after fc_norm or of the
 * normalised tokens, as VIT_CFG_FC_NORM says). */
VIT_API vit_status vit_model_forward_features(vit_model *model, const vit_tensor *images, vit_tensor *features);
/* The token sequence after the last block [B, T, DIM], timm's
 * forward_features: T = class token (if any), register tokens, then the patch
 * tokens in row-major grid order; after the final norm "norm", except for
 * models whose norm comes after pooling (fc_norm), whose tokens are not
 * normalised (timm's norm is then the identity). */
VIT_API vit_status vit_model_forward_tokens(vit_model *model, const vit_tensor *images, vit_tensor *tokens);
/* T of vit_model_forward_tokens and how many of them lead the patch tokens
 * (class token + registers); either pointer may be NULL. */
VIT_API vit_status vit_model_token_count(const vit_model *model, int *tokens, int *prefix);
/* Mean cross-entropy of the last forward's logits against labels [B] (i32,
 * 0..num_classes-1), with label smoothing in [0, 1). Recorded on the tape. */
VIT_API vit_status vit_model_loss(vit_model *model, const vit_tensor *labels, float label_smoothing,
                                  float *loss);
/* Replays the tape from the loss, adding into the parameter gradients. */
VIT_API vit_status vit_model_backward(vit_model *model);
/* The same from a caller-supplied gradient of the logits [B, num_classes],
 * for losses computed outside libvit. */
VIT_API vit_status vit_model_backward_logits(vit_model *model, const vit_tensor *dlogits);
VIT_API vit_status vit_model_zero_grad(vit_model *model);

/* Parameters in timm's order and names ("patch_embed.proj.weight", "cls_token",
 * "blocks.0.attn.qkv.weight", ..., "head.bias"). */
VIT_API vit_status vit_model_param_count(const vit_model *model, int *count);
VIT_API vit_status vit_model_num_params(const vit_model *model, int64_t *numel); /* total floats */
/* name points into the model and lives as long as it; shape has VIT_MAX_DIMS room. */
VIT_API vit_status vit_model_param_info(const vit_model *model, int index, const char **name,
                                        int *ndim, int64_t *shape);
/* Copy one parameter (or its gradient) by name, f32, exactly numel * 4 bytes. */
VIT_API vit_status vit_model_param_read(const vit_model *model, const char *name, float *dst, size_t bytes);
VIT_API vit_status vit_model_param_write(vit_model *model, const char *name, const float *src, size_t bytes);
VIT_API vit_status vit_model_grad_read(const vit_model *model, const char *name, float *dst, size_t bytes);

/* String metadata carried with the model into checkpoints ("class_names" as a
 * JSON array, "mean"/"std" as "0.485,0.456,0.406", ...). Keys and values are
 * copied; value NULL removes the key. get returns NULL in *value when absent;
 * the pointer lives until the key is set again or the model is destroyed. */
VIT_API vit_status vit_model_set_metadata(vit_model *model, const char *key, const char *value);
VIT_API vit_status vit_model_get_metadata(const vit_model *model, const char *key, const char **value);
/* Keys in insertion order: index 0.. until *key is NULL. */
VIT_API vit_status vit_model_metadata_key(const vit_model *model, int index, const char **key);

/* ----------------------------------------------------------------- metrics */
/* For each row of logits [B, C]: the k largest classes, best first, and their
 * softmax probabilities. indices and probs (may be NULL) hold B * k entries. */
VIT_API vit_status vit_topk(const vit_tensor *logits, int k, int32_t *indices, float *probs);
/* Number of rows whose label is among the k largest logits. */
VIT_API vit_status vit_accuracy(const vit_tensor *logits, const vit_tensor *labels, int k, int64_t *correct);

VIT_EXTERN_C_END

#endif
