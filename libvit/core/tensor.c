/* Caller-owned tensors: dense, row-major, in the memory of the backend their
 * context had when they were made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/core.h"

size_t vit_dtype_size(vit_dtype dtype) {
    switch (dtype) {
    case VIT_DTYPE_F32: return 4;
    case VIT_DTYPE_BF16: return 2;
    case VIT_DTYPE_I32: return 4;
    case VIT_DTYPE_U8: return 1;
    }
    return 0;
}

const char *vit_dtype_name(vit_dtype dtype) {
    switch (dtype) {
    case VIT_DTYPE_F32: return "f32";
    case VIT_DTYPE_BF16: return "bf16";
    case VIT_DTYPE_I32: return "i32";
    case VIT_DTYPE_U8: return "u8";
    }
    return "unknown";
}

const char *vit_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t len = 0;
    len += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
    return buf;
}

vit_status vit_tensor_create(vit_context *ctx, vit_dtype dtype, int ndim, const int64_t *shape,
                             vit_tensor **out) {
    VIT_CHECK_ARG(out, "vit_tensor_create: out is NULL");
    *out = NULL;
    VIT_CHECK_ARG(ctx, "vit_tensor_create: ctx is NULL");
    VIT_CHECK_ARG(shape, "vit_tensor_create: shape is NULL");
    VIT_CHECK_ARG(ndim >= 1 && ndim <= VIT_MAX_DIMS, "vit_tensor_create: ndim %d is out of range 1..%d", ndim,
                  VIT_MAX_DIMS);
    if (dtype == VIT_DTYPE_BF16)
        return vit_fail(VIT_ERR_UNSUPPORTED, "vit_tensor_create: dtype bf16 is reserved and not yet supported");
    size_t esize = vit_dtype_size(dtype);
    VIT_CHECK_ARG(esize, "vit_tensor_create: unknown dtype %d", (int)dtype);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        VIT_CHECK_ARG(shape[i] > 0, "vit_tensor_create: shape[%d] = %lld must be positive", i, (long long)shape[i]);
        if (numel > INT64_MAX / shape[i] || (uint64_t)(numel * shape[i]) > SIZE_MAX / esize / 2)
            return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_tensor_create: shape is too large");
        numel *= shape[i];
    }
    vit_tensor *t = calloc(1, sizeof *t);
    if (!t) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_tensor_create: no memory for the handle");
    vit_backend *be = ctx->backend;
    const size_t bytes = (size_t)numel * esize;
    t->data = be->ops->alloc(be, bytes);
    if (t->data && be->ops->zero(be, t->data, bytes) != VIT_OK) {
        be->ops->free(be, t->data);
        t->data = NULL;
    }
    if (!t->data) {
        free(t);
        char buf[96];
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_tensor_create: cannot allocate %s %s (%lld bytes)",
                        vit_dtype_name(dtype), vit_shape_str(buf, sizeof buf, ndim, shape),
                        (long long)(numel * (int64_t)esize));
    }
    t->backend = vit_backend_retain(be);
    t->device = ctx->device;
    t->dtype = dtype;
    t->ndim = ndim;
    t->numel = numel;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    *out = t;
    return VIT_OK;
}

void vit_tensor_destroy(vit_tensor *t) {
    if (!t) return;
    t->backend->ops->free(t->backend, t->data);
    vit_backend_release(t->backend);
    free(t);
}

vit_status vit_tensor_shape(const vit_tensor *t, int *ndim, int64_t *shape) {
    VIT_CHECK_ARG(t, "vit_tensor_shape: tensor is NULL");
    VIT_CHECK_ARG(ndim || shape, "vit_tensor_shape: ndim and shape are both NULL");
    if (ndim) *ndim = t->ndim;
    if (shape)
        for (int i = 0; i < VIT_MAX_DIMS; i++) shape[i] = i < t->ndim ? t->shape[i] : 1;
    return VIT_OK;
}

vit_status vit_tensor_numel(const vit_tensor *t, int64_t *numel) {
    VIT_CHECK_ARG(t, "vit_tensor_numel: tensor is NULL");
    VIT_CHECK_ARG(numel, "vit_tensor_numel: numel is NULL");
    *numel = t->numel;
    return VIT_OK;
}

vit_status vit_tensor_dtype(const vit_tensor *t, vit_dtype *dtype) {
    VIT_CHECK_ARG(t, "vit_tensor_dtype: tensor is NULL");
    VIT_CHECK_ARG(dtype, "vit_tensor_dtype: dtype is NULL");
    *dtype = t->dtype;
    return VIT_OK;
}

vit_status vit_tensor_device(const vit_tensor *t, vit_device *device) {
    VIT_CHECK_ARG(t, "vit_tensor_device: tensor is NULL");
    VIT_CHECK_ARG(device, "vit_tensor_device: device is NULL");
    *device = t->device;
    return VIT_OK;
}

static vit_status check_bytes(const vit_tensor *t, size_t bytes, const char *fn) {
    size_t want = (size_t)t->numel * vit_dtype_size(t->dtype);
    if (bytes != want) {
        char buf[96];
        return vit_fail(VIT_ERR_SHAPE, "%s: buffer of %zu bytes for %s tensor %s, which holds %zu bytes", fn, bytes,
                        vit_dtype_name(t->dtype), vit_shape_str(buf, sizeof buf, t->ndim, t->shape), want);
    }
    return VIT_OK;
}

vit_status vit_tensor_write(vit_tensor *t, const void *src, size_t bytes) {
    VIT_CHECK_ARG(t, "vit_tensor_write: tensor is NULL");
    VIT_CHECK_ARG(src, "vit_tensor_write: src is NULL");
    VIT_TRY(check_bytes(t, bytes, "vit_tensor_write"));
    return t->backend->ops->copy(t->backend, t->data, src, bytes, VIT_COPY_TO_DEVICE);
}

vit_status vit_tensor_read(const vit_tensor *t, void *dst, size_t bytes) {
    VIT_CHECK_ARG(t, "vit_tensor_read: tensor is NULL");
    VIT_CHECK_ARG(dst, "vit_tensor_read: dst is NULL");
    VIT_TRY(check_bytes(t, bytes, "vit_tensor_read"));
    return t->backend->ops->copy(t->backend, dst, t->data, bytes, VIT_COPY_TO_HOST);
}

vit_status vit_tensor_data(vit_tensor *t, void **data) {
    VIT_CHECK_ARG(t, "vit_tensor_data: tensor is NULL");
    VIT_CHECK_ARG(data, "vit_tensor_data: data is NULL");
    return vit_tensor_host_data(t, "vit_tensor_data", data);
}

vit_status vit_tensor_host_data(const vit_tensor *t, const char *name, void **data) {
    *data = NULL;
    if (!t->backend->host_memory)
        return vit_fail(VIT_ERR_UNSUPPORTED, "%s: the tensor is in %s device memory; copy it with vit_tensor_read",
                        name, t->backend->ops->name);
    *data = t->data;
    return VIT_OK;
}

vit_status vit_tensor_expect(const vit_tensor *t, const char *name, vit_dtype dtype, int ndim,
                             const int64_t *dims) {
    if (!t) return vit_fail(VIT_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", name);
    if (t->dtype != dtype)
        return vit_fail(VIT_ERR_DTYPE, "%s: dtype is %s, expected %s", name, vit_dtype_name(t->dtype),
                        vit_dtype_name(dtype));
    char got[96], want[96];
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = dims[i] < 0 || dims[i] == t->shape[i];
    if (!ok) {
        /* Spell the expectation with '?' for free dimensions. */
        size_t len = (size_t)snprintf(want, sizeof want, "[");
        for (int i = 0; i < ndim && len < sizeof want; i++) {
            if (dims[i] < 0)
                len += (size_t)snprintf(want + len, sizeof want - len, "%s?", i ? ", " : "");
            else
                len += (size_t)snprintf(want + len, sizeof want - len, "%s%lld", i ? ", " : "", (long long)dims[i]);
        }
        if (len < sizeof want) snprintf(want + len, sizeof want - len, "]");
        return vit_fail(VIT_ERR_SHAPE, "%s: shape is %s, expected %s", name,
                        vit_shape_str(got, sizeof got, t->ndim, t->shape), want);
    }
    return VIT_OK;
}
