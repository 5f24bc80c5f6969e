/*
 * Per-element math that every backend computes the same way: the
 * counter-based hash behind dropout masks, exp / erf / GELU, the dropout
 * scale and AdamW's update rule. Plain static inline C that a CUDA compiler
 * also takes (VIT_HD marks each function __host__ __device__ there), so the
 * CPU kernel tests check the arithmetic a GPU kernel runs, and a mask drawn
 * on one device is the mask drawn on the other.
 */
#ifndef VIT_CORE_SCALAR_H
#define VIT_CORE_SCALAR_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define VIT_HD __host__ __device__
#define VIT_INLINE static __forceinline__
#elif defined(__GNUC__)
#define VIT_HD
/* A helper the compiler chooses not to inline is built once, for the default
 * target, so the helpers of vectorised kernels are forced inline: each
 * kernel built for a wider ISA then gets its vector width and FMA. */
#define VIT_INLINE static inline __attribute__((always_inline))
#else
#define VIT_HD
#define VIT_INLINE static inline
#endif

/* ------------------------------------------------------------------ hash */
/* splitmix64's finaliser: a bijective mix with full avalanche. */
VIT_HD VIT_INLINE uint64_t vit_hash64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* A hash of a key struct read as 64-bit words (bytes a multiple of 8, no
 * padding): the plan caches of the matrix products. */
VIT_HD VIT_INLINE uint64_t vit_hash_words(const void *p, size_t bytes) {
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, sizeof w);
        h = vit_hash64(h ^ w);
    }
    return h;
}

/* Counter-based randomness: a draw is a pure function of (key, index), so the
 * same seed gives the same numbers whatever the thread count, order or device. */
VIT_HD VIT_INLINE uint64_t vit_rng_key(uint64_t seed, uint64_t stream, uint64_t counter) {
    return vit_hash64(seed ^ vit_hash64(stream * 0x9E3779B97F4A7C15ull ^ vit_hash64(counter)));
}

/* Uniform in [0, 1) with 24 random bits. */
VIT_HD VIT_INLINE float vit_rng_uniform(uint64_t key, uint64_t index) {
    return (float)(vit_hash64(key + index * 0xD1B54A32D192ED03ull) >> 40) * (1.0f / 16777216.0f);
}

/* ---------------------------------------------------------------- dropout */
/* The factor of a kept element: 1 / (1 - p); p >= 1 drops everything. */
VIT_HD VIT_INLINE float vit_dropout_keep_scale(float p) {
    return p <= 0.0f ? 1.0f : p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
}

/* ------------------------------------------------------------- exp and erf */
/* Branch-free float exp and erf that a compiler vectorises (libm's erff and
 * expf are scalar calls). Within a few ulp of libm over the ranges the kernels
 * use; tests/cpu/test_kernels.c measures both against double. */

/* The steps of vit_expf that its vector form (cpu/vmath.h) repeats lane by
 * lane, for floats or vectors of them: x = n ln2 + r, |r| <= ln2 / 2, with
 * ln2 split so that n ln2 is exact; then e^r as a degree-6 Taylor
 * polynomial, below 1.5e-7 relative error on |r| <= 0.347. */
#define VIT_EXP_REDUCE(x, n) (((x) - (n) * 0.693359375f) - (n) * -2.12194440e-4f)
#define VIT_EXP_POLY(r) (1.0f + (r) * (1.0f + (r) * (0.5f + (r) * VIT_EXP_POLY_HIGH(r))))
#define VIT_EXP_POLY_HIGH(r) (1.0f / 6.0f + (r) * (1.0f / 24.0f + (r) * (1.0f / 120.0f + (r) * (1.0f / 720.0f))))

/* e^x for x in [-87, 88]; smaller inputs give ~1e-38 rather than 0. */
VIT_HD VIT_INLINE float vit_expf(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    const float r = VIT_EXP_REDUCE(x, n);
    const float p = VIT_EXP_POLY(r);
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* erf(x) as x P(x^2) / Q(x^2) on [-4, 4], where float erf reaches +-1. */
VIT_HD VIT_INLINE float vit_erff(float x) {
    x = x < -4.0f ? -4.0f : x;
    x = x > 4.0f ? 4.0f : x;
    const float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return x * p / q;
}

/* ------------------------------------------------------------------- GELU */
/* Exact (erf) GELU, as nn.GELU() with approximate='none': the tanh form would
 * drift from PyTorch checkpoints by ~1e-3. */
VIT_HD VIT_INLINE float vit_gelu(float x) {
    return x * 0.5f * (1.0f + vit_erff(x * 0.70710678118654752f));
}

/* d gelu / dx = Phi(x) + x * phi(x) */
VIT_HD VIT_INLINE float vit_gelu_grad(float x) {
    const float cdf = 0.5f * (1.0f + vit_erff(x * 0.70710678118654752f));
    const float pdf = vit_expf(-0.5f * x * x) * 0.39894228040143268f;
    return cdf + x * pdf;
}

/* QuickGELU, timm's quick_gelu: x * sigmoid(1.702 x). */
VIT_HD VIT_INLINE float vit_quick_gelu(float x) {
    return x / (1.0f + vit_expf(-1.702f * x));
}

/* d/dx = s + 1.702 x s (1 - s), s = sigmoid(1.702 x) */
VIT_HD VIT_INLINE float vit_quick_gelu_grad(float x) {
    const float s = 1.0f / (1.0f + vit_expf(-1.702f * x));
    return s + 1.702f * x * s * (1.0f - s);
}

/* ------------------------------------------------------------------ AdamW */
/* The scalars of one AdamW step over a parameter, formed in double and
 * rounded once to float, as torch does with Python floats applied to a float
 * tensor (optim/adamw.c). */
typedef struct vit_adamw_consts {
    float decay;            /* 1 - lr * weight_decay */
    float beta1, one_beta1; /* b1, 1 - b1 */
    float beta2, one_beta2;
    float sqrt_bc2;         /* sqrt(1 - b2^t) */
    float eps;
    float neg_step;         /* -lr / (1 - b1^t) */
    float grad_scale;       /* clipping factor applied to the gradient */
} vit_adamw_consts;

/* One element, in the order and float arithmetic of torch.optim.AdamW's
 * single-tensor path (torch 1.13):
 *   param.mul_(1 - lr * wd)
 *   exp_avg.mul_(b1).add_(g, alpha=1 - b1)
 *   exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
 *   denom = (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-lr / bc1)
 */
VIT_HD VIT_INLINE void vit_adamw_element(float *p, float *m, float *v, float grad, const vit_adamw_consts *k) {
    const float g = grad * k->grad_scale;
    const float pi = *p * k->decay;
    const float mi = *m * k->beta1 + g * k->one_beta1;
    const float vi = *v * k->beta2 + (g * g) * k->one_beta2;
    const float denom = sqrtf(vi) / k->sqrt_bc2 + k->eps;
    *m = mi;
    *v = vi;
    *p = pi + k->neg_step * (mi / denom);
}

#endif
