/*
 * Data-parallel internals: the communicator, its transports and the model's
 * gradient buckets (docs/distributed.md).
 *
 * A communicator talks through a transport, a small table of non-blocking
 * collectives on numbered request slots. Control traffic (broadcasts,
 * metrics, barriers) and gradients in host memory go through the host
 * transport: MPI, or "self" for one rank. Gradients and parameters in GPU
 * memory go through the device transport, NCCL (dist/nccl.c over the CUDA
 * module's table, cuda/nccl.c): ncclAllReduce with ncclAvg, ordered after
 * the backend's stream, its unique id broadcast over the host transport. A
 * GPU model is never staged through host memory: without NCCL it trains on
 * one rank only. Every wait is bounded by VIT_COMM_TIMEOUT_MS.
 */
#ifndef VIT_DIST_INTERNAL_H
#define VIT_DIST_INTERNAL_H

#include <stdbool.h>

#include "core/core.h"
#include "vit/dist.h"

typedef enum vit_coll {
    VIT_COLL_AVG_F32 = 0, /* float buf[count]: the mean over ranks, in place */
    VIT_COLL_SUM_F64 = 1, /* double buf[count]: the sum over ranks, in place */
    VIT_COLL_BCAST = 2,   /* count bytes from rank 0 */
    VIT_COLL_BARRIER = 3
} vit_coll;

typedef struct vit_transport {
    const char *name;    /* "mpi", "self", "nccl" */
    /* At least slots request slots, numbered 0..slots-1 (grows, keeps none in flight). */
    vit_status (*reserve)(vit_comm *c, int slots);
    /* Starts a collective on slot; every rank starts the same collectives in the same order. */
    vit_status (*start)(vit_comm *c, int slot, vit_coll op, void *buf, int64_t count);
    /* Progress; *done once the slot's collective has finished (its buffer then holds the result). */
    vit_status (*test)(vit_comm *c, int slot, bool *done);
    void (*abort)(vit_comm *c, int code);
    void (*destroy)(vit_comm *c);
} vit_transport;

struct vit_comm {
    const vit_transport *host;   /* control, and gradients in host memory */
    const vit_transport *device; /* gradients in device memory (NCCL); NULL until a GPU model attaches */
    void *state;                 /* the host transport's */
    /* The device transport's: the CUDA module's NCCL table, the NCCL
     * communicator, and the backend whose stream the next collective follows. */
    const struct vit_cuda_nccl_ops *nccl_ops;
    struct vit_cuda_nccl *nccl;
    struct vit_backend *nccl_be;
    int nccl_min_ranks;
    int rank, size;
    int64_t bucket_bytes, timeout_ms;
    int overlap;
    bool failed;                 /* a collective failed or timed out: every later one fails at once */
    char failure[256];
    int refs;                    /* the creator's, and one per attached model */
    double wait_s, reduce_s, bytes, backwards;
};

/* The MPI transport (dist/mpi.c); without MPI: VIT_ERR_UNSUPPORTED. */
vit_status vit_mpi_open(vit_comm *c, const void *mpi_comm);
int vit_mpi_handle_bytes(void); /* sizeof(MPI_Comm), 0 without MPI */
extern const vit_transport vit_transport_self;
/* The NCCL transport (dist/nccl.c): opens c->device for be's GPU, a
 * collective; VIT_ERR_UNSUPPORTED when the CUDA module has no NCCL. */
vit_status vit_nccl_open(vit_comm *c, struct vit_backend *be);

/* Waits for slots [first, first + n) of transport tr (a timed-out or failed
 * wait marks the communicator failed); what names the operation for the message. */
vit_status vit_comm_wait(vit_comm *c, const vit_transport *tr, int first, int n, const char *what);
/* Start + wait, for the blocking collectives. */
vit_status vit_comm_run(vit_comm *c, vit_coll op, void *buf, int64_t count, const char *what);
/* Marks the communicator failed with this message; returns VIT_ERR_IO. */
vit_status vit_comm_fail(vit_comm *c, const char *fmt, ...) VIT_PRINTF(2, 3);
void vit_comm_release(vit_comm *c);
double vit_dist_now(void);

/* The gradient buckets of a model (dist/grads.c). */
struct vit_model;
struct vit_value;
/* Backward from out (seed gradient as vit_tape_backward), with the
 * gradients averaged over the model's communicator when it has one. */
vit_status vit_dist_backward(struct vit_model *m, struct vit_value *out, const float *seed_grad);
void vit_dist_detach(struct vit_model *m);

#endif
