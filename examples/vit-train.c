/* vit-train: train a Vision Transformer on an image folder, CIFAR-10 or an
 * IDX dataset (Fashion-MNIST), the seed tutorial's train.py over libvit's
 * public API. Run with --help for the flags. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vit/vit.h>

#include "cli.h"

static const char *prog = "vit-train";
static char rank_prog[48]; /* "vit-train [rank 3]": messages of ranks other than 0 */

static const char usage[] =
    "usage: vit-train --data DIR [options]\n"
    "\n"
    "Trains a Vision Transformer and writes best.safetensors, last.safetensors,\n"
    "metrics.csv, loss_curve.png and acc_curve.png into --out.\n"
    "\n"
    "data\n"
    "  --data DIR             dataset root (required)\n"
    "  --format F             folder | cifar10 | idx (detected when omitted)\n"
    "  --augment A            none | flip | rotate | flip+rotate | crop+flip | shift+flip (train\n"
    "                         only; default flip+rotate: the seed's flip(0.5) + rotation(10))\n"
    "  --crop-scale S         with crop+flip: the smallest area fraction of a random crop\n"
    "                         (0.08 as torchvision's RandomResizedCrop; at most 1)\n"
    "  --shift N              with shift+flip: move the image by up to N pixels each way, zero\n"
    "                         filled (torchvision's RandomCrop(size, padding=N); default 4)\n"
    "  --normalize N          none | imagenet | half (default: imagenet for cifar10, else none)\n"
    "  --workers N            loader threads (4)\n"
    "  --steps-per-epoch N    stop each epoch after N batches (0 = all)\n"
    "  --val-batches N        evaluate on the first N validation batches (0 = all)\n"
    "model\n"
    "  --model PRESET         timm preset, e.g. vit_tiny_patch16_224: timm's sizes and layout (no patch\n"
    "                         norm, LayerNorm eps 1e-6); the flags below override it\n"
    "  --img-size N (224)  --patch-size N (16)  --in-channels N (the data's: 1 for IDX, else 3)\n"
    "  --dim N (768)  --depth N (12)  --heads N (12)  --mlp-ratio R (4)\n"
    "  --qkv-bias / --no-qkv-bias (on)   --patch-norm / --no-patch-norm (on: the seed's variant;\n"
    "                         off with --model)\n"
    "  --global-pool token|avg|map (token, or the --model preset's)\n"
    "  --ln-eps E (1e-5 with --patch-norm as nn.LayerNorm, else 1e-6)\n"
    "  --drop P (0.1)  --attn-drop P (0.1)  --drop-path P (0.1)\n"
    "  --pretrained FILE      start from these weights (head re-initialised when the class\n"
    "                         count differs, pos_embed resampled when the grid differs)\n"
    "optimisation\n"
    "  --epochs N (50)  --batch-size N (4)  --lr R (1e-4)  --weight-decay R (0.01)\n"
    "  --decay-exempt         no weight decay on biases, norms, pos_embed, cls_token\n"
    "  --warmup-epochs N (0)  --schedule cosine|constant (constant)\n"
    "  --label-smoothing R (0)  --clip-grad R (0 = off)\n"
    "run\n"
    "  --seed N (0)  --threads N (all cores)  " CLI_DEVICE_HELP "\n"
    "  --out DIR (.)  --resume FILE (a last.safetensors to continue from, exactly: the model and\n"
    "                         seed are the run's; give the same data and optimisation flags)\n"
    "  --json                 one JSON object per epoch on stdout\n"
    "distributed (mpirun -np N vit-train ...; docs/distributed.md)\n"
    "  --batch-size is the global batch, split evenly over the N ranks (a multiple of N);\n"
    "  rank 0 alone prints and writes the outputs.\n"
    "  --comm-timeout S       fail when the other ranks give no answer for S seconds (300)\n";

typedef struct options {
    const char *data, *format, *augment, *normalize, *preset, *pretrained, *out, *resume, *schedule, *device, *precision;
    long long img, patch, channels, dim, depth, heads, epochs, batch, workers, warmup, seed, threads;
    long long steps_per_epoch, val_batches, shift, comm_timeout;
    int qkv_bias, patch_norm, pool, decay_exempt, json;
    double mlp_ratio, drop, attn_drop, drop_path, lr, wd, smoothing, clip, ln_eps, crop_scale;
    bool set_img, set_patch, set_dim, set_depth, set_heads, set_seed;
} options;

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* ------------------------------------------------------------------ flags */
static int parse(int argc, char **argv, options *o) {
    *o = (options){.format = NULL, .augment = "flip+rotate", .out = ".", .schedule = "constant", .device = "cpu",
                   .img = 224, .patch = 16, .channels = 0, .dim = 768, .depth = 12, .heads = 12, .epochs = 50,
                   .batch = 4, .workers = 4, .qkv_bias = -1, .patch_norm = -1, .pool = -1, .mlp_ratio = 0, .drop = 0.1,
                   .attn_drop = 0.1, .drop_path = 0.1, .lr = 1e-4, .wd = 0.01, .ln_eps = 0, .comm_timeout = 300};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VALUE() do { if (!(v = cli_value(prog, argc, argv, &i, a))) return 2; } while (0)
#define INT(flag, field, lo, hi) \
    if (cli_is(a, flag)) { VALUE(); if (!cli_int(prog, flag, v, lo, hi, &o->field)) return 2; continue; }
#define REAL(flag, field, lo, hi) \
    if (cli_is(a, flag)) { VALUE(); if (!cli_real(prog, flag, v, lo, hi, &o->field)) return 2; continue; }
#define TEXT(flag, field) \
    if (cli_is(a, flag)) { VALUE(); o->field = v; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            exit(0);
        }
        TEXT("--data", data) TEXT("--format", format) TEXT("--augment", augment) TEXT("--normalize", normalize)
        TEXT("--model", preset) TEXT("--pretrained", pretrained) TEXT("--out", out) TEXT("--resume", resume)
        TEXT("--schedule", schedule) TEXT("--device", device) TEXT("--precision", precision)
        if (cli_is(a, "--img-size")) { VALUE(); if (!cli_int(prog, "--img-size", v, 1, 8192, &o->img)) return 2; o->set_img = true; continue; }
        if (cli_is(a, "--patch-size")) { VALUE(); if (!cli_int(prog, "--patch-size", v, 1, 1024, &o->patch)) return 2; o->set_patch = true; continue; }
        if (cli_is(a, "--dim")) { VALUE(); if (!cli_int(prog, "--dim", v, 1, 65536, &o->dim)) return 2; o->set_dim = true; continue; }
        if (cli_is(a, "--depth")) { VALUE(); if (!cli_int(prog, "--depth", v, 1, 1024, &o->depth)) return 2; o->set_depth = true; continue; }
        if (cli_is(a, "--heads")) { VALUE(); if (!cli_int(prog, "--heads", v, 1, 1024, &o->heads)) return 2; o->set_heads = true; continue; }
        INT("--in-channels", channels, 1, 3) INT("--epochs", epochs, 1, 1000000) INT("--batch-size", batch, 1, 65536)
        INT("--workers", workers, 0, 256) INT("--warmup-epochs", warmup, 0, 1000000)
        if (cli_is(a, "--seed")) { VALUE(); if (!cli_int(prog, "--seed", v, 0, INT64_MAX, &o->seed)) return 2; o->set_seed = true; continue; }
        INT("--threads", threads, 0, 4096) INT("--steps-per-epoch", steps_per_epoch, 0, INT64_MAX)
        INT("--val-batches", val_batches, 0, INT64_MAX) INT("--comm-timeout", comm_timeout, 1, 1000000000)
        REAL("--mlp-ratio", mlp_ratio, 1e-3, 64) REAL("--drop", drop, 0, 0.999) REAL("--attn-drop", attn_drop, 0, 0.999)
        REAL("--drop-path", drop_path, 0, 0.999) REAL("--lr", lr, 0, 10) REAL("--weight-decay", wd, 0, 10)
        REAL("--label-smoothing", smoothing, 0, 0.999) REAL("--clip-grad", clip, 0, 1e9) REAL("--ln-eps", ln_eps, 1e-12, 0.5)
        REAL("--crop-scale", crop_scale, 1e-3, 1) INT("--shift", shift, 1, 8192)
        if (!strcmp(a, "--qkv-bias")) { o->qkv_bias = 1; continue; }
        if (!strcmp(a, "--no-qkv-bias")) { o->qkv_bias = 0; continue; }
        if (!strcmp(a, "--patch-norm")) { o->patch_norm = 1; continue; }
        if (!strcmp(a, "--no-patch-norm")) { o->patch_norm = 0; continue; }
        if (!strcmp(a, "--decay-exempt")) { o->decay_exempt = 1; continue; }
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if (cli_is(a, "--global-pool")) {
            VALUE();
            o->pool = !strcmp(v, "token") ? VIT_POOL_TOKEN : !strcmp(v, "avg") ? VIT_POOL_AVG : !strcmp(v, "map") ? VIT_POOL_MAP : -1;
            if (o->pool < 0) return cli_usage_error(prog, "--global-pool: '%s' is not token, avg or map", v);
            continue;
        }
        return cli_usage_error(prog, "unknown argument '%s'", a);
#undef VALUE
#undef INT
#undef REAL
#undef TEXT
    }
    if (!o->data) return cli_usage_error(prog, "--data is required");
    if (strcmp(o->schedule, "cosine") && strcmp(o->schedule, "constant"))
        return cli_usage_error(prog, "--schedule: '%s' is not cosine or constant", o->schedule);
    static const char *const augments[] = {"none", "flip", "rotate", "flip+rotate", "crop+flip", "shift+flip"};
    bool known = false;
    for (size_t k = 0; k < sizeof augments / sizeof *augments; k++) known |= !strcmp(o->augment, augments[k]);
    if (!known) return cli_usage_error(prog, "--augment: '%s' is not one of none, flip, rotate, flip+rotate, crop+flip, shift+flip",
                                        o->augment);
    if (o->crop_scale > 0 && !strstr(o->augment, "crop"))
        return cli_usage_error(prog, "--crop-scale: applies to --augment crop+flip, not '%s'", o->augment);
    if (o->shift > 0 && !strstr(o->augment, "shift"))
        return cli_usage_error(prog, "--shift: applies to --augment shift+flip, not '%s'", o->augment);
    if (o->normalize && strcmp(o->normalize, "none") && strcmp(o->normalize, "imagenet") && strcmp(o->normalize, "half"))
        return cli_usage_error(prog, "--normalize: '%s' is not none, imagenet or half", o->normalize);
    if (o->channels == 2) return cli_usage_error(prog, "--in-channels: 2 is not 1 or 3");
    /* Room for the file names inside it (run.path). */
    if (strlen(o->out) > 4000) return cli_usage_error(prog, "--out: a path of %zu bytes is too long", strlen(o->out));
    if (o->format && strcmp(o->format, "folder") && strcmp(o->format, "cifar10") && strcmp(o->format, "idx"))
        return cli_usage_error(prog, "--format: '%s' is not folder, cifar10 or idx", o->format);
    /* Unset model flags: the seed's variant, or with --model the preset's timm layout
     * (qkv bias, MLP ratio and eps come from the preset; no patch norm). */
    if (o->patch_norm < 0) o->patch_norm = !o->preset;
    if (o->ln_eps == 0 && !o->preset) o->ln_eps = o->patch_norm ? 1e-5 : 1e-6;
    return 0;
}

static vit_data_format parse_format(const char *f) {
    if (!f) return VIT_DATA_AUTO;
    if (!strcmp(f, "folder")) return VIT_DATA_FOLDER;
    if (!strcmp(f, "cifar10")) return VIT_DATA_CIFAR10;
    if (!strcmp(f, "idx")) return VIT_DATA_IDX;
    return (vit_data_format)-1;
}

/* -------------------------------------------------------------- the run */
typedef struct history {
    double train_loss, train_acc, val_loss, val_acc, lr, seconds, images_per_s;
} history;

typedef struct run {
    options o;
    vit_context *ctx;
    vit_dataset *train_ds, *val_ds;
    vit_transform *train_tf, *eval_tf;
    vit_loader *train_ld, *val_ld;
    vit_model *model;
    vit_optimizer *opt;
    vit_tensor *images, *labels, *logits;
    /* Data-parallel: this process is rank `rank` of `ranks` (1 without a
     * launcher); each takes `batch` = --batch-size / ranks of every step. */
    vit_comm *comm;
    int rank, ranks;
    int64_t batch;
    int channels, img, classes;
    int64_t steps_per_epoch, total_steps;
    history *hist;
    long long epochs_done;
    double best_acc;
    /* The epoch in progress: steps taken and running sums, saved on Ctrl-C so
     * that --resume continues mid-epoch exactly. */
    int64_t step, correct_sum, seen;
    double loss_sum;
    bool saved; /* this run has written last.safetensors */
    unsigned long long resume_rng; /* the dropout stream's position to resume from */
    char optim_file[4200];         /* the optimizer file that goes with --resume */
    char path[4096];
} run;

static const char *out_path(run *r, const char *name) {
    snprintf(r->path, sizeof r->path, "%s/%s", r->o.out, name);
    return r->path;
}

#define TRY(what, call) do { vit_status s_ = (call); if (s_ != VIT_OK) return cli_fail(prog, what, s_); } while (0)

static int open_data(run *r) {
    vit_data_format fmt = parse_format(r->o.format);
    if ((int)fmt < 0) return cli_usage_error(prog, "--format: '%s' is not folder, cifar10 or idx", r->o.format);
    TRY(r->o.data, vit_dataset_open(r->ctx, r->o.data, fmt, VIT_SPLIT_TRAIN, &r->train_ds));
    TRY(r->o.data, vit_dataset_open(r->ctx, r->o.data, fmt, VIT_SPLIT_VAL, &r->val_ds));
    TRY("classes", vit_dataset_num_classes(r->train_ds, &r->classes));
    int val_classes;
    TRY("classes", vit_dataset_num_classes(r->val_ds, &val_classes));
    if (val_classes != r->classes) {
        fprintf(stderr, "%s: %s: the training split has %d classes, the validation split %d\n", prog, r->o.data,
                r->classes, val_classes);
        return 1;
    }
    return 0;
}

static int build_transforms(run *r) {
    int64_t fmt;
    TRY("dataset", vit_dataset_get_int(r->train_ds, VIT_DS_FORMAT, &fmt));
    const char *norm = r->o.normalize ? r->o.normalize : fmt == VIT_DATA_CIFAR10 ? "imagenet" : "none";
    /* One value per channel, the same floats for the transform and for the
     * checkpoint's "mean"/"std" (which vit-predict and vit-eval apply). A gray
     * model with ImageNet statistics uses their average, as libvit's
     * VIT_NORM_IMAGENET does. */
    static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f}, imagenet_std[3] = {0.229f, 0.224f, 0.225f};
    float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
    for (int c = 0; c < 3; c++) {
        if (!strcmp(norm, "half")) {
            mean[c] = std[c] = 0.5f;
        } else if (!strcmp(norm, "imagenet")) {
            mean[c] = r->channels == 1 ? (imagenet_mean[0] + imagenet_mean[1] + imagenet_mean[2]) / 3 : imagenet_mean[c];
            std[c] = r->channels == 1 ? (imagenet_std[0] + imagenet_std[1] + imagenet_std[2]) / 3 : imagenet_std[c];
        }
    }
    const char *aug = r->o.augment;
    TRY("transform", vit_transform_create(r->ctx, &r->train_tf));
    TRY("transform", vit_transform_set_int(r->train_tf, VIT_TF_SIZE, r->img));
    TRY("transform", vit_transform_set_int(r->train_tf, VIT_TF_CHANNELS, r->channels));
    if (strcmp(norm, "none")) {
        double m[3] = {mean[0], mean[1], mean[2]}, sd[3] = {std[0], std[1], std[2]};
        TRY("--normalize", cli_transform_stats(r->train_tf, r->channels, m, sd));
    }
    if (strstr(aug, "flip")) TRY("--augment", vit_transform_set_float(r->train_tf, VIT_TF_FLIP_P, 0.5));
    if (strstr(aug, "rotate")) TRY("--augment", vit_transform_set_float(r->train_tf, VIT_TF_ROTATION, 10.0));
    if (strstr(aug, "crop")) TRY("--augment", vit_transform_set_int(r->train_tf, VIT_TF_RANDOM_CROP, 1));
    if (r->o.crop_scale > 0) TRY("--crop-scale", vit_transform_set_float(r->train_tf, VIT_TF_CROP_SCALE_MIN, r->o.crop_scale));
    if (strstr(aug, "shift")) TRY("--shift", vit_transform_set_int(r->train_tf, VIT_TF_PAD_CROP, r->o.shift ? r->o.shift : 4));
    TRY("transform", vit_transform_copy(r->train_tf, &r->eval_tf));
    TRY("transform", vit_transform_set_int(r->eval_tf, VIT_TF_TRAIN, 0));

    char mean_text[96], std_text[96];
    cli_stats_format(mean_text, sizeof mean_text, r->channels, mean);
    cli_stats_format(std_text, sizeof std_text, r->channels, std);
    TRY("metadata", vit_model_set_metadata(r->model, "mean", mean_text));
    TRY("metadata", vit_model_set_metadata(r->model, "std", std_text));
    return 0;
}

/* Each rank reads its shard of every global batch (vit/data.h); the
 * validation split is shared out the same way and the sums added up. */
static int build_loaders(run *r) {
    TRY("loader", vit_loader_create(r->train_ds, r->train_tf, (int)r->batch, &r->train_ld));
    TRY("loader", vit_loader_create(r->val_ds, r->eval_tf, (int)r->batch, &r->val_ld));
    vit_loader *both[2] = {r->train_ld, r->val_ld};
    for (int k = 0; k < 2; k++) {
        TRY("loader", vit_loader_set_int(both[k], VIT_LD_WORKERS, r->o.workers));
        TRY("loader", vit_loader_set_int(both[k], VIT_LD_SHARD_INDEX, r->rank));
        TRY("loader", vit_loader_set_int(both[k], VIT_LD_SHARD_COUNT, r->ranks));
    }
    TRY("loader", vit_loader_set_int(r->train_ld, VIT_LD_DROP_LAST, 1));
    TRY("loader", vit_loader_set_int(r->val_ld, VIT_LD_SHUFFLE, 0));
    TRY("loader", vit_loader_set_int(r->val_ld, VIT_LD_DROP_LAST, 0));
    TRY("loader", vit_loader_start_epoch(r->train_ld, 0));
    int64_t n;
    TRY("loader", vit_loader_num_batches(r->train_ld, &n));
    if (n == 0) {
        fprintf(stderr, "%s: %s: fewer training samples than one batch of %lld\n", prog, r->o.data, r->o.batch);
        return 1;
    }
    r->steps_per_epoch = r->o.steps_per_epoch && r->o.steps_per_epoch < n ? r->o.steps_per_epoch : n;
    r->total_steps = r->steps_per_epoch * r->o.epochs;
    int64_t si[4] = {r->batch, r->channels, r->img, r->img}, sl[1] = {r->batch}, so[2] = {r->batch, r->classes};
    TRY("tensor", vit_tensor_create(r->ctx, VIT_DTYPE_F32, 4, si, &r->images));
    TRY("tensor", vit_tensor_create(r->ctx, VIT_DTYPE_I32, 1, sl, &r->labels));
    TRY("tensor", vit_tensor_create(r->ctx, VIT_DTYPE_F32, 2, so, &r->logits));
    return 0;
}

static int class_names_metadata(run *r) {
    size_t cap = 64, len = 0;
    char *json = malloc(cap);
    if (!json) return 1;
    json[len++] = '[';
    for (int c = 0; c < r->classes; c++) {
        const char *name;
        vit_status s = vit_dataset_class_name(r->train_ds, c, &name);
        if (s != VIT_OK) {
            free(json);
            return cli_fail(prog, "class names", s);
        }
        char quoted[1024];
        cli_json_string(quoted, sizeof quoted, name);
        size_t need = len + strlen(quoted) + 4;
        if (need > cap) {
            cap = need * 2;
            char *grown = realloc(json, cap);
            if (!grown) {
                free(json);
                return 1;
            }
            json = grown;
        }
        len += (size_t)sprintf(json + len, "%s%s", c ? "," : "", quoted);
    }
    json[len++] = ']';
    json[len] = '\0';
    vit_status s = vit_model_set_metadata(r->model, "class_names", json);
    free(json);
    return s == VIT_OK ? 0 : cli_fail(prog, "metadata", s);
}

/* The configuration the model flags describe, for `channels` and `classes`.
 * A configuration the library refuses is a bad command line: exit 2 with a
 * message naming the flags. */
static int make_config(const run *r, int channels, int classes, vit_config **out) {
    vit_config *cfg;
    *out = NULL;
    TRY("config", vit_config_create(&cfg));
    vit_status s = VIT_OK;
    if (r->o.preset && (s = vit_config_set_preset(cfg, r->o.preset)) != VIT_OK) {
        char names[1024];
        size_t len = 0;
        names[0] = '\0';
        for (int i = 0; vit_preset_name(i) && len < sizeof names; i++)
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", vit_preset_name(i));
        vit_config_destroy(cfg);
        return cli_usage_error(prog, "--model: '%s' is not one of %s", r->o.preset, names);
    }
    /* Explicit flags override the preset. */
    if (s == VIT_OK && (!r->o.preset || r->o.set_img)) s = vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, r->o.img);
    if (s == VIT_OK && (!r->o.preset || r->o.set_patch)) s = vit_config_set_int(cfg, VIT_CFG_PATCH_SIZE, r->o.patch);
    if (s == VIT_OK && (!r->o.preset || r->o.set_dim)) s = vit_config_set_int(cfg, VIT_CFG_DIM, r->o.dim);
    if (s == VIT_OK && (!r->o.preset || r->o.set_depth)) s = vit_config_set_int(cfg, VIT_CFG_DEPTH, r->o.depth);
    if (s == VIT_OK && (!r->o.preset || r->o.set_heads)) s = vit_config_set_int(cfg, VIT_CFG_HEADS, r->o.heads);
    if (s == VIT_OK) s = vit_config_set_int(cfg, VIT_CFG_IN_CHANNELS, channels);
    if (s == VIT_OK) s = vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, classes);
    if (s == VIT_OK && r->o.qkv_bias >= 0) s = vit_config_set_int(cfg, VIT_CFG_QKV_BIAS, r->o.qkv_bias);
    if (s == VIT_OK) s = vit_config_set_int(cfg, VIT_CFG_PATCH_NORM, r->o.patch_norm);
    if (s == VIT_OK && r->o.pool >= 0) s = vit_config_set_int(cfg, VIT_CFG_GLOBAL_POOL, r->o.pool);
    if (s == VIT_OK && r->o.mlp_ratio) s = vit_config_set_float(cfg, VIT_CFG_MLP_RATIO, r->o.mlp_ratio);
    if (s == VIT_OK && r->o.ln_eps) s = vit_config_set_float(cfg, VIT_CFG_LN_EPS, r->o.ln_eps);
    if (s == VIT_OK) s = vit_config_set_float(cfg, VIT_CFG_DROP_RATE, r->o.drop);
    if (s == VIT_OK) s = vit_config_set_float(cfg, VIT_CFG_ATTN_DROP_RATE, r->o.attn_drop);
    if (s == VIT_OK) s = vit_config_set_float(cfg, VIT_CFG_DROP_PATH_RATE, r->o.drop_path);
    if (s != VIT_OK) {
        vit_config_destroy(cfg);
        return cli_usage_error(prog, "model flags: %s", vit_last_error());
    }
    if (vit_config_validate(cfg) != VIT_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", vit_last_error());
        int64_t img, patch, dim, heads;
        double ratio;
        vit_config_get_int(cfg, VIT_CFG_IMG_SIZE, &img);
        vit_config_get_int(cfg, VIT_CFG_PATCH_SIZE, &patch);
        vit_config_get_int(cfg, VIT_CFG_DIM, &dim);
        vit_config_get_int(cfg, VIT_CFG_HEADS, &heads);
        vit_config_get_float(cfg, VIT_CFG_MLP_RATIO, &ratio);
        vit_config_destroy(cfg);
        if (img % patch)
            return cli_usage_error(prog, "--img-size %lld is not a multiple of --patch-size %lld", (long long)img,
                                   (long long)patch);
        if (dim % heads)
            return cli_usage_error(prog, "--heads %lld does not divide --dim %lld", (long long)heads, (long long)dim);
        if ((int64_t)((double)dim * ratio) < 1)
            return cli_usage_error(prog, "--mlp-ratio %g gives no hidden units at --dim %lld", ratio, (long long)dim);
        return cli_usage_error(prog, "model flags: %s", why);
    }
    *out = cfg;
    return 0;
}

/* Creates the model (a resumed one is loaded before the data is read). */
static int build_model(run *r) {
    if (!r->o.resume) {
        vit_config *cfg;
        int rc = make_config(r, r->channels, r->classes, &cfg);
        if (rc) return rc;
        vit_status s = vit_model_create(r->ctx, cfg, &r->model);
        vit_config_destroy(cfg);
        if (s != VIT_OK) return cli_fail(prog, "model", s);
        if (r->o.pretrained)
            TRY(r->o.pretrained, vit_model_load_weights(r->model, r->o.pretrained, VIT_LOAD_ALLOW_HEAD_MISMATCH));
    }
    vit_config *cfg;
    int64_t img, ch, classes;
    TRY("config", vit_model_get_config(r->model, &cfg));
    vit_config_get_int(cfg, VIT_CFG_IMG_SIZE, &img);
    vit_config_get_int(cfg, VIT_CFG_IN_CHANNELS, &ch);
    vit_config_get_int(cfg, VIT_CFG_NUM_CLASSES, &classes);
    vit_config_destroy(cfg);
    if (classes != r->classes) {
        fprintf(stderr, "%s: %s has %lld classes, the dataset %d\n", prog, r->o.resume, (long long)classes, r->classes);
        return 1;
    }
    r->img = (int)img;
    r->channels = (int)ch;
    return class_names_metadata(r);
}

static int build_optimizer(run *r) {
    TRY("optimizer", vit_adamw_create(r->model, &r->opt));
    TRY("--lr", vit_optimizer_set_float(r->opt, VIT_OPT_LR, r->o.lr));
    TRY("--weight-decay", vit_optimizer_set_float(r->opt, VIT_OPT_WEIGHT_DECAY, r->o.wd));
    TRY("--clip-grad", vit_optimizer_set_float(r->opt, VIT_OPT_CLIP_GRAD_NORM, r->o.clip));
    TRY("--decay-exempt", vit_optimizer_set_int(r->opt, VIT_OPT_DECAY_EXEMPT, r->o.decay_exempt));
    return 0;
}

/* Linear warm-up, then constant or cosine to zero, per optimizer step. */
static double learning_rate(const run *r, int64_t step) {
    int64_t warm = r->o.warmup * r->steps_per_epoch;
    if (step < warm) return r->o.lr * (double)(step + 1) / (double)warm;
    if (!strcmp(r->o.schedule, "constant") || r->total_steps <= warm) return r->o.lr;
    double t = (double)(step - warm) / (double)(r->total_steps - warm);
    return 0.5 * r->o.lr * (1.0 + cos(M_PI * t));
}

/* --------------------------------------------------------- state files */
/* The run's own state (epochs done, best accuracy, dropout stream, data-order
 * seed, the epoch in progress, history) travels as metadata of the optimizer
 * file, so it is written atomically with the optimizer state it belongs to.
 *
 * last.safetensors and last.optim.safetensors are a pair: the model file
 * records the optimizer step it belongs to. Each file is written atomically,
 * but a crash can fall between the two writes, so the previous optimizer file
 * is kept as last.optim.prev.safetensors until the new model file is in
 * place: the optimizer state is written first, then the model, and whatever
 * moment a crash hits, the model file on disk has its optimizer state in one
 * of the two files (choose_optim_file). */
static int save_model_half(run *r, int64_t optim_step) {
    char optim_step_text[32];
    snprintf(optim_step_text, sizeof optim_step_text, "%lld", (long long)optim_step);
    TRY("metadata", vit_model_set_metadata(r->model, "train.optim_step", optim_step_text));
    vit_status ms = vit_model_save(r->model, out_path(r, "last.safetensors"));
    vit_model_set_metadata(r->model, "train.optim_step", NULL);
    TRY("saving last.safetensors", ms);
    return 0;
}

static int save_state(run *r) {
    int64_t optim_step = 0;
    vit_optimizer_get_int(r->opt, VIT_OPT_STEP, &optim_step);
    char current[4200], previous[4200];
    snprintf(current, sizeof current, "%s", out_path(r, "last.optim.safetensors"));
    snprintf(previous, sizeof previous, "%s", out_path(r, "last.optim.prev.safetensors"));
    if (rename(current, previous) != 0 && errno != ENOENT) {
        fprintf(stderr, "%s: keeping %s as %s: %s\n", prog, current, previous, strerror(errno));
        return 1;
    }
    uint64_t rng;
    vit_model_get_rng_state(r->model, &rng);
    char epochs[32], best[32], rng_text[32], seed[32], step[32], partial[96], ranks[16];
    snprintf(epochs, sizeof epochs, "%lld", r->epochs_done);
    snprintf(best, sizeof best, "%.17g", r->best_acc);
    snprintf(rng_text, sizeof rng_text, "%llu", (unsigned long long)rng);
    snprintf(seed, sizeof seed, "%lld", r->o.seed);
    snprintf(step, sizeof step, "%lld", (long long)r->step);
    snprintf(ranks, sizeof ranks, "%d", r->ranks);
    snprintf(partial, sizeof partial, "%.17g %lld %lld", r->loss_sum, (long long)r->correct_sum, (long long)r->seen);
    size_t cap = 64 + (size_t)r->epochs_done * 180, len = 0;
    char *hist = malloc(cap);
    if (!hist) return 1;
    hist[0] = '\0';
    for (long long e = 0; e < r->epochs_done; e++) {
        const history *h = &r->hist[e];
        len += (size_t)snprintf(hist + len, cap - len, "%.17g %.17g %.17g %.17g %.17g %.17g %.17g;", h->train_loss,
                                h->train_acc, h->val_loss, h->val_acc, h->lr, h->seconds, h->images_per_s);
    }
    const char *keys[] = {"train.epochs_done", "train.best_acc", "train.rng", "train.history",
                          "train.seed", "train.step", "train.partial", "train.ranks"};
    const char *values[] = {epochs, best, rng_text, hist, seed, step, partial, ranks};
    vit_status s = vit_optimizer_save_ex(r->opt, r->model, current, 8, keys, values);
    free(hist);
    if (s != VIT_OK) return cli_fail(prog, "saving last.optim.safetensors", s);
    int rc = save_model_half(r, optim_step);
    if (rc) return rc;
    r->saved = true;
    unlink(previous); /* the pair on disk is whole again */
    return 0;
}

/* The run's state as read from the optimizer file's metadata; the first key
 * whose value is not valid is kept for the message. */
typedef struct resume_state {
    run *r;
    bool has_epochs, has_seed;
    long long history_entries;
    bool bad;
    char bad_key[32], bad_value[48];
    unsigned long long rng;
    long long seed, ranks;
} resume_state;

/* Strict readers: the whole text, in range; p advances past what was read. */
static bool read_ll(const char **p, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(*p, &end, 10);
    if (end == *p || errno || v < lo || v > hi) return false;
    *p = end;
    *out = v;
    return true;
}

static bool read_real(const char **p, double lo, double hi, double *out) {
    char *end;
    double v = strtod(*p, &end);
    if (end == *p || !isfinite(v) || v < lo || v > hi) return false;
    *p = end;
    *out = v;
    return true;
}

static void read_state_entry(void *user, const char *key, const char *value) {
    resume_state *st = user;
    run *r = st->r;
    const char *p = value;
    long long step = 0, correct = 0, seen = 0;
    bool ok = true;
    if (strncmp(key, "train.", 6) || st->bad) return;
    if (!strcmp(key, "train.epochs_done")) {
        ok = st->has_epochs = read_ll(&p, 0, 1000000000, &r->epochs_done);
    } else if (!strcmp(key, "train.best_acc")) {
        ok = read_real(&p, 0, 1, &r->best_acc);
    } else if (!strcmp(key, "train.rng")) {
        char *end;
        errno = 0;
        st->rng = strtoull(value, &end, 10);
        ok = isdigit((unsigned char)*value) && !errno;
        p = end;
    } else if (!strcmp(key, "train.seed")) {
        ok = st->has_seed = read_ll(&p, 0, INT64_MAX, &st->seed);
    } else if (!strcmp(key, "train.ranks")) {
        ok = read_ll(&p, 1, INT32_MAX, &st->ranks);
    } else if (!strcmp(key, "train.step")) {
        ok = read_ll(&p, 0, INT64_MAX, &step);
        r->step = step;
    } else if (!strcmp(key, "train.partial")) {
        ok = read_real(&p, 0, HUGE_VAL, &r->loss_sum) && *p++ == ' ' && read_ll(&p, 0, INT64_MAX, &correct) &&
             *p++ == ' ' && read_ll(&p, correct, INT64_MAX, &seen);
        r->correct_sum = correct;
        r->seen = seen;
    } else if (!strcmp(key, "train.history")) {
        /* "train_loss train_acc val_loss val_acc lr seconds images_per_s;" per finished epoch */
        history spare;
        for (st->history_entries = 0; ok && *p; st->history_entries++) {
            history *h = st->history_entries < r->o.epochs ? &r->hist[st->history_entries] : &spare;
            double *f[7] = {&h->train_loss, &h->train_acc, &h->val_loss, &h->val_acc, &h->lr, &h->seconds,
                            &h->images_per_s};
            /* any number strtod reads: timings are informational and may be inf */
            for (int k = 0; k < 7 && ok; k++) {
                char *end;
                *f[k] = strtod(p, &end);
                ok = end != p && *end == (k < 6 ? ' ' : ';');
                p = end + ok;
            }
        }
    } else {
        return;
    }
    if (!ok || *p) {
        st->bad = true;
        snprintf(st->bad_key, sizeof st->bad_key, "%s", key);
        cli_printable(st->bad_value, sizeof st->bad_value, value, 40);
    }
}

/* The "optim.step" of an optimizer file's metadata. */
static void read_optim_step(void *user, const char *key, const char *value) {
    if (!strcmp(key, "optim.step")) snprintf(user, 32, "%s", value);
}

/* The optimizer file beside --resume whose step is the one the model file
 * records: last.optim.safetensors, or the previous one a crash mid-save left
 * (see save_state). When neither matches, last.optim.safetensors, and
 * load_state says the two are not from the same moment. */
static bool optim_file_matches(const char *path, const char *model_step) {
    char step[32] = "";
    return model_step && vit_checkpoint_read_metadata(path, read_optim_step, step) == VIT_OK &&
           !strcmp(step, model_step);
}

static void choose_optim_file(run *r) {
    const char *slash = strrchr(r->o.resume, '/');
    int dir_len = slash ? (int)(slash - r->o.resume) : 1;
    const char *dir = slash ? r->o.resume : ".", *model_step = NULL;
    vit_model_get_metadata(r->model, "train.optim_step", &model_step);
    char previous[sizeof r->optim_file];
    snprintf(r->optim_file, sizeof r->optim_file, "%.*s/last.optim.safetensors", dir_len, dir);
    snprintf(previous, sizeof previous, "%.*s/last.optim.prev.safetensors", dir_len, dir);
    if (!optim_file_matches(r->optim_file, model_step) && optim_file_matches(previous, model_step))
        memcpy(r->optim_file, previous, sizeof previous);
}

static void ignore_entry(void *user, const char *key, const char *value) {
    (void)user, (void)key, (void)value;
}

/* The run's state from the optimizer file beside --resume, checked before the
 * data is read; the seed becomes the run's own. */
static int read_state(run *r, const char *path) {
    resume_state st = {.r = r};
    TRY(path, vit_checkpoint_read_metadata(path, read_state_entry, &st));
    if (st.bad) {
        fprintf(stderr, "%s: %s: metadata \"%s\": '%s' is not valid vit-train state\n", prog, path, st.bad_key,
                st.bad_value);
        return 1;
    }
    if (!st.has_epochs) {
        fprintf(stderr, "%s: %s holds no vit-train state (no \"train.epochs_done\")\n", prog, path);
        return 1;
    }
    if (r->epochs_done > r->o.epochs) {
        fprintf(stderr, "%s: %s has %lld epochs done, more than --epochs %lld\n", prog, path, r->epochs_done, r->o.epochs);
        return 2;
    }
    if (st.history_entries != r->epochs_done) {
        fprintf(stderr, "%s: %s: metadata \"train.history\" has %lld epochs, \"train.epochs_done\" %lld\n", prog, path,
                st.history_entries, r->epochs_done);
        return 1;
    }
    /* Data order, augmentation and dropout follow the seed: keep the run's. */
    if (st.has_seed && st.seed != r->o.seed) {
        if (r->o.set_seed) {
            fprintf(stderr, "%s: %s was trained with --seed %lld, not %lld\n", prog, path, st.seed, r->o.seed);
            return 2;
        }
        r->o.seed = st.seed;
    }
    r->resume_rng = st.rng;
    /* The batches, their order and the schedule follow the global batch, not
     * the rank count, so another count continues the same run; only the sums
     * are added in another order (docs/distributed.md). */
    if (st.ranks && st.ranks != r->ranks && !r->rank)
        fprintf(stderr, "%s: %s was saved by %lld rank%s, this run has %d: the same batches follow, equal to the "
                "uninterrupted run up to rounding rather than bit for bit\n", prog, path, st.ranks,
                st.ranks > 1 ? "s" : "", r->ranks);
    return 0;
}

/* What can be checked before the data is read, so that a bad flag or file
 * fails at once: the model flags (exit 2), or the checkpoint to resume and its
 * optimizer file; the header of --pretrained; --shift against the image side. */
static int prepare(run *r) {
    int64_t img;
    vit_config *cfg;
    if (r->o.resume) {
        TRY(r->o.resume, vit_model_load(r->ctx, r->o.resume, &r->model));
        choose_optim_file(r);
        int rc = read_state(r, r->optim_file);
        if (rc) return rc;
        TRY("config", vit_model_get_config(r->model, &cfg));
    } else {
        int rc = make_config(r, r->o.channels ? (int)r->o.channels : 3, 2, &cfg);
        if (rc) return rc;
        if (r->o.pretrained) {
            vit_status s = vit_checkpoint_read_metadata(r->o.pretrained, ignore_entry, NULL);
            if (s != VIT_OK) {
                vit_config_destroy(cfg);
                return cli_fail(prog, r->o.pretrained, s);
            }
        }
    }
    vit_config_get_int(cfg, VIT_CFG_IMG_SIZE, &img);
    vit_config_destroy(cfg);
    if (r->o.shift > img)
        return cli_usage_error(prog, "--shift %lld is more than the image side %lld", r->o.shift, (long long)img);
    return 0;
}

static int load_state(run *r) {
    const char *path = r->optim_file;
    TRY(path, vit_optimizer_load(r->opt, r->model, path));
    const char *model_step = NULL, *text;
    long long step = -1;
    int64_t optim_step = 0;
    vit_model_get_metadata(r->model, "train.optim_step", &model_step);
    vit_optimizer_get_int(r->opt, VIT_OPT_STEP, &optim_step);
    text = model_step;
    if (model_step && (!read_ll(&text, 0, INT64_MAX, &step) || *text)) {
        char shown[48];
        fprintf(stderr, "%s: %s: metadata \"train.optim_step\": '%s' is not a step count\n", prog, r->o.resume,
                cli_printable(shown, sizeof shown, model_step, 40));
        return 1;
    }
    if (model_step && step != optim_step) {
        fprintf(stderr, "%s: %s (optimizer step %lld) and %s (step %lld) are not from the same moment of a run\n", prog,
                r->o.resume, step, path, (long long)optim_step);
        return 1;
    }
    vit_model_set_metadata(r->model, "train.optim_step", NULL);
    if (r->step > r->steps_per_epoch || (r->step && r->epochs_done == r->o.epochs)) {
        fprintf(stderr, "%s: %s: metadata \"train.step\": %lld is not a step of an unfinished epoch of %lld steps\n", prog,
                path, (long long)r->step, (long long)r->steps_per_epoch);
        return 1;
    }
    vit_model_set_rng_state(r->model, (uint64_t)r->resume_rng);
    return 0;
}

static int write_metrics(run *r) {
    size_t cap = 128 + (size_t)r->epochs_done * 256; /* a row is at most ~170 bytes (losses up to FLT_MAX) */
    char *csv = malloc(cap);
    if (!csv) return 1;
    size_t len = (size_t)snprintf(csv, cap, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s\n");
    float *tl = malloc(sizeof(float) * 4 * (size_t)(r->epochs_done + 1));
    for (long long e = 0; e < r->epochs_done; e++) {
        const history *h = &r->hist[e];
        len += (size_t)snprintf(csv + len, cap - len, "%lld,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f,%.2f\n", e + 1, h->train_loss,
                                h->train_acc, h->val_loss, h->val_acc, h->lr, h->seconds, h->images_per_s);
    }
    bool ok = cli_write_text_atomic(prog, out_path(r, "metrics.csv"), csv);
    free(csv);
    int n = (int)r->epochs_done;
    if (ok && tl) {
        float *vl = tl + n, *ta = tl + 2 * n, *va = tl + 3 * n;
        for (int e = 0; e < n; e++) {
            tl[e] = (float)r->hist[e].train_loss;
            vl[e] = (float)r->hist[e].val_loss;
            ta[e] = (float)r->hist[e].train_acc;
            va[e] = (float)r->hist[e].val_acc;
        }
        vit_status s = vit_plot_curves(out_path(r, "loss_curve.png"), "Loss Curve", "loss", n, tl, "Train Loss", vl,
                                       "Val Loss", 800, 600);
        if (s == VIT_OK)
            s = vit_plot_curves(out_path(r, "acc_curve.png"), "Accuracy Curve", "accuracy", n, ta, "Train Acc", va,
                                "Val Acc", 800, 600);
        if (s != VIT_OK) ok = !cli_fail(prog, "plotting", s);
    }
    free(tl);
    return ok ? 0 : 1;
}

/* ---------------------------------------------------------------- epochs */
/* Where a failed run can be resumed from. */
static const char *last_good(run *r) {
    static char text[4200];
    if (r->saved)
        snprintf(text, sizeof text, "The last good checkpoint is %s", out_path(r, "last.safetensors"));
    else if (r->o.resume)
        snprintf(text, sizeof text, "The last good checkpoint is %s", r->o.resume);
    else
        snprintf(text, sizeof text, "No checkpoint was saved");
    return text;
}

/* Trains one epoch from step r->step (non-zero only when resuming a run that
 * was interrupted mid-epoch, with r->loss_sum etc. restored), leaving r->step
 * at the steps done: r->steps_per_epoch unless interrupted. */
static int train_epoch(run *r, long long epoch, history *h) {
    TRY("loader", vit_loader_start_epoch(r->train_ld, epoch));
    TRY("model", vit_model_set_training(r->model, 1));
    TRY("model", vit_model_set_grad(r->model, 1));
    char label[64];
    snprintf(label, sizeof label, "Epoch %lld/%lld", epoch + 1, r->o.epochs);
    /* The batches already trained on: the order depends only on (seed, epoch). */
    for (int64_t skip = 0; skip < r->step; skip++) {
        int count;
        TRY("loading a batch", vit_loader_next(r->train_ld, r->images, r->labels, &count));
    }
    double loss_sum = r->loss_sum;
    int64_t correct_sum = r->correct_sum, seen = r->seen;
    cli_progress bar;
    const bool show = r->rank == 0;
    if (show) cli_progress_start(&bar, label, r->steps_per_epoch, r->step, seen);
    h->lr = learning_rate(r, epoch * r->steps_per_epoch + (r->step ? r->step - 1 : 0));
    for (int64_t step = r->step; step < r->steps_per_epoch; step++) {
        int count;
        TRY("loading a batch", vit_loader_next(r->train_ld, r->images, r->labels, &count));
        if (count < r->batch) break;
        int64_t global = epoch * r->steps_per_epoch + step;
        h->lr = learning_rate(r, global);
        float loss;
        TRY("--lr", vit_optimizer_set_float(r->opt, VIT_OPT_LR, h->lr));
        TRY("zero_grad", vit_optimizer_zero_grad(r->opt));
        TRY("forward", vit_model_forward(r->model, r->images, r->logits));
        vit_status s = vit_model_loss(r->model, r->labels, (float)r->o.smoothing, &loss);
        if (s == VIT_ERR_NUMERIC) {
            if (show) cli_progress_end(&bar);
            fprintf(stderr, "%s: the loss is not finite at epoch %lld, step %lld (global step %lld); stopping. %s\n",
                    prog, epoch + 1, (long long)step + 1, (long long)global + 1, last_good(r));
            return 3;
        }
        TRY("loss", s);
        TRY("backward", vit_model_backward(r->model));
        s = vit_optimizer_step(r->opt);
        if (s == VIT_ERR_NUMERIC) {
            if (show) cli_progress_end(&bar);
            fprintf(stderr, "%s: non-finite gradients at epoch %lld, step %lld (global step %lld); stopping. %s\n",
                    prog, epoch + 1, (long long)step + 1, (long long)global + 1, last_good(r));
            return 3;
        }
        TRY("optimizer step", s);
        int64_t correct;
        TRY("accuracy", vit_accuracy(r->logits, r->labels, 1, &correct));
        /* The whole global batch's figures, and one decision to stop: every
         * rank leaves the loop after the same step. */
        double sums[4] = {(double)loss * count, (double)correct, count, interrupted};
        if (r->comm) TRY("adding up the step's loss over the ranks", vit_comm_allreduce_sum(r->comm, sums, 4));
        if (sums[3] > 0) interrupted = 1;
        loss_sum += sums[0];
        correct_sum += (int64_t)sums[1];
        seen += (int64_t)sums[2];
        r->step = step + 1;
        r->loss_sum = loss_sum;
        r->correct_sum = correct_sum;
        r->seen = seen;
        if (show) cli_progress_update(&bar, step + 1, seen, loss_sum / (double)seen);
        if (interrupted) break;
    }
    if (show) cli_progress_end(&bar);
    h->train_loss = seen ? loss_sum / (double)seen : 0;
    h->train_acc = seen ? (double)correct_sum / (double)seen : 0;
    return 0;
}

static int evaluate(run *r, history *h) {
    TRY("model", vit_model_set_training(r->model, 0));
    TRY("model", vit_model_set_grad(r->model, 0));
    TRY("loader", vit_loader_start_epoch(r->val_ld, 0));
    double loss_sum = 0;
    int64_t correct_sum = 0, seen = 0;
    vit_tensor *img = r->images, *lab = r->labels, *out = r->logits;
    vit_tensor *tail_img = NULL, *tail_lab = NULL, *tail_out = NULL;
    int status = 0;
    for (int64_t b = 0; !r->o.val_batches || b < r->o.val_batches; b++) {
        int count;
        vit_status s = vit_loader_next(r->val_ld, img, lab, &count);
        if (s != VIT_OK) { status = cli_fail(prog, "loading a validation batch", s); break; }
        if (count == 0) break;
        vit_tensor *bi = img, *bl = lab, *bo = out;
        if (count < r->batch) {
            /* The last partial batch runs at its own size. */
            int64_t si[4] = {count, r->channels, r->img, r->img}, sl[1] = {count}, so[2] = {count, r->classes};
            size_t per = (size_t)r->channels * (size_t)r->img * (size_t)r->img;
            if (vit_tensor_create(r->ctx, VIT_DTYPE_F32, 4, si, &tail_img) != VIT_OK ||
                vit_tensor_create(r->ctx, VIT_DTYPE_I32, 1, sl, &tail_lab) != VIT_OK ||
                vit_tensor_create(r->ctx, VIT_DTYPE_F32, 2, so, &tail_out) != VIT_OK) {
                status = cli_fail(prog, "tensor", VIT_ERR_OUT_OF_MEMORY);
                break;
            }
            /* through the host: the tensors may live on a GPU */
            if ((s = cli_tensor_prefix(tail_img, img, per * (size_t)r->o.batch * sizeof(float))) != VIT_OK ||
                (s = cli_tensor_prefix(tail_lab, lab, (size_t)r->o.batch * sizeof(int32_t))) != VIT_OK) {
                status = cli_fail(prog, "copying the last batch", s);
                break;
            }
            bi = tail_img, bl = tail_lab, bo = tail_out;
        }
        float loss;
        int64_t correct;
        s = vit_model_forward(r->model, bi, bo);
        if (s == VIT_OK) s = vit_model_loss(r->model, bl, 0.0f, &loss);
        if (s == VIT_OK) s = vit_accuracy(bo, bl, 1, &correct);
        if (s != VIT_OK) { status = cli_fail(prog, "validation", s); break; }
        loss_sum += (double)loss * count;
        correct_sum += correct;
        seen += count;
        if (count < r->batch) break;
    }
    /* Every rank evaluated its shard (the counts may differ by a batch). */
    double sums[4] = {loss_sum, (double)correct_sum, (double)seen, status != 0};
    if (r->comm) {
        vit_status s = vit_comm_allreduce_sum(r->comm, sums, 4);
        if (s != VIT_OK) status = cli_fail(prog, "adding up the validation over the ranks", s);
        else if (sums[3] > 0) status = status ? status : 1;
        loss_sum = sums[0];
        correct_sum = (int64_t)sums[1];
        seen = (int64_t)sums[2];
    }
    vit_tensor_destroy(tail_img);
    vit_tensor_destroy(tail_lab);
    vit_tensor_destroy(tail_out);
    h->val_loss = seen ? loss_sum / (double)seen : 0;
    h->val_acc = seen ? (double)correct_sum / (double)seen : 0;
    return status;
}

static void print_epoch(const run *r, long long epoch, const history *h) {
    char line[256];
    snprintf(line, sizeof line, "Epoch %lld: Train Loss=%.4f, Train Acc=%.4f, Val Loss=%.4f, Val Acc=%.4f", epoch + 1,
             h->train_loss, h->train_acc, h->val_loss, h->val_acc);
    if (r->o.json) {
        fprintf(stderr, "%s\n", line);
        printf("{\"epoch\": %lld, \"train_loss\": %.6f, \"train_acc\": %.6f, \"val_loss\": %.6f, \"val_acc\": %.6f, "
               "\"lr\": %.6g, \"seconds\": %.3f, \"images_per_s\": %.2f}\n", epoch + 1, h->train_loss, h->train_acc,
               h->val_loss, h->val_acc, h->lr, h->seconds, h->images_per_s);
    } else {
        printf("%s\n", line);
    }
    fflush(stdout);
}

/* The epoch's line, checkpoints, metrics and curves: rank 0's work; the
 * other ranks learn whether it succeeded, so that all go on or all stop. */
static int report_epoch(run *r, long long epoch, const history *h) {
    int rc = 0;
    if (h->val_acc > r->best_acc || epoch == 0) {
        bool better = h->val_acc > r->best_acc;
        if (better) r->best_acc = h->val_acc;
        if (!r->rank) {
            vit_status s = vit_model_save(r->model, out_path(r, "best.safetensors"));
            if (s != VIT_OK) rc = cli_fail(prog, "saving best.safetensors", s);
        }
    }
    if (!r->rank) {
        print_epoch(r, epoch, h);
        if (!rc && (save_state(r) || write_metrics(r))) rc = 1;
    }
    if (r->comm) {
        double failed = rc != 0;
        vit_status s = vit_comm_allreduce_sum(r->comm, &failed, 1);
        if (s != VIT_OK) return cli_fail(prog, "waiting for rank 0's checkpoint", s);
        if (failed > 0 && !rc) {
            fprintf(stderr, "%s: rank 0 could not write its outputs; stopping\n", prog);
            rc = 1;
        }
    }
    return rc;
}

static int train(run *r) {
    for (long long epoch = r->epochs_done; epoch < r->o.epochs; epoch++) {
        history *h = &r->hist[epoch];
        double t0 = cli_now();
        int64_t first_step = r->step;
        int rc = train_epoch(r, epoch, h);
        if (rc) return rc;
        if (interrupted) {
            if (r->rank) return 130;
            fprintf(stderr, "%s: interrupted in epoch %lld after step %lld of %lld; saving %s\n", prog, epoch + 1,
                    (long long)r->step, (long long)r->steps_per_epoch, out_path(r, "last.safetensors"));
            return save_state(r) ? 1 : 130;
        }
        double train_s = cli_now() - t0;
        if ((rc = evaluate(r, h))) return rc;
        h->seconds = cli_now() - t0;
        h->images_per_s = (double)((r->steps_per_epoch - first_step) * r->o.batch) / train_s;
        r->epochs_done = epoch + 1;
        r->step = r->correct_sum = r->seen = 0;
        r->loss_sum = 0;
        if ((rc = report_epoch(r, epoch, h))) return rc;
        if (interrupted && epoch + 1 < r->o.epochs) {
            if (!r->rank)
                fprintf(stderr, "%s: interrupted after epoch %lld; %s is saved\n", prog, epoch + 1,
                        out_path(r, "last.safetensors"));
            return 130;
        }
    }
    if (!r->o.json && !r->rank) printf("Training finished, best validation accuracy: %.4f\n", r->best_acc);
    return 0;
}

/* Under an MPI launcher (mpirun -np N): a communicator over all ranks, and
 * each rank's share of the global batch. Without one MPI is not touched. */
static int open_comm(run *r) {
    r->ranks = 1;
    r->batch = r->o.batch;
    if (vit_comm_launch_size() == 0) return 0;
    TRY("starting MPI", vit_comm_create(NULL, &r->comm));
    TRY("MPI", vit_comm_rank(r->comm, &r->rank));
    TRY("MPI", vit_comm_size(r->comm, &r->ranks));
    TRY("--comm-timeout", vit_comm_set_int(r->comm, VIT_COMM_TIMEOUT_MS, r->o.comm_timeout * 1000));
    if (r->rank) {
        snprintf(rank_prog, sizeof rank_prog, "vit-train [rank %d]", r->rank);
        prog = rank_prog;
    }
    if (r->o.batch % r->ranks) {
        if (!r->rank)
            fprintf(stderr, "%s: --batch-size %lld (the global batch) is not a multiple of the %d ranks\n", prog,
                    r->o.batch, r->ranks);
        return 2;
    }
    r->batch = r->o.batch / r->ranks;
    return 0;
}

int main(int argc, char **argv) {
    run r;
    memset(&r, 0, sizeof r);
    int rc = parse(argc, argv, &r.o);
    if (rc) return rc;
    rc = 1;
    if ((rc = open_comm(&r))) goto done;
    rc = 1;
    r.hist = calloc((size_t)r.o.epochs, sizeof *r.hist);
    vit_status s = r.hist ? vit_context_create(&r.ctx) : VIT_ERR_OUT_OF_MEMORY;
    if (s != VIT_OK) { rc = cli_fail(prog, "context", s); goto done; }
    if ((rc = prepare(&r))) goto done;
    rc = 1;
    struct stat st;
    if (!r.rank && ((mkdir(r.o.out, 0755) && errno != EEXIST) || stat(r.o.out, &st) || !S_ISDIR(st.st_mode) ||
                    access(r.o.out, W_OK))) {
        fprintf(stderr, "%s: --out %s: cannot create or write the folder\n", prog, r.o.out);
        goto done;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C stops at once (every write is atomic) */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    s = vit_context_set_int(r.ctx, VIT_CTX_SEED, r.o.seed);
    if (s != VIT_OK) { rc = cli_fail(prog, "--seed", s); goto done; }
    if (r.o.threads && (s = vit_context_set_int(r.ctx, VIT_CTX_THREADS, r.o.threads)) != VIT_OK) {
        rc = cli_fail(prog, "--threads", s);
        goto done;
    }
    if ((rc = cli_device(prog, r.ctx, r.o.device, r.o.precision))) goto done;
    if ((rc = open_data(&r))) goto done;
    if (!r.o.channels) {
        int64_t w;
        vit_dataset_get_int(r.train_ds, VIT_DS_FORMAT, &w);
        r.channels = w == VIT_DATA_IDX ? 1 : 3;
    } else {
        r.channels = (int)r.o.channels;
    }
    r.img = (int)r.o.img;
    if ((rc = build_model(&r)) || (rc = build_transforms(&r)) || (rc = build_loaders(&r)) ||
        (rc = build_optimizer(&r)))
        goto done;
    if (r.o.resume && (rc = load_state(&r))) goto done;
    /* Rank 0's weights to every rank; from here backward averages the gradients. */
    if (r.comm && (s = vit_model_set_comm(r.model, r.comm)) != VIT_OK) { rc = cli_fail(prog, "sharing the model", s); goto done; }
    int64_t nparams;
    vit_model_num_params(r.model, &nparams);
    char split[64] = "";
    if (r.ranks > 1) snprintf(split, sizeof split, " (%d ranks x %lld)", r.ranks, (long long)r.batch);
    if (!r.rank)
        fprintf(stderr, "%s: %d classes, %lld parameters, %lld steps per epoch of %lld images%s\n", prog, r.classes,
                (long long)nparams, (long long)r.steps_per_epoch, r.o.batch, split);
    rc = train(&r);
done:
    vit_tensor_destroy(r.images);
    vit_tensor_destroy(r.labels);
    vit_tensor_destroy(r.logits);
    vit_optimizer_destroy(r.opt);
    vit_loader_destroy(r.train_ld);
    vit_loader_destroy(r.val_ld);
    vit_transform_destroy(r.train_tf);
    vit_transform_destroy(r.eval_tf);
    vit_model_destroy(r.model);
    vit_dataset_destroy(r.train_ds);
    vit_dataset_destroy(r.val_ds);
    vit_context_destroy(r.ctx);
    free(r.hist);
    /* A rank that stops alone would leave the others waiting (until
     * --comm-timeout): end them all. Ctrl-C (130) is decided together. */
    if (rc && rc != 130 && rc != 2 && r.ranks > 1) vit_comm_abort(r.comm, rc);
    vit_comm_destroy(r.comm);
    return rc;
}
