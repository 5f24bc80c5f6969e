/* Small helpers shared by the example programs: flag parsing with errors that
 * name the flag, and failure reporting through libvit's status and detail. */
#ifndef VIT_EXAMPLES_CLI_H
#define VIT_EXAMPLES_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include <vit/vit.h>

/* Print "prog: what: status: detail" to stderr; returns 1 for `return cli_fail(...)`. */
int cli_fail(const char *prog, const char *what, vit_status status);
/* Print "prog: message" to stderr; returns 2 (usage errors). */
int cli_usage_error(const char *prog, const char *fmt, ...);

/* Parse a flag's value; on error print which flag and why and return false. */
bool cli_int(const char *prog, const char *flag, const char *text, long long lo, long long hi, long long *out);
bool cli_real(const char *prog, const char *flag, const char *text, double lo, double hi, double *out);
/* "0.485,0.456,0.406" -> up to n numbers; count must equal n. */
bool cli_reals(const char *prog, const char *flag, const char *text, int n, double *out);

/* The value after argv[*i] for flag "--name" or "--name=value" forms; NULL
 * and an error message when it is missing. */
const char *cli_value(const char *prog, int argc, char **argv, int *i, const char *flag);
/* True when argv[i] is flag itself or "flag=...". */
bool cli_is(const char *arg, const char *flag);

double cli_now(void);

/* Write text to path atomically (temporary file, fsync, rename); false and a
 * message naming the file on failure. */
bool cli_write_text_atomic(const char *prog, const char *path, const char *text);
/* JSON string literal of s (quotes and escapes) into buf. */
void cli_json_string(char *buf, size_t cap, const char *s);

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
