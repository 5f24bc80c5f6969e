/* A restricted unpickler: enough of the pickle format to read the CIFAR-10
 * "python version" batches (Python 2 cPickle protocol 2, and Python 3 protocol
 * 2-4 re-pickles of the same dicts), and nothing more.
 *
 * It builds plain values only: None, bools, ints, byte and text strings,
 * tuples, lists, dicts, and numpy arrays from exactly three globals
 * (numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype) plus
 * _codecs.encode(text, 'latin1'), which is how Python 3 writes bytes at
 * protocol 2. Any other global, opcode or call is refused: nothing is ever
 * executed or constructed beyond these values. */
#ifndef VIT_IO_PICKLE_H
#define VIT_IO_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef enum vit_pkind {
    VIT_P_NONE,
    VIT_P_BOOL,    /* i */
    VIT_P_INT,     /* i */
    VIT_P_BYTES,   /* s, len: Python 2 str and Python 3 bytes */
    VIT_P_STR,     /* s, len: UTF-8 text (Python unicode / 3 str) */
    VIT_P_TUPLE,   /* items[n] */
    VIT_P_LIST,    /* items[n] */
    VIT_P_DICT,    /* items[2n]: key, value, key, value... */
    VIT_P_GLOBAL,  /* i: one of the allowed globals */
    VIT_P_DTYPE,   /* s, len: the dtype's name ("u1") */
    VIT_P_NDARRAY  /* ndim, shape, dtype, data (BYTES) */
} vit_pkind;

typedef struct vit_pobj vit_pobj;
struct vit_pobj {
    vit_pkind kind;
    int64_t i;
    const uint8_t *s;
    size_t len;
    vit_pobj **items;
    size_t n, cap;
    int ndim;
    int64_t shape[4];
    const vit_pobj *dtype;
    const vit_pobj *data;
};

typedef struct vit_pickle vit_pickle;

/* Parses data[0..size) (which must outlive the result: large strings point
 * into it). name is the file, for messages. */
vit_status vit_pickle_load(const uint8_t *data, size_t size, const char *name, vit_pickle **out);
void vit_pickle_free(vit_pickle *p); /* NULL is a no-op */
const vit_pobj *vit_pickle_root(const vit_pickle *p);

/* The value of key in a dict (text or byte-string key, as the seed's
 * encoding='bytes' sees Python 2 str keys); NULL when absent or not a dict. */
const vit_pobj *vit_pobj_get(const vit_pobj *dict, const char *key);
/* "dict", "list", ...: for messages. */
const char *vit_pkind_name(vit_pkind kind);

#endif
