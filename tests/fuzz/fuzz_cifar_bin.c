/* CIFAR-10's binary batches: a cifar-10-batches-bin folder made of the
 * input: test_batch.bin (records of 1 label + 3072 pixel bytes) and, after
 * VIT_FUZZ_SEP, batches.meta.txt (absent when there is no separator). */
#include "fuzz.h"

VIT_FUZZ_TARGET(cifar_bin) {
    const uint8_t *part[2];
    size_t len[2];
    int n = vit_fuzz_split(data, size, 2, part, len);
    const char *dir = vit_fuzz_dir();
    if (vit_fuzz_write(dir, "test_batch.bin", part[0], len[0]) != 0) abort();
    if (n > 1 && vit_fuzz_write(dir, "batches.meta.txt", part[1], len[1]) != 0) abort();
    vit_fuzz_dataset(dir, VIT_DATA_CIFAR10, VIT_SPLIT_VAL);
    return 0;
}
