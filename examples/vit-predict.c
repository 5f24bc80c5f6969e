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
    "                   [--features OUT.npy|OUT.json [--tokens]] [--threads N]\n"
    "                   [--device cpu|cuda] [--precision fp32|tf32|bf16] IMAGE...\n"
    "\n"
    "Prints each image's K most likely classes (default 1) with probabilities. Class names\n"
    "come from the checkpoint (class_<i> when it has none); the normalization stored in\n"
    "the checkpoint is used unless --mean/--std override it: one value per channel\n"
    "(\"0.485,0.456,0.406\") or one for all (\"0.5\"). --json prints one object per\n"
    "image: {\"image\": PATH, \"top\": [{\"index\": I, \"class\": NAME, \"prob\": P}, ...]}.\n"
    "An unreadable image is reported by name, the others are still classified, and the\n"
    "exit status is then 1.\n"
    "\n"
    "--features OUT writes embeddings instead of classifying: each image's pooled features\n"
    "(what the head reads, timm's pre_logits) [N, DIM], or with --tokens the last block's\n"
    "tokens after the final norm [N, T, DIM] (class token, registers, then the patches).\n"
    "OUT ending in .npy is a float32 NumPy array; .json is {\"images\": [PATH, ...],\n"
    "\"shape\": [...], \"prefix_tokens\": P, \"features\": nested arrays}. Rows follow the\n"
    "IMAGE order; the file is written only when every image was read.\n";

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

/* The embeddings of every image, [n, per] floats, as OUT.npy (NumPy format
 * 1.0, little-endian float32, shape (n, dims...)) or OUT.json. */
static bool write_features(const char *path, const float *data, int n, int ndim, const int64_t *dims, int prefix,
                           char **images) {
    size_t per = 1;
    for (int d = 0; d < ndim; d++) per *= (size_t)dims[d];
    size_t len = strlen(path);
    bool npy = len >= 4 && !strcmp(path + len - 4, ".npy");
    char shape[96];
    int at = snprintf(shape, sizeof shape, "%d", n);
    for (int d = 0; d < ndim; d++) at += snprintf(shape + at, sizeof shape - (size_t)at, ", %lld", (long long)dims[d]);
    if (npy) {
        char header[160];
        int h = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s%s), }", shape,
                         ndim == 0 ? "," : "");
        /* magic (6) + version (2) + length (2) + header, padded with spaces to 64 bytes, ending in \n */
        size_t total = (10 + (size_t)h + 1 + 63) / 64 * 64, body = (size_t)n * per * sizeof(float);
        unsigned char *buf = malloc(total + body);
        if (!buf) return fprintf(stderr, "%s: %s: out of memory\n", prog, path), false;
        memcpy(buf, "\x93NUMPY\x01\x00", 8);
        buf[8] = (unsigned char)((total - 10) & 0xff), buf[9] = (unsigned char)((total - 10) >> 8);
        memset(buf + 10, ' ', total - 10);
        memcpy(buf + 10, header, (size_t)h);
        buf[total - 1] = '\n';
        for (size_t i = 0; i < (size_t)n * per; i++) { /* little-endian whatever the host */
            uint32_t u;
            memcpy(&u, &data[i], 4);
            for (int b = 0; b < 4; b++) buf[total + i * 4 + (size_t)b] = (unsigned char)(u >> (8 * b));
        }
        bool ok = cli_write_atomic(prog, path, buf, total + body);
        free(buf);
        return ok;
    }
    /* JSON: 24 characters a value hold "%.9g", a separator and a row's brackets */
    size_t cap = 256 + (size_t)n * (per * 24 + 64);
    for (int i = 0; i < n; i++) cap += strlen(images[i]) * 6 + 8;
    char *text = malloc(cap), *o = text;
    if (!text) return fprintf(stderr, "%s: %s: out of memory\n", prog, path), false;
    o += sprintf(o, "{\"images\": [");
    for (int i = 0; i < n; i++) {
        char *quoted = malloc(strlen(images[i]) * 6 + 3);
        if (!quoted) return free(text), fprintf(stderr, "%s: %s: out of memory\n", prog, path), false;
        cli_json_string(quoted, strlen(images[i]) * 6 + 3, images[i]);
        o += sprintf(o, "%s%s", i ? ", " : "", quoted);
        free(quoted);
    }
    o += sprintf(o, "], \"shape\": [%s], \"prefix_tokens\": %d, \"features\": [", shape, prefix);
    size_t row = ndim == 2 ? (size_t)dims[1] : per;
    const char *close = ndim == 2 ? "]]" : "]";
    for (size_t i = 0; i < (size_t)n * per; i++) {
        if (i % per == 0) o += sprintf(o, "%s%s[", i ? close : "", i ? ", " : "");
        if (ndim == 2 && i % row == 0) o += sprintf(o, "%s[", i % per ? "], " : "");
        o += sprintf(o, "%s%.9g", i % row ? ", " : "", (double)data[i]);
    }
    o += sprintf(o, "%s]}\n", n ? close : "");
    bool ok = cli_write_text_atomic(prog, path, text);
    free(text);
    return ok;
}

/* --features: every image's pooled features or tokens into OUT. */
static int embed(vit_context *ctx, vit_model *model, vit_transform *tf, vit_tensor *image, const char *out,
                 int tokens, char **images, int n_images) {
    vit_config *cfg = NULL;
    int64_t dim = 0;
    int T = 0, prefix = 0, rc = 0;
    vit_model_get_config(model, &cfg);
    vit_config_get_int(cfg, VIT_CFG_DIM, &dim);
    vit_config_destroy(cfg);
    vit_model_token_count(model, &T, &prefix);
    int64_t shape[3] = {1, T, dim}, dims[2] = {tokens ? T : dim, dim};
    const size_t per = (size_t)(tokens ? T * dim : dim);
    vit_tensor *feat = NULL;
    float *all = malloc((size_t)n_images * per * sizeof(float) + 1);
    vit_status s = all ? vit_tensor_create(ctx, VIT_DTYPE_F32, tokens ? 3 : 2,
                                           tokens ? shape : (int64_t[]){1, dim}, &feat)
                       : VIT_ERR_OUT_OF_MEMORY;
    if (s != VIT_OK) {
        free(all);
        return cli_fail(prog, "features", s);
    }
    for (int i = 0; i < n_images; i++) {
        s = vit_image_load(tf, images[i], image);
        if (s == VIT_OK)
            s = tokens ? vit_model_forward_tokens(model, image, feat) : vit_model_forward_features(model, image, feat);
        if (s == VIT_OK) s = vit_tensor_read(feat, all + (size_t)i * per, per * sizeof(float));
        if (s != VIT_OK) {
            cli_fail(prog, images[i], s);
            rc = 1;
        }
    }
    if (rc)
        fprintf(stderr, "%s: %s not written: not every image was read\n", prog, out);
    else if (!write_features(out, all, n_images, tokens ? 2 : 1, dims, prefix, images))
        rc = 1;
    else if (tokens)
        printf("%s: tokens [%d, %d, %lld] (%d before the patches)\n", out, n_images, T, (long long)dim, prefix);
    else
        printf("%s: pooled features [%d, %lld]\n", out, n_images, (long long)dim);
    vit_tensor_destroy(feat);
    free(all);
    return rc;
}

int main(int argc, char **argv) {
    const char *checkpoint = NULL, *features = NULL;
    long long topk = 1, threads = 0;
    int json = 0, tokens = 0;
    const char *device = NULL, *precision = NULL;
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
        } else if (cli_is(a, "--device")) {
            if (!(device = cli_value(prog, argc, argv, &i, "--device"))) return 2;
        } else if (cli_is(a, "--precision")) {
            if (!(precision = cli_value(prog, argc, argv, &i, "--precision"))) return 2;
        } else if (cli_is(a, "--mean")) {
            if (!(v = cli_value(prog, argc, argv, &i, "--mean")) || !cli_stats_flag(prog, "--mean", v, false, &flag_mean))
                return 2;
            have_mean = true;
        } else if (cli_is(a, "--std")) {
            if (!(v = cli_value(prog, argc, argv, &i, "--std")) || !cli_stats_flag(prog, "--std", v, true, &flag_std))
                return 2;
            have_std = true;
        } else if (cli_is(a, "--features")) {
            if (!(features = cli_value(prog, argc, argv, &i, "--features"))) return 2;
        } else if (!strcmp(a, "--tokens")) {
            tokens = 1;
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
    if (tokens && !features) return cli_usage_error(prog, "--tokens goes with --features");
    if (features) {
        size_t len = strlen(features);
        if (!(len > 4 && !strcmp(features + len - 4, ".npy")) && !(len > 5 && !strcmp(features + len - 5, ".json")))
            return cli_usage_error(prog, "--features %s: the name must end in .npy or .json", features);
        if (!cli_check_output(prog, "--features", features)) return 2;
    }

    int rc = 0;
    vit_context *ctx = NULL, *mctx = NULL; /* mctx: the model's (a GPU's with --device cuda) */
    vit_model *model = NULL;
    vit_config *cfg = NULL;
    vit_transform *tf = NULL;
    vit_tensor *image = NULL, *dimage = NULL, *logits = NULL;
    int32_t *idx = NULL;
    float *prob = NULL;
    char **names = NULL;
    int64_t img = 0, ch = 0, classes = 0;
    vit_status s = vit_context_create(&ctx);
    if (s == VIT_OK && threads) s = vit_context_set_int(ctx, VIT_CTX_THREADS, threads);
    if (s != VIT_OK) { rc = cli_fail(prog, "context", s); goto done; }
    if ((rc = cli_model_context(prog, ctx, device, precision, &mctx))) goto done;
    if ((s = vit_model_load(mctx, checkpoint, &model)) != VIT_OK) { rc = cli_fail(prog, checkpoint, s); goto done; }
    vit_model_set_training(model, 0);
    vit_model_set_grad(model, 0);
    vit_model_get_config(model, &cfg);
    vit_config_get_int(cfg, VIT_CFG_IMG_SIZE, &img);
    vit_config_get_int(cfg, VIT_CFG_IN_CHANNELS, &ch);
    vit_config_get_int(cfg, VIT_CFG_NUM_CLASSES, &classes);
    if (!classes && !features) {
        fprintf(stderr, "%s: %s: the model has no head (num_classes 0): it gives embeddings, use --features OUT\n",
                prog, checkpoint);
        rc = 1;
        goto done;
    }
    if (topk > classes) topk = classes;
    if (!features && (rc = read_class_names(checkpoint, model, classes, &names))) goto done;

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
    if ((s = vit_tensor_create(ctx, VIT_DTYPE_F32, 4, si, &image)) != VIT_OK) {
        rc = cli_fail(prog, "tensor", s);
        goto done;
    }
    if (features) {
        if (mctx != ctx) {
            rc = cli_usage_error(prog, "--features runs on the CPU: leave out --device and --precision");
            goto done;
        }
        rc = embed(ctx, model, tf, image, features, tokens, images, n_images);
        goto done;
    }
    if ((mctx != ctx && (s = vit_tensor_create(mctx, VIT_DTYPE_F32, 4, si, &dimage)) != VIT_OK) ||
        (s = vit_tensor_create(mctx, VIT_DTYPE_F32, 2, so, &logits)) != VIT_OK) {
        rc = cli_fail(prog, "tensor", s);
        goto done;
    }
    idx = malloc(sizeof *idx * (size_t)topk);
    prob = malloc(sizeof *prob * (size_t)topk);
    if (!idx || !prob) { rc = cli_fail(prog, "memory", VIT_ERR_OUT_OF_MEMORY); goto done; }

    for (int i = 0; i < n_images; i++) {
        const char *path = images[i];
        s = vit_image_load(tf, path, image);
        /* decoded on the host, then to the model's device */
        if (s == VIT_OK && dimage) s = cli_tensor_prefix(dimage, image, sizeof(float) * (size_t)(ch * img * img));
        if (s == VIT_OK) s = vit_model_forward(model, dimage ? dimage : image, logits);
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
    vit_tensor_destroy(dimage);
    vit_tensor_destroy(logits);
    vit_transform_destroy(tf);
    vit_config_destroy(cfg);
    vit_model_destroy(model);
    if (mctx != ctx) vit_context_destroy(mctx);
    vit_context_destroy(ctx);
    return rc;
}
