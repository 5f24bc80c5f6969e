/*
 * Internal core: errors, logging, the context, tensors, the arena and the RNG.
 * Every other layer includes this; it includes nothing of theirs.
 */
#ifndef VIT_INTERNAL_CORE_H
#define VIT_INTERNAL_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/scalar.h"
#include "vit/core.h"

struct vit_backend;

#if defined(__GNUC__)
#define VIT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define VIT_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------ errors */
/* Records detail for vit_last_error() and returns status, so a failing path
 * reads: return vit_fail(VIT_ERR_SHAPE, "images: expected [B, %d, ...]", c); */
vit_status vit_fail(vit_status status, const char *fmt, ...) VIT_PRINTF(2, 3);
/* The status of the last vit_fail on this thread (VIT_ERR_INTERNAL if none):
 * for paths that learn of a failure through a NULL return. */
vit_status vit_last_status(void);
/* Prefix the current thread's error detail with context ("loading x.png: ..."). */
void vit_error_prefix(const char *fmt, ...) VIT_PRINTF(1, 2);

#define VIT_CHECK_ARG(cond, ...) \
    do { if (!(cond)) return vit_fail(VIT_ERR_INVALID_ARGUMENT, __VA_ARGS__); } while (0)
#define VIT_TRY(expr) \
    do { vit_status vit_try_s_ = (expr); if (vit_try_s_ != VIT_OK) return vit_try_s_; } while (0)

/* ----------------------------------------------------------------- context */
struct vit_context {
    struct vit_backend *backend; /* of ctx->device: new tensors and models use it */
    int threads;
    uint64_t seed;
    vit_device device;
    int device_index;
    vit_precision precision; /* as set (VIT_PRECISION_DEFAULT until set) */
    vit_log_level log_level;
    vit_log_fn log_fn;
    void *log_user;
};

void vit_log(const vit_context *ctx, vit_log_level level, const char *fmt, ...) VIT_PRINTF(3, 4);
/* Make the calling thread's OpenMP (and so oneDNN) use ctx->threads. */
void vit_context_enter(const vit_context *ctx);

/* ------------------------------------------------------------------ memory */
/* 64-byte aligned, zeroed host allocations for big buffers; NULL on failure. */
void *vit_alloc(size_t bytes);
void vit_free(void *p);
/* A process-wide fresh value (never 0, never repeated, any thread): the
 * stamp of a weight buffer's contents (vit_gemm.b_stamp). */
uint64_t vit_stamp_next(void);

/* A bump allocator: allocations live until vit_arena_reset. Chunks are kept
 * across resets, so a training loop allocates nothing in steady state. An
 * arena with a backend takes its chunks from the backend's allocator (device
 * memory: the tape's data); without one, from the host heap (bookkeeping). */
typedef struct vit_arena_chunk vit_arena_chunk;
typedef struct vit_arena {
    struct vit_backend *backend; /* NULL: host memory */
    vit_arena_chunk *chunks;     /* the active chunk first */
    size_t used_total;           /* bytes handed out since the last reset */
    size_t peak;                 /* largest used_total seen: the next reset sizes one chunk to it */
} vit_arena;

/* backend may be NULL (host); the arena does not own it. */
void vit_arena_init(vit_arena *a, struct vit_backend *backend);
void vit_arena_release(vit_arena *a);
void vit_arena_reset(vit_arena *a);
/* A position in the arena; rewinding to it frees everything allocated since
 * (when it is still in the same chunk, as in steady state). */
typedef struct vit_arena_mark {
    vit_arena_chunk *chunk;
    size_t used, used_total;
} vit_arena_mark;
vit_arena_mark vit_arena_save(const vit_arena *a);
void vit_arena_rewind(vit_arena *a, vit_arena_mark mark);
/* Rewind to mark, keeping the last allocation made after it (bytes at data):
 * it is moved down (a copy on the arena's device) to the mark, or, when chunks were added since the mark,
 * to the start of the newest chunk, the chunks in between being freed. So a
 * pass that spills into a new chunk is still given back, which keeps the
 * first step's memory close to the steady state's. Returns the moved data
 * (NULL when the device copy failed; the thread error says why); *at (may be
 * NULL) is the position where it begins. */
void *vit_arena_rewind_keep(vit_arena *a, vit_arena_mark mark, const void *data, size_t bytes,
                            vit_arena_mark *at);

/* 64-byte aligned, NOT zeroed; NULL on failure (sets the thread error). */
void *vit_arena_alloc(vit_arena *a, size_t bytes);
float *vit_arena_floats(vit_arena *a, size_t n);          /* not zeroed */
float *vit_arena_zeros(vit_arena *a, size_t n);           /* zeroed (on the arena's device) */

/* --------------------------------------------------------------------- RNG */
/* vit_hash64, vit_rng_key and vit_rng_uniform: core/scalar.h (shared with
 * the device kernels). */
/* Standard normal (Box-Muller on two counter draws). */
double vit_rng_normal(uint64_t key, uint64_t index);
/* Normal(0, std) redrawn until within [lo, hi], as torch.nn.init.trunc_normal_. */
void vit_rng_trunc_normal(float *out, size_t n, uint64_t key, float std, float lo, float hi);

/* ------------------------------------------------------------------ tensor */
struct vit_tensor {
    struct vit_backend *backend; /* a reference: where data lives, fixed at creation */
    vit_device device;
    vit_dtype dtype;
    int ndim;
    int64_t shape[VIT_MAX_DIMS];
    int64_t numel;
    void *data;
};

/* Validate a caller tensor: non-NULL, the dtype, the rank, and each listed
 * dimension (-1 = any). name is the argument's name for the message. */
vit_status vit_tensor_expect(const vit_tensor *t, const char *name, vit_dtype dtype, int ndim,
                             const int64_t *dims);
const char *vit_dtype_name(vit_dtype dtype);
/* The host pointer of a tensor that callers' host code may read and write
 * (the data layer's batches, metrics); VIT_ERR_UNSUPPORTED naming the
 * argument for a tensor in device memory. */
vit_status vit_tensor_host_data(const vit_tensor *t, const char *name, void **data);

/* Numbers in files, in the "C" locale whatever the host program's is:
 * strtod's contract, and "%.17g" (round-trips a double) with a '.' point. */
double vit_strtod_c(const char *s, char **end);
void vit_format_real(char *buf, size_t cap, double v);

/* "[2, 3, 224, 224]" into buf. */
const char *vit_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

#endif
