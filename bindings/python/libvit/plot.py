"""Training curves as PNG images (include/vit/plot.h)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ._handles import PathLike, as_int, path_bytes, text_bytes
from ._lib import LIB
from .errors import InvalidArgumentError, ShapeError, check

__all__ = ["plot_curves"]


def plot_curves(path: PathLike, series: Mapping[str, Sequence[float]], *, title: str = "", y_label: str = "",
                width: int = 0, height: int = 0) -> None:
    """Draw one or two curves over epochs 1..n as an RGB PNG, atomically
    (vit_plot_curves), as vit-train draws loss_curve.png and acc_curve.png:

        plot_curves("loss_curve.png", {"Train Loss": train, "Val Loss": val}, title="Loss Curve")

    series maps each legend label to its values (equal lengths, at least one;
    NaN leaves a gap). width x height is at least 160 x 120; 0 x 0 is 800 x 600.
    """
    raw = path_bytes(path)
    if not isinstance(series, Mapping) or not 1 <= len(series) <= 2:
        raise InvalidArgumentError("series must map one or two labels to their values")
    labels = [text_bytes(label, "a series label") for label in series]
    values = [np.ascontiguousarray(np.asarray(v, dtype=np.float64), dtype=np.float32) for v in series.values()]
    if any(v.ndim != 1 for v in values) or len({len(v) for v in values}) != 1 or len(values[0]) == 0:
        raise ShapeError("plot_curves: the series must be non-empty 1-D sequences of equal length, not "
                         f"{[list(v.shape) for v in values]}")
    a, b = values[0], values[1] if len(values) == 2 else None
    check(LIB.vit_plot_curves(raw, text_bytes(title, "title"), text_bytes(y_label, "y_label"), len(a),
                              a.ctypes.data, labels[0], None if b is None else b.ctypes.data,
                              labels[1] if b is not None else None, as_int(width, "width"), as_int(height, "height")))
