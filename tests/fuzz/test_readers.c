/* The readers' limits, each against a crafted input that claims far more
 * than it holds (a 30-gigapixel PNG, a 4 GiB safetensors header, a pickle
 * of a million values...): each must be a clean error naming the file and
 * the limit, before anything of the claimed size is allocated. Also what
 * fuzzing found that is not a crash (a refused valid image). */
#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

#include "fuzz.h"
#include "io/image.h"
#include "io/json.h"
#include "io/pickle.h"
#include "io/safetensors.h"

#define OK(expr)                                                                                     \
    do {                                                                                             \
        vit_status ok_s_ = (expr);                                                                   \
        ck_assert_msg(ok_s_ == VIT_OK, "%s -> %s: %s", #expr, vit_status_string(ok_s_), vit_last_error()); \
    } while (0)

/* expr fails with status and a message holding every needle given. */
#define FAILS(expr, status, ...)                                                                     \
    do {                                                                                             \
        vit_status f_s_ = (expr);                                                                    \
        ck_assert_msg(f_s_ == (status), "%s -> %s (%s), expected %s", #expr, vit_status_string(f_s_), \
                      vit_last_error(), vit_status_string(status));                                  \
        const char *f_needles_[] = {__VA_ARGS__};                                                    \
        for (size_t f_i_ = 0; f_i_ < sizeof f_needles_ / sizeof *f_needles_; f_i_++)                 \
            ck_assert_msg(strstr(vit_last_error(), f_needles_[f_i_]) != NULL, "%s: message '%s' lacks '%s'", \
                          #expr, vit_last_error(), f_needles_[f_i_]);                                \
    } while (0)

static char dir[512];

static void setup(void) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/vit_readers_XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) { vit_fuzz_rm_rf(dir); }

static const char *in_dir(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

static void spit(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* ------------------------------------------------------------------ images */
static size_t png_chunk(uint8_t *out, const char *type, const uint8_t *body, uint32_t n) {
    out[0] = (uint8_t)(n >> 24), out[1] = (uint8_t)(n >> 16), out[2] = (uint8_t)(n >> 8), out[3] = (uint8_t)n;
    memcpy(out + 4, type, 4);
    if (n) memcpy(out + 8, body, n);
    uint32_t crc = (uint32_t)crc32(0, out + 4, 4 + n);
    out[8 + n] = (uint8_t)(crc >> 24), out[9 + n] = (uint8_t)(crc >> 16), out[10 + n] = (uint8_t)(crc >> 8);
    out[11 + n] = (uint8_t)crc;
    return 12 + n;
}

/* A well-formed PNG header for w x h RGB, one row of image data, IEND. */
static size_t lying_png(uint8_t *out, uint32_t w, uint32_t h) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                        (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h, 8, 2, 0, 0, 0};
    uint8_t row[64] = {0}, z[128];
    uLongf zn = sizeof z;
    ck_assert_int_eq(compress(z, &zn, row, sizeof row), Z_OK);
    size_t n = 8;
    memcpy(out, sig, 8);
    n += png_chunk(out + n, "IHDR", ihdr, 13);
    n += png_chunk(out + n, "IDAT", z, (uint32_t)zn);
    n += png_chunk(out + n, "IEND", NULL, 0);
    return n;
}

START_TEST(png_30_gigapixels) {
    uint8_t png[256];
    size_t n = lying_png(png, 200000, 150000);
    vit_decoder d;
    vit_pixbuf out = {0};
    vit_decoder_init(&d);
    FAILS(vit_image_decode(&d, "huge.png", png, n, 3, 0, &out), VIT_ERR_FORMAT, "huge.png",
          "200000 x 150000", "134217728");
    /* refused from the header: neither the pixels nor the row table exist */
    ck_assert_ptr_null(out.data);
    ck_assert_uint_eq(out.cap, 0);
    /* the same from a file: the message names the path */
    char path[600];
    spit(in_dir(path, sizeof path, "huge.png"), png, n);
    FAILS(vit_image_read(&d, path, 1, 0, &out), VIT_ERR_FORMAT, path, "200000 x 150000");
    ck_assert_uint_eq(out.cap, 0);
    /* one pixel over the limit, and 2^31 rows of one pixel */
    n = lying_png(png, 11586, 11586);
    FAILS(vit_image_decode(&d, "over.png", png, n, 3, 0, &out), VIT_ERR_FORMAT, "11586 x 11586");
    n = lying_png(png, 1, 0x7fffffffu);
    FAILS(vit_image_decode(&d, "tall.png", png, n, 3, 0, &out), VIT_ERR_FORMAT, "tall.png");
    /* within the pixel limit, but more than a file this small can hold:
     * deflate expands at most 1032:1 */
    n = lying_png(png, 8000, 8000);
    FAILS(vit_image_decode(&d, "small.png", png, n, 3, 0, &out), VIT_ERR_FORMAT, "small.png", "8000 x 8000",
          "cannot hold");
    ck_assert_uint_eq(out.cap, 0);
    vit_pixbuf_release(&out);
    vit_decoder_release(&d);
}
END_TEST

/* The deflate bound does not refuse the most compressible real image. */
START_TEST(png_compressible) {
    const int w = 4000, h = 3000;
    uint8_t *px = calloc((size_t)w * h, 1);
    ck_assert_ptr_nonnull(px);
    char path[600];
    OK(vit_png_write(in_dir(path, sizeof path, "zeros.png"), px, w, h, 1));
    vit_decoder d;
    vit_pixbuf out = {0};
    vit_decoder_init(&d);
    OK(vit_image_read(&d, path, 1, 0, &out));
    ck_assert_int_eq(out.w, w);
    ck_assert_int_eq(out.h, h);
    ck_assert_int_eq(memcmp(out.data, px, (size_t)w * h), 0);
    vit_pixbuf_release(&out);
    vit_decoder_release(&d);
    free(px);
}
END_TEST

START_TEST(jpeg_4_gigapixels) {
    uint8_t px[8 * 8 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 7);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    ck_assert_int_eq(tjCompress2(tj, px, 8, 0, 8, TJPF_RGB, &jpg, &n, TJSAMP_444, 90, 0), 0);
    /* SOF0: FF C0, length, precision, height, width */
    size_t sof = 0;
    for (size_t i = 2; i + 9 < n && !sof; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) sof = i;
    ck_assert_uint_gt(sof, 0);
    jpg[sof + 5] = 0xFF, jpg[sof + 6] = 0xDC; /* 65500 rows */
    jpg[sof + 7] = 0xFF, jpg[sof + 8] = 0xDC; /* 65500 columns */
    vit_decoder d;
    vit_pixbuf out = {0};
    vit_decoder_init(&d);
    FAILS(vit_image_decode(&d, "huge.jpg", jpg, n, 3, 0, &out), VIT_ERR_FORMAT, "huge.jpg", "65500 x 65500",
          "134217728");
    FAILS(vit_image_decode(&d, "huge.jpg", jpg, n, 1, 16, &out), VIT_ERR_FORMAT, "65500 x 65500");
    ck_assert_uint_eq(out.cap, 0);
    vit_decoder_release(&d);
    tjFree(jpg);
    tjDestroy(tj);
}
END_TEST

/* Palette PNGs with a tRNS chunk (transparency) decode as Pillow's
 * convert('RGB') does: the palette colours, alpha dropped. Fuzzing's seeds
 * found them refused as "unexpected pixel layout". */
START_TEST(png_palette_with_transparency) {
    const char *root = getenv("VIT_SOURCE_ROOT");
    ck_assert_msg(root != NULL, "VIT_SOURCE_ROOT is not set");
    static const char *const files[] = {"palette1.png", "palette2.png", "palette4.png", "palette8.png"};
    static const int colours[] = {2, 4, 6, 6};
    vit_decoder d;
    vit_pixbuf out = {0};
    vit_decoder_init(&d);
    for (int f = 0; f < 4; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/png/%s", root, files[f]);
        for (int channels = 1; channels <= 3; channels += 2) {
            OK(vit_image_read(&d, path, channels, 0, &out));
            ck_assert_int_eq(out.w, 7);
            ck_assert_int_eq(out.h, 5);
            for (int y = 0; y < 5; y++)
                for (int x = 0; x < 7; x++) {
                    /* make_corpus.py: index (x + y) % n, colour i = (40 i, 255 - 40 i, 13 i) */
                    int i = (x + y) % colours[f];
                    uint8_t r = (uint8_t)(40 * i), g = (uint8_t)(255 - 40 * i), b = (uint8_t)(13 * i);
                    const uint8_t *p = out.data + ((size_t)y * 7 + x) * channels;
                    if (channels == 3) {
                        ck_assert_msg(p[0] == r && p[1] == g && p[2] == b, "%s (%d, %d): %d %d %d", files[f], x, y,
                                      p[0], p[1], p[2]);
                    } else {
                        ck_assert_int_eq(p[0], vit_rgb_to_gray(r, g, b));
                    }
                }
        }
    }
    vit_pixbuf_release(&out);
    vit_decoder_release(&d);
}
END_TEST

/* ------------------------------------------------------------- safetensors */
START_TEST(safetensors_4_gib_header) {
    uint8_t buf[16] = {0, 0, 0, 0, 1, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}; /* 2^32 */
    vit_st_file *f = (vit_st_file *)1;
    FAILS(vit_st_open_memory(buf, sizeof buf, "mem.safetensors", &f), VIT_ERR_FORMAT, "mem.safetensors",
          "4294967296");
    ck_assert_ptr_null(f);

    /* A file that really is that long (sparse): the header length passes the
     * size check, so only the limit stops it, before any of it is read. */
    char path[600];
    in_dir(path, sizeof path, "big.safetensors");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    int sparse = ftruncate(fd, ((off_t)1 << 32) + 64) == 0;
    close(fd);
    if (sparse) {
        FAILS(vit_st_open(path, &f), VIT_ERR_FORMAT, path, "4294967296", "limit of 104857600");
        ck_assert_ptr_null(f);
    }
    unlink(path);
}
END_TEST

START_TEST(safetensors_tensor_count) {
    /* 2^20 + 1 members: refused by count, before the table is built */
    const size_t n = ((size_t)1 << 20) + 1;
    size_t cap = 16 + n * 16, len = 8;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    b[len++] = '{';
    for (size_t i = 0; i < n; i++) len += (size_t)snprintf(b + len, cap - len, "%s\"%zx\":0", i ? "," : "", i);
    b[len++] = '}';
    uint64_t h = len - 8;
    for (int i = 0; i < 8; i++) b[i] = (char)(h >> (8 * i));
    vit_st_file *f = (vit_st_file *)1;
    FAILS(vit_st_open_memory(b, len, "many.safetensors", &f), VIT_ERR_FORMAT, "many.safetensors", "1048577",
          "1048576");
    ck_assert_ptr_null(f);
    free(b);
}
END_TEST

START_TEST(json_depth) {
    char deep[301];
    for (int i = 0; i < 150; i++) deep[i] = '[', deep[299 - i] = ']';
    deep[300] = '\0';
    vit_json_doc *doc = (vit_json_doc *)1;
    FAILS(vit_json_parse(deep, 300, NULL, "deep.json", &doc), VIT_ERR_FORMAT, "deep.json", "nesting too deep");
    ck_assert_ptr_null(doc);
    OK(vit_json_parse(deep + 150 - 64, 128, NULL, "ok.json", &doc)); /* exactly the default 64 */
    vit_json_free(doc);
    /* safetensors headers nest at most 8 deep */
    char st[128];
    const char *hdr = "{\"__metadata__\":{\"k\":[[[[[[[[[]]]]]]]]]}}";
    size_t hl = strlen(hdr);
    for (int i = 0; i < 8; i++) st[i] = (char)(i == 0 ? hl : 0);
    memcpy(st + 8, hdr, hl);
    vit_st_file *f;
    FAILS(vit_st_open_memory(st, 8 + hl, "deep.safetensors", &f), VIT_ERR_FORMAT, "deep.safetensors",
          "nesting too deep");
}
END_TEST

/* ------------------------------------------------------------------ pickle */
START_TEST(pickle_limits) {
    /* a list of 2^20 + 1 Nones: one value too many */
    const size_t n = ((size_t)1 << 20) + 1;
    uint8_t *b = malloc(n + 8);
    ck_assert_ptr_nonnull(b);
    size_t len = 0;
    b[len++] = 0x80, b[len++] = 2, b[len++] = ']', b[len++] = '(';
    memset(b + len, 'N', n);
    len += n;
    b[len++] = 'e', b[len++] = '.';
    vit_pickle *p = (vit_pickle *)1;
    FAILS(vit_pickle_load(b, len, "many.pickle", &p), VIT_ERR_FORMAT, "many.pickle", "too many values");
    ck_assert_ptr_null(p);
    /* the list and 2^20 - 1 Nones fit */
    b[len - 4] = 'e', b[len - 3] = '.';
    OK(vit_pickle_load(b, len - 2, "fits.pickle", &p));
    ck_assert_uint_eq(vit_pickle_root(p)->n, n - 2);
    vit_pickle_free(p);
    free(b);

    /* a memo index of 2^31 must not size a 16 GiB memo */
    static const uint8_t memo[] = {0x80, 2, 'N', 'r', 0, 0, 0, 0x80, '.'};
    FAILS(vit_pickle_load(memo, sizeof memo, "memo.pickle", &p), VIT_ERR_FORMAT, "memo.pickle", "memo index");
    /* a byte string claiming 2^62 bytes */
    static const uint8_t str8[] = {0x80, 4, 0x8e, 0, 0, 0, 0, 0, 0, 0, 0x40, 'x', '.'};
    FAILS(vit_pickle_load(str8, sizeof str8, "str8.pickle", &p), VIT_ERR_FORMAT, "str8.pickle", "past the end");
}
END_TEST

/* ------------------------------------------------------------------ datasets */
static vit_context *ctx;

static void ctx_setup(void) {
    setup();
    OK(vit_context_create(&ctx));
    vit_context_set_int(ctx, VIT_CTX_THREADS, 1);
}

static void ctx_teardown(void) {
    vit_context_destroy(ctx);
    teardown();
}

static void idx_pair(const uint8_t *img, size_t ni, const uint8_t *lab, size_t nl) {
    char path[600];
    spit(in_dir(path, sizeof path, "t10k-images-idx3-ubyte"), img, ni);
    spit(in_dir(path, sizeof path, "t10k-labels-idx1-ubyte"), lab, nl);
}

START_TEST(idx_lying_headers) {
    static const uint8_t labels[] = {0, 0, 8, 1, 0, 0, 0, 1, 3};
    vit_dataset *ds = (vit_dataset *)1;
    /* dimensions whose product overflows 64 bits (what fuzzing found) */
    uint8_t img[16 + 20] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    idx_pair(img, sizeof img, labels, sizeof labels);
    FAILS(vit_dataset_open(ctx, dir, VIT_DATA_IDX, VIT_SPLIT_VAL, &ds), VIT_ERR_FORMAT, "t10k-images-idx3-ubyte",
          "4294967295 x 4294967295 x 4294967295", "absurd");
    ck_assert_ptr_null(ds);
    /* 60000 MNIST images claimed, 20 bytes present: refused from the size */
    static const uint8_t mnist[16] = {0, 0, 8, 3, 0, 0, 0xea, 0x60, 0, 0, 0, 28, 0, 0, 0, 28};
    memcpy(img, mnist, 16);
    idx_pair(img, sizeof img, labels, sizeof labels);
    FAILS(vit_dataset_open(ctx, dir, VIT_DATA_IDX, VIT_SPLIT_VAL, &ds), VIT_ERR_FORMAT, "60000 x 28 x 28",
          "truncated", "47040000");
    /* the same claim compressed: read as data arrives, refused at its end */
    char path[600];
    unlink(in_dir(path, sizeof path, "t10k-images-idx3-ubyte"));
    gzFile gz = gzopen(in_dir(path, sizeof path, "t10k-images-idx3-ubyte.gz"), "wb");
    ck_assert_ptr_nonnull(gz);
    ck_assert_int_eq(gzwrite(gz, img, sizeof img), (int)sizeof img);
    gzclose(gz);
    FAILS(vit_dataset_open(ctx, dir, VIT_DATA_IDX, VIT_SPLIT_VAL, &ds), VIT_ERR_FORMAT, "truncated", "47040000");
}
END_TEST

/* ------------------------------------------------------------- checkpoints */
static vit_status zero_fill(void *user, size_t index, void *dst, size_t bytes) {
    (void)user, (void)index;
    memset(dst, 0, bytes);
    return VIT_OK;
}

/* The five tensors configuration inference reads, timm's names, zeros. */
static void write_checkpoint(const char *path, const int64_t shapes[5][4], vit_st_dtype fc1_dtype,
                             const vit_st_meta *meta, size_t n_meta) {
    static const char *const names[5] = {"patch_embed.proj.weight", "pos_embed", "cls_token", "head.weight",
                                         "blocks.0.mlp.fc1.weight"};
    static const int ndim[5] = {4, 3, 3, 2, 2};
    vit_st_entry e[5];
    memset(e, 0, sizeof e);
    for (int i = 0; i < 5; i++) {
        e[i].name = names[i];
        e[i].dtype = i == 4 ? fc1_dtype : VIT_ST_F32;
        e[i].ndim = ndim[i];
        memcpy(e[i].shape, shapes[i], sizeof shapes[i]);
    }
    OK(vit_st_write(path, e, 5, meta, n_meta, zero_fill, NULL));
}

START_TEST(checkpoint_claims_huge_model) {
    char path[600];
    in_dir(path, sizeof path, "huge.safetensors");
    static const int64_t shapes[5][4] = {{8, 3, 4, 4}, {1, 5, 8}, {1, 1, 8}, {3, 8}, {16, 8}};
    static const vit_st_meta meta[] = {{"libvit.kind", "model"}, {"vit.dim", "65536"}, {"vit.depth", "65536"},
                                       {"vit.heads", "1"}, {"vit.mlp_ratio", "64"}};
    write_checkpoint(path, shapes, VIT_ST_F32, meta, 5);
    vit_model *m = (vit_model *)1;
    /* 65536 blocks of width 65536 would be petabytes: refused from the file's size */
    FAILS(vit_model_load(ctx, path, &m), VIT_ERR_FORMAT, path, "dim 65536", "depth 65536");
    ck_assert_ptr_null(m);
}
END_TEST

START_TEST(checkpoint_degenerate_shapes) {
    char path[600];
    in_dir(path, sizeof path, "odd.safetensors");
    vit_model *m = (vit_model *)1;
    /* width 0: once a division by zero and an endless loop */
    static const int64_t zero[5][4] = {{0, 3, 4, 4}, {1, 5, 0}, {1, 1, 0}, {3, 0}, {2, 0}};
    write_checkpoint(path, zero, VIT_ST_F32, NULL, 0);
    FAILS(vit_model_load(ctx, path, &m), VIT_ERR_UNSUPPORTED, path, "patch_embed.proj.weight [0, 3, 4, 4]");
    ck_assert_ptr_null(m);
    /* pos_embed [0, 2^63 - 1, 8]: no data, a grid whose square overflowed */
    static const int64_t tokens[5][4] = {{8, 3, 4, 4}, {0, INT64_MAX, 8}, {1, 1, 8}, {3, 8}, {16, 8}};
    write_checkpoint(path, tokens, VIT_ST_F32, NULL, 0);
    FAILS(vit_model_load(ctx, path, &m), VIT_ERR_UNSUPPORTED, path, "pos_embed");
    /* a hidden width of 2^63 - 1 (no data): an MLP ratio past any integer */
    static const int64_t hidden[5][4] = {{8, 3, 4, 4}, {1, 5, 8}, {1, 1, 8}, {3, 8}, {INT64_MAX, 0}};
    write_checkpoint(path, hidden, VIT_ST_U8, NULL, 0);
    FAILS(vit_model_load(ctx, path, &m), VIT_ERR_UNSUPPORTED, path, "blocks.0.mlp.fc1.weight");
}
END_TEST

int main(void) {
    Suite *s = suite_create("readers");
    TCase *tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, png_30_gigapixels);
    tcase_add_test(tc, jpeg_4_gigapixels);
    tcase_add_test(tc, png_compressible);
    tcase_add_test(tc, png_palette_with_transparency);
    tcase_add_test(tc, safetensors_4_gib_header);
    tcase_add_test(tc, safetensors_tensor_count);
    tcase_add_test(tc, json_depth);
    tcase_add_test(tc, pickle_limits);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("files");
    tcase_add_checked_fixture(td, ctx_setup, ctx_teardown);
    tcase_set_timeout(td, 120);
    tcase_add_test(td, idx_lying_headers);
    tcase_add_test(td, checkpoint_claims_huge_model);
    tcase_add_test(td, checkpoint_degenerate_shapes);
    suite_add_tcase(s, td);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
