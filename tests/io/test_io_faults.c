/*
 * Checkpoint saves that fail part-way leave the previous file intact and
 * loadable, and leave no temporary behind. Faults are injected into every
 * step of vit_atomic_write as libvit.so calls it (this program interposes
 * those functions and forwards to the C library's own): each fwrite of the
 * safetensors writer in turn, fflush, fsync, fclose, rename and the
 * temporary's creation; and a full file system, from a file-size limit
 * (RLIMIT_FSIZE, so a write fails with EFBIG) swept from 0 bytes to the
 * file's size.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vit/vit.h>

/* ---------------------------------------------------------- interposer */
enum fault { F_NONE, F_FWRITE, F_FFLUSH, F_FSYNC, F_FCLOSE, F_RENAME, F_MKOSTEMP };
static enum fault fault;
static long fault_at, calls; /* the fault hits the fault_at-th call of its kind */

static int hit(enum fault kind) {
    if (fault != kind) return 0;
    return ++calls == fault_at;
}

/* The C library's own function behind an interposed one. */
#define REAL(name) static __typeof__(name) *real_##name; \
    if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

size_t fwrite(const void *p, size_t size, size_t n, FILE *f) {
    REAL(fwrite);
    if (hit(F_FWRITE)) {
        errno = EIO;
        return n / 2; /* a short write, as a device error mid-way gives */
    }
    return real_fwrite(p, size, n, f);
}
int fflush(FILE *f) {
    REAL(fflush);
    if (hit(F_FFLUSH)) {
        errno = ENOSPC;
        return EOF;
    }
    return real_fflush(f);
}
int fsync(int fd) {
    REAL(fsync);
    if (hit(F_FSYNC)) {
        errno = EIO;
        return -1;
    }
    return real_fsync(fd);
}
int fclose(FILE *f) {
    REAL(fclose);
    int rc = real_fclose(f);
    if (hit(F_FCLOSE)) {
        errno = EIO;
        return EOF;
    }
    return rc;
}
int rename(const char *from, const char *to) {
    REAL(rename);
    if (hit(F_RENAME)) {
        errno = ENOSPC;
        return -1;
    }
    return real_rename(from, to);
}
int mkostemp(char *tmpl, int flags) {
    REAL(mkostemp);
    if (hit(F_MKOSTEMP)) {
        errno = EACCES;
        return -1;
    }
    return real_mkostemp(tmpl, flags);
}

/* ------------------------------------------------------------------ test */
static char dir[64], path[128];
static int failures;

#define SETUP(call) do { if ((call) != VIT_OK) { \
    fprintf(stderr, "setup %s: %s\n", #call, vit_last_error()); exit(1); } } while (0)

static unsigned char *slurp(const char *p, long *n) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)*n + 1);
    if (b && fread(b, 1, (size_t)*n, f) != (size_t)*n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static int entries(void) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static unsigned char *fresh; /* what a save that goes through writes */
static long fresh_n;

/* After a failed save: the old bytes, loadable, and nothing else in the
 * folder. A fault after the rename (syncing the folder) reports the failure
 * with the new file already complete in place: either whole file passes. */
static void expect_intact(const char *what, vit_status st, const unsigned char *old, long old_n, vit_context *ctx) {
    long n = 0;
    unsigned char *now = slurp(path, &n);
    vit_model *back = NULL;
    const int is_old = now && n == old_n && memcmp(now, old, (size_t)n) == 0;
    const int is_new = now && n == fresh_n && memcmp(now, fresh, (size_t)n) == 0;
    if (st == VIT_OK) {
        fprintf(stderr, "%s: the save reported success\n", what);
        failures++;
    } else if (!is_old && !is_new) {
        fprintf(stderr, "%s: the checkpoint is neither the previous one nor the new one, whole\n", what);
        failures++;
    } else if (vit_model_load(ctx, path, &back) != VIT_OK) {
        fprintf(stderr, "%s: the previous checkpoint no longer loads: %s\n", what, vit_last_error());
        failures++;
    } else if (entries() != 1) {
        fprintf(stderr, "%s: %d files in %s after the failed save, expected 1\n", what, entries(), dir);
        failures++;
    }
    vit_model_destroy(back);
    free(now);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/vit_io_faults.XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/last.safetensors", dir);
    vit_context *ctx;
    vit_config *cfg;
    vit_model *m;
    SETUP(vit_context_create(&ctx));
    SETUP(vit_config_create(&cfg));
    SETUP(vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, 16));
    SETUP(vit_config_set_int(cfg, VIT_CFG_PATCH_SIZE, 4));
    SETUP(vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, 3));
    SETUP(vit_config_set_int(cfg, VIT_CFG_DIM, 16));
    SETUP(vit_config_set_int(cfg, VIT_CFG_DEPTH, 1));
    SETUP(vit_config_set_int(cfg, VIT_CFG_HEADS, 2));
    SETUP(vit_model_create(ctx, cfg, &m));
    SETUP(vit_model_save(m, path));
    long old_n = 0;
    unsigned char *old = slurp(path, &old_n);
    if (!old) return 1;
    /* The next save would write other bytes. */
    float bias[3] = {1, 2, 3};
    SETUP(vit_model_param_write(m, "head.bias", bias, sizeof bias));
    char fresh_path[160];
    snprintf(fresh_path, sizeof fresh_path, "%s.fresh", dir);
    SETUP(vit_model_save(m, fresh_path));
    fresh = slurp(fresh_path, &fresh_n);
    unlink(fresh_path);
    if (!fresh) return 1;

    static const struct {
        enum fault kind;
        const char *name;
    } kinds[] = {{F_FWRITE, "fwrite"}, {F_FFLUSH, "fflush"}, {F_FSYNC, "fsync"}, {F_FCLOSE, "fclose"},
                 {F_RENAME, "rename"}, {F_MKOSTEMP, "mkostemp"}};
    long injected = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (long at = 1;; at++) {
            fault = kinds[k].kind, fault_at = at, calls = 0;
            vit_status st = vit_model_save(m, path);
            fault = F_NONE;
            if (calls < at) { /* the save made fewer such calls: all swept */
                /* that save went through: put the old file back for the next kind */
                FILE *f = fopen(path, "wb");
                if (!f || fwrite(old, 1, (size_t)old_n, f) != (size_t)old_n) return 1;
                fclose(f);
                break;
            }
            char what[64];
            snprintf(what, sizeof what, "%s #%ld failing", kinds[k].name, at);
            expect_intact(what, st, old, old_n, ctx);
            injected++;
            FILE *f = fopen(path, "wb"); /* the old file again, whichever is there */
            if (!f || fwrite(old, 1, (size_t)old_n, f) != (size_t)old_n) return 1;
            fclose(f);
        }

    /* A full file system: the file-size limit stops the temporary's writes
     * at every 97th byte up to the file's size (SIGXFSZ ignored: the write
     * then fails with EFBIG). */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved;
    getrlimit(RLIMIT_FSIZE, &saved);
    long limits = 0;
    for (long limit = 0; limit < old_n; limit += 97, limits++) {
        struct rlimit rl = {(rlim_t)limit, saved.rlim_max};
        setrlimit(RLIMIT_FSIZE, &rl);
        vit_status st = vit_model_save(m, path);
        setrlimit(RLIMIT_FSIZE, &saved);
        char what[64];
        snprintf(what, sizeof what, "a file system full at %ld bytes", limit);
        expect_intact(what, st, old, old_n, ctx);
    }
    /* With no fault the save goes through and replaces the file. */
    SETUP(vit_model_save(m, path));
    long new_n = 0;
    unsigned char *now = slurp(path, &new_n);
    if (!now || (new_n == old_n && memcmp(now, old, (size_t)old_n) == 0)) {
        fprintf(stderr, "the save with no fault did not replace the file\n");
        failures++;
    }
    free(now);
    free(old);
    free(fresh);
    vit_model_destroy(m);
    vit_config_destroy(cfg);
    vit_context_destroy(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    printf("%ld injected call failures, %ld file-size limits: %s\n", injected, limits,
           failures ? "FAILED" : "previous checkpoint intact and loadable after each");
    return failures ? 1 : 0;
}
