/*
 * libvit data: datasets (image folders, CIFAR-10, IDX/MNIST), per-sample
 * transforms, a parallel batch loader, and single-image loading.
 *
 * Typical training input:
 *
 *   vit_dataset *ds;   vit_dataset_open(ctx, "data/", VIT_DATA_AUTO, VIT_SPLIT_TRAIN, &ds);
 *   vit_transform *tf; vit_transform_create(ctx, &tf);
 *                      vit_transform_set_int(tf, VIT_TF_SIZE, 224);
 *                      vit_transform_set_float(tf, VIT_TF_FLIP_P, 0.5);
 *   vit_loader *ld;    vit_loader_create(ds, tf, 128, &ld);
 *                      vit_loader_set_int(ld, VIT_LD_WORKERS, 4);
 *   for (epoch...) {
 *       vit_loader_start_epoch(ld, epoch);
 *       while (vit_loader_next(ld, images, labels, &count) == VIT_OK && count > 0) ...
 *   }
 *
 * Randomness (shuffling, augmentation) comes from the context's VIT_CTX_SEED,
 * keyed by (seed, epoch, sample index): the same seed gives the same batches
 * whatever the number of workers. Options are set through enum-keyed setters;
 * integer keys take *_set_int, real keys *_set_float, the wrong one is
 * VIT_ERR_INVALID_ARGUMENT. See docs/data.md.
 */
#ifndef VIT_DATA_H
#define VIT_DATA_H

#include "core.h"

VIT_EXTERN_C_BEGIN

/* ----------------------------------------------------------------- datasets */
typedef struct vit_dataset vit_dataset;

typedef enum vit_data_format {
    VIT_DATA_AUTO = 0,    /* detect from the folder's contents */
    VIT_DATA_FOLDER = 1,  /* root/train/<class>/<image>.{jpg,jpeg,png}, root/val/<class>/... */
    VIT_DATA_CIFAR10 = 2, /* cifar-10-batches-bin or cifar-10-batches-py (either) */
    VIT_DATA_IDX = 3      /* MNIST-style train-images-idx3-ubyte[.gz], t10k-... */
} vit_data_format;

typedef enum vit_split {
    VIT_SPLIT_TRAIN = 0,
    VIT_SPLIT_VAL = 1 /* folder: val/; CIFAR-10: test_batch; IDX: t10k-* */
} vit_split;

/* Integer options of a dataset (vit_dataset_set_int / vit_dataset_get_int). */
typedef enum vit_dataset_param {
    VIT_DS_CHANNELS = 1,     /* int 0, 1 or 3: channels of decoded samples; 0 = the format's own
                                (folder 3 as the seed's convert('RGB'), CIFAR-10 3, IDX 1) */
    VIT_DS_SKIP_CORRUPT = 2, /* int 0/1 (0): in the loader, an unreadable image is skipped with a
                                warning instead of failing the batch (see docs/data.md) */
    VIT_DS_DECODE_SIZE = 3,  /* int >= 0 (0): side the samples will be resized to; lets the JPEG
                                decoder scale down in the DCT when the file is much larger.
                                0 = always decode at full size. The loader sets it itself. */
    VIT_DS_SKIPPED = 4,      /* read-only: number of distinct corrupt files skipped so far */
    VIT_DS_FORMAT = 5,       /* read-only: the vit_data_format detected */
    VIT_DS_WIDTH = 6,        /* read-only: sample width, 0 when it varies (image folders) */
    VIT_DS_HEIGHT = 7        /* read-only: sample height, 0 when it varies */
} vit_dataset_param;

/* Opens one split of the dataset in path. In-memory formats (IDX, CIFAR-10) are
 * read and checked here; image folders are listed here and decoded lazily. */
VIT_API vit_status vit_dataset_open(vit_context *ctx, const char *path, vit_data_format format,
                                    vit_split split, vit_dataset **out);
VIT_API void vit_dataset_destroy(vit_dataset *ds); /* NULL is a no-op */

VIT_API vit_status vit_dataset_set_int(vit_dataset *ds, vit_dataset_param param, int64_t value);
VIT_API vit_status vit_dataset_get_int(const vit_dataset *ds, vit_dataset_param param, int64_t *value);

VIT_API vit_status vit_dataset_size(const vit_dataset *ds, int64_t *count);
VIT_API vit_status vit_dataset_num_classes(const vit_dataset *ds, int *count);
/* name points into the dataset and lives as long as it. */
VIT_API vit_status vit_dataset_class_name(const vit_dataset *ds, int index, const char **name);
/* Short name of a format ("folder", "cifar10", "idx"); "auto" for VIT_DATA_AUTO; NULL if unknown. */
VIT_API const char *vit_data_format_name(vit_data_format format);

/* Label of one sample without decoding it. */
VIT_API vit_status vit_dataset_label(const vit_dataset *ds, int64_t index, int32_t *label);
/* One sample as decoded, before any transform: a new u8 tensor [H, W, C]
 * (C from VIT_DS_CHANNELS) that the caller destroys. label may be NULL. */
VIT_API vit_status vit_dataset_get(vit_dataset *ds, int64_t index, vit_tensor **image, int32_t *label);

/* --------------------------------------------------------------- transforms */
typedef struct vit_transform vit_transform;

typedef enum vit_resize_mode {
    VIT_RESIZE_BILINEAR = 0, /* as PIL's Image.resize(BILINEAR), the seed's choice (antialiased) */
    VIT_RESIZE_BICUBIC = 1,  /* as PIL's BICUBIC */
    VIT_RESIZE_NEAREST = 2
} vit_resize_mode;

typedef enum vit_normalize {
    VIT_NORM_NONE = 0,     /* pixels / 255, in [0, 1] (torchvision ToTensor) */
    VIT_NORM_IMAGENET = 1, /* mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) */
    VIT_NORM_HALF = 2,     /* mean 0.5, std 0.5: values in [-1, 1] */
    VIT_NORM_CUSTOM = 3    /* the VIT_TF_MEAN_* / VIT_TF_STD_* values (setting one selects this) */
} vit_normalize;

/* Options of a transform. The pipeline is, per sample: (random resized crop |
 * resize) -> random shift (pad and crop) -> random horizontal flip -> random
 * rotation -> to float -> normalize,
 * with gray<->RGB conversion to VIT_TF_CHANNELS first. With VIT_TF_TRAIN 0
 * (evaluation) only the deterministic part runs: resize and normalize. */
typedef enum vit_transform_param {
    VIT_TF_SIZE = 1,          /* int: output side in pixels (224) */
    VIT_TF_CHANNELS = 2,      /* int 0, 1 or 3: output channels (0 = the dataset's) */
    VIT_TF_RESIZE = 3,        /* int vit_resize_mode (BILINEAR) */
    VIT_TF_ROTATION_INTERP = 4,/* int: VIT_RESIZE_BILINEAR or VIT_RESIZE_NEAREST (NEAREST, as torchvision) */
    VIT_TF_RANDOM_CROP = 5,   /* int 0/1 (0): RandomResizedCrop instead of a plain resize */
    VIT_TF_NORMALIZE = 6,     /* int vit_normalize (NONE) */
    VIT_TF_TRAIN = 7,         /* int 0/1 (1): apply the random augmentations */
    VIT_TF_PAD_CROP = 8,      /* int 0..size (0): pad N zero pixels on each side, crop back at a random
                                 offset (torchvision RandomCrop(size, padding=N)): a shift by up to N */
    VIT_TF_FLIP_P = 32,       /* real in [0, 1]: horizontal flip probability (0) */
    VIT_TF_ROTATION = 33,     /* real >= 0: rotate by uniform(-deg, +deg), zero fill (0) */
    VIT_TF_CROP_SCALE_MIN = 34, /* real: RandomResizedCrop area fraction range (0.08 .. 1.0) */
    VIT_TF_CROP_SCALE_MAX = 35,
    VIT_TF_CROP_RATIO_MIN = 36, /* real: aspect ratio range (3/4 .. 4/3) */
    VIT_TF_CROP_RATIO_MAX = 37,
    VIT_TF_MEAN_0 = 40,       /* real: per-channel mean, channels 0, 1, 2 */
    VIT_TF_MEAN_1 = 41,
    VIT_TF_MEAN_2 = 42,
    VIT_TF_STD_0 = 43,        /* real > 0: per-channel std */
    VIT_TF_STD_1 = 44,
    VIT_TF_STD_2 = 45
} vit_transform_param;

/* A transform with the defaults above: resize to 224 bilinear, no augmentation,
 * no normalisation (the seed's ViTDataset). */
VIT_API vit_status vit_transform_create(vit_context *ctx, vit_transform **out);
VIT_API void vit_transform_destroy(vit_transform *tf); /* NULL is a no-op */
VIT_API vit_status vit_transform_copy(const vit_transform *src, vit_transform **out);
VIT_API vit_status vit_transform_set_int(vit_transform *tf, vit_transform_param param, int64_t value);
VIT_API vit_status vit_transform_get_int(const vit_transform *tf, vit_transform_param param, int64_t *value);
VIT_API vit_status vit_transform_set_float(vit_transform *tf, vit_transform_param param, double value);
VIT_API vit_status vit_transform_get_float(const vit_transform *tf, vit_transform_param param, double *value);

/* ------------------------------------------------------------------- loader */
typedef struct vit_loader vit_loader;

typedef enum vit_loader_param {
    VIT_LD_WORKERS = 1,   /* int 0..256: decoding threads; 0 = decode in the caller's thread (2) */
    VIT_LD_SHUFFLE = 2,   /* int 0/1 (1): a new permutation every epoch */
    VIT_LD_DROP_LAST = 3, /* int 0/1 (1): drop the last partial batch */
    VIT_LD_PREFETCH = 4,  /* int 1..64: batches held in the ring, decoded ahead of the caller (2) */
    VIT_LD_BATCH_SIZE = 5, /* read-only */
    /* Data-parallel training (docs/distributed.md): this loader is shard
     * SHARD_INDEX of SHARD_COUNT and reads epoch positions index, index + count,
     * index + 2 count, ... of the one shuffled order (PyTorch's
     * DistributedSampler), so batch k of every shard together is batch k of
     * one loader with count times the batch size. With drop-last every shard
     * has the same number of batches (the epoch is cut to a multiple of
     * count x batch); without it every sample is read once, and the shards'
     * batch counts may differ by one. */
    VIT_LD_SHARD_INDEX = 6, /* int 0..count-1 (0) */
    VIT_LD_SHARD_COUNT = 7  /* int >= 1 (1) */
} vit_loader_param;

/* The dataset must outlive the loader; the transform is copied. Settings take
 * effect at the next vit_loader_start_epoch. The loader belongs to the
 * dataset's context (one thread at a time) and runs its own worker threads. */
VIT_API vit_status vit_loader_create(vit_dataset *ds, const vit_transform *tf, int batch_size, vit_loader **out);
/* Stops the workers (mid-epoch too) and frees everything. NULL is a no-op. */
VIT_API void vit_loader_destroy(vit_loader *ld);
VIT_API vit_status vit_loader_set_int(vit_loader *ld, vit_loader_param param, int64_t value);
VIT_API vit_status vit_loader_get_int(const vit_loader *ld, vit_loader_param param, int64_t *value);
/* Begins an epoch (abandoning the previous one if unfinished). The order and
 * the augmentation depend only on (seed, epoch). */
VIT_API vit_status vit_loader_start_epoch(vit_loader *ld, int64_t epoch);
/* Batches in the current epoch (after drop_last). */
VIT_API vit_status vit_loader_num_batches(const vit_loader *ld, int64_t *count);
/* The next batch into caller tensors: images f32 [B, C, S, S] with B >= the
 * batch size, labels i32 [B]. *count is the number of samples filled, 0 at the
 * end of the epoch. Rows from *count on (a last partial batch) are zeroed with
 * label -1. A decoding error is returned here, naming the file. */
VIT_API vit_status vit_loader_next(vit_loader *ld, vit_tensor *images, vit_tensor *labels, int *count);

/* ------------------------------------------------------------ single images */
/* Loads one JPEG or PNG through the deterministic part of tf (channels, resize,
 * normalize) into out, f32 [C, S, S] or [1, C, S, S]. For prediction. */
VIT_API vit_status vit_image_load(const vit_transform *tf, const char *path, vit_tensor *out);
/* Writes pixels u8 [H, W, C] (C = 1 gray, 3 RGB, 4 RGBA) as a PNG, atomically. */
VIT_API vit_status vit_image_write_png(const char *path, const vit_tensor *pixels);

VIT_EXTERN_C_END

#endif
