/* JPEG / PNG decoding, the resize path against Pillow, PNG writing, and
 * malformed files of both formats. */
#include <math.h>

#include "fixtures.h"
#include "io/image.h"

static char *dir;

static void setup(void) { dir = fx_tmpdir(); }
static void teardown(void) {
    fx_rm(dir);
    free(dir);
}

static vit_status decode_file(const char *path, int channels, int min_side, vit_pixbuf *out) {
    vit_decoder d;
    vit_decoder_init(&d);
    vit_status s = vit_image_read(&d, path, channels, min_side, out);
    vit_decoder_release(&d);
    return s;
}

/* ------------------------------------------------------------------- PNG */
START_TEST(png_variants) {
    const int w = 13, h = 7;
    unsigned char rgb[13 * 7 * 3], rgba[13 * 7 * 4], gray[13 * 7], ga[13 * 7 * 2], rgb16[13 * 7 * 6], g16[13 * 7 * 2],
        pal[13 * 7], bits[7 * 2];
    png_color palette[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    for (int i = 0; i < w * h; i++) {
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = (unsigned char)(i * 3 + c * 80);
        for (int c = 0; c < 3; c++) rgba[4 * i + c] = rgb[3 * i + c];
        rgba[4 * i + 3] = (unsigned char)(i * 11); /* alpha must be dropped, not composited */
        gray[i] = (unsigned char)(i * 2);
        ga[2 * i] = gray[i];
        ga[2 * i + 1] = 7;
        for (int c = 0; c < 3; c++) {
            rgb16[6 * i + 2 * c] = rgb[3 * i + c]; /* high byte */
            rgb16[6 * i + 2 * c + 1] = 0xAB;
        }
        g16[2 * i] = gray[i];
        g16[2 * i + 1] = 0x77;
        pal[i] = (unsigned char)(i % 4);
    }
    for (int y = 0; y < h; y++) { /* 1-bit gray: alternating columns */
        bits[2 * y] = 0xAA;
        bits[2 * y + 1] = 0xA8;
    }
    struct {
        const char *name;
        int color, depth, interlace;
        const unsigned char *px;
        size_t rowbytes;
    } cases[] = {
        {"rgb.png", PNG_COLOR_TYPE_RGB, 8, 0, rgb, w * 3},
        {"rgb_interlaced.png", PNG_COLOR_TYPE_RGB, 8, 1, rgb, w * 3},
        {"rgba.png", PNG_COLOR_TYPE_RGBA, 8, 0, rgba, w * 4},
        {"gray.png", PNG_COLOR_TYPE_GRAY, 8, 0, gray, w},
        {"ga.png", PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, ga, w * 2},
        {"rgb16.png", PNG_COLOR_TYPE_RGB, 16, 0, rgb16, w * 6},
        {"g16.png", PNG_COLOR_TYPE_GRAY, 16, 0, g16, w * 2},
        {"pal.png", PNG_COLOR_TYPE_PALETTE, 8, 0, pal, w},
        {"bits.png", PNG_COLOR_TYPE_GRAY, 1, 0, bits, 2},
    };
    vit_pixbuf out = {0};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char *p = fx_path(dir, cases[k].name);
        fx_png(p, w, h, cases[k].color, cases[k].depth, cases[k].px, cases[k].rowbytes, cases[k].interlace,
               cases[k].color == PNG_COLOR_TYPE_PALETTE ? palette : NULL, 4);
        for (int ch = 1; ch <= 3; ch += 2) {
            FX_OK(decode_file(p, ch, 0, &out));
            ck_assert_int_eq(out.w, w);
            ck_assert_int_eq(out.h, h);
            ck_assert_int_eq(out.c, ch);
            for (int i = 0; i < w * h; i++) {
                unsigned char e[3];
                int is_gray = cases[k].color == PNG_COLOR_TYPE_GRAY || cases[k].color == PNG_COLOR_TYPE_GRAY_ALPHA;
                if (cases[k].color == PNG_COLOR_TYPE_PALETTE) {
                    e[0] = palette[i % 4].red, e[1] = palette[i % 4].green, e[2] = palette[i % 4].blue;
                } else if (cases[k].depth == 1) {
                    int x = i % w;
                    e[0] = e[1] = e[2] = (x % 2 == 0) ? 255 : 0;
                } else if (is_gray) {
                    e[0] = e[1] = e[2] = gray[i];
                } else {
                    memcpy(e, rgb + 3 * i, 3);
                }
                if (ch == 3) {
                    ck_assert_msg(!memcmp(out.data + 3 * i, e, 3), "%s pixel %d: %d %d %d vs %d %d %d", cases[k].name,
                                  i, out.data[3 * i], out.data[3 * i + 1], out.data[3 * i + 2], e[0], e[1], e[2]);
                } else {
                    unsigned char g = is_gray || cases[k].depth == 1 ? e[0] : vit_rgb_to_gray(e[0], e[1], e[2]);
                    ck_assert_msg(out.data[i] == g, "%s gray pixel %d: %d vs %d", cases[k].name, i, out.data[i], g);
                }
            }
        }
        free(p);
    }
    vit_pixbuf_release(&out);
}
END_TEST

START_TEST(png_write_roundtrip) {
    unsigned char *pic = fx_picture(31, 17, 1);
    char *p = fx_path(dir, "out.png");
    FX_OK(vit_png_write(p, pic, 31, 17, 3));
    vit_pixbuf out = {0};
    FX_OK(decode_file(p, 3, 0, &out));
    ck_assert(!memcmp(out.data, pic, 31 * 17 * 3));
    /* And through the public call, from a tensor. */
    vit_context *ctx = fx_ctx();
    vit_tensor *t;
    int64_t shape[3] = {17, 31, 3};
    FX_OK(vit_tensor_create(ctx, VIT_DTYPE_U8, 3, shape, &t));
    FX_OK(vit_tensor_write(t, pic, 31 * 17 * 3));
    FX_OK(vit_image_write_png(p, t));
    FX_OK(decode_file(p, 3, 0, &out));
    ck_assert(!memcmp(out.data, pic, 31 * 17 * 3));
    vit_tensor_destroy(t);
    int64_t bad[3] = {4, 4, 2};
    FX_OK(vit_tensor_create(ctx, VIT_DTYPE_U8, 3, bad, &t));
    FX_FAILS(vit_image_write_png(p, t), VIT_ERR_SHAPE, "C = 1, 3 or 4");
    vit_tensor_destroy(t);
    char *nodir = fx_path(dir, "missing/out.png");
    FX_FAILS(vit_png_write(nodir, pic, 31, 17, 3), VIT_ERR_IO, "missing/out.png");
    free(nodir);
    vit_context_destroy(ctx);
    vit_pixbuf_release(&out);
    free(pic);
    free(p);
}
END_TEST

/* ------------------------------------------------------------------ JPEG */
START_TEST(jpeg_decode_and_dct_scaling) {
    unsigned char *pic = fx_picture(2000, 1500, 2);
    char *p = fx_path(dir, "big.jpg");
    fx_jpeg(p, 2000, 1500, pic, TJPF_RGB, 90);
    vit_pixbuf out = {0};
    FX_OK(decode_file(p, 3, 0, &out));
    ck_assert_int_eq(out.w, 2000);
    ck_assert_int_eq(out.h, 1500);
    /* 224 target: 1/2 keeps both sides >= 448, 1/4 (500 x 375) would not. */
    FX_OK(decode_file(p, 3, 224, &out));
    ck_assert_int_eq(out.w, 1000);
    ck_assert_int_eq(out.h, 750);
    FX_OK(decode_file(p, 3, 100, &out)); /* 1/8 would leave 188 < 200 */
    ck_assert_int_eq(out.w, 500);
    ck_assert_int_eq(out.h, 375);
    FX_OK(decode_file(p, 3, 90, &out));
    ck_assert_int_eq(out.w, 250);
    ck_assert_int_eq(out.h, 188);
    /* A small image is never scaled. */
    FX_OK(decode_file(p, 1, 1000, &out));
    ck_assert_int_eq(out.w, 2000);
    ck_assert_int_eq(out.c, 1);
    free(p);
    /* Gray JPEG to RGB replicates the channel. */
    unsigned char g[64 * 48];
    for (int i = 0; i < 64 * 48; i++) g[i] = (unsigned char)(i % 64 * 4);
    p = fx_path(dir, "gray.JPEG");
    fx_jpeg(p, 64, 48, g, TJPF_GRAY, 95);
    FX_OK(decode_file(p, 3, 0, &out));
    for (int i = 0; i < 64 * 48; i++) {
        ck_assert_int_eq(out.data[3 * i], out.data[3 * i + 1]);
        ck_assert_int_eq(out.data[3 * i], out.data[3 * i + 2]);
        ck_assert_int_le(abs(out.data[3 * i] - g[i]), 8);
    }
    free(p);
    vit_pixbuf_release(&out);
    free(pic);
}
END_TEST

/* ----------------------------------------------------- the resize path vs Pillow */
/* Loads path through vit_image_load (resize only, no normalisation) and
 * compares with Pillow's open().convert().resize(); returns the largest
 * difference in 8-bit units, and the mean one in *mean when mean is given. */
static int compare_with_pillow_mean(const char *path, int size, vit_resize_mode mode, int channels, double *mean) {
    static const char *modes[] = {"bilinear", "bicubic", "nearest"};
    char *ref = fx_path(dir, "ref.raw"), args[2048];
    snprintf(args, sizeof args, "'%s' '%s' %d %s %s", path, ref, size, modes[mode], channels == 3 ? "RGB" : "L");
    fx_python_run("pil_resize.py", args);
    size_t n;
    unsigned char *want = fx_read(ref, &n);
    ck_assert_uint_eq(n, (size_t)size * size * channels);

    vit_context *ctx = fx_ctx();
    vit_transform *tf;
    FX_OK(vit_transform_create(ctx, &tf));
    FX_OK(vit_transform_set_int(tf, VIT_TF_SIZE, size));
    FX_OK(vit_transform_set_int(tf, VIT_TF_RESIZE, mode));
    FX_OK(vit_transform_set_int(tf, VIT_TF_CHANNELS, channels));
    vit_tensor *t;
    int64_t shape[3] = {channels, size, size};
    FX_OK(vit_tensor_create(ctx, VIT_DTYPE_F32, 3, shape, &t));
    FX_OK(vit_image_load(tf, path, t));
    void *d;
    FX_OK(vit_tensor_data(t, &d));
    const float *got = d;
    int maxdiff = 0;
    double sum = 0;
    for (int c = 0; c < channels; c++)
        for (int i = 0; i < size * size; i++) {
            sum += fabs(got[(size_t)c * size * size + i] * 255.0 - want[(size_t)i * channels + c]);
            int v = (int)lrintf(got[(size_t)c * size * size + i] * 255.0f);
            int diff = abs(v - want[(size_t)i * channels + c]);
            if (diff > maxdiff) maxdiff = diff;
        }
    if (mean) *mean = sum / ((double)channels * size * size);
    vit_tensor_destroy(t);
    vit_transform_destroy(tf);
    vit_context_destroy(ctx);
    free(want);
    free(ref);
    return maxdiff;
}

static int compare_with_pillow(const char *path, int size, vit_resize_mode mode, int channels) {
    return compare_with_pillow_mean(path, size, mode, channels, NULL);
}

/* Real photographs (Debian's python3-skimage) through the seed's resize path:
 * PNGs identical to Pillow's, JPEGs within one level where no DCT scaling is
 * involved. hubble_deep_field.jpg (1000 x 872) is decoded at half size in the
 * DCT for a 224 target, which Pillow does not do: its mean difference stays
 * small. truncated.jpg is an error naming the file. Skipped without skimage. */
static const char skimage_dir[] = "/usr/lib/python3/dist-packages/skimage/data";

START_TEST(real_photos_match_pillow) {
    char path[512];
    snprintf(path, sizeof path, "%s/chelsea.png", skimage_dir);
    if (access(path, R_OK) != 0) return; /* python3-skimage not installed */
    static const char *const pngs[] = {"chelsea.png", "astronaut.png", "coffee.png"};
    for (size_t i = 0; i < sizeof pngs / sizeof *pngs; i++) {
        snprintf(path, sizeof path, "%s/%s", skimage_dir, pngs[i]);
        ck_assert_msg(compare_with_pillow(path, 224, VIT_RESIZE_BILINEAR, 3) == 0, "%s", pngs[i]);
        ck_assert_msg(compare_with_pillow(path, 64, VIT_RESIZE_BICUBIC, 1) == 0, "%s gray", pngs[i]);
    }
    snprintf(path, sizeof path, "%s/rocket.jpg", skimage_dir);
    ck_assert_int_le(compare_with_pillow(path, 224, VIT_RESIZE_BILINEAR, 3), 1);
    snprintf(path, sizeof path, "%s/hubble_deep_field.jpg", skimage_dir);
    double mean;
    compare_with_pillow_mean(path, 224, VIT_RESIZE_BILINEAR, 3, &mean);
    ck_assert_msg(mean < 3.0, "hubble_deep_field.jpg: mean difference %g levels", mean);

    snprintf(path, sizeof path, "%s/truncated.jpg", skimage_dir);
    vit_context *ctx = fx_ctx();
    vit_transform *tf;
    FX_OK(vit_transform_create(ctx, &tf));
    vit_tensor *t;
    int64_t shape[3] = {3, 224, 224};
    FX_OK(vit_tensor_create(ctx, VIT_DTYPE_F32, 3, shape, &t));
    vit_status st = vit_image_load(tf, path, t);
    ck_assert_int_ne(st, VIT_OK);
    ck_assert_msg(strstr(vit_last_error(), "truncated.jpg") != NULL, "message: %s", vit_last_error());
    vit_tensor_destroy(t);
    vit_transform_destroy(tf);
    vit_context_destroy(ctx);
}
END_TEST

START_TEST(resize_matches_pillow) {
    unsigned char *pic = fx_picture(500, 375, 3);
    char *png = fx_path(dir, "pic.png"), *jpg = fx_path(dir, "pic.jpg");
    fx_png_rgb(png, 500, 375, pic);
    fx_jpeg(jpg, 500, 375, pic, TJPF_RGB, 90);
    /* PNG: identical pixels for every mode, down and up, RGB and gray. */
    ck_assert_int_eq(compare_with_pillow(png, 224, VIT_RESIZE_BILINEAR, 3), 0);
    ck_assert_int_eq(compare_with_pillow(png, 224, VIT_RESIZE_BICUBIC, 3), 0);
    ck_assert_int_eq(compare_with_pillow(png, 224, VIT_RESIZE_NEAREST, 3), 0);
    ck_assert_int_eq(compare_with_pillow(png, 100, VIT_RESIZE_BILINEAR, 1), 0);
    ck_assert_int_eq(compare_with_pillow(png, 640, VIT_RESIZE_BILINEAR, 3), 0);
    /* JPEG: the same libjpeg-turbo decoder as Pillow; no DCT scaling at this
     * size (500 x 375 to 224), so the pixels match too. */
    ck_assert_int_le(compare_with_pillow(jpg, 224, VIT_RESIZE_BILINEAR, 3), 1);
    ck_assert_int_le(compare_with_pillow(jpg, 224, VIT_RESIZE_BICUBIC, 1), 1);
    free(pic);
    free(png);
    free(jpg);
}
END_TEST

/* ----------------------------------------------------------- malformed files */
static void expect_format_error(const char *path, const char *needle) {
    vit_pixbuf out = {0};
    vit_status s = decode_file(path, 3, 0, &out);
    ck_assert_msg(s == VIT_ERR_FORMAT, "%s: %s (%s)", path, vit_status_string(s), vit_last_error());
    ck_assert_msg(strstr(vit_last_error(), path) != NULL, "message '%s' does not name %s", vit_last_error(), path);
    if (needle) ck_assert_msg(strstr(vit_last_error(), needle) != NULL, "message '%s' lacks '%s'", vit_last_error(), needle);
    vit_pixbuf_release(&out);
}

static uint32_t crc_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

START_TEST(malformed_files) {
    char *p = fx_path(dir, "x.png");
    fx_write(p, "GIF89a\x01\x00\x01\x00", 10);
    expect_format_error(p, "GIF");
    fx_write(p, "hello world", 11);
    expect_format_error(p, "not a JPEG or PNG");
    fx_write(p, "", 0);
    expect_format_error(p, "empty");

    /* Truncated PNG and JPEG at many cut points. */
    unsigned char *pic = fx_picture(64, 64, 4);
    char *png = fx_path(dir, "ok.png"), *jpg = fx_path(dir, "ok.jpg");
    fx_png_rgb(png, 64, 64, pic);
    fx_jpeg(jpg, 64, 64, pic, TJPF_RGB, 90);
    size_t npng, njpg;
    unsigned char *bpng = fx_read(png, &npng), *bjpg = fx_read(jpg, &njpg);
    for (size_t cut = 1; cut < npng - 12; cut += 7) { /* IEND (12 bytes) is not needed */
        fx_write(p, bpng, cut);
        expect_format_error(p, NULL);
    }
    char *pj = fx_path(dir, "x.jpg");
    for (size_t cut = 3; cut < njpg - 2; cut += 11) {
        fx_write(pj, bjpg, cut);
        expect_format_error(pj, NULL);
    }

    /* Lying header: IHDR of 100000 x 100000 with a correct CRC. */
    unsigned char hdr[33];
    memcpy(hdr, bpng, 33);
    unsigned char dim[4] = {0x00, 0x01, 0x86, 0xA0};
    memcpy(hdr + 16, dim, 4);
    memcpy(hdr + 20, dim, 4);
    uint32_t crc = crc_of(hdr + 12, 17);
    hdr[29] = (unsigned char)(crc >> 24), hdr[30] = (unsigned char)(crc >> 16), hdr[31] = (unsigned char)(crc >> 8),
    hdr[32] = (unsigned char)crc;
    unsigned char *big = malloc(npng);
    memcpy(big, bpng, npng);
    memcpy(big, hdr, 33);
    fx_write(p, big, npng);
    expect_format_error(p, "claims 100000 x 100000");
    /* Lying JPEG: SOF0 claims 60000 x 60000. */
    memcpy(big, bjpg, njpg);
    for (size_t i = 2; i + 9 < njpg; i++)
        if (big[i] == 0xFF && big[i + 1] == 0xC0) {
            big[i + 5] = 0xEA, big[i + 6] = 0x60, big[i + 7] = 0xEA, big[i + 8] = 0x60;
            break;
        }
    fx_write(pj, big, njpg);
    expect_format_error(pj, "claims 60000 x 60000");

    /* Corruption: random bytes flipped must never crash (the sanitizer build
     * checks memory); each decode either succeeds or reports the file. */
    unsigned seed = 12345;
    for (int iter = 0; iter < 300; iter++) {
        int is_png = iter % 2;
        size_t n = is_png ? npng : njpg;
        memcpy(big, is_png ? bpng : bjpg, n);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = 2 + (seed >> 8) % (n - 2);
            big[at] ^= (unsigned char)(1u << (seed >> 28 & 7));
        }
        const char *target = is_png ? p : pj;
        fx_write(target, big, n);
        vit_pixbuf out = {0};
        vit_status s = decode_file(target, 3, 0, &out);
        ck_assert_msg(s == VIT_OK || s == VIT_ERR_FORMAT, "%s", vit_last_error());
        if (s != VIT_OK) ck_assert(strstr(vit_last_error(), target) != NULL);
        vit_pixbuf_release(&out);
    }

    vit_pixbuf out = {0};
    char *missing = fx_path(dir, "nope.png");
    FX_FAILS(decode_file(missing, 3, 0, &out), VIT_ERR_IO, "nope.png");
    free(missing);
    free(big);
    free(bpng);
    free(bjpg);
    free(pic);
    free(png);
    free(jpg);
    free(pj);
    free(p);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("codecs");
    TCase *tc = tcase_create("codecs");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, png_variants);
    tcase_add_test(tc, png_write_roundtrip);
    tcase_add_test(tc, jpeg_decode_and_dct_scaling);
    tcase_add_test(tc, resize_matches_pillow);
    tcase_add_test(tc, real_photos_match_pillow);
    tcase_add_test(tc, malformed_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return fx_main(argc, argv, suite()); }
