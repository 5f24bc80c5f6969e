/* The loader and the transforms: determinism across worker counts, epochs as
 * permutations, drop_last and padding, clean stops, skipping corrupt files,
 * and the transform steps themselves. */
#include <math.h>
#include <pthread.h>

#include "fixtures.h"

static char *dir;
static vit_context *ctx;

static void setup(void) {
    dir = fx_tmpdir();
    ctx = fx_ctx();
    fx_generate("idx", dir);
}
static void teardown(void) {
    vit_context_destroy(ctx);
    fx_rm(dir);
    free(dir);
}

static int pix0(int y, int x) { return (y * 7 + x * 13) % 256; } /* sample 0 of the IDX fixture */

static vit_tensor *tensor(vit_dtype dt, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t shape[4] = {a, b, c, d};
    vit_tensor *t;
    FX_OK(vit_tensor_create(ctx, dt, nd, shape, &t));
    return t;
}

static void *data(vit_tensor *t) {
    void *d;
    FX_OK(vit_tensor_data(t, &d));
    return d;
}

/* The IDX fixture's train split and a transform at its native 28 x 28, nothing random. */
static void open_idx_native(vit_dataset **ds, vit_transform **tf) {
    FX_OK(vit_dataset_open(ctx, dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, ds));
    FX_OK(vit_transform_create(ctx, tf));
    FX_OK(vit_transform_set_int(*tf, VIT_TF_SIZE, 28));
}

static vit_transform *augmenting(int size) {
    vit_transform *tf;
    FX_OK(vit_transform_create(ctx, &tf));
    FX_OK(vit_transform_set_int(tf, VIT_TF_SIZE, size));
    FX_OK(vit_transform_set_float(tf, VIT_TF_FLIP_P, 0.5));
    FX_OK(vit_transform_set_float(tf, VIT_TF_ROTATION, 15));
    FX_OK(vit_transform_set_int(tf, VIT_TF_RANDOM_CROP, 1));
    FX_OK(vit_transform_set_int(tf, VIT_TF_NORMALIZE, VIT_NORM_HALF));
    return tf;
}

/* The shard run_epoch reads (VIT_LD_SHARD_INDEX, VIT_LD_SHARD_COUNT). */
static int shard_index, shard_count = 1;

/* All of an epoch's batches, concatenated: images then labels. */
static float *run_epoch(vit_dataset *ds, const vit_transform *tf, int workers, int64_t epoch, int batch, int drop_last,
                        int64_t *nbatches, int32_t **labels_out) {
    vit_loader *ld;
    FX_OK(vit_loader_create(ds, tf, batch, &ld));
    FX_OK(vit_loader_set_int(ld, VIT_LD_WORKERS, workers));
    FX_OK(vit_loader_set_int(ld, VIT_LD_DROP_LAST, drop_last));
    FX_OK(vit_loader_set_int(ld, VIT_LD_SHARD_INDEX, shard_index));
    FX_OK(vit_loader_set_int(ld, VIT_LD_SHARD_COUNT, shard_count));
    FX_OK(vit_loader_start_epoch(ld, epoch));
    int64_t nb, C, S;
    FX_OK(vit_loader_num_batches(ld, &nb));
    FX_OK(vit_transform_get_int(tf, VIT_TF_SIZE, &S));
    FX_OK(vit_dataset_get_int(ds, VIT_DS_CHANNELS, &C));
    vit_tensor *im = tensor(VIT_DTYPE_F32, 4, batch, C, S, S), *lb = tensor(VIT_DTYPE_I32, 1, batch, 0, 0, 0);
    size_t row = (size_t)C * S * S;
    float *all = malloc((size_t)(nb + 1) * batch * row * sizeof(float));
    int32_t *labels = malloc((size_t)(nb + 1) * batch * sizeof(int32_t));
    int count;
    for (int64_t b = 0;; b++) {
        FX_OK(vit_loader_next(ld, im, lb, &count));
        if (count == 0) {
            ck_assert_int_eq(b, nb);
            break;
        }
        memcpy(all + (size_t)b * batch * row, data(im), (size_t)batch * row * sizeof(float));
        memcpy(labels + (size_t)b * batch, data(lb), (size_t)batch * sizeof(int32_t));
    }
    FX_OK(vit_loader_next(ld, im, lb, &count)); /* still the end */
    ck_assert_int_eq(count, 0);
    vit_tensor_destroy(im);
    vit_tensor_destroy(lb);
    vit_loader_destroy(ld);
    *nbatches = nb;
    if (labels_out) *labels_out = labels;
    else free(labels);
    return all;
}

START_TEST(same_batches_for_any_worker_count) {
    vit_dataset *ds;
    FX_OK(vit_dataset_open(ctx, dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, &ds));
    FX_OK(vit_context_set_int(ctx, VIT_CTX_SEED, 1234));
    vit_transform *tf = augmenting(20);
    int64_t nb0, nb;
    for (int64_t epoch = 0; epoch < 2; epoch++) {
        float *ref = run_epoch(ds, tf, 0, epoch, 16, 1, &nb0, NULL);
        ck_assert_int_eq(nb0, 7);
        size_t bytes = (size_t)nb0 * 16 * 20 * 20 * sizeof(float);
        int workers[] = {1, 2, 3, 5};
        for (int w = 0; w < 4; w++) {
            float *got = run_epoch(ds, tf, workers[w], epoch, 16, 1, &nb, NULL);
            ck_assert_msg(!memcmp(ref, got, bytes), "epoch %lld differs with %d workers", (long long)epoch, workers[w]);
            free(got);
        }
        float *other = run_epoch(ds, tf, 2, epoch + 1, 16, 1, &nb, NULL);
        ck_assert_msg(memcmp(ref, other, bytes), "epochs %lld and %lld are identical", (long long)epoch,
                      (long long)epoch + 1);
        free(other);
        free(ref);
    }
    /* Another seed, other batches. */
    float *a = run_epoch(ds, tf, 2, 0, 16, 1, &nb, NULL);
    FX_OK(vit_context_set_int(ctx, VIT_CTX_SEED, 99));
    float *b = run_epoch(ds, tf, 2, 0, 16, 1, &nb, NULL);
    ck_assert(memcmp(a, b, (size_t)nb * 16 * 400 * sizeof(float)));
    free(a);
    free(b);
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
}
END_TEST

/* Data-parallel shards: shard s of 3 with batches of 4 reads, as row j of its
 * batch k, row 3 j + s of batch k of one loader with batches of 12 (PyTorch's
 * DistributedSampler), augmentation included: it follows the sample, not
 * the shard. With drop-last every shard has the same batch count; without
 * it the shards together read every sample once. */
START_TEST(shards_split_global_batches) {
    vit_dataset *ds;
    FX_OK(vit_dataset_open(ctx, dir, VIT_DATA_IDX, VIT_SPLIT_TRAIN, &ds));
    FX_OK(vit_context_set_int(ctx, VIT_CTX_SEED, 77));
    vit_transform *tf = augmenting(20);
    const size_t row = 20 * 20;
    int64_t n;
    FX_OK(vit_dataset_size(ds, &n));
    for (int drop_last = 1; drop_last >= 0; drop_last--) {
        int64_t nb_one, nb;
        float *one = run_epoch(ds, tf, 2, 1, 12, drop_last, &nb_one, NULL);
        int64_t positions = drop_last ? nb_one * 12 : n, seen = 0;
        shard_count = 3;
        for (shard_index = 0; shard_index < 3; shard_index++) {
            float *mine = run_epoch(ds, tf, 1 + shard_index, 1, 4, drop_last, &nb, NULL);
            int64_t rows = (positions - shard_index + 2) / 3;
            if (drop_last) ck_assert_int_eq(nb, nb_one);
            else ck_assert_int_eq(nb, (rows + 3) / 4);
            for (int64_t p = 0; p < rows; p++)
                ck_assert_msg(!memcmp(mine + p * row, one + (p * 3 + shard_index) * row, row * sizeof(float)),
                              "drop_last %d: shard %d position %lld is not position %lld of one loader", drop_last,
                              shard_index, (long long)p, (long long)(p * 3 + shard_index));
            seen += rows;
            free(mine);
        }
        ck_assert_int_eq(seen, positions);
        shard_index = 0;
        shard_count = 1;
        free(one);
    }
    vit_loader *ld;
    FX_OK(vit_loader_create(ds, tf, 4, &ld));
    ck_assert_int_eq(vit_loader_set_int(ld, VIT_LD_SHARD_COUNT, 0), VIT_ERR_INVALID_ARGUMENT);
    FX_OK(vit_loader_set_int(ld, VIT_LD_SHARD_INDEX, 3));
    FX_OK(vit_loader_set_int(ld, VIT_LD_SHARD_COUNT, 3));
    ck_assert_int_eq(vit_loader_start_epoch(ld, 0), VIT_ERR_INVALID_ARGUMENT);
    ck_assert(strstr(vit_last_error(), "VIT_LD_SHARD_INDEX 3"));
    vit_loader_destroy(ld);
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
}
END_TEST

/* Without augmentation at the native size, pixel (0, 0) = n * 31 % 256
 * identifies sample n < 256: each epoch must hold every sample once. */
START_TEST(epochs_are_permutations) {
    vit_dataset *ds;
    vit_transform *tf;
    open_idx_native(&ds, &tf);
    int64_t nb;
    int32_t *labels;
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        vit_loader *ld;
        FX_OK(vit_loader_create(ds, tf, 16, &ld));
        FX_OK(vit_loader_set_int(ld, VIT_LD_SHUFFLE, shuffle));
        FX_OK(vit_loader_set_int(ld, VIT_LD_DROP_LAST, 0));
        FX_OK(vit_loader_set_int(ld, VIT_LD_WORKERS, 3));
        FX_OK(vit_loader_set_int(ld, VIT_LD_PREFETCH, 3));
        FX_OK(vit_loader_start_epoch(ld, 4));
        FX_OK(vit_loader_num_batches(ld, &nb));
        ck_assert_int_eq(nb, 8); /* 120 = 7 x 16 + 8 */
        vit_tensor *im = tensor(VIT_DTYPE_F32, 4, 20, 1, 28, 28), *lb = tensor(VIT_DTYPE_I32, 1, 20, 0, 0, 0);
        int seen[120] = {0}, count, total = 0, in_order = 1;
        while (vit_loader_next(ld, im, lb, &count) == VIT_OK && count > 0) {
            const float *px = data(im);
            const int32_t *l = data(lb);
            for (int i = 0; i < count; i++) {
                int v = (int)lrintf(px[(size_t)i * 784] * 255.0f), n = -1;
                for (int k = 0; k < 120; k++)
                    if (k * 31 % 256 == v) n = k;
                ck_assert_int_ge(n, 0);
                ck_assert_int_eq(l[i], (n * 7 + 3) % 10);
                seen[n]++;
                if (n != total) in_order = 0;
                total++;
            }
            /* The last batch holds 8; rows 8..19 are zero with label -1. */
            if (count < 20)
                for (int i = count; i < 20; i++) {
                    ck_assert_int_eq(l[i], -1);
                    ck_assert(px[(size_t)i * 784 + 100] == 0.0f);
                }
        }
        ck_assert_int_eq(total, 120);
        for (int k = 0; k < 120; k++) ck_assert_int_eq(seen[k], 1);
        ck_assert_int_eq(in_order, !shuffle);
        vit_tensor_destroy(im);
        vit_tensor_destroy(lb);
        vit_loader_destroy(ld);
    }
    float *imgs = run_epoch(ds, tf, 2, 0, 16, 1, &nb, &labels);
    ck_assert_int_eq(nb, 7); /* drop_last */
    free(imgs);
    free(labels);
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
}
END_TEST

/* Stopping mid-epoch, restarting, destroying with workers busy: no hang, and
 * the sanitizer build checks no leak. Image folders, so workers decode. */
static void make_folder(const char *root, int per_class, int corrupt_one) {
    fx_mkdir(root, "train");
    fx_mkdir(root, "val");
    const char *cls[] = {"a", "b", "c"};
    unsigned char *pic = fx_picture(96, 80, 5);
    for (int c = 0; c < 3; c++) {
        char rel[64];
        snprintf(rel, sizeof rel, "train/%s", cls[c]);
        fx_mkdir(root, rel);
        snprintf(rel, sizeof rel, "val/%s", cls[c]);
        fx_mkdir(root, rel);
        for (int i = 0; i < per_class; i++) {
            snprintf(rel, sizeof rel, "train/%s/%03d.%s", cls[c], i, i % 2 ? "png" : "jpg");
            char *p = fx_path(root, rel);
            pic[0] = (unsigned char)(c * 50 + i);
            if (i % 2) fx_png_rgb(p, 96, 80, pic);
            else fx_jpeg(p, 96, 80, pic, TJPF_RGB, 85);
            if (corrupt_one && c == 1 && i == 3) fx_write(p, "\x89PNG\r\n\x1a\nbroken", 14);
            free(p);
        }
        snprintf(rel, sizeof rel, "val/%s/v.png", cls[c]);
        char *p = fx_path(root, rel);
        fx_png_rgb(p, 96, 80, pic);
        free(p);
    }
    free(pic);
}

START_TEST(clean_stops) {
    char *root = fx_path(dir, "folder");
    fx_mkdir(dir, "folder");
    make_folder(root, 20, 0);
    vit_dataset *ds;
    FX_OK(vit_dataset_open(ctx, root, VIT_DATA_AUTO, VIT_SPLIT_TRAIN, &ds));
    vit_transform *tf = augmenting(32);
    vit_tensor *im = tensor(VIT_DTYPE_F32, 4, 8, 3, 32, 32), *lb = tensor(VIT_DTYPE_I32, 1, 8, 0, 0, 0);
    int count;
    for (int workers = 0; workers <= 4; workers += 2) {
        vit_loader *ld;
        FX_OK(vit_loader_create(ds, tf, 8, &ld));
        FX_OK(vit_loader_set_int(ld, VIT_LD_WORKERS, workers));
        FX_FAILS(vit_loader_next(ld, im, lb, &count), VIT_ERR_STATE, "vit_loader_start_epoch");
        FX_OK(vit_loader_start_epoch(ld, 0));
        FX_OK(vit_loader_next(ld, im, lb, &count));
        ck_assert_int_eq(count, 8);
        FX_OK(vit_loader_start_epoch(ld, 1)); /* abandon epoch 0 mid-way */
        FX_OK(vit_loader_next(ld, im, lb, &count));
        FX_OK(vit_loader_next(ld, im, lb, &count));
        FX_OK(vit_loader_set_int(ld, VIT_LD_WORKERS, workers + 1)); /* takes effect at the next epoch */
        FX_OK(vit_loader_start_epoch(ld, 2));
        vit_loader_destroy(ld); /* workers busy right now */
    }
    /* Wrong tensors are refused with their shapes named. */
    vit_loader *ld;
    FX_OK(vit_loader_create(ds, tf, 8, &ld));
    FX_OK(vit_loader_start_epoch(ld, 0));
    vit_tensor *small = tensor(VIT_DTYPE_F32, 4, 4, 3, 32, 32), *gray = tensor(VIT_DTYPE_F32, 4, 8, 1, 32, 32);
    FX_FAILS(vit_loader_next(ld, small, lb, &count), VIT_ERR_SHAPE, "images");
    FX_FAILS(vit_loader_next(ld, gray, lb, &count), VIT_ERR_SHAPE, "images");
    FX_FAILS(vit_loader_next(ld, im, im, &count), VIT_ERR_DTYPE, "labels");
    FX_FAILS(vit_loader_set_int(ld, VIT_LD_WORKERS, -1), VIT_ERR_INVALID_ARGUMENT, "VIT_LD_WORKERS");
    FX_FAILS(vit_loader_set_int(ld, VIT_LD_BATCH_SIZE, 3), VIT_ERR_INVALID_ARGUMENT, "read-only");
    vit_loader *bad;
    FX_FAILS(vit_loader_create(ds, tf, 0, &bad), VIT_ERR_INVALID_ARGUMENT, "batch_size 0");
    vit_loader_destroy(ld);
    vit_loader_destroy(NULL);
    vit_tensor_destroy(small);
    vit_tensor_destroy(gray);
    vit_tensor_destroy(im);
    vit_tensor_destroy(lb);
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
    free(root);
}
END_TEST

static int warnings;
static char last_warning[1024];
static void count_log(void *user, vit_log_level level, const char *msg) {
    (void)user;
    if (level == VIT_LOG_WARN) {
        warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", msg);
    }
}

START_TEST(corrupt_files) {
    char *root = fx_path(dir, "folder");
    fx_mkdir(dir, "folder");
    make_folder(root, 8, 1);
    FX_OK(vit_context_set_log(ctx, count_log, NULL));
    vit_dataset *ds;
    FX_OK(vit_dataset_open(ctx, root, VIT_DATA_FOLDER, VIT_SPLIT_TRAIN, &ds));
    vit_transform *tf;
    FX_OK(vit_transform_create(ctx, &tf));
    FX_OK(vit_transform_set_int(tf, VIT_TF_SIZE, 16));
    vit_tensor *im = tensor(VIT_DTYPE_F32, 4, 4, 3, 16, 16), *lb = tensor(VIT_DTYPE_I32, 1, 4, 0, 0, 0);
    /* By default: an error naming the file, from the batch that holds it. */
    vit_loader *ld;
    FX_OK(vit_loader_create(ds, tf, 4, &ld));
    FX_OK(vit_loader_set_int(ld, VIT_LD_SHUFFLE, 0));
    FX_OK(vit_loader_start_epoch(ld, 0));
    int count;
    FX_OK(vit_loader_next(ld, im, lb, &count));
    FX_OK(vit_loader_next(ld, im, lb, &count));
    /* Samples 8..11: class a holds 0..7, so sample 11 is b/003. */
    FX_FAILS(vit_loader_next(ld, im, lb, &count), VIT_ERR_FORMAT, "train/b/003.png");
    ck_assert_int_eq(count, 0);
    vit_loader_destroy(ld);
    /* With the option: skipped with one warning, batches stay full. */
    FX_OK(vit_dataset_set_int(ds, VIT_DS_SKIP_CORRUPT, 1));
    for (int epoch = 0; epoch < 2; epoch++) {
        FX_OK(vit_loader_create(ds, tf, 4, &ld));
        FX_OK(vit_loader_set_int(ld, VIT_LD_WORKERS, 3));
        FX_OK(vit_loader_start_epoch(ld, epoch));
        int batches = 0;
        while (vit_loader_next(ld, im, lb, &count) == VIT_OK && count > 0) {
            ck_assert_int_eq(count, 4);
            batches++;
        }
        ck_assert_int_eq(batches, 6);
        vit_loader_destroy(ld);
    }
    int64_t skipped;
    FX_OK(vit_dataset_get_int(ds, VIT_DS_SKIPPED, &skipped));
    ck_assert_int_eq(skipped, 1);
    ck_assert_int_eq(warnings, 1);
    ck_assert_msg(strstr(last_warning, "b/003.png"), "warning: %s", last_warning);
    vit_tensor_destroy(im);
    vit_tensor_destroy(lb);
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
    free(root);
}
END_TEST

/* ---------------------------------------------------------------- transforms */
/* Sample 0 as the loader gives it in the given epoch (the random draws differ by epoch). */
static void sample_in_epoch(vit_dataset *ds, const vit_transform *tf, int64_t epoch, float *out, size_t floats) {
    vit_loader *ld;
    FX_OK(vit_loader_create(ds, tf, 1, &ld));
    FX_OK(vit_loader_set_int(ld, VIT_LD_SHUFFLE, 0));
    FX_OK(vit_loader_set_int(ld, VIT_LD_WORKERS, 1));
    FX_OK(vit_loader_start_epoch(ld, epoch));
    int64_t C, S;
    FX_OK(vit_transform_get_int(tf, VIT_TF_SIZE, &S));
    FX_OK(vit_transform_get_int(tf, VIT_TF_CHANNELS, &C));
    if (!C) FX_OK(vit_dataset_get_int(ds, VIT_DS_CHANNELS, &C));
    vit_tensor *im = tensor(VIT_DTYPE_F32, 4, 1, C, S, S), *lb = tensor(VIT_DTYPE_I32, 1, 1, 0, 0, 0);
    int count;
    FX_OK(vit_loader_next(ld, im, lb, &count));
    ck_assert_int_eq(count, 1);
    ck_assert_uint_eq(floats, (size_t)(C * S * S));
    memcpy(out, data(im), floats * sizeof(float));
    vit_tensor_destroy(im);
    vit_tensor_destroy(lb);
    vit_loader_destroy(ld);
}

static void one_sample(vit_dataset *ds, const vit_transform *tf, float *out, size_t floats) {
    sample_in_epoch(ds, tf, 0, out, floats);
}

/* The (dx, dy) in -P..P for which out is the plain image moved right by dx and
 * down by dy with zeros filled in, mirrored first when flip; 0 if none is. */
static int find_shift(const float *out, const float *plain, int P, int flip, int *dx_out, int *dy_out) {
    for (int dy = -P; dy <= P; dy++)
        for (int dx = -P; dx <= P; dx++) {
            int same = 1;
            for (int y = 0; y < 28 && same; y++)
                for (int x = 0; x < 28 && same; x++) {
                    int sx = (flip ? 27 - x : x) - dx, sy = y - dy;
                    float want = sx < 0 || sx >= 28 || sy < 0 || sy >= 28 ? 0.0f : plain[sy * 28 + sx];
                    same = out[y * 28 + x] == want;
                }
            if (same) {
                *dx_out = dx;
                *dy_out = dy;
                return 1;
            }
        }
    return 0;
}

START_TEST(transform_shift) {
    vit_dataset *ds;
    vit_transform *tf;
    open_idx_native(&ds, &tf);
    float plain[784], out[784];
    one_sample(ds, tf, plain, 784);
    /* torchvision's RandomCrop(28, padding=2): every one of the 5 x 5 offsets,
     * each about equally often (200 draws: 8 expected per offset). */
    FX_OK(vit_transform_set_int(tf, VIT_TF_PAD_CROP, 2));
    int64_t p;
    FX_OK(vit_transform_get_int(tf, VIT_TF_PAD_CROP, &p));
    ck_assert_int_eq(p, 2);
    int seen[5][5] = {{0}};
    for (int64_t epoch = 0; epoch < 200; epoch++) {
        sample_in_epoch(ds, tf, epoch, out, 784);
        int dx, dy;
        ck_assert_msg(find_shift(out, plain, 2, 0, &dx, &dy), "epoch %lld: not a shift by at most 2", (long long)epoch);
        seen[dy + 2][dx + 2]++;
    }
    for (int i = 0; i < 25; i++) ck_assert_msg(seen[i / 5][i % 5] >= 2, "offset (%d, %d) drawn %d times", i % 5 - 2, i / 5 - 2, seen[i / 5][i % 5]);
    /* The flip mirrors the shifted image (torchvision: crop, then flip). */
    FX_OK(vit_transform_set_float(tf, VIT_TF_FLIP_P, 1.0));
    int dx, dy, shifted_seen = 0;
    for (int64_t epoch = 0; epoch < 10; epoch++) {
        sample_in_epoch(ds, tf, epoch, out, 784);
        ck_assert(find_shift(out, plain, 2, 1, &dx, &dy));
        shifted_seen |= dx != 0;
    }
    ck_assert(shifted_seen);
    /* Evaluation ignores it; the padding is at most the size. */
    FX_OK(vit_transform_set_int(tf, VIT_TF_TRAIN, 0));
    one_sample(ds, tf, out, 784);
    ck_assert(!memcmp(out, plain, sizeof plain));
    FX_FAILS(vit_transform_set_int(tf, VIT_TF_PAD_CROP, 29), VIT_ERR_INVALID_ARGUMENT, "VIT_TF_PAD_CROP");
    FX_FAILS(vit_transform_set_int(tf, VIT_TF_PAD_CROP, -1), VIT_ERR_INVALID_ARGUMENT, "VIT_TF_PAD_CROP");
    FX_FAILS(vit_transform_set_float(tf, VIT_TF_PAD_CROP, 1), VIT_ERR_INVALID_ARGUMENT, "use vit_transform_set_int");
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
}
END_TEST

START_TEST(transform_steps) {
    vit_dataset *ds;
    vit_transform *tf;
    open_idx_native(&ds, &tf);
    float plain[784], flipped[784], rgb[3 * 784], norm[3 * 784], rot[784], crop[784];
    one_sample(ds, tf, plain, 784);
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) ck_assert_int_eq((int)lrintf(plain[y * 28 + x] * 255), pix0(y, x));
    FX_OK(vit_transform_set_float(tf, VIT_TF_FLIP_P, 1.0));
    one_sample(ds, tf, flipped, 784);
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) ck_assert(flipped[y * 28 + x] == plain[y * 28 + 27 - x]);
    /* Evaluation mode ignores the augmentation. */
    FX_OK(vit_transform_set_int(tf, VIT_TF_TRAIN, 0));
    one_sample(ds, tf, flipped, 784);
    ck_assert(!memcmp(flipped, plain, sizeof plain));
    /* Gray to RGB and ImageNet normalisation. */
    FX_OK(vit_transform_set_int(tf, VIT_TF_CHANNELS, 3));
    one_sample(ds, tf, rgb, 3 * 784);
    for (int c = 0; c < 3; c++) ck_assert(rgb[c * 784 + 40] == plain[40]);
    FX_OK(vit_transform_set_int(tf, VIT_TF_NORMALIZE, VIT_NORM_IMAGENET));
    one_sample(ds, tf, norm, 3 * 784);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; c++) ck_assert_float_eq_tol(norm[c * 784 + 40], (plain[40] - mean[c]) / sd[c], 1e-5);
    FX_OK(vit_transform_set_float(tf, VIT_TF_MEAN_1, 0.25));
    double v;
    FX_OK(vit_transform_get_float(tf, VIT_TF_STD_2, &v));
    ck_assert(v == 1.0);
    int64_t mode;
    FX_OK(vit_transform_get_int(tf, VIT_TF_NORMALIZE, &mode));
    ck_assert_int_eq(mode, VIT_NORM_CUSTOM);
    /* Rotation: zero-filled corners, centre kept. */
    FX_OK(vit_transform_set_int(tf, VIT_TF_TRAIN, 1));
    FX_OK(vit_transform_set_int(tf, VIT_TF_CHANNELS, 0));
    FX_OK(vit_transform_set_int(tf, VIT_TF_NORMALIZE, VIT_NORM_NONE));
    FX_OK(vit_transform_set_float(tf, VIT_TF_FLIP_P, 0.0));
    FX_OK(vit_transform_set_float(tf, VIT_TF_ROTATION, 60));
    FX_OK(vit_transform_set_int(tf, VIT_TF_ROTATION_INTERP, VIT_RESIZE_BILINEAR));
    one_sample(ds, tf, rot, 784);
    ck_assert(rot[0] == 0.0f && rot[27] == 0.0f && rot[27 * 28] == 0.0f && rot[783] == 0.0f);
    ck_assert(memcmp(rot, plain, sizeof plain));
    /* Random resized crop: a different view of the same size. */
    FX_OK(vit_transform_set_float(tf, VIT_TF_ROTATION, 0));
    FX_OK(vit_transform_set_int(tf, VIT_TF_RANDOM_CROP, 1));
    FX_OK(vit_transform_set_float(tf, VIT_TF_CROP_SCALE_MIN, 0.3));
    FX_OK(vit_transform_set_float(tf, VIT_TF_CROP_SCALE_MAX, 0.5));
    one_sample(ds, tf, crop, 784);
    ck_assert(memcmp(crop, plain, sizeof plain));
    /* Argument checks name the parameter. */
    FX_FAILS(vit_transform_set_float(tf, VIT_TF_FLIP_P, 1.5), VIT_ERR_INVALID_ARGUMENT, "VIT_TF_FLIP_P");
    FX_FAILS(vit_transform_set_float(tf, VIT_TF_STD_0, 0), VIT_ERR_INVALID_ARGUMENT, "VIT_TF_STD_0");
    FX_FAILS(vit_transform_set_int(tf, VIT_TF_FLIP_P, 1), VIT_ERR_INVALID_ARGUMENT, "use vit_transform_set_float");
    FX_FAILS(vit_transform_set_float(tf, VIT_TF_SIZE, 1), VIT_ERR_INVALID_ARGUMENT, "use vit_transform_set_int");
    FX_FAILS(vit_transform_set_int(tf, VIT_TF_CHANNELS, 2), VIT_ERR_INVALID_ARGUMENT, "VIT_TF_CHANNELS");
    FX_FAILS(vit_transform_set_int(tf, VIT_TF_SIZE, 0), VIT_ERR_INVALID_ARGUMENT, "VIT_TF_SIZE");
    vit_transform *copy;
    FX_OK(vit_transform_copy(tf, &copy));
    int64_t rc;
    FX_OK(vit_transform_get_int(copy, VIT_TF_RANDOM_CROP, &rc));
    ck_assert_int_eq(rc, 1);
    vit_transform_destroy(copy);
    vit_transform_destroy(tf);
    vit_transform_destroy(NULL);
    vit_dataset_destroy(ds);
}
END_TEST

START_TEST(image_load) {
    unsigned char *pic = fx_picture(50, 50, 9);
    char *p = fx_path(dir, "one.png");
    fx_png_rgb(p, 50, 50, pic);
    vit_transform *tf;
    FX_OK(vit_transform_create(ctx, &tf));
    FX_OK(vit_transform_set_int(tf, VIT_TF_SIZE, 50));
    FX_OK(vit_transform_set_float(tf, VIT_TF_FLIP_P, 1.0)); /* random parts never apply here */
    vit_tensor *t3 = tensor(VIT_DTYPE_F32, 3, 3, 50, 50, 0), *t4 = tensor(VIT_DTYPE_F32, 4, 1, 3, 50, 50);
    FX_OK(vit_image_load(tf, p, t3));
    FX_OK(vit_image_load(tf, p, t4));
    ck_assert(!memcmp(data(t3), data(t4), 3 * 2500 * sizeof(float)));
    const float *f = data(t3);
    for (int i = 0; i < 2500; i += 7) /* same size: no resize, no flip, planes in CHW */
        for (int c = 0; c < 3; c++) ck_assert_int_eq((int)lrintf(f[c * 2500 + i] * 255), pic[3 * i + c]);
    vit_tensor *wrong = tensor(VIT_DTYPE_F32, 3, 1, 50, 50, 0);
    FX_FAILS(vit_image_load(tf, p, wrong), VIT_ERR_SHAPE, "out");
    char *missing = fx_path(dir, "missing.jpg");
    FX_FAILS(vit_image_load(tf, missing, t3), VIT_ERR_IO, "missing.jpg");
    free(missing);
    vit_tensor_destroy(wrong);
    vit_tensor_destroy(t3);
    vit_tensor_destroy(t4);
    vit_transform_destroy(tf);
    free(p);
    free(pic);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, same_batches_for_any_worker_count);
    tcase_add_test(tc, epochs_are_permutations);
    tcase_add_test(tc, shards_split_global_batches);
    tcase_add_test(tc, clean_stops);
    tcase_add_test(tc, corrupt_files);
    tcase_add_test(tc, transform_steps);
    tcase_add_test(tc, transform_shift);
    tcase_add_test(tc, image_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return fx_main(argc, argv, suite()); }
