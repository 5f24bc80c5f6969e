/* vit-export: a checkpoint's inference graph as an ONNX file
 * (vit_model_export_onnx), for ONNX Runtime, TensorRT, OpenVINO. */
#include <stdio.h>
#include <string.h>

#include <vit/vit.h>

#include "cli.h"

static const char *prog = "vit-export";

static const char usage[] =
    "usage: vit-export --onnx OUT.onnx --checkpoint FILE [--opset 17] [--batch dynamic|N] [--external-data]\n"
    "\n"
    "Writes the checkpoint's inference graph as ONNX: input \"images\" [batch, C, H, W]\n"
    "float32 (normalised with the checkpoint's mean and std), output \"logits\"\n"
    "[batch, classes] (\"features\" [batch, dim] for a model without a head); the\n"
    "weights as initializers, class names, mean and std in the metadata. --opset 17\n"
    "(default) to 21; --batch dynamic (default) leaves the batch dimension free, N fixes\n"
    "it. --external-data puts the weights in OUT.onnx.data beside the file (ONNX external\n"
    "data), as is done anyway for a model that would reach protobuf's 2 GiB limit. Files\n"
    "are replaced atomically. One line on stderr says what was written.\n";

int main(int argc, char **argv) {
    const char *out = NULL, *checkpoint = NULL, *batch_text = "dynamic", *v;
    long long opset = 17, batch = 0;
    bool external = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (cli_is(a, "--onnx")) { if (!(out = cli_value(prog, argc, argv, &i, "--onnx"))) return 2; continue; }
        if (cli_is(a, "--checkpoint")) {
            if (!(checkpoint = cli_value(prog, argc, argv, &i, "--checkpoint"))) return 2;
            continue;
        }
        if (cli_is(a, "--batch")) { if (!(batch_text = cli_value(prog, argc, argv, &i, "--batch"))) return 2; continue; }
        if (cli_is(a, "--opset")) {
            if (!(v = cli_value(prog, argc, argv, &i, "--opset")) || !cli_int(prog, "--opset", v, 17, 21, &opset))
                return 2;
            continue;
        }
        if (!strcmp(a, "--external-data")) { external = true; continue; }
        return cli_usage_error(prog, "unknown argument '%s'", a);
    }
    if (!out) return cli_usage_error(prog, "--onnx is required");
    if (!checkpoint) return cli_usage_error(prog, "--checkpoint is required");
    if (strcmp(batch_text, "dynamic") && !cli_int(prog, "--batch", batch_text, 1, INT32_MAX, &batch)) return 2;
    if (!cli_check_output(prog, "--onnx", out)) return 1;

    int rc = 1;
    vit_context *ctx = NULL;
    vit_model *model = NULL;
    vit_onnx_options *opts = NULL;
    const char *what = "context";
    vit_status s = vit_context_create(&ctx);
    if (s == VIT_OK) { what = checkpoint; s = vit_model_load(ctx, checkpoint, &model); }
    if (s == VIT_OK) { what = "options"; s = vit_onnx_options_create(&opts); }
    if (s == VIT_OK) s = vit_onnx_options_set_int(opts, VIT_ONNX_OPSET, opset);
    if (s == VIT_OK) s = vit_onnx_options_set_int(opts, VIT_ONNX_BATCH, batch);
    if (s == VIT_OK && external) s = vit_onnx_options_set_int(opts, VIT_ONNX_EXTERNAL_DATA, 1);
    if (s == VIT_OK) { what = out; s = vit_model_export_onnx(model, out, opts); }
    if (s != VIT_OK) {
        cli_fail(prog, what, s);
    } else {
        int64_t n = 0;
        vit_model_num_params(model, &n);
        char shown[256];
        fprintf(stderr, "%s: wrote %s: %lld parameters, opset %lld, batch %s\n", prog,
                cli_printable(shown, sizeof shown, out, 200), (long long)n, opset, batch ? batch_text : "dynamic");
        rc = 0;
    }
    vit_onnx_options_destroy(opts);
    vit_model_destroy(model);
    vit_context_destroy(ctx);
    return rc;
}
