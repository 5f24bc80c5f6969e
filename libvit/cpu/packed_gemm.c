/*
 * The product on packed weights at the AVX2 level.
 *
 * Why libvit has one: below AVX-512 oneDNN 2.6 runs f32 matmul only as
 * gemm:jit, which keeps B in its plain layout and copies it into blocks
 * inside every call, and leaves ViT-B/16's batch-1 products well under the
 * multiply-add peak (docs/performance.md has the figures). Weights that carry
 * a stamp are packed once instead, and the kernel below reads them as they
 * lie.
 *
 * Blocking (the usual one for 16 ymm registers): K is walked in chunks of KC
 * rows; one chunk of one panel of 16 columns (KC x 16 floats, 16 KiB) stays
 * in L1 while the 6 x 16 kernel runs it against every 6-row block of the
 * task's rows of A, whose chunk (at most MC_MAX x KC floats) stays in L2. A
 * is read where it lies, six rows as six sequential streams (a copy into
 * blocks made no measurable difference). The 6 x 16 block of C lives in 12
 * accumulators; each k broadcasts six values of A and loads two vectors of
 * B for 12 multiply-adds.
 *
 * Layout: the packed B is its chunks in order, each chunk its panels in
 * order, each panel's chunk row by row (kc x 16 floats, zero past N), so a
 * task reads its weights as one sequential stream, and while the kernel
 * runs one panel's chunk the next is prefetched a share per block: at batch
 * 1 the weights come from memory, read once per product. Panels in the
 * order of one whole panel after another (each chunk 48 KiB from the last)
 * ran ViT-B/16 at batch 1 slower than oneDNN's gemm:jit.
 *
 * Threads take tasks (a range of rows by a range of panels) as they come
 * free. Every element of C is summed over the same chunks in the same order
 * whichever task holds it, so the bits do not depend on the thread count.
 */
#include "cpu/packed_gemm.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "cpu/vmath.h"

#if VIT_CPU_ISA != 1
#error "cpu/packed_gemm.c is the AVX2 level's (see libvit/cpu/meson.build)"
#endif

enum {
    MR = 6,       /* rows of a kernel block */
    NR = 16,      /* columns of a panel */
    KC = 256,     /* rows of B per chunk: a chunk of a panel is 16 KiB */
    MC_MAX = 192, /* rows of A per task: a chunk of them is at most 192 KiB */
    LINE_FLOATS = 16
};

size_t vit_packed_gemm_bytes(int N, int K) { return (size_t)((N + NR - 1) / NR) * NR * (size_t)K * sizeof(float); }

/* Floats of B packed above which packing is shared among the threads. */
#define PACK_PARALLEL (1 << 16)

/* Where chunk [k0, k0 + kc) of panel p starts in a packed B of `panels` panels. */
static inline size_t chunk_at(int k0, int kc, int p, int panels) {
    return (size_t)k0 * panels * NR + (size_t)p * kc * NR;
}

void vit_packed_gemm_pack(float *packed, const float *B, int ldb, bool trans_b, int N, int K) {
    const int panels = (N + NR - 1) / NR;
#pragma omp parallel for schedule(static) if ((int64_t)N * K > PACK_PARALLEL)
    for (int p = 0; p < panels; p++) {
        const int n0 = p * NR, cols = N - n0 < NR ? N - n0 : NR;
        for (int k0 = 0; k0 < K; k0 += KC) {
            const int kc = K - k0 < KC ? K - k0 : KC;
            float *dst = packed + chunk_at(k0, kc, p, panels);
            if (cols < NR) memset(dst, 0, (size_t)kc * NR * sizeof *dst);
            if (trans_b) { /* B^T [N, K]: each of the panel's columns is a row of it */
                for (int c = 0; c < cols; c++) {
                    const float *src = B + (size_t)(n0 + c) * ldb + k0;
                    for (int k = 0; k < kc; k++) dst[(size_t)k * NR + c] = src[k];
                }
            } else {
                for (int k = 0; k < kc; k++)
                    memcpy(dst + (size_t)k * NR, B + (size_t)(k0 + k) * ldb + n0, cols * sizeof *dst);
            }
        }
    }
}

/* How the kernel finishes a block: C = acc (+ C) (+ bias). */
typedef struct finish {
    bool add_c;
    const float *bias; /* at the block's first column, or NULL */
} finish;

/* Stores one row of the block: c[0, cols) = lo:hi (+ c) (+ bias). */
VIT_VECTORIZED static inline void finish_row(float *c, __m256 lo, __m256 hi, int cols, finish f) {
    if (cols == NR) {
        if (f.add_c) lo = _mm256_add_ps(lo, _mm256_loadu_ps(c)), hi = _mm256_add_ps(hi, _mm256_loadu_ps(c + 8));
        if (f.bias)
            lo = _mm256_add_ps(lo, _mm256_loadu_ps(f.bias)), hi = _mm256_add_ps(hi, _mm256_loadu_ps(f.bias + 8));
        _mm256_storeu_ps(c, lo);
        _mm256_storeu_ps(c + 8, hi);
        return;
    }
    /* the first min(cols, 8) lanes, then the rest */
    const __m256i mlo = VIT_VEC_FIRST_MASK(cols < 8 ? cols : 8), mhi = VIT_VEC_FIRST_MASK(cols < 8 ? 0 : cols - 8);
    if (f.add_c)
        lo = _mm256_add_ps(lo, _mm256_maskload_ps(c, mlo)), hi = _mm256_add_ps(hi, _mm256_maskload_ps(c + 8, mhi));
    if (f.bias)
        lo = _mm256_add_ps(lo, _mm256_maskload_ps(f.bias, mlo)),
        hi = _mm256_add_ps(hi, _mm256_maskload_ps(f.bias + 8, mhi));
    _mm256_maskstore_ps(c, mlo, lo);
    _mm256_maskstore_ps(c + 8, mhi, hi);
}

/* c [rows, cols] (row stride ldc) = a [rows, kc] (row stride lda) . b [kc, 16]
 * finished as f; rows <= 6, cols <= 16. Rows past `rows` read the last row
 * again and are not stored. */
VIT_VECTORIZED static void kernel_6x16(float *c, ptrdiff_t ldc, const float *a, ptrdiff_t lda, const float *restrict b,
                                       int kc, int rows, int cols, finish f) {
    const float *a0 = a, *a1 = a + (rows > 1 ? 1 : 0) * lda, *a2 = a + (rows > 2 ? 2 : rows - 1) * lda;
    const float *a3 = a + (rows > 3 ? 3 : rows - 1) * lda, *a4 = a + (rows > 4 ? 4 : rows - 1) * lda;
    const float *a5 = a + (rows > 5 ? 5 : rows - 1) * lda;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int k = 0; k < kc; k++, b += NR) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 x = _mm256_broadcast_ss(a0 + k);
        c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + k);
        c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + k);
        c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + k);
        c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + k);
        c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + k);
        c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    finish_row(c, c00, c01, cols, f);
    if (rows > 1) finish_row(c + ldc, c10, c11, cols, f);
    if (rows > 2) finish_row(c + 2 * ldc, c20, c21, cols, f);
    if (rows > 3) finish_row(c + 3 * ldc, c30, c31, cols, f);
    if (rows > 4) finish_row(c + 4 * ldc, c40, c41, cols, f);
    if (rows > 5) finish_row(c + 5 * ldc, c50, c51, cols, f);
}

/* Rows [m0, m1) by panels [p0, p1) of the product: chunk by chunk of K, each
 * chunk of a panel against every 6-row block. */
VIT_VECTORIZED static void task(float *C, int ldc, const float *A, int lda, const float *packed, const float *bias,
                                int m0, int m1, int p0, int p1, int N, int K, bool accumulate) {
    const int panels = (N + NR - 1) / NR, blocks = (m1 - m0 + MR - 1) / MR;
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        /* the lines of the chunk that follows in the layout, a share per block
         * (past the last chunk: a prefetch never faults) */
        const int lines = kc * NR / LINE_FLOATS, per_block = (lines + blocks - 1) / blocks;
        for (int p = p0; p < p1; p++) {
            const int n0 = p * NR, cols = N - n0 < NR ? N - n0 : NR;
            const float *b = packed + chunk_at(k0, kc, p, panels), *next = b + (size_t)kc * NR;
            const finish f = {.add_c = k0 > 0 || accumulate, .bias = k0 == 0 && bias ? bias + n0 : NULL};
            for (int m = m0, i = 0; m < m1; m += MR, i++) {
                for (int l = i * per_block; l < (i + 1) * per_block && l < lines; l++)
                    _mm_prefetch((const char *)(next + l * LINE_FLOATS), _MM_HINT_T0);
                kernel_6x16(C + (ptrdiff_t)m * ldc + n0, ldc, A + (ptrdiff_t)m * lda + k0, lda, b, kc,
                            m1 - m < MR ? m1 - m : MR, cols, f);
            }
        }
    }
}

vit_status vit_packed_gemm_run(float *C, int ldc, const float *A, int lda, const float *packed, const float *bias,
                               int M, int N, int K, bool accumulate, const vit_packed_epilogue *ep, int threads) {
    /* rows in equal tasks of whole blocks, at most MC_MAX; where that leaves
     * fewer than two tasks a thread, the panels are cut into groups too */
    const int row_tasks = (M + MC_MAX - 1) / MC_MAX;
    const int rows_per_task = ((M + row_tasks - 1) / row_tasks + MR - 1) / MR * MR;
    const int panels = (N + NR - 1) / NR;
    int groups = row_tasks >= 2 * threads ? 1 : (2 * threads + row_tasks - 1) / row_tasks;
    if (groups > panels) groups = panels;
    const int panels_per_group = (panels + groups - 1) / groups;
    const int tasks = row_tasks * groups;
    vit_status failed = VIT_OK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && tasks > 1)
    for (int t = 0; t < tasks; t++) {
        const int m0 = (t / groups) * rows_per_task, p0 = (t % groups) * panels_per_group;
        const int m1 = M - m0 < rows_per_task ? M : m0 + rows_per_task;
        const int p1 = panels - p0 < panels_per_group ? panels : p0 + panels_per_group;
        if (m0 >= M || p0 >= panels) continue;
        task(C, ldc, A, lda, packed, bias, m0, m1, p0, p1, N, K, accumulate);
        if (ep) {
            const int n0 = p0 * NR, n1 = p1 * NR < N ? p1 * NR : N;
            vit_status st = ep->run(ep->ctx, C + (ptrdiff_t)m0 * ldc + n0, m1 - m0, n1 - n0, ldc);
            if (st != VIT_OK) {
#pragma omp critical(vit_packed_gemm_failed)
                if (failed == VIT_OK) failed = st;
            }
        }
    }
    return failed;
}
