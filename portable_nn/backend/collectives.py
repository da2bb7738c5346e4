"""Collective operations of the engines HPC and deep-learning users already run: MPI (mpi4py)
and ``torch.distributed`` (gloo on CPUs, NCCL on CUDA). The only place that imports them.

An engine sums, broadcasts and gathers arrays of ANY supported library between the processes
of one job:

* ``torch.distributed`` works on torch tensors in place (NCCL on CUDA tensors, gloo on CPU
  tensors); other libraries' arrays go through a CPU tensor (``torch.from_numpy``: no copy for
  NumPy).
* MPI works on host buffers: NumPy arrays and CPU torch tensors are used in place (no copy).
  CuPy arrays take NCCL (``cupy.cuda.nccl``, :mod:`.nccl`) when CuPy has it, else MPI on the
  device buffers when ``PORTABLE_NN_CUDA_AWARE_MPI=1`` declares the MPI build CUDA-aware, else
  the host; JAX arrays and CUDA tensors are staged through the host (``to_numpy`` then back).
  ``MPIEngine.transport(array)`` says which. Each process of an MPI job uses GPU
  ``local rank % GPUs`` of its host (CuPy's current device).

Which engine: the launcher decides. ``torchrun`` sets ``TORCHELASTIC_RUN_ID`` (and ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``); ``mpiexec`` sets ``PMI_RANK``/``PMI_SIZE`` (MPICH, Intel MPI),
``OMPI_COMM_WORLD_SIZE`` (Open MPI), ``PMIX_RANK`` or ``MV2_COMM_WORLD_SIZE``. Nothing: one
process. ``PORTABLE_NN_DISTRIBUTED=mpi|torch|none`` overrides.
"""

from __future__ import annotations

import atexit
import datetime
import importlib.util
import os
import sys
import traceback
from typing import Any

import array_api_compat
import numpy as np

from .arrays import device_of, host_to, namespace_of, to_numpy
from .nccl import NcclComm, nccl_module

MPI_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")
TIMEOUT_S = float(os.environ.get("PORTABLE_NN_DISTRIBUTED_TIMEOUT", "60"))


def launcher_engine() -> str:
    """``"torch"``, ``"mpi"`` or ``"none"`` from the environment (see the module docstring)."""
    forced = os.environ.get("PORTABLE_NN_DISTRIBUTED", "").strip().lower()
    if forced:
        if forced not in ("mpi", "torch", "none"):
            raise ValueError(
                f"PORTABLE_NN_DISTRIBUTED must be mpi, torch or none. Received: {forced!r}"
            )
        return forced
    if "TORCHELASTIC_RUN_ID" in os.environ or {"RANK", "WORLD_SIZE", "MASTER_ADDR"} <= set(
        os.environ
    ):
        return "torch"
    if any(name in os.environ for name in MPI_VARIABLES):
        return "mpi"
    return "none"


class Engine:
    """One process of a job: ``rank`` in ``0 .. size - 1``. The single-process engine."""

    name = "none"
    rank, size = 0, 1

    def allreduce(self, array: Any) -> Any:
        """The element-wise sum of ``array`` over the processes (same namespace and device)."""
        return array

    def iallreduce(self, array: Any) -> Any:
        """Start :meth:`allreduce` without waiting; ``.wait()`` on the result returns the sum."""
        return _Done(self.allreduce(array))

    def broadcast(self, array: Any, root: int = 0) -> Any:
        """``root``'s ``array`` on every process."""
        return array

    def allgather_object(self, value: Any) -> list[Any]:
        """Every process's ``value`` (small picklable objects), by rank."""
        return [value]

    def barrier(self) -> None:
        pass

    def abort(self, code: int = 1) -> None:
        os._exit(code)


class _Done:
    def __init__(self, value: Any) -> None:
        self.value = value

    def progress(self) -> None:
        pass

    def wait(self) -> Any:
        return self.value


class MPIEngine(Engine):
    """MPI through mpi4py (``COMM_WORLD``); host buffers (see the module docstring)."""

    name = "mpi"

    def __init__(self) -> None:
        try:
            from mpi4py import MPI
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "launched by mpiexec, but mpi4py is missing: pip install 'portable-nn[distributed]'"
            ) from exc
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.local_rank = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
        self.cuda_aware = os.environ.get("PORTABLE_NN_CUDA_AWARE_MPI", "") == "1"
        self._nccl: NcclComm | None = None
        _use_local_gpu(self.local_rank)

    def transport(self, array: Any) -> str:
        """How a collective moves ``array``: ``"nccl"``, ``"cuda-aware mpi"`` or ``"host"``."""
        if not array_api_compat.is_cupy_array(array):
            return "host"
        if nccl_module() is not None:
            return "nccl"
        return "cuda-aware mpi" if self.cuda_aware else "host"

    def _collective(self, array: Any, nccl: Any, mpi: Any) -> Any:
        """``nccl(communicator)`` for CuPy arrays with NCCL, else ``mpi(buffer)`` in place on
        a copy on the device (CUDA-aware MPI) or on a host buffer, and the result back."""
        way = self.transport(array)
        if way == "nccl":
            if self._nccl is None:
                self._nccl = NcclComm(self.comm)
            return nccl(self._nccl)
        if way == "cuda-aware mpi":
            out = _synchronized(array.copy())
            mpi(out)
            return out
        host, back = _host_buffer(array)
        mpi(host)
        return back(host)

    def allreduce(self, array: Any) -> Any:
        return self._collective(
            array,
            lambda nccl: nccl.allreduce(array),
            lambda buffer: self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM),
        )

    def iallreduce(self, array: Any) -> Any:
        if self.transport(array) != "host":  # NCCL queues on the stream: already asynchronous
            return _Done(self.allreduce(array))
        host, back = _host_buffer(array)
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        return _Pending(request.Wait, lambda: back(host), request.Test)

    def broadcast(self, array: Any, root: int = 0) -> Any:
        return self._collective(
            array,
            lambda nccl: nccl.broadcast(array, root),
            lambda buffer: self.comm.Bcast(buffer, root=root),
        )

    def allgather_object(self, value: Any) -> list[Any]:
        return self.comm.allgather(value)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)


class TorchEngine(Engine):
    """``torch.distributed``: NCCL when the process has a CUDA device, else gloo; collectives
    time out after ``PORTABLE_NN_DISTRIBUTED_TIMEOUT`` seconds (60 by default)."""

    def __init__(self) -> None:
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        if not dist.is_initialized():
            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(
                backend="nccl" if cuda else "gloo",
                timeout=datetime.timedelta(seconds=TIMEOUT_S),
            )
            atexit.register(self._close)
        self.name = f"torch-{dist.get_backend()}"
        self.rank, self.size = dist.get_rank(), dist.get_world_size()

    def _close(self) -> None:
        """Leave the group before the interpreter exits: gloo's threads otherwise race the
        interpreter's teardown ("terminate called without an active exception")."""
        if self.dist.is_initialized():
            self.dist.destroy_process_group()

    def _tensor(self, array: Any) -> tuple[Any, Any]:
        """A tensor the backend can reduce in place, and how to turn it back into ``array``'s
        kind (the tensor itself when it is one)."""
        if array_api_compat.is_torch_array(array):
            cuda = array.device.type == "cuda"
            if cuda == (self.dist.get_backend() == "nccl"):
                return array.contiguous(), lambda t: t
            moved = array.to("cuda" if not cuda else "cpu")
            return moved, lambda t: t.to(array.device)
        host, back = _host_buffer(array)
        tensor = self.torch.from_numpy(host)
        if self.dist.get_backend() == "nccl":
            return tensor.cuda(), lambda t: back(t.cpu().numpy())
        return tensor, lambda t: back(host)

    def allreduce(self, array: Any) -> Any:
        tensor, back = self._tensor(array)
        self.dist.all_reduce(tensor)
        return back(tensor)

    def iallreduce(self, array: Any) -> Any:
        tensor, back = self._tensor(array)
        work = self.dist.all_reduce(tensor, async_op=True)
        return _Pending(work.wait, lambda: back(tensor))

    def broadcast(self, array: Any, root: int = 0) -> Any:
        tensor, back = self._tensor(array)
        self.dist.broadcast(tensor, src=root)
        return back(tensor)

    def allgather_object(self, value: Any) -> list[Any]:
        out: list[Any] = [None] * self.size
        self.dist.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        self.dist.barrier()


class _Pending:
    """A started collective: ``progress()`` lets it advance (MPI's ``Test``), ``wait()``
    finishes it and returns the result."""

    def __init__(self, wait: Any, result: Any, progress: Any = None) -> None:
        self._wait, self._result, self._progress = wait, result, progress

    def progress(self) -> None:
        if self._progress is not None:
            self._progress()

    def wait(self) -> Any:
        self._wait()
        return self._result()


def _host_buffer(array: Any) -> tuple[Any, Any]:
    """A writeable, contiguous host array holding ``array``'s values (``array``'s own memory
    for NumPy and CPU torch arrays when possible), and how to get the result back in
    ``array``'s namespace and device."""
    host = to_numpy(array)
    if not (host.flags.writeable and host.flags.c_contiguous):
        host = np.array(host, copy=True, order="C")
    if isinstance(array, np.ndarray):
        return host, lambda h: h
    xp, device = namespace_of(array), device_of(array)
    if array_api_compat.is_torch_array(array) and array.device.type == "cpu":
        import torch

        return host, lambda h: torch.from_numpy(h)
    return host, lambda h: host_to(h, xp, device)


def _synchronized(array: Any) -> Any:
    """``array`` once the GPU work queued on CuPy's current stream (its copy) has finished:
    MPI reads device memory directly, outside the stream."""
    import cupy

    cupy.cuda.get_current_stream().synchronize()
    return array


def _use_local_gpu(local_rank: int) -> None:
    """Make GPU ``local_rank % count`` CuPy's current device, when CuPy sees any GPU (one
    process per GPU on each host, as torchrun's ``LOCAL_RANK``)."""
    if importlib.util.find_spec("cupy") is None:
        return
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
        if count > 0:
            cupy.cuda.Device(local_rank % count).use()
    except Exception:  # no driver, a broken install: CuPy is then not usable anyway
        return


def make_engine(kind: str) -> Engine:
    """The engine ``kind`` (``launcher_engine()``'s answer) for this process; a failure in any
    process then stops the job (see :func:`stop_job_on_error`)."""
    engine = {"mpi": MPIEngine, "torch": TorchEngine}.get(kind, Engine)()
    if engine.size > 1:
        stop_job_on_error(engine)
    return engine


def stop_job_on_error(engine: Engine) -> None:
    """An uncaught exception in one process prints ``rank r failed`` with its traceback and
    aborts the whole job (MPI ``Abort``; torchrun then stops the other workers), so no
    process waits forever in a collective for a peer that died."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        message = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(
            f"portable_nn.distributed: rank {engine.rank} of {engine.size} ({engine.name}) "
            f"failed; stopping the job.\n{message}"
        )
        sys.stderr.flush()
        if engine.name == "mpi":
            engine.abort(1)
        previous(kind, value, tb)

    sys.excepthook = hook


__all__ = ["Engine", "MPIEngine", "TorchEngine", "launcher_engine", "make_engine"]
