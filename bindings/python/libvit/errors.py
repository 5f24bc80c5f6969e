"""libvit's errors: one VitError subclass per vit_status.

A failing C call raises the class of its status with the library's own
message (vit_last_error()). The package raises the same classes for misuse
it catches before calling C (a closed handle, a wrong dtype or shape, an
unknown setting), so one ``except libvit.ShapeError`` covers both. Each class
also derives from the matching built-in exception (ShapeError is a
ValueError, DtypeError a TypeError, InputOutputError an OSError, ...), so
generic handlers keep working.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

from ._lib import LIB

__all__ = ["VitError", "InvalidArgumentError", "ShapeError", "DtypeError", "OutOfMemoryError",
           "InputOutputError", "FormatError", "UnsupportedError", "StateError", "NumericError", "InternalError",
           "CancelledError", "NotFoundError", "Error", "status_string", "check"]


def status_string(status: int) -> str:
    """libvit's short text for a status code ("invalid argument"); vit_status_string."""
    return LIB.vit_status_string(status).decode()


class VitError(RuntimeError):
    """A libvit call failed. ``status`` is the vit_status code, ``detail`` the
    library's message; ``str()`` gives both, as "shape mismatch: <detail>"."""

    status: int = -1

    def __init__(self, detail: str, status: Optional[int] = None):
        if status is not None:
            self.status = status
        self.detail = detail
        super().__init__(f"{status_string(self.status)}: {detail}" if self.status >= 0 else detail)

    def __str__(self) -> str:  # KeyError's quoting would otherwise show through NotFoundError
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(VitError, ValueError):
    """VIT_ERR_INVALID_ARGUMENT: an out-of-range value, an unknown setting or name."""
    status = 1


class ShapeError(VitError, ValueError):
    """VIT_ERR_SHAPE: a tensor or array shape does not fit the call."""
    status = 2


class DtypeError(VitError, TypeError):
    """VIT_ERR_DTYPE: an element type does not fit the call (libvit converts nothing silently)."""
    status = 3


class OutOfMemoryError(VitError, MemoryError):
    """VIT_ERR_OUT_OF_MEMORY."""
    status = 4


class InputOutputError(VitError, OSError):
    """VIT_ERR_IO: a file could not be opened, read or written."""
    status = 5


class FormatError(VitError, ValueError):
    """VIT_ERR_FORMAT: a file, buffer or metadata value is malformed."""
    status = 6


class UnsupportedError(VitError, NotImplementedError):
    """VIT_ERR_UNSUPPORTED: a valid request this build or device cannot serve (e.g. CUDA)."""
    status = 7


class StateError(VitError):
    """VIT_ERR_STATE: a call out of order (loss before forward), or a closed handle."""
    status = 8


class NumericError(VitError, ArithmeticError):
    """VIT_ERR_NUMERIC: a non-finite value where a finite one is required (a NaN loss)."""
    status = 9


class InternalError(VitError):
    """VIT_ERR_INTERNAL: a bug in libvit or a backend library."""
    status = 10


class CancelledError(VitError):
    """VIT_ERR_CANCELLED: stopped on request."""
    status = 11


class NotFoundError(VitError, LookupError):
    """VIT_ERR_NOT_FOUND: a named item (parameter, preset, tensor in a file) does not exist."""
    status = 12


#: The name the package used before the per-status classes.
Error = VitError

_BY_STATUS: Dict[int, Type[VitError]] = {cls.status: cls for cls in (
    InvalidArgumentError, ShapeError, DtypeError, OutOfMemoryError, InputOutputError, FormatError,
    UnsupportedError, StateError, NumericError, InternalError, CancelledError, NotFoundError)}


def error_for(status: int, detail: str) -> VitError:
    """The exception for a status; a status this package does not know yet stays a plain VitError."""
    cls = _BY_STATUS.get(status)
    return cls(detail) if cls else VitError(detail, status)


def check(status: int) -> None:
    """Raise the status's VitError subclass, with vit_last_error(), unless status is VIT_OK."""
    if status != 0:
        detail = LIB.vit_last_error().decode(errors="replace")
        LIB.vit_clear_error()  # a stale message must never explain a later, unrelated failure
        raise error_for(status, detail)
