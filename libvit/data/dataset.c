/* The dataset handle (vit/data.h): opening with format detection, options,
 * queries, and fetching one sample as u8 pixels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data.h"

/* ------------------------------------------------------------------ helpers */
char *vit_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    int slash = la > 0 && a[la - 1] != '/';
    char *p = malloc(la + slash + lb + 1);
    if (!p) return NULL;
    memcpy(p, a, la);
    if (slash) p[la] = '/';
    memcpy(p + la + slash, b, lb + 1);
    return p;
}

int vit_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int vit_path_exists(const char *dir, const char *name) {
    char *p = vit_path_join(dir, name);
    if (!p) {
        vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for the name of %s", dir, name);
        return -1;
    }
    struct stat st;
    int r = stat(p, &st) == 0;
    free(p);
    return r;
}

void vit_scratch_init(vit_scratch *s) {
    memset(s, 0, sizeof *s);
    vit_decoder_init(&s->dec);
}

void vit_scratch_release(vit_scratch *s) {
    vit_decoder_release(&s->dec);
    vit_pixbuf_release(&s->decoded);
    vit_pixbuf_release(&s->conv);
    vit_pixbuf_release(&s->resized);
    vit_pixbuf_release(&s->shifted);
    vit_resampler_release(&s->rs);
}

vit_status vit_ds_set_classes(vit_dataset *ds, const char *const *names, int count) {
    ds->class_names = calloc((size_t)count, sizeof *ds->class_names);
    if (!ds->class_names) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory for %d class names", count);
    ds->num_classes = count;
    for (int i = 0; i < count; i++)
        if (!(ds->class_names[i] = strdup(names[i]))) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory for class names");
    return VIT_OK;
}

const char *vit_data_format_name(vit_data_format format) {
    switch (format) {
    case VIT_DATA_AUTO: return "auto";
    case VIT_DATA_FOLDER: return "folder";
    case VIT_DATA_CIFAR10: return "cifar10";
    case VIT_DATA_IDX: return "idx";
    }
    return NULL;
}

/* -------------------------------------------------------------------- open */
void vit_dataset_destroy(vit_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->num_classes && ds->class_names; i++) free(ds->class_names[i]);
    free(ds->class_names);
    free(ds->labels);
    vit_free(ds->pixels);
    free(ds->pool);
    free(ds->off);
    free(ds->bad);
    free(ds->root);
    vit_scratch_release(&ds->scratch);
    pthread_mutex_destroy(&ds->lock);
    free(ds);
}

vit_status vit_dataset_open(vit_context *ctx, const char *path, vit_data_format format, vit_split split,
                            vit_dataset **out) {
    VIT_CHECK_ARG(out, "vit_dataset_open: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(ctx, "vit_dataset_open: ctx is NULL");
    VIT_CHECK_ARG(path && *path, "vit_dataset_open: path is NULL or empty");
    VIT_CHECK_ARG(format >= VIT_DATA_AUTO && format <= VIT_DATA_IDX, "vit_dataset_open: format %d is not a vit_data_format",
                  (int)format);
    VIT_CHECK_ARG(split == VIT_SPLIT_TRAIN || split == VIT_SPLIT_VAL, "vit_dataset_open: split %d is not a vit_split",
                  (int)split);
    if (!vit_is_dir(path)) return vit_fail(VIT_ERR_IO, "%s: not a folder (a dataset is opened from its folder)", path);

    if (format == VIT_DATA_AUTO) {
        /* The cheap, unambiguous markers first: named files, then layout. */
        if (vit_idx_detect(path)) format = VIT_DATA_IDX;
        else if (vit_cifar_detect(path)) format = VIT_DATA_CIFAR10;
        else if (vit_folder_detect(path)) format = VIT_DATA_FOLDER;
        else
            return vit_fail(VIT_ERR_FORMAT,
                            "%s: cannot tell the dataset format: expected train/ and val/ class folders, "
                            "CIFAR-10 batches (data_batch_1[.bin], test_batch[.bin]) or IDX files "
                            "(train-images-idx3-ubyte[.gz])", path);
    }

    vit_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_dataset_open: no memory");
    pthread_mutex_init(&ds->lock, NULL);
    vit_scratch_init(&ds->scratch);
    ds->ctx = ctx;
    ds->format = format;
    ds->split = split;
    vit_status s;
    switch (format) {
    case VIT_DATA_IDX: s = vit_idx_open(ds, path); break;
    case VIT_DATA_CIFAR10: s = vit_cifar_open(ds, path); break;
    default: s = vit_folder_open(ds, path); break;
    }
    if (s == VIT_OK && ds->n == 0) s = vit_fail(VIT_ERR_FORMAT, "%s: the %s split has no samples", path,
                                                split == VIT_SPLIT_TRAIN ? "train" : "val");
    if (s != VIT_OK) {
        vit_dataset_destroy(ds);
        return s;
    }
    vit_log(ctx, VIT_LOG_INFO, "%s: %s dataset, %s split: %lld samples, %d classes", path,
            vit_data_format_name(format), split == VIT_SPLIT_TRAIN ? "train" : "val", (long long)ds->n,
            ds->num_classes);
    *out = ds;
    return VIT_OK;
}

/* ----------------------------------------------------------------- options */
vit_status vit_dataset_set_int(vit_dataset *ds, vit_dataset_param param, int64_t v) {
    VIT_CHECK_ARG(ds, "vit_dataset_set_int: ds is NULL");
    switch (param) {
    case VIT_DS_CHANNELS:
        VIT_CHECK_ARG(v == 0 || v == 1 || v == 3, "VIT_DS_CHANNELS: %lld (0, 1 or 3 accepted)", (long long)v);
        ds->channels = (int)v;
        return VIT_OK;
    case VIT_DS_SKIP_CORRUPT:
        VIT_CHECK_ARG(v == 0 || v == 1, "VIT_DS_SKIP_CORRUPT: %lld (0 or 1 accepted)", (long long)v);
        ds->skip_corrupt = (int)v;
        return VIT_OK;
    case VIT_DS_DECODE_SIZE:
        VIT_CHECK_ARG(v >= 0 && v <= 65535, "VIT_DS_DECODE_SIZE: %lld is out of range 0..65535", (long long)v);
        ds->decode_size = (int)v;
        return VIT_OK;
    case VIT_DS_SKIPPED:
    case VIT_DS_FORMAT:
    case VIT_DS_WIDTH:
    case VIT_DS_HEIGHT:
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_dataset_set_int: parameter %d is read-only", (int)param);
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_dataset_set_int: unknown parameter %d", (int)param);
}

vit_status vit_dataset_get_int(const vit_dataset *ds, vit_dataset_param param, int64_t *v) {
    VIT_CHECK_ARG(ds, "vit_dataset_get_int: ds is NULL");
    VIT_CHECK_ARG(v, "vit_dataset_get_int: value is NULL");
    switch (param) {
    case VIT_DS_CHANNELS: *v = vit_ds_channels(ds); return VIT_OK;
    case VIT_DS_SKIP_CORRUPT: *v = ds->skip_corrupt; return VIT_OK;
    case VIT_DS_DECODE_SIZE: *v = ds->decode_size; return VIT_OK;
    case VIT_DS_SKIPPED:
        pthread_mutex_lock((pthread_mutex_t *)&ds->lock);
        *v = ds->skipped;
        pthread_mutex_unlock((pthread_mutex_t *)&ds->lock);
        return VIT_OK;
    case VIT_DS_FORMAT: *v = ds->format; return VIT_OK;
    case VIT_DS_WIDTH: *v = ds->w; return VIT_OK;
    case VIT_DS_HEIGHT: *v = ds->h; return VIT_OK;
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_dataset_get_int: unknown parameter %d", (int)param);
}

/* ----------------------------------------------------------------- queries */
vit_status vit_dataset_size(const vit_dataset *ds, int64_t *count) {
    VIT_CHECK_ARG(ds, "vit_dataset_size: ds is NULL");
    VIT_CHECK_ARG(count, "vit_dataset_size: count is NULL");
    *count = ds->n;
    return VIT_OK;
}

vit_status vit_dataset_num_classes(const vit_dataset *ds, int *count) {
    VIT_CHECK_ARG(ds, "vit_dataset_num_classes: ds is NULL");
    VIT_CHECK_ARG(count, "vit_dataset_num_classes: count is NULL");
    *count = ds->num_classes;
    return VIT_OK;
}

vit_status vit_dataset_class_name(const vit_dataset *ds, int index, const char **name) {
    VIT_CHECK_ARG(ds, "vit_dataset_class_name: ds is NULL");
    VIT_CHECK_ARG(name, "vit_dataset_class_name: name is NULL");
    VIT_CHECK_ARG(index >= 0 && index < ds->num_classes, "vit_dataset_class_name: index %d is outside 0..%d", index,
                  ds->num_classes - 1);
    *name = ds->class_names[index];
    return VIT_OK;
}

vit_status vit_dataset_label(const vit_dataset *ds, int64_t index, int32_t *label) {
    VIT_CHECK_ARG(ds, "vit_dataset_label: ds is NULL");
    VIT_CHECK_ARG(label, "vit_dataset_label: label is NULL");
    VIT_CHECK_ARG(index >= 0 && index < ds->n, "vit_dataset_label: index %lld is outside 0..%lld", (long long)index,
                  (long long)ds->n - 1);
    *label = ds->labels[index];
    return VIT_OK;
}

const char *vit_ds_path(const vit_dataset *ds, int64_t index) {
    return ds->pool ? ds->pool + ds->off[index] : "";
}

/* ----------------------------------------------------------------- samples */
vit_status vit_ds_fetch(const vit_dataset *ds, int64_t index, int channels, int decode_size, vit_scratch *s,
                        vit_view *out) {
    if (ds->pixels) {
        size_t sz = (size_t)ds->w * ds->h * ds->native_c;
        *out = (vit_view){ds->pixels + (size_t)index * sz, ds->w, ds->h, ds->native_c};
    } else {
        VIT_TRY(vit_image_read(&s->dec, vit_ds_path(ds, index), channels, decode_size, &s->decoded));
        *out = (vit_view){s->decoded.data, s->decoded.w, s->decoded.h, s->decoded.c};
    }
    return vit_view_convert(out, channels, &s->conv);
}

int vit_ds_mark_bad(vit_dataset *ds, int64_t index) {
    int first = 0;
    pthread_mutex_lock(&ds->lock);
    if (!ds->bad) ds->bad = calloc((size_t)ds->n, 1);
    if (ds->bad && !ds->bad[index]) {
        ds->bad[index] = 1;
        ds->skipped++;
        first = 1;
    } else if (!ds->bad) {
        first = 1; /* no memory to remember: warn again rather than never */
    }
    pthread_mutex_unlock(&ds->lock);
    return first;
}

int vit_ds_is_bad(vit_dataset *ds, int64_t index) {
    pthread_mutex_lock(&ds->lock);
    int r = ds->bad && ds->bad[index];
    pthread_mutex_unlock(&ds->lock);
    return r;
}

vit_status vit_dataset_get(vit_dataset *ds, int64_t index, vit_tensor **image, int32_t *label) {
    VIT_CHECK_ARG(image, "vit_dataset_get: image is NULL");
    *image = NULL;
    VIT_CHECK_ARG(ds, "vit_dataset_get: ds is NULL");
    VIT_CHECK_ARG(index >= 0 && index < ds->n, "vit_dataset_get: index %lld is outside 0..%lld", (long long)index,
                  (long long)ds->n - 1);
    vit_view v;
    VIT_TRY(vit_ds_fetch(ds, index, vit_ds_channels(ds), ds->decode_size, &ds->scratch, &v));
    int64_t shape[3] = {v.h, v.w, v.c};
    vit_tensor *t;
    VIT_TRY(vit_tensor_create(ds->ctx, VIT_DTYPE_U8, 3, shape, &t));
    vit_status s = vit_tensor_write(t, v.px, (size_t)v.w * v.h * v.c);
    if (s != VIT_OK) {
        vit_tensor_destroy(t);
        return s;
    }
    if (label) *label = ds->labels[index];
    *image = t;
    return VIT_OK;
}
