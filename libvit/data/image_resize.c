/* Pillow-compatible resizing of 8-bit images (data/data.h).
 *
 * A transcription of Pillow's libImaging/Resample.c (ImagingResample with
 * precompute_coeffs / normalize_coeffs_8bpc and the 8bpc passes), because the
 * seed resizes with PIL's Image.resize(BILINEAR) and we want the same pixels,
 * not merely similar ones. NEAREST follows Pillow's affine-transform path. */
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

#define PRECISION_BITS (32 - 8 - 2)

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static double bicubic_filter(double x) {
    const double a = -0.5; /* Pillow's choice (Keys' cubic, as PIL BICUBIC) */
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static inline uint8_t clip8(int v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

static int grow(void **p, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 1;
    void *q = realloc(*p, bytes);
    if (!q) return 0;
    *p = q;
    *cap = bytes;
    return 1;
}

/* Coefficients for one axis: out_size outputs over the input span
 * [in0, in1) of an axis of in_size pixels. Returns ksize (taps per output);
 * bounds[2*x] is the first input pixel, bounds[2*x+1] the tap count. */
static int precompute(int in_size, float in0, float in1, int out_size, int bicubic, double *kk, int *bounds,
                      int ksize) {
    double (*filter)(double) = bicubic ? bicubic_filter : bilinear_filter;
    double support = bicubic ? 2.0 : 1.0;
    double scale = (double)(in1 - in0) / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    support *= filterscale;
    double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = kk + (size_t)xx * ksize;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    return ksize;
}

static int ksize_for(float in0, float in1, int out_size, int bicubic) {
    double scale = (double)(in1 - in0) / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    return (int)ceil((bicubic ? 2.0 : 1.0) * filterscale) * 2 + 1;
}

/* Double coefficients to Pillow's rounded fixed point, in place (an int32
 * fits in the space of a double). */
static void to_fixed(double *pre, int n) {
    int32_t *k = (int32_t *)pre;
    for (int x = 0; x < n; x++)
        k[x] = pre[x] < 0 ? (int)(-0.5 + pre[x] * (1 << PRECISION_BITS)) : (int)(0.5 + pre[x] * (1 << PRECISION_BITS));
}

/* Horizontal pass. Specialised for 1 and 3 channels (the only ones the data
 * layer resizes) so the channel loop unrolls; the arithmetic is Pillow's. */
static void pass_h(uint8_t *out, int ow, int oh, const uint8_t *in, int iw, int c, int yoff, const int32_t *kk,
                   const int *bounds, int ksize) {
    for (int y = 0; y < oh; y++) {
        const uint8_t *row = in + (size_t)(y + yoff) * iw * c;
        uint8_t *o = out + (size_t)y * ow * c;
        if (c == 3) {
            for (int x = 0; x < ow; x++) {
                const uint8_t *p = row + (size_t)bounds[2 * x] * 3;
                const int32_t *k = kk + (size_t)x * ksize;
                int n = bounds[2 * x + 1], s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int i = 0; i < n; i++) {
                    s0 += p[3 * i] * k[i];
                    s1 += p[3 * i + 1] * k[i];
                    s2 += p[3 * i + 2] * k[i];
                }
                o[3 * x] = clip8(s0);
                o[3 * x + 1] = clip8(s1);
                o[3 * x + 2] = clip8(s2);
            }
        } else if (c == 1) {
            for (int x = 0; x < ow; x++) {
                const uint8_t *p = row + bounds[2 * x];
                const int32_t *k = kk + (size_t)x * ksize;
                int n = bounds[2 * x + 1], s0 = 1 << (PRECISION_BITS - 1);
                for (int i = 0; i < n; i++) s0 += p[i] * k[i];
                o[x] = clip8(s0);
            }
        } else {
            for (int x = 0; x < ow; x++) {
                int xmin = bounds[2 * x], xmax = bounds[2 * x + 1];
                const int32_t *k = kk + (size_t)x * ksize;
                for (int ch = 0; ch < c; ch++) {
                    int ss = 1 << (PRECISION_BITS - 1);
                    for (int i = 0; i < xmax; i++) ss += row[(xmin + i) * c + ch] * k[i];
                    o[x * c + ch] = clip8(ss);
                }
            }
        }
    }
}

/* Vertical pass: whole rows accumulated tap by tap into acc, so the inner
 * loop runs along memory and vectorises. Same sums as Pillow's, in another
 * order; integer addition makes the result identical. */
static void pass_v(uint8_t *out, int ow, int oh, const uint8_t *in, int c, const int32_t *kk, const int *bounds,
                   int ksize, int32_t *acc) {
    size_t stride = (size_t)ow * c;
    for (int y = 0; y < oh; y++) {
        int ymin = bounds[2 * y], ymax = bounds[2 * y + 1];
        const int32_t *k = kk + (size_t)y * ksize;
        for (size_t x = 0; x < stride; x++) acc[x] = 1 << (PRECISION_BITS - 1);
        for (int i = 0; i < ymax; i++) {
            const uint8_t *row = in + (size_t)(ymin + i) * stride;
            int32_t w = k[i];
            for (size_t x = 0; x < stride; x++) acc[x] += row[x] * w;
        }
        uint8_t *o = out + (size_t)y * stride;
        for (size_t x = 0; x < stride; x++) o[x] = clip8(acc[x]);
    }
}

void vit_resampler_release(vit_resampler *r) {
    free(r->k);
    free(r->bounds);
    free(r->tmp);
    free(r->acc);
    memset(r, 0, sizeof *r);
}

static void nearest(const uint8_t *src, int sw, int c, int bx, int by, int bw, int bh, uint8_t *dst, int dw,
                    int dh) {
    /* Pillow: source = floor((x + 0.5) * scale + box origin). */
    double ax = (double)bw / dw, ay = (double)bh / dh;
    for (int y = 0; y < dh; y++) {
        int sy = (int)((y + 0.5) * ay + by);
        for (int x = 0; x < dw; x++) {
            int sx = (int)((x + 0.5) * ax + bx);
            memcpy(dst + ((size_t)y * dw + x) * c, src + ((size_t)sy * sw + sx) * c, (size_t)c);
        }
    }
}

vit_status vit_resample_u8(vit_resampler *r, const uint8_t *src, int sw, int sh, int c, int bx, int by, int bw,
                           int bh, uint8_t *dst, int dw, int dh, vit_resize_mode mode) {
    if (bx < 0 || by < 0 || bw <= 0 || bh <= 0 || bx + bw > sw || by + bh > sh || dw <= 0 || dh <= 0)
        return vit_fail(VIT_ERR_INTERNAL, "resample: box (%d, %d, %d, %d) outside a %d x %d image", bx, by, bw, bh,
                        sw, sh);
    if (bx == 0 && by == 0 && bw == sw && bh == sh && dw == sw && dh == sh) {
        memcpy(dst, src, (size_t)sw * sh * c);
        return VIT_OK;
    }
    if (mode == VIT_RESIZE_NEAREST) {
        nearest(src, sw, c, bx, by, bw, bh, dst, dw, dh);
        return VIT_OK;
    }
    int bicubic = mode == VIT_RESIZE_BICUBIC;
    int need_h = dw != sw || bx != 0 || bw != dw, need_v = dh != sh || by != 0 || bh != dh;
    int kh = ksize_for((float)bx, (float)(bx + bw), dw, bicubic), kv = ksize_for((float)by, (float)(by + bh), dh, bicubic);
    size_t nk = (size_t)dw * kh + (size_t)dh * kv;
    if (!grow((void **)&r->k, &r->k_cap, nk * sizeof(double)) ||
        !grow((void **)&r->bounds, &r->bounds_cap, 2 * (size_t)(dw + dh) * sizeof(int)))
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "resample: no memory for coefficients");
    double *kkh = (double *)r->k, *kkv = kkh + (size_t)dw * kh;
    int *bh_ = r->bounds, *bv = r->bounds + 2 * dw;
    precompute(sw, (float)bx, (float)(bx + bw), dw, bicubic, kkh, bh_, kh);
    precompute(sh, (float)by, (float)(by + bh), dh, bicubic, kkv, bv, kv);
    to_fixed(kkh, dw * kh);
    to_fixed(kkv, dh * kv);
    /* Fixed-point values sit in the first half of each double array, as in
     * Pillow, which reuses the buffer the same way. */
    const int32_t *kh32 = (const int32_t *)kkh, *kv32 = (const int32_t *)kkv;

    int yfirst = bv[0], ylast = bv[2 * dh - 2] + bv[2 * dh - 1];
    const uint8_t *cur = src;
    int cur_w = sw;
    if (need_h) {
        for (int i = 0; i < dh; i++) bv[2 * i] -= yfirst;
        int rows = ylast - yfirst;
        uint8_t *out = need_v ? NULL : dst;
        if (need_v) {
            if (!grow((void **)&r->tmp, &r->tmp_cap, (size_t)dw * rows * c))
                return vit_fail(VIT_ERR_OUT_OF_MEMORY, "resample: no memory for a %d x %d buffer", dw, rows);
            out = r->tmp;
        }
        pass_h(out, dw, need_v ? rows : dh, src, sw, c, need_v ? yfirst : by, kh32, bh_, kh);
        cur = out;
        cur_w = dw;
    }
    if (need_v) {
        if (cur_w != dw) return vit_fail(VIT_ERR_INTERNAL, "resample: width mismatch");
        if (!grow((void **)&r->acc, &r->acc_cap, (size_t)dw * c * sizeof(int32_t)))
            return vit_fail(VIT_ERR_OUT_OF_MEMORY, "resample: no memory for a row");
        pass_v(dst, dw, dh, cur, c, kv32, bv, kv, r->acc);
    }
    return VIT_OK;
}
