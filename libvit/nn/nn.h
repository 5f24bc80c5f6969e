/* The model's internals shared with the optimizer and checkpoint code. */
#ifndef VIT_NN_H
#define VIT_NN_H

#include "core/core.h"
#include "ops/ops.h"
#include "vit/model.h"

struct vit_config {
    int64_t img_size, patch_size, in_channels, num_classes, dim, depth, heads, qkv_bias, patch_norm, global_pool;
    int64_t class_token, reg_tokens, no_embed_class, pre_norm, patch_bias, quick_gelu, fc_norm;
    double mlp_ratio, drop_rate, attn_drop_rate, drop_path_rate, ln_eps, init_values;
};

/* One named parameter: a slice of the flat buffers. */
typedef struct vit_param {
    char name[48];
    int ndim;
    int64_t shape[VIT_MAX_DIMS];
    int64_t offset, numel;
    bool decay; /* false for biases, norms, pos_embed, cls_token when exemption is on */
} vit_param;

typedef struct vit_block_params {
    int norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, ls1, norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b, ls2;
} vit_block_params;

/* timm's AttentionPoolLatent ("attn_pool.*"), for VIT_POOL_MAP. */
typedef struct vit_attn_pool_params {
    int latent, q_w, q_b, kv_w, kv_b, proj_w, proj_b, norm_w, norm_b, fc1_w, fc1_b, fc2_w, fc2_b;
} vit_attn_pool_params;

typedef struct vit_meta_entry {
    char *key, *value;
} vit_meta_entry;

struct vit_model {
    vit_context *ctx;
    vit_backend *be;   /* a reference: the backend the model was created on holds its buffers */
    struct vit_config cfg;
    int grid, num_patches, tokens, hidden; /* derived from cfg */
    int prefix;        /* class + register tokens before the patch tokens */
    bool fc_norm;      /* the final norm comes after pooling (resolved VIT_CFG_FC_NORM) */

    vit_param *params;
    int n_params;
    int64_t total;     /* floats in each flat buffer */
    float *weights;    /* all parameters, 64-byte aligned, in be's memory */
    float *grads;      /* same layout; NULL until a gradient is first needed (inference never pays for it) */
    /* The stamp of the weights' contents: renewed by every write to them
     * (vit_model_weights_changed), so products may cache reordered weights. */
    uint64_t weights_stamp;

    /* Indices into params. */
    int cls_token, reg_token, pos_embed, patch_w, patch_b, patch_norm_w, patch_norm_b, norm_pre_w, norm_pre_b;
    int norm_w, norm_b, head_w, head_b; /* -1: absent */
    vit_block_params *blocks;
    vit_attn_pool_params attn_pool; /* latent < 0 without one */

    bool training, grad_enabled;
    uint64_t rng_counter; /* forwards in training mode: keys dropout masks */
    vit_tape tape;
    vit_value *logits;    /* of the last forward: the caller's logits tensor */
    vit_value *loss;
    int batch;

    vit_meta_entry *meta;
    int n_meta;

    /* Data-parallel training (dist/): the communicator the gradients are
     * averaged over, its buckets, and this rank, which salts the dropout masks. */
    struct vit_comm *comm;
    struct vit_dist_buckets *dist;
    int mask_rank;
};

/* Rows of pos_embed before the patch grid: class and register tokens, or 0
 * with no_embed_class. */
static inline int64_t vit_config_pos_prefix(const struct vit_config *c) {
    return c->no_embed_class ? 0 : c->class_token + c->reg_tokens;
}
/* Whether the final LayerNorm is applied after pooling (timm's fc_norm). */
static inline bool vit_config_fc_norm(const struct vit_config *c) {
    return c->fc_norm < 0 ? c->global_pool == VIT_POOL_AVG : c->fc_norm != 0;
}
/* The seed of the model's dropout and DropPath masks: the context's, and
 * for ranks other than 0 of a data-parallel run one of their own, so that
 * shards do not share masks. */
static inline uint64_t vit_model_mask_seed(const struct vit_model *m) {
    return m->mask_rank ? vit_rng_key(m->ctx->seed, 0xD157ull, (uint64_t)m->mask_rank) : m->ctx->seed;
}

int vit_model_find_param(const struct vit_model *model, const char *name);
/* Allocate the (zeroed) gradient buffer if it is not there yet. */
vit_status vit_model_ensure_grads(struct vit_model *model);
/* A zeroed buffer of n floats in the model's device memory (the padding
 * between parameters must read as zero), or NULL with the error set. */
float *vit_model_alloc_flat(struct vit_model *model, const char *what);
/* To be called before (or as) anything writes to model->weights: products
 * then stop using weights reordered from the old contents. */
static inline void vit_model_weights_changed(struct vit_model *model) { model->weights_stamp = vit_stamp_next(); }
/* The model's parameter idx (pos_embed, ...) as a device pointer into weights. */
static inline float *vit_model_param_data(const struct vit_model *model, int idx) {
    return model->weights + model->params[idx].offset;
}

#endif
