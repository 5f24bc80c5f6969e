/* Atomic file writes: a temporary file beside the target, fsync, rename, so a
 * crash mid-write leaves the previous file intact. */
#ifndef VIT_IO_ATOMIC_H
#define VIT_IO_ATOMIC_H

#include <stdio.h>

#include "core/core.h"

/* Calls write(f, user) on a temporary file in path's folder; on VIT_OK from
 * it, flushes, fsyncs and renames over path (then fsyncs the folder). On any
 * failure the temporary is removed, path is untouched, and the status says
 * which file and why. */
vit_status vit_atomic_write(const char *path, vit_status (*write)(FILE *f, void *user), void *user);

#endif
