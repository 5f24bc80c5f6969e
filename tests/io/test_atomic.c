/* vit_atomic_write: success, a failing callback, an unwritable folder. */
#include <check.h>
#include <dirent.h>
#include <string.h>
#include <unistd.h>

#include "io/atomic.h"
#include "io_test_util.h"

static char dir[512];

static void setup(void) { ck_assert_ptr_nonnull(io_scratch_dir(dir, sizeof dir)); }
static void teardown(void) { io_rm_rf(dir); }

/* Number of entries in dir other than . and .. (temporaries must not linger). */
static int count_entries(void) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static vit_status write_text(FILE *f, void *user) {
    fputs((const char *)user, f);
    return VIT_OK;
}

static vit_status write_then_fail(FILE *f, void *user) {
    (void)user;
    fputs("partial garbage", f);
    return vit_fail(VIT_ERR_FORMAT, "callback gave up");
}

START_TEST(writes_and_replaces) {
    char path[600];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    ck_assert_int_eq(vit_atomic_write(path, write_text, "first"), VIT_OK);
    ck_assert(io_file_is(path, "first"));
    ck_assert_int_eq(vit_atomic_write(path, write_text, "second"), VIT_OK);
    ck_assert(io_file_is(path, "second"));
    ck_assert_int_eq(count_entries(), 1);
    /* umask-style permissions, not mkstemp's 0600 */
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_ne(st.st_mode & 0044, 0);
}
END_TEST

START_TEST(failing_callback_keeps_old_file) {
    char path[600];
    snprintf(path, sizeof path, "%s/b.txt", dir);
    ck_assert_int_eq(vit_atomic_write(path, write_text, "precious"), VIT_OK);
    vit_status s = vit_atomic_write(path, write_then_fail, NULL);
    ck_assert_int_eq(s, VIT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "callback gave up"));
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "b.txt"));
    ck_assert(io_file_is(path, "precious"));
    ck_assert_int_eq(count_entries(), 1);
}
END_TEST

START_TEST(missing_folder_is_io_error) {
    char path[600];
    snprintf(path, sizeof path, "%s/no/such/dir/c.txt", dir);
    vit_status s = vit_atomic_write(path, write_text, "x");
    ck_assert_int_eq(s, VIT_ERR_IO);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "c.txt"));
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "No such file"));
}
END_TEST

START_TEST(unwritable_folder_is_io_error) {
    char sub[600], path[700];
    snprintf(sub, sizeof sub, "%s/ro", dir);
    ck_assert_int_eq(mkdir(sub, 0555), 0);
    snprintf(path, sizeof path, "%s/d.txt", sub);
    vit_status s = vit_atomic_write(path, write_text, "x");
    if (geteuid() == 0) {
        /* root ignores folder permissions; the write simply succeeds */
        ck_assert_int_eq(s, VIT_OK);
    } else {
        ck_assert_int_eq(s, VIT_ERR_IO);
        ck_assert_ptr_nonnull(strstr(vit_last_error(), "d.txt"));
        ck_assert_ptr_nonnull(strstr(vit_last_error(), "Permission denied"));
    }
    /* A folder component that is a regular file fails for everyone. */
    char file[700], bad[800];
    snprintf(file, sizeof file, "%s/plain", dir);
    ck_assert_int_eq(io_spit(file, "x", 1), 0);
    snprintf(bad, sizeof bad, "%s/e.txt", file);
    s = vit_atomic_write(bad, write_text, "x");
    ck_assert_int_eq(s, VIT_ERR_IO);
    ck_assert_ptr_nonnull(strstr(vit_last_error(), "Not a directory"));
}
END_TEST

START_TEST(bad_arguments) {
    ck_assert_int_eq(vit_atomic_write(NULL, write_text, "x"), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_atomic_write("", write_text, "x"), VIT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vit_atomic_write("x", NULL, NULL), VIT_ERR_INVALID_ARGUMENT);
}
END_TEST

int main(void) {
    Suite *s = suite_create("atomic");
    TCase *tc = tcase_create("atomic");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, writes_and_replaces);
    tcase_add_test(tc, failing_callback_keeps_old_file);
    tcase_add_test(tc, missing_folder_is_io_error);
    tcase_add_test(tc, unwritable_folder_is_io_error);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
