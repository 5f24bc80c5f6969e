/* The restricted unpickler: the Python 2 cPickle CIFAR layout, Python 3
 * protocols 2-4, refusal of anything else, and damaged input. */
#include "fixtures.h"
#include "io/pickle.h"

static char *dir;

static void setup(void) { dir = fx_tmpdir(); }
static void teardown(void) {
    fx_rm(dir);
    free(dir);
}

static vit_status load(const unsigned char *b, size_t n, vit_pickle **p) { return vit_pickle_load(b, n, "test", p); }

/* The batch dict as the seed reads it: data uint8 [N, 3072], labels list. */
static void check_batch(const char *path, int64_t n0, int64_t count) {
    size_t n;
    unsigned char *b = fx_read(path, &n);
    vit_pickle *p;
    FX_OK(vit_pickle_load(b, n, path, &p));
    const vit_pobj *root = vit_pickle_root(p), *data = vit_pobj_get(root, "data"), *labels = vit_pobj_get(root, "labels"),
                   *bl = vit_pobj_get(root, "batch_label"), *files = vit_pobj_get(root, "filenames");
    ck_assert_int_eq(root->kind, VIT_P_DICT);
    ck_assert_ptr_nonnull(data);
    ck_assert_int_eq(data->kind, VIT_P_NDARRAY);
    ck_assert_int_eq(data->ndim, 2);
    ck_assert_int_eq(data->shape[0], count);
    ck_assert_int_eq(data->shape[1], 3072);
    ck_assert_uint_eq(data->dtype->len, 2);
    ck_assert(!memcmp(data->dtype->s, "u1", 2));
    ck_assert_uint_eq(data->data->len, (size_t)count * 3072);
    for (int64_t i = 0; i < count; i += 97)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y += 5)
                for (int x = 0; x < 32; x += 3)
                    ck_assert_int_eq(data->data->s[i * 3072 + c * 1024 + y * 32 + x],
                                     ((n0 + i) * 31 + c * 50 + y * 7 + x * 13) % 256);
    ck_assert_int_eq(labels->kind, VIT_P_LIST);
    ck_assert_uint_eq(labels->n, (size_t)count);
    for (int64_t i = 0; i < count; i++) ck_assert_int_eq(labels->items[i]->i, ((n0 + i) * 7 + 3) % 10);
    ck_assert_ptr_nonnull(bl);
    ck_assert_uint_eq(files->n, (size_t)count);
    vit_pickle_free(p);
    free(b);
}

START_TEST(python2_cpickle_layout) {
    fx_generate("cifar-py", dir);
    char *p = fx_path(dir, "data_batch_1");
    check_batch(p, 0, 1200); /* 1200 labels: two APPENDS batches; > 255 memo entries: LONG_BINPUT */
    free(p);
    p = fx_path(dir, "test_batch");
    check_batch(p, 5000, 50);
    free(p);
    /* The first bytes are those of the real data_batch_1. */
    p = fx_path(dir, "data_batch_2");
    size_t n;
    unsigned char *b = fx_read(p, &n);
    static const unsigned char head[] = "\x80\x02}q\x01(U\x04" "dataq\x02" "cnumpy.core.multiarray\n_reconstruct\nq\x03"
                                        "cnumpy\nndarray\nq\x04K\x00\x85U\x01" "b\x87Rq\x05(K\x01";
    ck_assert(!memcmp(b, head, sizeof head - 1));
    free(b);
    free(p);
    p = fx_path(dir, "batches.meta");
    b = fx_read(p, &n);
    vit_pickle *pk;
    FX_OK(load(b, n, &pk));
    const vit_pobj *names = vit_pobj_get(vit_pickle_root(pk), "label_names");
    ck_assert_uint_eq(names->n, 10);
    ck_assert_int_eq(names->items[3]->kind, VIT_P_BYTES);
    ck_assert(!memcmp(names->items[3]->s, "cat", 3));
    ck_assert_int_eq(vit_pobj_get(vit_pickle_root(pk), "num_vis")->i, 3072);
    vit_pickle_free(pk);
    free(b);
    free(p);
}
END_TEST

START_TEST(python3_protocols) {
    for (int proto = 2; proto <= 4; proto++) {
        char sub[32], args[1200];
        snprintf(sub, sizeof sub, "py3-%d", proto);
        char *d = fx_path(dir, sub);
        snprintf(args, sizeof args, "cifar-py3 '%s' %d", d, proto);
        fx_python_run("gen_fixtures.py", args);
        char *p = fx_path(d, "data_batch_1");
        check_batch(p, 0, 1200);
        free(p);
        free(d);
    }
}
END_TEST

START_TEST(refuses_everything_else) {
    fx_generate("pickle-evil", dir);
    static const struct {
        const char *file, *needle;
    } cases[] = {
        {"os_system", "global 'os.system'"},
        {"builtins_eval", "global 'builtins.eval'"},
        {"stack_global", "global 'os.system'"},
        {"newobj", "opcode 0x81"},
        {"reduce_ndarray", "cannot be called"},
        {"object_array", "object arrays are refused"},
        {"inst", "opcode 0x69"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *p = fx_path(dir, cases[i].file);
        size_t n;
        unsigned char *b = fx_read(p, &n);
        vit_pickle *pk = (vit_pickle *)1;
        vit_status s = vit_pickle_load(b, n, p, &pk);
        ck_assert_msg(s == VIT_ERR_FORMAT, "%s: %s", cases[i].file, vit_last_error());
        ck_assert_ptr_null(pk);
        ck_assert_msg(strstr(vit_last_error(), cases[i].needle) && strstr(vit_last_error(), p), "%s: '%s'",
                      cases[i].file, vit_last_error());
        free(b);
        free(p);
    }
    /* A float array parses (plain values), but is not CIFAR data: the dataset
     * reader refuses it by dtype (tested in test_datasets). Minimal streams: */
    vit_pickle *pk;
    FX_FAILS(load((const unsigned char *)"", 0, &pk), VIT_ERR_FORMAT, "ends before STOP");
    FX_FAILS(load((const unsigned char *)"\x80\x02.", 3, &pk), VIT_ERR_FORMAT, "STOP");
    FX_FAILS(load((const unsigned char *)"\x80\x09N.", 4, &pk), VIT_ERR_FORMAT, "protocol");
    FX_FAILS(load((const unsigned char *)"\x80\x02h\x05.", 5, &pk), VIT_ERR_FORMAT, "memo");
    FX_FAILS(load((const unsigned char *)"\x80\x02T\xff\xff\xff\x7f" "abc.", 11, &pk), VIT_ERR_FORMAT, "past the end");
    FX_FAILS(load((const unsigned char *)"\x80\x02K\x01K\x02.", 7, &pk), VIT_ERR_FORMAT, "exactly one");
    FX_FAILS(load((const unsigned char *)"\x80\x02(e.", 5, &pk), VIT_ERR_FORMAT, "without a container");
    FX_FAILS(load((const unsigned char *)"\x80\x02r\xff\xff\xff\xff.", 8, &pk), VIT_ERR_FORMAT, "memo store");
    FX_FAILS(load((const unsigned char *)"\x80\x02N\x71\x00r\xff\xff\xff\x7f.", 11, &pk), VIT_ERR_FORMAT, "memo index");
    FX_OK(load((const unsigned char *)"\x80\x02N.", 4, &pk));
    ck_assert_int_eq(vit_pickle_root(pk)->kind, VIT_P_NONE);
    vit_pickle_free(pk);
    vit_pickle_free(NULL);
}
END_TEST

START_TEST(damaged_streams) {
    fx_generate("cifar-py", dir);
    char *p = fx_path(dir, "batches.meta");
    size_t n;
    unsigned char *meta = fx_read(p, &n);
    vit_pickle *pk;
    /* Every strict prefix fails cleanly. */
    for (size_t cut = 0; cut < n; cut++) {
        unsigned char *b = malloc(cut + 1); /* exact size: the sanitizer sees any overread */
        memcpy(b, meta, cut);
        ck_assert_int_eq(load(b, cut, &pk), VIT_ERR_FORMAT);
        free(b);
    }
    free(p);
    p = fx_path(dir, "data_batch_2");
    size_t nb;
    unsigned char *batch = fx_read(p, &nb);
    for (size_t cut = 0; cut < 3000; cut += 3) ck_assert_int_eq(load(batch, cut, &pk), VIT_ERR_FORMAT);
    /* Random corruption: parse or refuse, never crash or leak. */
    unsigned seed = 777;
    unsigned char *b = malloc(nb);
    for (int iter = 0; iter < 3000; iter++) {
        int is_meta = iter % 3 == 0;
        size_t len = is_meta ? n : nb;
        memcpy(b, is_meta ? meta : batch, len);
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 4) % (is_meta ? len : 2048 < len ? 2048 : len); /* the structure, not the pixels */
            if (!is_meta && k == 2) at = len - 1 - (seed >> 6) % 1500;            /* and the tail */
            b[at] = (unsigned char)(seed >> 20);
        }
        vit_status s = load(b, len, &pk);
        ck_assert(s == VIT_OK || s == VIT_ERR_FORMAT);
        if (s == VIT_OK) vit_pickle_free(pk);
    }
    free(b);
    free(batch);
    free(meta);
    free(p);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("pickle");
    TCase *tc = tcase_create("pickle");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, python2_cpickle_layout);
    tcase_add_test(tc, python3_protocols);
    tcase_add_test(tc, refuses_everything_else);
    tcase_add_test(tc, damaged_streams);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return fx_main(argc, argv, suite()); }
