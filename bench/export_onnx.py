#!/usr/bin/python3
"""Export the benchmark's ViT-B/16 (tests/parity/torch_vit.py) to ONNX for bench/ort_ref.mjs.

The model is the inference workloads' one (224 px, patch 16, dim 768, depth
12, 12 heads, 1000 classes) with seeded random weights, exported in eval mode
with a dynamic batch axis (input "images", output "logits"). Beside it,
OUT.ref.json holds one batch-1 input and PyTorch's logits for it, as base64
little-endian float32, so ort_ref.mjs --check can compare ONNX Runtime's
output to PyTorch's. torch.onnx.export needs no `onnx` Python module.

    /usr/bin/python3 bench/export_onnx.py --out bench/vit_b16.onnx
"""
import argparse
import base64
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from torch_vit import VisionTransformer  # noqa: E402

# 17 is the newest opset torch 1.13 writes; from 17 on LayerNorm is one
# LayerNormalization node instead of a chain of reductions.
OPSET = 17


def f32_b64(t):
    return base64.b64encode(t.detach().contiguous().numpy().astype("<f4").tobytes()).decode("ascii")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "vit_b16.onnx"))
    ap.add_argument("--opset", type=int, default=OPSET)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = VisionTransformer(img_size=224, patch_size=16, in_channels=3, num_classes=1000, dim=768, depth=12,
                              heads=12, mlp_ratio=4.0).eval()
    x = torch.rand(1, 3, 224, 224) - 0.5
    with torch.no_grad():
        torch.onnx.export(model, (x,), args.out, input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, opset_version=args.opset)
        logits = model(x)
    ref = {"opset": args.opset, "input_shape": list(x.shape), "input": f32_b64(x),
           "logits_shape": list(logits.shape), "logits": f32_b64(logits)}
    with open(args.out + ".ref.json", "w") as f:
        json.dump(ref, f)
    print(f"wrote {args.out} (opset {args.opset}) and {args.out}.ref.json")


if __name__ == "__main__":
    main()
