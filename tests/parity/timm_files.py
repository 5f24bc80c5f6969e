#!/usr/bin/env python3
"""timm's ViT family as files: libvit against PyTorch (torch_vit.py).

For each family option of parity.py, a PyTorch model with random weights is
saved as a timm-layout safetensors file (timm's tensor names and shapes, no
libvit metadata except what tensors cannot tell: heads, QuickGELU) and:
  1. vit_model_load infers the configuration from the tensors: each option
     must come out as the model was built, and the logits, pooled features
     and tokens match PyTorch's (tolerance 1e-5, normalised as in parity.py);
  2. libvit's own checkpoint of that model (vit_model_save) loads back with
     the same configuration and the same logits, bit for bit;
  3. vit_model_load_weights into a model at another image size resamples
     pos_embed (class and register rows kept, the grid bicubic): the logits
     match a PyTorch model whose pos_embed was resampled with
     torch.nn.functional.interpolate(mode='bicubic', align_corners=False),
     as timm's resample_abs_pos_embed does.
A headless model (num_classes 0, as timm's DINOv2 files) is loaded too.
Exit status 1 on any excess.
"""
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "programs"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bindings", "python"))
import libvit  # noqa: E402
from parity import CASES, err  # noqa: E402
from test_programs import write_safetensors  # noqa: E402
from torch_vit import VisionTransformer  # noqa: E402

TOL = 1e-5
# What the tensors say, in libvit's configuration names (fc_norm resolved).
INFERRED = ("class_token", "reg_tokens", "no_embed_class", "pre_norm", "patch_bias", "patch_norm", "qkv_bias",
            "global_pool", "dim", "depth", "patch_size", "img_size", "num_classes")


def build(name, spec):
    spec = {k: v for k, v in spec.items() if k not in ("batch", "smoothing")}
    torch.manual_seed(sum(name.encode()) + 1)
    ref = VisionTransformer(**spec).double().eval()
    with torch.no_grad():
        for pname, p in ref.named_parameters():
            if "norm" in pname:
                p.copy_(1 + 0.2 * torch.randn_like(p) if pname.endswith("weight") else 0.2 * torch.randn_like(p))
            elif pname.endswith(".gamma"):
                p.copy_(0.5 + torch.rand_like(p))
            else:
                p.copy_(torch.randn_like(p) * (0.5 if p.ndim == 1 or p.ndim == 3 else 1.0 / np.sqrt(p[0].numel())))
            p.copy_(p.float().double())
    return spec, ref


def expected_config(spec):
    want = dict(class_token=True, reg_tokens=0, no_embed_class=False, pre_norm=False, patch_bias=True,
                patch_norm=False, qkv_bias=True, global_pool="token")
    want.update({k: v for k, v in spec.items() if k in INFERRED})
    want.update(dim=spec["dim"], depth=spec["depth"], patch_size=spec["patch_size"], img_size=spec["img_size"],
                num_classes=spec["num_classes"])
    if not want["reg_tokens"] and not want["class_token"]:
        want["no_embed_class"] = False  # nothing to tell apart: both layouts are the same
    return want


def resolved_fc_norm(cfg):
    return cfg["global_pool"] == "avg" if cfg["fc_norm"] < 0 else bool(cfg["fc_norm"])


def compare(name, what, ours, ref, failures, report):
    e = err(ours, ref)
    report.append(f"  {what:<40s} {e:.2e}  (tol {TOL:.0e})")
    if not e <= TOL:
        failures.append(f"{name}: {what} error {e:.3e} > {TOL:.0e}")


def check_model(name, model, ref, x, failures, report, prefix=""):
    with torch.no_grad():
        tokens = ref.forward_features(x.double())
        pooled = ref.forward_head(tokens, pre_logits=True)
        logits = ref.forward_head(tokens)
    with model.no_grad():
        compare(name, prefix + "logits", model.forward(x.numpy()), logits.numpy(), failures, report)
    compare(name, prefix + "pooled features", model.forward_features(x.numpy()), pooled.numpy(), failures, report)
    compare(name, prefix + "tokens", model.forward_tokens(x.numpy()), tokens.numpy(), failures, report)


def resampled_reference(spec, ref, img_size):
    """ref at another image size, pos_embed resampled as timm's resample_abs_pos_embed."""
    big = VisionTransformer(**dict(spec, img_size=img_size)).double().eval()
    state = dict(ref.state_dict())
    pos = state["pos_embed"]
    keep = 0 if spec.get("no_embed_class") else int(spec.get("class_token", True)) + spec.get("reg_tokens", 0)
    g_in, g_out = spec["img_size"] // spec["patch_size"], img_size // spec["patch_size"]
    grid = pos[:, keep:].reshape(1, g_in, g_in, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(g_out, g_out), mode="bicubic", align_corners=False)
    state["pos_embed"] = torch.cat([pos[:, :keep], grid.permute(0, 2, 3, 1).reshape(1, g_out * g_out, -1)], dim=1)
    big.load_state_dict(state)
    return big


def run_case(name, spec, d, failures):
    spec, ref = build(name, spec)
    report = []
    path = os.path.join(d, name + ".safetensors")
    meta = {"format": "pt", "vit.heads": str(spec["heads"])}
    if spec.get("quick_gelu"):
        meta["vit.quick_gelu"] = "1"  # an activation has no tensor: timm's _quickgelu names say it
    if spec["ln_eps"] != (1e-5 if spec.get("pre_norm") else 1e-6):
        meta["vit.ln_eps"] = repr(spec["ln_eps"])
    write_safetensors(path, [(k, v.float().numpy()) for k, v in ref.state_dict().items()], meta)
    x = torch.randn(2, spec["in_channels"], spec["img_size"], spec["img_size"]).float()
    ctx = libvit.Context(threads=2, seed=3)

    model = libvit.Model.load(ctx, path)
    cfg = model.config.as_dict()
    want = expected_config(spec)
    got = {k: cfg[k] for k in want}
    if got != want:
        failures.append(f"{name}: inferred configuration {got}, expected {want}")
    want_fc = spec.get("global_pool", "token") == "avg" if spec.get("fc_norm", -1) < 0 else bool(spec["fc_norm"])
    if resolved_fc_norm(cfg) != want_fc or (cfg["init_values"] > 0) != bool(spec.get("init_values")):
        failures.append(f"{name}: inferred fc_norm {cfg['fc_norm']} / init_values {cfg['init_values']}")
    check_model(name, model, ref, x, failures, report)

    own = os.path.join(d, name + ".libvit.safetensors")
    model.save(own)
    again = libvit.Model.load(ctx, own)
    if again.config.as_dict() != cfg:
        failures.append(f"{name}: configuration after save and load {again.config.as_dict()}, was {cfg}")
    with model.no_grad(), again.no_grad():
        if not np.array_equal(model.forward(x.numpy()), again.forward(x.numpy())):
            failures.append(f"{name}: logits differ after save and load")

    img = spec["img_size"] + 2 * spec["patch_size"]
    bigger = libvit.Model(ctx, model.config.copy(), img_size=img)
    bigger.load_weights(path)
    xb = torch.randn(2, spec["in_channels"], img, img).float()
    check_model(name, bigger, resampled_reference(spec, ref, img), xb, failures, report, f"at {img} px: ")
    print(f"{name}:")
    print("\n".join(report))


def headless(d, failures):
    """num_classes 0: no head tensors; forward gives the pooled features."""
    spec, ref = build("dinov2-reg", dict(CASES["dinov2-reg"], num_classes=0))
    path = os.path.join(d, "headless.safetensors")
    write_safetensors(path, [(k, v.float().numpy()) for k, v in ref.state_dict().items()],
                      {"vit.heads": str(spec["heads"])})
    model = libvit.Model.load(libvit.Context(threads=2), path)
    if model.config["num_classes"] != 0:
        failures.append(f"headless: num_classes {model.config['num_classes']}")
    report = []
    check_model("headless", model, ref, torch.randn(1, 3, spec["img_size"], spec["img_size"]), failures, report)
    print("headless (dinov2-reg, num_classes 0):\n" + "\n".join(report))


def main():
    torch.set_num_threads(1)
    failures = []
    names = [n for n in CASES if n not in ("vit-2block",)]
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            run_case(name, CASES[name], d, failures)
        headless(d, failures)
    if failures:
        print("FAIL\n" + "\n".join(failures))
        return 1
    print(f"{len(names) + 1} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
