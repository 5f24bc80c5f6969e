"""libvit: train and run Vision Transformers, from Python.

A thin ctypes layer over the C library libvit.so.0: every call of the public
headers (include/vit/*.h), in Python idiom, with numpy arrays in and out.
The seed tutorial's PyTorch loop reads almost the same::

    import numpy as np, libvit
    ctx = libvit.Context(threads=2, seed=0)
    train_set = libvit.Dataset(ctx, "/usr/share/datasets/fashion-mnist", split="train")
    loader = libvit.DataLoader(train_set, libvit.Transform(ctx, size=28), batch_size=128)
    model = libvit.Model(ctx, img_size=28, patch_size=4, in_channels=1, num_classes=10,
                         dim=96, depth=6, heads=3)
    optimizer = libvit.AdamW(model, lr=1e-3)
    model.train()
    for images, labels in loader:            # float32 [B, 1, 28, 28], int32 [B]
        optimizer.zero_grad()
        outputs = model(images)              # logits [B, 10]
        loss = model.loss(labels)            # cross-entropy, a float
        model.backward()
        optimizer.step()
    model.save("model.safetensors")

The library is found through $VIT_LIBRARY (a path), else the libdir of the
install this package came with, else the loader's search path. Failing calls
raise a libvit.VitError subclass per status, carrying the library's message.
docs/python.md describes the whole API.
"""
from ._lib import LIB as _LIB, PATH as library_path
from ._version import __version__
from ._handles import _Handle  # noqa: F401  (the handle base class, for code that fills handles itself)
from .errors import (CancelledError, DtypeError, Error, FormatError, InputOutputError, InternalError,
                     InvalidArgumentError, NotFoundError, NumericError, OutOfMemoryError, ShapeError, StateError,
                     UnsupportedError, VitError, check as _check, status_string)  # noqa: F401
from .core import CPU_ISA_NAMES, DEVICES, DTYPES, LOG_LEVELS, MAX_DIMS, PRECISIONS, Context, Tensor
from .model import (LOAD_ALLOW_HEAD_MISMATCH, LOAD_IGNORE_EXTRA, Config, Model, ParamInfo, accuracy,
                    parse_channel_values, presets, read_metadata, topk)
from .optim import OPTIM_STATES, AdamW
from .data import FORMATS, SPLITS, DataLoader, Dataset, Transform, load_image, write_png
from .plot import plot_curves
from .dist import COMM_STATS, Communicator, launch_size

__all__ = [
    "__version__", "library_path", "library_version", "library_version_number", "version", "load_library",
    "VitError", "Error", "InvalidArgumentError", "ShapeError", "DtypeError", "OutOfMemoryError",
    "InputOutputError", "FormatError", "UnsupportedError", "StateError", "NumericError", "InternalError",
    "CancelledError", "NotFoundError", "status_string",
    "Context", "Tensor", "CPU_ISA_NAMES", "DEVICES", "DTYPES", "LOG_LEVELS", "MAX_DIMS", "PRECISIONS",
    "Config", "Model", "ParamInfo", "presets", "topk", "accuracy", "read_metadata", "parse_channel_values",
    "LOAD_ALLOW_HEAD_MISMATCH", "LOAD_IGNORE_EXTRA",
    "AdamW", "OPTIM_STATES",
    "Dataset", "Transform", "DataLoader", "load_image", "write_png", "FORMATS", "SPLITS",
    "plot_curves",
    "Communicator", "COMM_STATS", "launch_size",
]


def library_version() -> str:
    """The loaded library's version string (vit_version_string); __version__ is the package's."""
    return _LIB.vit_version_string().decode()


def library_version_number() -> int:
    """MAJOR * 10000 + MINOR * 100 + PATCH of the loaded library (vit_version_number)."""
    return int(_LIB.vit_version_number())


version = library_version


def load_library(path=None):
    """The ctypes library object, every prototype declared. The library is
    loaded once, at import; path, if given, must name that same file."""
    import os
    if path is not None and os.path.realpath(path) != os.path.realpath(library_path):
        raise ValueError(f"libvit is already loaded from {library_path}")
    return _LIB
