/* Atomic file writes (io/atomic.h).
 *
 * The data goes to "<path>.tmp.XXXXXX" in the target's folder (same file
 * system, so rename is atomic), is flushed and fsynced, and only then renamed
 * over the target; the folder is fsynced last so the rename itself survives a
 * crash. Any failure removes the temporary and leaves the target untouched. */
#include "io/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The folder part of path ("." when it has none), into buf. */
static void dir_of(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, cap, ".");
    } else if (slash == path) {
        snprintf(buf, cap, "/");
    } else {
        snprintf(buf, cap, "%.*s", (int)(slash - path), path);
    }
}

/* Best effort: some file systems refuse fsync on a folder (EINVAL); the data
 * itself is already durable then, so that is not an error. */
static vit_status fsync_dir(const char *path) {
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return VIT_OK;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL && err != ENOTSUP && err != EROFS)
        return vit_fail(VIT_ERR_IO, "%s: syncing folder %s: %s", path, dir, strerror(err));
    return VIT_OK;
}

vit_status vit_atomic_write(const char *path, vit_status (*write)(FILE *f, void *user), void *user) {
    VIT_CHECK_ARG(path && *path, "atomic write: path is NULL or empty");
    VIT_CHECK_ARG(write, "atomic write %s: write callback is NULL", path);

    size_t n = strlen(path);
    char *tmp = malloc(n + sizeof ".tmp.XXXXXX");
    if (!tmp) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for the temporary name", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");

    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        vit_status s = vit_fail(VIT_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return s;
    }
    /* mkstemp makes the file 0600; a checkpoint or plot should get the usual
     * permissions an fopen would give (0666 less the umask). */
    mode_t mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);

    vit_status s = VIT_OK;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        s = vit_fail(VIT_ERR_IO, "%s: fdopen of %s: %s", path, tmp, strerror(errno));
        close(fd);
        goto fail;
    }
    s = write(f, user);
    if (s != VIT_OK) {
        fclose(f);
        vit_error_prefix("writing %s", path);
        goto fail;
    }
    if (ferror(f) || fflush(f) != 0) {
        s = vit_fail(VIT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        fclose(f);
        goto fail;
    }
    if (fsync(fileno(f)) != 0) {
        s = vit_fail(VIT_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
        fclose(f);
        goto fail;
    }
    if (fclose(f) != 0) {
        s = vit_fail(VIT_ERR_IO, "%s: close failed: %s", path, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        s = vit_fail(VIT_ERR_IO, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    free(tmp);
    return fsync_dir(path);

fail:
    unlink(tmp);
    free(tmp);
    return s;
}
