/*
 * The CUDA backend's host side: its state, status conversion and the
 * launchers of its kernels. Everything here lives in libvit-cuda.so (or, for
 * the unit tests, a static archive of the same sources), never in
 * libvit.so.0.
 *
 * One stream per backend: every entry enqueues on it and returns without
 * waiting, except those whose result the host reads (copy to the host,
 * sum_squares, sync). Memory freed on the host is reused by later work on
 * the same stream, so stream order alone makes reuse safe.
 */
#ifndef VIT_CUDA_CUDA_H
#define VIT_CUDA_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "core/backend.h"

/* ---------------------------------------------------------- allocator */
/* A caching allocator: cudaMalloc is slow and synchronises the device, so
 * freed blocks are kept and handed out again to requests of a similar size;
 * when cudaMalloc fails the cache is released and the request retried. */
typedef struct vit_cuda_block {
    void *ptr;
    size_t size;
    bool used;
} vit_cuda_block;

typedef struct vit_cuda_allocator {
    vit_cuda_block *blocks;
    int count, cap;
    size_t in_use, cached, peak; /* bytes */
} vit_cuda_allocator;

/* ------------------------------------------------------ product plans */
typedef struct vit_cuda_gemm_cache vit_cuda_gemm_cache;

/* -------------------------------------------------------------- state */
typedef struct vit_cuda_state {
    int device;
    vit_precision precision; /* FP32, TF32 or BF16 */
    cudaStream_t stream;
    cublasLtHandle_t lt;
    cublasHandle_t blas;     /* cuBLAS, made when cuBLASLt has no algorithm for a product */
    void *workspace;         /* cuBLASLt's, VIT_CUDA_WORKSPACE bytes */
    vit_cuda_allocator alloc;
    vit_cuda_gemm_cache *gemm;
    /* The backend's own working memory, grown on demand: bf16 operands of a
     * product, partial sums of reductions; one user at a time. */
    void *scratch;
    size_t scratch_bytes;
    /* Attention's working memory (permuted q, k, v, dropped probabilities). */
    void *attn;
    size_t attn_bytes;
    /* Completion events of overlapped uploads: ticket t is events[t % N],
     * valid while fewer than N newer uploads have been queued. */
    cudaEvent_t upload_events[8];
    uint64_t uploads;
    bool logged_attention;
    /* cuDNN's fused attention in BF16 mode (cuda/attention_sdpa.c), made on
     * first use; sdpa_unavailable: cuDNN could not be had, said once. */
    cudnnHandle_t dnn;
    struct vit_sdpa_cache *sdpa;
    bool sdpa_unavailable;
    bool sdpa_logged_dropout; /* said once that attention dropout keeps libvit's own path */
    char name[96];
} vit_cuda_state;

#define VIT_CUDA_WORKSPACE ((size_t)32 << 20)

static inline vit_cuda_state *vit_cuda_of(vit_backend *be) { return (vit_cuda_state *)be->state; }

/* A CUDA / cuBLAS status as a vit_status with the library's own message. */
vit_status vit_cuda_check(cudaError_t e, const char *what);
vit_status vit_cublas_check(cublasStatus_t s, const char *what);
#define VIT_CUDA_TRY(expr, what) VIT_TRY(vit_cuda_check((expr), (what)))

/* The device and its backend, for creation and its tests. */
vit_status vit_cuda_backend_create(int device_index, vit_precision precision, vit_backend **out);

/* Memory entries of the table (cuda/backend.c). */
void vit_cuda_destroy(vit_backend *be);
void *vit_cuda_alloc(vit_backend *be, size_t bytes);
void vit_cuda_free(vit_backend *be, void *p);
vit_status vit_cuda_copy(vit_backend *be, void *dst, const void *src, size_t bytes, vit_copy_kind kind);
vit_status vit_cuda_zero(vit_backend *be, void *p, size_t bytes);
vit_status vit_cuda_fill(vit_backend *be, float *p, float value, int64_t n);
vit_status vit_cuda_sync(vit_backend *be);
void *vit_cuda_host_alloc(vit_backend *be, size_t bytes);
void vit_cuda_host_free(vit_backend *be, void *p);
vit_status vit_cuda_upload_async(vit_backend *be, void *dst, const void *src, size_t bytes, uint64_t *ticket);
vit_status vit_cuda_upload_wait(vit_backend *be, uint64_t ticket);
/* "cuda-bf16 (NVIDIA H200, sm_90)" */
const char *vit_cuda_name(vit_backend *be);
/* The state's scratch (or attention memory) at least bytes long. */
vit_status vit_cuda_scratch(vit_cuda_state *s, size_t bytes, void **out);
vit_status vit_cuda_attn_memory(vit_cuda_state *s, size_t bytes, void **out);
void vit_cuda_allocator_release(vit_cuda_allocator *a);

/* ----------------------------------------------------------- products */
vit_status vit_cuda_gemm(vit_backend *be, const vit_gemm *g);
vit_status vit_cuda_gemm_batched(vit_backend *be, const vit_gemm *g, int batch, ptrdiff_t stride_a,
                                 ptrdiff_t stride_b, ptrdiff_t stride_c);
void vit_cuda_gemm_cache_destroy(vit_cuda_gemm_cache *c);

/* How a row-major vit_gemm maps onto cuBLASLt's column-major product:
 * D^T [N, M] = op(B)^T · op(A)^T, so cuBLASLt's first operand is B and its
 * second A. Host-only: the test checks it without a GPU. */
typedef struct vit_cuda_gemm_layout {
    cublasOperation_t op_first, op_second; /* cuBLASLt's transa (on B), transb (on A) */
    uint64_t first_rows, first_cols;       /* B's layout as cuBLASLt sees it */
    int64_t first_ld;
    uint64_t second_rows, second_cols;     /* A's */
    int64_t second_ld;
    uint64_t out_rows, out_cols;           /* C's: N x M */
    int64_t out_ld;
} vit_cuda_gemm_layout;
void vit_cuda_gemm_layout_of(const vit_gemm *g, vit_cuda_gemm_layout *l);

/* A plan: cuBLASLt's descriptors for one shape, flags and precision (built
 * on the host; the algorithm is chosen later, with the device). */
typedef struct vit_cuda_gemm_plan {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c; /* cuBLASLt's A (our B), B (our A), C = D */
    cublasLtMatmulAlgo_t algo;
    bool have_algo; /* false: cuBLASLt has none, the product runs on cuBLAS's gemm */
} vit_cuda_gemm_plan;
vit_status vit_cuda_gemm_plan_build(vit_cuda_gemm_plan *plan, const vit_gemm *g, int batch, ptrdiff_t stride_a,
                                    ptrdiff_t stride_b, ptrdiff_t stride_c, vit_precision precision);
void vit_cuda_gemm_plan_destroy(vit_cuda_gemm_plan *plan);

/* ---------------------------------------------------------- attention */
void vit_cuda_attention_sizes(vit_backend *be, int B, int T, int H, int hd, size_t *saved_bytes,
                              size_t *scratch_bytes);
vit_status vit_cuda_attention_forward(vit_backend *be, float *out, void *saved, const float *qkv, int B, int T, int H,
                                      int hd, float scale, float drop_p, uint64_t drop_key, void *scratch);
vit_status vit_cuda_attention_backward(vit_backend *be, float *dqkv, bool accumulate, const float *dout,
                                       const float *qkv, const float *out, const void *saved, int B, int T, int H,
                                       int hd, float scale, float drop_p, uint64_t drop_key, void *scratch);

vit_status vit_cuda_pool_attention_forward(vit_backend *be, float *out, float *probs, const float *q, const float *kv,
                                           int B, int L, int N, int H, int hd, float scale, float *scratch);
vit_status vit_cuda_pool_attention_backward(vit_backend *be, float *dq, float *dkv, const float *dout, const float *q,
                                            const float *kv, const float *probs, int B, int L, int N, int H, int hd,
                                            float scale, float *scratch);
/* Through cuDNN's fused SDPA (cuda/attention_sdpa.c): *ran says whether it
 * did; when not (fp32 or tf32, dropout, a shape cuDNN refuses: decided the
 * same way in forward and backward), the caller runs its own path. */
vit_status vit_cuda_sdpa_forward(vit_backend *be, float *out, void *saved, const float *qkv, int B, int T, int H,
                                 int hd, float scale, float drop_p, bool *ran);
vit_status vit_cuda_sdpa_backward(vit_backend *be, float *dqkv, const float *dout, const float *qkv,
                                  const float *out, const void *saved, int B, int T, int H, int hd, float scale,
                                  float drop_p, bool *ran);
void vit_cuda_sdpa_release(vit_cuda_state *s);

/* The table (cuda/table.c). */
extern const vit_backend_ops vit_cuda_ops;

/* NCCL (cuda/nccl.c, built with -Dnccl only): the module hands it to libvit.so.0. */
struct vit_cuda_nccl_ops;
extern const struct vit_cuda_nccl_ops vit_cuda_nccl_ops_table;

#endif
