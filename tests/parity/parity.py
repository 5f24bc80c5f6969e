#!/usr/bin/env python3
"""PyTorch parity: libvit against a float64 PyTorch model with the same weights.

For each case: logits, loss, every parameter gradient, and the losses and
parameters over 5 AdamW steps (dropout off). Errors are normalised:
max|libvit - torch| / max(max|torch|, tiny). Tolerances (float32 libvit
against a float64 oracle):
    logits, loss                 1e-5
    parameter gradients          1e-4
    AdamW losses                 1e-4
    parameters after 5 steps     5e-4  (Adam moves an entry by about lr whatever
                                        the gradient's size, so an entry whose
                                        gradient is ~0 may step either way)
The pooled features (vit_model_forward_features) and the tokens
(vit_model_forward_tokens) are compared with the reference's
forward_head(pre_logits=True) and forward_features at the logits' tolerance.
Exit status 1 on any excess. VIT_PARITY_PERTURB=<param name> adds a small
error to that libvit gradient before comparing: the test must then fail.
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "bindings", "python"))
import libvit  # noqa: E402
from torch_vit import VisionTransformer  # noqa: E402

TOL_LOGITS, TOL_GRAD, TOL_STEP, TOL_PARAMS = 1e-5, 1e-4, 1e-4, 5e-4

CASES = {
    "vit-2block": dict(img_size=32, patch_size=8, in_channels=3, num_classes=10, dim=36, depth=2, heads=3,
                       mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, batch=3, smoothing=0.0),
    "seed-variant": dict(img_size=28, patch_size=7, in_channels=3, num_classes=5, dim=40, depth=2, heads=4,
                         mlp_ratio=2.5, qkv_bias=True, ln_eps=1e-5, patch_norm=True, batch=2, smoothing=0.1),
    "avg-pool-gray": dict(img_size=20, patch_size=4, in_channels=1, num_classes=7, dim=26, depth=3, heads=2,
                          mlp_ratio=3.0, qkv_bias=False, ln_eps=1e-6, global_pool="avg", batch=1, smoothing=0.0),
    # A batch of 40 x 50 tokens: the CPU products run in row slices and the
    # MLP's GELU on each slice, as in fmnist-train, while the LayerNorm output
    # feeding fc1 is still being read.
    "tall-batch": dict(img_size=28, patch_size=4, in_channels=1, num_classes=10, dim=32, depth=2, heads=2,
                       mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, batch=40, smoothing=0.1),
    # timm's family options, one at a time, then as timm's presets combine them.
    "no-class-token-gap": dict(img_size=24, patch_size=6, in_channels=3, num_classes=6, dim=32, depth=2, heads=4,
                               mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, class_token=False, global_pool="avg",
                               fc_norm=0, batch=2, smoothing=0.0),
    "no-class-token-fc-norm": dict(img_size=24, patch_size=6, in_channels=3, num_classes=6, dim=32, depth=2,
                                   heads=4, mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, class_token=False,
                                   global_pool="avg", batch=2, smoothing=0.0),
    "pre-norm": dict(img_size=24, patch_size=6, in_channels=3, num_classes=6, dim=32, depth=2, heads=4,
                     mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, pre_norm=True, batch=2, smoothing=0.0),
    "no-patch-bias": dict(img_size=24, patch_size=6, in_channels=3, num_classes=6, dim=32, depth=2, heads=4,
                          mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, patch_bias=False, batch=2, smoothing=0.0),
    "quick-gelu": dict(img_size=24, patch_size=6, in_channels=3, num_classes=6, dim=32, depth=2, heads=4,
                       mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, quick_gelu=True, batch=2, smoothing=0.0),
    "layer-scale": dict(img_size=24, patch_size=6, in_channels=3, num_classes=6, dim=32, depth=2, heads=4,
                        mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, init_values=1e-5, batch=2, smoothing=0.0),
    "registers": dict(img_size=24, patch_size=6, in_channels=3, num_classes=6, dim=32, depth=2, heads=4,
                      mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, reg_tokens=3, batch=2, smoothing=0.0),
    "no-embed-class": dict(img_size=24, patch_size=6, in_channels=3, num_classes=6, dim=32, depth=2, heads=4,
                           mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, no_embed_class=True, batch=2, smoothing=0.0),
    "clip": dict(img_size=28, patch_size=7, in_channels=3, num_classes=5, dim=32, depth=2, heads=4, mlp_ratio=4.0,
                 qkv_bias=True, ln_eps=1e-5, pre_norm=True, patch_bias=False, quick_gelu=True, batch=2,
                 smoothing=0.0),
    "siglip-gap": dict(img_size=24, patch_size=6, in_channels=3, num_classes=5, dim=32, depth=2, heads=4,
                       mlp_ratio=3.0, qkv_bias=True, ln_eps=1e-6, class_token=False, global_pool="avg", fc_norm=0,
                       batch=2, smoothing=0.1),
    "siglip-map": dict(img_size=24, patch_size=6, in_channels=3, num_classes=5, dim=32, depth=2, heads=4,
                       mlp_ratio=3.0, qkv_bias=True, ln_eps=1e-6, class_token=False, global_pool="map", batch=3,
                       smoothing=0.0),
    "map-quick-gelu": dict(img_size=20, patch_size=5, in_channels=2, num_classes=3, dim=24, depth=1, heads=3,
                           mlp_ratio=2.0, qkv_bias=False, ln_eps=1e-5, class_token=False, global_pool="map",
                           quick_gelu=True, pre_norm=True, patch_bias=False, batch=2, smoothing=0.0),
    "dinov2-reg": dict(img_size=28, patch_size=14, in_channels=3, num_classes=4, dim=24, depth=2, heads=2,
                       mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, init_values=1e-5, reg_tokens=4,
                       no_embed_class=True, batch=2, smoothing=0.0),
    "deit3-avg": dict(img_size=24, patch_size=8, in_channels=3, num_classes=5, dim=24, depth=2, heads=3,
                      mlp_ratio=4.0, qkv_bias=True, ln_eps=1e-6, init_values=1e-6, no_embed_class=True,
                      global_pool="avg", batch=2, smoothing=0.0),
}


def err(ours, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.max(np.abs(np.asarray(ours, np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-12))


def run_case(name, spec, failures):
    spec = dict(spec)
    batch, smoothing = spec.pop("batch"), spec.pop("smoothing")
    torch.manual_seed(sum(name.encode()))
    ref = VisionTransformer(**spec).double()
    # Non-trivial norms and biases, so their gradients are really exercised;
    # layer-scale gammas and registers far from their tiny initial values, so
    # they matter.
    with torch.no_grad():
        for pname, p in ref.named_parameters():
            if pname.endswith(".bias") or "norm" in pname:
                p.add_(0.1 * torch.randn_like(p))
            elif pname.endswith(".gamma"):
                p.copy_(0.5 + torch.rand_like(p))
            elif pname == "reg_token":
                p.normal_(std=0.5)
    images = torch.randn(batch, spec["in_channels"], spec["img_size"], spec["img_size"], dtype=torch.float64)
    labels = torch.randint(0, spec["num_classes"], (batch,))

    cfg = dict(spec)
    ctx = libvit.Context(threads=2, seed=7)
    model = libvit.Model(ctx, **cfg)
    ours_names = [n for n, _ in model.param_names()]
    ref_names = [n for n, _ in ref.named_parameters()]
    if ours_names != ref_names:
        failures.append(f"{name}: parameter names differ:\n  libvit {ours_names}\n  torch  {ref_names}")
        return
    model.load_state_dict({n: p.detach().float().numpy() for n, p in ref.named_parameters()})
    # The reference computes from the float32-rounded weights libvit holds.
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(p.float().double())
    x32 = images.float()
    ref_x = x32.double()

    report = []

    def check(what, value, tol):
        report.append(f"  {what:<40s} {value:.2e}  (tol {tol:.0e})")
        if not value <= tol:
            failures.append(f"{name}: {what} error {value:.3e} > {tol:.0e}")

    logits = model.forward(x32.numpy())
    loss = model.loss(labels.numpy().astype(np.int32), smoothing)
    model.backward()
    ref_logits = ref(ref_x)
    ref_loss = torch.nn.functional.cross_entropy(ref_logits, labels, label_smoothing=smoothing)
    ref_loss.backward()
    check("logits", err(logits, ref_logits.detach().numpy()), TOL_LOGITS)
    with torch.no_grad():
        ref_tokens = ref.forward_features(ref_x)
        ref_pooled = ref.forward_head(ref_tokens, pre_logits=True)
    check("pooled features", err(model.forward_features(x32.numpy()), ref_pooled.numpy()), TOL_LOGITS)
    check("tokens", err(model.forward_tokens(x32.numpy()), ref_tokens.numpy()), TOL_LOGITS)
    check("loss", err([loss], [ref_loss.item()]), TOL_LOGITS)
    perturb = os.environ.get("VIT_PARITY_PERTURB")
    worst = (0.0, "")
    for pname, p in ref.named_parameters():
        g = model.grad(pname, tuple(p.shape))
        if pname == perturb:
            g = g.copy()
            g.flat[0] += 1e-3 * float(np.max(np.abs(p.grad.numpy())))
        e = err(g, p.grad.numpy())
        worst = max(worst, (e, pname))
        if not e <= TOL_GRAD:
            failures.append(f"{name}: gradient of {pname} error {e:.3e} > {TOL_GRAD:.0e}")
    report.append(f"  {'worst gradient (' + worst[1] + ')':<40s} {worst[0]:.2e}  (tol {TOL_GRAD:.0e})")

    # 5 AdamW steps from the same start; torch's defaults except lr.
    opt = libvit.AdamW(model, lr=1e-3, weight_decay=0.01)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-3, weight_decay=0.01)
    for step in range(5):
        opt.step()
        ref_opt.step()
        opt.zero_grad()
        ref_opt.zero_grad()
        model.forward(x32.numpy())
        loss = model.loss(labels.numpy().astype(np.int32), smoothing)
        model.backward()
        ref_loss = torch.nn.functional.cross_entropy(ref(ref_x), labels, label_smoothing=smoothing)
        ref_loss.backward()
        check(f"AdamW step {step + 1} loss", err([loss], [ref_loss.item()]), TOL_STEP)
    worst = max((err(model.param(n, tuple(p.shape)), p.detach().numpy()), n) for n, p in ref.named_parameters())
    check(f"parameters after 5 steps ({worst[1]})", worst[0], TOL_PARAMS)
    print(f"{name}:")
    print("\n".join(report))


def isa_level_available():
    """Under VIT_MAX_CPU_ISA=LEVEL (meson runs this once per level): False,
    after saying why, when the processor lacks that level."""
    want = os.environ.get("VIT_MAX_CPU_ISA", "").lower()
    with libvit.Context() as ctx:
        have = ctx.get("cpu_isa")
    if want in libvit.CPU_ISA_NAMES and libvit.CPU_ISA_NAMES.index(want) > libvit.CPU_ISA_NAMES.index(have):
        print(f"SKIP: parity at VIT_MAX_CPU_ISA={want}: this processor's widest level is {have}")
        return False
    print(f"libvit CPU kernels at ISA level {have}")
    return True


def main():
    if not isa_level_available():
        return 77
    torch.set_num_threads(1)
    failures = []
    for name, spec in CASES.items():
        run_case(name, spec, failures)
    if failures:
        print("FAIL\n" + "\n".join(failures))
        return 1
    print(f"{len(CASES)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
