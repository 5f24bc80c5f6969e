/* The parallel batch loader (vit/data.h).
 *
 * Work is handed out sample by sample (small chunks for in-memory datasets) in
 * epoch order; sample p goes to row p % B of batch p / B, and batch b lives in
 * ring slot b % depth. A worker may only claim a sample whose batch is within
 * `depth` of the next batch the caller will take, so memory is depth batches
 * whatever the dataset size. Every sample's pixels depend only on (seed,
 * epoch, dataset index), never on which worker made it or when, so the same
 * seed gives the same batches for any worker count.
 *
 * Stopping (a new epoch, or destroy) forbids new claims and waits for the
 * samples in flight, which are single images: a stop never waits for a batch.
 * Workers never call the log callback (it belongs to the caller's thread):
 * their warnings are queued and emitted by vit_loader_next. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "data/data.h"

#define MAX_WARN 8
#define MSG_CAP 1024

typedef struct slot {
    float *images;   /* [B, C, S, S] */
    int32_t *labels; /* [B] */
    int count, done;
    vit_status err;
    int64_t err_pos; /* the failing sample with the lowest position wins: deterministic */
    char msg[MSG_CAP];
} slot;

typedef struct worker {
    struct vit_loader *ld;
    pthread_t thread;
    vit_scratch s;
} worker;

/* One staging buffer: page-locked memory of the tensors' backend when it
 * has overlapped uploads (two then alternate, each reused only after its
 * upload is done), else plain host memory. */
typedef struct stage_buf {
    void *p;
    size_t bytes;
    vit_backend *be; /* a reference: whose host_alloc made p (NULL: vit_alloc) */
    uint64_t ticket;
    bool pending;    /* an upload from p is in flight */
} stage_buf;

struct vit_loader {
    vit_dataset *ds;
    vit_transform tf;
    int batch;
    int workers, shuffle, drop_last, prefetch; /* as set; applied at start_epoch */
    int64_t shard_set, shards_set;             /* likewise */

    /* The current epoch, fixed between start_epoch calls. */
    int C, S, decode_size, train, chunk;
    int64_t epoch;
    uint64_t seed;
    int64_t *order; /* permutation of 0..n-1 */
    int64_t n, n_items, nb; /* n: the dataset; n_items, nb: this shard's samples and batches */
    int64_t shard, shards;  /* this shard's position p is epoch position p * shards + shard */
    int depth;
    slot *slots;
    size_t row_floats;
    int started;

    /* Shared with the workers, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    int64_t next_item, next_out;
    int busy, stop;
    worker *w;
    int nthreads;
    char warn[MAX_WARN][MSG_CAP];
    int nwarn;
    int64_t warn_dropped;

    vit_scratch main; /* VIT_LD_WORKERS 0: decoding in the caller's thread */

    /* Host staging of batches bound for tensors in device memory (a GPU
     * context): filled as a host tensor would be, then uploaded. */
    stage_buf stage[2];
    int stage_next;
};

/* ------------------------------------------------------------------ samples */
static void queue_warning(vit_loader *ld, const char *msg) {
    pthread_mutex_lock(&ld->mu);
    if (ld->nwarn < MAX_WARN) snprintf(ld->warn[ld->nwarn++], MSG_CAP, "%s", msg);
    else ld->warn_dropped++;
    pthread_mutex_unlock(&ld->mu);
}

static void flush_warnings(vit_loader *ld) {
    char local[MAX_WARN][MSG_CAP];
    pthread_mutex_lock(&ld->mu);
    int n = ld->nwarn;
    int64_t dropped = ld->warn_dropped;
    memcpy(local, ld->warn, (size_t)n * MSG_CAP);
    ld->nwarn = 0;
    ld->warn_dropped = 0;
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < n; i++) vit_log(ld->ds->ctx, VIT_LOG_WARN, "%s", local[i]);
    if (dropped) vit_log(ld->ds->ctx, VIT_LOG_WARN, "%lld more corrupt images skipped", (long long)dropped);
}

/* Epoch position p into dst / *label. With VIT_DS_SKIP_CORRUPT a file that
 * fails to decode is recorded and replaced by the next readable sample of the
 * epoch order, so batches stay full and the result is still a pure function
 * of (seed, epoch, position). */
static vit_status produce(vit_loader *ld, vit_scratch *s, int64_t p, float *dst, int32_t *label) {
    vit_dataset *ds = ld->ds;
    int64_t limit = ld->n < 1000 ? ld->n : 1000;
    p = p * ld->shards + ld->shard; /* the shard's position -> the epoch's */
    for (int64_t attempt = 0; attempt < limit; attempt++) {
        int64_t idx = ld->order[(p + attempt) % ld->n];
        if (ds->skip_corrupt && vit_ds_is_bad(ds, idx)) continue; /* would fail again */
        vit_view v;
        vit_status st = vit_ds_fetch(ds, idx, ld->C, ld->decode_size, s, &v);
        if (st == VIT_OK)
            st = vit_transform_apply(&ld->tf, &v, ld->C, ld->train, vit_sample_key(ld->seed, ld->epoch, idx), dst, s);
        if (st == VIT_OK) {
            *label = ds->labels[idx];
            return VIT_OK;
        }
        if (!ds->skip_corrupt || st != VIT_ERR_FORMAT) return st;
        if (vit_ds_mark_bad(ds, idx)) {
            char msg[MSG_CAP];
            snprintf(msg, sizeof msg, "skipping corrupt image: %s", vit_last_error());
            queue_warning(ld, msg);
        }
    }
    return vit_fail(VIT_ERR_FORMAT, "no readable image among the %lld samples after epoch position %lld",
                    (long long)limit, (long long)p);
}

static int64_t batch_count(const vit_loader *ld, int64_t b) {
    int64_t left = ld->n_items - b * ld->batch;
    return left < ld->batch ? left : ld->batch;
}

static void reset_slot(vit_loader *ld, int64_t b) {
    slot *sl = &ld->slots[b % ld->depth];
    sl->count = b < ld->nb ? (int)batch_count(ld, b) : 0;
    sl->done = 0;
    sl->err = VIT_OK;
    sl->err_pos = INT64_MAX;
    sl->msg[0] = '\0';
}

/* ------------------------------------------------------------------ workers */
static int can_claim(const vit_loader *ld) {
    return ld->started && ld->next_item < ld->n_items && ld->next_item / ld->batch < ld->next_out + ld->depth;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    vit_loader *ld = w->ld;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->stop && !can_claim(ld)) pthread_cond_wait(&ld->work_cv, &ld->mu);
        if (ld->stop) break;
        int64_t p0 = ld->next_item, b = p0 / ld->batch, end = b * ld->batch + batch_count(ld, b);
        int64_t cnt = end - p0 < ld->chunk ? end - p0 : ld->chunk;
        ld->next_item += cnt;
        ld->busy++;
        pthread_mutex_unlock(&ld->mu);

        slot *sl = &ld->slots[b % ld->depth];
        vit_status err = VIT_OK;
        int64_t err_pos = 0;
        char msg[MSG_CAP];
        for (int64_t p = p0; p < p0 + cnt; p++) {
            int64_t row = p - b * ld->batch;
            vit_status st = produce(ld, &w->s, p, sl->images + (size_t)row * ld->row_floats, &sl->labels[row]);
            if (st != VIT_OK && err == VIT_OK) {
                err = st;
                err_pos = p;
                snprintf(msg, sizeof msg, "%s", vit_last_error());
            }
        }

        pthread_mutex_lock(&ld->mu);
        if (err != VIT_OK && err_pos < sl->err_pos) {
            sl->err = err;
            sl->err_pos = err_pos;
            memcpy(sl->msg, msg, sizeof msg);
        }
        sl->done += (int)cnt;
        ld->busy--;
        if (sl->done == sl->count || ld->busy == 0) pthread_cond_broadcast(&ld->done_cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

/* Forbids new claims and waits for the samples in flight. */
static void cancel_epoch(vit_loader *ld) {
    pthread_mutex_lock(&ld->mu);
    ld->started = 0;
    while (ld->busy > 0) pthread_cond_wait(&ld->done_cv, &ld->mu);
    pthread_mutex_unlock(&ld->mu);
}

static void stop_threads(vit_loader *ld) {
    if (!ld->nthreads) return;
    pthread_mutex_lock(&ld->mu);
    ld->stop = 1;
    pthread_cond_broadcast(&ld->work_cv);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->nthreads; i++) {
        pthread_join(ld->w[i].thread, NULL);
        vit_scratch_release(&ld->w[i].s);
    }
    free(ld->w);
    ld->w = NULL;
    ld->nthreads = 0;
    ld->stop = 0;
}

static vit_status start_threads(vit_loader *ld, int count) {
    ld->w = calloc((size_t)count, sizeof *ld->w);
    if (!ld->w) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_loader: no memory for %d workers", count);
    for (int i = 0; i < count; i++) {
        ld->w[i].ld = ld;
        vit_scratch_init(&ld->w[i].s);
        if (pthread_create(&ld->w[i].thread, NULL, worker_main, &ld->w[i]) != 0) {
            vit_scratch_release(&ld->w[i].s);
            stop_threads(ld); /* joins the ones started so far */
            return vit_fail(VIT_ERR_INTERNAL, "vit_loader: cannot start worker thread %d of %d", i + 1, count);
        }
        ld->nthreads = i + 1;
    }
    return VIT_OK;
}

static void free_slots(vit_loader *ld) {
    for (int i = 0; i < ld->depth && ld->slots; i++) {
        vit_free(ld->slots[i].images);
        free(ld->slots[i].labels);
    }
    free(ld->slots);
    ld->slots = NULL;
    ld->depth = 0;
}

/* ------------------------------------------------------------------- public */
vit_status vit_loader_create(vit_dataset *ds, const vit_transform *tf, int batch_size, vit_loader **out) {
    VIT_CHECK_ARG(out, "vit_loader_create: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(ds, "vit_loader_create: ds is NULL");
    VIT_CHECK_ARG(tf, "vit_loader_create: tf is NULL");
    VIT_CHECK_ARG(batch_size >= 1 && batch_size <= 1 << 20, "vit_loader_create: batch_size %d is out of range 1..%d",
                  batch_size, 1 << 20);
    vit_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_loader_create: no memory");
    ld->ds = ds;
    ld->tf = *tf;
    ld->batch = batch_size;
    ld->workers = 2;
    ld->shuffle = 1;
    ld->drop_last = 1;
    ld->prefetch = 2;
    ld->shards_set = 1;
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->work_cv, NULL);
    pthread_cond_init(&ld->done_cv, NULL);
    vit_scratch_init(&ld->main);
    *out = ld;
    return VIT_OK;
}

/* Waits for the buffer's upload and frees it. */
static void stage_release(stage_buf *b) {
    if (b->pending) b->be->ops->upload_wait(b->be, b->ticket);
    if (b->be) {
        b->be->ops->host_free(b->be, b->p);
        vit_backend_release(b->be);
    } else {
        vit_free(b->p);
    }
    memset(b, 0, sizeof *b);
}

/* b ready to be filled with bytes: its last upload done, big enough, and
 * page-locked memory of be when be is given. */
static vit_status stage_ready(stage_buf *b, vit_backend *be, size_t bytes) {
    if (b->pending) {
        b->pending = false;
        VIT_TRY(b->be->ops->upload_wait(b->be, b->ticket));
    }
    if (b->p && b->bytes >= bytes && b->be == be) return VIT_OK;
    stage_release(b);
    b->p = be ? be->ops->host_alloc(be, bytes) : vit_alloc(bytes);
    if (!b->p)
        return be ? vit_last_status() : vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_loader_next: no memory to stage a batch");
    b->bytes = bytes;
    b->be = be ? vit_backend_retain(be) : NULL;
    return VIT_OK;
}

void vit_loader_destroy(vit_loader *ld) {
    if (!ld) return;
    cancel_epoch(ld);
    stop_threads(ld);
    flush_warnings(ld);
    free_slots(ld);
    free(ld->order);
    for (int i = 0; i < 2; i++) stage_release(&ld->stage[i]);
    vit_scratch_release(&ld->main);
    pthread_cond_destroy(&ld->work_cv);
    pthread_cond_destroy(&ld->done_cv);
    pthread_mutex_destroy(&ld->mu);
    free(ld);
}

vit_status vit_loader_set_int(vit_loader *ld, vit_loader_param param, int64_t v) {
    VIT_CHECK_ARG(ld, "vit_loader_set_int: ld is NULL");
    switch (param) {
    case VIT_LD_WORKERS:
        VIT_CHECK_ARG(v >= 0 && v <= 256, "VIT_LD_WORKERS: %lld is out of range 0..256", (long long)v);
        ld->workers = (int)v;
        return VIT_OK;
    case VIT_LD_SHUFFLE:
    case VIT_LD_DROP_LAST:
        VIT_CHECK_ARG(v == 0 || v == 1, "%s: %lld (0 or 1 accepted)",
                      param == VIT_LD_SHUFFLE ? "VIT_LD_SHUFFLE" : "VIT_LD_DROP_LAST", (long long)v);
        *(param == VIT_LD_SHUFFLE ? &ld->shuffle : &ld->drop_last) = (int)v;
        return VIT_OK;
    case VIT_LD_PREFETCH:
        VIT_CHECK_ARG(v >= 1 && v <= 64, "VIT_LD_PREFETCH: %lld is out of range 1..64", (long long)v);
        ld->prefetch = (int)v;
        return VIT_OK;
    case VIT_LD_BATCH_SIZE:
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "VIT_LD_BATCH_SIZE is read-only (set at vit_loader_create)");
    case VIT_LD_SHARD_INDEX:
        VIT_CHECK_ARG(v >= 0 && v < (1 << 20), "VIT_LD_SHARD_INDEX: %lld is out of range 0..%d", (long long)v,
                      (1 << 20) - 1);
        ld->shard_set = v;
        return VIT_OK;
    case VIT_LD_SHARD_COUNT:
        VIT_CHECK_ARG(v >= 1 && v <= (1 << 20), "VIT_LD_SHARD_COUNT: %lld is out of range 1..%d", (long long)v, 1 << 20);
        ld->shards_set = v;
        return VIT_OK;
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_loader_set_int: unknown parameter %d", (int)param);
}

vit_status vit_loader_get_int(const vit_loader *ld, vit_loader_param param, int64_t *v) {
    VIT_CHECK_ARG(ld, "vit_loader_get_int: ld is NULL");
    VIT_CHECK_ARG(v, "vit_loader_get_int: value is NULL");
    switch (param) {
    case VIT_LD_WORKERS: *v = ld->workers; return VIT_OK;
    case VIT_LD_SHUFFLE: *v = ld->shuffle; return VIT_OK;
    case VIT_LD_DROP_LAST: *v = ld->drop_last; return VIT_OK;
    case VIT_LD_PREFETCH: *v = ld->prefetch; return VIT_OK;
    case VIT_LD_BATCH_SIZE: *v = ld->batch; return VIT_OK;
    case VIT_LD_SHARD_INDEX: *v = ld->shard_set; return VIT_OK;
    case VIT_LD_SHARD_COUNT: *v = ld->shards_set; return VIT_OK;
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_loader_get_int: unknown parameter %d", (int)param);
}

vit_status vit_loader_start_epoch(vit_loader *ld, int64_t epoch) {
    VIT_CHECK_ARG(ld, "vit_loader_start_epoch: ld is NULL");
    VIT_CHECK_ARG(epoch >= 0, "vit_loader_start_epoch: epoch %lld is negative", (long long)epoch);
    VIT_CHECK_ARG(ld->shard_set < ld->shards_set, "vit_loader_start_epoch: VIT_LD_SHARD_INDEX %lld is not below "
                  "VIT_LD_SHARD_COUNT %lld", (long long)ld->shard_set, (long long)ld->shards_set);
    cancel_epoch(ld);
    flush_warnings(ld);
    vit_dataset *ds = ld->ds;

    int C = ld->tf.channels ? ld->tf.channels : vit_ds_channels(ds), S = ld->tf.size;
    size_t row = (size_t)C * S * S;
    if ((double)row * ld->batch * ld->prefetch * sizeof(float) > (double)((size_t)1 << 40))
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_loader: %d batches of %d x %d x %d x %d floats is too much memory",
                        ld->prefetch, ld->batch, C, S, S);
    /* Reallocate the ring only when its geometry changes. */
    if (ld->depth != ld->prefetch || ld->row_floats != row) {
        free_slots(ld);
        ld->slots = calloc((size_t)ld->prefetch, sizeof *ld->slots);
        if (!ld->slots) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_loader: no memory");
        ld->depth = ld->prefetch;
        for (int i = 0; i < ld->depth; i++) {
            ld->slots[i].images = vit_alloc(row * ld->batch * sizeof(float));
            ld->slots[i].labels = malloc((size_t)ld->batch * sizeof(int32_t));
            if (!ld->slots[i].images || !ld->slots[i].labels) {
                free_slots(ld);
                return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_loader: no memory for %d batches of [%d, %d, %d, %d]",
                                ld->prefetch, ld->batch, C, S, S);
            }
        }
    }
    ld->row_floats = row;
    ld->C = C;
    ld->S = S;
    ld->train = ld->tf.train;
    /* A random crop can zoom into a small region: keep full resolution then. */
    ld->decode_size = ld->tf.train && ld->tf.random_crop ? 0 : S;
    ld->chunk = ds->pixels ? 16 : 1;
    ld->epoch = epoch;
    ld->seed = ds->ctx->seed;

    if (ld->n != ds->n || !ld->order) {
        free(ld->order);
        ld->order = malloc((size_t)ds->n * sizeof *ld->order);
        if (!ld->order) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_loader: no memory for %lld indices", (long long)ds->n);
        ld->n = ds->n;
    }
    for (int64_t i = 0; i < ld->n; i++) ld->order[i] = i;
    if (ld->shuffle) {
        /* Fisher-Yates from counter draws keyed by (seed, epoch). */
        uint64_t key = vit_rng_key(ld->seed, 0x5A0FF1E0ull, (uint64_t)epoch);
        for (int64_t i = ld->n - 1; i > 0; i--) {
            int64_t j = (int64_t)(vit_hash64(key + (uint64_t)i * 0xD1B54A32D192ED03ull) % (uint64_t)(i + 1));
            int64_t t = ld->order[i];
            ld->order[i] = ld->order[j];
            ld->order[j] = t;
        }
    }
    /* Drop-last cuts the epoch to whole global batches (every shard then has
     * the same count, which data-parallel steps need); without it shard s
     * reads every position p * shards + s < n. */
    ld->shard = ld->shard_set;
    ld->shards = ld->shards_set;
    int64_t mine = ld->n > ld->shard ? (ld->n - ld->shard + ld->shards - 1) / ld->shards : 0;
    ld->nb = ld->drop_last ? ld->n / (ld->batch * ld->shards) : (mine + ld->batch - 1) / ld->batch;
    ld->n_items = ld->drop_last ? ld->nb * ld->batch : mine;

    if (ld->nthreads != ld->workers) {
        stop_threads(ld);
        if (ld->workers > 0) VIT_TRY(start_threads(ld, ld->workers));
    }
    pthread_mutex_lock(&ld->mu);
    for (int64_t b = 0; b < ld->depth; b++) reset_slot(ld, b);
    ld->next_item = 0;
    ld->next_out = 0;
    ld->started = 1;
    pthread_cond_broadcast(&ld->work_cv);
    pthread_mutex_unlock(&ld->mu);
    return VIT_OK;
}

vit_status vit_loader_num_batches(const vit_loader *ld, int64_t *count) {
    VIT_CHECK_ARG(ld, "vit_loader_num_batches: ld is NULL");
    VIT_CHECK_ARG(count, "vit_loader_num_batches: count is NULL");
    VIT_CHECK_ARG(ld->started, "vit_loader_num_batches: no epoch started (call vit_loader_start_epoch)");
    *count = ld->nb;
    return VIT_OK;
}

/* The next batch into img [rows, C, S, S] and lab [rows] in host memory. */
static vit_status next_into(vit_loader *ld, float *img, int32_t *lab, int64_t rows, int *count) {
    flush_warnings(ld);
    if (ld->next_out >= ld->nb) return VIT_OK; /* end of the epoch: count 0 */
    int64_t b = ld->next_out;
    slot *sl = &ld->slots[b % ld->depth];
    /* Without workers no slot is refilled, so the count comes from the batch itself. */
    int n = ld->nthreads == 0 ? (int)batch_count(ld, b) : sl->count;
    vit_status err = VIT_OK;
    if (ld->nthreads == 0) {
        /* No workers: decode straight into the caller's tensors. */
        for (int i = 0; i < n && err == VIT_OK; i++)
            err = produce(ld, &ld->main, b * ld->batch + i, img + (size_t)i * ld->row_floats, &lab[i]);
        pthread_mutex_lock(&ld->mu);
        ld->next_out++;
        pthread_mutex_unlock(&ld->mu);
        flush_warnings(ld);
        if (err != VIT_OK) return err;
    } else {
        pthread_mutex_lock(&ld->mu);
        while (sl->done < sl->count) pthread_cond_wait(&ld->done_cv, &ld->mu);
        pthread_mutex_unlock(&ld->mu);
        /* The slot cannot be reused before next_out moves past it. */
        if (sl->err == VIT_OK) {
            memcpy(img, sl->images, (size_t)n * ld->row_floats * sizeof(float));
            memcpy(lab, sl->labels, (size_t)n * sizeof(int32_t));
        }
        err = sl->err;
        char msg[MSG_CAP];
        memcpy(msg, sl->msg, sizeof msg);
        pthread_mutex_lock(&ld->mu);
        ld->next_out++;
        reset_slot(ld, b + ld->depth);
        pthread_cond_broadcast(&ld->work_cv);
        pthread_mutex_unlock(&ld->mu);
        flush_warnings(ld);
        if (err != VIT_OK) return vit_fail(err, "%s", msg);
    }
    if (n < rows) {
        memset(img + (size_t)n * ld->row_floats, 0, (size_t)(rows - n) * ld->row_floats * sizeof(float));
        for (int64_t i = n; i < rows; i++) lab[i] = -1;
    }
    *count = n;
    return VIT_OK;
}

vit_status vit_loader_next(vit_loader *ld, vit_tensor *images, vit_tensor *labels, int *count) {
    VIT_CHECK_ARG(count, "vit_loader_next: count is NULL");
    *count = 0;
    VIT_CHECK_ARG(ld, "vit_loader_next: ld is NULL");
    if (!ld->started) return vit_fail(VIT_ERR_STATE, "vit_loader_next: no epoch started (call vit_loader_start_epoch)");
    int64_t dims[4] = {-1, ld->C, ld->S, ld->S};
    VIT_TRY(vit_tensor_expect(images, "images", VIT_DTYPE_F32, 4, dims));
    int64_t rows = images->shape[0];
    if (rows < ld->batch)
        return vit_fail(VIT_ERR_SHAPE, "images: %lld rows for batches of %d", (long long)rows, ld->batch);
    int64_t ldims[1] = {rows};
    VIT_TRY(vit_tensor_expect(labels, "labels", VIT_DTYPE_I32, 1, ldims));
    void *img_data, *lab_data;
    if (images->device == VIT_DEVICE_CPU && labels->device == VIT_DEVICE_CPU) {
        VIT_TRY(vit_tensor_data(images, &img_data));
        VIT_TRY(vit_tensor_data(labels, &lab_data));
        return next_into(ld, img_data, lab_data, rows, count);
    }
    /* Device tensors: decoded into host staging, then uploaded. With
     * overlapped uploads the copy is queued behind the work already queued
     * (the step in flight) and this returns at once. */
    const size_t img_bytes = (size_t)rows * ld->row_floats * sizeof(float), lab_bytes = (size_t)rows * sizeof(int32_t);
    vit_backend *be = images->backend;
    const bool overlap = be->ops->upload_async && be->ops->host_alloc && labels->backend == be;
    stage_buf *b = &ld->stage[ld->stage_next];
    if (overlap) ld->stage_next ^= 1;
    VIT_TRY(stage_ready(b, overlap ? be : NULL, img_bytes + lab_bytes));
    int32_t *lab = (int32_t *)((char *)b->p + img_bytes);
    VIT_TRY(next_into(ld, b->p, lab, rows, count));
    if (!overlap) {
        VIT_TRY(vit_tensor_write(images, b->p, img_bytes));
        return vit_tensor_write(labels, lab, lab_bytes);
    }
    uint64_t ticket;
    VIT_TRY(be->ops->upload_async(be, images->data, b->p, img_bytes, &ticket));
    VIT_TRY(be->ops->upload_async(be, labels->data, lab, lab_bytes, &b->ticket));
    b->pending = true;
    return VIT_OK;
}
