/*
 * Internal data layer: the dataset handle and its three readers, the
 * Pillow-compatible resampler, the transform pipeline, and per-thread scratch.
 *
 * A sample travels as a vit_view: u8 pixels [h, w, c] that either point into
 * an in-memory dataset (IDX, CIFAR-10: no copy) or into a worker's reused
 * buffer (decoded files). The transform turns a view into f32 [C, S, S]
 * written straight into the batch, so the hot loop allocates nothing once the
 * buffers have grown to the largest image.
 */
#ifndef VIT_DATA_INTERNAL_H
#define VIT_DATA_INTERNAL_H

#include <pthread.h>

#include "core/core.h"
#include "io/image.h"
#include "vit/data.h"

/* ---------------------------------------------------------------- samples */
typedef struct vit_view {
    const uint8_t *px;
    int w, h, c;
} vit_view;

/* Separable resampling state: coefficients and the intermediate rows. */
typedef struct vit_resampler {
    int32_t *k;   /* fixed-point coefficients, horizontal then vertical */
    int *bounds;  /* (first, count) per output pixel, horizontal then vertical */
    size_t k_cap, bounds_cap;
    uint8_t *tmp; /* after the horizontal pass */
    size_t tmp_cap;
    int32_t *acc; /* one row of vertical-pass sums */
    size_t acc_cap;
} vit_resampler;

/* Everything one thread needs to turn a sample index into a tensor row. */
typedef struct vit_scratch {
    vit_decoder dec;
    vit_pixbuf decoded; /* file decoded */
    vit_pixbuf conv;    /* channel conversion */
    vit_pixbuf resized; /* after resize / crop */
    vit_pixbuf shifted; /* after the random shift */
    vit_resampler rs;
} vit_scratch;

void vit_scratch_init(vit_scratch *s);
void vit_scratch_release(vit_scratch *s);

/* ---------------------------------------------------------------- datasets */
struct vit_dataset {
    vit_context *ctx;
    vit_data_format format;
    vit_split split;
    char *root; /* the folder holding the split's files */
    int64_t n;
    int num_classes;
    char **class_names;
    int32_t *labels; /* [n] */

    /* In-memory formats: all samples [n, h, w, native_c]. */
    uint8_t *pixels;
    int w, h, native_c;

    /* Image folders: NUL-terminated paths in one pool, path i at pool + off[i]. */
    char *pool;
    size_t *off;

    /* Options. */
    int channels; /* 0 = native_c */
    int skip_corrupt;
    int decode_size;

    /* Corrupt files seen (loader workers write it under lock). */
    pthread_mutex_t lock;
    uint8_t *bad; /* [n] bytes, allocated on the first bad file */
    int64_t skipped;

    vit_scratch scratch; /* for vit_dataset_get, in the caller's thread */
};

/* Readers: fill n, labels, classes and either pixels or paths. They read from
 * path (the folder the user gave) for ds->split. */
vit_status vit_idx_open(vit_dataset *ds, const char *path);
vit_status vit_cifar_open(vit_dataset *ds, const char *path);
vit_status vit_folder_open(vit_dataset *ds, const char *path);
/* Whether path looks like each format (for VIT_DATA_AUTO). */
int vit_idx_detect(const char *path);
int vit_cifar_detect(const char *path);
int vit_folder_detect(const char *path);

/* Class names from a fixed list into ds (copied). */
vit_status vit_ds_set_classes(vit_dataset *ds, const char *const *names, int count);

/* Channels a sample comes out with (the option, or the native count). */
static inline int vit_ds_channels(const vit_dataset *ds) { return ds->channels ? ds->channels : ds->native_c; }

/* Sample index with `channels` (1 or 3) into *out; decode_size as
 * VIT_DS_DECODE_SIZE. Thread-safe for distinct scratch. */
vit_status vit_ds_fetch(const vit_dataset *ds, int64_t index, int channels, int decode_size, vit_scratch *s,
                        vit_view *out);
/* Records a corrupt file; returns 1 the first time index is seen bad. */
int vit_ds_mark_bad(vit_dataset *ds, int64_t index);
int vit_ds_is_bad(vit_dataset *ds, int64_t index);
/* The file a sample comes from ("" for in-memory formats). */
const char *vit_ds_path(const vit_dataset *ds, int64_t index);

/* Utilities shared by the readers. */
/* 1 if dir/name is any kind of entry, 0 if not, -1 with the thread error set
 * (VIT_ERR_OUT_OF_MEMORY) when the name cannot be built. */
int vit_path_exists(const char *dir, const char *name);
int vit_is_dir(const char *path);
char *vit_path_join(const char *a, const char *b); /* malloc'd; NULL when out of memory */

/* ---------------------------------------------------------------- resample */
/* Resizes the box (bx, by, bw, bh) of src [sh, sw, c] to dst [dh, dw, c] with
 * Pillow's algorithm (ImagingResample: separable, support scaled by the
 * reduction so downscaling is antialiased, 22-bit fixed point, horizontal
 * pass first, 8-bit intermediate), so the u8 result equals Pillow's. */
vit_status vit_resample_u8(vit_resampler *r, const uint8_t *src, int sw, int sh, int c, int bx, int by, int bw,
                           int bh, uint8_t *dst, int dw, int dh, vit_resize_mode mode);
void vit_resampler_release(vit_resampler *r);

/* --------------------------------------------------------------- transform */
struct vit_transform {
    vit_context *ctx;
    int size, channels, resize, rot_interp, random_crop, normalize, train, pad_crop;
    double flip_p, rotation, scale_min, scale_max, ratio_min, ratio_max;
    double mean[3], std[3]; /* VIT_NORM_CUSTOM values */
};

/* src -> dst f32 [out_c, size, size]. train selects the random part, drawn
 * from key (one key per (seed, epoch, sample): see vit_sample_key). */
vit_status vit_transform_apply(const vit_transform *tf, const vit_view *src, int out_c, int train, uint64_t key,
                               float *dst, vit_scratch *s);
/* The mean and std the transform's normalisation uses for channel ch. */
void vit_transform_norm(const vit_transform *tf, int ch, int channels, float *mean, float *std);

/* Key of the random draws of one sample in one epoch. */
static inline uint64_t vit_sample_key(uint64_t seed, int64_t epoch, int64_t index) {
    return vit_rng_key(seed, 0xDA7A0000ull + (uint64_t)epoch, (uint64_t)index);
}

/* Converts view channels (1 <-> 3) into buf when they differ; *v updated. */
vit_status vit_view_convert(vit_view *v, int channels, vit_pixbuf *buf);

#endif
