/*
 * Row helpers of the CPU kernels on one register of floats at the ISA
 * level's width (vit_vec): loads and stores of a part-filled register, the
 * few operations GCC's vector extensions lack, exp lane by lane, and the
 * rows built from them (softmax, dot). The scalar exp and erf are in
 * core/scalar.h.
 */
#ifndef VIT_CPU_VMATH_H
#define VIT_CPU_VMATH_H

#include <stdint.h>
#if VIT_CPU_ISA > 0
#include <immintrin.h>
#endif

#include "core/scalar.h"
#include "cpu/kernels.h"

/* One register of floats at the level's own width, as one value: GCC keeps
 * such values in registers, where it spilled plain float arrays of
 * accumulators to the stack and turned fixed-lane reductions over arrays
 * into scalar code. A vector wider than the level's registers has no machine
 * mode and lives in memory (16-float values at AVX2 ran the attention tiles
 * 5 x slower than at AVX-512), hence one width per level. */
#if VIT_CPU_ISA == 2
enum { VIT_VEC = 16 };
#elif VIT_CPU_ISA == 1
enum { VIT_VEC = 8 };
#else
enum { VIT_VEC = 4 };
#endif
typedef float vit_vec __attribute__((vector_size(VIT_VEC * sizeof(float))));
typedef float vit_vec_u __attribute__((vector_size(VIT_VEC * sizeof(float)), aligned(sizeof(float))));
typedef int32_t vit_veci __attribute__((vector_size(VIT_VEC * sizeof(int32_t))));
/* A register of doubles, and the half register of floats it widens: the
 * column sums kept in double (kernels.h's strips) read their rows half a
 * register at a time. */
enum { VIT_VECD = VIT_VEC / 2 };
typedef double vit_vecd __attribute__((vector_size(VIT_VECD * sizeof(double))));
typedef float vit_vech __attribute__((vector_size(VIT_VECD * sizeof(float))));
typedef float vit_vech_u __attribute__((vector_size(VIT_VECD * sizeof(float)), aligned(sizeof(float))));

/* h widened to double (GCC splits the generic conversion at AVX-512 into
 * two halves and a merge). */
VIT_VECTORIZED VIT_INLINE vit_vecd vit_vecd_widen(vit_vech h) {
#if VIT_CPU_ISA == 2
    return (vit_vecd)_mm512_cvtps_pd((__m256)h);
#elif VIT_CPU_ISA == 1
    return (vit_vecd)_mm256_cvtps_pd((__m128)h);
#else
    return __builtin_convertvector(h, vit_vecd);
#endif
}

VIT_VECTORIZED VIT_INLINE vit_vech vit_vech_load(const float *x) { return *(const vit_vech_u *)x; }

/* Lanes of a where mask is set (all ones), else of b. */
VIT_VECTORIZED VIT_INLINE vit_vec vit_vec_select(vit_veci mask, vit_vec a, vit_vec b) {
    return (vit_vec)((mask & (vit_veci)a) | (~mask & (vit_veci)b));
}

/* The mask of the first m lanes (m < VIT_VEC), where the level has masked
 * loads and stores. */
#if VIT_CPU_ISA == 2
#define VIT_VEC_FIRST_MASK(m) ((__mmask16)((1u << (m)) - 1))
#elif VIT_CPU_ISA == 1
#define VIT_VEC_FIRST_MASK(m) _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#endif

/* The first m lanes (m < VIT_VEC) of x; fill in the rest. Plain loops for
 * these part-filled registers became calls to memcpy through the stack. */
VIT_VECTORIZED VIT_INLINE vit_vec vit_vec_load_part(const float *x, int m, float fill) {
#if VIT_CPU_ISA == 2
    return (vit_vec)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), VIT_VEC_FIRST_MASK(m), x);
#elif VIT_CPU_ISA == 1
    const __m256i first = VIT_VEC_FIRST_MASK(m);
    return (vit_vec)_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(x, first), _mm256_castsi256_ps(first));
#else
    vit_vec v;
    for (int l = 0; l < VIT_VEC; l++) v[l] = l < m ? x[l] : fill;
    return v;
#endif
}

/* x[0..m) = the first m lanes (m < VIT_VEC) of v. */
VIT_VECTORIZED VIT_INLINE void vit_vec_store_part(float *x, int m, vit_vec v) {
#if VIT_CPU_ISA == 2
    _mm512_mask_storeu_ps(x, VIT_VEC_FIRST_MASK(m), (__m512)v);
#elif VIT_CPU_ISA == 1
    _mm256_maskstore_ps(x, VIT_VEC_FIRST_MASK(m), (__m256)v);
#else
    for (int l = 0; l < m; l++) x[l] = v[l];
#endif
}

/* v with the lanes from m on (m < VIT_VEC) zero. */
VIT_VECTORIZED VIT_INLINE vit_vec vit_vec_first(vit_vec v, int m) {
#if VIT_CPU_ISA == 2
    return (vit_vec)_mm512_maskz_mov_ps(VIT_VEC_FIRST_MASK(m), (__m512)v);
#elif VIT_CPU_ISA == 1
    return (vit_vec)_mm256_and_ps((__m256)v, _mm256_castsi256_ps(VIT_VEC_FIRST_MASK(m)));
#else
    for (int l = m; l < VIT_VEC; l++) v[l] = 0.0f;
    return v;
#endif
}

/* The one-instruction forms where the level has them (the generic ones cost
 * two to five each, and exp is most of a softmax): each gives the same
 * bits as its generic form. */

/* lo > x ? lo : x lane by lane (a NaN in x stays). */
VIT_VECTORIZED VIT_INLINE vit_vec vit_vec_max(vit_vec lo, vit_vec x) {
#if VIT_CPU_ISA == 2
    return (vit_vec)_mm512_max_ps((__m512)lo, (__m512)x);
#elif VIT_CPU_ISA == 1
    return (vit_vec)_mm256_max_ps((__m256)lo, (__m256)x);
#else
    return vit_vec_select(lo > x, lo, x);
#endif
}

/* hi < x ? hi : x lane by lane (a NaN in x stays). */
VIT_VECTORIZED VIT_INLINE vit_vec vit_vec_min(vit_vec hi, vit_vec x) {
#if VIT_CPU_ISA == 2
    return (vit_vec)_mm512_min_ps((__m512)hi, (__m512)x);
#elif VIT_CPU_ISA == 1
    return (vit_vec)_mm256_min_ps((__m256)hi, (__m256)x);
#else
    return vit_vec_select(hi < x, hi, x);
#endif
}

/* floor(t) for |t| < 2^31. */
VIT_VECTORIZED VIT_INLINE vit_vec vit_vec_floor(vit_vec t) {
#if VIT_CPU_ISA == 2
    return (vit_vec)_mm512_roundscale_ps((__m512)t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#elif VIT_CPU_ISA == 1
    return (vit_vec)_mm256_floor_ps((__m256)t);
#else
    vit_veci n = __builtin_convertvector(t, vit_veci);
    n += (vit_veci)(__builtin_convertvector(n, vit_vec) > t); /* -1 where truncation rounded up */
    return __builtin_convertvector(n, vit_vec);
#endif
}

/* p * 2^n for whole n in [-126, 127]. */
VIT_VECTORIZED VIT_INLINE vit_vec vit_vec_times_pow2(vit_vec p, vit_vec n) {
#if VIT_CPU_ISA == 2
    return (vit_vec)_mm512_scalef_ps((__m512)p, (__m512)n);
#else
    return p * (vit_vec)((__builtin_convertvector(n, vit_veci) + 127) << 23);
#endif
}

/* vit_expf (core/scalar.h) lane by lane, step for step, so both give the
 * same bits. */
VIT_VECTORIZED VIT_INLINE vit_vec vit_vec_exp(vit_vec x) {
    x = vit_vec_min(88.0f + (vit_vec){0}, vit_vec_max(-87.0f + (vit_vec){0}, x));
    const vit_vec n = vit_vec_floor(x * 1.44269504088896341f + 0.5f);
    const vit_vec r = VIT_EXP_REDUCE(x, n);
    return vit_vec_times_pow2(VIT_EXP_POLY(r), n);
}

/* The largest lane of v (the lanes' order does not matter to a max). */
VIT_VECTORIZED VIT_INLINE float vit_vec_max_lane(vit_vec v) {
#if VIT_CPU_ISA == 2
    return _mm512_reduce_max_ps((__m512)v);
#elif VIT_CPU_ISA == 1
    __m128 m = _mm_max_ps(_mm256_castps256_ps128((__m256)v), _mm256_extractf128_ps((__m256)v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
#else
    float m = v[0];
    for (int l = 1; l < VIT_VEC; l++) m = v[l] > m ? v[l] : m;
    return m;
#endif
}

/* The sum of the lanes of v in double, as a tree of halves: lane l plus
 * lane l + VIT_VEC / 2, and so on down to one. Every level takes the same
 * order, so the bits depend only on v. */
VIT_VECTORIZED VIT_INLINE double vit_vec_sum(vit_vec v) {
#if VIT_CPU_ISA == 2
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256((__m512)v));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd((__m512)v), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi)); /* its halves in the same order */
#elif VIT_CPU_ISA == 1
    const __m256d s4 = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)v)),
                                     _mm256_cvtps_pd(_mm256_extractf128_ps((__m256)v, 1)));
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    return _mm_cvtsd_f64(s2) + _mm_cvtsd_f64(_mm_unpackhi_pd(s2, s2));
#else
    const double s2[2] = {(double)v[0] + (double)v[2], (double)v[1] + (double)v[3]};
    return s2[0] + s2[1];
#endif
}

/* y[0..n) = softmax(x[0..n)), max-subtracted; y may be x. The sum runs in
 * the register's fixed lanes (the tail as a part-filled register), so it
 * needs no -ffast-math (which would let the compiler reorder a float sum)
 * and its order depends on neither the thread count nor n's remainder. */
VIT_VECTORIZED VIT_INLINE void vit_softmax_row(float *y, const float *x, int n) {
    const int full = n - n % VIT_VEC, tail = n - full;
    vit_vec vmax = x[0] + (vit_vec){0};
    for (int j = 0; j < full; j += VIT_VEC) vmax = vit_vec_max(vmax, *(const vit_vec_u *)(x + j));
    if (tail) vmax = vit_vec_max(vmax, vit_vec_load_part(x + full, tail, x[0]));
    const float mx = vit_vec_max_lane(vmax);
    vit_vec sum = {0};
    for (int j = 0; j < full; j += VIT_VEC) {
        const vit_vec e = vit_vec_exp(*(const vit_vec_u *)(x + j) - mx);
        *(vit_vec_u *)(y + j) = e;
        sum += e;
    }
    if (tail) {
        const vit_vec e = vit_vec_exp(vit_vec_load_part(x + full, tail, mx) - mx);
        vit_vec_store_part(y + full, tail, e);
        sum += vit_vec_first(e, tail);
    }
    const float inv = (float)(1.0 / vit_vec_sum(sum));
    for (int j = 0; j < n; j++) y[j] *= inv;
}

/* sum of a[i] * b[i], in the register's fixed lanes (see vit_softmax_row). */
VIT_VECTORIZED VIT_INLINE float vit_dot(const float *a, const float *b, int n) {
    const int full = n - n % VIT_VEC, tail = n - full;
    vit_vec acc = {0};
    for (int j = 0; j < full; j += VIT_VEC) acc += *(const vit_vec_u *)(a + j) * *(const vit_vec_u *)(b + j);
    if (tail) acc += vit_vec_load_part(a + full, tail, 0.0f) * vit_vec_load_part(b + full, tail, 0.0f);
    return (float)vit_vec_sum(acc);
}

#endif
