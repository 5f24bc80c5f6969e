/* The Vision Transformer: parameters in timm's names and order, timm's
 * initialisation, and the forward pass recorded on the model's tape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "nn/nn.h"

/* ------------------------------------------------------------ parameters */
typedef struct param_builder {
    vit_model *model;
    int cap;
} param_builder;

static int add_param(param_builder *pb, const char *name, int ndim, const int64_t *shape, bool decay) {
    vit_model *m = pb->model;
    if (m->n_params == pb->cap) {
        int cap = pb->cap ? pb->cap * 2 : 64;
        vit_param *grown = realloc(m->params, (size_t)cap * sizeof *grown);
        if (!grown) return -1;
        m->params = grown;
        pb->cap = cap;
    }
    vit_param *p = &m->params[m->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= shape[i];
    }
    /* Each parameter starts on a 64-byte boundary: vector loads stay aligned. */
    p->offset = m->total;
    m->total += (p->numel + 15) / 16 * 16;
    p->decay = decay;
    return m->n_params++;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static vit_status build_params(vit_model *m) {
    const struct vit_config *c = &m->cfg;
    param_builder pb = {m, 0};
    int64_t D = c->dim, H = m->hidden;
    char name[48];
    bool ok = true;
    /* timm's state_dict order. */
    m->cls_token = m->reg_token = m->patch_b = m->patch_norm_w = m->patch_norm_b = -1;
    m->norm_pre_w = m->norm_pre_b = m->head_w = m->head_b = -1;
    if (c->class_token) ok &= (m->cls_token = add_param(&pb, "cls_token", 3, SHAPE(1, 1, D), false)) >= 0;
    /* timm leaves reg_token out of no_weight_decay() */
    if (c->reg_tokens) ok &= (m->reg_token = add_param(&pb, "reg_token", 3, SHAPE(1, c->reg_tokens, D), true)) >= 0;
    ok &= (m->pos_embed = add_param(&pb, "pos_embed", 3, SHAPE(1, m->num_patches + vit_config_pos_prefix(c), D),
                                    false)) >= 0;
    ok &= (m->patch_w = add_param(&pb, "patch_embed.proj.weight", 4,
                                  SHAPE(D, c->in_channels, c->patch_size, c->patch_size), true)) >= 0;
    if (c->patch_bias) ok &= (m->patch_b = add_param(&pb, "patch_embed.proj.bias", 1, SHAPE(D), false)) >= 0;
    if (c->patch_norm) {
        ok &= (m->patch_norm_w = add_param(&pb, "patch_embed.norm.weight", 1, SHAPE(D), false)) >= 0;
        ok &= (m->patch_norm_b = add_param(&pb, "patch_embed.norm.bias", 1, SHAPE(D), false)) >= 0;
    }
    if (c->pre_norm) {
        ok &= (m->norm_pre_w = add_param(&pb, "norm_pre.weight", 1, SHAPE(D), false)) >= 0;
        ok &= (m->norm_pre_b = add_param(&pb, "norm_pre.bias", 1, SHAPE(D), false)) >= 0;
    }
    m->blocks = calloc((size_t)c->depth, sizeof *m->blocks);
    if (!m->blocks) ok = false;
    for (int i = 0; ok && i < c->depth; i++) {
        vit_block_params *b = &m->blocks[i];
#define BLOCK_PARAM(field, suffix, decay, ...)                                          \
    snprintf(name, sizeof name, "blocks.%d.%s", i, suffix);                              \
    ok &= (b->field = add_param(&pb, name, (int)(sizeof SHAPE(__VA_ARGS__) / sizeof(int64_t)), \
                                SHAPE(__VA_ARGS__), decay)) >= 0
        BLOCK_PARAM(norm1_w, "norm1.weight", false, D);
        BLOCK_PARAM(norm1_b, "norm1.bias", false, D);
        BLOCK_PARAM(qkv_w, "attn.qkv.weight", true, 3 * D, D);
        b->qkv_b = -1;
        if (c->qkv_bias) { BLOCK_PARAM(qkv_b, "attn.qkv.bias", false, 3 * D); }
        BLOCK_PARAM(proj_w, "attn.proj.weight", true, D, D);
        BLOCK_PARAM(proj_b, "attn.proj.bias", false, D);
        b->ls1 = b->ls2 = -1;
        if (c->init_values > 0) { BLOCK_PARAM(ls1, "ls1.gamma", false, D); }
        BLOCK_PARAM(norm2_w, "norm2.weight", false, D);
        BLOCK_PARAM(norm2_b, "norm2.bias", false, D);
        BLOCK_PARAM(fc1_w, "mlp.fc1.weight", true, H, D);
        BLOCK_PARAM(fc1_b, "mlp.fc1.bias", false, H);
        BLOCK_PARAM(fc2_w, "mlp.fc2.weight", true, D, H);
        BLOCK_PARAM(fc2_b, "mlp.fc2.bias", false, D);
        if (c->init_values > 0) { BLOCK_PARAM(ls2, "ls2.gamma", false, D); }
#undef BLOCK_PARAM
    }
    /* timm: global_pool='avg' normalises after pooling under the name fc_norm
     * (unless fc_norm=False, as the _gap models). */
    const char *norm = vit_config_fc_norm(c) ? "fc_norm" : "norm";
    snprintf(name, sizeof name, "%s.weight", norm);
    ok &= ok && (m->norm_w = add_param(&pb, name, 1, SHAPE(D), false)) >= 0;
    snprintf(name, sizeof name, "%s.bias", norm);
    ok &= ok && (m->norm_b = add_param(&pb, name, 1, SHAPE(D), false)) >= 0;
    vit_attn_pool_params *ap = &m->attn_pool;
    ap->latent = -1;
    if (ok && c->global_pool == VIT_POOL_MAP) {
#define POOL_PARAM(field, suffix, decay, ...)                                                   \
    ok &= (ap->field = add_param(&pb, "attn_pool." suffix, (int)(sizeof SHAPE(__VA_ARGS__) / sizeof(int64_t)), \
                                 SHAPE(__VA_ARGS__), decay)) >= 0
        POOL_PARAM(latent, "latent", true, 1, 1, D);
        POOL_PARAM(q_w, "q.weight", true, D, D);
        POOL_PARAM(q_b, "q.bias", false, D);
        POOL_PARAM(kv_w, "kv.weight", true, 2 * D, D);
        POOL_PARAM(kv_b, "kv.bias", false, 2 * D);
        POOL_PARAM(proj_w, "proj.weight", true, D, D);
        POOL_PARAM(proj_b, "proj.bias", false, D);
        POOL_PARAM(norm_w, "norm.weight", false, D);
        POOL_PARAM(norm_b, "norm.bias", false, D);
        POOL_PARAM(fc1_w, "mlp.fc1.weight", true, H, D);
        POOL_PARAM(fc1_b, "mlp.fc1.bias", false, H);
        POOL_PARAM(fc2_w, "mlp.fc2.weight", true, D, H);
        POOL_PARAM(fc2_b, "mlp.fc2.bias", false, D);
#undef POOL_PARAM
    }
    if (c->num_classes > 0) { /* 0: no head, timm's num_classes=0 (nn.Identity) */
        ok &= ok && (m->head_w = add_param(&pb, "head.weight", 2, SHAPE(c->num_classes, D), true)) >= 0;
        ok &= ok && (m->head_b = add_param(&pb, "head.bias", 1, SHAPE(c->num_classes), false)) >= 0;
    }
    if (!ok) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_model_create: no memory for the parameter table");
    return VIT_OK;
}

/* timm's init_weights (mode ''): trunc_normal(.02) for Linear weights and
 * pos_embed, normal(1e-6) for cls_token and reg_token, zero biases, LayerNorm
 * 1/0, layer scale gammas init_values; the
 * patch projection is a Conv2d and keeps PyTorch's default
 * kaiming_uniform(a=sqrt 5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
static void init_params(vit_model *m, float *weights) {
    uint64_t seed = m->ctx->seed;
    for (int i = 0; i < m->n_params; i++) {
        vit_param *p = &m->params[i];
        float *w = weights + p->offset;
        uint64_t key = vit_rng_key(seed, 0x1A17, (uint64_t)i);
        size_t len = strlen(p->name);
        bool is_bias = len > 5 && !strcmp(p->name + len - 5, ".bias");
        bool is_norm = strstr(p->name, "norm") != NULL;
        bool is_gamma = len > 6 && !strcmp(p->name + len - 6, ".gamma");
        if (is_gamma) {
            for (int64_t k = 0; k < p->numel; k++) w[k] = (float)m->cfg.init_values;
        } else if (i == m->attn_pool.latent) { /* AttentionPoolLatent: trunc_normal_tf_(std = dim^-0.5) */
            float std = 1.0f / sqrtf((float)m->cfg.dim);
            vit_rng_trunc_normal(w, (size_t)p->numel, key, std, -2.0f * std, 2.0f * std);
        } else if (i == m->cls_token || i == m->reg_token) {
            for (int64_t k = 0; k < p->numel; k++) w[k] = (float)(vit_rng_normal(key, (uint64_t)k) * 1e-6);
        } else if (i == m->patch_w || i == m->patch_b) {
            const vit_param *pw = &m->params[m->patch_w];
            float bound = 1.0f / sqrtf((float)(pw->numel / pw->shape[0]));
            for (int64_t k = 0; k < p->numel; k++) w[k] = (2.0f * vit_rng_uniform(key, (uint64_t)k) - 1.0f) * bound;
        } else if (is_norm) {
            for (int64_t k = 0; k < p->numel; k++) w[k] = is_bias ? 0.0f : 1.0f;
        } else if (is_bias) {
            memset(w, 0, (size_t)p->numel * sizeof *w);
        } else {
            vit_rng_trunc_normal(w, (size_t)p->numel, key, 0.02f, -2.0f, 2.0f);
        }
    }
}

int vit_model_find_param(const vit_model *model, const char *name) {
    for (int i = 0; i < model->n_params; i++)
        if (!strcmp(model->params[i].name, name)) return i;
    return -1;
}

/* ----------------------------------------------------------- life cycle */
float *vit_model_alloc_flat(vit_model *m, const char *what) {
    const size_t bytes = (size_t)m->total * sizeof(float);
    float *p = m->be->ops->alloc(m->be, bytes);
    if (p && m->be->ops->zero(m->be, p, bytes) != VIT_OK) {
        m->be->ops->free(m->be, p);
        return NULL;
    }
    if (!p) vit_fail(VIT_ERR_OUT_OF_MEMORY, "model: cannot allocate %s for %lld parameters", what, (long long)m->total);
    return p;
}

/* Draws on the host: in place when the backend's memory is the host's, else
 * into a staging buffer that is then uploaded. */
static vit_status init_weights(vit_model *m) {
    float *host = m->be->host_memory ? m->weights : vit_alloc((size_t)m->total * sizeof(float));
    if (!host) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_model_create: no host memory to initialise the weights");
    vit_context_enter(m->ctx); /* initialisation runs on the context's threads */
    init_params(m, host);
    vit_status s = VIT_OK;
    if (host != m->weights) {
        s = m->be->ops->copy(m->be, m->weights, host, (size_t)m->total * sizeof(float), VIT_COPY_TO_DEVICE);
        vit_free(host);
    }
    return s;
}

vit_status vit_model_create(vit_context *ctx, const vit_config *cfg, vit_model **out) {
    VIT_CHECK_ARG(out, "vit_model_create: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(ctx, "vit_model_create: ctx is NULL");
    VIT_CHECK_ARG(cfg, "vit_model_create: cfg is NULL");
    VIT_TRY(vit_config_validate(cfg));
    vit_model *m = calloc(1, sizeof *m);
    if (!m) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_model_create: no memory");
    m->ctx = ctx;
    m->be = vit_backend_retain(ctx->backend);
    m->cfg = *cfg;
    m->grid = (int)(cfg->img_size / cfg->patch_size);
    m->num_patches = m->grid * m->grid;
    m->prefix = (int)(cfg->class_token + cfg->reg_tokens);
    m->tokens = m->num_patches + m->prefix;
    m->fc_norm = vit_config_fc_norm(cfg);
    m->hidden = (int)(cfg->dim * cfg->mlp_ratio);
    m->grad_enabled = true;
    vit_tape_init(&m->tape, m->be);
    vit_status s = build_params(m);
    if (s == VIT_OK) {
        m->weights = vit_model_alloc_flat(m, "weights");
        if (!m->weights) s = vit_last_status();
    }
    if (s == VIT_OK) s = init_weights(m);
    vit_model_weights_changed(m);
    if (s != VIT_OK) {
        vit_model_destroy(m);
        return s;
    }
    *out = m;
    return VIT_OK;
}

vit_status vit_model_ensure_grads(vit_model *m) {
    if (m->grads) return VIT_OK;
    m->grads = vit_model_alloc_flat(m, "gradients");
    return m->grads ? VIT_OK : vit_last_status();
}

void vit_model_destroy(vit_model *m) {
    if (!m) return;
    vit_dist_detach(m);
    vit_tape_release(&m->tape);
    if (m->be) {
        if (m->weights && m->be->ops->forget_weights)
            m->be->ops->forget_weights(m->be, m->weights, (size_t)m->total * sizeof(float));
        m->be->ops->free(m->be, m->weights);
        m->be->ops->free(m->be, m->grads);
        vit_backend_release(m->be);
    }
    free(m->params);
    free(m->blocks);
    for (int i = 0; i < m->n_meta; i++) {
        free(m->meta[i].key);
        free(m->meta[i].value);
    }
    free(m->meta);
    free(m);
}

vit_status vit_model_get_config(const vit_model *model, vit_config **out) {
    VIT_CHECK_ARG(out, "vit_model_get_config: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(model, "vit_model_get_config: model is NULL");
    return vit_config_copy(&model->cfg, out);
}

vit_status vit_model_set_training(vit_model *model, int training) {
    VIT_CHECK_ARG(model, "vit_model_set_training: model is NULL");
    model->training = training != 0;
    return VIT_OK;
}

vit_status vit_model_set_grad(vit_model *model, int enabled) {
    VIT_CHECK_ARG(model, "vit_model_set_grad: model is NULL");
    model->grad_enabled = enabled != 0;
    return VIT_OK;
}

vit_status vit_model_get_rng_state(const vit_model *model, uint64_t *state) {
    VIT_CHECK_ARG(model, "vit_model_get_rng_state: model is NULL");
    VIT_CHECK_ARG(state, "vit_model_get_rng_state: state is NULL");
    *state = model->rng_counter;
    return VIT_OK;
}

vit_status vit_model_set_rng_state(vit_model *model, uint64_t state) {
    VIT_CHECK_ARG(model, "vit_model_set_rng_state: model is NULL");
    model->rng_counter = state;
    return VIT_OK;
}

/* -------------------------------------------------------------- forward */
/* Random streams: each dropout site has its own stream id. */
enum { STREAM_POS_DROP = 1, STREAM_BLOCK = 16 };

/* A caller tensor must live where the model does. */
static vit_status expect_device(const vit_model *m, const vit_tensor *t, const char *name) {
    if (t->device == m->be->device) return VIT_OK;
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "%s: the tensor is on device %d, the model on device %d (%s)", name,
                    (int)t->device, (int)m->be->device, m->be->ops->name);
}

static vit_value *param_value(vit_model *m, int idx) {
    if (idx < 0) return NULL;
    const vit_param *p = &m->params[idx];
    vit_value *v = vit_tape_wrap(&m->tape, m->weights + p->offset, m->grads ? m->grads + p->offset : NULL, p->numel,
                                 true);
    if (v) v->stamp = m->weights_stamp;
    return v;
}

/* Per-sample DropPath scales [B] (0 or 1 / keep), drawn on the host and
 * uploaded; NULL when off. */
static const float *drop_path_scales(vit_model *m, int B, float rate, uint64_t key, bool *oom) {
    if (!m->training || rate <= 0.0f) return NULL;
    float *scale = vit_arena_floats(&m->tape.arena, (size_t)B);
    const float *dev = NULL;
    if (scale) {
        float keep = 1.0f - rate;
        for (int b = 0; b < B; b++) scale[b] = vit_rng_uniform(key, (uint64_t)b) >= rate ? 1.0f / keep : 0.0f;
        dev = vit_tape_upload(&m->tape, scale, (size_t)B * sizeof *scale);
    }
    *oom = dev == NULL;
    return dev;
}

#define NEED(v) do { if (!(v)) goto fail; } while (0)

/* x [B, T, D] -> [B, T, D], or with class_only [B, D]: the class token's
 * row alone, for inference that pools it. Its keys and values need every
 * token, but after attention nothing mixes tokens, so the projection, the
 * MLP and both residuals run on B rows instead of B * T. */
static vit_value *block_forward(vit_model *m, vit_value *x, int i, int B, bool class_only) {
    const struct vit_config *c = &m->cfg;
    const vit_block_params *bp = &m->blocks[i];
    vit_tape *t = &m->tape;
    int T = m->tokens, D = (int)c->dim, Hh = (int)c->heads, rows = B * T;
    bool train = m->training;
    uint64_t step = m->rng_counter, seed = vit_model_mask_seed(m);
    uint64_t stream = STREAM_BLOCK + (uint64_t)i * 8;
    float drop = train ? (float)c->drop_rate : 0.0f, attn_drop = train ? (float)c->attn_drop_rate : 0.0f;
    /* timm's linear stochastic-depth schedule: rate * i / (depth - 1). */
    float dp = c->depth > 1 ? (float)(c->drop_path_rate * i / (c->depth - 1)) : (float)c->drop_path_rate;
    bool oom = false;

    vit_value *h = vit_op_layernorm(t, x, param_value(m, bp->norm1_w), param_value(m, bp->norm1_b), rows, D,
                                    (float)c->ln_eps);
    NEED(h);
    vit_value *qkv = vit_op_linear(t, h, param_value(m, bp->qkv_w), param_value(m, bp->qkv_b), rows, D, 3 * D);
    NEED(qkv);
    vit_value *a = vit_op_attention(t, qkv, B, T, Hh, D / Hh, attn_drop, vit_rng_key(seed, stream, step));
    NEED(a);
    int64_t per_image = (int64_t)T * D; /* a residual's DropPath span */
    if (class_only) {
        a = vit_op_pool(t, a, B, T, D, false, 0);
        NEED(a);
        x = vit_op_pool(t, x, B, T, D, false, 0);
        NEED(x);
        rows = B;
        per_image = D;
    }
    vit_value *o = vit_op_linear(t, a, param_value(m, bp->proj_w), param_value(m, bp->proj_b), rows, D, D);
    NEED(o);
    o = vit_op_dropout(t, o, drop, vit_rng_key(seed, stream + 1, step));
    NEED(o);
    if (bp->ls1 >= 0) {
        o = vit_op_scale_channels(t, o, param_value(m, bp->ls1), rows, D);
        NEED(o);
    }
    const float *s1 = drop_path_scales(m, B, dp, vit_rng_key(seed, stream + 2, step), &oom);
    NEED(!oom);
    x = vit_op_residual(t, x, o, s1, B, per_image);
    NEED(x);

    h = vit_op_layernorm(t, x, param_value(m, bp->norm2_w), param_value(m, bp->norm2_b), rows, D, (float)c->ln_eps);
    NEED(h);
    vit_value *f = vit_op_linear_act(t, h, param_value(m, bp->fc1_w), param_value(m, bp->fc1_b), rows, D,
                                     m->hidden, c->quick_gelu != 0);
    NEED(f);
    f = vit_op_dropout(t, f, drop, vit_rng_key(seed, stream + 3, step));
    NEED(f);
    f = vit_op_linear(t, f, param_value(m, bp->fc2_w), param_value(m, bp->fc2_b), rows, m->hidden, D);
    NEED(f);
    f = vit_op_dropout(t, f, drop, vit_rng_key(seed, stream + 4, step));
    NEED(f);
    if (bp->ls2 >= 0) {
        f = vit_op_scale_channels(t, f, param_value(m, bp->ls2), rows, D);
        NEED(f);
    }
    const float *s2 = drop_path_scales(m, B, dp, vit_rng_key(seed, stream + 5, step), &oom);
    NEED(!oom);
    return vit_op_residual(t, x, f, s2, B, per_image);
fail:
    return NULL;
}

/* Without a tape a block's temporaries die with it: rewind the arena and move
 * the block's output down to where they began, or, when the previous block
 * left its output (this block's input, now dead too) at *slot, down to
 * there. Inference memory then holds one block's activations and one block
 * output, however deep the network. */
static vit_value *block_forward_inference(vit_model *m, vit_value *x, int i, int B, bool class_only,
                                          vit_arena_mark *slot, bool *have_slot) {
    vit_arena *arena = &m->tape.data;
    vit_arena_mark mark = vit_arena_save(arena);
    vit_value *y = block_forward(m, x, i, B, class_only);
    if (!y) return NULL;
    float *low = vit_arena_rewind_keep(arena, *have_slot ? *slot : mark, y->data, (size_t)y->numel * sizeof(float),
                                       slot);
    if (!low) return NULL;
    *have_slot = true;
    return vit_tape_wrap(&m->tape, low, NULL, y->numel, false);
}

static vit_status forward_failed(vit_model *m) {
    m->logits = NULL;
    vit_tape_reset(&m->tape, false);
    vit_error_prefix("vit_model_forward");
    return vit_last_status();
}

/* timm's AttentionPoolLatent over tokens [B, T, D] (no class or register
 * tokens): one learned query attends over them, then proj and x + mlp(norm(x))
 * -> [B, D]. */
static vit_value *attn_pool_forward(vit_model *m, vit_value *tokens, int B) {
    const struct vit_config *c = &m->cfg;
    const vit_attn_pool_params *ap = &m->attn_pool;
    vit_tape *t = &m->tape;
    int T = m->tokens, D = (int)c->dim, Hh = (int)c->heads;
    vit_value *kv = vit_op_linear(t, tokens, param_value(m, ap->kv_w), param_value(m, ap->kv_b), B * T, D, 2 * D);
    NEED(kv);
    vit_value *q = vit_op_linear(t, param_value(m, ap->latent), param_value(m, ap->q_w), param_value(m, ap->q_b), 1,
                                 D, D);
    NEED(q);
    vit_value *a = vit_op_pool_attention(t, q, kv, B, 1, T, Hh, D / Hh);
    NEED(a);
    vit_value *x = vit_op_linear(t, a, param_value(m, ap->proj_w), param_value(m, ap->proj_b), B, D, D);
    NEED(x);
    vit_value *h = vit_op_layernorm(t, x, param_value(m, ap->norm_w), param_value(m, ap->norm_b), B, D,
                                    (float)c->ln_eps);
    NEED(h);
    vit_value *f = vit_op_linear_act(t, h, param_value(m, ap->fc1_w), param_value(m, ap->fc1_b), B, D, m->hidden,
                                     c->quick_gelu != 0);
    NEED(f);
    f = vit_op_linear(t, f, param_value(m, ap->fc2_w), param_value(m, ap->fc2_b), B, m->hidden, D);
    NEED(f);
    return vit_op_residual(t, x, f, NULL, B, D);
fail:
    return NULL;
}

/* What a forward computes: the logits, the pooled features or the tokens. */
typedef enum { UPTO_LOGITS, UPTO_POOLED, UPTO_TOKENS } forward_upto;

static vit_status forward(vit_model *m, const vit_tensor *images, vit_tensor *out, forward_upto upto,
                          const char *fn) {
    VIT_CHECK_ARG(m, "%s: model is NULL", fn);
    const struct vit_config *c = &m->cfg;
    char what[64];
    snprintf(what, sizeof what, "%s: images", fn);
    VIT_TRY(vit_tensor_expect(images, what, VIT_DTYPE_F32, 4, SHAPE(-1, c->in_channels, c->img_size, c->img_size)));
    int B = (int)images->shape[0];
    int D = (int)c->dim, N = m->num_patches, T = m->tokens;
    int classes = c->num_classes > 0 ? (int)c->num_classes : D; /* no head: the pooled features */
    snprintf(what, sizeof what, "%s: %s", fn, upto == UPTO_LOGITS ? "logits" : upto == UPTO_POOLED ? "features" : "tokens");
    if (upto == UPTO_TOKENS)
        VIT_TRY(vit_tensor_expect(out, what, VIT_DTYPE_F32, 3, SHAPE(B, T, D)));
    else
        VIT_TRY(vit_tensor_expect(out, what, VIT_DTYPE_F32, 2, SHAPE(B, upto == UPTO_POOLED ? D : classes)));
    VIT_TRY(expect_device(m, images, fn));
    VIT_TRY(expect_device(m, out, fn));
    if (images->numel > INT32_MAX || (int64_t)B * m->tokens * m->hidden > INT32_MAX)
        return vit_fail(VIT_ERR_SHAPE, "%s: batch %d is too large for this model", fn, B);
    vit_context_enter(m->ctx);
    /* Features are for inference: nothing recorded. */
    bool record = m->grad_enabled && upto == UPTO_LOGITS;
    if (record) VIT_TRY(vit_model_ensure_grads(m));

    vit_tape *t = &m->tape;
    vit_tape_reset(t, record);
    m->logits = m->loss = NULL;
    m->batch = B;
    uint64_t step = m->rng_counter;
    if (m->training) m->rng_counter++;

    vit_value *img = vit_tape_wrap(t, images->data, NULL, images->numel, false);
    NEED(img);
    vit_value *x = vit_op_patch_embed(t, img, param_value(m, m->patch_w), param_value(m, m->patch_b), B,
                                      (int)c->in_channels, (int)c->img_size, (int)c->img_size, (int)c->patch_size, D);
    NEED(x);
    if (c->patch_norm) {
        x = vit_op_layernorm(t, x, param_value(m, m->patch_norm_w), param_value(m, m->patch_norm_b),
                             (int64_t)B * N, D, (float)c->ln_eps);
        NEED(x);
    }
    x = vit_op_embed_tokens(t, x, param_value(m, m->cls_token), param_value(m, m->reg_token),
                            param_value(m, m->pos_embed), B, N, D, (int)c->reg_tokens, !c->no_embed_class);
    NEED(x);
    x = vit_op_dropout(t, x, m->training ? (float)c->drop_rate : 0.0f,
                       vit_rng_key(vit_model_mask_seed(m), STREAM_POS_DROP, step));
    NEED(x);
    if (c->pre_norm) {
        /* read by the first block's norm1 and again by its residual */
        x = vit_op_layernorm_kept(t, x, param_value(m, m->norm_pre_w), param_value(m, m->norm_pre_b),
                                  (int64_t)B * T, D, (float)c->ln_eps);
        NEED(x);
    }
    vit_arena_mark slot; /* where the last inference block left its output */
    bool have_slot = false;
    /* Only the class token leaves the last block when nothing else is read:
     * ViT-B/16 then skips 6 % of its products. */
    bool class_out = !t->recording && upto != UPTO_TOKENS && c->global_pool == VIT_POOL_TOKEN && c->depth > 0;
    for (int i = 0; i < c->depth; i++) {
        bool class_only = class_out && i == c->depth - 1;
        x = t->recording ? block_forward(m, x, i, B, false)
                         : block_forward_inference(m, x, i, B, class_only, &slot, &have_slot);
        NEED(x);
    }
    vit_value *norm_w = param_value(m, m->norm_w), *norm_b = param_value(m, m->norm_b);
    bool avg = c->global_pool == VIT_POOL_AVG;
    if (upto == UPTO_TOKENS) {
        if (!m->fc_norm) { /* timm's forward_features ends with norm (the identity when fc_norm) */
            x = vit_op_layernorm(t, x, norm_w, norm_b, (int64_t)B * T, D, (float)c->ln_eps);
            NEED(x);
        }
        NEED(m->be->ops->copy(m->be, out->data, x->data, (size_t)x->numel * sizeof(float), VIT_COPY_ON_DEVICE) ==
             VIT_OK);
        return VIT_OK;
    }
    if (c->global_pool == VIT_POOL_MAP) {
        x = vit_op_layernorm(t, x, norm_w, norm_b, (int64_t)B * T, D, (float)c->ln_eps);
        NEED(x);
        x = attn_pool_forward(m, x, B);
        NEED(x);
    } else if (!avg || m->fc_norm) {
        /* LayerNorm is per token, so pooling first and normalising only the
         * pooled rows equals timm's norm-then-select for token pooling. */
        if (!class_out) {
            x = vit_op_pool(t, x, B, T, D, avg, m->prefix);
            NEED(x);
        }
        x = vit_op_layernorm(t, x, norm_w, norm_b, B, D, (float)c->ln_eps);
        NEED(x);
    } else { /* the mean of normalised tokens (fc_norm=False) */
        x = vit_op_layernorm(t, x, norm_w, norm_b, (int64_t)B * T, D, (float)c->ln_eps);
        NEED(x);
        x = vit_op_pool(t, x, B, T, D, avg, m->prefix);
        NEED(x);
    }
    if (upto == UPTO_POOLED || c->num_classes == 0) {
        NEED(m->be->ops->copy(m->be, out->data, x->data, (size_t)B * D * sizeof(float), VIT_COPY_ON_DEVICE) ==
             VIT_OK);
        if (upto == UPTO_LOGITS) m->logits = x;
        return VIT_OK;
    }
    /* The head writes straight into the caller's tensor, which the loss then reads. */
    x = vit_op_linear_to(t, out->data, x, param_value(m, m->head_w), param_value(m, m->head_b), B, D,
                         (int)c->num_classes);
    NEED(x);
    m->logits = x;
    return VIT_OK;
fail:
    return forward_failed(m);
}

vit_status vit_model_forward(vit_model *m, const vit_tensor *images, vit_tensor *logits) {
    return forward(m, images, logits, UPTO_LOGITS, "vit_model_forward");
}

vit_status vit_model_forward_features(vit_model *m, const vit_tensor *images, vit_tensor *features) {
    return forward(m, images, features, UPTO_POOLED, "vit_model_forward_features");
}

vit_status vit_model_forward_tokens(vit_model *m, const vit_tensor *images, vit_tensor *tokens) {
    return forward(m, images, tokens, UPTO_TOKENS, "vit_model_forward_tokens");
}

vit_status vit_model_token_count(const vit_model *m, int *tokens, int *prefix) {
    VIT_CHECK_ARG(m, "vit_model_token_count: model is NULL");
    if (tokens) *tokens = m->tokens;
    if (prefix) *prefix = m->prefix;
    return VIT_OK;
}

vit_status vit_model_loss(vit_model *m, const vit_tensor *labels, float label_smoothing, float *loss) {
    VIT_CHECK_ARG(m, "vit_model_loss: model is NULL");
    VIT_CHECK_ARG(loss, "vit_model_loss: loss is NULL");
    if (!m->logits) return vit_fail(VIT_ERR_STATE, "vit_model_loss: no forward to take the loss of");
    if (m->cfg.num_classes == 0)
        return vit_fail(VIT_ERR_STATE, "vit_model_loss: the model has no head (VIT_CFG_NUM_CLASSES = 0)");
    VIT_TRY(vit_tensor_expect(labels, "vit_model_loss: labels", VIT_DTYPE_I32, 1, SHAPE(m->batch)));
    VIT_CHECK_ARG(label_smoothing >= 0.0f && label_smoothing < 1.0f,
                  "vit_model_loss: label_smoothing %g is outside [0, 1)", label_smoothing);
    const size_t label_bytes = (size_t)m->batch * sizeof(int32_t);
    /* Checked on the host; the tape keeps its own copy until backward. */
    int32_t *host = vit_arena_alloc(&m->tape.arena, label_bytes);
    if (!host) return forward_failed(m);
    VIT_TRY(vit_tensor_read(labels, host, label_bytes));
    int C = (int)m->cfg.num_classes;
    for (int b = 0; b < m->batch; b++)
        if (host[b] < 0 || host[b] >= C)
            return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_model_loss: labels[%d] = %d is outside 0..%d", b, host[b],
                            C - 1);
    vit_context_enter(m->ctx);
    const int32_t *kept = vit_tape_upload(&m->tape, host, label_bytes);
    if (!kept) return forward_failed(m);
    vit_value *l = vit_op_cross_entropy(&m->tape, m->logits, kept, m->batch, C, label_smoothing);
    if (!l) return forward_failed(m);
    m->loss = l;
    /* The one host read of a training step. */
    VIT_TRY(m->be->ops->copy(m->be, loss, l->data, sizeof *loss, VIT_COPY_TO_HOST));
    if (!isfinite(*loss)) return vit_fail(VIT_ERR_NUMERIC, "vit_model_loss: the loss is %g", (double)*loss);
    return VIT_OK;
}

vit_status vit_model_backward(vit_model *m) {
    VIT_CHECK_ARG(m, "vit_model_backward: model is NULL");
    if (!m->loss) return vit_fail(VIT_ERR_STATE, "vit_model_backward: call vit_model_loss after vit_model_forward first");
    vit_context_enter(m->ctx);
    vit_value *l = m->loss;
    m->loss = NULL;
    return vit_dist_backward(m, l, NULL);
}

vit_status vit_model_backward_logits(vit_model *m, const vit_tensor *dlogits) {
    VIT_CHECK_ARG(m, "vit_model_backward_logits: model is NULL");
    if (!m->logits) return vit_fail(VIT_ERR_STATE, "vit_model_backward_logits: no forward to differentiate");
    VIT_TRY(vit_tensor_expect(dlogits, "vit_model_backward_logits: dlogits", VIT_DTYPE_F32, 2,
                              SHAPE(m->batch, m->cfg.num_classes > 0 ? m->cfg.num_classes : m->cfg.dim)));
    VIT_TRY(expect_device(m, dlogits, "vit_model_backward_logits: dlogits"));
    vit_context_enter(m->ctx);
    m->loss = NULL;
    return vit_dist_backward(m, m->logits, dlogits->data);
}

vit_status vit_model_zero_grad(vit_model *m) {
    VIT_CHECK_ARG(m, "vit_model_zero_grad: model is NULL");
    return m->grads ? m->be->ops->zero(m->be, m->grads, (size_t)m->total * sizeof(float)) : VIT_OK;
}

/* ------------------------------------------------------------ parameters */
vit_status vit_model_param_count(const vit_model *model, int *count) {
    VIT_CHECK_ARG(model, "vit_model_param_count: model is NULL");
    VIT_CHECK_ARG(count, "vit_model_param_count: count is NULL");
    *count = model->n_params;
    return VIT_OK;
}

vit_status vit_model_num_params(const vit_model *model, int64_t *numel) {
    VIT_CHECK_ARG(model, "vit_model_num_params: model is NULL");
    VIT_CHECK_ARG(numel, "vit_model_num_params: numel is NULL");
    int64_t n = 0;
    for (int i = 0; i < model->n_params; i++) n += model->params[i].numel;
    *numel = n;
    return VIT_OK;
}

vit_status vit_model_param_info(const vit_model *model, int index, const char **name, int *ndim, int64_t *shape) {
    VIT_CHECK_ARG(model, "vit_model_param_info: model is NULL");
    VIT_CHECK_ARG(index >= 0 && index < model->n_params, "vit_model_param_info: index %d is outside 0..%d", index,
                  model->n_params - 1);
    const vit_param *p = &model->params[index];
    if (name) *name = p->name;
    if (ndim) *ndim = p->ndim;
    if (shape)
        for (int i = 0; i < VIT_MAX_DIMS; i++) shape[i] = i < p->ndim ? p->shape[i] : 1;
    return VIT_OK;
}

static vit_status lookup(const vit_model *model, const char *fn, const char *name, size_t bytes, const void *buf,
                         const vit_param **out) {
    VIT_CHECK_ARG(model, "%s: model is NULL", fn);
    VIT_CHECK_ARG(name, "%s: name is NULL", fn);
    VIT_CHECK_ARG(buf, "%s: buffer is NULL", fn);
    int idx = vit_model_find_param(model, name);
    if (idx < 0) return vit_fail(VIT_ERR_NOT_FOUND, "%s: the model has no parameter '%s'", fn, name);
    const vit_param *p = &model->params[idx];
    if (bytes != (size_t)p->numel * sizeof(float)) {
        char shape[96];
        return vit_fail(VIT_ERR_SHAPE, "%s: '%s' is f32 %s (%lld bytes), buffer has %zu bytes", fn, name,
                        vit_shape_str(shape, sizeof shape, p->ndim, p->shape), (long long)(p->numel * 4), bytes);
    }
    *out = p;
    return VIT_OK;
}

vit_status vit_model_param_read(const vit_model *model, const char *name, float *dst, size_t bytes) {
    const vit_param *p = NULL;
    VIT_TRY(lookup(model, "vit_model_param_read", name, bytes, dst, &p));
    return model->be->ops->copy(model->be, dst, model->weights + p->offset, bytes, VIT_COPY_TO_HOST);
}

vit_status vit_model_param_write(vit_model *model, const char *name, const float *src, size_t bytes) {
    const vit_param *p = NULL;
    VIT_TRY(lookup(model, "vit_model_param_write", name, bytes, src, &p));
    vit_model_weights_changed(model);
    return model->be->ops->copy(model->be, model->weights + p->offset, src, bytes, VIT_COPY_TO_DEVICE);
}

vit_status vit_model_grad_read(const vit_model *model, const char *name, float *dst, size_t bytes) {
    const vit_param *p = NULL;
    VIT_TRY(lookup(model, "vit_model_grad_read", name, bytes, dst, &p));
    if (model->grads) return model->be->ops->copy(model->be, dst, model->grads + p->offset, bytes, VIT_COPY_TO_HOST);
    memset(dst, 0, bytes);
    return VIT_OK;
}

/* -------------------------------------------------------------- metadata */
static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

vit_status vit_model_set_metadata(vit_model *model, const char *key, const char *value) {
    VIT_CHECK_ARG(model, "vit_model_set_metadata: model is NULL");
    VIT_CHECK_ARG(key && *key, "vit_model_set_metadata: key is NULL or empty");
    int i = 0;
    while (i < model->n_meta && strcmp(model->meta[i].key, key)) i++;
    if (!value) {
        if (i == model->n_meta) return VIT_OK;
        free(model->meta[i].key);
        free(model->meta[i].value);
        memmove(&model->meta[i], &model->meta[i + 1], (size_t)(model->n_meta - i - 1) * sizeof *model->meta);
        model->n_meta--;
        return VIT_OK;
    }
    char *v = dup_string(value);
    if (!v) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_model_set_metadata: no memory for '%s'", key);
    if (i < model->n_meta) {
        free(model->meta[i].value);
        model->meta[i].value = v;
        return VIT_OK;
    }
    vit_meta_entry *grown = realloc(model->meta, (size_t)(model->n_meta + 1) * sizeof *grown);
    char *k = dup_string(key);
    if (!grown || !k) {
        if (grown) model->meta = grown;
        free(v);
        free(k);
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_model_set_metadata: no memory for '%s'", key);
    }
    model->meta = grown;
    model->meta[model->n_meta++] = (vit_meta_entry){k, v};
    return VIT_OK;
}

vit_status vit_model_get_metadata(const vit_model *model, const char *key, const char **value) {
    VIT_CHECK_ARG(model, "vit_model_get_metadata: model is NULL");
    VIT_CHECK_ARG(key, "vit_model_get_metadata: key is NULL");
    VIT_CHECK_ARG(value, "vit_model_get_metadata: value is NULL");
    *value = NULL;
    for (int i = 0; i < model->n_meta; i++)
        if (!strcmp(model->meta[i].key, key)) *value = model->meta[i].value;
    return VIT_OK;
}

vit_status vit_model_metadata_key(const vit_model *model, int index, const char **key) {
    VIT_CHECK_ARG(model, "vit_model_metadata_key: model is NULL");
    VIT_CHECK_ARG(key, "vit_model_metadata_key: key is NULL");
    *key = index >= 0 && index < model->n_meta ? model->meta[index].key : NULL;
    return VIT_OK;
}
