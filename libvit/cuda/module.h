/*
 * The seam between libvit.so.0 and its CUDA module, libvit-cuda.so.
 *
 * libvit.so.0 never links CUDA: when a context asks for VIT_DEVICE_CUDA,
 * core/device.c dlopens the module (so a CPU-only program never loads the
 * CUDA runtime, cuBLAS or cuDNN, and one install runs on machines without
 * them), checks this handshake, and asks the module for a backend. The
 * module exports exactly the two functions below; it reaches back into
 * libvit only through vit_cuda_host (error detail and logging), because
 * libvit.so.0 exports nothing outside the public vit_* API.
 *
 * VIT_CUDA_MODULE_ABI changes whenever anything here or in core/backend.h
 * (vit_backend, vit_backend_ops, vit_gemm, vit_adamw_consts) changes shape
 * or meaning; the loader also compares the table sizes and the library
 * version, so a module from another build is refused with the reason.
 * (3: the NCCL table below; 4: gelu_bias_backward's output,
 * attention_backward's accumulate.)
 */
#ifndef VIT_CUDA_MODULE_H
#define VIT_CUDA_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"

#define VIT_CUDA_MODULE_ABI 4u
#define VIT_CUDA_MODULE_FILE "libvit-cuda.so"

/* NCCL for data-parallel training (cuda/nccl.c; dist/nccl.c is the caller):
 * one NCCL communicator per libvit communicator, on the GPU of the backend
 * that opened it, with its own stream so that reductions overlap the
 * backend's stream. Every collective is ordered after what the backend's
 * stream has queued when it is started (an event the NCCL stream waits
 * for), and its completion is an event the host polls. The communicator is
 * non-blocking: no call waits for another rank longer than timeout_ms. */
typedef struct vit_cuda_nccl vit_cuda_nccl;
typedef struct vit_cuda_nccl_ops {
    uint32_t id_bytes;   /* sizeof(ncclUniqueId) */
    /* Rank 0: a new unique id (id_bytes), for the host transport to broadcast. */
    vit_status (*unique_id)(void *id);
    /* Collective over the size ranks: rank's communicator on be's GPU. */
    vit_status (*open)(vit_backend *be, const void *id, int rank, int size, int64_t timeout_ms, vit_cuda_nccl **out);
    /* Completion events for slots 0..slots-1 (none in flight). */
    vit_status (*reserve)(vit_cuda_nccl *nc, int slots);
    /* buf[count] (be's device memory) := the mean over the ranks (fp32, ncclAvg), in place. */
    vit_status (*average)(vit_cuda_nccl *nc, vit_backend *be, int slot, float *buf, int64_t count);
    /* bytes of buf from rank 0 to every rank, in place. */
    vit_status (*broadcast)(vit_cuda_nccl *nc, vit_backend *be, int slot, void *buf, int64_t bytes);
    /* *done once slot's collective has finished; an error NCCL reported fails it. */
    vit_status (*test)(vit_cuda_nccl *nc, int slot, bool *done);
    /* abort: after a failure, without waiting for the other ranks (ncclCommAbort). */
    void (*destroy)(vit_cuda_nccl *nc, bool abort);
} vit_cuda_nccl_ops;

/* What the module tells about itself before anything is created. */
typedef struct vit_cuda_module_desc {
    uint32_t abi;               /* VIT_CUDA_MODULE_ABI it was built with */
    uint32_t sizeof_ops;        /* sizeof(vit_backend_ops) */
    uint32_t sizeof_backend;    /* sizeof(vit_backend) */
    uint32_t sizeof_gemm;       /* sizeof(vit_gemm) */
    const char *libvit_version; /* VIT_VERSION_STRING it was built with */
    const char *built_for;      /* "sm_90 + PTX compute_90, CUDA 13.0" */
    uint32_t sizeof_nccl_ops;   /* sizeof(vit_cuda_nccl_ops) */
    const vit_cuda_nccl_ops *nccl; /* NULL: built without NCCL */
} vit_cuda_module_desc;

/* libvit's side, handed to the module. */
typedef struct vit_cuda_host {
    /* Records error detail for vit_last_error(); returns status. */
    vit_status (*fail)(vit_status status, const char *message);
    /* Logs through the context (NULL: the default, stderr at WARN). */
    void (*log)(const vit_context *ctx, vit_log_level level, const char *message);
} vit_cuda_host;

/* What the context asks for. */
typedef struct vit_cuda_config {
    int device_index;
    vit_precision precision;  /* resolved: FP32, TF32 or BF16 */
    const vit_context *ctx;   /* for log lines during creation only (not kept) */
} vit_cuda_config;

typedef void (*vit_cuda_module_info_fn)(vit_cuda_module_desc *info);
typedef vit_status (*vit_cuda_module_create_fn)(const vit_cuda_host *host, const vit_cuda_config *cfg,
                                                vit_backend **out);

/* libvit.so.0's side (core/device.c): the loaded module's NCCL table; NULL
 * when no module is loaded or it was built without NCCL. *module_path (may
 * be NULL) names the module's file. */
const vit_cuda_nccl_ops *vit_cuda_module_nccl(const char **module_path);

#define VIT_CUDA_MODULE_INFO_SYMBOL "vit_cuda_module_info"
#define VIT_CUDA_MODULE_CREATE_SYMBOL "vit_cuda_module_create"

#endif
