"""The MPI engine's GPU paths for CuPy arrays (NCCL through ``cupy.cuda.nccl``, CUDA-aware MPI,
host staging), with stand-ins for MPI, NCCL and CuPy: no GPU on the CI machine. A stand-in NCCL
communicator of a 2-process job adds a fixed "other process" array to every sum."""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

from portable_nn.backend import collectives, nccl

MEMORY: dict[int, DeviceArray] = {}  # device pointer -> array, as NCCL sees memory


class DeviceArray:
    """Stands for a CuPy array: NumPy values behind a device pointer."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.dtype, self.size = values.dtype, values.size
        self.data = types.SimpleNamespace(ptr=id(self))
        MEMORY[id(self)] = self

    def copy(self) -> DeviceArray:
        return DeviceArray(self.values.copy())


FAKE_CUPY = types.SimpleNamespace(
    ascontiguousarray=lambda a: a,
    empty_like=lambda a: DeviceArray(np.empty_like(a.values)),
    cuda=types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=77)),
)


class FakeMpiComm:
    def __init__(self, rank: int, size: int = 2) -> None:
        self.rank, self.size, self.broadcasts = rank, size, []

    def Get_rank(self) -> int:  # noqa: N802 - mpi4py's names
        return self.rank

    def Get_size(self) -> int:  # noqa: N802
        return self.size

    def bcast(self, value: Any, root: int = 0) -> Any:
        self.broadcasts.append(value)
        return value if self.rank == root else "id-from-rank-0"


class FakeCommunicator:
    PEER = 10.0  # the other process's contribution to every sum, its value in broadcasts

    def __init__(self, size: int, unique_id: Any, rank: int) -> None:
        self.made_with, self.calls = (size, unique_id, rank), []

    def allReduce(self, send, recv, count, kind, op, stream):  # noqa: N802, ANN001
        self.calls.append(("allReduce", count, kind, op, stream))
        MEMORY[recv].values[...] = MEMORY[send].values + self.PEER

    def bcast(self, buff, count, kind, root, stream):  # noqa: ANN001
        self.calls.append(("bcast", count, kind, root, stream))
        if self.made_with[2] != root:
            MEMORY[buff].values[...] = self.PEER


def fake_nccl() -> types.SimpleNamespace:
    codes = {name: i for i, name in enumerate(nccl.NCCL_TYPES.values())}
    drawn: list[str] = []
    return types.SimpleNamespace(
        **codes,
        NCCL_SUM=0,
        available=True,
        drawn=drawn,
        get_unique_id=lambda: drawn.append("id") or "id-of-rank-0",
        NcclCommunicator=FakeCommunicator,
    )


@pytest.mark.parametrize("rank", [0, 1])
def test_communicator_from_rank_0s_unique_id(rank: int) -> None:
    module, mpi = fake_nccl(), FakeMpiComm(rank)
    comm = nccl.NcclComm(mpi, module, FAKE_CUPY)
    assert module.drawn == (["id"] if rank == 0 else [])  # only rank 0 draws the id
    want_id = "id-of-rank-0" if rank == 0 else "id-from-rank-0"
    assert comm.comm.made_with == (2, want_id, rank)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_sum_and_broadcast_on_the_current_stream(dtype: str) -> None:
    module = fake_nccl()
    comm = nccl.NcclComm(FakeMpiComm(1), module, FAKE_CUPY)
    x = DeviceArray(np.arange(6, dtype=dtype))
    summed = comm.allreduce(x)
    np.testing.assert_array_equal(summed.values, np.arange(6) + 10)
    assert summed is not x and x.values[0] == 0  # a new array; the input is left as it was
    code = getattr(module, nccl.NCCL_TYPES[dtype])
    assert comm.comm.calls == [("allReduce", 6, code, module.NCCL_SUM, 77)]
    got = comm.broadcast(x, root=0)
    np.testing.assert_array_equal(got.values, np.full(6, 10))
    assert comm.comm.calls[-1] == ("bcast", 6, code, 0, 77)


def test_a_dtype_nccl_lacks_is_named() -> None:
    comm = nccl.NcclComm(FakeMpiComm(0), fake_nccl(), FAKE_CUPY)
    with pytest.raises(TypeError, match="NCCL has no collective for dtype bool"):
        comm.allreduce(DeviceArray(np.zeros(3, dtype=bool)))


class FakeMpi:
    """mpi4py's ``MPI`` with a 1-process world whose sums double the values (2 equal ranks)."""

    SUM, IN_PLACE = "sum", "in-place"


class DoublingWorld:
    def __init__(self) -> None:
        self.buffers: list[Any] = []

    def Allreduce(self, where: Any, buffer: Any, op: Any) -> None:  # noqa: N802
        self.buffers.append(buffer)
        values = buffer.values if isinstance(buffer, DeviceArray) else buffer
        values *= 2

    def Iallreduce(self, where: Any, buffer: Any, op: Any) -> Any:  # noqa: N802
        self.Allreduce(where, buffer, op)
        return types.SimpleNamespace(Wait=lambda: None, Test=lambda: True)


def mpi_engine(monkeypatch: pytest.MonkeyPatch, *, has_nccl: bool, cuda_aware: bool) -> Any:
    engine = collectives.MPIEngine.__new__(collectives.MPIEngine)  # no mpiexec needed
    engine.synchronized = []  # arrays the stream was synchronized for before MPI read them
    monkeypatch.setattr(collectives, "_synchronized", lambda a: engine.synchronized.append(a) or a)
    engine.MPI, engine.comm = FakeMpi, DoublingWorld()
    engine.rank, engine.size, engine.cuda_aware = 0, 2, cuda_aware
    engine._nccl = None
    is_device = types.SimpleNamespace(is_cupy_array=lambda a: isinstance(a, DeviceArray))
    monkeypatch.setattr(collectives, "array_api_compat", is_device)
    module = fake_nccl() if has_nccl else None
    monkeypatch.setattr(collectives, "nccl_module", lambda: module)
    monkeypatch.setattr(collectives, "NcclComm", lambda comm: nccl.NcclComm(
        FakeMpiComm(0), module, FAKE_CUPY))  # fmt: skip
    return engine


@pytest.mark.parametrize(
    ("has_nccl", "cuda_aware", "way"),
    [(True, False, "nccl"), (True, True, "nccl"), (False, True, "cuda-aware mpi")],
)
def test_mpi_engine_keeps_cupy_arrays_on_the_gpu(monkeypatch, has_nccl, cuda_aware, way) -> None:
    engine = mpi_engine(monkeypatch, has_nccl=has_nccl, cuda_aware=cuda_aware)
    x = DeviceArray(np.array([1.0, 2.0], dtype=np.float32))
    assert engine.transport(x) == way and engine.transport(np.zeros(2)) == "host"
    summed = engine.iallreduce(x).wait()
    want = [11.0, 12.0] if way == "nccl" else [2.0, 4.0]
    np.testing.assert_array_equal(summed.values, want)
    assert isinstance(summed, DeviceArray) and list(x.values) == [1.0, 2.0]
    assert all(isinstance(b, DeviceArray) for b in engine.comm.buffers)  # MPI saw no host copy
    assert engine.synchronized == engine.comm.buffers  # each after its stream had finished


def test_mpi_engine_stages_cupy_arrays_through_the_host_otherwise(monkeypatch) -> None:
    engine = mpi_engine(monkeypatch, has_nccl=False, cuda_aware=False)
    x = DeviceArray(np.array([1.0, 2.0]))
    staged = []
    monkeypatch.setattr(collectives, "_host_buffer", lambda a: staged.append(a) or (
        a.values.copy(), DeviceArray))  # fmt: skip
    assert engine.transport(x) == "host"
    np.testing.assert_array_equal(engine.allreduce(x).values, [2.0, 4.0])
    assert staged == [x]
