/* Checkpoints (vit/checkpoint.h): a safetensors file whose metadata and
 * tensor table say what model or optimizer it holds. The input is written
 * to a file, then read the four ways a program does: its metadata alone, as
 * a new model (the configuration inferred from shapes and "vit.*" keys),
 * into an existing model (exact, and with the head / extra-tensor
 * allowances), and as that model's optimizer state ("optim.*" keys).
 *
 * The existing model is vit_fuzz_seed_model(). */
#include "fuzz.h"

static vit_model *model;
static vit_optimizer *opt;

static void setup(void) {
    model = vit_fuzz_seed_model();
    if (vit_adamw_create(model, &opt) != VIT_OK) {
        fprintf(stderr, "fuzz: cannot make the checkpoint target's optimizer: %s\n", vit_last_error());
        abort();
    }
}

static void on_metadata(void *user, const char *key, const char *value) {
    (void)user;
    vit_fuzz_touch_str(key);
    vit_fuzz_touch_str(value);
}

VIT_FUZZ_TARGET(checkpoint) {
    if (!model) setup();
    const char *dir = vit_fuzz_dir();
    char path[700];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    if (vit_fuzz_write(dir, "ckpt.safetensors", data, size) != 0) abort();

    vit_fuzz_check_error(vit_checkpoint_read_metadata(path, on_metadata, NULL));

    vit_model *m = NULL;
    vit_status s = vit_model_load(vit_fuzz_context(), path, &m);
    vit_fuzz_check_error(s);
    if (s == VIT_OK) {
        int64_t numel = 0;
        if (vit_model_num_params(m, &numel) != VIT_OK || numel <= 0) abort();
    } else if (m) {
        abort();
    }
    vit_model_destroy(m);

    vit_fuzz_check_error(vit_model_load_weights(model, path, 0));
    vit_fuzz_check_error(
        vit_model_load_weights(model, path, VIT_LOAD_ALLOW_HEAD_MISMATCH | VIT_LOAD_IGNORE_EXTRA));
    vit_fuzz_check_error(vit_optimizer_load(opt, model, path));
    return 0;
}
