/* safetensors files (https://github.com/huggingface/safetensors): reader and writer.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 *   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"<key>": "<string>", ...}}
 * (optionally padded with spaces), then the raw little-endian tensor bytes;
 * offsets are relative to the start of that data.
 *
 * The reader validates everything before any tensor is handed out: the header
 * length against the file, the JSON, every dtype, shape and offset pair (in
 * range, numel x element size == end - begin, no overlaps and no holes: the
 * tensors tile the data exactly), duplicate names and the metadata's types.
 * Errors are VIT_ERR_FORMAT naming the file and the tensor. Afterwards no
 * access can read outside the file. */
#ifndef VIT_IO_SAFETENSORS_H
#define VIT_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "io/json.h"

#define VIT_ST_MAX_DIMS 8
#define VIT_ST_MAX_HEADER ((uint64_t)100 << 20) /* the reference implementation's limit */

/* Every dtype the format defines; only the float ones convert to f32. */
typedef enum vit_st_dtype {
    VIT_ST_BOOL, VIT_ST_U8, VIT_ST_I8, VIT_ST_F8_E5M2, VIT_ST_F8_E4M3,
    VIT_ST_I16, VIT_ST_U16, VIT_ST_F16, VIT_ST_BF16,
    VIT_ST_I32, VIT_ST_U32, VIT_ST_F32,
    VIT_ST_I64, VIT_ST_U64, VIT_ST_F64,
    VIT_ST_DTYPE_COUNT
} vit_st_dtype;

const char *vit_st_dtype_name(vit_st_dtype dtype); /* "F32" */
size_t vit_st_dtype_size(vit_st_dtype dtype);      /* bytes per element */

typedef struct vit_st_tensor {
    const char *name;
    vit_st_dtype dtype;
    int ndim; /* 0 for a scalar */
    int64_t shape[VIT_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end; /* byte range relative to the data section */
} vit_st_tensor;

typedef struct vit_st_file vit_st_file;

/* Maps (or reads) path and validates it. The file is kept open/mapped until close. */
vit_status vit_st_open(const char *path, vit_st_file **out);
/* The same over a caller buffer that must outlive the handle (fuzzing, tests);
 * name is used in messages. */
vit_status vit_st_open_memory(const void *data, size_t size, const char *name, vit_st_file **out);
void vit_st_close(vit_st_file *f); /* NULL is a no-op */

const char *vit_st_path(const vit_st_file *f);
/* Tensors in header order. */
size_t vit_st_count(const vit_st_file *f);
const vit_st_tensor *vit_st_at(const vit_st_file *f, size_t index);
/* By name (binary search); NULL when absent. */
const vit_st_tensor *vit_st_find(const vit_st_file *f, const char *name);
/* __metadata__ string by key; NULL when absent. */
const char *vit_st_metadata(const vit_st_file *f, const char *key);
size_t vit_st_metadata_count(const vit_st_file *f);
void vit_st_metadata_at(const vit_st_file *f, size_t index, const char **key, const char **value);

/* Raw little-endian bytes of a tensor (end - begin of them). */
const void *vit_st_raw(const vit_st_file *f, const vit_st_tensor *t);
/* Converts an F32/F16/BF16/F64 tensor to f32 into dst of exactly numel floats
 * (VIT_ERR_SHAPE otherwise); other dtypes are VIT_ERR_DTYPE. */
vit_status vit_st_read_f32(const vit_st_file *f, const vit_st_tensor *t, float *dst, size_t count);

/* ------------------------------------------------------------------ writer */
typedef struct vit_st_entry {
    const char *name;
    vit_st_dtype dtype;
    int ndim;
    int64_t shape[VIT_ST_MAX_DIMS];
    const void *data; /* host-order elements, or NULL: the writer asks fill for them */
} vit_st_entry;

typedef struct vit_st_meta {
    const char *key, *value;
} vit_st_meta;

/* Fills dst (bytes long, host byte order) with entry index's elements. */
typedef vit_status (*vit_st_fill_fn)(void *user, size_t index, void *dst, size_t bytes);

/* Writes the entries in the given order, the metadata, and pads the header
 * with spaces so the data starts 8-byte aligned; atomically (io/atomic.h).
 * Names must be unique, non-empty and not "__metadata__"; meta keys unique. */
vit_status vit_st_write(const char *path, const vit_st_entry *entries, size_t count, const vit_st_meta *meta,
                        size_t meta_count, vit_st_fill_fn fill, void *user);

/* The same file built in memory and opened at once (the handle owns the
 * bytes): a file converted on load (nn/hf_import.c). name is used in messages. */
vit_status vit_st_build(const char *name, const vit_st_entry *entries, size_t count, const vit_st_meta *meta,
                        size_t meta_count, vit_st_fill_fn fill, void *user, vit_st_file **out);

/* Conversions used by the reader, exposed for tests. */
float vit_half_to_float(uint16_t h);
float vit_bf16_to_float(uint16_t b);
uint16_t vit_float_to_half(float f);   /* round to nearest even */
uint16_t vit_float_to_bf16(float f);   /* round to nearest even */

#endif
