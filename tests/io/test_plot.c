/* Line charts: the raster (colours, text, layout) and the PNG written. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/plot.h"
#include "io_test_util.h"
#include "vit/plot.h"

static char dir[512];

static void setup(void) {
    /* VIT_IO_KEEP_PLOTS=folder keeps the PNGs for a look */
    const char *keep = getenv("VIT_IO_KEEP_PLOTS");
    if (keep && *keep) snprintf(dir, sizeof dir, "%s", keep);
    else ck_assert_ptr_nonnull(io_scratch_dir(dir, sizeof dir));
}

static void teardown(void) {
    const char *keep = getenv("VIT_IO_KEEP_PLOTS");
    if (!keep || !*keep) io_rm_rf(dir);
}

static const uint8_t blue[3] = {31, 119, 180}, orange[3] = {255, 127, 14};

/* Pixels within tol of a colour inside [x0, x1) x [y0, y1). */
static int count_color(const uint8_t *rgb, int w, int x0, int y0, int x1, int y1, const uint8_t c[3], int tol) {
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            const uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            n += abs(p[0] - c[0]) <= tol && abs(p[1] - c[1]) <= tol && abs(p[2] - c[2]) <= tol;
        }
    return n;
}

START_TEST(font_glyphs) {
    ck_assert_int_eq(vit_plot_text_width("", 1), 0);
    ck_assert_int_eq(vit_plot_text_width("A", 1), 5);
    ck_assert_int_eq(vit_plot_text_width("AB", 2), 22);
    uint8_t img[7 * 11 * 3];
    memset(img, 255, sizeof img);
    const uint8_t k[3] = {0, 0, 0};
    vit_plot_text(img, 11, 7, 0, 0, "T1", 1, k);
    /* 'T': full top row, then only the middle column */
    for (int x = 0; x < 5; x++) ck_assert_int_eq(img[x * 3], 0);
    ck_assert_int_eq(img[(1 * 11 + 2) * 3], 0);
    ck_assert_int_eq(img[(1 * 11 + 0) * 3], 255);
    ck_assert_int_eq(img[(6 * 11 + 2) * 3], 0);
    /* '1' starts at column 6: its bottom row is ".###." */
    ck_assert_int_eq(img[(6 * 11 + 6) * 3], 255);
    ck_assert_int_eq(img[(6 * 11 + 7) * 3], 0);
    ck_assert_int_eq(img[(6 * 11 + 9) * 3], 0);
    /* clipped at the edges, non-ASCII as '?' without crashing */
    vit_plot_text(img, 11, 7, -3, 4, "\xc3\xa9x", 2, k);
}
END_TEST

START_TEST(two_series_chart) {
    enum { N = 30, W = 800, H = 600 };
    float loss_tr[N], loss_va[N];
    for (int i = 0; i < N; i++) {
        loss_tr[i] = 2.3f * expf(-i / 8.0f) + 0.1f;
        loss_va[i] = 2.3f * expf(-i / 10.0f) + 0.25f + 0.05f * sinf((float)i);
    }
    vit_plot_series sr[2] = {{loss_tr, N, "train"}, {loss_va, N, "val"}};
    vit_plot p = {"Loss curve", "epoch", "loss", sr, 2, 1, 1};
    uint8_t *rgb = malloc(W * H * 3);
    ck_assert_int_eq(vit_plot_render(&p, rgb, W, H), VIT_OK);
    /* white corners, both colours drawn plenty, black text/axes present */
    ck_assert_int_eq(count_color(rgb, W, 0, 0, 4, 4, (const uint8_t[3]){255, 255, 255}, 0), 16);
    ck_assert_int_gt(count_color(rgb, W, 0, 0, W, H, blue, 8), 500);
    ck_assert_int_gt(count_color(rgb, W, 0, 0, W, H, orange, 8), 500);
    ck_assert_int_gt(count_color(rgb, W, 0, 0, W, 40, (const uint8_t[3]){0, 0, 0}, 0), 50); /* title */
    ck_assert_int_gt(count_color(rgb, W, 0, H - 30, W, H, (const uint8_t[3]){0, 0, 0}, 0), 30); /* "epoch" */
    ck_assert_int_gt(count_color(rgb, W, 0, 0, 30, H, (const uint8_t[3]){0, 0, 0}, 0), 30);     /* y label */
    /* anti-aliasing: intermediate shades between blue and white exist */
    ck_assert_int_gt(count_color(rgb, W, 0, 0, W, H, (const uint8_t[3]){143, 187, 217}, 30), 20);
    free(rgb);

    char path[600];
    snprintf(path, sizeof path, "%s/loss_curve.png", dir);
    ck_assert_int_eq(vit_plot_write_png(path, &p, W, H), VIT_OK);
    size_t size;
    unsigned char *png = (unsigned char *)io_slurp(path, &size);
    ck_assert_ptr_nonnull(png);
    ck_assert_mem_eq(png, "\x89PNG\r\n\x1a\n", 8);
    ck_assert_mem_eq(png + 12, "IHDR", 4);
    ck_assert_int_eq(png[16] << 24 | png[17] << 16 | png[18] << 8 | png[19], W);
    ck_assert_int_eq(png[20] << 24 | png[21] << 16 | png[22] << 8 | png[23], H);
    ck_assert_int_eq(png[25], 2); /* colour type RGB */
    free(png);
}
END_TEST

START_TEST(public_call_and_odd_data) {
    char path[600];
    float acc_tr[12], acc_va[12];
    for (int i = 0; i < 12; i++) {
        acc_tr[i] = 0.3f + 0.05f * (float)i;
        acc_va[i] = 0.25f + 0.045f * (float)i;
    }
    acc_va[5] = NAN; /* a gap */
    snprintf(path, sizeof path, "%s/acc_curve.png", dir);
    ck_assert_int_eq(vit_plot_curves(path, "Accuracy", "accuracy", 12, acc_tr, "train", acc_va, "val", 640, 480),
                     VIT_OK);
    /* one point, one series, default size */
    float one = 0.5f;
    snprintf(path, sizeof path, "%s/one.png", dir);
    ck_assert_int_eq(vit_plot_curves(path, "One", "y", 1, &one, "only", NULL, NULL, 0, 0), VIT_OK);
    /* a constant, huge, negative and all-NaN series; small canvas */
    float flat[300], huge[300], neg[300], nan_[300];
    for (int i = 0; i < 300; i++) {
        flat[i] = 3;
        huge[i] = 1e7f * (float)i;
        neg[i] = -1e-3f * (float)i;
        nan_[i] = NAN;
    }
    snprintf(path, sizeof path, "%s/flat.png", dir);
    ck_assert_int_eq(vit_plot_curves(path, NULL, NULL, 300, flat, NULL, nan_, "nan", 160, 120), VIT_OK);
    snprintf(path, sizeof path, "%s/huge.png", dir);
    ck_assert_int_eq(vit_plot_curves(path, "huge", "v", 300, huge, "big", neg, "small", 320, 240), VIT_OK);
    snprintf(path, sizeof path, "%s/nan.png", dir);
    ck_assert_int_eq(vit_plot_curves(path, "nan", "v", 300, nan_, "a", nan_, "b", 320, 240), VIT_OK);

    ck_assert_int_eq(vit_plot_curves(path, "t", "y", 0, flat, "a", NULL, NULL, 0, 0), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_plot_curves(path, "t", "y", 3, NULL, "a", NULL, NULL, 0, 0), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_plot_curves(path, "t", "y", 3, flat, "a", NULL, NULL, 100, 100), VIT_ERR_INVALID_ARGUMENT);
    snprintf(path, sizeof path, "%s/no/such/dir/x.png", dir);
    ck_assert_int_eq(vit_plot_curves(path, "t", "y", 3, flat, "a", NULL, NULL, 0, 0), VIT_ERR_IO);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "x.png"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("plot");
    TCase *tc = tcase_create("plot");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, font_glyphs);
    tcase_add_test(tc, two_series_chart);
    tcase_add_test(tc, public_call_and_odd_data);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
