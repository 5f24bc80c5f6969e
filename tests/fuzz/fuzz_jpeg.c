/* JPEG through TurboJPEG (io/image.h): baseline, progressive, gray, CMYK and
 * YCCK, at full size and scaled down in the DCT, to gray and to RGB. */
#include "fuzz.h"
#include "io/image.h"

static vit_decoder dec;
static vit_pixbuf out;

static void decode(const uint8_t *data, size_t size, int channels, int min_side) {
    vit_status s = vit_image_decode(&dec, "fuzz.jpg", data, size, channels, min_side, &out);
    vit_fuzz_check_error(s);
    if (s != VIT_OK) return;
    if (out.w <= 0 || out.h <= 0 || out.c != channels || (int64_t)out.w * out.h > VIT_IMAGE_MAX_PIXELS ||
        (size_t)out.w * out.h * (size_t)channels > out.cap)
        abort();
    vit_fuzz_touch(out.data, (size_t)out.w * out.h * (size_t)channels);
}

/* A worker keeps its largest buffer; here that would add up across inputs
 * against the fuzzer's memory limit, so large ones go after each input. */
static void trim(void) {
    if (out.cap > ((size_t)64 << 20)) vit_pixbuf_release(&out);
}

VIT_FUZZ_TARGET(jpeg) {
    decode(data, size, 3, 0);
    decode(data, size, 1, 0);
    decode(data, size, 3, 2); /* 1/2 .. 1/8 scaling when the image is at least 4 pixels a side */
    trim();
    return 0;
}
