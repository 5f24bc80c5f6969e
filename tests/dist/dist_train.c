/* Data-parallel training check, run under mpirun (tests/dist/test_dist.py):
 * trains the Fashion-MNIST recipe's model (patch 4, width 128, depth 6, 4
 * heads, average pooling, no dropout) for --steps steps of --global-batch
 * images split over the ranks, and after every step
 *   - prints, on rank 0, one JSON line: the step, the loss over the whole
 *     global batch (the shards' loss sums added up) and a hash of every
 *     parameter's bits;
 *   - checks that every rank holds the same parameter bits as rank 0, and
 *     fails (exit 1) naming the step if one does not.
 * With --own-mpi the program initialises MPI itself and hands libvit a
 * communicator of its own (a duplicate of MPI_COMM_WORLD) through the
 * address of its MPI_Comm; otherwise libvit initialises MPI.
 * Fault injection: --die-rank R --die-at S kills rank R (SIGKILL) before step
 * S; --stall-rank R --stall-at S makes it sleep instead. --print-host: each
 * rank names its host on stderr. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>
#include <vit/vit.h>

static int fail(int rank, const char *what, vit_status s) {
    fprintf(stderr, "dist_train [rank %d]: %s: %s: %s\n", rank, what, vit_status_string(s), vit_last_error());
    fflush(stderr);
    /* Leave without finalising: the launcher then ends the other ranks. */
    _exit(1);
}

#define TRY(what, call) do { vit_status s_ = (call); if (s_ != VIT_OK) fail(rank, what, s_); } while (0)

/* FNV-1a over every parameter's bytes, in the model's order. */
static uint64_t model_hash(const vit_model *m, float *scratch) {
    uint64_t h = 1469598103934665603ull;
    int count;
    vit_model_param_count(m, &count);
    for (int i = 0; i < count; i++) {
        const char *name;
        int ndim;
        int64_t shape[VIT_MAX_DIMS], n = 1;
        vit_model_param_info(m, i, &name, &ndim, shape);
        for (int d = 0; d < ndim; d++) n *= shape[d];
        vit_model_param_read(m, name, scratch, (size_t)n * sizeof(float));
        const unsigned char *b = (const unsigned char *)scratch;
        for (size_t k = 0; k < (size_t)n * sizeof(float); k++) h = (h ^ b[k]) * 1099511628211ull;
    }
    return h;
}

/* Every rank learns rank 0's hash (16-bit pieces, exact in a double sum) and
 * whether any rank differs from it. */
static int ranks_differing(vit_comm *comm, int rank, uint64_t h) {
    double piece[4];
    for (int k = 0; k < 4; k++) piece[k] = rank == 0 ? (double)((h >> (16 * k)) & 0xFFFF) : 0.0;
    if (vit_comm_allreduce_sum(comm, piece, 4) != VIT_OK) fail(rank, "allreduce", VIT_ERR_IO);
    uint64_t h0 = 0;
    for (int k = 0; k < 4; k++) h0 |= (uint64_t)piece[k] << (16 * k);
    double differs = h0 != h;
    if (vit_comm_allreduce_sum(comm, &differs, 1) != VIT_OK) fail(rank, "allreduce", VIT_ERR_IO);
    return (int)differs;
}

int main(int argc, char **argv) {
    const char *data = NULL;
    int steps = 20, global_batch = 48, threads = 1, own_mpi = 0, die_rank = -1, die_at = -1, stall_rank = -1,
        stall_at = -1, overlap = 1, print_host = 0;
    long long timeout_ms = 0, bucket = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--data")) data = v, i++;
        else if (!strcmp(a, "--steps")) steps = atoi(v), i++;
        else if (!strcmp(a, "--global-batch")) global_batch = atoi(v), i++;
        else if (!strcmp(a, "--threads")) threads = atoi(v), i++;
        else if (!strcmp(a, "--timeout-ms")) timeout_ms = atoll(v), i++;
        else if (!strcmp(a, "--bucket-bytes")) bucket = atoll(v), i++;
        else if (!strcmp(a, "--no-overlap")) overlap = 0;
        else if (!strcmp(a, "--own-mpi")) own_mpi = 1;
        else if (!strcmp(a, "--print-host")) print_host = 1;
        else if (!strcmp(a, "--die-rank")) die_rank = atoi(v), i++;
        else if (!strcmp(a, "--die-at")) die_at = atoi(v), i++;
        else if (!strcmp(a, "--stall-rank")) stall_rank = atoi(v), i++;
        else if (!strcmp(a, "--stall-at")) stall_at = atoi(v), i++;
        else {
            fprintf(stderr, "dist_train: unknown argument '%s'\n", a);
            return 2;
        }
    }
    if (!data) {
        fprintf(stderr, "dist_train: --data is required\n");
        return 2;
    }
    int rank = 0, size = 1;
    vit_comm *comm;
    MPI_Comm mine = MPI_COMM_NULL;
    if (own_mpi) {
        int provided;
        MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
        MPI_Comm_dup(MPI_COMM_WORLD, &mine);
        TRY("vit_comm_create", vit_comm_create(&mine, &comm));
    } else {
        TRY("vit_comm_create", vit_comm_create(NULL, &comm));
    }
    TRY("rank", vit_comm_rank(comm, &rank));
    TRY("size", vit_comm_size(comm, &size));
    if (print_host) {
        char host[256] = "?";
        gethostname(host, sizeof host - 1);
        fprintf(stderr, "dist_train: rank %d of %d on %s\n", rank, size, host);
    }
    if (timeout_ms) TRY("timeout", vit_comm_set_int(comm, VIT_COMM_TIMEOUT_MS, timeout_ms));
    if (bucket) TRY("bucket", vit_comm_set_int(comm, VIT_COMM_BUCKET_BYTES, bucket));
    TRY("overlap", vit_comm_set_int(comm, VIT_COMM_OVERLAP, overlap));
    if (global_batch % size) {
        fprintf(stderr, "dist_train: --global-batch %d is not a multiple of %d ranks\n", global_batch, size);
        return 2;
    }
    int batch = global_batch / size;

    vit_context *ctx;
    TRY("context", vit_context_create(&ctx));
    TRY("threads", vit_context_set_int(ctx, VIT_CTX_THREADS, threads));
    vit_dataset *ds;
    TRY(data, vit_dataset_open(ctx, data, VIT_DATA_IDX, VIT_SPLIT_TRAIN, &ds));
    vit_transform *tf;
    TRY("transform", vit_transform_create(ctx, &tf));
    TRY("transform", vit_transform_set_int(tf, VIT_TF_SIZE, 28));
    TRY("transform", vit_transform_set_int(tf, VIT_TF_NORMALIZE, VIT_NORM_HALF));
    TRY("transform", vit_transform_set_float(tf, VIT_TF_FLIP_P, 0.5));
    vit_loader *ld;
    TRY("loader", vit_loader_create(ds, tf, batch, &ld));
    TRY("loader", vit_loader_set_int(ld, VIT_LD_WORKERS, 1));
    TRY("loader", vit_loader_set_int(ld, VIT_LD_SHARD_INDEX, rank));
    TRY("loader", vit_loader_set_int(ld, VIT_LD_SHARD_COUNT, size));

    vit_config *cfg;
    TRY("config", vit_config_create(&cfg));
    const int64_t ints[][2] = {{VIT_CFG_IMG_SIZE, 28}, {VIT_CFG_PATCH_SIZE, 4}, {VIT_CFG_IN_CHANNELS, 1},
                               {VIT_CFG_NUM_CLASSES, 10}, {VIT_CFG_DIM, 128}, {VIT_CFG_DEPTH, 6},
                               {VIT_CFG_HEADS, 4}, {VIT_CFG_GLOBAL_POOL, VIT_POOL_AVG}};
    for (size_t k = 0; k < sizeof ints / sizeof *ints; k++)
        TRY("config", vit_config_set_int(cfg, (vit_config_key)ints[k][0], ints[k][1]));
    vit_model *model;
    /* Each rank draws its own initial weights (seed 1 + rank): that rank 0's
     * reach the others is part of what is tested. */
    TRY("seed", vit_context_set_int(ctx, VIT_CTX_SEED, 1 + rank));
    TRY("model", vit_model_create(ctx, cfg, &model));
    TRY("seed", vit_context_set_int(ctx, VIT_CTX_SEED, 0));
    vit_config_destroy(cfg);
    TRY("vit_model_set_comm", vit_model_set_comm(model, comm));
    vit_optimizer *opt;
    TRY("optimizer", vit_adamw_create(model, &opt));
    TRY("optimizer", vit_optimizer_set_float(opt, VIT_OPT_WEIGHT_DECAY, 0.05));
    TRY("optimizer", vit_optimizer_set_float(opt, VIT_OPT_CLIP_GRAD_NORM, 1.0));

    int64_t si[4] = {batch, 1, 28, 28}, sl[1] = {batch}, so[2] = {batch, 10}, nparams;
    vit_tensor *images, *labels, *logits;
    TRY("tensor", vit_tensor_create(ctx, VIT_DTYPE_F32, 4, si, &images));
    TRY("tensor", vit_tensor_create(ctx, VIT_DTYPE_I32, 1, sl, &labels));
    TRY("tensor", vit_tensor_create(ctx, VIT_DTYPE_F32, 2, so, &logits));
    vit_model_num_params(model, &nparams);
    float *scratch = malloc((size_t)nparams * sizeof(float));
    if (!scratch) return 1;
    if (ranks_differing(comm, rank, model_hash(model, scratch))) {
        fprintf(stderr, "dist_train [rank %d]: the ranks start with different parameters\n", rank);
        _exit(1);
    }
    TRY("loader", vit_loader_start_epoch(ld, 0));
    for (int step = 1; step <= steps; step++) {
        if (rank == die_rank && step == die_at) raise(SIGKILL);
        if (rank == stall_rank && step == stall_at)
            for (;;) pause();
        int count;
        float loss;
        double grad_norm;
        TRY("loader", vit_loader_next(ld, images, labels, &count));
        if (count != batch) {
            fprintf(stderr, "dist_train [rank %d]: the epoch ended at step %d\n", rank, step);
            _exit(1);
        }
        TRY("zero_grad", vit_optimizer_zero_grad(opt));
        TRY("forward", vit_model_forward(model, images, logits));
        TRY("loss", vit_model_loss(model, labels, 0.1f, &loss));
        TRY("backward", vit_model_backward(model));
        TRY("step", vit_optimizer_step(opt));
        TRY("norm", vit_optimizer_get_float(opt, VIT_OPT_LAST_GRAD_NORM, &grad_norm));
        double sums[2] = {(double)loss * count, count};
        TRY("allreduce", vit_comm_allreduce_sum(comm, sums, 2));
        uint64_t h = model_hash(model, scratch);
        int differing = ranks_differing(comm, rank, h);
        if (rank == 0) {
            printf("{\"step\": %d, \"loss\": %.9g, \"grad_norm\": %.9g, \"hash\": \"%016llx\", \"ranks\": %d}\n", step,
                   sums[0] / sums[1], grad_norm, (unsigned long long)h, size);
            fflush(stdout);
        }
        if (differing) {
            fprintf(stderr, "dist_train [rank %d]: after step %d, %d rank(s) hold parameters that differ from rank 0's\n",
                    rank, step, differing);
            _exit(1);
        }
    }
    double wait_s, reduce_s;
    vit_comm_get_float(comm, VIT_COMM_STAT_WAIT_SECONDS, &wait_s);
    vit_comm_get_float(comm, VIT_COMM_STAT_REDUCE_SECONDS, &reduce_s);
    if (rank == 0)
        fprintf(stderr, "dist_train: %d ranks, %d steps: %.1f ms/step waiting for reductions, %.1f ms/step reducing\n",
                size, steps, 1e3 * wait_s / steps, 1e3 * reduce_s / steps);
    free(scratch);
    vit_tensor_destroy(images);
    vit_tensor_destroy(labels);
    vit_tensor_destroy(logits);
    vit_optimizer_destroy(opt);
    vit_model_destroy(model);
    vit_loader_destroy(ld);
    vit_transform_destroy(tf);
    vit_dataset_destroy(ds);
    vit_context_destroy(ctx);
    vit_comm_destroy(comm);
    if (own_mpi) {
        MPI_Comm_free(&mine);
        MPI_Finalize();
    }
    return 0;
}
