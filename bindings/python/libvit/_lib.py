"""Finding libvit.so.0 and declaring the prototype of every public C function.

PROTOTYPES mirrors include/vit/*.h one entry per VIT_API function, in header
order; tests/python/test_package.py checks the two against each other, so
a C function added without a binding fails the suite. Every function gets its
argtypes and restype here, before anything calls it: ctypes then converts
and checks each argument instead of guessing (a guessed int where the C side
takes a pointer or an int64_t is how ctypes code crashes).
"""
from __future__ import annotations

import ctypes
import os
from ctypes import (CFUNCTYPE, POINTER, c_char_p, c_double, c_float, c_int, c_int64, c_size_t, c_uint,
                    c_uint64, c_void_p)
from typing import Dict, List, Optional, Sequence, Tuple

from ._version import __version__

SONAME = "libvit.so.0"

#: void (*vit_log_fn)(void *user, vit_log_level level, const char *message)
LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)
#: void (*vit_metadata_fn)(void *user, const char *key, const char *value)
METADATA_FN = CFUNCTYPE(None, c_void_p, c_char_p, c_char_p)

_status = c_int     # vit_status
_enum = c_int       # every other enum
_handle = c_void_p  # every opaque handle (vit_context *, vit_model *, ...)
_out = POINTER(c_void_p)  # vit_x **out
_buf = c_void_p     # a caller buffer (float *, int32_t *, void *): numpy's .ctypes.data

#: name -> (restype, argtypes), in the order of include/vit/*.h.
PROTOTYPES: Dict[str, Tuple[object, List[object]]] = {
    # core.h
    "vit_status_string": (c_char_p, [_status]),
    "vit_last_error": (c_char_p, []),
    "vit_clear_error": (None, []),
    "vit_version_number": (c_uint, []),
    "vit_version_string": (c_char_p, []),
    "vit_context_create": (_status, [_out]),
    "vit_context_destroy": (None, [_handle]),
    "vit_context_set_int": (_status, [_handle, _enum, c_int64]),
    "vit_context_get_int": (_status, [_handle, _enum, POINTER(c_int64)]),
    "vit_context_set_log": (_status, [_handle, LOG_FN, c_void_p]),
    "vit_tensor_create": (_status, [_handle, _enum, c_int, POINTER(c_int64), _out]),
    "vit_tensor_destroy": (None, [_handle]),
    "vit_tensor_shape": (_status, [_handle, POINTER(c_int), POINTER(c_int64)]),
    "vit_tensor_numel": (_status, [_handle, POINTER(c_int64)]),
    "vit_tensor_dtype": (_status, [_handle, POINTER(_enum)]),
    "vit_tensor_device": (_status, [_handle, POINTER(_enum)]),
    "vit_dtype_size": (c_size_t, [_enum]),
    "vit_tensor_write": (_status, [_handle, _buf, c_size_t]),
    "vit_tensor_read": (_status, [_handle, _buf, c_size_t]),
    "vit_tensor_data": (_status, [_handle, POINTER(c_void_p)]),
    # model.h
    "vit_config_create": (_status, [_out]),
    "vit_config_destroy": (None, [_handle]),
    "vit_config_copy": (_status, [_handle, _out]),
    "vit_config_set_int": (_status, [_handle, _enum, c_int64]),
    "vit_config_get_int": (_status, [_handle, _enum, POINTER(c_int64)]),
    "vit_config_set_float": (_status, [_handle, _enum, c_double]),
    "vit_config_get_float": (_status, [_handle, _enum, POINTER(c_double)]),
    "vit_config_set_preset": (_status, [_handle, c_char_p]),
    "vit_preset_name": (c_char_p, [c_int]),
    "vit_config_validate": (_status, [_handle]),
    "vit_model_create": (_status, [_handle, _handle, _out]),
    "vit_model_destroy": (None, [_handle]),
    "vit_model_get_config": (_status, [_handle, _out]),
    "vit_model_set_training": (_status, [_handle, c_int]),
    "vit_model_set_grad": (_status, [_handle, c_int]),
    "vit_model_get_rng_state": (_status, [_handle, POINTER(c_uint64)]),
    "vit_model_set_rng_state": (_status, [_handle, c_uint64]),
    "vit_model_forward": (_status, [_handle, _handle, _handle]),
    "vit_model_forward_features": (_status, [_handle, _handle, _handle]),
    "vit_model_forward_tokens": (_status, [_handle, _handle, _handle]),
    "vit_model_token_count": (_status, [_handle, POINTER(c_int), POINTER(c_int)]),
    "vit_model_loss": (_status, [_handle, _handle, c_float, POINTER(c_float)]),
    "vit_model_backward": (_status, [_handle]),
    "vit_model_backward_logits": (_status, [_handle, _handle]),
    "vit_model_zero_grad": (_status, [_handle]),
    "vit_model_param_count": (_status, [_handle, POINTER(c_int)]),
    "vit_model_num_params": (_status, [_handle, POINTER(c_int64)]),
    "vit_model_param_info": (_status, [_handle, c_int, POINTER(c_char_p), POINTER(c_int), POINTER(c_int64)]),
    "vit_model_param_read": (_status, [_handle, c_char_p, _buf, c_size_t]),
    "vit_model_param_write": (_status, [_handle, c_char_p, _buf, c_size_t]),
    "vit_model_grad_read": (_status, [_handle, c_char_p, _buf, c_size_t]),
    "vit_model_set_metadata": (_status, [_handle, c_char_p, c_char_p]),
    "vit_model_get_metadata": (_status, [_handle, c_char_p, POINTER(c_char_p)]),
    "vit_model_metadata_key": (_status, [_handle, c_int, POINTER(c_char_p)]),
    "vit_topk": (_status, [_handle, c_int, _buf, _buf]),
    "vit_accuracy": (_status, [_handle, _handle, c_int, POINTER(c_int64)]),
    # optim.h
    "vit_adamw_create": (_status, [_handle, _out]),
    "vit_optimizer_destroy": (None, [_handle]),
    "vit_optimizer_set_float": (_status, [_handle, _enum, c_double]),
    "vit_optimizer_get_float": (_status, [_handle, _enum, POINTER(c_double)]),
    "vit_optimizer_set_int": (_status, [_handle, _enum, c_int64]),
    "vit_optimizer_get_int": (_status, [_handle, _enum, POINTER(c_int64)]),
    "vit_optimizer_step": (_status, [_handle]),
    "vit_optimizer_zero_grad": (_status, [_handle]),
    "vit_optimizer_state_read": (_status, [_handle, _enum, c_char_p, _buf, c_size_t]),
    "vit_optimizer_state_write": (_status, [_handle, _enum, c_char_p, _buf, c_size_t]),
    # checkpoint.h
    "vit_model_save": (_status, [_handle, c_char_p]),
    "vit_model_load": (_status, [_handle, c_char_p, _out]),
    "vit_model_load_weights": (_status, [_handle, c_char_p, c_int]),
    "vit_optimizer_save": (_status, [_handle, _handle, c_char_p]),
    "vit_optimizer_save_ex": (_status, [_handle, _handle, c_char_p, c_int, POINTER(c_char_p), POINTER(c_char_p)]),
    "vit_optimizer_load": (_status, [_handle, _handle, c_char_p]),
    "vit_checkpoint_read_metadata": (_status, [c_char_p, METADATA_FN, c_void_p]),
    # plot.h
    "vit_plot_curves": (_status, [c_char_p, c_char_p, c_char_p, c_int, _buf, c_char_p, _buf, c_char_p, c_int,
                                  c_int]),
    # data.h
    "vit_dataset_open": (_status, [_handle, c_char_p, _enum, _enum, _out]),
    "vit_dataset_destroy": (None, [_handle]),
    "vit_dataset_set_int": (_status, [_handle, _enum, c_int64]),
    "vit_dataset_get_int": (_status, [_handle, _enum, POINTER(c_int64)]),
    "vit_dataset_size": (_status, [_handle, POINTER(c_int64)]),
    "vit_dataset_num_classes": (_status, [_handle, POINTER(c_int)]),
    "vit_dataset_class_name": (_status, [_handle, c_int, POINTER(c_char_p)]),
    "vit_data_format_name": (c_char_p, [_enum]),
    "vit_dataset_label": (_status, [_handle, c_int64, POINTER(ctypes.c_int32)]),
    "vit_dataset_get": (_status, [_handle, c_int64, _out, POINTER(ctypes.c_int32)]),
    "vit_transform_create": (_status, [_handle, _out]),
    "vit_transform_destroy": (None, [_handle]),
    "vit_transform_copy": (_status, [_handle, _out]),
    "vit_transform_set_int": (_status, [_handle, _enum, c_int64]),
    "vit_transform_get_int": (_status, [_handle, _enum, POINTER(c_int64)]),
    "vit_transform_set_float": (_status, [_handle, _enum, c_double]),
    "vit_transform_get_float": (_status, [_handle, _enum, POINTER(c_double)]),
    "vit_loader_create": (_status, [_handle, _handle, c_int, _out]),
    "vit_loader_destroy": (None, [_handle]),
    "vit_loader_set_int": (_status, [_handle, _enum, c_int64]),
    "vit_loader_get_int": (_status, [_handle, _enum, POINTER(c_int64)]),
    "vit_loader_start_epoch": (_status, [_handle, c_int64]),
    "vit_loader_num_batches": (_status, [_handle, POINTER(c_int64)]),
    "vit_loader_next": (_status, [_handle, _handle, _handle, POINTER(c_int)]),
    "vit_image_load": (_status, [_handle, c_char_p, _handle]),
    "vit_image_write_png": (_status, [c_char_p, _handle]),
    # dist.h
    "vit_comm_launch_size": (c_int, []),
    "vit_comm_create": (_status, [c_void_p, _out]),
    "vit_comm_destroy": (None, [_handle]),
    "vit_comm_rank": (_status, [_handle, POINTER(c_int)]),
    "vit_comm_size": (_status, [_handle, POINTER(c_int)]),
    "vit_comm_set_int": (_status, [_handle, _enum, c_int64]),
    "vit_comm_get_int": (_status, [_handle, _enum, POINTER(c_int64)]),
    "vit_comm_get_float": (_status, [_handle, _enum, POINTER(c_double)]),
    "vit_comm_allreduce_sum": (_status, [_handle, _buf, c_int]),
    "vit_comm_barrier": (_status, [_handle]),
    "vit_comm_abort": (None, [_handle, c_int]),
    "vit_model_set_comm": (_status, [_handle, _handle]),
    # onnx.h
    "vit_onnx_options_create": (_status, [_out]),
    "vit_onnx_options_destroy": (None, [_handle]),
    "vit_onnx_options_set_int": (_status, [_handle, _enum, c_int64]),
    "vit_model_export_onnx": (_status, [_handle, c_char_p, _handle]),
}


def _install_dirs() -> List[str]:
    """The libdir recorded by `meson install` (libvit/_install.py, absent from
    the source tree and from pip installs): first relative to this package, so
    a staged (DESTDIR) or moved install finds its own library, then absolute."""
    try:
        from . import _install  # type: ignore[attr-defined]
    except ImportError:
        return []
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = [os.path.normpath(os.path.join(here, _install.LIBDIR_FROM_PACKAGE)), _install.LIBDIR]
    return list(dict.fromkeys(dirs))


def candidates() -> List[Tuple[str, str]]:
    """(where from, path or name) in lookup order: $VIT_LIBRARY alone when it
    is set; otherwise the install's own libdir, then the loader's search path."""
    env = os.environ.get("VIT_LIBRARY")
    if env:
        return [("$VIT_LIBRARY", env)]
    found = [("the install's libdir", os.path.join(d, SONAME)) for d in _install_dirs()]
    return found + [("the loader's search path", SONAME)]


def _declare(lib: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in PROTOTYPES.items():
        fn = getattr(lib, name)  # AttributeError: an older library without this function
        fn.restype = restype
        fn.argtypes = argtypes


def package_major(version: str = __version__) -> int:
    """The major number of a version string."""
    return int(version.split(".")[0])


def check_version(number: int, path: str, version: str = __version__) -> None:
    """ImportError unless the library's major version (vit_version_number()
    // 10000) is the package's: another major has another ABI."""
    major = number // 10000
    if major != package_major(version):
        lib_version = f"{major}.{number // 100 % 100}.{number % 100}"
        raise ImportError(f"libvit: {path} is libvit {lib_version} (major {major}); this Python package "
                          f"{version} needs major {package_major(version)}. Install the matching package or "
                          f"point VIT_LIBRARY at a libvit.so.{package_major(version)}")


def load(tried: Optional[List[str]] = None) -> Tuple[ctypes.CDLL, str]:
    """The first candidate that loads and has every function of PROTOTYPES,
    with the prototypes declared; ImportError listing every attempt otherwise."""
    tried = [] if tried is None else tried
    for origin, path in candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({origin}): {e}")
            continue
        try:
            _declare(lib)
        except AttributeError as e:
            tried.append(f"{path} ({origin}): not a libvit with this package's functions: {e}")
            continue
        check_version(lib.vit_version_number(), path)
        return lib, path
    raise ImportError("libvit: cannot load the C library " + SONAME + "; tried:\n  " + "\n  ".join(tried) +
                      "\nInstall libvit (meson install), or set VIT_LIBRARY to the path of libvit.so.0 "
                      "(e.g. build/libvit/libvit.so.0)")


LIB, PATH = load()


def strings(values: Sequence[str]):
    """A NULL-free C array of UTF-8 strings (const char *const *)."""
    return (c_char_p * len(values))(*(v.encode() for v in values))
