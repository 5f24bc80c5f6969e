/* The strict JSON parser (io/json.h) with its default limits and with the
 * tight ones safetensors uses, every node visited, and every string written
 * back through the escaping writer. */
#include "fuzz.h"
#include "io/json.h"

static void walk(const vit_json *v, int depth, vit_json_buf *out) {
    if (depth > VIT_JSON_DEFAULT_MAX_DEPTH + 1) abort(); /* the parser's limit did not hold */
    if (v->key) {
        vit_fuzz_touch(v->key, v->key_len + 1);
        vit_json_buf_string(out, v->key);
    }
    switch (v->type) {
    case VIT_JSON_STRING:
        vit_fuzz_touch(v->str, v->len + 1);
        if (v->str[v->len] != '\0') abort();
        vit_json_buf_string(out, v->str);
        break;
    case VIT_JSON_ARRAY:
    case VIT_JSON_OBJECT:
        for (size_t i = 0; i < v->len; i++) {
            if ((v->type == VIT_JSON_OBJECT) != (v->items[i].key != NULL)) abort();
            walk(&v->items[i], depth + 1, out);
        }
        if (v->type == VIT_JSON_OBJECT && v->len && !vit_json_get(v, v->items[0].key) &&
            strlen(v->items[0].key) == v->items[0].key_len)
            abort();
        break;
    case VIT_JSON_INT:
        if ((double)v->integer != v->number) abort();
        break;
    default:
        break;
    }
    vit_fuzz_touch_str(vit_json_type_name(v->type));
}

static void parse(const uint8_t *data, size_t size, const vit_json_limits *lim) {
    vit_json_doc *doc = NULL;
    vit_status s = vit_json_parse((const char *)data, size, lim, "fuzz.json", &doc);
    vit_fuzz_check_error(s);
    if (s == VIT_OK) {
        vit_json_buf out = {0};
        walk(doc->root, 0, &out);
        if (out.len) vit_fuzz_touch(out.data, out.len + 1);
        vit_json_buf_free(&out);
    } else if (doc) {
        abort(); /* a failed parse hands nothing out */
    }
    vit_json_free(doc);
}

VIT_FUZZ_TARGET(json) {
    parse(data, size, NULL);
    const vit_json_limits tight = {.max_bytes = 4096, .max_depth = 8};
    parse(data, size, &tight);
    return 0;
}
