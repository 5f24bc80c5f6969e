/* safetensors reader and writer: round trip, a Python-written file, every
 * malformed case, conversions. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "expected.h"
#include "io/safetensors.h"
#include "io_test_util.h"

static char dir[512];

static void setup(void) { ck_assert_ptr_nonnull(io_scratch_dir(dir, sizeof dir)); }
static void teardown(void) { io_rm_rf(dir); }

static int same_bits(float a, float b) { return memcmp(&a, &b, 4) == 0 || (isnan(a) && isnan(b)); }

/* ------------------------------------------------------------ round trip */
static vit_status fill_ramp(void *user, size_t index, void *dst, size_t bytes) {
    (void)user;
    ck_assert_uint_eq(index, 1);
    uint16_t *h = dst;
    for (size_t i = 0; i < bytes / 2; i++) h[i] = vit_float_to_half((float)i * 0.5f - 3.0f);
    return VIT_OK;
}

START_TEST(round_trip) {
    char path[600];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 1e30f};
    uint16_t bf[4] = {vit_float_to_bf16(1.0f), vit_float_to_bf16(-3.0f), vit_float_to_bf16(0.1f), 0x7f80};
    int64_t ints[3] = {-1, 0, INT64_MAX};
    double f64[1] = {0.25};
    vit_st_entry e[] = {
        {"w.a", VIT_ST_F32, 2, {2, 3}, a},
        {"h", VIT_ST_F16, 3, {2, 2, 3}, NULL},
        {"b", VIT_ST_BF16, 1, {4}, bf},
        {"i", VIT_ST_I64, 1, {3}, ints},
        {"s", VIT_ST_F64, 0, {0}, f64},
        {"z", VIT_ST_F32, 2, {0, 5}, NULL},
        {"odd", VIT_ST_U8, 1, {3}, "xyz"},
    };
    vit_st_meta m[] = {{"k", "v \"q\" \\ \n\t\x01 caf\xc3\xa9"}, {"empty", ""}};
    ck_assert_int_eq(vit_st_write(path, e, 7, m, 2, fill_ramp, NULL), VIT_OK);

    /* header length prefix, space padding to 8-byte alignment */
    size_t size;
    unsigned char *raw = (unsigned char *)io_slurp(path, &size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | raw[i];
    ck_assert_uint_eq((8 + n) % 8, 0);
    ck_assert_int_eq(raw[8], '{');
    ck_assert_uint_eq(size, 8 + n + 24 + 24 + 8 + 24 + 8 + 0 + 3);
    free(raw);

    vit_st_file *f;
    ck_assert_int_eq(vit_st_open(path, &f), VIT_OK);
    ck_assert_uint_eq(vit_st_count(f), 7);
    ck_assert_str_eq(vit_st_at(f, 0)->name, "w.a"); /* file order kept */
    ck_assert_str_eq(vit_st_at(f, 6)->name, "odd");
    ck_assert_ptr_null(vit_st_at(f, 7));
    ck_assert_str_eq(vit_st_metadata(f, "k"), m[0].value);
    ck_assert_str_eq(vit_st_metadata(f, "empty"), "");
    ck_assert_ptr_null(vit_st_metadata(f, "nope"));
    ck_assert_uint_eq(vit_st_metadata_count(f), 2);
    const char *k, *v;
    vit_st_metadata_at(f, 1, &k, &v);
    ck_assert_str_eq(k, "empty");

    float out[12];
    const vit_st_tensor *t = vit_st_find(f, "w.a");
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[1], 3);
    ck_assert_int_eq(vit_st_read_f32(f, t, out, 6), VIT_OK);
    for (int i = 0; i < 6; i++) ck_assert(same_bits(out[i], a[i]));
    t = vit_st_find(f, "h");
    ck_assert_int_eq(t->dtype, VIT_ST_F16);
    ck_assert_int_eq(vit_st_read_f32(f, t, out, 12), VIT_OK);
    for (int i = 0; i < 12; i++) ck_assert(out[i] == (float)i * 0.5f - 3.0f);
    t = vit_st_find(f, "b");
    ck_assert_int_eq(vit_st_read_f32(f, t, out, 4), VIT_OK);
    ck_assert(out[0] == 1.0f && out[1] == -3.0f && fabsf(out[2] - 0.1f) < 1e-3f && isinf(out[3]));
    t = vit_st_find(f, "s");
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_int_eq(vit_st_read_f32(f, t, out, 1), VIT_OK);
    ck_assert(out[0] == 0.25f);
    t = vit_st_find(f, "z");
    ck_assert_uint_eq(t->numel, 0);
    ck_assert_int_eq(vit_st_read_f32(f, t, out, 0), VIT_OK);
    t = vit_st_find(f, "i");
    ck_assert_mem_eq(vit_st_raw(f, t), ints, sizeof ints);
    ck_assert_int_eq(vit_st_read_f32(f, t, out, 3), VIT_ERR_DTYPE);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "\"i\""));
    ck_assert_int_eq(vit_st_read_f32(f, vit_st_find(f, "w.a"), out, 5), VIT_ERR_SHAPE);
    ck_assert_mem_eq(vit_st_raw(f, vit_st_find(f, "odd")), "xyz", 3);
    ck_assert_ptr_null(vit_st_find(f, "w"));
    ck_assert_ptr_null(vit_st_find(f, "zz"));
    vit_st_close(f);
}
END_TEST

START_TEST(empty_file_and_writer_errors) {
    char path[600];
    snprintf(path, sizeof path, "%s/e.safetensors", dir);
    ck_assert_int_eq(vit_st_write(path, NULL, 0, NULL, 0, NULL, NULL), VIT_OK);
    vit_st_file *f;
    ck_assert_int_eq(vit_st_open(path, &f), VIT_OK);
    ck_assert_uint_eq(vit_st_count(f), 0);
    ck_assert_uint_eq(vit_st_metadata_count(f), 0);
    vit_st_close(f);

    float x = 1;
    vit_st_entry dup[] = {{"a", VIT_ST_F32, 1, {1}, &x}, {"b", VIT_ST_F32, 1, {1}, &x}, {"a", VIT_ST_F32, 1, {1}, &x}};
    ck_assert_int_eq(vit_st_write(path, dup, 3, NULL, 0, NULL, NULL), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "\"a\" appears twice"));
    vit_st_entry meta_name[] = {{"__metadata__", VIT_ST_F32, 1, {1}, &x}};
    ck_assert_int_eq(vit_st_write(path, meta_name, 1, NULL, 0, NULL, NULL), VIT_ERR_INVALID_ARGUMENT);
    vit_st_entry no_data[] = {{"a", VIT_ST_F32, 1, {1}, NULL}};
    ck_assert_int_eq(vit_st_write(path, no_data, 1, NULL, 0, NULL, NULL), VIT_ERR_INVALID_ARGUMENT);
    vit_st_meta m[] = {{"k", "1"}, {"k", "2"}};
    ck_assert_int_eq(vit_st_write(path, NULL, 0, m, 2, NULL, NULL), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "\"k\" appears twice"));
    /* the failed writes left the first file alone */
    ck_assert_int_eq(vit_st_open(path, &f), VIT_OK);
    vit_st_close(f);
}
END_TEST

static vit_status fill_fails(void *user, size_t index, void *dst, size_t bytes) {
    (void)user, (void)index, (void)dst, (void)bytes;
    return vit_fail(VIT_ERR_INTERNAL, "device went away");
}

START_TEST(failed_fill_keeps_old_file) {
    char path[600];
    snprintf(path, sizeof path, "%s/f.safetensors", dir);
    float x[2] = {1, 2};
    vit_st_entry e[] = {{"x", VIT_ST_F32, 1, {2}, x}};
    ck_assert_int_eq(vit_st_write(path, e, 1, NULL, 0, NULL, NULL), VIT_OK);
    vit_st_entry g[] = {{"x", VIT_ST_F32, 1, {2}, x}, {"y", VIT_ST_F32, 1, {2}, NULL}};
    ck_assert_int_eq(vit_st_write(path, g, 2, NULL, 0, fill_fails, NULL), VIT_ERR_INTERNAL);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "device went away"));
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "f.safetensors"));
    vit_st_file *f;
    ck_assert_int_eq(vit_st_open(path, &f), VIT_OK);
    ck_assert_uint_eq(vit_st_count(f), 1);
    vit_st_close(f);
}
END_TEST

START_TEST(open_errors) {
    vit_st_file *f;
    char path[600];
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    ck_assert_int_eq(vit_st_open(path, &f), VIT_ERR_IO);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "missing.safetensors"));
    ck_assert_int_eq(vit_st_open(dir, &f), VIT_ERR_IO);
    snprintf(path, sizeof path, "%s/empty", dir);
    ck_assert_int_eq(io_spit(path, "", 0), 0);
    ck_assert_int_eq(vit_st_open(path, &f), VIT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "too short"));
}
END_TEST

/* ------------------------------------------------------------- malformed */
/* header text + data_len zero bytes as a safetensors buffer */
static unsigned char *make_st(const char *header, size_t data_len, size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_len;
    unsigned char *b = calloc(1, *size);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    return b;
}

static const struct {
    const char *header;
    size_t data;
    const char *expect; /* in the message, besides the file name */
} malformed[] = {
    {"[]", 0, "start with '{'"},
    {" {}", 0, "start with '{'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, "JSON error"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate key \"a\""},
    {"{\"a\":[1]}", 0, "\"a\": entry is a array"},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"a\": missing or non-string \"dtype\""},
    {"{\"a\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"a\": unknown dtype \"F17\""},
    {"{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "\"a\": missing or non-array \"shape\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "non-negative"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dimensions"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflows"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4, "overflows"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "\"data_offsets\" must be"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "\"data_offsets\" must be"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "\"data_offsets\" must be"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "reversed"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 4, "run past the data"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]}}", 4, "\"data_offsets\" must be"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "needs 8"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlaps"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "\"a\": hole of 4 bytes"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "\"b\": hole"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6, "2 bytes after the last"},
    {"{}", 1, "1 bytes after the last"},
    {"{\"__metadata__\":[]}", 0, "__metadata__ is not an object"},
    {"{\"__metadata__\":{\"k\":1}}", 0, "\"k\" is not a string"},
    {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "NUL"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}  x", 4, "JSON error"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[[[[[[[[[[1]]]]]]]]]],\"data_offsets\":[0,4]}}", 4, "too deep"},
};

START_TEST(rejects_malformed) {
    size_t size;
    unsigned char *buf = make_st(malformed[_i].header, malformed[_i].data, &size);
    vit_st_file *f = (vit_st_file *)&f;
    vit_status s = vit_st_open_memory(buf, size, "bad.safetensors", &f);
    ck_assert_msg(s == VIT_ERR_FORMAT, "case %d: status %d", _i, s);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(vit_last_error(), "bad.safetensors") && strstr(vit_last_error(), malformed[_i].expect),
                  "case %d: %s", _i, vit_last_error());
    free(buf);
}
END_TEST

START_TEST(bad_header_length) {
    size_t size;
    unsigned char *buf = make_st("{}", 0, &size);
    vit_st_file *f;
    ck_assert_int_eq(vit_st_open_memory(buf, size, "ok", &f), VIT_OK);
    vit_st_close(f);
    buf[0] = 3; /* one byte more than the file holds */
    ck_assert_int_eq(vit_st_open_memory(buf, size, "x.st", &f), VIT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "runs past the end"));
    buf[0] = 2;
    buf[7] = 0x80; /* 2^63 + 2 */
    ck_assert_int_eq(vit_st_open_memory(buf, size, "x.st", &f), VIT_ERR_FORMAT);
    ck_assert_int_eq(vit_st_open_memory(buf, 7, "x.st", &f), VIT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "too short"));
    buf[7] = 0;
    buf[0] = 0; /* empty header */
    ck_assert_int_eq(vit_st_open_memory(buf, 8, "x.st", &f), VIT_ERR_FORMAT);
    free(buf);
}
END_TEST

/* --------------------------------------------------------- Python's file */
typedef struct check_ctx {
    vit_st_file *f;
    int records;
} check_ctx;

static void check_record(void *user, const char *name, const float *want, uint64_t count) {
    check_ctx *c = user;
    if (name[0] == '_') return; /* images / logits: for the checkpoint tests */
    const vit_st_tensor *t = vit_st_find(c->f, name);
    ck_assert_msg(t != NULL, "tensor %s missing", name);
    float *got = malloc(count ? count * 4 : 4);
    ck_assert_int_eq(vit_st_read_f32(c->f, t, got, count), VIT_OK);
    for (uint64_t i = 0; i < count; i++)
        ck_assert_msg(same_bits(got[i], want[i]), "%s[%llu]: %.9g vs %.9g", name, (unsigned long long)i, got[i],
                      want[i]);
    free(got);
    c->records++;
}

static void check_python_file(const char *base, int want_records) {
    const char *ref = reference_dir();
    if (!ref) return;
    char path[600], epath[600];
    snprintf(path, sizeof path, "%s/%s.safetensors", ref, base);
    snprintf(epath, sizeof epath, "%s/%s.expected", ref, base);
    expected e;
    ck_assert_msg(expected_load(&e, epath), "missing %s", epath);
    check_ctx c = {NULL, 0};
    ck_assert_int_eq(vit_st_open(path, &c.f), VIT_OK);
    ck_assert_int_eq(expected_each(&e, check_record, &c), 0);
    ck_assert_int_eq(c.records, want_records);
    ck_assert_str_eq(vit_st_metadata(c.f, "format"), "pt");
    vit_st_close(c.f);
    expected_free(&e);
}

START_TEST(python_written_files) {
    if (!reference_dir()) return; /* no python3 with torch: nothing to compare */
    check_python_file("dtypes", 9);
    check_python_file("timm_token", 4 + 2 * 12 + 4);
    check_python_file("timm_avg", 4 + 2 + 3 * 11 + 4);

    /* torch's f16/bf16 rounding of random f32 values == ours, bit for bit */
    char path[600];
    snprintf(path, sizeof path, "%s/dtypes.safetensors", reference_dir());
    vit_st_file *f;
    ck_assert_int_eq(vit_st_open(path, &f), VIT_OK);
    ck_assert_str_eq(vit_st_metadata(f, "note"), "caf\xc3\xa9 \"quoted\"\n");
    const vit_st_tensor *r = vit_st_find(f, "random.f32"), *h = vit_st_find(f, "random.f16"),
                        *b = vit_st_find(f, "random.bf16");
    ck_assert(r && h && b && r->numel == 105);
    float x[105];
    ck_assert_int_eq(vit_st_read_f32(f, r, x, 105), VIT_OK);
    const unsigned char *hp = vit_st_raw(f, h), *bp = vit_st_raw(f, b);
    for (int i = 0; i < 105; i++) {
        ck_assert_uint_eq(vit_float_to_half(x[i]), (uint16_t)(hp[2 * i] | hp[2 * i + 1] << 8));
        ck_assert_uint_eq(vit_float_to_bf16(x[i]), (uint16_t)(bp[2 * i] | bp[2 * i + 1] << 8));
    }
    const vit_st_tensor *ints = vit_st_find(f, "ints");
    ck_assert_int_eq(ints->dtype, VIT_ST_I64);
    int64_t iv[6];
    memcpy(iv, vit_st_raw(f, ints), sizeof iv);
    ck_assert_int_eq(iv[5], 5);
    vit_st_close(f);
}
END_TEST

START_TEST(half_conversions) {
    /* every non-nan half survives half -> float -> half */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vit_half_to_float((uint16_t)h);
        if (isnan(f)) {
            ck_assert(((h >> 10) & 0x1F) == 0x1F && (h & 0x3FF));
            ck_assert(isnan(vit_half_to_float(vit_float_to_half(f))));
            continue;
        }
        ck_assert_uint_eq(vit_float_to_half(f), h);
        ck_assert_uint_eq(vit_float_to_bf16(vit_bf16_to_float((uint16_t)h)), h);
    }
    ck_assert(vit_half_to_float(0x0001) == ldexpf(1, -24));
    ck_assert(vit_half_to_float(0x7BFF) == 65504.0f);
    ck_assert_uint_eq(vit_float_to_half(65519.0f), 0x7BFF);
    ck_assert_uint_eq(vit_float_to_half(65520.0f), 0x7C00);
    ck_assert_uint_eq(vit_float_to_half(ldexpf(1, -25)), 0);       /* tie to even: 0 */
    ck_assert_uint_eq(vit_float_to_half(ldexpf(1.5f, -25)), 1);
    ck_assert_uint_eq(vit_float_to_half(-ldexpf(3, -25)), 0x8002); /* 1.5 units: tie to even 2 */
    ck_assert_uint_eq(vit_float_to_half(1.0f + ldexpf(1, -11)), 0x3C00); /* tie, even stays */
    ck_assert_uint_eq(vit_float_to_bf16(1.0f + ldexpf(1, -8)), 0x3F80);
}
END_TEST

int main(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, empty_file_and_writer_errors);
    tcase_add_test(tc, failed_fill_keeps_old_file);
    tcase_add_test(tc, open_errors);
    tcase_add_loop_test(tc, rejects_malformed, 0, (int)(sizeof malformed / sizeof malformed[0]));
    tcase_add_test(tc, bad_header_length);
    tcase_add_test(tc, python_written_files);
    tcase_add_test(tc, half_conversions);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
