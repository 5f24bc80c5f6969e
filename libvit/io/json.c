/* Strict JSON parser and a small writer (io/json.h).
 *
 * Recursive descent with a depth limit. Children of a container are first
 * pushed on one shared scratch stack and copied into the arena as a
 * contiguous array when the container closes, so lookups by index are O(1)
 * and the tree is a single arena freed at once. Every read is guarded by the
 * input length: the input needs no terminator and may be any bytes. */
#include "io/json.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------- arena */
struct vit_json_chunk {
    vit_json_chunk *next;
    size_t used, cap;
    _Alignas(max_align_t) unsigned char data[];
};

#define ARENA_MIN_CHUNK ((size_t)16 << 10)

static void *arena_alloc(vit_json_doc *doc, size_t n) {
    n = (n + 15) & ~(size_t)15;
    vit_json_chunk *c = doc->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ARENA_MIN_CHUNK ? n : ARENA_MIN_CHUNK;
        /* grow geometrically so a big header needs few chunks */
        if (c && cap < c->cap * 2 && c->cap < ((size_t)64 << 20)) cap = c->cap * 2;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = doc->chunks;
        c->used = 0;
        c->cap = cap;
        doc->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void vit_json_free(vit_json_doc *doc) {
    if (!doc) return;
    for (vit_json_chunk *c = doc->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(doc);
}

/* ------------------------------------------------------------------ parser */
typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    int max_depth;
    const char *what;
    vit_json_doc *doc;
    vit_json *stack; /* scratch for children of open containers */
    size_t sp, stack_cap;
    vit_status status; /* first error, VIT_OK while parsing goes well */
} parser;

static bool fail(parser *p, size_t at, const char *reason) {
    if (p->status == VIT_OK)
        p->status = vit_fail(VIT_ERR_FORMAT, "%s: JSON error at byte %zu: %s", p->what, at, reason);
    return false;
}

static bool oom(parser *p) {
    if (p->status == VIT_OK)
        p->status = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory parsing JSON", p->what);
    return false;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static bool literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, p->pos, "invalid literal");
    p->pos += n;
    return true;
}

static int hex_digit(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Four hex digits at p->pos (after "\u"); -1 when malformed or short. */
static long read_hex4(parser *p) {
    if (p->len - p->pos < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->s[p->pos + (size_t)i]);
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    p->pos += 4;
    return v;
}

static size_t put_utf8(unsigned char *out, unsigned long cp) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of a well-formed UTF-8 sequence at s[0..avail) (no overlongs, no
 * surrogates, at most U+10FFFF); 0 when malformed. */
static size_t utf8_seq(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    size_t n;
    unsigned long cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return n;
}

/* A string at p->pos (the opening quote), decoded into the arena. The raw
 * length bounds the decoded one (every escape shrinks or keeps size). */
static bool parse_string(parser *p, const char **out, size_t *out_len) {
    size_t start = ++p->pos, end = start;
    while (end < p->len && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return fail(p, start - 1, "unterminated string");

    unsigned char *dst = arena_alloc(p->doc, end - start + 1);
    if (!dst) return oom(p);
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = p->s[p->pos];
        if (c < 0x20) return fail(p, p->pos, "control character in string");
        if (c != '\\') {
            size_t k = utf8_seq(p->s + p->pos, end - p->pos);
            if (!k) return fail(p, p->pos, "invalid UTF-8 in string");
            memcpy(dst + n, p->s + p->pos, k);
            n += k;
            p->pos += k;
            continue;
        }
        size_t esc_at = p->pos++;
        c = p->s[p->pos++]; /* in range: the scan above stepped over it */
        switch (c) {
        case '"': dst[n++] = '"'; break;
        case '\\': dst[n++] = '\\'; break;
        case '/': dst[n++] = '/'; break;
        case 'b': dst[n++] = '\b'; break;
        case 'f': dst[n++] = '\f'; break;
        case 'n': dst[n++] = '\n'; break;
        case 'r': dst[n++] = '\r'; break;
        case 't': dst[n++] = '\t'; break;
        case 'u': {
            long cp = p->pos <= end ? read_hex4(p) : -1;
            if (cp < 0 || p->pos > end) return fail(p, esc_at, "bad \\u escape");
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(p, esc_at, "lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* must be followed by \uDC00..\uDFFF */
                if (end - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                    return fail(p, esc_at, "lone high surrogate");
                p->pos += 2;
                long lo = read_hex4(p);
                if (lo < 0xDC00 || lo > 0xDFFF) return fail(p, esc_at, "lone high surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(dst + n, (unsigned long)cp);
            break;
        }
        default: return fail(p, esc_at, "invalid escape");
        }
    }
    dst[n] = '\0';
    p->pos = end + 1;
    *out = (const char *)dst;
    *out_len = n;
    return true;
}

static bool is_digit(const parser *p, size_t i) { return i < p->len && p->s[i] >= '0' && p->s[i] <= '9'; }

static bool parse_number(parser *p, vit_json *node) {
    size_t start = p->pos, i = start;
    bool neg = false, integral = true;
    if (i < p->len && p->s[i] == '-') { neg = true; i++; }
    if (!is_digit(p, i)) return fail(p, start, "invalid number");
    if (p->s[i] == '0') {
        i++;
        if (is_digit(p, i)) return fail(p, start, "leading zero in number");
    } else {
        while (is_digit(p, i)) i++;
    }
    if (i < p->len && p->s[i] == '.') {
        integral = false;
        if (!is_digit(p, ++i)) return fail(p, start, "digit expected after '.'");
        while (is_digit(p, i)) i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        integral = false;
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (!is_digit(p, i)) return fail(p, start, "digit expected in exponent");
        while (is_digit(p, i)) i++;
    }
    p->pos = i;

    /* Exact int64 when the literal is an integer that fits: accumulate as a
     * negative number so INT64_MIN fits too. */
    if (integral) {
        int64_t v = 0;
        bool fits = true;
        for (size_t k = start + (neg ? 1 : 0); k < i; k++) {
            int d = p->s[k] - '0';
            if (v < (INT64_MIN + d) / 10) { fits = false; break; }
            v = v * 10 - d;
        }
        if (fits && !neg && v == INT64_MIN) fits = false;
        if (fits) {
            node->type = VIT_JSON_INT;
            node->integer = neg ? v : -v;
            node->number = (double)node->integer;
            return true;
        }
    }

    /* strtod in the "C" locale: the host program may have set a locale whose
     * decimal point is ','. The token is copied to get a terminator. */
    char small[64], *tok = small;
    size_t n = i - start;
    if (n >= sizeof small && !(tok = malloc(n + 1))) return oom(p);
    memcpy(tok, p->s + start, n);
    tok[n] = '\0';
    node->number = vit_strtod_c(tok, NULL);
    if (tok != small) free(tok);
    node->type = VIT_JSON_NUMBER;
    return true;
}

static bool push(parser *p, const vit_json *node) {
    if (p->sp == p->stack_cap) {
        size_t cap = p->stack_cap ? p->stack_cap * 2 : 64;
        vit_json *s = realloc(p->stack, cap * sizeof *s);
        if (!s) return oom(p);
        p->stack = s;
        p->stack_cap = cap;
    }
    p->stack[p->sp++] = *node;
    return true;
}

static int key_cmp(const void *a, const void *b) {
    const vit_json *x = *(const vit_json *const *)a, *y = *(const vit_json *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Reports the first duplicate key of an object's members, by sorting pointers. */
static bool check_duplicates(parser *p, const vit_json *items, size_t n) {
    if (n < 2) return true;
    const vit_json **idx = malloc(n * sizeof *idx);
    if (!idx) return oom(p);
    for (size_t i = 0; i < n; i++) idx[i] = &items[i];
    qsort(idx, n, sizeof *idx, key_cmp);
    for (size_t i = 1; i < n; i++) {
        if (key_cmp(&idx[i - 1], &idx[i]) == 0) {
            const vit_json *later = idx[i]->offset > idx[i - 1]->offset ? idx[i] : idx[i - 1];
            char msg[160];
            snprintf(msg, sizeof msg, "duplicate key \"%.100s\"", later->key);
            free(idx);
            return fail(p, later->offset, msg);
        }
    }
    free(idx);
    return true;
}

static bool parse_value(parser *p, int depth, vit_json *node);

/* Array or object at p->pos (the opening bracket). */
static bool parse_container(parser *p, int depth, vit_json *node, bool object) {
    if (depth >= p->max_depth) return fail(p, p->pos, "nesting too deep");
    unsigned char close = object ? '}' : ']';
    size_t base = p->sp;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            vit_json child;
            memset(&child, 0, sizeof child);
            skip_ws(p);
            if (object) {
                if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, p->pos, "object key (a string) expected");
                size_t key_at = p->pos;
                const char *key;
                size_t key_len;
                if (!parse_string(p, &key, &key_len)) return false;
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':') return fail(p, p->pos, "':' expected after object key");
                p->pos++;
                skip_ws(p);
                if (!parse_value(p, depth + 1, &child)) return false;
                child.key = key;
                child.key_len = key_len;
                child.offset = key_at; /* messages about a member point at its key */
            } else if (!parse_value(p, depth + 1, &child)) {
                return false;
            }
            if (!push(p, &child)) return false;
            skip_ws(p);
            if (p->pos >= p->len) return fail(p, p->pos, object ? "unterminated object" : "unterminated array");
            if (p->s[p->pos] == ',') { p->pos++; continue; }
            if (p->s[p->pos] == close) { p->pos++; break; }
            return fail(p, p->pos, object ? "',' or '}' expected" : "',' or ']' expected");
        }
    }
    size_t n = p->sp - base;
    node->type = object ? VIT_JSON_OBJECT : VIT_JSON_ARRAY;
    node->len = n;
    if (n) {
        node->items = arena_alloc(p->doc, n * sizeof(vit_json));
        if (!node->items) return oom(p);
        memcpy(node->items, p->stack + base, n * sizeof(vit_json));
    }
    p->sp = base;
    return object ? check_duplicates(p, node->items, n) : true;
}

static bool parse_value(parser *p, int depth, vit_json *node) {
    skip_ws(p);
    node->offset = p->pos;
    if (p->pos >= p->len) return fail(p, p->pos, "value expected, got end of input");
    switch (p->s[p->pos]) {
    case '{': return parse_container(p, depth, node, true);
    case '[': return parse_container(p, depth, node, false);
    case '"':
        node->type = VIT_JSON_STRING;
        return parse_string(p, &node->str, &node->len);
    case 't': node->type = VIT_JSON_BOOL; node->boolean = true; return literal(p, "true");
    case 'f': node->type = VIT_JSON_BOOL; node->boolean = false; return literal(p, "false");
    case 'n': node->type = VIT_JSON_NULL; return literal(p, "null");
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9')) return parse_number(p, node);
        return fail(p, p->pos, "unexpected character");
    }
}

vit_status vit_json_parse(const char *text, size_t len, const vit_json_limits *limits, const char *what,
                          vit_json_doc **out) {
    VIT_CHECK_ARG(out, "vit_json_parse: out is NULL");
    *out = NULL;
    if (!what) what = "JSON";
    VIT_CHECK_ARG(text || len == 0, "%s: text is NULL", what);
    size_t max_bytes = limits && limits->max_bytes ? limits->max_bytes : VIT_JSON_DEFAULT_MAX_BYTES;
    int max_depth = limits && limits->max_depth > 0 ? limits->max_depth : VIT_JSON_DEFAULT_MAX_DEPTH;
    if (len > max_bytes)
        return vit_fail(VIT_ERR_FORMAT, "%s: JSON text of %zu bytes exceeds the limit of %zu", what, len, max_bytes);

    parser p = {.s = (const unsigned char *)text, .len = len, .max_depth = max_depth, .what = what};
    p.doc = calloc(1, sizeof *p.doc);
    if (!p.doc) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory parsing JSON", what);
    vit_json root;
    memset(&root, 0, sizeof root);
    bool ok = parse_value(&p, 0, &root);
    if (ok) {
        skip_ws(&p);
        if (p.pos != p.len) ok = fail(&p, p.pos, "trailing characters after the JSON value");
    }
    if (ok) {
        p.doc->root = arena_alloc(p.doc, sizeof root);
        if (p.doc->root) *p.doc->root = root;
        else ok = oom(&p);
    }
    free(p.stack);
    if (!ok) {
        vit_json_free(p.doc);
        return p.status;
    }
    *out = p.doc;
    return VIT_OK;
}

const vit_json *vit_json_get(const vit_json *obj, const char *key) {
    if (!obj || obj->type != VIT_JSON_OBJECT || !key) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->len; i++)
        if (obj->items[i].key_len == n && memcmp(obj->items[i].key, key, n) == 0) return &obj->items[i];
    return NULL;
}

const char *vit_json_type_name(vit_json_type type) {
    switch (type) {
    case VIT_JSON_NULL: return "null";
    case VIT_JSON_BOOL: return "boolean";
    case VIT_JSON_INT: return "integer";
    case VIT_JSON_NUMBER: return "number";
    case VIT_JSON_STRING: return "string";
    case VIT_JSON_ARRAY: return "array";
    case VIT_JSON_OBJECT: return "object";
    }
    return "?";
}

/* ------------------------------------------------------------------ writer */
static bool buf_reserve(vit_json_buf *b, size_t extra) {
    if (b->failed) return false;
    if (b->cap - b->len > extra) return true; /* room for extra plus the NUL */
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= extra) {
        if (cap > SIZE_MAX / 2) { b->failed = true; return false; }
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) { b->failed = true; return false; }
    b->data = d;
    b->cap = cap;
    return true;
}

void vit_json_buf_raw(vit_json_buf *b, const char *s, size_t n) {
    if (!buf_reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void vit_json_buf_printf(vit_json_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) { b->failed = true; return; }
    if ((size_t)n < sizeof small) { vit_json_buf_raw(b, small, (size_t)n); return; }
    if (!buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The escaped form of an ASCII byte c into out (NUL-terminated); its length. */
static size_t escape_byte(unsigned char c, char out[8]) {
    switch (c) {
    case '"': return (size_t)snprintf(out, 8, "\\\"");
    case '\\': return (size_t)snprintf(out, 8, "\\\\");
    case '\n': return (size_t)snprintf(out, 8, "\\n");
    case '\r': return (size_t)snprintf(out, 8, "\\r");
    case '\t': return (size_t)snprintf(out, 8, "\\t");
    case '\b': return (size_t)snprintf(out, 8, "\\b");
    case '\f': return (size_t)snprintf(out, 8, "\\f");
    default:
        if (c < 0x20 || c == 0x7F) return (size_t)snprintf(out, 8, "\\u%04x", c);
        out[0] = (char)c;
        out[1] = '\0';
        return 1;
    }
}

void vit_json_buf_string(vit_json_buf *b, const char *s) {
    const unsigned char *c = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;
    vit_json_buf_raw(b, "\"", 1);
    while (i < n) {
        if (c[i] >= 0x80) {
            /* Invalid UTF-8 becomes U+FFFD so the output is always valid JSON. */
            size_t k = utf8_seq(c + i, n - i);
            if (k) vit_json_buf_raw(b, s + i, k);
            else vit_json_buf_raw(b, "\\ufffd", 6);
            i += k ? k : 1;
            continue;
        }
        char e[8];
        vit_json_buf_raw(b, e, escape_byte(c[i++], e));
    }
    vit_json_buf_raw(b, "\"", 1);
}

void vit_json_buf_free(vit_json_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

vit_status vit_json_write_string(FILE *f, const char *s) {
    vit_json_buf b = {0};
    vit_json_buf_string(&b, s);
    vit_status st = VIT_OK;
    if (b.failed) st = vit_fail(VIT_ERR_OUT_OF_MEMORY, "JSON string: out of memory");
    else if (fwrite(b.data, 1, b.len, f) != b.len) st = vit_fail(VIT_ERR_IO, "JSON string: write failed");
    vit_json_buf_free(&b);
    return st;
}
