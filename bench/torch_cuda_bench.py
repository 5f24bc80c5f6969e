#!/usr/bin/env python3
"""PyTorch's side of the GPU comparison: ViT-B/16 (224 px, 1000 classes) in
the timm layout (tests/parity/torch_vit.py), its attention through
F.scaled_dot_product_attention, under torch.autocast(dtype=torch.bfloat16),
trained with the fused AdamW; inference in the same autocast without
gradients. One JSON object per measurement on stdout:

  {"impl": "pytorch", "mode": "train", "batch": 64, "img_per_s": ..., "mfu": ...,
   "peak_mem_mib": ..., "median_step_s": ...}

img/s is the batch over the median step (after warm-up steps, each step
synchronised); MFU counts 3 x 35.1 GFLOP per trained image (1 x in
inference) against --peak-tflops (790: an H200's measured bf16 rate);
peak memory is torch.cuda.max_memory_reserved (what the caching allocator
took from the device).

Runs on the CPU too (--device cpu --tiny) so that the script itself is
checked where there is no GPU; older PyTorch without
scaled_dot_product_attention or a fused AdamW falls back and says so.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
import torch_vit  # noqa: E402

HAVE_SDPA = hasattr(F, "scaled_dot_product_attention")


def sdpa_forward(self, x):
    """timm's Attention.forward with the fused kernel (dropout 0 here)."""
    B, N, C = x.shape
    qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    x = F.scaled_dot_product_attention(q, k, v)
    return self.proj(x.transpose(1, 2).reshape(B, N, C))


def build(args, device):
    cfg = dict(img_size=224, patch_size=16, dim=768, depth=12, heads=12, num_classes=1000)
    if args.tiny:
        cfg = dict(img_size=32, patch_size=8, dim=64, depth=2, heads=4, num_classes=10)
    model = torch_vit.VisionTransformer(**cfg).to(device)
    if HAVE_SDPA:
        for blk in model.blocks:
            blk.attn.forward = sdpa_forward.__get__(blk.attn)
    flops = torch_vit.flops_per_image(cfg["img_size"], cfg["patch_size"], 3, cfg["dim"], cfg["depth"], 4.0,
                                      cfg["num_classes"])
    return model, cfg, flops


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(args, device, mode, batch):
    torch.manual_seed(0)
    model, cfg, flops = build(args, device)
    notes = []
    if not HAVE_SDPA:
        notes.append("no scaled_dot_product_attention in this PyTorch: plain attention")
    x = torch.randn(batch, 3, cfg["img_size"], cfg["img_size"], device=device)
    y = torch.randint(0, cfg["num_classes"], (batch,), device=device)
    if mode == "train":
        model.train()
        try:
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
        except (TypeError, RuntimeError) as e:
            notes.append("no fused AdamW (%s)" % e)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    else:
        model.eval()
    step_model = model
    if args.compile:
        step_model = torch.compile(model)
        notes.append("torch.compile")

    def step():
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            if mode == "train":
                loss = F.cross_entropy(step_model(x), y)
            else:
                with torch.no_grad():
                    step_model(x)
        if mode == "train":
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.warmup + args.steps):
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    per_image = flops * (3 if mode == "train" else 1)
    ips = batch / median
    out = {"impl": "pytorch" + ("-compile" if args.compile else ""), "mode": mode, "batch": batch,
           "median_step_s": round(median, 6), "img_per_s": round(ips, 2),
           "mfu": round(per_image * ips / (args.peak_tflops * 1e12), 4),
           "gflop_per_image": round(flops * 1e-9, 2), "torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        out["peak_mem_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
        out["gpu"] = torch.cuda.get_device_name()
    if notes:
        out["notes"] = "; ".join(notes)
    print(json.dumps(out), flush=True)
    del model, x, y
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--train-batches", default="64,128,256")
    ap.add_argument("--infer-batches", default="1,64,256")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=790.0)
    ap.add_argument("--compile", action="store_true", help="also wrap the model in torch.compile")
    ap.add_argument("--tiny", action="store_true", help="a 2-block model at 32 px: a check of the script itself")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    for b in [int(s) for s in args.train_batches.split(",") if s]:
        measure(args, device, "train", b)
    for b in [int(s) for s in args.infer_batches.split(",") if s]:
        measure(args, device, "infer", b)


if __name__ == "__main__":
    main()
