"""Shared set-up of the Python package's tests (bindings/python/libvit).

meson runs them (`meson test -C build --suite python`) with VIT_LIBRARY set
to the build's libvit.so.0; by hand:

    VIT_LIBRARY=build/libvit/libvit.so.0 python3 -m pytest -q tests/python

Data is generated into temporary folders: PNG image folders (written with
libvit.write_png), IDX files cut from Debian's Fashion-MNIST, CIFAR-10
binary batches.
"""
import gzip
import os
import struct
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PACKAGE_DIR = os.path.join(ROOT, "bindings", "python")
FASHION = "/usr/share/datasets/fashion-mnist"
sys.path.insert(0, PACKAGE_DIR)
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))

import libvit  # noqa: E402

# A tiny model: 8x8 gray images in 4 patches, width 12, one block.
TINY = dict(img_size=8, patch_size=4, in_channels=1, num_classes=3, dim=12, depth=1, heads=2)
CLASSES = ["checker", "h-stripes", "v stripes \u00e9"]  # sorted; a space and a non-ASCII name on purpose


def subprocess_env(**extra):
    """The environment for a child Python: this package first on its path."""
    env = dict(os.environ, **dict(dict(PYTHONPATH=PACKAGE_DIR, PYTHONDONTWRITEBYTECODE="1"), **extra))
    return {k: v for k, v in env.items() if v is not None}


@pytest.fixture
def ctx():
    with libvit.Context(threads=1, seed=0) as c:
        yield c


@pytest.fixture
def tiny(ctx):
    return libvit.Model(ctx, **TINY)


def images(batch, channels=1, size=8, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, channels, size, size)).astype(np.float32)


def pattern(label, rng, size=8, channels=3):
    """A uint8 image [size, size, channels] of class label: checkerboard, horizontal or vertical stripes."""
    y, x = np.mgrid[0:size, 0:size]
    base = [((x + y) % 2), (y % 2), (x % 2)][label].astype(np.float64)
    noisy = 40 + 170 * base[..., None] + rng.integers(0, 40, (size, size, channels))
    return noisy.clip(0, 255).astype(np.uint8)


def make_folder(root, train_per_class=6, val_per_class=3, size=8, seed=0):
    """root/{train,val}/<class>/NNN.png with the CLASSES patterns."""
    rng = np.random.default_rng(seed)
    for split, per in (("train", train_per_class), ("val", val_per_class)):
        for label, name in enumerate(CLASSES):
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
            for i in range(per):
                libvit.write_png(os.path.join(root, split, name, f"{i:03d}.png"), pattern(label, rng, size))
    return str(root)


def write_idx(path, array):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x0800 | array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(np.ascontiguousarray(array, np.uint8).tobytes())


def read_idx_gz(path):
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="session")
def fashion_slice(tmp_path_factory):
    """The first 512 training and 128 test images of Fashion-MNIST as plain IDX files."""
    if not os.path.isdir(FASHION):
        pytest.skip(f"{FASHION} is missing (Debian: dataset-fashion-mnist)")
    root = tmp_path_factory.mktemp("fashion-mnist")
    for split, n in (("train", 512), ("t10k", 128)):
        write_idx(root / f"{split}-images-idx3-ubyte", read_idx_gz(f"{FASHION}/{split}-images-idx3-ubyte.gz")[:n])
        write_idx(root / f"{split}-labels-idx1-ubyte", read_idx_gz(f"{FASHION}/{split}-labels-idx1-ubyte.gz")[:n])
    return str(root)


_passed = 0


def pytest_runtest_logreport(report):
    global _passed
    if report.when == "call" and report.passed:
        _passed += 1


def pytest_sessionfinish(session, exitstatus):
    """A run in which nothing passed (everything skipped or deselected) is a failure, not a silent success."""
    if exitstatus == 0 and _passed == 0:
        session.exitstatus = 1
        print("\nno test passed: failing the run", file=sys.stderr)
