/* vit-eval: accuracy of a checkpoint on a dataset split: top-1, top-5, loss,
 * per-class accuracy and an optional confusion-matrix picture. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vit/vit.h>

#include "cli.h"

static const char *prog = "vit-eval";

static const char usage[] =
    "usage: vit-eval --checkpoint FILE --data DIR [--format folder|cifar10|idx] [--split val|train]\n"
    "                [--batch-size N] [--workers N] [--threads N] [--limit N] [--confusion FILE.png]\n"
    "                [--mean M --std S] [--json] [--device cpu|cuda] [--precision fp32|tf32|bf16]\n"
    "\n"
    "Evaluates the checkpoint with the normalization stored in it, or --mean/--std (one value\n"
    "per channel or one for all, as vit-predict's): top-1 and top-5 accuracy,\n"
    "mean cross-entropy, per-class accuracy; --confusion writes the confusion matrix as a PNG\n"
    "(row = true class, column = predicted; darker = more). --json prints one object.\n";

static vit_data_format parse_format(const char *f) {
    if (!f) return VIT_DATA_AUTO;
    if (!strcmp(f, "folder")) return VIT_DATA_FOLDER;
    if (!strcmp(f, "cifar10")) return VIT_DATA_CIFAR10;
    if (!strcmp(f, "idx")) return VIT_DATA_IDX;
    return (vit_data_format)-1;
}

/* Confusion counts as a gray picture, each class a cell of `cell` pixels,
 * shaded by the row-normalised count. */
static vit_status write_confusion(vit_context *ctx, const char *path, const int64_t *conf, int C) {
    int cell = C <= 20 ? 24 : C <= 100 ? 6 : 1, side = C * cell;
    int64_t shape[3] = {side, side, 1};
    vit_tensor *pix;
    vit_status s = vit_tensor_create(ctx, VIT_DTYPE_U8, 3, shape, &pix);
    if (s != VIT_OK) return s;
    unsigned char *p;
    vit_tensor_data(pix, (void **)&p);
    for (int t = 0; t < C; t++) {
        int64_t row = 0;
        for (int q = 0; q < C; q++) row += conf[t * C + q];
        for (int q = 0; q < C; q++) {
            double frac = row ? (double)conf[t * C + q] / (double)row : 0;
            unsigned char shade = (unsigned char)(255.0 * (1.0 - frac) + 0.5);
            for (int y = 0; y < cell; y++)
                for (int x = 0; x < cell; x++) p[(size_t)(t * cell + y) * side + q * cell + x] = shade;
        }
    }
    s = vit_image_write_png(path, pix);
    vit_tensor_destroy(pix);
    return s;
}

int main(int argc, char **argv) {
    const char *checkpoint = NULL, *data = NULL, *format = NULL, *split = "val", *confusion = NULL;
    const char *device = NULL, *precision = NULL;
    long long batch = 64, workers = 2, threads = 0, limit = 0;
    int json = 0;
    cli_stats flag_mean, flag_std;
    bool have_mean = false, have_std = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        }
#define TEXT(flag, var) if (cli_is(a, flag)) { if (!(var = cli_value(prog, argc, argv, &i, flag))) return 2; continue; }
#define INT(flag, var, lo, hi) \
    if (cli_is(a, flag)) { if (!(v = cli_value(prog, argc, argv, &i, flag)) || !cli_int(prog, flag, v, lo, hi, &var)) return 2; continue; }
        TEXT("--checkpoint", checkpoint) TEXT("--data", data) TEXT("--format", format) TEXT("--split", split)
        TEXT("--confusion", confusion) TEXT("--device", device) TEXT("--precision", precision)
        INT("--batch-size", batch, 1, 65536) INT("--workers", workers, 0, 256) INT("--threads", threads, 0, 4096)
        INT("--limit", limit, 0, INT64_MAX)
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (cli_is(a, "--mean") || cli_is(a, "--std")) {
            bool is_mean = cli_is(a, "--mean");
            const char *flag = is_mean ? "--mean" : "--std";
            if (!(v = cli_value(prog, argc, argv, &i, flag)) ||
                !cli_stats_flag(prog, flag, v, !is_mean, is_mean ? &flag_mean : &flag_std))
                return 2;
            *(is_mean ? &have_mean : &have_std) = true;
            continue;
        }
        return cli_usage_error(prog, "unknown argument '%s'", a);
#undef TEXT
#undef INT
    }
    if (!checkpoint) return cli_usage_error(prog, "--checkpoint is required");
    if (!data) return cli_usage_error(prog, "--data is required");
    if (have_mean != have_std) return cli_usage_error(prog, "--mean and --std go together");
    if (strcmp(split, "val") && strcmp(split, "train")) return cli_usage_error(prog, "--split: '%s' is not val or train", split);
    vit_data_format fmt = parse_format(format);
    if ((int)fmt < 0) return cli_usage_error(prog, "--format: '%s' is not folder, cifar10 or idx", format);
    if (confusion && !cli_check_output(prog, "--confusion", confusion)) return 1;

    int rc = 1;
    vit_context *ctx = NULL, *mctx = NULL; /* mctx: the model's (a GPU's with --device cuda) */
    vit_model *model = NULL;
    vit_config *cfg = NULL;
    vit_dataset *ds = NULL;
    vit_transform *tf = NULL;
    vit_loader *ld = NULL;
    vit_tensor *images = NULL, *labels = NULL, *logits = NULL, *sub_img = NULL, *sub_lab = NULL, *sub_out = NULL;
    int64_t *conf = NULL, *per_total = NULL;
    const char *what = "context";
    vit_status s = vit_context_create(&ctx);
    if (s == VIT_OK && threads) s = vit_context_set_int(ctx, VIT_CTX_THREADS, threads);
    if (s != VIT_OK) { cli_fail(prog, what, s); goto done; }
    if ((rc = cli_model_context(prog, ctx, device, precision, &mctx))) goto done;
    rc = 1;
    what = checkpoint;
    s = vit_model_load(mctx, checkpoint, &model);
    if (s != VIT_OK) { cli_fail(prog, what, s); goto done; }
    vit_model_set_training(model, 0);
    vit_model_set_grad(model, 0);
    int64_t img, ch, classes;
    vit_model_get_config(model, &cfg);
    vit_config_get_int(cfg, VIT_CFG_IMG_SIZE, &img);
    vit_config_get_int(cfg, VIT_CFG_IN_CHANNELS, &ch);
    vit_config_get_int(cfg, VIT_CFG_NUM_CLASSES, &classes);
    /* The checkpoint's normalization is checked before any data is read. */
    double mean[3], stdv[3];
    bool normalize;
    if ((rc = cli_model_stats(prog, checkpoint, model, (int)ch, have_mean ? &flag_mean : NULL,
                              have_std ? &flag_std : NULL, &normalize, mean, stdv))) goto done;
    rc = 1;
    what = data;
    s = vit_dataset_open(ctx, data, fmt, strcmp(split, "val") ? VIT_SPLIT_TRAIN : VIT_SPLIT_VAL, &ds);
    if (s != VIT_OK) { cli_fail(prog, what, s); goto done; }
    int ds_classes;
    vit_dataset_num_classes(ds, &ds_classes);
    if (ds_classes != classes) {
        fprintf(stderr, "%s: %s has %lld classes, %s %d\n", prog, checkpoint, (long long)classes, data, ds_classes);
        goto done;
    }
    what = "transform";
    s = vit_transform_create(ctx, &tf);
    if (s == VIT_OK) s = vit_transform_set_int(tf, VIT_TF_TRAIN, 0);
    if (s == VIT_OK) s = vit_transform_set_int(tf, VIT_TF_SIZE, img);
    if (s == VIT_OK) s = vit_transform_set_int(tf, VIT_TF_CHANNELS, ch);
    if (s == VIT_OK && normalize) s = cli_transform_stats(tf, (int)ch, mean, stdv);
    if (s == VIT_OK) { what = "loader"; s = vit_loader_create(ds, tf, (int)batch, &ld); }
    if (s == VIT_OK) s = vit_loader_set_int(ld, VIT_LD_WORKERS, workers);
    if (s == VIT_OK) s = vit_loader_set_int(ld, VIT_LD_SHUFFLE, 0);
    if (s == VIT_OK) s = vit_loader_set_int(ld, VIT_LD_DROP_LAST, 0);
    if (s == VIT_OK) s = vit_loader_start_epoch(ld, 0);
    int64_t si[4] = {batch, ch, img, img}, sl[1] = {batch}, so[2] = {batch, classes};
    if (s == VIT_OK) { what = "tensor"; s = vit_tensor_create(mctx, VIT_DTYPE_F32, 4, si, &images); }
    if (s == VIT_OK) s = vit_tensor_create(mctx, VIT_DTYPE_I32, 1, sl, &labels);
    if (s == VIT_OK) s = vit_tensor_create(mctx, VIT_DTYPE_F32, 2, so, &logits);
    if (s != VIT_OK) { cli_fail(prog, what, s); goto done; }
    conf = calloc((size_t)(classes * classes), sizeof *conf);
    per_total = calloc((size_t)classes, sizeof *per_total);
    int32_t *top5 = NULL;
    int k5 = classes < 5 ? (int)classes : 5;
    top5 = malloc(sizeof *top5 * (size_t)(batch * k5) + sizeof(int32_t) * (size_t)batch);
    if (!conf || !per_total || !top5) { free(top5); cli_fail(prog, "memory", VIT_ERR_OUT_OF_MEMORY); goto done; }
    int32_t *lab = top5 + batch * k5; /* the batch's labels, read back from the model's device */
    double loss_sum = 0;
    int64_t seen = 0, top1 = 0, hits5 = 0;
    double t0 = cli_now();
    for (;;) {
        int count;
        if ((s = vit_loader_next(ld, images, labels, &count)) != VIT_OK) { cli_fail(prog, "loading", s); free(top5); goto done; }
        if (count == 0) break;
        if (limit && seen + count > limit) count = (int)(limit - seen);
        vit_tensor *bi = images, *bl = labels, *bo = logits;
        if (count < batch) {
            /* A short batch runs at its own size. */
            int64_t ti[4] = {count, ch, img, img}, tl[1] = {count}, to[2] = {count, classes};
            vit_tensor_destroy(sub_img); vit_tensor_destroy(sub_lab); vit_tensor_destroy(sub_out);
            sub_img = sub_lab = sub_out = NULL;
            s = vit_tensor_create(mctx, VIT_DTYPE_F32, 4, ti, &sub_img);
            if (s == VIT_OK) s = vit_tensor_create(mctx, VIT_DTYPE_I32, 1, tl, &sub_lab);
            if (s == VIT_OK) s = vit_tensor_create(mctx, VIT_DTYPE_F32, 2, to, &sub_out);
            if (s == VIT_OK) s = cli_tensor_prefix(sub_img, images, sizeof(float) * (size_t)(batch * ch * img * img));
            if (s == VIT_OK) s = cli_tensor_prefix(sub_lab, labels, sizeof(int32_t) * (size_t)batch);
            if (s != VIT_OK) { cli_fail(prog, "tensor", s); free(top5); goto done; }
            bi = sub_img, bl = sub_lab, bo = sub_out;
        }
        float loss;
        s = vit_model_forward(model, bi, bo);
        if (s == VIT_OK) s = vit_model_loss(model, bl, 0.0f, &loss);
        if (s == VIT_OK) s = vit_topk(bo, k5, top5, NULL);
        if (s == VIT_OK) s = vit_tensor_read(bl, lab, sizeof(int32_t) * (size_t)count);
        if (s != VIT_OK) { cli_fail(prog, "evaluation", s); free(top5); goto done; }
        for (int b = 0; b < count; b++) {
            top1 += top5[b * k5] == lab[b];
            for (int j = 0; j < k5; j++) hits5 += top5[b * k5 + j] == lab[b];
            conf[lab[b] * classes + top5[b * k5]]++;
            per_total[lab[b]]++;
        }
        loss_sum += (double)loss * count;
        seen += count;
        if (count < batch || (limit && seen >= limit)) break;
    }
    free(top5);
    double secs = cli_now() - t0;
    if (!seen) { fprintf(stderr, "%s: %s: no samples\n", prog, data); goto done; }
    /* The picture first: a failed write leaves nothing on stdout. */
    if (confusion && (s = write_confusion(ctx, confusion, conf, (int)classes)) != VIT_OK) {
        cli_fail(prog, confusion, s);
        goto done;
    }
    if (json) {
        fputs("{\"checkpoint\": ", stdout);
        cli_json_fputs(stdout, checkpoint);
        printf(", \"split\": \"%s\", \"samples\": %lld, \"top1\": %.6f, \"top5\": %.6f, \"loss\": %.6f, "
               "\"seconds\": %.3f, \"per_class\": [", split, (long long)seen, (double)top1 / seen,
               (double)hits5 / seen, loss_sum / seen, secs);
    } else {
        printf("%s on %s (%s, %lld images, %.1f s)\n  top-1 %.4f  top-5 %.4f  loss %.4f\n  per class:\n", checkpoint, data,
               split, (long long)seen, secs, (double)top1 / seen, (double)hits5 / seen, loss_sum / seen);
    }
    for (int c = 0; c < classes; c++) {
        const char *name = NULL;
        vit_dataset_class_name(ds, c, &name);
        double acc = per_total[c] ? (double)conf[c * classes + c] / per_total[c] : 0;
        if (json) {
            printf("%s{\"class\": ", c ? ", " : "");
            cli_json_fputs(stdout, name ? name : "");
            printf(", \"count\": %lld, \"accuracy\": %.6f}", (long long)per_total[c], acc);
        } else
            printf("    %-24s %6lld  %.4f\n", name ? name : "?", (long long)per_total[c], acc);
    }
    if (json) printf("]}\n");
    rc = 0;
done:
    free(conf);
    free(per_total);
    vit_tensor_destroy(images); vit_tensor_destroy(labels); vit_tensor_destroy(logits);
    vit_tensor_destroy(sub_img); vit_tensor_destroy(sub_lab); vit_tensor_destroy(sub_out);
    vit_loader_destroy(ld);
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
    vit_config_destroy(cfg);
    vit_model_destroy(model);
    if (mctx && mctx != ctx) vit_context_destroy(mctx);
    vit_context_destroy(ctx);
    return rc;
}
