"""Config, Model, metrics and model checkpoints."""
import json
import struct

import numpy as np
import pytest

import libvit
from conftest import TINY, images


# ------------------------------------------------------------------ config
def test_config_defaults_presets_and_settings():
    cfg = libvit.Config()
    assert cfg.as_dict() == dict(img_size=224, patch_size=16, in_channels=3, num_classes=1000, dim=768, depth=12,
                                 heads=12, qkv_bias=True, patch_norm=False, global_pool="token", mlp_ratio=4.0,
                                 drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0, ln_eps=1e-6,
                                 class_token=True, reg_tokens=0, no_embed_class=False, pre_norm=False,
                                 patch_bias=True, quick_gelu=False, fc_norm=-1, init_values=0.0)
    names = libvit.presets()
    assert "vit_tiny_patch16_224" in names and "vit_base_patch16_224" in names
    tiny = libvit.Config("vit_tiny_patch16_224", img_size=32, patch_size=4, global_pool="avg", mlp_ratio=2)
    assert (tiny["dim"], tiny["heads"], tiny["img_size"], tiny["patch_size"]) == (192, 3, 32, 4)
    assert tiny.get("global_pool") == "avg" and tiny.get("mlp_ratio") == 2.0
    tiny["qkv_bias"] = 0
    assert tiny["qkv_bias"] is False
    copy = tiny.copy()
    copy.set("dim", 384)
    assert tiny["dim"] == 192 and copy["dim"] == 384  # independent
    assert libvit.Config(**tiny.as_dict()).as_dict() == tiny.as_dict()
    assert list(tiny) == tiny.keys() and "dim=192" in repr(tiny)
    tiny.validate()


def test_config_refuses_what_it_cannot_take():
    cfg = libvit.Config()
    with pytest.raises(libvit.InvalidArgumentError, match=r"unknown config setting 'depht' \(did you mean 'depth'"):
        cfg.set("depht", 2)
    with pytest.raises(TypeError, match="config setting 'dim' must be an integer, not float 96.5"):
        cfg.set("dim", 96.5)
    with pytest.raises(TypeError, match="must be an integer"):
        cfg.set("dim", True)
    with pytest.raises(TypeError, match="must be True or False"):
        cfg.set("qkv_bias", 2)
    with pytest.raises(TypeError, match="must be a real number"):
        cfg.set("mlp_ratio", "4")
    with pytest.raises(libvit.InvalidArgumentError, match="'global_pool' value 'mean'"):
        cfg.set("global_pool", "mean")
    with pytest.raises(libvit.InvalidArgumentError, match="out of range"):
        cfg.set("dim", -1)  # the library's own check
    with pytest.raises(libvit.NotFoundError, match=r"unknown preset 'vit_tiny_patch16' \(did you mean "):
        libvit.Config("vit_tiny_patch16")
    cfg.set("heads", 7)
    with pytest.raises(libvit.InvalidArgumentError, match="heads 7 do not divide dim 768"):
        cfg.validate()


# ------------------------------------------------------------------- model
def test_model_settings_config_and_preset(ctx):
    model = libvit.Model(ctx, **TINY)
    assert model.config.as_dict()["dim"] == 12 and model.num_classes == 3 and model.ctx is ctx
    cfg = libvit.Config(**TINY)
    assert libvit.Model(ctx, cfg).config.as_dict() == cfg.as_dict()
    # keyword settings apply over a copy of the config: never dropped, never changing the caller's config
    wide = libvit.Model(ctx, cfg, dim=16, num_classes=5)
    assert (wide.config["dim"], wide.num_classes, cfg["dim"]) == (16, 5, 12)
    small = libvit.Model(ctx, preset="vit_tiny_patch16_224", img_size=16, patch_size=8, depth=1, num_classes=2)
    assert (small.config["dim"], small.config["depth"]) == (192, 1)
    with pytest.raises(TypeError, match="config or preset, not both"):
        libvit.Model(ctx, cfg, preset="vit_tiny_patch16_224")
    with pytest.raises(TypeError, match="config must be a libvit.Config"):
        libvit.Model(ctx, {"dim": 12})
    with pytest.raises(libvit.InvalidArgumentError, match="did you mean 'heads'"):
        libvit.Model(ctx, **dict(TINY, head=2))
    assert model.num_params == sum(int(np.prod(p.shape)) for p in model.parameters())
    assert "3 classes" in repr(model)


def test_forward_loss_backward(tiny):
    x, y = images(4), np.array([0, 1, 2, 1], np.int32)
    logits = tiny(x)
    assert logits.shape == (4, 3) and logits.dtype == np.float32
    assert np.array_equal(logits, tiny.logits.read())
    loss = tiny.loss(y)
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert abs(loss - (-np.log(p[np.arange(4), y]).mean())) < 1e-5
    assert not tiny.grad("head.bias").any()
    tiny.backward()
    grad = tiny.grad("head.bias")
    onehot = np.eye(3)[y]
    assert np.allclose(grad, (p - onehot).sum(0) / 4, atol=1e-6)
    tiny.zero_grad()
    assert not tiny.grad("head.bias").any()
    # the same gradients from a gradient of the logits computed outside libvit
    tiny(x)
    tiny.backward_logits(((p - onehot) / 4).astype(np.float32))
    assert np.allclose(tiny.grad("head.bias"), grad, atol=1e-6)
    # labels of any integer type, after a range check; smoothing
    tiny(x)
    assert abs(tiny.loss(y.astype(np.int64)) - loss) < 1e-7 and abs(tiny.loss([0, 1, 2, 1]) - loss) < 1e-7
    assert tiny.loss(y, label_smoothing=0.1) != loss


def test_forward_reuses_its_buffers(tiny):
    tiny(images(2))
    logits, buffer = tiny.logits, tiny._images
    tiny(images(2, seed=1))
    assert tiny.logits is logits and tiny._images is buffer  # the same batch shape: no new tensors
    tiny(images(3))
    assert tiny.logits is not logits and tiny.logits.shape == (3, 3)
    # a Tensor, or a numpy view of one, goes to C as it is
    t = libvit.Tensor(tiny.ctx, images(3, seed=2))
    before = tiny._images
    a = tiny(t)
    assert tiny._images is before and tiny._input is t._owner
    assert np.array_equal(tiny(t.numpy()), a) and tiny._input is t._owner


def test_step_misuse_is_refused(tiny):
    with pytest.raises(libvit.StateError, match="call forward first"):
        tiny.loss([0])
    with pytest.raises(libvit.StateError, match="call forward first"):
        tiny.backward_logits(np.zeros((1, 3), np.float32))
    with pytest.raises(libvit.StateError, match="vit_model_backward: call vit_model_loss"):
        tiny.backward()
    with pytest.raises(libvit.DtypeError, match="images must be float32, not uint8; pixels in 0..255 are not"):
        tiny((images(2) * 255).clip(0, 255).astype(np.uint8))
    with pytest.raises(libvit.DtypeError, match="images must be float32, not float64"):
        tiny(images(2).astype(np.float64))
    with pytest.raises(libvit.ShapeError, match=r"images must be \[B, 1, 8, 8\] for this model, not \[2, 3, 8, 8\]"):
        tiny(images(2, channels=3))
    with pytest.raises(libvit.ShapeError):
        tiny(images(2)[0])
    tiny(images(2))
    with pytest.raises(libvit.DtypeError, match="labels must be integer class indices, not float64"):
        tiny.loss(np.array([1.7, 0.0]))
    with pytest.raises(libvit.DtypeError, match="not bool"):
        tiny.loss(np.array([True, False]))
    with pytest.raises(libvit.ShapeError, match=r"labels must be \[2\]"):
        tiny.loss([0, 1, 2])
    with pytest.raises(libvit.InvalidArgumentError, match=r"labels\[1\] = 3 is outside 0..2"):
        tiny.loss([0, 3])
    with pytest.raises(libvit.InvalidArgumentError, match="beyond int32"):
        tiny.loss(np.array([0, 2**40]))
    with pytest.raises(libvit.InvalidArgumentError, match="label_smoothing"):
        tiny.loss([0, 1], label_smoothing=1.0)
    with pytest.raises(libvit.ShapeError, match=r"dlogits must be \[2, 3\]"):
        tiny.backward_logits(np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError):
        tiny.set_training("yes")


def test_train_eval_no_grad_and_rng_state(ctx):
    model = libvit.Model(ctx, **dict(TINY, drop_rate=0.5))
    x = images(4)
    assert not model.training and model.grad_enabled
    evaluated = model(x)
    assert model.train() is model and model.training
    a, b = model(x), model(x)
    assert not np.array_equal(a, b)  # dropout draws differ step to step
    state = model.rng_state
    assert state == 2
    model.rng_state = 1
    assert np.array_equal(model(x), b)  # the counter replays the same masks
    assert model.eval() is model and not model.training
    with model.no_grad() as m:
        assert m is model and not model.grad_enabled
        assert np.allclose(model(x), evaluated, rtol=0, atol=1e-6)  # inference fuses GELU: not bit for bit
    assert model.grad_enabled
    model.set_grad(False)
    with model.no_grad():
        pass
    assert not model.grad_enabled  # the previous setting comes back, whatever it was
    with pytest.raises(libvit.InvalidArgumentError):
        model.rng_state = -1


def test_parameters_and_state_dict(tiny):
    params = tiny.parameters()
    assert params[0] == ("cls_token", (1, 1, 12)) and params[-1] == ("head.bias", (3,))
    assert [p.name for p in params] == [n for n, _ in tiny.param_names()]
    state = tiny.state_dict()
    assert list(state) == [p.name for p in params] and all(v.dtype == np.float32 for v in state.values())
    assert np.array_equal(tiny.param("head.weight"), state["head.weight"])
    tiny.param("head.bias", (3,))
    new = {k: v + 1 for k, v in state.items()}
    tiny.load_state_dict(new)
    assert all(np.array_equal(tiny.param(k), v) for k, v in new.items())
    tiny.set_param("head.bias", np.array([1, 2, 3], np.float32))
    assert tiny.param("head.bias").tolist() == [1, 2, 3]
    with pytest.raises(libvit.NotFoundError, match=r"unknown parameter 'head.weights' \(did you mean 'head.weight'"):
        tiny.param("head.weights")
    with pytest.raises(libvit.ShapeError, match=r"'head.bias' is \[3\], not \[4\]"):
        tiny.param("head.bias", (4,))
    with pytest.raises(libvit.NotFoundError, match=r"'cls_token' is missing \(and 18 more\); pass strict=False"):
        tiny.load_state_dict({"head.bias": new["head.bias"]})
    with pytest.raises(libvit.NotFoundError, match="no parameter 'fc.bias'"):
        tiny.load_state_dict({"fc.bias": new["head.bias"]}, strict=False)
    with pytest.raises(libvit.DtypeError, match="parameter 'head.bias' must be float32, not float64"):
        tiny.load_state_dict({"head.bias": np.zeros(3)}, strict=False)
    with pytest.raises(libvit.ShapeError):
        tiny.load_state_dict({**new, "head.bias": np.zeros(4, np.float32)})
    assert tiny.param("head.bias").tolist() == [1, 2, 3]  # nothing written by a refused load


# ---------------------------------------------------------------- metadata
def test_metadata_is_a_live_dict(tiny):
    meta = tiny.metadata
    assert dict(meta) == {} and len(meta) == 0
    meta["b"] = "2"
    meta["a"] = "1"
    meta.update(c="x y")
    assert list(meta) == ["b", "a", "c"] and meta["a"] == "1" and "c" in meta and meta.get("z") is None
    assert repr(meta) == "{'b': '2', 'a': '1', 'c': 'x y'}"
    del meta["b"]
    assert dict(tiny.metadata) == {"a": "1", "c": "x y"}
    with pytest.raises(KeyError):
        meta["b"]
    with pytest.raises(KeyError):
        del meta["b"]
    with pytest.raises(TypeError, match="must be a str, not int"):
        meta["n"] = 3  # no silent str()
    tiny.metadata = {"only": "this"}
    assert dict(tiny.metadata) == {"only": "this"}
    tiny.class_names = ["a", "b \u00e9", "c"]
    assert tiny.class_names == ["a", "b \u00e9", "c"] and json.loads(tiny.metadata["class_names"])[1] == "b \u00e9"
    with pytest.raises(libvit.InvalidArgumentError, match="2 names for 3 classes"):
        tiny.class_names = ["a", "b"]
    tiny.metadata["class_names"] = "[1, 2, 3]"
    with pytest.raises(libvit.FormatError, match="not a JSON array of strings"):
        tiny.class_names
    tiny.metadata["class_names"] = "cat,dog,cow"
    with pytest.raises(libvit.FormatError, match="'class_names': not JSON"):
        tiny.class_names
    tiny.class_names = None
    assert tiny.class_names is None


def test_normalization_rule(ctx, tiny):
    rgb = libvit.Model(ctx, **dict(TINY, in_channels=3))
    assert rgb.normalization() is None
    rgb.set_normalization([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert rgb.normalization() == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    rgb.metadata.update(mean=" 0.5 ", std="5e-1")  # one value for all channels
    assert rgb.normalization() == ((0.5,) * 3, (0.5,) * 3)
    tiny.set_normalization(0.0, 1.0)
    assert tiny.normalization() == ((0.0,), (1.0,)) and tiny.metadata["mean"] == "0.0"
    for mean, std, key in (("0.5,0.5,0.5", "0.5", "mean"),  # three values for a gray model
                           ("0.5", "0.5,0.5", "std"), ("abc", "0.5", "mean"), ("", "0.5", "mean"),
                           ("[0.5]", "0.5", "mean"), ("nan", "0.5", "mean"), ("0.5", "inf", "std"),
                           ("0.5", "1e999", "std"), ("0.5", "0", "std"), ("0.5", "-0.5", "std"),
                           ("1_0", "1", "mean"), ("0.5\nx", "0.5", "mean")):
        tiny.metadata.update(mean=mean, std=std)
        with pytest.raises(libvit.FormatError, match=f"metadata '{key}'"):
            tiny.normalization()
    del tiny.metadata["std"]
    with pytest.raises(libvit.FormatError, match="has 'mean' without 'std'"):
        tiny.normalization()
    with pytest.raises(libvit.FormatError, match="3 values for a 1-channel model"):
        tiny.set_normalization([0.5] * 3, 0.5)
    assert libvit.parse_channel_values("mean", "0.25", 3) == (0.25, 0.25, 0.25)


# ------------------------------------------------------------- checkpoints
def test_save_load_round_trip(ctx, tiny, tmp_path):
    tiny.class_names = ["a", "b", "c"]
    tiny.set_normalization(0.5, 0.25)
    path = tmp_path / "m.safetensors"
    tiny.save(path)
    again = libvit.Model.load(ctx, str(path))
    assert again.config.as_dict() == tiny.config.as_dict()
    assert again.class_names == ["a", "b", "c"] and again.normalization() == ((0.5,), (0.25,))
    x = images(3)
    assert np.array_equal(again.eval()(x), tiny.eval()(x))
    meta = libvit.read_metadata(path)
    assert meta["vit.dim"] == "12" and meta["libvit.kind"] == "model" and meta["mean"] == "0.5"
    with pytest.raises(libvit.InputOutputError, match="nope.safetensors"):
        libvit.Model.load(ctx, tmp_path / "nope.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(libvit.FormatError):
        libvit.Model.load(ctx, tmp_path / "bad.safetensors")
    with pytest.raises(libvit.InputOutputError):
        libvit.read_metadata(tmp_path / "nope.safetensors")
    with pytest.raises(libvit.InputOutputError):
        tiny.save(tmp_path / "no" / "such" / "dir.safetensors")
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        tiny.save(None)


def write_safetensors(path, tensors, metadata=None, dtype="F32"):
    header, blobs, at = {"__metadata__": metadata or {}}, [], 0
    for name, t in tensors.items():
        raw = t.astype(np.float16 if dtype == "F16" else np.float32).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_timm_files_and_load_weights(ctx, tmp_path):
    """A timm-layout file (no libvit metadata, half precision) loads with its
    configuration inferred; load_weights fine-tunes from it with another head."""
    spec = dict(img_size=8, patch_size=4, in_channels=3, num_classes=5, dim=64, depth=1, heads=1)
    src = libvit.Model(ctx, **spec)
    state = {k: np.round(v * 64) / 64 for k, v in src.state_dict().items()}  # exact in float16
    src.load_state_dict(state)
    timm = tmp_path / "model.safetensors"
    write_safetensors(timm, state, dtype="F16")
    loaded = libvit.Model.load(ctx, timm)
    assert {k: loaded.config[k] for k in spec} == spec
    assert all(np.array_equal(loaded.param(k), v) for k, v in state.items())
    other = libvit.Model(ctx, **dict(spec, num_classes=2))
    with pytest.raises(libvit.ShapeError, match="head"):
        other.load_weights(timm)
    other.load_weights(timm, allow_head_mismatch=True)
    assert np.array_equal(other.param("blocks.0.attn.qkv.weight"), state["blocks.0.attn.qkv.weight"])
    extra = tmp_path / "extra.safetensors"
    write_safetensors(extra, {**state, "dist_token": np.zeros((1, 1, 64))})
    with pytest.raises(libvit.FormatError, match="dist_token"):
        other.load_weights(extra, allow_head_mismatch=True)
    other.load_weights(extra, allow_head_mismatch=True, ignore_extra=True)
    larger = libvit.Model(ctx, **dict(spec, img_size=16))  # pos_embed resampled to the larger grid
    larger.load_weights(timm)
    assert larger.param("pos_embed").shape == (1, 17, 64)


# ----------------------------------------------------------------- metrics
def test_topk_and_accuracy(ctx):
    logits = np.array([[0.1, 2.0, -1.0, 0.5], [3.0, 0.0, 2.9, -2.0]], np.float32)
    idx, prob = libvit.topk(logits, 2)
    assert idx.tolist() == [[1, 3], [0, 2]] and idx.dtype == np.int32
    e = np.exp(logits - logits.max(1, keepdims=True))
    soft = e / e.sum(1, keepdims=True)
    assert np.allclose(prob, np.take_along_axis(soft, idx, 1), atol=1e-6)
    t = libvit.Tensor(ctx, logits)
    assert np.array_equal(libvit.topk(t, 4)[0], np.argsort(-logits, 1))
    assert libvit.accuracy(logits, [1, 2]) == 1 and libvit.accuracy(t, np.array([1, 2]), k=2) == 2
    with pytest.raises(libvit.ShapeError, match="k = 5 is outside 1..4"):
        libvit.topk(logits, 5)
    with pytest.raises(libvit.ShapeError, match="k = 0"):
        libvit.accuracy(logits, [1, 2], k=0)
    with pytest.raises(libvit.ShapeError, match=r"logits must be \[B, C\]"):
        libvit.topk(logits[0], 1)
    with pytest.raises(libvit.ShapeError):
        libvit.accuracy(logits, [1, 2, 3])
    with pytest.raises(libvit.DtypeError):
        libvit.accuracy(logits, [1.0, 2.0])
    with pytest.raises(libvit.DtypeError):
        libvit.topk(logits.astype(np.float64), 1)
