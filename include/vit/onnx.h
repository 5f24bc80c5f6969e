/*
 * libvit ONNX export: a model's inference graph as an .onnx file for ONNX
 * Runtime, TensorRT, OpenVINO and the like.
 *
 * The graph takes "images" [batch, C, H, W] float32 (normalised as for
 * vit_model_forward) and gives "logits" [batch, num_classes] float32 (a
 * model without a head: "features" [batch, DIM], its pooled features); the
 * weights are initializers and the model's metadata (class_names, mean,
 * std, ...) goes into metadata_props. docs/checkpoints.md describes the
 * graph. A build without protobuf-c (meson -Donnx=disabled, or the library
 * missing) returns VIT_ERR_UNSUPPORTED from vit_model_export_onnx.
 */
#ifndef VIT_ONNX_H
#define VIT_ONNX_H

#include "model.h"

VIT_EXTERN_C_BEGIN

/* Export options: an opaque handle; NULL stands for every default. */
typedef struct vit_onnx_options vit_onnx_options;

typedef enum vit_onnx_option {
    VIT_ONNX_OPSET = 1, /* int: default-domain opset, 17 (default) .. 21; LayerNormalization needs 17 */
    VIT_ONNX_BATCH = 2, /* int: 0 (default) a dynamic "batch" dimension, N > 0 a fixed batch of N */
    VIT_ONNX_EXTERNAL_DATA = 3 /* int: where the weights go: 0 (default) in the file unless it would reach
                                  protobuf's 2 GiB limit, then in "<path>.data" beside it (ONNX external
                                  data); 1 always beside it; -1 always in the file */
} vit_onnx_option;

VIT_API vit_status vit_onnx_options_create(vit_onnx_options **out);
VIT_API void vit_onnx_options_destroy(vit_onnx_options *options);
VIT_API vit_status vit_onnx_options_set_int(vit_onnx_options *options, vit_onnx_option key, int64_t value);

/* Writes the model's inference graph to path, atomically (a crash or error
 * leaves an existing file intact; with external data, "<path>.data" is
 * written first, atomically too). Weights are read from the model as they
 * are now; the model is not changed. VIT_ERR_UNSUPPORTED when this build has
 * no ONNX support, or the weights are kept in the file (VIT_ONNX_EXTERNAL_DATA
 * -1) and it would exceed protobuf's 2 GiB limit. */
VIT_API vit_status vit_model_export_onnx(const vit_model *model, const char *path, const vit_onnx_options *options);

VIT_EXTERN_C_END

#endif
