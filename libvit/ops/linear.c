/* Linear layers and the patch embedding (patchify + the same product). */
#include "ops/ops.h"

/* y [M, N] = x [M, K] · W^T (+ b), W [N, K] as PyTorch stores it. W's stamp
 * lets the backend reuse W packed for its products. In training W changes
 * every step, so each step packs it again: for a small weight that costs
 * microseconds against a forward product 1.2-1.3 x faster (fmnist-train's,
 * in row slices), but for ViT-B/16's it did not pay (0.96 x the speed at
 * batch 4, a third more memory: docs/performance.md), so in training only
 * weights up to TRAIN_PACK_MAX floats carry their stamp. */
enum { TRAIN_PACK_MAX = 1 << 18 };

static vit_status linear_product(vit_backend *be, float *y, const float *x, const vit_value *W, const float *b,
                                 int M, int K, int N, vit_epilogue epilogue) {
    const bool pack = !W->requires_grad || (int64_t)N * K <= TRAIN_PACK_MAX;
    vit_gemm g = {.M = M, .N = N, .K = K, .A = x, .lda = K, .B = W->data, .ldb = K, .trans_b = true,
                  .C = y, .ldc = N, .bias = b, .epilogue = epilogue, .b_stamp = pack ? W->stamp : 0};
    return be->ops->gemm(be, &g);
}

/* dx [M, K] += dy · W;  dW [N, K] += dy^T · x;  db [N] += column sums of dy.
 * node: in = {x, W, b}, dims = {M, K, N}. */
static vit_status linear_backward(vit_tape *tape, const vit_node *node) {
    vit_backend *be = tape->be;
    vit_value *x = node->in[0], *W = node->in[1], *b = node->in[2];
    int M = node->dims[0], K = node->dims[1], N = node->dims[2];
    const float *dy = node->out->grad;
    /* First: dy, just written by the node before, is likelier to be in
     * cache now than after the two products and x's recompute. */
    if (b && b->requires_grad) VIT_TRY(be->ops->bias_backward(be, b->grad, dy, M, N));
    if (x->requires_grad) {
        bool accumulate;
        float *dx = vit_tape_grad_to_write(tape, x, &accumulate);
        if (!dx) return vit_last_status();
        vit_gemm g = {.M = M, .N = K, .K = N, .A = dy, .lda = N, .B = W->data, .ldb = K,
                      .C = dx, .ldc = K, .accumulate = accumulate};
        VIT_TRY(be->ops->gemm(be, &g));
    }
    if (W->requires_grad) {
        const float *xd = vit_tape_data_after_grad(tape, x); /* x's gradient is written above, if it has one */
        if (!xd) return vit_last_status();
        vit_gemm g = {.M = N, .N = K, .K = M, .A = dy, .lda = N, .trans_a = true, .B = xd,
                      .ldb = K, .C = W->grad, .ldc = K, .accumulate = true};
        VIT_TRY(be->ops->gemm(be, &g));
    }
    return VIT_OK;
}

/* The linear op; without bias_grad the node leaves b's gradient to the op
 * that reads y next (vit_op_gelu_bias). */
static vit_value *linear(vit_tape *tape, float *out, vit_value *x, vit_value *W, vit_value *b, int M, int K, int N,
                         bool bias_grad) {
    bool record = vit_tape_wants(tape, x, W, b);
    vit_value *y = out ? vit_tape_wrap(tape, out, NULL, (int64_t)M * N, record)
                       : vit_tape_value(tape, (int64_t)M * N, record);
    if (!y) return NULL;
    if (linear_product(tape->be, y->data, x->data, W, b ? b->data : NULL, M, K, N, VIT_EPILOGUE_NONE) !=
        VIT_OK)
        return NULL;
    if (record) {
        vit_node node = {.backward = linear_backward, .out = y, .in = {x, W, bias_grad ? b : NULL},
                         .dims = {M, K, N}};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return y;
}

vit_value *vit_op_linear_to(vit_tape *tape, float *out, vit_value *x, vit_value *W, vit_value *b, int M, int K,
                            int N) {
    return linear(tape, out, x, W, b, M, K, N, true);
}

vit_value *vit_op_linear(vit_tape *tape, vit_value *x, vit_value *W, vit_value *b, int M, int K, int N) {
    return vit_op_linear_to(tape, NULL, x, W, b, M, K, N);
}

/* Training needs the pre-activation for GELU's backward, so only inference
 * fuses GELU into the product's epilogue. In training GELU's backward takes
 * the bias gradient, the column sums of the gradient it writes, in the same
 * pass. */
vit_value *vit_op_linear_gelu(vit_tape *tape, vit_value *x, vit_value *W, vit_value *b, int M, int K, int N) {
    if (vit_tape_wants(tape, x, W, b)) {
        vit_value *h = linear(tape, NULL, x, W, b, M, K, N, false);
        return h ? vit_op_gelu_bias(tape, h, b, M, N) : NULL;
    }
    vit_value *y = vit_tape_value(tape, (int64_t)M * N, false);
    if (!y) return NULL;
    if (linear_product(tape->be, y->data, x->data, W, b ? b->data : NULL, M, K, N, VIT_EPILOGUE_GELU) !=
        VIT_OK)
        return NULL;
    return y;
}

vit_value *vit_op_linear_act(vit_tape *tape, vit_value *x, vit_value *W, vit_value *b, int M, int K, int N,
                             bool quick) {
    if (!quick) return vit_op_linear_gelu(tape, x, W, b, M, K, N);
    vit_value *h = vit_op_linear(tape, x, W, b, M, K, N);
    return h ? vit_op_quick_gelu(tape, h) : NULL;
}

/* node: in = {images, W, b}, saved[0] = patches [B * N, C * p * p],
 * dims = {B, C, H, W, p, D}. */
static vit_status patch_embed_backward(vit_tape *tape, const vit_node *node) {
    vit_backend *be = tape->be;
    vit_value *images = node->in[0], *W = node->in[1], *b = node->in[2];
    int B = node->dims[0], C = node->dims[1], H = node->dims[2], Wd = node->dims[3], p = node->dims[4];
    int D = node->dims[5];
    int M = B * (H / p) * (Wd / p), K = C * p * p;
    const float *dy = node->out->grad;
    if (W->requires_grad) {
        vit_gemm g = {.M = D, .N = K, .K = M, .A = dy, .lda = D, .trans_a = true, .B = node->saved[0], .ldb = K,
                      .C = W->grad, .ldc = K, .accumulate = true};
        VIT_TRY(be->ops->gemm(be, &g));
    }
    if (b && b->requires_grad) VIT_TRY(be->ops->bias_backward(be, b->grad, dy, M, D));
    if (images->requires_grad) {
        float *dpatches = vit_tape_floats(tape, (int64_t)M * K);
        float *dimages = vit_tape_grad(tape, images);
        if (!dpatches || !dimages) return vit_last_status();
        vit_gemm g = {.M = M, .N = K, .K = D, .A = dy, .lda = D, .B = W->data, .ldb = K,
                      .C = dpatches, .ldc = K};
        VIT_TRY(be->ops->gemm(be, &g));
        VIT_TRY(be->ops->unpatchify_add(be, dimages, dpatches, B, C, H, Wd, p));
    }
    return VIT_OK;
}

vit_value *vit_op_patch_embed(vit_tape *tape, vit_value *images, vit_value *W, vit_value *b, int B, int C, int H,
                              int Wd, int p, int D) {
    vit_backend *be = tape->be;
    int M = B * (H / p) * (Wd / p), K = C * p * p;
    bool record = vit_tape_wants(tape, images, W, b);
    float *patches = vit_tape_floats(tape, (int64_t)M * K);
    vit_value *y = vit_tape_value(tape, (int64_t)M * D, record);
    if (!patches || !y) return NULL;
    if (be->ops->patchify(be, patches, images->data, B, C, H, Wd, p) != VIT_OK) return NULL;
    if (linear_product(be, y->data, patches, W, b ? b->data : NULL, M, K, D, VIT_EPILOGUE_NONE) != VIT_OK)
        return NULL;
    if (record) {
        vit_node node = {.backward = patch_embed_backward, .out = y, .in = {images, W, b}, .saved = {patches},
                         .dims = {B, C, H, Wd, p, D}};
        if (vit_tape_push(tape, &node) != VIT_OK) return NULL;
    }
    return y;
}
