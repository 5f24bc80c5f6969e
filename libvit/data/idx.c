/* IDX datasets (MNIST, Fashion-MNIST, KMNIST): train-images-idx3-ubyte,
 * train-labels-idx1-ubyte, t10k-..., plain or gzip-compressed.
 *
 * The files are small (47 MB for the largest) and read whole into memory.
 * zlib's gzread reads plain files transparently, so one path serves both. */
#include <stdio.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data/data.h"

/* 60000 x 28 x 28 is 47 MB; a header claiming more than this is lying. */
#define IDX_MAX_BYTES ((int64_t)1 << 32)

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
static const char *const kmnist_names[10] = {"o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"};

/* *out: the file for a split and kind, trying the usual spellings:
 * "-idx3-ubyte" and ".idx3-ubyte" (some mirrors), each plain or ".gz"; NULL
 * if none. A failed allocation is an error, not a missing file. */
static vit_status find_file(const char *dir, const char *prefix, const char *kind, char **out) {
    static const char *const seps[] = {"-", "."}, *const exts[] = {"", ".gz"};
    char name[128];
    *out = NULL;
    for (int s = 0; s < 2; s++)
        for (int e = 0; e < 2; e++) {
            snprintf(name, sizeof name, "%s%s%s%s", prefix, seps[s], kind, exts[e]);
            char *p = vit_path_join(dir, name);
            if (!p) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for the name of %s", dir, name);
            struct stat st;
            if (stat(p, &st) == 0) {
                *out = p;
                return VIT_OK;
            }
            free(p);
        }
    return VIT_OK;
}

/* gzopen and gzread allocate zlib's state and buffers: a failure there is
 * out of memory, not a bad file. */
static vit_status gz_fail(gzFile f, const char *path, vit_status otherwise, const char *what) {
    int errnum = Z_OK;
    const char *msg = f ? gzerror(f, &errnum) : strerror(errno);
    if (errnum == Z_MEM_ERROR || (!f && errno == ENOMEM))
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: out of memory %s", path, what);
    return vit_fail(otherwise, "%s: %s: %s", path, what, msg);
}

int vit_idx_detect(const char *path) {
    char *a = NULL, *b = NULL;
    /* Detection is best effort: out of memory here reads as "not IDX". */
    (void)find_file(path, "train-images", "idx3-ubyte", &a);
    (void)find_file(path, "t10k-images", "idx3-ubyte", &b);
    int r = a || b;
    free(a);
    free(b);
    return r;
}

/* Reads an IDX file: checks the magic (0, 0, type 0x08 = u8, ndim) and the
 * dimensions, then exactly prod(dims) bytes, growing the buffer as data
 * arrives so a lying header cannot make us allocate more than twice what is
 * really there. */
static vit_status read_idx(const char *path, int want_ndim, int64_t *dims, uint8_t **data) {
    *data = NULL;
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) return gz_fail(NULL, path, VIT_ERR_IO, "opening");
    vit_status s = VIT_OK;
    uint8_t hdr[4 + 4 * 3];
    int hlen = 4 + 4 * want_ndim;
    int got = gzread(f, hdr, (unsigned)hlen);
    if (got < 0) {
        s = gz_fail(f, path, VIT_ERR_FORMAT, "reading the IDX header");
        goto done;
    }
    if (got != hlen) {
        s = vit_fail(VIT_ERR_FORMAT, "%s: truncated IDX header (%d of %d bytes)", path, got < 0 ? 0 : got, hlen);
        goto done;
    }
    if (hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 || hdr[3] != want_ndim) {
        s = vit_fail(VIT_ERR_FORMAT, "%s: not an IDX file of unsigned bytes with %d dimension%s (magic %02x %02x %02x %02x)",
                     path, want_ndim, want_ndim > 1 ? "s" : "", hdr[0], hdr[1], hdr[2], hdr[3]);
        goto done;
    }
    /* Each dimension is below 2^32 and the running product is kept at most
     * IDX_MAX_BYTES, so the product never overflows. */
    int64_t total = 1;
    char shape[64] = "";
    for (int i = 0; i < want_ndim; i++) {
        const uint8_t *p = hdr + 4 + 4 * i;
        dims[i] = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
        size_t at = strlen(shape);
        snprintf(shape + at, sizeof shape - at, "%s%lld", i ? " x " : "", (long long)dims[i]);
    }
    for (int i = 0; i < want_ndim; i++) {
        if (dims[i] <= 0 || dims[i] > IDX_MAX_BYTES / total) {
            s = vit_fail(VIT_ERR_FORMAT, "%s: IDX header claims [%s]: absurd size (%s)", path, shape,
                         dims[i] <= 0 ? "a dimension of 0" : "more than the 4 GiB accepted");
            goto done;
        }
        total *= dims[i];
    }
    if (want_ndim == 3 && (dims[1] > 4096 || dims[2] > 4096)) {
        s = vit_fail(VIT_ERR_FORMAT,
                     "%s: IDX header claims [%s]: absurd size (images of %lld x %lld pixels; 4096 a side accepted)",
                     path, shape, (long long)dims[1], (long long)dims[2]);
        goto done;
    }
    /* A plain file's size is known: check it now rather than after reading. */
    struct stat st;
    if (gzdirect(f) && stat(path, &st) == 0 && (int64_t)st.st_size - hlen != total) {
        s = vit_fail(VIT_ERR_FORMAT, "%s: %s: the header [%s] promises %lld bytes of data, the file has %lld", path,
                     (int64_t)st.st_size - hlen < total ? "truncated" : "more data than the header's dimensions",
                     shape, (long long)total, (long long)st.st_size - hlen);
        goto done;
    }
    size_t cap = 0, have = 0;
    while ((int64_t)have < total) {
        if (have == cap) {
            size_t want = cap ? 2 * cap : ((size_t)1 << 20);
            if ((int64_t)want > total) want = (size_t)total;
            uint8_t *p = vit_alloc(want);
            if (!p) {
                s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for %zu bytes", path, want);
                goto done;
            }
            if (have) memcpy(p, *data, have);
            vit_free(*data);
            *data = p;
            cap = want;
        }
        size_t chunk = cap - have > ((size_t)1 << 30) ? ((size_t)1 << 30) : cap - have;
        int r = gzread(f, *data + have, (unsigned)chunk);
        if (r < 0) {
            s = gz_fail(f, path, VIT_ERR_FORMAT, "corrupt gzip data");
            goto done;
        }
        if (r == 0) {
            s = vit_fail(VIT_ERR_FORMAT, "%s: truncated: the header promises %lld bytes of data, the file has %zu",
                         path, (long long)total, have);
            goto done;
        }
        have += (size_t)r;
    }
    /* Trailing bytes mean the header lies the other way. */
    uint8_t extra;
    int r = gzread(f, &extra, 1);
    if (r != 0) {
        int errnum;
        const char *msg = r < 0 ? gzerror(f, &errnum) : "more data than the header's dimensions";
        s = vit_fail(VIT_ERR_FORMAT, "%s: %s", path, msg);
    }
done:
    gzclose(f);
    if (s != VIT_OK) {
        vit_free(*data);
        *data = NULL;
    }
    return s;
}

static int contains_ci(const char *s, const char *needle) {
    size_t n = strlen(needle);
    for (; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && tolower((unsigned char)s[i]) == needle[i]) i++;
        if (i == n) return 1;
    }
    return 0;
}

vit_status vit_idx_open(vit_dataset *ds, const char *path) {
    const char *prefix = ds->split == VIT_SPLIT_TRAIN ? "train" : "t10k";
    char ip[32], lp[32];
    snprintf(ip, sizeof ip, "%s-images", prefix);
    snprintf(lp, sizeof lp, "%s-labels", prefix);
    char *images = NULL, *labels = NULL;
    uint8_t *img = NULL, *lab = NULL;
    vit_status s = find_file(path, ip, "idx3-ubyte", &images);
    if (s == VIT_OK) s = find_file(path, lp, "idx1-ubyte", &labels);
    if (s != VIT_OK) goto done;
    if (!images || !labels) {
        s = vit_fail(VIT_ERR_IO, "%s: no %s-%s-idx%d-ubyte[.gz] file for the %s split", path, prefix,
                     images ? "labels" : "images", images ? 1 : 3, ds->split == VIT_SPLIT_TRAIN ? "train" : "val");
        goto done;
    }
    int64_t idims[3] = {0, 0, 0}, ldims[1] = {0};
    if ((s = read_idx(images, 3, idims, &img)) != VIT_OK) goto done;
    if ((s = read_idx(labels, 1, ldims, &lab)) != VIT_OK) goto done;
    if (idims[0] != ldims[0]) {
        s = vit_fail(VIT_ERR_FORMAT, "%s has %lld images but %s has %lld labels", images, (long long)idims[0], labels,
                     (long long)ldims[0]);
        goto done;
    }
    ds->n = idims[0];
    ds->h = (int)idims[1];
    ds->w = (int)idims[2];
    ds->native_c = 1;
    ds->labels = malloc((size_t)ds->n * sizeof *ds->labels);
    if (!ds->labels) {
        s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for labels", labels);
        goto done;
    }
    int maxl = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        ds->labels[i] = lab[i];
        if (lab[i] > maxl) maxl = lab[i];
    }
    ds->pixels = img;
    img = NULL;
    ds->root = strdup(path);

    /* IDX files carry no class names. The folder name tells the datasets
     * apart (Debian: /usr/share/datasets/fashion-mnist); otherwise digits. */
    int nc = maxl + 1 > 10 ? maxl + 1 : 10;
    if (nc == 10 && contains_ci(path, "fashion")) {
        s = vit_ds_set_classes(ds, fashion_names, 10);
    } else if (nc == 10 && contains_ci(path, "kmnist")) {
        s = vit_ds_set_classes(ds, kmnist_names, 10);
    } else {
        char buf[8];
        ds->class_names = calloc((size_t)nc, sizeof *ds->class_names);
        if (!ds->class_names) {
            s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory for class names");
            goto done;
        }
        ds->num_classes = nc;
        for (int i = 0; i < nc; i++) {
            snprintf(buf, sizeof buf, "%d", i);
            if (!(ds->class_names[i] = strdup(buf))) {
                s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory for class names");
                goto done;
            }
        }
    }
done:
    vit_free(img);
    vit_free(lab);
    free(images);
    free(labels);
    return s;
}
