/*
 * vit-data: look at a dataset through libvit's public API.
 *
 *   vit-data info --data DIR [--format folder|cifar10|idx] [--json]
 *   vit-data preview --data DIR --out grid.png [--format F] [--split train|val]
 *            [--augment] [--count N] [--cols N] [--size S] [--seed N]
 *
 * info prints the format, the split sizes and the class names; preview writes
 * a labelled grid of samples, with the training augmentation when --augment
 * is given, so a person can check by eye what the model will see.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vit/vit.h"

#include "cli.h"

static const char prog[] = "vit-data";

static int usage_to(FILE *f) {
    fprintf(f,
            "usage: vit-data info --data DIR [--format folder|cifar10|idx] [--json]\n"
            "       vit-data preview --data DIR --out grid.png [--format F] [--split train|val]\n"
            "                [--augment] [--count N] [--cols N] [--size S] [--seed N]\n"
            "       vit-data export --data DIR --index I --out sample.png [--format F] [--split train|val]\n"
            "                (one sample as decoded, e.g. to try vit-predict on it; its label on stdout)\n");
    return 2;
}

static int fail(const char *what, vit_status s) {
    fprintf(stderr, "vit-data: %s: %s: %s\n", what, vit_status_string(s), vit_last_error());
    return 1;
}

typedef struct opts {
    const char *cmd, *data, *out, *format;
    int json, augment, count, cols, size, val;
    long long seed, index;
} opts;

/* 0, or the exit status after one line on stderr. */
static int parse(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->count = 32;
    o->cols = 8;
    o->size = 96;
    if (argc < 2) return cli_usage_error(prog, "no command given: info, preview or export");
    o->cmd = argv[1];
    bool preview = !strcmp(o->cmd, "preview"), export = !strcmp(o->cmd, "export");
    if (!preview && !export && strcmp(o->cmd, "info"))
        return cli_usage_error(prog, "unknown command '%s': info, preview or export", o->cmd);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        long long n;
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if (!strcmp(a, "--augment")) { o->augment = 1; continue; }
        static const char *const valued[] = {"--data", "--out", "--format", "--split", "--count", "--cols",
                                             "--size", "--seed", "--index"};
        const char *flag = NULL;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++)
            if (cli_is(a, valued[k])) flag = valued[k];
        if (!flag) return cli_usage_error(prog, "%s: unknown argument '%s'", o->cmd, a);
        if (!(v = cli_value(prog, argc, argv, &i, flag))) return 2;
        if (!strcmp(flag, "--data")) o->data = v;
        else if (!strcmp(flag, "--out")) o->out = v;
        else if (!strcmp(flag, "--format")) o->format = v;
        else if (!strcmp(flag, "--split")) {
            if (strcmp(v, "val") && strcmp(v, "train")) return cli_usage_error(prog, "--split: '%s' is not train or val", v);
            o->val = !strcmp(v, "val");
        } else if (!strcmp(flag, "--count")) { if (!cli_int(prog, flag, v, 1, 1024, &n)) return 2; o->count = (int)n; }
        else if (!strcmp(flag, "--cols")) { if (!cli_int(prog, flag, v, 1, 256, &n)) return 2; o->cols = (int)n; }
        else if (!strcmp(flag, "--size")) { if (!cli_int(prog, flag, v, 8, 1024, &n)) return 2; o->size = (int)n; }
        else if (!strcmp(flag, "--seed")) { if (!cli_int(prog, flag, v, 0, INT64_MAX, &o->seed)) return 2; }
        else if (!cli_int(prog, flag, v, 0, INT64_MAX, &o->index)) return 2;
    }
    if (!o->data) return cli_usage_error(prog, "%s: --data is required", o->cmd);
    if ((preview || export) && !o->out) return cli_usage_error(prog, "%s: --out is required", o->cmd);
    return 0;
}

static int parse_format(const char *s, vit_data_format *f) {
    *f = VIT_DATA_AUTO;
    if (!s) return 1;
    for (int i = VIT_DATA_FOLDER; i <= VIT_DATA_IDX; i++)
        if (!strcmp(s, vit_data_format_name((vit_data_format)i))) {
            *f = (vit_data_format)i;
            return 1;
        }
    cli_usage_error(prog, "--format: '%s' is not folder, cifar10 or idx", s);
    return 0;
}

/* ------------------------------------------------------------------- info */
static int cmd_info(vit_context *ctx, const opts *o, vit_data_format fmt) {
    vit_dataset *train = NULL, *val = NULL;
    vit_status s = vit_dataset_open(ctx, o->data, fmt, VIT_SPLIT_TRAIN, &train);
    if (s != VIT_OK) return fail("opening the train split", s);
    int64_t ntrain = 0, nval = 0, format = 0;
    vit_dataset_size(train, &ntrain);
    vit_dataset_get_int(train, VIT_DS_FORMAT, &format);
    s = vit_dataset_open(ctx, o->data, (vit_data_format)format, VIT_SPLIT_VAL, &val);
    if (s != VIT_OK) {
        int r = fail("opening the val split", s);
        vit_dataset_destroy(train);
        return r;
    }
    vit_dataset_size(val, &nval);
    int nc = 0;
    vit_dataset_num_classes(train, &nc);
    if (o->json) {
        printf("{\"format\": ");
        cli_json_fputs(stdout, vit_data_format_name((vit_data_format)format));
        printf(", \"train\": %lld, \"val\": %lld, \"classes\": [", (long long)ntrain, (long long)nval);
        for (int i = 0; i < nc; i++) {
            const char *name;
            vit_dataset_class_name(train, i, &name);
            if (i) printf(", ");
            cli_json_fputs(stdout, name);
        }
        printf("]}\n");
    } else {
        int64_t w = 0, h = 0, c = 0;
        vit_dataset_get_int(train, VIT_DS_WIDTH, &w);
        vit_dataset_get_int(train, VIT_DS_HEIGHT, &h);
        vit_dataset_get_int(train, VIT_DS_CHANNELS, &c);
        printf("format:  %s\n", vit_data_format_name((vit_data_format)format));
        printf("train:   %lld samples\n", (long long)ntrain);
        printf("val:     %lld samples\n", (long long)nval);
        if (w) printf("images:  %lld x %lld, %lld channel%s\n", (long long)w, (long long)h, (long long)c, c > 1 ? "s" : "");
        else printf("images:  files of varying size, decoded to %lld channels\n", (long long)c);
        printf("classes: %d\n", nc);
        for (int i = 0; i < nc; i++) {
            const char *name;
            vit_dataset_class_name(train, i, &name);
            printf("  %3d  %s\n", i, name);
        }
    }
    vit_dataset_destroy(val);
    vit_dataset_destroy(train);
    return 0;
}

/* ---------------------------------------------------------------- preview */
/* A 5x7 bitmap font: digits, capitals (lower case is drawn in capitals) and a
 * little punctuation; rows top to bottom, bit 4 the leftmost pixel. */
static const char font_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/_.()? ";
static const unsigned char font[][7] = {
    {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, {0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E},
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
    {0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}, {0x01, 0x02, 0x02, 0x04, 0x08, 0x08, 0x10},
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}, {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C},
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
};

/* Draws text in white at (x, y) of an RGB image of width w, clipped to max_x. */
static void draw_text(unsigned char *rgb, int w, int h, int x, int y, int max_x, const char *text) {
    for (; *text && x + 5 <= max_x; text++, x += 6) {
        const char *p = strchr(font_chars, toupper((unsigned char)*text));
        const unsigned char *g = font[p && *p ? p - font_chars : (int)(strchr(font_chars, '?') - font_chars)];
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 5; c++)
                if (g[r] >> (4 - c) & 1 && y + r < h) memset(rgb + ((size_t)(y + r) * w + x + c) * 3, 255, 3);
    }
}

static int cmd_preview(vit_context *ctx, const opts *o, vit_data_format fmt) {
    vit_dataset *ds = NULL;
    vit_transform *tf = NULL;
    vit_loader *ld = NULL;
    vit_tensor *images = NULL, *labels = NULL;
    unsigned char *grid = NULL;
    int rc = 1;
    vit_status s;
    vit_context_set_int(ctx, VIT_CTX_SEED, o->seed);
    if ((s = vit_dataset_open(ctx, o->data, fmt, o->val ? VIT_SPLIT_VAL : VIT_SPLIT_TRAIN, &ds)) != VIT_OK) {
        rc = fail("opening the dataset", s);
        goto done;
    }
    /* The seed's training augmentation (CIFAR10DataLoad): flip 0.5, rotation 10. */
    if ((s = vit_transform_create(ctx, &tf)) != VIT_OK || (s = vit_transform_set_int(tf, VIT_TF_SIZE, o->size)) ||
        (s = vit_transform_set_int(tf, VIT_TF_TRAIN, o->augment)) ||
        (s = vit_transform_set_float(tf, VIT_TF_FLIP_P, 0.5)) || (s = vit_transform_set_float(tf, VIT_TF_ROTATION, 10))) {
        rc = fail("setting up the transform", s);
        goto done;
    }
    int64_t n = 0, C = 0;
    vit_dataset_size(ds, &n);
    vit_dataset_get_int(ds, VIT_DS_CHANNELS, &C);
    int count = o->count < n ? o->count : (int)n;
    if ((s = vit_loader_create(ds, tf, count, &ld)) != VIT_OK || (s = vit_loader_set_int(ld, VIT_LD_DROP_LAST, 0)) ||
        (s = vit_loader_start_epoch(ld, 0))) {
        rc = fail("starting the loader", s);
        goto done;
    }
    int64_t ishape[4] = {count, C, o->size, o->size}, lshape[1] = {count};
    if ((s = vit_tensor_create(ctx, VIT_DTYPE_F32, 4, ishape, &images)) ||
        (s = vit_tensor_create(ctx, VIT_DTYPE_I32, 1, lshape, &labels))) {
        rc = fail("allocating the batch", s);
        goto done;
    }
    int got = 0;
    if ((s = vit_loader_next(ld, images, labels, &got)) != VIT_OK) {
        rc = fail("loading samples", s);
        goto done;
    }
    void *ip, *lp;
    vit_tensor_data(images, &ip);
    vit_tensor_data(labels, &lp);
    const float *px = ip;
    const int32_t *lab = lp;

    const int S = o->size, pad = 4, band = 12, cols = got < o->cols ? got : o->cols, rows = (got + cols - 1) / cols;
    const int W = cols * (S + pad) + pad, H = rows * (S + band + pad) + pad;
    grid = calloc((size_t)W * H * 3, 1);
    if (!grid) {
        fprintf(stderr, "vit-data: no memory for a %d x %d grid\n", W, H);
        goto done;
    }
    for (int i = 0; i < got; i++) {
        int x0 = pad + (i % cols) * (S + pad), y0 = pad + (i / cols) * (S + band + pad);
        const float *img = px + (size_t)i * C * S * S;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                for (int c = 0; c < 3; c++) {
                    float v = img[(size_t)(C == 3 ? c : 0) * S * S + (size_t)y * S + x] * 255.0f + 0.5f;
                    grid[((size_t)(y0 + y) * W + x0 + x) * 3 + c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
        const char *name = "?";
        vit_dataset_class_name(ds, lab[i], &name);
        draw_text(grid, W, H, x0, y0 + S + 3, x0 + S, name);
    }
    vit_tensor *out = NULL;
    int64_t gshape[3] = {H, W, 3};
    if ((s = vit_tensor_create(ctx, VIT_DTYPE_U8, 3, gshape, &out)) ||
        (s = vit_tensor_write(out, grid, (size_t)W * H * 3)) || (s = vit_image_write_png(o->out, out))) {
        vit_tensor_destroy(out);
        rc = fail("writing the grid", s);
        goto done;
    }
    vit_tensor_destroy(out);
    printf("wrote %s: %d samples of the %s split%s, %d x %d pixels\n", o->out, got, o->val ? "val" : "train",
           o->augment ? " with augmentation" : "", W, H);
    rc = 0;
done:
    free(grid);
    vit_tensor_destroy(images);
    vit_tensor_destroy(labels);
    vit_loader_destroy(ld);
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
    return rc;
}

static int cmd_export(vit_context *ctx, const opts *o, vit_data_format fmt) {
    vit_dataset *ds;
    vit_status s = vit_dataset_open(ctx, o->data, fmt, o->val ? VIT_SPLIT_VAL : VIT_SPLIT_TRAIN, &ds);
    if (s != VIT_OK) return fail(o->data, s);
    vit_tensor *img = NULL;
    int32_t label;
    const char *name = NULL;
    s = vit_dataset_get(ds, o->index, &img, &label);
    if (s == VIT_OK) s = vit_image_write_png(o->out, img);
    if (s == VIT_OK) s = vit_dataset_class_name(ds, label, &name);
    if (s == VIT_OK) printf("%s: sample %lld of the %s split, label %d (%s)\n", o->out, o->index,
                            o->val ? "val" : "train", label, name);
    vit_tensor_destroy(img);
    vit_dataset_destroy(ds);
    return s == VIT_OK ? 0 : fail("export", s);
}

int main(int argc, char **argv) {
    opts o;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage_to(stdout);
            return 0;
        }
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    vit_data_format fmt;
    if (!parse_format(o.format, &fmt)) return 2;
    if (o.out && !cli_check_output(prog, "--out", o.out)) return 1;
    vit_context *ctx;
    if (vit_context_create(&ctx) != VIT_OK) return fail("creating a context", VIT_ERR_OUT_OF_MEMORY);
    if (!strcmp(o.cmd, "info")) rc = cmd_info(ctx, &o, fmt);
    else if (!strcmp(o.cmd, "preview")) rc = cmd_preview(ctx, &o, fmt);
    else rc = cmd_export(ctx, &o, fmt);
    vit_context_destroy(ctx);
    return rc;
}
