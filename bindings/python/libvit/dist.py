"""Data-parallel training over MPI (include/vit/dist.h, docs/distributed.md).

Run the script under ``mpirun -np N python3 train.py``; every rank does::

    comm = libvit.Communicator()          # MPI_COMM_WORLD; MPI started by libvit if needed
    comm.attach(model)                    # rank 0's weights everywhere; backward averages gradients
    loader = libvit.DataLoader(ds, tf, global_batch // comm.size,
                               shard_index=comm.rank, shard_count=comm.size)

A program that already uses mpi4py passes its communicator's handle address:
``libvit.Communicator(mpi4py.MPI._addressof(comm))`` (libvit and mpi4py
must then use the same MPI library).
"""
from __future__ import annotations

from ctypes import byref, c_double, c_int, c_int64, c_void_p
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ._handles import Settings, _Handle, live
from ._lib import LIB
from .errors import InvalidArgumentError, check
from .model import Model

__all__ = ["Communicator", "COMM_STATS", "launch_size"]

#: vit_comm_stat by Python name
COMM_STATS = {"wait_seconds": 1, "reduce_seconds": 2, "bytes": 3, "backwards": 4}


def launch_size() -> int:
    """Ranks an MPI launcher started this process among; 0 without one (vit_comm_launch_size)."""
    return int(LIB.vit_comm_launch_size())


class Communicator(_Handle):
    """A communicator over MPI (vit_comm): rank, size, gradient averaging for
    the models attached to it, sums of metrics over the ranks.

    ``Communicator(mpi_comm_address=None, bucket_bytes=1 << 20, overlap=True,
    timeout_ms=300000)``: None means MPI_COMM_WORLD; otherwise the address
    (an int) of the caller's MPI_Comm variable, which libvit duplicates."""

    _destroy = "vit_comm_destroy"
    SETTINGS = Settings("communicator", {"rank": 1, "size": 2, "bucket_bytes": 3, "overlap": 4, "timeout_ms": 5,
                                         "mpi": 6, "mpi_handle_bytes": 7},
                        bools={"overlap", "mpi"}, readonly={"rank", "size", "mpi", "mpi_handle_bytes"})

    def __init__(self, mpi_comm_address: Optional[int] = None, **settings: Any):
        super().__init__()
        address = None if mpi_comm_address is None else c_void_p(int(mpi_comm_address))
        check(LIB.vit_comm_create(address, byref(self._h)))
        for name, value in settings.items():
            self.set(name, value)

    def set(self, name: str, value: Any) -> None:
        """Change one setting (vit_comm_set_int)."""
        key, _, raw = self.SETTINGS.encode(name, value)
        check(LIB.vit_comm_set_int(self._ptr(), key, raw))

    def get(self, name: str) -> Any:
        """One setting (vit_comm_get_int)."""
        key, _ = self.SETTINGS.key(name)
        out = c_int64()
        check(LIB.vit_comm_get_int(self._ptr(), key, byref(out)))
        return self.SETTINGS.decode(name, out.value)

    @property
    def rank(self) -> int:
        """This process's rank (vit_comm_rank)."""
        out = c_int()
        check(LIB.vit_comm_rank(self._ptr(), byref(out)))
        return out.value

    @property
    def size(self) -> int:
        """The number of ranks (vit_comm_size)."""
        out = c_int()
        check(LIB.vit_comm_size(self._ptr(), byref(out)))
        return out.value

    def stats(self) -> Dict[str, float]:
        """Accumulated counters by name (vit_comm_get_float): wait_seconds, reduce_seconds, bytes, backwards."""
        out = {}
        for name, key in COMM_STATS.items():
            value = c_double()
            check(LIB.vit_comm_get_float(self._ptr(), key, byref(value)))
            out[name] = value.value
        return out

    def allreduce_sum(self, values: Sequence[float]) -> np.ndarray:
        """The sums over the ranks of values, the same on every rank (vit_comm_allreduce_sum)."""
        buf = np.ascontiguousarray(values, dtype=np.float64).copy()
        if buf.ndim != 1:
            raise InvalidArgumentError(f"allreduce_sum: values must be one-dimensional, not of shape {buf.shape}")
        check(LIB.vit_comm_allreduce_sum(self._ptr(), buf.ctypes.data, len(buf)))
        return buf

    def barrier(self) -> None:
        """Waits for every rank (vit_comm_barrier)."""
        check(LIB.vit_comm_barrier(self._ptr()))

    def abort(self, code: int = 1) -> None:
        """Ends every process of the job (vit_comm_abort): after an error on one rank only."""
        LIB.vit_comm_abort(self._ptr(), int(code))

    def attach(self, model: Optional[Model]) -> None:
        """Attach model (rank 0's weights to every rank; backward averages the
        gradients over the ranks); a collective. detach(model) undoes it."""
        live(model, Model, "model")
        check(LIB.vit_model_set_comm(model._ptr(), self._ptr()))
        model._comm = self  # the model's C side holds the communicator; keep the wrapper alive with it

    @staticmethod
    def detach(model: Model) -> None:
        """The model trains alone again (vit_model_set_comm with NULL)."""
        live(model, Model, "model")
        check(LIB.vit_model_set_comm(model._ptr(), None))
        model._comm = None

    def __repr__(self) -> str:
        if self._owner is None:
            return "<libvit.Communicator closed>"
        return f"<libvit.Communicator rank={self.rank} size={self.size}>"
