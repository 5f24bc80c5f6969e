/* Shared helpers of the fuzz targets.
 *
 * Every target is one source file with one entry point, written as
 *   VIT_FUZZ_TARGET(png) { ... data, size ... }
 * Built for libFuzzer (-DVIT_FUZZ_LIBFUZZER, tools/fuzz.sh) the entry point is
 * LLVMFuzzerTestOneInput; built into the replay driver (replay.c, a normal
 * test) it is vit_fuzz_png, so all targets link into one program.
 *
 * Readers that only take a path (datasets, checkpoints) get their input
 * written to files in a scratch folder of this process, removed at exit.
 * Inputs that stand for several files are cut at VIT_FUZZ_SEP. */
#ifndef VIT_FUZZ_H
#define VIT_FUZZ_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vit/vit.h"

#ifdef VIT_FUZZ_LIBFUZZER
#define VIT_FUZZ_TARGET(name)                                         \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);     \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
#else
#define VIT_FUZZ_TARGET(name)                                         \
    int vit_fuzz_##name(const uint8_t *data, size_t size);            \
    int vit_fuzz_##name(const uint8_t *data, size_t size)
#endif

/* Separates the files of a multi-file input (IDX images|labels, CIFAR-10
 * batch|meta). Short, so the fuzzer finds and keeps it; unlikely in seeds. */
#define VIT_FUZZ_SEP "#VITPART#"

static volatile size_t vit_fuzz_sink; /* keeps reads from being optimised away */

/* Reads every byte of a NUL-terminated string, so a missing terminator or a
 * dangling pointer shows under ASan. */
static inline void vit_fuzz_touch_str(const char *s) {
    if (s) vit_fuzz_sink += strlen(s);
}

static inline void vit_fuzz_touch(const void *p, size_t n) {
    const volatile unsigned char *b = p;
    for (size_t i = 0; i < n; i++) vit_fuzz_sink += b[i];
}

/* After a failed call: the message must be a terminated, non-empty string. */
static inline void vit_fuzz_check_error(vit_status s) {
    if (s == VIT_OK) return;
    const char *m = vit_last_error();
    if (!m || !*m) {
        fprintf(stderr, "fuzz: status %d (%s) without a message\n", (int)s, vit_status_string(s));
        abort();
    }
    vit_fuzz_touch_str(m);
}

static void vit_fuzz_quiet(void *user, vit_log_level level, const char *message) {
    (void)user, (void)level;
    vit_fuzz_touch_str(message);
}

/* One context for the process: one thread, messages swallowed (but read). */
static inline vit_context *vit_fuzz_context(void) {
    static vit_context *ctx;
    if (!ctx) {
        if (vit_context_create(&ctx) != VIT_OK) {
            fprintf(stderr, "fuzz: no context: %s\n", vit_last_error());
            abort();
        }
        vit_context_set_int(ctx, VIT_CTX_THREADS, 1);
        vit_context_set_log(ctx, vit_fuzz_quiet, NULL);
    }
    return ctx;
}

/* The model make_corpus.py writes the checkpoint seeds for: 8 x 8 images in
 * 4 x 4 patches, 3 channels, 3 classes, width 8, one block of 2 heads, MLP
 * ratio 2. */
static inline vit_model *vit_fuzz_seed_model(void) {
    vit_config *cfg;
    vit_model *model = NULL;
    const int64_t v[][2] = {{VIT_CFG_IMG_SIZE, 8}, {VIT_CFG_PATCH_SIZE, 4}, {VIT_CFG_IN_CHANNELS, 3},
                            {VIT_CFG_NUM_CLASSES, 3}, {VIT_CFG_DIM, 8}, {VIT_CFG_DEPTH, 1}, {VIT_CFG_HEADS, 2}};
    if (vit_config_create(&cfg) != VIT_OK) abort();
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (vit_config_set_int(cfg, (vit_config_key)v[i][0], v[i][1]) != VIT_OK) abort();
    if (vit_config_set_float(cfg, VIT_CFG_MLP_RATIO, 2.0) != VIT_OK ||
        vit_model_create(vit_fuzz_context(), cfg, &model) != VIT_OK) {
        fprintf(stderr, "fuzz: cannot make the seeds' model: %s\n", vit_last_error());
        abort();
    }
    vit_config_destroy(cfg);
    return model;
}

static inline int vit_fuzz_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void vit_fuzz_rm_rf(const char *path) { nftw(path, vit_fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static char vit_fuzz_root[512];

static void vit_fuzz_cleanup(void) {
    if (vit_fuzz_root[0]) vit_fuzz_rm_rf(vit_fuzz_root);
    vit_fuzz_root[0] = '\0';
}

/* An empty folder for one input: the same path each time, emptied first. */
static inline const char *vit_fuzz_dir(void) {
    static char dir[600];
    if (!vit_fuzz_root[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(vit_fuzz_root, sizeof vit_fuzz_root, "%s/vit_fuzz_XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(vit_fuzz_root)) {
            fprintf(stderr, "fuzz: cannot make a scratch folder: %s\n", strerror(errno));
            abort();
        }
        atexit(vit_fuzz_cleanup);
        snprintf(dir, sizeof dir, "%s/in", vit_fuzz_root);
    }
    vit_fuzz_rm_rf(dir);
    if (mkdir(dir, 0700) != 0) {
        fprintf(stderr, "fuzz: cannot make %s: %s\n", dir, strerror(errno));
        abort();
    }
    return dir;
}

/* Writes n bytes to dir/name (name may hold one level of folders that exist). */
static inline int vit_fuzz_write(const char *dir, const char *name, const void *data, size_t n) {
    char path[1200];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    const unsigned char *p = data;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    close(fd);
    return done == n ? 0 : -1;
}

/* Cuts data at the first max - 1 separators into at most max parts; returns
 * the count. A part may be empty. */
static inline int vit_fuzz_split(const uint8_t *data, size_t size, int max, const uint8_t **part, size_t *len) {
    const size_t sl = sizeof VIT_FUZZ_SEP - 1;
    int n = 0;
    size_t start = 0;
    while (n < max - 1) {
        const uint8_t *hit = size - start >= sl ? memmem(data + start, size - start, VIT_FUZZ_SEP, sl) : NULL;
        if (!hit) break;
        part[n] = data + start;
        len[n] = (size_t)(hit - (data + start));
        n++;
        start = (size_t)(hit - data) + sl;
    }
    part[n] = data + start;
    len[n] = size - start;
    return n + 1;
}

/* Opens dir as a dataset, reads what a user would (sizes, classes, labels,
 * the first and last sample in both channel counts) and closes it. */
static inline void vit_fuzz_dataset(const char *dir, vit_data_format format, vit_split split) {
    vit_dataset *ds = NULL;
    vit_status s = vit_dataset_open(vit_fuzz_context(), dir, format, split, &ds);
    vit_fuzz_check_error(s);
    if (s != VIT_OK) return;
    int64_t n = 0, v;
    int classes = 0;
    if (vit_dataset_size(ds, &n) != VIT_OK || n <= 0 || vit_dataset_num_classes(ds, &classes) != VIT_OK ||
        classes <= 0) {
        fprintf(stderr, "fuzz: a dataset opened with %lld samples, %d classes\n", (long long)n, classes);
        abort();
    }
    vit_dataset_get_int(ds, VIT_DS_WIDTH, &v);
    vit_dataset_get_int(ds, VIT_DS_HEIGHT, &v);
    for (int c = 0; c < classes; c++) {
        const char *name = NULL;
        if (vit_dataset_class_name(ds, c, &name) != VIT_OK) abort();
        vit_fuzz_touch_str(name);
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t label = -1;
        if (vit_dataset_label(ds, i, &label) != VIT_OK || label < 0 || label >= classes) {
            fprintf(stderr, "fuzz: sample %lld has label %d of %d classes\n", (long long)i, (int)label, classes);
            abort();
        }
    }
    const int64_t pick[2] = {0, n - 1};
    for (int k = 0; k < 2; k++) {
        vit_dataset_set_int(ds, VIT_DS_CHANNELS, k ? 1 : 3);
        vit_tensor *img = NULL;
        int32_t label;
        s = vit_dataset_get(ds, pick[k], &img, &label);
        vit_fuzz_check_error(s);
        if (s == VIT_OK) {
            int64_t numel = 0;
            vit_tensor_numel(img, &numel);
            void *px = NULL;
            if (vit_tensor_data(img, &px) == VIT_OK) vit_fuzz_touch(px, (size_t)numel);
        }
        vit_tensor_destroy(img);
    }
    vit_dataset_destroy(ds);
}

#endif
