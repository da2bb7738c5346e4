"""NCCL for CuPy arrays in an MPI job (``cupy.cuda.nccl``): sums and broadcasts that stay on
the GPUs, the MPI engine's path for CuPy arrays when CuPy was built with NCCL.

The communicator is made on the first CuPy collective, which every process reaches at the same
point of the job (they run the same steps): rank 0 draws NCCL's unique id, MPI broadcasts it,
and every process joins with its rank. Operations are queued on CuPy's current stream, so
later work on that stream sees their result without a host wait.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

# NCCL's data types by array dtype name (ncclDataType_t)
NCCL_TYPES = {
    "int8": "NCCL_INT8",
    "uint8": "NCCL_UINT8",
    "int32": "NCCL_INT32",
    "uint32": "NCCL_UINT32",
    "int64": "NCCL_INT64",
    "uint64": "NCCL_UINT64",
    "float16": "NCCL_FLOAT16",
    "float32": "NCCL_FLOAT32",
    "float64": "NCCL_FLOAT64",
}


@functools.cache
def nccl_module() -> Any | None:
    """``cupy.cuda.nccl`` when CuPy has NCCL, else ``None`` (looked up once)."""
    try:
        from cupy.cuda import nccl
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", False) else None


class NcclComm:
    """An NCCL communicator over the processes of the MPI communicator ``mpi_comm``.
    ``nccl`` and ``cupy``: the modules (``cupy.cuda.nccl`` and ``cupy`` unless given)."""

    def __init__(self, mpi_comm: Any, nccl: Any = None, cupy: Any = None) -> None:
        nccl = nccl_module() if nccl is None else nccl
        cupy = importlib.import_module("cupy") if cupy is None else cupy
        rank, size = mpi_comm.Get_rank(), mpi_comm.Get_size()
        unique_id = mpi_comm.bcast(nccl.get_unique_id() if rank == 0 else None, root=0)
        self.nccl, self.cupy = nccl, cupy
        self.comm = nccl.NcclCommunicator(size, unique_id, rank)

    def _prepare(self, array: Any) -> tuple[Any, int, int]:
        array = self.cupy.ascontiguousarray(array)
        name = str(array.dtype)
        if name not in NCCL_TYPES:
            raise TypeError(f"NCCL has no collective for dtype {name}")
        stream = self.cupy.cuda.get_current_stream().ptr
        return array, getattr(self.nccl, NCCL_TYPES[name]), stream

    def allreduce(self, array: Any) -> Any:
        """The element-wise sum over the processes (a new array on the same device)."""
        array, kind, stream = self._prepare(array)
        out = self.cupy.empty_like(array)
        self.comm.allReduce(
            array.data.ptr, out.data.ptr, array.size, kind, self.nccl.NCCL_SUM, stream
        )
        return out

    def broadcast(self, array: Any, root: int = 0) -> Any:
        """``root``'s ``array`` on every process (a new array on the same device)."""
        array, kind, stream = self._prepare(array)
        out = array.copy()
        self.comm.bcast(out.data.ptr, out.size, kind, root, stream)
        return out


__all__ = ["NCCL_TYPES", "NcclComm", "nccl_module"]
