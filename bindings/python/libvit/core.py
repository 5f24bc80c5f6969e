"""The context and tensors (include/vit/core.h)."""
from __future__ import annotations

import threading
from ctypes import byref, c_int, c_int64, c_void_p
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ._handles import (Settings, _Handle, _Owner, as_uint64, check_dtype, from_int64, live,
                       to_int64)
from ._lib import LIB, LOG_FN
from .errors import DtypeError, ShapeError, check

__all__ = ["Context", "Tensor", "DEVICES", "LOG_LEVELS", "CPU_ISA_NAMES", "PRECISIONS", "DTYPES", "MAX_DIMS"]

DEVICES = ("cpu", "cuda")                      # vit_device
LOG_LEVELS = ("error", "warn", "info", "debug")  # vit_log_level
CPU_ISA_NAMES = ("baseline", "avx2", "avx512")   # vit_cpu_isa
PRECISIONS = ("default", "fp32", "tf32", "bf16")   # vit_precision
MAX_DIMS = 4                                     # VIT_MAX_DIMS
#: vit_dtype -> numpy dtype (VIT_DTYPE_BF16 = 1 is reserved and has no tensor yet)
DTYPES: Dict[int, np.dtype] = {0: np.dtype(np.float32), 2: np.dtype(np.int32), 3: np.dtype(np.uint8)}
_DTYPE_CODES = {dt: code for code, dt in DTYPES.items()}


class Context(_Handle):
    """Where tensors live and kernels run: device, threads, seed and logging
    shared by every handle made from it (vit_context).

    ``Context(threads=2, seed=0)``; settings: threads (0 = all cores), seed
    (every random draw: initialisation, dropout, shuffling, augmentation),
    device ("cpu"; "cuda" raises UnsupportedError, with the reason, without
    the CUDA module or a usable GPU), device_index, precision ("fp32",
    "tf32", "bf16"; reads back the one in use: fp32 on the CPU, bf16 by
    default on a GPU), log_level ("error", "warn", "info", "debug") and the
    read-only cpu_isa ("baseline", "avx2", "avx512"; capped by the environment
    variable VIT_MAX_CPU_ISA). A context and the handles made from it belong
    to one thread at a time.
    """

    _destroy = "vit_context_destroy"
    SETTINGS = Settings("context", {"threads": 1, "seed": 2, "device": 3, "device_index": 4, "log_level": 5,
                                    "cpu_isa": 6, "precision": 7},
                        choices={"device": DEVICES, "log_level": LOG_LEVELS, "cpu_isa": CPU_ISA_NAMES,
                                 "precision": PRECISIONS},
                        readonly={"cpu_isa"})

    def __init__(self, **settings: Any):
        super().__init__()
        check(LIB.vit_context_create(byref(self._h)))
        for name, value in settings.items():
            self.set(name, value)

    def set(self, name: str, value: Any) -> None:
        """Change one setting (vit_context_set_int)."""
        if name == "seed":
            key, raw = 2, to_int64(as_uint64(value, "context setting 'seed'"))
        else:
            key, _, raw = self.SETTINGS.encode(name, value)
        check(LIB.vit_context_set_int(self._ptr(), key, raw))

    def get(self, name: str) -> Any:
        """One setting: an int, or the name for device, log_level and cpu_isa (vit_context_get_int)."""
        key, _ = self.SETTINGS.key(name)
        out = c_int64()
        check(LIB.vit_context_get_int(self._ptr(), key, byref(out)))
        return from_int64(out.value) if name == "seed" else self.SETTINGS.decode(name, out.value)

    threads = property(lambda self: self.get("threads"), lambda self, v: self.set("threads", v),
                       doc="OpenMP threads of libvit's kernels inside a call.")
    seed = property(lambda self: self.get("seed"), lambda self, v: self.set("seed", v),
                    doc="The seed of every random draw.")
    device = property(lambda self: self.get("device"), lambda self, v: self.set("device", v),
                      doc='"cpu" or "cuda": where tensors and models created afterwards live.')
    precision = property(lambda self: self.get("precision"), lambda self, v: self.set("precision", v),
                         doc='Arithmetic of the matrix products: "fp32", "tf32" or "bf16" (GPU only).')
    cpu_isa = property(lambda self: self.get("cpu_isa"),
                       doc='The vector level of the CPU kernels: "baseline", "avx2" or "avx512".')

    def set_log(self, callback: Optional[Callable[[str, str], None]]) -> None:
        """Send libvit's messages to callback(level, message) instead of stderr;
        None restores stderr (vit_context_set_log). The callback may run on a
        loader's worker threads; an exception in it is printed and ignored."""
        owner = self._live()
        if callback is None:
            fn = LOG_FN()  # NULL: the default
        else:
            if not callable(callback):
                raise TypeError(f"callback must be callable or None, not {type(callback).__name__}")

            def trampoline(_user, level, message):
                callback(LOG_LEVELS[level] if 0 <= level < len(LOG_LEVELS) else str(level),
                         message.decode(errors="replace"))

            fn = LOG_FN(trampoline)
        check(LIB.vit_context_set_log(self._h, fn, None))
        owner.keep = fn  # C calls it for as long as the context lives

    def _describe(self) -> str:
        return f"device={self.device} threads={self.threads} seed={self.seed}"


_scratch_lock = threading.Lock()
_scratch: Optional[Context] = None


def scratch_context() -> Context:
    """A private context for temporary tensors made from numpy arrays by calls
    that take no context (topk, accuracy, plots). Tensors outlive contexts, so
    sharing one is safe; it has one thread, as those calls are small."""
    global _scratch
    with _scratch_lock:
        if _scratch is None:
            _scratch = Context(threads=1)
        return _scratch


class _View:
    """The base object of a numpy view of a tensor: it exposes the storage and
    holds the tensor's owner, so the memory lives as long as the view."""

    __slots__ = ("__array_interface__", "owner")

    def __init__(self, owner: _Owner, ptr: int, shape: Tuple[int, ...], dtype: np.dtype):
        self.owner = owner
        self.__array_interface__ = {"data": (ptr, False), "shape": shape, "typestr": dtype.str, "version": 3}


def viewed_tensor(array: Any) -> Optional[_Owner]:
    """The owner of the tensor that array views entirely (same memory, shape,
    dtype, C order), or None: such an array is handed to C as the tensor itself."""
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        return None
    base = array.base
    while isinstance(base, np.ndarray):
        base = base.base
    if not isinstance(base, _View):
        return None
    iface = base.__array_interface__
    if array.__array_interface__["data"][0] != iface["data"][0] or array.shape != iface["shape"] \
            or array.dtype.str != iface["typestr"]:
        return None
    return base.owner if base.owner.ptr.value else None


class Tensor(_Handle):
    """A dense row-major tensor of 1 to 4 dimensions on a context's device
    (vit_tensor): float32, int32 or uint8.

    ``Tensor(ctx, array)`` copies a numpy array in (its dtype must be one of
    the three: nothing is converted silently); ``Tensor.zeros(ctx, shape,
    dtype)`` makes a zero-filled one. ``numpy()`` is a zero-copy view of a
    CPU tensor that keeps the tensor's memory alive. A tensor may outlive its
    context.
    """

    _destroy = "vit_tensor_destroy"
    shape: Tuple[int, ...] = ()
    dtype: np.dtype = DTYPES[0]

    def __init__(self, ctx: Context, array: Any):
        array = np.asarray(array)
        self._create(ctx, array.shape, array.dtype)
        self.copy_from(array)

    @classmethod
    def zeros(cls, ctx: Context, shape: Sequence[int], dtype: Any = np.float32) -> "Tensor":
        """A new zero-filled tensor (vit_tensor_create)."""
        t = cls.__new__(cls)
        t._create(ctx, tuple(shape), np.dtype(dtype))
        return t

    @classmethod
    def from_numpy(cls, ctx: Context, array: Any) -> "Tensor":
        """A new tensor holding a copy of array: one copy, straight from the
        array's own memory whatever its strides (C has no way to adopt memory
        it did not allocate). The dtype must be float32, int32 or uint8."""
        return cls(ctx, array)

    def _create(self, ctx: Context, shape: Tuple[int, ...], dtype: np.dtype) -> None:
        self._create_in(live(ctx, Context, "ctx")._live(), shape, dtype)

    @classmethod
    def _in(cls, ctx_owner: _Owner, array: np.ndarray) -> "Tensor":
        """A copy of array in the context that ctx_owner owns (its wrapper may be closed)."""
        t = cls.__new__(cls)
        t._create_in(ctx_owner, array.shape, array.dtype)
        t.copy_from(array)
        return t

    def _create_in(self, ctx_owner: _Owner, shape: Tuple[int, ...], dtype: np.dtype) -> None:
        code = _DTYPE_CODES.get(np.dtype(dtype))
        if code is None:
            raise DtypeError(f"libvit tensors hold float32, int32 or uint8, not {np.dtype(dtype).name}; "
                             "convert explicitly (array.astype(np.float32), ...)")
        try:
            shape = tuple(int(d) for d in shape)
        except TypeError:
            raise TypeError(f"shape must be a sequence of ints, not {shape!r}") from None
        if not 1 <= len(shape) <= MAX_DIMS or min(shape) <= 0:
            raise ShapeError(f"a tensor has 1 to {MAX_DIMS} dimensions, each > 0; got shape {shape}")
        _Handle.__init__(self)
        check(LIB.vit_tensor_create(ctx_owner.ptr, code, len(shape), (c_int64 * len(shape))(*shape),
                                    byref(self._h)))
        self._query()

    @classmethod
    def _adopt(cls) -> "Tensor":
        """An empty wrapper for a tensor C creates (fill ``_h``, then call _query)."""
        t = cls.__new__(cls)
        _Handle.__init__(t)
        return t

    def _query(self) -> None:
        ndim, dims, code = c_int(), (c_int64 * MAX_DIMS)(), c_int()
        check(LIB.vit_tensor_shape(self._ptr(), byref(ndim), dims))
        check(LIB.vit_tensor_dtype(self._h, byref(code)))
        self.shape = tuple(dims[:ndim.value])
        self.dtype = DTYPES[code.value]

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def numel(self) -> int:
        """Number of elements (vit_tensor_numel)."""
        out = c_int64()
        check(LIB.vit_tensor_numel(self._ptr(), byref(out)))
        return out.value

    size = numel

    @property
    def itemsize(self) -> int:
        """Bytes per element (vit_dtype_size)."""
        return int(LIB.vit_dtype_size(_DTYPE_CODES[self.dtype]))

    @property
    def nbytes(self) -> int:
        """Bytes of storage."""
        return self.numel * self.itemsize

    @property
    def device(self) -> str:
        """"cpu" or "cuda" (vit_tensor_device)."""
        out = c_int()
        check(LIB.vit_tensor_device(self._ptr(), byref(out)))
        return DEVICES[out.value] if 0 <= out.value < len(DEVICES) else str(out.value)

    def __len__(self) -> int:
        return self.shape[0]

    def numpy(self) -> np.ndarray:
        """The tensor's storage as a numpy array, without copying (vit_tensor_data).
        Writes through it change the tensor. The array keeps the memory alive,
        even past close(). A tensor in device memory is copied instead."""
        owner = self._live()
        if self.device != "cpu":
            return self.read()
        data = c_void_p()
        check(LIB.vit_tensor_data(self._h, byref(data)))
        return np.asarray(_View(owner, data.value, self.shape, self.dtype))

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        a = self.read() if copy else self.numpy()
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)

    def read(self) -> np.ndarray:
        """A copy of the contents as a new numpy array (vit_tensor_read)."""
        self._live()
        out = np.empty(self.shape, self.dtype)
        check(LIB.vit_tensor_read(self._h, out.ctypes.data, out.nbytes))
        return out

    def copy_from(self, array: Any) -> None:
        """Overwrite the contents with array, of exactly this shape and dtype:
        one copy (vit_tensor_write, or through the view for a strided array)."""
        owner = self._live()
        array = np.asarray(array)
        check_dtype(array, self.dtype, "the array", "convert explicitly with array.astype(...)")
        if array.shape != self.shape:
            raise ShapeError(f"the array's shape {array.shape} is not the tensor's {self.shape}")
        if viewed_tensor(array) is owner:
            return
        if array.flags.c_contiguous or self.device != "cpu":
            array = np.ascontiguousarray(array)
            check(LIB.vit_tensor_write(self._h, array.ctypes.data, array.nbytes))
        else:
            self.numpy()[...] = array

    write = copy_from

    def _describe(self) -> str:
        return f"{self.dtype.name} {list(self.shape)} on {self.device}"


def tensor_arg(value: Any, dtype: np.dtype, what: str, ctx_owner: Optional[_Owner] = None,
               hint: str = "") -> Tuple[_Owner, Tuple[int, ...]]:
    """(owner, shape) of a tensor argument: a Tensor or a full view of one goes
    to C as it is; any other array is copied into a new tensor of the context
    ctx_owner owns (or of the scratch context). The dtype must be dtype exactly."""
    if isinstance(value, Tensor):
        owner = value._live()
        if value.dtype != dtype:
            raise DtypeError(f"{what} must be {np.dtype(dtype).name}, not {value.dtype.name}" +
                             (f"; {hint}" if hint else ""))
        return owner, value.shape
    array = np.asarray(value)
    check_dtype(array, dtype, what, hint)
    owner = viewed_tensor(array)
    if owner is not None:
        return owner, array.shape
    t = Tensor._in(ctx_owner if ctx_owner is not None else scratch_context()._live(), array)
    return t._owner, t.shape

