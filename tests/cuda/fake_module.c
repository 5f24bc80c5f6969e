/* Fake CUDA modules for the loader's tests:
 *   - built plain: a module from another build, which the loader must refuse,
 *     naming both versions (tests/cuda/test_cuda_host.c);
 *   - built with -DFAKE_THIS_BUILD: this build's handshake, no NCCL and no
 *     GPU, which the loader accepts (tests/dist/test_dist_device.c). */
#include "cuda/module.h"

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
    info->nccl = NULL;
}

__attribute__((visibility("default"))) vit_status vit_cuda_module_create(const vit_cuda_host *host,
                                                                         const vit_cuda_config *cfg,
                                                                         vit_backend **out) {
    (void)cfg;
    *out = NULL;
    return host->fail(FAKE_CREATE_FAILS);
}
