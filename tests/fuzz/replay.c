/* Replays the fuzz targets without libFuzzer, as a normal test: every target
 * on every file of its seed corpus (corpus/<target>/) and its regression
 * inputs (regress/<target>/: what fuzzing once crashed or hung on), then on
 * VIT_FUZZ_ITERS (default 1000) seeded random mutations of them, so the
 * sanitizer build of the test suite exercises the readers too and a failure
 * reproduces from the same seed.
 *
 *   fuzz_replay DIR                  every target; DIR is tests/fuzz
 *   fuzz_replay DIR TARGET [FILE...] one target; on FILEs only when given
 *
 * A crash, a sanitizer report or an abort() in a target's own checks fails
 * the test; a hang fails it on the test's timeout. Each input is named on
 * stderr before it runs when VIT_FUZZ_VERBOSE is set, and the mutated input
 * that failed can be written out with VIT_FUZZ_SAVE=path. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define TARGETS(X) X(png) X(jpeg) X(idx) X(cifar_bin) X(cifar_pickle) X(safetensors) X(checkpoint) X(json) X(folder) X(hf)

#define DECLARE(name) int vit_fuzz_##name(const uint8_t *data, size_t size);
TARGETS(DECLARE)

typedef struct target {
    const char *name;
    int (*fn)(const uint8_t *data, size_t size);
} target;

#define ENTRY(name) {#name, vit_fuzz_##name},
static const target targets[] = {TARGETS(ENTRY)};
#define N_TARGETS (sizeof targets / sizeof targets[0])

typedef struct blob {
    uint8_t *data;
    size_t size;
} blob;

typedef struct blobs {
    blob *v;
    size_t n, cap;
} blobs;

static void blobs_add(blobs *b, uint8_t *data, size_t size) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 32;
        b->v = realloc(b->v, b->cap * sizeof *b->v);
        if (!b->v) abort();
    }
    b->v[b->n].data = data;
    b->v[b->n].size = size;
    b->n++;
}

static void blobs_free(blobs *b) {
    for (size_t i = 0; i < b->n; i++) free(b->v[i].data);
    free(b->v);
    memset(b, 0, sizeof *b);
}

/* Whole file, in a buffer of exactly its size (ASan then sees any overread). */
static uint8_t *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *p = realloc(buf, cap);
            if (!p) abort();
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) abort();
    memcpy(exact, buf, n);
    free(buf);
    *size = n;
    return exact;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Regular files of dir in name order (a missing folder is empty). */
static size_t list_files(const char *dir, char ***out) {
    DIR *d = opendir(dir);
    size_t n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (!p) abort();
        snprintf(p, len, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            v = realloc(v, cap * sizeof *v);
            if (!v) abort();
        }
        v[n++] = p;
    }
    if (d) closedir(d);
    if (n > 1) qsort(v, n, sizeof *v, cmp_names);
    *out = v;
    return n;
}

/* The tokens of a libFuzzer dictionary (lines name="value", \\ \" \xNN). */
static void read_dict(const char *path, blobs *out) {
    size_t size;
    uint8_t *text = slurp(path, &size);
    if (!text) return;
    for (size_t i = 0; i < size;) {
        size_t end = i;
        while (end < size && text[end] != '\n') end++;
        const uint8_t *q1 = memchr(text + i, '"', end - i), *q2 = NULL;
        for (const uint8_t *p = text + end; q1 && p > q1 + 1; p--)
            if (p[-1] == '"') { q2 = p - 1; break; }
        if (q1 && q2 && text[i] != '#') {
            uint8_t *tok = malloc((size_t)(q2 - q1));
            size_t n = 0;
            for (const uint8_t *p = q1 + 1; p < q2; p++) {
                if (*p == '\\' && p + 1 < q2 && p[1] == 'x' && p + 3 < q2) {
                    char hex[3] = {(char)p[2], (char)p[3], 0};
                    tok[n++] = (uint8_t)strtoul(hex, NULL, 16);
                    p += 3;
                } else if (*p == '\\' && p + 1 < q2) {
                    tok[n++] = *++p;
                } else {
                    tok[n++] = *p;
                }
            }
            if (n) blobs_add(out, tok, n);
            else free(tok);
        }
        i = end + 1;
    }
    free(text);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* One mutant of a seed: a few edits of the kinds libFuzzer makes (bit flips,
 * byte values, boundary integers, dictionary tokens, deletions, cuts,
 * duplicated chunks, a splice with another seed), in a buffer of exact size. */
static blob mutate(const blobs *seeds, const blobs *dict) {
    const blob *src = &seeds->v[next() % seeds->n];
    size_t cap = src->size * 2 + 256, size = src->size;
    uint8_t *b = malloc(cap);
    if (!b) abort();
    memcpy(b, src->data, size);
    int rounds = 1 + (int)(next() % 4);
    for (int r = 0; r < rounds; r++) {
        size_t at = size ? (size_t)(next() % size) : 0;
        switch (next() % 9) {
        case 0: if (size) b[at] ^= (uint8_t)(1u << (next() % 8)); break;
        case 1: if (size) b[at] = (uint8_t)next(); break;
        case 2: { /* a boundary value, either byte order, 1..4 bytes */
            static const uint32_t vals[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000u,
                                            0xffffffffu, 65535, 65536, 3072, 4096, 100000};
            uint32_t v = vals[next() % (sizeof vals / sizeof vals[0])];
            size_t w = 1 + next() % 4;
            int be = (int)(next() % 2);
            for (size_t k = 0; k < w && at + k < size; k++)
                b[at + k] = (uint8_t)(v >> (8 * (be ? w - 1 - k : k)));
            break;
        }
        case 3: { /* insert a dictionary token, or overwrite with it */
            if (!dict->n) break;
            const blob *t = &dict->v[next() % dict->n];
            if (size + t->size > cap) break;
            if (next() % 2) {
                memmove(b + at + t->size, b + at, size - at);
                size += t->size;
            } else if (at + t->size > size) {
                break;
            }
            memcpy(b + at, t->data, t->size);
            break;
        }
        case 4: { /* delete a few bytes */
            size_t n = 1 + next() % 16;
            if (at + n <= size) {
                memmove(b + at, b + at + n, size - at - n);
                size -= n;
            }
            break;
        }
        case 5: size = at; break; /* cut */
        case 6: { /* duplicate a chunk */
            size_t n = 1 + next() % 64;
            if (at + n <= size && size + n <= cap) {
                memmove(b + at + n, b + at, size - at);
                size += n;
            }
            break;
        }
        case 7: { /* splice: keep a prefix, continue with another seed's tail */
            const blob *o = &seeds->v[next() % seeds->n];
            size_t from = o->size ? (size_t)(next() % o->size) : 0, n = o->size - from;
            if (at + n > cap) n = cap - at;
            memcpy(b + at, o->data + from, n);
            size = at + n;
            break;
        }
        case 8: /* swap two bytes */
            if (at + 1 < size) {
                uint8_t c = b[at];
                b[at] = b[at + 1];
                b[at + 1] = c;
            }
            break;
        }
    }
    blob out = {realloc(b, size ? size : 1), size};
    if (!out.data) abort();
    return out;
}

static int verbose;

static void run_one(const target *t, const char *what, const uint8_t *data, size_t size) {
    if (verbose) fprintf(stderr, "fuzz_replay: %s: %s (%zu bytes)\n", t->name, what, size);
    t->fn(data, size);
}

/* Saved before each mutant runs, so the one that crashes is on disk. */
static void save_input(const uint8_t *data, size_t size) {
    const char *path = getenv("VIT_FUZZ_SAVE");
    if (!path || !*path) return;
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, size, f);
    fclose(f);
}

static void run_target(const target *t, const char *root, long iters) {
    char dir[1024];
    blobs seeds = {0}, dict = {0};
    size_t counts[2] = {0, 0};
    const char *kinds[2] = {"corpus", "regress"};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < 2; k++) {
        snprintf(dir, sizeof dir, "%s/%s/%s", root, kinds[k], t->name);
        char **files;
        size_t n = list_files(dir, &files);
        for (size_t i = 0; i < n; i++) {
            size_t size;
            uint8_t *data = slurp(files[i], &size);
            if (!data) {
                fprintf(stderr, "fuzz_replay: cannot read %s\n", files[i]);
                exit(1);
            }
            run_one(t, files[i], data, size);
            blobs_add(&seeds, data, size);
            free(files[i]);
        }
        free(files);
        counts[k] = n;
    }
    if (counts[0] == 0) {
        fprintf(stderr, "fuzz_replay: %s: no seed corpus in %s/corpus/%s\n", t->name, root, t->name);
        exit(1);
    }
    snprintf(dir, sizeof dir, "%s/%s.dict", root, t->name);
    read_dict(dir, &dict);
    rng_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)(t - targets) * 0x100000001B3ull;
    for (long i = 0; i < iters; i++) {
        blob m = mutate(&seeds, &dict);
        save_input(m.data, m.size);
        char what[64];
        snprintf(what, sizeof what, "mutant %ld", i);
        run_one(t, what, m.data, m.size);
        free(m.data);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("fuzz_replay: %-12s %3zu seeds, %3zu regression inputs, %ld mutations, %zu dictionary tokens: ok (%.1f s)\n",
           t->name, counts[0], counts[1], iters, dict.n,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    fflush(stdout);
    blobs_free(&seeds);
    blobs_free(&dict);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FUZZ_DIR [TARGET [FILE...]]\n", argv[0]);
        return 2;
    }
    const char *root = argv[1];
    verbose = getenv("VIT_FUZZ_VERBOSE") != NULL;
    const char *env = getenv("VIT_FUZZ_ITERS");
    long iters = env ? strtol(env, NULL, 10) : 1000;
    for (size_t i = 0; i < N_TARGETS; i++) {
        const target *t = &targets[i];
        if (argc > 2 && strcmp(argv[2], t->name) != 0) continue;
        if (argc > 3) {
            for (int a = 3; a < argc; a++) {
                size_t size;
                uint8_t *data = slurp(argv[a], &size);
                if (!data) {
                    fprintf(stderr, "fuzz_replay: cannot read %s\n", argv[a]);
                    return 1;
                }
                run_one(t, argv[a], data, size);
                free(data);
                printf("fuzz_replay: %s: %s: ok\n", t->name, argv[a]);
            }
            return 0;
        }
        run_target(t, root, iters);
        if (argc > 2) return 0;
    }
    if (argc > 2) {
        fprintf(stderr, "fuzz_replay: no target '%s'\n", argv[2]);
        return 2;
    }
    return 0;
}
