#!/usr/bin/env python3
"""The README's Fashion-MNIST recipe in PyTorch, for comparison with vit-train.

Same model (tests/parity/torch_vit.py, timm layout), same data (Debian's
dataset-fashion-mnist IDX files), same recipe: AdamW lr 1e-3, weight decay
0.05 except biases/norms/pos_embed/cls_token, 1 warm-up epoch then cosine per
step, label smoothing 0.1, random horizontal flip (after a random shift by
up to --shift pixels, or a random resized crop with --crop-scale),
normalisation 0.5/0.5, DropPath --drop-path, width --dim and --heads (128
and 4), global average pooling, batch 128, drop_last for training. Prints
one JSON object per epoch like vit-train --json.
--stop-after K ends the run after K epochs of the full schedule; --state FILE
saves everything the run depends on (model, optimiser, both random streams,
the epoch) after each epoch and continues from it when it exists, so a run
that takes hours at PyTorch's speed here can be made in pieces.
--procs P splits each batch of 128 over P processes of --threads threads each
(the gradients averaged with torch.distributed's gloo backend before every
step): the same batches, flips and updates as one process, up to the order of
floating-point sums, for a torch that gains nothing from a second thread.

    /usr/bin/python3 bench/torch_fmnist.py --threads 1 --procs 2 --state fmnist_torch.pt
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from torch_vit import VisionTransformer  # noqa: E402
from torch_ref import average_gradients, run_procs, set_threads  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def random_resized_crop(img, scale_min, rng):
    """torchvision's RandomResizedCrop(scale=(scale_min, 1), ratio=(3/4, 4/3)) of one (C, H, W) image."""
    _, H, W = img.shape
    for _ in range(10):
        area = H * W * rng.uniform(scale_min, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if 0 < w <= W and 0 < h <= H:
            y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            break
    else:  # torchvision's fallback for a square image: all of it
        w, h, x0, y0 = W, H, 0, 0
    crop = img[None, :, y0:y0 + h, x0:x0 + w]
    return F.interpolate(crop, size=(H, W), mode="bilinear", align_corners=False)[0]


def random_shift(x, pad, rng):
    """torchvision's RandomCrop(size, padding=pad) of each image of x (N, C, H, W): black pixels around
    (x is normalised, so black is -1), a window at a corner drawn uniformly in 0..2*pad."""
    n, _, H, W = x.shape
    zero = (0.0 - 0.5) / 0.5
    padded = F.pad(x, (pad, pad, pad, pad), value=zero)
    corners = rng.integers(0, 2 * pad + 1, size=(n, 2))
    return torch.stack([padded[i, :, y:y + H, x0:x0 + W] for i, (y, x0) in enumerate(corners)])


def all_sum(values, procs):
    """values (a list of numbers) summed over the processes; unchanged with one."""
    if procs == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--stop-after", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="threads of each process")
    ap.add_argument("--procs", type=int, default=1, help="processes sharing each batch")
    ap.add_argument("--steps-per-epoch", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drop-path", type=float, default=0.0)
    ap.add_argument("--crop-scale", type=float, default=0.0,
                    help="random resized crops keeping at least this fraction of the area, as vit-train "
                         "--augment crop+flip --crop-scale (0: no crops, the recipe's flips only)")
    ap.add_argument("--shift", type=int, default=0,
                    help="random shifts by up to this many pixels, zero filled, as vit-train --augment shift+flip "
                         "--shift (0: none)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--state", help="checkpoint written after each epoch and resumed from when present")
    args = ap.parse_args()
    if args.procs < 1 or 128 % args.procs:
        ap.error(f"--procs {args.procs}: must divide the batch of 128")
    if args.procs > 1 and args.drop_path > 0:
        ap.error("--procs > 1 with --drop-path: DropPath masks would be drawn per process, unlike one process")
    run_procs(run, args, args.procs)


def run(rank, args, store):
    """One process of the run: the whole run when args.procs is 1, else rows
    [rank * 128 / procs, (rank + 1) * 128 / procs) of every batch."""
    procs = args.procs
    if procs > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=procs)
    set_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    def load(prefix):
        x = read_idx(os.path.join(args.data, f"{prefix}-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
        y = read_idx(os.path.join(args.data, f"{prefix}-labels-idx1-ubyte.gz")).astype(np.int64)
        return torch.from_numpy((x - 0.5) / 0.5).unsqueeze(1), torch.from_numpy(y)

    xtr, ytr = load("train")
    xte, yte = load("t10k")
    model = VisionTransformer(img_size=28, patch_size=4, in_channels=1, num_classes=10, dim=args.dim, depth=6,
                              heads=args.heads, drop_path_rate=args.drop_path, global_pool="avg")
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".bias") or "norm" in name or name in ("pos_embed", "cls_token") else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3)
    batch = 128
    share = slice(rank * batch // procs, (rank + 1) * batch // procs)
    params = list(model.parameters())
    steps = len(xtr) // batch
    if args.steps_per_epoch:
        steps = min(steps, args.steps_per_epoch)
    total, warm = steps * args.epochs, steps

    def lr_at(step):
        if step < warm:
            return 1e-3 * (step + 1) / warm
        return 0.5 * 1e-3 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    first = 0
    if args.state and os.path.exists(args.state):
        st = torch.load(args.state)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        torch.set_rng_state(st["torch_rng"])
        rng.bit_generator.state = st["numpy_rng"]
        first = st["epoch"]

    for epoch in range(first, args.stop_after or args.epochs):
        model.train()
        order = rng.permutation(len(xtr))
        t0 = time.time()
        loss_sum = correct = seen = 0
        for s in range(steps):
            idx = torch.from_numpy(order[s * batch:(s + 1) * batch])
            x, y = xtr[idx], ytr[idx]
            if args.shift > 0:
                x = random_shift(x, args.shift, rng)
            if args.crop_scale > 0:
                x = torch.stack([random_resized_crop(img, args.crop_scale, rng) for img in x])
            flip = torch.from_numpy(rng.random(batch) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            x, y = x[share], y[share]
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch * steps + s)
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=0.1)
            loss.backward()
            average_gradients(params, procs)
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            seen += len(y)
        train_s = time.time() - t0
        loss_sum, correct, seen = all_sum([loss_sum, correct, seen], procs)
        model.eval()
        vl = vc = 0
        with torch.no_grad():
            for i in range(rank * 500, len(xte), procs * 500):
                out = model(xte[i:i + 500])
                vl += F.cross_entropy(out, yte[i:i + 500], reduction="sum").item()
                vc += (out.argmax(1) == yte[i:i + 500]).sum().item()
        vl, vc = all_sum([vl, vc], procs)
        if rank:
            continue
        print(json.dumps({"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                          "val_loss": vl / len(xte), "val_acc": vc / len(xte), "lr": lr_at(epoch * steps + steps - 1),
                          "seconds": time.time() - t0, "images_per_s": seen / train_s}), flush=True)
        if args.state:
            st = {"model": model.state_dict(), "opt": opt.state_dict(), "torch_rng": torch.get_rng_state(),
                  "numpy_rng": rng.bit_generator.state, "epoch": epoch + 1}
            torch.save(st, args.state + ".tmp")
            os.replace(args.state + ".tmp", args.state)


if __name__ == "__main__":
    main()
