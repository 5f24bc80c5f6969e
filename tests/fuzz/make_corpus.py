#!/usr/bin/python3
"""Writes the seed corpus of every fuzz target into tests/fuzz/corpus/<target>/.

    tests/fuzz/make_corpus.py [OUT_DIR]     (default: corpus/ beside this script)

Each seed is small (a few bytes to a few KB) and valid, or nearly so: the
fuzzer mutates from there, so every feature a reader supports should appear
in at least one seed. The output is deterministic (no timestamps, fixed
values), so rerunning it changes nothing unless this script changed.
Multi-file inputs join their files with the separator of tests/fuzz/fuzz.h.
"""
import gzip
import io
import json
import os
import pickle
import shutil
import struct
import sys
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "data"))
import gen_fixtures as fx  # noqa: E402  (the CIFAR-10 Python 2 pickler and pixel formulas)

SEP = b"#VITPART#"


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------------------ PNG
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def adam7_passes(w, h):
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)):
        xs, ys = list(range(x0, w, dx)), list(range(y0, h, dy))
        if xs and ys:
            yield xs, ys


def png(w, h, color, depth, samples, interlace=0, extra=b"", filt=0):
    """samples[y][x] is a tuple of channel values; rows packed MSB first."""
    def row_bytes(vals):
        if depth >= 8:
            fmt = ">" + ("B" if depth == 8 else "H") * len(vals)
            return struct.pack(fmt, *vals)
        out, acc, bits = bytearray(), 0, 0
        for v in vals:
            acc = (acc << depth) | v
            bits += depth
            if bits == 8:
                out.append(acc)
                acc, bits = 0, 0
        if bits:
            out.append(acc << (8 - bits))
        return bytes(out)

    raw = bytearray()
    passes = adam7_passes(w, h) if interlace else [(list(range(w)), list(range(h)))]
    for xs, ys in passes:
        for y in ys:
            vals = [c for x in xs for c in samples[y][x]]
            raw += bytes([filt]) + row_bytes(vals)  # filter 0, or 1 (Sub) on constant-free data is still valid
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) +
            chunk(b"IEND", b""))


def make_png(out):
    w, h = 7, 5
    for depth in (1, 2, 4, 8, 16):
        m = (1 << depth) - 1
        s = [[((x * 3 + y * 5) % (m + 1),) for x in range(w)] for y in range(h)]
        write(out, "png", "gray%d.png" % depth, png(w, h, 0, depth, s))
    for depth in (8, 16):
        m = (1 << depth) - 1
        rgb = [[((x * 40) % m, (y * 60) % m, (x * y * 9) % m) for x in range(w)] for y in range(h)]
        write(out, "png", "rgb%d.png" % depth, png(w, h, 2, depth, rgb))
        write(out, "png", "rgba%d.png" % depth, png(w, h, 6, depth, [[p + (m - p[0],) for p in r] for r in rgb]))
        write(out, "png", "graya%d.png" % depth, png(w, h, 4, depth, [[(p[0], p[1]) for p in r] for r in rgb]))
    for depth in (1, 2, 4, 8):
        n = min(1 << depth, 6)
        plte = chunk(b"PLTE", bytes(v for i in range(n) for v in (i * 40, 255 - i * 40, i * 13)))
        trns = chunk(b"tRNS", bytes(range(0, 255, 255 // n))[:n])
        s = [[((x + y) % n,) for x in range(w)] for y in range(h)]
        write(out, "png", "palette%d.png" % depth, png(w, h, 3, depth, s, extra=plte + trns))
    s = [[((x * 31 + y * 17) % 256,) for x in range(11)] for y in range(9)]
    write(out, "png", "gray8_interlaced.png", png(11, 9, 0, 8, s, interlace=1))
    rgb = [[((x * 20) % 256, (y * 30) % 256, 99) for x in range(10)] for y in range(10)]
    write(out, "png", "rgb8_interlaced.png", png(10, 10, 2, 8, rgb, interlace=1))
    write(out, "png", "rgb8_sub_filter.png", png(w, h, 2, 8, [[(1, 2, 3)] * w] * h, filt=1))
    gama = chunk(b"gAMA", struct.pack(">I", 45455)) + chunk(b"tEXt", b"Comment\x00fuzz seed")
    write(out, "png", "gray8_ancillary.png", png(3, 2, 0, 8, [[(9,), (99,), (199,)]] * 2, extra=gama))
    # What Pillow writes, with its adaptive filters.
    arr = fx.pixels(0, 1, 3, 12, 9)[0].transpose(1, 2, 0)
    b = io.BytesIO()
    Image.fromarray(arr, "RGB").save(b, "PNG", optimize=True)
    write(out, "png", "pillow_rgb.png", b.getvalue())
    # Cut after the image data (accepted) and inside it (refused).
    full = png(w, h, 0, 8, [[((x + y) % 256,) for x in range(w)] for y in range(h)])
    write(out, "png", "no_iend.png", full[:-12])
    write(out, "png", "truncated.png", full[:50])


# ----------------------------------------------------------------------- JPEG
def make_jpeg(out):
    def save(name, im, **kw):
        b = io.BytesIO()
        im.save(b, "JPEG", **kw)
        write(out, "jpeg", name, b.getvalue())

    rgb = Image.fromarray(fx.pixels(0, 1, 3, 16, 16)[0].transpose(1, 2, 0), "RGB")
    big = Image.fromarray(fx.pixels(3, 1, 3, 40, 36)[0].transpose(1, 2, 0), "RGB")
    save("gray.jpg", rgb.convert("L"), quality=50)
    save("rgb420.jpg", rgb, quality=50, subsampling=2)
    save("rgb422.jpg", rgb, quality=50, subsampling=1)
    save("rgb444.jpg", rgb, quality=50, subsampling=0)
    save("progressive.jpg", rgb, quality=40, progressive=True)
    save("optimized.jpg", rgb.resize((13, 7)), quality=40, optimize=True)
    save("cmyk.jpg", rgb.convert("CMYK"), quality=40)
    save("scalable.jpg", big, quality=30)  # 40 x 36: decodes at 1/8 for a 2-pixel target
    save("gray_progressive.jpg", big.convert("L"), quality=30, progressive=True)
    b = io.BytesIO()
    rgb.save(b, "JPEG", quality=50)
    write(out, "jpeg", "truncated.jpg", b.getvalue()[: len(b.getvalue()) * 2 // 3])


# ------------------------------------------------------------------------ IDX
def make_idx(out):
    img = fx.pixels(0, 3, 1, 4, 5).reshape(3, 4, 5)
    lab = np.array(fx.labels(0, 3), dtype=np.uint8)
    ib, lb = fx.idx_bytes(img), fx.idx_bytes(lab)
    write(out, "idx", "plain", ib + SEP + lb)
    write(out, "idx", "gzip", gzip.compress(ib, mtime=0) + SEP + gzip.compress(lb, mtime=0))
    write(out, "idx", "gzip_labels", ib + SEP + gzip.compress(lb, mtime=0))
    one = fx.idx_bytes(fx.pixels(5, 1, 1, 28, 28).reshape(1, 28, 28))
    write(out, "idx", "mnist_one", one + SEP + fx.idx_bytes(np.array([7], dtype=np.uint8)))
    many = np.arange(12, dtype=np.uint8).reshape(12)  # labels above 9: 12 classes
    write(out, "idx", "twelve_classes", fx.idx_bytes(np.zeros((12, 1, 1), np.uint8)) + SEP + fx.idx_bytes(many))
    write(out, "idx", "count_mismatch", ib + SEP + fx.idx_bytes(lab[:2]))


# -------------------------------------------------------------------- CIFAR-10
def make_cifar(out):
    names = "\n".join(fx.CIFAR_NAMES).encode() + b"\n"
    for count in (1, 2):
        px = fx.pixels(0, count, 3, 32, 32).reshape(count, 3072)
        lab = np.array(fx.labels(0, count), dtype=np.uint8).reshape(count, 1)
        rec = np.hstack([lab, px]).tobytes()
        write(out, "cifar_bin", "batch%d_meta" % count, rec + SEP + names)
        write(out, "cifar_bin", "batch%d" % count, rec)
    write(out, "cifar_bin", "crlf_meta", rec[:3073] + SEP + names.replace(b"\n", b"\r\n") + b"\n\n")

    data, _, _ = fx.batch_dict_py2("test", 0, 1)
    write(out, "cifar_pickle", "py2", data + SEP + fx.meta_py2())
    write(out, "cifar_pickle", "py2_no_meta", fx.batch_dict_py2("test", 7, 2)[0])
    for proto in (2, 3, 4):
        key = (lambda k: k.encode()) if proto == 3 else (lambda k: k)
        px = fx.pixels(0, 1, 3, 32, 32).reshape(1, 3072)
        batch = pickle.dumps({key("batch_label"): "testing batch 1 of 1", key("labels"): fx.labels(0, 1),
                              key("data"): px, key("filenames"): ["img_000000.png"]}, protocol=proto)
        meta = pickle.dumps({key("num_cases_per_batch"): 10000, key("label_names"): fx.CIFAR_NAMES,
                             key("num_vis"): 3072}, protocol=proto)
        write(out, "cifar_pickle", "py3_proto%d" % proto, batch + SEP + meta)
    # What the unpickler must refuse, from the data tests' list.
    evil = {
        "evil_os_system": b"\x80\x02cos\nsystem\nq\x01U\x04trueq\x02\x85q\x03Rq\x04.",
        "evil_stack_global": b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.",
        "evil_newobj": b"\x80\x02cnumpy\nndarray\n)\x81.",
    }
    for name, data in evil.items():
        write(out, "cifar_pickle", name, data)


# ---------------------------------------------------------------- safetensors
DTYPES = {"BOOL": ("?", 1), "U8": ("B", 1), "I8": ("b", 1), "F8_E5M2": ("B", 1), "F8_E4M3": ("B", 1),
          "I16": ("h", 2), "U16": ("H", 2), "F16": ("e", 2), "BF16": ("H", 2), "I32": ("i", 4), "U32": ("I", 4),
          "F32": ("f", 4), "I64": ("q", 8), "U64": ("Q", 8), "F64": ("d", 8)}


def safetensors(tensors, meta=None, pad=True):
    """tensors: [(name, dtype, shape, raw bytes)] laid out in order."""
    header, data = {}, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(values):
    return np.asarray(values, dtype="<f4").tobytes()


def make_safetensors(out):
    zoo = []
    for i, (name, (code, size)) in enumerate(DTYPES.items()):
        n = 3
        if name == "BF16":
            raw = (np.arange(n, dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes()
        elif code == "?":
            raw = bytes([0, 1, 1])
        else:
            raw = struct.pack("<" + code * n, *([1.5, -2.0, 0.25] if code in "efd" else [1, 2, 3]))
        zoo.append(("t_" + name.lower(), name, (n,), raw))
    write(out, "safetensors", "dtypes.safetensors", safetensors(zoo, {"format": "pt", "note": "dtype zoo"}))
    write(out, "safetensors", "empty.safetensors", safetensors([]))
    write(out, "safetensors", "metadata_only.safetensors", safetensors([], {"k": "v\u00e9\u4e2d"}))
    write(out, "safetensors", "scalar_and_empty.safetensors",
          safetensors([("s", "F64", (), struct.pack("<d", 3.5)), ("z", "F32", (0, 4), b"")], pad=False))
    write(out, "safetensors", "matrix.safetensors",
          safetensors([("w", "F32", (2, 3), f32(np.arange(6) / 7)), ("b", "F16", (3,), np.ones(3, "<f2").tobytes())]))
    eight = safetensors([("x", "U8", (1,) * 8, b"\x07")])
    write(out, "safetensors", "eight_dims.safetensors", eight)
    # Offsets out of header order, and a name needing escapes.
    text = (b'{"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},'
            b'"a\\"\\\\\\u00e9":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}')
    write(out, "safetensors", "reordered.safetensors", struct.pack("<Q", len(text)) + text + b"\x01\x02\x03\x04")


# ----------------------------------------------------------------------- JSON
def make_json(out):
    texts = {
        "object.json": b'{"a": [1, -2.5e-3, 1E+2, 0, -0], "b": {"c": null, "d": true, "e": false}, "": ""}',
        "strings.json": b'["plain", "esc \\" \\\\ \\/ \\b \\f \\n \\r \\t", "\\u00e9\\u4e2d\\ud83d\\ude00", "\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"]',
        "numbers.json": b"[9223372036854775807, -9223372036854775808, 9223372036854775808, 1.7976931348623157e308, 5e-324, 1e999]",
        "nested.json": b"[[[[[[[[[[{}]]]]]]]]]]",
        "header.json": b'{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}',
        "scalar.json": b" 42 ",
        "empty_string.json": b'""',
    }
    for name, text in texts.items():
        write(out, "json", name, text)


# ---------------------------------------------------------------- checkpoints
# The model of fuzz_checkpoint.c: img 8, patch 4, 3 channels, 3 classes,
# width 8, depth 1, 2 heads, MLP ratio 2 (hidden 16), qkv bias, token pooling.
def vit_params(img=8, patch=4, chans=3, classes=3, dim=8, depth=1, hidden=16, qkv_bias=True, patch_norm=False,
               avg=False):
    tokens = (img // patch) ** 2 + 1
    p = [("cls_token", (1, 1, dim)), ("pos_embed", (1, tokens, dim)),
         ("patch_embed.proj.weight", (dim, chans, patch, patch)), ("patch_embed.proj.bias", (dim,))]
    if patch_norm:
        p += [("patch_embed.norm.weight", (dim,)), ("patch_embed.norm.bias", (dim,))]
    for i in range(depth):
        b = "blocks.%d." % i
        p += [(b + "norm1.weight", (dim,)), (b + "norm1.bias", (dim,)), (b + "attn.qkv.weight", (3 * dim, dim))]
        if qkv_bias:
            p += [(b + "attn.qkv.bias", (3 * dim,))]
        p += [(b + "attn.proj.weight", (dim, dim)), (b + "attn.proj.bias", (dim,)), (b + "norm2.weight", (dim,)),
              (b + "norm2.bias", (dim,)), (b + "mlp.fc1.weight", (hidden, dim)), (b + "mlp.fc1.bias", (hidden,)),
              (b + "mlp.fc2.weight", (dim, hidden)), (b + "mlp.fc2.bias", (dim,))]
    norm = "fc_norm" if avg else "norm"
    p += [(norm + ".weight", (dim,)), (norm + ".bias", (dim,)), ("head.weight", (classes, dim)), ("head.bias", (classes,))]
    return p


def values(shape, salt, dtype):
    n = int(np.prod(shape)) if shape else 1
    v = (np.sin(np.arange(n) * 0.37 + salt) * 0.1).astype(np.float32)
    if dtype == "F32":
        return v.tobytes()
    if dtype == "F16":
        return v.astype("<f2").tobytes()
    if dtype == "BF16":
        return (v.view("<u4") >> 16).astype("<u2").tobytes()
    return v.astype("<f8").tobytes()


def model_meta(img=8, patch=4, chans=3, classes=3, dim=8, depth=1, heads=2, pool="token"):
    return {"format": "pt", "libvit.version": "0.1.0", "libvit.kind": "model", "vit.img_size": str(img),
            "vit.patch_size": str(patch), "vit.in_channels": str(chans), "vit.num_classes": str(classes),
            "vit.dim": str(dim), "vit.depth": str(depth), "vit.heads": str(heads), "vit.qkv_bias": "1",
            "vit.patch_norm": "0", "vit.global_pool": pool, "vit.mlp_ratio": "2", "vit.drop_rate": "0",
            "vit.attn_drop_rate": "0", "vit.drop_path_rate": "0", "vit.ln_eps": "9.9999999999999995e-07",
            "run": "fuzz seed"}


def make_checkpoint(out):
    params = vit_params()
    t = [(n, "F32", s, values(s, i, "F32")) for i, (n, s) in enumerate(params)]
    write(out, "checkpoint", "model.safetensors", safetensors(t, model_meta()))
    t = [(n, "F16", s, values(s, i, "F16")) for i, (n, s) in enumerate(params)]
    write(out, "checkpoint", "timm_f16.safetensors", safetensors(t))
    # pos_embed on a 3 x 3 grid: resampled into the 2 x 2 model.
    t = [(n, "BF16", s, values(s, i, "BF16")) for i, (n, s) in enumerate(vit_params(img=12))]
    write(out, "checkpoint", "grid3_bf16.safetensors", safetensors(t, {"format": "pt"}))
    # Another configuration: patch norm, no qkv bias, average pooling, 2 blocks, 5 classes.
    p2 = vit_params(classes=5, depth=2, qkv_bias=False, patch_norm=True, avg=True)
    t = [(n, "F64", s, values(s, i, "F64")) for i, (n, s) in enumerate(p2)]
    meta = model_meta(classes=5, depth=2, pool="avg")
    meta.update({"vit.qkv_bias": "0", "vit.patch_norm": "1"})
    write(out, "checkpoint", "avg_depth2.safetensors", safetensors(t, meta))
    # The optimizer state of the fuzz target's model.
    t = [("%s.%s" % (kind, n), "F32", s, values(s, i + 50 * k, "F32"))
         for k, kind in enumerate(("exp_avg", "exp_avg_sq")) for i, (n, s) in enumerate(params)]
    meta = {"format": "pt", "libvit.version": "0.1.0", "libvit.kind": "optimizer", "optim.type": "adamw",
            "optim.step": "12", "optim.lr": "0.001", "optim.beta1": "0.9", "optim.beta2": "0.999",
            "optim.eps": "1e-08", "optim.weight_decay": "0.05", "optim.clip_grad_norm": "1",
            "optim.decay_exempt": "1", "epoch": "3"}
    write(out, "checkpoint", "optimizer.safetensors", safetensors(t, meta))


# ----------------------------------------------- transformers ViT checkpoints
# fuzz_hf.c's model in transformers' names: vit_params renamed, qkv split.
def hf_params(prefix="vit.", classifier=True, pooler=False, qkv_bias=True, **kw):
    top = {"cls_token": "embeddings.cls_token", "pos_embed": "embeddings.position_embeddings",
           "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
           "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
           "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
    block = {"norm1": "layernorm_before", "attn.proj": "attention.output.dense", "norm2": "layernorm_after",
             "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
    p = []
    for name, shape in vit_params(qkv_bias=qkv_bias, **kw):
        if name in top:
            p.append((prefix + top[name], shape))
        elif name.startswith("head."):
            if classifier:
                p.append(("classifier." + name[5:], shape))
        else:
            _, i, rest = name.split(".", 2)
            module, kind = rest.rsplit(".", 1)
            layer = "%sencoder.layer.%s." % (prefix, i)
            if module == "attn.qkv":
                p += [(layer + "attention.attention.%s.%s" % (w, kind), (shape[0] // 3,) + shape[1:])
                      for w in ("query", "key", "value")]
            else:
                p.append((layer + block[module] + "." + kind, shape))
    if pooler:
        p += [(prefix + "pooler.dense.weight", (8, 8)), (prefix + "pooler.dense.bias", (8,))]
    return p


def make_hf(out):
    sep = b"#VITPART#"
    config = {"model_type": "vit", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 16, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": 8,
              "patch_size": 4, "num_channels": 3, "qkv_bias": True,
              "id2label": {"0": "cat", "1": "dog", "2": "\u00e9t\u00e9"}, "label2id": {"cat": 0, "dog": 1}}
    pre = {"do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": 8}}

    def file(params, dtype="F32"):
        return safetensors([(n, dtype, s, values(s, i, dtype)) for i, (n, s) in enumerate(params)], {"format": "pt"})

    def text(obj):
        return json.dumps(obj).encode()

    write(out, "hf", "classification.bin", file(hf_params()) + sep + text(config) + sep + text(pre))
    write(out, "hf", "classification_no_config.bin", file(hf_params(), "F16"))
    no_bias = dict(config, qkv_bias=False, image_size=[8, 8], patch_size=[4, 4])
    write(out, "hf", "no_qkv_bias_bf16.bin", file(hf_params(qkv_bias=False), "BF16") + sep + text(no_bias))
    model = {k: v for k, v in config.items() if k != "id2label"}
    write(out, "hf", "vitmodel_pooler.bin", file(hf_params("", False, True)) + sep + text(model))
    write(out, "hf", "grid3_depth2.bin", file(hf_params(img=12, depth=2), "F64") + sep +
          text(dict(config, image_size=12, num_hidden_layers=2)))


# -------------------------------------------------------------- image folders
def make_folder(out):
    lists = {
        "basic.txt": "bcat/a.png\nbcat/b.jpg\nbdog/c.JPEG\nbdog/d.Png\n",
        "split_only.txt": "tcat/1.png\ntdog/2.png\nvcat/3.png\nvdog/4.jpg\n",
        "odd_names.txt": "b%s %n/x%d.png\nb\u00e9t\u00e9/\u4e2d.jpg\nb.hidden/a.png\nbx/.h.png\nbx/noext\nbx/a.b.c.jpeg\n",
        "val_extra_class.txt": "tcat/a.png\nvcat/b.png\nvbird/c.png\n",
        "empty_class.txt": "bcat/a.png\nbempty\n",
    }
    for name, text in lists.items():
        write(out, "folder", name, text.encode())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    for target in ("png", "jpeg", "idx", "cifar_bin", "cifar_pickle", "safetensors", "checkpoint", "json", "folder", "hf"):
        shutil.rmtree(os.path.join(out, target), ignore_errors=True)
    make_png(out)
    make_jpeg(out)
    make_idx(out)
    make_cifar(out)
    make_safetensors(out)
    make_json(out)
    make_checkpoint(out)
    make_folder(out)
    make_hf(out)


if __name__ == "__main__":
    main()
