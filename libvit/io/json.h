/* A small strict JSON parser (RFC 8259) for safetensors headers and metadata,
 * and a tiny writer for building JSON text in memory.
 *
 * The parser never reads outside [text, text + len), needs no NUL terminator,
 * rejects anything RFC 8259 rejects (trailing commas, leading zeros, control
 * characters or invalid UTF-8 in strings, lone surrogates, trailing garbage)
 * and also duplicate keys in one object. The whole tree lives in one arena
 * owned by the vit_json_doc and is freed at once. */
#ifndef VIT_IO_JSON_H
#define VIT_IO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/core.h"

typedef enum vit_json_type {
    VIT_JSON_NULL = 0,
    VIT_JSON_BOOL,
    VIT_JSON_INT,    /* an integer literal (no fraction or exponent) that fits int64 */
    VIT_JSON_NUMBER, /* any other number: only .number is meaningful */
    VIT_JSON_STRING,
    VIT_JSON_ARRAY,
    VIT_JSON_OBJECT
} vit_json_type;

typedef struct vit_json vit_json;
struct vit_json {
    vit_json_type type;
    size_t offset;       /* byte offset of the value in the input, for messages */
    const char *key;     /* member name when the parent is an object, else NULL */
    size_t key_len;      /* (keys and strings are NUL-terminated but may hold \u0000) */
    bool boolean;        /* BOOL */
    int64_t integer;     /* INT */
    double number;       /* INT and NUMBER */
    const char *str;     /* STRING: UTF-8, NUL-terminated */
    size_t len;          /* STRING: bytes; ARRAY/OBJECT: number of items */
    vit_json *items;     /* ARRAY/OBJECT: len contiguous children (object members carry .key) */
};

typedef struct vit_json_chunk vit_json_chunk;
typedef struct vit_json_doc {
    vit_json *root;
    vit_json_chunk *chunks; /* the arena every node and string lives in */
} vit_json_doc;

typedef struct vit_json_limits {
    size_t max_bytes; /* input longer than this is rejected (0: VIT_JSON_DEFAULT_MAX_BYTES) */
    int max_depth;    /* nesting deeper than this is rejected (0: VIT_JSON_DEFAULT_MAX_DEPTH) */
} vit_json_limits;

#define VIT_JSON_DEFAULT_MAX_BYTES ((size_t)100 << 20) /* safetensors' own header limit */
#define VIT_JSON_DEFAULT_MAX_DEPTH 64

/* Parses text[0..len) into *out (free with vit_json_free). limits may be NULL.
 * On error: VIT_ERR_FORMAT "<what>: JSON error at byte N: <reason>" (what
 * names the source for the message, e.g. the file), or VIT_ERR_OUT_OF_MEMORY. */
vit_status vit_json_parse(const char *text, size_t len, const vit_json_limits *limits, const char *what,
                          vit_json_doc **out);
void vit_json_free(vit_json_doc *doc); /* NULL is a no-op */

/* Member of an object by key (NUL-terminated); NULL when absent or obj is not an object. */
const vit_json *vit_json_get(const vit_json *obj, const char *key);
/* A short name for a type ("object", "string", ...), for messages. */
const char *vit_json_type_name(vit_json_type type);

/* ------------------------------------------------------------------ writer */
/* A growable text buffer. Errors are sticky: after a failed allocation every
 * append is a no-op and .failed stays set, so callers check once at the end. */
typedef struct vit_json_buf {
    char *data; /* NUL-terminated when len > 0 */
    size_t len, cap;
    bool failed;
} vit_json_buf;

void vit_json_buf_raw(vit_json_buf *b, const char *s, size_t n);
void vit_json_buf_printf(vit_json_buf *b, const char *fmt, ...) VIT_PRINTF(2, 3);
/* s (NUL-terminated) as a quoted JSON string: " \ and control characters escaped. */
void vit_json_buf_string(vit_json_buf *b, const char *s);
void vit_json_buf_free(vit_json_buf *b);

/* The same quoting straight to a stream; VIT_ERR_IO when the write fails. */
vit_status vit_json_write_string(FILE *f, const char *s);

#endif
