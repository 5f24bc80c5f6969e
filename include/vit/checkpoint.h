/*
 * libvit checkpoints: models and AdamW state as safetensors files.
 *
 * A model file holds every parameter under its timm name as F32, and string
 * metadata: the configuration ("vit.dim": "768", ...), "libvit.version",
 * "libvit.kind": "model", and the model's own metadata keys (class_names,
 * mean, std, ...). Files from timm / the Hugging Face hub (timm layout, F32,
 * F16 or BF16) load too: the configuration is then inferred from the tensor
 * shapes. So do Hugging Face transformers ViTs (ViTForImageClassification,
 * and ViTModel into an existing model): renamed to timm's layout on load,
 * query / key / value fused, the configuration from the config.json beside
 * the file when there (id2label -> class_names). docs/checkpoints.md
 * describes the scheme in full.
 *
 * Every write is atomic: a temporary file beside the target is written,
 * fsynced and renamed over it, so a crash or error leaves the old file intact.
 * Errors name the file and, where one is at fault, the tensor:
 *   VIT_ERR_IO        the file cannot be opened, read or written
 *   VIT_ERR_FORMAT    the file is not valid safetensors, is of the wrong kind,
 *                     or holds a tensor the model does not have
 *   VIT_ERR_NOT_FOUND a tensor the model needs is missing
 *   VIT_ERR_SHAPE     a tensor's shape differs from the model's
 *   VIT_ERR_DTYPE     a tensor is not floating point
 */
#ifndef VIT_CHECKPOINT_H
#define VIT_CHECKPOINT_H

#include "optim.h"

VIT_EXTERN_C_BEGIN

/* Saves parameters, configuration and metadata. Model metadata keys must not
 * start with "vit." or "libvit." and must not be "format" (reserved). */
VIT_API vit_status vit_model_save(const vit_model *model, const char *path);

/* Creates a model from a file: libvit's own, or a timm-layout one whose
 * configuration is inferred from the shapes (patch size, channels, width,
 * image size, depth, classes, MLP ratio, qkv bias, patch norm, pooling;
 * heads from timm's presets by width, else width / 64; LayerNorm eps 1e-6).
 * Any "vit.*" metadata key overrides the inferred value. Every tensor must
 * match a parameter exactly; half-precision tensors are widened to f32.
 * A transformers ViTModel (no classifier) is VIT_ERR_NOT_FOUND here: load it
 * with vit_model_load_weights and VIT_LOAD_ALLOW_HEAD_MISMATCH. */
VIT_API vit_status vit_model_load(vit_context *ctx, const char *path, vit_model **out);

/* Flags of vit_model_load_weights. */
#define VIT_LOAD_ALLOW_HEAD_MISMATCH 1 /* keep head.* as initialised when missing or shaped differently */
#define VIT_LOAD_IGNORE_EXTRA 2        /* skip tensors the model does not have instead of failing */

/* Loads a file's tensors into an existing model, for fine-tuning. A pos_embed
 * for another grid is resampled bicubically (class-token row kept, as timm's
 * resample_abs_pos_embed). The file's metadata is not copied. Nothing is
 * written to the model unless every tensor checks out. */
VIT_API vit_status vit_model_load_weights(vit_model *model, const char *path, int flags);

/* AdamW state: "exp_avg.<param>" and "exp_avg_sq.<param>" tensors, step and
 * hyperparameters in metadata ("optim.step", "optim.lr", ...). */
VIT_API vit_status vit_optimizer_save(const vit_optimizer *opt, const vit_model *model, const char *path);
/* The same plus n_extra caller strings in the file's metadata, e.g. the
 * training program's epoch and data-order seed, so they are saved atomically
 * with the state they belong to. Keys must not use the reserved names above
 * nor start with "optim."; read them back with vit_checkpoint_read_metadata. */
VIT_API vit_status vit_optimizer_save_ex(const vit_optimizer *opt, const vit_model *model, const char *path,
                                         int n_extra, const char *const *keys, const char *const *values);
/* Restores m, v, the step and the hyperparameters saved with them. The model
 * must have the same parameters as when saved. */
VIT_API vit_status vit_optimizer_load(vit_optimizer *opt, const vit_model *model, const char *path);

/* Calls fn for every metadata entry of a safetensors file, in file order;
 * the strings live only during the call. */
typedef void (*vit_metadata_fn)(void *user, const char *key, const char *value);
VIT_API vit_status vit_checkpoint_read_metadata(const char *path, vit_metadata_fn fn, void *user);

VIT_EXTERN_C_END

#endif
