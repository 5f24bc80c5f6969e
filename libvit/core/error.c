/* Status names, the per-thread error detail, version queries and logging. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

#define VIT_ERROR_CAP 1024

static _Thread_local char last_error[VIT_ERROR_CAP];
static _Thread_local vit_status last_status = VIT_OK;

const char *vit_status_string(vit_status status) {
    switch (status) {
    case VIT_OK: return "ok";
    case VIT_ERR_INVALID_ARGUMENT: return "invalid argument";
    case VIT_ERR_SHAPE: return "shape mismatch";
    case VIT_ERR_DTYPE: return "wrong element type";
    case VIT_ERR_OUT_OF_MEMORY: return "out of memory";
    case VIT_ERR_IO: return "input/output error";
    case VIT_ERR_FORMAT: return "malformed data";
    case VIT_ERR_UNSUPPORTED: return "unsupported";
    case VIT_ERR_STATE: return "call out of order";
    case VIT_ERR_NUMERIC: return "non-finite value";
    case VIT_ERR_INTERNAL: return "internal error";
    case VIT_ERR_CANCELLED: return "cancelled";
    case VIT_ERR_NOT_FOUND: return "not found";
    }
    return "unknown status";
}

const char *vit_last_error(void) { return last_error; }

void vit_clear_error(void) {
    last_error[0] = '\0';
    last_status = VIT_OK;
}

vit_status vit_last_status(void) { return last_status == VIT_OK ? VIT_ERR_INTERNAL : last_status; }

vit_status vit_fail(vit_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    last_status = status;
    return status;
}

void vit_error_prefix(const char *fmt, ...) {
    char prefix[512], old[VIT_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* Keep the tail of the message when both do not fit: the cause is there. */
    int room = (int)(sizeof last_error) - (int)strlen(prefix) - 3;
    snprintf(last_error, sizeof last_error, "%s: %.*s", prefix, room > 0 ? room : 0, old);
}

unsigned vit_version_number(void) { return VIT_VERSION_NUMBER; }

const char *vit_version_string(void) { return VIT_VERSION_STRING; }

static const char *level_name(vit_log_level level) {
    switch (level) {
    case VIT_LOG_ERROR: return "error";
    case VIT_LOG_WARN: return "warning";
    case VIT_LOG_INFO: return "info";
    case VIT_LOG_DEBUG: return "debug";
    }
    return "log";
}

void vit_log(const vit_context *ctx, vit_log_level level, const char *fmt, ...) {
    vit_log_level max = ctx ? ctx->log_level : VIT_LOG_WARN;
    if (level > max) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx && ctx->log_fn)
        ctx->log_fn(ctx->log_user, level, msg);
    else
        fprintf(stderr, "libvit %s: %s\n", level_name(level), msg);
}
