/* vit-bench: time named ViT workloads on synthetic data; see docs/performance.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <vit/vit.h>

#include "cli.h"
#include "workloads.h"

static const char *prog = "vit-bench";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define TRY(what, call) do { vit_status s_ = (call); if (s_ != VIT_OK) return cli_fail(prog, what, s_); } while (0)

static int run(const vit_bench_workload *w, int threads, int steps, int warmup, int json) {
    vit_context *ctx;
    vit_config *cfg;
    vit_model *model;
    vit_optimizer *opt = NULL;
    vit_tensor *images, *labels, *logits;
    TRY("context", vit_context_create(&ctx));
    TRY("--threads", vit_context_set_int(ctx, VIT_CTX_THREADS, threads));
    TRY("config", vit_config_create(&cfg));
    vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, w->img);
    vit_config_set_int(cfg, VIT_CFG_PATCH_SIZE, w->patch);
    vit_config_set_int(cfg, VIT_CFG_IN_CHANNELS, w->channels);
    vit_config_set_int(cfg, VIT_CFG_DIM, w->dim);
    vit_config_set_int(cfg, VIT_CFG_DEPTH, w->depth);
    vit_config_set_int(cfg, VIT_CFG_HEADS, w->heads);
    vit_config_set_float(cfg, VIT_CFG_MLP_RATIO, w->mlp);
    vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, w->classes);
    TRY("model", vit_model_create(ctx, cfg, &model));
    vit_config_destroy(cfg);
    int64_t si[4] = {w->batch, w->channels, w->img, w->img}, sl[1] = {w->batch}, so[2] = {w->batch, w->classes};
    TRY("tensor", vit_tensor_create(ctx, VIT_DTYPE_F32, 4, si, &images));
    TRY("tensor", vit_tensor_create(ctx, VIT_DTYPE_I32, 1, sl, &labels));
    TRY("tensor", vit_tensor_create(ctx, VIT_DTYPE_F32, 2, so, &logits));
    float *x;
    int32_t *y;
    vit_tensor_data(images, (void **)&x);
    vit_tensor_data(labels, (void **)&y);
    srand(1);
    for (int64_t i = 0; i < si[0] * si[1] * si[2] * si[3]; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int b = 0; b < w->batch; b++) y[b] = b % w->classes;
    if (w->train) {
        TRY("optimizer", vit_adamw_create(model, &opt));
        vit_model_set_training(model, 1);
    } else {
        vit_model_set_grad(model, 0);
    }
    double *times = malloc(sizeof(double) * (size_t)steps);
    for (int s = 0; s < warmup + steps; s++) {
        double t0 = cli_now();
        if (w->train) {
            float loss;
            TRY("zero_grad", vit_optimizer_zero_grad(opt));
            TRY("forward", vit_model_forward(model, images, logits));
            TRY("loss", vit_model_loss(model, labels, 0.0f, &loss));
            TRY("backward", vit_model_backward(model));
            TRY("step", vit_optimizer_step(opt));
        } else {
            TRY("forward", vit_model_forward(model, images, logits));
        }
        if (s >= warmup) times[s - warmup] = cli_now() - t0;
    }
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double median = steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
    free(times);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = (double)ru.ru_maxrss / 1024.0;
    double flops = vit_bench_forward_flops(w) * w->batch * (w->train ? 3 : 1);
    double gflops = flops / median * 1e-9, ips = w->batch / median;
    if (json)
        printf("{\"workload\": \"%s\", \"threads\": %d, \"batch\": %d, \"median_step_s\": %.6f, \"img_per_s\": %.3f, "
               "\"gflops\": %.2f, \"peak_rss_mib\": %.1f}\n", w->name, threads, w->batch, median, ips, gflops, rss);
    else
        printf("%-16s threads %d batch %4d  %9.2f ms/step  %9.2f img/s  %7.1f GFLOP/s  peak RSS %7.1f MiB\n", w->name,
               threads, w->batch, median * 1e3, ips, gflops, rss);
    vit_optimizer_destroy(opt);
    vit_tensor_destroy(images);
    vit_tensor_destroy(labels);
    vit_tensor_destroy(logits);
    vit_model_destroy(model);
    vit_context_destroy(ctx);
    return 0;
}

int main(int argc, char **argv) {
    const char *name = NULL;
    long long threads = 2, steps = 5, warmup = 2;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: vit-bench --workload NAME [--threads N] [--steps S] [--warmup W] [--json]\n"
                   "workloads (peak RSS is the process's, so run one workload per process):\n");
            for (size_t k = 0; k < VIT_BENCH_WORKLOADS; k++) printf("  %s\n", vit_bench_workloads[k].name);
            return 0;
        }
        if (cli_is(a, "--workload")) { if (!(name = cli_value(prog, argc, argv, &i, "--workload"))) return 2; continue; }
        if (cli_is(a, "--threads")) { if (!(v = cli_value(prog, argc, argv, &i, a)) || !cli_int(prog, "--threads", v, 1, 4096, &threads)) return 2; continue; }
        if (cli_is(a, "--steps")) { if (!(v = cli_value(prog, argc, argv, &i, a)) || !cli_int(prog, "--steps", v, 1, 100000, &steps)) return 2; continue; }
        if (cli_is(a, "--warmup")) { if (!(v = cli_value(prog, argc, argv, &i, a)) || !cli_int(prog, "--warmup", v, 0, 100000, &warmup)) return 2; continue; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        return cli_usage_error(prog, "unknown argument '%s'", a);
    }
    if (!name) return cli_usage_error(prog, "--workload is required");
    for (size_t k = 0; k < VIT_BENCH_WORKLOADS; k++)
        if (!strcmp(vit_bench_workloads[k].name, name)) return run(&vit_bench_workloads[k], (int)threads, (int)steps, (int)warmup, json);
    return cli_usage_error(prog, "--workload: unknown workload '%s'", name);
}
