/*
 * cuDNN attention graphs built without a GPU: the plans for ViT shapes from a
 * JSON device description (an H200), and argument checking.
 *
 * On a machine without a GPU the test runs itself again with cuDNN pointed at
 * the driver stub (/usr/local/cuda/lib/stubs/libcuda.so as libcuda.so.1):
 * without any libcuda the heuristics count engines but hand out none. With the
 * stub the engines come out and their plans are tried; finalizing one loads
 * its kernels, which the stub refuses (CUDA_ERROR_STUB_LIBRARY), so here the
 * test requires: every operation graph finalizes, the heuristics return
 * engine configurations, each plan was tried, and a failed plan failed only
 * for the missing driver. On a GPU (no stub) it requires a finalized plan.
 *
 *   test_sdpa_host DEVICE.json
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "cuda/sdpa.h"

#define STUB "/usr/local/cuda/lib/stubs/libcuda.so"
#define REEXEC_MARK "VIT_SDPA_TEST_STUB_DIR"

static int failures;

#define EXPECT(cond, ...)                                                  \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                    \
            printf(__VA_ARGS__);                                           \
            printf("\n");                                                  \
        }                                                                  \
    } while (0)

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static bool have_gpu(void) {
    int n = 0;
    bool yes = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    cudaGetLastError();
    return yes;
}

/* Without a GPU and not yet done: run again with the driver stub first on the
 * loader's path (a temporary folder holding the link libcuda.so.1). */
static void reexec_with_stub(char **argv) {
    if (getenv(REEXEC_MARK) || have_gpu() || access(STUB, R_OK) != 0) return;
    char dir[] = "/tmp/vit-sdpa-stub-XXXXXX", link[64], path[4096];
    if (!mkdtemp(dir)) return;
    snprintf(link, sizeof link, "%s/libcuda.so.1", dir);
    if (symlink(STUB, link) != 0) return;
    const char *old = getenv("LD_LIBRARY_PATH");
    snprintf(path, sizeof path, "%s%s%s", dir, old && *old ? ":" : "", old ? old : "");
    setenv("LD_LIBRARY_PATH", path, 1);
    setenv(REEXEC_MARK, dir, 1);
    fflush(stdout);
    execv("/proc/self/exe", argv);
    printf("note: could not run again with the driver stub (%s); without it no engine comes out\n", strerror(errno));
}

static void cleanup_stub(void) {
    const char *dir = getenv(REEXEC_MARK);
    if (!dir || strncmp(dir, "/tmp/vit-sdpa-stub-", 19) != 0) return;
    char link[64];
    snprintf(link, sizeof link, "%s/libcuda.so.1", dir);
    unlink(link);
    rmdir(dir);
}

static const char *kind_name(vit_sdpa_kind k) {
    return k == VIT_SDPA_FORWARD_TRAINING ? "forward+stats"
           : k == VIT_SDPA_FORWARD_INFERENCE ? "forward"
                                             : "backward";
}

typedef struct shape {
    const char *model;
    int B, T, H, hd;
} shape;

/* Builds one plan and says what came of it; what must hold depends on the
 * machine (see the top of the file). */
static void check_plan(vit_sdpa_cache *c, const shape *sh, vit_sdpa_kind k, bool det, bool gpu, bool stub) {
    vit_sdpa_plan_report r;
    double t0 = seconds();
    vit_sdpa_prepare(c, k, sh->B, sh->T, sh->H, sh->hd, &r);
    printf("%-24s B=%-3d T=%-3d H=%-2d hd=%-3d %-13s%s %4.1f s: graph %s, %d engine configs, %d plans tried: %s%s%s\n",
           sh->model, sh->B, sh->T, sh->H, sh->hd, kind_name(k),
           k == VIT_SDPA_BACKWARD ? (det ? " (determ.)" : " (atomics)") : "", seconds() - t0,
           r.graph_status < 0 ? "not reached" : cudnnGetErrorString((cudnnStatus_t)r.graph_status),
           r.engine_configs, r.plans_tried, r.status == VIT_OK ? "finalized" : "not finalized",
           r.message[0] ? " - " : "", r.message);
    const char *m = sh->model, *kn = kind_name(k);
    EXPECT(r.graph_status == CUDNN_STATUS_SUCCESS, "%s %s: the operation graph did not finalize", m, kn);
    EXPECT(r.engine_configs > 0, "%s %s: no engine configuration", m, kn);
    if (gpu) {
        EXPECT(r.status == VIT_OK, "%s %s: no plan finalized on a GPU", m, kn);
    } else if (stub) {
        EXPECT(r.plans_tried > 0, "%s %s: no engine configuration came out", m, kn);
        EXPECT(r.status == VIT_OK || strstr(r.message, "EXECUTION_FAILED_CUDA_DRIVER"),
               "%s %s: a plan failed for another reason than the missing driver", m, kn);
    }
}

static void check_plans(const char *json, bool gpu, bool stub) {
    static const shape shapes[] = {
        {"ViT-S/16", 8, 197, 6, 64},  {"ViT-B/16", 64, 197, 12, 64},
        {"ViT-L/16", 8, 197, 16, 64}, {"ViT-B/32", 8, 50, 12, 64},
        {"hd 80 (ViT-H/14 heads)", 4, 257, 16, 80}, {"seed (CIFAR, 65 tokens)", 128, 65, 4, 32},
    };
    for (int det = 1; det >= 0; det--) {
        vit_sdpa_options opt = {.deterministic = det};
        vit_sdpa_cache *c = NULL;
        vit_status st = vit_sdpa_cache_create_for_device(&c, json, &opt);
        EXPECT(st == VIT_OK, "cache from device JSON: %s", vit_last_error());
        if (st != VIT_OK) return;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            /* trying a plan takes seconds: every kind at ViT-B; the training
             * forward where the head dim differs; the backward everywhere */
            bool vit_b = i == 1, other_hd = shapes[i].hd != 64;
            for (int k = 0; k < VIT_SDPA_KINDS; k++) {
                if (!det && !(vit_b && k == VIT_SDPA_BACKWARD)) continue; /* the option changes only backward */
                if (!vit_b && k == VIT_SDPA_FORWARD_INFERENCE) continue;
                if (!vit_b && !other_hd && k == VIT_SDPA_FORWARD_TRAINING) continue;
                check_plan(c, &shapes[i], (vit_sdpa_kind)k, det, gpu, stub);
            }
        }
        vit_sdpa_cache_destroy(c);
    }
}

static void check_arguments(const char *json) {
    vit_sdpa_cache *c = (vit_sdpa_cache *)1;
    EXPECT(vit_sdpa_cache_create(NULL, NULL, NULL) == VIT_ERR_INVALID_ARGUMENT, "create(NULL)");
    EXPECT(vit_sdpa_cache_create(&c, NULL, NULL) == VIT_ERR_INVALID_ARGUMENT && !c, "create without handle");
    EXPECT(strstr(vit_last_error(), "handle"), "message names the handle: %s", vit_last_error());
    EXPECT(vit_sdpa_cache_create_for_device(&c, "{\"warpSize\": 32}", NULL) != VIT_OK && !c, "incomplete JSON");
    EXPECT(strstr(vit_last_error(), "device description"), "message: %s", vit_last_error());
    printf("incomplete device JSON -> %s\n", vit_last_error());
    vit_sdpa_cache_destroy(NULL);

    EXPECT(vit_sdpa_cache_create_for_device(&c, json, NULL) == VIT_OK, "create: %s", vit_last_error());
    if (!c) return;
    vit_sdpa_plan_report r;
    EXPECT(vit_sdpa_prepare(c, VIT_SDPA_BACKWARD, 2, 197, 12, 60, &r) == VIT_ERR_UNSUPPORTED && r.status != VIT_OK,
           "hd 60 is refused");
    EXPECT(strstr(vit_last_error(), "head dim 60"), "message names the head dim: %s", vit_last_error());
    EXPECT(vit_sdpa_prepare(c, VIT_SDPA_BACKWARD, 2, 197, 12, 264, NULL) == VIT_ERR_UNSUPPORTED, "hd 264");
    EXPECT(vit_sdpa_prepare(c, VIT_SDPA_BACKWARD, 0, 197, 12, 64, NULL) == VIT_ERR_INVALID_ARGUMENT, "B = 0");
    EXPECT(strstr(vit_last_error(), "B=0"), "message names B: %s", vit_last_error());
    EXPECT(vit_sdpa_prepare(c, (vit_sdpa_kind)7, 2, 197, 12, 64, NULL) == VIT_ERR_INVALID_ARGUMENT, "kind 7");
    EXPECT(vit_sdpa_prepare(NULL, VIT_SDPA_BACKWARD, 2, 197, 12, 64, NULL) == VIT_ERR_INVALID_ARGUMENT, "NULL cache");

    /* pointers are checked before any device work; none is touched */
    char *fake = (char *)(uintptr_t)0x100000; /* aligned, never dereferenced */
    size_t ws = 0;
    EXPECT(vit_sdpa_forward(c, NULL, NULL, fake, 2, 197, 12, 64, 0.125f, fake, 1 << 20) == VIT_ERR_INVALID_ARGUMENT,
           "out NULL");
    EXPECT(strstr(vit_last_error(), "out"), "message names out: %s", vit_last_error());
    EXPECT(vit_sdpa_forward(c, fake + 2, NULL, fake, 2, 197, 12, 64, 0.125f, fake, 1 << 20) ==
               VIT_ERR_INVALID_ARGUMENT, "misaligned out");
    EXPECT(vit_sdpa_backward(c, fake, fake, fake, fake, NULL, 2, 197, 12, 64, 0.125f, fake, 1 << 20) ==
               VIT_ERR_INVALID_ARGUMENT, "stats NULL");
    EXPECT(strstr(vit_last_error(), "stats"), "message names stats: %s", vit_last_error());
    /* a plan-only cache runs nothing; whether planning or running refuses, it is UNSUPPORTED */
    EXPECT(vit_sdpa_forward(c, fake, (float *)fake, fake, 2, 197, 12, 64, 0.125f, fake, 1 << 20) ==
               VIT_ERR_UNSUPPORTED, "forward on a plan-only cache");
    printf("forward on a plan-only cache -> %s\n", vit_last_error());
    /* the workspace query reports each plan's size, or why there is none */
    vit_status st = vit_sdpa_workspace_bytes(c, VIT_SDPA_FORWARD_TRAINING, 2, 197, 12, 64, &ws);
    printf("workspace query (forward) -> %s, %zu bytes%s%s\n", vit_status_string(st), ws, st ? ": " : "",
           st ? vit_last_error() : "");
    EXPECT(st == VIT_OK || st == VIT_ERR_UNSUPPORTED, "workspace query status %d", (int)st);
    EXPECT(vit_sdpa_workspace_bytes(NULL, VIT_SDPA_BACKWARD, 2, 197, 12, 64, &ws) == VIT_ERR_INVALID_ARGUMENT,
           "NULL cache");
    EXPECT(vit_sdpa_workspace_bytes(c, VIT_SDPA_BACKWARD, 2, 197, 12, 64, NULL) == VIT_ERR_INVALID_ARGUMENT,
           "NULL bytes");
    EXPECT(strstr(vit_last_error(), "bytes"), "message names bytes: %s", vit_last_error());
    vit_sdpa_cache_destroy(c);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DEVICE.json\n", argv[0]);
        return 2;
    }
    reexec_with_stub(argv);
    bool stub = getenv(REEXEC_MARK) != NULL, gpu = !stub && have_gpu();
    char *json = slurp(argv[1]);
    if (!json) {
        printf("cannot read %s\n", argv[1]);
        return 1;
    }
    printf("cuDNN %zu, %s\n", cudnnGetVersion(),
           gpu ? "GPU present" : stub ? "no GPU, driver stub" : "no GPU, no driver stub");
    check_arguments(json);
    check_plans(json, gpu, stub);
    free(json);
    cleanup_stub();
    printf("%s (%d failure%s)\n", failures ? "FAILED" : "passed", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
