"""Datasets, transforms, the batch loader and single images (include/vit/data.h)."""
from __future__ import annotations

from ctypes import byref, c_char_p, c_double, c_int, c_int32, c_int64
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np

from ._handles import PathLike, Settings, _Handle, as_choice, as_int, live, path_bytes
from ._lib import LIB
from .core import Context, Tensor, tensor_arg
from .errors import InvalidArgumentError, ShapeError, StateError, check

__all__ = ["Dataset", "Transform", "DataLoader", "load_image", "write_png", "FORMATS", "SPLITS"]


def _format_names() -> Tuple[str, ...]:
    names, code = [], 0
    while True:
        name = LIB.vit_data_format_name(code)
        if name is None:
            return tuple(names)
        names.append(name.decode())
        code += 1


#: vit_data_format by name: "auto", "folder", "cifar10", "idx" (vit_data_format_name)
FORMATS = _format_names()
#: vit_split by name
SPLITS = ("train", "val")


class Dataset(_Handle):
    """One split of a dataset (vit_dataset): an image folder
    (root/train/<class>/*.png|jpg, root/val/...), CIFAR-10 (its python or
    binary batches) or IDX files (MNIST, Fashion-MNIST, plain or .gz).

    ``Dataset(ctx, "data", split="train")``; ``len(ds)``; ``ds[i]`` is
    (image, label): the decoded image as uint8 [H, W, C] before any
    transform, and its class index. ``ds.classes`` are the class names.
    Settings: channels (0 = the format's own, 1, 3), skip_corrupt,
    decode_size; read-only: skipped, format, width, height.
    """

    _destroy = "vit_dataset_destroy"
    SETTINGS = Settings("dataset", {"channels": 1, "skip_corrupt": 2, "decode_size": 3, "skipped": 4,
                                    "format": 5, "width": 6, "height": 7},
                        bools={"skip_corrupt"}, choices={"format": FORMATS},
                        readonly={"skipped", "format", "width", "height"})

    def __init__(self, ctx: Context, path: PathLike, *, format: str = "auto", split: str = "train",
                 **settings: Any):
        live(ctx, Context, "ctx")
        raw = path_bytes(path)
        fmt, sp = as_choice(format, "format", FORMATS), as_choice(split, "split", SPLITS)
        super().__init__(ctx)
        check(LIB.vit_dataset_open(ctx._ptr(), raw, fmt, sp, byref(self._h)))
        self.ctx, self.split = ctx, SPLITS[sp]
        self._classes: Optional[List[str]] = None
        for name, value in settings.items():
            self.set(name, value)

    def set(self, name: str, value: Any) -> None:
        """Change one setting (vit_dataset_set_int)."""
        key, _, raw = self.SETTINGS.encode(name, value)
        check(LIB.vit_dataset_set_int(self._ptr(), key, raw))

    def get(self, name: str) -> Any:
        """One setting (vit_dataset_get_int)."""
        key, _ = self.SETTINGS.key(name)
        out = c_int64()
        check(LIB.vit_dataset_get_int(self._ptr(), key, byref(out)))
        return self.SETTINGS.decode(name, out.value)

    channels = property(lambda self: self.get("channels"), lambda self, v: self.set("channels", v),
                        doc="Channels of decoded samples (1 or 3).")
    format = property(lambda self: self.get("format"), doc='"folder", "cifar10" or "idx".')
    width = property(lambda self: self.get("width"), doc="Sample width; 0 when it varies (image folders).")
    height = property(lambda self: self.get("height"), doc="Sample height; 0 when it varies.")
    skipped = property(lambda self: self.get("skipped"), doc="Corrupt files skipped so far (skip_corrupt).")

    def __len__(self) -> int:
        """Number of samples (vit_dataset_size)."""
        out = c_int64()
        check(LIB.vit_dataset_size(self._ptr(), byref(out)))
        return out.value

    @property
    def num_classes(self) -> int:
        """vit_dataset_num_classes."""
        out = c_int()
        check(LIB.vit_dataset_num_classes(self._ptr(), byref(out)))
        return out.value

    @property
    def classes(self) -> List[str]:
        """The class names, by label (vit_dataset_class_name)."""
        if self._classes is None:
            names = []
            for i in range(self.num_classes):
                name = c_char_p()
                check(LIB.vit_dataset_class_name(self._h, i, byref(name)))
                names.append(name.value.decode(errors="surrogateescape"))
            self._classes = names
        return list(self._classes)

    def _index(self, index: Any) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"a dataset index is an int, not {type(index).__name__}")
        n = len(self)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"index {int(index)} is outside 0..{n - 1}")
        return i

    def label(self, index: int) -> int:
        """One sample's label, without decoding it (vit_dataset_label)."""
        out = c_int32()
        check(LIB.vit_dataset_label(self._ptr(), self._index(index), byref(out)))
        return out.value

    def labels(self) -> np.ndarray:
        """Every label, int32 [len(ds)]."""
        return np.array([self.label(i) for i in range(len(self))], np.int32)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, int]:
        """(image uint8 [H, W, C], label): one sample as decoded (vit_dataset_get)."""
        i = self._index(index)
        image, label = Tensor._adopt(), c_int32()
        check(LIB.vit_dataset_get(self._ptr(), i, byref(image._h), byref(label)))
        image._query()
        return image.numpy(), label.value

    def __iter__(self) -> Iterator[Tuple[np.ndarray, int]]:
        for i in range(len(self)):
            yield self[i]

    def _describe(self) -> str:
        return f"{self.format} {self.split}: {len(self)} samples, {self.num_classes} classes"


class Transform(_Handle):
    """How a sample becomes model input (vit_transform): gray/RGB conversion,
    resize or random resized crop, random shift, flip and rotation, then
    float and normalisation. The default is the seed's ViTDataset: resize to
    224 bilinear, pixels / 255.

    ``Transform(ctx, size=28, flip_p=0.5, normalize="half")``. Integer
    settings: size, channels (0 = the dataset's), pad_crop; choices: resize
    and rotation_interp ("bilinear", "bicubic", "nearest"), normalize ("none",
    "imagenet", "half", "custom"); bools: random_crop, train (apply the random
    augmentations); reals: flip_p, rotation, crop_scale_min/max,
    crop_ratio_min/max, mean_0..2, std_0..2. ``mean=``/``std=`` take one
    value for all channels or one per channel (and select "custom");
    ``crop_scale=``/``crop_ratio=`` take (min, max).
    """

    _destroy = "vit_transform_destroy"
    RESIZE = ("bilinear", "bicubic", "nearest")        # vit_resize_mode
    NORMALIZE = ("none", "imagenet", "half", "custom")  # vit_normalize
    SETTINGS = Settings("transform", {"size": 1, "channels": 2, "resize": 3, "rotation_interp": 4,
                                      "random_crop": 5, "normalize": 6, "train": 7, "pad_crop": 8},
                        {"flip_p": 32, "rotation": 33, "crop_scale_min": 34, "crop_scale_max": 35,
                         "crop_ratio_min": 36, "crop_ratio_max": 37, "mean_0": 40, "mean_1": 41, "mean_2": 42,
                         "std_0": 43, "std_1": 44, "std_2": 45},
                        bools={"random_crop", "train"},
                        choices={"resize": RESIZE, "rotation_interp": RESIZE, "normalize": NORMALIZE})
    _PAIRS = {"crop_scale": ("crop_scale_min", "crop_scale_max"), "crop_ratio": ("crop_ratio_min", "crop_ratio_max")}

    def __init__(self, ctx: Context, **settings: Any):
        live(ctx, Context, "ctx")
        super().__init__(ctx)
        check(LIB.vit_transform_create(ctx._ptr(), byref(self._h)))
        self.update(**settings)

    def update(self, **settings: Any) -> "Transform":
        """Apply settings (see the class); returns the transform."""
        # size first: pad_crop is checked against it
        for name in sorted(settings, key=lambda n: n != "size"):
            value = settings[name]
            if name in ("mean", "std"):
                self.set_channel_values(name, value)
            elif name in self._PAIRS:
                if not isinstance(value, (tuple, list)) or len(value) != 2:
                    raise InvalidArgumentError(f"transform setting '{name}' takes (min, max), not {value!r}")
                for key, v in zip(self._PAIRS[name], value):
                    self.set(key, v)
            else:
                self.set(name, value)
        return self

    def set_channel_values(self, which: str, values: Any) -> None:
        """mean or std: one value for all channels, or one per channel (at most 3)."""
        values = list(values) if isinstance(values, (list, tuple, np.ndarray)) else [values]
        if len(values) not in (1, 3):
            raise InvalidArgumentError(f"transform setting '{which}' takes one value or three, not {len(values)}")
        for c in range(3):
            self.set(f"{which}_{c}", values[c if len(values) == 3 else 0])

    def set(self, name: str, value: Any) -> None:
        """Change one setting (vit_transform_set_int / vit_transform_set_float)."""
        key, real, raw = self.SETTINGS.encode(name, value)
        if real:
            check(LIB.vit_transform_set_float(self._ptr(), key, raw))
        else:
            check(LIB.vit_transform_set_int(self._ptr(), key, raw))

    def get(self, name: str) -> Any:
        """One setting (vit_transform_get_int / vit_transform_get_float)."""
        key, real = self.SETTINGS.key(name)
        if real:
            out = c_double()
            check(LIB.vit_transform_get_float(self._ptr(), key, byref(out)))
            return out.value
        out64 = c_int64()
        check(LIB.vit_transform_get_int(self._ptr(), key, byref(out64)))
        return self.SETTINGS.decode(name, out64.value)

    __getitem__ = get
    __setitem__ = set

    def as_dict(self) -> dict:
        """Every setting by name."""
        return {name: self.get(name) for name in self.SETTINGS.names()}

    def copy(self, **settings: Any) -> "Transform":
        """An independent copy (vit_transform_copy), with settings applied to it."""
        tf = Transform.__new__(Transform)
        _Handle.__init__(tf, *self._live().parents)
        check(LIB.vit_transform_copy(self._h, byref(tf._h)))
        return tf.update(**settings)

    def _describe(self) -> str:
        return f"size={self.get('size')} normalize={self.get('normalize')} train={self.get('train')}"


class DataLoader(_Handle):
    """Batches of a dataset through a transform, decoded by worker threads
    (vit_loader): PyTorch's DataLoader.

    ``DataLoader(dataset, transform, batch_size, shuffle=True, drop_last=True,
    workers=2, prefetch=2)``. Iterating yields (images float32 [B, C, S, S],
    labels int32 [B]) numpy arrays, each batch in arrays of its own that
    model.forward and model.loss take without copying. Each ``for`` loop over
    the loader is the next epoch (0, 1, ...); ``loader.epoch(n)`` iterates a
    given one. The order and augmentation depend only on (context seed,
    epoch). The transform is copied: changing it later has no effect.
    ``shard_index``/``shard_count`` make it one rank's share of every global
    batch in data-parallel training (libvit.Communicator).
    """

    _destroy = "vit_loader_destroy"
    SETTINGS = Settings("loader", {"workers": 1, "shuffle": 2, "drop_last": 3, "prefetch": 4, "batch_size": 5,
                                   "shard_index": 6, "shard_count": 7},
                        bools={"shuffle", "drop_last"}, readonly={"batch_size"})

    def __init__(self, dataset: Dataset, transform: Transform, batch_size: int, **settings: Any):
        live(dataset, Dataset, "dataset")
        live(transform, Transform, "transform")
        batch = as_int(batch_size, "batch_size")
        super().__init__(dataset)
        check(LIB.vit_loader_create(dataset._ptr(), transform._ptr(), batch, byref(self._h)))
        self.dataset = dataset
        self._channels, self._size = transform.get("channels"), transform.get("size")  # the copy's, fixed now
        self._next_epoch = 0
        self._current: Optional[object] = None  # token of the iteration in progress
        for name, value in settings.items():
            self.set(name, value)

    def set(self, name: str, value: Any) -> None:
        """Change one setting, effective at the next epoch (vit_loader_set_int)."""
        key, _, raw = self.SETTINGS.encode(name, value)
        check(LIB.vit_loader_set_int(self._ptr(), key, raw))

    def get(self, name: str) -> Any:
        """One setting (vit_loader_get_int)."""
        key, _ = self.SETTINGS.key(name)
        out = c_int64()
        check(LIB.vit_loader_get_int(self._ptr(), key, byref(out)))
        return self.SETTINGS.decode(name, out.value)

    batch_size = property(lambda self: self.get("batch_size"))

    def _dataset(self, param: Optional[int] = None) -> int:
        """The dataset's size, or an integer setting of it, through the
        loader's own reference (the Dataset object may be closed)."""
        out, ptr = c_int64(), self._live().parents[0].ptr
        check(LIB.vit_dataset_size(ptr, byref(out)) if param is None else
              LIB.vit_dataset_get_int(ptr, param, byref(out)))
        return out.value

    def __len__(self) -> int:
        """Batches per epoch under the current settings (drop_last and the shard included)."""
        n, b, index, count = self._dataset(), self.batch_size, self.get("shard_index"), self.get("shard_count")
        if self.get("drop_last"):
            return n // (b * count)
        mine = max(0, -(-(n - index) // count))  # positions index, index + count, ... below n
        return -(-mine // b)

    @property
    def num_batches(self) -> int:
        """Batches in the epoch started last (vit_loader_num_batches)."""
        out = c_int64()
        check(LIB.vit_loader_num_batches(self._ptr(), byref(out)))
        return out.value

    def __iter__(self) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        return self.epoch(self._next_epoch)

    def epoch(self, epoch: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """Start epoch `epoch` (abandoning one in progress) and iterate its batches
        (vit_loader_start_epoch, vit_loader_next). The next plain ``for`` is epoch + 1."""
        epoch = as_int(epoch, "epoch")
        check(LIB.vit_loader_start_epoch(self._ptr(), epoch))
        self._next_epoch = epoch + 1
        token = self._current = object()
        return self._batches(token)

    def _batches(self, token: object) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        ctx_owner = self._live().parents[0].parents[0]  # loader -> dataset -> context
        batch = self.batch_size
        # as the loader does at the epoch's start: the transform's channels, else the dataset's
        shape = (batch, self._channels or self._dataset(Dataset.SETTINGS.ints["channels"]), self._size, self._size)
        while True:
            if self._current is not token:
                raise StateError("this loader has started another epoch since this iteration began")
            images, labels, count = Tensor.__new__(Tensor), Tensor.__new__(Tensor), c_int()
            images._create_in(ctx_owner, shape, np.dtype(np.float32))
            labels._create_in(ctx_owner, (batch,), np.dtype(np.int32))
            check(LIB.vit_loader_next(self._ptr(), images._h, labels._h, byref(count)))
            if count.value == 0:
                return
            x, y = images.numpy(), labels.numpy()
            yield (x, y) if count.value == batch else (x[:count.value], y[:count.value])

    def _describe(self) -> str:
        return f"batch_size={self.batch_size} workers={self.get('workers')}"


def load_image(path: PathLike, transform: Transform, *, batch: bool = False) -> np.ndarray:
    """One JPEG or PNG through the deterministic part of transform (channels,
    resize, normalisation), as float32 [C, S, S], or [1, C, S, S] with batch,
    ready for model.forward (vit_image_load)."""
    raw = path_bytes(path)
    live(transform, Transform, "transform")
    size = transform.get("size")
    shape = (transform.get("channels") or 3, size, size)
    out = Tensor.__new__(Tensor)
    out._create_in(transform._live().parents[0], ((1,) if batch else ()) + shape, np.dtype(np.float32))
    check(LIB.vit_image_load(transform._h, raw, out._h))
    return out.numpy()


def write_png(path: PathLike, pixels: Any) -> None:
    """Write uint8 pixels [H, W] (gray) or [H, W, C] with C = 1, 3 or 4 as a PNG,
    atomically (vit_image_write_png)."""
    raw = path_bytes(path)
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ShapeError(f"pixels must be [H, W] or [H, W, C], not {list(array.shape)}")
    owner, _ = tensor_arg(array, np.dtype(np.uint8), "pixels",
                          hint="convert explicitly, e.g. (x * 255).round().clip(0, 255).astype(np.uint8)")
    check(LIB.vit_image_write_png(raw, owner.ptr))
