/* Reads the .expected files make_reference.py writes: records of
 * u32 name length, name, u64 count, count little-endian f32. */
#ifndef VIT_IO_TEST_EXPECTED_H
#define VIT_IO_TEST_EXPECTED_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io_test_util.h"

typedef struct expected {
    char *blob;
    size_t size;
} expected;

/* 0 when the file is missing. */
static inline int expected_load(expected *e, const char *path) {
    e->blob = io_slurp(path, &e->size);
    return e->blob != NULL;
}

static inline void expected_free(expected *e) { free(e->blob); }

/* Calls fn for each record; values may be unaligned, so they are copied out. */
typedef void (*expected_fn)(void *user, const char *name, const float *values, uint64_t count);

static inline int expected_each(const expected *e, expected_fn fn, void *user) {
    size_t at = 0;
    while (at + 4 <= e->size) {
        uint32_t nlen;
        uint64_t count;
        memcpy(&nlen, e->blob + at, 4);
        at += 4;
        if (at + nlen + 8 > e->size || nlen > 255) return -1;
        char name[256];
        memcpy(name, e->blob + at, nlen);
        name[nlen] = '\0';
        at += nlen;
        memcpy(&count, e->blob + at, 8);
        at += 8;
        if (count > (e->size - at) / 4) return -1;
        float *v = malloc(count ? count * 4 : 4);
        memcpy(v, e->blob + at, count * 4);
        at += count * 4;
        fn(user, name, v, count);
        free(v);
    }
    return at == e->size ? 0 : -1;
}

/* One record by name into a malloc'ed array (NULL when absent). */
typedef struct expected_find {
    const char *name;
    float *values;
    uint64_t count;
} expected_find;

static inline void expected_find_fn(void *user, const char *name, const float *values, uint64_t count) {
    expected_find *f = user;
    if (strcmp(name, f->name) || f->values) return;
    f->values = malloc(count ? count * 4 : 4);
    memcpy(f->values, values, count * 4);
    f->count = count;
}

static inline float *expected_get(const expected *e, const char *name, uint64_t *count) {
    expected_find f = {name, NULL, 0};
    expected_each(e, expected_find_fn, &f);
    if (count) *count = f.count;
    return f.values;
}

/* Folder of the reference files: $VIT_IO_REFERENCE_DIR, set by meson. */
static inline const char *reference_dir(void) {
    const char *d = getenv("VIT_IO_REFERENCE_DIR");
    return d && *d ? d : NULL;
}

#endif
