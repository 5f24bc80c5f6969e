/*
 * libvit core: status codes, errors, logging, the context and tensors.
 *
 * Thread safety
 *   - vit_status_string, vit_version*, vit_last_error and vit_clear_error may be
 *     called from any thread at any time; vit_last_error is per thread.
 *   - A context and every handle made from it (tensors, models, optimizers,
 *     datasets) belong to one thread at a time: calls on handles of the same
 *     context must not overlap. Handles of different contexts are independent
 *     and may be used concurrently from different threads.
 *   - Inside a call, libvit uses the context's thread count for its own
 *     OpenMP parallelism.
 */
#ifndef VIT_CORE_H
#define VIT_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "vit/version.h"

VIT_EXTERN_C_BEGIN

/* Every fallible call returns one of these. New codes may be added; treat any
 * unknown non-zero value as an error. */
typedef enum vit_status {
    VIT_OK = 0,
    VIT_ERR_INVALID_ARGUMENT = 1, /* NULL handle, out-of-range value, unknown enum */
    VIT_ERR_SHAPE = 2,            /* tensor shape does not fit the call */
    VIT_ERR_DTYPE = 3,            /* tensor element type does not fit the call */
    VIT_ERR_OUT_OF_MEMORY = 4,
    VIT_ERR_IO = 5,               /* a file could not be opened, read or written */
    VIT_ERR_FORMAT = 6,           /* a file or buffer is malformed */
    VIT_ERR_UNSUPPORTED = 7,      /* valid request this build or device cannot serve */
    VIT_ERR_STATE = 8,            /* call out of order, e.g. backward before forward */
    VIT_ERR_NUMERIC = 9,          /* a non-finite value where a finite one is required */
    VIT_ERR_INTERNAL = 10,        /* a bug in libvit or a backend library */
    VIT_ERR_CANCELLED = 11,       /* stopped on request */
    VIT_ERR_NOT_FOUND = 12        /* a named item (tensor, parameter, class) does not exist */
} vit_status;

/* Short constant text for a status ("invalid argument"); never NULL. */
VIT_API const char *vit_status_string(vit_status status);

/* Detail of the last error raised on this thread (which argument, file or
 * shape); "" when none. Valid until the next failing libvit call on this thread. */
VIT_API const char *vit_last_error(void);
VIT_API void vit_clear_error(void);

/* Runtime version, to compare with the VIT_VERSION_* macros the caller saw. */
VIT_API unsigned vit_version_number(void);
VIT_API const char *vit_version_string(void);

/* ---------------------------------------------------------------- logging */
typedef enum vit_log_level {
    VIT_LOG_ERROR = 0,
    VIT_LOG_WARN = 1,
    VIT_LOG_INFO = 2,
    VIT_LOG_DEBUG = 3
} vit_log_level;

/* Receives libvit's messages. By default warnings and errors go to stderr;
 * libvit never writes to stdout. */
typedef void (*vit_log_fn)(void *user, vit_log_level level, const char *message);

/* ---------------------------------------------------------------- context */
typedef struct vit_context vit_context;

/* Where tensors live and kernels run. A tensor keeps the device of its
 * context at the time it was created. A build without a CUDA backend refuses
 * VIT_DEVICE_CUDA with VIT_ERR_UNSUPPORTED. */
typedef enum vit_device {
    VIT_DEVICE_CPU = 0,
    VIT_DEVICE_CUDA = 1
} vit_device;

/* The vector instruction set of libvit's CPU kernels (VIT_CTX_CPU_ISA): the
 * widest the processor has, capped by the environment variable
 * VIT_MAX_CPU_ISA=baseline|avx2|avx512, which is read once per process and
 * caps oneDNN's products too. */
typedef enum vit_cpu_isa {
    VIT_CPU_ISA_BASELINE = 0, /* the architecture's baseline (x86-64: SSE2) */
    VIT_CPU_ISA_AVX2 = 1,     /* AVX2 with FMA */
    VIT_CPU_ISA_AVX512 = 2    /* AVX-512F */
} vit_cpu_isa;

/* Integer settings of a context (vit_context_set_int / vit_context_get_int). */
typedef enum vit_context_param {
    VIT_CTX_THREADS = 1,      /* threads for libvit's kernels; default: all cores */
    VIT_CTX_SEED = 2,         /* seed of every random draw (init, dropout, shuffling); default 0 */
    VIT_CTX_DEVICE = 3,       /* a vit_device; default VIT_DEVICE_CPU */
    VIT_CTX_DEVICE_INDEX = 4, /* which GPU; default 0 */
    VIT_CTX_LOG_LEVEL = 5,    /* most verbose vit_log_level passed to the log callback; default VIT_LOG_WARN */
    VIT_CTX_CPU_ISA = 6,      /* read-only: the vit_cpu_isa the CPU kernels use in this process */
    VIT_CTX_PRECISION = 7     /* a vit_precision; default VIT_PRECISION_DEFAULT; reads back the resolved one */
} vit_context_param;

/* Arithmetic of the matrix products (VIT_CTX_PRECISION). Parameters,
 * gradients and optimizer state stay float32 in every mode; docs/cuda.md
 * says what each mode rounds. The CPU has FP32 only: TF32 and BF16 there are
 * VIT_ERR_UNSUPPORTED. Models made after a change use the new precision. */
typedef enum vit_precision {
    VIT_PRECISION_DEFAULT = 0, /* FP32 on the CPU, BF16 on a GPU */
    VIT_PRECISION_FP32 = 1,    /* float32 operands and accumulation */
    VIT_PRECISION_TF32 = 2,    /* GPU: float32 storage, TensorFloat-32 products */
    VIT_PRECISION_BF16 = 3     /* GPU: bfloat16 product operands, float32 accumulation and storage */
} vit_precision;

VIT_API vit_status vit_context_create(vit_context **out);
VIT_API void vit_context_destroy(vit_context *ctx); /* NULL is a no-op */
VIT_API vit_status vit_context_set_int(vit_context *ctx, vit_context_param param, int64_t value);
VIT_API vit_status vit_context_get_int(const vit_context *ctx, vit_context_param param, int64_t *value);
/* fn NULL restores the default (stderr). */
VIT_API vit_status vit_context_set_log(vit_context *ctx, vit_log_fn fn, void *user);

/* ---------------------------------------------------------------- tensors */
typedef struct vit_tensor vit_tensor;

#define VIT_MAX_DIMS 4

typedef enum vit_dtype {
    VIT_DTYPE_F32 = 0,
    VIT_DTYPE_BF16 = 1, /* reserved: storage type planned, not yet accepted */
    VIT_DTYPE_I32 = 2,
    VIT_DTYPE_U8 = 3
} vit_dtype;

/* A dense row-major tensor of 1..VIT_MAX_DIMS dimensions, each > 0, on the
 * context's device, zero-filled. A tensor may outlive its context. */
VIT_API vit_status vit_tensor_create(vit_context *ctx, vit_dtype dtype, int ndim,
                                     const int64_t *shape, vit_tensor **out);
VIT_API void vit_tensor_destroy(vit_tensor *t); /* NULL is a no-op */

/* shape must have room for VIT_MAX_DIMS entries. */
VIT_API vit_status vit_tensor_shape(const vit_tensor *t, int *ndim, int64_t *shape);
VIT_API vit_status vit_tensor_numel(const vit_tensor *t, int64_t *numel);
VIT_API vit_status vit_tensor_dtype(const vit_tensor *t, vit_dtype *dtype);
VIT_API vit_status vit_tensor_device(const vit_tensor *t, vit_device *device);
/* Size of one element of dtype in bytes; 0 for an unknown dtype. */
VIT_API size_t vit_dtype_size(vit_dtype dtype);

/* Copy the whole tensor in from / out to a host buffer of exactly
 * numel * vit_dtype_size(dtype) bytes (a device transfer for a GPU tensor). */
VIT_API vit_status vit_tensor_write(vit_tensor *t, const void *src, size_t bytes);
VIT_API vit_status vit_tensor_read(const vit_tensor *t, void *dst, size_t bytes);
/* Direct access to the storage of a CPU tensor (VIT_ERR_UNSUPPORTED on a GPU). */
VIT_API vit_status vit_tensor_data(vit_tensor *t, void **data);

VIT_EXTERN_C_END

#endif
