/* The communicator (vit/dist.h): creation over a transport, settings,
 * statistics, and the bounded wait every collective goes through. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/dist.h"

double vit_dist_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------- the one-rank transport */
static vit_status self_reserve(vit_comm *c, int slots) {
    (void)c, (void)slots;
    return VIT_OK;
}

static vit_status self_start(vit_comm *c, int slot, vit_coll op, void *buf, int64_t count) {
    (void)c, (void)slot, (void)op, (void)buf, (void)count; /* one rank: every result is the input */
    return VIT_OK;
}

static vit_status self_test(vit_comm *c, int slot, bool *done) {
    (void)c, (void)slot;
    *done = true;
    return VIT_OK;
}

static void self_abort(vit_comm *c, int code) { (void)c, (void)code; }
static void self_destroy(vit_comm *c) { (void)c; }

const vit_transport vit_transport_self = {
    .name = "self",
    .reserve = self_reserve,
    .start = self_start,
    .test = self_test,
    .abort = self_abort,
    .destroy = self_destroy,
};

/* --------------------------------------------------------------- waiting */
vit_status vit_comm_fail(vit_comm *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->failure, sizeof c->failure, fmt, ap);
    va_end(ap);
    c->failed = true;
    return vit_fail(VIT_ERR_IO, "rank %d of %d: %s", c->rank, c->size, c->failure);
}

/* Polls with a growing pause (up to 1 ms): a rank that waits for a slower
 * one must not take the processor it computes on when ranks share cores. */
vit_status vit_comm_wait(vit_comm *c, const vit_transport *tr, int first, int n, const char *what) {
    if (c->failed)
        return vit_fail(VIT_ERR_IO, "rank %d of %d: %s: the communicator failed earlier (%s)", c->rank, c->size, what,
                        c->failure);
    double start = vit_dist_now(), deadline = start + (double)c->timeout_ms * 1e-3;
    long pause_ns = 0;
    for (int i = first; i < first + n;) {
        bool done = false;
        vit_status s = tr->test(c, i, &done);
        if (s != VIT_OK) {
            vit_error_prefix("%s", what);
            return s;
        }
        if (done) {
            i++;
            pause_ns = 0;
            continue;
        }
        if (vit_dist_now() > deadline)
            return vit_comm_fail(c, "%s: no answer from the other ranks after %.0f s (VIT_COMM_TIMEOUT_MS %lld): a "
                                    "rank has died or stalled", what, vit_dist_now() - start, (long long)c->timeout_ms);
        if (pause_ns) {
            struct timespec ts = {0, pause_ns};
            nanosleep(&ts, NULL);
        }
        pause_ns = pause_ns ? (pause_ns < 1000000 ? pause_ns * 2 : pause_ns) : 1000;
    }
    return VIT_OK;
}

vit_status vit_comm_run(vit_comm *c, vit_coll op, void *buf, int64_t count, const char *what) {
    if (c->failed) return vit_comm_wait(c, c->host, 0, 0, what);
    VIT_TRY(c->host->reserve(c, 1));
    /* Broadcasts go in pieces of at most 1 GiB (MPI counts are int). */
    const int64_t piece = op == VIT_COLL_BCAST ? (int64_t)1 << 30 : count;
    int64_t done = 0;
    do {
        int64_t n = count - done < piece ? count - done : piece;
        void *at = op == VIT_COLL_BCAST ? (char *)buf + done : buf;
        vit_status s = c->host->start(c, 0, op, at, n);
        if (s != VIT_OK) {
            vit_error_prefix("%s", what);
            return s;
        }
        VIT_TRY(vit_comm_wait(c, c->host, 0, 1, what));
        done += n;
    } while (done < count);
    return VIT_OK;
}

/* ---------------------------------------------------------------- public */
int vit_comm_launch_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        char *end;
        long n = v ? strtol(v, &end, 10) : 0;
        if (v && *v && !*end && n > 0 && n < (1L << 30)) return (int)n;
    }
    return 0;
}

vit_status vit_comm_create(const void *mpi_comm, vit_comm **out) {
    VIT_CHECK_ARG(out, "vit_comm_create: out is NULL");
    *out = NULL;
    vit_comm *c = calloc(1, sizeof *c);
    if (!c) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_comm_create: no memory");
    c->bucket_bytes = 1 << 20;
    c->timeout_ms = 300000;
    c->overlap = 1;
    c->refs = 1;
    c->size = 1;
    c->nccl_min_ranks = 2;
    vit_status s = VIT_OK;
    if (mpi_comm || vit_mpi_handle_bytes() || vit_comm_launch_size() > 1) {
        s = vit_mpi_open(c, mpi_comm);
    } else {
        c->host = &vit_transport_self; /* a build without MPI, not launched as several ranks */
    }
    if (s != VIT_OK) {
        if (c->host) c->host->destroy(c);
        free(c);
        return s;
    }
    *out = c;
    return VIT_OK;
}

void vit_comm_release(vit_comm *c) {
    if (!c || --c->refs > 0) return;
    if (c->device) c->device->destroy(c); /* NCCL before MPI, which may be finalised */
    c->host->destroy(c);
    free(c);
}

void vit_comm_destroy(vit_comm *c) { vit_comm_release(c); }

vit_status vit_comm_rank(const vit_comm *c, int *rank) {
    VIT_CHECK_ARG(c, "vit_comm_rank: comm is NULL");
    VIT_CHECK_ARG(rank, "vit_comm_rank: rank is NULL");
    *rank = c->rank;
    return VIT_OK;
}

vit_status vit_comm_size(const vit_comm *c, int *size) {
    VIT_CHECK_ARG(c, "vit_comm_size: comm is NULL");
    VIT_CHECK_ARG(size, "vit_comm_size: size is NULL");
    *size = c->size;
    return VIT_OK;
}

vit_status vit_comm_set_int(vit_comm *c, vit_comm_param param, int64_t v) {
    VIT_CHECK_ARG(c, "vit_comm_set_int: comm is NULL");
    switch (param) {
    case VIT_COMM_BUCKET_BYTES:
        VIT_CHECK_ARG(v >= 4096 && v <= ((int64_t)1 << 32), "VIT_COMM_BUCKET_BYTES: %lld is out of range 4096..2^32",
                      (long long)v);
        c->bucket_bytes = v;
        return VIT_OK;
    case VIT_COMM_OVERLAP:
        VIT_CHECK_ARG(v == 0 || v == 1, "VIT_COMM_OVERLAP: %lld (0 or 1 accepted)", (long long)v);
        c->overlap = (int)v;
        return VIT_OK;
    case VIT_COMM_TIMEOUT_MS:
        VIT_CHECK_ARG(v >= 1 && v <= ((int64_t)1 << 40), "VIT_COMM_TIMEOUT_MS: %lld is out of range 1..2^40",
                      (long long)v);
        c->timeout_ms = v;
        return VIT_OK;
    case VIT_COMM_NCCL_MIN_RANKS:
        VIT_CHECK_ARG(v == 1 || v == 2, "VIT_COMM_NCCL_MIN_RANKS: %lld (1 or 2 accepted)", (long long)v);
        c->nccl_min_ranks = (int)v;
        return VIT_OK;
    case VIT_COMM_RANK:
    case VIT_COMM_SIZE:
    case VIT_COMM_MPI:
    case VIT_COMM_MPI_HANDLE_BYTES:
    case VIT_COMM_NCCL:
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_comm_set_int: parameter %d is read-only", (int)param);
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_comm_set_int: unknown parameter %d", (int)param);
}

vit_status vit_comm_get_int(const vit_comm *c, vit_comm_param param, int64_t *v) {
    VIT_CHECK_ARG(c, "vit_comm_get_int: comm is NULL");
    VIT_CHECK_ARG(v, "vit_comm_get_int: value is NULL");
    switch (param) {
    case VIT_COMM_RANK: *v = c->rank; return VIT_OK;
    case VIT_COMM_SIZE: *v = c->size; return VIT_OK;
    case VIT_COMM_BUCKET_BYTES: *v = c->bucket_bytes; return VIT_OK;
    case VIT_COMM_OVERLAP: *v = c->overlap; return VIT_OK;
    case VIT_COMM_TIMEOUT_MS: *v = c->timeout_ms; return VIT_OK;
    case VIT_COMM_MPI: *v = c->host != &vit_transport_self; return VIT_OK;
    case VIT_COMM_MPI_HANDLE_BYTES: *v = vit_mpi_handle_bytes(); return VIT_OK;
    case VIT_COMM_NCCL_MIN_RANKS: *v = c->nccl_min_ranks; return VIT_OK;
    case VIT_COMM_NCCL: *v = c->device != NULL; return VIT_OK;
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_comm_get_int: unknown parameter %d", (int)param);
}

vit_status vit_comm_get_float(const vit_comm *c, vit_comm_stat stat, double *v) {
    VIT_CHECK_ARG(c, "vit_comm_get_float: comm is NULL");
    VIT_CHECK_ARG(v, "vit_comm_get_float: value is NULL");
    switch (stat) {
    case VIT_COMM_STAT_WAIT_SECONDS: *v = c->wait_s; return VIT_OK;
    case VIT_COMM_STAT_REDUCE_SECONDS: *v = c->reduce_s; return VIT_OK;
    case VIT_COMM_STAT_BYTES: *v = c->bytes; return VIT_OK;
    case VIT_COMM_STAT_BACKWARDS: *v = c->backwards; return VIT_OK;
    }
    return vit_fail(VIT_ERR_INVALID_ARGUMENT, "vit_comm_get_float: unknown statistic %d", (int)stat);
}

vit_status vit_comm_allreduce_sum(vit_comm *c, double *values, int count) {
    VIT_CHECK_ARG(c, "vit_comm_allreduce_sum: comm is NULL");
    VIT_CHECK_ARG(count >= 0, "vit_comm_allreduce_sum: count %d is negative", count);
    VIT_CHECK_ARG(values || count == 0, "vit_comm_allreduce_sum: values is NULL");
    if (count == 0) return VIT_OK;
    return vit_comm_run(c, VIT_COLL_SUM_F64, values, count, "vit_comm_allreduce_sum");
}

vit_status vit_comm_barrier(vit_comm *c) {
    VIT_CHECK_ARG(c, "vit_comm_barrier: comm is NULL");
    return vit_comm_run(c, VIT_COLL_BARRIER, NULL, 0, "vit_comm_barrier");
}

void vit_comm_abort(vit_comm *c, int code) {
    if (c) c->host->abort(c, code);
}
