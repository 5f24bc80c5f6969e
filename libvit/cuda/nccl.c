/*
 * NCCL for data-parallel training (the table in cuda/module.h; dist/nccl.c
 * is its caller). Built into libvit-cuda.so only, and only with -Dnccl:
 * libvit.so.0 never links NCCL.
 *
 * One NCCL communicator per libvit communicator, on the GPU of the backend
 * that opened it, with a stream of its own: a bucket's reduction waits
 * (cudaStreamWaitEvent) for what the backend's stream had queued when the
 * bucket became final, then runs beside the rest of backward, and its end is
 * an event the host polls. The gradients are fp32 (the master gradients of
 * every precision), reduced with ncclAvg.
 *
 * The communicator is non-blocking (ncclConfig_t.blocking = 0): a call that
 * needs the other ranks (creation, the first collective's connections,
 * finalisation) returns ncclInProgress, and settle() polls it against the
 * timeout, so that a rank that died never leaves the others blocked in NCCL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nccl.h>

#include "cuda/cuda.h"
#include "cuda/module.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "libvit needs NCCL 2.14 or newer (non-blocking communicators, ncclAvg)"
#endif

struct vit_cuda_nccl {
    ncclComm_t comm;
    int device, rank, size;
    int64_t timeout_ms;
    cudaStream_t stream; /* NCCL's own */
    cudaEvent_t ready;   /* recorded on the backend's stream when a collective starts */
    cudaEvent_t *done;   /* per slot: recorded on NCCL's stream after the collective */
    int slots;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static vit_status nccl_fail(vit_cuda_nccl *nc, ncclResult_t r, const char *what) {
    const char *detail = nc && nc->comm ? ncclGetLastError(nc->comm) : NULL;
    vit_status s = r == ncclInvalidArgument || r == ncclInvalidUsage ? VIT_ERR_INVALID_ARGUMENT
                   : r == ncclUnhandledCudaError && !nc             ? VIT_ERR_UNSUPPORTED
                                                                    : VIT_ERR_IO;
    return vit_fail(s, "NCCL: %s: %s (%d)%s%s", what, ncclGetErrorString(r), (int)r, detail && *detail ? ": " : "",
                    detail ? detail : "");
}

/* Waits (polling) until a call that returned ncclInProgress has finished,
 * at most the communicator's timeout. */
static vit_status settle(vit_cuda_nccl *nc, ncclResult_t r, const char *what) {
    const double deadline = now_s() + (double)nc->timeout_ms * 1e-3;
    while (r == ncclInProgress) {
        if (now_s() > deadline)
            return vit_fail(VIT_ERR_IO, "NCCL: %s: no answer from the other ranks after %.0f s (VIT_COMM_TIMEOUT_MS "
                                        "%lld): a rank has died or stalled", what, (double)nc->timeout_ms * 1e-3,
                            (long long)nc->timeout_ms);
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
        if (ncclCommGetAsyncError(nc->comm, &r) != ncclSuccess) break;
    }
    return r == ncclSuccess ? VIT_OK : nccl_fail(nc, r, what);
}

static vit_status nccl_unique_id(void *id) {
    ncclResult_t r = ncclGetUniqueId((ncclUniqueId *)id);
    return r == ncclSuccess ? VIT_OK : nccl_fail(NULL, r, "ncclGetUniqueId");
}

static void nccl_destroy(vit_cuda_nccl *nc, bool abort) {
    if (!nc) return;
    cudaSetDevice(nc->device);
    if (nc->comm) {
        bool clean = !abort && settle(nc, ncclCommFinalize(nc->comm), "finalising the communicator") == VIT_OK;
        if (clean) ncclCommDestroy(nc->comm);
        else ncclCommAbort(nc->comm); /* a peer may be gone: nothing waits for it */
    }
    for (int i = 0; i < nc->slots; i++)
        if (nc->done[i]) cudaEventDestroy(nc->done[i]);
    free(nc->done);
    if (nc->ready) cudaEventDestroy(nc->ready);
    if (nc->stream) cudaStreamDestroy(nc->stream);
    free(nc);
}

static vit_status nccl_open(vit_backend *be, const void *id, int rank, int size, int64_t timeout_ms,
                            vit_cuda_nccl **out) {
    *out = NULL;
    vit_cuda_nccl *nc = calloc(1, sizeof *nc);
    if (!nc) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "NCCL: no host memory for the communicator");
    nc->device = vit_cuda_of(be)->device;
    nc->rank = rank, nc->size = size, nc->timeout_ms = timeout_ms;
    vit_status s = vit_cuda_check(cudaSetDevice(nc->device), "NCCL: selecting the device");
    if (s == VIT_OK)
        s = vit_cuda_check(cudaStreamCreateWithFlags(&nc->stream, cudaStreamNonBlocking), "NCCL: creating its stream");
    if (s == VIT_OK)
        s = vit_cuda_check(cudaEventCreateWithFlags(&nc->ready, cudaEventDisableTiming), "NCCL: creating an event");
    if (s == VIT_OK) {
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0;
        ncclUniqueId uid;
        memcpy(&uid, id, sizeof uid);
        ncclResult_t r = ncclCommInitRankConfig(&nc->comm, size, uid, rank, &cfg);
        s = nc->comm || r == ncclSuccess ? settle(nc, r, "creating the communicator (ncclCommInitRankConfig)")
                                         : nccl_fail(nc, r, "creating the communicator (ncclCommInitRankConfig)");
    }
    if (s != VIT_OK) {
        nccl_destroy(nc, true);
        return s;
    }
    *out = nc;
    return VIT_OK;
}

static vit_status nccl_reserve(vit_cuda_nccl *nc, int slots) {
    if (slots <= nc->slots) return VIT_OK;
    cudaEvent_t *done = realloc(nc->done, (size_t)slots * sizeof *done);
    if (!done) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "NCCL: no memory for %d events", slots);
    nc->done = done;
    VIT_CUDA_TRY(cudaSetDevice(nc->device), "NCCL: selecting the device");
    for (; nc->slots < slots; nc->slots++) {
        done[nc->slots] = NULL;
        VIT_CUDA_TRY(cudaEventCreateWithFlags(&done[nc->slots], cudaEventDisableTiming), "NCCL: creating an event");
    }
    return VIT_OK;
}

/* The NCCL stream waits for what be's stream has queued so far. */
static vit_status after_backend(vit_cuda_nccl *nc, vit_backend *be) {
    if (vit_cuda_of(be)->device != nc->device)
        return vit_fail(VIT_ERR_UNSUPPORTED, "NCCL: this communicator's NCCL runs on GPU %d, and this model is on GPU "
                                             "%d: one GPU per rank (a communicator per GPU)", nc->device,
                        vit_cuda_of(be)->device);
    VIT_CUDA_TRY(cudaSetDevice(nc->device), "NCCL: selecting the device");
    VIT_CUDA_TRY(cudaEventRecord(nc->ready, vit_cuda_of(be)->stream), "NCCL: ordering after the backend's stream");
    return vit_cuda_check(cudaStreamWaitEvent(nc->stream, nc->ready, 0), "NCCL: ordering after the backend's stream");
}

static vit_status nccl_average(vit_cuda_nccl *nc, vit_backend *be, int slot, float *buf, int64_t count) {
    VIT_TRY(after_backend(nc, be));
    VIT_TRY(settle(nc, ncclAllReduce(buf, buf, (size_t)count, ncclFloat32, ncclAvg, nc->comm, nc->stream),
                   "ncclAllReduce of a gradient bucket"));
    return vit_cuda_check(cudaEventRecord(nc->done[slot], nc->stream), "NCCL: recording a reduction's end");
}

static vit_status nccl_broadcast(vit_cuda_nccl *nc, vit_backend *be, int slot, void *buf, int64_t bytes) {
    VIT_TRY(after_backend(nc, be));
    VIT_TRY(settle(nc, ncclBroadcast(buf, buf, (size_t)bytes, ncclUint8, 0, nc->comm, nc->stream),
                   "ncclBroadcast of the parameters"));
    return vit_cuda_check(cudaEventRecord(nc->done[slot], nc->stream), "NCCL: recording a broadcast's end");
}

static vit_status nccl_test(vit_cuda_nccl *nc, int slot, bool *done) {
    cudaError_t e = cudaEventQuery(nc->done[slot]);
    *done = e == cudaSuccess;
    if (e == cudaSuccess) return VIT_OK;
    if (e != cudaErrorNotReady) return vit_cuda_check(e, "NCCL: waiting for a collective");
    ncclResult_t r = ncclSuccess;
    ncclResult_t q = ncclCommGetAsyncError(nc->comm, &r);
    if (q != ncclSuccess) return nccl_fail(nc, q, "ncclCommGetAsyncError");
    return r == ncclSuccess || r == ncclInProgress ? VIT_OK : nccl_fail(nc, r, "a collective in flight");
}

const vit_cuda_nccl_ops vit_cuda_nccl_ops_table = {
    .id_bytes = sizeof(ncclUniqueId),
    .unique_id = nccl_unique_id,
    .open = nccl_open,
    .reserve = nccl_reserve,
    .average = nccl_average,
    .broadcast = nccl_broadcast,
    .test = nccl_test,
    .destroy = nccl_destroy,
};
