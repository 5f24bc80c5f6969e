/* Small helpers shared by the example programs: flag parsing with errors that
 * name the flag, and failure reporting through libvit's status and detail. */
#ifndef VIT_EXAMPLES_CLI_H
#define VIT_EXAMPLES_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <vit/vit.h>

/* Print "prog: what: status: detail" to stderr; returns 1 for `return cli_fail(...)`. */
int cli_fail(const char *prog, const char *what, vit_status status);
/* Print "prog: message" to stderr; returns 2 (usage errors). */
int cli_usage_error(const char *prog, const char *fmt, ...);

/* --device cpu|cuda and --precision default|fp32|tf32|bf16 (NULL: default)
 * applied to ctx: 0, 2 for a value that is not one of those (usage), 1 when
 * the context refuses (no GPU, bf16 on the CPU: the reason is printed). */
int cli_device(const char *prog, vit_context *ctx, const char *device, const char *precision);
#define CLI_DEVICE_HELP "--device cpu|cuda (cpu)  --precision fp32|tf32|bf16 (fp32 on the CPU, bf16 on a GPU)"

/* The context a program's model runs in: ctx itself when neither --device
 * nor --precision was given (both NULL), else a new context with ctx's
 * thread count on that device (the data, pictures and transforms stay on
 * ctx, in host memory). Returns 0 or the exit status; the caller destroys
 * *model_ctx when it is not ctx. */
int cli_model_context(const char *prog, vit_context *ctx, const char *device, const char *precision,
                      vit_context **model_ctx);

/* dst (whole) = the first bytes of src, whose whole size is src_bytes; either
 * tensor may be in device memory. */
vit_status cli_tensor_prefix(vit_tensor *dst, const vit_tensor *src, size_t src_bytes);

/* Parse a flag's value; on error print which flag and why and return false. */
bool cli_int(const char *prog, const char *flag, const char *text, long long lo, long long hi, long long *out);
bool cli_real(const char *prog, const char *flag, const char *text, double lo, double hi, double *out);

/* Normalisation statistics, a mean or a std: one value per channel or one
 * value for all channels, comma-separated ("0.5" or "0.485,0.456,0.406").
 * The same rule holds for --mean/--std and for a checkpoint's "mean"/"std". */
typedef struct cli_stats {
    int n;       /* values given, 1..3 */
    double v[3];
} cli_stats;
/* false with the reason in why; positive: every value must be > 0 (a std). */
bool cli_stats_parse(const char *text, bool positive, cli_stats *out, char *why, size_t cap);
/* --mean / --std: the syntax, checked while parsing the command line (exit 2). */
bool cli_stats_flag(const char *prog, const char *flag, const char *text, bool positive, cli_stats *out);
/* "0.5" for one channel, "0.485,0.456,0.406" for three: values that read back
 * as the same floats, as vit_transform_set_float stores them. */
void cli_stats_format(char *buf, size_t cap, int channels, const float *v);
/* A model's normalisation for `channels` channels: from --mean/--std when
 * flag_mean is not NULL, else from the checkpoint's "mean"/"std" metadata,
 * else none (*found false; mean 0, std 1). Returns 0, or the exit status
 * after one line on stderr: 2 when a flag does not fit the model, 1 for
 * metadata that is not valid (naming the checkpoint and the key). */
int cli_model_stats(const char *prog, const char *checkpoint, const vit_model *model, int channels,
                    const cli_stats *flag_mean, const cli_stats *flag_std, bool *found, double mean[3], double std[3]);
/* Sets a transform's per-channel mean and std. */
vit_status cli_transform_stats(vit_transform *tf, int channels, const double mean[3], const double std[3]);

/* An output file the program will write at the end: refused early (one line,
 * false) when it is a folder or its folder is missing or not writable, so a
 * long run does not end in a failed write. */
bool cli_check_output(const char *prog, const char *flag, const char *path);
/* Copies s into buf for a one-line message: at most max bytes, control
 * characters as '?'. */
const char *cli_printable(char *buf, size_t cap, const char *s, size_t max);

/* The value after argv[*i] for flag "--name" or "--name=value" forms; NULL
 * and an error message when it is missing. */
const char *cli_value(const char *prog, int argc, char **argv, int *i, const char *flag);
/* True when argv[i] is flag itself or "flag=...". */
bool cli_is(const char *arg, const char *flag);

double cli_now(void);

/* Write text to path atomically (temporary file, fsync, rename); false and a
 * message naming the file on failure. */
bool cli_write_text_atomic(const char *prog, const char *path, const char *text);
/* The same for len bytes. */
bool cli_write_atomic(const char *prog, const char *path, const void *data, size_t len);
/* JSON string literal of s (quotes and escapes) into buf; bytes that are not
 * UTF-8 (a file name is any bytes) become U+FFFD, so the JSON stays valid. */
void cli_json_string(char *buf, size_t cap, const char *s);
/* The same, written to f whatever its length. */
void cli_json_fputs(FILE *f, const char *s);

/* A progress line on stderr: a redrawn bar on a terminal, periodic plain lines otherwise. */
typedef struct cli_progress {
    const char *label;
    int64_t total, done;
    int64_t first_done, first_images; /* where this process began (a resumed epoch starts midway) */
    double start, last_print;
    bool tty;
} cli_progress;
/* done and images: the counts already reached, so rate and ETA cover only this process's work. */
void cli_progress_start(cli_progress *p, const char *label, int64_t total, int64_t done, int64_t images);
void cli_progress_update(cli_progress *p, int64_t done, int64_t images, double loss);
void cli_progress_end(cli_progress *p);

#endif
