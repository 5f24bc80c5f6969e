/* Per-sample transforms (vit/data.h): options and the pipeline.
 *
 * Order, as the seed's CIFAR10DataLoad / torchvision: (RandomResizedCrop |
 * Resize) -> RandomCrop(padding) -> RandomHorizontalFlip -> RandomRotation ->
 * ToTensor -> Normalize.
 * Geometry runs on u8 (so the resize equals Pillow's), the rotation samples
 * the u8 image straight into the f32 output, which is also where the flip is
 * folded in: one pass over the output, nothing allocated. */
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

/* Draw indices within a sample's key: fixed, so adding a draw to one step
 * never shifts another step's numbers. */
enum { DRAW_FLIP = 0, DRAW_ROTATE = 1, DRAW_SHIFT_Y = 2, DRAW_SHIFT_X = 3, DRAW_CROP = 8 /* 4 per attempt, 10 attempts */ };

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f}, imagenet_std[3] = {0.229f, 0.224f, 0.225f};

vit_status vit_transform_create(vit_context *ctx, vit_transform **out) {
    VIT_CHECK_ARG(out, "vit_transform_create: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(ctx, "vit_transform_create: ctx is NULL");
    vit_transform *tf = calloc(1, sizeof *tf);
    if (!tf) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_transform_create: no memory");
    tf->ctx = ctx;
    tf->size = 224;
    tf->resize = VIT_RESIZE_BILINEAR;
    tf->rot_interp = VIT_RESIZE_NEAREST;
    tf->normalize = VIT_NORM_NONE;
    tf->train = 1;
    tf->scale_min = 0.08;
    tf->scale_max = 1.0;
    tf->ratio_min = 3.0 / 4.0;
    tf->ratio_max = 4.0 / 3.0;
    for (int i = 0; i < 3; i++) {
        tf->mean[i] = 0.0;
        tf->std[i] = 1.0;
    }
    *out = tf;
    return VIT_OK;
}

void vit_transform_destroy(vit_transform *tf) { free(tf); }

vit_status vit_transform_copy(const vit_transform *src, vit_transform **out) {
    VIT_CHECK_ARG(out, "vit_transform_copy: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(src, "vit_transform_copy: src is NULL");
    vit_transform *tf = malloc(sizeof *tf);
    if (!tf) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_transform_copy: no memory");
    *tf = *src;
    *out = tf;
    return VIT_OK;
}

vit_status vit_transform_set_int(vit_transform *tf, vit_transform_param param, int64_t v) {
    VIT_CHECK_ARG(tf, "vit_transform_set_int: tf is NULL");
    switch (param) {
    case VIT_TF_SIZE:
        VIT_CHECK_ARG(v >= 1 && v <= 8192, "VIT_TF_SIZE: %lld is out of range 1..8192", (long long)v);
        tf->size = (int)v;
        return VIT_OK;
    case VIT_TF_CHANNELS:
        VIT_CHECK_ARG(v == 0 || v == 1 || v == 3, "VIT_TF_CHANNELS: %lld (0, 1 or 3 accepted)", (long long)v);
        tf->channels = (int)v;
        return VIT_OK;
    case VIT_TF_RESIZE:
        VIT_CHECK_ARG(v >= VIT_RESIZE_BILINEAR && v <= VIT_RESIZE_NEAREST, "VIT_TF_RESIZE: %lld is not a vit_resize_mode",
                      (long long)v);
        tf->resize = (int)v;
        return VIT_OK;
    case VIT_TF_ROTATION_INTERP:
        VIT_CHECK_ARG(v == VIT_RESIZE_BILINEAR || v == VIT_RESIZE_NEAREST,
                      "VIT_TF_ROTATION_INTERP: %lld (VIT_RESIZE_BILINEAR or VIT_RESIZE_NEAREST accepted)", (long long)v);
        tf->rot_interp = (int)v;
        return VIT_OK;
    case VIT_TF_RANDOM_CROP:
    case VIT_TF_TRAIN:
        VIT_CHECK_ARG(v == 0 || v == 1, "%s: %lld (0 or 1 accepted)",
                      param == VIT_TF_TRAIN ? "VIT_TF_TRAIN" : "VIT_TF_RANDOM_CROP", (long long)v);
        *(param == VIT_TF_TRAIN ? &tf->train : &tf->random_crop) = (int)v;
        return VIT_OK;
    case VIT_TF_PAD_CROP:
        VIT_CHECK_ARG(v >= 0 && v <= tf->size, "VIT_TF_PAD_CROP: %lld is outside 0..%d (the VIT_TF_SIZE)",
                      (long long)v, tf->size);
        tf->pad_crop = (int)v;
        return VIT_OK;
    case VIT_TF_NORMALIZE:
        VIT_CHECK_ARG(v >= VIT_NORM_NONE && v <= VIT_NORM_CUSTOM, "VIT_TF_NORMALIZE: %lld is not a vit_normalize",
                      (long long)v);
        tf->normalize = (int)v;
        return VIT_OK;
    default:
        break;
    }
    if (param >= VIT_TF_FLIP_P && param <= VIT_TF_STD_2)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_transform_set_int: parameter %d is real: use vit_transform_set_float",
                        (int)param);
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_transform_set_int: unknown parameter %d", (int)param);
}

vit_status vit_transform_get_int(const vit_transform *tf, vit_transform_param param, int64_t *v) {
    VIT_CHECK_ARG(tf, "vit_transform_get_int: tf is NULL");
    VIT_CHECK_ARG(v, "vit_transform_get_int: value is NULL");
    switch (param) {
    case VIT_TF_SIZE: *v = tf->size; return VIT_OK;
    case VIT_TF_CHANNELS: *v = tf->channels; return VIT_OK;
    case VIT_TF_RESIZE: *v = tf->resize; return VIT_OK;
    case VIT_TF_ROTATION_INTERP: *v = tf->rot_interp; return VIT_OK;
    case VIT_TF_RANDOM_CROP: *v = tf->random_crop; return VIT_OK;
    case VIT_TF_NORMALIZE: *v = tf->normalize; return VIT_OK;
    case VIT_TF_TRAIN: *v = tf->train; return VIT_OK;
    case VIT_TF_PAD_CROP: *v = tf->pad_crop; return VIT_OK;
    default: break;
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_transform_get_int: parameter %d is not an integer parameter",
                    (int)param);
}

static double *float_slot(vit_transform *tf, vit_transform_param param) {
    switch (param) {
    case VIT_TF_FLIP_P: return &tf->flip_p;
    case VIT_TF_ROTATION: return &tf->rotation;
    case VIT_TF_CROP_SCALE_MIN: return &tf->scale_min;
    case VIT_TF_CROP_SCALE_MAX: return &tf->scale_max;
    case VIT_TF_CROP_RATIO_MIN: return &tf->ratio_min;
    case VIT_TF_CROP_RATIO_MAX: return &tf->ratio_max;
    case VIT_TF_MEAN_0: case VIT_TF_MEAN_1: case VIT_TF_MEAN_2: return &tf->mean[param - VIT_TF_MEAN_0];
    case VIT_TF_STD_0: case VIT_TF_STD_1: case VIT_TF_STD_2: return &tf->std[param - VIT_TF_STD_0];
    default: return NULL;
    }
}

vit_status vit_transform_set_float(vit_transform *tf, vit_transform_param param, double v) {
    VIT_CHECK_ARG(tf, "vit_transform_set_float: tf is NULL");
    double *slot = float_slot(tf, param);
    if (!slot) {
        if (param >= VIT_TF_SIZE && param <= VIT_TF_PAD_CROP)
            return vit_fail(VIT_ERR_INVALID_ARGUMENT,
                            "vit_transform_set_float: parameter %d is an integer: use vit_transform_set_int", (int)param);
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_transform_set_float: unknown parameter %d", (int)param);
    }
    VIT_CHECK_ARG(isfinite(v), "vit_transform_set_float: parameter %d: %g is not finite", (int)param, v);
    switch (param) {
    case VIT_TF_FLIP_P: VIT_CHECK_ARG(v >= 0 && v <= 1, "VIT_TF_FLIP_P: %g is outside [0, 1]", v); break;
    case VIT_TF_ROTATION: VIT_CHECK_ARG(v >= 0 && v <= 180, "VIT_TF_ROTATION: %g is outside [0, 180] degrees", v); break;
    case VIT_TF_CROP_SCALE_MIN:
    case VIT_TF_CROP_SCALE_MAX:
        VIT_CHECK_ARG(v > 0 && v <= 1, "VIT_TF_CROP_SCALE_%s: %g is outside (0, 1]",
                      param == VIT_TF_CROP_SCALE_MIN ? "MIN" : "MAX", v);
        break;
    case VIT_TF_CROP_RATIO_MIN:
    case VIT_TF_CROP_RATIO_MAX:
        VIT_CHECK_ARG(v > 0 && v <= 100, "VIT_TF_CROP_RATIO_%s: %g is outside (0, 100]",
                      param == VIT_TF_CROP_RATIO_MIN ? "MIN" : "MAX", v);
        break;
    case VIT_TF_STD_0: case VIT_TF_STD_1: case VIT_TF_STD_2:
        VIT_CHECK_ARG(v > 0, "VIT_TF_STD_%d: %g must be > 0", (int)(param - VIT_TF_STD_0), v);
        tf->normalize = VIT_NORM_CUSTOM;
        break;
    case VIT_TF_MEAN_0: case VIT_TF_MEAN_1: case VIT_TF_MEAN_2: tf->normalize = VIT_NORM_CUSTOM; break;
    default: break;
    }
    *slot = v;
    return VIT_OK;
}

vit_status vit_transform_get_float(const vit_transform *tf, vit_transform_param param, double *v) {
    VIT_CHECK_ARG(tf, "vit_transform_get_float: tf is NULL");
    VIT_CHECK_ARG(v, "vit_transform_get_float: value is NULL");
    const double *slot = float_slot((vit_transform *)tf, param);
    if (!slot)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_transform_get_float: parameter %d is not a real parameter",
                        (int)param);
    *v = *slot;
    return VIT_OK;
}

void vit_transform_norm(const vit_transform *tf, int ch, int channels, float *mean, float *std) {
    /* A gray model with ImageNet statistics uses their average (the gray
     * image's channel is a mix of all three). */
    switch (tf->normalize) {
    case VIT_NORM_IMAGENET:
        if (channels == 1) {
            *mean = (imagenet_mean[0] + imagenet_mean[1] + imagenet_mean[2]) / 3;
            *std = (imagenet_std[0] + imagenet_std[1] + imagenet_std[2]) / 3;
        } else {
            *mean = imagenet_mean[ch];
            *std = imagenet_std[ch];
        }
        return;
    case VIT_NORM_HALF: *mean = 0.5f; *std = 0.5f; return;
    case VIT_NORM_CUSTOM: *mean = (float)tf->mean[ch]; *std = (float)tf->std[ch]; return;
    default: *mean = 0.0f; *std = 1.0f; return;
    }
}

vit_status vit_view_convert(vit_view *v, int channels, vit_pixbuf *buf) {
    if (v->c == channels) return VIT_OK;
    size_t n = (size_t)v->w * v->h;
    VIT_TRY(vit_pixbuf_reserve(buf, n * (size_t)channels));
    const uint8_t *s = v->px;
    uint8_t *d = buf->data;
    if (v->c == 1 && channels == 3) {
        for (size_t i = 0; i < n; i++) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[i];
    } else if (v->c == 3 && channels == 1) {
        for (size_t i = 0; i < n; i++) d[i] = vit_rgb_to_gray(s[3 * i], s[3 * i + 1], s[3 * i + 2]);
    } else {
        return vit_fail(VIT_ERR_INTERNAL, "cannot convert %d channels to %d", v->c, channels);
    }
    v->px = d;
    v->c = channels;
    return VIT_OK;
}

/* torchvision's RandomResizedCrop.get_params, with our counter draws. */
static void crop_box(const vit_transform *tf, int W, int H, uint64_t key, int *x, int *y, int *w, int *h) {
    double area = (double)W * H, lr0 = log(tf->ratio_min), lr1 = log(tf->ratio_max);
    double smin = tf->scale_min, smax = tf->scale_max > tf->scale_min ? tf->scale_max : tf->scale_min;
    for (int attempt = 0; attempt < 10; attempt++) {
        uint64_t d = DRAW_CROP + 4 * (uint64_t)attempt;
        double target = area * (smin + (smax - smin) * vit_rng_uniform(key, d));
        double aspect = exp(lr0 + (lr1 - lr0) * vit_rng_uniform(key, d + 1));
        int cw = (int)nearbyint(sqrt(target * aspect)), ch = (int)nearbyint(sqrt(target / aspect));
        if (cw > 0 && cw <= W && ch > 0 && ch <= H) {
            *y = (int)(vit_rng_uniform(key, d + 2) * (H - ch + 1));
            *x = (int)(vit_rng_uniform(key, d + 3) * (W - cw + 1));
            *w = cw;
            *h = ch;
            return;
        }
    }
    /* Fallback: the central crop with the ratio clamped into range. */
    double in_ratio = (double)W / H, rmin = fmin(tf->ratio_min, tf->ratio_max), rmax = fmax(tf->ratio_min, tf->ratio_max);
    int cw = W, ch = H;
    if (in_ratio < rmin) ch = (int)nearbyint(W / rmin);
    else if (in_ratio > rmax) cw = (int)nearbyint(H * rmax);
    if (ch < 1) ch = 1;
    if (cw < 1) cw = 1;
    if (ch > H) ch = H;
    if (cw > W) cw = W;
    *x = (W - cw) / 2;
    *y = (H - ch) / 2;
    *w = cw;
    *h = ch;
}

vit_status vit_transform_apply(const vit_transform *tf, const vit_view *src, int out_c, int train, uint64_t key,
                               float *dst, vit_scratch *s) {
    vit_view v = *src;
    VIT_TRY(vit_view_convert(&v, out_c, &s->conv));
    const int S = tf->size, C = out_c;

    /* 1. Geometry on u8: the crop box (random or the whole image), resized. */
    int bx = 0, by = 0, bw = v.w, bh = v.h;
    if (train && tf->random_crop) crop_box(tf, v.w, v.h, key, &bx, &by, &bw, &bh);
    const uint8_t *img = v.px;
    if (!(bx == 0 && by == 0 && bw == S && bh == S && v.w == S && v.h == S)) {
        VIT_TRY(vit_pixbuf_reserve(&s->resized, (size_t)S * S * C));
        VIT_TRY(vit_resample_u8(&s->rs, v.px, v.w, v.h, C, bx, by, bw, bh, s->resized.data, S, S,
                                (vit_resize_mode)tf->resize));
        img = s->resized.data;
    }

    /* 2. The shift: torchvision's RandomCrop on the image padded with P zeros
     * draws the window's corner uniformly in 0..2P, i.e. moves the content by
     * P - corner. Materialised (one u8 pass) so flip and rotation below read
     * an ordinary image. */
    const int P = tf->pad_crop < S ? tf->pad_crop : S;
    if (train && P > 0) {
        int dy = P - (int)(vit_rng_uniform(key, DRAW_SHIFT_Y) * (2 * P + 1));
        int dx = P - (int)(vit_rng_uniform(key, DRAW_SHIFT_X) * (2 * P + 1));
        if (dx || dy) {
            VIT_TRY(vit_pixbuf_reserve(&s->shifted, (size_t)S * S * C));
            uint8_t *out = s->shifted.data;
            memset(out, 0, (size_t)S * S * C);
            int x0 = dx > 0 ? dx : 0, x1 = dx < 0 ? S + dx : S; /* output columns with a source */
            for (int y = 0; y < S; y++) {
                int sy = y - dy;
                if (sy < 0 || sy >= S) continue;
                memcpy(out + ((size_t)y * S + x0) * C, img + ((size_t)sy * S + x0 - dx) * C, (size_t)(x1 - x0) * C);
            }
            img = out;
        }
    }

    /* 3. Flip and rotation decided from the sample's key. */
    int flip = train && tf->flip_p > 0 && vit_rng_uniform(key, DRAW_FLIP) < tf->flip_p;
    double angle = 0;
    if (train && tf->rotation > 0) angle = -tf->rotation + 2 * tf->rotation * vit_rng_uniform(key, DRAW_ROTATE);

    float scale[3], shift[3];
    for (int ch = 0; ch < C; ch++) {
        float m, sd;
        vit_transform_norm(tf, ch, C, &m, &sd);
        scale[ch] = 1.0f / (255.0f * sd);
        shift[ch] = -m / sd;
    }
    const size_t plane = (size_t)S * S;

    if (angle == 0) {
        for (int y = 0; y < S; y++) {
            const uint8_t *row = img + (size_t)y * S * C;
            for (int x = 0; x < S; x++) {
                const uint8_t *p = row + (size_t)(flip ? S - 1 - x : x) * C;
                for (int ch = 0; ch < C; ch++) dst[ch * plane + (size_t)y * S + x] = p[ch] * scale[ch] + shift[ch];
            }
        }
        return VIT_OK;
    }

    /* 4. Rotation as PIL's Image.rotate (what torchvision's RandomRotation
     * calls on PIL images): counter-clockwise by angle about the centre,
     * output pixel centre mapped back into the (flipped) input, points
     * outside filled with 0 before normalisation. */
    double rad = -angle * M_PI / 180.0, a = cos(rad), b = sin(rad), cx = S / 2.0, cy = S / 2.0;
    int bilinear = tf->rot_interp == VIT_RESIZE_BILINEAR;
    for (int y = 0; y < S; y++) {
        for (int x = 0; x < S; x++) {
            double ox = x + 0.5 - cx, oy = y + 0.5 - cy;
            double xin = a * ox + b * oy + cx, yin = -b * ox + a * oy + cy;
            size_t o = (size_t)y * S + x;
            if (xin < 0 || xin >= S || yin < 0 || yin >= S) {
                for (int ch = 0; ch < C; ch++) dst[ch * plane + o] = shift[ch];
                continue;
            }
            if (flip) xin = S - xin;
            if (!bilinear) {
                int sx = (int)xin, sy = (int)yin;
                if (sx >= S) sx = S - 1;
                const uint8_t *p = img + ((size_t)sy * S + sx) * C;
                for (int ch = 0; ch < C; ch++) dst[ch * plane + o] = p[ch] * scale[ch] + shift[ch];
            } else {
                /* Neighbours clamped to the edge, as PIL's bilinear filter. */
                double fx = xin - 0.5, fy = yin - 0.5;
                int x0 = (int)floor(fx), y0 = (int)floor(fy);
                double dx = fx - x0, dy = fy - y0;
                int xa = x0 < 0 ? 0 : x0, xb = x0 + 1 >= S ? S - 1 : x0 + 1;
                int ya = y0 < 0 ? 0 : y0, yb = y0 + 1 >= S ? S - 1 : y0 + 1;
                for (int ch = 0; ch < C; ch++) {
                    double p00 = img[((size_t)ya * S + xa) * C + ch], p01 = img[((size_t)ya * S + xb) * C + ch];
                    double p10 = img[((size_t)yb * S + xa) * C + ch], p11 = img[((size_t)yb * S + xb) * C + ch];
                    double top = p00 + (p01 - p00) * dx, bot = p10 + (p11 - p10) * dx;
                    dst[ch * plane + o] = (float)(top + (bot - top) * dy) * scale[ch] + shift[ch];
                }
            }
        }
    }
    return VIT_OK;
}
