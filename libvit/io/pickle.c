/* The restricted unpickler (io/pickle.h).
 *
 * A stack machine over a whitelist of opcodes. Values live in an arena owned
 * by the result, so a malformed file can never leak: everything goes when the
 * vit_pickle is freed. Every length is checked against the end of the input
 * and every container against fixed limits before anything is allocated. */
#include "io/pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    G_RECONSTRUCT = 1, /* numpy.core.multiarray._reconstruct */
    G_NDARRAY = 2,     /* numpy.ndarray */
    G_DTYPE = 3,       /* numpy.dtype */
    G_ENCODE = 4       /* _codecs.encode */
};

/* Far above what CIFAR batches need (about 20000 values and memo entries, a
 * 1000-deep stack), far below what could exhaust memory: at most about
 * 120 MB of values and 8 MB each of stack and memo. */
#define MAX_VALUES ((size_t)1 << 20)
#define MAX_STACK ((size_t)1 << 20)
#define MAX_MEMO ((size_t)1 << 20)

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
} arena_block;

struct vit_pickle {
    arena_block *blocks;
    const vit_pobj *root;
};

typedef struct parser {
    vit_pickle *p;
    const char *name;
    const uint8_t *b;
    size_t n, pos;
    vit_pobj **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t nmarks, marks_cap;
    vit_pobj **memo;
    size_t memo_cap;
    size_t memo_len; /* Python's len(memo) when only appended to, as MEMOIZE assumes */
    size_t values;
} parser;

static void *arena_alloc(vit_pickle *p, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    arena_block *b = p->blocks;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = bytes > 65536 ? bytes : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = p->blocks;
        b->used = 0;
        b->cap = cap;
        p->blocks = b;
    }
    void *r = b->mem + b->used;
    b->used += bytes;
    return r;
}

void vit_pickle_free(vit_pickle *p) {
    if (!p) return;
    for (arena_block *b = p->blocks; b;) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(p);
}

const vit_pobj *vit_pickle_root(const vit_pickle *p) { return p ? p->root : NULL; }

const char *vit_pkind_name(vit_pkind kind) {
    static const char *names[] = {"None", "bool", "int", "bytes", "str", "tuple", "list", "dict", "global", "dtype",
                                  "ndarray"};
    return (unsigned)kind < sizeof names / sizeof *names ? names[kind] : "?";
}

static vit_status bad(parser *ps, const char *what) {
    return vit_fail(VIT_ERR_FORMAT, "%s: pickle: %s at byte %zu", ps->name, what, ps->pos);
}

static vit_pobj *new_value(parser *ps, vit_pkind kind) {
    if (++ps->values > MAX_VALUES) return NULL;
    vit_pobj *o = arena_alloc(ps->p, sizeof *o);
    if (o) {
        memset(o, 0, sizeof *o);
        o->kind = kind;
    }
    return o;
}

/* Appends to a list/tuple/dict's items, doubling in the arena (the old array
 * stays there until the end: at most as much again). */
static int add_item(parser *ps, vit_pobj *c, vit_pobj *v) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        vit_pobj **items = arena_alloc(ps->p, cap * sizeof *items);
        if (!items) return 0;
        if (c->n) memcpy(items, c->items, c->n * sizeof *items);
        c->items = items;
        c->cap = cap;
    }
    c->items[c->n++] = v;
    return 1;
}

static vit_status push(parser *ps, vit_pobj *v) {
    if (!v) return bad(ps, "too many values or out of memory");
    if (ps->sp == ps->stack_cap) {
        if (ps->stack_cap >= MAX_STACK) return bad(ps, "stack too deep");
        size_t cap = ps->stack_cap ? 2 * ps->stack_cap : 256;
        vit_pobj **s = realloc(ps->stack, cap * sizeof *s);
        if (!s) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: pickle: no memory for the stack", ps->name);
        ps->stack = s;
        ps->stack_cap = cap;
    }
    ps->stack[ps->sp++] = v;
    return VIT_OK;
}

static vit_status pop(parser *ps, vit_pobj **v) {
    if (ps->sp == 0 || (ps->nmarks && ps->sp <= ps->marks[ps->nmarks - 1])) return bad(ps, "stack underflow");
    *v = ps->stack[--ps->sp];
    return VIT_OK;
}

/* Reads n bytes of argument; NULL past the end. */
static const uint8_t *take(parser *ps, size_t n) {
    if (n > ps->n - ps->pos) return NULL;
    const uint8_t *r = ps->b + ps->pos;
    ps->pos += n;
    return r;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static vit_status push_string(parser *ps, vit_pkind kind, int lenbytes) {
    const uint8_t *l = take(ps, (size_t)lenbytes);
    if (!l) return bad(ps, "truncated string length");
    uint64_t len = le(l, lenbytes);
    const uint8_t *s = take(ps, len > SIZE_MAX ? SIZE_MAX : (size_t)len);
    if (!s) return bad(ps, "string runs past the end of the file");
    vit_pobj *o = new_value(ps, kind);
    if (o) {
        o->s = s;
        o->len = (size_t)len;
    }
    return push(ps, o);
}

static vit_status push_int(parser *ps, int64_t v) {
    vit_pobj *o = new_value(ps, VIT_P_INT);
    if (o) o->i = v;
    return push(ps, o);
}

static vit_status memo_put(parser *ps, uint64_t idx) {
    if (ps->sp == 0) return bad(ps, "memo store with an empty stack");
    if (idx >= MAX_MEMO) return bad(ps, "memo index too large");
    if (idx >= ps->memo_cap) {
        size_t cap = ps->memo_cap ? ps->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        vit_pobj **m = realloc(ps->memo, cap * sizeof *m);
        if (!m) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: pickle: no memory for the memo", ps->name);
        memset(m + ps->memo_cap, 0, (cap - ps->memo_cap) * sizeof *m);
        ps->memo = m;
        ps->memo_cap = cap;
    }
    ps->memo[idx] = ps->stack[ps->sp - 1];
    if (idx >= ps->memo_len) ps->memo_len = (size_t)idx + 1;
    return VIT_OK;
}

static vit_status memo_get(parser *ps, uint64_t idx) {
    if (idx >= ps->memo_cap || !ps->memo[idx]) return bad(ps, "memo fetch of an unset index");
    return push(ps, ps->memo[idx]);
}

/* Pops everything above the top mark into a new container of kind. */
static vit_status collect_mark(parser *ps, vit_pkind kind) {
    if (!ps->nmarks) return bad(ps, "no mark for a MARK-based opcode");
    size_t m = ps->marks[--ps->nmarks];
    vit_pobj *c = new_value(ps, kind);
    if (!c) return bad(ps, "too many values");
    for (size_t i = m; i < ps->sp; i++)
        if (!add_item(ps, c, ps->stack[i])) return bad(ps, "out of memory");
    ps->sp = m;
    return push(ps, c);
}

static vit_status make_tuple(parser *ps, int k) {
    vit_pobj *c = new_value(ps, VIT_P_TUPLE);
    if (!c) return bad(ps, "too many values");
    vit_pobj *v[3] = {NULL, NULL, NULL};
    for (int i = k - 1; i >= 0; i--) VIT_TRY(pop(ps, &v[i]));
    for (int i = 0; i < k; i++)
        if (!add_item(ps, c, v[i])) return bad(ps, "out of memory");
    return push(ps, c);
}

/* APPENDS / SETITEMS: the items above the top mark go into the container
 * just below it. */
static vit_status extend_from_mark(parser *ps, int pairs) {
    if (!ps->nmarks) return bad(ps, "no mark for APPENDS/SETITEMS");
    size_t m = ps->marks[--ps->nmarks];
    if (m == 0) return bad(ps, "APPENDS/SETITEMS without a container");
    vit_pobj *c = ps->stack[m - 1];
    if (c->kind != (pairs ? VIT_P_DICT : VIT_P_LIST)) return bad(ps, pairs ? "SETITEMS on a non-dict" : "APPENDS on a non-list");
    if (pairs && (ps->sp - m) % 2) return bad(ps, "SETITEMS with an odd number of items");
    for (size_t i = m; i < ps->sp; i++)
        if (!add_item(ps, c, ps->stack[i])) return bad(ps, "out of memory");
    ps->sp = m;
    return VIT_OK;
}

static vit_status find_global(parser *ps, const char *mod, size_t ml, const char *nm, size_t nl) {
    static const struct {
        const char *mod, *name;
        int id;
    } allowed[] = {
        {"numpy.core.multiarray", "_reconstruct", G_RECONSTRUCT},
        {"numpy._core.multiarray", "_reconstruct", G_RECONSTRUCT}, /* numpy 2 */
        {"numpy", "ndarray", G_NDARRAY},
        {"numpy", "dtype", G_DTYPE},
        {"_codecs", "encode", G_ENCODE},
    };
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++) {
        if (strlen(allowed[i].mod) == ml && !memcmp(allowed[i].mod, mod, ml) && strlen(allowed[i].name) == nl &&
            !memcmp(allowed[i].name, nm, nl)) {
            vit_pobj *g = new_value(ps, VIT_P_GLOBAL);
            if (g) g->i = allowed[i].id;
            return push(ps, g);
        }
    }
    return vit_fail(VIT_ERR_FORMAT, "%s: pickle: global '%.*s.%.*s' at byte %zu is not allowed (only numpy arrays "
                    "and plain values are read)", ps->name, (int)(ml > 100 ? 100 : ml), mod,
                    (int)(nl > 100 ? 100 : nl), nm, ps->pos);
}

static int is_text(const vit_pobj *o, const char *s) {
    return o && (o->kind == VIT_P_STR || o->kind == VIT_P_BYTES) && o->len == strlen(s) && !memcmp(o->s, s, o->len);
}

/* _codecs.encode(text, 'latin1'): UTF-8 code points < 256 back to bytes. */
static vit_status latin1_encode(parser *ps, const vit_pobj *text, vit_pobj **out) {
    uint8_t *dst = arena_alloc(ps->p, text->len + 1);
    if (!dst) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: pickle: no memory", ps->name);
    size_t n = 0;
    for (size_t i = 0; i < text->len;) {
        uint8_t c = text->s[i];
        if (c < 0x80) {
            dst[n++] = c;
            i++;
        } else if ((c & 0xE0) == 0xC0 && i + 1 < text->len && (text->s[i + 1] & 0xC0) == 0x80 && c <= 0xC3) {
            dst[n++] = (uint8_t)((c & 0x1F) << 6 | (text->s[i + 1] & 0x3F));
            i += 2;
        } else {
            return bad(ps, "_codecs.encode of text that is not latin-1");
        }
    }
    vit_pobj *o = new_value(ps, VIT_P_BYTES);
    if (!o) return bad(ps, "too many values");
    o->s = dst;
    o->len = n;
    *out = o;
    return VIT_OK;
}

static vit_status do_reduce(parser *ps) {
    vit_pobj *f = NULL, *args = NULL, *r = NULL;
    VIT_TRY(pop(ps, &args));
    VIT_TRY(pop(ps, &f));
    if (f->kind != VIT_P_GLOBAL || args->kind != VIT_P_TUPLE) return bad(ps, "REDUCE of something not allowed");
    switch (f->i) {
    case G_RECONSTRUCT:
        /* _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD fills. */
        if (args->n != 3 || args->items[0]->kind != VIT_P_GLOBAL || args->items[0]->i != G_NDARRAY)
            return bad(ps, "_reconstruct with unexpected arguments");
        r = new_value(ps, VIT_P_NDARRAY);
        break;
    case G_DTYPE:
        if (args->n < 1 || (args->items[0]->kind != VIT_P_STR && args->items[0]->kind != VIT_P_BYTES))
            return bad(ps, "numpy.dtype with unexpected arguments");
        r = new_value(ps, VIT_P_DTYPE);
        if (r) {
            r->s = args->items[0]->s;
            r->len = args->items[0]->len;
        }
        break;
    case G_ENCODE:
        if (args->n != 2 || args->items[0]->kind != VIT_P_STR ||
            !(is_text(args->items[1], "latin1") || is_text(args->items[1], "latin-1")))
            return bad(ps, "_codecs.encode other than (text, 'latin1')");
        VIT_TRY(latin1_encode(ps, args->items[0], &r));
        break;
    default:
        return bad(ps, "REDUCE of a global that cannot be called");
    }
    return push(ps, r);
}

static vit_status do_build(parser *ps) {
    vit_pobj *state = NULL, *obj = NULL;
    VIT_TRY(pop(ps, &state));
    VIT_TRY(pop(ps, &obj));
    if (obj->kind == VIT_P_DTYPE) {
        /* (3, '|', None, None, None, -1, -1, 0): byte order and flags, which
         * do not matter for the one-byte types read here. */
        if (state->kind != VIT_P_TUPLE) return bad(ps, "dtype state is not a tuple");
        return push(ps, obj);
    }
    if (obj->kind != VIT_P_NDARRAY || obj->dtype) return bad(ps, "BUILD of something other than a new array");
    /* ndarray.__setstate__((version, shape, dtype, is_fortran, data)) or
     * the older form without version. */
    if (state->kind != VIT_P_TUPLE || (state->n != 5 && state->n != 4)) return bad(ps, "array state is not a 4/5-tuple");
    vit_pobj **st = state->items + (state->n == 5);
    const vit_pobj *shape = st[0], *dtype = st[1], *fortran = st[2], *data = st[3];
    if (shape->kind != VIT_P_TUPLE || shape->n > 4) return bad(ps, "array shape is not a tuple of at most 4");
    if (dtype->kind != VIT_P_DTYPE) return bad(ps, "array dtype is not a numpy.dtype");
    if ((fortran->kind != VIT_P_BOOL && fortran->kind != VIT_P_INT)) return bad(ps, "array order flag is not a bool");
    if (data->kind != VIT_P_BYTES) return bad(ps, "array data is not a byte string (object arrays are refused)");
    obj->ndim = (int)shape->n;
    for (size_t i = 0; i < shape->n; i++) {
        if (shape->items[i]->kind != VIT_P_INT || shape->items[i]->i < 0 || shape->items[i]->i > ((int64_t)1 << 40))
            return bad(ps, "array shape entry is not a sane int");
        obj->shape[i] = shape->items[i]->i;
    }
    if (fortran->i && obj->ndim > 1) return bad(ps, "Fortran-ordered arrays are not supported");
    obj->dtype = dtype;
    obj->data = data;
    return push(ps, obj);
}

static vit_status run(parser *ps) {
    for (;;) {
        const uint8_t *a;
        if (ps->pos >= ps->n) return bad(ps, "file ends before STOP");
        uint8_t op = ps->b[ps->pos++];
        switch (op) {
        case 0x80: /* PROTO */
            if (!(a = take(ps, 1))) return bad(ps, "truncated PROTO");
            if (*a < 2 || *a > 5) return bad(ps, "unsupported protocol (2..5 accepted)");
            break;
        case 0x95: /* FRAME: a length hint only */
            if (!take(ps, 8)) return bad(ps, "truncated FRAME");
            break;
        case '.': /* STOP */
            if (ps->sp != 1 || ps->nmarks) return bad(ps, "STOP with the stack not holding exactly one value");
            ps->p->root = ps->stack[0];
            return VIT_OK;
        case '(': /* MARK */
            if (ps->nmarks == ps->marks_cap) {
                if (ps->marks_cap >= MAX_STACK) return bad(ps, "too many marks");
                size_t cap = ps->marks_cap ? 2 * ps->marks_cap : 64;
                size_t *m = realloc(ps->marks, cap * sizeof *m);
                if (!m) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: pickle: no memory", ps->name);
                ps->marks = m;
                ps->marks_cap = cap;
            }
            ps->marks[ps->nmarks++] = ps->sp;
            break;
        case '}': VIT_TRY(push(ps, new_value(ps, VIT_P_DICT))); break;
        case ']': VIT_TRY(push(ps, new_value(ps, VIT_P_LIST))); break;
        case ')': VIT_TRY(push(ps, new_value(ps, VIT_P_TUPLE))); break;
        case 't': VIT_TRY(collect_mark(ps, VIT_P_TUPLE)); break;
        case 'l': VIT_TRY(collect_mark(ps, VIT_P_LIST)); break;
        case 'd':
            VIT_TRY(collect_mark(ps, VIT_P_DICT));
            if (ps->stack[ps->sp - 1]->n % 2) return bad(ps, "DICT with an odd number of items");
            break;
        case 0x85: VIT_TRY(make_tuple(ps, 1)); break;
        case 0x86: VIT_TRY(make_tuple(ps, 2)); break;
        case 0x87: VIT_TRY(make_tuple(ps, 3)); break;
        case 'a': { /* APPEND */
            vit_pobj *v = NULL;
            VIT_TRY(pop(ps, &v));
            if (ps->sp == 0 || ps->stack[ps->sp - 1]->kind != VIT_P_LIST) return bad(ps, "APPEND on a non-list");
            if (!add_item(ps, ps->stack[ps->sp - 1], v)) return bad(ps, "out of memory");
            break;
        }
        case 'e': VIT_TRY(extend_from_mark(ps, 0)); break;
        case 's': { /* SETITEM */
            vit_pobj *k = NULL, *v = NULL;
            VIT_TRY(pop(ps, &v));
            VIT_TRY(pop(ps, &k));
            if (ps->sp == 0 || ps->stack[ps->sp - 1]->kind != VIT_P_DICT) return bad(ps, "SETITEM on a non-dict");
            if (!add_item(ps, ps->stack[ps->sp - 1], k) || !add_item(ps, ps->stack[ps->sp - 1], v))
                return bad(ps, "out of memory");
            break;
        }
        case 'u': VIT_TRY(extend_from_mark(ps, 1)); break;
        case 'N': VIT_TRY(push(ps, new_value(ps, VIT_P_NONE))); break;
        case 0x88:
        case 0x89: {
            vit_pobj *o = new_value(ps, VIT_P_BOOL);
            if (o) o->i = op == 0x88;
            VIT_TRY(push(ps, o));
            break;
        }
        case 'K':
            if (!(a = take(ps, 1))) return bad(ps, "truncated BININT1");
            VIT_TRY(push_int(ps, a[0]));
            break;
        case 'M':
            if (!(a = take(ps, 2))) return bad(ps, "truncated BININT2");
            VIT_TRY(push_int(ps, (int64_t)le(a, 2)));
            break;
        case 'J':
            if (!(a = take(ps, 4))) return bad(ps, "truncated BININT");
            VIT_TRY(push_int(ps, (int32_t)(uint32_t)le(a, 4)));
            break;
        case 0x8a: { /* LONG1: little-endian two's complement, up to 8 bytes here */
            if (!(a = take(ps, 1))) return bad(ps, "truncated LONG1");
            size_t n = a[0];
            if (n > 8) return bad(ps, "LONG1 wider than 64 bits");
            if (!(a = take(ps, n))) return bad(ps, "truncated LONG1");
            uint64_t v = n ? le(a, (int)n) : 0;
            if (n && n < 8 && (a[n - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
            VIT_TRY(push_int(ps, (int64_t)v));
            break;
        }
        case 'U': VIT_TRY(push_string(ps, VIT_P_BYTES, 1)); break; /* SHORT_BINSTRING */
        case 'T': VIT_TRY(push_string(ps, VIT_P_BYTES, 4)); break; /* BINSTRING */
        case 'C': VIT_TRY(push_string(ps, VIT_P_BYTES, 1)); break; /* SHORT_BINBYTES */
        case 'B': VIT_TRY(push_string(ps, VIT_P_BYTES, 4)); break; /* BINBYTES */
        case 0x8e: VIT_TRY(push_string(ps, VIT_P_BYTES, 8)); break; /* BINBYTES8 */
        case 0x8c: VIT_TRY(push_string(ps, VIT_P_STR, 1)); break; /* SHORT_BINUNICODE */
        case 'X': VIT_TRY(push_string(ps, VIT_P_STR, 4)); break; /* BINUNICODE */
        case 0x8d: VIT_TRY(push_string(ps, VIT_P_STR, 8)); break; /* BINUNICODE8 */
        case 'c': { /* GLOBAL "module\nname\n" */
            const uint8_t *mod = ps->b + ps->pos, *end = memchr(mod, '\n', ps->n - ps->pos);
            if (!end || end - mod > 200) return bad(ps, "malformed GLOBAL");
            const uint8_t *nm = end + 1, *end2 = memchr(nm, '\n', ps->n - (size_t)(nm - ps->b));
            if (!end2 || end2 - nm > 200) return bad(ps, "malformed GLOBAL");
            ps->pos = (size_t)(end2 + 1 - ps->b);
            VIT_TRY(find_global(ps, (const char *)mod, (size_t)(end - mod), (const char *)nm, (size_t)(end2 - nm)));
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            vit_pobj *mod = NULL, *nm = NULL;
            VIT_TRY(pop(ps, &nm));
            VIT_TRY(pop(ps, &mod));
            if (mod->kind != VIT_P_STR || nm->kind != VIT_P_STR) return bad(ps, "STACK_GLOBAL of non-strings");
            VIT_TRY(find_global(ps, (const char *)mod->s, mod->len, (const char *)nm->s, nm->len));
            break;
        }
        case 'R': VIT_TRY(do_reduce(ps)); break;
        case 'b': VIT_TRY(do_build(ps)); break;
        case 'q':
            if (!(a = take(ps, 1))) return bad(ps, "truncated BINPUT");
            VIT_TRY(memo_put(ps, a[0]));
            break;
        case 'r':
            if (!(a = take(ps, 4))) return bad(ps, "truncated LONG_BINPUT");
            VIT_TRY(memo_put(ps, le(a, 4)));
            break;
        case 0x94: { /* MEMOIZE: the next free index */
            VIT_TRY(memo_put(ps, ps->memo_len));
            break;
        }
        case 'h':
            if (!(a = take(ps, 1))) return bad(ps, "truncated BINGET");
            VIT_TRY(memo_get(ps, a[0]));
            break;
        case 'j':
            if (!(a = take(ps, 4))) return bad(ps, "truncated LONG_BINGET");
            VIT_TRY(memo_get(ps, le(a, 4)));
            break;
        case '0': { /* POP */
            vit_pobj *v = NULL;
            VIT_TRY(pop(ps, &v));
            break;
        }
        default: {
            char what[64];
            snprintf(what, sizeof what, "opcode 0x%02x is not supported", op);
            ps->pos--;
            return bad(ps, what);
        }
        }
    }
}

vit_status vit_pickle_load(const uint8_t *data, size_t size, const char *name, vit_pickle **out) {
    VIT_CHECK_ARG(out, "vit_pickle_load: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(data || size == 0, "vit_pickle_load: data is NULL");
    parser ps = {0};
    ps.name = name ? name : "pickle";
    ps.b = data;
    ps.n = size;
    ps.p = calloc(1, sizeof *ps.p);
    if (!ps.p) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: pickle: no memory", ps.name);
    vit_status s = run(&ps);
    free(ps.stack);
    free(ps.marks);
    free(ps.memo);
    if (s != VIT_OK) {
        vit_pickle_free(ps.p);
        return s;
    }
    *out = ps.p;
    return VIT_OK;
}

const vit_pobj *vit_pobj_get(const vit_pobj *dict, const char *key) {
    if (!dict || dict->kind != VIT_P_DICT) return NULL;
    for (size_t i = 0; i + 1 < dict->n; i += 2)
        if (is_text(dict->items[i], key)) return dict->items[i + 1];
    return NULL;
}
