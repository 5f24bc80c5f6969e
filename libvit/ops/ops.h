/*
 * Ops recorded on a tape. Each op computes its forward now, through the
 * tape's backend, and, while the tape records, pushes a node whose backward
 * runs when the tape is replayed in reverse. Values live in the step's data
 * arena (activations, device memory) or in the model's flat parameter and
 * gradient buffers (parameters); the bookkeeping (values, nodes, spare
 * lists) stays on the host.
 */
#ifndef VIT_OPS_H
#define VIT_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/backend.h"
#include "core/core.h"

/* A value on the tape: data, and its gradient once backward reaches it. */
typedef struct vit_value {
    float *data;
    float *grad;        /* NULL until needed; parameters point into the flat gradient buffer */
    int64_t numel;
    bool requires_grad; /* false for inputs (images) and for everything in inference */
    bool grad_owned;    /* grad came from the tape (not a parameter's slot), so backward may recycle it */
    int producer;       /* transient values: index of the node that recomputes data; else -1 */
    uint64_t stamp;     /* parameters: their contents' stamp (vit_gemm.b_stamp); else 0 */
} vit_value;

typedef struct vit_tape vit_tape;
typedef struct vit_node vit_node;
typedef vit_status (*vit_backward_fn)(vit_tape *tape, const vit_node *node);

/* What an op keeps for its backward. Fields are op-specific; each op's file
 * says which it uses. */
struct vit_node {
    vit_backward_fn backward;
    vit_value *out;
    vit_value *in[4];
    void *saved[3];        /* device memory */
    int dims[6];
    float scalar[2];
    uint64_t key;
    const int32_t *labels; /* device memory */
    /* For an op whose output is transient: write the output again into out. */
    vit_status (*recompute)(vit_tape *tape, const vit_node *node, float *out);
    /* Optional: recompute and this node's backward in one pass, for when the
     * output's reader has written the output's gradient in full
     * (vit_tape_data_after_grad); the replay then skips the node. */
    vit_status (*recompute_backward)(vit_tape *tape, const vit_node *node, float *out);
    bool ran; /* its backward ran early, through recompute_backward */
};

/* A gradient buffer whose value's backward has run, free for reuse. */
typedef struct vit_spare_grad {
    float *data;
    int64_t numel;
} vit_spare_grad;

struct vit_tape {
    vit_backend *be;    /* where the data lives and the kernels run (not owned) */
    vit_arena data;     /* device: activations, saved tensors, activation gradients; reset each step */
    vit_arena arena;    /* host: values, spare lists, small staging; reset each step */
    vit_node *nodes;    /* grows once, kept across steps */
    int count, cap;
    bool recording;
    vit_spare_grad *spare; /* during backward: gradients no node will read again (arena storage) */
    int spare_count;
    float *shared;         /* the data of transient values (see vit_tape_transient) */
    int64_t shared_numel;
    /* Called by backward after node index has run (or had nothing to do):
     * data-parallel training starts the reductions of the gradients that
     * are final from there (dist/grads.c). NULL: none. */
    vit_status (*after_node)(void *user, int index);
    void *after_user;
};

void vit_tape_init(vit_tape *tape, vit_backend *be);
void vit_tape_release(vit_tape *tape);
/* Forget the last step: no nodes, arena rewound. */
void vit_tape_reset(vit_tape *tape, bool recording);
/* A new activation of n floats (data uninitialised); requires_grad as given. */
vit_value *vit_tape_value(vit_tape *tape, int64_t n, bool requires_grad);
/* A transient activation: its data lives in one buffer that every transient
 * value of the step shares, so it is valid only until the next transient
 * value is made. For outputs that a single op consumes at once (LayerNorm
 * before a linear layer, GELU before fc2): they then cost no memory per
 * layer, and backward gets them back through vit_tape_data. The producing op
 * must record a node with a recompute function and call vit_tape_set_producer. */
vit_value *vit_tape_transient(vit_tape *tape, int64_t n, bool requires_grad);
/* Mark v as recomputed by the node just pushed. */
void vit_tape_set_producer(vit_tape *tape, vit_value *v);
/* v's data for use in backward (recomputed when v is transient); NULL when
 * the recompute failed (the thread error says why). */
const float *vit_tape_data(vit_tape *tape, const vit_value *v);
/* The same for v's reader once it has written v's gradient in full (a
 * transient value has that one reader): v's producer may run its backward
 * in the same pass over its input as the recompute. */
const float *vit_tape_data_after_grad(vit_tape *tape, vit_value *v);
/* n floats of device memory in the data arena, valid until the step ends (not zeroed). */
float *vit_tape_floats(vit_tape *tape, int64_t n);
/* n host values uploaded into the data arena: small per-step inputs
 * (labels, DropPath scales). NULL on failure. */
void *vit_tape_upload(vit_tape *tape, const void *host, size_t bytes);
/* Wrap storage that is not the arena's (parameters, caller inputs). */
vit_value *vit_tape_wrap(vit_tape *tape, float *data, float *grad, int64_t n, bool requires_grad);
/* Append a node (copied); only called when the tape records and out requires grad. */
vit_status vit_tape_push(vit_tape *tape, const vit_node *node);
/* The gradient buffer of v, zero-filled on first use (a recycled buffer of
 * the same size when backward has one spare). NULL on failure. */
float *vit_tape_grad(vit_tape *tape, vit_value *v);
/* The same for a backward that writes every element: when *accumulate comes
 * back false the buffer is new and its contents undefined, so the caller
 * writes rather than adds, and nothing is zero-filled first. */
float *vit_tape_grad_to_write(vit_tape *tape, vit_value *v, bool *accumulate);
/* to takes over from's gradient buffer (an op whose input gradient is its
 * output gradient unchanged): true when done, false when to already has one
 * or from's is not the tape's to give. from's node must have run. */
bool vit_tape_grad_hand_over(vit_value *from, vit_value *to);
/* Seed out's gradient with seed_grad (n floats of device memory, or NULL for
 * ones) and replay. */
vit_status vit_tape_backward(vit_tape *tape, vit_value *out, const float *seed_grad);
/* True when an op with these inputs must be recorded. */
bool vit_tape_wants(const vit_tape *tape, const vit_value *a, const vit_value *b, const vit_value *c);

/* ------------------------------------------------------------------ the ops */
/* y [M, N] = x [M, K] · W[N, K]^T + b[N] (b may be NULL); gelu fuses an exact
 * GELU after the bias. */
vit_value *vit_op_linear(vit_tape *tape, vit_value *x, vit_value *W, vit_value *b, int M, int K, int N);
/* The same written into out [M, N] (device memory the caller owns, e.g. its
 * logits tensor), which must stay valid until the step ends. */
vit_value *vit_op_linear_to(vit_tape *tape, float *out, vit_value *x, vit_value *W, vit_value *b, int M, int K,
                            int N);
vit_value *vit_op_linear_gelu(vit_tape *tape, vit_value *x, vit_value *W, vit_value *b, int M, int K, int N);
/* The same with QuickGELU (quick = true; never fused) or the exact GELU. */
vit_value *vit_op_linear_act(vit_tape *tape, vit_value *x, vit_value *W, vit_value *b, int M, int K, int N,
                             bool quick);
/* patch tokens [B * N, D] from images [B, C, H, W] through a conv of kernel = stride = p:
 * weight [D, C, p, p], bias [D]. */
vit_value *vit_op_patch_embed(vit_tape *tape, vit_value *images, vit_value *W, vit_value *b, int B, int C, int H,
                              int Wd, int p, int D);
/* y [rows, C] = LayerNorm(x) * w + b; a transient value (for one consumer
 * that reads it at once) while the tape records. */
vit_value *vit_op_layernorm(vit_tape *tape, vit_value *x, vit_value *w, vit_value *b, int64_t rows, int C,
                            float eps);
/* The same as an ordinary value, for an output read more than once (norm_pre). */
vit_value *vit_op_layernorm_kept(vit_tape *tape, vit_value *x, vit_value *w, vit_value *b, int64_t rows, int C,
                                 float eps);
vit_value *vit_op_gelu(vit_tape *tape, vit_value *x);
/* GELU of a linear layer's pre-activation x [rows, C] recorded without its
 * bias gradient: this node takes b's (gelu_bias_backward). */
vit_value *vit_op_gelu_bias(vit_tape *tape, vit_value *x, vit_value *b, int64_t rows, int C);
/* x * sigmoid(1.702 x) */
vit_value *vit_op_quick_gelu(vit_tape *tape, vit_value *x);
/* y [rows, C] = x * gamma [C]: timm's LayerScale */
vit_value *vit_op_scale_channels(vit_tape *tape, vit_value *x, vit_value *gamma, int64_t rows, int C);
/* out [B, T, H * hd] from qkv [B, T, 3, H, hd] */
vit_value *vit_op_attention(vit_tape *tape, vit_value *qkv, int B, int T, int H, int hd, float drop_p,
                            uint64_t key);
/* out [B, L, H * hd]: L learned queries q [L, H * hd] attending over each
 * sample's tokens, kv [B, N, 2, H, hd] (timm's AttentionPoolLatent core) */
vit_value *vit_op_pool_attention(vit_tape *tape, vit_value *q, vit_value *kv, int B, int L, int N, int H, int hd);
/* tokens [B, P + N, D] = [cls; reg; patch] + pos, P = (cls != NULL) + R; pos
 * [P + N, D] covers every token, or [N, D] the patch tokens only (pos_prefix
 * false); cls and reg (R = 0) may be NULL. */
vit_value *vit_op_embed_tokens(vit_tape *tape, vit_value *patch, vit_value *cls, vit_value *reg, vit_value *pos,
                               int B, int N, int D, int R, bool pos_prefix);
/* x + DropPath(y): per-sample scale [B] in device memory (NULL: plain residual). The result is
 * written over y's storage, which is what makes a residual branch cost no
 * memory of its own: y must be the branch's output, read by nothing else
 * (no backward reads the data of a linear layer's or dropout's output). */
vit_value *vit_op_residual(vit_tape *tape, vit_value *x, vit_value *y, const float *scale, int B, int64_t per);
/* Dropout with probability p; p == 0 returns x itself. */
vit_value *vit_op_dropout(vit_tape *tape, vit_value *x, float p, uint64_t key);
/* [B, D] from tokens [B, T, D]: token 0, or the mean of tokens skip..T-1 */
vit_value *vit_op_pool(vit_tape *tape, vit_value *tokens, int B, int T, int D, int avg, int skip);
/* scalar mean cross-entropy of logits [B, C] against labels [B] (device
 * memory, kept by pointer until backward) */
vit_value *vit_op_cross_entropy(vit_tape *tape, vit_value *logits, const int32_t *labels, int B, int C,
                                float smoothing);

#endif
