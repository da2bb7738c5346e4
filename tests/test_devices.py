"""Device placement owned by ``portable_nn.backend``: canonical devices, DLPack moves, the CuPy
device scope and the one-time CUDA probe. GPU behaviour is checked with fakes here (this suite
runs on CPU-only machines); ``ci/gpu-check.sh`` runs the real thing on a GPU."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import backend as B
from portable_nn.backend import arrays as backend_arrays
from portable_nn.backend import registry


def test_torch_cpu_index_is_canonical_and_nothing_is_copied() -> None:
    torch = pytest.importorskip("torch")
    target = B.make_backend("torch", "cpu:0")
    assert target.device == torch.device("cpu")
    tensor = torch.ones(3)
    assert pnn.asarray(tensor, backend=target) is tensor  # was a copy on every call
    assert target.holds(tensor)
    assert B.same_device(torch.device("cpu:0"), torch.device("cpu"))


def test_torch_cuda_without_index_means_the_current_device(monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert B.canonical_device(torch.device("cuda")) == torch.device("cuda:1")
    assert B.same_device(torch.device("cuda"), torch.device("cuda:1"))
    assert not B.same_device(torch.device("cuda"), torch.device("cuda:0"))
    assert registry.parse_device("torch", "cuda") == torch.device("cuda:1")


def test_moves_between_libraries_use_dlpack_not_the_host(monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")

    def no_host(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("went through a host copy")

    monkeypatch.setattr(backend_arrays, "to_numpy", no_host)
    tensor = torch.arange(6, dtype=torch.float32)
    moved = B.move(tensor, jnp.zeros(1))
    assert B.namespace_of(moved) is jnp
    np.testing.assert_array_equal(np.asarray(moved), np.arange(6, dtype=np.float32))
    back = pnn.asarray(moved, backend=B.make_backend("torch"))
    assert isinstance(back, torch.Tensor) and back.tolist() == tensor.tolist()


def test_moves_fall_back_to_a_host_copy() -> None:
    strict = pytest.importorskip("array_api_strict")
    on_device1 = strict.asarray([1.0, 2.0], device=strict.Device("device1"))
    moved = B.move(on_device1, np.zeros(1))
    assert isinstance(moved, np.ndarray) and moved.tolist() == [1.0, 2.0]
    read_only = np.arange(3.0)
    read_only.flags.writeable = False
    torch = pytest.importorskip("torch")
    assert pnn.asarray(read_only, backend=B.make_backend("torch")).tolist() == [0.0, 1.0, 2.0]
    assert isinstance(B.move(read_only, torch.zeros(1)), torch.Tensor)


class FakeCudaDevice:
    """Stands for ``cupy.cuda.Device``: a context manager that makes it the current device."""

    def __init__(self, index: int) -> None:
        self.index, self.depth, self.entered = index, 0, 0

    def __enter__(self) -> FakeCudaDevice:
        self.depth += 1
        self.entered += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self.depth -= 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FakeCudaDevice) and other.index == self.index

    def __hash__(self) -> int:
        return self.index


def fake_cupy_backend(device: FakeCudaDevice) -> B.Backend:
    xp = B.make_backend("numpy").xp
    return B.Backend(name="cupy", xp=xp, device=device, dtype=xp.float32)


def test_use_backend_makes_the_cupy_device_current() -> None:
    device = FakeCudaDevice(1)
    with pnn.use_backend(fake_cupy_backend(device)) as active:
        assert device.depth == 1 and active.scope() is device
    assert device.depth == 0
    assert isinstance(B.make_backend("numpy").scope(), type(B.device_scope(np.zeros(1))))


def test_fit_evaluate_and_predict_run_in_the_models_device_scope(monkeypatch) -> None:
    """With a model on cuda:1, every batch runs while CuPy's current device is cuda:1."""
    from portable_nn.training import mixin

    device = FakeCudaDevice(1)
    monkeypatch.setattr(mixin, "model_scope", lambda model: fake_cupy_backend(device).scope())
    depths: list[int] = []
    spy = pnn.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: depths.append(device.depth),
        on_test_batch_begin=lambda batch, logs: depths.append(device.depth),
        on_predict_batch_begin=lambda batch, logs: depths.append(device.depth),
    )
    model = pnn.Sequential([pnn.layers.Dense(2, input_dim=3)])
    model.compile(loss="mse", optimizer="sgd")
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[spy])
    model.evaluate(x, y, batch_size=4, callbacks=[spy])
    model.predict(x, batch_size=4, callbacks=[spy])
    assert depths == [1] * 6 and device.depth == 0


def test_cuda_is_probed_once(monkeypatch) -> None:
    calls = []
    real_import = importlib.import_module

    def counting(name: str, *args: Any) -> Any:
        if name == "cupy":
            calls.append(name)
        return real_import(name, *args)

    registry.cuda_problem.cache_clear()
    monkeypatch.setattr(registry.importlib, "import_module", counting)
    try:
        first = [registry.cuda_problem() for _ in range(3)]
        B.make_backend("auto")
        B.make_backend("auto")
    finally:
        registry.cuda_problem.cache_clear()
    assert len(calls) == 1 and len(set(first)) == 1
