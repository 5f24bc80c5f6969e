/*
 * A host program that runs in a locale whose decimal point is ',' (de_DE)
 * saves and loads checkpoints whose metadata holds reals (the optimizer's
 * learning rate, the model's MLP ratio and LayerNorm epsilon) exactly as in
 * the "C" locale. The locale is compiled into a temporary folder with
 * localedef (LOCPATH), so nothing is installed; without localedef or the
 * locale sources the test is skipped.
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vit/vit.h>

#define CHECK(call) do { vit_status s_ = (call); if (s_ != VIT_OK) { \
    fprintf(stderr, "%s: %s\n", #call, vit_last_error()); return 1; } } while (0)

int main(void) {
    char dir[64] = "/tmp/vit_locale.XXXXXX", cmd[256], path[128], opt_path[128];
    if (!mkdtemp(dir)) return 1;
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
    int made = system(cmd) == 0;
    setenv("LOCPATH", dir, 1);
    if (!made || !setlocale(LC_ALL, "de_DE.UTF-8") || strcmp(localeconv()->decimal_point, ",") != 0) {
        printf("SKIP: cannot make the de_DE.UTF-8 locale here (localedef and the locale sources are needed)\n");
        return 77;
    }
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    snprintf(opt_path, sizeof opt_path, "%s/o.safetensors", dir);
    vit_context *ctx;
    vit_config *cfg;
    vit_model *m, *back;
    vit_optimizer *opt, *opt2;
    CHECK(vit_context_create(&ctx));
    CHECK(vit_config_create(&cfg));
    CHECK(vit_config_set_int(cfg, VIT_CFG_IMG_SIZE, 16));
    CHECK(vit_config_set_int(cfg, VIT_CFG_PATCH_SIZE, 4));
    CHECK(vit_config_set_int(cfg, VIT_CFG_NUM_CLASSES, 3));
    CHECK(vit_config_set_int(cfg, VIT_CFG_DIM, 16));
    CHECK(vit_config_set_int(cfg, VIT_CFG_DEPTH, 1));
    CHECK(vit_config_set_int(cfg, VIT_CFG_HEADS, 2));
    CHECK(vit_config_set_float(cfg, VIT_CFG_MLP_RATIO, 2.5));
    CHECK(vit_config_set_float(cfg, VIT_CFG_LN_EPS, 1e-5));
    CHECK(vit_model_create(ctx, cfg, &m));
    CHECK(vit_adamw_create(m, &opt));
    CHECK(vit_optimizer_set_float(opt, VIT_OPT_LR, 0.00123));
    CHECK(vit_optimizer_set_float(opt, VIT_OPT_WEIGHT_DECAY, 0.05));
    CHECK(vit_model_save(m, path));
    CHECK(vit_optimizer_save(opt, m, opt_path));
    CHECK(vit_model_load(ctx, path, &back));
    CHECK(vit_adamw_create(back, &opt2));
    CHECK(vit_optimizer_load(opt2, back, opt_path));
    vit_config *got;
    double ratio, eps, lr, wd;
    CHECK(vit_model_get_config(back, &got));
    CHECK(vit_config_get_float(got, VIT_CFG_MLP_RATIO, &ratio));
    CHECK(vit_config_get_float(got, VIT_CFG_LN_EPS, &eps));
    CHECK(vit_optimizer_get_float(opt2, VIT_OPT_LR, &lr));
    CHECK(vit_optimizer_get_float(opt2, VIT_OPT_WEIGHT_DECAY, &wd));
    int ok = ratio == 2.5 && eps == 1e-5 && lr == 0.00123 && wd == 0.05;
    printf("in the de_DE locale: mlp_ratio %g, ln_eps %g, lr %g, weight decay %g read back %s\n", ratio, eps, lr, wd,
           ok ? "exactly" : "WRONG");
    vit_config_destroy(got);
    vit_optimizer_destroy(opt2);
    vit_optimizer_destroy(opt);
    vit_model_destroy(back);
    vit_model_destroy(m);
    vit_config_destroy(cfg);
    vit_context_destroy(ctx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return ok ? 0 : 1;
}
