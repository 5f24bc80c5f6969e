/*
 * Loading the CUDA module. libvit.so.0 links no CUDA library: the CUDA
 * backend is libvit-cuda.so (libvit/cuda/), opened here the first time a
 * context asks for VIT_DEVICE_CUDA, as ggml loads its dynamic backends and
 * ONNX Runtime its execution providers. A CPU-only program therefore never
 * loads the CUDA runtime, cuBLAS or cuDNN, and the same libvit.so.0 runs on a
 * machine that has none of them.
 *
 * Where the module is looked for, first found wins:
 *   1. $VIT_CUDA_MODULE, a path to the file (tests, relocated installs);
 *   2. beside the file libvit itself was loaded from (the installed layout:
 *      libdir/libvit.so.0 and libdir/libvit-cuda.so);
 *   3. the dynamic loader's own search (LD_LIBRARY_PATH, ld.so.cache).
 * A module that is missing, fails to load (a CUDA library it needs is
 * absent) or was built for another libvit is VIT_ERR_UNSUPPORTED, naming the
 * file and the reason. The module stays loaded for the life of the process:
 * backends and tensors made from it may outlive every context.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/backend.h"
#include "cuda/module.h"

#ifndef VIT_CUDA_MODULE_BUILT
#define VIT_CUDA_MODULE_BUILT 0
#endif

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static vit_cuda_module_create_fn g_create;
static const vit_cuda_nccl_ops *g_nccl; /* the loaded module's; NULL: built without NCCL */
static const char *g_module_path = "";

static vit_status host_fail(vit_status status, const char *message) { return vit_fail(status, "%s", message); }

static void host_log(const vit_context *ctx, vit_log_level level, const char *message) {
    vit_log(ctx, level, "%s", message);
}

static const vit_cuda_host g_host = {host_fail, host_log};

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The module's path beside the file this function was loaded from; "" when unknown. */
static void beside_libvit(char *buf, size_t cap) {
    Dl_info info;
    buf[0] = '\0';
    if (!dladdr((void *)&vit_backend_create_cuda, &info) || !info.dli_fname) return;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash) return;
    snprintf(buf, cap, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname, VIT_CUDA_MODULE_FILE);
}

/* Checks the handshake of an opened module; on success sets g_create. */
static vit_status handshake(void *h, const char *path) {
    vit_cuda_module_info_fn info_fn = (vit_cuda_module_info_fn)dlsym(h, VIT_CUDA_MODULE_INFO_SYMBOL);
    vit_cuda_module_create_fn create = (vit_cuda_module_create_fn)dlsym(h, VIT_CUDA_MODULE_CREATE_SYMBOL);
    if (!info_fn || !create)
        return vit_fail(VIT_ERR_UNSUPPORTED, "CUDA module %s: not a libvit CUDA module (no %s)", path,
                        info_fn ? VIT_CUDA_MODULE_CREATE_SYMBOL : VIT_CUDA_MODULE_INFO_SYMBOL);
    vit_cuda_module_desc mi;
    memset(&mi, 0, sizeof mi);
    info_fn(&mi);
    if (mi.abi != VIT_CUDA_MODULE_ABI || mi.sizeof_ops != sizeof(vit_backend_ops) ||
        mi.sizeof_backend != sizeof(vit_backend) || mi.sizeof_gemm != sizeof(vit_gemm) || !mi.libvit_version ||
        strcmp(mi.libvit_version, VIT_VERSION_STRING) != 0 || mi.sizeof_nccl_ops != sizeof(vit_cuda_nccl_ops))
        return vit_fail(VIT_ERR_UNSUPPORTED,
                        "CUDA module %s: built for libvit %s (module ABI %u, table %u bytes), this is libvit %s "
                        "(module ABI %u, table %zu bytes): install the module of the same build",
                        path, mi.libvit_version ? mi.libvit_version : "?", mi.abi, mi.sizeof_ops, VIT_VERSION_STRING,
                        VIT_CUDA_MODULE_ABI, sizeof(vit_backend_ops));
    g_create = create;
    g_nccl = mi.nccl;
    g_module_path = path;
    return VIT_OK;
}

static vit_status try_open(const char *path, bool must_exist, bool *found) {
    static char opened[PATH_MAX]; /* kept for messages: the module stays loaded */
    *found = false;
    if (must_exist && !file_exists(path)) return VIT_OK;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        /* The loader's own search reports a missing file like a broken one. */
        if (!must_exist && why && strstr(why, "cannot open shared object file") && strstr(why, VIT_CUDA_MODULE_FILE))
            return VIT_OK;
        *found = true;
        return vit_fail(VIT_ERR_UNSUPPORTED, "CUDA module %s cannot be loaded: %s", path, why ? why : "dlopen failed");
    }
    *found = true;
    snprintf(opened, sizeof opened, "%s", path);
    vit_status s = handshake(h, opened);
    if (s != VIT_OK) dlclose(h);
    return s;
}

static vit_status load_module(void) {
    if (g_create) return VIT_OK;
    bool found = false;
    const char *env = getenv("VIT_CUDA_MODULE");
    if (env && *env) {
        if (!file_exists(env))
            return vit_fail(VIT_ERR_UNSUPPORTED, "CUDA module: VIT_CUDA_MODULE=%s: no such file", env);
        return try_open(env, true, &found);
    }
    char beside[PATH_MAX];
    beside_libvit(beside, sizeof beside);
    if (beside[0]) {
        VIT_TRY(try_open(beside, true, &found));
        if (found) return VIT_OK;
    }
    VIT_TRY(try_open(VIT_CUDA_MODULE_FILE, false, &found));
    if (found) return VIT_OK;
    return vit_fail(VIT_ERR_UNSUPPORTED, "CUDA module %s not found (looked beside libvit%s%s and on the loader's path)%s",
                    VIT_CUDA_MODULE_FILE, beside[0] ? " at " : "", beside,
                    VIT_CUDA_MODULE_BUILT ? "" : ": this build of libvit was configured without CUDA (-Dcuda=disabled)");
}

vit_status vit_backend_create_cuda(int device_index, vit_precision precision, const vit_context *ctx,
                                   vit_backend **out) {
    *out = NULL;
    pthread_mutex_lock(&g_lock);
    vit_status s = load_module();
    vit_cuda_module_create_fn create = g_create;
    pthread_mutex_unlock(&g_lock);
    if (s != VIT_OK) return s;
    const vit_cuda_config cfg = {device_index, precision, ctx};
    return create(&g_host, &cfg, out);
}

const vit_cuda_nccl_ops *vit_cuda_module_nccl(const char **module_path) {
    pthread_mutex_lock(&g_lock);
    const vit_cuda_nccl_ops *ops = g_nccl;
    if (module_path) *module_path = g_module_path;
    pthread_mutex_unlock(&g_lock);
    return ops;
}
