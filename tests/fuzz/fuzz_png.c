/* PNG through libpng (io/image.h): every colour type, bit depth and
 * interlacing, to gray and to RGB, with a decoder and pixel buffer reused
 * across inputs as a loader worker reuses them; each input as it is and
 * with its chunks' CRCs made right. */
#include <zlib.h>

#include "fuzz.h"
#include "io/image.h"

static vit_decoder dec;
static vit_pixbuf out;

static void decode(const uint8_t *data, size_t size, int channels) {
    vit_status s = vit_image_decode(&dec, "fuzz.png", data, size, channels, 0, &out);
    vit_fuzz_check_error(s);
    if (s != VIT_OK) return;
    if (out.w <= 0 || out.h <= 0 || out.c != channels || (int64_t)out.w * out.h > VIT_IMAGE_MAX_PIXELS ||
        (size_t)out.w * out.h * (size_t)channels > out.cap)
        abort();
    /* the whole image, so a row the decoder never wrote is an uninitialised
     * read under MSan and an overflow under ASan if the size were wrong */
    vit_fuzz_touch(out.data, (size_t)out.w * out.h * (size_t)channels);
}

/* A worker keeps its largest buffer; here that would add up across inputs
 * against the fuzzer's memory limit, so large ones go after each input. */
static void trim(void) {
    if (out.cap > ((size_t)64 << 20)) vit_pixbuf_release(&out);
}

/* A mutation inside a chunk breaks its CRC, which libpng checks before it
 * parses the chunk: without this, nearly every mutant would stop there. */
static void fix_crcs(uint8_t *p, size_t n) {
    for (size_t at = 8; at + 12 <= n;) {
        uint32_t len = (uint32_t)p[at] << 24 | (uint32_t)p[at + 1] << 16 | (uint32_t)p[at + 2] << 8 | p[at + 3];
        if (len > n - at - 12) break;
        uint32_t crc = (uint32_t)crc32(0, p + at + 4, len + 4);
        uint8_t *c = p + at + 8 + len;
        c[0] = (uint8_t)(crc >> 24), c[1] = (uint8_t)(crc >> 16), c[2] = (uint8_t)(crc >> 8), c[3] = (uint8_t)crc;
        at += 12 + (size_t)len;
    }
}

VIT_FUZZ_TARGET(png) {
    decode(data, size, 3);
    uint8_t *fixed = malloc(size ? size : 1);
    if (fixed) {
        memcpy(fixed, data, size);
        fix_crcs(fixed, size);
        decode(fixed, size, 3);
        decode(fixed, size, 1);
        free(fixed);
    }
    trim();
    return 0;
}
