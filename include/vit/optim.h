/*
 * libvit optimizers: AdamW with PyTorch's defaults and semantics.
 */
#ifndef VIT_OPTIM_H
#define VIT_OPTIM_H

#include "model.h"

VIT_EXTERN_C_BEGIN

typedef struct vit_optimizer vit_optimizer;

typedef enum vit_optim_param {
    VIT_OPT_LR = 1,            /* real: learning rate (1e-3, torch.optim.AdamW's default) */
    VIT_OPT_BETA1 = 2,         /* real: 0.9 */
    VIT_OPT_BETA2 = 3,         /* real: 0.999 */
    VIT_OPT_EPS = 4,           /* real: 1e-8 */
    VIT_OPT_WEIGHT_DECAY = 5,  /* real: decoupled decay, 0.01 */
    VIT_OPT_CLIP_GRAD_NORM = 6,/* real: clip the global L2 norm to this before the step; 0 = off */
    VIT_OPT_LAST_GRAD_NORM = 7,/* real, read only: global gradient norm seen by the last step */
    VIT_OPT_STEP = 32,         /* int: steps taken (read and write, for checkpoints) */
    VIT_OPT_DECAY_EXEMPT = 33  /* int 0/1: no decay for biases, norms, pos_embed, cls_token (0) */
} vit_optim_param;

/* Which optimizer state vit_optimizer_state_read/write address. */
typedef enum vit_optim_state {
    VIT_OPT_STATE_EXP_AVG = 0,    /* m, PyTorch's exp_avg */
    VIT_OPT_STATE_EXP_AVG_SQ = 1  /* v, PyTorch's exp_avg_sq */
} vit_optim_state;

VIT_API vit_status vit_adamw_create(vit_model *model, vit_optimizer **out);
VIT_API void vit_optimizer_destroy(vit_optimizer *opt);
VIT_API vit_status vit_optimizer_set_float(vit_optimizer *opt, vit_optim_param param, double value);
VIT_API vit_status vit_optimizer_get_float(const vit_optimizer *opt, vit_optim_param param, double *value);
VIT_API vit_status vit_optimizer_set_int(vit_optimizer *opt, vit_optim_param param, int64_t value);
VIT_API vit_status vit_optimizer_get_int(const vit_optimizer *opt, vit_optim_param param, int64_t *value);
/* One AdamW update of every parameter from its accumulated gradient. */
VIT_API vit_status vit_optimizer_step(vit_optimizer *opt);
VIT_API vit_status vit_optimizer_zero_grad(vit_optimizer *opt);
/* A parameter's m or v by its model name, f32, numel * 4 bytes. */
VIT_API vit_status vit_optimizer_state_read(const vit_optimizer *opt, vit_optim_state which,
                                            const char *name, float *dst, size_t bytes);
VIT_API vit_status vit_optimizer_state_write(vit_optimizer *opt, vit_optim_state which,
                                             const char *name, const float *src, size_t bytes);

VIT_EXTERN_C_END

#endif
