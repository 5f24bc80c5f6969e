/* Fake CUDA modules for the loader's tests:
 *   - built plain: a module from another build, which the loader must refuse,
 *     naming both versions (tests/cuda/test_cuda_host.c);
 *   - built with -DFAKE_THIS_BUILD: this build's handshake, no NCCL and no
 *     GPU, which the loader accepts (tests/dist/test_dist_device.c);
 *   - with -DFAKE_NCCL as well: an NCCL table of one rank in host memory
 *     that records its calls (tests/cuda/fake_nccl.h). */
#include <stdlib.h>
#include <string.h>

#include "cuda/module.h"

#ifdef FAKE_NCCL
#include "fake_nccl.h"

static vit_status fake_unique_id(void *id) {
    memset(id, 7, 128);
    return VIT_OK;
}

static vit_status fake_open(vit_backend *be, const void *id, int rank, int size, int64_t timeout_ms,
                            vit_cuda_nccl **out) {
    (void)be, (void)id, (void)timeout_ms;
    *out = calloc(1, sizeof **out);
    if (!*out) return VIT_ERR_OUT_OF_MEMORY;
    (*out)->rank = rank, (*out)->size = size;
    return VIT_OK;
}

static vit_status fake_reserve(vit_cuda_nccl *nc, int slots) {
    (void)nc;
    return slots <= FAKE_NCCL_SLOTS ? VIT_OK : VIT_ERR_OUT_OF_MEMORY;
}

/* Slots are used in order from 0 after each reserve-and-start sequence. */
static void take_slot(vit_cuda_nccl *nc, int slot) {
    if (slot != nc->next_slot && slot != 0) nc->bad_slots++;
    nc->next_slot = slot + 1;
    nc->polls[slot] = 0;
}

static vit_status fake_average(vit_cuda_nccl *nc, vit_backend *be, int slot, float *buf, int64_t count) {
    (void)be;
    take_slot(nc, slot);
    if (nc->averages++ == 0 || slot == 0) nc->first = buf, nc->first_count = count;
    else if (buf >= nc->last) nc->out_of_order++; /* buckets go from the last parameter to the first */
    nc->last = buf;
    nc->averaged_floats += count; /* the mean of one rank: the values stay */
    return VIT_OK;
}

static vit_status fake_broadcast(vit_cuda_nccl *nc, vit_backend *be, int slot, void *buf, int64_t bytes) {
    (void)be, (void)buf;
    take_slot(nc, slot);
    nc->broadcasts++;
    nc->broadcast_bytes += bytes;
    return VIT_OK;
}

static vit_status fake_test(vit_cuda_nccl *nc, int slot, bool *done) {
    *done = ++nc->polls[slot] >= 2;
    nc->not_done_seen += !*done;
    return VIT_OK;
}

static void fake_destroy(vit_cuda_nccl *nc, bool abort) {
    (void)abort;
    free(nc);
}

static const vit_cuda_nccl_ops fake_nccl_ops = {
    .id_bytes = 128,
    .unique_id = fake_unique_id,
    .open = fake_open,
    .reserve = fake_reserve,
    .average = fake_average,
    .broadcast = fake_broadcast,
    .test = fake_test,
    .destroy = fake_destroy,
};
#define FAKE_NCCL_OPS (&fake_nccl_ops)
#else
#define FAKE_NCCL_OPS NULL
#endif

#ifdef FAKE_THIS_BUILD
#define FAKE_ABI VIT_CUDA_MODULE_ABI
#define FAKE_VERSION VIT_VERSION_STRING
#define FAKE_CREATE_FAILS VIT_ERR_UNSUPPORTED, "fake module: no GPU"
#else
#define FAKE_ABI (VIT_CUDA_MODULE_ABI + 1)
#define FAKE_VERSION "0.0.0-other"
#define FAKE_CREATE_FAILS VIT_ERR_INTERNAL, "the fake module must never be asked for a backend"
#endif

__attribute__((visibility("default"))) void vit_cuda_module_info(vit_cuda_module_desc *info) {
    info->abi = FAKE_ABI;
    info->sizeof_ops = sizeof(vit_backend_ops);
    info->sizeof_backend = sizeof(vit_backend);
    info->sizeof_gemm = sizeof(vit_gemm);
    info->libvit_version = FAKE_VERSION;
    info->built_for = "nothing";
    info->sizeof_nccl_ops = sizeof(vit_cuda_nccl_ops);
    info->nccl = FAKE_NCCL_OPS;
}

__attribute__((visibility("default"))) vit_status vit_cuda_module_create(const vit_cuda_host *host,
                                                                         const vit_cuda_config *cfg,
                                                                         vit_backend **out) {
    (void)cfg;
    *out = NULL;
    return host->fail(FAKE_CREATE_FAILS);
}
