"""bindings/python/examples: the seed's train.py and predict.py on libvit,
run on a slice of Fashion-MNIST; the checkpoint train.py writes is read by
predict.py, by the package and by vit-predict, which all agree."""
import os
import re
import subprocess
import sys

import pytest

import libvit
from conftest import PACKAGE_DIR, make_folder, subprocess_env

EXAMPLES = os.path.join(PACKAGE_DIR, "examples")
EPOCH_LINE = re.compile(r"Epoch (\d+): Train Loss=(\d+\.\d{4}), Train Acc=(\d\.\d{4}), "
                        r"Val Loss=(\d+\.\d{4}), Val Acc=(\d\.\d{4})")
# the seed's train() parameters, as flags
SEED_FLAGS = ["--root", "--img-size", "--patch-size", "--in-channels", "--num-features", "--depth", "--num-heads",
              "--mlp-ratio", "--qkv-bias", "--drop-rate", "--attn-drop-rate", "--drop-path-rate", "--epochs",
              "--batch-size", "--num-workers", "--lr", "--device"]


def run_example(script, *args, cwd):
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *map(str, args)], cwd=cwd,
                          env=subprocess_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(fashion_slice, tmp_path_factory):
    """train.py on 512 training and 128 validation images: 3 epochs of a small model."""
    out = tmp_path_factory.mktemp("train")
    p = run_example("train.py", "--root", fashion_slice, "--img-size", 28, "--patch-size", 7, "--num-features", 32,
                    "--depth", 1, "--num-heads", 2, "--drop-rate", 0, "--attn-drop-rate", 0, "--drop-path-rate", 0,
                    "--epochs", 3, "--batch-size", 32, "--lr", 3e-3, "--num-workers", 1, "--threads", 1,
                    "--out", out, cwd=out)
    assert p.returncode == 0, p.stdout + p.stderr
    return out, p.stdout


def test_the_examples_are_short():
    lines = sum(len(open(os.path.join(EXAMPLES, f)).read().splitlines()) for f in ("train.py", "predict.py"))
    assert lines < 200, f"train.py and predict.py have {lines} lines together"
    p = run_example("train.py", "--help", cwd=EXAMPLES)
    assert p.returncode == 0 and all(flag in p.stdout for flag in SEED_FLAGS), p.stdout


def test_train_prints_the_seeds_lines_and_writes_its_files(ctx, fashion_slice, trained):
    out, stdout = trained
    lines = stdout.splitlines()
    epochs = [EPOCH_LINE.fullmatch(line) for line in lines[:-1]]
    assert len(lines) == 4 and all(epochs) and [int(m.group(1)) for m in epochs] == [1, 2, 3], stdout
    accuracies = [float(m.group(5)) for m in epochs]
    assert lines[-1] == f"Training finished, best validation accuracy: {max(accuracies):.4f}"
    assert float(epochs[-1].group(2)) < float(epochs[0].group(2))  # it learns
    for name in ("loss_curve.png", "acc_curve.png"):
        with open(out / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    model = libvit.Model.load(ctx, out / "best.safetensors")
    assert model.class_names[:2] == ["T-shirt/top", "Trouser"] and model.normalization() == ((0.0,), (1.0,))
    assert (model.config["patch_norm"], model.config["ln_eps"], model.num_classes) == (True, 1e-5, 10)
    # the best checkpoint scores what its epoch printed
    val = libvit.Dataset(ctx, fashion_slice, split="val")
    loader = libvit.DataLoader(val, libvit.Transform(ctx, size=28, train=False), 50, shuffle=False, drop_last=False)
    model.eval()
    with model.no_grad():
        correct = sum(libvit.accuracy(model(x), y) for x, y in loader)
    assert f"{correct / len(val):.4f}" == f"{max(accuracies):.4f}"


def test_predict_agrees_with_the_package_and_vit_predict(ctx, fashion_slice, trained):
    out, _ = trained
    val = libvit.Dataset(ctx, fashion_slice, split="val")
    paths = []
    for i in range(4):
        paths.append(str(out / f"val {i}.png"))  # a space in the name
        libvit.write_png(paths[-1], val[i][0])
    ckpt = str(out / "best.safetensors")
    p = run_example("predict.py", "--checkpoint", ckpt, "--top-k", 3, *paths, cwd=out)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 4 * 4
    model = libvit.Model.load(ctx, ckpt).eval()
    names = model.class_names
    for i, path in enumerate(paths):
        assert lines[4 * i] == f"{path}:"
        x = libvit.load_image(path, libvit.Transform(ctx, size=28, channels=1), batch=True)
        index, prob = libvit.topk(model(x), 3)
        for k in range(3):
            assert lines[4 * i + 1 + k] == f"  {k + 1}. {names[index[0, k]]} ({index[0, k]}): {prob[0, k]:.4f}"
    # a missing image is reported, the others still classified, exit status 1
    missing = str(out / "missing.png")
    q = run_example("predict.py", "--checkpoint", ckpt, "--top-k", 3, paths[0], missing, cwd=out)
    assert q.returncode == 1 and q.stdout.splitlines() == lines[:4] and "missing.png" in q.stderr
    q = run_example("predict.py", "--checkpoint", str(out / "nope.safetensors"), paths[0], cwd=out)
    assert q.returncode == 1 and "nope.safetensors" in q.stderr
    vit_predict = os.environ.get("VIT_PREDICT")
    if not vit_predict:
        pytest.skip("VIT_PREDICT is not set (meson test sets it when the example programs are built)")
    v = subprocess.run([vit_predict, "--checkpoint", ckpt, "--top-k", "3", "--threads", "1", *paths],
                       capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stderr
    assert v.stdout == p.stdout  # the same classes and probabilities, printed the same way


@pytest.mark.parametrize("data, normalize", [("fashion", "half"), ("folder", "imagenet")])
def test_predict_reads_vit_train_checkpoints(ctx, fashion_slice, tmp_path, data, normalize):
    """predict.py on what vit-train writes, gray and colour, with its normalisation: as vit-predict."""
    vit_train, vit_predict = os.environ.get("VIT_TRAIN"), os.environ.get("VIT_PREDICT")
    if not vit_train or not vit_predict:
        pytest.skip("VIT_TRAIN and VIT_PREDICT are not set (meson test sets them when the programs are built)")
    root = fashion_slice if data == "fashion" else make_folder(tmp_path / "data")
    size = 28 if data == "fashion" else 8
    t = subprocess.run([vit_train, "--data", root, "--out", str(tmp_path / "run"), "--img-size", str(size),
                        "--patch-size", "4", "--dim", "16", "--depth", "1", "--heads", "2", "--epochs", "1",
                        "--batch-size", "16", "--lr", "3e-3", "--normalize", normalize, "--threads", "1",
                        "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert t.returncode == 0, t.stderr
    ckpt = str(tmp_path / "run" / "best.safetensors")
    ds = libvit.Dataset(ctx, root, split="val")
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        libvit.write_png(paths[-1], ds[i][0])
    p = run_example("predict.py", "--checkpoint", ckpt, "--top-k", 3, *paths, cwd=tmp_path)
    v = subprocess.run([vit_predict, "--checkpoint", ckpt, "--top-k", "3", *paths], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and v.returncode == 0, p.stderr + v.stderr
    assert p.stdout == v.stdout and len(p.stdout.splitlines()) == 12
