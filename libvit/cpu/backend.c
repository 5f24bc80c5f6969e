/*
 * The CPU backend: host memory, oneDNN products, and the kernel table of the
 * widest ISA level the processor has (cpu/table.c, built once per level).
 *
 * $VIT_MAX_CPU_ISA (baseline, avx2, avx512; read once per process, in the
 * spirit of oneDNN's ONEDNN_MAX_CPU_ISA) caps the level, for libvit's kernels
 * and for oneDNN's products alike, so every path a machine could take can be
 * tested on one that has them all.
 */
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cpu/cpu.h"
#include "cpu/matmul.h"

/* ---------------------------------------------------------- ISA levels */
extern const vit_backend_ops vit_cpu_ops_baseline;
#if defined(__x86_64__)
extern const vit_backend_ops vit_cpu_ops_avx2;
extern const vit_backend_ops vit_cpu_ops_avx512;
#endif

static const char *const isa_names[] = {"baseline", "avx2", "avx512"};

const char *vit_cpu_isa_name(vit_cpu_isa isa) {
    return isa >= VIT_CPU_ISA_BASELINE && isa <= VIT_CPU_ISA_AVX512 ? isa_names[isa] : "unknown";
}

bool vit_cpu_isa_supported(vit_cpu_isa isa) {
    switch (isa) {
    case VIT_CPU_ISA_BASELINE: return true;
#if defined(__x86_64__) && defined(__GNUC__)
    case VIT_CPU_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case VIT_CPU_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f");
#else
    case VIT_CPU_ISA_AVX2:
    case VIT_CPU_ISA_AVX512: return false;
#endif
    }
    return false;
}

static vit_cpu_isa g_isa;
static pthread_once_t g_isa_once = PTHREAD_ONCE_INIT;

static void isa_init(void) {
    vit_cpu_isa best = VIT_CPU_ISA_BASELINE;
    for (int i = VIT_CPU_ISA_AVX512; i > VIT_CPU_ISA_BASELINE; i--)
        if (vit_cpu_isa_supported((vit_cpu_isa)i)) {
            best = (vit_cpu_isa)i;
            break;
        }
    const char *cap = getenv("VIT_MAX_CPU_ISA");
    if (cap && *cap) {
        int want = -1;
        for (int i = 0; i <= VIT_CPU_ISA_AVX512; i++)
            if (!strcasecmp(cap, isa_names[i])) want = i;
        if (want < 0)
            vit_log(NULL, VIT_LOG_WARN, "VIT_MAX_CPU_ISA=%s is not one of baseline, avx2, avx512: ignored", cap);
        else if ((vit_cpu_isa)want < best)
            best = (vit_cpu_isa)want;
    }
    g_isa = best;
    vit_cpu_matmul_cap_isa(best);
}

vit_cpu_isa vit_cpu_isa_dispatched(void) {
    pthread_once(&g_isa_once, isa_init);
    return g_isa;
}

static const vit_backend_ops *isa_table(vit_cpu_isa isa) {
    switch (isa) {
#if defined(__x86_64__)
    case VIT_CPU_ISA_AVX512: return &vit_cpu_ops_avx512;
    case VIT_CPU_ISA_AVX2: return &vit_cpu_ops_avx2;
#endif
    default: return &vit_cpu_ops_baseline;
    }
}

/* -------------------------------------------------------------- state */
typedef struct cpu_state {
    vit_cpu_matmul *mm; /* made on the first product: a context that only reads data never starts oneDNN */
    vit_cpu_isa isa;    /* of the backend's table */
} cpu_state;

void vit_cpu_destroy(vit_backend *be) {
    cpu_state *s = be->state;
    if (s) vit_cpu_matmul_destroy(s->mm);
    free(s);
}

vit_status vit_backend_create_cpu_isa(vit_cpu_isa isa, vit_backend **out) {
    *out = NULL;
    if (!vit_cpu_isa_supported(isa))
        return vit_fail(VIT_ERR_UNSUPPORTED, "CPU backend: this processor has no %s", vit_cpu_isa_name(isa));
    vit_cpu_isa_dispatched(); /* the process-wide cap (and oneDNN's) is set before any product */
    vit_backend *be = calloc(1, sizeof *be);
    cpu_state *s = calloc(1, sizeof *s);
    if (!be || !s) {
        free(be);
        free(s);
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "CPU backend: no memory for its state");
    }
    be->ops = isa_table(isa);
    s->isa = isa;
    be->device = VIT_DEVICE_CPU;
    be->host_memory = true;
    be->refs = 1;
    be->state = s;
    *out = be;
    return VIT_OK;
}

vit_status vit_backend_create_cpu(vit_backend **out) {
    return vit_backend_create_cpu_isa(vit_cpu_isa_dispatched(), out);
}

/* ------------------------------------------------------------- memory */
void *vit_cpu_alloc(vit_backend *be, size_t bytes) {
    (void)be;
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = rounded >= bytes ? aligned_alloc(64, rounded ? rounded : 64) : NULL;
    if (!p) vit_fail(VIT_ERR_OUT_OF_MEMORY, "CPU backend: cannot allocate %zu bytes", bytes);
    return p;
}

void vit_cpu_free(vit_backend *be, void *p) {
    (void)be;
    free(p);
}

/* Gradient buffers and activations of a training step are megabytes each
 * (fmnist-train zeroes ~10 MB per layer and copies 2.4 MB per residual):
 * from PARALLEL_BYTES on, each thread sets or copies one equal part (whole
 * cache lines), which goes twice as fast on two cores as one memset or
 * memcpy, and keeps the other thread from idling at the next fork. */
enum { PARALLEL_BYTES = 1 << 20 };

/* dst[0..bytes) = src's bytes, or zeros when src is NULL; no overlap. */
static void set_in_parts(void *dst, const void *src, size_t bytes) {
#pragma omp parallel
    {
        const size_t parts = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        const size_t part = (bytes / parts + 63) / 64 * 64, off = t * part;
        if (off < bytes) {
            const size_t len = bytes - off < part ? bytes - off : part;
            if (src)
                memcpy((char *)dst + off, (const char *)src + off, len);
            else
                memset((char *)dst + off, 0, len);
        }
    }
}

vit_status vit_cpu_copy(vit_backend *be, void *dst, const void *src, size_t bytes, vit_copy_kind kind) {
    (void)be;
    (void)kind;
    if (!bytes || dst == src) return VIT_OK;
    const uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;
    if (bytes >= PARALLEL_BYTES && (d + bytes <= s || s + bytes <= d))
        set_in_parts(dst, src, bytes);
    else
        memmove(dst, src, bytes);
    return VIT_OK;
}

vit_status vit_cpu_zero(vit_backend *be, void *p, size_t bytes) {
    (void)be;
    if (bytes >= PARALLEL_BYTES)
        set_in_parts(p, NULL, bytes);
    else if (bytes)
        memset(p, 0, bytes);
    return VIT_OK;
}

vit_status vit_cpu_fill(vit_backend *be, float *p, float value, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) p[i] = value;
    return VIT_OK;
}

vit_status vit_cpu_sync(vit_backend *be) {
    (void)be;
    return VIT_OK;
}

/* ----------------------------------------------------------- products */
static vit_status matmul_of(vit_backend *be, vit_cpu_matmul **mm) {
    cpu_state *s = be->state;
    if (!s->mm) VIT_TRY(vit_cpu_matmul_create(&s->mm, be, s->isa));
    *mm = s->mm;
    return VIT_OK;
}

vit_status vit_cpu_backend_gemm(vit_backend *be, const vit_gemm *g) {
    vit_cpu_matmul *mm;
    VIT_TRY(matmul_of(be, &mm));
    return vit_cpu_gemm(mm, g);
}

vit_status vit_cpu_backend_gemm_batched(vit_backend *be, const vit_gemm *g, int batch, ptrdiff_t stride_a,
                                        ptrdiff_t stride_b, ptrdiff_t stride_c) {
    vit_cpu_matmul *mm;
    VIT_TRY(matmul_of(be, &mm));
    return vit_cpu_gemm_batched(mm, g, batch, stride_a, stride_b, stride_c);
}

void vit_cpu_forget_weights(vit_backend *be, const void *p, size_t bytes) {
    cpu_state *s = be->state;
    vit_cpu_matmul_forget(s->mm, p, bytes);
}

size_t vit_cpu_packed_bytes(const vit_backend *be) {
    const cpu_state *s = be->state;
    return vit_cpu_matmul_packed_bytes(s->mm);
}
