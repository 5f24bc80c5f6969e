/* Runs LLVMFuzzerTestOneInput (fuzz_safetensors.c) without libFuzzer: every
 * corpus file given on the command line and a built-in seed set, then
 * VIT_FUZZ_ITERS (default 100000) random mutations of them from a fixed seed,
 * so a failure reproduces. Mutations favour the header, where the parser is. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_test_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct input {
    uint8_t *data;
    size_t size;
} input;

static input corpus[64];
static int n_corpus;

static void add(const void *data, size_t size) {
    if (n_corpus == 64) return;
    input *in = &corpus[n_corpus++];
    in->data = malloc(size ? size : 1);
    memcpy(in->data, data, size);
    in->size = size;
}

static void add_st(const char *header, size_t data_len) {
    size_t n = strlen(header), size = 8 + n + data_len;
    uint8_t *b = calloc(1, size);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    for (size_t i = 0; i < data_len; i++) b[8 + n + i] = (uint8_t)(i * 37);
    add(b, size);
    free(b);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static const char *tokens[] = {"{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "\\udc00", "0", "-1",
                               "1e999", "18446744073709551616", "9223372036854775807", "null", "true", "F16",
                               "BF16", "F32", "I64", "\"shape\"", "\"dtype\"", "\"data_offsets\"",
                               "\"__metadata__\"", "\xc3", "\xff", " ", "\x00"};

/* One mutated copy of a corpus entry into *out (malloc'ed, exact size). */
static void mutate(const input *src, input *out) {
    size_t cap = src->size + 64;
    uint8_t *b = malloc(cap);
    memcpy(b, src->data, src->size);
    size_t size = src->size;
    /* bytes 0..hdr are the length prefix and header: most mutations go there */
    uint64_t hlen = 0;
    for (int i = 7; i >= 0 && size >= 8; i--) hlen = hlen << 8 | b[i];
    size_t hdr = size >= 8 && hlen <= size - 8 ? (size_t)hlen + 8 : size;
    int rounds = 1 + (int)(next() % 4);
    for (int r = 0; r < rounds; r++) {
        size_t span = (next() % 8) && hdr < size ? hdr : size; /* hdr may be stale after a cut */
        size_t at = span ? (size_t)(next() % span) : 0;
        switch (next() % 7) {
        case 0: if (size) b[at] ^= (uint8_t)(1u << (next() % 8)); break;
        case 1: if (size) b[at] = (uint8_t)next(); break;
        case 2: size = at; break; /* truncate */
        case 3: { /* insert a token */
            const char *t = tokens[next() % (sizeof tokens / sizeof tokens[0])];
            size_t n = t[0] ? strlen(t) : 1;
            if (size + n > cap) break;
            memmove(b + at + n, b + at, size - at);
            memcpy(b + at, t, n);
            size += n;
            break;
        }
        case 4: { /* delete a few bytes */
            size_t n = 1 + next() % 8;
            if (at + n <= size) {
                memmove(b + at, b + at + n, size - at - n);
                size -= n;
            }
            break;
        }
        case 5: /* rewrite the length prefix (often to match a resized header) */
            if (size >= 8) {
                uint64_t v = (next() % 2) ? size - 8 - next() % (size - 7) : next();
                for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
            }
            break;
        case 6: if (size && at + 1 < size) { uint8_t c = b[at]; b[at] = b[at + 1]; b[at + 1] = c; } break;
        }
    }
    out->data = realloc(b, size ? size : 1); /* exact size: ASan sees any overread */
    out->size = size;
}

int main(int argc, char **argv) {
    add_st("{\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\\u00e9\"},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
           "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]},"
           "\"c\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[22,24]},"
           "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[24,32]},"
           "\"e\":{\"dtype\":\"I64\",\"shape\":[0,4],\"data_offsets\":[32,32]}}   ", 32);
    add_st("{}", 0);
    add_st("{\"x\":{\"dtype\":\"U8\",\"shape\":[3,1],\"data_offsets\":[0,3]}}", 3);
    add("[1, -2.5e-3, \"s\\n\\ud83d\\ude00\", {\"a\": [true, false, null]}]", 55);
    for (int i = 1; i < argc; i++) {
        size_t size;
        char *data = io_slurp(argv[i], &size);
        if (!data) {
            fprintf(stderr, "fuzz_driver: cannot read %s\n", argv[i]);
            return 1;
        }
        add(data, size);
        free(data);
    }
    for (int i = 0; i < n_corpus; i++) LLVMFuzzerTestOneInput(corpus[i].data, corpus[i].size);

    const char *env = getenv("VIT_FUZZ_ITERS");
    long iters = env ? strtol(env, NULL, 10) : 100000;
    for (long it = 0; it < iters; it++) {
        input m;
        mutate(&corpus[next() % (uint64_t)n_corpus], &m);
        LLVMFuzzerTestOneInput(m.data, m.size);
        /* keep some mutants as new seeds so mutations compound */
        if (next() % 64 == 0 && n_corpus < 64) add(m.data, m.size);
        free(m.data);
    }
    printf("fuzz_driver: %d seeds, %ld mutations, no crash\n", n_corpus, iters);
    for (int i = 0; i < n_corpus; i++) free(corpus[i].data);
    return 0;
}
