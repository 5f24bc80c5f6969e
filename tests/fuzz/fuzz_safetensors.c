/* The safetensors reader (io/safetensors.h): the 8-byte length, the JSON
 * header and its tensor table, then everything a caller can reach: every
 * tensor's bytes, lookups by name, f32 conversion and the metadata. */
#include "fuzz.h"
#include "io/safetensors.h"

static void use_file(vit_st_file *f) {
    vit_fuzz_touch_str(vit_st_path(f));
    for (size_t i = 0; i < vit_st_count(f); i++) {
        const vit_st_tensor *t = vit_st_at(f, i);
        if (!t || vit_st_find(f, t->name) != t || t->end < t->begin || t->ndim < 0 || t->ndim > VIT_ST_MAX_DIMS)
            abort();
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
        if (numel != t->numel || t->end - t->begin != numel * vit_st_dtype_size(t->dtype)) abort();
        vit_fuzz_touch(vit_st_raw(f, t), (size_t)(t->end - t->begin));
        if (t->numel > ((uint64_t)1 << 20)) continue;
        float *dst = malloc(t->numel ? (size_t)t->numel * sizeof(float) : 1);
        if (!dst) continue;
        vit_status s = vit_st_read_f32(f, t, dst, (size_t)t->numel);
        vit_fuzz_check_error(s);
        if (t->numel) vit_fuzz_check_error(vit_st_read_f32(f, t, dst, (size_t)t->numel - 1)); /* wrong count */
        free(dst);
    }
    if (vit_st_at(f, vit_st_count(f)) != NULL) abort();
    for (size_t i = 0; i < vit_st_metadata_count(f); i++) {
        const char *k, *v;
        vit_st_metadata_at(f, i, &k, &v);
        vit_fuzz_touch_str(k);
        vit_fuzz_touch_str(v);
        if (vit_st_metadata(f, k) != v) abort();
    }
}

VIT_FUZZ_TARGET(safetensors) {
    /* an exact-size copy: the caller's buffer may be larger than size */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    vit_st_file *f = NULL;
    vit_status s = vit_st_open_memory(copy, size, "fuzz.safetensors", &f);
    vit_fuzz_check_error(s);
    if (s == VIT_OK) use_file(f);
    else if (f) abort();
    vit_st_close(f);
    free(copy);
    return 0;
}
