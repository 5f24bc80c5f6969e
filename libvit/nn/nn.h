/* The model's internals shared with the optimizer and checkpoint code. */
#ifndef VIT_NN_H
#define VIT_NN_H

#include "core/core.h"
#include "ops/ops.h"
#include "vit/model.h"

struct vit_config {
    int64_t img_size, patch_size, in_channels, num_classes, dim, depth, heads, qkv_bias, patch_norm, global_pool;
    double mlp_ratio, drop_rate, attn_drop_rate, drop_path_rate, ln_eps;
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
    int norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} vit_block_params;

typedef struct vit_meta_entry {
    char *key, *value;
} vit_meta_entry;

struct vit_model {
    vit_context *ctx;
    vit_backend *be;   /* a reference: the backend the model was created on holds its buffers */
    struct vit_config cfg;
    int grid, num_patches, tokens, hidden; /* derived from cfg */

    vit_param *params;
    int n_params;
    int64_t total;     /* floats in each flat buffer */
    float *weights;    /* all parameters, 64-byte aligned, in be's memory */
    float *grads;      /* same layout; NULL until a gradient is first needed (inference never pays for it) */
    /* The stamp of the weights' contents: renewed by every write to them
     * (vit_model_weights_changed), so products may cache reordered weights. */
    uint64_t weights_stamp;

    /* Indices into params. */
    int cls_token, pos_embed, patch_w, patch_b, patch_norm_w, patch_norm_b, norm_w, norm_b, head_w, head_b;
    vit_block_params *blocks;

    bool training, grad_enabled;
    uint64_t rng_counter; /* forwards in training mode: keys dropout masks */
    vit_tape tape;
    vit_value *logits;    /* of the last forward: the caller's logits tensor */
    vit_value *loss;
    int batch;

    vit_meta_entry *meta;
    int n_meta;
};

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
