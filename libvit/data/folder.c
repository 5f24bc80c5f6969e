/* Image-folder datasets, the seed's ViTDataset: root/train/<class>/<image>
 * and root/val/<class>/<image>, images .jpg .jpeg .png in any letter case.
 *
 * Classes are the sorted sub-folder names of train/ (the seed's
 * sorted(os.listdir)), so a label means the same class in both splits; val/
 * must have exactly those classes. Only paths are kept (decoding is lazy), in
 * one string pool: a million images cost their path lengths, not a million
 * mallocs. Files are sorted within a class so the order, hence the epoch
 * permutation, does not depend on the file system. */
#include <stdio.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/data.h"

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static void names_free(names *ns) {
    for (size_t i = 0; i < ns->n; i++) free(ns->v[i]);
    free(ns->v);
    memset(ns, 0, sizeof *ns);
}

static int names_add(names *ns, const char *s) {
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? 2 * ns->cap : 64;
        char **v = realloc(ns->v, cap * sizeof *v);
        if (!v) return 0;
        ns->v = v;
        ns->cap = cap;
    }
    if (!(ns->v[ns->n] = strdup(s))) return 0;
    ns->n++;
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

/* Sorted non-hidden entries of dir that are folders (want_dirs) or image
 * files (not want_dirs). Symbolic links are followed. */
static vit_status list_dir(const char *dir, int want_dirs, names *out) {
    DIR *d = opendir(dir);
    if (!d) return vit_fail(VIT_ERR_IO, "%s: cannot list the folder", dir);
    vit_status s = VIT_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* hidden, ".", ".." */
        if (!want_dirs && !is_image_name(e->d_name)) continue;
        int is_dir;
        if (e->d_type == DT_DIR) is_dir = 1;
        else if (e->d_type == DT_REG) is_dir = 0;
        else { /* DT_LNK / DT_UNKNOWN: ask stat */
            char *p = vit_path_join(dir, e->d_name);
            struct stat st;
            int ok = p && stat(p, &st) == 0;
            free(p);
            if (!ok) continue; /* dangling link */
            is_dir = S_ISDIR(st.st_mode);
            if (!is_dir && !S_ISREG(st.st_mode)) continue;
        }
        if (is_dir != want_dirs) continue;
        if (!names_add(out, e->d_name)) {
            s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for the listing", dir);
            break;
        }
    }
    closedir(d);
    if (s == VIT_OK && out->n > 1) qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return s;
}

int vit_folder_detect(const char *path) {
    char *t = vit_path_join(path, "train"), *v = vit_path_join(path, "val");
    int r = (t && vit_is_dir(t)) || (v && vit_is_dir(v));
    free(t);
    free(v);
    return r;
}

static vit_status pool_add(vit_dataset *ds, size_t *pool_cap, size_t *len, int64_t *off_cap, const char *a,
                           const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c), need = *len + la + lb + lc + 3;
    if (need > *pool_cap) {
        size_t cap = *pool_cap ? *pool_cap : 1 << 16;
        while (cap < need) cap *= 2;
        char *p = realloc(ds->pool, cap);
        if (!p) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory for image paths");
        ds->pool = p;
        *pool_cap = cap;
    }
    if (ds->n == *off_cap) {
        int64_t cap = *off_cap ? 2 * *off_cap : 1024;
        size_t *o = realloc(ds->off, (size_t)cap * sizeof *o);
        int32_t *l = realloc(ds->labels, (size_t)cap * sizeof *l);
        if (o) ds->off = o;
        if (l) ds->labels = l;
        if (!o || !l) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory for image paths");
        *off_cap = cap;
    }
    ds->off[ds->n] = *len;
    char *p = ds->pool + *len;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb);
    p[la + 1 + lb] = '/';
    memcpy(p + la + lb + 2, c, lc + 1);
    *len = need;
    return VIT_OK;
}

vit_status vit_folder_open(vit_dataset *ds, const char *path) {
    const char *split = ds->split == VIT_SPLIT_TRAIN ? "train" : "val";
    char *train_dir = vit_path_join(path, "train"), *split_dir = vit_path_join(path, split);
    names classes = {0}, here = {0}, files = {0};
    vit_status s = VIT_OK;
    if (!train_dir || !split_dir) {
        s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory");
        goto done;
    }
    if (!vit_is_dir(split_dir)) {
        s = vit_fail(VIT_ERR_IO, "%s: no %s/ folder (an image-folder dataset has train/<class>/ and val/<class>/)",
                     path, split);
        goto done;
    }
    /* Classes come from train/ when it exists, so labels agree across splits. */
    const char *class_src = vit_is_dir(train_dir) ? train_dir : split_dir;
    if ((s = list_dir(class_src, 1, &classes)) != VIT_OK) goto done;
    if (classes.n == 0) {
        s = vit_fail(VIT_ERR_FORMAT, "%s: no class folders (expected %s/<class>/<image>)", class_src, class_src);
        goto done;
    }
    if (classes.n > 1000000) {
        s = vit_fail(VIT_ERR_FORMAT, "%s: %zu class folders", class_src, classes.n);
        goto done;
    }
    if (class_src != split_dir) {
        if ((s = list_dir(split_dir, 1, &here)) != VIT_OK) goto done;
        size_t i = 0, j = 0;
        while (i < classes.n || j < here.n) {
            int c = i == classes.n ? 1 : j == here.n ? -1 : strcmp(classes.v[i], here.v[j]);
            if (c < 0) {
                s = vit_fail(VIT_ERR_FORMAT, "%s: class '%s' of train/ is missing from %s/", path, classes.v[i], split);
                goto done;
            }
            if (c > 0) {
                s = vit_fail(VIT_ERR_FORMAT, "%s: %s/%s is not a class of train/", path, split, here.v[j]);
                goto done;
            }
            i++;
            j++;
        }
    }
    size_t pool_cap = 0, len = 0;
    int64_t off_cap = 0;
    for (size_t c = 0; c < classes.n; c++) {
        char *cdir = vit_path_join(split_dir, classes.v[c]);
        if (!cdir) {
            s = vit_fail(VIT_ERR_OUT_OF_MEMORY, "no memory");
            goto done;
        }
        s = list_dir(cdir, 0, &files);
        if (s == VIT_OK && files.n == 0)
            s = vit_fail(VIT_ERR_FORMAT, "%s: class folder has no .jpg, .jpeg or .png images", cdir);
        free(cdir);
        for (size_t f = 0; f < files.n && s == VIT_OK; f++) {
            s = pool_add(ds, &pool_cap, &len, &off_cap, split_dir, classes.v[c], files.v[f]);
            if (s == VIT_OK) ds->labels[ds->n++] = (int32_t)c;
        }
        names_free(&files);
        if (s != VIT_OK) goto done;
    }
    if ((s = vit_ds_set_classes(ds, (const char *const *)classes.v, (int)classes.n)) != VIT_OK) goto done;
    ds->native_c = 3; /* the seed's convert('RGB') */
    ds->root = split_dir;
    split_dir = NULL;
done:
    names_free(&classes);
    names_free(&here);
    names_free(&files);
    free(train_dir);
    free(split_dir);
    return s;
}
