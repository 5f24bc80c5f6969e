#!/usr/bin/python3
"""End-to-end tests of vit-train, vit-predict and vit-eval on generated data.

    test_programs.py TEST VIT_TRAIN VIT_PREDICT VIT_EVAL LIBVIT_SO [VIT_DATA VIT_BENCH VIT_EXPORT]

TEST is one of the functions named in TESTS (meson runs each as its own test).
Every test writes its data into a fresh temporary folder: image folders of
8x8 PNGs (3 classes of synthetic patterns) and IDX files (gray 8x8), trains a
tiny ViT (dim 12-24, depth 1-2) for a few steps with --threads 1, and checks
the programs' outputs against libvit's own forward (through the ctypes
bindings), against PyTorch (tests/parity/torch_vit.py) and against
themselves (resume). See docs/programs.md for what the programs promise.
"""
import ctypes
import gzip
import json
import math
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))

TRAIN = PREDICT = EVAL = DATA = BENCH = EXPORT = None
CLASSES = ["checker", "h-stripes", "v stripes \u00e9"]  # sorted; a space and a non-ASCII byte on purpose
JSON_KEYS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]
# A tiny model: 8x8 images in 4 patches, width 12, one block.
TINY = ["--img-size", "8", "--patch-size", "4", "--dim", "12", "--depth", "1", "--heads", "2",
        "--threads", "1", "--workers", "1"]


# --------------------------------------------------------------- helpers
def run(exe, *args, rc=0, **kw):
    p = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120, **kw)
    if rc is not None and p.returncode != rc:
        raise AssertionError(f"{os.path.basename(exe)} {' '.join(map(str, args))}: exit {p.returncode}, "
                             f"expected {rc}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}")
    return p


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def pattern(label, rng, size=8):
    """An RGB uint8 image of class `label`: a checkerboard, horizontal or vertical stripes, plus noise."""
    y, x = np.mgrid[0:size, 0:size]
    base = [((x + y) % 2), (y % 2), (x % 2)][label].astype(np.float64)
    tint = np.array([[1.0, 0.6, 0.3], [0.3, 1.0, 0.6], [0.6, 0.3, 1.0]][label])
    img = 40 + 170 * base[..., None] * tint + rng.normal(0, 12, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_folder(root, train_per_class=8, val_per_class=5, seed=0, size=8):
    """root/train/<class>/*.png and root/val/<class>/*.png; 5 val per class gives a partial last batch of 4."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c, name in enumerate(CLASSES):
            d = os.path.join(root, split, name)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                Image.fromarray(pattern(c, rng, size)).save(os.path.join(d, f"{i:03d}.png"))
    return root


def idx_bytes(arr):
    return struct.pack(">I", 0x0800 | arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def make_idx(root, n_train=48, n_val=18, gz=False, seed=1):
    """MNIST-style files of gray 8x8 images, labels 0..2 (the format always has 10 classes)."""
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_val)):
        labels = (np.arange(n) % 3).astype(np.uint8)
        images = np.stack([pattern(int(l), rng)[..., 0] for l in labels])
        for kind, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            path = os.path.join(root, f"{prefix}-{kind}")
            data = idx_bytes(arr)
            if gz:
                with gzip.open(path + ".gz", "wb") as f:
                    f.write(data)
            else:
                with open(path, "wb") as f:
                    f.write(data)
    return root


def read_safetensors(path):
    """(tensors as float32 numpy arrays in file order, metadata); F32 only, as libvit writes."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        check(info["dtype"] == "F32", f"{path}: {name} is {info['dtype']}")
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(blob[8 + n + a:8 + n + b], dtype="<f4").reshape(info["shape"]).copy()
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: (name, array) pairs in file order, stored as F32 (the layout of tests/io/make_reference.py)."""
    header, blobs, at = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, t in tensors:
        raw = np.ascontiguousarray(t, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(t)), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def check_png(path, size, mode="RGB"):
    im = Image.open(path)
    im.load()  # decodes every row: a truncated or corrupt file raises here
    check(im.size == size, f"{path}: size {im.size}, expected {size}")
    check(im.mode == mode, f"{path}: mode {im.mode}, expected {mode}")
    a = np.asarray(im)
    check(a.min() < a.max(), f"{path}: a blank image")
    return a


# libvit through the ctypes bindings, plus the two calls they lack (load, save).
def lib():
    import libvit
    return libvit, libvit.load_library()


def load_model(ctx, path):
    libvit, L = lib()
    m = libvit.Model.__new__(libvit.Model)
    libvit._Handle.__init__(m)
    libvit._check(L.vit_model_load(ctx._h, path.encode(), ctypes.byref(m._h)))
    cfg = libvit.Config.__new__(libvit.Config)
    libvit._Handle.__init__(cfg)
    libvit._check(L.vit_model_get_config(m._h, ctypes.byref(cfg._h)))
    m.ctx, m.num_classes, m._batch, m.config = ctx, cfg.get("num_classes"), None, cfg
    return m


def save_model(model, path):
    libvit, L = lib()
    libvit._check(L.vit_model_save(model._h, path.encode()))


def inference_logits(model, images):
    model.set_training(False)
    model.set_grad(False)
    return model.forward(np.ascontiguousarray(images, np.float32))


def softmax(logits):
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def image_tensor(path, mean=(0, 0, 0), std=(1, 1, 1)):
    """A PNG at the model's size as vit-predict feeds it: [1, C, H, W], (pixels/255 - mean) / std."""
    a = np.asarray(Image.open(path), np.float32) / np.float32(255)
    if a.ndim == 2:
        a = a[..., None]
    c = a.shape[2]
    a = (a - np.float32(mean[:c])) / np.float32(std[:c])
    return a.transpose(2, 0, 1)[None].astype(np.float32)


def train_args(data, out, *extra, epochs=2, batch=4):
    return ["--data", data, "--out", out, "--epochs", epochs, "--batch-size", batch, *TINY, *extra]


# ------------------------------------------------------------------ tests
def test_cli_errors(d):
    """Usage errors exit 2 naming the flag; --help exits 0 and lists every seed train() parameter."""
    h = run(TRAIN, "--help").stdout
    # train()'s parameters in the seed and the flags that carry them
    for flag in ("--data", "--img-size", "--patch-size", "--in-channels", "--dim", "--depth", "--heads",
                 "--mlp-ratio", "--qkv-bias", "--drop", "--attn-drop", "--drop-path", "--epochs", "--batch-size",
                 "--workers", "--lr", "--device", "--model", "--format", "--augment", "--weight-decay",
                 "--warmup-epochs", "--schedule", "--label-smoothing", "--clip-grad", "--seed", "--out", "--resume",
                 "--pretrained", "--json"):
        check(flag in h, f"vit-train --help lacks {flag}")
    check("--top-k" in run(PREDICT, "--help").stdout, "vit-predict --help")
    check("--split" in run(EVAL, "--help").stdout, "vit-eval --help")
    data = make_folder(os.path.join(d, "data"), 4, 2)
    for args, needle in ((["--epochs", "2"], "--data is required"),
                         (["--data", data, "--bogus"], "--bogus"),
                         (["--data", data, "--epochs", "0"], "--epochs"),
                         (["--data", data, "--epochs", "two"], "--epochs"),
                         (["--data", data, "--lr"], "--lr needs a value"),
                         (["--data", data, "--schedule", "linear"], "--schedule"),
                         (["--data", data, "--augment", "mixup"], "--augment"),
                         (["--data", data, "--augment", "crop+flip", "--crop-scale", "0"], "--crop-scale"),
                         (["--data", data, "--augment", "crop+flip", "--crop-scale", "1.5"], "--crop-scale"),
                         (["--data", data, "--crop-scale", "0.5"], "--crop-scale"),
                         (["--data", data, "--shift", "2"], "--shift"),
                         (["--data", data, "--augment", "shift+flip", "--shift", "0"], "--shift"),
                         (["--data", data, "--normalize", "zscore"], "--normalize"),
                         (["--data", data, "--global-pool", "max"], "--global-pool"),
                         (["--data", data, "--drop", "1.5"], "--drop")):
        p = run(TRAIN, *args, rc=2)
        check(needle in p.stderr and p.stdout == "", f"vit-train {args}: {p.stderr!r}")
    p = run(TRAIN, "--data", data, "--format", "tiff", "--out", os.path.join(d, "o"), *TINY, rc=2)
    check("--format" in p.stderr, p.stderr)
    p = run(TRAIN, "--data", os.path.join(d, "missing"), "--out", os.path.join(d, "o"), *TINY, rc=1)
    check("missing" in p.stderr, p.stderr)
    p = run(TRAIN, "--data", data, "--out", os.path.join(d, "o"), *TINY, "--augment", "shift+flip", "--shift", "9", rc=2)
    check("--shift 9 is more than the image side 8" in p.stderr, p.stderr)  # refused before the data is read
    a_file = os.path.join(d, "a_file")
    open(a_file, "w").close()
    p = run(TRAIN, "--data", data, "--out", a_file, *TINY, rc=1)  # refused before any training
    check("--out" in p.stderr and "Epoch" not in p.stderr, p.stderr)
    for args, needle in (([], "--checkpoint is required"), (["--checkpoint", "x"], "no IMAGE"),
                         (["--checkpoint", "x", "--top-k", "0", "a.png"], "--top-k"),
                         (["--checkpoint", "x", "--mean", "0.5,0.5,0.5", "a.png"], "--mean and --std"),
                         (["--checkpoint", "x", "--std", "1,0,1", "a.png"], "--std"),
                         (["--checkpoint", "x", "--mean", "0.5,0.5,0.5,0.5", "--std", "1", "a.png"], "--mean"),
                         (["--checkpoint", "x", "--frobnicate", "a.png"], "--frobnicate")):
        p = run(PREDICT, *args, rc=2)
        check(needle in p.stderr and p.stdout == "", f"vit-predict {args}: {p.stderr!r}")
    for args, needle in ((["--data", data], "--checkpoint is required"), (["--checkpoint", "x"], "--data is required"),
                         (["--checkpoint", "x", "--data", data, "--split", "test"], "--split"),
                         (["--checkpoint", "x", "--data", data, "--batch-size", "0"], "--batch-size")):
        p = run(EVAL, *args, rc=2)
        check(needle in p.stderr and p.stdout == "", f"vit-eval {args}: {p.stderr!r}")


def test_train_outputs(d):
    """Every output of vit-train: stdout (seed lines / JSON), stderr progress, the five files, checkpoint metadata."""
    data = make_folder(os.path.join(d, "data"))
    out = os.path.join(d, "run")
    args = train_args(data, out, "--json", "--seed", "3", "--augment", "crop+flip", "--crop-scale", "0.5",
                      "--normalize", "imagenet", "--weight-decay", "0.05", "--decay-exempt", "--warmup-epochs", "1", "--schedule", "cosine",
                      "--label-smoothing", "0.1", "--clip-grad", "1.0", "--lr", "2e-3", "--mlp-ratio", "2",
                      "--drop", "0.1", "--attn-drop", "0.1", "--drop-path", "0.1", epochs=3)
    p = run(TRAIN, *args)
    rows = json_lines(p.stdout)
    check(len(rows) == 3, f"3 JSON lines expected:\n{p.stdout}")
    steps = 24 // 4  # 3 classes x 8 images, batch 4, drop_last
    for e, row in enumerate(rows, 1):
        check(list(row) == JSON_KEYS, f"JSON keys {list(row)}")
        check(row["epoch"] == e, row)
        check(all(math.isfinite(row[k]) for k in JSON_KEYS), row)
        check(0 <= row["train_acc"] <= 1 and 0 <= row["val_acc"] <= 1 and row["train_loss"] > 0, row)
        check(row["seconds"] >= 0 and row["images_per_s"] > 0, row)
        # warm-up over epoch 1 to 2e-3, then cosine to 0 over epochs 2-3; the lr of each epoch's last step
        step = e * steps - 1
        warm = steps
        want = 2e-3 * (step + 1) / warm if step < warm else \
            0.5 * 2e-3 * (1 + math.cos(math.pi * (step - warm) / (3 * steps - warm)))
        check(abs(row["lr"] - want) <= 1e-5 * 2e-3 + 1e-6 * want, f"epoch {e}: lr {row['lr']} != {want}")
        # the seed's line goes to stderr with --json
        line = (f"Epoch {e}: Train Loss={row['train_loss']:.4f}, Train Acc={row['train_acc']:.4f}, "
                f"Val Loss={row['val_loss']:.4f}, Val Acc={row['val_acc']:.4f}")
        check(line in p.stderr.splitlines(), f"{line!r} not in stderr:\n{p.stderr}")
        check(f"Epoch {e}/3 {steps}/{steps} (100%)" in p.stderr, f"progress of epoch {e}:\n{p.stderr}")
    check("3 classes" in p.stderr, p.stderr)
    # the files
    check(sorted(os.listdir(out)) == ["acc_curve.png", "best.safetensors", "last.optim.safetensors",
                                      "last.safetensors", "loss_curve.png", "metrics.csv"], os.listdir(out))
    with open(os.path.join(out, "metrics.csv")) as f:
        csv = f.read().splitlines()
    check(csv[0] == ",".join(JSON_KEYS), csv[0])
    check(len(csv) == 4, csv)
    for line, row in zip(csv[1:], rows):
        cells = line.split(",")
        check(int(cells[0]) == row["epoch"], line)
        for k, v in zip(JSON_KEYS[1:5], cells[1:5]):
            check(v == f"{row[k]:.6f}", f"metrics.csv {k} {v} != JSON {row[k]}")
        check(float(cells[5]) == row["lr"], line)
    for name in ("loss_curve.png", "acc_curve.png"):
        a = check_png(os.path.join(out, name), (800, 600))
        check((a == 255).all(axis=2).mean() > 0.5, f"{name}: mostly white background expected")
    t, meta = read_safetensors(os.path.join(out, "last.safetensors"))
    check(json.loads(meta["class_names"]) == CLASSES, meta["class_names"])
    check(meta["mean"] == "0.485,0.456,0.406" and meta["std"] == "0.229,0.224,0.225", meta)
    want = {"vit.img_size": "8", "vit.patch_size": "4", "vit.in_channels": "3", "vit.num_classes": "3",
            "vit.dim": "12", "vit.depth": "1", "vit.heads": "2", "vit.patch_norm": "1", "vit.qkv_bias": "1",
            "vit.global_pool": "token", "vit.mlp_ratio": "2", "vit.ln_eps": "1.0000000000000001e-05"}
    for k, v in want.items():
        check(meta.get(k) == v, f"{k} = {meta.get(k)!r}, expected {v!r}")
    check(float(meta["vit.drop_rate"]) == 0.1 and float(meta["vit.drop_path_rate"]) == 0.1, meta)
    check(t["head.weight"].shape == (3, 12) and "patch_embed.norm.weight" in t, list(t))
    _, ometa = read_safetensors(os.path.join(out, "last.optim.safetensors"))
    check(ometa["train.epochs_done"] == "3" and ometa["train.seed"] == "3" and ometa["train.step"] == "0", ometa)
    check(ometa["optim.step"] == str(3 * steps) and float(ometa["optim.weight_decay"]) == 0.05, ometa)
    check(ometa["optim.decay_exempt"] == "1" and float(ometa["optim.clip_grad_norm"]) == 1.0, ometa)
    best = max(range(3), key=lambda i: (rows[i]["val_acc"], -i))  # first epoch with the best accuracy
    check(abs(float(ometa["train.best_acc"]) - rows[best]["val_acc"]) < 1e-6, ometa["train.best_acc"])

    # plain output: the seed's lines on stdout, then the summary
    out2 = os.path.join(d, "plain")
    p = run(TRAIN, *train_args(data, out2, "--seed", "3", "--no-patch-norm", "--no-qkv-bias", "--global-pool", "avg",
                               "--ln-eps", "1e-6", epochs=2))
    lines = p.stdout.splitlines()
    check(len(lines) == 3 and lines[0].startswith("Epoch 1: Train Loss=") and lines[1].startswith("Epoch 2: "), lines)
    check(lines[2].startswith("Training finished, best validation accuracy: "), lines)
    _, meta = read_safetensors(os.path.join(out2, "best.safetensors"))
    check(meta["vit.patch_norm"] == "0" and meta["vit.qkv_bias"] == "0" and meta["vit.global_pool"] == "avg", meta)
    check(meta["vit.ln_eps"] == "9.9999999999999995e-07" and meta["mean"] == "0,0,0", meta)


def test_train_idx_preset(d):
    """IDX input (gzip, gray, detected), --model PRESET with overrides, --format, --steps-per-epoch/--val-batches,
    --augment shift+flip."""
    data = make_idx(os.path.join(d, "idx"), gz=True)
    out = os.path.join(d, "run")
    p = run(TRAIN, "--data", data, "--format", "idx", "--out", out, "--model", "vit_tiny_patch16_224", "--img-size", "8",
            "--patch-size", "4", "--depth", "1", "--epochs", "1", "--batch-size", "4", "--steps-per-epoch", "2",
            "--val-batches", "1", "--threads", "1", "--workers", "0", "--augment", "shift+flip", "--shift", "2", "--json")
    row = json_lines(p.stdout)[0]
    check(row["images_per_s"] > 0, row)
    check("2 steps per epoch" in p.stderr and "10 classes" in p.stderr, p.stderr)
    t, meta = read_safetensors(os.path.join(out, "last.safetensors"))
    # the preset's width and heads (192, 3), the flags' image, patch and depth, IDX's one channel
    # and timm's layout: no patch norm, eps 1e-6
    for k, v in (("vit.dim", "192"), ("vit.heads", "3"), ("vit.depth", "1"), ("vit.img_size", "8"),
                 ("vit.patch_size", "4"), ("vit.in_channels", "1"), ("vit.num_classes", "10"),
                 ("vit.patch_norm", "0"), ("vit.ln_eps", "9.9999999999999995e-07"), ("vit.mlp_ratio", "4"),
                 ("vit.qkv_bias", "1")):
        check(meta[k] == v, f"{k} = {meta[k]}, expected {v}")
    check(json.loads(meta["class_names"]) == [str(i) for i in range(10)], meta["class_names"])
    _, ometa = read_safetensors(os.path.join(out, "last.optim.safetensors"))
    check(ometa["optim.step"] == "2", ometa)
    # a gray PNG through vit-predict and vit-eval on the IDX validation split
    png = os.path.join(d, "digit.png")
    Image.fromarray(pattern(1, np.random.default_rng(5))[..., 0]).save(png)
    top = json_lines(run(PREDICT, "--checkpoint", os.path.join(out, "last.safetensors"), "--top-k", "10", "--json",
                         png).stdout)[0]["top"]
    check(sorted(x["index"] for x in top) == list(range(10)) and abs(sum(x["prob"] for x in top) - 1) < 1e-4, top)
    r = json.loads(run(EVAL, "--checkpoint", os.path.join(out, "last.safetensors"), "--data", data, "--json",
                       "--workers", "1", "--threads", "1").stdout)
    check(r["samples"] == 18 and len(r["per_class"]) == 10, r)


def test_train_cifar10(d):
    """The CIFAR-10 python layout (as torchvision downloads it, written by tests/data/gen_fixtures.py): class names
    from batches.meta, ImageNet normalization by default (the seed's CIFAR10DataLoad), resize 32 -> 8."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "data"))
    import gen_fixtures
    data = os.path.join(d, "cifar-10-batches-py")
    gen_fixtures.write_cifar_py(data)
    out = os.path.join(d, "run")
    p = run(TRAIN, "--data", d, "--out", out, "--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "3",
            "--val-batches", "2", *TINY)
    check(p.stdout.startswith("Epoch 1: Train Loss="), p.stdout)
    check("10 classes" in p.stderr and "3 steps per epoch of 8 images" in p.stderr, p.stderr)
    _, meta = read_safetensors(os.path.join(out, "best.safetensors"))
    check(json.loads(meta["class_names"]) == gen_fixtures.CIFAR_NAMES, meta["class_names"])
    check(meta["mean"] == "0.485,0.456,0.406" and meta["std"] == "0.229,0.224,0.225", meta)
    r = json.loads(run(EVAL, "--checkpoint", os.path.join(out, "best.safetensors"), "--data", data, "--format",
                       "cifar10", "--json", "--workers", "1", "--threads", "1").stdout)
    check(r["samples"] == 50 and [c["class"] for c in r["per_class"]] == gen_fixtures.CIFAR_NAMES, r)


def test_checkpoint_roundtrip(d):
    """A trained checkpoint loads, saves and loads again with identical logits, and equals a fresh model
    given the file's tensors; PyTorch on the same tensors agrees to 1e-5."""
    import torch
    from torch_vit import VisionTransformer
    libvit, _ = lib()
    data = make_folder(os.path.join(d, "data"))
    out = os.path.join(d, "run")
    run(TRAIN, *train_args(data, out, "--seed", "1", epochs=1))
    path = os.path.join(out, "last.safetensors")
    ctx = libvit.Context(threads=1, seed=0)
    images = np.random.default_rng(0).random((5, 3, 8, 8), dtype=np.float32)
    m1 = load_model(ctx, path)
    a = inference_logits(m1, images)
    again = os.path.join(d, "again.safetensors")
    save_model(m1, again)
    m2 = load_model(ctx, again)
    b = inference_logits(m2, images)
    check(np.array_equal(a, b), f"logits differ after save/load: {np.abs(a - b).max()}")
    t1, meta1 = read_safetensors(path)
    t2, meta2 = read_safetensors(again)
    check(list(t1) == list(t2) and all(np.array_equal(t1[k], t2[k]) for k in t1), "tensors differ after save/load")
    check(meta1 == meta2, f"metadata differs after save/load:\n{meta1}\n{meta2}")
    check(list(t1) == [n for n, _ in m1.param_names()], "file order is not the model's parameter order")
    # a model built from the configuration, given the tensors by name
    fresh = libvit.Model(ctx, img_size=8, patch_size=4, in_channels=3, num_classes=3, dim=12, depth=1, heads=2,
                         patch_norm=1, ln_eps=1e-5)
    fresh.load_state_dict(t1)
    check(np.array_equal(inference_logits(fresh, images), a), "a fresh model with the file's tensors differs")
    # training mode (dropout) must not leak into inference: the logits are those of the weights alone
    ref = VisionTransformer(img_size=8, patch_size=4, in_channels=3, num_classes=3, dim=12, depth=1, heads=2,
                            patch_norm=True, ln_eps=1e-5).double().eval()
    ref.load_state_dict({k: torch.from_numpy(v).double() for k, v in t1.items()})
    with torch.no_grad():
        want = ref(torch.from_numpy(images).double()).numpy()
    e = np.abs(a - want).max() / np.abs(want).max()
    check(e < 1e-5, f"libvit logits vs PyTorch: relative error {e:.2e}")


def test_predict_json(d):
    """vit-predict output (JSON and text) against the model's own forward, with the checkpoint's normalization,
    --mean/--std, class names, --top-k clamping, flags after the images."""
    libvit, _ = lib()
    data = make_folder(os.path.join(d, "data"))
    out = os.path.join(d, "run")
    run(TRAIN, *train_args(data, out, "--normalize", "imagenet", "--lr", "3e-3", epochs=2))
    ckpt = os.path.join(out, "best.safetensors")
    rng = np.random.default_rng(9)
    images = []
    for i in range(4):
        path = os.path.join(d, f"img {i}.png")  # a space in the name: JSON and text keep it
        Image.fromarray(pattern(i % 3, rng)).save(path)
        images.append(path)
    ctx = libvit.Context(threads=1)
    model = load_model(ctx, ckpt)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def expect(path, k, mean, std):
        prob = softmax(inference_logits(model, image_tensor(path, mean, std)))[0]
        order = np.argsort(-prob, kind="stable")[:k]
        return order, prob[order]

    def compare(results, k, mean, std):
        check([r["image"] for r in results] == images, [r["image"] for r in results])
        for r in results:
            check(list(r) == ["image", "top"] and len(r["top"]) == k, r)
            idx, prob = expect(r["image"], k, mean, std)
            got_idx = [t["index"] for t in r["top"]]
            got_prob = np.array([t["prob"] for t in r["top"]])
            check(got_idx == list(idx), f"{r['image']}: indices {got_idx}, expected {list(idx)}")
            check(np.abs(got_prob - prob).max() < 2e-6, f"{r['image']}: probs {got_prob}, expected {prob}")
            check([t["class"] for t in r["top"]] == [CLASSES[i] for i in got_idx], r)
            check(all(list(t) == ["index", "class", "prob"] for t in r["top"]), r)

    p = run(PREDICT, "--checkpoint", ckpt, "--top-k", "3", "--json", "--threads", "1", *images)
    check(p.stderr == "", p.stderr)
    compare(json_lines(p.stdout), 3, mean, std)
    # --top-k beyond the class count gives every class; flags may follow the images
    p = run(PREDICT, images[0], images[1], "--checkpoint", ckpt, "--json", "--top-k", "50", "--",
            images[2], images[3])
    compare(json_lines(p.stdout), 3, mean, std)
    # --mean/--std override the checkpoint's
    p = run(PREDICT, "--checkpoint", ckpt, "--top-k", "2", "--json", "--mean", "0.5,0.5,0.5", "--std=0.25,0.5,1",
            *images)
    compare(json_lines(p.stdout), 2, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    # default: the best class only, as text: "PATH:" then "  1. NAME (INDEX): PROB"
    p = run(PREDICT, "--checkpoint", ckpt, *images)
    lines = p.stdout.splitlines()
    check(len(lines) == 2 * len(images), lines)
    for i, path in enumerate(images):
        idx, prob = expect(path, 1, mean, std)
        check(lines[2 * i] == f"{path}:", lines[2 * i])
        head = f"  1. {CLASSES[idx[0]]} ({idx[0]}): "
        check(lines[2 * i + 1].startswith(head), lines[2 * i + 1])
        printed = lines[2 * i + 1][len(head):]
        check(len(printed.split(".")[1]) == 4 and abs(float(printed) - prob[0]) <= 5e-5 + 1e-6, lines[2 * i + 1])
    # a checkpoint without class names and normalization: class_<i>, pixels / 255
    t, meta = read_safetensors(ckpt)
    bare = os.path.join(d, "bare.safetensors")
    write_safetensors(bare, t.items(), {k: v for k, v in meta.items() if k not in ("class_names", "mean", "std")})
    model = load_model(ctx, bare)
    r = json_lines(run(PREDICT, "--checkpoint", bare, "--json", "--top-k", "3", *images).stdout)
    compare([dict(x, top=[dict(y, **{"class": CLASSES[y["index"]]}) for y in x["top"]]) for x in r], 3,
            (0, 0, 0), (1, 1, 1))
    check(all(y["class"] == f"class_{y['index']}" for x in r for y in x["top"]), r)
    # another image size is resized (not compared, but classified)
    big = os.path.join(d, "big.jpg")
    Image.fromarray(np.repeat(np.repeat(pattern(0, rng), 5, 0), 3, 1)).save(big, quality=95)
    top = json_lines(run(PREDICT, "--checkpoint", ckpt, "--json", "--top-k", "3", big).stdout)[0]["top"]
    check(abs(sum(x["prob"] for x in top) - 1) < 1e-4, top)


def torch_timm_file(path, seed, img, patch, chans, classes, dim, depth, heads, metadata, **kw):
    """A torch_vit model with non-trivial random weights, saved as a timm-layout safetensors file."""
    import torch
    from torch_vit import VisionTransformer
    torch.manual_seed(seed)
    model = VisionTransformer(img_size=img, patch_size=patch, in_channels=chans, num_classes=classes, dim=dim,
                              depth=depth, heads=heads, ln_eps=1e-6, **kw).eval()
    with torch.no_grad():  # timm's init gives nearly uniform probabilities: spread them
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p) if name.endswith("weight") else 0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * (0.5 if p.ndim == 1 or name in ("cls_token", "pos_embed")
                                               else 1.5 / math.sqrt(p[0].numel())))
    write_safetensors(path, [(k, v.detach().numpy()) for k, v in model.state_dict().items()], metadata)
    return model


def test_predict_torch_timm(d):
    """timm-layout files written from PyTorch models: vit-predict's top-k equals PyTorch's softmax top-k."""
    import torch
    rng = np.random.default_rng(4)
    cases = [
        # pure timm layout: heads inferred from the width (192 -> ViT-Ti's 3), no class names, no normalization
        dict(name="timm_token", seed=1, img=16, patch=8, chans=3, classes=7, dim=192, depth=1, heads=3,
             metadata={"format": "pt"}),
        # the seed's variant: patch norm, avg pool, no qkv bias; heads stated in metadata, class names given
        dict(name="timm_avg", seed=2, img=16, patch=4, chans=3, classes=5, dim=24, depth=2, heads=2,
             metadata={"format": "pt", "vit.heads": "2", "class_names": json.dumps(list("abcde"))},
             patch_norm=True, global_pool="avg", qkv_bias=False),
    ]
    for case in cases:
        case = dict(case)
        name = case.pop("name")
        path = os.path.join(d, name + ".safetensors")
        model = torch_timm_file(path, **case)
        images = []
        for i in range(3):
            p = os.path.join(d, f"{name}_{i}.png")
            Image.fromarray(rng.integers(0, 256, (case["img"], case["img"], 3), dtype=np.uint8)).save(p)
            images.append(p)
        results = json_lines(run(PREDICT, "--checkpoint", path, "--json", "--top-k", "3", "--threads", "1",
                                 *images).stdout)
        check(len(results) == len(images), results)
        names = json.loads(case["metadata"].get("class_names", "null"))
        for r, p in zip(results, images):
            x = torch.from_numpy(np.asarray(Image.open(p), np.float32) / 255).permute(2, 0, 1)[None]
            with torch.no_grad():
                prob = torch.softmax(model.double()(x.double()), dim=-1)[0].numpy()
            order = list(np.argsort(-prob, kind="stable")[:3])
            check(prob[order[0]] - prob[order[1]] > 1e-3 and prob[order[1]] - prob[order[2]] > 1e-3,
                  f"{name}: probabilities too close to rank: {prob}")
            got = [t["index"] for t in r["top"]]
            check(got == order, f"{name} {p}: indices {got}, PyTorch {order}")
            err = max(abs(t["prob"] - prob[t["index"]]) for t in r["top"])
            check(err < 1e-4, f"{name} {p}: probabilities differ by {err:.2e} ({r['top']} vs {prob[order]})")
            want_names = [names[i] if names else f"class_{i}" for i in order]
            check([t["class"] for t in r["top"]] == want_names, r)


def test_predict_features(d):
    """vit-predict --features (.npy and .json, pooled and --tokens) on timm-family files written from PyTorch
    (CLIP-like with QuickGELU stated in metadata; DINOv2-reg-like without a head): the embeddings equal
    torch_vit's forward_head(pre_logits=True) and forward_features within 1e-5 of their scale."""
    import torch
    rng = np.random.default_rng(5)
    cases = [
        dict(name="clip", seed=3, img=16, patch=4, chans=3, classes=5, dim=24, depth=2, heads=2,
             metadata={"vit.heads": "2", "vit.quick_gelu": "1", "vit.ln_eps": "1e-06"}, pre_norm=True,
             patch_bias=False, quick_gelu=True),
        dict(name="dinov2_reg", seed=4, img=14, patch=7, chans=3, classes=0, dim=16, depth=2, heads=2,
             metadata={"vit.heads": "2"}, reg_tokens=4, no_embed_class=True, init_values=1e-5),
    ]
    images = []
    for i in range(2):
        p = os.path.join(d, f"img {i}.png")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(p)
        images.append(p)
    for case in cases:
        case = dict(case)
        name = case.pop("name")
        path = os.path.join(d, name + ".safetensors")
        model = torch_timm_file(path, **case).double()
        size = case["img"]
        x = torch.cat([torch.from_numpy(np.asarray(Image.open(p).resize((size, size), Image.BILINEAR), np.float32)
                                        / 255).permute(2, 0, 1)[None] for p in images]).double()
        with torch.no_grad():
            tokens = model.forward_features(x).numpy()
            pooled = model.forward_head(torch.from_numpy(tokens), pre_logits=True).numpy()
        for out, flags, want in ((name + ".npy", [], pooled), (name + ".json", [], pooled),
                                 (name + "_tokens.npy", ["--tokens"], tokens),
                                 (name + "_tokens.json", ["--tokens"], tokens)):
            target = os.path.join(d, out)
            res = run(PREDICT, "--checkpoint", path, "--features", target, *flags, *images)
            check(target in res.stdout, res.stdout)
            if out.endswith(".npy"):
                got = np.load(target)
                check(got.dtype == np.float32, got.dtype)
            else:
                with open(target) as f:
                    doc = json.load(f)
                check(doc["images"] == images and doc["prefix_tokens"] == (1 + case.get("reg_tokens", 0)), doc)
                got = np.asarray(doc["features"], np.float64)
                check(list(got.shape) == doc["shape"], (got.shape, doc["shape"]))
            check(got.shape == want.shape, f"{name} {out}: shape {got.shape}, PyTorch {want.shape}")
            e = np.max(np.abs(got - want)) / np.max(np.abs(want))
            check(e < 1e-5, f"{name} {out}: features differ from PyTorch by {e:.2e}")
    # a model without a head cannot classify; --tokens alone, a bad name, a missing image: no file
    res = run(PREDICT, "--checkpoint", os.path.join(d, "dinov2_reg.safetensors"), images[0], rc=1)
    check("no head" in res.stderr and "--features" in res.stderr, res.stderr)
    run(PREDICT, "--checkpoint", path, "--tokens", images[0], rc=2)
    run(PREDICT, "--checkpoint", path, "--features", os.path.join(d, "x.txt"), images[0], rc=2)
    missing = os.path.join(d, "missing.npy")
    res = run(PREDICT, "--checkpoint", path, "--features", missing, images[0], os.path.join(d, "nope.png"), rc=1)
    check(not os.path.exists(missing) and "not written" in res.stderr, res.stderr)


def test_seed_pth(d):
    """docs/seed.md's pth2safetensors.py on a state_dict with the seed's names (blocks.N.norm_1, patch norm,
    eps 1e-5, heads not inferable from the shapes): vit-predict then agrees with PyTorch within 1e-4."""
    import torch
    from torch_vit import VisionTransformer
    with open(os.path.join(ROOT, "docs", "seed.md"), encoding="utf-8") as f:
        doc = f.read()
    start = doc.index("```python\n# pth2safetensors.py") + len("```python\n")
    script = os.path.join(d, "pth2safetensors.py")
    with open(script, "w") as f:
        f.write(doc[start:doc.index("```", start)])
    torch.manual_seed(0)
    model = VisionTransformer(img_size=16, patch_size=4, num_classes=3, dim=24, depth=2, heads=4, patch_norm=True,
                              ln_eps=1e-5).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    seed_sd = {k.replace(".norm1.", ".norm_1.").replace(".norm2.", ".norm_2."): v for k, v in model.state_dict().items()}
    check(any(".norm_1." in k for k in seed_sd), list(seed_sd))
    pth, out = os.path.join(d, "best_vit.pth"), os.path.join(d, "best_vit.safetensors")
    torch.save(seed_sd, pth)
    subprocess.run([sys.executable, script, pth, out, "4", "cat,dog,bird"], check=True)
    rng = np.random.default_rng(2)
    images = []
    for i in range(3):
        images.append(os.path.join(d, f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(images[-1])
    for r, path in zip(json_lines(run(PREDICT, "--checkpoint", out, "--json", "--top-k", "3", *images).stdout), images):
        x = torch.from_numpy(np.asarray(Image.open(path), np.float32) / 255).permute(2, 0, 1)[None]
        with torch.no_grad():
            prob = torch.softmax(model.double()(x.double()), -1)[0].numpy()
        order = list(np.argsort(-prob, kind="stable"))
        check([t["index"] for t in r["top"]] == order, f"{path}: {r['top']} vs {prob}")
        check(max(abs(t["prob"] - prob[t["index"]]) for t in r["top"]) < 1e-4, f"{path}: {r['top']} vs {prob}")
        check([t["class"] for t in r["top"]] == [["cat", "dog", "bird"][i] for i in order], r)


def resume_rows(stdout):
    return {r["epoch"]: r for r in json_lines(stdout)}


def metrics_rows(out):
    """metrics.csv without the timing columns (seconds, images_per_s)."""
    with open(os.path.join(out, "metrics.csv")) as f:
        return [",".join(line.split(",")[:6]) for line in f.read().splitlines()]


def state_history(out):
    _, meta = read_safetensors(os.path.join(out, "last.optim.safetensors"))
    # per epoch: train_loss train_acc val_loss val_acc lr (seconds and images/s are timings)
    return [" ".join(e.split()[:5]) for e in meta["train.history"].split(";") if e], meta


def same_weights(a, b):
    ta, _ = read_safetensors(os.path.join(a, "last.safetensors"))
    tb, _ = read_safetensors(os.path.join(b, "last.safetensors"))
    bad = [k for k in ta if not np.array_equal(ta[k].view(np.uint32), tb[k].view(np.uint32))]
    check(not bad, f"weights of {a} and {b} differ in {bad}")


def test_resume_exact(d):
    """Two epochs in one run == one epoch, then --resume to two: identical losses (printed, metrics.csv, and the
    full-precision history) and bit-identical weights, with dropout, attention dropout, DropPath and augmentation on."""
    data = make_folder(os.path.join(d, "data"))
    common = ["--seed", "11", "--json", "--drop", "0.2", "--attn-drop", "0.2", "--drop-path", "0.2",
              "--augment", "flip+rotate", "--lr", "2e-3", "--depth", "2"]
    full, part = os.path.join(d, "full"), os.path.join(d, "part")
    a = resume_rows(run(TRAIN, *train_args(data, full, *common, epochs=2)).stdout)
    b = resume_rows(run(TRAIN, *train_args(data, part, *common, epochs=1)).stdout)
    check(list(b) == [1], b)
    # workers differ on purpose: the data order must not depend on them
    p = run(TRAIN, *train_args(data, part, *common, "--workers", "2", "--resume", os.path.join(part, "last.safetensors"),
                               epochs=2))
    c = resume_rows(p.stdout)
    check(list(c) == [2], f"the resumed run printed epochs {list(c)}")
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        check(f"{a[2][k]:.6f}" == f"{c[2][k]:.6f}", f"epoch 2 {k}: uninterrupted {a[2][k]}, resumed {c[2][k]}")
        check(f"{a[1][k]:.6f}" == f"{b[1][k]:.6f}", f"epoch 1 {k}: {a[1][k]} vs {b[1][k]}")
    check(metrics_rows(full) == metrics_rows(part), f"metrics.csv:\n{metrics_rows(full)}\n{metrics_rows(part)}")
    ha, ma = state_history(full)
    hb, mb = state_history(part)
    check(ha == hb, f"full-precision history differs:\n{ha}\n{hb}")
    for k in ("optim.step", "train.rng", "train.epochs_done", "train.best_acc"):
        check(ma[k] == mb[k], f"{k}: {ma[k]} vs {mb[k]}")
    same_weights(full, part)
    # fewer --epochs than the checkpoint has done is a usage error
    p = run(TRAIN, *train_args(data, part, *common, "--resume", os.path.join(part, "last.safetensors"), epochs=1), rc=2)
    check("2 epochs done" in p.stderr, p.stderr)
    # dropout really is on: another seed gives other losses
    other = resume_rows(run(TRAIN, *train_args(data, os.path.join(d, "other"), *common[2:], "--seed", "12",
                                               epochs=1)).stdout)
    check(other[1]["train_loss"] != a[1]["train_loss"], "the seed changes nothing")


def test_interrupt_resume(d):
    """SIGINT mid-run saves last.safetensors and exits 130; --resume (without repeating --seed) then ends
    exactly where an uninterrupted run ends; a conflicting --seed is refused."""
    data = make_idx(os.path.join(d, "idx"), n_train=1200, n_val=18)
    common = ["--data", data, "--img-size", "8", "--patch-size", "4", "--dim", "16", "--depth", "2", "--heads", "2",
              "--threads", "1", "--workers", "1", "--batch-size", "4", "--epochs", "3", "--lr", "1e-3",
              "--schedule", "cosine", "--warmup-epochs", "1", "--drop", "0.2", "--drop-path", "0.1", "--json"]
    full, cut = os.path.join(d, "full"), os.path.join(d, "cut")
    t0 = time.monotonic()
    a = resume_rows(run(TRAIN, *common, "--seed", "5", "--out", full).stdout)
    epoch_s = (time.monotonic() - t0) / 3
    interrupted_mid_epoch = False
    for attempt, frac in enumerate((0.5, 1.5, 0.3, 2.2)):
        if os.path.isdir(cut):
            for f in os.listdir(cut):
                os.unlink(os.path.join(cut, f))
        proc = subprocess.Popen([TRAIN, *common, "--seed", "5", "--out", cut], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, bufsize=0)
        # "vit-train: N classes, ..." comes once the handler is installed, just before the first epoch
        first = b""
        while not first.endswith(b"\n"):
            c = os.read(proc.stderr.fileno(), 1)
            check(c, f"vit-train ended before training: {first!r}")
            first += c
        check(b"classes" in first, first)
        time.sleep(frac * epoch_s)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        stdout, stderr = stdout.decode(), (first + stderr).decode()
        if proc.returncode == 0:
            continue  # finished before the signal: try earlier
        check(proc.returncode == 130, f"SIGINT: exit {proc.returncode}\n{stderr}")
        check("interrupted" in stderr and "last.safetensors" in stderr, stderr)
        check(os.path.exists(os.path.join(cut, "last.safetensors")), "no last.safetensors after SIGINT")
        _, meta = read_safetensors(os.path.join(cut, "last.optim.safetensors"))
        interrupted_mid_epoch = meta.get("train.step", "?") != "0"
        # no --seed: the run's own (5) is used
        c = resume_rows(run(TRAIN, *common, "--out", cut, "--resume", os.path.join(cut, "last.safetensors")).stdout)
        check(max(c) == 3, c)
        for e, row in c.items():
            for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
                check(f"{row[k]:.6f}" == f"{a[e][k]:.6f}", f"epoch {e} {k}: resumed {row[k]}, uninterrupted {a[e][k]}")
        check(state_history(full)[0] == state_history(cut)[0], "history differs")
        same_weights(full, cut)
        # resuming with another --seed is an error: the data order and dropout follow the seed
        p = run(TRAIN, *common, "--seed", "6", "--out", cut, "--resume", os.path.join(cut, "last.safetensors"), rc=2)
        check("--seed 5" in p.stderr, p.stderr)
        if interrupted_mid_epoch:
            break
    check(interrupted_mid_epoch, "no SIGINT landed inside an epoch (the machine is too fast or too slow?)")


def test_nonfinite_loss(d):
    """A non-finite loss stops training with exit 3 and a message naming the epoch and step."""
    data = make_folder(os.path.join(d, "data"))
    base = os.path.join(d, "base")
    run(TRAIN, *train_args(data, base, epochs=1))
    t, _ = read_safetensors(os.path.join(base, "last.safetensors"))
    t["head.weight"] = np.sign(t["head.weight"]) * np.float32(3e38)  # logits overflow to +-inf
    huge = os.path.join(d, "huge.safetensors")
    write_safetensors(huge, t.items(), {"format": "pt"})
    p = run(TRAIN, *train_args(data, os.path.join(d, "run"), "--pretrained", huge), rc=3)
    check("not finite" in p.stderr and "epoch 1, step 1" in p.stderr, p.stderr)
    check("No checkpoint was saved" in p.stderr, p.stderr)
    check(p.stdout == "", p.stdout)
    # the same from a resumed run names the checkpoint it came from
    _, meta = read_safetensors(os.path.join(base, "last.safetensors"))
    write_safetensors(os.path.join(base, "last.safetensors"), t.items(), meta)
    p = run(TRAIN, *train_args(data, base, "--resume", os.path.join(base, "last.safetensors")), rc=3)
    check("epoch 2, step 1" in p.stderr and "last good checkpoint is " + os.path.join(base, "last.safetensors")
          in p.stderr, p.stderr)


def test_pretrained(d):
    """--pretrained loads a timm-layout file: every tensor but the head (other class count) is taken as is, and
    pos_embed is resampled for another grid."""
    data = make_folder(os.path.join(d, "data"))
    src = os.path.join(d, "src.safetensors")
    torch_timm_file(src, 3, img=8, patch=4, chans=3, classes=7, dim=12, depth=1, heads=2,
                    metadata={"format": "pt", "vit.heads": "2"}, patch_norm=True)
    t, _ = read_safetensors(src)
    out = os.path.join(d, "run")
    # lr 0 and no weight decay: the weights stay the pretrained ones
    run(TRAIN, *train_args(data, out, "--pretrained", src, "--lr", "0", "--weight-decay", "0", "--ln-eps", "1e-6",
                           epochs=1))
    got, _ = read_safetensors(os.path.join(out, "last.safetensors"))
    for k in t:
        if k.startswith("head."):
            check(got[k].shape[0] == 3, f"{k}: {got[k].shape}")
        else:
            check(np.array_equal(got[k], t[k]), f"{k} was not loaded from --pretrained")
    # a 16x16 model from the 8x8 file: pos_embed resampled from a 2x2 to a 4x4 grid
    out2 = os.path.join(d, "run16")
    run(TRAIN, *train_args(data, out2, "--pretrained", src, "--lr", "0", "--weight-decay", "0", "--ln-eps", "1e-6",
                           "--img-size", "16", epochs=1))
    got, meta = read_safetensors(os.path.join(out2, "last.safetensors"))
    check(got["pos_embed"].shape == (1, 17, 12) and meta["vit.img_size"] == "16", got["pos_embed"].shape)
    check(np.array_equal(got["pos_embed"][0, 0], t["pos_embed"][0, 0]), "the class token's position changed")
    check(np.array_equal(got["blocks.0.attn.qkv.weight"], t["blocks.0.attn.qkv.weight"]), "blocks not loaded")
    # a file of another width fails, naming the file
    bad = os.path.join(d, "wide.safetensors")
    torch_timm_file(bad, 4, img=8, patch=4, chans=3, classes=3, dim=16, depth=1, heads=2, metadata={"format": "pt"})
    p = run(TRAIN, *train_args(data, os.path.join(d, "run3"), "--pretrained", bad), rc=1)
    check("wide.safetensors" in p.stderr, p.stderr)


def malformed_files(d, good):
    """(name, path) of broken checkpoints derived from a good one."""
    with open(good, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    t, meta = read_safetensors(good)
    files = {}

    def put(name, data):
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        files[name] = path

    put("empty.safetensors", b"")
    put("short.safetensors", blob[:5])
    put("truncated.safetensors", blob[:len(blob) - 100])
    put("garbage.safetensors", bytes(range(256)) * 8)
    put("huge_header.safetensors", struct.pack("<Q", 1 << 40) + blob[8:])
    check(blob[8:9] == b"{", "header")
    put("bad_json.safetensors", blob[:8] + b"[" + blob[9:])  # '[' ... '}'
    put("not_object.safetensors", struct.pack("<Q", 8) + b"[1,2,3] " + blob[8 + n:])
    put("text.safetensors", b"this is not a checkpoint\n")
    wrong_shape = dict(t)
    wrong_shape["blocks.0.norm1.weight"] = np.ones(13, np.float32)  # not the head: --pretrained may replace that
    write_safetensors(os.path.join(d, "wrong_shape.safetensors"), wrong_shape.items(), meta)
    files["wrong_shape.safetensors"] = os.path.join(d, "wrong_shape.safetensors")
    missing = {k: v for k, v in t.items() if k != "blocks.0.mlp.fc2.bias"}
    write_safetensors(os.path.join(d, "missing_tensor.safetensors"), missing.items(), meta)
    files["missing_tensor.safetensors"] = os.path.join(d, "missing_tensor.safetensors")
    extra = dict(t)
    extra["blocks.0.attn.extra"] = np.zeros(3, np.float32)
    write_safetensors(os.path.join(d, "extra_tensor.safetensors"), extra.items(), meta)
    files["extra_tensor.safetensors"] = os.path.join(d, "extra_tensor.safetensors")
    files["missing.safetensors"] = os.path.join(d, "missing.safetensors")
    files["a_folder"] = d
    check(n > 0, "header")
    return files


def test_malformed_checkpoints(d):
    """Broken checkpoints make vit-predict, vit-eval and vit-train (--resume, --pretrained) fail with exit 1, a
    message naming the file and nothing on stdout."""
    data = make_folder(os.path.join(d, "data"), 4, 2)
    out = os.path.join(d, "run")
    run(TRAIN, *train_args(data, out, epochs=1))
    img = os.path.join(d, "x.png")
    Image.fromarray(pattern(0, np.random.default_rng(0))).save(img)
    bad_dir = os.path.join(d, "bad")
    os.makedirs(bad_dir)
    for name, path in malformed_files(bad_dir, os.path.join(out, "last.safetensors")).items():
        for exe, args in ((PREDICT, ["--checkpoint", path, "--json", img]),
                          (EVAL, ["--checkpoint", path, "--data", data, "--workers", "1"]),
                          (TRAIN, train_args(data, os.path.join(d, "r"), "--resume", path)),
                          (TRAIN, train_args(data, os.path.join(d, "r"), "--pretrained", path))):
            p = run(exe, *args, rc=1)
            check(path in p.stderr, f"{os.path.basename(exe)} {name}: the message does not name the file:\n{p.stderr}")
            check(p.stdout == "", f"{os.path.basename(exe)} {name}: stdout {p.stdout!r}")
    # an optimizer file is not a model; a model of another class count does not resume on this data
    p = run(PREDICT, "--checkpoint", os.path.join(out, "last.optim.safetensors"), img, rc=1)
    check("last.optim.safetensors" in p.stderr, p.stderr)
    # --resume with the optimizer state missing names the file it looked for
    lone = os.path.join(d, "lone")
    os.makedirs(lone)
    os.link(os.path.join(out, "last.safetensors"), os.path.join(lone, "last.safetensors"))
    p = run(TRAIN, *train_args(data, os.path.join(d, "r2"), "--resume", os.path.join(lone, "last.safetensors")), rc=1)
    check(os.path.join(lone, "last.optim.safetensors") in p.stderr, p.stderr)
    # a model file and an optimizer file from different moments (a crash between the two writes)
    mixed = os.path.join(d, "mixed")
    os.makedirs(mixed)
    os.link(os.path.join(out, "last.safetensors"), os.path.join(mixed, "last.safetensors"))  # after epoch 1
    run(TRAIN, *train_args(data, out, "--resume", os.path.join(out, "last.safetensors"), epochs=2))
    os.link(os.path.join(out, "last.optim.safetensors"), os.path.join(mixed, "last.optim.safetensors"))  # epoch 2
    p = run(TRAIN, *train_args(data, mixed, "--resume", os.path.join(mixed, "last.safetensors"), epochs=3), rc=1)
    check("not from the same moment" in p.stderr, p.stderr)
    _, meta = read_safetensors(os.path.join(out, "last.safetensors"))
    _, ometa = read_safetensors(os.path.join(out, "last.optim.safetensors"))
    check(meta["train.optim_step"] == ometa["optim.step"], (meta, ometa))
    _, meta = read_safetensors(os.path.join(out, "best.safetensors"))
    check("train.optim_step" not in meta, meta)
    # a checkpoint for other data (IDX: 10 classes, 1 channel)
    p = run(EVAL, "--checkpoint", os.path.join(out, "last.safetensors"), "--data", make_idx(os.path.join(d, "idx")),
            rc=1)
    check("classes" in p.stderr, p.stderr)


def test_malformed_images(d):
    """vit-predict reports each unreadable image by name, still classifies the others, exits 1;
    a corrupt file in a training folder stops vit-train naming the file."""
    data = make_folder(os.path.join(d, "data"), 4, 2)
    out = os.path.join(d, "run")
    run(TRAIN, *train_args(data, out, epochs=1))
    ckpt = os.path.join(out, "last.safetensors")
    rng = np.random.default_rng(0)
    good = [os.path.join(d, f"good{i}.png") for i in range(2)]
    for p in good:
        Image.fromarray(pattern(0, rng)).save(p)
    with open(good[0], "rb") as f:
        png = f.read()
    bad = {"missing.png": None, "empty.png": b"", "truncated.png": png[:len(png) // 2],
           "text.png": b"hello, world\n" * 10, "bad_chunk.png": png[:40] + bytes([png[40] ^ 0xFF]) + png[41:],
           "truncated.jpg": None, "a_folder.png": None}
    paths = {}
    for name, blob in bad.items():
        path = os.path.join(d, name)
        paths[name] = path
        if name == "truncated.jpg":
            Image.fromarray(pattern(1, rng)).resize((64, 64)).save(path, quality=90)
            with open(path, "rb") as f:
                data_jpg = f.read()
            with open(path, "wb") as f:
                f.write(data_jpg[:len(data_jpg) // 3])
        elif name == "a_folder.png":
            os.makedirs(path)
        elif blob is not None:
            with open(path, "wb") as f:
                f.write(blob)
    order = [good[0], *paths.values(), good[1]]
    p = run(PREDICT, "--checkpoint", ckpt, "--json", "--top-k", "2", *order, rc=1)
    results = json_lines(p.stdout)
    check([r["image"] for r in results] == good, f"only the good images should be on stdout: {p.stdout}")
    err = p.stderr.splitlines()
    for name, path in paths.items():
        check(any(line.startswith(f"vit-predict: {path}: ") for line in err), f"{name} is not reported:\n{p.stderr}")
    check(len(err) == len(paths), f"one line per bad image expected:\n{p.stderr}")
    # a corrupt image in the training data
    with open(os.path.join(data, "train", CLASSES[1], "001.png"), "wb") as f:
        f.write(png[:30])
    p = run(TRAIN, *train_args(data, os.path.join(d, "r"), "--workers", "2", epochs=1), rc=1)
    check("001.png" in p.stderr, p.stderr)


def test_eval(d):
    """vit-eval's top-1, top-5, loss, per-class accuracy and confusion PNG against the model's own forward."""
    libvit, _ = lib()
    data = make_folder(os.path.join(d, "data"), 8, 5)
    out = os.path.join(d, "run")
    run(TRAIN, *train_args(data, out, "--normalize", "half", "--lr", "3e-3", epochs=2))
    ckpt = os.path.join(out, "last.safetensors")
    ctx = libvit.Context(threads=1)
    model = load_model(ctx, ckpt)
    for split, per in (("val", 5), ("train", 8)):
        files, labels = [], []
        for c, name in enumerate(CLASSES):
            for i in range(per):
                files.append(os.path.join(data, split, name, f"{i:03d}.png"))
                labels.append(c)
        x = np.concatenate([image_tensor(f, (0.5,) * 3, (0.5,) * 3) for f in files])
        logits = inference_logits(model, x).astype(np.float64)
        prob = softmax(logits)
        labels = np.array(labels)
        loss = -np.log(prob[np.arange(len(labels)), labels]).mean()
        pred = logits.argmax(1)
        k5 = min(5, len(CLASSES))
        conf = os.path.join(d, f"confusion_{split}.png")
        r = json.loads(run(EVAL, "--checkpoint", ckpt, "--data", data, "--split", split, "--json", "--batch-size",
                           "4", "--workers", "1", "--threads", "1", "--confusion", conf).stdout)
        check(r["samples"] == len(files) and r["split"] == split and r["checkpoint"] == ckpt, r)
        check(abs(r["top1"] - (pred == labels).mean()) < 1e-6, f"top1 {r['top1']} vs {(pred == labels).mean()}")
        check(r["top5"] == 1.0 and k5 == 3, r)  # 3 classes: every label is among the 5 best
        check(abs(r["loss"] - loss) < 1e-5, f"loss {r['loss']} vs {loss}")
        for c, pc in enumerate(r["per_class"]):
            check(pc["class"] == CLASSES[c] and pc["count"] == per, pc)
            check(abs(pc["accuracy"] - (pred[labels == c] == c).mean()) < 1e-6, pc)
        im = Image.open(conf)
        im.load()
        check(im.size == (72, 72) and im.mode == "L", f"{conf}: {im.size} {im.mode}")
        a = np.asarray(im)
        for t in range(3):
            for q in range(3):
                frac = ((labels == t) & (pred == q)).sum() / per
                check(abs(int(a[t * 24 + 12, q * 24 + 12]) - round(255 * (1 - frac))) <= 1, f"confusion cell {t},{q}")
    # --limit and the text form
    p = run(EVAL, "--checkpoint", ckpt, "--data", data, "--limit", "7", "--batch-size", "4", "--workers", "1")
    check("7 images" in p.stdout and "top-1" in p.stdout and CLASSES[2] in p.stdout, p.stdout)


def test_loader_workers0_partial_batch(d):
    """vit-eval --workers 0 with a last partial batch after more than --prefetch (2) batches: every sample is
    counted once. Fails while libvit's loader reuses a stale slot count when decoding in the caller's thread."""
    data = make_folder(os.path.join(d, "data"), 2, 5)  # 15 validation images: batches of 4, 4, 4, 3
    out = os.path.join(d, "run")
    run(TRAIN, *train_args(data, out, "--batch-size", "2", epochs=1))
    r = json.loads(run(EVAL, "--checkpoint", os.path.join(out, "last.safetensors"), "--data", data, "--json",
                       "--batch-size", "4", "--workers", "0").stdout)
    check(r["samples"] == 15 and [c["count"] for c in r["per_class"]] == [5, 5, 5], r)


# ---------------------------------------------------------- hostile inputs
# What a crash leaves on stderr, as opposed to an error message.
CRASH_SIGNS = ("Traceback", "Segmentation", "AddressSanitizer", "LeakSanitizer", "runtime error:", "core dumped",
               "Aborted", "double free", "stack smashing", "terminate called")
INT64_MAX = (1 << 63) - 1


def shown(a):
    return os.fsdecode(a) if isinstance(a, bytes) else str(a)


def hostile(count, exe, *args, rc, names, lines=1):
    """Runs exe on a hostile input and checks that it fails cleanly: exit status rc (2 for a bad command line or
    value, 1 for a file or data that cannot be used), nothing on stdout, and `lines` lines on stderr (None: any
    number, for a failure after the run started) of which the last starts with the program's name and contains
    each of `names`. Arguments may be bytes (file names that are not UTF-8). count[0] counts the invocations."""
    count[0] += 1
    argv = [exe, *(a if isinstance(a, bytes) else str(a) for a in args)]
    p = subprocess.run(argv, capture_output=True, timeout=120)
    err = p.stderr.decode("utf-8", "surrogateescape")
    what = ascii(f"{os.path.basename(exe)} {' '.join(shown(a) for a in args)}")
    check(p.returncode >= 0, f"{what}: killed by signal {-p.returncode}\n{err}")
    for sign in CRASH_SIGNS:
        check(sign not in err, f"{what}: {sign}\n{err}")
    check(p.returncode == rc, f"{what}: exit {p.returncode}, expected {rc}\n{err}")
    check(p.stdout == b"", f"{what}: stdout {p.stdout[:300]!r}")
    err_lines = err.splitlines()
    check(err_lines and (lines is None or len(err_lines) == lines),
          f"{what}: {len(err_lines)} lines on stderr, expected {lines}:\n{err}")
    last = err_lines[-1]
    check(last.startswith(os.path.basename(exe) + ": "), f"{what}: {last!r}")
    for name in names:
        check(shown(name) in last, f"{what}: the message does not name {shown(name)!r}: {last!r}")
    return last


def refused_values(kind, lo, hi):
    """Values a numeric flag of range [lo, hi] must refuse: not numbers, not finite, out of range."""
    values = ["", "abc", "12abc", "nan", "inf", "-inf", "1e999", "-1", "99999999999999999999"]
    if kind == "int":
        values += ["1.5", "1e3", "0x10", "5 ", "-99999999999999999999", str(lo - 1)]
        if hi < INT64_MAX:
            values.append(str(hi + 1))
    else:
        values += ["-1e999", "0" if lo > 0 else "-1e-9", f"{hi * 2:g}"]
    return list(dict.fromkeys(values))


# Each program's numeric flags with their accepted ranges (the flags' help and docs/programs.md).
NUMERIC_FLAGS = {
    "train": [("--img-size", "int", 1, 8192), ("--patch-size", "int", 1, 1024), ("--in-channels", "int", 1, 3),
              ("--dim", "int", 1, 65536), ("--depth", "int", 1, 1024), ("--heads", "int", 1, 1024),
              ("--epochs", "int", 1, 1000000), ("--batch-size", "int", 1, 65536), ("--workers", "int", 0, 256),
              ("--warmup-epochs", "int", 0, 1000000), ("--seed", "int", 0, INT64_MAX), ("--threads", "int", 0, 4096),
              ("--steps-per-epoch", "int", 0, INT64_MAX), ("--val-batches", "int", 0, INT64_MAX),
              ("--shift", "int", 1, 8192), ("--mlp-ratio", "real", 1e-3, 64), ("--drop", "real", 0, 0.999),
              ("--attn-drop", "real", 0, 0.999), ("--drop-path", "real", 0, 0.999), ("--lr", "real", 0, 10),
              ("--weight-decay", "real", 0, 10), ("--label-smoothing", "real", 0, 0.999),
              ("--clip-grad", "real", 0, 1e9), ("--ln-eps", "real", 1e-12, 0.5), ("--crop-scale", "real", 1e-3, 1)],
    "predict": [("--top-k", "int", 1, 1000000), ("--threads", "int", 0, 4096)],
    "eval": [("--batch-size", "int", 1, 65536), ("--workers", "int", 0, 256), ("--threads", "int", 0, 4096),
             ("--limit", "int", 0, INT64_MAX)],
    "data": [("--count", "int", 1, 1024), ("--cols", "int", 1, 256), ("--size", "int", 8, 1024),
             ("--seed", "int", 0, INT64_MAX), ("--index", "int", 0, INT64_MAX)],
    "bench": [("--threads", "int", 1, 4096), ("--steps", "int", 1, 100000), ("--warmup", "int", 0, 100000)],
    "export": [("--opset", "int", 17, 21), ("--batch", "int", 1, 2147483647)],
}
# --mean / --std: one finite value per channel or one for all; a std is > 0.
REFUSED_STATS = ["", "abc", "0.5,abc", "nan", "inf", "-inf", "1e999", "0.5,,0.5", "0.5,0.5,0.5,0.5", "0.5;0.5",
                 "0.5,", ",0.5", "0.5 0.5", "0x10", "1e", "."]
REFUSED_STD = ["0", "-1", "0.5,0,0.5", "-0", "1e-999"]


def test_hostile_numbers(d):
    """Every numeric flag of the six programs given values it must refuse (empty, not a number, trailing
    garbage, NaN, infinities, out of range, huge, missing): exit 2 and one line naming the flag, before any file
    is read (the files named are missing, so reading one would fail otherwise); then the configuration
    checks of vit-train, also made before the data is read or --out is created."""
    count = [0]
    missing = os.path.join(d, "missing")
    ckpt, img = os.path.join(d, "missing.safetensors"), os.path.join(d, "missing.png")
    grid = os.path.join(d, "grid.png")
    base = {"train": (TRAIN, ["--data", missing, "--out", os.path.join(d, "out")]),
            "predict": (PREDICT, ["--checkpoint", ckpt, img]),
            "eval": (EVAL, ["--checkpoint", ckpt, "--data", missing]),
            "data": (DATA, ["preview", "--data", missing, "--out", grid]),
            "bench": (BENCH, ["--workload", "fmnist-train"]),
            "export": (EXPORT, ["--onnx", os.path.join(d, "x.onnx"), "--checkpoint", ckpt])}
    for prog, flags in NUMERIC_FLAGS.items():
        exe, args = base[prog]
        for flag, kind, lo, hi in flags:
            for value in refused_values(kind, lo, hi):
                hostile(count, exe, *args, flag, value, rc=2, names=[flag])
            hostile(count, exe, *args, f"{flag}=", rc=2, names=[flag])
            hostile(count, exe, *args, flag, rc=2, names=[f"{flag} needs a value"])
    for exe, args in ((PREDICT, base["predict"][1]), (EVAL, base["eval"][1])):
        for value in REFUSED_STATS:
            hostile(count, exe, *args, "--mean", value, "--std", "0.5", rc=2, names=["--mean"])
        for value in REFUSED_STATS + REFUSED_STD:
            hostile(count, exe, *args, "--mean", "0.5", "--std", value, rc=2, names=["--std"])
        hostile(count, exe, *args, "--mean", "0.5", rc=2, names=["--mean and --std go together"])
    # model flags that are each in range but do not make a model together
    out = os.path.join(d, "never")
    for args, names in ((["--img-size", "30", "--patch-size", "4"], ["--img-size 30", "--patch-size 4"]),
                        (["--dim", "12", "--heads", "5"], ["--heads 5", "--dim 12"]),
                        (["--dim", "12", "--heads", "2", "--mlp-ratio", "0.01"], ["--mlp-ratio"]),
                        (["--img-size", "8192", "--patch-size", "1"], ["tokens"]),
                        (["--model", "vit_gigantic_patch16_224"], ["--model", "vit_tiny_patch16_224"]),
                        (["--model", "vit_tiny_patch16_224", "--img-size", "30"], ["--img-size 30", "--patch-size 16"]),
                        (["--img-size", "8", "--patch-size", "4", "--augment", "shift+flip", "--shift", "9"],
                         ["--shift 9"]),
                        (["--in-channels", "2"], ["--in-channels"]),
                        (["--format", "tiff"], ["--format"]),
                        (["--augment", "crop+flip", "--crop-scale", "1.5"], ["--crop-scale"])):
        hostile(count, TRAIN, "--data", missing, "--out", out, *args, rc=2, names=names)
        check(not os.path.exists(out), f"vit-train {args} created --out")
    # the same on real data: refused at once, the data unread
    idx = make_idx(os.path.join(d, "idx"))
    hostile(count, TRAIN, "--data", idx, "--out", out, "--img-size", "30", "--patch-size", "4", rc=2,
            names=["--img-size 30 is not a multiple of --patch-size 4"])
    check(not os.path.exists(out), "vit-train --img-size 30 --patch-size 4 created --out")
    # missing or unknown arguments name what is missing
    for exe, args, names in ((DATA, [], ["no command"]), (DATA, ["info"], ["--data is required"]),
                             (DATA, ["frobnicate", "--data", idx], ["unknown command 'frobnicate'"]),
                             (DATA, ["preview", "--data", idx], ["--out is required"]),
                             (DATA, ["export", "--data", idx, "--index", "0"], ["--out is required"]),
                             (DATA, ["info", "--data", idx, "--bogus"], ["--bogus"]),
                             (DATA, ["info", "--data", idx, "--format", "tiff"], ["--format", "tiff"]),
                             (DATA, ["info", "--data", idx, "--split", "test"], ["--split"]),
                             (BENCH, [], ["--workload is required"]), (BENCH, ["--workload", "nope"], ["nope"]),
                             (BENCH, ["--workload", "fmnist-train", "--bogus"], ["--bogus"]),
                             (PREDICT, ["--checkpoint", ckpt], ["no IMAGE"]), (PREDICT, [img], ["--checkpoint"]),
                             (EVAL, ["--data", idx], ["--checkpoint"]), (EVAL, ["--checkpoint", ckpt], ["--data"]),
                             (EVAL, ["--checkpoint", ckpt, "--data", idx, "--split", "test"], ["--split"]),
                             (TRAIN, ["--epochs", "1"], ["--data is required"]),
                             (EXPORT, ["--checkpoint", ckpt], ["--onnx is required"]),
                             (EXPORT, ["--onnx", os.path.join(d, "x.onnx")], ["--checkpoint is required"]),
                             (EXPORT, ["--onnx", os.path.join(d, "x.onnx"), "--checkpoint", ckpt, "--bogus"],
                              ["--bogus"])):
        hostile(count, exe, *args, rc=2, names=names)
    print(f"hostile invocations: {count[0]}")


def sparse_file(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def png_claiming(path, width, height):
    """A PNG whose header claims width x height pixels, with one tiny IDAT: a decompression bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_hostile_files(d):
    """Each file argument of vit-predict, vit-eval, vit-train, vit-data and vit-export given a missing, empty,
    truncated, oversized or wrong-format file, a special file, a folder, a file where a folder is expected, and
    names that are not UTF-8: exit 1 and one line naming the file, nothing on stdout. A good file under a name that is not
    UTF-8 works, and the JSON naming it stays valid UTF-8."""
    count = [0]
    data = make_folder(os.path.join(d, "data"), 4, 2)
    out = os.path.join(d, "run")
    run(TRAIN, *train_args(data, out, epochs=1))
    ckpt = os.path.join(out, "last.safetensors")
    good_png = os.path.join(d, "good.png")
    Image.fromarray(pattern(0, np.random.default_rng(0))).save(good_png)
    bad = os.path.join(d, "bad")
    os.makedirs(bad)

    def put(name, blob):
        path = os.path.join(bad, name) if isinstance(name, str) else os.fsencode(bad) + b"/" + name
        with open(path, "wb") as f:
            f.write(blob)
        return path

    with open(ckpt, "rb") as f:
        ckpt_blob = f.read()
    with open(good_png, "rb") as f:
        png_blob = f.read()
    skimage_jpg = "/usr/lib/python3/dist-packages/skimage/data/truncated.jpg"
    if os.path.exists(skimage_jpg):
        with open(skimage_jpg, "rb") as f:
            jpg_blob = f.read()
    else:
        import io
        buf = io.BytesIO()
        Image.fromarray(pattern(1, np.random.default_rng(1))).resize((64, 64)).save(buf, "JPEG", quality=90)
        jpg_blob = buf.getvalue()[:400]
    a_folder = os.path.join(bad, "a_folder.safetensors")
    os.makedirs(a_folder)
    common = {"missing": os.path.join(bad, "missing"), "empty": put("empty", b""),
              "text": put("text", b"this is not what you are looking for\n" * 4),
              "sparse 3 GiB": sparse_file(os.path.join(bad, "sparse"), 3 << 30),
              "folder": a_folder, "special file": "/dev/null",
              "not UTF-8, missing": os.fsencode(bad) + b"/\xff\xfe-missing",
              "not UTF-8, truncated": put(b"\xff\xfe-truncated", png_blob[:len(png_blob) // 2])}
    checkpoints = dict(common, **{
        "truncated": put("truncated.safetensors", ckpt_blob[:len(ckpt_blob) // 2]),
        "a PNG": put("image.safetensors", png_blob),
        "an optimizer file": os.path.join(out, "last.optim.safetensors"),
        "huge header": put("huge_header.safetensors", struct.pack("<Q", 1 << 40) + ckpt_blob[8:])})
    images = dict(common, **{
        "truncated PNG": put("truncated.png", png_blob[:len(png_blob) // 2]),
        "truncated JPEG": put("truncated.jpg", jpg_blob),
        "a checkpoint": put("model.png", ckpt_blob),
        "100000 x 100000 PNG": png_claiming(os.path.join(bad, "bomb.png"), 100000, 100000)})
    idx = make_idx(os.path.join(d, "idx"))
    datasets = {"missing": os.path.join(bad, "missing_data"), "empty file": common["empty"],
                "a PNG": images["truncated PNG"], "empty folder": os.path.join(bad, "empty_folder"),
                "special file": "/dev/null", "not UTF-8, missing": os.fsencode(bad) + b"/\xff\xfe-data"}
    os.makedirs(datasets["empty folder"])
    for kind, cut in (("truncated IDX", lambda b: b[:len(b) // 2]), ("empty IDX", lambda b: b""),
                      ("text IDX", lambda b: b"not IDX\n")):
        root = os.path.join(bad, kind.replace(" ", "_"))
        os.makedirs(root)
        for name in os.listdir(idx):
            with open(os.path.join(idx, name), "rb") as f:
                blob = f.read()
            with open(os.path.join(root, name), "wb") as f:
                f.write(cut(blob) if "images" in name else blob)
        datasets[kind] = root
    outputs = {"folder": a_folder, "missing folder": os.path.join(bad, "no_such_folder", "x.png"),
               "under a file": os.path.join(common["empty"], "x.png"),
               "not UTF-8, missing folder": os.fsencode(bad) + b"/\xff\xfe-dir/x.png"}

    for kind, path in checkpoints.items():
        for exe, args in ((PREDICT, ["--checkpoint", path, good_png]),
                          (EVAL, ["--checkpoint", path, "--data", data, "--workers", "1"]),
                          (TRAIN, train_args(data, os.path.join(d, "r"), "--resume", path)),
                          (TRAIN, train_args(data, os.path.join(d, "r"), "--pretrained", path)),
                          (EXPORT, ["--onnx", os.path.join(d, "x.onnx"), "--checkpoint", path])):
            hostile(count, exe, *args, rc=1, names=[path])
    for kind, path in images.items():
        hostile(count, PREDICT, "--checkpoint", ckpt, path, rc=1, names=[path])
        hostile(count, PREDICT, "--checkpoint", ckpt, "--json", path, rc=1, names=[path])
    for kind, path in datasets.items():
        for exe, args in ((EVAL, ["--checkpoint", ckpt, "--data", path]),
                          (TRAIN, train_args(path, os.path.join(d, "r"))),
                          (DATA, ["info", "--data", path]),
                          (DATA, ["preview", "--data", path, "--out", os.path.join(d, "grid.png")]),
                          (DATA, ["export", "--data", path, "--out", os.path.join(d, "x.png")])):
            hostile(count, exe, *args, rc=1, names=[path])
    # an unreadable image inside a dataset: named by every program that decodes it
    broken = make_folder(os.path.join(d, "broken"), 4, 2)
    victim = os.path.join(broken, "val", CLASSES[0], "001.png")
    with open(victim, "wb") as f:
        f.write(jpg_blob)
    hostile(count, EVAL, "--checkpoint", ckpt, "--data", broken, "--workers", "2", rc=1, names=[victim])
    hostile(count, DATA, "export", "--data", broken, "--split", "val", "--index", "1", "--out",
            os.path.join(d, "x.png"), rc=1, names=[victim])
    hostile(count, DATA, "preview", "--data", broken, "--split", "val", "--out", os.path.join(d, "x.png"), rc=1,
            names=[victim])
    # training reads the validation split after the first epoch, so its startup line comes first
    hostile(count, TRAIN, *train_args(broken, os.path.join(d, "r"), epochs=1), rc=1, names=[victim], lines=None)
    hostile(count, DATA, "export", "--data", data, "--index", "1000", "--out", os.path.join(d, "x.png"), rc=1,
            names=["1000"])
    for kind, path in outputs.items():
        hostile(count, EVAL, "--checkpoint", ckpt, "--data", data, "--confusion", path, rc=1,
                names=["--confusion", path])
        hostile(count, DATA, "preview", "--data", data, "--out", path, rc=1, names=["--out", path])
        hostile(count, DATA, "export", "--data", data, "--out", path, rc=1, names=["--out", path])
        hostile(count, EXPORT, "--onnx", path, "--checkpoint", ckpt, rc=1, names=["--onnx", path])
    for path in (common["empty"], outputs["missing folder"], outputs["not UTF-8, missing folder"]):
        hostile(count, TRAIN, *train_args(data, path), rc=1, names=["--out", path])
    # the run's state that --resume reads is metadata too: each key with values it must refuse
    t, ometa = read_safetensors(os.path.join(out, "last.optim.safetensors"))
    tm, mmeta = read_safetensors(ckpt)
    state = os.path.join(d, "state")
    for key in ("train.epochs_done", "train.best_acc", "train.rng", "train.seed", "train.step", "train.partial",
                "train.history", "train.optim_step"):
        for value in ("abc", "", "-1", "1x", "nan", "99999999999999999999"):
            os.makedirs(state, exist_ok=True)
            if key == "train.optim_step":
                write_safetensors(os.path.join(state, "last.safetensors"), tm.items(), {**mmeta, key: value})
                write_safetensors(os.path.join(state, "last.optim.safetensors"), t.items(), ometa)
            else:
                write_safetensors(os.path.join(state, "last.safetensors"), tm.items(), mmeta)
                write_safetensors(os.path.join(state, "last.optim.safetensors"), t.items(), {**ometa, key: value})
            hostile(count, TRAIN, *train_args(data, state, "--resume", os.path.join(state, "last.safetensors")), rc=1,
                    names=[f'"{key}"'])
    print(f"hostile invocations: {count[0]}")

    # A good image and a good checkpoint under names that are not UTF-8 work; the JSON stays UTF-8.
    odd_png = os.fsencode(d) + b"/\xff\xfe \xe9.png"
    odd_ckpt = os.fsencode(d) + b"/\xff.safetensors"
    with open(odd_png, "wb") as f:
        f.write(png_blob)
    with open(odd_ckpt, "wb") as f:
        f.write(ckpt_blob)
    p = subprocess.run([PREDICT, "--checkpoint", odd_ckpt, "--json", odd_png, good_png], capture_output=True,
                       timeout=120)
    check(p.returncode == 0 and p.stderr == b"", p.stderr)
    results = [json.loads(line) for line in p.stdout.decode("utf-8").splitlines()]
    check([r["image"] for r in results] == [os.path.join(d, "\ufffd\ufffd \ufffd.png"), good_png], results)
    check(results[0]["top"] == results[1]["top"], results)
    p = subprocess.run([EVAL, "--checkpoint", odd_ckpt, "--data", data, "--json", "--workers", "1"],
                       capture_output=True, timeout=120)
    check(p.returncode == 0, p.stderr)
    r = json.loads(p.stdout.decode("utf-8"))
    check(r["checkpoint"] == os.path.join(d, "\ufffd.safetensors"), r)


def test_normalization_metadata(d):
    """A checkpoint's mean/std: one value per channel or one for all, as vit-train writes them for gray and
    colour models; vit-eval and vit-predict apply them as training did. Anything else (a wrong count, garbage,
    non-finite, std <= 0, one key without the other) is an error naming the checkpoint and the key, exit 1;
    --mean/--std override it under the same rule, a wrong count for the model being exit 2. class_names that
    are not an array of one string per class are refused the same way."""
    idx = make_idx(os.path.join(d, "idx"))
    png = os.path.join(d, "digit.png")
    Image.fromarray(pattern(1, np.random.default_rng(5))[..., 0]).save(png)
    gray = {}
    for norm, mean, std in (("imagenet", "0.449", "0.226"), ("half", "0.5", "0.5"), ("none", "0", "1")):
        out = os.path.join(d, f"gray_{norm}")
        p = run(TRAIN, "--data", idx, "--out", out, "--epochs", "1", "--batch-size", "4", "--normalize", norm,
                "--lr", "3e-3", "--augment", "none", "--json", *TINY)
        row = json_lines(p.stdout)[0]
        ckpt = os.path.join(out, "last.safetensors")
        _, meta = read_safetensors(ckpt)
        check(meta["mean"] == mean and meta["std"] == std and meta["vit.in_channels"] == "1", meta)
        # vit-eval sees the validation split exactly as training did (the gray ImageNet statistics included)
        r = json.loads(run(EVAL, "--checkpoint", ckpt, "--data", idx, "--json", "--batch-size", "4",
                           "--workers", "1", "--threads", "1").stdout)
        check(abs(r["loss"] - row["val_loss"]) < 2e-6 and abs(r["top1"] - row["val_acc"]) < 1e-6,
              f"{norm}: vit-eval {r['loss']} {r['top1']}, training {row['val_loss']} {row['val_acc']}")
        gray[norm] = (ckpt, r)
    ckpt, want = gray["half"]

    def variant(src, name, **changes):
        """src with its metadata changed: a key set to None is left out."""
        t, meta = read_safetensors(src)
        meta = {k: v for k, v in {**meta, **changes}.items() if v is not None}
        path = os.path.join(d, name + ".safetensors")
        write_safetensors(path, t.items(), meta)
        return path

    def predict(path, *extra, rc=0):
        return run(PREDICT, "--checkpoint", path, "--json", "--top-k", "10", *extra, png, rc=rc)

    expected = predict(ckpt).stdout
    # one value for all channels, here the only one, written or given as a flag
    for path, extra in ((ckpt, ["--mean", "0.5", "--std", "0.5"]),
                        (variant(ckpt, "spaced", mean=" 0.5 ", std="5e-1"), []),
                        (variant(ckpt, "override", mean="abc", std="0"), ["--mean", "0.5", "--std=0.5"])):
        check(predict(path, *extra).stdout == expected, f"{path} {extra}")
        r = json.loads(run(EVAL, "--checkpoint", path, "--data", idx, "--json", "--batch-size", "4", "--workers", "1",
                           "--threads", "1", *extra).stdout)
        check(r["loss"] == want["loss"] and r["top1"] == want["top1"], (r, want))
    # a wrong count, garbage, non-finite, std <= 0, one key alone: refused, naming the file and the key
    for name, changes, key in (("three", dict(mean="0.5,0.5,0.5", std="0.5,0.5,0.5"), "mean"),
                               ("two", dict(mean="0.5", std="0.5,0.5"), "std"),
                               ("garbage", dict(mean="abc", std="abc"), "mean"),
                               ("empty", dict(mean="", std="0.5"), "mean"),
                               ("json", dict(mean="[0.5]", std="[0.5]"), "mean"),
                               ("nan", dict(mean="nan", std="0.5"), "mean"),
                               ("inf", dict(mean="0.5", std="inf"), "std"),
                               ("zero", dict(mean="0.5", std="0"), "std"),
                               ("negative", dict(mean="0.5", std="-0.5"), "std"),
                               ("newline", dict(mean="0.5\nx", std="0.5"), "mean"),
                               ("no_std", dict(std=None), "std"),
                               ("no_mean", dict(mean=None), "mean")):
        path = variant(ckpt, name, **changes)
        for exe, args in ((PREDICT, ["--checkpoint", path, png]),
                          (EVAL, ["--checkpoint", path, "--data", idx, "--workers", "1"])):
            p = run(exe, *args, rc=1)
            err = p.stderr.splitlines()
            check(len(err) == 1 and path in err[0] and f'"{key}"' in err[0] and p.stdout == "",
                  f"{name}: {p.stderr!r}")
    # no mean/std at all: no normalization (pixels / 255), as the "none" model was trained
    ckpt_none, want_none = gray["none"]
    bare = variant(ckpt_none, "bare", mean=None, std=None)
    r = json.loads(run(EVAL, "--checkpoint", bare, "--data", idx, "--json", "--batch-size", "4", "--workers", "1",
                       "--threads", "1").stdout)
    check(r["loss"] == want_none["loss"], (r, want_none))
    # flags: a count that fits no channel count of the model is a bad command line
    for flag_args, flag in ((["--mean", "0.5,0.5,0.5", "--std", "0.5"], "--mean"),
                            (["--mean", "0.5", "--std", "0.5,0.5"], "--std")):
        for exe, args in ((PREDICT, ["--checkpoint", ckpt_none, png]),
                          (EVAL, ["--checkpoint", ckpt_none, "--data", idx, "--workers", "1"])):
            p = run(exe, *args, *flag_args, rc=2)
            check(flag in p.stderr and "1-channel" in p.stderr and p.stdout == "", p.stderr)
    # a colour model: three values (vit-train's) or one for all give the same answers
    data = make_folder(os.path.join(d, "data"), 4, 2)
    out = os.path.join(d, "rgb")
    run(TRAIN, *train_args(data, out, "--normalize", "half", epochs=1))
    rgb = os.path.join(out, "last.safetensors")
    _, meta = read_safetensors(rgb)
    check(meta["mean"] == "0.5,0.5,0.5" and meta["std"] == "0.5,0.5,0.5", meta)
    img = os.path.join(data, "val", CLASSES[1], "000.png")
    three = run(PREDICT, "--checkpoint", rgb, "--json", "--top-k", "3", img).stdout
    one = run(PREDICT, "--checkpoint", variant(rgb, "rgb_one", mean="0.5", std="0.5"), "--json", "--top-k", "3",
              img).stdout
    check(one == three, (one, three))
    p = run(PREDICT, "--checkpoint", variant(rgb, "rgb_two", mean="0.5,0.5", std="0.5"), img, rc=1)
    check('"mean": 2 values for a 3-channel model' in p.stderr, p.stderr)
    # class_names: one string per class, or absent (class_<i>)
    for name, value in (("names_short", '["a", "b"]'), ("names_long", '["a", "b", "c", "d"]'),
                        ("names_garbage", "abc"), ("names_numbers", "[1, 2, 3]"), ("names_trailing", '["a","b","c"] x'),
                        ("names_comma", '["a","b",]')):
        p = run(PREDICT, "--checkpoint", variant(rgb, name, class_names=value), img, rc=1)
        check('"class_names"' in p.stderr and p.stdout == "", p.stderr)
    escaped = variant(rgb, "names_escaped", class_names='["a\\u00e9\\ud83d\\ude00", "b\\"q", "c"]')
    p = run(PREDICT, "--checkpoint", escaped, "--json", "--top-k", "3", img)
    check(sorted(x["class"] for x in json_lines(p.stdout)[0]["top"]) == ["a\u00e9\U0001F600", 'b"q', "c"], p.stdout)


TESTS = {name[5:]: fn for name, fn in globals().items() if name.startswith("test_")}


def main():
    global TRAIN, PREDICT, EVAL, DATA, BENCH, EXPORT
    name, TRAIN, PREDICT, EVAL, so = sys.argv[1:2] + [os.path.abspath(p) for p in sys.argv[2:6]]
    DATA, BENCH, EXPORT = ([os.path.abspath(p) for p in sys.argv[6:9]] + [None, None, None])[:3]
    os.environ["VIT_LIBRARY"] = so
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix=f"vit-{name}-") as d:
        TESTS[name](d)
    print(f"{name}: ok")


if __name__ == "__main__":
    main()
