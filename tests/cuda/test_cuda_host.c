/*
 * The CUDA backend's host side, without a GPU (CI):
 *   - loading the module: a missing file, a file that does not load, a
 *     library that is not a libvit module and a module of another build are
 *     each VIT_ERR_UNSUPPORTED naming the file and the reason; the real
 *     module on a machine without a GPU is VIT_ERR_UNSUPPORTED naming the
 *     CUDA runtime's cause;
 *   - VIT_CTX_PRECISION on the CPU: bf16 and tf32 refused, fp32 and the
 *     default accepted;
 *   - cuBLASLt plans: the descriptors built for every combination of
 *     transposes, padded leading dimensions, batches, bias and precision are
 *     read back and a column-major product run from what they say (on the
 *     host) must equal the row-major product vit_gemm asks for; bad
 *     arguments are refused with the argument named.
 * Check runs each test in its own process, so module loading starts afresh.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda/cuda.h"
#include "vit/vit.h"

static const char *module_path(void) {
    const char *p = getenv("VIT_TEST_CUDA_MODULE");
    ck_assert_msg(p && *p, "VIT_TEST_CUDA_MODULE is not set");
    return p;
}

static void expect_unsupported(const char *module, const char *want1, const char *want2) {
    setenv("VIT_CUDA_MODULE", module, 1);
    vit_backend *be = NULL;
    vit_status s = vit_backend_create_cuda(0, VIT_PRECISION_FP32, NULL, &be);
    ck_assert_msg(s == VIT_ERR_UNSUPPORTED, "%s: status %d (%s)", module, s, vit_last_error());
    ck_assert_ptr_null(be);
    ck_assert_msg(strstr(vit_last_error(), want1), "'%s' does not name '%s'", vit_last_error(), want1);
    ck_assert_msg(!want2 || strstr(vit_last_error(), want2), "'%s' does not say '%s'", vit_last_error(), want2);
}

START_TEST(test_module_missing) {
    expect_unsupported("/nonexistent/libvit-cuda.so", "/nonexistent/libvit-cuda.so", "no such file");
}
END_TEST

START_TEST(test_module_not_loadable) {
    char path[] = "/tmp/vit-not-a-library-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "not ELF\n", 8), 8);
    close(fd);
    expect_unsupported(path, path, "cannot be loaded");
    unlink(path);
}
END_TEST

START_TEST(test_module_not_a_module) {
    char lib[4096];
    snprintf(lib, sizeof lib, "%s/libvit/libvit.so.0", getenv("VIT_BUILD_ROOT"));
    expect_unsupported(lib, lib, "not a libvit CUDA module");
}
END_TEST

START_TEST(test_module_mismatch) {
    const char *fake = getenv("VIT_TEST_FAKE_MODULE");
    ck_assert_ptr_nonnull(fake);
    expect_unsupported(fake, fake, "built for libvit 0.0.0-other");
}
END_TEST

/* The real module: on a machine without a usable GPU the reason is the
 * runtime's; on one with a GPU the backend is made and released. */
START_TEST(test_module_real) {
    setenv("VIT_CUDA_MODULE", module_path(), 1);
    vit_backend *be = NULL;
    vit_status s = vit_backend_create_cuda(0, VIT_PRECISION_BF16, NULL, &be);
    if (s == VIT_OK) {
        ck_assert_str_eq(be->ops->name, "cuda");
        ck_assert(!be->host_memory);
        vit_backend_release(be);
        return;
    }
    ck_assert_msg(s == VIT_ERR_UNSUPPORTED, "status %d (%s)", s, vit_last_error());
    ck_assert_msg(strstr(vit_last_error(), "GPU"), "'%s' does not name the cause", vit_last_error());
    /* the public call says the same, and the context stays on the CPU */
    vit_context *ctx;
    ck_assert_int_eq(vit_context_create(&ctx), VIT_OK);
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_DEVICE, VIT_DEVICE_CUDA), VIT_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(vit_last_error(), "VIT_CTX_DEVICE") && strstr(vit_last_error(), "GPU"), "%s",
                  vit_last_error());
    int64_t v = -1;
    ck_assert_int_eq(vit_context_get_int(ctx, VIT_CTX_DEVICE, &v), VIT_OK);
    ck_assert_int_eq(v, VIT_DEVICE_CPU);
    vit_context_destroy(ctx);
}
END_TEST

START_TEST(test_precision_cpu) {
    vit_context *ctx;
    int64_t v = -1;
    ck_assert_int_eq(vit_context_create(&ctx), VIT_OK);
    ck_assert_int_eq(vit_context_get_int(ctx, VIT_CTX_PRECISION, &v), VIT_OK);
    ck_assert_int_eq(v, VIT_PRECISION_FP32);
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_PRECISION, VIT_PRECISION_BF16), VIT_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(vit_last_error(), "bf16"), "%s", vit_last_error());
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_PRECISION, VIT_PRECISION_TF32), VIT_ERR_UNSUPPORTED);
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_PRECISION, 99), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_PRECISION, VIT_PRECISION_FP32), VIT_OK);
    ck_assert_int_eq(vit_context_get_int(ctx, VIT_CTX_PRECISION, &v), VIT_OK);
    ck_assert_int_eq(v, VIT_PRECISION_FP32);
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_PRECISION, VIT_PRECISION_DEFAULT), VIT_OK);
    vit_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------- plans on the host */
/* An attribute of a layout, as the integer type T. */
#define LAYOUT_ATTR(T, l, a)                                                                                   \
    ({                                                                                                         \
        T v_ = 0;                                                                                              \
        size_t w_ = 0;                                                                                         \
        ck_assert_int_eq(cublasLtMatrixLayoutGetAttribute((l), (a), &v_, sizeof v_, &w_), CUBLAS_STATUS_SUCCESS); \
        v_;                                                                                                    \
    })
#define get_u64(l, a) LAYOUT_ATTR(uint64_t, l, a)
#define get_i64(l, a) LAYOUT_ATTR(int64_t, l, a)
#define get_i32(l, a) LAYOUT_ATTR(int32_t, l, a)
static int32_t desc_i32(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a) {
    int32_t v = 0;
    size_t w = 0;
    ck_assert_int_eq(cublasLtMatmulDescGetAttribute(d, a, &v, sizeof v, &w), CUBLAS_STATUS_SUCCESS);
    return v;
}

/* What a column-major layout says, as a matrix view of memory. */
typedef struct view {
    const float *mem;
    uint64_t rows, cols;
    int64_t ld, stride;
    int32_t batch;
    bool trans;
} view;
static view view_of(const float *mem, cublasLtMatrixLayout_t l, bool trans) {
    view v = {mem, get_u64(l, CUBLASLT_MATRIX_LAYOUT_ROWS), get_u64(l, CUBLASLT_MATRIX_LAYOUT_COLS),
              get_i64(l, CUBLASLT_MATRIX_LAYOUT_LD), 0, get_i32(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT), trans};
    if (v.batch > 1) v.stride = get_i64(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET);
    return v;
}
/* op(view)(i, j) of batch item b */
static double at(const view *v, int b, uint64_t i, uint64_t j) {
    const uint64_t r = v->trans ? j : i, c = v->trans ? i : j;
    ck_assert(r < v->rows && c < v->cols);
    return v->mem[(int64_t)b * v->stride + (int64_t)r + (int64_t)c * v->ld];
}

/* Runs a gemm as cuBLASLt would from the plan's descriptors, on the host,
 * and compares with the row-major definition of vit_gemm. */
static void check_plan(int M, int N, int K, bool ta, bool tb, int pad, int batch, bool bias, vit_precision prec) {
    const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + 2 * pad;
    const int arows = ta ? K : M, brows = tb ? N : K, crows = M;
    const ptrdiff_t sa = (ptrdiff_t)arows * lda + 3, sb = (ptrdiff_t)brows * ldb + 5, sc = (ptrdiff_t)crows * ldc + 7;
    float *A = malloc(sizeof(float) * (size_t)(sa * batch)), *Bm = malloc(sizeof(float) * (size_t)(sb * batch));
    float *C = calloc((size_t)(sc * batch), sizeof(float)), *bv = malloc(sizeof(float) * N);
    for (ptrdiff_t i = 0; i < sa * batch; i++) A[i] = (float)((i * 37 % 101) - 50) / 25.0f;
    for (ptrdiff_t i = 0; i < sb * batch; i++) Bm[i] = (float)((i * 53 % 97) - 48) / 24.0f;
    for (int i = 0; i < N; i++) bv[i] = (float)i - 1.5f;
    vit_gemm g = {.M = M, .N = N, .K = K, .A = A, .lda = lda, .trans_a = ta, .B = Bm, .ldb = ldb, .trans_b = tb,
                  .C = C, .ldc = ldc, .bias = bias ? bv : NULL};
    vit_cuda_gemm_plan p;
    ck_assert_msg(vit_cuda_gemm_plan_build(&p, &g, batch, batch > 1 ? sa : 0, batch > 1 ? sb : 0,
                                           batch > 1 ? sc : 0, prec) == VIT_OK,
                  "%s", vit_last_error());
    /* descriptor: compute type, epilogue, operand types */
    ck_assert_int_eq(desc_i32(p.desc, CUBLASLT_MATMUL_DESC_COMPUTE_TYPE),
                     prec == VIT_PRECISION_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
    ck_assert_int_eq(desc_i32(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE),
                     bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT);
    const int32_t in_type = prec == VIT_PRECISION_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    ck_assert_int_eq(get_i32(p.a, CUBLASLT_MATRIX_LAYOUT_TYPE), in_type);
    ck_assert_int_eq(get_i32(p.b, CUBLASLT_MATRIX_LAYOUT_TYPE), in_type);
    ck_assert_int_eq(get_i32(p.c, CUBLASLT_MATRIX_LAYOUT_TYPE), CUDA_R_32F);
    /* D = opA(first) opB(second), first = our B, second = our A, D = our C */
    const bool opa = desc_i32(p.desc, CUBLASLT_MATMUL_DESC_TRANSA) == CUBLAS_OP_T;
    const bool opb = desc_i32(p.desc, CUBLASLT_MATMUL_DESC_TRANSB) == CUBLAS_OP_T;
    view va = view_of(Bm, p.a, opa), vb = view_of(A, p.b, opb), vd = view_of(C, p.c, false);
    ck_assert_int_eq(va.batch, batch > 1 ? batch : 1);
    const uint64_t kk = opa ? va.rows : va.cols;
    ck_assert_uint_eq(kk, (uint64_t)K);
    ck_assert_uint_eq(opb ? vb.cols : vb.rows, kk);
    for (int b = 0; b < batch; b++)
        for (uint64_t i = 0; i < vd.rows; i++)
            for (uint64_t j = 0; j < vd.cols; j++) {
                double s = bias ? bv[i] : 0.0;
                for (uint64_t k = 0; k < kk; k++) s += at(&va, b, i, k) * at(&vb, b, k, j);
                C[(int64_t)b * vd.stride + (int64_t)i + (int64_t)j * vd.ld] = (float)s;
            }
    /* the row-major definition */
    for (int b = 0; b < batch; b++)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double s = bias ? bv[n] : 0.0;
                for (int k = 0; k < K; k++) {
                    const double a = ta ? A[b * sa + (ptrdiff_t)k * lda + m] : A[b * sa + (ptrdiff_t)m * lda + k];
                    const double bb = tb ? Bm[b * sb + (ptrdiff_t)n * ldb + k] : Bm[b * sb + (ptrdiff_t)k * ldb + n];
                    s += a * bb;
                }
                const float got = C[b * sc + (ptrdiff_t)m * ldc + n];
                ck_assert_msg(fabs(got - s) <= 1e-4 * (1.0 + fabs(s)),
                              "plan %dx%dx%d ta %d tb %d batch %d: C[%d][%d][%d] = %g from the descriptors, %g by "
                              "definition",
                              M, N, K, ta, tb, batch, b, m, n, (double)got, s);
            }
    vit_cuda_gemm_plan_destroy(&p);
    free(A), free(Bm), free(C), free(bv);
}

START_TEST(test_plan_layouts) {
    static const vit_precision precs[] = {VIT_PRECISION_FP32, VIT_PRECISION_TF32, VIT_PRECISION_BF16};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int pr = 0; pr < 3; pr++) {
                check_plan(5, 7, 3, ta, tb, 0, 1, false, precs[pr]);
                check_plan(6, 4, 9, ta, tb, 2, 1, true, precs[pr]);
                check_plan(3, 5, 4, ta, tb, 1, 3, false, precs[pr]);
                check_plan(1, 13, 8, ta, tb, 3, 2, true, precs[pr]);
            }
}
END_TEST

static void expect_refused(const vit_gemm *g, int batch, ptrdiff_t sc, const char *word) {
    vit_cuda_gemm_plan p;
    vit_status s = vit_cuda_gemm_plan_build(&p, g, batch, 0, 0, sc, VIT_PRECISION_BF16);
    ck_assert_int_eq(s, VIT_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(vit_last_error(), word), "'%s' does not name '%s'", vit_last_error(), word);
}

START_TEST(test_plan_arguments) {
    float x[64] = {0};
    const vit_gemm good = {.M = 4, .N = 4, .K = 4, .A = x, .lda = 4, .B = x, .ldb = 4, .C = x, .ldc = 4};
    vit_gemm g = good;
    g.lda = 3;
    expect_refused(&g, 1, 0, "lda");
    g = good, g.trans_b = true, g.ldb = 2;
    expect_refused(&g, 1, 0, "ldb");
    g = good, g.ldc = 1;
    expect_refused(&g, 1, 0, "ldc");
    g = good, g.accumulate = true, g.bias = x;
    expect_refused(&g, 1, 0, "accumulate");
    g = good, g.C = NULL;
    expect_refused(&g, 1, 0, "C is NULL");
    g = good, g.epilogue = (vit_epilogue)7;
    expect_refused(&g, 1, 0, "epilogue");
    g = good;
    expect_refused(&g, 3, 8, "overlap"); /* C items 16 floats long, 8 apart */
    g = good, g.M = -1;
    expect_refused(&g, 1, 0, "M is negative");
    vit_cuda_gemm_plan p;
    ck_assert_int_eq(vit_cuda_gemm_plan_build(&p, &good, 1, 0, 0, 0, (vit_precision)42), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(vit_last_error(), "precision"), "%s", vit_last_error());
}
END_TEST

int main(void) {
    Suite *s = suite_create("cuda_host");
    TCase *tc = tcase_create("host");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_module_missing);
    tcase_add_test(tc, test_module_not_loadable);
    tcase_add_test(tc, test_module_not_a_module);
    tcase_add_test(tc, test_module_mismatch);
    tcase_add_test(tc, test_module_real);
    tcase_add_test(tc, test_precision_cpu);
    tcase_add_test(tc, test_plan_layouts);
    tcase_add_test(tc, test_plan_arguments);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
