/* CIFAR-10 in both distributions:
 *   binary  (cifar-10-batches-bin): data_batch_{1..5}.bin, test_batch.bin,
 *           records of 1 label byte + 3072 pixel bytes (R plane, G, B),
 *           class names in batches.meta.txt;
 *   python  (cifar-10-batches-py, what the seed and torchvision read):
 *           data_batch_{1..5}, test_batch, batches.meta, pickled dicts read
 *           with libvit's restricted unpickler (io/pickle.h).
 * Samples are kept in memory as [n, 32, 32, 3] (HWC, converted once here). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data.h"
#include "io/pickle.h"

#define SIDE 32
#define PLANE (SIDE * SIDE)
#define RECORD (3 * PLANE)
#define MAX_BATCH_FILE ((int64_t)1 << 31)

static const char *const cifar_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                            "dog", "frog", "horse", "ship", "truck"};

/* *dir: the folder holding the batches: path itself, or its
 * cifar-10-batches-bin / -py subfolder (torchvision's root); NULL when there
 * is none. *binary says which layout. Fails only for want of memory. */
static vit_status batches_dir(const char *path, int *binary, char **dir) {
    static const char *const probes[4] = {"data_batch_1.bin", "test_batch.bin", "data_batch_1", "test_batch"};
    *dir = NULL;
    for (int i = 0; i < 4; i++) {
        int e = vit_path_exists(path, probes[i]);
        if (e < 0) return VIT_ERR_OUT_OF_MEMORY;
        if (e) {
            *binary = i < 2;
            *dir = strdup(path);
            return *dir ? VIT_OK : vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for the folder's name", path);
        }
    }
    static const char *const subs[2] = {"cifar-10-batches-bin", "cifar-10-batches-py"};
    for (int i = 0; i < 2; i++) {
        char *sub = vit_path_join(path, subs[i]);
        if (!sub) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for the name of %s", path, subs[i]);
        vit_status s = vit_is_dir(sub) ? batches_dir(sub, binary, dir) : VIT_OK;
        free(sub);
        if (s != VIT_OK || *dir) return s;
    }
    return VIT_OK;
}

/* Best effort: out of memory here reads as "not CIFAR-10". */
int vit_cifar_detect(const char *path) {
    int binary;
    char *d = NULL;
    (void)batches_dir(path, &binary, &d);
    free(d);
    return d != NULL;
}

/* Appends count samples (CHW planes in src) to ds, converting to HWC. */
static void add_samples(vit_dataset *ds, const uint8_t *src, size_t stride, const uint8_t *labels, size_t lstride,
                        int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *rec = src + (size_t)i * stride;
        uint8_t *dst = ds->pixels + (size_t)(ds->n + i) * RECORD;
        for (int p = 0; p < PLANE; p++) {
            dst[3 * p] = rec[p];
            dst[3 * p + 1] = rec[PLANE + p];
            dst[3 * p + 2] = rec[2 * PLANE + p];
        }
        ds->labels[ds->n + i] = labels[(size_t)i * lstride];
    }
    ds->n += count;
}

static vit_status grow_samples(vit_dataset *ds, int64_t *cap, int64_t need) {
    if (need <= *cap) return VIT_OK;
    int64_t ncap = need; /* normally reached once, from the size bound */
    uint8_t *px = vit_alloc((size_t)ncap * RECORD);
    int32_t *lab = realloc(ds->labels, (size_t)ncap * sizeof *lab);
    if (lab) ds->labels = lab;
    if (!px || !lab) {
        vit_free(px);
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory for %lld CIFAR-10 images", (long long)ncap);
    }
    if (ds->n) memcpy(px, ds->pixels, (size_t)ds->n * RECORD);
    vit_free(ds->pixels);
    ds->pixels = px;
    *cap = ncap;
    return VIT_OK;
}

static vit_status check_labels(const char *file, const uint8_t *labels, size_t stride, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (labels[(size_t)i * stride] > 9)
            return vit_fail(VIT_ERR_FORMAT, "%s: sample %lld has label %d (CIFAR-10 labels are 0..9)", file,
                            (long long)i, labels[(size_t)i * stride]);
    return VIT_OK;
}

/* ------------------------------------------------------------------ binary */
static vit_status read_bin_batch(vit_dataset *ds, const char *file, int64_t *cap, uint8_t **buf, size_t *bcap) {
    size_t size;
    VIT_TRY(vit_read_file(file, MAX_BATCH_FILE, buf, bcap, &size));
    if (size == 0 || size % (RECORD + 1))
        return vit_fail(VIT_ERR_FORMAT, "%s: %zu bytes is not a whole number of %d-byte CIFAR-10 records (truncated?)",
                        file, size, RECORD + 1);
    int64_t count = (int64_t)(size / (RECORD + 1));
    VIT_TRY(check_labels(file, *buf, RECORD + 1, count));
    VIT_TRY(grow_samples(ds, cap, ds->n + count));
    add_samples(ds, *buf + 1, RECORD + 1, *buf, RECORD + 1, count);
    return VIT_OK;
}

static vit_status read_bin_meta(vit_dataset *ds, const char *dir) {
    char *file = vit_path_join(dir, "batches.meta.txt");
    if (!file) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory");
    uint8_t *buf = NULL;
    size_t cap = 0, size = 0;
    vit_status s = VIT_OK;
    int exists = vit_path_exists(dir, "batches.meta.txt");
    if (exists < 0) {
        s = VIT_ERR_OUT_OF_MEMORY;
        goto done;
    }
    if (!exists) {
        vit_log(ds->ctx, VIT_LOG_INFO, "%s missing: using the standard CIFAR-10 class names", file);
        s = vit_ds_set_classes(ds, cifar_names, 10);
        goto done;
    }
    if ((s = vit_read_file(file, 1 << 20, &buf, &cap, &size)) != VIT_OK) goto done;
    buf[size] = '\0';
    const char *names[10];
    int count = 0;
    for (char *line = (char *)buf, *next; line && *line && count <= 10; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ')) line[--len] = '\0';
        if (len == 0) continue;
        if (count == 10) {
            count++;
            break;
        }
        names[count++] = line;
    }
    if (count != 10) {
        s = vit_fail(VIT_ERR_FORMAT, "%s: expected 10 class names, one per line; found %s%d", file,
                     count > 10 ? "more than " : "", count > 10 ? 10 : count);
        goto done;
    }
    s = vit_ds_set_classes(ds, names, 10);
done:
    free(buf);
    free(file);
    return s;
}

/* ------------------------------------------------------------------ python */
static vit_status load_pickle(const char *file, uint8_t **buf, size_t *bcap, vit_pickle **p) {
    size_t size;
    VIT_TRY(vit_read_file(file, MAX_BATCH_FILE, buf, bcap, &size));
    return vit_pickle_load(*buf, size, file, p);
}

static vit_status read_py_batch(vit_dataset *ds, const char *file, int64_t *cap, uint8_t **buf, size_t *bcap) {
    vit_pickle *p;
    VIT_TRY(load_pickle(file, buf, bcap, &p));
    vit_status s = VIT_OK;
    uint8_t *lab = NULL;
    const vit_pobj *root = vit_pickle_root(p), *data = vit_pobj_get(root, "data"), *labels = vit_pobj_get(root, "labels");
    if (!root || root->kind != VIT_P_DICT) {
        s = vit_fail(VIT_ERR_FORMAT, "%s: the pickle holds a %s, not a dict", file, root ? vit_pkind_name(root->kind) : "?");
        goto done;
    }
    if (!data || data->kind != VIT_P_NDARRAY || !labels || labels->kind != VIT_P_LIST) {
        s = vit_fail(VIT_ERR_FORMAT, "%s: expected keys 'data' (numpy array) and 'labels' (list)", file);
        goto done;
    }
    if (!data->dtype || !data->data) { /* _reconstruct'ed but never BUILD: no dtype, no bytes */
        s = vit_fail(VIT_ERR_FORMAT, "%s: 'data' is a numpy array that was never given its contents", file);
        goto done;
    }
    if (data->dtype->len != 2 || memcmp(data->dtype->s, "u1", 2) || data->ndim != 2 || data->shape[1] != RECORD) {
        s = vit_fail(VIT_ERR_FORMAT, "%s: 'data' is %.*s with %d dimensions; expected uint8 [N, %d]", file,
                     (int)(data->dtype->len > 16 ? 16 : data->dtype->len), (const char *)data->dtype->s, data->ndim,
                     RECORD);
        goto done;
    }
    int64_t n = data->shape[0];
    if ((int64_t)labels->n != n || data->data->len != (size_t)n * RECORD) {
        s = vit_fail(VIT_ERR_FORMAT, "%s: 'data' has %lld rows (%zu bytes) but 'labels' has %zu entries", file,
                     (long long)n, data->data->len, labels->n);
        goto done;
    }
    lab = malloc((size_t)n + 1);
    if (!lab) {
        s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        const vit_pobj *l = labels->items[i];
        if (l->kind != VIT_P_INT || l->i < 0 || l->i > 9) {
            s = vit_fail(VIT_ERR_FORMAT, "%s: label %lld is not an int in 0..9", file, (long long)i);
            goto done;
        }
        lab[i] = (uint8_t)l->i;
    }
    if ((s = grow_samples(ds, cap, ds->n + n)) != VIT_OK) goto done;
    add_samples(ds, data->data->s, RECORD, lab, 1, n);
done:
    free(lab);
    vit_pickle_free(p);
    return s;
}

static vit_status read_py_meta(vit_dataset *ds, const char *dir) {
    int exists = vit_path_exists(dir, "batches.meta");
    if (exists < 0) return VIT_ERR_OUT_OF_MEMORY;
    if (!exists) {
        vit_log(ds->ctx, VIT_LOG_INFO, "%s/batches.meta missing: using the standard CIFAR-10 class names", dir);
        return vit_ds_set_classes(ds, cifar_names, 10);
    }
    char *file = vit_path_join(dir, "batches.meta");
    if (!file) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory");
    uint8_t *buf = NULL;
    size_t bcap = 0;
    vit_pickle *p = NULL;
    vit_status s = load_pickle(file, &buf, &bcap, &p);
    if (s == VIT_OK) {
        const vit_pobj *names = vit_pobj_get(vit_pickle_root(p), "label_names");
        if (!names || names->kind != VIT_P_LIST || names->n != 10) {
            s = vit_fail(VIT_ERR_FORMAT, "%s: expected 'label_names', a list of 10 names", file);
        } else {
            char *copy[10] = {0};
            for (int i = 0; i < 10 && s == VIT_OK; i++) {
                const vit_pobj *nm = names->items[i];
                if ((nm->kind != VIT_P_BYTES && nm->kind != VIT_P_STR) || nm->len > 255 || !(copy[i] = strndup((const char *)nm->s, nm->len)))
                    s = vit_fail(VIT_ERR_FORMAT, "%s: label_names[%d] is not a short string", file, i);
            }
            if (s == VIT_OK) s = vit_ds_set_classes(ds, (const char *const *)copy, 10);
            for (int i = 0; i < 10; i++) free(copy[i]);
        }
    }
    vit_pickle_free(p);
    free(buf);
    free(file);
    return s;
}

/* -------------------------------------------------------------------- open */
vit_status vit_cifar_open(vit_dataset *ds, const char *path) {
    int binary = 0;
    char *dir = NULL;
    VIT_TRY(batches_dir(path, &binary, &dir));
    if (!dir)
        return vit_fail(VIT_ERR_IO, "%s: no CIFAR-10 batches (data_batch_1[.bin] / test_batch[.bin], or a "
                        "cifar-10-batches-bin / -py folder)", path);
    ds->root = dir;
    ds->w = ds->h = SIDE;
    ds->native_c = 3;
    const char *ext = binary ? ".bin" : "";
    int first = ds->split == VIT_SPLIT_TRAIN ? 1 : 0, last = ds->split == VIT_SPLIT_TRAIN ? 5 : 0;
    int64_t cap = 0;
    uint8_t *buf = NULL;
    size_t bcap = 0;
    vit_status s = VIT_OK;
    /* Every sample takes at least RECORD bytes of file in both layouts, so
     * the files' total size bounds the count: one allocation, no regrowth. */
    int64_t bound = 0;
    for (int b = first; b <= last; b++) {
        char name[64];
        struct stat st;
        if (b == 0) snprintf(name, sizeof name, "test_batch%s", ext);
        else snprintf(name, sizeof name, "data_batch_%d%s", b, ext);
        char *file = vit_path_join(dir, name);
        int ok = file && stat(file, &st) == 0;
        free(file);
        if (ok && st.st_size > 0) bound += st.st_size / RECORD;
    }
    if (bound > 0 && bound < ((int64_t)1 << 26)) s = grow_samples(ds, &cap, bound);
    for (int b = first; b <= last && s == VIT_OK; b++) {
        char name[64];
        if (b == 0) snprintf(name, sizeof name, "test_batch%s", ext);
        else snprintf(name, sizeof name, "data_batch_%d%s", b, ext);
        char *file = vit_path_join(dir, name);
        if (!file) {
            s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory");
            break;
        }
        struct stat st;
        if (stat(file, &st) != 0)
            s = vit_fail(VIT_ERR_IO, "%s: missing (the CIFAR-10 %s split needs %s)", file,
                         b ? "train" : "val", b ? "data_batch_1 .. data_batch_5" : "test_batch");
        else
            s = binary ? read_bin_batch(ds, file, &cap, &buf, &bcap) : read_py_batch(ds, file, &cap, &buf, &bcap);
        free(file);
        /* The file buffer is 30 MB: give it back before the next one grows
         * the sample store, so the peak stays near the dataset's size. */
        free(buf);
        buf = NULL;
        bcap = 0;
    }
    if (s == VIT_OK) s = binary ? read_bin_meta(ds, dir) : read_py_meta(ds, dir);
    return s;
}
