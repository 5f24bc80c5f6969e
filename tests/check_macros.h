/* CHECK records a failed expectation and goes on; OK stops the test at the
 * first failing libvit call, printing its error. For tests that are plain
 * programs (not Check suites). */
#ifndef VIT_TESTS_CHECK_MACROS_H
#define VIT_TESTS_CHECK_MACROS_H

#include <stdio.h>
#include <stdlib.h>

#include "vit/vit.h"

static int failures;
#define CHECK(cond, ...)                                         \
    do {                                                         \
        if (!(cond)) {                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fprintf(stderr, "\n");                               \
            failures++;                                          \
        }                                                        \
    } while (0)
#define OK(call)                                                                                 \
    do {                                                                                         \
        vit_status s_ = (call);                                                                  \
        if (s_ != VIT_OK) {                                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, vit_last_error()); \
            exit(EXIT_FAILURE);                                                                  \
        }                                                                                        \
    } while (0)

#endif
