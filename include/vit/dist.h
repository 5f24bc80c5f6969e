/*
 * libvit distributed data-parallel training: a communicator over MPI, attached
 * to a model, that averages the gradients across ranks during backward.
 *
 *   vit_comm *comm;  vit_comm_create(NULL, &comm);        (MPI_COMM_WORLD)
 *   int rank, size;  vit_comm_rank(comm, &rank);  vit_comm_size(comm, &size);
 *                    vit_model_set_comm(model, comm);      (rank 0's weights to every rank)
 *                    vit_loader_set_int(ld, VIT_LD_SHARD_INDEX, rank);
 *                    vit_loader_set_int(ld, VIT_LD_SHARD_COUNT, size);
 *   each step: forward, loss, backward (gradients averaged), optimizer step,
 *   as in one process; every rank ends each step with the same parameters.
 *
 * The header does not include mpi.h: a host program that owns an MPI
 * communicator passes the ADDRESS of its MPI_Comm variable as a const void *
 * (MPI_Comm is a pointer in Open MPI and an int in MPICH; its address is a
 * pointer in both). libvit must then be built against the same MPI as the
 * program (VIT_COMM_MPI_HANDLE_BYTES tells the size libvit expects).
 * docs/distributed.md has the launch recipes and what is identical to one
 * process. A model on a GPU (one GPU per rank) has its gradients and its
 * initial broadcast carried by NCCL, in device memory; MPI still starts the
 * ranks and hands NCCL its unique id.
 */
#ifndef VIT_DIST_H
#define VIT_DIST_H

#include "model.h"

VIT_EXTERN_C_BEGIN

typedef struct vit_comm vit_comm;

typedef enum vit_comm_param {
    VIT_COMM_RANK = 1,         /* int, read-only: this process's rank, 0..size-1 */
    VIT_COMM_SIZE = 2,         /* int, read-only: number of ranks */
    VIT_COMM_BUCKET_BYTES = 3, /* int >= 4096: gradient bytes per reduction bucket (1 MiB) */
    VIT_COMM_OVERLAP = 4,      /* int 0/1: reduce each bucket during backward as soon as its gradients are
                                  final (1); 0: one pass after backward, for comparison */
    VIT_COMM_TIMEOUT_MS = 5,   /* int >= 1: how long a collective waits for the other ranks before it fails
                                  with VIT_ERR_IO naming the operation (300000 = 5 min) */
    VIT_COMM_MPI = 6,          /* int, read-only: 1 when this communicator runs on MPI, 0 for a build
                                  without MPI (one rank) */
    VIT_COMM_MPI_HANDLE_BYTES = 7, /* int, read-only: sizeof(MPI_Comm) in the MPI libvit was built with (0 without) */
    VIT_COMM_NCCL_MIN_RANKS = 8, /* int 1 or 2: a GPU model's gradients are averaged through NCCL from this many
                                    ranks on (2; 1 runs NCCL with one rank, which checks the path on one GPU);
                                    read when a model is attached */
    VIT_COMM_NCCL = 9              /* int, read-only: 1 once this communicator has opened NCCL for a GPU model */
} vit_comm_param;

/* Accumulated counters since creation (vit_comm_get_float). */
typedef enum vit_comm_stat {
    VIT_COMM_STAT_WAIT_SECONDS = 1,   /* time spent waiting for reductions to finish: the exposed cost */
    VIT_COMM_STAT_REDUCE_SECONDS = 2, /* from the first bucket's start to the last bucket's end, per backward, summed */
    VIT_COMM_STAT_BYTES = 3,          /* gradient bytes reduced by this rank (parameters padded to 16 floats) */
    VIT_COMM_STAT_BACKWARDS = 4       /* backward passes whose gradients were averaged */
} vit_comm_stat;

/* The number of ranks an MPI launcher (mpirun or mpiexec of Open MPI, MPICH
 * or MVAPICH) started this process among, from its environment; 0 when no
 * launcher started it. Initialises nothing: a program may ask it to decide
 * whether to create a communicator at all. */
VIT_API int vit_comm_launch_size(void);

/* A communicator over MPI. mpi_comm NULL: MPI_COMM_WORLD; else the address of
 * the caller's MPI_Comm, which is duplicated (the caller may free its own).
 * If MPI is not initialised yet, libvit initialises it here
 * (MPI_THREAD_FUNNELED) and finalises it when the last communicator it made
 * is destroyed; a program that initialises MPI itself finalises it itself.
 * libvit calls MPI only inside vit_* calls, from the calling thread.
 * A build without MPI (-Dmpi=disabled) gives a one-rank communicator for
 * mpi_comm NULL in a process not started by an MPI launcher, and refuses
 * with VIT_ERR_UNSUPPORTED a caller's communicator or a launch of more than
 * one rank. */
VIT_API vit_status vit_comm_create(const void *mpi_comm, vit_comm **out);
/* Models still attached keep it alive until they are detached or destroyed. NULL is a no-op. */
VIT_API void vit_comm_destroy(vit_comm *comm);
VIT_API vit_status vit_comm_rank(const vit_comm *comm, int *rank);
VIT_API vit_status vit_comm_size(const vit_comm *comm, int *size);
VIT_API vit_status vit_comm_set_int(vit_comm *comm, vit_comm_param param, int64_t value);
VIT_API vit_status vit_comm_get_int(const vit_comm *comm, vit_comm_param param, int64_t *value);
VIT_API vit_status vit_comm_get_float(const vit_comm *comm, vit_comm_stat stat, double *value);

/* Sums count doubles across ranks in place; every rank gets the same bits.
 * For metrics (loss sums, correct counts) and agreeing on a decision. */
VIT_API vit_status vit_comm_allreduce_sum(vit_comm *comm, double *values, int count);
/* Waits until every rank has called it (within VIT_COMM_TIMEOUT_MS). */
VIT_API vit_status vit_comm_barrier(vit_comm *comm);
/* Ends every process of the communicator's job (MPI_Abort) with exit code
 * code: for a program that met an error on one rank and must not leave the
 * others waiting. libvit itself never calls it. Returns only without MPI. */
VIT_API void vit_comm_abort(vit_comm *comm, int code);

/* Attaches the model to comm (NULL detaches): rank 0's parameters and dropout
 * stream are copied to every rank now (a collective: every rank calls it),
 * and from then on vit_model_backward and vit_model_backward_logits return
 * the gradients averaged over the ranks, bucket by bucket, overlapped with
 * the backward pass. Each rank's dropout masks are drawn from its own
 * stream. A one-rank communicator changes nothing. */
VIT_API vit_status vit_model_set_comm(vit_model *model, vit_comm *comm);

VIT_EXTERN_C_END

#endif
