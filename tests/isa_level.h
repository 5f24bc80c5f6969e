/*
 * Tests that run once per CPU ISA level: meson registers them with
 * VIT_MAX_CPU_ISA set to each level. A level the processor lacks is skipped
 * (exit 77, meson's SKIP) with the reason, rather than silently run at a
 * lower level.
 */
#ifndef VIT_TESTS_ISA_LEVEL_H
#define VIT_TESTS_ISA_LEVEL_H

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "vit/vit.h"

static inline void skip_unless_isa_level_available(const char *test) {
    static const char *const names[] = {"baseline", "avx2", "avx512"};
    const char *want = getenv("VIT_MAX_CPU_ISA");
    vit_context *ctx = NULL;
    int64_t have = -1;
    if (vit_context_create(&ctx) != VIT_OK || vit_context_get_int(ctx, VIT_CTX_CPU_ISA, &have) != VIT_OK) {
        fprintf(stderr, "%s: cannot read VIT_CTX_CPU_ISA: %s\n", test, vit_last_error());
        exit(EXIT_FAILURE);
    }
    vit_context_destroy(ctx);
    if (want && *want)
        for (int level = 0; level < 3; level++)
            if (!strcasecmp(want, names[level]) && level > have) {
                printf("SKIP: %s at VIT_MAX_CPU_ISA=%s: this processor's widest level is %s\n", test, want,
                       names[have]);
                exit(77);
            }
    printf("%s: CPU kernels at ISA level %s\n", test, names[have]);
}

#endif
