/* IDX datasets (MNIST layout), plain and gzip: a folder made of the input:
 * t10k-images-idx3-ubyte, then after VIT_FUZZ_SEP t10k-labels-idx1-ubyte.
 * A part that starts with the gzip magic gets the .gz name, as downloads do
 * (the reader decompresses by content either way). Opened through format
 * detection, which must pick IDX. */
#include "fuzz.h"

static void write_part(const char *dir, const char *name, const uint8_t *p, size_t n) {
    char full[96];
    int gz = n >= 2 && p[0] == 0x1f && p[1] == 0x8b;
    snprintf(full, sizeof full, "%s%s", name, gz ? ".gz" : "");
    if (vit_fuzz_write(dir, full, p, n) != 0) abort();
}

VIT_FUZZ_TARGET(idx) {
    const uint8_t *part[2];
    size_t len[2];
    int n = vit_fuzz_split(data, size, 2, part, len);
    const char *dir = vit_fuzz_dir();
    write_part(dir, "t10k-images-idx3-ubyte", part[0], len[0]);
    if (n > 1) write_part(dir, "t10k-labels-idx1-ubyte", part[1], len[1]);
    vit_fuzz_dataset(dir, VIT_DATA_AUTO, VIT_SPLIT_VAL);
    return 0;
}
