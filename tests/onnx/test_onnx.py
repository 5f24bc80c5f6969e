#!/usr/bin/python3
"""ONNX export (vit_model_export_onnx) against three oracles.

Each case builds a model through the Python package (bindings/python) with
random weights of real magnitude (activations of order one, logits of order
ten, so 1e-4 is a real bound), exports it, and then:

1. onnx.checker.check_model(full_check=True) (Debian's python3-onnx 1.12:
   structure, operator schemas, shape inference), for opset 17;
2. a float64 numpy interpreter of exactly the operators the exporter emits,
   written here from the ONNX operator specification: it runs the file
   node by node and refuses any operator or attribute it does not know;
3. ONNX Runtime (onnxruntime-node, tests/onnx/ort_run.mjs) when node and
   bench/node_modules are there (tools/install-deps.sh --bench); with
   VIT_REQUIRE_ORT=1 its absence fails the case.

The logits of 2 and 3 must match libvit's vit_model_forward within 1e-4
(absolute, largest over the batch). Each case prints which oracles ran and
the largest differences.

    VIT_LIBRARY=build/libvit/libvit.so.0 /usr/bin/python3 tests/onnx/test_onnx.py CASE [VIT_EXPORT]
"""
import gzip
import hashlib
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import libvit  # noqa: E402

TOL = 1e-4
FASHION = "/usr/share/datasets/fashion-mnist"
FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"]
BENCH = os.environ.get("VIT_ORT_DIR", os.path.join(ROOT, "bench"))
SKIP = 77  # meson: the case was skipped


# ------------------------------------------------------------------ oracle
def _attrs(node):
    out = {}
    for a in node.attribute:
        out[a.name] = onnx.helper.get_attribute_value(a)
    return out


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _layernorm(x, scale, bias, axis=-1, epsilon=1e-5, stash_type=1):
    assert axis == -1 and stash_type == 1
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + epsilon) * scale + (0 if bias is None else bias)


def _conv(x, w, b, kernel_shape, strides, **rest):
    # Only what the exporter writes: a patch projection, kernel == stride, no padding.
    assert not {k: v for k, v in rest.items() if k not in ("pads", "dilations", "group")} and \
        all(p == 0 for p in rest.get("pads", [0])) and all(d == 1 for d in rest.get("dilations", [1])) and \
        rest.get("group", 1) == 1 and list(kernel_shape) == list(strides) == list(w.shape[2:])
    B, C, H, W = x.shape
    D, _, P, Q = w.shape
    g, h = H // P, W // Q
    patches = x[:, :, :g * P, :h * Q].reshape(B, C, g, P, h, Q).transpose(0, 2, 4, 1, 3, 5).reshape(B, g, h, -1)
    y = patches @ w.reshape(D, -1).T + (0 if b is None else b)
    return y.transpose(0, 3, 1, 2)


def _reshape(x, shape, allowzero=0):
    shape = [x.shape[i] if s == 0 and not allowzero else int(s) for i, s in enumerate(shape)]
    return x.reshape(shape)


def _slice(x, starts, ends, axes=None, steps=None):
    idx = [slice(None)] * x.ndim
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for s, e, a, st in zip(starts, ends, axes, steps):
        idx[int(a)] = slice(int(s), int(e), int(st))
    return x[tuple(idx)]


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _gemm(a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0):
    a = a.T if transA else a
    b = b.T if transB else b
    return alpha * (a @ b) + (0 if c is None else beta * c)


def _reduce_mean(x, axes_in=None, axes=None, keepdims=1):
    axes = tuple(int(a) for a in (axes_in if axes_in is not None else axes))
    return x.mean(axis=axes, keepdims=bool(keepdims))


def _shape(x, start=0, end=None):
    return np.array(x.shape[start:end], dtype=np.int64)


OPS = {
    "Conv": lambda x, w, b=None, **a: _conv(x, w, b, **a),
    "Reshape": lambda x, s, **a: _reshape(x, s, **a),
    "Transpose": lambda x, perm: x.transpose(perm),
    "LayerNormalization": lambda x, s, b=None, **a: _layernorm(x, s, b, **a),
    "Shape": lambda x, **a: _shape(x, **a),
    "Concat": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "Expand": lambda x, s: x * np.ones(tuple(int(v) for v in s), dtype=x.dtype),
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a / b,
    "Erf": lambda x: _erf(x),
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "Identity": lambda x: x,
    "Gemm": lambda a, b, c=None, **k: _gemm(a, b, c, **k),
    "MatMul": lambda a, b: a @ b,
    "Softmax": lambda x, axis=-1: _softmax(x, axis),
    "Gather": lambda x, i, axis=0: np.take(x, i, axis=axis),
    "Slice": lambda x, *args: _slice(x, *args),
    "ReduceMean": lambda x, axes_in=None, **a: _reduce_mean(x, axes_in, **a),
}


def reference_run(model, images):
    """The graph's output for images, every float in float64."""
    env = {}
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        env[t.name] = a.astype(np.float64) if a.dtype == np.float32 else a
    env[model.graph.input[0].name] = images.astype(np.float64)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in OPS:
            raise AssertionError(f"reference: operator {node.domain}:{node.op_type} is not one the exporter writes")
        args = [env[i] if i else None for i in node.input]
        while args and args[-1] is None:
            args.pop()
        (out,) = node.output
        env[out] = np.asarray(OPS[node.op_type](*args, **_attrs(node)))
    return env[model.graph.output[0].name]


# -------------------------------------------------------------- utilities
def fmnist_images(n, offset=0):
    with gzip.open(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read()
    px = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28)[offset:offset + n]
    return ((px.astype(np.float32) / 255.0) - 0.2860) / 0.3530


def randomize(model, seed, scale=1.0):
    """Weights of real magnitude: linear layers ~ N(0, 1/fan_in), norms and
    biases visibly away from their ones and zeros, tokens of order one."""
    rng = np.random.default_rng(seed)
    state = {}
    for p in model.parameters():
        shape, name = tuple(p.shape), p.name
        if name.endswith(".bias"):
            v = rng.normal(0, 0.1, shape)
        elif "norm" in name:
            v = 1 + rng.normal(0, 0.2, shape)
        elif name in ("cls_token", "pos_embed", "reg_token", "attn_pool.latent") or len(shape) < 2:
            v = rng.normal(0, 0.5, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            # a wider head, so logits reach beyond one
            v = rng.normal(0, (4 if name.startswith("head.") else 1) * scale / math.sqrt(fan_in), shape)
        state[name] = v.astype(np.float32)
    model.load_state_dict(state)


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_model(path):
    """onnx.checker.check_model(full_check=True) on a copy: onnx 1.12 writes the inferred shapes back into the file
    it checks."""
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as d:
        for f in (path, path + ".data"):
            if os.path.exists(f):
                shutil.copyfile(f, os.path.join(d, os.path.basename(f)))
        onnx.checker.check_model(os.path.join(d, os.path.basename(path)), full_check=True)


def ort_available():
    node = shutil.which("node")
    if node and os.path.isdir(os.path.join(BENCH, "node_modules", "onnxruntime-node")):
        return node
    if os.environ.get("VIT_REQUIRE_ORT") == "1":
        raise AssertionError(f"ONNX Runtime is required (VIT_REQUIRE_ORT=1) but node or "
                             f"{BENCH}/node_modules/onnxruntime-node is missing (tools/install-deps.sh --bench)")
    return None


def ort_run(node, path, batches, tmp):
    args = [node, os.path.join(HERE, "ort_run.mjs"), path, BENCH]
    outs = []
    for i, x in enumerate(batches):
        fin, fout = os.path.join(tmp, f"in{i}.f32"), os.path.join(tmp, f"out{i}.f32")
        x.astype("<f4").tofile(fin)
        args += [fin, ",".join(map(str, x.shape)), fout]
        outs.append(fout)
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"ort_run.mjs failed:\n{p.stderr}"
    info = json.loads(p.stdout.strip().splitlines()[-1])
    return info["onnxruntime"], [np.fromfile(f, "<f4") for f in outs]


def verify(model, path, batches, *, opset=17, batch=None, meta=None, oracle_batches=None, external_data=None):
    """Export model to path and compare every oracle on every batch; returns the report line."""
    model.export_onnx(path, opset=opset, batch=batch, external_data=external_data)
    written = file_digest(path)
    m = onnx.load(path)
    report = [f"{os.path.basename(path)}: {os.path.getsize(path)} bytes, {len(m.graph.node)} nodes, opset {opset}, "
              f"batch {'dynamic' if batch is None else batch}"]
    # a model without a head gives its pooled features
    out = "logits" if model.num_classes else "features"
    assert [i.name for i in m.graph.input] == ["images"] and [o.name for o in m.graph.output] == [out]
    dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == ("batch" if batch is None else batch), dims
    props = {p.key: p.value for p in m.metadata_props}
    for k, v in (meta or {}).items():
        assert props.get(k) == v, f"metadata_props[{k!r}] = {props.get(k)!r}, want {v!r}"
    if opset <= 17:
        check_model(path)
        report.append("onnx.checker full_check passed")
    else:
        report.append(f"onnx.checker skipped (onnx {onnx.__version__} knows opsets up to 17)")
    expected = [model.forward(x) for x in batches]
    scale = max(float(np.abs(e).max()) for e in expected)
    worst, done = 0.0, {}
    for x, want in zip(oracle_batches or batches, expected):
        key = (x.shape, hashlib.sha256(x.tobytes()).hexdigest())
        got = done[key] = done[key] if key in done else reference_run(m, x)  # the interpreter is slow: once each
        assert got.shape == want[:len(x)].shape, (got.shape, want.shape)
        worst = max(worst, float(np.abs(got - want[:len(x)]).max()))
    report.append(f"numpy reference: max |ref - libvit| {worst:.2e} (logits up to {scale:.1f})")
    assert worst <= TOL, f"numpy reference differs from libvit by {worst:.3e} > {TOL}"
    del m
    node = ort_available()
    if node:
        with tempfile.TemporaryDirectory() as tmp:
            version, outs = ort_run(node, path, batches, tmp)
        worst = max(float(np.abs(o.reshape(e.shape) - e).max()) for o, e in zip(outs, expected))
        report.append(f"ONNX Runtime {version}: max |ORT - libvit| {worst:.2e}")
        assert worst <= TOL, f"ONNX Runtime differs from libvit by {worst:.3e} > {TOL}"
    else:
        report.append("ONNX Runtime: not available (tools/install-deps.sh --bench installs it), not run")
    assert file_digest(path) == written, f"{path} changed while it was checked"
    return "; ".join(report)


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"/proc/self/status has no {field}")


def export_peak_growth(model, path):
    """Bytes by which the process's peak resident memory grows during one export (Linux: clear_refs 5 resets the
    peak to the current size)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    model.export_onnx(path)
    return _status_kib("VmHWM") - before


def make_model(ctx, seed=1, **cfg):
    model = libvit.Model(ctx, **cfg)
    model.eval()
    model.set_grad(False)
    randomize(model, seed)
    return model


# ------------------------------------------------------------------ cases
def case_fmnist(tmp):
    """A Fashion-MNIST-shaped model on real test images: fixed batch 1 and 7, dynamic (1, 7, 3)."""
    ctx = libvit.Context(seed=0)
    model = make_model(ctx, img_size=28, patch_size=7, in_channels=1, num_classes=10, dim=64, depth=3, heads=4)
    model.class_names = FMNIST_CLASSES
    model.set_normalization(0.2860, 0.3530)
    meta = {k: model.metadata[k] for k in ("class_names", "mean", "std")}
    x = fmnist_images(11)
    print(verify(model, os.path.join(tmp, "b1.onnx"), [x[:1]], batch=1, meta=meta))
    print(verify(model, os.path.join(tmp, "b7.onnx"), [x[:7]], batch=7, meta=meta))
    print(verify(model, os.path.join(tmp, "dyn.onnx"), [x[:1], x[:7], x[8:11]], meta=meta))


def case_seed_variant(tmp):
    """The seed's model: LayerNorm after the patch projection, eps 1e-5."""
    ctx = libvit.Context(seed=0)
    model = make_model(ctx, seed=2, img_size=32, patch_size=4, in_channels=3, num_classes=10, dim=48, depth=2,
                       heads=3, patch_norm=True, ln_eps=1e-5)
    # Patch features of variance ~1e-4, so the patch LayerNorm's epsilon (1e-5, not timm's 1e-6) shows in the logits.
    w = model.param("patch_embed.proj.weight")
    model.set_param("patch_embed.proj.weight", w * 0.01)
    x = np.random.default_rng(3).normal(0, 1, (7, 3, 32, 32)).astype(np.float32)
    print(verify(model, os.path.join(tmp, "seed.onnx"), [x[:1], x[:7]]))
    print(verify(model, os.path.join(tmp, "seed7.onnx"), [x], batch=7))


def case_avg_pool(tmp):
    """global_pool='avg': mean of the patch tokens, then fc_norm; no qkv bias."""
    ctx = libvit.Context(seed=0)
    model = make_model(ctx, seed=4, img_size=28, patch_size=4, in_channels=1, num_classes=10, dim=32, depth=2,
                       heads=2, global_pool="avg", qkv_bias=False)
    x = fmnist_images(7, offset=100)
    print(verify(model, os.path.join(tmp, "avg.onnx"), [x[:1], x[:7]]))
    print(verify(model, os.path.join(tmp, "avg1.onnx"), [x[:1]], batch=1))


def case_opset18(tmp):
    """Opset 18 (ReduceMean takes its axes as an input) and 21, dynamic batch."""
    ctx = libvit.Context(seed=0)
    model = make_model(ctx, seed=5, img_size=28, patch_size=7, in_channels=1, num_classes=10, dim=32, depth=1,
                       heads=2, global_pool="avg")
    x = fmnist_images(3, offset=200)
    print(verify(model, os.path.join(tmp, "o18.onnx"), [x[:1], x], opset=18))
    print(verify(model, os.path.join(tmp, "o21.onnx"), [x], opset=21))


def case_external_data(tmp):
    """The weights in PATH.data beside the file (ONNX external data), page-aligned; small constants stay inline."""
    ctx = libvit.Context(seed=0)
    model = make_model(ctx, seed=9, img_size=28, patch_size=7, in_channels=1, num_classes=10, dim=64, depth=2,
                       heads=4, patch_norm=True, ln_eps=1e-5)
    x = fmnist_images(7, offset=300)
    path = os.path.join(tmp, "ext.onnx")
    print(verify(model, path, [x[:1], x], external_data=True))
    m = onnx.load(path, load_external_data=False)
    params = {p.name for p in model.parameters()}
    external = {}
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            assert info["location"] == "ext.onnx.data" and int(info["offset"]) % 4096 == 0, info
            external[t.name] = (int(info["offset"]), int(info["length"]))
        else:
            assert len(t.raw_data) < 1024, f"{t.name}: {len(t.raw_data)} bytes inline"
    big = {p.name for p in model.parameters() if 4 * int(np.prod(p.shape)) >= 1024}
    assert set(external) == big and big < params, (sorted(external), sorted(big))
    blob = np.fromfile(path + ".data", "<f4")
    for name, (offset, length) in external.items():
        assert np.array_equal(blob[offset // 4:(offset + length) // 4], model.param(name).ravel()), name
    assert os.path.getsize(path) < 64 * 1024, os.path.getsize(path)
    print(f"external data: {len(external)} tensors in ext.onnx.data ({os.path.getsize(path + '.data')} bytes), "
          f"{os.path.getsize(path)} bytes of graph")


FAMILY = {
    # name: (configuration, fixed batch or None)
    "gap": (dict(class_token=False, global_pool="avg", fc_norm=0), None),         # vit_base_patch16_gap_224
    "gap_fc_norm": (dict(class_token=False, global_pool="avg"), 7),                # mean of the patches, then fc_norm
    "clip": (dict(pre_norm=True, patch_bias=False, ln_eps=1e-5), None),           # vit_base_patch16_clip_224
    "clip_quickgelu": (dict(pre_norm=True, patch_bias=False, ln_eps=1e-5, quick_gelu=True), 1),
    "dinov2_reg": (dict(reg_tokens=4, no_embed_class=True, init_values=1e-5), None),  # layer scale, registers
    "registers_embed_class": (dict(reg_tokens=2, global_pool="avg"), None),       # pos_embed over class + registers
    "layer_scale": (dict(init_values=1e-6), 7),                                    # DeiT-III
    "siglip": (dict(class_token=False, global_pool="map"), None),                  # attention-pool head
    "siglip_quickgelu_headless": (dict(class_token=False, global_pool="map", quick_gelu=True, num_classes=0), None),
    "headless": (dict(num_classes=0), 1),                                          # pooled features out
}


def case_family(tmp):
    """timm's family options, each exported and run on Fashion-MNIST images: dynamic batch (1, 7) or a fixed one."""
    ctx = libvit.Context(seed=0)
    x = fmnist_images(7, offset=400)
    for i, (name, (options, batch)) in enumerate(FAMILY.items()):
        settings = dict(img_size=28, patch_size=7, in_channels=1, num_classes=10, dim=32, depth=2, heads=2)
        settings.update(options)
        model = make_model(ctx, seed=20 + i, **settings)
        batches = [x[:batch]] if batch else [x[:1], x]
        print(f"{name}: " + verify(model, os.path.join(tmp, f"{name}.onnx"), batches, batch=batch))


def case_vit_b16(tmp):
    """ViT-B/16 at 224, 1000 classes, random weights: a 350 MB file; dynamic batch."""
    ctx = libvit.Context(seed=0, threads=2)
    model = make_model(ctx, seed=6, preset="vit_base_patch16_224")
    x = np.random.default_rng(7).normal(0, 1, (2, 3, 224, 224)).astype(np.float32)
    # The export streams the weights from the model's buffer: its peak memory
    # is a small fraction of the 346 MB of weights (a copy would double it).
    grown = export_peak_growth(model, os.path.join(tmp, "b16.onnx"))
    print(f"export: peak resident memory grew by {grown / 2**20:.1f} MiB")
    assert grown < 64 * 2**20, f"exporting ViT-B/16 took {grown / 2**20:.0f} MiB more memory: a copy of the weights?"
    # The float64 interpreter on one image; ONNX Runtime on both.
    print(verify(model, os.path.join(tmp, "b16.onnx"), [x[:1], x], oracle_batches=[x[:1], x[:1]]))


def case_errors(tmp):
    """Bad options and paths are refused with the argument named; nothing is left behind."""
    ctx = libvit.Context(seed=0)
    model = make_model(ctx, img_size=8, patch_size=4, in_channels=1, num_classes=3, dim=8, depth=1, heads=2)
    for kwargs, words in (({"opset": 16}, "VIT_ONNX_OPSET 16"), ({"opset": 22}, "VIT_ONNX_OPSET 22"),
                          ({"batch": -1}, "VIT_ONNX_BATCH -1")):
        try:
            model.export_onnx(os.path.join(tmp, "x.onnx"), **kwargs)
        except libvit.InvalidArgumentError as e:
            assert words in str(e), str(e)
        else:
            raise AssertionError(f"{kwargs} was accepted")
    missing = os.path.join(tmp, "no", "such", "folder", "m.onnx")
    try:
        model.export_onnx(missing)
    except libvit.InputOutputError as e:
        assert "m.onnx" in str(e), str(e)
    else:
        raise AssertionError("a missing folder was accepted")
    # An existing file survives a failed export; a good one replaces it whole.
    path = os.path.join(tmp, "keep.onnx")
    with open(path, "w") as f:
        f.write("previous")
    os.chmod(tmp, 0o500)
    try:
        if os.access(tmp, os.W_OK):  # root ignores the mode
            print("errors: read-only folder check skipped (running as root)")
        else:
            try:
                model.export_onnx(path)
            except libvit.InputOutputError:
                pass
            assert open(path).read() == "previous"
    finally:
        os.chmod(tmp, 0o700)
    # A full file system (a file-size limit: writes fail with EFBIG) part-way through the weights.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    saved = resource.getrlimit(resource.RLIMIT_FSIZE)
    for limit in (0, 100, 5000):
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, saved[1]))
        try:
            model.export_onnx(path)
        except libvit.InputOutputError as e:
            assert "keep.onnx" in str(e), str(e)
        else:
            raise AssertionError(f"an export into a file system full at {limit} bytes reported success")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, saved)
        assert open(path).read() == "previous" and os.listdir(tmp) == ["keep.onnx"], os.listdir(tmp)
    model.export_onnx(path)
    check_model(path)
    assert sorted(os.listdir(tmp)) == ["keep.onnx"], os.listdir(tmp)
    print("errors: opset, batch and path refused with the argument named; a full file system leaves the previous "
          "file; atomic replace")


def case_program(tmp, vit_export):
    """vit-export on a checkpoint: the file it writes equals the call's."""
    ctx = libvit.Context(seed=0)
    model = make_model(ctx, seed=8, img_size=28, patch_size=7, in_channels=1, num_classes=10, dim=32, depth=1,
                       heads=2)
    model.class_names = FMNIST_CLASSES
    model.set_normalization(0.2860, 0.3530)
    ckpt = os.path.join(tmp, "m.safetensors")
    model.save(ckpt)
    out = os.path.join(tmp, "cli.onnx")
    p = subprocess.run([vit_export, "--onnx", out, "--checkpoint", ckpt, "--batch", "7", "--opset", "17"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "", "vit-export prints nothing on stdout"
    model.export_onnx(os.path.join(tmp, "api.onnx"), batch=7)
    with open(out, "rb") as a, open(os.path.join(tmp, "api.onnx"), "rb") as b:
        assert a.read() == b.read(), "vit-export and vit_model_export_onnx wrote different files"
    check_model(out)
    print(p.stderr.strip())
    # --external-data: the same graph, the weights beside it
    ext = os.path.join(tmp, "ext.onnx")
    p = subprocess.run([vit_export, "--onnx", ext, "--checkpoint", ckpt, "--external-data"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and p.stdout == "", p.stderr
    assert os.path.getsize(ext + ".data") >= 4 * model.num_params - 4096, os.path.getsize(ext + ".data")
    check_model(ext)
    print(p.stderr.strip())


CASES = {"fmnist": case_fmnist, "seed_variant": case_seed_variant, "avg_pool": case_avg_pool,
         "opset18": case_opset18, "external_data": case_external_data, "family": case_family, "vit_b16": case_vit_b16, "errors": case_errors, "program": case_program}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in CASES:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(CASES)} [VIT_EXPORT]")
    name = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        if name == "program":
            case_program(tmp, os.path.abspath(sys.argv[2]))
        else:
            CASES[name](tmp)


if __name__ == "__main__":
    main()
