/* Image codecs (io/image.h): JPEG through TurboJPEG, PNG through libpng.
 *
 * The target is Pillow's behaviour, since the seed reads images with
 * Image.open(path).convert('RGB'): the same libjpeg-turbo decoding (accurate
 * DCT, fancy upsampling), alpha dropped rather than composited, palettes
 * expanded, RGB->gray with Pillow's weights. Libraries never print: libpng's
 * messages are captured and turned into the returned status. */
#include "io/image.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "io/atomic.h"

/* ------------------------------------------------------------------ buffers */
vit_status vit_pixbuf_reserve(vit_pixbuf *b, size_t bytes) {
    if (bytes <= b->cap) return VIT_OK;
    /* Grow by half again so a stream of slightly larger images does not
     * reallocate every time. The old pixels are never kept, so free them
     * first: realloc would copy them and hold both buffers at the peak. */
    size_t cap = bytes + bytes / 2;
    free(b->data);
    b->data = malloc(cap);
    b->cap = b->data ? cap : 0;
    if (!b->data) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory for a %zu-byte image buffer", bytes);
    return VIT_OK;
}

void vit_pixbuf_release(vit_pixbuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void vit_decoder_init(vit_decoder *d) { memset(d, 0, sizeof *d); }

void vit_decoder_release(vit_decoder *d) {
    if (d->tj) tjDestroy(d->tj);
    free(d->file);
    memset(d, 0, sizeof *d);
}

vit_status vit_read_file(const char *path, int64_t max_bytes, uint8_t **buf, size_t *cap, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return vit_fail(VIT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return vit_fail(VIT_ERR_IO, "%s: not a regular file", path);
    }
    if ((int64_t)st.st_size > max_bytes) {
        fclose(f);
        return vit_fail(VIT_ERR_FORMAT, "%s: file of %lld bytes is larger than the %lld accepted", path,
                        (long long)st.st_size, (long long)max_bytes);
    }
    size_t n = (size_t)st.st_size;
    if (n + 1 > *cap) {
        uint8_t *p = realloc(*buf, n + 1);
        if (!p) {
            fclose(f);
            return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory to read %zu bytes", path, n);
        }
        *buf = p;
        *cap = n + 1;
    }
    size_t got = n ? fread(*buf, 1, n, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (err || got != n) return vit_fail(VIT_ERR_IO, "%s: read %zu of %zu bytes", path, got, n);
    *size = n;
    return VIT_OK;
}

static vit_status check_dims(const char *name, const char *kind, int64_t w, int64_t h) {
    if (w <= 0 || h <= 0 || w * h > VIT_IMAGE_MAX_PIXELS)
        return vit_fail(VIT_ERR_FORMAT, "%s: %s header claims %lld x %lld pixels (accepted: 1 .. %lld pixels)", name,
                        kind, (long long)w, (long long)h, (long long)VIT_IMAGE_MAX_PIXELS);
    return VIT_OK;
}

/* libpng and TurboJPEG report a failed allocation as a decoding error, with
 * a message to match; the C library's errno, cleared before the call, tells
 * the two apart, so running out of memory is never blamed on the file. */
static vit_status codec_status(vit_status otherwise) { return errno == ENOMEM ? VIT_ERR_OUT_OF_MEMORY : otherwise; }

/* --------------------------------------------------------------------- JPEG */
static vit_status decode_jpeg(vit_decoder *d, const char *name, const uint8_t *data, size_t size, int channels,
                              int min_side, vit_pixbuf *out) {
    errno = 0;
    if (!d->tj) {
        d->tj = tjInitDecompress();
        if (!d->tj)
            return vit_fail(codec_status(VIT_ERR_INTERNAL), "%s: TurboJPEG: %s", name, tjGetErrorStr2(NULL));
    }
    if (size > 0xFFFFFFFFu) return vit_fail(VIT_ERR_FORMAT, "%s: JPEG file too large", name);
    int w, h, subsamp, cs;
    if (tjDecompressHeader3(d->tj, data, (unsigned long)size, &w, &h, &subsamp, &cs) != 0)
        return vit_fail(codec_status(VIT_ERR_FORMAT), "%s: bad JPEG header: %s", name, tjGetErrorStr2(d->tj));
    VIT_TRY(check_dims(name, "JPEG", w, h));

    /* Scale in the DCT when the image is much larger than needed: decoding at
     * 1/2 is about 3x faster, and keeping both sides >= 2x the target leaves
     * the antialiased resize enough pixels to reach the same result. */
    int sw = w, sh = h;
    if (min_side > 0) {
        for (int denom = 8; denom >= 2; denom /= 2) {
            int tw = (w + denom - 1) / denom, th = (h + denom - 1) / denom; /* TJSCALED for 1/denom */
            if (tw >= 2 * min_side && th >= 2 * min_side) {
                sw = tw;
                sh = th;
                break;
            }
        }
    }

    /* A colour JPEG wanted in gray goes through RGB and Pillow's weights,
     * not the decoder's luma plane: with subsampled chroma the two differ by
     * up to ~20 levels at colour edges, and the seed's pixels are Pillow's. */
    int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK, to_gray = channels == 1 && cs != TJCS_GRAY;
    int pf = cmyk ? TJPF_CMYK : channels == 1 && !to_gray ? TJPF_GRAY : TJPF_RGB;
    int pc = tjPixelSize[pf];
    VIT_TRY(vit_pixbuf_reserve(out, (size_t)sw * (size_t)sh * (size_t)pc));
    errno = 0;
    if (tjDecompress2(d->tj, data, (unsigned long)size, out->data, sw, 0, sh, pf, 0) != 0) {
        /* Warnings (recoverable corruption) still give an image, as in Pillow,
         * except a truncated file, which Pillow refuses too. */
        const char *msg = tjGetErrorStr2(d->tj);
        if (tjGetErrorCode(d->tj) != TJERR_WARNING || strstr(msg, "Premature end"))
            return vit_fail(codec_status(VIT_ERR_FORMAT), "%s: corrupt JPEG: %s", name, msg);
    }
    out->w = sw;
    out->h = sh;
    out->c = channels;
    if (to_gray && !cmyk) {
        size_t n = (size_t)sw * sh;
        uint8_t *p = out->data;
        for (size_t i = 0; i < n; i++) p[i] = vit_rgb_to_gray(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
    }
    if (cmyk) {
        /* Adobe CMYK is stored inverted; Pillow's CMYK->RGB is then c * k / 255. */
        size_t n = (size_t)sw * sh;
        uint8_t *p = out->data;
        for (size_t i = 0; i < n; i++) {
            unsigned k = p[4 * i + 3];
            uint8_t r = (uint8_t)((p[4 * i] * k + 127) / 255), g = (uint8_t)((p[4 * i + 1] * k + 127) / 255),
                    b = (uint8_t)((p[4 * i + 2] * k + 127) / 255);
            if (channels == 1) {
                p[i] = vit_rgb_to_gray(r, g, b);
            } else {
                p[3 * i] = r;
                p[3 * i + 1] = g;
                p[3 * i + 2] = b;
            }
        }
    }
    return VIT_OK;
}

/* ---------------------------------------------------------------------- PNG */
typedef struct png_src {
    const uint8_t *data;
    size_t size, pos;
    char *msg; /* the decoder's: it must outlive the longjmp */
} png_src;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_src *src = png_get_error_ptr(png);
    snprintf(src->msg, sizeof ((vit_decoder *)0)->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* ancillary-chunk trouble: the pixels are still good */
}

static void png_read_mem(png_structp png, png_bytep dst, size_t n) {
    png_src *src = png_get_io_ptr(png);
    if (n > src->size - src->pos) png_error(png, "file is truncated");
    memcpy(dst, src->data + src->pos, n);
    src->pos += n;
}

static vit_status decode_png(vit_decoder *d, const char *name, const uint8_t *data, size_t size, int channels,
                             vit_pixbuf *out) {
    png_src src = {data, size, 0, d->msg};
    d->msg[0] = '\0';
    errno = 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!png) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: cannot create a PNG reader", name);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: cannot create a PNG reader", name);
    }
    /* Everything below that can fail jumps back here. What the handler reads
     * (png, info, d->msg) is not changed after setjmp in this frame, so no
     * volatile is needed. */
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return vit_fail(codec_status(VIT_ERR_FORMAT), "%s: corrupt PNG: %s", name, d->msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff); /* our own pixel-count check below */
    /* Only IHDR, PLTE, tRNS and IDAT matter for the pixels. libpng would
     * read every other known chunk (text, ICC profiles, ...) into a buffer
     * of the length its header claims: a 2 GiB tEXt length in a 100-byte
     * file would be a 2 GiB allocation. Skipped, they are never held. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(png, info);

    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (check_dims(name, "PNG", w, h) != VIT_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return VIT_ERR_FORMAT;
    }
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    /* Deflate expands at most 1032:1, so a file this small cannot hold the
     * pixels its header claims: refuse it before allocating them (libpng
     * would only find out at the end of the data). */
    uint64_t raw_bytes = (uint64_t)w * h * png_get_channels(png, info) * (uint64_t)depth / 8;
    if (raw_bytes / 1032 > size) {
        png_destroy_read_struct(&png, &info, NULL);
        return vit_fail(VIT_ERR_FORMAT, "%s: a PNG of %zu bytes cannot hold the %u x %u pixels its header claims "
                        "(truncated?)", name, size, (unsigned)w, (unsigned)h);
    }
    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_set_palette_to_rgb(png);
        /* A tRNS chunk makes the expansion RGBA: drop that alpha too, as
         * Pillow's convert('RGB') of a palette image with transparency does. */
        if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    }
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png); /* high byte, as Pillow's ";16B" raw modes */
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    int gray = !(color & PNG_COLOR_MASK_COLOR) && color != PNG_COLOR_TYPE_PALETTE;
    if (gray && channels == 3) png_set_gray_to_rgb(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int got_c = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((got_c != 1 && got_c != 3) || rowbytes != (size_t)w * got_c)
        png_error(png, "unexpected pixel layout after conversion");
    if (vit_pixbuf_reserve(out, (size_t)w * h * got_c) != VIT_OK) png_error(png, "out of memory");
    /* What png_read_image does, without its table of row pointers: for a
     * 1-pixel-wide image that table would be 8 times the pixels. */
    for (int pass = 0; pass < passes; pass++)
        for (png_uint_32 y = 0; y < h; y++) png_read_row(png, out->data + (size_t)y * rowbytes, NULL);
    /* The end chunk is not needed for the pixels; a file cut after the image
     * data is accepted, as Pillow does. */
    png_destroy_read_struct(&png, &info, NULL);

    out->w = (int)w;
    out->h = (int)h;
    out->c = channels;
    if (got_c == 3 && channels == 1) {
        size_t n = (size_t)w * h;
        for (size_t i = 0; i < n; i++)
            out->data[i] = vit_rgb_to_gray(out->data[3 * i], out->data[3 * i + 1], out->data[3 * i + 2]);
    }
    return VIT_OK;
}

/* ------------------------------------------------------------------ dispatch */
static const char *sniff_other(const uint8_t *p, size_t n) {
    if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) return "a GIF";
    if (n >= 2 && p[0] == 'B' && p[1] == 'M') return "a BMP";
    if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) return "a WebP";
    if (n >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4))) return "a TIFF";
    if (n == 0) return "an empty";
    return NULL;
}

vit_status vit_image_decode(vit_decoder *d, const char *name, const uint8_t *data, size_t size, int channels,
                            int min_side, vit_pixbuf *out) {
    VIT_CHECK_ARG(channels == 1 || channels == 3, "%s: decode to %d channels (1 or 3 accepted)", name, channels);
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        return decode_jpeg(d, name, data, size, channels, min_side, out);
    if (size >= 8 && png_sig_cmp(data, 0, 8) == 0) return decode_png(d, name, data, size, channels, out);
    const char *other = sniff_other(data, size);
    if (other) return vit_fail(VIT_ERR_FORMAT, "%s: %s file, not JPEG or PNG", name, other);
    return vit_fail(VIT_ERR_FORMAT, "%s: not a JPEG or PNG file (first bytes %02x %02x %02x %02x)", name,
                    size > 0 ? data[0] : 0, size > 1 ? data[1] : 0, size > 2 ? data[2] : 0,
                    size > 3 ? data[3] : 0);
}

vit_status vit_image_read(vit_decoder *d, const char *path, int channels, int min_side, vit_pixbuf *out) {
    size_t size = 0;
    VIT_TRY(vit_read_file(path, VIT_IMAGE_MAX_FILE, &d->file, &d->file_cap, &size));
    return vit_image_decode(d, path, d->file, size, channels, min_side, out);
}

/* ------------------------------------------------------------------ writing */
typedef struct png_out {
    const uint8_t *pixels;
    int w, h, c;
    char msg[256];
} png_out;

static void png_w_error(png_structp png, png_const_charp msg) {
    png_out *o = png_get_error_ptr(png);
    snprintf(o->msg, sizeof o->msg, "%s", msg);
    png_longjmp(png, 1);
}

static vit_status png_write_cb(FILE *f, void *user) {
    png_out *o = user;
    errno = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, o, png_w_error, png_on_warning);
    if (!png) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "cannot create a PNG writer");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "cannot create a PNG writer");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return vit_fail(codec_status(VIT_ERR_IO), "PNG encoding: %s", o->msg);
    }
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)o->w, (png_uint_32)o->h, 8, types[o->c], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < o->h; y++) png_write_row(png, o->pixels + (size_t)y * o->w * o->c);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return VIT_OK;
}

vit_status vit_png_write(const char *path, const uint8_t *pixels, int w, int h, int channels) {
    VIT_CHECK_ARG(path && *path, "vit_png_write: path is NULL or empty");
    VIT_CHECK_ARG(pixels, "vit_png_write %s: pixels is NULL", path);
    VIT_CHECK_ARG(w > 0 && h > 0 && (int64_t)w * h <= VIT_IMAGE_MAX_PIXELS, "vit_png_write %s: bad size %d x %d",
                  path, w, h);
    VIT_CHECK_ARG(channels >= 1 && channels <= 4, "vit_png_write %s: %d channels (1..4 accepted)", path, channels);
    png_out o = {pixels, w, h, channels, ""};
    return vit_atomic_write(path, png_write_cb, &o);
}
