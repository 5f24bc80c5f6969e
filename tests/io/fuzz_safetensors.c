/* libFuzzer entry point for the safetensors and JSON parsers.
 *
 * With clang:  clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *                -Ilibvit -Iinclude -Ibuild/include tests/io/fuzz_safetensors.c \
 *                libvit/io/{json,safetensors,atomic}.c libvit/core/{error,memory}.c -lm
 * Without it, fuzz_driver.c calls the same function on a corpus and random
 * mutations, so the normal (and sanitizer) test runs exercise it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "io/json.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink; /* keeps the byte reads below from being optimised away */

/* Touch everything a caller could: a bug that only shows on access (a bad
 * offset that passed validation) must crash here, under the sanitizers. */
static void use_file(vit_st_file *f) {
    for (size_t i = 0; i < vit_st_count(f); i++) {
        const vit_st_tensor *t = vit_st_at(f, i);
        if (vit_st_find(f, t->name) != t) abort();
        const unsigned char *raw = vit_st_raw(f, t);
        for (uint64_t b = 0; b < t->end - t->begin; b++) sink += raw[b];
        if (t->numel > (1u << 20)) continue;
        float *dst = malloc(t->numel ? t->numel * sizeof(float) : 1);
        if (dst) vit_st_read_f32(f, t, dst, (size_t)t->numel);
        free(dst);
    }
    for (size_t i = 0; i < vit_st_metadata_count(f); i++) {
        const char *k, *v;
        vit_st_metadata_at(f, i, &k, &v);
        if (vit_st_metadata(f, k) != v) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vit_st_file *f;
    if (vit_st_open_memory(data, size, "fuzz", &f) == VIT_OK) {
        use_file(f);
        vit_st_close(f);
    }
    /* the same bytes as a JSON text, and just the header part */
    vit_json_doc *doc;
    if (vit_json_parse((const char *)data, size, NULL, "fuzz", &doc) == VIT_OK) vit_json_free(doc);
    if (size > 8 && vit_json_parse((const char *)data + 8, size - 8, NULL, "fuzz", &doc) == VIT_OK)
        vit_json_free(doc);
    return 0;
}
