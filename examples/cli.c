/* Shared helpers of the example programs (see cli.h). */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_fail(const char *prog, const char *what, vit_status status) {
    fprintf(stderr, "%s: %s: %s: %s\n", prog, what, vit_status_string(status), vit_last_error());
    return 1;
}

int cli_device(const char *prog, vit_context *ctx, const char *device, const char *precision) {
    static const char *const precisions[] = {"default", "fp32", "tf32", "bf16"}; /* vit_precision order */
    int64_t dev = -1, prec = -1;
    if (!device || !strcmp(device, "cpu")) dev = VIT_DEVICE_CPU;
    else if (!strcmp(device, "cuda")) dev = VIT_DEVICE_CUDA;
    for (int i = 0; i < 4; i++)
        if (!precision || !strcmp(precision, precisions[i])) {
            prec = precision ? i : VIT_PRECISION_DEFAULT;
            break;
        }
    if (dev < 0) return cli_usage_error(prog, "--device: '%s' is not cpu or cuda", device);
    if (prec < 0) return cli_usage_error(prog, "--precision: '%s' is not fp32, tf32 or bf16", precision);
    vit_status s = vit_context_set_int(ctx, VIT_CTX_DEVICE, dev);
    if (s != VIT_OK) return cli_fail(prog, dev == VIT_DEVICE_CUDA ? "--device cuda" : "--device cpu", s);
    s = vit_context_set_int(ctx, VIT_CTX_PRECISION, prec);
    return s == VIT_OK ? 0 : cli_fail(prog, "--precision", s);
}

int cli_model_context(const char *prog, vit_context *ctx, const char *device, const char *precision,
                      vit_context **model_ctx) {
    *model_ctx = ctx;
    if (!device && !precision) return 0;
    int64_t threads = 0;
    vit_context *m = NULL;
    vit_status s = vit_context_get_int(ctx, VIT_CTX_THREADS, &threads);
    if (s == VIT_OK) s = vit_context_create(&m);
    if (s == VIT_OK) s = vit_context_set_int(m, VIT_CTX_THREADS, threads);
    if (s != VIT_OK) {
        vit_context_destroy(m);
        return cli_fail(prog, "context", s);
    }
    int rc = cli_device(prog, m, device, precision);
    if (rc) {
        vit_context_destroy(m);
        return rc;
    }
    *model_ctx = m;
    return 0;
}

vit_status cli_tensor_prefix(vit_tensor *dst, const vit_tensor *src, size_t src_bytes) {
    int64_t n = 0;
    vit_dtype t;
    vit_status s = vit_tensor_numel(dst, &n);
    if (s == VIT_OK) s = vit_tensor_dtype(dst, &t);
    if (s != VIT_OK) return s;
    void *buf = malloc(src_bytes ? src_bytes : 1);
    if (!buf) return VIT_ERR_OUT_OF_MEMORY;
    s = vit_tensor_read(src, buf, src_bytes);
    if (s == VIT_OK) s = vit_tensor_write(dst, buf, (size_t)n * vit_dtype_size(t));
    free(buf);
    return s;
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
    char *end, shown[64];
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end) {
        cli_usage_error(prog, "%s: '%s' is not an integer", flag, cli_printable(shown, sizeof shown, text, 40));
        return false;
    }
    if (errno == ERANGE || v < lo || v > hi) {
        cli_usage_error(prog, "%s: %s is outside %lld..%lld", flag, cli_printable(shown, sizeof shown, text, 40), lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_real(const char *prog, const char *flag, const char *text, double lo, double hi, double *out) {
    char *end, shown[64];
    double v = strtod(text, &end);
    cli_printable(shown, sizeof shown, text, 40);
    if (end == text || *end) {
        cli_usage_error(prog, "%s: '%s' is not a number", flag, shown);
        return false;
    }
    /* strtod's ERANGE also flags harmless underflow (1e-400 reads as 0), so
     * only the value decides. */
    if (!isfinite(v)) {
        cli_usage_error(prog, "%s: %s is not a finite number", flag, shown);
        return false;
    }
    if (v < lo || v > hi) {
        cli_usage_error(prog, "%s: %s is outside [%g, %g]", flag, shown, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

const char *cli_printable(char *buf, size_t cap, const char *s, size_t max) {
    size_t n = 0;
    if (max + 4 > cap) max = cap - 4; /* room for "..." and the terminator */
    for (; *s && n < max; s++) buf[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    if (*s) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* Length of the decimal number at p ([+-] digits [. digits] [e [+-] digits]),
 * 0 when there is none: hexadecimal and words such as "inf" are not numbers here. */
static size_t decimal_length(const char *p) {
    const char *q = p + (*p == '+' || *p == '-');
    size_t digits = strspn(q, "0123456789");
    q += digits;
    if (*q == '.') {
        size_t frac = strspn(q + 1, "0123456789");
        digits += frac;
        q += 1 + frac;
    }
    if (!digits) return 0;
    if (*q == 'e' || *q == 'E') {
        const char *e = q + 1 + (q[1] == '+' || q[1] == '-');
        size_t exp = strspn(e, "0123456789");
        if (exp) q = e + exp;
    }
    return (size_t)(q - p);
}

bool cli_stats_parse(const char *text, bool positive, cli_stats *out, char *why, size_t cap) {
    char shown[64];
    const char *p = text;
    out->n = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        const char *start = p, *stop = p + len;
        while (start < stop && isspace((unsigned char)*start)) start++;
        while (stop > start && isspace((unsigned char)stop[-1])) stop--;
        char token[48];
        snprintf(token, sizeof token, "%.*s", (int)(stop - start < 40 ? stop - start : 40), start);
        if (stop == start || decimal_length(start) != (size_t)(stop - start)) {
            snprintf(why, cap, "'%s' is not a number", cli_printable(shown, sizeof shown, token, 40));
            return false;
        }
        if (out->n == 3) {
            snprintf(why, cap, "'%s' has more than 3 values", cli_printable(shown, sizeof shown, text, 40));
            return false;
        }
        double v = strtod(start, NULL);
        if (!isfinite(v)) {
            snprintf(why, cap, "%s is not a finite number", token);
            return false;
        }
        if (positive && !(v > 0)) {
            snprintf(why, cap, "%s is not positive", token);
            return false;
        }
        out->v[out->n++] = v;
        if (!p[len]) return true;
        p += len + 1;
    }
}

bool cli_stats_flag(const char *prog, const char *flag, const char *text, bool positive, cli_stats *out) {
    char why[160];
    if (cli_stats_parse(text, positive, out, why, sizeof why)) return true;
    cli_usage_error(prog, "%s: %s", flag, why);
    return false;
}

void cli_stats_format(char *buf, size_t cap, int channels, const float *v) {
    size_t len = 0;
    buf[0] = '\0';
    for (int c = 0; c < channels && len < cap; c++) {
        /* The shortest form that reads back as the same float. */
        char one[32];
        for (int digits = 6; digits <= 9; digits++) {
            snprintf(one, sizeof one, "%.*g", digits, (double)v[c]);
            if ((float)strtod(one, NULL) == v[c]) break;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", c ? "," : "", one);
    }
}

/* One statistic of a model: the flag's when given, else the metadata key's. */
static int model_stat(const char *prog, const char *checkpoint, const vit_model *model, int channels, const char *key,
                      const char *flag, const cli_stats *given, bool positive, double out[3]) {
    cli_stats st;
    char why[160];
    const char *text = NULL;
    if (given) {
        st = *given;
    } else {
        vit_model_get_metadata(model, key, &text);
        if (!cli_stats_parse(text, positive, &st, why, sizeof why)) {
            fprintf(stderr, "%s: %s: metadata \"%s\": %s (--mean and --std override it)\n", prog, checkpoint, key, why);
            return 1;
        }
    }
    if (st.n != 1 && st.n != channels) {
        if (given)
            return cli_usage_error(prog, "%s: %d values for a %d-channel model: give one per channel or one for all",
                                   flag, st.n, channels);
        fprintf(stderr,
                "%s: %s: metadata \"%s\": %d values for a %d-channel model, not one per channel or one for all "
                "(--mean and --std override it)\n", prog, checkpoint, key, st.n, channels);
        return 1;
    }
    for (int c = 0; c < 3; c++) out[c] = st.v[st.n == 1 ? 0 : c < st.n ? c : 0];
    return 0;
}

int cli_model_stats(const char *prog, const char *checkpoint, const vit_model *model, int channels,
                    const cli_stats *flag_mean, const cli_stats *flag_std, bool *found, double mean[3], double std[3]) {
    *found = false;
    for (int c = 0; c < 3; c++) mean[c] = 0, std[c] = 1;
    if (!flag_mean) {
        const char *m = NULL, *s = NULL;
        vit_model_get_metadata(model, "mean", &m);
        vit_model_get_metadata(model, "std", &s);
        if (!m && !s) return 0;
        if (!m || !s) {
            fprintf(stderr, "%s: %s: metadata \"%s\" without \"%s\" (--mean and --std override both)\n", prog,
                    checkpoint, m ? "mean" : "std", m ? "std" : "mean");
            return 1;
        }
    }
    int rc = model_stat(prog, checkpoint, model, channels, "mean", "--mean", flag_mean, false, mean);
    if (!rc) rc = model_stat(prog, checkpoint, model, channels, "std", "--std", flag_std, true, std);
    *found = rc == 0;
    return rc;
}

vit_status cli_transform_stats(vit_transform *tf, int channels, const double mean[3], const double std[3]) {
    vit_status s = VIT_OK;
    for (int c = 0; c < channels && c < 3 && s == VIT_OK; c++) {
        s = vit_transform_set_float(tf, (vit_transform_param)(VIT_TF_MEAN_0 + c), mean[c]);
        if (s == VIT_OK) s = vit_transform_set_float(tf, (vit_transform_param)(VIT_TF_STD_0 + c), std[c]);
    }
    return s;
}

bool cli_check_output(const char *prog, const char *flag, const char *path) {
    struct stat st;
    if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: %s %s: is a folder, not a file\n", prog, flag, path);
        return false;
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    else snprintf(dir, sizeof dir, ".");
    const char *why = NULL;
    if (stat(dir, &st)) why = strerror(errno);
    else if (!S_ISDIR(st.st_mode)) why = "not a folder";
    else if (access(dir, W_OK)) why = strerror(errno);
    if (why) fprintf(stderr, "%s: %s %s: cannot write into %s: %s\n", prog, flag, path, dir, why);
    return !why;
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
    return cli_write_atomic(prog, path, text, strlen(text));
}

bool cli_write_atomic(const char *prog, const char *path, const void *data, size_t len) {
    const char *bytes = data;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, tmp, strerror(errno));
        return false;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, bytes + off, len - off);
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

/* Length of the UTF-8 sequence at s (1..4), 0 when it is not one. */
static int utf8_length(const unsigned char *s) {
    int n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
          : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    for (int k = 1; k < n; k++)
        if ((s[k] & 0xc0) != 0x80) return 0;
    /* overlong forms, UTF-16 surrogates and code points past U+10FFFF */
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

void cli_json_string(char *buf, size_t cap, const char *s) {
    size_t n = 0;
    if (cap < 3) return;
    buf[n++] = '"';
    const unsigned char *p = (const unsigned char *)s;
    while (*p && n + 7 < cap) {
        int len = utf8_length(p);
        if (*p == '"' || *p == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)*p++;
        } else if (*p < 0x20) {
            n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", *p++);
        } else if (!len) {
            n += (size_t)snprintf(buf + n, cap - n, "\\ufffd");
            p++;
        } else {
            for (int k = 0; k < len; k++) buf[n++] = (char)*p++;
        }
    }
    buf[n++] = '"';
    buf[n] = '\0';
}

void cli_json_fputs(FILE *f, const char *s) {
    size_t cap = 6 * strlen(s) + 3; /* each byte at most "\ufffd" */
    char *buf = malloc(cap);
    if (!buf) {
        fputs("\"\"", f);
        return;
    }
    cli_json_string(buf, cap, s);
    fputs(buf, f);
    free(buf);
}
