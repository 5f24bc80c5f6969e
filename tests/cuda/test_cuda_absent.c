/* A build configured without CUDA (-Dcuda=disabled): asking for the GPU is
 * VIT_ERR_UNSUPPORTED saying so, the context stays usable on the CPU, and
 * asking for bf16 on the CPU is refused. Exit 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vit/vit.h"

#define EXPECT(cond, ...)                                  \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fprintf(stderr, "\n");                         \
            return EXIT_FAILURE;                           \
        }                                                  \
    } while (0)

int main(void) {
    unsetenv("VIT_CUDA_MODULE");
    vit_context *ctx;
    EXPECT(vit_context_create(&ctx) == VIT_OK, "context: %s", vit_last_error());
    vit_status s = vit_context_set_int(ctx, VIT_CTX_DEVICE, VIT_DEVICE_CUDA);
    EXPECT(s == VIT_ERR_UNSUPPORTED, "status %d: %s", s, vit_last_error());
    EXPECT(strstr(vit_last_error(), "libvit-cuda.so") && strstr(vit_last_error(), "without CUDA"), "message: %s",
           vit_last_error());
    int64_t v = -1;
    EXPECT(vit_context_get_int(ctx, VIT_CTX_DEVICE, &v) == VIT_OK && v == VIT_DEVICE_CPU, "device %lld", (long long)v);
    EXPECT(vit_context_set_int(ctx, VIT_CTX_PRECISION, VIT_PRECISION_BF16) == VIT_ERR_UNSUPPORTED, "bf16 on the CPU");
    printf("without CUDA: %s\n", "VIT_CTX_DEVICE = cuda refused as it should be");
    vit_context_destroy(ctx);
    return EXIT_SUCCESS;
}
