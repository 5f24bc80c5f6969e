/* A CUDA module from another build: the loader must refuse it, naming both
 * versions (tests/cuda/test_cuda_host.c). */
#include "cuda/module.h"

__attribute__((visibility("default"))) void vit_cuda_module_info(vit_cuda_module_desc *info) {
    info->abi = VIT_CUDA_MODULE_ABI + 1;
    info->sizeof_ops = sizeof(vit_backend_ops);
    info->sizeof_backend = sizeof(vit_backend);
    info->sizeof_gemm = sizeof(vit_gemm);
    info->libvit_version = "0.0.0-other";
    info->built_for = "nothing";
}

__attribute__((visibility("default"))) vit_status vit_cuda_module_create(const vit_cuda_host *host,
                                                                         const vit_cuda_config *cfg,
                                                                         vit_backend **out) {
    (void)cfg;
    *out = NULL;
    return host->fail(VIT_ERR_INTERNAL, "the fake module must never be asked for a backend");
}
