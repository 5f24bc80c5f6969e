/* ONNX files: a small graph builder over the protobuf-c code that the build
 * generates from onnx.proto (ONNX 1.12's schema, vendored beside this file).
 *
 * Everything the builder makes lives in one host arena and dies with
 * vit_onnx_free. Float initializers are not copied: the graph points at the
 * caller's data, which must stay put until the file is written, so a model's
 * weights exist once in memory however large the export. A failed allocation
 * marks the builder failed; every later call is then a no-op returning NULL,
 * and vit_onnx_write reports it, so callers chain calls without checks.
 *
 * Only built with protobuf-c (VIT_HAVE_ONNX). */
#ifndef VIT_IO_ONNX_H
#define VIT_IO_ONNX_H

#include <stdint.h>

#include "core/core.h"

typedef struct vit_onnx vit_onnx;

/* NULL when out of memory (the error is set). */
vit_onnx *vit_onnx_new(const char *graph_name);
void vit_onnx_free(vit_onnx *g);

/* Graph input or output: a float32 tensor of rank ndim; a dimension < 0 is
 * the symbolic batch dimension dim_param (e.g. "batch"). */
void vit_onnx_input(vit_onnx *g, const char *name, int ndim, const int64_t *dims, const char *dim_param);
void vit_onnx_output(vit_onnx *g, const char *name, int ndim, const int64_t *dims, const char *dim_param);

/* A float32 initializer over n = prod(dims) floats at data, not copied.
 * Returns its name (a copy owned by the graph). */
const char *vit_onnx_weight(vit_onnx *g, const char *name, int ndim, const int64_t *dims, const float *data);
/* Small copied constants: a float scalar, an int64 scalar, or a 1-D int64 vector. */
const char *vit_onnx_scalar(vit_onnx *g, const char *name, float value);
const char *vit_onnx_index(vit_onnx *g, const char *name, int64_t value);
const char *vit_onnx_ints(vit_onnx *g, const char *name, int n, const int64_t *values);

/* A node op(inputs...) -> out; out also names the node. An input may be ""
 * for an omitted optional one. Returns the output's name for the next node;
 * the attribute calls below apply to this last node. */
const char *vit_onnx_node(vit_onnx *g, const char *op, const char *out, int n_in, const char *const *in);
#define VIT_ONNX_NODE(g, op, out, ...) \
    vit_onnx_node((g), (op), (out), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), \
                  (const char *const[]){__VA_ARGS__})
void vit_onnx_attr_int(vit_onnx *g, const char *name, int64_t value);
void vit_onnx_attr_float(vit_onnx *g, const char *name, float value);
void vit_onnx_attr_ints(vit_onnx *g, const char *name, int n, const int64_t *values);

/* A "key": "value" entry of the model's metadata_props (both copied). */
void vit_onnx_meta(vit_onnx *g, const char *key, const char *value);

/* Serialises the model (default-domain opset, IR version ir_version) to
 * path atomically, streaming the protobuf: no second copy of the weights is
 * made. external > 0 puts every tensor of 1 KiB or more in "<path>.data"
 * (ONNX external data, written first, atomically too), < 0 keeps them
 * inline, 0 does so unless the file would reach protobuf's 2 GiB limit.
 * An inline file over the limit is refused (VIT_ERR_UNSUPPORTED) before
 * anything is written. */
vit_status vit_onnx_write(vit_onnx *g, const char *path, int external, int64_t opset, int64_t ir_version,
                          const char *producer, const char *producer_version, const char *doc);

#endif
