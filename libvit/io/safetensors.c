/* safetensors reader and writer (io/safetensors.h). */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[VIT_ST_DTYPE_COUNT] = {
    [VIT_ST_BOOL] = {"BOOL", 1},   [VIT_ST_U8] = {"U8", 1},     [VIT_ST_I8] = {"I8", 1},
    [VIT_ST_F8_E5M2] = {"F8_E5M2", 1}, [VIT_ST_F8_E4M3] = {"F8_E4M3", 1},
    [VIT_ST_I16] = {"I16", 2},     [VIT_ST_U16] = {"U16", 2},   [VIT_ST_F16] = {"F16", 2},
    [VIT_ST_BF16] = {"BF16", 2},   [VIT_ST_I32] = {"I32", 4},   [VIT_ST_U32] = {"U32", 4},
    [VIT_ST_F32] = {"F32", 4},     [VIT_ST_I64] = {"I64", 8},   [VIT_ST_U64] = {"U64", 8},
    [VIT_ST_F64] = {"F64", 8},
};

const char *vit_st_dtype_name(vit_st_dtype dtype) {
    return (unsigned)dtype < VIT_ST_DTYPE_COUNT ? dtypes[dtype].name : "?";
}

size_t vit_st_dtype_size(vit_st_dtype dtype) {
    return (unsigned)dtype < VIT_ST_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

/* ------------------------------------------------------------- conversions */
float vit_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13); /* inf / nan (payload kept) */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        /* subnormal: shift the mantissa up until its leading 1 is implicit */
        exp = 113;
        while (!(man & 0x400)) {
            man <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((man & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float vit_bf16_to_float(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t vit_float_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

uint16_t vit_float_to_half(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return sign | 0x7E00;  /* nan */
    if (a >= 0x477FF000u) return sign | 0x7C00; /* 65520 and up round to inf */
    if (a >= 0x38800000u) {
        /* normal half: rebias the exponent, round the 13 dropped mantissa bits;
         * a carry out of the mantissa correctly bumps the exponent */
        uint32_t h = (((a >> 23) - 112) << 10) | ((a >> 13) & 0x3FF), r = a & 0x1FFF;
        if (r > 0x1000 || (r == 0x1000 && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    if (a <= 0x33000000u) return sign; /* at most half the smallest subnormal: ties to 0 */
    /* subnormal half: units of 2^-24, i.e. the full mantissa shifted right */
    int shift = 126 - (int)(a >> 23);
    uint32_t man = (a & 0x7FFFFF) | 0x800000;
    uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* ------------------------------------------------------------------ reader */
/* Tensors (and the __metadata__ entry) one header may list. */
#define VIT_ST_MAX_ENTRIES ((size_t)1 << 20)

struct vit_st_file {
    char *path;
    const unsigned char *base; /* the whole file */
    size_t size;
    void *map;                 /* mmap'ed region (size bytes), or NULL */
    unsigned char *owned;      /* or a malloc'ed copy */
    const unsigned char *data; /* base + 8 + header length */
    uint64_t data_size;
    vit_json_doc *header;
    const vit_json *meta;      /* __metadata__ object or NULL */
    vit_st_tensor *tensors;    /* header order */
    size_t count;
    const vit_st_tensor **by_name; /* sorted by name */
};

void vit_st_close(vit_st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->size);
    free(f->owned);
    vit_json_free(f->header);
    free(f->tensors);
    free(f->by_name);
    free(f->path);
    free(f);
}

static int by_name_cmp(const void *a, const void *b) {
    return strcmp((*(const vit_st_tensor *const *)a)->name, (*(const vit_st_tensor *const *)b)->name);
}

static int by_offset_cmp(const void *a, const void *b) {
    const vit_st_tensor *x = *(const vit_st_tensor *const *)a, *y = *(const vit_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static vit_status bad(const vit_st_file *f, const char *tensor, const char *fmt, ...) VIT_PRINTF(3, 4);
static vit_status bad(const vit_st_file *f, const char *tensor, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (tensor) return vit_fail(VIT_ERR_FORMAT, "%s: tensor \"%.200s\": %s", f->path, tensor, msg);
    return vit_fail(VIT_ERR_FORMAT, "%s: %s", f->path, msg);
}

/* A JSON array of non-negative integers into out (at most cap of them). */
static bool uint_array(const vit_json *a, uint64_t *out, int cap, int *n) {
    if (!a || a->type != VIT_JSON_ARRAY || a->len > (size_t)cap) return false;
    for (size_t i = 0; i < a->len; i++) {
        if (a->items[i].type != VIT_JSON_INT || a->items[i].integer < 0) return false;
        out[i] = (uint64_t)a->items[i].integer;
    }
    *n = (int)a->len;
    return true;
}

static vit_status parse_entry(vit_st_file *f, const vit_json *e, vit_st_tensor *t) {
    t->name = e->key;
    if (strlen(e->key) != e->key_len) return bad(f, e->key, "name contains a NUL character");
    if (e->type != VIT_JSON_OBJECT) return bad(f, e->key, "entry is a %s, not an object", vit_json_type_name(e->type));

    const vit_json *dt = vit_json_get(e, "dtype");
    if (!dt || dt->type != VIT_JSON_STRING) return bad(f, e->key, "missing or non-string \"dtype\"");
    int d = 0;
    while (d < VIT_ST_DTYPE_COUNT && strcmp(dt->str, dtypes[d].name) != 0) d++;
    if (d == VIT_ST_DTYPE_COUNT) return bad(f, e->key, "unknown dtype \"%.40s\"", dt->str);
    t->dtype = (vit_st_dtype)d;

    uint64_t dims[VIT_ST_MAX_DIMS];
    const vit_json *sh = vit_json_get(e, "shape");
    if (!sh || sh->type != VIT_JSON_ARRAY) return bad(f, e->key, "missing or non-array \"shape\"");
    if (sh->len > VIT_ST_MAX_DIMS) return bad(f, e->key, "%zu dimensions (at most %d supported)", sh->len, VIT_ST_MAX_DIMS);
    if (!uint_array(sh, dims, VIT_ST_MAX_DIMS, &t->ndim))
        return bad(f, e->key, "\"shape\" must hold non-negative integers");
    /* numel and bytes with overflow checks: both must fit the file anyway */
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        t->shape[i] = (int64_t)dims[i];
        if (dims[i] && numel > UINT64_MAX / dims[i]) return bad(f, e->key, "shape overflows");
        numel *= dims[i];
    }
    size_t esize = dtypes[d].size;
    if (numel > UINT64_MAX / esize) return bad(f, e->key, "shape overflows");
    t->numel = numel;

    uint64_t off[2];
    int n_off = 0;
    const vit_json *of = vit_json_get(e, "data_offsets");
    if (!uint_array(of, off, 2, &n_off) || n_off != 2)
        return bad(f, e->key, "\"data_offsets\" must be two non-negative integers");
    if (off[0] > off[1]) return bad(f, e->key, "data_offsets [%llu, %llu] are reversed",
                                    (unsigned long long)off[0], (unsigned long long)off[1]);
    if (off[1] > f->data_size)
        return bad(f, e->key, "data_offsets [%llu, %llu] run past the data (%llu bytes)",
                   (unsigned long long)off[0], (unsigned long long)off[1], (unsigned long long)f->data_size);
    if (off[1] - off[0] != numel * esize)
        return bad(f, e->key, "data_offsets span %llu bytes but shape x %s needs %llu",
                   (unsigned long long)(off[1] - off[0]), dtypes[d].name, (unsigned long long)(numel * esize));
    t->begin = off[0];
    t->end = off[1];
    return VIT_OK;
}

/* Everything after the header text has been located. */
static vit_status parse_header(vit_st_file *f, const char *text, size_t len) {
    if (len == 0 || text[0] != '{') return bad(f, NULL, "header does not start with '{'");
    vit_json_limits lim = {.max_bytes = VIT_ST_MAX_HEADER, .max_depth = 8};
    vit_status s = vit_json_parse(text, len, &lim, f->path, &f->header);
    if (s != VIT_OK) return s;
    const vit_json *root = f->header->root;
    /* The table is sized from the header: bound it (a million tensors is far
     * beyond any model; the 100 MB header alone would allow ten times that). */
    if (root->len > VIT_ST_MAX_ENTRIES)
        return bad(f, NULL, "header lists %zu entries (at most %zu accepted)", root->len, VIT_ST_MAX_ENTRIES);

    f->tensors = calloc(root->len ? root->len : 1, sizeof *f->tensors);
    f->by_name = calloc(root->len ? root->len : 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for the header", f->path);
    for (size_t i = 0; i < root->len; i++) {
        const vit_json *e = &root->items[i];
        if (strcmp(e->key, "__metadata__") == 0 && e->key_len == 12) {
            if (e->type != VIT_JSON_OBJECT) return bad(f, NULL, "__metadata__ is not an object");
            for (size_t k = 0; k < e->len; k++)
                if (e->items[k].type != VIT_JSON_STRING || strlen(e->items[k].key) != e->items[k].key_len)
                    return bad(f, NULL, "__metadata__ value \"%.100s\" is not a string", e->items[k].key);
            f->meta = e;
            continue;
        }
        VIT_TRY(parse_entry(f, e, &f->tensors[f->count]));
        f->by_name[f->count] = &f->tensors[f->count];
        f->count++;
    }

    /* No overlaps and no holes: sorted by offset, each tensor starts where
     * the previous ended, and the last ends at the end of the file. */
    qsort(f->by_name, f->count, sizeof *f->by_name, by_offset_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < f->count; i++) {
        const vit_st_tensor *t = f->by_name[i];
        if (t->begin < at) return bad(f, t->name, "data overlaps the previous tensor's");
        if (t->begin > at)
            return bad(f, t->name, "hole of %llu bytes before its data", (unsigned long long)(t->begin - at));
        at = t->end;
    }
    if (at != f->data_size)
        return bad(f, NULL, "%llu bytes after the last tensor's data (tensors cover %llu of %llu)",
                   (unsigned long long)(f->data_size - at), (unsigned long long)at,
                   (unsigned long long)f->data_size);

    qsort(f->by_name, f->count, sizeof *f->by_name, by_name_cmp);
    return VIT_OK;
}

static vit_status parse_file(vit_st_file *f) {
    if (f->size < 8) return bad(f, NULL, "%zu bytes: too short for a safetensors file", f->size);
    uint64_t n = le64(f->base);
    if (n > f->size - 8)
        return bad(f, NULL, "header length %llu runs past the end of the file (%zu bytes)", (unsigned long long)n,
                   f->size);
    if (n > VIT_ST_MAX_HEADER)
        return bad(f, NULL, "header length %llu exceeds the limit of %llu bytes", (unsigned long long)n,
                   (unsigned long long)VIT_ST_MAX_HEADER);
    f->data = f->base + 8 + n;
    f->data_size = f->size - 8 - n;
    return parse_header(f, (const char *)f->base + 8, (size_t)n);
}

static vit_st_file *new_file(const char *name) {
    vit_st_file *f = calloc(1, sizeof *f);
    if (f && !(f->path = strdup(name ? name : "<memory>"))) {
        free(f);
        f = NULL;
    }
    return f;
}

vit_status vit_st_open_memory(const void *data, size_t size, const char *name, vit_st_file **out) {
    VIT_CHECK_ARG(out, "vit_st_open_memory: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(data || size == 0, "vit_st_open_memory: data is NULL");
    vit_st_file *f = new_file(name);
    if (!f) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
    f->base = data;
    f->size = size;
    vit_status s = parse_file(f);
    if (s != VIT_OK) {
        vit_st_close(f);
        return s;
    }
    *out = f;
    return VIT_OK;
}

vit_status vit_st_open(const char *path, vit_st_file **out) {
    VIT_CHECK_ARG(out, "vit_st_open: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(path, "vit_st_open: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vit_fail(VIT_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return vit_fail(VIT_ERR_IO, "%s: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return vit_fail(VIT_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return vit_fail(VIT_ERR_IO, "%s: file too large for this machine", path);
    }
    vit_st_file *f = new_file(path);
    if (!f) {
        close(fd);
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    f->size = (size_t)st.st_size;
    /* mmap avoids a second copy of a multi-GB checkpoint; files mmap refuses
     * (empty ones, some special file systems) are read instead. */
    if (f->size > 0) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            f->map = m;
            f->base = m;
        }
    }
    if (!f->map && f->size > 0) {
        f->owned = malloc(f->size);
        size_t got = 0;
        while (f->owned && got < f->size) {
            ssize_t r = read(fd, f->owned + got, f->size - got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
        if (!f->owned || got != f->size) {
            vit_status s = f->owned ? vit_fail(VIT_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, f->size)
                                    : vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory to read %zu bytes", path, f->size);
            close(fd);
            vit_st_close(f);
            return s;
        }
        f->base = f->owned;
    }
    close(fd);
    vit_status s = parse_file(f);
    if (s != VIT_OK) {
        vit_st_close(f);
        return s;
    }
    *out = f;
    return VIT_OK;
}

const char *vit_st_path(const vit_st_file *f) { return f->path; }
size_t vit_st_count(const vit_st_file *f) { return f->count; }
const vit_st_tensor *vit_st_at(const vit_st_file *f, size_t index) {
    return index < f->count ? &f->tensors[index] : NULL;
}

const vit_st_tensor *vit_st_find(const vit_st_file *f, const char *name) {
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *vit_st_metadata(const vit_st_file *f, const char *key) {
    const vit_json *v = vit_json_get(f->meta, key);
    return v ? v->str : NULL;
}

size_t vit_st_metadata_count(const vit_st_file *f) { return f->meta ? f->meta->len : 0; }

void vit_st_metadata_at(const vit_st_file *f, size_t index, const char **key, const char **value) {
    bool ok = f->meta && index < f->meta->len;
    *key = ok ? f->meta->items[index].key : NULL;
    *value = ok ? f->meta->items[index].str : NULL;
}

const void *vit_st_raw(const vit_st_file *f, const vit_st_tensor *t) { return f->data + t->begin; }

vit_status vit_st_read_f32(const vit_st_file *f, const vit_st_tensor *t, float *dst, size_t count) {
    VIT_CHECK_ARG(f && t && (dst || count == 0), "vit_st_read_f32: NULL argument");
    if (count != t->numel)
        return vit_fail(VIT_ERR_SHAPE, "%s: tensor \"%s\": has %llu elements, caller expects %zu", f->path, t->name,
                        (unsigned long long)t->numel, count);
    const unsigned char *p = f->data + t->begin;
    switch (t->dtype) {
    case VIT_ST_F32:
        for (size_t i = 0; i < count; i++) {
            uint32_t u = le32(p + 4 * i);
            memcpy(&dst[i], &u, 4);
        }
        return VIT_OK;
    case VIT_ST_F16:
        for (size_t i = 0; i < count; i++) dst[i] = vit_half_to_float(le16(p + 2 * i));
        return VIT_OK;
    case VIT_ST_BF16:
        for (size_t i = 0; i < count; i++) dst[i] = vit_bf16_to_float(le16(p + 2 * i));
        return VIT_OK;
    case VIT_ST_F64:
        for (size_t i = 0; i < count; i++) {
            uint64_t u = le64(p + 8 * i);
            double d;
            memcpy(&d, &u, 8);
            dst[i] = (float)d;
        }
        return VIT_OK;
    default:
        return vit_fail(VIT_ERR_DTYPE, "%s: tensor \"%s\": dtype %s cannot be read as f32", f->path, t->name,
                        dtypes[t->dtype].name);
    }
}

/* ------------------------------------------------------------------ writer */
typedef struct writer {
    const vit_st_entry *entries;
    size_t count;
    const vit_json_buf *header; /* already padded */
    uint64_t *bytes;            /* per entry */
    vit_st_fill_fn fill;
    void *user;
    unsigned char *scratch;     /* largest entry, for fill and byte swapping */
} writer;

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap_bytes(unsigned char *p, uint64_t bytes, size_t esize) {
    for (uint64_t i = 0; i + esize <= bytes; i += esize)
        for (size_t a = 0, z = esize - 1; a < z; a++, z--) {
            unsigned char t = p[i + a];
            p[i + a] = p[i + z];
            p[i + z] = t;
        }
}

static vit_status write_body(FILE *fp, void *user) {
    writer *w = user;
    unsigned char len[8];
    uint64_t n = w->header->len;
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(n >> (8 * i));
    if (fwrite(len, 1, 8, fp) != 8 || fwrite(w->header->data, 1, n, fp) != n)
        return vit_fail(VIT_ERR_IO, "write failed: %s", strerror(errno));
    bool le = host_is_little_endian();
    for (size_t i = 0; i < w->count; i++) {
        const vit_st_entry *e = &w->entries[i];
        size_t esize = dtypes[e->dtype].size;
        const unsigned char *src = e->data;
        if (!w->bytes[i]) continue;
        if (!src) {
            VIT_TRY(w->fill(w->user, i, w->scratch, (size_t)w->bytes[i]));
            src = w->scratch;
        }
        if (!le && esize > 1) {
            if (src != w->scratch) memcpy(w->scratch, src, (size_t)w->bytes[i]);
            swap_bytes(w->scratch, w->bytes[i], esize);
            src = w->scratch;
        }
        if (fwrite(src, 1, (size_t)w->bytes[i], fp) != w->bytes[i])
            return vit_fail(VIT_ERR_IO, "tensor \"%s\": write failed: %s", e->name, strerror(errno));
    }
    return VIT_OK;
}

static int str_ptr_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The first repeated string among n, or NULL. */
static const char *find_duplicate(const char **names, size_t n) {
    qsort(names, n, sizeof *names, str_ptr_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

static vit_status check_entries(const char *path, const vit_st_entry *entries, size_t count, const vit_st_meta *meta,
                                size_t meta_count, bool have_fill, uint64_t *bytes, uint64_t *largest) {
    *largest = 0;
    for (size_t i = 0; i < count; i++) {
        const vit_st_entry *e = &entries[i];
        VIT_CHECK_ARG(e->name && *e->name && strcmp(e->name, "__metadata__") != 0,
                      "%s: entry %zu: name is NULL, empty or \"__metadata__\"", path, i);
        VIT_CHECK_ARG((unsigned)e->dtype < VIT_ST_DTYPE_COUNT, "%s: tensor \"%s\": bad dtype", path, e->name);
        VIT_CHECK_ARG(e->ndim >= 0 && e->ndim <= VIT_ST_MAX_DIMS, "%s: tensor \"%s\": bad ndim %d", path, e->name,
                      e->ndim);
        VIT_CHECK_ARG(e->data || have_fill, "%s: tensor \"%s\": no data and no fill callback", path, e->name);
        uint64_t b = dtypes[e->dtype].size;
        for (int d = 0; d < e->ndim; d++) {
            VIT_CHECK_ARG(e->shape[d] >= 0, "%s: tensor \"%s\": negative dimension", path, e->name);
            VIT_CHECK_ARG(e->shape[d] == 0 || b <= (uint64_t)INT64_MAX / (uint64_t)e->shape[d],
                          "%s: tensor \"%s\": shape overflows", path, e->name);
            b *= (uint64_t)e->shape[d];
        }
        bytes[i] = b;
        if (b > *largest) *largest = b;
    }
    for (size_t i = 0; i < meta_count; i++)
        VIT_CHECK_ARG(meta[i].key && meta[i].value, "%s: metadata entry %zu has a NULL key or value", path, i);

    size_t n = count > meta_count ? count : meta_count;
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    for (size_t i = 0; i < count; i++) names[i] = entries[i].name;
    const char *dup = find_duplicate(names, count);
    if (dup) {
        vit_status s = vit_fail(VIT_ERR_INVALID_ARGUMENT, "%s: tensor name \"%s\" appears twice", path, dup);
        free(names);
        return s;
    }
    for (size_t i = 0; i < meta_count; i++) names[i] = meta[i].key;
    dup = find_duplicate(names, meta_count);
    vit_status s = VIT_OK;
    if (dup) s = vit_fail(VIT_ERR_INVALID_ARGUMENT, "%s: metadata key \"%s\" appears twice", path, dup);
    free(names);
    return s;
}

/* The header, then the tensors: atomically to path, or to mem when given. */
static vit_status emit(const char *path, FILE *mem, const vit_st_entry *entries, size_t count, const vit_st_meta *meta,
                       size_t meta_count, vit_st_fill_fn fill, void *user) {
    VIT_CHECK_ARG(entries || count == 0, "%s: entries is NULL", path);
    VIT_CHECK_ARG(meta || meta_count == 0, "%s: meta is NULL", path);
    uint64_t *bytes = calloc(count ? count : 1, sizeof *bytes), largest;
    if (!bytes) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    vit_status s = check_entries(path, entries, count, meta, meta_count, fill != NULL, bytes, &largest);
    if (s != VIT_OK) {
        free(bytes);
        return s;
    }

    vit_json_buf h = {0};
    vit_json_buf_raw(&h, "{", 1);
    if (meta_count) {
        vit_json_buf_raw(&h, "\"__metadata__\":{", 16);
        for (size_t i = 0; i < meta_count; i++) {
            if (i) vit_json_buf_raw(&h, ",", 1);
            vit_json_buf_string(&h, meta[i].key);
            vit_json_buf_raw(&h, ":", 1);
            vit_json_buf_string(&h, meta[i].value);
        }
        vit_json_buf_raw(&h, "}", 1);
    }
    uint64_t at = 0;
    for (size_t i = 0; i < count; i++) {
        const vit_st_entry *e = &entries[i];
        if (i || meta_count) vit_json_buf_raw(&h, ",", 1);
        vit_json_buf_string(&h, e->name);
        vit_json_buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtypes[e->dtype].name);
        for (int d = 0; d < e->ndim; d++) vit_json_buf_printf(&h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
        vit_json_buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at,
                            (unsigned long long)(at + bytes[i]));
        at += bytes[i];
    }
    vit_json_buf_raw(&h, "}", 1);
    /* spaces until 8 + header is a multiple of 8, as the reference writers do,
     * so the data section is aligned for zero-copy readers */
    while (!h.failed && h.len % 8) vit_json_buf_raw(&h, " ", 1);

    writer w = {.entries = entries, .count = count, .header = &h, .bytes = bytes, .fill = fill, .user = user};
    if (h.failed) {
        s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory building the header", path);
    } else if (h.len > VIT_ST_MAX_HEADER) {
        s = vit_fail(VIT_ERR_INVALID_ARGUMENT, "%s: header of %zu bytes exceeds the format's limit", path, h.len);
    } else if (largest && (largest > SIZE_MAX || !(w.scratch = malloc((size_t)largest)))) {
        s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for a %llu-byte tensor", path, (unsigned long long)largest);
    } else {
        s = mem ? write_body(mem, &w) : vit_atomic_write(path, write_body, &w);
    }
    free(w.scratch);
    vit_json_buf_free(&h);
    free(bytes);
    return s;
}

vit_status vit_st_write(const char *path, const vit_st_entry *entries, size_t count, const vit_st_meta *meta,
                        size_t meta_count, vit_st_fill_fn fill, void *user) {
    VIT_CHECK_ARG(path, "vit_st_write: path is NULL");
    return emit(path, NULL, entries, count, meta, meta_count, fill, user);
}

vit_status vit_st_build(const char *name, const vit_st_entry *entries, size_t count, const vit_st_meta *meta,
                        size_t meta_count, vit_st_fill_fn fill, void *user, vit_st_file **out) {
    VIT_CHECK_ARG(out, "vit_st_build: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(name, "vit_st_build: name is NULL");
    char *buf = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&buf, &size);
    if (!mem) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    vit_status s = emit(name, mem, entries, count, meta, meta_count, fill, user);
    if (fclose(mem) != 0 && s == VIT_OK) s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    vit_st_file *f = s == VIT_OK ? new_file(name) : NULL;
    if (s == VIT_OK && !f) s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    if (s != VIT_OK) {
        free(buf);
        return s;
    }
    f->owned = (unsigned char *)buf; /* freed by vit_st_close from here on */
    f->base = f->owned;
    f->size = size;
    if ((s = parse_file(f)) != VIT_OK) {
        vit_st_close(f);
        return s;
    }
    *out = f;
    return VIT_OK;
}
