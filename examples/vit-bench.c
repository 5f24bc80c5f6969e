/* vit-bench: time named ViT workloads on synthetic data; see docs/performance.md.
 * Under mpirun a training workload runs data-parallel: the workload's batch
 * is the global batch, split over the ranks, and rank 0 reports the step
 * time with the cost of communication (docs/distributed.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <vit/vit.h>

#include "cli.h"
#include "workloads.h"

static const char *prog = "vit-bench";

#ifdef VIT_BENCH_SPLIT
/* vit-bench-split (bench/meson.build): the same program on libvit's internal
 * archive, timing the CPU backend's matrix products and attention calls, so
 * a step's time splits into the linear layers' products, attention (with the
 * products it makes itself) and everything else. Each timed call ends when
 * its result is written (the CPU backend is synchronous). */
#include "core/backend.h"
#include "core/core.h"

static struct {
    vit_backend_ops ops;         /* the backend's table with the timed entries */
    const vit_backend_ops *real; /* the table they call */
    double product_s, product_flops, attention_s, total_s;
    bool in_attention;           /* attention's own products count as attention */
} split;

static vit_status timed_gemm(vit_backend *be, const vit_gemm *g) {
    if (split.in_attention) return split.real->gemm(be, g);
    double t0 = cli_now();
    vit_status st = split.real->gemm(be, g);
    split.product_s += cli_now() - t0;
    split.product_flops += 2.0 * g->M * g->N * g->K;
    return st;
}

static vit_status timed_gemm_batched(vit_backend *be, const vit_gemm *g, int batch, ptrdiff_t sa, ptrdiff_t sb,
                                     ptrdiff_t sc) {
    if (split.in_attention) return split.real->gemm_batched(be, g, batch, sa, sb, sc);
    double t0 = cli_now();
    vit_status st = split.real->gemm_batched(be, g, batch, sa, sb, sc);
    split.product_s += cli_now() - t0;
    split.product_flops += 2.0 * g->M * g->N * g->K * batch;
    return st;
}

static vit_status timed_attention_forward(vit_backend *be, float *out, void *saved, const float *qkv, int B, int T,
                                          int H, int hd, float scale, float drop_p, uint64_t drop_key, void *scratch) {
    double t0 = cli_now();
    split.in_attention = true;
    vit_status st = split.real->attention_forward(be, out, saved, qkv, B, T, H, hd, scale, drop_p, drop_key, scratch);
    split.in_attention = false;
    split.attention_s += cli_now() - t0;
    return st;
}

static vit_status timed_attention_backward(vit_backend *be, float *dqkv, bool accumulate, const float *dout,
                                           const float *qkv, const float *out, const void *saved, int B, int T,
                                           int H, int hd, float scale, float drop_p, uint64_t drop_key,
                                           void *scratch) {
    double t0 = cli_now();
    split.in_attention = true;
    vit_status st = split.real->attention_backward(be, dqkv, accumulate, dout, qkv, out, saved, B, T, H, hd, scale,
                                                   drop_p, drop_key, scratch);
    split.in_attention = false;
    split.attention_s += cli_now() - t0;
    return st;
}

static void split_install(vit_context *ctx) {
    vit_backend *be = ctx->backend;
    if (!be || be->device != VIT_DEVICE_CPU) return;
    split.real = be->ops;
    split.ops = *be->ops;
    split.ops.gemm = timed_gemm;
    split.ops.gemm_batched = timed_gemm_batched;
    split.ops.attention_forward = timed_attention_forward;
    split.ops.attention_backward = timed_attention_backward;
    be->ops = &split.ops;
}

static void split_reset(void) { split.product_s = split.product_flops = split.attention_s = split.total_s = 0.0; }
#endif

/* This process's processor time (user + system), seconds. */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define TRY(what, call) do { vit_status s_ = (call); if (s_ != VIT_OK) return cli_fail(prog, what, s_); } while (0)

/* The distributed mode's settings and what it measured. */
typedef struct dist {
    vit_comm *comm;
    int rank, ranks, overlap;
    long long bucket_kib;
    double wait_s, span_s, alone_s; /* per timed step: exposed wait, first start to last end; the reduction alone */
} dist;

/* The bf16 dense matrix rate of an H200 as measured (docs/cuda.md): the
 * denominator of the model FLOP utilisation printed for GPU runs. */
#define GPU_PEAK_FLOPS 790e12

/* --device and --precision (NULL: the CPU in float32). */
typedef struct devsel {
    const char *device, *precision;
} devsel;

/* The gradient's bytes reduced with no computation around them (as doubles:
 * half as many), the median of 5: what the communication costs by itself. */
static double reduction_alone(vit_comm *comm, int64_t floats) {
    int64_t n = floats / 2 > 0 ? floats / 2 : 1;
    double *buf = calloc((size_t)n, sizeof *buf), t[5];
    if (!buf) return -1;
    for (int k = 0; k < 5; k++) {
        vit_comm_barrier(comm);
        double t0 = cli_now();
        for (int64_t off = 0; off < n; off += 1 << 28) {
            int64_t part = n - off < (1 << 28) ? n - off : (1 << 28);
            vit_comm_allreduce_sum(comm, buf + off, (int)part);
        }
        t[k] = cli_now() - t0;
    }
    free(buf);
    qsort(t, 5, sizeof *t, cmp_double);
    return t[2];
}

static int run(const vit_bench_workload *w, int threads, int steps, int warmup, int json, dist *d,
               const devsel *dev_sel) {
    vit_context *ctx;
    vit_config *cfg;
    vit_model *model;
    vit_optimizer *opt = NULL;
    vit_tensor *images, *labels, *logits;
    TRY("context", vit_context_create(&ctx));
    TRY("--threads", vit_context_set_int(ctx, VIT_CTX_THREADS, threads));
    int rc = cli_device(prog, ctx, dev_sel->device, dev_sel->precision);
    if (rc) return rc;
#ifdef VIT_BENCH_SPLIT
    split_install(ctx);
#endif
    int64_t device = VIT_DEVICE_CPU, precision = VIT_PRECISION_FP32;
    vit_context_get_int(ctx, VIT_CTX_DEVICE, &device);
    vit_context_get_int(ctx, VIT_CTX_PRECISION, &precision);
    static const char *const precisions[] = {"default", "fp32", "tf32", "bf16"};
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
    int batch = w->batch / d->ranks; /* the workload's batch is the global one */
    int64_t si[4] = {batch, w->channels, w->img, w->img}, sl[1] = {batch}, so[2] = {batch, w->classes};
    TRY("tensor", vit_tensor_create(ctx, VIT_DTYPE_F32, 4, si, &images));
    TRY("tensor", vit_tensor_create(ctx, VIT_DTYPE_I32, 1, sl, &labels));
    TRY("tensor", vit_tensor_create(ctx, VIT_DTYPE_F32, 2, so, &logits));
    /* inputs made on the host and written in: the tensors may be on a GPU */
    const size_t nx = (size_t)(si[0] * si[1] * si[2] * si[3]), nout = (size_t)(so[0] * so[1]);
    float *x = malloc(nx * sizeof *x), *out = malloc(nout * sizeof *out);
    int32_t *y = malloc(sizeof *y * (size_t)batch);
    if (!x || !y || !out) return cli_fail(prog, "host buffers", VIT_ERR_OUT_OF_MEMORY);
    srand(1);
    for (size_t i = 0; i < nx; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int b = 0; b < batch; b++) y[b] = (b + d->rank * batch) % w->classes;
    TRY("images", vit_tensor_write(images, x, nx * sizeof *x));
    TRY("labels", vit_tensor_write(labels, y, sizeof *y * (size_t)batch));
    free(x);
    free(y);
    double wait0 = 0, span0 = 0;
    if (d->comm) {
        TRY("--bucket-kib", vit_comm_set_int(d->comm, VIT_COMM_BUCKET_BYTES, d->bucket_kib * 1024));
        TRY("--no-overlap", vit_comm_set_int(d->comm, VIT_COMM_OVERLAP, d->overlap));
        TRY("sharing the model", vit_model_set_comm(model, d->comm));
    }
    if (w->train) {
        TRY("optimizer", vit_adamw_create(model, &opt));
        vit_model_set_training(model, 1);
    } else {
        vit_model_set_grad(model, 0);
    }
    double *times = malloc(sizeof(double) * (size_t)steps);
    double cpu0 = cpu_seconds();
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) cpu0 = cpu_seconds();
#ifdef VIT_BENCH_SPLIT
        if (s == warmup) split_reset();
#endif
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
            /* reading the logits waits for the device, as reading the loss does */
            TRY("logits", vit_tensor_read(logits, out, nout * sizeof *out));
        }
        if (s >= warmup) times[s - warmup] = cli_now() - t0;
        if (d->comm && s + 1 == warmup) {
            vit_comm_get_float(d->comm, VIT_COMM_STAT_WAIT_SECONDS, &wait0);
            vit_comm_get_float(d->comm, VIT_COMM_STAT_REDUCE_SECONDS, &span0);
        }
    }
    if (d->comm) {
        double wait1, span1;
        int64_t floats;
        vit_comm_get_float(d->comm, VIT_COMM_STAT_WAIT_SECONDS, &wait1);
        vit_comm_get_float(d->comm, VIT_COMM_STAT_REDUCE_SECONDS, &span1);
        vit_model_num_params(model, &floats);
        d->wait_s = (wait1 - wait0) / steps;
        d->span_s = (span1 - span0) / steps;
        d->alone_s = reduction_alone(d->comm, floats);
    }
    double cpu_step = (cpu_seconds() - cpu0) / steps;
#ifdef VIT_BENCH_SPLIT
    for (int k = 0; k < steps; k++) split.total_s += times[k]; /* the shares are of all timed steps */
#endif
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double median = steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
    free(times);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = (double)ru.ru_maxrss / 1024.0;
    double flops = vit_bench_forward_flops(w) * w->batch * (w->train ? 3 : 1);
    double gflops = flops / median * 1e-9, ips = w->batch / median;
    /* the model's FLOPs above, the same for every implementation; these are the ones libvit runs */
    double executed_gflops = (flops - vit_bench_skipped_forward_flops(w) * w->batch) / median * 1e-9;
    const double mfu = device == VIT_DEVICE_CUDA ? flops / median / GPU_PEAK_FLOPS : 0.0;
    const char *dev = device == VIT_DEVICE_CUDA ? "cuda" : "cpu", *prec = precisions[precision & 3];
    if (d->rank) {
        /* rank 0 reports */
    } else if (json && d->comm) {
        printf("{\"workload\": \"%s\", \"ranks\": %d, \"threads\": %d, \"batch\": %d, \"rank_batch\": %d, "
               "\"median_step_s\": %.6f, \"img_per_s\": %.3f, \"gflops\": %.2f, \"peak_rss_mib\": %.1f, "
               "\"comm_wait_ms\": %.3f, \"comm_span_ms\": %.3f, \"allreduce_alone_ms\": %.3f, \"overlap\": %d, "
               "\"cpu_ms_per_step\": %.3f}\n",
               w->name, d->ranks, threads, w->batch, batch, median, ips, gflops, rss, d->wait_s * 1e3, d->span_s * 1e3,
               d->alone_s * 1e3, d->overlap, cpu_step * 1e3);
#ifdef VIT_BENCH_SPLIT
    } else if (split.real) {
        printf("{\"workload\": \"%s\", \"threads\": %d, \"batch\": %d, \"median_step_s\": %.6f, "
               "\"executed_gflops\": %.2f, \"product_share\": %.4f, \"product_gflops\": %.2f, "
               "\"attention_share\": %.4f, \"other_share\": %.4f}\n",
               w->name, threads, w->batch, median, executed_gflops, split.product_s / split.total_s,
               split.product_flops / split.product_s * 1e-9, split.attention_s / split.total_s,
               1.0 - (split.product_s + split.attention_s) / split.total_s);
#endif
    } else if (json) {
        printf("{\"workload\": \"%s\", \"device\": \"%s\", \"precision\": \"%s\", \"threads\": %d, \"batch\": %d, "
               "\"median_step_s\": %.6f, \"img_per_s\": %.3f, \"gflops\": %.2f, \"executed_gflops\": %.2f, "
               "\"mfu\": %.4f, \"peak_rss_mib\": %.1f, \"cpu_ms_per_step\": %.3f}\n",
               w->name, dev, prec, threads, w->batch, median, ips, gflops, executed_gflops, mfu, rss, cpu_step * 1e3);
    } else if (d->comm) {
        printf("%-16s ranks %d x threads %d batch %4d (%d per rank)  %9.2f ms/step  %9.2f img/s  %7.1f GFLOP/s  "
               "peak RSS %7.1f MiB per rank\n  communication per step: %.2f ms waited after backward, %.2f ms from the "
               "first bucket's start to the last's end (overlap %s); the gradient's reduction alone: %.2f ms\n",
               w->name, d->ranks, threads, w->batch, batch, median * 1e3, ips, gflops, rss, d->wait_s * 1e3,
               d->span_s * 1e3, d->overlap ? "on" : "off", d->alone_s * 1e3);
    } else {
        printf("%-16s %s %s threads %d batch %4d  %9.2f ms/step  %9.2f img/s  %7.1f GFLOP/s  MFU %5.1f%%  peak RSS "
               "%7.1f MiB\n",
               w->name, dev, prec, threads, w->batch, median * 1e3, ips, gflops, mfu * 100.0, rss);
    }
    free(out);
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
    long long threads = 2, steps = 5, warmup = 2, batch = 0;
    int json = 0;
    devsel ds = {NULL, NULL};
    dist d = {.ranks = 1, .overlap = 1, .bucket_kib = 1024};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: vit-bench --workload NAME [--threads N] [--steps S] [--warmup W] [--batch N] [--json]\n"
                   "                 [" CLI_DEVICE_HELP "]\n"
                   "       mpirun -np N vit-bench --workload NAME [...] [--bucket-kib K] [--no-overlap]\n"
                   "Under mpirun a training workload trains data-parallel: its batch is split over the\n"
                   "ranks, and the communication per step is reported (gradient buckets of K KiB, 1024;\n"
                   "--no-overlap reduces after backward instead of during it).\n"
                   "GPU runs print the model FLOP utilisation against %.0f TFLOP/s (an H200's bf16 rate).\n"
                   "workloads (peak RSS is the process's, so run one workload per process):\n",
                   GPU_PEAK_FLOPS * 1e-12);
            for (size_t k = 0; k < VIT_BENCH_WORKLOADS; k++) printf("  %s\n", vit_bench_workloads[k].name);
            return 0;
        }
        if (cli_is(a, "--workload")) { if (!(name = cli_value(prog, argc, argv, &i, "--workload"))) return 2; continue; }
        if (cli_is(a, "--threads")) { if (!(v = cli_value(prog, argc, argv, &i, a)) || !cli_int(prog, "--threads", v, 1, 4096, &threads)) return 2; continue; }
        if (cli_is(a, "--steps")) { if (!(v = cli_value(prog, argc, argv, &i, a)) || !cli_int(prog, "--steps", v, 1, 100000, &steps)) return 2; continue; }
        if (cli_is(a, "--warmup")) { if (!(v = cli_value(prog, argc, argv, &i, a)) || !cli_int(prog, "--warmup", v, 0, 100000, &warmup)) return 2; continue; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--no-overlap")) { d.overlap = 0; continue; }
        if (cli_is(a, "--batch")) { if (!(v = cli_value(prog, argc, argv, &i, a)) || !cli_int(prog, "--batch", v, 1, 65536, &batch)) return 2; continue; }
        if (cli_is(a, "--device")) { if (!(ds.device = cli_value(prog, argc, argv, &i, a))) return 2; continue; }
        if (cli_is(a, "--precision")) { if (!(ds.precision = cli_value(prog, argc, argv, &i, a))) return 2; continue; }
        if (cli_is(a, "--bucket-kib")) { if (!(v = cli_value(prog, argc, argv, &i, a)) || !cli_int(prog, "--bucket-kib", v, 4, 1 << 22, &d.bucket_kib)) return 2; continue; }
        return cli_usage_error(prog, "unknown argument '%s'", a);
    }
    if (!name) return cli_usage_error(prog, "--workload is required");
    vit_bench_workload chosen, *w = NULL;
    for (size_t k = 0; k < VIT_BENCH_WORKLOADS; k++)
        if (!strcmp(vit_bench_workloads[k].name, name)) chosen = vit_bench_workloads[k], w = &chosen;
    if (!w) return cli_usage_error(prog, "--workload: unknown workload '%s'", name);
    if (batch) chosen.batch = (int)batch;
    if (vit_comm_launch_size() > 0) {
        if (!w->train) return cli_usage_error(prog, "--workload %s: under mpirun, only training workloads run", name);
        TRY("starting MPI", vit_comm_create(NULL, &d.comm));
        vit_comm_rank(d.comm, &d.rank);
        vit_comm_size(d.comm, &d.ranks);
        if (w->batch % d.ranks) {
            vit_comm_destroy(d.comm);
            return cli_usage_error(prog, "--workload %s: its batch %d is not a multiple of %d ranks", name, w->batch,
                                   d.ranks);
        }
    }
    int rc = run(w, (int)threads, (int)steps, (int)warmup, json, &d, &ds);
    if (rc && d.ranks > 1) vit_comm_abort(d.comm, rc);
    vit_comm_destroy(d.comm);
    return rc;
}
