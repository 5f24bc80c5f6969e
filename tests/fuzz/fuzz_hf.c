/* Hugging Face transformers ViT checkpoints (nn/hf_import.c): a folder of
 * model.safetensors in transformers' layout and, after VIT_FUZZ_SEP each,
 * config.json and preprocessor_config.json (absent without a separator).
 * Loaded as a new model, and into an existing one (exact, and with the head
 * allowance) as a ViTModel backbone would be.
 *
 * The existing model is vit_fuzz_seed_model(). */
#include "fuzz.h"

static vit_model *model;

VIT_FUZZ_TARGET(hf) {
    if (!model) model = vit_fuzz_seed_model();
    static const char *const names[] = {"model.safetensors", "config.json", "preprocessor_config.json"};
    const uint8_t *part[3];
    size_t len[3];
    int n = vit_fuzz_split(data, size, 3, part, len);
    const char *dir = vit_fuzz_dir();
    for (int i = 0; i < n; i++)
        if (vit_fuzz_write(dir, names[i], part[i], len[i]) != 0) abort();
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);

    vit_model *m = NULL;
    vit_status s = vit_model_load(vit_fuzz_context(), path, &m);
    vit_fuzz_check_error(s);
    if (s == VIT_OK) {
        const char *key, *value;
        for (int i = 0; vit_model_metadata_key(m, i, &key) == VIT_OK && key; i++)
            if (vit_model_get_metadata(m, key, &value) == VIT_OK) vit_fuzz_touch_str(value);
    } else if (m) {
        abort();
    }
    vit_model_destroy(m);
    vit_fuzz_check_error(vit_model_load_weights(model, path, 0));
    vit_fuzz_check_error(vit_model_load_weights(model, path, VIT_LOAD_ALLOW_HEAD_MISMATCH));
    return 0;
}
