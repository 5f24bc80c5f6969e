/*
 * The CPU matrix product: the one implementation behind the CPU backend's
 * gemm entries (core/backend.h defines vit_gemm), so the engine behind it
 * (oneDNN today) can change without touching the ops.
 */
#ifndef VIT_CPU_MATMUL_H
#define VIT_CPU_MATMUL_H

#include <stddef.h>

#include "core/backend.h"

/* Engine, stream, primitive cache and scratchpad of one context. */
typedef struct vit_cpu_matmul vit_cpu_matmul;

/* be: the backend whose gelu_forward the GELU epilogue runs; isa: its level
 * (at AVX2 stamped weights go to cpu/packed_gemm.h's product). */
vit_status vit_cpu_matmul_create(vit_cpu_matmul **out, vit_backend *be, vit_cpu_isa isa);
void vit_cpu_matmul_destroy(vit_cpu_matmul *mm); /* NULL is a no-op */

vit_status vit_cpu_gemm(vit_cpu_matmul *mm, const vit_gemm *g);
/* batch independent products; operand i starts stride_* floats after operand 0
 * (g->b_stamp is ignored: nothing is packed). */
vit_status vit_cpu_gemm_batched(vit_cpu_matmul *mm, const vit_gemm *g, int batch, ptrdiff_t stride_a,
                                ptrdiff_t stride_b, ptrdiff_t stride_c);
/* Drops the packed copies of weights that lie in [p, p + bytes). mm may be NULL. */
void vit_cpu_matmul_forget(vit_cpu_matmul *mm, const void *p, size_t bytes);
/* Bytes held by packed copies of weights (0 at the baseline level). */
size_t vit_cpu_matmul_packed_bytes(const vit_cpu_matmul *mm);

/* Caps oneDNN's JIT at the ISA level libvit's kernels dispatch, so a capped
 * run exercises the same level in both; once per process, before the first
 * primitive. */
void vit_cpu_matmul_cap_isa(vit_cpu_isa isa);

#endif
