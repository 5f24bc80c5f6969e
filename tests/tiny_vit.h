/* A small ViT through the public API, for tests: one input channel,
 * patches of 4, no dropout. */
#ifndef VIT_TESTS_TINY_VIT_H
#define VIT_TESTS_TINY_VIT_H

#include "vit/vit.h"

static inline vit_status tiny_vit(vit_context *ctx, int img, int classes, int dim, int depth, int heads,
                                  vit_model **out) {
    vit_config *cfg;
    vit_status s = vit_config_create(&cfg);
    if (s != VIT_OK) return s;
    const int64_t ints[][2] = {{VIT_CFG_IMG_SIZE, img}, {VIT_CFG_PATCH_SIZE, 4}, {VIT_CFG_IN_CHANNELS, 1},
                               {VIT_CFG_NUM_CLASSES, classes}, {VIT_CFG_DIM, dim}, {VIT_CFG_DEPTH, depth},
                               {VIT_CFG_HEADS, heads}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints && s == VIT_OK; i++)
        s = vit_config_set_int(cfg, (vit_config_key)ints[i][0], ints[i][1]);
    if (s == VIT_OK) s = vit_model_create(ctx, cfg, out);
    vit_config_destroy(cfg);
    return s;
}

#endif
