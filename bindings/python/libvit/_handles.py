"""Handle ownership and the checks every call makes before it reaches C.

Each C handle is owned by one _Owner, which destroys it when the last Python
reference to the owner goes. A wrapper (Context, Model, ...) holds its owner;
a child's owner holds its parents' owners (a model its context's, a loader
its dataset's), and a numpy view of a tensor holds the tensor's owner. So
close() releases the wrapper's claim at once, and the C object is destroyed
as soon as nothing that needs it remains: never while a child or a view
still reads it.
"""
from __future__ import annotations

import difflib
import numbers
import os
from ctypes import c_void_p
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._lib import LIB
from .errors import DtypeError, InvalidArgumentError, StateError

PathLike = Union[str, "os.PathLike[str]"]


class _Owner:
    """Owns one C handle and destroys it when garbage collected."""

    __slots__ = ("ptr", "destroy", "parents", "keep", "__weakref__")

    def __init__(self, ptr: c_void_p, destroy, parents: Tuple["_Owner", ...] = ()):
        self.ptr = ptr
        self.destroy = destroy  # held here, so destruction never depends on module globals at exit
        self.parents = parents
        self.keep: Any = None  # what C may call back into while the handle lives (a log function)

    def __del__(self):
        if self.ptr.value:
            self.destroy(self.ptr)
            self.ptr.value = None


class _Handle:
    """Base of every class that owns a libvit handle: close(), ``with``, and
    the closed-handle check. ``_h`` is the handle (a c_void_p); a subclass
    names its C destroy function in ``_destroy``."""

    _destroy = ""
    _owner: Optional[_Owner] = None

    def __init__(self, *parents: Union["_Handle", _Owner]):
        owners = tuple(p if isinstance(p, _Owner) else p._live() for p in parents)
        self._h = c_void_p()
        self._owner = _Owner(self._h, getattr(LIB, self._destroy), owners)

    def _live(self) -> _Owner:
        """The owner of an open handle; StateError once closed."""
        owner = self._owner
        if owner is None:
            raise StateError(f"this {type(self).__name__} is closed")
        if not owner.ptr.value:
            raise StateError(f"this {type(self).__name__} holds no handle (its creation failed)")
        return owner

    def _ptr(self) -> c_void_p:
        self._live()
        return self._h

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._owner is None

    def close(self) -> None:
        """Release this object's handle now. The C object is destroyed at once
        unless a child (a model of this context, a view of this tensor, ...)
        still needs it; then when the last of them goes. Idempotent."""
        self._owner = None
        self._h = c_void_p()

    def __enter__(self):
        self._live()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self._describe()
        return f"<libvit.{type(self).__name__} {state}>"

    def _describe(self) -> str:
        return f"at {self._h.value:#x}"


def live(obj: Any, cls: type, what: str) -> _Handle:
    """obj, checked to be an open cls (TypeError / StateError otherwise)."""
    if not isinstance(obj, cls):
        raise TypeError(f"{what} must be a libvit.{cls.__name__}, not {type(obj).__name__}")
    obj._live()
    return obj


def path_bytes(path: PathLike, what: str = "path") -> bytes:
    """A file name for C, as the OS spells it."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} must be a str or os.PathLike, not {type(path).__name__}")
    b = os.fsencode(path)
    if not b:
        raise InvalidArgumentError(f"{what} is empty")
    if b"\0" in b:
        raise InvalidArgumentError(f"{what} contains a NUL byte")
    return b


def text_bytes(value: str, what: str) -> bytes:
    """A str for C, as UTF-8; bytes, numbers and NUL characters are refused."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise InvalidArgumentError(f"{what} contains a NUL character")
    return value.encode()


def unknown_key(kind: str, key: Any, valid: Iterable[str]) -> InvalidArgumentError:
    """The error for a misspelt setting: the valid names and the likeliest one."""
    valid = list(valid)
    guess = difflib.get_close_matches(str(key), valid, n=1)
    hint = f" (did you mean '{guess[0]}'?)" if guess else ""
    return InvalidArgumentError(f"unknown {kind} {key!r}{hint}; valid: {', '.join(valid)}")


def as_int(value: Any, what: str) -> int:
    """An integer setting: int or numpy integer only; 2.0, "2" and True are refused, never truncated."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer, not {type(value).__name__} {value!r}")
    return int(value)


def as_bool(value: Any, what: str) -> bool:
    """An on/off setting: bool, or the integers 0 and 1."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise TypeError(f"{what} must be True or False (or 0/1), not {type(value).__name__} {value!r}")


def as_float(value: Any, what: str) -> float:
    """A real setting: any real number (an int converts exactly); strings are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a real number, not {type(value).__name__} {value!r}")
    return float(value)


def as_choice(value: Any, what: str, names: Sequence[str]) -> int:
    """An enum setting by name (its index in names) or by its integer value."""
    if isinstance(value, str):
        if value not in names:
            raise unknown_key(f"{what} value", value, names)
        return names.index(value)
    v = as_int(value, what)
    if not 0 <= v < len(names):
        raise InvalidArgumentError(f"{what} {v} is not one of 0..{len(names) - 1} ({', '.join(names)})")
    return v


def as_uint64(value: Any, what: str) -> int:
    """An integer in 0..2**64-1 (seeds, counters)."""
    v = as_int(value, what)
    if not 0 <= v < 1 << 64:
        raise InvalidArgumentError(f"{what} {v} is outside 0..2**64-1")
    return v


def to_int64(u: int) -> int:
    """A uint64 as the int64 two's complement the C setters take."""
    return u - (1 << 64) if u >= 1 << 63 else u


def from_int64(v: int) -> int:
    """The uint64 that an int64 getter's two's complement stands for."""
    return v + (1 << 64) if v < 0 else v


class Settings:
    """The enum-keyed settings of one handle kind, by Python name.

    ``ints``/``floats`` map names to the C keys; ``bools`` and ``choices``
    (name -> value names) say how an int key's value reads and writes;
    ``readonly`` names cannot be set."""

    def __init__(self, kind: str, ints: Mapping[str, int], floats: Mapping[str, int] = {},
                 bools: Iterable[str] = (), choices: Mapping[str, Sequence[str]] = {},
                 readonly: Iterable[str] = ()):
        self.kind, self.ints, self.floats = kind, dict(ints), dict(floats)
        self.bools, self.choices, self.readonly = set(bools), dict(choices), set(readonly)

    def names(self) -> list:
        """Every setting name, integer keys first."""
        return list(self.ints) + list(self.floats)

    def key(self, name: Any) -> Tuple[int, bool]:
        """(C key, is_real) of a setting name; InvalidArgumentError naming the valid ones."""
        if name in self.ints:
            return self.ints[name], False
        if name in self.floats:
            return self.floats[name], True
        raise unknown_key(f"{self.kind} setting", name, self.names())

    def encode(self, name: str, value: Any) -> Tuple[int, bool, Union[int, float]]:
        """(C key, is_real, C value) for setting name to value, refusing what would be converted silently."""
        key, real = self.key(name)
        if name in self.readonly:
            raise InvalidArgumentError(f"{self.kind} setting '{name}' is read-only")
        what = f"{self.kind} setting '{name}'"
        if real:
            return key, True, as_float(value, what)
        if name in self.bools:
            return key, False, int(as_bool(value, what))
        if name in self.choices:
            return key, False, as_choice(value, what, self.choices[name])
        return key, False, as_int(value, what)

    def decode(self, name: str, raw: Union[int, float]) -> Any:
        """A C value as Python gives it back: bool, a choice's name, or the number."""
        if name in self.bools:
            return bool(raw)
        if name in self.choices:
            names = self.choices[name]
            return names[raw] if 0 <= raw < len(names) else raw
        return raw


def check_dtype(array: Any, dtype: Any, what: str, hint: str = "") -> None:
    """DtypeError unless array.dtype is dtype exactly."""
    if array.dtype != np.dtype(dtype):
        raise DtypeError(f"{what} must be {np.dtype(dtype).name}, not {array.dtype.name}" + (f"; {hint}" if hint else ""))
