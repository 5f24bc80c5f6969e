/* Shared helpers of the example programs (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

int cli_fail(const char *prog, const char *what, vit_status status) {
    fprintf(stderr, "%s: %s: %s: %s\n", prog, what, vit_status_string(status), vit_last_error());
    return 1;
}

int cli_usage_error(const char *prog, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s --help)\n", prog);
    return 2;
}

bool cli_is(const char *arg, const char *flag) {
    size_t n = strlen(flag);
    return !strncmp(arg, flag, n) && (arg[n] == '\0' || arg[n] == '=');
}

const char *cli_value(const char *prog, int argc, char **argv, int *i, const char *flag) {
    const char *eq = strchr(argv[*i], '=');
    if (eq) return eq + 1;
    if (*i + 1 >= argc) {
        cli_usage_error(prog, "%s needs a value", flag);
        return NULL;
    }
    return argv[++*i];
}

bool cli_int(const char *prog, const char *flag, const char *text, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end) {
        cli_usage_error(prog, "%s: '%s' is not an integer", flag, text);
        return false;
    }
    if (v < lo || v > hi) {
        cli_usage_error(prog, "%s: %lld is outside %lld..%lld", flag, v, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_real(const char *prog, const char *flag, const char *text, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v)) {
        cli_usage_error(prog, "%s: '%s' is not a number", flag, text);
        return false;
    }
    if (v < lo || v > hi) {
        cli_usage_error(prog, "%s: %g is outside [%g, %g]", flag, v, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_reals(const char *prog, const char *flag, const char *text, int n, double *out) {
    const char *p = text;
    for (int k = 0; k < n; k++) {
        char *end;
        errno = 0;
        out[k] = strtod(p, &end);
        if (errno || end == p || !isfinite(out[k]) || (k < n - 1 ? *end != ',' : *end != '\0')) {
            cli_usage_error(prog, "%s: '%s' is not %d comma-separated numbers", flag, text, n);
            return false;
        }
        p = end + 1;
    }
    return true;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *label, int64_t total, int64_t done, int64_t images) {
    p->label = label;
    p->total = total;
    p->done = p->first_done = done;
    p->first_images = images;
    p->start = p->last_print = cli_now();
    p->tty = isatty(STDERR_FILENO);
}

static void format_duration(char *buf, size_t cap, double s) {
    if (!(s >= 0) || s > 1e7) s = 0;
    int t = (int)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%02d:%02d", t / 60, t % 60);
}

void cli_progress_update(cli_progress *p, int64_t done, int64_t images, double loss) {
    double now = cli_now();
    p->done = done;
    bool last = done >= p->total;
    /* A terminal redraws at most 10 times a second; a log gets a line every 10 s. */
    if (!last && now - p->last_print < (p->tty ? 0.1 : 10.0)) return;
    p->last_print = now;
    double elapsed = now - p->start, rate = elapsed > 0 ? (double)(images - p->first_images) / elapsed : 0;
    int64_t run = done - p->first_done;
    double eta = run > 0 ? elapsed * (double)(p->total - done) / (double)run : 0;
    char el[16], et[16];
    format_duration(el, sizeof el, elapsed);
    format_duration(et, sizeof et, eta);
    int pct = p->total ? (int)(100 * done / p->total) : 100;
    if (p->tty) {
        char bar[26];
        int fill = pct / 4;
        for (int i = 0; i < 25; i++) bar[i] = i < fill ? '#' : ' ';
        bar[25] = '\0';
        fprintf(stderr, "\r%s %3d%%|%s| %lld/%lld [%s<%s, %.1f img/s, loss=%.4f]", p->label, pct, bar,
                (long long)done, (long long)p->total, el, et, rate, loss);
    } else {
        fprintf(stderr, "%s %lld/%lld (%d%%) %.1f img/s loss=%.4f elapsed %s eta %s\n", p->label, (long long)done,
                (long long)p->total, pct, rate, loss, el, et);
    }
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->tty) fputc('\n', stderr);
}

bool cli_write_text_atomic(const char *prog, const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, tmp, strerror(errno));
        return false;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n <= 0) break;
        off += (size_t)n;
    }
    bool ok = off == len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
        unlink(tmp);
    }
    return ok;
}

void cli_json_string(char *buf, size_t cap, const char *s) {
    size_t n = 0;
    if (cap < 3) return;
    buf[n++] = '"';
    for (; *s && n + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", c);
        } else {
            buf[n++] = (char)c;
        }
    }
    buf[n++] = '"';
    buf[n] = '\0';
}
