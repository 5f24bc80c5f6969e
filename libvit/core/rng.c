/* Counter-based random numbers (see core.h). */
#include <math.h>

#include "core/core.h"

double vit_rng_normal(uint64_t key, uint64_t index) {
    /* 53-bit uniforms; u1 in (0, 1] so log never sees 0. */
    double u1 = ((double)(vit_hash64(key + 2 * index * 0xD1B54A32D192ED03ull) >> 11) + 1.0) * 0x1p-53;
    double u2 = (double)(vit_hash64(key + (2 * index + 1) * 0xD1B54A32D192ED03ull) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Each element depends only on (key, i), so the threads split the work
 * without changing a single value (ViT-B/16 draws 86M of them at creation). */
void vit_rng_trunc_normal(float *out, size_t n, uint64_t key, float std, float lo, float hi) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        uint64_t draw = i;
        double x;
        /* Redraw out-of-range samples from a further, disjoint counter range. */
        for (int tries = 0;; tries++) {
            x = vit_rng_normal(key, draw) * std;
            if ((x >= lo && x <= hi) || tries > 64) break;
            draw += (uint64_t)n + 0x100000000ull;
        }
        out[i] = (float)(x < lo ? lo : x > hi ? hi : x);
    }
}
