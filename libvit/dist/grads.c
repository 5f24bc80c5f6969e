/* Gradient averaging over a model's communicator, bucketed and overlapped
 * with backward as PyTorch's DistributedDataParallel does.
 *
 * The flat gradient buffer is cut into buckets of whole parameters, about
 * VIT_COMM_BUCKET_BYTES each, from the last parameter (the head, whose
 * gradient backward produces first) to the first. Before the replay, each
 * parameter's first use on the tape is found: the replay runs the nodes in
 * reverse, so once node i has run, a parameter first used at node >= i has
 * all its gradient, and a bucket whose parameters all have is reduced at
 * once (MPI_Iallreduce) while the replay goes on. Buckets start in a fixed
 * order (0, 1, ...), the same on every rank, as MPI requires; between nodes
 * the in-flight ones are tested, which is what moves them along (Open MPI
 * has no progress thread). After the replay the rest start, and backward
 * returns when all have finished: the optimizer, its gradient clipping and
 * its non-finite check see the averaged gradients.
 *
 * A GPU model's buckets go through NCCL instead: "after node i" is then when
 * node i's kernels have been queued, and a bucket's ncclAllReduce, on NCCL's
 * own stream, waits for what the backend's stream had queued at that point,
 * so it overlaps the kernels of the rest of backward (dist/nccl.c). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "nn/nn.h"

typedef struct bucket {
    int64_t lo, hi; /* floats [lo, hi) of the flat buffer */
    int first, last; /* parameters first..last */
    int ready_at;    /* the bucket is final once the replay has run node ready_at */
} bucket;

struct vit_dist_buckets {
    bucket *b;
    int n;
    int64_t built_bytes;
    int *first_use; /* per parameter: the lowest tape node reading it, INT_MAX if none */
    /* The backward in progress. */
    const vit_transport *tr; /* host memory: the host transport (MPI); GPU memory: NCCL */
    int next, finished; /* buckets started / known finished */
    double t_first;     /* when bucket 0 started */
    vit_status failed;
};

static int64_t param_end(const vit_model *m, int i) {
    return i + 1 < m->n_params ? m->params[i + 1].offset : m->total;
}

static vit_status build_buckets(vit_model *m, struct vit_dist_buckets *d, int64_t bytes) {
    free(d->b);
    d->b = calloc((size_t)m->n_params, sizeof *d->b);
    if (!d->b) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_model_backward: no memory for gradient buckets");
    d->n = 0;
    for (int i = m->n_params - 1; i >= 0;) {
        bucket *b = &d->b[d->n++];
        b->last = i;
        b->hi = param_end(m, i);
        do {
            b->first = i;
            b->lo = m->params[i].offset;
            i--;
        } while (i >= 0 && (b->hi - b->lo) * (int64_t)sizeof(float) < bytes);
    }
    d->built_bytes = bytes;
    return VIT_OK;
}

/* The parameter whose slice of the flat gradient buffer holds g, or -1. */
static int param_of(const vit_model *m, const float *g) {
    if (!g || g < m->grads || g >= m->grads + m->total) return -1;
    int64_t off = g - m->grads;
    int lo = 0, hi = m->n_params - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (m->params[mid].offset <= off) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static void find_ready_points(vit_model *m, struct vit_dist_buckets *d) {
    for (int i = 0; i < m->n_params; i++) d->first_use[i] = INT_MAX;
    const vit_tape *t = &m->tape;
    for (int n = t->count - 1; n >= 0; n--)
        for (int k = 0; k < 3; k++) {
            const vit_value *v = t->nodes[n].in[k];
            int p = v ? param_of(m, v->grad) : -1;
            if (p >= 0) d->first_use[p] = n;
        }
    for (int k = 0; k < d->n; k++) {
        bucket *b = &d->b[k];
        b->ready_at = INT_MAX; /* no parameter used: final from the start */
        for (int p = b->first; p <= b->last; p++)
            if (d->first_use[p] < b->ready_at) b->ready_at = d->first_use[p];
    }
}

static vit_status start_bucket(vit_model *m, struct vit_dist_buckets *d) {
    const bucket *b = &d->b[d->next];
    if (d->next == 0) d->t_first = vit_dist_now();
    VIT_TRY(d->tr->start(m->comm, d->next, VIT_COLL_AVG_F32, m->grads + b->lo, b->hi - b->lo));
    d->next++;
    return VIT_OK;
}

/* Moves the in-flight buckets along, oldest first, without waiting. */
static vit_status progress(vit_model *m, struct vit_dist_buckets *d) {
    while (d->finished < d->next) {
        bool done = false;
        VIT_TRY(d->tr->test(m->comm, d->finished, &done));
        if (!done) break;
        d->finished++;
    }
    return VIT_OK;
}

/* Called by the replay after node index: start what has become final. */
static vit_status after_node(void *user, int index) {
    vit_model *m = user;
    struct vit_dist_buckets *d = m->dist;
    while (d->next < d->n && d->b[d->next].ready_at >= index) VIT_TRY(start_bucket(m, d));
    return d->finished < d->next ? progress(m, d) : VIT_OK;
}

vit_status vit_dist_backward(vit_model *m, vit_value *out, const float *seed_grad) {
    vit_comm *c = m->comm;
    struct vit_dist_buckets *d = m->dist;
    if (!d) return vit_tape_backward(&m->tape, out, seed_grad); /* one rank, nothing to reduce */
    if (c->failed) return vit_comm_wait(c, c->host, 0, 0, "vit_model_backward");
    if (d->built_bytes != c->bucket_bytes) VIT_TRY(build_buckets(m, d, c->bucket_bytes));
    /* vit_model_set_comm opened NCCL for a GPU model. */
    d->tr = m->be->host_memory ? c->host : c->device;
    c->nccl_be = m->be;
    VIT_TRY(d->tr->reserve(c, d->n));
    find_ready_points(m, d);
    d->next = d->finished = 0;

    if (c->overlap) {
        m->tape.after_node = after_node;
        m->tape.after_user = m;
    }
    vit_status s = vit_tape_backward(&m->tape, out, seed_grad);
    m->tape.after_node = NULL;
    m->tape.after_user = NULL;
    if (s != VIT_OK) {
        /* Some buckets may be in flight and the other ranks wait for the
         * rest: this rank cannot take part in another collective. */
        if (d->next > 0) {
            c->failed = true;
            snprintf(c->failure, sizeof c->failure, "a backward failed on rank %d during the gradient reduction",
                     c->rank);
        }
        return s;
    }
    while (d->next < d->n) VIT_TRY(start_bucket(m, d));
    /* On a GPU the host runs ahead of the kernels: waiting for backward's
     * own kernels first (the last bucket waits for them anyway) leaves in
     * the wait only what the reductions add. */
    if (!m->be->host_memory) VIT_TRY(m->be->ops->sync(m->be));
    double t_wait = vit_dist_now();
    VIT_TRY(vit_comm_wait(c, d->tr, d->finished, d->n - d->finished, "vit_model_backward: averaging the gradients"));
    double t1 = vit_dist_now();
    c->wait_s += t1 - t_wait;
    c->reduce_s += t1 - d->t_first;
    c->bytes += (double)m->total * sizeof(float);
    c->backwards += 1;
    return VIT_OK;
}

void vit_dist_detach(vit_model *m) {
    struct vit_dist_buckets *d = m->dist;
    if (d) {
        free(d->b);
        free(d->first_use);
        free(d);
    }
    m->dist = NULL;
    vit_comm_release(m->comm);
    m->comm = NULL;
    m->mask_rank = 0;
}

/* Rank 0's parameters and dropout stream to every rank, after checking that
 * every rank has a model of the same size. A GPU model's parameters go
 * through NCCL, in device memory. */
static vit_status share_rank0_model(vit_model *m, vit_comm *c) {
    uint64_t head[2] = {(uint64_t)m->total, m->rng_counter};
    VIT_TRY(vit_comm_run(c, VIT_COLL_BCAST, head, sizeof head, "vit_model_set_comm: the model's size"));
    double mismatch = head[0] != (uint64_t)m->total;
    VIT_TRY(vit_comm_run(c, VIT_COLL_SUM_F64, &mismatch, 1, "vit_model_set_comm: comparing the models"));
    if (head[0] != (uint64_t)m->total)
        return vit_fail(VIT_ERR_SHAPE, "vit_model_set_comm: rank %d's model has %lld floats, rank 0's %llu", c->rank,
                        (long long)m->total, (unsigned long long)head[0]);
    if (mismatch > 0)
        return vit_fail(VIT_ERR_SHAPE, "vit_model_set_comm: %.0f rank(s) have a model of another size than rank 0's",
                        mismatch);
    const int64_t bytes = m->total * (int64_t)sizeof(float);
    const char *what = "vit_model_set_comm: sharing the weights";
    vit_model_weights_changed(m); /* rank 0's weights replace any packed copy of this rank's */
    if (m->be->host_memory) {
        VIT_TRY(vit_comm_run(c, VIT_COLL_BCAST, m->weights, bytes, what));
    } else {
        c->nccl_be = m->be;
        VIT_TRY(c->device->reserve(c, 1));
        VIT_TRY(c->device->start(c, 0, VIT_COLL_BCAST, m->weights, bytes));
        VIT_TRY(vit_comm_wait(c, c->device, 0, 1, what));
    }
    m->rng_counter = head[1];
    return VIT_OK;
}

vit_status vit_model_set_comm(vit_model *m, vit_comm *c) {
    VIT_CHECK_ARG(m, "vit_model_set_comm: model is NULL");
    vit_dist_detach(m);
    if (!c) return VIT_OK;
    /* A GPU model reduces in device memory, through NCCL; a CPU model through
     * the host transport, when there is more than one rank. */
    const bool gpu = !m->be->host_memory;
    const bool reduce = gpu ? c->size >= c->nccl_min_ranks : c->size > 1;
    if (reduce) {
        if (gpu) VIT_TRY(vit_nccl_open(c, m->be));
        VIT_TRY(share_rank0_model(m, c));
        struct vit_dist_buckets *d = calloc(1, sizeof *d);
        int *first_use = d ? malloc((size_t)m->n_params * sizeof *first_use) : NULL;
        if (!first_use) {
            free(d);
            return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_model_set_comm: no memory");
        }
        d->first_use = first_use;
        m->dist = d;
    }
    c->refs++;
    m->comm = c;
    m->mask_rank = c->rank;
    return VIT_OK;
}
