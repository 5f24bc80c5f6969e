/* AdamW over the model's flat buffers, torch.optim.AdamW's semantics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "nn/nn.h"
#include "vit/optim.h"

struct vit_optimizer {
    vit_model *model;
    vit_backend *be; /* a reference: m and v stay freeable whatever is destroyed first */
    double lr, beta1, beta2, eps, weight_decay, clip_norm, last_grad_norm;
    int64_t step;
    bool decay_exempt;
    float *m, *v; /* mirror the model's flat parameter layout, in its device memory */
};

vit_status vit_adamw_create(vit_model *model, vit_optimizer **out) {
    VIT_CHECK_ARG(out, "vit_adamw_create: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(model, "vit_adamw_create: model is NULL");
    vit_optimizer *o = calloc(1, sizeof *o);
    if (!o) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_adamw_create: no memory");
    o->model = model;
    o->be = vit_backend_retain(model->be);
    o->lr = 1e-3;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->weight_decay = 1e-2;
    o->m = vit_model_alloc_flat(model, "AdamW's exp_avg");
    o->v = o->m ? vit_model_alloc_flat(model, "AdamW's exp_avg_sq") : NULL;
    if (!o->m || !o->v) {
        vit_status s = vit_last_status();
        vit_optimizer_destroy(o);
        vit_error_prefix("vit_adamw_create");
        return s;
    }
    *out = o;
    return VIT_OK;
}

void vit_optimizer_destroy(vit_optimizer *o) {
    if (!o) return;
    o->be->ops->free(o->be, o->m);
    o->be->ops->free(o->be, o->v);
    vit_backend_release(o->be);
    free(o);
}

static double *float_slot(vit_optimizer *o, vit_optim_param p) {
    switch (p) {
    case VIT_OPT_LR: return &o->lr;
    case VIT_OPT_BETA1: return &o->beta1;
    case VIT_OPT_BETA2: return &o->beta2;
    case VIT_OPT_EPS: return &o->eps;
    case VIT_OPT_WEIGHT_DECAY: return &o->weight_decay;
    case VIT_OPT_CLIP_GRAD_NORM: return &o->clip_norm;
    case VIT_OPT_LAST_GRAD_NORM: return &o->last_grad_norm;
    default: return NULL;
    }
}

vit_status vit_optimizer_set_float(vit_optimizer *o, vit_optim_param p, double value) {
    VIT_CHECK_ARG(o, "vit_optimizer_set_float: optimizer is NULL");
    double *slot = float_slot(o, p);
    VIT_CHECK_ARG(slot && p != VIT_OPT_LAST_GRAD_NORM, "vit_optimizer_set_float: parameter %d is not a settable real",
                  (int)p);
    bool ok = isfinite(value);
    switch (p) {
    case VIT_OPT_BETA1:
    case VIT_OPT_BETA2: ok = ok && value >= 0 && value < 1; break;
    case VIT_OPT_EPS: ok = ok && value > 0; break;
    default: ok = ok && value >= 0; break;
    }
    VIT_CHECK_ARG(ok, "vit_optimizer_set_float: value %g is out of range for parameter %d", value, (int)p);
    *slot = value;
    return VIT_OK;
}

vit_status vit_optimizer_get_float(const vit_optimizer *o, vit_optim_param p, double *value) {
    VIT_CHECK_ARG(o, "vit_optimizer_get_float: optimizer is NULL");
    VIT_CHECK_ARG(value, "vit_optimizer_get_float: value is NULL");
    double *slot = float_slot((vit_optimizer *)o, p);
    VIT_CHECK_ARG(slot, "vit_optimizer_get_float: parameter %d is not a real", (int)p);
    *value = *slot;
    return VIT_OK;
}

vit_status vit_optimizer_set_int(vit_optimizer *o, vit_optim_param p, int64_t value) {
    VIT_CHECK_ARG(o, "vit_optimizer_set_int: optimizer is NULL");
    switch (p) {
    case VIT_OPT_STEP:
        VIT_CHECK_ARG(value >= 0, "vit_optimizer_set_int: VIT_OPT_STEP %lld is negative", (long long)value);
        o->step = value;
        return VIT_OK;
    case VIT_OPT_DECAY_EXEMPT:
        VIT_CHECK_ARG(value == 0 || value == 1, "vit_optimizer_set_int: VIT_OPT_DECAY_EXEMPT must be 0 or 1");
        o->decay_exempt = value;
        return VIT_OK;
    default: return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_optimizer_set_int: parameter %d is not an integer", (int)p);
    }
}

vit_status vit_optimizer_get_int(const vit_optimizer *o, vit_optim_param p, int64_t *value) {
    VIT_CHECK_ARG(o, "vit_optimizer_get_int: optimizer is NULL");
    VIT_CHECK_ARG(value, "vit_optimizer_get_int: value is NULL");
    switch (p) {
    case VIT_OPT_STEP: *value = o->step; return VIT_OK;
    case VIT_OPT_DECAY_EXEMPT: *value = o->decay_exempt; return VIT_OK;
    default: return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_optimizer_get_int: parameter %d is not an integer", (int)p);
    }
}

vit_status vit_optimizer_zero_grad(vit_optimizer *o) {
    VIT_CHECK_ARG(o, "vit_optimizer_zero_grad: optimizer is NULL");
    return vit_model_zero_grad(o->model);
}

/* The step's scalars, as torch forms them: the hyper-parameters rounded to
 * float first (they reach the kernel as floats), each product or quotient in
 * double, rounded once. */
static vit_adamw_consts step_consts(const vit_optimizer *o, float weight_decay, float grad_scale) {
    const float lr = (float)o->lr, beta1 = (float)o->beta1, beta2 = (float)o->beta2;
    const float bc1 = (float)(1.0 - pow(o->beta1, (double)o->step));
    const float bc2 = (float)(1.0 - pow(o->beta2, (double)o->step));
    return (vit_adamw_consts){
        .decay = (float)(1.0 - (double)lr * weight_decay),
        .beta1 = beta1,
        .one_beta1 = (float)(1.0 - (double)beta1),
        .beta2 = beta2,
        .one_beta2 = (float)(1.0 - (double)beta2),
        .sqrt_bc2 = (float)sqrt((double)bc2),
        .eps = (float)o->eps,
        .neg_step = (float)(-(double)lr / bc1),
        .grad_scale = grad_scale,
    };
}

vit_status vit_optimizer_step(vit_optimizer *o) {
    VIT_CHECK_ARG(o, "vit_optimizer_step: optimizer is NULL");
    vit_model *m = o->model;
    vit_backend *be = m->be;
    vit_context_enter(m->ctx);
    VIT_TRY(vit_model_ensure_grads(m));
    /* Padding between parameters is zero in every buffer, so the flat buffer's
     * norm is the parameters' norm. */
    double squares;
    VIT_TRY(be->ops->sum_squares(be, m->grads, m->total, &squares));
    double norm = sqrt(squares);
    o->last_grad_norm = norm;
    if (!isfinite(norm)) return vit_fail(VIT_ERR_NUMERIC, "vit_optimizer_step: gradient norm is %g", norm);
    /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when above. */
    float grad_scale = 1.0f;
    if (o->clip_norm > 0 && norm > o->clip_norm) grad_scale = (float)(o->clip_norm / (norm + 1e-6));
    o->step++;
    vit_adamw_consts decayed = step_consts(o, (float)o->weight_decay, grad_scale);
    vit_adamw_consts exempt = step_consts(o, 0.0f, grad_scale);
    vit_model_weights_changed(m);
    for (int i = 0; i < m->n_params; i++) {
        const vit_param *p = &m->params[i];
        const vit_adamw_consts *k = (!o->decay_exempt || p->decay) ? &decayed : &exempt;
        VIT_TRY(be->ops->adamw_update(be, m->weights + p->offset, o->m + p->offset, o->v + p->offset,
                                      m->grads + p->offset, p->numel, k));
    }
    return VIT_OK;
}

static vit_status state_slice(const vit_optimizer *o, vit_optim_state which, const char *name, size_t bytes,
                              const char *fn, float **slice) {
    VIT_CHECK_ARG(o, "%s: optimizer is NULL", fn);
    VIT_CHECK_ARG(name, "%s: name is NULL", fn);
    VIT_CHECK_ARG(which == VIT_OPT_STATE_EXP_AVG || which == VIT_OPT_STATE_EXP_AVG_SQ, "%s: unknown state %d", fn,
                  (int)which);
    int idx = vit_model_find_param(o->model, name);
    if (idx < 0) return vit_fail(VIT_ERR_NOT_FOUND, "%s: the model has no parameter '%s'", fn, name);
    const vit_param *p = &o->model->params[idx];
    if (bytes != (size_t)p->numel * sizeof(float))
        return vit_fail(VIT_ERR_SHAPE, "%s: '%s' has %lld floats, buffer has %zu bytes", fn, name,
                        (long long)p->numel, bytes);
    *slice = (which == VIT_OPT_STATE_EXP_AVG ? o->m : o->v) + p->offset;
    return VIT_OK;
}

vit_status vit_optimizer_state_read(const vit_optimizer *o, vit_optim_state which, const char *name, float *dst,
                                    size_t bytes) {
    float *slice = NULL;
    VIT_CHECK_ARG(dst, "vit_optimizer_state_read: dst is NULL");
    VIT_TRY(state_slice(o, which, name, bytes, "vit_optimizer_state_read", &slice));
    return o->be->ops->copy(o->be, dst, slice, bytes, VIT_COPY_TO_HOST);
}

vit_status vit_optimizer_state_write(vit_optimizer *o, vit_optim_state which, const char *name, const float *src,
                                     size_t bytes) {
    float *slice = NULL;
    VIT_CHECK_ARG(src, "vit_optimizer_state_write: src is NULL");
    VIT_TRY(state_slice(o, which, name, bytes, "vit_optimizer_state_write", &slice));
    return o->be->ops->copy(o->be, slice, src, bytes, VIT_COPY_TO_DEVICE);
}
