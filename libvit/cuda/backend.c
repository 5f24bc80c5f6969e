/*
 * The CUDA backend's state and memory: device selection, the stream, the
 * cuBLASLt handle and workspace, the caching allocator, and the status
 * conversion every entry uses. Nothing here exits or aborts: a failing call
 * of the CUDA runtime or cuBLAS becomes a vit_status with the library's own
 * message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda.h"
#include "cuda/kernels.h"

/* ------------------------------------------------------------- statuses */
vit_status vit_cuda_check(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return VIT_OK;
    vit_status s = VIT_ERR_INTERNAL;
    switch (e) {
    case cudaErrorMemoryAllocation: s = VIT_ERR_OUT_OF_MEMORY; break;
    case cudaErrorInsufficientDriver:
    case cudaErrorNoDevice:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorCallRequiresNewerDriver:
    case cudaErrorSystemDriverMismatch: s = VIT_ERR_UNSUPPORTED; break;
    default: break;
    }
    cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
    return vit_fail(s, "CUDA: %s: %s (%s, %d)", what, cudaGetErrorString(e), cudaGetErrorName(e), (int)e);
}

vit_status vit_cublas_check(cublasStatus_t st, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS) return VIT_OK;
    vit_status s = st == CUBLAS_STATUS_ALLOC_FAILED     ? VIT_ERR_OUT_OF_MEMORY
                   : st == CUBLAS_STATUS_NOT_SUPPORTED  ? VIT_ERR_UNSUPPORTED
                   : st == CUBLAS_STATUS_INVALID_VALUE  ? VIT_ERR_INVALID_ARGUMENT
                   : st == CUBLAS_STATUS_NOT_INITIALIZED ? VIT_ERR_UNSUPPORTED
                                                         : VIT_ERR_INTERNAL;
    return vit_fail(s, "cuBLASLt: %s: %s (%s, %d)", what, cublasGetStatusString(st), cublasGetStatusName(st), (int)st);
}

/* ------------------------------------------------------------ allocator */
/* Sizes are rounded up so that blocks are reused across small variations:
 * 512 bytes below 1 MiB, 2 MiB above. A cached block serves a request of at
 * least half its size. */
static size_t round_size(size_t bytes) {
    const size_t q = bytes < ((size_t)1 << 20) ? 512 : ((size_t)2 << 20);
    return bytes == 0 ? q : (bytes + q - 1) / q * q;
}

static void release_cached(vit_cuda_allocator *a) {
    int k = 0;
    for (int i = 0; i < a->count; i++) {
        if (a->blocks[i].used) {
            a->blocks[k++] = a->blocks[i];
            continue;
        }
        cudaFree(a->blocks[i].ptr);
        a->cached -= a->blocks[i].size;
    }
    a->count = k;
}

void vit_cuda_allocator_release(vit_cuda_allocator *a) {
    for (int i = 0; i < a->count; i++) cudaFree(a->blocks[i].ptr);
    free(a->blocks);
    memset(a, 0, sizeof *a);
}

void *vit_cuda_alloc(vit_backend *be, size_t bytes) {
    vit_cuda_state *s = vit_cuda_of(be);
    vit_cuda_allocator *a = &s->alloc;
    const size_t want = round_size(bytes);
    if (want < bytes) {
        vit_fail(VIT_ERR_OUT_OF_MEMORY, "CUDA backend: %zu bytes is too large", bytes);
        return NULL;
    }
    int best = -1;
    for (int i = 0; i < a->count; i++) {
        const vit_cuda_block *b = &a->blocks[i];
        if (!b->used && b->size >= want && b->size / 2 <= want && (best < 0 || b->size < a->blocks[best].size))
            best = i;
    }
    if (best >= 0) {
        a->blocks[best].used = true;
        a->cached -= a->blocks[best].size;
        a->in_use += a->blocks[best].size;
        if (a->in_use > a->peak) a->peak = a->in_use;
        return a->blocks[best].ptr;
    }
    if (a->count == a->cap) {
        const int cap = a->cap ? 2 * a->cap : 64;
        vit_cuda_block *nb = realloc(a->blocks, (size_t)cap * sizeof *nb);
        if (!nb) {
            vit_fail(VIT_ERR_OUT_OF_MEMORY, "CUDA backend: no host memory for the allocator's table");
            return NULL;
        }
        a->blocks = nb, a->cap = cap;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, want);
    if (e == cudaErrorMemoryAllocation && a->cached) {
        cudaGetLastError();
        release_cached(a);
        e = cudaMalloc(&p, want);
    }
    if (e != cudaSuccess) {
        char what[128];
        snprintf(what, sizeof what, "allocating %zu bytes on GPU %d (%zu in use)", want, s->device, a->in_use);
        vit_cuda_check(e, what);
        return NULL;
    }
    a->blocks[a->count++] = (vit_cuda_block){p, want, true};
    a->in_use += want;
    if (a->in_use > a->peak) a->peak = a->in_use;
    return p;
}

void vit_cuda_free(vit_backend *be, void *p) {
    if (!p) return;
    vit_cuda_allocator *a = &vit_cuda_of(be)->alloc;
    for (int i = a->count - 1; i >= 0; i--)
        if (a->blocks[i].ptr == p && a->blocks[i].used) {
            a->blocks[i].used = false;
            a->in_use -= a->blocks[i].size;
            a->cached += a->blocks[i].size;
            return;
        }
}

/* A buffer of the state that only grows: freed back to the allocator (stream
 * order keeps the old contents valid for work already queued). */
static vit_status grow(vit_backend *be, void **buf, size_t *have, size_t bytes, void **out) {
    if (*have < bytes) {
        vit_cuda_free(be, *buf);
        *buf = NULL, *have = 0;
        void *p = vit_cuda_alloc(be, bytes);
        if (!p) return vit_last_status();
        *buf = p, *have = bytes;
    }
    *out = *buf;
    return VIT_OK;
}

/* The backend pointer from its state: the state is the backend's first user. */
static vit_backend *owner_of(vit_cuda_state *s);

vit_status vit_cuda_scratch(vit_cuda_state *s, size_t bytes, void **out) {
    return grow(owner_of(s), &s->scratch, &s->scratch_bytes, bytes, out);
}

vit_status vit_cuda_attn_memory(vit_cuda_state *s, size_t bytes, void **out) {
    return grow(owner_of(s), &s->attn, &s->attn_bytes, bytes, out);
}

/* --------------------------------------------------------------- memory */
vit_status vit_cuda_copy(vit_backend *be, void *dst, const void *src, size_t bytes, vit_copy_kind kind) {
    vit_cuda_state *s = vit_cuda_of(be);
    if (!bytes || dst == src) return VIT_OK;
    switch (kind) {
    case VIT_COPY_TO_DEVICE:
        /* From pageable memory the call returns once src has been staged. */
        return vit_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s->stream), "copy to the GPU");
    case VIT_COPY_TO_HOST:
        VIT_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s->stream), "copy to the host");
        return vit_cuda_check(cudaStreamSynchronize(s->stream), "copy to the host");
    case VIT_COPY_ON_DEVICE: {
        const char *d = dst, *c = src;
        if (d + bytes <= c || c + bytes <= d)
            return vit_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s->stream),
                                  "copy on the GPU");
        /* Overlapping ranges (a memmove): through a temporary block. */
        void *tmp = vit_cuda_alloc(be, bytes);
        if (!tmp) return vit_last_status();
        vit_status st = vit_cuda_check(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, s->stream),
                                       "copy on the GPU");
        if (st == VIT_OK)
            st = vit_cuda_check(cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, s->stream),
                                "copy on the GPU");
        vit_cuda_free(be, tmp);
        return st;
    }
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "CUDA copy: unknown direction %d", (int)kind);
}

vit_status vit_cuda_zero(vit_backend *be, void *p, size_t bytes) {
    if (!bytes) return VIT_OK;
    return vit_cuda_check(cudaMemsetAsync(p, 0, bytes, vit_cuda_of(be)->stream), "zero");
}

vit_status vit_cuda_fill(vit_backend *be, float *p, float value, int64_t n) {
    if (n <= 0) return VIT_OK;
    return vit_cuda_check(vit_cuk_fill(p, value, n, vit_cuda_of(be)->stream), "fill");
}

vit_status vit_cuda_sync(vit_backend *be) {
    return vit_cuda_check(cudaStreamSynchronize(vit_cuda_of(be)->stream), "synchronising the stream");
}

/* ---------------------------------------------------- overlapped uploads */
void *vit_cuda_host_alloc(vit_backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    cudaError_t e = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault);
    if (e != cudaSuccess) {
        vit_cuda_check(e, "allocating page-locked host memory");
        return NULL;
    }
    return p;
}

void vit_cuda_host_free(vit_backend *be, void *p) {
    (void)be;
    if (p) cudaFreeHost(p);
}

#define UPLOAD_EVENTS (sizeof ((vit_cuda_state *)0)->upload_events / sizeof(cudaEvent_t))

vit_status vit_cuda_upload_async(vit_backend *be, void *dst, const void *src, size_t bytes, uint64_t *ticket) {
    vit_cuda_state *s = vit_cuda_of(be);
    cudaEvent_t *ev = &s->upload_events[s->uploads % UPLOAD_EVENTS];
    if (!*ev) VIT_CUDA_TRY(cudaEventCreateWithFlags(ev, cudaEventDisableTiming), "creating an upload event");
    if (bytes) VIT_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s->stream), "upload");
    VIT_CUDA_TRY(cudaEventRecord(*ev, s->stream), "recording an upload");
    *ticket = s->uploads++;
    return VIT_OK;
}

vit_status vit_cuda_upload_wait(vit_backend *be, uint64_t ticket) {
    vit_cuda_state *s = vit_cuda_of(be);
    if (ticket >= s->uploads) return vit_fail(VIT_ERR_INVALID_ARGUMENT, "CUDA upload_wait: no upload %llu",
                                              (unsigned long long)ticket);
    /* an event reused since: that upload is older than the newest N, and
     * waiting for the whole stream covers it */
    if (s->uploads - ticket > UPLOAD_EVENTS) return vit_cuda_sync(be);
    return vit_cuda_check(cudaEventSynchronize(s->upload_events[ticket % UPLOAD_EVENTS]), "waiting for an upload");
}

/* ------------------------------------------------------- life and death */
/* The state sits right after the backend in one allocation, so the state
 * knows its backend without a back pointer. */
typedef struct cuda_backend {
    vit_backend be;
    vit_cuda_state s;
} cuda_backend;

static vit_backend *owner_of(vit_cuda_state *s) {
    return &((cuda_backend *)((char *)s - offsetof(cuda_backend, s)))->be;
}

void vit_cuda_destroy(vit_backend *be) {
    vit_cuda_state *s = vit_cuda_of(be);
    if (!s) return;
    cudaSetDevice(s->device);
    if (s->stream) cudaStreamSynchronize(s->stream);
    vit_cuda_gemm_cache_destroy(s->gemm);
    vit_cuda_sdpa_release(s);
    if (s->lt) cublasLtDestroy(s->lt);
    if (s->blas) cublasDestroy(s->blas);
    vit_cuda_allocator_release(&s->alloc);
    for (size_t i = 0; i < UPLOAD_EVENTS; i++)
        if (s->upload_events[i]) cudaEventDestroy(s->upload_events[i]);
    if (s->stream) cudaStreamDestroy(s->stream);
    be->state = NULL;
    /* vit_backend_release frees be, and the state with it. */
}

vit_status vit_cuda_backend_create(int device_index, vit_precision precision, vit_backend **out) {
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return vit_fail(VIT_ERR_UNSUPPORTED, "CUDA backend: no usable GPU: cudaGetDeviceCount: %s (%s, %d)",
                        cudaGetErrorString(e), cudaGetErrorName(e), (int)e);
    }
    if (count == 0) return vit_fail(VIT_ERR_UNSUPPORTED, "CUDA backend: no GPU on this machine");
    if (device_index < 0 || device_index >= count)
        return vit_fail(VIT_ERR_UNSUPPORTED, "CUDA backend: VIT_CTX_DEVICE_INDEX %d, but this machine has %d GPU%s",
                        device_index, count, count == 1 ? "" : "s");
    struct cudaDeviceProp prop;
    VIT_CUDA_TRY(cudaGetDeviceProperties(&prop, device_index), "reading the device's properties");
    if (prop.major * 10 + prop.minor < VIT_CUDA_MIN_SM)
        return vit_fail(VIT_ERR_UNSUPPORTED,
                        "CUDA backend: %s is sm_%d%d, and this libvit-cuda.so was built for %s (meson -Dgpu_arch=)",
                        prop.name, prop.major, prop.minor, VIT_CUDA_BUILT_FOR);
    if (precision == VIT_PRECISION_BF16 && prop.major < 8)
        return vit_fail(VIT_ERR_UNSUPPORTED, "CUDA backend: %s (sm_%d%d) has no bf16 tensor cores; use fp32",
                        prop.name, prop.major, prop.minor);
    if (precision == VIT_PRECISION_TF32 && prop.major < 8)
        return vit_fail(VIT_ERR_UNSUPPORTED, "CUDA backend: %s (sm_%d%d) has no TF32 tensor cores; use fp32",
                        prop.name, prop.major, prop.minor);
    VIT_CUDA_TRY(cudaSetDevice(device_index), "selecting the device");

    cuda_backend *cb = calloc(1, sizeof *cb);
    if (!cb) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "CUDA backend: no host memory for its state");
    vit_backend *be = &cb->be;
    vit_cuda_state *s = &cb->s;
    be->ops = &vit_cuda_ops;
    be->device = VIT_DEVICE_CUDA;
    be->host_memory = false;
    be->refs = 1;
    be->state = s;
    s->device = device_index;
    s->precision = precision;
    snprintf(s->name, sizeof s->name, "cuda-%s (%.48s, sm_%d%d)",
             precision == VIT_PRECISION_BF16 ? "bf16" : precision == VIT_PRECISION_TF32 ? "tf32" : "fp32", prop.name,
             prop.major, prop.minor);
    vit_status st = vit_cuda_check(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "creating a stream");
    if (st == VIT_OK) st = vit_cublas_check(cublasLtCreate(&s->lt), "creating the handle");
    if (st == VIT_OK) {
        s->workspace = vit_cuda_alloc(be, VIT_CUDA_WORKSPACE);
        if (!s->workspace) st = vit_last_status();
    }
    if (st != VIT_OK) {
        vit_cuda_destroy(be);
        free(cb);
        return st;
    }
    *out = be;
    return VIT_OK;
}

const char *vit_cuda_name(vit_backend *be) { return vit_cuda_of(be)->name; }
