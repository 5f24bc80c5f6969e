/* Small helpers shared by the io tests: a scratch folder and whole-file reads. */
#ifndef VIT_IO_TEST_UTIL_H
#define VIT_IO_TEST_UTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A fresh folder under $TMPDIR (or /tmp) for one test; path into buf. */
static inline const char *io_scratch_dir(char *buf, size_t cap) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, cap, "%s/vit_io_XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(buf);
}

static inline int io_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes a scratch folder and everything in it. */
static inline void io_rm_rf(const char *path) {
    if (path && *path) nftw(path, io_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Whole file into a malloc'ed buffer (NUL-terminated); NULL when missing. */
static inline char *io_slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (size) *size = (size_t)n;
    return buf;
}

static inline int io_spit(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* 1 when the file holds exactly text. */
static inline int io_file_is(const char *path, const char *text) {
    size_t n;
    char *buf = io_slurp(path, &n);
    int same = buf && n == strlen(text) && memcmp(buf, text, n) == 0;
    free(buf);
    return same;
}

#endif
