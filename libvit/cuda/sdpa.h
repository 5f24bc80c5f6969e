/*
 * Self-attention through cuDNN's fused scaled-dot-product attention (bf16),
 * built with cuDNN's backend (graph) C API. Internal to the CUDA backend.
 *
 * Layout (timm's): the qkv linear's output [B, T, 3 * D] viewed as
 * qkv [B, T, 3, H, hd] (D = H * hd); q, k and v are read from it by strides,
 * with no copy. out [B, T, H, hd] (= [B, T, D], heads concatenated).
 * stats [B, H, T] fp32: the log-sum-exp of each row of scaled scores, kept
 * by forward for backward. dqkv has qkv's layout.
 *
 *   scores = q k^T * scale,  p = softmax(scores) over keys,  out = p v
 *
 * No mask, no dropout: with attention dropout on the backend runs its own
 * kernels, whose mask comes from libvit's counter hash (cuDNN's RNG differs).
 *
 * Forward is cuDNN's SDPA_FWD operation. Backward is the composite graph
 * cuDNN's frontend builds (matmuls, pointwise and a reduction that cuDNN
 * fuses into its flash-attention backward), because a graph holding only
 * cuDNN's SDPA_BWD operation does not finalize (BAD_PARAM in buildDAG).
 *
 * Plans are built on first use and cached per (B, T, H, hd) and kind
 * (training forward with stats, inference forward, backward). A shape cuDNN
 * refuses is remembered too: the same call fails at once with the same
 * message, so the backend can fall back to its own kernels every step without
 * rebuilding. Every failure is a vit_status with cuDNN's own message
 * (vit_last_error); nothing aborts or prints. Not thread-safe: one cache per
 * cudnnHandle_t, used by the context that owns both.
 *
 * Status codes:
 *   VIT_ERR_UNSUPPORTED       cuDNN cannot serve this shape or device (the
 *                             backend falls back); also hd not a multiple of
 *                             8 or above 256, or cuDNN older than 9.13.1
 *   VIT_ERR_INVALID_ARGUMENT  NULL or misaligned pointer, non-positive size,
 *                             workspace too small
 *   VIT_ERR_OUT_OF_MEMORY     host memory for the cache
 *   VIT_ERR_INTERNAL          cuDNN failed while executing
 */
#ifndef VIT_CUDA_SDPA_H
#define VIT_CUDA_SDPA_H

#include <stdbool.h>
#include <stddef.h>

#include <cudnn.h>

#include "core/core.h"

typedef struct vit_sdpa_cache vit_sdpa_cache;

typedef struct vit_sdpa_options {
    /* Backward in the form cuDNN's frontend builds for its deterministic
     * algorithm (dQ straight from the product, no fp32 accumulator that
     * thread blocks add into): the same bits every run, for more workspace
     * (the query tells). libvit's default, as for its own kernels. */
    bool deterministic;
} vit_sdpa_options;

/* The plans a shape has. */
typedef enum vit_sdpa_kind {
    VIT_SDPA_FORWARD_TRAINING = 0,
    VIT_SDPA_FORWARD_INFERENCE = 1,
    VIT_SDPA_BACKWARD = 2,
    VIT_SDPA_KINDS = 3
} vit_sdpa_kind;

/* A cache executing on handle (its stream: cudnnSetStream). options may be NULL
 * (deterministic). The cache does not own handle. */
vit_status vit_sdpa_cache_create(vit_sdpa_cache **out, cudnnHandle_t handle, const vit_sdpa_options *options);

/* A cache that builds plans for a device described in JSON (cuDNN's
 * CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR), without a GPU: for host-side tests of
 * graph building. Its forward and backward fail (VIT_ERR_UNSUPPORTED). */
vit_status vit_sdpa_cache_create_for_device(vit_sdpa_cache **out, const char *device_json,
                                            const vit_sdpa_options *options);

void vit_sdpa_cache_destroy(vit_sdpa_cache *cache);

/* The message of the cache's last failure to find or build a plan (what
 * vit_last_error() said then; "" if none): for log lines in the CUDA module,
 * which cannot read libvit's thread error. */
const char *vit_sdpa_message(const vit_sdpa_cache *cache);

/* *bytes: the device workspace a call of that kind needs at this shape
 * (building and caching its plan). */
vit_status vit_sdpa_workspace_bytes(vit_sdpa_cache *cache, vit_sdpa_kind kind, int B, int T, int H, int hd,
                                    size_t *bytes);

/* out [B, T, H, hd] bf16; stats [B, H, T] fp32, or NULL in inference (a plan
 * without it: VIT_SDPA_FORWARD_INFERENCE); qkv [B, T, 3, H, hd] bf16. All
 * device pointers, 16-byte aligned; workspace 256-byte aligned, at least
 * what vit_sdpa_workspace_bytes gives for the kind. Queued on the handle's
 * stream. */
vit_status vit_sdpa_forward(vit_sdpa_cache *cache, void *out, float *stats, const void *qkv, int B, int T, int H,
                            int hd, float scale, void *workspace, size_t workspace_bytes);

/* dqkv [B, T, 3, H, hd] bf16 is WRITTEN (every element of q's, k's and v's
 * gradient, not accumulated: the qkv activation has no other consumer);
 * dout [B, T, H, hd]; qkv, out and stats as forward gave them, with the same
 * scale. */
vit_status vit_sdpa_backward(vit_sdpa_cache *cache, void *dqkv, const void *dout, const void *qkv, const void *out,
                             const float *stats, int B, int T, int H, int hd, float scale, void *workspace,
                             size_t workspace_bytes);

/* For tests and logs: what building the plans for a shape gave. */
typedef struct vit_sdpa_plan_report {
    vit_status status;      /* VIT_OK: a plan finalized */
    long long graph_status; /* cudnnStatus_t of the operation graph's finalize; -1: not reached */
    int engine_configs;     /* configurations the heuristics returned */
    int plans_tried;
    long long workspace;    /* of the plan that finalized */
    char message[512];      /* cuDNN's message when status != VIT_OK */
} vit_sdpa_plan_report;

/* Builds (or finds) the plan of that kind and reports; returns report->status. */
vit_status vit_sdpa_prepare(vit_sdpa_cache *cache, vit_sdpa_kind kind, int B, int T, int H, int hd,
                            vit_sdpa_plan_report *report);

#endif
