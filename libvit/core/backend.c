/* Backend instances are shared by the context and its tensors. */
#include <stdlib.h>

#include "core/backend.h"

vit_backend *vit_backend_retain(vit_backend *be) {
    if (be) be->refs++;
    return be;
}

void vit_backend_release(vit_backend *be) {
    if (!be || --be->refs > 0) return;
    be->ops->destroy(be);
    free(be);
}
