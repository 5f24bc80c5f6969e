/* Single images (vit/data.h): loading one file through a transform's
 * deterministic part, for prediction, and writing pixels as PNG. */
#include <stdio.h>
#include <string.h>

#include "data/data.h"

vit_status vit_image_load(const vit_transform *tf, const char *path, vit_tensor *out) {
    VIT_CHECK_ARG(tf, "vit_image_load: tf is NULL");
    VIT_CHECK_ARG(path && *path, "vit_image_load: path is NULL or empty");
    int C = tf->channels ? tf->channels : 3, S = tf->size;
    VIT_CHECK_ARG(out, "vit_image_load: out is NULL");
    if (out->ndim == 4) {
        int64_t dims[4] = {1, C, S, S};
        VIT_TRY(vit_tensor_expect(out, "out", VIT_DTYPE_F32, 4, dims));
    } else {
        int64_t dims[3] = {C, S, S};
        VIT_TRY(vit_tensor_expect(out, "out", VIT_DTYPE_F32, 3, dims));
    }
    void *data;
    VIT_TRY(vit_tensor_data(out, &data));
    vit_scratch s;
    vit_scratch_init(&s);
    vit_status st = vit_image_read(&s.dec, path, C, S, &s.decoded);
    if (st == VIT_OK) {
        vit_view v = {s.decoded.data, s.decoded.w, s.decoded.h, s.decoded.c};
        st = vit_transform_apply(tf, &v, C, 0, 0, data, &s);
    }
    vit_scratch_release(&s);
    return st;
}

vit_status vit_image_write_png(const char *path, const vit_tensor *pixels) {
    VIT_CHECK_ARG(path && *path, "vit_image_write_png: path is NULL or empty");
    int64_t dims[3] = {-1, -1, -1};
    VIT_TRY(vit_tensor_expect(pixels, "pixels", VIT_DTYPE_U8, 3, dims));
    int64_t c = pixels->shape[2];
    if (c != 1 && c != 3 && c != 4)
        return vit_fail(VIT_ERR_SHAPE, "pixels: [H, W, C] with C = 1, 3 or 4; got C = %lld", (long long)c);
    if (pixels->shape[0] > 1 << 20 || pixels->shape[1] > 1 << 20)
        return vit_fail(VIT_ERR_SHAPE, "pixels: %lld x %lld is too large for a PNG", (long long)pixels->shape[1],
                        (long long)pixels->shape[0]);
    void *px;
    VIT_TRY(vit_tensor_host_data(pixels, "pixels", &px));
    return vit_png_write(path, px, (int)pixels->shape[1], (int)pixels->shape[0], (int)c);
}
