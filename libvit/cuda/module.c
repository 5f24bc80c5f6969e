/*
 * The entry points of libvit-cuda.so (cuda/module.h) and the module's side
 * of libvit's error and log helpers: vit_fail and vit_log here forward to
 * libvit.so.0 through the host table it hands over, so vit_last_error()
 * shows a CUDA failure exactly as any other. (The unit tests link the CUDA
 * sources with libvit's own core instead of this file.)
 */
#include <stdarg.h>
#include <stdio.h>

#include "cuda/cuda.h"
#include "cuda/module.h"

#define VIT_MODULE_EXPORT __attribute__((visibility("default")))

static const vit_cuda_host *g_host;
static _Thread_local vit_status g_last = VIT_ERR_INTERNAL;

vit_status vit_fail(vit_status status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g_last = status;
    return g_host ? g_host->fail(status, msg) : status;
}

vit_status vit_last_status(void) { return g_last; }

void vit_log(const vit_context *ctx, vit_log_level level, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_host) g_host->log(ctx, level, msg);
}

#define STR2(x) #x
#define STR(x) STR2(x)

VIT_MODULE_EXPORT void vit_cuda_module_info(vit_cuda_module_desc *info) {
    info->abi = VIT_CUDA_MODULE_ABI;
    info->sizeof_ops = sizeof(vit_backend_ops);
    info->sizeof_backend = sizeof(vit_backend);
    info->sizeof_gemm = sizeof(vit_gemm);
    info->libvit_version = VIT_VERSION_STRING;
    info->built_for = VIT_CUDA_BUILT_FOR ", CUDA " STR(CUDART_VERSION);
    info->sizeof_nccl_ops = sizeof(vit_cuda_nccl_ops);
#ifdef VIT_HAVE_NCCL
    info->nccl = &vit_cuda_nccl_ops_table;
#else
    info->nccl = NULL;
#endif
}

VIT_MODULE_EXPORT vit_status vit_cuda_module_create(const vit_cuda_host *host, const vit_cuda_config *cfg,
                                                    vit_backend **out) {
    g_host = host;
    VIT_TRY(vit_cuda_backend_create(cfg->device_index, cfg->precision, out));
    vit_log(cfg->ctx, VIT_LOG_INFO, "CUDA backend %s; attention: %s", vit_cuda_name(*out),
            cfg->precision == VIT_PRECISION_BF16 ? "cuDNN's fused SDPA where it serves, else libvit's own kernels"
                                                 : "libvit's own kernels");
    return VIT_OK;
}
