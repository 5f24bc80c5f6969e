"""AdamW: settings, the update, its state and checkpoints."""
import numpy as np
import pytest

import libvit
from conftest import TINY, images


def stepped(ctx, **settings):
    model = libvit.Model(ctx, **TINY)
    opt = libvit.AdamW(model, **settings)
    model(images(4))
    model.loss([0, 1, 2, 0])
    model.backward()
    return model, opt


def test_settings(tiny):
    opt = libvit.AdamW(tiny)
    assert opt.settings() == dict(step=0, decay_exempt=False, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                                  weight_decay=0.01, clip_grad_norm=0.0, last_grad_norm=0.0)
    opt = libvit.AdamW(tiny, lr=3e-4, betas=(0.8, 0.99), weight_decay=0.05, decay_exempt=True, clip_grad_norm=1)
    assert (opt.lr, opt.get("beta1"), opt.get("beta2"), opt.get("weight_decay")) == (3e-4, 0.8, 0.99, 0.05)
    assert opt.get("decay_exempt") is True and opt.get("clip_grad_norm") == 1.0
    opt.lr = 1e-2
    opt.steps = 5
    assert opt.lr == 1e-2 and opt.steps == 5 and opt.model is tiny and "step=5" in repr(opt)
    with pytest.raises(libvit.InvalidArgumentError, match=r"unknown AdamW setting 'weight_dacay' \(did you mean"):
        libvit.AdamW(tiny, weight_dacay=0.1)
    with pytest.raises(libvit.InvalidArgumentError, match="read-only"):
        opt.set("last_grad_norm", 1.0)
    with pytest.raises(libvit.InvalidArgumentError, match=r"betas must be \(beta1, beta2\)"):
        libvit.AdamW(tiny, betas=(0.9,))
    with pytest.raises(TypeError, match="must be a real number"):
        opt.lr = "fast"
    with pytest.raises(libvit.InvalidArgumentError):
        opt.lr = -1.0  # the library's range check
    with pytest.raises(TypeError, match="model must be a libvit.Model"):
        libvit.AdamW(object())


def test_one_step_is_adamw(ctx):
    """The first step of torch.optim.AdamW: p -= lr * (p * wd + m_hat / (sqrt(v_hat) + eps)), m_hat = g, v_hat = g^2."""
    model, opt = stepped(ctx, lr=0.1, weight_decay=0.5, clip_grad_norm=0)
    before, grads = model.state_dict(), {p.name: model.grad(p.name) for p in model.parameters()}
    opt.step()
    assert opt.steps == 1 and opt.last_grad_norm > 0
    for name, p in before.items():
        g = grads[name].astype(np.float64)
        want = p * (1 - 0.1 * 0.5) - 0.1 * g / (np.abs(g) + 1e-8)
        assert np.allclose(model.param(name), want, atol=1e-5), name
        assert np.allclose(opt.read_state("exp_avg", name), 0.1 * g, atol=1e-7)
        assert np.allclose(opt.read_state("exp_avg_sq", name), 0.001 * g * g, rtol=1e-4, atol=1e-12)  # 1 - beta2 in float32
    opt.zero_grad()
    assert not model.grad("head.bias").any()


def test_state_read_write_and_state_dict(ctx):
    model, opt = stepped(ctx)
    opt.step()
    state = opt.state_dict()
    assert set(state) == {"settings", "exp_avg", "exp_avg_sq"} and state["settings"]["step"] == 1
    assert list(state["exp_avg"]) == [p.name for p in model.parameters()]
    model2, opt2 = stepped(ctx)
    opt2.load_state_dict(state)
    assert opt2.steps == 1
    for which in libvit.OPTIM_STATES:
        for name, value in state[which].items():
            assert np.array_equal(opt2.read_state(which, name), value)
    opt2.write_state("exp_avg", "head.bias", np.ones(3, np.float32))
    assert opt2.read_state("exp_avg", "head.bias").tolist() == [1, 1, 1]
    with pytest.raises(libvit.InvalidArgumentError, match="'momentum' is not one of exp_avg, exp_avg_sq"):
        opt2.read_state("momentum", "head.bias")
    with pytest.raises(libvit.NotFoundError, match="did you mean 'head.bias'"):
        opt2.read_state("exp_avg", "head.biass")
    with pytest.raises(libvit.ShapeError, match=r"exp_avg of 'head.bias' is \[3\], not \[4\]"):
        opt2.write_state("exp_avg", "head.bias", np.ones(4, np.float32))
    with pytest.raises(libvit.DtypeError):
        opt2.write_state("exp_avg", "head.bias", np.ones(3))
    with pytest.raises(libvit.NotFoundError):
        opt2.load_state_dict({"exp_avg": {"nope": np.ones(3, np.float32)}})


def test_save_and_load(ctx, tmp_path):
    model, opt = stepped(ctx, lr=0.01, weight_decay=0.1)
    opt.step()
    opt.save(tmp_path / "plain.safetensors")
    opt.save(tmp_path / "opt.safetensors", extra={"train.epoch": "3", "note": "caf\u00e9"})
    meta = libvit.read_metadata(tmp_path / "opt.safetensors")
    assert meta["train.epoch"] == "3" and meta["note"] == "caf\u00e9" and meta["optim.step"] == "1"
    assert "train.epoch" not in libvit.read_metadata(tmp_path / "plain.safetensors")
    model2, opt2 = stepped(ctx)
    opt2.load(tmp_path / "opt.safetensors")
    assert opt2.steps == 1 and opt2.lr == 0.01 and opt2.get("weight_decay") == 0.1
    for name in ("head.bias", "pos_embed"):
        assert np.array_equal(opt2.read_state("exp_avg_sq", name), opt.read_state("exp_avg_sq", name))
    with pytest.raises(libvit.InputOutputError):
        opt2.load(tmp_path / "missing.safetensors")
    model.save(tmp_path / "model.safetensors")
    with pytest.raises(libvit.FormatError):
        opt2.load(tmp_path / "model.safetensors")  # a model file is not optimizer state
    with pytest.raises(libvit.InvalidArgumentError):
        opt.save(tmp_path / "bad.safetensors", extra={"optim.lr": "1"})  # a reserved name
    with pytest.raises(TypeError):
        opt.save(tmp_path / "bad.safetensors", extra={"epoch": 3})
