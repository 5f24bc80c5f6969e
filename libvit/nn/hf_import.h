/* Hugging Face transformers ViT checkpoints (ViTForImageClassification,
 * ViTModel) in: converted on load to timm's layout, so that the checkpoint
 * loader (nn/checkpoint.c) treats them as any timm file. */
#ifndef VIT_NN_HF_IMPORT_H
#define VIT_NN_HF_IMPORT_H

#include <stdbool.h>

#include "io/safetensors.h"

/* Whether f holds a transformers ViT: its patch projection has
 * transformers' name ("vit.embeddings.patch_embeddings.projection.weight",
 * or without "vit." for a ViTModel). */
bool vit_hf_detect(const vit_st_file *f);

/* f's tensors under timm's names, as F32, query/key/value fused into qkv, in
 * a file built in memory (*out, named as f). Its metadata carries f's, plus
 * what config.json beside f says that the shapes cannot (vit.heads,
 * vit.ln_eps; id2label as class_names) and preprocessor_config.json's
 * image_mean / image_std as mean / std. Every tensor of f is checked first:
 * missing, unexpected, misshapen tensors and a config.json that disagrees
 * with them are errors naming the tensor or the key. need_head: a file
 * without a classifier (a ViTModel) is an error instead of a file without
 * head.* tensors. */
vit_status vit_hf_convert(const vit_st_file *f, bool need_head, vit_st_file **out);

#endif
