/*
 * The CPU backend's entries that do not depend on the ISA level (memory,
 * products, state), shared by the per-level tables of cpu/table.c.
 */
#ifndef VIT_CPU_CPU_H
#define VIT_CPU_CPU_H

#include "core/backend.h"

void vit_cpu_destroy(vit_backend *be);
void *vit_cpu_alloc(vit_backend *be, size_t bytes);
void vit_cpu_free(vit_backend *be, void *p);
vit_status vit_cpu_copy(vit_backend *be, void *dst, const void *src, size_t bytes, vit_copy_kind kind);
vit_status vit_cpu_zero(vit_backend *be, void *p, size_t bytes);
vit_status vit_cpu_fill(vit_backend *be, float *p, float value, int64_t n);
vit_status vit_cpu_sync(vit_backend *be);
vit_status vit_cpu_backend_gemm(vit_backend *be, const vit_gemm *g);
vit_status vit_cpu_backend_gemm_batched(vit_backend *be, const vit_gemm *g, int batch, ptrdiff_t stride_a,
                                        ptrdiff_t stride_b, ptrdiff_t stride_c);
void vit_cpu_forget_weights(vit_backend *be, const void *p, size_t bytes);
/* Bytes the backend holds in packed copies of weights (vit_gemm.b_stamp), for tests and benchmarks. */
size_t vit_cpu_packed_bytes(const vit_backend *be);

#endif
