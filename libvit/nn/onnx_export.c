/* vit_model_export_onnx: the model's inference graph in ONNX (opset 17+).
 *
 * The residual stream is kept 2-D, [B*T, D], so every linear layer is one
 * Gemm with transB=1 over timm's [out, in] weight as it lies in the model's
 * buffer: initializers point at the weights, which are never transposed or
 * copied (a copy to the host only for a model in device memory). Attention
 * is written out (Reshape/Transpose, MatMul, Softmax), GELU through Erf (or
 * QuickGELU through Sigmoid), as torch.onnx writes them; ONNX Runtime fuses
 * these patterns again. timm's family options (no class token, registers,
 * no_embed_class, pre_norm, no patch bias, layer scale, quick_gelu, fc_norm
 * placement, attention pooling, no head) each map to the nodes timm's
 * forward runs for them. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "nn/nn.h"
#include "vit/onnx.h"
#include "vit/version.h"

struct vit_onnx_options {
    int64_t opset, batch, external_data;
};

enum { OPSET_MIN = 17, OPSET_MAX = 21 };

vit_status vit_onnx_options_create(vit_onnx_options **out) {
    VIT_CHECK_ARG(out, "vit_onnx_options_create: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_onnx_options_create: no memory");
    (*out)->opset = OPSET_MIN;
    return VIT_OK;
}

void vit_onnx_options_destroy(vit_onnx_options *options) {
    free(options);
}

vit_status vit_onnx_options_set_int(vit_onnx_options *options, vit_onnx_option key, int64_t value) {
    VIT_CHECK_ARG(options, "vit_onnx_options_set_int: options is NULL");
    switch (key) {
    case VIT_ONNX_OPSET:
        VIT_CHECK_ARG(value >= OPSET_MIN && value <= OPSET_MAX,
                      "vit_onnx_options_set_int: VIT_ONNX_OPSET %lld is outside %d..%d (LayerNormalization needs "
                      "opset 17)", (long long)value, OPSET_MIN, OPSET_MAX);
        options->opset = value;
        return VIT_OK;
    case VIT_ONNX_BATCH:
        VIT_CHECK_ARG(value >= 0 && value <= INT32_MAX,
                      "vit_onnx_options_set_int: VIT_ONNX_BATCH %lld is outside 0 (dynamic)..%d", (long long)value,
                      INT32_MAX);
        options->batch = value;
        return VIT_OK;
    case VIT_ONNX_EXTERNAL_DATA:
        VIT_CHECK_ARG(value >= -1 && value <= 1,
                      "vit_onnx_options_set_int: VIT_ONNX_EXTERNAL_DATA %lld is not -1 (never), 0 (over 2 GiB) or 1 "
                      "(always)", (long long)value);
        options->external_data = value;
        return VIT_OK;
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_onnx_options_set_int: unknown key %d", (int)key);
}

#ifndef VIT_HAVE_ONNX

vit_status vit_model_export_onnx(const vit_model *model, const char *path, const vit_onnx_options *options) {
    (void)options;
    VIT_CHECK_ARG(model, "vit_model_export_onnx: model is NULL");
    VIT_CHECK_ARG(path && *path, "vit_model_export_onnx: path is NULL or empty");
    return vit_fail(VIT_ERR_UNSUPPORTED,
                    "vit_model_export_onnx: %s: this libvit was built without ONNX export (meson -Donnx=disabled, or "
                    "protobuf-c missing: install libprotobuf-c-dev and protobuf-c-compiler and configure with "
                    "-Donnx=enabled)", path);
}

#else

#include "io/onnx.h"

typedef struct exporter {
    vit_onnx *g;
    const vit_model *m;
    const float *w; /* the model's weights in host memory */
    int64_t opset;
    char name[96];  /* scratch for node names (the graph copies them) */
    const char *one, *half, *sqrt2, *quick;
} exporter;

/* Node and value names: "blocks.3.attn.softmax" and so on. */
static const char *name(exporter *e, const char *fmt, ...) VIT_PRINTF(2, 3);
static const char *name(exporter *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    return e->name;
}

/* Parameter idx as an initializer under its timm name. */
static const char *weight(exporter *e, int idx) {
    const vit_param *p = &e->m->params[idx];
    return vit_onnx_weight(e->g, p->name, p->ndim, p->shape, e->w + p->offset);
}

#define NODE(op, out, ...) VIT_ONNX_NODE(e->g, op, out, __VA_ARGS__)
#define INTS(...) (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

/* x [rows, in] -> [rows, out]: x W^T (+ b). */
static const char *linear(exporter *e, const char *x, int w, int b, const char *out) {
    const char *y = b >= 0 ? NODE("Gemm", out, x, weight(e, w), weight(e, b)) : NODE("Gemm", out, x, weight(e, w));
    vit_onnx_attr_int(e->g, "transB", 1);
    return y;
}

/* Over the last axis, with the model's epsilon. */
static const char *layernorm(exporter *e, const char *x, int w, int b, const char *out) {
    const char *y = NODE("LayerNormalization", out, x, weight(e, w), weight(e, b));
    vit_onnx_attr_int(e->g, "axis", -1);
    vit_onnx_attr_float(e->g, "epsilon", (float)e->m->cfg.ln_eps);
    return y;
}

static const char *transpose(exporter *e, const char *x, const char *out, int n, const int64_t *perm) {
    const char *y = NODE("Transpose", out, x);
    vit_onnx_attr_ints(e->g, "perm", n, perm);
    return y;
}

/* The MLP's activation: exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as
 * torch.onnx writes nn.GELU; or QuickGELU, x sigmoid(1.702 x). */
static const char *activation(exporter *e, const char *x, const char *prefix) {
    if (e->m->cfg.quick_gelu) {
        const char *q = NODE("Mul", name(e, "%s.scale", prefix), x, e->quick);
        const char *s = NODE("Sigmoid", name(e, "%s.sigmoid", prefix), q);
        return NODE("Mul", name(e, "%s", prefix), x, s);
    }
    const char *d = NODE("Div", name(e, "%s.div", prefix), x, e->sqrt2);
    const char *f = NODE("Erf", name(e, "%s.erf", prefix), d);
    const char *a = NODE("Add", name(e, "%s.add", prefix), f, e->one);
    const char *m = NODE("Mul", name(e, "%s.mul", prefix), x, a);
    return NODE("Mul", name(e, "%s", prefix), m, e->half);
}

/* fc2(act(fc1(x))), prefix "blocks.N.mlp" or "attn_pool.mlp". */
static const char *mlp(exporter *e, const char *x, int fc1_w, int fc1_b, int fc2_w, int fc2_b, const char *prefix) {
    const char *f = linear(e, x, fc1_w, fc1_b, name(e, "%s.fc1", prefix));
    char act[64];
    snprintf(act, sizeof act, "%s.act", prefix);
    f = activation(e, f, act);
    return linear(e, f, fc2_w, fc2_b, name(e, "%s.fc2", prefix));
}

/* Shape constants shared by the blocks and the pooling. */
typedef struct shapes {
    const char *rows, *tokens, *idx[3];
} shapes;

/* [B*T, n*D] -> n heads-major tensors [B, H, T, hd] (q, k, v or k, v):
 * Reshape [B, T, n, H, hd], Transpose [n, B, H, T, hd], Gather each. */
static void split_heads(exporter *e, const char *x, int n, const char *prefix, const shapes *sh, const char **out) {
    const struct vit_config *c = &e->m->cfg;
    int64_t T = e->m->tokens, H = c->heads;
    static const char *const parts[2][3] = {{"k", "v", ""}, {"q", "k", "v"}};
    const char *shape = vit_onnx_ints(e->g, name(e, "%s.heads.shape", prefix), INTS(-1, T, n, H, c->dim / H));
    const char *r = NODE("Reshape", name(e, "%s.heads", prefix), x, shape);
    const char *p = transpose(e, r, name(e, "%s.heads.transpose", prefix), INTS(2, 0, 3, 1, 4));
    for (int j = 0; j < n; j++) {
        out[j] = NODE("Gather", name(e, "%s.%s", prefix, parts[n - 2][j]), p, sh->idx[j]);
        vit_onnx_attr_int(e->g, "axis", 0);
    }
}

/* softmax(q k^T / sqrt(hd)) v for q [B or 1, H, Tq, hd], k and v
 * [B, H, T, hd] -> [B*Tq, D]. */
static const char *attention(exporter *e, const char *q, const char *k, const char *v, const char *prefix,
                             const shapes *sh) {
    const struct vit_config *c = &e->m->cfg;
    const char *kt = transpose(e, k, name(e, "%s.k.transpose", prefix), INTS(0, 1, 3, 2));
    const char *s = NODE("MatMul", name(e, "%s.scores", prefix), q, kt); /* [B, H, Tq, T] */
    const char *scale = vit_onnx_scalar(e->g, name(e, "%s.scale", prefix), 1.0f / sqrtf((float)(c->dim / c->heads)));
    s = NODE("Mul", name(e, "%s.scaled", prefix), s, scale);
    const char *a = NODE("Softmax", name(e, "%s.softmax", prefix), s);
    vit_onnx_attr_int(e->g, "axis", -1);
    const char *o = NODE("MatMul", name(e, "%s.context", prefix), a, v); /* [B, H, Tq, hd] */
    o = transpose(e, o, name(e, "%s.context.transpose", prefix), INTS(0, 2, 1, 3));
    return NODE("Reshape", name(e, "%s.context.reshape", prefix), o, sh->rows);
}

/* timm's layer scale (ls1, ls2): branch * gamma, when the model has it. */
static const char *layer_scale(exporter *e, const char *x, int gamma, const char *out) {
    return gamma < 0 ? x : NODE("Mul", out, x, weight(e, gamma));
}

/* x [B*T, D] -> the same after block i. */
static const char *block(exporter *e, const char *x, int i, const shapes *sh) {
    const vit_block_params *bp = &e->m->blocks[i];
    char prefix[48];
    const char *h = layernorm(e, x, bp->norm1_w, bp->norm1_b, name(e, "blocks.%d.norm1", i));
    const char *qkv = linear(e, h, bp->qkv_w, bp->qkv_b, name(e, "blocks.%d.attn.qkv", i));
    const char *heads[3];
    snprintf(prefix, sizeof prefix, "blocks.%d.attn", i);
    split_heads(e, qkv, 3, prefix, sh, heads);
    const char *o = attention(e, heads[0], heads[1], heads[2], prefix, sh);
    o = linear(e, o, bp->proj_w, bp->proj_b, name(e, "blocks.%d.attn.proj", i));
    o = layer_scale(e, o, bp->ls1, name(e, "blocks.%d.ls1", i));
    x = NODE("Add", name(e, "blocks.%d.residual1", i), x, o);

    h = layernorm(e, x, bp->norm2_w, bp->norm2_b, name(e, "blocks.%d.norm2", i));
    snprintf(prefix, sizeof prefix, "blocks.%d.mlp", i);
    const char *f = mlp(e, h, bp->fc1_w, bp->fc1_b, bp->fc2_w, bp->fc2_b, prefix);
    f = layer_scale(e, f, bp->ls2, name(e, "blocks.%d.ls2", i));
    return NODE("Add", name(e, "blocks.%d", i), x, f);
}

/* A learned token [1, n, D] broadcast to [B, n, D]. */
static const char *expand(exporter *e, const char *batch, int param, int64_t n) {
    const char *pname = e->m->params[param].name;
    const char *rest = vit_onnx_ints(e->g, name(e, "%s.shape", pname), INTS(n, e->m->cfg.dim));
    const char *shape = NODE("Concat", name(e, "%s.expand.shape", pname), batch, rest);
    vit_onnx_attr_int(e->g, "axis", 0);
    return NODE("Expand", name(e, "%s.expand", pname), weight(e, param), shape);
}

/* images [B, C, H, W] -> tokens [B*T, D]: patch projection, class and
 * register tokens, position embedding (timm's _pos_embed), pre-norm. */
static const char *embed(exporter *e, const char *images, const shapes *sh) {
    const vit_model *m = e->m;
    const struct vit_config *c = &m->cfg;
    int64_t P = c->patch_size, D = c->dim;
    const char *x = m->patch_b >= 0
                        ? NODE("Conv", "patch_embed.proj", images, weight(e, m->patch_w), weight(e, m->patch_b))
                        : NODE("Conv", "patch_embed.proj", images, weight(e, m->patch_w));
    vit_onnx_attr_ints(e->g, "kernel_shape", INTS(P, P));
    vit_onnx_attr_ints(e->g, "strides", INTS(P, P));
    /* [B, D, g, g] -> [B, N, D] */
    x = NODE("Reshape", "patch_embed.flatten", x, vit_onnx_ints(e->g, "shape.patches", INTS(0, D, -1)));
    x = transpose(e, x, "patch_embed.transpose", INTS(0, 2, 1));
    if (c->patch_norm) x = layernorm(e, x, m->patch_norm_w, m->patch_norm_b, "patch_embed.norm");
    /* Class and register tokens, broadcast over the batch read from the input. */
    const char *cat[3];
    int n = 0;
    if (m->cls_token >= 0 || m->reg_token >= 0) {
        const char *batch = NODE("Shape", "batch", images);
        vit_onnx_attr_int(e->g, "end", 1);
        if (m->cls_token >= 0) cat[n++] = expand(e, batch, m->cls_token, 1);
        if (m->reg_token >= 0) cat[n++] = expand(e, batch, m->reg_token, c->reg_tokens);
    }
    /* no_embed_class: pos_embed covers the patches only, added before the concatenation. */
    if (c->no_embed_class) x = NODE("Add", "pos_embed.add", x, weight(e, m->pos_embed));
    if (n) {
        cat[n++] = x;
        x = vit_onnx_node(e->g, "Concat", "tokens", n, cat);
        vit_onnx_attr_int(e->g, "axis", 1);
    }
    if (!c->no_embed_class) x = NODE("Add", "pos_embed.add", x, weight(e, m->pos_embed));
    if (c->pre_norm) x = layernorm(e, x, m->norm_pre_w, m->norm_pre_b, "norm_pre");
    return NODE("Reshape", "tokens.rows", x, sh->rows);
}

/* timm's AttentionPoolLatent over normalised tokens [B*T, D] -> [B, D]. */
static const char *attention_pool(exporter *e, const char *x, const shapes *sh) {
    const vit_model *m = e->m;
    const struct vit_config *c = &m->cfg;
    const vit_attn_pool_params *ap = &m->attn_pool;
    const char *kv = linear(e, x, ap->kv_w, ap->kv_b, "attn_pool.kv");
    const char *heads[2];
    split_heads(e, kv, 2, "attn_pool", sh, heads);
    /* The latent query, one for the whole batch: [1, 1, D] -> [1, H, 1, hd], broadcast by MatMul. */
    const char *l = NODE("Reshape", "attn_pool.latent.rows", weight(e, ap->latent),
                         vit_onnx_ints(e->g, "attn_pool.latent.shape", INTS(1, c->dim)));
    const char *q = linear(e, l, ap->q_w, ap->q_b, "attn_pool.q");
    q = NODE("Reshape", "attn_pool.q.heads", q,
             vit_onnx_ints(e->g, "attn_pool.q.shape", INTS(1, 1, c->heads, c->dim / c->heads)));
    q = transpose(e, q, "attn_pool.q.transpose", INTS(0, 2, 1, 3));
    const char *o = attention(e, q, heads[0], heads[1], "attn_pool", sh); /* [B, D] */
    o = linear(e, o, ap->proj_w, ap->proj_b, "attn_pool.proj");
    const char *h = layernorm(e, o, ap->norm_w, ap->norm_b, "attn_pool.norm");
    const char *f = mlp(e, h, ap->fc1_w, ap->fc1_b, ap->fc2_w, ap->fc2_b, "attn_pool.mlp");
    return NODE("Add", "attn_pool", o, f);
}

/* tokens [B*T, D] -> pooled features [B, D], the final norm where timm has
 * it: LayerNorm is per token, so for token pooling normalising the class
 * token alone equals timm's norm-then-select; average pooling normalises
 * after the mean (fc_norm) or every token before it. */
static const char *pool(exporter *e, const char *x, const shapes *sh) {
    const vit_model *m = e->m;
    const struct vit_config *c = &m->cfg;
    const char *norm = m->fc_norm ? "fc_norm" : "norm";
    if (c->global_pool == VIT_POOL_MAP) return attention_pool(e, layernorm(e, x, m->norm_w, m->norm_b, norm), sh);
    if (c->global_pool != VIT_POOL_AVG) {
        const char *t = NODE("Reshape", "tokens.final", x, sh->tokens);
        const char *p = NODE("Gather", "pool", t, sh->idx[0]);
        vit_onnx_attr_int(e->g, "axis", 1);
        return layernorm(e, p, m->norm_w, m->norm_b, norm);
    }
    if (!m->fc_norm) x = layernorm(e, x, m->norm_w, m->norm_b, norm);
    /* Mean of the patch tokens, after the class and register tokens. */
    const char *t = NODE("Reshape", "tokens.final", x, sh->tokens);
    const char *s = NODE("Slice", "pool.patches", t, vit_onnx_ints(e->g, "pool.starts", INTS(m->prefix)),
                         vit_onnx_ints(e->g, "pool.ends", INTS(m->tokens)), vit_onnx_ints(e->g, "pool.axes", INTS(1)));
    const char *p;
    if (e->opset >= 18) {
        p = NODE("ReduceMean", "pool", s, vit_onnx_ints(e->g, "pool.reduce_axes", INTS(1)));
    } else {
        p = NODE("ReduceMean", "pool", s);
        vit_onnx_attr_ints(e->g, "axes", INTS(1));
    }
    vit_onnx_attr_int(e->g, "keepdims", 0);
    return m->fc_norm ? layernorm(e, p, m->norm_w, m->norm_b, norm) : p;
}

/* ONNX IR version of each opset's release (onnx/helper.py VERSION_TABLE). */
static int64_t ir_version(int64_t opset) {
    return opset <= 18 ? 8 : opset <= 20 ? 9 : 10;
}

static vit_status build(exporter *e, int64_t batch) {
    const vit_model *m = e->m;
    const struct vit_config *c = &m->cfg;
    int64_t D = c->dim, T = m->tokens;
    vit_onnx *g = e->g;
    e->one = vit_onnx_scalar(g, "const.one", 1.0f);
    e->half = vit_onnx_scalar(g, "const.half", 0.5f);
    e->sqrt2 = vit_onnx_scalar(g, "const.sqrt2", sqrtf(2.0f));
    e->quick = vit_onnx_scalar(g, "const.quick_gelu", 1.702f);
    shapes sh = {
        .rows = vit_onnx_ints(g, "shape.rows", INTS(-1, D)),
        .tokens = vit_onnx_ints(g, "shape.tokens", INTS(-1, T, D)),
        .idx = {vit_onnx_index(g, "const.index0", 0), vit_onnx_index(g, "const.index1", 1),
                vit_onnx_index(g, "const.index2", 2)},
    };
    /* A model without a head (num_classes 0) gives its pooled features. */
    const char *out = c->num_classes > 0 ? "logits" : "features";
    const int64_t in_dims[4] = {batch ? batch : -1, c->in_channels, c->img_size, c->img_size};
    const int64_t out_dims[2] = {batch ? batch : -1, c->num_classes > 0 ? c->num_classes : D};
    vit_onnx_input(g, "images", 4, in_dims, "batch");
    const char *x = embed(e, "images", &sh);
    for (int i = 0; i < c->depth; i++) x = block(e, x, i, &sh);
    x = pool(e, x, &sh);
    if (c->num_classes > 0)
        linear(e, x, m->head_w, m->head_b, out);
    else
        NODE("Identity", out, x);
    vit_onnx_output(g, out, 2, out_dims, "batch");
    for (int i = 0; i < m->n_meta; i++) vit_onnx_meta(g, m->meta[i].key, m->meta[i].value);
    return VIT_OK;
}

vit_status vit_model_export_onnx(const vit_model *model, const char *path, const vit_onnx_options *options) {
    VIT_CHECK_ARG(model, "vit_model_export_onnx: model is NULL");
    VIT_CHECK_ARG(path && *path, "vit_model_export_onnx: path is NULL or empty");
    vit_onnx_options defaults = {OPSET_MIN, 0, 0};
    if (!options) options = &defaults;
    exporter e = {.m = model, .opset = options->opset};
    float *host = NULL;
    if (model->be->host_memory) {
        e.w = model->weights;
    } else {
        host = vit_alloc((size_t)model->total * sizeof(float));
        if (!host) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_model_export_onnx: %s: no host memory for the weights",
                                   path);
        vit_status s = model->be->ops->copy(model->be, host, model->weights, (size_t)model->total * sizeof(float),
                                            VIT_COPY_TO_HOST);
        if (s != VIT_OK) {
            vit_free(host);
            return s;
        }
        e.w = host;
    }
    e.g = vit_onnx_new("libvit_vit");
    vit_status s = e.g ? build(&e, options->batch) : vit_last_status();
    if (s == VIT_OK) {
        const struct vit_config *c = &model->cfg;
        char doc[256];
        snprintf(doc, sizeof doc,
                 "Vision Transformer from libvit: %lldx%lld px, %lld channels, patch %lld, dim %lld, depth %lld, "
                 "heads %lld, %lld classes; images normalised with the metadata's mean and std",
                 (long long)c->img_size, (long long)c->img_size, (long long)c->in_channels, (long long)c->patch_size,
                 (long long)c->dim, (long long)c->depth, (long long)c->heads, (long long)c->num_classes);
        s = vit_onnx_write(e.g, path, (int)options->external_data, options->opset, ir_version(options->opset), "libvit",
                           VIT_VERSION_STRING, doc);
    }
    if (s != VIT_OK) vit_error_prefix("vit_model_export_onnx");
    vit_onnx_free(e.g);
    vit_free(host);
    return s;
}

#endif
