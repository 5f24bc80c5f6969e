"""Configurations, the Vision Transformer, metrics and checkpoints
(include/vit/model.h, include/vit/checkpoint.h)."""
from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import MutableMapping
from ctypes import byref, c_char_p, c_double, c_float, c_int, c_int64, c_uint64, c_void_p
from typing import (Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union)

import numpy as np

from ._handles import (PathLike, Settings, _Handle, _Owner, as_bool, as_float, as_int, as_uint64, check_dtype,
                       live, path_bytes, text_bytes, unknown_key)
from ._lib import LIB, METADATA_FN
from .core import MAX_DIMS, Context, Tensor, tensor_arg, viewed_tensor
from .errors import DtypeError, FormatError, InvalidArgumentError, NotFoundError, ShapeError, StateError, check

__all__ = ["Config", "Model", "ParamInfo", "presets", "topk", "accuracy", "read_metadata",
           "parse_channel_values", "LOAD_ALLOW_HEAD_MISMATCH", "LOAD_IGNORE_EXTRA"]

LOAD_ALLOW_HEAD_MISMATCH = 1  # VIT_LOAD_ALLOW_HEAD_MISMATCH
LOAD_IGNORE_EXTRA = 2         # VIT_LOAD_IGNORE_EXTRA
ONNX_OPSET = 1                # VIT_ONNX_OPSET
ONNX_BATCH = 2                # VIT_ONNX_BATCH
ONNX_EXTERNAL_DATA = 3        # VIT_ONNX_EXTERNAL_DATA

_F32 = np.dtype(np.float32)
_I32 = np.dtype(np.int32)
_UINT8_HINT = ("pixels in 0..255 are not model input: convert explicitly, e.g. "
               "images.astype(np.float32) / 255 (then normalise as in training)")


def presets() -> List[str]:
    """The timm preset names libvit knows ("vit_tiny_patch16_224", ...; vit_preset_name)."""
    names, i = [], 0
    while True:
        name = LIB.vit_preset_name(i)
        if name is None:
            return names
        names.append(name.decode())
        i += 1


class Config(_Handle):
    """A model configuration (vit_config), ViT-B/16 at 224 by default.

    ``Config("vit_tiny_patch16_224", img_size=32, patch_size=4)`` applies a
    timm preset, then the settings. Settings: img_size, patch_size,
    in_channels, num_classes, dim, depth, heads, reg_tokens, fc_norm (-1 auto,
    0, 1) (integers), qkv_bias, patch_norm, class_token, no_embed_class,
    pre_norm, patch_bias, quick_gelu (bools), global_pool ("token", "avg" or "map"),
    mlp_ratio, drop_rate, attn_drop_rate, drop_path_rate, ln_eps, init_values
    (reals). ``cfg["dim"]``,
    ``cfg.get("dim")``, ``cfg.set("dim", 384)``, ``cfg.as_dict()``.
    """

    _destroy = "vit_config_destroy"
    SETTINGS = Settings("config", {"img_size": 1, "patch_size": 2, "in_channels": 3, "num_classes": 4, "dim": 5,
                                   "depth": 6, "heads": 7, "qkv_bias": 8, "patch_norm": 9, "global_pool": 10,
                                   "class_token": 11, "reg_tokens": 12, "no_embed_class": 13, "pre_norm": 14,
                                   "patch_bias": 15, "quick_gelu": 16, "fc_norm": 17},
                        {"mlp_ratio": 32, "drop_rate": 33, "attn_drop_rate": 34, "drop_path_rate": 35,
                         "ln_eps": 36, "init_values": 37},
                        bools={"qkv_bias", "patch_norm", "class_token", "no_embed_class", "pre_norm", "patch_bias",
                               "quick_gelu"},
                        choices={"global_pool": ("token", "avg", "map")})

    def __init__(self, preset: Optional[str] = None, **settings: Any):
        super().__init__()
        check(LIB.vit_config_create(byref(self._h)))
        if preset is not None:
            self.apply_preset(preset)
        for name, value in settings.items():
            self.set(name, value)

    @classmethod
    def _of_model(cls, model_ptr) -> "Config":
        cfg = cls.__new__(cls)
        _Handle.__init__(cfg)
        check(LIB.vit_model_get_config(model_ptr, byref(cfg._h)))
        return cfg

    def apply_preset(self, name: str) -> None:
        """Set the sizes of a timm preset (vit_config_set_preset); see presets()."""
        raw = text_bytes(name, "preset")
        known = presets()
        if name not in known:
            raise NotFoundError(str(unknown_key("preset", name, known)).split(": ", 1)[1])
        check(LIB.vit_config_set_preset(self._ptr(), raw))

    def set(self, name: str, value: Any) -> None:
        """Change one setting (vit_config_set_int / vit_config_set_float)."""
        key, real, raw = self.SETTINGS.encode(name, value)
        if real:
            check(LIB.vit_config_set_float(self._ptr(), key, raw))
        else:
            check(LIB.vit_config_set_int(self._ptr(), key, raw))

    def get(self, name: str) -> Any:
        """One setting: int, float, bool, or "token"/"avg" for global_pool."""
        key, real = self.SETTINGS.key(name)
        if real:
            out = c_double()
            check(LIB.vit_config_get_float(self._ptr(), key, byref(out)))
            return out.value
        out64 = c_int64()
        check(LIB.vit_config_get_int(self._ptr(), key, byref(out64)))
        return self.SETTINGS.decode(name, out64.value)

    __getitem__ = get
    __setitem__ = set

    def keys(self) -> List[str]:
        """The setting names."""
        return self.SETTINGS.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def as_dict(self) -> Dict[str, Any]:
        """Every setting; ``Config(**cfg.as_dict())`` is an equal configuration."""
        return {name: self.get(name) for name in self.keys()}

    def copy(self) -> "Config":
        """An independent copy (vit_config_copy)."""
        cfg = Config.__new__(Config)
        _Handle.__init__(cfg)
        check(LIB.vit_config_copy(self._ptr(), byref(cfg._h)))
        return cfg

    def validate(self) -> None:
        """InvalidArgumentError unless the settings fit together (heads divide dim, ...; vit_config_validate)."""
        check(LIB.vit_config_validate(self._ptr()))

    def _describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.as_dict().items())


class ParamInfo(NamedTuple):
    """A parameter's timm name and shape."""
    name: str
    shape: Tuple[int, ...]


def _param_infos(model_ptr) -> List[ParamInfo]:
    count = c_int()
    check(LIB.vit_model_param_count(model_ptr, byref(count)))
    infos = []
    for i in range(count.value):
        name, ndim, dims = c_char_p(), c_int(), (c_int64 * MAX_DIMS)()
        check(LIB.vit_model_param_info(model_ptr, i, byref(name), byref(ndim), dims))
        infos.append(ParamInfo(name.value.decode(), tuple(dims[:ndim.value])))
    return infos


def _find_param(infos: Sequence[ParamInfo], name: str) -> ParamInfo:
    for p in infos:
        if p.name == name:
            return p
    if not isinstance(name, str):
        raise TypeError(f"a parameter name is a str, not {type(name).__name__}")
    raise NotFoundError(str(unknown_key("parameter", name, [p.name for p in infos])).split(": ", 1)[1])


def labels_arg(labels: Any, what: str = "labels", buffer: Any = None) -> Tuple[_Owner, Tuple[int, ...]]:
    """(owner, shape) of an int32 labels tensor. An integer array of another
    type converts after a range check (a list of ints is int64); floats and
    bools are refused: a label of 1.7 is a bug to report, not a 1 to guess.
    A Tensor or a view of one goes to C as it is; other arrays are copied into
    buffer(shape) when given (a reused tensor), else into a new tensor."""
    if isinstance(labels, Tensor):
        return tensor_arg(labels, _I32, what)
    array = np.asarray(labels)
    if array.dtype.kind not in "iu":
        raise DtypeError(f"{what} must be integer class indices, not {array.dtype.name}; convert explicitly "
                         "once they are known to be whole, e.g. labels.astype(np.int32)")
    if array.dtype != _I32:
        if array.size and (array.min() < -2**31 or array.max() >= 2**31):
            raise InvalidArgumentError(f"{what} hold values beyond int32")
        array = array.astype(np.int32)
    if buffer is None or viewed_tensor(array) is not None:
        return tensor_arg(array, _I32, what)
    t = buffer(array.shape)
    t.copy_from(array)
    return t._owner, array.shape


class Metadata(MutableMapping):
    """A model's string metadata as a live dict (vit_model_get_metadata,
    vit_model_set_metadata, vit_model_metadata_key); keys in insertion order.
    Keys and values are str; checkpoints carry them (class_names, mean, std, ...)."""

    def __init__(self, model: "Model"):
        self._model = model

    def __getitem__(self, key: str) -> str:
        value = c_char_p()
        check(LIB.vit_model_get_metadata(self._model._ptr(), text_bytes(key, "a metadata key"), byref(value)))
        if value.value is None:
            raise KeyError(key)
        return value.value.decode(errors="replace")

    def __setitem__(self, key: str, value: str) -> None:
        check(LIB.vit_model_set_metadata(self._model._ptr(), text_bytes(key, "a metadata key"),
                                         text_bytes(value, f"metadata '{key}'")))

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        check(LIB.vit_model_set_metadata(self._model._ptr(), text_bytes(key, "a metadata key"), None))

    def __iter__(self) -> Iterator[str]:
        keys, ptr = [], self._model._ptr()
        while True:
            key = c_char_p()
            check(LIB.vit_model_metadata_key(ptr, len(keys), byref(key)))
            if key.value is None:
                return iter(keys)
            keys.append(key.value.decode(errors="replace"))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr(dict(self))


# A decimal number as C's strtod reads one (no digit separators: Python's float() takes "1_0").
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def parse_channel_values(key: str, text: str, channels: int) -> Tuple[float, ...]:
    """A 'mean' or 'std' metadata value: one number per channel, or one for all
    channels (repeated). Anything else, a wrong count, text that is not a
    number, a non-finite value, a std <= 0, is a FormatError naming the key."""
    parts = [p.strip() for p in text.split(",")]
    if not all(_NUMBER.fullmatch(p) for p in parts):
        raise FormatError(f"metadata '{key}' = {text!r}: not a comma-separated list of numbers")
    values = tuple(float(p) for p in parts)
    if not all(math.isfinite(v) for v in values):
        raise FormatError(f"metadata '{key}' = {text!r}: a value is not finite")
    if key == "std" and not all(v > 0 for v in values):
        raise FormatError(f"metadata '{key}' = {text!r}: a standard deviation must be > 0")
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise FormatError(f"metadata '{key}' = {text!r}: {len(values)} values for a {channels}-channel model "
                          "(one per channel, or one for all)")
    return values


class Model(_Handle):
    """A Vision Transformer (vit_model) with timm's parameter names.

    ``Model(ctx, img_size=28, patch_size=4, in_channels=1, num_classes=10,
    dim=96, depth=6, heads=3)``, or ``Model(ctx, config)``, or a preset:
    ``Model(ctx, preset="vit_tiny_patch16_224", num_classes=10)``. Keyword
    settings apply over a copy of config or the preset. ``Model.load(ctx,
    path)`` reads a checkpoint (libvit's or timm's safetensors).

    The step is PyTorch's: ``outputs = model(images)``, ``loss =
    model.loss(labels)``, ``model.backward()``, then the optimizer.
    ``model.train()`` / ``model.eval()`` switch dropout; ``with
    model.no_grad():`` records nothing (inference). forward reuses its input
    and logits tensors while the batch shape repeats, and takes a Tensor or a
    view of one (a DataLoader batch) without copying it. The images stay in
    use until backward: do not modify them in between.

    Attributes: ``ctx`` (the Context), ``config`` (a copy of the
    configuration), ``num_classes``, ``logits`` (the Tensor the last forward
    wrote into, which loss and backward read).
    """

    _destroy = "vit_model_destroy"
    ctx: Optional[Context] = None
    config: Optional[Config] = None
    num_classes: int = 0
    _ctx_owner: Optional[_Owner] = None
    _geom: Optional[Tuple[int, int, int]] = None
    _images: Optional[Tensor] = None
    _logits: Optional[Tensor] = None
    _labels: Optional[Tensor] = None
    _input: Optional[_Owner] = None
    _infos: Optional[List[ParamInfo]] = None
    _training = False
    _grad = True
    _batch = None  # set by older callers; unused

    def __init__(self, ctx: Context, config: Optional[Config] = None, *, preset: Optional[str] = None,
                 **settings: Any):
        live(ctx, Context, "ctx")
        if config is not None:
            live(config, Config, "config")
            if preset is not None:
                raise TypeError("Model: give config or preset, not both")
            cfg = config.copy()
            for name, value in settings.items():
                cfg.set(name, value)
        else:
            cfg = Config(preset, **settings)
        _Handle.__init__(self, ctx)
        check(LIB.vit_model_create(ctx._ptr(), cfg._ptr(), byref(self._h)))
        self._setup(ctx)

    @classmethod
    def load(cls, ctx: Context, path: PathLike) -> "Model":
        """A model from a checkpoint: libvit's own, or a timm / Hugging Face
        safetensors file whose configuration is inferred from its shapes, or
        a transformers ViTForImageClassification whose config.json is beside
        it (vit_model_load). Metadata (class names, normalisation) comes along."""
        live(ctx, Context, "ctx")
        raw = path_bytes(path)
        m = cls.__new__(cls)
        _Handle.__init__(m, ctx)
        check(LIB.vit_model_load(ctx._ptr(), raw, byref(m._h)))
        m._setup(ctx)
        return m

    def _setup(self, ctx: Context) -> None:
        self.ctx, self._ctx_owner = ctx, ctx._live()
        self.config = Config._of_model(self._h)
        self.num_classes = self._geometry()[2]

    def _context(self) -> _Owner:
        return self._ctx_owner if self._ctx_owner is not None else self.ctx._live()

    def _geometry(self) -> Tuple[int, int, int]:
        """(in_channels, img_size, num_classes), from the model itself."""
        if self._geom is None:
            cfg = Config._of_model(self._ptr())
            self._geom = (cfg.get("in_channels"), cfg.get("img_size"), cfg.get("num_classes"))
        return self._geom

    def _buffer(self, attr: str, shape: Tuple[int, ...], dtype: Any) -> Tensor:
        """The tensor kept in attr, made anew only when the shape changes."""
        t = getattr(self, attr)
        if t is None or t.shape != tuple(shape):
            t = Tensor.__new__(Tensor)
            t._create_in(self._context(), tuple(shape), np.dtype(dtype))
            setattr(self, attr, t)
        return t

    # ----------------------------------------------------------- modes
    def set_training(self, on: bool = True) -> None:
        """Dropout, attention dropout and DropPath on or off (vit_model_set_training)."""
        on = as_bool(on, "training")
        check(LIB.vit_model_set_training(self._ptr(), int(on)))
        self._training = on

    def set_grad(self, on: bool = True) -> None:
        """Record the tape for backward, or not (vit_model_set_grad)."""
        on = as_bool(on, "grad")
        check(LIB.vit_model_set_grad(self._ptr(), int(on)))
        self._grad = on

    def train(self, mode: bool = True) -> "Model":
        """Training mode (PyTorch's model.train()); returns the model."""
        self.set_training(mode)
        return self

    def eval(self) -> "Model":
        """Evaluation mode: no dropout (PyTorch's model.eval()); returns the model."""
        return self.train(False)

    @property
    def training(self) -> bool:
        """True in training mode (train()), False in evaluation mode (eval())."""
        return self._training

    @property
    def grad_enabled(self) -> bool:
        """False inside no_grad() or after set_grad(False)."""
        return self._grad

    @contextlib.contextmanager
    def no_grad(self) -> Iterator["Model"]:
        """``with model.no_grad():`` forwards record nothing and keep no
        activations (torch.no_grad()); the previous setting comes back after."""
        previous = self._grad
        self.set_grad(False)
        try:
            yield self
        finally:
            if not self.closed:
                self.set_grad(previous)

    @property
    def rng_state(self) -> int:
        """The dropout stream's counter, for exact resumes (vit_model_get_rng_state / set)."""
        out = c_uint64()
        check(LIB.vit_model_get_rng_state(self._ptr(), byref(out)))
        return out.value

    @rng_state.setter
    def rng_state(self, value: int) -> None:
        check(LIB.vit_model_set_rng_state(self._ptr(), as_uint64(value, "rng_state")))

    # ------------------------------------------------------------ step
    def _images_arg(self, images: Any):
        """(owner, shape) of images float32 [B, in_channels, img_size, img_size] for a forward."""
        self._live()
        channels, size, _ = self._geometry()
        want = f"[B, {channels}, {size}, {size}]"
        if isinstance(images, Tensor):
            source, shape = tensor_arg(images, _F32, "images", hint=_UINT8_HINT)
        else:
            array = np.asarray(images)
            check_dtype(array, _F32, "images", _UINT8_HINT if array.dtype == np.uint8 else
                        "convert explicitly, e.g. images.astype(np.float32)")
            shape = array.shape
            source = viewed_tensor(array)
        if len(shape) != 4 or tuple(shape[1:]) != (channels, size, size):
            raise ShapeError(f"images must be {want} for this model, not {list(shape)}")
        if source is None:
            buffer = self._buffer("_images", shape, _F32)
            buffer.copy_from(array)
            source = buffer._owner
        return source, shape

    def forward(self, images: Any) -> np.ndarray:
        """Logits [B, num_classes] (a new float32 array) for images float32
        [B, in_channels, img_size, img_size] (vit_model_forward); a model
        without a head (num_classes 0) gives the pooled features [B, dim].
        Starts a new step: the previous step's tape is released."""
        source, shape = self._images_arg(images)
        classes = self._geometry()[2] or self.config.get("dim")
        logits = self._buffer("_logits", (shape[0], classes), _F32)
        self._input = source  # the tape reads the images again in backward
        check(LIB.vit_model_forward(self._h, source.ptr, logits._h))
        return logits.read()

    def token_count(self) -> Tuple[int, int]:
        """(T, prefix): the tokens of forward_tokens, of which prefix (class
        token and registers) lead the patch tokens (vit_model_token_count)."""
        tokens, prefix = c_int(), c_int()
        check(LIB.vit_model_token_count(self._ptr(), byref(tokens), byref(prefix)))
        return tokens.value, prefix.value

    def forward_features(self, images: Any) -> np.ndarray:
        """Pooled features [B, dim] before the head, timm's
        forward_head(forward_features(x), pre_logits=True) (vit_model_forward_features).
        Inference: records nothing for backward."""
        source, shape = self._images_arg(images)
        out = Tensor.__new__(Tensor)
        out._create_in(self._context(), (shape[0], self.config.get("dim")), _F32)
        check(LIB.vit_model_forward_features(self._h, source.ptr, out._h))
        self._logits = None
        return out.read()

    def forward_tokens(self, images: Any) -> np.ndarray:
        """The last block's tokens after the final norm [B, T, dim], timm's
        forward_features (vit_model_forward_tokens); see token_count()."""
        source, shape = self._images_arg(images)
        out = Tensor.__new__(Tensor)
        out._create_in(self._context(), (shape[0], self.token_count()[0], self.config.get("dim")), _F32)
        check(LIB.vit_model_forward_tokens(self._h, source.ptr, out._h))
        self._logits = None
        return out.read()

    def __call__(self, images: Any) -> np.ndarray:
        """model(images) is model.forward(images), as in PyTorch."""
        return self.forward(images)

    @property
    def logits(self) -> Optional[Tensor]:
        """The Tensor the last forward wrote (None before the first), reused
        by the next forward of the same batch size; loss and backward read it."""
        return self._logits

    def loss(self, labels: Any, label_smoothing: float = 0.0) -> float:
        """Mean cross-entropy of the last forward's logits against labels [B]
        (integer class indices), with label smoothing in [0, 1) (vit_model_loss)."""
        self._live()
        if self._logits is None:
            raise StateError("loss: call forward first")
        smoothing = as_float(label_smoothing, "label_smoothing")
        batch = self._logits.shape[0]
        shape = labels.shape if isinstance(labels, Tensor) else np.shape(labels)
        if tuple(shape) != (batch,):
            raise ShapeError(f"labels must be [{batch}] (the batch of the last forward), not {list(shape)}")
        owner, _ = labels_arg(labels, buffer=lambda shape: self._buffer("_labels", shape, _I32))
        out = c_float()
        check(LIB.vit_model_loss(self._h, owner.ptr, smoothing, byref(out)))
        return out.value

    def backward(self) -> None:
        """Add the loss's gradients into the parameter gradients (vit_model_backward)."""
        check(LIB.vit_model_backward(self._ptr()))

    def backward_logits(self, dlogits: Any) -> None:
        """Backward from a gradient of the logits, float32 [B, num_classes], for
        a loss computed outside libvit (vit_model_backward_logits)."""
        self._live()
        if self._logits is None:
            raise StateError("backward_logits: call forward first")
        owner, shape = tensor_arg(dlogits, _F32, "dlogits", self._context())
        if tuple(shape) != self._logits.shape:
            raise ShapeError(f"dlogits must be {list(self._logits.shape)}, not {list(shape)}")
        check(LIB.vit_model_backward_logits(self._h, owner.ptr))

    def zero_grad(self) -> None:
        """Zero every parameter gradient (vit_model_zero_grad)."""
        check(LIB.vit_model_zero_grad(self._ptr()))

    # ------------------------------------------------------ parameters
    def parameters(self) -> List[ParamInfo]:
        """(name, shape) of every parameter, in timm's order
        (vit_model_param_count, vit_model_param_info)."""
        if self._infos is None:
            self._infos = _param_infos(self._ptr())
        return list(self._infos)

    param_names = parameters

    @property
    def num_params(self) -> int:
        """Total number of parameter values (vit_model_num_params)."""
        out = c_int64()
        check(LIB.vit_model_num_params(self._ptr(), byref(out)))
        return out.value

    def _read(self, fn, name: str, shape: Optional[Sequence[int]]) -> np.ndarray:
        info = _find_param(self.parameters(), name)
        if shape is not None and tuple(shape) != info.shape:
            raise ShapeError(f"parameter '{name}' is {list(info.shape)}, not {list(shape)}")
        out = np.empty(info.shape, np.float32)
        check(fn(self._ptr(), name.encode(), out.ctypes.data, out.nbytes))
        return out

    def param(self, name: str, shape: Optional[Sequence[int]] = None) -> np.ndarray:
        """A copy of one parameter by timm name (vit_model_param_read)."""
        return self._read(LIB.vit_model_param_read, name, shape)

    def grad(self, name: str, shape: Optional[Sequence[int]] = None) -> np.ndarray:
        """A copy of one parameter's gradient (vit_model_grad_read); zeros before any backward."""
        return self._read(LIB.vit_model_grad_read, name, shape)

    def set_param(self, name: str, value: Any) -> None:
        """Overwrite one parameter with a float32 array of its shape (vit_model_param_write)."""
        self.load_state_dict({name: value}, strict=False)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Every parameter by timm name, as float32 copies, in timm's order."""
        return {p.name: self.param(p.name) for p in self.parameters()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Write parameters by name (PyTorch's load_state_dict). Every value must
        be float32 of the parameter's shape; with strict, the names must be
        exactly the model's. Nothing is written unless everything checks out."""
        self._live()
        infos = {p.name: p for p in self.parameters()}
        unknown = [k for k in state if k not in infos]
        if unknown:
            raise NotFoundError(f"load_state_dict: the model has no parameter {unknown[0]!r}" +
                                (f" (nor {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
        missing = [k for k in infos if k not in state]
        if strict and missing:
            raise NotFoundError(f"load_state_dict: {missing[0]!r} is missing" +
                                (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "") +
                                "; pass strict=False to load a part")
        arrays = {}
        for name, value in state.items():
            array = np.asarray(value)
            check_dtype(array, _F32, f"parameter '{name}'", "convert explicitly, e.g. value.astype(np.float32)")
            if array.shape != infos[name].shape:
                raise ShapeError(f"parameter '{name}' is {list(infos[name].shape)}, not {list(array.shape)}")
            arrays[name] = np.ascontiguousarray(array)
        for name, array in arrays.items():
            check(LIB.vit_model_param_write(self._h, name.encode(), array.ctypes.data, array.nbytes))

    # ------------------------------------------------------ metadata
    @property
    def metadata(self) -> Metadata:
        """The model's string metadata as a live dict; saved with the model."""
        self._live()
        return Metadata(self)

    @metadata.setter
    def metadata(self, values: Mapping[str, str]) -> None:
        meta = Metadata(self)
        for key in list(meta):
            del meta[key]
        meta.update(values)

    @property
    def class_names(self) -> Optional[List[str]]:
        """The 'class_names' metadata (a JSON array, as vit-train writes it), or None."""
        text = self.metadata.get("class_names")
        if text is None:
            return None
        try:
            names = json.loads(text)
        except ValueError as e:
            raise FormatError(f"metadata 'class_names': not JSON: {e}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise FormatError("metadata 'class_names': not a JSON array of strings")
        if len(names) != self._geometry()[2]:
            raise FormatError(f"metadata 'class_names': {len(names)} names for {self._geometry()[2]} classes")
        return names

    @class_names.setter
    def class_names(self, names: Optional[Sequence[str]]) -> None:
        if names is None:
            self.metadata.pop("class_names", None)
            return
        names = list(names)
        if not all(isinstance(n, str) for n in names):
            raise TypeError("class_names must be a sequence of str")
        if len(names) != self._geometry()[2]:
            raise InvalidArgumentError(f"class_names: {len(names)} names for {self._geometry()[2]} classes")
        self.metadata["class_names"] = json.dumps(names, ensure_ascii=False)

    def normalization(self) -> Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]]:
        """(mean, std) per input channel from the 'mean' and 'std' metadata, or
        None when the model has neither. See parse_channel_values for the rule."""
        meta, channels = self.metadata, self._geometry()[0]
        mean, std = meta.get("mean"), meta.get("std")
        if mean is None and std is None:
            return None
        if mean is None or std is None:
            raise FormatError(f"metadata has '{'mean' if std is None else 'std'}' without "
                              f"'{'std' if std is None else 'mean'}'")
        return parse_channel_values("mean", mean, channels), parse_channel_values("std", std, channels)

    def set_normalization(self, mean: Union[float, Sequence[float]], std: Union[float, Sequence[float]]) -> None:
        """Record how inputs are normalised ('mean', 'std' metadata), one value
        per channel or one for all, for vit-predict and predict.py."""
        channels = self._geometry()[0]
        texts = {}
        for key, value in (("mean", mean), ("std", std)):
            values = [as_float(v, key) for v in (value if isinstance(value, (list, tuple)) else [value])]
            text = ",".join(repr(v) for v in values)
            parse_channel_values(key, text, channels)
            texts[key] = text
        self.metadata.update(texts)

    # ------------------------------------------------------ checkpoints
    def save(self, path: PathLike) -> None:
        """Write parameters, configuration and metadata as safetensors,
        atomically (vit_model_save)."""
        raw = path_bytes(path)
        check(LIB.vit_model_save(self._ptr(), raw))

    def export_onnx(self, path: PathLike, *, opset: int = 17, batch: Optional[int] = None,
                    external_data: Optional[bool] = None) -> None:
        """Write the inference graph as an ONNX file, atomically: input
        "images" [batch, C, H, W], output "logits"; batch None is a dynamic
        batch dimension, an int a fixed one. external_data True puts the
        weights in PATH.data beside the file, False keeps them in it, None
        does so unless the file would reach 2 GiB (vit_model_export_onnx)."""
        external = 0 if external_data is None else (1 if as_bool(external_data, "external_data") else -1)
        settings = ((ONNX_OPSET, as_int(opset, "opset")), (ONNX_BATCH, 0 if batch is None else as_int(batch, "batch")),
                    (ONNX_EXTERNAL_DATA, external))
        opts = c_void_p()
        check(LIB.vit_onnx_options_create(byref(opts)))
        try:
            for key, value in settings:
                check(LIB.vit_onnx_options_set_int(opts, key, value))
            check(LIB.vit_model_export_onnx(self._ptr(), path_bytes(path), opts))
        finally:
            LIB.vit_onnx_options_destroy(opts)

    def load_weights(self, path: PathLike, *, allow_head_mismatch: bool = False,
                     ignore_extra: bool = False) -> None:
        """Load a file's tensors into this model, for fine-tuning: pos_embed is
        resampled for another grid; with allow_head_mismatch a missing or
        differently shaped head stays as initialised; with ignore_extra tensors
        the model lacks are skipped (vit_model_load_weights)."""
        flags = (LOAD_ALLOW_HEAD_MISMATCH if as_bool(allow_head_mismatch, "allow_head_mismatch") else 0) | \
                (LOAD_IGNORE_EXTRA if as_bool(ignore_extra, "ignore_extra") else 0)
        check(LIB.vit_model_load_weights(self._ptr(), path_bytes(path), flags))

    def close(self) -> None:
        """Release the model, and with it its input and logits buffers."""
        self._images = self._logits = self._labels = self._input = None
        super().close()

    def _describe(self) -> str:
        return f"{self.num_params} parameters, {self.num_classes} classes"


def topk(logits: Any, k: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """(indices int32 [B, k], probabilities float32 [B, k]): each row's k
    largest classes, best first, with their softmax probabilities (vit_topk).
    logits: float32 [B, C], a Tensor or an array."""
    owner, shape = tensor_arg(logits, _F32, "logits")
    if len(shape) != 2:
        raise ShapeError(f"logits must be [B, C], not {list(shape)}")
    k = as_int(k, "k")
    if not 1 <= k <= shape[1]:
        raise ShapeError(f"k = {k} is outside 1..{shape[1]} (the number of classes)")
    indices, probs = np.empty((shape[0], k), np.int32), np.empty((shape[0], k), np.float32)
    check(LIB.vit_topk(owner.ptr, k, indices.ctypes.data, probs.ctypes.data))
    return indices, probs


def accuracy(logits: Any, labels: Any, k: int = 1) -> int:
    """How many rows have their label among the k largest logits (vit_accuracy)."""
    owner, shape = tensor_arg(logits, _F32, "logits")
    lab, lab_shape = labels_arg(labels)
    if len(shape) != 2 or tuple(lab_shape) != (shape[0],):
        raise ShapeError(f"logits [B, C] and labels [B] expected, not {list(shape)} and {list(lab_shape)}")
    k = as_int(k, "k")
    if not 1 <= k <= shape[1]:
        raise ShapeError(f"k = {k} is outside 1..{shape[1]} (the number of classes)")
    out = c_int64()
    check(LIB.vit_accuracy(owner.ptr, lab.ptr, k, byref(out)))
    return out.value


def read_metadata(path: PathLike) -> Dict[str, str]:
    """Every metadata entry of a safetensors file, in file order
    (vit_checkpoint_read_metadata): a model's configuration, class names and
    normalisation, or an optimizer file's step and extra entries."""
    raw = path_bytes(path)
    entries: Dict[str, str] = {}

    def collect(_user, key, value):
        entries[key.decode(errors="replace")] = value.decode(errors="replace")

    check(LIB.vit_checkpoint_read_metadata(raw, METADATA_FN(collect), None))
    return entries
