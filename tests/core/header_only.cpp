// <vit/vit.h> must compile on its own as C++ (extern "C" linkage) and link.
#include <vit/vit.h>

int main() {
    vit_context *ctx = nullptr;
    if (vit_context_create(&ctx) != VIT_OK) return 1;
    vit_context_destroy(ctx);
    return vit_version_number() == VIT_VERSION_NUMBER ? 0 : 1;
}
