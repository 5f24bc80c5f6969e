/* The context: device (its backend), threads, seed and logging shared by a
 * family of handles. */
#include <omp.h>
#include <stdlib.h>

#include "core/backend.h"
#include "core/core.h"

vit_status vit_context_create(vit_context **out) {
    VIT_CHECK_ARG(out, "vit_context_create: out is NULL");
    *out = NULL;
    vit_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_context_create: no memory for a context");
    ctx->threads = omp_get_num_procs();
    ctx->seed = 0;
    ctx->device = VIT_DEVICE_CPU;
    ctx->log_level = VIT_LOG_WARN;
    vit_status s = vit_backend_create_cpu(&ctx->backend);
    if (s != VIT_OK) {
        free(ctx);
        return s;
    }
    *out = ctx;
    return VIT_OK;
}

void vit_context_destroy(vit_context *ctx) {
    if (!ctx) return;
    vit_backend_release(ctx->backend);
    free(ctx);
}

/* The precision a backend on device runs at when requested is asked for. */
static vit_precision resolve_precision(vit_device device, vit_precision requested) {
    if (requested != VIT_PRECISION_DEFAULT) return requested;
    return device == VIT_DEVICE_CUDA ? VIT_PRECISION_BF16 : VIT_PRECISION_FP32;
}

static const char *precision_name(int64_t p) {
    switch (p) {
    case VIT_PRECISION_DEFAULT: return "default";
    case VIT_PRECISION_FP32: return "fp32";
    case VIT_PRECISION_TF32: return "tf32";
    case VIT_PRECISION_BF16: return "bf16";
    }
    return "unknown";
}

/* The one place a backend is chosen. Tensors and models made before keep theirs. */
static vit_status choose_backend(vit_context *ctx, vit_device device, vit_precision precision) {
    vit_backend *be;
    if (device == VIT_DEVICE_CUDA) {
        VIT_TRY(vit_backend_create_cuda(ctx->device_index, resolve_precision(device, precision), ctx, &be));
    } else {
        if (resolve_precision(device, precision) != VIT_PRECISION_FP32)
            return vit_fail(VIT_ERR_UNSUPPORTED,
                            "VIT_CTX_PRECISION: the CPU backend has float32 products only (%s asked for); "
                            "set VIT_PRECISION_FP32 or VIT_PRECISION_DEFAULT",
                            precision_name(precision));
        VIT_TRY(vit_backend_create_cpu(&be));
    }
    vit_backend_release(ctx->backend);
    ctx->backend = be;
    ctx->device = device;
    ctx->precision = precision;
    return VIT_OK;
}

static vit_status set_device(vit_context *ctx, int64_t value) {
    if (value == ctx->device) return VIT_OK;
    if (value != VIT_DEVICE_CPU && value != VIT_DEVICE_CUDA)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "VIT_CTX_DEVICE: unknown device %lld", (long long)value);
    vit_status s = choose_backend(ctx, (vit_device)value, ctx->precision);
    if (s != VIT_OK) vit_error_prefix("VIT_CTX_DEVICE = %s", value == VIT_DEVICE_CUDA ? "cuda" : "cpu");
    return s;
}

static vit_status set_precision(vit_context *ctx, int64_t value) {
    if (value < VIT_PRECISION_DEFAULT || value > VIT_PRECISION_BF16)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "VIT_CTX_PRECISION: %lld is not a vit_precision", (long long)value);
    if (resolve_precision(ctx->device, (vit_precision)value) == resolve_precision(ctx->device, ctx->precision)) {
        ctx->precision = (vit_precision)value;
        return VIT_OK;
    }
    return choose_backend(ctx, ctx->device, (vit_precision)value);
}

vit_status vit_context_set_int(vit_context *ctx, vit_context_param param, int64_t value) {
    VIT_CHECK_ARG(ctx, "vit_context_set_int: ctx is NULL");
    switch (param) {
    case VIT_CTX_THREADS:
        VIT_CHECK_ARG(value >= 0 && value <= 4096, "VIT_CTX_THREADS: %lld is out of range 0..4096 (0 = all cores)",
                      (long long)value);
        ctx->threads = value == 0 ? omp_get_num_procs() : (int)value;
        return VIT_OK;
    case VIT_CTX_SEED:
        ctx->seed = (uint64_t)value;
        return VIT_OK;
    case VIT_CTX_DEVICE: return set_device(ctx, value);
    case VIT_CTX_DEVICE_INDEX:
        VIT_CHECK_ARG(value >= 0 && value < 1024, "VIT_CTX_DEVICE_INDEX: %lld is out of range", (long long)value);
        ctx->device_index = (int)value;
        return VIT_OK;
    case VIT_CTX_LOG_LEVEL:
        VIT_CHECK_ARG(value >= VIT_LOG_ERROR && value <= VIT_LOG_DEBUG,
                      "VIT_CTX_LOG_LEVEL: %lld is not a vit_log_level", (long long)value);
        ctx->log_level = (vit_log_level)value;
        return VIT_OK;
    case VIT_CTX_PRECISION: return set_precision(ctx, value);
    case VIT_CTX_CPU_ISA:
        return vit_fail(VIT_ERR_INVALID_ARGUMENT,
                        "VIT_CTX_CPU_ISA is read-only: cap it with the environment variable VIT_MAX_CPU_ISA");
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_context_set_int: unknown parameter %d", (int)param);
}

vit_status vit_context_get_int(const vit_context *ctx, vit_context_param param, int64_t *value) {
    VIT_CHECK_ARG(ctx, "vit_context_get_int: ctx is NULL");
    VIT_CHECK_ARG(value, "vit_context_get_int: value is NULL");
    switch (param) {
    case VIT_CTX_THREADS: *value = ctx->threads; return VIT_OK;
    case VIT_CTX_SEED: *value = (int64_t)ctx->seed; return VIT_OK;
    case VIT_CTX_DEVICE: *value = ctx->device; return VIT_OK;
    case VIT_CTX_DEVICE_INDEX: *value = ctx->device_index; return VIT_OK;
    case VIT_CTX_LOG_LEVEL: *value = ctx->log_level; return VIT_OK;
    case VIT_CTX_CPU_ISA: *value = vit_cpu_isa_dispatched(); return VIT_OK;
    case VIT_CTX_PRECISION: *value = resolve_precision(ctx->device, ctx->precision); return VIT_OK;
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_context_get_int: unknown parameter %d", (int)param);
}

vit_status vit_context_set_log(vit_context *ctx, vit_log_fn fn, void *user) {
    VIT_CHECK_ARG(ctx, "vit_context_set_log: ctx is NULL");
    ctx->log_fn = fn;
    ctx->log_user = fn ? user : NULL;
    return VIT_OK;
}

void vit_context_enter(const vit_context *ctx) {
    if (ctx && omp_get_max_threads() != ctx->threads) omp_set_num_threads(ctx->threads);
}
