/* vit-predict: classify images with a checkpoint, the seed's predict.py and
 * predict_cifar10.py --top-k over libvit's public API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vit/vit.h>

#include "cli.h"

static const char *prog = "vit-predict";

static const char usage[] =
    "usage: vit-predict --checkpoint FILE [--top-k K] [--json] [--mean R,G,B --std R,G,B]\n"
    "                   [--threads N] IMAGE...\n"
    "\n"
    "Prints each image's K most likely classes (default 1) with probabilities. Class names\n"
    "come from the checkpoint (class_<i> when it has none); the normalization stored in\n"
    "the checkpoint is used unless --mean/--std override it. --json prints one object per\n"
    "image: {\"image\": PATH, \"top\": [{\"index\": I, \"class\": NAME, \"prob\": P}, ...]}.\n"
    "An unreadable image is reported by name, the others are still classified, and the\n"
    "exit status is then 1.\n";

/* The i-th string of a JSON array of strings (as vit-train writes class_names);
 * false when absent or malformed. */
static bool json_array_item(const char *json, int index, char *out, size_t cap) {
    const char *p = json ? strchr(json, '[') : NULL;
    if (!p) return false;
    p++;
    for (int i = 0;; i++) {
        while (*p == ' ' || *p == ',' || *p == '\n') p++;
        if (*p != '"') return false;
        p++;
        size_t n = 0;
        while (*p && *p != '"') {
            char c = *p++;
            if (c == '\\' && *p) {
                c = *p++;
                if (c == 'u') { /* names with escapes beyond ASCII keep a placeholder */
                    c = '?';
                    for (int k = 0; k < 4 && *p; k++) p++;
                } else if (c == 'n') c = '\n';
                else if (c == 't') c = '\t';
            }
            if (i == index && n + 1 < cap) out[n++] = c;
        }
        if (*p != '"') return false;
        p++;
        if (i == index) {
            out[n] = '\0';
            return true;
        }
    }
}

int main(int argc, char **argv) {
    const char *checkpoint = NULL;
    long long topk = 1, threads = 0;
    int json = 0, have_mean = 0, have_std = 0;
    double mean[3], stdv[3];
    /* Images may come before, between or after the flags; after "--" everything is
     * an image. They are gathered at the front of argv + 1 (never past the reader). */
    char **images = argv + 1;
    int n_images = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (cli_is(a, "--checkpoint")) {
            if (!(checkpoint = cli_value(prog, argc, argv, &i, "--checkpoint"))) return 2;
        } else if (cli_is(a, "--top-k")) {
            if (!(v = cli_value(prog, argc, argv, &i, "--top-k")) || !cli_int(prog, "--top-k", v, 1, 1000000, &topk)) return 2;
        } else if (cli_is(a, "--threads")) {
            if (!(v = cli_value(prog, argc, argv, &i, "--threads")) || !cli_int(prog, "--threads", v, 0, 4096, &threads)) return 2;
        } else if (cli_is(a, "--mean")) {
            if (!(v = cli_value(prog, argc, argv, &i, "--mean")) || !cli_reals(prog, "--mean", v, 3, mean)) return 2;
            have_mean = 1;
        } else if (cli_is(a, "--std")) {
            if (!(v = cli_value(prog, argc, argv, &i, "--std")) || !cli_reals(prog, "--std", v, 3, stdv)) return 2;
            for (int k = 0; k < 3; k++)
                if (!(stdv[k] > 0)) return cli_usage_error(prog, "--std: values must be positive");
            have_std = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--")) {
            while (++i < argc) images[n_images++] = argv[i];
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(prog, "unknown argument '%s'", a);
        } else {
            images[n_images++] = argv[i];
        }
    }
    if (!checkpoint) return cli_usage_error(prog, "--checkpoint is required");
    if (!n_images) return cli_usage_error(prog, "no IMAGE given");
    if (have_mean != have_std) return cli_usage_error(prog, "--mean and --std go together");

    int rc = 0;
    vit_context *ctx = NULL;
    vit_model *model = NULL;
    vit_config *cfg = NULL;
    vit_transform *tf = NULL;
    vit_tensor *image = NULL, *logits = NULL;
    int32_t *idx = NULL;
    float *prob = NULL;
    vit_status s = vit_context_create(&ctx);
    if (s == VIT_OK && threads) s = vit_context_set_int(ctx, VIT_CTX_THREADS, threads);
    if (s != VIT_OK) { rc = cli_fail(prog, "context", s); goto done; }
    if ((s = vit_model_load(ctx, checkpoint, &model)) != VIT_OK) { rc = cli_fail(prog, checkpoint, s); goto done; }
    vit_model_set_training(model, 0);
    vit_model_set_grad(model, 0);
    int64_t img, ch, classes;
    vit_model_get_config(model, &cfg);
    vit_config_get_int(cfg, VIT_CFG_IMG_SIZE, &img);
    vit_config_get_int(cfg, VIT_CFG_IN_CHANNELS, &ch);
    vit_config_get_int(cfg, VIT_CFG_NUM_CLASSES, &classes);
    if (topk > classes) topk = classes;

    /* Normalization: flags, else the checkpoint's, else none (ToTensor). */
    const char *meta_mean = NULL, *meta_std = NULL;
    vit_model_get_metadata(model, "mean", &meta_mean);
    vit_model_get_metadata(model, "std", &meta_std);
    if (!have_mean && meta_mean && meta_std &&
        sscanf(meta_mean, "%lf,%lf,%lf", &mean[0], &mean[1], &mean[2]) == 3 &&
        sscanf(meta_std, "%lf,%lf,%lf", &stdv[0], &stdv[1], &stdv[2]) == 3)
        have_mean = have_std = 1;
    if ((s = vit_transform_create(ctx, &tf)) != VIT_OK) { rc = cli_fail(prog, "transform", s); goto done; }
    vit_transform_set_int(tf, VIT_TF_TRAIN, 0);
    vit_transform_set_int(tf, VIT_TF_SIZE, img);
    vit_transform_set_int(tf, VIT_TF_CHANNELS, ch);
    if (have_mean) {
        for (int k = 0; k < 3 && s == VIT_OK; k++) {
            s = vit_transform_set_float(tf, (vit_transform_param)(VIT_TF_MEAN_0 + k), mean[k]);
            if (s == VIT_OK) s = vit_transform_set_float(tf, (vit_transform_param)(VIT_TF_STD_0 + k), stdv[k]);
        }
        if (s != VIT_OK) { rc = cli_fail(prog, "normalization", s); goto done; }
    }
    int64_t si[4] = {1, ch, img, img}, so[2] = {1, classes};
    if ((s = vit_tensor_create(ctx, VIT_DTYPE_F32, 4, si, &image)) != VIT_OK ||
        (s = vit_tensor_create(ctx, VIT_DTYPE_F32, 2, so, &logits)) != VIT_OK) {
        rc = cli_fail(prog, "tensor", s);
        goto done;
    }
    idx = malloc(sizeof *idx * (size_t)topk);
    prob = malloc(sizeof *prob * (size_t)topk);
    if (!idx || !prob) { rc = cli_fail(prog, "memory", VIT_ERR_OUT_OF_MEMORY); goto done; }
    const char *names = NULL;
    vit_model_get_metadata(model, "class_names", &names);

    for (int i = 0; i < n_images; i++) {
        const char *path = images[i];
        s = vit_image_load(tf, path, image);
        if (s == VIT_OK) s = vit_model_forward(model, image, logits);
        if (s == VIT_OK) s = vit_topk(logits, (int)topk, idx, prob);
        if (s != VIT_OK) {
            cli_fail(prog, path, s);
            rc = 1;
            continue;
        }
        char quoted[8192];
        if (json) {
            cli_json_string(quoted, sizeof quoted, path);
            printf("{\"image\": %s, \"top\": [", quoted);
        } else {
            printf("%s:\n", path);
        }
        for (int k = 0; k < topk; k++) {
            char name[512];
            if (!json_array_item(names, idx[k], name, sizeof name)) snprintf(name, sizeof name, "class_%d", idx[k]);
            if (json) {
                cli_json_string(quoted, sizeof quoted, name);
                printf("%s{\"index\": %d, \"class\": %s, \"prob\": %.6g}", k ? ", " : "", idx[k], quoted, prob[k]);
            } else {
                printf("  %d. %s (%d): %.4f\n", k + 1, name, idx[k], prob[k]);
            }
        }
        if (json) printf("]}\n");
        fflush(stdout);
    }
done:
    free(idx);
    free(prob);
    vit_tensor_destroy(image);
    vit_tensor_destroy(logits);
    vit_transform_destroy(tf);
    vit_config_destroy(cfg);
    vit_model_destroy(model);
    vit_context_destroy(ctx);
    return rc;
}
