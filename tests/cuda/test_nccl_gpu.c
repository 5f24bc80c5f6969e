/*
 * Data-parallel training on GPUs through NCCL, with the public API only:
 *   test_nccl_gpu                       one rank, one GPU
 *   mpirun -np N test_nccl_gpu          N ranks, rank r on GPU r (N GPUs)
 * Each rank starts from other random weights (seed 7 + rank), attaches the
 * communicator with VIT_COMM_NCCL_MIN_RANKS 1 (so that one rank too runs
 * NCCL: the broadcast and every bucket's ncclAllReduce) and trains STEPS
 * AdamW steps of a global batch of GLOBAL synthetic images, each rank on its
 * slice. Rank 0 trains the same steps without a communicator on the whole
 * batch from its own weights (the weights every rank receives). Checks:
 *   - VIT_COMM_NCCL is 1 once attached, and the statistics count the bytes;
 *   - after every step every rank holds the same parameter bits as rank 0;
 *   - the global batch's loss equals the one-process loss within 1e-5
 *     (relative); with one rank the parameters equal the one-process
 *     parameters bit for bit (the mean of one is the value itself).
 * Without a usable GPU (or with fewer GPUs than ranks) it reports itself
 * skipped (exit 77) with the reason.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vit/vit.h"
#include "../tiny_vit.h"

enum { IMG = 16, CLASSES = 10, GLOBAL = 16, STEPS = 5 };

static int rank_ = 0;
#define OK(call)                                                                                              \
    do {                                                                                                      \
        vit_status s_ = (call);                                                                               \
        if (s_ != VIT_OK) {                                                                                   \
            fprintf(stderr, "FAIL [rank %d] %s:%d: %s: %s\n", rank_, __FILE__, __LINE__, #call, vit_last_error()); \
            exit(EXIT_FAILURE);                                                                               \
        }                                                                                                     \
    } while (0)

/* Every parameter, concatenated, into p (host memory). */
static void read_params(const vit_model *m, float *p) {
    int count;
    OK(vit_model_param_count(m, &count));
    for (int i = 0; i < count; i++) {
        const char *name;
        int nd;
        int64_t shape[VIT_MAX_DIMS], n = 1;
        OK(vit_model_param_info(m, i, &name, &nd, shape));
        for (int d = 0; d < nd; d++) n *= shape[d];
        OK(vit_model_param_read(m, name, p, (size_t)n * sizeof(float)));
        p += n;
    }
}

typedef struct trainer {
    vit_model *m;
    vit_optimizer *opt;
    vit_tensor *x, *y, *z;
    int batch;
} trainer;

static void trainer_init(trainer *t, vit_context *ctx, int batch) {
    OK(tiny_vit(ctx, IMG, CLASSES, 64, 2, 4, &t->m));
    t->batch = batch;
    OK(vit_model_set_training(t->m, 1));
    OK(vit_adamw_create(t->m, &t->opt));
    OK(vit_optimizer_set_float(t->opt, VIT_OPT_LR, 1e-3));
    const int64_t si[4] = {batch, 1, IMG, IMG}, sl[1] = {batch}, so[2] = {batch, CLASSES};
    OK(vit_tensor_create(ctx, VIT_DTYPE_F32, 4, si, &t->x));
    OK(vit_tensor_create(ctx, VIT_DTYPE_I32, 1, sl, &t->y));
    OK(vit_tensor_create(ctx, VIT_DTYPE_F32, 2, so, &t->z));
}

/* One step on images [batch, 1, IMG, IMG] and labels [batch]; the mean loss. */
static float trainer_step(trainer *t, const float *img, const int32_t *lab) {
    float loss;
    OK(vit_tensor_write(t->x, img, sizeof(float) * (size_t)t->batch * IMG * IMG));
    OK(vit_tensor_write(t->y, lab, sizeof(int32_t) * (size_t)t->batch));
    OK(vit_optimizer_zero_grad(t->opt));
    OK(vit_model_forward(t->m, t->x, t->z));
    OK(vit_model_loss(t->m, t->y, 0.1f, &loss));
    OK(vit_model_backward(t->m));
    OK(vit_optimizer_step(t->opt));
    return loss;
}

static void trainer_free(trainer *t) {
    vit_tensor_destroy(t->x), vit_tensor_destroy(t->y), vit_tensor_destroy(t->z);
    vit_optimizer_destroy(t->opt);
    vit_model_destroy(t->m);
}

static vit_context *gpu_context(int device, uint64_t seed, vit_status *s) {
    vit_context *ctx;
    OK(vit_context_create(&ctx));
    OK(vit_context_set_int(ctx, VIT_CTX_SEED, (int64_t)seed));
    OK(vit_context_set_int(ctx, VIT_CTX_DEVICE_INDEX, device));
    *s = vit_context_set_int(ctx, VIT_CTX_DEVICE, VIT_DEVICE_CUDA);
    if (*s == VIT_OK) OK(vit_context_set_int(ctx, VIT_CTX_PRECISION, VIT_PRECISION_FP32));
    return ctx;
}

int main(void) {
    vit_comm *comm;
    int size;
    OK(vit_comm_create(NULL, &comm));
    OK(vit_comm_rank(comm, &rank_));
    OK(vit_comm_size(comm, &size));
    const int rank = rank_;
    if (GLOBAL % size) {
        fprintf(stderr, "test_nccl_gpu: %d ranks do not divide the global batch of %d\n", size, GLOBAL);
        return EXIT_FAILURE;
    }
    vit_status s;
    vit_context *ctx = gpu_context(rank, 7 + (uint64_t)rank, &s);
    /* every rank learns whether every rank has its GPU */
    double missing = s != VIT_OK;
    OK(vit_comm_allreduce_sum(comm, &missing, 1));
    if (missing > 0) {
        if (rank == 0 || s != VIT_OK)
            printf("SKIP [rank %d]: %s\n", rank, s != VIT_OK ? vit_last_error() : "another rank has no GPU");
        vit_context_destroy(ctx);
        vit_comm_destroy(comm);
        return 77;
    }
    const int batch = GLOBAL / size;
    trainer dist;
    trainer_init(&dist, ctx, batch);
    OK(vit_comm_set_int(comm, VIT_COMM_NCCL_MIN_RANKS, 1));
    OK(vit_comm_set_int(comm, VIT_COMM_BUCKET_BYTES, 64 << 10)); /* several buckets */
    OK(vit_model_set_comm(dist.m, comm));
    int64_t nccl = 0;
    OK(vit_comm_get_int(comm, VIT_COMM_NCCL, &nccl));
    int failures = 0;
    if (nccl != 1) fprintf(stderr, "FAIL [rank %d]: VIT_COMM_NCCL %lld after attaching\n", rank, (long long)nccl), failures++;

    /* rank 0's one process, from the weights rank 0 started with (the same seed) */
    vit_context *ref_ctx = NULL;
    trainer ref = {0};
    if (rank == 0) {
        ref_ctx = gpu_context(0, 7, &s);
        OK(s);
        trainer_init(&ref, ref_ctx, GLOBAL);
    }
    int64_t total;
    OK(vit_model_num_params(dist.m, &total));
    float *p = malloc(sizeof(float) * (size_t)total), *q = malloc(sizeof(float) * (size_t)total);
    double *sum = malloc(sizeof(double) * (size_t)total);
    float *img = malloc(sizeof(float) * GLOBAL * IMG * IMG);
    int32_t lab[GLOBAL];
    uint64_t lcg = 12345;
    double worst_loss = 0;
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < GLOBAL * IMG * IMG; i++) {
            lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
            img[i] = (float)((lcg >> 40) & 0xFFFF) / 65536.0f - 0.5f;
        }
        for (int i = 0; i < GLOBAL; i++) lab[i] = (int32_t)((lcg >> (i + 8)) % CLASSES);
        double l = trainer_step(&dist, img + (size_t)rank * batch * IMG * IMG, lab + rank * batch) * (double)batch;
        OK(vit_comm_allreduce_sum(comm, &l, 1));
        l /= GLOBAL;
        /* the same bits on every rank: the sum over the ranks is size times each rank's value */
        read_params(dist.m, p);
        for (int64_t i = 0; i < total; i++) sum[i] = p[i];
        OK(vit_comm_allreduce_sum(comm, sum, (int)total));
        int64_t differ = 0;
        for (int64_t i = 0; i < total; i++) differ += sum[i] != (double)size * p[i];
        if (differ) fprintf(stderr, "FAIL [rank %d] step %d: %lld parameters differ from another rank's\n", rank, step,
                            (long long)differ), failures++;
        if (rank == 0) {
            const float r = trainer_step(&ref, img, lab);
            const double dl = fabs(l - r) / fmax(1.0, fabs(r));
            worst_loss = fmax(worst_loss, dl);
            read_params(ref.m, q);
            int64_t same = 0;
            double dp = 0;
            for (int64_t i = 0; i < total; i++) {
                same += memcmp(&p[i], &q[i], sizeof(float)) == 0;
                dp = fmax(dp, fabs((double)p[i] - q[i]));
            }
            printf("step %d: loss %.7f (%d rank%s), one process %.7f; parameters: %lld of %lld the same bits, largest "
                   "difference %.2e\n", step, l, size, size > 1 ? "s" : "", r, (long long)same, (long long)total, dp);
            if (!(dl <= 1e-5)) fprintf(stderr, "FAIL step %d: loss %.9g vs one process %.9g\n", step, l, r), failures++;
            if (size == 1 && same != total)
                fprintf(stderr, "FAIL step %d: one rank through NCCL changed %lld parameters\n", step,
                        (long long)(total - same)), failures++;
        }
    }
    double bytes = 0, backwards = 0;
    OK(vit_comm_get_float(comm, VIT_COMM_STAT_BYTES, &bytes));
    OK(vit_comm_get_float(comm, VIT_COMM_STAT_BACKWARDS, &backwards));
    /* What travels is the flat gradient buffer, each parameter padded to 16
     * floats: up to 15 floats a parameter more than the parameters. */
    int n_params;
    OK(vit_model_param_count(dist.m, &n_params));
    const double least = (double)STEPS * total * sizeof(float), most = least + STEPS * 15.0 * n_params * sizeof(float);
    if (backwards != STEPS || !(bytes >= least && bytes <= most) || fmod(bytes / STEPS, 64.0) != 0)
        fprintf(stderr, "FAIL [rank %d]: %g backwards, %.0f bytes reduced (%.0f to %.0f in steps of 64)\n", rank,
                backwards, bytes, least, most), failures++;
    double f = failures;
    OK(vit_comm_allreduce_sum(comm, &f, 1));
    if (rank == 0)
        printf("NCCL on %d rank%s: %d steps, largest loss difference from one process %.2e, every rank the same bits "
               "after every step: %s\n", size, size > 1 ? "s" : "", STEPS, worst_loss, f == 0 ? "yes" : "no");
    if (rank == 0) trainer_free(&ref), vit_context_destroy(ref_ctx);
    trainer_free(&dist);
    vit_context_destroy(ctx);
    vit_comm_destroy(comm);
    free(p), free(q), free(sum), free(img);
    return f == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
