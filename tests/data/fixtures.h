/* Fixture helpers shared by the data tests: temporary folders, the Python
 * generator, and images written with libpng / libjpeg-turbo directly (not
 * through libvit, so a codec bug cannot hide in its own fixtures). */
#ifndef VIT_TEST_DATA_FIXTURES_H
#define VIT_TEST_DATA_FIXTURES_H

#include <check.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "vit/vit.h"

static const char *fx_python = "/usr/bin/python3";

#define FX_OK(expr)                                                                                   \
    do {                                                                                              \
        vit_status fx_s_ = (expr);                                                                    \
        ck_assert_msg(fx_s_ == VIT_OK, "%s -> %s: %s", #expr, vit_status_string(fx_s_), vit_last_error()); \
    } while (0)

/* expr must fail with status and a message containing needle. */
#define FX_FAILS(expr, status, needle)                                                                \
    do {                                                                                              \
        vit_status fx_s_ = (expr);                                                                    \
        ck_assert_msg(fx_s_ == (status), "%s -> %s (%s), expected %s", #expr, vit_status_string(fx_s_), \
                      vit_last_error(), vit_status_string(status));                                   \
        ck_assert_msg(strstr(vit_last_error(), (needle)) != NULL, "%s: message '%s' lacks '%s'", #expr, \
                      vit_last_error(), (needle));                                                    \
    } while (0)

static inline char *fx_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/vit-data-test-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    ck_assert_msg(d != NULL, "mkdtemp failed");
    return strdup(d);
}

static inline void fx_rm(const char *dir) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static inline char *fx_path(const char *dir, const char *name) {
    if (!dir || !name) abort(); /* also quiets a GCC -O3 sanitizer false positive */
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static inline void fx_mkdir(const char *dir, const char *name) {
    char *p = fx_path(dir, name);
    ck_assert_msg(mkdir(p, 0755) == 0, "mkdir %s", p);
    free(p);
}

/* Runs tests/data/<script> with arguments; the test fails if it does. */
static inline void fx_python_run(const char *script, const char *args) {
    const char *src = getenv("VIT_SOURCE_ROOT");
    ck_assert_msg(src != NULL, "VIT_SOURCE_ROOT is not set (run through meson test)");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/data/%s' %s", fx_python, src, script, args);
    ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

static inline void fx_generate(const char *what, const char *dir) {
    char args[1200];
    snprintf(args, sizeof args, "%s '%s'", what, dir);
    fx_python_run("gen_fixtures.py", args);
}

static inline void fx_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static inline unsigned char *fx_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* A smooth-ish test picture with some texture, [h, w, 3]. */
static inline unsigned char *fx_picture(int w, int h, unsigned seed) {
    unsigned char *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned r = (unsigned)(x * 255 / (w > 1 ? w - 1 : 1)), g = (unsigned)(y * 255 / (h > 1 ? h - 1 : 1));
            unsigned n = (unsigned)(x * 7919 + y * 104729 + seed * 31337);
            n ^= n >> 13;
            n *= 0x5bd1e995u;
            n ^= n >> 15;
            unsigned char *q = p + ((size_t)y * w + x) * 3;
            q[0] = (unsigned char)r;
            q[1] = (unsigned char)((g + (n & 63)) & 255);
            q[2] = (unsigned char)(((x / 8 + y / 8) & 1) ? 200 : 40);
        }
    return p;
}

/* Writes rows of any PNG color type / depth with libpng. pixels are packed
 * samples as libpng expects for that type (16-bit big-endian). */
static inline void fx_png(const char *path, int w, int h, int color, int depth, const unsigned char *pixels,
                          size_t rowbytes, int interlace, const png_color *palette, int npalette) {
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(!setjmp(png_jmpbuf(png)));
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, npalette);
    png_write_info(png, info);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)pixels + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
}

static inline void fx_png_rgb(const char *path, int w, int h, const unsigned char *rgb) {
    fx_png(path, w, h, PNG_COLOR_TYPE_RGB, 8, rgb, (size_t)w * 3, 0, NULL, 0);
}

/* JPEG with TurboJPEG; pf TJPF_RGB or TJPF_GRAY. */
static inline void fx_jpeg(const char *path, int w, int h, const unsigned char *pixels, int pf, int quality) {
    tjhandle tj = tjInitCompress();
    unsigned char *out = NULL;
    unsigned long size = 0;
    int r = tjCompress2(tj, pixels, w, 0, h, pf, &out, &size, pf == TJPF_GRAY ? TJSAMP_GRAY : TJSAMP_420, quality, 0);
    ck_assert_msg(r == 0, "tjCompress2: %s", tjGetErrorStr2(tj));
    fx_write(path, out, size);
    tjFree(out);
    tjDestroy(tj);
}

static inline vit_context *fx_ctx(void) {
    vit_context *ctx;
    FX_OK(vit_context_create(&ctx));
    return ctx;
}

/* The tests' main: argv[1] names the Python interpreter for the fixture
 * scripts; exit status 1 when any check failed. */
static inline int fx_main(int argc, char **argv, Suite *suite) {
    if (argc > 1) fx_python = argv[1];
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

#endif
