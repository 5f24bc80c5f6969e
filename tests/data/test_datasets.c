/* The three dataset formats: contents, detection, and clear errors for
 * missing, truncated, lying and absurd files. */
#include <zlib.h>

#include "fixtures.h"

static char *dir;
static vit_context *ctx;

static void setup(void) {
    dir = fx_tmpdir();
    ctx = fx_ctx();
}
static void teardown(void) {
    vit_context_destroy(ctx);
    fx_rm(dir);
    free(dir);
}

static int pix(int64_t n, int c, int y, int x) { return (int)((n * 31 + c * 50 + y * 7 + x * 13) % 256); }
static int lab(int64_t n) { return (int)((n * 7 + 3) % 10); }

static vit_dataset *open_ok(const char *path, vit_data_format f, vit_split split) {
    vit_dataset *ds;
    FX_OK(vit_dataset_open(ctx, path, f, split, &ds));
    return ds;
}

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    ck_assert_msg(system(cmd) == 0, "%s", cmd);
}

/* ---------------------------------------------------------------------- IDX */
static void check_idx(const char *path, const char *class0) {
    vit_dataset *ds = open_ok(path, VIT_DATA_AUTO, VIT_SPLIT_TRAIN);
    int64_t n, v;
    FX_OK(vit_dataset_size(ds, &n));
    ck_assert_int_eq(n, 120);
    FX_OK(vit_dataset_get_int(ds, VIT_DS_FORMAT, &v));
    ck_assert_int_eq(v, VIT_DATA_IDX);
    int nc;
    const char *name;
    FX_OK(vit_dataset_num_classes(ds, &nc));
    ck_assert_int_eq(nc, 10);
    FX_OK(vit_dataset_class_name(ds, 0, &name));
    ck_assert_str_eq(name, class0);
    for (int64_t i = 0; i < n; i += 17) {
        vit_tensor *t;
        int32_t l;
        FX_OK(vit_dataset_get(ds, i, &t, &l));
        ck_assert_int_eq(l, lab(i));
        int nd;
        int64_t shape[4];
        FX_OK(vit_tensor_shape(t, &nd, shape));
        ck_assert_int_eq(nd, 3);
        ck_assert_int_eq(shape[0], 28);
        ck_assert_int_eq(shape[2], 1);
        void *d;
        FX_OK(vit_tensor_data(t, &d));
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) ck_assert_int_eq(((uint8_t *)d)[y * 28 + x], pix(i, 0, y, x));
        vit_tensor_destroy(t);
    }
    /* Gray to RGB on request. */
    FX_OK(vit_dataset_set_int(ds, VIT_DS_CHANNELS, 3));
    vit_tensor *t;
    FX_OK(vit_dataset_get(ds, 5, &t, NULL));
    void *d;
    FX_OK(vit_tensor_data(t, &d));
    ck_assert_int_eq(((uint8_t *)d)[3 * 30 + 2], pix(5, 0, 1, 2));
    vit_tensor_destroy(t);
    vit_dataset_destroy(ds);
    ds = open_ok(path, VIT_DATA_IDX, VIT_SPLIT_VAL);
    FX_OK(vit_dataset_size(ds, &n));
    ck_assert_int_eq(n, 30);
    int32_t l;
    FX_OK(vit_dataset_label(ds, 3, &l));
    ck_assert_int_eq(l, lab(1003));
    vit_dataset_destroy(ds);
}

START_TEST(idx_plain_and_gzip) {
    fx_generate("idx", dir);
    check_idx(dir, "0");
    char *gz = fx_path(dir, "gz");
    check_idx(gz, "0");
    /* Fashion-MNIST's names when the folder says so (Debian's path does). */
    char *fashion = fx_path(dir, "fashion-mnist");
    sh("cp -r '%s' '%s'", gz, fashion);
    check_idx(fashion, "T-shirt/top");
    free(fashion);
    free(gz);
}
END_TEST

static void write_gz(const char *path, const unsigned char *b, size_t n) {
    gzFile f = gzopen(path, "wb");
    ck_assert_int_eq(gzwrite(f, b, (unsigned)n), (int)n);
    gzclose(f);
}

static void expect_open_fails(const char *path, vit_data_format f, vit_split split, vit_status st, const char *needle) {
    vit_dataset *ds = (vit_dataset *)1;
    FX_FAILS(vit_dataset_open(ctx, path, f, split, &ds), st, needle);
    ck_assert_ptr_null(ds);
}

START_TEST(idx_errors) {
    fx_generate("idx", dir);
    char *img = fx_path(dir, "train-images-idx3-ubyte"), *lbl = fx_path(dir, "train-labels-idx1-ubyte");
    size_t n;
    unsigned char *good = fx_read(img, &n), *b = malloc(n + 16);

    memcpy(b, good, n); /* truncated data */
    fx_write(img, b, n - 100);
    expect_open_fails(dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "truncated");
    fx_write(img, b, 10); /* truncated header */
    expect_open_fails(dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "truncated IDX header");
    b[7] = 200; /* lying count: 200 images promised, 120 present */
    fx_write(img, b, n);
    expect_open_fails(dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "truncated");
    memcpy(b, good, n);
    b[4] = b[5] = b[6] = b[7] = 0xFF; /* absurd count */
    fx_write(img, b, n);
    expect_open_fails(dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "absurd");
    memcpy(b, good, n);
    b[10] = 0x10; /* 4096+ rows */
    fx_write(img, b, n);
    expect_open_fails(dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "absurd");
    memcpy(b, good, n);
    b[2] = 0x0D; /* float data */
    fx_write(img, b, n);
    expect_open_fails(dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "not an IDX file of unsigned bytes");
    memcpy(b, good, n);
    memcpy(b + n, "extra", 5); /* trailing data */
    fx_write(img, b, n + 5);
    expect_open_fails(dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "more data than");
    fx_write(img, good, n);
    /* Labels that disagree in count. */
    size_t nl;
    unsigned char *gl = fx_read(lbl, &nl);
    fx_write(lbl, gl, nl - 1);
    expect_open_fails(dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "train-labels-idx1-ubyte");
    unsigned char *l2 = malloc(nl);
    memcpy(l2, gl, nl);
    l2[7] = 119;
    fx_write(lbl, l2, nl - 1);
    expect_open_fails(dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "119 labels");
    unlink(lbl);
    expect_open_fails(dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, VIT_ERR_IO, "no train-labels");

    /* Corrupt and truncated gzip. */
    char *gzdir = fx_path(dir, "gz"), *gzimg = fx_path(gzdir, "train-images-idx3-ubyte.gz");
    size_t ng;
    unsigned char *gg = fx_read(gzimg, &ng);
    fx_write(gzimg, gg, ng / 2);
    expect_open_fails(gzdir, VIT_DATA_AUTO, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "train-images-idx3-ubyte.gz");
    unsigned char *gc = malloc(ng);
    memcpy(gc, gg, ng);
    for (size_t i = 40; i < ng - 20; i += 97) gc[i] ^= 0x5A;
    fx_write(gzimg, gc, ng);
    expect_open_fails(gzdir, VIT_DATA_AUTO, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "train-images-idx3-ubyte.gz");
    /* A gzip of a lying header: huge count, little data. Memory stays small. */
    memcpy(b, good, n);
    b[4] = 0x00, b[5] = 0x40, b[6] = 0x00, b[7] = 0x00; /* 4M images of 28x28 = 3 GB claimed */
    write_gz(gzimg, b, n);
    expect_open_fails(gzdir, VIT_DATA_AUTO, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "truncated");

    free(gc);
    free(gg);
    free(gzimg);
    free(gzdir);
    free(l2);
    free(gl);
    free(good);
    free(b);
    free(img);
    free(lbl);
}
END_TEST

/* ------------------------------------------------------------------ CIFAR-10 */
static void check_cifar(const char *path) {
    vit_dataset *ds = open_ok(path, VIT_DATA_AUTO, VIT_SPLIT_TRAIN);
    int64_t n, f;
    FX_OK(vit_dataset_size(ds, &n));
    ck_assert_int_eq(n, 1280);
    FX_OK(vit_dataset_get_int(ds, VIT_DS_FORMAT, &f));
    ck_assert_int_eq(f, VIT_DATA_CIFAR10);
    const char *name;
    FX_OK(vit_dataset_class_name(ds, 9, &name));
    ck_assert_str_eq(name, "truck");
    int64_t idx[] = {0, 999, 1199, 1200, 1279};
    for (size_t k = 0; k < sizeof idx / sizeof *idx; k++) {
        vit_tensor *t;
        int32_t l;
        FX_OK(vit_dataset_get(ds, idx[k], &t, &l));
        ck_assert_int_eq(l, lab(idx[k]));
        void *d;
        FX_OK(vit_tensor_data(t, &d));
        const uint8_t *p = d;
        for (int y = 0; y < 32; y += 3)
            for (int x = 0; x < 32; x += 2)
                for (int c = 0; c < 3; c++) ck_assert_int_eq(p[(y * 32 + x) * 3 + c], pix(idx[k], c, y, x));
        vit_tensor_destroy(t);
    }
    vit_dataset_destroy(ds);
    ds = open_ok(path, VIT_DATA_CIFAR10, VIT_SPLIT_VAL);
    FX_OK(vit_dataset_size(ds, &n));
    ck_assert_int_eq(n, 50);
    int32_t l;
    FX_OK(vit_dataset_label(ds, 49, &l));
    ck_assert_int_eq(l, lab(5049));
    vit_dataset_destroy(ds);
}

START_TEST(cifar_all_layouts) {
    char *bin = fx_path(dir, "cifar-10-batches-bin"), *py = fx_path(dir, "cifar-10-batches-py");
    fx_generate("cifar-bin", bin);
    fx_generate("cifar-py", py);
    check_cifar(bin);
    check_cifar(py);
    /* torchvision's root (the folder holding cifar-10-batches-py) works too. */
    sh("rm -rf '%s'%s", bin, "");
    check_cifar(dir);
    for (int proto = 2; proto <= 4; proto++) {
        char sub[32], args[1200];
        snprintf(sub, sizeof sub, "py3-%d", proto);
        char *d = fx_path(dir, sub);
        snprintf(args, sizeof args, "cifar-py3 '%s' %d", d, proto);
        fx_python_run("gen_fixtures.py", args);
        check_cifar(d);
        free(d);
    }
    free(bin);
    free(py);
}
END_TEST

START_TEST(cifar_errors) {
    char *bin = fx_path(dir, "bin"), *py = fx_path(dir, "py"), *evil = fx_path(dir, "evil");
    fx_generate("cifar-bin", bin);
    fx_generate("cifar-py", py);
    fx_generate("pickle-evil", evil);

    char *f3 = fx_path(bin, "data_batch_3.bin");
    size_t n;
    unsigned char *b = fx_read(f3, &n);
    fx_write(f3, b, n - 100);
    expect_open_fails(bin, VIT_DATA_CIFAR10, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "data_batch_3.bin: 61360 bytes");
    b[3073] = 10;
    fx_write(f3, b, n);
    expect_open_fails(bin, VIT_DATA_CIFAR10, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "label 10");
    unlink(f3);
    expect_open_fails(bin, VIT_DATA_AUTO, VIT_SPLIT_TRAIN, VIT_ERR_IO, "data_batch_3.bin: missing");
    char *meta = fx_path(bin, "batches.meta.txt");
    fx_write(meta, "a\nb\nc\n", 6);
    expect_open_fails(bin, VIT_DATA_AUTO, VIT_SPLIT_VAL, VIT_ERR_FORMAT, "expected 10 class names");

    char *p2 = fx_path(py, "data_batch_2");
    size_t n2;
    unsigned char *b2 = fx_read(p2, &n2);
    fx_write(p2, b2, n2 / 2);
    expect_open_fails(py, VIT_DATA_CIFAR10, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "data_batch_2: pickle");
    char *fl = fx_path(evil, "float_array");
    sh("cp '%s' '%s/data_batch_2'", fl, py);
    expect_open_fails(py, VIT_DATA_CIFAR10, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "expected uint8 [N, 3072]");
    char *os = fx_path(evil, "os_system");
    sh("cp '%s' '%s/data_batch_2'", os, py);
    expect_open_fails(py, VIT_DATA_CIFAR10, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "global 'os.system'");
    sh("cp '%s' '%s/test_batch'", os, py);
    expect_open_fails(py, VIT_DATA_CIFAR10, VIT_SPLIT_VAL, VIT_ERR_FORMAT, "test_batch: pickle");

    free(os);
    free(fl);
    free(b2);
    free(p2);
    free(meta);
    free(b);
    free(f3);
    free(bin);
    free(py);
    free(evil);
}
END_TEST

/* ------------------------------------------------------------- image folders */
static void img(const char *root, const char *rel, int side) {
    char *p = fx_path(root, rel);
    unsigned char *pic = fx_picture(side, side + 1, (unsigned)side);
    const char *dot = strrchr(rel, '.');
    if (dot && (dot[1] == 'p' || dot[1] == 'P')) fx_png_rgb(p, side, side + 1, pic);
    else fx_jpeg(p, side, side + 1, pic, TJPF_RGB, 90);
    free(pic);
    free(p);
}

static void make_tree(const char *root) {
    const char *dirs[] = {"train", "train/dog", "train/cat", "train/bird", "train/.git", "val", "val/dog", "val/cat",
                          "val/bird"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) fx_mkdir(root, dirs[i]);
    img(root, "train/cat/a.png", 8);
    img(root, "train/cat/B.JPG", 10);
    img(root, "train/cat/c.jpeg", 12);
    img(root, "train/cat/.hidden.png", 14); /* hidden: ignored */
    img(root, "train/dog/x.PNG", 16);
    img(root, "train/dog/y.png", 18);
    img(root, "train/bird/z.Jpeg", 20);
    img(root, "train/.git/w.png", 22); /* hidden folder: not a class */
    img(root, "val/cat/v1.png", 24);
    img(root, "val/dog/v2.jpg", 26);
    img(root, "val/bird/v3.png", 28);
    char *t = fx_path(root, "train/cat/notes.txt");
    fx_write(t, "not an image", 12);
    free(t);
    t = fx_path(root, "train/readme.txt"); /* a file among the classes */
    fx_write(t, "hello", 5);
    free(t);
}

START_TEST(folder_layout) {
    make_tree(dir);
    vit_dataset *ds = open_ok(dir, VIT_DATA_AUTO, VIT_SPLIT_TRAIN);
    int64_t n, f;
    FX_OK(vit_dataset_size(ds, &n));
    ck_assert_int_eq(n, 6);
    FX_OK(vit_dataset_get_int(ds, VIT_DS_FORMAT, &f));
    ck_assert_int_eq(f, VIT_DATA_FOLDER);
    int nc;
    FX_OK(vit_dataset_num_classes(ds, &nc));
    ck_assert_int_eq(nc, 3);
    const char *want_cls[] = {"bird", "cat", "dog"};
    for (int i = 0; i < 3; i++) {
        const char *name;
        FX_OK(vit_dataset_class_name(ds, i, &name));
        ck_assert_str_eq(name, want_cls[i]);
    }
    /* Sorted within class by byte order: B.JPG < a.png < c.jpeg. */
    int want_side[] = {20, 10, 8, 12, 16, 18}, want_label[] = {0, 1, 1, 1, 2, 2};
    for (int i = 0; i < 6; i++) {
        vit_tensor *t;
        int32_t l;
        FX_OK(vit_dataset_get(ds, i, &t, &l));
        int nd;
        int64_t shape[4];
        FX_OK(vit_tensor_shape(t, &nd, shape));
        ck_assert_int_eq(shape[1], want_side[i]);
        ck_assert_int_eq(shape[0], want_side[i] + 1);
        ck_assert_int_eq(shape[2], 3);
        ck_assert_int_eq(l, want_label[i]);
        vit_tensor_destroy(t);
    }
    FX_OK(vit_dataset_set_int(ds, VIT_DS_CHANNELS, 1));
    vit_tensor *t;
    FX_OK(vit_dataset_get(ds, 0, &t, NULL));
    int nd;
    int64_t shape[4];
    FX_OK(vit_tensor_shape(t, &nd, shape));
    ck_assert_int_eq(shape[2], 1);
    vit_tensor_destroy(t);
    int64_t w;
    FX_OK(vit_dataset_get_int(ds, VIT_DS_WIDTH, &w));
    ck_assert_int_eq(w, 0);
    vit_dataset_destroy(ds);
    ds = open_ok(dir, VIT_DATA_FOLDER, VIT_SPLIT_VAL);
    FX_OK(vit_dataset_size(ds, &n));
    ck_assert_int_eq(n, 3);
    vit_dataset_destroy(ds);
}
END_TEST

START_TEST(folder_errors) {
    make_tree(dir);
    char *p = fx_path(dir, "val/dog/v2.jpg");
    unlink(p);
    free(p);
    expect_open_fails(dir, VIT_DATA_FOLDER, VIT_SPLIT_VAL, VIT_ERR_FORMAT, "val/dog: class folder has no .jpg");
    sh("rmdir '%s/val/dog'%s", dir, "");
    expect_open_fails(dir, VIT_DATA_FOLDER, VIT_SPLIT_VAL, VIT_ERR_FORMAT, "class 'dog' of train/ is missing from val/");
    fx_mkdir(dir, "val/dog");
    img(dir, "val/dog/v2.jpg", 26);
    fx_mkdir(dir, "val/fish");
    img(dir, "val/fish/f.png", 9);
    expect_open_fails(dir, VIT_DATA_FOLDER, VIT_SPLIT_VAL, VIT_ERR_FORMAT, "val/fish is not a class of train/");
    fx_mkdir(dir, "train/empty");
    expect_open_fails(dir, VIT_DATA_FOLDER, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "train/empty: class folder has no");

    /* A corrupt image: decoding it names the file. */
    sh("rmdir '%s/train/empty'%s", dir, "");
    p = fx_path(dir, "train/dog/y.png");
    fx_write(p, "\x89PNG\r\n\x1a\n garbage", 17);
    vit_dataset *ds = open_ok(dir, VIT_DATA_FOLDER, VIT_SPLIT_TRAIN);
    vit_tensor *t = (vit_tensor *)1;
    FX_FAILS(vit_dataset_get(ds, 5, &t, NULL), VIT_ERR_FORMAT, "train/dog/y.png");
    ck_assert_ptr_null(t);
    vit_dataset_destroy(ds);
    free(p);

    char *empty = fx_path(dir, "nothing");
    fx_mkdir(dir, "nothing");
    expect_open_fails(empty, VIT_DATA_AUTO, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "cannot tell the dataset format");
    fx_mkdir(empty, "train");
    expect_open_fails(empty, VIT_DATA_AUTO, VIT_SPLIT_TRAIN, VIT_ERR_FORMAT, "no class folders");
    expect_open_fails(empty, VIT_DATA_FOLDER, VIT_SPLIT_VAL, VIT_ERR_IO, "no val/ folder");
    char *nodir = fx_path(dir, "does-not-exist");
    expect_open_fails(nodir, VIT_DATA_AUTO, VIT_SPLIT_TRAIN, VIT_ERR_IO, "does-not-exist: not a folder");
    free(nodir);
    free(empty);
}
END_TEST

START_TEST(argument_checks) {
    vit_dataset *ds;
    FX_FAILS(vit_dataset_open(NULL, dir, VIT_DATA_AUTO, VIT_SPLIT_TRAIN, &ds), VIT_ERR_INVALID_ARGUMENT, "ctx");
    FX_FAILS(vit_dataset_open(ctx, NULL, VIT_DATA_AUTO, VIT_SPLIT_TRAIN, &ds), VIT_ERR_INVALID_ARGUMENT, "path");
    FX_FAILS(vit_dataset_open(ctx, dir, (vit_data_format)9, VIT_SPLIT_TRAIN, &ds), VIT_ERR_INVALID_ARGUMENT, "format 9");
    FX_FAILS(vit_dataset_open(ctx, dir, VIT_DATA_AUTO, (vit_split)5, &ds), VIT_ERR_INVALID_ARGUMENT, "split 5");
    fx_generate("idx", dir);
    ds = open_ok(dir, VIT_DATA_AUTO, VIT_SPLIT_TRAIN);
    FX_FAILS(vit_dataset_set_int(ds, VIT_DS_CHANNELS, 2), VIT_ERR_INVALID_ARGUMENT, "VIT_DS_CHANNELS");
    FX_FAILS(vit_dataset_set_int(ds, VIT_DS_SKIPPED, 2), VIT_ERR_INVALID_ARGUMENT, "read-only");
    FX_FAILS(vit_dataset_set_int(ds, (vit_dataset_param)99, 2), VIT_ERR_INVALID_ARGUMENT, "unknown parameter 99");
    const char *name;
    FX_FAILS(vit_dataset_class_name(ds, 10, &name), VIT_ERR_INVALID_ARGUMENT, "index 10");
    vit_tensor *t;
    FX_FAILS(vit_dataset_get(ds, 120, &t, NULL), VIT_ERR_INVALID_ARGUMENT, "index 120");
    int32_t l;
    FX_FAILS(vit_dataset_label(ds, -1, &l), VIT_ERR_INVALID_ARGUMENT, "index -1");
    ck_assert_str_eq(vit_data_format_name(VIT_DATA_CIFAR10), "cifar10");
    ck_assert_ptr_null(vit_data_format_name((vit_data_format)42));
    vit_dataset_destroy(ds);
    vit_dataset_destroy(NULL);
}
END_TEST

/* -------------------------------------------------------------- Fashion-MNIST */
START_TEST(real_fashion_mnist) {
    const char *path = "/usr/share/datasets/fashion-mnist";
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "real_fashion_mnist: %s not installed (Debian dataset-fashion-mnist); skipped\n", path);
        return;
    }
    const int64_t want[2] = {60000, 10000};
    for (int split = 0; split < 2; split++) {
        vit_dataset *ds = open_ok(path, VIT_DATA_AUTO, (vit_split)split);
        int64_t n;
        FX_OK(vit_dataset_size(ds, &n));
        ck_assert_int_eq(n, want[split]);
        int64_t hist[10] = {0};
        for (int64_t i = 0; i < n; i++) {
            int32_t l;
            FX_OK(vit_dataset_label(ds, i, &l));
            ck_assert(l >= 0 && l < 10);
            hist[l]++;
        }
        for (int c = 0; c < 10; c++) ck_assert_int_eq(hist[c], want[split] / 10);
        const char *name;
        FX_OK(vit_dataset_class_name(ds, 9, &name));
        ck_assert_str_eq(name, "Ankle boot");
        vit_tensor *t;
        FX_OK(vit_dataset_get(ds, 0, &t, NULL));
        vit_tensor_destroy(t);
        vit_dataset_destroy(ds);
    }
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("datasets");
    TCase *tc = tcase_create("datasets");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, idx_plain_and_gzip);
    tcase_add_test(tc, idx_errors);
    tcase_add_test(tc, cifar_all_layouts);
    tcase_add_test(tc, cifar_errors);
    tcase_add_test(tc, folder_layout);
    tcase_add_test(tc, folder_errors);
    tcase_add_test(tc, argument_checks);
    tcase_add_test(tc, real_fashion_mnist);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return fx_main(argc, argv, suite()); }
