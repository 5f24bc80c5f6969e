/* The device transport: NCCL, for models on a GPU (one GPU per rank). The
 * NCCL calls, its stream and events live in the CUDA module (cuda/nccl.c),
 * reached through the table it hands over at load (cuda/module.h), so
 * libvit.so.0 links neither CUDA nor NCCL. MPI (the host transport) starts
 * the ranks and carries NCCL's unique id from rank 0, as llm.c does. */
#include <stdlib.h>

#include "cuda/module.h"
#include "dist/dist.h"

static vit_status nccl_reserve(vit_comm *c, int slots) { return c->nccl_ops->reserve(c->nccl, slots); }

/* On the stream of c->nccl_be (set by the caller before each use). */
static vit_status nccl_start(vit_comm *c, int slot, vit_coll op, void *buf, int64_t count) {
    switch (op) {
    case VIT_COLL_AVG_F32: return c->nccl_ops->average(c->nccl, c->nccl_be, slot, buf, count);
    case VIT_COLL_BCAST: return c->nccl_ops->broadcast(c->nccl, c->nccl_be, slot, buf, count);
    case VIT_COLL_SUM_F64:
    case VIT_COLL_BARRIER: break; /* host traffic: the host transport's */
    }
    return vit_fail(VIT_ERR_INTERNAL, "NCCL transport: collective %d is the host transport's", (int)op);
}

static vit_status nccl_test(vit_comm *c, int slot, bool *done) { return c->nccl_ops->test(c->nccl, slot, done); }

static void nccl_abort(vit_comm *c, int code) { c->host->abort(c, code); }

static void nccl_destroy(vit_comm *c) {
    c->nccl_ops->destroy(c->nccl, c->failed);
    c->nccl = NULL;
    c->device = NULL;
}

static const vit_transport nccl_transport = {
    .name = "nccl",
    .reserve = nccl_reserve,
    .start = nccl_start,
    .test = nccl_test,
    .abort = nccl_abort,
    .destroy = nccl_destroy,
};

vit_status vit_nccl_open(vit_comm *c, vit_backend *be) {
    if (c->device) return VIT_OK; /* opened by an earlier model; cuda/nccl.c checks it is the same GPU */
    const char *module = "";
    const vit_cuda_nccl_ops *ops = vit_cuda_module_nccl(&module);
    if (!ops)
        return vit_fail(VIT_ERR_UNSUPPORTED, "vit_model_set_comm: the model lives on a GPU, whose gradients are "
                                             "averaged across %d rank(s) through NCCL, and the CUDA module %s was "
                                             "built without NCCL (-Dnccl=disabled, or no NCCL found at build time): "
                                             "rebuild with -Dnccl=enabled, or train on one rank", c->size, module);
    if (ops->id_bytes > 4096)
        return vit_fail(VIT_ERR_INTERNAL, "vit_model_set_comm: NCCL id of %u bytes", (unsigned)ops->id_bytes);
    unsigned char id[4096];
    vit_status s = c->rank == 0 ? ops->unique_id(id) : VIT_OK;
    /* Every rank takes part in the broadcast, so rank 0's failure reaches the others. */
    double failed = s != VIT_OK;
    VIT_TRY(vit_comm_run(c, VIT_COLL_SUM_F64, &failed, 1, "vit_model_set_comm: NCCL's unique id"));
    if (s != VIT_OK) return s;
    if (failed > 0) return vit_fail(VIT_ERR_IO, "vit_model_set_comm: rank 0 could not make NCCL's unique id");
    VIT_TRY(vit_comm_run(c, VIT_COLL_BCAST, id, ops->id_bytes, "vit_model_set_comm: NCCL's unique id"));
    struct vit_cuda_nccl *nc;
    s = ops->open(be, id, c->rank, c->size, c->timeout_ms, &nc);
    if (s != VIT_OK) {
        vit_error_prefix("vit_model_set_comm: rank %d of %d", c->rank, c->size);
        return s;
    }
    c->nccl_ops = ops;
    c->nccl = nc;
    c->nccl_be = be;
    c->device = &nccl_transport;
    return VIT_OK;
}
