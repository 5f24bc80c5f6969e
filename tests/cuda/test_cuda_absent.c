/* A build configured without CUDA (-Dcuda=disabled): asking for the GPU is
 * VIT_ERR_UNSUPPORTED saying so, the context stays usable on the CPU, and
 * asking for bf16 on the CPU is refused. Exit 0 on success. */
#include <stdlib.h>
#include <string.h>

#include "../check_macros.h"

int main(void) {
    unsetenv("VIT_CUDA_MODULE");
    vit_context *ctx;
    OK(vit_context_create(&ctx));
    vit_status s = vit_context_set_int(ctx, VIT_CTX_DEVICE, VIT_DEVICE_CUDA);
    CHECK(s == VIT_ERR_UNSUPPORTED, "status %d: %s", s, vit_last_error());
    CHECK(strstr(vit_last_error(), "libvit-cuda.so") && strstr(vit_last_error(), "without CUDA"), "message: %s",
          vit_last_error());
    int64_t v = -1;
    CHECK(vit_context_get_int(ctx, VIT_CTX_DEVICE, &v) == VIT_OK && v == VIT_DEVICE_CPU, "device %lld", (long long)v);
    CHECK(vit_context_set_int(ctx, VIT_CTX_PRECISION, VIT_PRECISION_BF16) == VIT_ERR_UNSUPPORTED, "bf16 on the CPU");
    vit_context_destroy(ctx);
    if (failures) return EXIT_FAILURE;
    printf("without CUDA: %s\n", "VIT_CTX_DEVICE = cuda refused as it should be");
    return EXIT_SUCCESS;
}
