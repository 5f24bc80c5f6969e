#!/usr/bin/env python3
"""Hugging Face transformers ViT checkpoints in: libvit against PyTorch.

transformers itself is not needed: each case writes a state_dict with
transformers' names (ViTForImageClassification: "vit." + embeddings / encoder
/ layernorm, "classifier"; ViTModel: no prefix, a pooler), a config.json and a
preprocessor_config.json as transformers does, and computes the reference
forward in float64 as modeling_vit.py does it (separate query / key / value,
layernorm_before / layernorm_after, exact GELU, the classifier on the class
token after the final layernorm). libvit's logits (vit_model_load through the
Python package) must agree within 1e-4, its class names must be id2label's;
vit-predict (argv[1], when given) must give PyTorch's probabilities and
names. Then the errors: a missing, an unexpected and a misshapen tensor, a
config.json that disagrees with the tensors, a broken one, an unsupported
activation, a ViTModel where a classifier is needed.

VIT_HF_PERTURB=1 writes query and key swapped in layer 0: the test must fail.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bindings", "python"))
import libvit  # noqa: E402

TOL = 1e-4
PREDICT = sys.argv[1] if len(sys.argv) > 1 else None
PERTURB = os.environ.get("VIT_HF_PERTURB") == "1"
failures = []

CASES = {
    # heads (4) not inferable from the width: config.json must give them; MLP ratio 5/3; unicode labels
    "classification": dict(kind="cls", img=32, patch=8, chans=3, dim=48, depth=2, heads=4, inter=80, classes=5,
                           qkv_bias=True, eps=1e-12, dtype=torch.float32, config=True, batch=3,
                           labels=["tench", "goldfish", "great white shark", "ümlaut \"quoted\"", "日本"]),
    # bfloat16, no qkv bias, eps 1e-6, image_size as a pair, normalisation from preprocessor_config.json
    "bf16-nobias": dict(kind="cls", img=16, patch=4, chans=3, dim=32, depth=2, heads=2, inter=64, classes=3,
                        qkv_bias=False, eps=1e-6, dtype=torch.bfloat16, config=True, batch=2,
                        labels=["a", "b", "c"], image_pair=True, mean=[0.5, 0.4, 0.3], std=[0.25, 0.5, 0.2]),
    # a ViTModel in float16 without config.json: everything inferred (width 192 -> ViT-Ti's 3 heads, eps 1e-12)
    "vitmodel-f16": dict(kind="model", img=16, patch=8, chans=3, dim=192, depth=1, heads=3, inter=384, classes=4,
                         qkv_bias=True, eps=1e-12, dtype=torch.float16, config=False, batch=2),
}


def write_safetensors(path, tensors):
    """tensors: name -> torch tensor (F32 / F16 / BF16), written as the format says."""
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def make_state(spec, seed):
    """A state_dict in transformers' layout, in float64 (rounded through spec's dtype)."""
    g = torch.Generator().manual_seed(seed)
    D, H, C, P, K = spec["dim"], spec["inter"], spec["chans"], spec["patch"], spec["classes"]
    T = (spec["img"] // P) ** 2 + 1
    pre = "vit." if spec["kind"] == "cls" else ""

    def rnd(*shape, scale=0.2, shift=0.0):
        return (shift + scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(spec["dtype"]).double()

    sd = {pre + "embeddings.cls_token": rnd(1, 1, D, scale=0.5),
          pre + "embeddings.position_embeddings": rnd(1, T, D, scale=0.5),
          pre + "embeddings.patch_embeddings.projection.weight": rnd(D, C, P, P, scale=0.1),
          pre + "embeddings.patch_embeddings.projection.bias": rnd(D, scale=0.1)}
    for i in range(spec["depth"]):
        L = f"{pre}encoder.layer.{i}."
        sd[L + "layernorm_before.weight"], sd[L + "layernorm_before.bias"] = rnd(D, shift=1.0), rnd(D, scale=0.1)
        for w in ("query", "key", "value"):
            sd[L + f"attention.attention.{w}.weight"] = rnd(D, D, scale=D ** -0.5)
            if spec["qkv_bias"]:
                sd[L + f"attention.attention.{w}.bias"] = rnd(D, scale=0.1)
        sd[L + "attention.output.dense.weight"] = rnd(D, D, scale=D ** -0.5)
        sd[L + "attention.output.dense.bias"] = rnd(D, scale=0.1)
        sd[L + "layernorm_after.weight"], sd[L + "layernorm_after.bias"] = rnd(D, shift=1.0), rnd(D, scale=0.1)
        sd[L + "intermediate.dense.weight"], sd[L + "intermediate.dense.bias"] = rnd(H, D, scale=D ** -0.5), rnd(H)
        sd[L + "output.dense.weight"], sd[L + "output.dense.bias"] = rnd(D, H, scale=H ** -0.5), rnd(D, scale=0.1)
    sd[pre + "layernorm.weight"], sd[pre + "layernorm.bias"] = rnd(D, shift=1.0), rnd(D, scale=0.1)
    if spec["kind"] == "cls":
        sd["classifier.weight"], sd["classifier.bias"] = rnd(K, D, scale=D ** -0.5), rnd(K, scale=0.1)
    else:
        sd["pooler.dense.weight"], sd["pooler.dense.bias"] = rnd(D, D), rnd(D)
    return sd


def hf_sequence(sd, spec, x):
    """ViTModel's last_hidden_state (after the final layernorm), as modeling_vit.py computes it."""
    pre = "vit." if spec["kind"] == "cls" else ""
    D, heads, eps = spec["dim"], spec["heads"], spec["eps"]
    B = x.shape[0]
    emb = F.conv2d(x, sd[pre + "embeddings.patch_embeddings.projection.weight"],
                   sd[pre + "embeddings.patch_embeddings.projection.bias"], stride=spec["patch"])
    emb = emb.flatten(2).transpose(1, 2)
    h = torch.cat([sd[pre + "embeddings.cls_token"].expand(B, -1, -1), emb], 1)
    h = h + sd[pre + "embeddings.position_embeddings"]
    for i in range(spec["depth"]):
        L = f"{pre}encoder.layer.{i}."
        y = F.layer_norm(h, (D,), sd[L + "layernorm_before.weight"], sd[L + "layernorm_before.bias"], eps)

        def proj(w):
            out = F.linear(y, sd[L + f"attention.attention.{w}.weight"], sd.get(L + f"attention.attention.{w}.bias"))
            return out.view(B, -1, heads, D // heads).permute(0, 2, 1, 3)

        q, k, v = proj("query"), proj("key"), proj("value")
        att = torch.softmax(q @ k.transpose(-1, -2) * (D // heads) ** -0.5, dim=-1) @ v
        att = att.transpose(1, 2).reshape(B, -1, D)
        h = F.linear(att, sd[L + "attention.output.dense.weight"], sd[L + "attention.output.dense.bias"]) + h
        y = F.layer_norm(h, (D,), sd[L + "layernorm_after.weight"], sd[L + "layernorm_after.bias"], eps)
        y = F.gelu(F.linear(y, sd[L + "intermediate.dense.weight"], sd[L + "intermediate.dense.bias"]))
        h = F.linear(y, sd[L + "output.dense.weight"], sd[L + "output.dense.bias"]) + h
    return F.layer_norm(h, (D,), sd[pre + "layernorm.weight"], sd[pre + "layernorm.bias"], eps)


def write_case(d, spec, sd):
    """model.safetensors (+ config.json, preprocessor_config.json) in folder d."""
    os.makedirs(d, exist_ok=True)
    out = {k: v.to(spec["dtype"]) for k, v in sd.items()}
    if PERTURB:
        pre = "vit." if spec["kind"] == "cls" else ""
        a, b = (pre + f"encoder.layer.0.attention.attention.{w}.weight" for w in ("query", "key"))
        out[a], out[b] = out[b], out[a]
    write_safetensors(os.path.join(d, "model.safetensors"), out)
    if spec["config"]:
        size = [spec["img"], spec["img"]] if spec.get("image_pair") else spec["img"]
        cfg = {"architectures": ["ViTForImageClassification" if spec["kind"] == "cls" else "ViTModel"],
               "model_type": "vit", "hidden_size": spec["dim"], "num_hidden_layers": spec["depth"],
               "num_attention_heads": spec["heads"], "intermediate_size": spec["inter"], "hidden_act": "gelu",
               "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
               "layer_norm_eps": spec["eps"], "image_size": size, "patch_size": spec["patch"],
               "num_channels": spec["chans"], "qkv_bias": spec["qkv_bias"], "encoder_stride": spec["patch"],
               "torch_dtype": "float32", "transformers_version": "4.46.0"}
        if "labels" in spec:
            cfg["id2label"] = {str(i): n for i, n in enumerate(spec["labels"])}
            cfg["label2id"] = {n: i for i, n in enumerate(spec["labels"])}
        with open(os.path.join(d, "config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2, ensure_ascii=False)
    if "mean" in spec:
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump({"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": spec["mean"],
                       "image_std": spec["std"], "image_processor_type": "ViTImageProcessor", "resample": 2,
                       "rescale_factor": 1 / 255, "size": {"height": spec["img"], "width": spec["img"]}}, f)


def check(what, ok, detail=""):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(what)


def run_case(root, name, spec, ctx):
    print(f"{name}:")
    d = os.path.join(root, name)
    sd = make_state(spec, sum(name.encode()))
    write_case(d, spec, sd)
    path = os.path.join(d, "model.safetensors")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(spec["batch"], spec["chans"], spec["img"], spec["img"], generator=g, dtype=torch.float64)
    seq = hf_sequence(sd, spec, x)
    if spec["kind"] == "cls":
        model = libvit.Model.load(ctx, path)
        ref = F.linear(seq[:, 0], sd["classifier.weight"], sd["classifier.bias"])
    else:
        try:
            libvit.Model.load(ctx, path)
            check("ViTModel refused by vit_model_load", False, "it loaded")
        except libvit.NotFoundError as e:
            check("ViTModel refused by vit_model_load", "classifier.weight" in str(e) and
                  "vit_model_load_weights" in str(e), str(e))
        model = libvit.Model(ctx, img_size=spec["img"], patch_size=spec["patch"], in_channels=spec["chans"],
                             num_classes=spec["classes"], dim=spec["dim"], depth=spec["depth"], heads=spec["heads"],
                             mlp_ratio=spec["inter"] / spec["dim"], qkv_bias=int(spec["qkv_bias"]), ln_eps=spec["eps"])
        head = model.state_dict()
        before = head["head.weight"].copy()
        model.load_weights(path, allow_head_mismatch=True)
        head = model.state_dict()
        check("head kept as initialised", np.array_equal(before, head["head.weight"]))
        ref = F.linear(seq[:, 0], torch.from_numpy(head["head.weight"]).double(),
                       torch.from_numpy(head["head.bias"]).double())
    model.eval()
    cfg = model.config
    check("configuration", (cfg.get("heads"), cfg.get("depth"), cfg.get("dim"), cfg.get("img_size")) ==
          (spec["heads"], spec["depth"], spec["dim"], spec["img"]) and abs(cfg.get("ln_eps") - spec["eps"]) < 1e-20,
          f"heads {cfg.get('heads')}, eps {cfg.get('ln_eps'):g}")
    logits = model.forward(x.float().numpy())
    err = float(np.max(np.abs(logits - ref.numpy())))
    check(f"logits within {TOL:g} of PyTorch", err <= TOL, f"max |diff| {err:.2e} (logits up to "
          f"{float(ref.abs().max()):.2f}, {spec['dtype']})")
    if spec["kind"] != "cls":
        return
    meta = dict(model.metadata)
    check("class_names from id2label", json.loads(meta.get("class_names", "null")) == spec.get("labels"),
          meta.get("class_names", "none"))
    if "mean" in spec:
        got = [[float(v) for v in meta.get(k, "").split(",")] for k in ("mean", "std")]
        check("mean / std from preprocessor_config.json", got == [spec["mean"], spec["std"]], str(got))
    if PREDICT:
        from PIL import Image
        img = np.random.default_rng(5).integers(0, 256, (spec["img"], spec["img"], 3), dtype=np.uint8)
        png = os.path.join(d, "image.png")
        Image.fromarray(img).save(png)
        mean, std = np.array(spec.get("mean", [0.0] * 3)), np.array(spec.get("std", [1.0] * 3))
        xi = torch.from_numpy(((img / 255.0 - mean) / std).transpose(2, 0, 1)[None].copy())
        prob = torch.softmax(F.linear(hf_sequence(sd, spec, xi)[:, 0], sd["classifier.weight"],
                                      sd["classifier.bias"]), -1)[0].numpy()
        r = subprocess.run([PREDICT, "--checkpoint", path, "--json", "--top-k", "3", "--threads", "1", png],
                           capture_output=True, text=True)
        if r.returncode != 0:
            check("vit-predict runs", False, r.stderr.strip())
            return
        top = json.loads(r.stdout.splitlines()[0])["top"]
        perr = max(abs(t["prob"] - prob[t["index"]]) for t in top)
        check("vit-predict: probabilities and names", perr <= TOL and
              [t["class"] for t in top] == [spec["labels"][t["index"]] for t in top] and
              [t["index"] for t in top] == list(np.argsort(-prob, kind="stable")[:3]),
              f"max |diff| {perr:.2e}, {[t['class'] for t in top]}")


def expect_error(ctx, root, what, exc, words, edit):
    """Copies the classification case, lets edit(folder) break it, loads: exc with every word in the message."""
    d = os.path.join(root, "err")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(os.path.join(root, "classification"), d)
    edit(d)
    try:
        libvit.Model.load(ctx, os.path.join(d, "model.safetensors"))
        check(what, False, "it loaded")
    except libvit.VitError as e:
        msg = str(e)
        check(what, isinstance(e, exc) and all(w in msg for w in words), f"{type(e).__name__}: {msg}")


def edit_tensors(change):
    def edit(d):
        path = os.path.join(d, "model.safetensors")
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header, data = json.loads(f.read(n)), f.read()
        header.pop("__metadata__")
        tensors = {}
        for k, v in header.items():
            a, b = v["data_offsets"]
            tensors[k] = torch.from_numpy(np.frombuffer(data[a:b], np.float32).reshape(v["shape"]).copy())
        change(tensors)
        write_safetensors(path, tensors)
    return edit


def edit_config(change):
    def edit(d):
        path = os.path.join(d, "config.json")
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
        change(cfg)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
    return edit


def write_text(name, text):
    def edit(d):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return edit


def errors(ctx, root):
    print("errors:")
    key0 = "vit.encoder.layer.1.attention.attention.key.weight"
    expect_error(ctx, root, "missing tensor", libvit.NotFoundError, [key0, "model.safetensors", "missing"],
                 edit_tensors(lambda t: t.pop(key0)))
    expect_error(ctx, root, "unexpected tensor", libvit.FormatError, ["vit.embeddings.mask_token", "not part of"],
                 edit_tensors(lambda t: t.update({"vit.embeddings.mask_token": torch.zeros(1, 1, 48)})))
    expect_error(ctx, root, "a layer config.json does not have", libvit.ShapeError,
                 ["config.json", "num_hidden_layers is 2", "vit.encoder.layer.5.layernorm_before.weight"],
                 edit_tensors(lambda t: t.update({"vit.encoder.layer.5.layernorm_before.weight": torch.ones(48)})))
    q0 = "vit.encoder.layer.0.attention.attention.query.weight"
    expect_error(ctx, root, "misshapen tensor", libvit.ShapeError, [q0, "[48, 40]", "[48, 48]"],
                 edit_tensors(lambda t: t.update({q0: torch.zeros(48, 40)})))
    expect_error(ctx, root, "config.json: hidden_size disagrees", libvit.ShapeError,
                 ["config.json", "hidden_size is 64", "48"], edit_config(lambda c: c.update(hidden_size=64)))
    expect_error(ctx, root, "config.json: num_hidden_layers disagrees", libvit.ShapeError,
                 ["config.json", "num_hidden_layers is 3", "2"], edit_config(lambda c: c.update(num_hidden_layers=3)))
    expect_error(ctx, root, "config.json: image_size disagrees", libvit.ShapeError,
                 ["config.json", "image_size 64", "position_embeddings"],
                 edit_config(lambda c: c.update(image_size=64)))
    expect_error(ctx, root, "config.json: qkv_bias disagrees", libvit.ShapeError, ["config.json", "qkv_bias is false"],
                 edit_config(lambda c: c.update(qkv_bias=False)))
    expect_error(ctx, root, "config.json: id2label disagrees", libvit.ShapeError,
                 ["config.json", "id2label names 2 classes", "classifier.weight"],
                 edit_config(lambda c: c.update(id2label={"0": "x", "1": "y"})))
    expect_error(ctx, root, "config.json: heads do not divide the width", libvit.ShapeError,
                 ["num_attention_heads 5"], edit_config(lambda c: c.update(num_attention_heads=5)))
    expect_error(ctx, root, "config.json: unsupported hidden_act", libvit.UnsupportedError,
                 ["hidden_act \"gelu_new\""], edit_config(lambda c: c.update(hidden_act="gelu_new")))
    expect_error(ctx, root, "config.json: another model_type", libvit.UnsupportedError,
                 ["model_type \"deit\""], edit_config(lambda c: c.update(model_type="deit")))
    expect_error(ctx, root, "config.json: id2label with a gap", libvit.FormatError,
                 ["id2label key", "not a class index 0 .. 4"],
                 edit_config(lambda c: c.update(id2label={str(i * 7 // 4): "x" for i in range(5)})))
    expect_error(ctx, root, "config.json: a string for a number", libvit.FormatError,
                 ["hidden_size is string"], edit_config(lambda c: c.update(hidden_size="48")))
    expect_error(ctx, root, "config.json: broken JSON", libvit.FormatError, ["config.json", "JSON error at byte"],
                 write_text("config.json", '{"hidden_size": 48, "num_hidden_layers": 2,'))
    expect_error(ctx, root, "preprocessor_config.json: broken", libvit.FormatError,
                 ["preprocessor_config.json", "image_mean"],
                 write_text("preprocessor_config.json", '{"image_mean": "x"}'))


def main():
    torch.set_num_threads(1)
    ctx = libvit.Context(threads=2, seed=7)
    root = tempfile.mkdtemp(prefix="vit-hf-")
    try:
        for name, spec in CASES.items():
            run_case(root, name, spec, ctx)
        errors(ctx, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if failures:
        print(f"FAILED: {len(failures)}: {', '.join(failures)}")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
