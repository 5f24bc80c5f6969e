/* vit-predict: classify images with a checkpoint, the seed's predict.py and
 * predict_cifar10.py --top-k over libvit's public API. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vit/vit.h>

#include "cli.h"

static const char *prog = "vit-predict";

static const char usage[] =
    "usage: vit-predict --checkpoint FILE [--top-k K] [--json] [--mean M --std S]\n"
    "                   [--threads N] IMAGE...\n"
    "\n"
    "Prints each image's K most likely classes (default 1) with probabilities. Class names\n"
    "come from the checkpoint (class_<i> when it has none); the normalization stored in\n"
    "the checkpoint is used unless --mean/--std override it: one value per channel\n"
    "(\"0.485,0.456,0.406\") or one for all (\"0.5\"). --json prints one object per\n"
    "image: {\"image\": PATH, \"top\": [{\"index\": I, \"class\": NAME, \"prob\": P}, ...]}.\n"
    "An unreadable image is reported by name, the others are still classified, and the\n"
    "exit status is then 1.\n";

static int hex4(const char *p) {
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) *o++ = (char)cp;
    else if (cp < 0x800) *o++ = (char)(0xc0 | cp >> 6), *o++ = (char)(0x80 | (cp & 0x3f));
    else if (cp < 0x10000) *o++ = (char)(0xe0 | cp >> 12), *o++ = (char)(0x80 | (cp >> 6 & 0x3f)), *o++ = (char)(0x80 | (cp & 0x3f));
    else *o++ = (char)(0xf0 | cp >> 18), *o++ = (char)(0x80 | (cp >> 12 & 0x3f)), *o++ = (char)(0x80 | (cp >> 6 & 0x3f)),
         *o++ = (char)(0x80 | (cp & 0x3f));
    return o;
}

/* A JSON string at *p (after its opening quote) decoded into out, which has
 * room for strlen(*p) bytes; false when it is not a valid string. */
static bool json_string_at(const char **p, char *out) {
    const char *s = *p;
    while (*s != '"') {
        if ((unsigned char)*s < 0x20) return false; /* the end of the text, or a raw control character */
        if (*s != '\\') {
            *out++ = *s++;
            continue;
        }
        s++;
        const char *simple = strchr("\"\\/bfnrt", *s);
        if (*s && simple) {
            *out++ = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            s++;
            continue;
        }
        if (*s != 'u') return false;
        int cp = hex4(s + 1);
        if (cp < 0) return false;
        s += 5;
        if (cp >= 0xd800 && cp <= 0xdbff && s[0] == '\\' && s[1] == 'u') {
            int lo = hex4(s + 2);
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                s += 6;
            }
        }
        if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
        out = put_utf8(out, (unsigned)cp);
    }
    *out = '\0';
    *p = s + 1;
    return true;
}

/* The checkpoint's class_names (vit-train stores the dataset's): a JSON array
 * of exactly `classes` strings, or absent (names NULL). Returns 0, or 1 after a
 * message naming the checkpoint and the key. */
static int read_class_names(const char *checkpoint, const vit_model *model, int64_t classes, char ***names) {
    const char *json = NULL;
    *names = NULL;
    vit_model_get_metadata(model, "class_names", &json);
    if (!json) return 0;
    char **list = calloc((size_t)classes, sizeof *list);
    const char *p = json;
    int64_t n = 0;
    bool ok = list != NULL;
    while (ok && isspace((unsigned char)*p)) p++;
    ok = ok && *p++ == '[';
    while (ok && isspace((unsigned char)*p)) p++;
    if (ok && *p == ']') p++;
    else
        while (ok) {
            while (isspace((unsigned char)*p)) p++;
            ok = *p++ == '"' && n < classes && (list[n] = malloc(strlen(p) + 1)) && json_string_at(&p, list[n]);
            n++;
            while (ok && isspace((unsigned char)*p)) p++;
            if (ok && *p == ']') {
                p++;
                break;
            }
            ok = ok && *p++ == ',';
        }
    while (ok && isspace((unsigned char)*p)) p++;
    ok = ok && !*p && n == classes;
    if (ok) {
        *names = list;
        return 0;
    }
    for (int64_t i = 0; list && i < classes; i++) free(list[i]);
    free(list);
    fprintf(stderr, "%s: %s: metadata \"class_names\": not a JSON array of %lld strings\n", prog, checkpoint,
            (long long)classes);
    return 1;
}

int main(int argc, char **argv) {
    const char *checkpoint = NULL;
    long long topk = 1, threads = 0;
    int json = 0;
    cli_stats flag_mean, flag_std;
    bool have_mean = false, have_std = false;
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
            if (!(v = cli_value(prog, argc, argv, &i, "--mean")) || !cli_stats_flag(prog, "--mean", v, false, &flag_mean))
                return 2;
            have_mean = true;
        } else if (cli_is(a, "--std")) {
            if (!(v = cli_value(prog, argc, argv, &i, "--std")) || !cli_stats_flag(prog, "--std", v, true, &flag_std))
                return 2;
            have_std = true;
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
    char **names = NULL;
    int64_t img = 0, ch = 0, classes = 0;
    vit_status s = vit_context_create(&ctx);
    if (s == VIT_OK && threads) s = vit_context_set_int(ctx, VIT_CTX_THREADS, threads);
    if (s != VIT_OK) { rc = cli_fail(prog, "context", s); goto done; }
    if ((s = vit_model_load(ctx, checkpoint, &model)) != VIT_OK) { rc = cli_fail(prog, checkpoint, s); goto done; }
    vit_model_set_training(model, 0);
    vit_model_set_grad(model, 0);
    vit_model_get_config(model, &cfg);
    vit_config_get_int(cfg, VIT_CFG_IMG_SIZE, &img);
    vit_config_get_int(cfg, VIT_CFG_IN_CHANNELS, &ch);
    vit_config_get_int(cfg, VIT_CFG_NUM_CLASSES, &classes);
    if (topk > classes) topk = classes;
    if ((rc = read_class_names(checkpoint, model, classes, &names))) goto done;

    /* Normalization: the flags, else the checkpoint's, else none (ToTensor). */
    double mean[3], stdv[3];
    bool normalize;
    if ((rc = cli_model_stats(prog, checkpoint, model, (int)ch, have_mean ? &flag_mean : NULL, have_std ? &flag_std : NULL,
                              &normalize, mean, stdv)))
        goto done;
    if ((s = vit_transform_create(ctx, &tf)) != VIT_OK) { rc = cli_fail(prog, "transform", s); goto done; }
    vit_transform_set_int(tf, VIT_TF_TRAIN, 0);
    vit_transform_set_int(tf, VIT_TF_SIZE, img);
    vit_transform_set_int(tf, VIT_TF_CHANNELS, ch);
    if (normalize && (s = cli_transform_stats(tf, (int)ch, mean, stdv)) != VIT_OK) {
        rc = cli_fail(prog, "normalization", s);
        goto done;
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
        if (json) {
            fputs("{\"image\": ", stdout);
            cli_json_fputs(stdout, path);
            fputs(", \"top\": [", stdout);
        } else {
            printf("%s:\n", path);
        }
        for (int k = 0; k < topk; k++) {
            char fallback[32];
            snprintf(fallback, sizeof fallback, "class_%d", idx[k]);
            const char *name = names ? names[idx[k]] : fallback;
            if (json) {
                printf("%s{\"index\": %d, \"class\": ", k ? ", " : "", idx[k]);
                cli_json_fputs(stdout, name);
                printf(", \"prob\": %.6g}", prob[k]);
            } else {
                printf("  %d. %s (%d): %.4f\n", k + 1, name, idx[k], prob[k]);
            }
        }
        if (json) printf("]}\n");
        fflush(stdout);
    }
done:
    for (int64_t i = 0; names && i < classes; i++) free(names[i]);
    free(names);
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
