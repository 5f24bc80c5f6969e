#!/usr/bin/env python3
"""Reference safetensors files for the io tests, written WITHOUT the
safetensors package (struct + json only, exactly the layout it produces).

  make_reference.py OUTDIR

writes
  timm_token.safetensors  a small ViT state_dict in timm's layout and names
                          (class-token pool, qkv bias), some tensors F16/BF16
  timm_avg.safetensors    the same with patch_embed.norm, fc_norm + avg pool,
                          no qkv bias, 3 heads of 64 (dim 192)
  dtypes.safetensors      special values in F16, BF16, F32, F64, an I64 tensor,
                          a scalar and an empty tensor
  <name>.expected         for each: the f32 values every tensor must load as,
                          and for the models an input batch and timm's logits
The .expected format: records of  u32 name length, name, u64 count, count f32.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.float64: "F64", torch.int64: "I64"}


def save_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, tensor) in file order."""
    header, blobs, at = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, t in tensors:
        t = t.contiguous()
        # raw little-endian bytes (bf16 has no numpy type: go through int16)
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def save_expected(path, records):
    with open(path, "wb") as f:
        for name, t in records:
            v = t.detach().to(torch.float32).contiguous().reshape(-1)
            n = name.encode()
            f.write(struct.pack("<I", len(n)) + n + struct.pack("<Q", v.numel()))
            f.write(v.numpy().astype("<f4").tobytes())


def vit_state_dict(g, img, patch, chans, dim, depth, classes, mlp_ratio, qkv_bias, patch_norm, avg):
    """timm VisionTransformer.state_dict() order and names."""
    hidden = int(dim * mlp_ratio)
    n = (img // patch) ** 2
    sd = [("cls_token", torch.randn(1, 1, dim, generator=g) * 0.5),
          ("pos_embed", torch.randn(1, 1 + n, dim, generator=g) * 0.5),
          ("patch_embed.proj.weight", torch.randn(dim, chans, patch, patch, generator=g) * 0.1),
          ("patch_embed.proj.bias", torch.randn(dim, generator=g) * 0.1)]
    if patch_norm:
        sd += [("patch_embed.norm.weight", 1 + 0.1 * torch.randn(dim, generator=g)),
               ("patch_embed.norm.bias", 0.1 * torch.randn(dim, generator=g))]

    def lin(name, out_f, in_f, bias=True):
        r = [(name + ".weight", torch.randn(out_f, in_f, generator=g) / math.sqrt(in_f))]
        if bias:
            r.append((name + ".bias", 0.1 * torch.randn(out_f, generator=g)))
        return r

    def ln(name):
        return [(name + ".weight", 1 + 0.1 * torch.randn(dim, generator=g)),
                (name + ".bias", 0.1 * torch.randn(dim, generator=g))]

    for i in range(depth):
        b = "blocks.%d." % i
        sd += ln(b + "norm1") + lin(b + "attn.qkv", 3 * dim, dim, qkv_bias) + lin(b + "attn.proj", dim, dim)
        sd += ln(b + "norm2") + lin(b + "mlp.fc1", hidden, dim) + lin(b + "mlp.fc2", dim, hidden)
    sd += ln("fc_norm" if avg else "norm") + lin("head", classes, dim)
    return sd


def vit_forward(w, x, patch, heads, patch_norm, avg, eps=1e-6):
    """timm's VisionTransformer.forward in plain torch (eval mode)."""
    B = x.shape[0]
    x = F.conv2d(x, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=patch)
    x = x.flatten(2).transpose(1, 2)
    D = x.shape[-1]
    if patch_norm:
        x = F.layer_norm(x, (D,), w["patch_embed.norm.weight"], w["patch_embed.norm.bias"], eps)
    x = torch.cat([w["cls_token"].expand(B, -1, -1), x], dim=1) + w["pos_embed"]
    depth = len({k.split(".")[1] for k in w if k.startswith("blocks.")})
    for i in range(depth):
        p = lambda s: w["blocks.%d.%s" % (i, s)]
        h = F.layer_norm(x, (D,), p("norm1.weight"), p("norm1.bias"), eps)
        N = h.shape[1]
        qkv = F.linear(h, p("attn.qkv.weight"), w.get("blocks.%d.attn.qkv.bias" % i))
        q, k, v = qkv.reshape(B, N, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
        a = ((q * (D // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        h = (a @ v).transpose(1, 2).reshape(B, N, D)
        x = x + F.linear(h, p("attn.proj.weight"), p("attn.proj.bias"))
        h = F.layer_norm(x, (D,), p("norm2.weight"), p("norm2.bias"), eps)
        h = F.linear(F.gelu(F.linear(h, p("mlp.fc1.weight"), p("mlp.fc1.bias"))), p("mlp.fc2.weight"),
                     p("mlp.fc2.bias"))
        x = x + h
    if avg:
        x = F.layer_norm(x[:, 1:].mean(dim=1), (D,), w["fc_norm.weight"], w["fc_norm.bias"], eps)
    else:
        x = F.layer_norm(x, (D,), w["norm.weight"], w["norm.bias"], eps)[:, 0]
    return F.linear(x, w["head.weight"], w["head.bias"])


def model_file(out, name, seed, heads, storage, **cfg):
    g = torch.Generator().manual_seed(seed)
    sd = vit_state_dict(g, **cfg)
    # store some tensors in half precisions; the reference uses the rounded values
    stored = [(k, v.to(storage(k))) for k, v in sd]
    save_safetensors(os.path.join(out, name + ".safetensors"), stored, {"format": "pt"})
    w = {k: v.to(torch.float64) for k, v in stored}
    images = torch.randn(2, cfg["chans"], cfg["img"], cfg["img"], generator=g)
    with torch.no_grad():
        logits = vit_forward(w, images.double(), cfg["patch"], heads, cfg["patch_norm"], cfg["avg"])
    # pos_embed resampled to a 1.5x larger grid, as timm's resample_abs_pos_embed
    # (upsampling: antialias makes no difference)
    pe = w["pos_embed"]
    g_in = int(round((pe.shape[1] - 1) ** 0.5))
    g_out = g_in * 3 // 2
    grid = pe[:, 1:].reshape(1, g_in, g_in, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(g_out, g_out), mode="bicubic", align_corners=False)
    resampled = torch.cat([pe[:, :1], grid.permute(0, 2, 3, 1).reshape(1, g_out * g_out, -1)], dim=1)
    save_expected(os.path.join(out, name + ".expected"),
                  [(k, v) for k, v in stored] + [("__images__", images), ("__logits__", logits),
                                                 ("__pos_embed_resampled__", resampled)])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)

    def token_storage(name):
        if name == "patch_embed.proj.weight" or name.startswith("blocks.1.mlp"):
            return torch.float16
        if name.startswith("blocks.0.attn") or name == "pos_embed":
            return torch.bfloat16
        return torch.float32

    model_file(out, "timm_token", 1, heads=2, storage=token_storage, img=16, patch=4, chans=3, dim=128,
               depth=2, classes=5, mlp_ratio=4.0, qkv_bias=True, patch_norm=False, avg=False)
    model_file(out, "timm_avg", 2, heads=3, storage=lambda n: torch.float32, img=24, patch=8, chans=1,
               dim=192, depth=3, classes=7, mlp_ratio=2.0, qkv_bias=False, patch_norm=True, avg=True)

    special = torch.tensor([0.0, -0.0, 1.0, -2.5, 1e-7, 6e-5, 3e-8, 65504.0, 70000.0, 1e30,
                            float("inf"), float("-inf"), float("nan"), 0.1, 1.0 / 3.0, -1e-40])
    g = torch.Generator().manual_seed(3)
    # random f32 values across the normal and subnormal f16 ranges, and torch's
    # rounding of them: the C rounding must agree bit for bit
    rnd = torch.randn(3, 5, 7, generator=g) * torch.logspace(-7, 4, 7)
    tensors = [("special.f16", special.half()), ("special.bf16", special.bfloat16()),
               ("special.f32", special), ("special.f64", special.double()),
               ("random.f32", rnd), ("random.f16", rnd.half()), ("random.bf16", rnd.bfloat16()),
               ("scalar", torch.tensor(4.25)), ("empty", torch.zeros(0, 3)),
               ("ints", torch.arange(6, dtype=torch.int64).reshape(2, 3))]
    save_safetensors(os.path.join(out, "dtypes.safetensors"), tensors,
                     {"format": "pt", "note": "caf\u00e9 \"quoted\"\n"})
    save_expected(os.path.join(out, "dtypes.expected"), [(k, v) for k, v in tensors if k != "ints"])


if __name__ == "__main__":
    main()
