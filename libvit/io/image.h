/* Image codecs: JPEG (TurboJPEG) and PNG (libpng) to 8-bit pixels, and PNG out. */
#ifndef VIT_IO_IMAGE_H
#define VIT_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* Write pixels [h, w, channels] (channels 1 = gray, 3 = RGB, 4 = RGBA) as an
 * 8-bit PNG, atomically (io/atomic.h). */
vit_status vit_png_write(const char *path, const uint8_t *pixels, int w, int h, int channels);

/* Decoded pixels, row-major [h, w, c], in a buffer that grows and is reused:
 * a worker decoding image after image allocates only when an image is larger
 * than any before. */
typedef struct vit_pixbuf {
    uint8_t *data;
    size_t cap;
    int w, h, c;
} vit_pixbuf;

vit_status vit_pixbuf_reserve(vit_pixbuf *b, size_t bytes);
void vit_pixbuf_release(vit_pixbuf *b);

/* Per-thread decoding state: the TurboJPEG handle and the file buffer. */
typedef struct vit_decoder {
    void *tj;
    uint8_t *file;
    size_t file_cap;
    char msg[256]; /* libpng's error text, kept outside the setjmp frame */
} vit_decoder;

/* Largest image accepted (width * height): a lying header cannot make us
 * allocate gigabytes. 2^27 pixels is 11585 x 11585, far above any dataset. */
#define VIT_IMAGE_MAX_PIXELS ((int64_t)1 << 27)
/* Largest image file read. */
#define VIT_IMAGE_MAX_FILE ((int64_t)1 << 30)

void vit_decoder_init(vit_decoder *d);
void vit_decoder_release(vit_decoder *d);

/* Decodes a JPEG or PNG held in memory to channels (1 gray, 3 RGB) as Pillow's
 * convert('L' / 'RGB') would: alpha dropped, palettes expanded, 16-bit samples
 * reduced to their high byte. min_side > 0 lets a JPEG be scaled down in the
 * DCT (1/2, 1/4, 1/8) while both sides stay >= 2 * min_side. name is used in
 * messages only. Errors are VIT_ERR_FORMAT naming the file. */
vit_status vit_image_decode(vit_decoder *d, const char *name, const uint8_t *data, size_t size, int channels,
                            int min_side, vit_pixbuf *out);
/* Reads the file at path into the decoder's buffer and decodes it. */
vit_status vit_image_read(vit_decoder *d, const char *path, int channels, int min_side, vit_pixbuf *out);

/* Reads a whole file into *buf (grown with realloc as needed, capacity in
 * *cap); files above max_bytes are refused. */
vit_status vit_read_file(const char *path, int64_t max_bytes, uint8_t **buf, size_t *cap, size_t *size);

/* Gray from RGB with Pillow's ITU-R 601-2 weights, in fixed point as Pillow. */
static inline uint8_t vit_rgb_to_gray(uint8_t r, uint8_t g, uint8_t b) {
    return (uint8_t)(((uint32_t)r * 19595u + (uint32_t)g * 38470u + (uint32_t)b * 7471u + 0x8000u) >> 16);
}

#endif
