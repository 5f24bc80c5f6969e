/* Numbers in files: written and read in the "C" locale whatever the host
 * program has set (a locale whose decimal point is ',' would otherwise turn
 * "0.001" into 0 or an error). */
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"

static locale_t c_numeric;
static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;

/* Made once and kept for the process's life, like the C library's own. */
static void make_c_numeric(void) { c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0); }

double vit_strtod_c(const char *s, char **end) {
    pthread_once(&c_numeric_once, make_c_numeric);
    return c_numeric ? strtod_l(s, end, c_numeric) : strtod(s, end);
}

void vit_format_real(char *buf, size_t cap, double v) {
    snprintf(buf, cap, "%.17g", v); /* round-trips a double exactly */
    for (char *p = buf; *p; p++)
        if (*p == ',') *p = '.';
}
