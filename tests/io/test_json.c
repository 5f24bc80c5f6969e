/* The strict JSON parser and the string writer. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"

/* Parses an exact-size heap copy, so ASan catches any read past the end. */
static vit_status parse(const char *text, size_t len, vit_json_doc **doc) {
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    vit_status s = vit_json_parse(copy, len, NULL, "test.json", doc);
    free(copy);
    return s;
}

static vit_status parse_str(const char *text, vit_json_doc **doc) { return parse(text, strlen(text), doc); }

START_TEST(valid_document) {
    const char *text = " {\"a\": 1, \"b\" : [true, false, null, -0, 1.5e3, -2.25],"
                       " \"c\": \"x\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/\", \"d\": {}, \"e\": [],"
                       " \"max\": 9223372036854775807, \"min\": -9223372036854775808,"
                       " \"big\": 9223372036854775808, \"u\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}\r\n";
    vit_json_doc *doc;
    ck_assert_int_eq(parse_str(text, &doc), VIT_OK);
    const vit_json *r = doc->root;
    ck_assert_int_eq(r->type, VIT_JSON_OBJECT);
    ck_assert_uint_eq(r->len, 9);
    const vit_json *a = vit_json_get(r, "a");
    ck_assert_int_eq(a->type, VIT_JSON_INT);
    ck_assert_int_eq(a->integer, 1);
    const vit_json *b = vit_json_get(r, "b");
    ck_assert_int_eq(b->type, VIT_JSON_ARRAY);
    ck_assert_uint_eq(b->len, 6);
    ck_assert(b->items[0].type == VIT_JSON_BOOL && b->items[0].boolean);
    ck_assert(b->items[1].type == VIT_JSON_BOOL && !b->items[1].boolean);
    ck_assert_int_eq(b->items[2].type, VIT_JSON_NULL);
    ck_assert(b->items[3].type == VIT_JSON_INT && b->items[3].integer == 0);
    ck_assert(b->items[4].type == VIT_JSON_NUMBER && b->items[4].number == 1500.0);
    ck_assert(b->items[5].type == VIT_JSON_NUMBER && b->items[5].number == -2.25);
    const vit_json *c = vit_json_get(r, "c");
    ck_assert_int_eq(c->type, VIT_JSON_STRING);
    const char want[] = "x\xc3\xa9\xf0\x9f\x98\x80\n\t\"\\/";
    ck_assert_uint_eq(c->len, sizeof want - 1);
    ck_assert_mem_eq(c->str, want, sizeof want);
    ck_assert(vit_json_get(r, "d")->type == VIT_JSON_OBJECT && vit_json_get(r, "d")->len == 0);
    ck_assert(vit_json_get(r, "e")->type == VIT_JSON_ARRAY && vit_json_get(r, "e")->len == 0);
    ck_assert_int_eq(vit_json_get(r, "max")->integer, INT64_MAX);
    ck_assert_int_eq(vit_json_get(r, "min")->integer, INT64_MIN);
    ck_assert_int_eq(vit_json_get(r, "big")->type, VIT_JSON_NUMBER);
    ck_assert_str_eq(vit_json_get(r, "u")->str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    ck_assert_ptr_null(vit_json_get(r, "zz"));
    ck_assert_ptr_null(vit_json_get(a, "a"));
    vit_json_free(doc);
}
END_TEST

START_TEST(scalars_and_unterminated_input) {
    vit_json_doc *doc;
    /* only the first 3 bytes belong to the input */
    ck_assert_int_eq(vit_json_parse("123456", 3, NULL, "t", &doc), VIT_OK);
    ck_assert_int_eq(doc->root->integer, 123);
    vit_json_free(doc);
    ck_assert_int_eq(parse_str("\"\\u0000x\"", &doc), VIT_OK);
    ck_assert_uint_eq(doc->root->len, 2);
    ck_assert_int_eq(doc->root->str[0], 0);
    vit_json_free(doc);
    ck_assert_int_eq(parse_str("-1.25E-2", &doc), VIT_OK);
    ck_assert(fabs(doc->root->number + 0.0125) < 1e-15);
    vit_json_free(doc);
    ck_assert_int_eq(parse_str("null", &doc), VIT_OK);
    ck_assert_int_eq(doc->root->type, VIT_JSON_NULL);
    vit_json_free(doc);
}
END_TEST

/* Each must fail with VIT_ERR_FORMAT; the expected byte offset is in the message. */
static const struct { const char *text; size_t len; const char *where; } bad[] = {
    {"", 0, "byte 0"},
    {"   ", 3, "byte 3"},
    {"{", 1, "byte 1"},
    {"[1,]", 4, "byte 3"},
    {"{\"a\":1,}", 8, "byte 7"},
    {"01", 2, "byte 0"},
    {"1.", 2, "byte 0"},
    {".5", 2, "byte 0"},
    {"+1", 2, "byte 0"},
    {"-", 1, "byte 0"},
    {"1e", 2, "byte 0"},
    {"1e+", 3, "byte 0"},
    {"\"\\x\"", 4, "byte 1"},
    {"\"a\x01\"", 4, "byte 2"},
    {"\"\\ud800\"", 8, "byte 1"},
    {"\"\\udc00\"", 8, "byte 1"},
    {"\"\\ud800\\u0041\"", 14, "byte 1"},
    {"\"\\u12\"", 6, "byte 1"},
    {"\"\\u12", 5, "byte 0"},
    {"\"\xff\"", 3, "byte 1"},
    {"\"\xc0\xaf\"", 4, "byte 1"},
    {"\"\xed\xa0\x80\"", 5, "byte 1"},
    {"\"\xe2\x82\"", 4, "byte 1"},
    {"\"abc", 4, "byte 0"},
    {"\"abc\\", 5, "byte 0"},
    {"tru", 3, "byte 0"},
    {"nul", 3, "byte 0"},
    {"True", 4, "byte 0"},
    {"{\"a\" 1}", 7, "byte 5"},
    {"{1:2}", 5, "byte 1"},
    {"[1 2]", 5, "byte 3"},
    {"1 2", 3, "byte 2"},
    {"{\"a\":1,\"b\":2,\"a\":3}", 19, "byte 13"},
    {"[1]x", 4, "byte 3"},
    {"\x00", 1, "byte 0"},
    {"[\"a\"\x00]", 5, "byte 4"},
};

START_TEST(rejects_malformed) {
    vit_json_doc *doc = (vit_json_doc *)&doc; /* must be reset to NULL */
    ck_assert_int_eq(parse(bad[_i].text, bad[_i].len, &doc), VIT_ERR_FORMAT);
    ck_assert_ptr_null(doc);
    ck_assert_msg(strstr(vit_last_error(), bad[_i].where) && strstr(vit_last_error(), "test.json"),
                  "case %d: %s", _i, vit_last_error());
}
END_TEST

static char *nested(int depth) {
    char *s = malloc((size_t)depth * 2 + 1);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth * 2 - 1 - i] = ']';
    }
    s[depth * 2] = '\0';
    return s;
}

START_TEST(depth_and_size_limits) {
    vit_json_doc *doc;
    char *ok = nested(VIT_JSON_DEFAULT_MAX_DEPTH), *deep = nested(VIT_JSON_DEFAULT_MAX_DEPTH + 1);
    ck_assert_int_eq(parse_str(ok, &doc), VIT_OK);
    vit_json_free(doc);
    ck_assert_int_eq(parse_str(deep, &doc), VIT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "too deep"));
    free(ok);
    free(deep);
    /* far deeper than any C stack would survive without the limit */
    char *huge = nested(200000);
    ck_assert_int_eq(parse(huge, 200000, &doc), VIT_ERR_FORMAT);
    free(huge);

    vit_json_limits lim = {.max_bytes = 10, .max_depth = 2};
    ck_assert_int_eq(vit_json_parse("[1,2,3,4,5]", 11, &lim, "t", &doc), VIT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "limit"));
    ck_assert_int_eq(vit_json_parse("[[1]]", 5, &lim, "t", &doc), VIT_OK);
    vit_json_free(doc);
    ck_assert_int_eq(vit_json_parse("[[[1]]]", 7, &lim, "t", &doc), VIT_ERR_FORMAT);
}
END_TEST

START_TEST(large_object_and_duplicates) {
    vit_json_buf b = {0};
    vit_json_buf_raw(&b, "{", 1);
    for (int i = 0; i < 5000; i++) vit_json_buf_printf(&b, "%s\"k%d\": [%d, \"%0300d\"]", i ? "," : "", i, i, i);
    vit_json_buf_raw(&b, "}", 1);
    ck_assert(!b.failed);
    vit_json_doc *doc;
    ck_assert_int_eq(parse(b.data, b.len, &doc), VIT_OK);
    ck_assert_uint_eq(doc->root->len, 5000);
    ck_assert_int_eq(vit_json_get(doc->root, "k4321")->items[0].integer, 4321);
    ck_assert_uint_eq(vit_json_get(doc->root, "k17")->items[1].len, 300);
    vit_json_free(doc);
    /* same object with one key repeated at the end */
    b.len--;
    vit_json_buf_printf(&b, ",\"k2500\": 0}");
    ck_assert_int_eq(parse(b.data, b.len, &doc), VIT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "duplicate key \"k2500\""));
    vit_json_buf_free(&b);
}
END_TEST

START_TEST(writer_round_trip) {
    const char *s = "quote\" back\\ nl\n tab\t ctl\x01\x1f del\x7f utf8 \xc3\xa9\xf0\x9f\x98\x80 bad\xff end";
    vit_json_buf b = {0};
    vit_json_buf_string(&b, s);
    ck_assert(!b.failed);
    vit_json_doc *doc;
    ck_assert_int_eq(parse(b.data, b.len, &doc), VIT_OK);
    ck_assert_str_eq(doc->root->str,
                     "quote\" back\\ nl\n tab\t ctl\x01\x1f del\x7f utf8 \xc3\xa9\xf0\x9f\x98\x80 bad\xef\xbf\xbd end");
    vit_json_free(doc);
    vit_json_buf_free(&b);

    FILE *f = tmpfile();
    ck_assert_int_eq(vit_json_write_string(f, "a\"b"), VIT_OK);
    rewind(f);
    char got[16] = {0};
    ck_assert_uint_eq(fread(got, 1, sizeof got - 1, f), 6);
    ck_assert_str_eq(got, "\"a\\\"b\"");
    fclose(f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, valid_document);
    tcase_add_test(tc, scalars_and_unterminated_input);
    tcase_add_loop_test(tc, rejects_malformed, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_test(tc, depth_and_size_limits);
    tcase_add_test(tc, large_object_and_duplicates);
    tcase_add_test(tc, writer_round_trip);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
