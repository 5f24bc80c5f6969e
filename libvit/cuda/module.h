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
 */
#ifndef VIT_CUDA_MODULE_H
#define VIT_CUDA_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"

#define VIT_CUDA_MODULE_ABI 2u
#define VIT_CUDA_MODULE_FILE "libvit-cuda.so"

/* What the module tells about itself before anything is created. */
typedef struct vit_cuda_module_desc {
    uint32_t abi;               /* VIT_CUDA_MODULE_ABI it was built with */
    uint32_t sizeof_ops;        /* sizeof(vit_backend_ops) */
    uint32_t sizeof_backend;    /* sizeof(vit_backend) */
    uint32_t sizeof_gemm;       /* sizeof(vit_gemm) */
    const char *libvit_version; /* VIT_VERSION_STRING it was built with */
    const char *built_for;      /* "sm_90 + PTX compute_90, CUDA 13.0" */
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

#define VIT_CUDA_MODULE_INFO_SYMBOL "vit_cuda_module_info"
#define VIT_CUDA_MODULE_CREATE_SYMBOL "vit_cuda_module_create"

#endif
