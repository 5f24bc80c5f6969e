/* cuDNN fused attention (bf16) through cuDNN's backend C API: graph
 * building, plan cache, execution. See sdpa.h for the contract. */
#include "cuda/sdpa.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The cache keeps this many shapes (a training run has two or three: the
 * batch, the evaluation batch, a last partial batch); the least recently used
 * goes beyond it. */
#define SDPA_CACHE_SHAPES 16
/* Descriptors one plan's graph holds at most (the backward has 37). */
#define SDPA_MAX_DESCS 64
#define SDPA_ALIGN 256
/* SDPA_FWD (unified engine) with a stats output: cuDNN 9.13.1. */
#define SDPA_MIN_CUDNN 91301

/* Tensor ids of the variant pack; virtual tensors take ids from 100 on. */
enum {
    UID_Q = 1, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE, UID_DO, UID_DQ, UID_DK, UID_DV,
    UID_ONE, UID_SOFTMAX_SUM, UID_DQ_ACCUM, UID_VIRTUAL = 100
};

typedef struct sdpa_plan {
    bool built;                 /* tried: plan, or the failure below */
    vit_sdpa_plan_report report;
    cudnnBackendDescriptor_t plan;
    cudnnBackendDescriptor_t descs[SDPA_MAX_DESCS]; /* kept for the plan's life */
    int ndescs;
    size_t softmax_sum_offset, dq_accum_offset; /* backward's own buffers in the workspace */
    size_t workspace;           /* total the caller provides */
    bool has_dq_accum;
} sdpa_plan;

typedef struct sdpa_entry {
    int B, T, H, hd;
    uint64_t used;
    sdpa_plan kind[VIT_SDPA_KINDS];
} sdpa_entry;

struct vit_sdpa_cache {
    cudnnHandle_t handle;            /* NULL: plans for devprop, no execution */
    cudnnBackendDescriptor_t devprop; /* owned; NULL with a handle */
    vit_sdpa_options options;
    sdpa_entry *entries[SDPA_CACHE_SHAPES];
    uint64_t clock;
    char message[600]; /* of the last failure: vit_sdpa_message */
};

/* ------------------------------------------------------------ cuDNN errors */

static vit_status status_of(cudnnStatus_t s) {
    switch (CUDNN_STATUS_CATEGORY(s)) {
    case CUDNN_STATUS_BAD_PARAM: return VIT_ERR_INVALID_ARGUMENT;
    case CUDNN_STATUS_NOT_SUPPORTED: return VIT_ERR_UNSUPPORTED;
    case CUDNN_STATUS_NOT_INITIALIZED: return VIT_ERR_UNSUPPORTED;
    default: break;
    }
    if (s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED || s == CUDNN_STATUS_ALLOC_FAILED)
        return VIT_ERR_OUT_OF_MEMORY;
    return VIT_ERR_INTERNAL;
}

/* cuDNN's name for s and its last message, into buf. */
static void describe(char *buf, size_t cap, cudnnStatus_t s) {
    char last[384] = "";
    cudnnGetLastErrorString(last, sizeof last);
    snprintf(buf, cap, "%s%s%s", cudnnGetErrorString(s), last[0] ? ": " : "", last);
}

static vit_status fail_cudnn(cudnnStatus_t s, const char *what) {
    char msg[512];
    describe(msg, sizeof msg, s);
    return vit_fail(status_of(s), "cuDNN attention: %s: %s", what, msg);
}

/* ---------------------------------------------------------- graph building */

/* Builds one plan's descriptors; the first failure is kept and every later
 * step is skipped, so a graph reads as a straight list of nodes. */
typedef struct builder {
    sdpa_plan *p;
    cudnnStatus_t status;
    char where[96];
    int64_t next_virtual;
} builder;

static bool ok(builder *b, cudnnStatus_t s, const char *where) {
    if (b->status == CUDNN_STATUS_SUCCESS && s != CUDNN_STATUS_SUCCESS) {
        b->status = s;
        snprintf(b->where, sizeof b->where, "%s", where);
        describe(b->p->report.message, sizeof b->p->report.message, s);
    }
    return b->status == CUDNN_STATUS_SUCCESS;
}

static cudnnBackendDescriptor_t create(builder *b, cudnnBackendDescriptorType_t type, const char *what) {
    cudnnBackendDescriptor_t d = NULL;
    if (b->status != CUDNN_STATUS_SUCCESS) return NULL;
    if (b->p->ndescs == SDPA_MAX_DESCS) {
        ok(b, CUDNN_STATUS_INTERNAL_ERROR, "descriptor table full");
        return NULL;
    }
    if (!ok(b, cudnnBackendCreateDescriptor(type, &d), what)) return NULL;
    b->p->descs[b->p->ndescs++] = d;
    return d;
}

static void set(builder *b, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                cudnnBackendAttributeType_t type, int64_t count, const void *value, const char *what) {
    if (b->status == CUDNN_STATUS_SUCCESS) ok(b, cudnnBackendSetAttribute(d, name, type, count, value), what);
}

static void finalize(builder *b, cudnnBackendDescriptor_t d, const char *what) {
    if (b->status == CUDNN_STATUS_SUCCESS) ok(b, cudnnBackendFinalize(d), what);
}

typedef enum tensor_kind { REAL = 0, VIRTUAL = 1, BY_VALUE = 2 } tensor_kind;

/* A 4-d tensor; uid 0 takes the next virtual id. */
static cudnnBackendDescriptor_t tensor(builder *b, int64_t uid, cudnnDataType_t type, const int64_t dims[4],
                                       const int64_t strides[4], tensor_kind kind) {
    cudnnBackendDescriptor_t t = create(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
    int64_t id = uid ? uid : b->next_virtual++, align = 16;
    bool yes = true;
    set(b, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &id, "tensor id");
    set(b, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor type");
    set(b, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
    set(b, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims, "tensor dimensions");
    set(b, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides, "tensor strides");
    if (kind == VIRTUAL) set(b, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &yes, "virtual");
    if (kind == BY_VALUE) set(b, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes, "by value");
    finalize(b, t, "tensor");
    return t;
}

/* An fp32 scalar passed by value at execution (the scale, the constant 1). */
static cudnnBackendDescriptor_t scalar(builder *b, int64_t uid) {
    static const int64_t one[4] = {1, 1, 1, 1};
    return tensor(b, uid, CUDNN_DATA_FLOAT, one, one, BY_VALUE);
}

/* An operation of that type whose attributes are descriptors (NULL ones
 * skipped), finalized. */
typedef struct op_input {
    cudnnBackendAttributeName_t name;
    cudnnBackendDescriptor_t desc;
} op_input;

static cudnnBackendDescriptor_t operation(builder *b, cudnnBackendDescriptorType_t type, const char *what,
                                          const op_input *in, int n) {
    cudnnBackendDescriptor_t op = create(b, type, what);
    for (int i = 0; i < n; i++)
        if (in[i].desc) set(b, op, in[i].name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &in[i].desc, what);
    finalize(b, op, what);
    return op;
}

/* A descriptor of that type with one data-type attribute (a compute type). */
static cudnnBackendDescriptor_t typed(builder *b, cudnnBackendDescriptorType_t type, cudnnBackendAttributeName_t name,
                                      const char *what) {
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t d = create(b, type, what);
    set(b, d, name, CUDNN_TYPE_DATA_TYPE, 1, &f32, what);
    if (type == CUDNN_BACKEND_REDUCTION_DESCRIPTOR) {
        cudnnReduceTensorOp_t add = CUDNN_REDUCE_TENSOR_ADD;
        set(b, d, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &add, what);
    }
    finalize(b, d, what);
    return d;
}

/* y = mode(x[, x2]) in fp32. */
static cudnnBackendDescriptor_t pointwise(builder *b, cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                                          cudnnBackendDescriptor_t x2, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t pw = create(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise");
    set(b, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    set(b, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise precision");
    finalize(b, pw, "pointwise");
    op_input in[] = {{CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw}, {CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x},
                     {CUDNN_ATTR_OPERATION_POINTWISE_BDESC, x2}, {CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y}};
    return operation(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise op", in, 4);
}

/* c = a @ bm (batched over the first two dimensions), fp32 accumulation. */
static cudnnBackendDescriptor_t matmul(builder *b, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t bm,
                                       cudnnBackendDescriptor_t c) {
    cudnnBackendDescriptor_t mm = typed(b, CUDNN_BACKEND_MATMUL_DESCRIPTOR, CUDNN_ATTR_MATMUL_COMP_TYPE, "matmul");
    op_input in[] = {{CUDNN_ATTR_OPERATION_MATMUL_ADESC, a}, {CUDNN_ATTR_OPERATION_MATMUL_BDESC, bm},
                     {CUDNN_ATTR_OPERATION_MATMUL_CDESC, c}, {CUDNN_ATTR_OPERATION_MATMUL_DESC, mm}};
    return operation(b, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul op", in, 4);
}

/* y = sum of x over the dimensions where y has extent 1. */
static cudnnBackendDescriptor_t reduce_sum(builder *b, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t rd =
        typed(b, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, CUDNN_ATTR_REDUCTION_COMP_TYPE, "reduction");
    op_input in[] = {{CUDNN_ATTR_OPERATION_REDUCTION_DESC, rd}, {CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x},
                     {CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y}};
    return operation(b, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "reduction op", in, 3);
}

/* y: the same elements as x seen through other dimensions and strides. */
static cudnnBackendDescriptor_t reshape(builder *b, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    op_input in[] = {{CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x}, {CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y}};
    return operation(b, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, "reshape op", in, 2);
}

/* ----------------------------------------------------------------- layouts */

/* The [B, H, rows, cols] views of the graphs, in elements. */
typedef struct layout {
    int64_t head[4], headT[4];    /* q, k, v (and their gradients) in qkv: [B, H, T, hd], [B, H, hd, T] */
    int64_t head_s[4], headT_s[4];
    int64_t out_s[4];             /* out, dout: [B, H, T, hd] in [B, T, H, hd] */
    int64_t row[4], row_s[4];     /* stats, softmax sum: [B, H, T, 1] */
    int64_t sq[4], sq_s[4], sqT_s[4]; /* scores [B, H, T, T], and transposed */
    int64_t bhtd_s[4];            /* dense [B, H, T, hd] (dq accumulator) */
    int64_t dOxO_s[4];            /* dout * out before its row sum, as cuDNN's frontend lays it */
} layout;

static layout make_layout(int64_t B, int64_t T, int64_t H, int64_t hd) {
    int64_t D = H * hd;
    layout l = {
        .head = {B, H, T, hd}, .headT = {B, H, hd, T},
        .head_s = {T * 3 * D, hd, 3 * D, 1}, .headT_s = {T * 3 * D, hd, 1, 3 * D},
        .out_s = {T * D, hd, D, 1},
        .row = {B, H, T, 1}, .row_s = {H * T, T, 1, 1},
        .sq = {B, H, T, T}, .sq_s = {H * T * T, T * T, T, 1}, .sqT_s = {H * T * T, T * T, 1, T},
        .bhtd_s = {H * T * hd, T * hd, hd, 1}, .dOxO_s = {H * T * hd, T * hd, D, 1},
    };
    return l;
}

/* Forward: cuDNN's SDPA_FWD operation (its unified flash-attention engine).
 * Returns the number of operations in ops. */
static int graph_forward(builder *b, const layout *l, bool stats, cudnnBackendDescriptor_t *ops) {
    const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16;
    cudnnBackendDescriptor_t q = tensor(b, UID_Q, bf, l->head, l->head_s, REAL),
                             k = tensor(b, UID_K, bf, l->head, l->head_s, REAL),
                             v = tensor(b, UID_V, bf, l->head, l->head_s, REAL),
                             o = tensor(b, UID_O, bf, l->head, l->out_s, REAL), scale = scalar(b, UID_SCALE);
    cudnnBackendDescriptor_t st = stats ? tensor(b, UID_STATS, CUDNN_DATA_FLOAT, l->row, l->row_s, REAL) : NULL;
    op_input in[] = {{CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, q},         {CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, k},
                     {CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, v},         {CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, o},
                     {CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, scale}, {CUDNN_ATTR_OPERATION_SDPA_FWD_STATSDESC, st}};
    ops[0] = operation(b, CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR, "SDPA forward op", in, 6);
    return 1;
}

/* An fp32 intermediate [B, H, T, T] (scores and their gradients), never in memory. */
static cudnnBackendDescriptor_t scores(builder *b, const layout *l) {
    return tensor(b, 0, CUDNN_DATA_FLOAT, l->sq, l->sq_s, VIRTUAL);
}

/* Backward as the composite graph cuDNN recognises as flash-attention
 * backward (the one cuDNN's frontend builds, MHA, no mask, no dropout):
 *   softmax_sum = rowsum(dO * O)                      [B, H, T, 1]
 *   P  = exp(Q K^T * scale - stats)                   [B, H, T, T]
 *   dV = P^T dO
 *   dS = (dO V^T - softmax_sum) * P * scale
 *   dK = dS^T Q,  dQ = dS K
 * Returns the number of operations in ops. */
static int graph_backward(builder *b, const layout *l, bool deterministic, cudnnBackendDescriptor_t *ops) {
    const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
    int n = 0;
    cudnnBackendDescriptor_t q = tensor(b, UID_Q, bf, l->head, l->head_s, REAL),
                             kT = tensor(b, UID_K, bf, l->headT, l->headT_s, REAL),
                             vT = tensor(b, UID_V, bf, l->headT, l->headT_s, REAL),
                             o = tensor(b, UID_O, bf, l->head, l->out_s, REAL),
                             dO = tensor(b, UID_DO, bf, l->head, l->out_s, REAL),
                             stats = tensor(b, UID_STATS, f32, l->row, l->row_s, REAL),
                             scale = scalar(b, UID_SCALE), one = scalar(b, UID_ONE),
                             dQ = tensor(b, UID_DQ, bf, l->head, l->head_s, REAL),
                             dK = tensor(b, UID_DK, bf, l->head, l->head_s, REAL),
                             dV = tensor(b, UID_DV, bf, l->head, l->head_s, REAL);

    /* softmax_sum: an fp32 buffer of ours in the workspace */
    cudnnBackendDescriptor_t dOxO = tensor(b, 0, f32, l->head, l->dOxO_s, VIRTUAL),
                             rowsum = tensor(b, 0, f32, l->row, l->row_s, VIRTUAL),
                             softmax_sum = tensor(b, UID_SOFTMAX_SUM, f32, l->row, l->row_s, REAL);
    ops[n++] = pointwise(b, CUDNN_POINTWISE_MUL, dO, o, dOxO);
    ops[n++] = reduce_sum(b, dOxO, rowsum);
    ops[n++] = pointwise(b, CUDNN_POINTWISE_MUL, rowsum, one, softmax_sum);

    cudnnBackendDescriptor_t s = scores(b, l), s_scaled = scores(b, l), s_centered = scores(b, l), p = scores(b, l),
                             pT = tensor(b, 0, bf, l->sq, l->sqT_s, VIRTUAL);
    ops[n++] = matmul(b, q, kT, s);
    ops[n++] = pointwise(b, CUDNN_POINTWISE_MUL, s, scale, s_scaled);
    ops[n++] = pointwise(b, CUDNN_POINTWISE_SUB, s_scaled, stats, s_centered);
    ops[n++] = pointwise(b, CUDNN_POINTWISE_EXP, s_centered, NULL, p);
    ops[n++] = reshape(b, p, pT);
    ops[n++] = matmul(b, pT, dO, dV);

    cudnnBackendDescriptor_t dP = scores(b, l), dP_centered = scores(b, l), dPxP = scores(b, l), dS = scores(b, l),
                             dST = tensor(b, 0, bf, l->sq, l->sqT_s, VIRTUAL);
    ops[n++] = matmul(b, dO, vT, dP);
    ops[n++] = pointwise(b, CUDNN_POINTWISE_SUB, dP, softmax_sum, dP_centered);
    ops[n++] = pointwise(b, CUDNN_POINTWISE_MUL, dP_centered, p, dPxP);
    ops[n++] = pointwise(b, CUDNN_POINTWISE_MUL, dPxP, scale, dS);
    ops[n++] = reshape(b, dS, dST);
    ops[n++] = matmul(b, dST, q, dK);

    cudnnBackendDescriptor_t k = tensor(b, 0, bf, l->head, l->head_s, VIRTUAL);
    ops[n++] = reshape(b, kT, k);
    if (deterministic) {
        /* no fp32 accumulator: cuDNN's dP-workspace kernel, without atomics */
        ops[n++] = matmul(b, dS, k, dQ);
    } else {
        cudnnBackendDescriptor_t acc = tensor(b, UID_DQ_ACCUM, f32, l->head, l->bhtd_s, REAL);
        ops[n++] = matmul(b, dS, k, acc);
        ops[n++] = pointwise(b, CUDNN_POINTWISE_IDENTITY, acc, NULL, dQ);
    }
    return n;
}

/* The operation graph, heuristics and the first engine configuration whose
 * plan finalizes. */
static void make_plan(builder *b, vit_sdpa_cache *c, cudnnBackendDescriptor_t *ops, int nops) {
    sdpa_plan *p = b->p;
    cudnnBackendDescriptor_t g = create(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    if (c->handle) set(b, g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &c->handle, "graph handle");
    set(b, g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, nops, ops, "graph operations");
    if (b->status == CUDNN_STATUS_SUCCESS) {
        cudnnStatus_t s = cudnnBackendFinalize(g);
        p->report.graph_status = s;
        ok(b, s, "operation graph");
    }
    /* mode A, then the fallback list: engines cuDNN expects to run, best first */
    const cudnnBackendHeurMode_t modes[2] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
    for (int m = 0; m < 2 && b->status == CUDNN_STATUS_SUCCESS && !p->plan; m++) {
        cudnnBackendDescriptor_t heur = NULL;
        if (!ok(b, cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur), "heuristics")) break;
        cudnnStatus_t s = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                                                   CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g);
        if (!s) s = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &modes[m]);
        if (!s && c->devprop)
            s = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                         &c->devprop);
        if (!s) s = cudnnBackendFinalize(heur);
        int64_t count = 0, got = 0;
        if (!s) s = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                             &count, NULL);
        if (s) {
            /* the fallback list may answer where mode A did not; a failure of
             * the fallback list after mode A's engines were tried says less */
            if (m == 1 && !p->report.plans_tried) ok(b, s, "heuristics");
            cudnnBackendDestroyDescriptor(heur);
            continue;
        }
        if (m == 0) p->report.engine_configs = (int)count;
        cudnnBackendDescriptor_t cfg[32] = {0};
        if (count > 32) count = 32;
        int64_t made = 0;
        while (made < count && !cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfg[made])) made++;
        if (made && !cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                              made, &got, cfg)) {
            for (int64_t i = 0; i < got && !p->plan; i++) {
                cudnnBackendDescriptor_t plan = NULL;
                if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan)) break;
                p->report.plans_tried++;
                s = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                             CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg[i]);
                if (!s && c->handle)
                    s = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1,
                                                 &c->handle);
                if (!s && c->devprop)
                    s = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP,
                                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c->devprop);
                if (!s) s = cudnnBackendFinalize(plan);
                int64_t ws = 0, nws = 0;
                if (!s) s = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                                                     1, &nws, &ws);
                if (s) {
                    /* keep the first refusal's words: later engines say the same or less */
                    if (p->report.plans_tried == 1)
                        describe(p->report.message, sizeof p->report.message, s);
                    cudnnBackendDestroyDescriptor(plan);
                    continue;
                }
                p->plan = plan;
                p->report.workspace = ws;
            }
        }
        for (int64_t i = 0; i < made; i++) cudnnBackendDestroyDescriptor(cfg[i]);
        cudnnBackendDestroyDescriptor(heur);
    }
    if (b->status == CUDNN_STATUS_SUCCESS && !p->plan) {
        b->status = CUDNN_STATUS_NOT_SUPPORTED;
        if (p->report.plans_tried)
            snprintf(b->where, sizeof b->where, "none of %d engine configurations finalized, the first said",
                     p->report.plans_tried);
        else
            snprintf(b->where, sizeof b->where, "the heuristics gave no engine configuration (%d counted)",
                     p->report.engine_configs);
        if (!p->report.plans_tried) p->report.message[0] = '\0';
    }
}

static size_t align_up(size_t n) { return (n + SDPA_ALIGN - 1) / SDPA_ALIGN * SDPA_ALIGN; }

/* Frees a plan's descriptors; its report stays (a refused plan is remembered). */
static void release_descriptors(sdpa_plan *p) {
    if (p->plan) cudnnBackendDestroyDescriptor(p->plan);
    for (int i = p->ndescs - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(p->descs[i]);
    p->plan = NULL;
    p->ndescs = 0;
}

static const char *kind_name(vit_sdpa_kind kind) {
    return kind == VIT_SDPA_BACKWARD ? "backward" : kind == VIT_SDPA_FORWARD_TRAINING ? "forward (training)"
                                                                                       : "forward (inference)";
}

static void build(vit_sdpa_cache *c, const sdpa_entry *e, vit_sdpa_kind kind, sdpa_plan *p) {
    builder b = {.p = p, .status = CUDNN_STATUS_SUCCESS, .next_virtual = UID_VIRTUAL};
    p->report.graph_status = -1; /* not reached */
    cudnnBackendDescriptor_t ops[24];
    layout l = make_layout(e->B, e->T, e->H, e->hd);
    int nops = kind == VIT_SDPA_BACKWARD ? graph_backward(&b, &l, c->options.deterministic, ops)
                                         : graph_forward(&b, &l, kind == VIT_SDPA_FORWARD_TRAINING, ops);
    make_plan(&b, c, ops, nops);
    p->built = true;
    if (b.status != CUDNN_STATUS_SUCCESS) {
        char why[sizeof p->report.message];
        memcpy(why, p->report.message, sizeof why);
        snprintf(p->report.message, sizeof p->report.message, "%s at B=%d T=%d H=%d hd=%d: %.380s", kind_name(kind),
                 e->B, e->T, e->H, e->hd, b.where);
        size_t used = strlen(p->report.message);
        snprintf(p->report.message + used, sizeof p->report.message - used, ": %s",
                 why[0] ? why : cudnnGetErrorString(b.status));
        /* everything cuDNN refuses while planning is a shape it cannot serve */
        p->report.status = status_of(b.status) == VIT_ERR_OUT_OF_MEMORY ? VIT_ERR_OUT_OF_MEMORY
                                                                         : VIT_ERR_UNSUPPORTED;
        release_descriptors(p);
        return;
    }
    p->report.status = VIT_OK;
    p->report.message[0] = '\0';
    size_t ws = align_up((size_t)p->report.workspace);
    if (kind == VIT_SDPA_BACKWARD) {
        size_t rows = (size_t)e->B * e->H * e->T;
        p->softmax_sum_offset = ws;
        ws += align_up(rows * sizeof(float));
        p->has_dq_accum = !c->options.deterministic;
        if (p->has_dq_accum) {
            p->dq_accum_offset = ws;
            ws += align_up(rows * e->hd * sizeof(float));
        }
    }
    p->workspace = ws;
}

/* ------------------------------------------------------------------- cache */

static vit_sdpa_options default_options(const vit_sdpa_options *options) {
    vit_sdpa_options o = {.deterministic = true};
    return options ? *options : o;
}

static vit_status check_version(void) {
    size_t v = cudnnGetVersion();
    if (v < SDPA_MIN_CUDNN)
        return vit_fail(VIT_ERR_UNSUPPORTED, "cuDNN attention: cuDNN %zu.%zu.%zu is loaded; it needs 9.13.1 or newer",
                        v / 10000, v / 100 % 100, v % 100);
    return VIT_OK;
}

vit_status vit_sdpa_cache_create(vit_sdpa_cache **out, cudnnHandle_t handle, const vit_sdpa_options *options) {
    VIT_CHECK_ARG(out, "vit_sdpa_cache_create: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(handle, "vit_sdpa_cache_create: handle is NULL");
    VIT_TRY(check_version());
    vit_sdpa_cache *c = calloc(1, sizeof *c);
    if (!c) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "cuDNN attention: no memory for the plan cache");
    c->handle = handle;
    c->options = default_options(options);
    *out = c;
    return VIT_OK;
}

vit_status vit_sdpa_cache_create_for_device(vit_sdpa_cache **out, const char *device_json,
                                            const vit_sdpa_options *options) {
    VIT_CHECK_ARG(out, "vit_sdpa_cache_create_for_device: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(device_json, "vit_sdpa_cache_create_for_device: device_json is NULL");
    VIT_TRY(check_version());
    cudnnBackendDescriptor_t d = NULL;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, &d);
    if (!s) s = cudnnBackendSetAttribute(d, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR,
                                         (int64_t)strlen(device_json) + 1, device_json);
    if (!s) s = cudnnBackendFinalize(d);
    if (s) {
        vit_status st = fail_cudnn(s, "device description");
        if (d) cudnnBackendDestroyDescriptor(d);
        return st;
    }
    vit_sdpa_cache *c = calloc(1, sizeof *c);
    if (!c) {
        cudnnBackendDestroyDescriptor(d);
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "cuDNN attention: no memory for the plan cache");
    }
    c->devprop = d;
    c->options = default_options(options);
    *out = c;
    return VIT_OK;
}

static void release_entry(sdpa_entry *e) {
    for (int k = 0; k < VIT_SDPA_KINDS; k++) release_descriptors(&e->kind[k]);
    free(e);
}

void vit_sdpa_cache_destroy(vit_sdpa_cache *c) {
    if (!c) return;
    for (int i = 0; i < SDPA_CACHE_SHAPES; i++)
        if (c->entries[i]) release_entry(c->entries[i]);
    if (c->devprop) cudnnBackendDestroyDescriptor(c->devprop);
    free(c);
}

/* A failure of the cache's own, kept for vit_sdpa_message as well. */
static vit_status remember(vit_sdpa_cache *c, vit_status status, const char *fmt, ...) VIT_PRINTF(3, 4);
static vit_status remember(vit_sdpa_cache *c, vit_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, sizeof c->message, fmt, ap);
    va_end(ap);
    return vit_fail(status, "%s", c->message);
}

const char *vit_sdpa_message(const vit_sdpa_cache *cache) { return cache ? cache->message : ""; }

static vit_status check_shape(vit_sdpa_cache *c, int B, int T, int H, int hd) {
    if (B <= 0 || T <= 0 || H <= 0 || hd <= 0)
        return remember(c, VIT_ERR_INVALID_ARGUMENT, "cuDNN attention: B=%d T=%d H=%d hd=%d: each must be positive",
                        B, T, H, hd);
    if (hd % 8 || hd > 256)
        return remember(c, VIT_ERR_UNSUPPORTED,
                        "cuDNN attention: head dim %d: cuDNN needs a multiple of 8 up to 256", hd);
    return VIT_OK;
}

static sdpa_entry *find_entry(const vit_sdpa_cache *c, int B, int T, int H, int hd) {
    for (int i = 0; i < SDPA_CACHE_SHAPES; i++) {
        sdpa_entry *x = c->entries[i];
        if (x && x->B == B && x->T == T && x->H == H && x->hd == hd) return x;
    }
    return NULL;
}

/* The plan of that kind for the shape, built on first use. */
static vit_status find_plan(vit_sdpa_cache *c, vit_sdpa_kind kind, int B, int T, int H, int hd, sdpa_plan **out) {
    *out = NULL;
    VIT_TRY(check_shape(c, B, T, H, hd));
    sdpa_entry *e = find_entry(c, B, T, H, hd);
    if (!e) {
        /* an empty slot, else the least recently used */
        int slot = 0;
        for (int i = 0; i < SDPA_CACHE_SHAPES && c->entries[slot]; i++)
            if (!c->entries[i] || c->entries[i]->used < c->entries[slot]->used) slot = i;
        if (c->entries[slot]) release_entry(c->entries[slot]);
        c->entries[slot] = e = calloc(1, sizeof *e);
        if (!e) return remember(c, VIT_ERR_OUT_OF_MEMORY, "cuDNN attention: no memory for a plan");
        e->B = B, e->T = T, e->H = H, e->hd = hd;
    }
    e->used = ++c->clock;
    sdpa_plan *p = &e->kind[kind];
    if (!p->built) build(c, e, kind, p);
    if (p->report.status != VIT_OK)
        return remember(c, p->report.status, "cuDNN attention: %s", p->report.message);
    *out = p;
    return VIT_OK;
}

vit_status vit_sdpa_prepare(vit_sdpa_cache *c, vit_sdpa_kind kind, int B, int T, int H, int hd,
                            vit_sdpa_plan_report *report) {
    VIT_CHECK_ARG(c, "vit_sdpa_prepare: cache is NULL");
    VIT_CHECK_ARG(kind >= 0 && kind < VIT_SDPA_KINDS, "vit_sdpa_prepare: kind %d unknown", (int)kind);
    sdpa_plan *p = NULL;
    vit_status st = find_plan(c, kind, B, T, H, hd, &p);
    if (report) {
        memset(report, 0, sizeof *report);
        report->status = st;
        if (p) *report = p->report;
        else snprintf(report->message, sizeof report->message, "%.500s", c->message);
        /* a plan cuDNN refused: its report, not only the message */
        sdpa_entry *e = p ? NULL : find_entry(c, B, T, H, hd);
        if (e && e->kind[kind].built) *report = e->kind[kind].report;
    }
    return st;
}

vit_status vit_sdpa_workspace_bytes(vit_sdpa_cache *c, vit_sdpa_kind kind, int B, int T, int H, int hd,
                                    size_t *bytes) {
    VIT_CHECK_ARG(c && bytes, "vit_sdpa_workspace_bytes: %s is NULL", c ? "bytes" : "cache");
    VIT_CHECK_ARG(kind >= 0 && kind < VIT_SDPA_KINDS, "vit_sdpa_workspace_bytes: kind %d unknown", (int)kind);
    *bytes = 0;
    sdpa_plan *p = NULL;
    VIT_TRY(find_plan(c, kind, B, T, H, hd, &p));
    *bytes = p->workspace;
    return VIT_OK;
}

/* --------------------------------------------------------------- execution */

static vit_status execute(vit_sdpa_cache *c, const sdpa_plan *p, const int64_t *uids, void **ptrs, int n,
                          void *workspace, const char *what) {
    cudnnBackendDescriptor_t pack = NULL;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack);
    if (!s) s = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (!s) s = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (!s) s = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
    if (!s) s = cudnnBackendFinalize(pack);
    if (!s) s = cudnnBackendExecute(c->handle, p->plan, pack);
    vit_status st = s ? fail_cudnn(s, what) : VIT_OK;
    if (pack) cudnnBackendDestroyDescriptor(pack);
    return st;
}

static bool aligned(const void *p) { return ((uintptr_t)p & 15) == 0; }

static vit_status check_run(const vit_sdpa_cache *c, const sdpa_plan *p, void *workspace, size_t bytes,
                            const char *fn) {
    if (!c->handle)
        return vit_fail(VIT_ERR_UNSUPPORTED, "%s: this cache only builds plans (made from a device description)", fn);
    VIT_CHECK_ARG(bytes >= p->workspace, "%s: workspace of %zu bytes; this shape needs %zu", fn, bytes,
                  p->workspace);
    VIT_CHECK_ARG(p->workspace == 0 || (workspace && ((uintptr_t)workspace & (SDPA_ALIGN - 1)) == 0),
                  "%s: workspace must be a %d-byte aligned device pointer", fn, SDPA_ALIGN);
    return VIT_OK;
}

vit_status vit_sdpa_forward(vit_sdpa_cache *c, void *out, float *stats, const void *qkv, int B, int T, int H,
                            int hd, float scale, void *workspace, size_t workspace_bytes) {
    VIT_CHECK_ARG(c, "vit_sdpa_forward: cache is NULL");
    VIT_CHECK_ARG(out && qkv, "vit_sdpa_forward: %s is NULL", out ? "qkv" : "out");
    VIT_CHECK_ARG(aligned(out) && aligned(qkv) && aligned(stats),
                  "vit_sdpa_forward: out, qkv and stats must be 16-byte aligned");
    sdpa_plan *p = NULL;
    VIT_TRY(find_plan(c, stats ? VIT_SDPA_FORWARD_TRAINING : VIT_SDPA_FORWARD_INFERENCE, B, T, H, hd, &p));
    VIT_TRY(check_run(c, p, workspace, workspace_bytes, "vit_sdpa_forward"));
    size_t D = (size_t)H * hd;
    uint16_t *base = (uint16_t *)(uintptr_t)qkv; /* bf16 elements */
    int64_t uids[6] = {UID_Q, UID_K, UID_V, UID_O, UID_SCALE, UID_STATS};
    void *ptrs[6] = {base, base + D, base + 2 * D, out, &scale, stats};
    return execute(c, p, uids, ptrs, stats ? 6 : 5, workspace, "forward");
}

vit_status vit_sdpa_backward(vit_sdpa_cache *c, void *dqkv, const void *dout, const void *qkv, const void *out,
                             const float *stats, int B, int T, int H, int hd, float scale, void *workspace,
                             size_t workspace_bytes) {
    VIT_CHECK_ARG(c, "vit_sdpa_backward: cache is NULL");
    VIT_CHECK_ARG(dqkv && dout && qkv && out && stats, "vit_sdpa_backward: %s is NULL",
                  !dqkv ? "dqkv" : !dout ? "dout" : !qkv ? "qkv" : !out ? "out" : "stats");
    VIT_CHECK_ARG(aligned(dqkv) && aligned(dout) && aligned(qkv) && aligned(out) && aligned(stats),
                  "vit_sdpa_backward: dqkv, dout, qkv, out and stats must be 16-byte aligned");
    sdpa_plan *p = NULL;
    VIT_TRY(find_plan(c, VIT_SDPA_BACKWARD, B, T, H, hd, &p));
    VIT_TRY(check_run(c, p, workspace, workspace_bytes, "vit_sdpa_backward"));
    size_t D = (size_t)H * hd;
    uint16_t *in = (uint16_t *)(uintptr_t)qkv, *grad = dqkv;
    char *ws = workspace;
    float one = 1.0f;
    int64_t uids[13] = {UID_Q, UID_K, UID_V, UID_O, UID_DO, UID_STATS, UID_SCALE, UID_ONE,
                        UID_DQ, UID_DK, UID_DV, UID_SOFTMAX_SUM, UID_DQ_ACCUM};
    void *ptrs[13] = {in, in + D, in + 2 * D, (void *)(uintptr_t)out, (void *)(uintptr_t)dout,
                      (void *)(uintptr_t)stats, &scale, &one, grad, grad + D, grad + 2 * D,
                      ws + p->softmax_sum_offset, ws + p->dq_accum_offset};
    return execute(c, p, uids, ptrs, p->has_dq_accum ? 13 : 12, workspace, "backward");
}
