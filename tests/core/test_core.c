/* Core API: statuses, errors, contexts and tensors, including bad input. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include <vit/vit.h>

static vit_context *ctx;

static void setup(void) { ck_assert_int_eq(vit_context_create(&ctx), VIT_OK); }
static void teardown(void) { vit_context_destroy(ctx); }

START_TEST(status_strings) {
    ck_assert_str_eq(vit_status_string(VIT_OK), "ok");
    ck_assert_str_eq(vit_status_string(VIT_ERR_SHAPE), "shape mismatch");
    ck_assert_str_eq(vit_status_string((vit_status)999), "unknown status");
    ck_assert_uint_eq(vit_version_number(), VIT_VERSION_NUMBER);
    ck_assert_str_eq(vit_version_string(), VIT_VERSION_STRING);
}
END_TEST

START_TEST(context_settings) {
    int64_t v;
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_THREADS, 3), VIT_OK);
    ck_assert_int_eq(vit_context_get_int(ctx, VIT_CTX_THREADS, &v), VIT_OK);
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_SEED, 42), VIT_OK);
    ck_assert_int_eq(vit_context_get_int(ctx, VIT_CTX_SEED, &v), VIT_OK);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_THREADS, -1), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "VIT_CTX_THREADS"));
    ck_assert_int_eq(vit_context_set_int(ctx, (vit_context_param)77, 1), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "unknown parameter"));
    ck_assert_int_eq(vit_context_set_int(ctx, VIT_CTX_DEVICE, 9), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_context_set_int(NULL, VIT_CTX_SEED, 1), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_context_create(NULL), VIT_ERR_INVALID_ARGUMENT);
    vit_context_destroy(NULL);
}
END_TEST

static int logged;
static void count_log(void *user, vit_log_level level, const char *msg) {
    (void)level;
    (void)msg;
    *(int *)user += 1;
    logged++;
}

START_TEST(log_callback) {
    int n = 0;
    ck_assert_int_eq(vit_context_set_log(ctx, count_log, &n), VIT_OK);
    ck_assert_int_eq(vit_context_set_log(NULL, count_log, &n), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_context_set_log(ctx, NULL, NULL), VIT_OK);
}
END_TEST

START_TEST(tensor_roundtrip) {
    int64_t shape[3] = {2, 3, 5};
    vit_tensor *t = NULL;
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 3, shape, &t), VIT_OK);
    float in[30], out[30];
    for (int i = 0; i < 30; i++) in[i] = (float)i * 0.5f;
    ck_assert_int_eq(vit_tensor_write(t, in, sizeof in), VIT_OK);
    ck_assert_int_eq(vit_tensor_read(t, out, sizeof out), VIT_OK);
    ck_assert_mem_eq(in, out, sizeof in);
    int ndim;
    int64_t got[VIT_MAX_DIMS], numel;
    ck_assert_int_eq(vit_tensor_shape(t, &ndim, got), VIT_OK);
    ck_assert_int_eq(ndim, 3);
    ck_assert_int_eq(got[2], 5);
    ck_assert_int_eq(got[3], 1);
    ck_assert_int_eq(vit_tensor_numel(t, &numel), VIT_OK);
    ck_assert_int_eq(numel, 30);
    vit_dtype dt;
    vit_device dev;
    ck_assert_int_eq(vit_tensor_dtype(t, &dt), VIT_OK);
    ck_assert_int_eq(dt, VIT_DTYPE_F32);
    ck_assert_int_eq(vit_tensor_device(t, &dev), VIT_OK);
    ck_assert_int_eq(dev, VIT_DEVICE_CPU);
    /* A buffer of the wrong size names both sizes and the shape. */
    ck_assert_int_eq(vit_tensor_write(t, in, 29 * sizeof(float)), VIT_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "[2, 3, 5]"));
    ck_assert_int_eq(vit_tensor_read(t, NULL, sizeof out), VIT_ERR_INVALID_ARGUMENT);
    vit_tensor_destroy(t);
    vit_tensor_destroy(NULL);
}
END_TEST

START_TEST(tensor_bad_input) {
    vit_tensor *t = (vit_tensor *)1;
    int64_t ok[2] = {2, 2}, zero[2] = {2, 0}, huge[4] = {INT64_MAX / 2, 4, 4, 4};
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 0, ok, &t), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 5, ok, &t), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 2, zero, &t), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "shape[1]"));
    ck_assert_int_eq(vit_tensor_create(ctx, (vit_dtype)42, 2, ok, &t), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_BF16, 2, ok, &t), VIT_ERR_UNSUPPORTED);
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 4, huge, &t), VIT_ERR_OUT_OF_MEMORY);
    ck_assert_int_eq(vit_tensor_create(NULL, VIT_DTYPE_F32, 2, ok, &t), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_tensor_create(ctx, VIT_DTYPE_F32, 2, NULL, &t), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_tensor_shape(NULL, NULL, NULL), VIT_ERR_INVALID_ARGUMENT);
}
END_TEST

int main(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, status_strings);
    tcase_add_test(tc, context_settings);
    tcase_add_test(tc, log_callback);
    tcase_add_test(tc, tensor_roundtrip);
    tcase_add_test(tc, tensor_bad_input);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
