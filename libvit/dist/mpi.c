/* The MPI transport: non-blocking collectives on a duplicate of the caller's
 * communicator, errors returned (MPI_ERRORS_RETURN), never fatal. Built only
 * with -Dmpi (VIT_HAVE_MPI); otherwise vit_mpi_open refuses. */
#include <stdio.h>
#include <stdlib.h>

#include "dist/dist.h"

#ifdef VIT_HAVE_MPI
#include <limits.h>
#include <pthread.h>

#include <mpi.h>

typedef struct pending {
    vit_coll op;
    void *buf;
    int64_t count;
} pending;

typedef struct mpi_state {
    MPI_Comm comm;
    MPI_Request *req;
    pending *what;
    int slots;
    bool owns_mpi; /* libvit called MPI_Init for this communicator */
} mpi_state;

/* Communicators made while libvit owns MPI: the last one out finalises. */
static pthread_mutex_t owner_mu = PTHREAD_MUTEX_INITIALIZER;
static int owned_comms;

static vit_status mpi_error(vit_comm *c, int code, const char *call) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", code);
    return vit_comm_fail(c, "%s: %s", call, text);
}

static vit_status mpi_reserve(vit_comm *c, int slots) {
    mpi_state *st = c->state;
    if (slots <= st->slots) return VIT_OK;
    MPI_Request *req = realloc(st->req, (size_t)slots * sizeof *req);
    if (req) st->req = req;
    pending *what = req ? realloc(st->what, (size_t)slots * sizeof *what) : NULL;
    if (!what) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "communicator: no memory for %d requests", slots);
    st->what = what;
    for (int i = st->slots; i < slots; i++) st->req[i] = MPI_REQUEST_NULL;
    st->slots = slots;
    return VIT_OK;
}

static vit_status mpi_start(vit_comm *c, int slot, vit_coll op, void *buf, int64_t count) {
    mpi_state *st = c->state;
    if (count > INT_MAX)
        return vit_fail(VIT_ERR_UNSUPPORTED, "communicator: %lld elements in one collective (at most %d)",
                        (long long)count, INT_MAX);
    int n = (int)count, rc = MPI_SUCCESS;
    MPI_Request *r = &st->req[slot];
    switch (op) {
    case VIT_COLL_AVG_F32: rc = MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, st->comm, r); break;
    case VIT_COLL_SUM_F64: rc = MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, st->comm, r); break;
    case VIT_COLL_BCAST: rc = MPI_Ibcast(buf, n, MPI_BYTE, 0, st->comm, r); break;
    case VIT_COLL_BARRIER: rc = MPI_Ibarrier(st->comm, r); break;
    }
    if (rc != MPI_SUCCESS) return mpi_error(c, rc, "starting a collective");
    st->what[slot] = (pending){op, buf, count};
    return VIT_OK;
}

static vit_status mpi_test(vit_comm *c, int slot, bool *done) {
    mpi_state *st = c->state;
    int flag = 0;
    int rc = MPI_Test(&st->req[slot], &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_error(c, rc, "MPI_Test");
    *done = flag != 0;
    pending *p = &st->what[slot];
    if (flag && p->op == VIT_COLL_AVG_F32 && p->buf) {
        /* Division, not a product with 1 / size: exact when the sum is, and
         * the same bits on every rank since every rank holds the same sum. */
        float *x = p->buf, size = (float)c->size;
        for (int64_t i = 0; i < p->count; i++) x[i] /= size;
        p->buf = NULL;
    }
    return VIT_OK;
}

static void mpi_abort(vit_comm *c, int code) {
    mpi_state *st = c->state;
    MPI_Abort(st->comm, code);
}

static void mpi_destroy(vit_comm *c) {
    mpi_state *st = c->state;
    if (!st) return;
    /* After a failure requests may still be in flight and a peer may be gone:
     * freeing the communicator or finalising could block, so neither is done. */
    if (!c->failed) {
        if (st->comm != MPI_COMM_NULL) MPI_Comm_free(&st->comm);
        pthread_mutex_lock(&owner_mu);
        if (st->owns_mpi && --owned_comms == 0) {
            int finalized = 0;
            MPI_Finalized(&finalized);
            if (!finalized) MPI_Finalize();
        }
        pthread_mutex_unlock(&owner_mu);
    }
    free(st->req);
    free(st->what);
    free(st);
    c->state = NULL;
}

static const vit_transport mpi_transport = {
    .name = "mpi",
    .reserve = mpi_reserve,
    .start = mpi_start,
    .test = mpi_test,
    .abort = mpi_abort,
    .destroy = mpi_destroy,
};

vit_status vit_mpi_open(vit_comm *c, const void *mpi_comm) {
    int initialized = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return vit_fail(VIT_ERR_STATE, "vit_comm_create: MPI has already been finalised in this process");
    mpi_state *st = calloc(1, sizeof *st);
    if (!st) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_comm_create: no memory");
    st->comm = MPI_COMM_NULL;
    pthread_mutex_lock(&owner_mu);
    MPI_Initialized(&initialized);
    if (!initialized) {
        if (mpi_comm) {
            pthread_mutex_unlock(&owner_mu);
            free(st);
            return vit_fail(VIT_ERR_STATE, "vit_comm_create: a communicator was passed but MPI is not initialised");
        }
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            pthread_mutex_unlock(&owner_mu);
            free(st);
            return vit_fail(VIT_ERR_IO, "vit_comm_create: MPI_Init_thread failed");
        }
        owned_comms = 0;
        st->owns_mpi = true;
    } else {
        st->owns_mpi = owned_comms > 0; /* libvit initialised it for an earlier communicator */
    }
    if (st->owns_mpi) owned_comms++;
    pthread_mutex_unlock(&owner_mu);
    c->host = &mpi_transport;
    c->state = st;
    MPI_Comm base = mpi_comm ? *(const MPI_Comm *)mpi_comm : MPI_COMM_WORLD;
    int rc = MPI_Comm_dup(base, &st->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(st->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(st->comm, &c->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(st->comm, &c->size);
    if (rc != MPI_SUCCESS) {
        vit_status s = mpi_error(c, rc, "vit_comm_create");
        c->failed = false; /* nothing in flight: release normally */
        return s;
    }
    return VIT_OK;
}

int vit_mpi_handle_bytes(void) { return (int)sizeof(MPI_Comm); }

#else

vit_status vit_mpi_open(vit_comm *c, const void *mpi_comm) {
    (void)c;
    if (mpi_comm)
        return vit_fail(VIT_ERR_UNSUPPORTED, "vit_comm_create: this libvit was built without MPI (-Dmpi=disabled, or "
                                             "no MPI found at build time): it cannot use the caller's communicator");
    return vit_fail(VIT_ERR_UNSUPPORTED, "vit_comm_create: this libvit was built without MPI (-Dmpi=disabled, or no "
                                         "MPI found at build time): it cannot join the %d ranks the launcher started; "
                                         "rebuild with -Dmpi=enabled", vit_comm_launch_size());
}

int vit_mpi_handle_bytes(void) { return 0; }

#endif
