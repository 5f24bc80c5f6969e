/* CIFAR-10's python batches: the restricted unpickler (io/pickle.h) on the
 * batch, every value it built visited, then the dataset reader on a
 * cifar-10-batches-py folder made of the input: test_batch and, after
 * VIT_FUZZ_SEP, batches.meta (absent when there is no separator). */
#include "fuzz.h"
#include "io/pickle.h"

/* Values can share children and even contain themselves (the memo), so the
 * walk is bounded by a budget rather than by the shape of the graph. */
static void walk(const vit_pobj *o, int depth, size_t *budget) {
    if (!o || depth > 64 || *budget == 0) return;
    (*budget)--;
    vit_fuzz_touch_str(vit_pkind_name(o->kind));
    switch (o->kind) {
    case VIT_P_BYTES:
    case VIT_P_STR:
    case VIT_P_DTYPE:
        vit_fuzz_touch(o->s, o->len);
        break;
    case VIT_P_TUPLE:
    case VIT_P_LIST:
    case VIT_P_DICT:
        if (o->n > o->cap || (o->kind == VIT_P_DICT && o->n % 2)) abort();
        for (size_t i = 0; i < o->n; i++) walk(o->items[i], depth + 1, budget);
        break;
    case VIT_P_NDARRAY:
        if (o->ndim < 0 || o->ndim > 4) abort();
        walk(o->dtype, depth + 1, budget);
        walk(o->data, depth + 1, budget);
        break;
    default:
        break;
    }
}

static void load(const uint8_t *data, size_t size) {
    vit_pickle *p = NULL;
    vit_status s = vit_pickle_load(data, size, "fuzz.pickle", &p);
    vit_fuzz_check_error(s);
    if (s == VIT_OK) {
        size_t budget = 100000;
        walk(vit_pickle_root(p), 0, &budget);
        static const char *const keys[] = {"data", "labels", "label_names", "batch_label", "filenames"};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            budget = 1000;
            walk(vit_pobj_get(vit_pickle_root(p), keys[i]), 0, &budget);
        }
    } else if (p) {
        abort();
    }
    vit_pickle_free(p);
}

VIT_FUZZ_TARGET(cifar_pickle) {
    const uint8_t *part[2];
    size_t len[2];
    int n = vit_fuzz_split(data, size, 2, part, len);
    for (int i = 0; i < n; i++) {
        /* exact-size copies: an overread past the pickle shows under ASan */
        uint8_t *copy = malloc(len[i] ? len[i] : 1);
        if (!copy) return 0;
        memcpy(copy, part[i], len[i]);
        load(copy, len[i]);
        free(copy);
    }
    const char *dir = vit_fuzz_dir();
    if (vit_fuzz_write(dir, "test_batch", part[0], len[0]) != 0) abort();
    if (n > 1 && vit_fuzz_write(dir, "batches.meta", part[1], len[1]) != 0) abort();
    vit_fuzz_dataset(dir, VIT_DATA_CIFAR10, VIT_SPLIT_VAL);
    return 0;
}
