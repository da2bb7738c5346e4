"""The cross-backend test matrix: one ``backend`` fixture over every available library.

Backends (test ids): numpy, numpy_readonly, array_api_strict, array_api_strict-device1, torch,
jax, cupy, torch-cuda. Missing libraries and missing GPUs become skips with a reason, never
failures. Restrict the matrix with ``--backend numpy,torch`` or
``PORTABLE_NN_TEST_BACKENDS=numpy,torch``.

``numpy_readonly`` makes every array that portable_nn copies from the host (weights, inputs,
``pnn.asarray`` data) read-only, so an in-place write anywhere fails on the CPU as it would
on JAX.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.backend import arrays as backend_arrays
from portable_nn.backend import state as backend_state

if importlib.util.find_spec("jax") is not None:
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 references, as SciPy's suite does

if importlib.util.find_spec("torch") is not None:
    import torch

    torch.set_num_threads(1)  # tiny test tensors: threads only add contention on 2 shared cores

try:
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None, deadline=None, max_examples=50)
    settings.load_profile("ci")
except ImportError:  # pragma: no cover
    pass


@dataclass(frozen=True)
class BackendCase:
    """One entry of the matrix: a portable_nn backend name, a device and options."""

    id: str
    name: str
    device: str | None = None
    readonly: bool = False

    def make(self, dtype: str = "float32") -> pnn.Backend:
        return backend_state.make_backend(self.name, self.device, dtype)

    @property
    def xp(self) -> Any:
        return self.make().xp

    @property
    def dev(self) -> Any:
        return self.make().device

    def asarray(self, data: Any, dtype: str | None = None) -> Any:
        """NumPy/host data -> this backend's namespace and device (read-only when asked)."""
        host = np.asarray(data)
        if dtype is not None:
            host = host.astype(dtype)
        out = backend_arrays.host_to(host, self.xp, self.dev)
        if self.readonly:
            out = np.array(out)
            out.flags.writeable = False
        return out

    @staticmethod
    def to_numpy(array: Any) -> np.ndarray:
        return np.asarray(pnn.to_numpy(array))

    @contextlib.contextmanager
    def use(self, dtype: str = "float32") -> Iterator[pnn.Backend]:
        """Activate this backend (with a default dtype) for a block."""
        with pnn.use_backend(self.make(dtype)) as backend:
            yield backend

    def assert_same_place(self, array: Any) -> None:
        """Assert ``array`` lives in this backend's namespace and on its device."""
        import array_api_compat

        assert array_api_compat.array_namespace(array) is self.xp, type(array)
        assert array_api_compat.device(array) == self.dev, array_api_compat.device(array)
        if self.readonly:
            assert isinstance(array, np.ndarray)


def _cuda_reason() -> str | None:
    from portable_nn.backend import cuda_problem

    return cuda_problem()


def _torch_cuda_reason() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    import torch

    return None if torch.cuda.is_available() else "torch has no CUDA device"


ALL_CASES = [
    (BackendCase("numpy", "numpy"), lambda: None),
    (BackendCase("numpy_readonly", "numpy", readonly=True), lambda: None),
    (
        BackendCase("array_api_strict", "array_api_strict"),
        lambda: None if importlib.util.find_spec("array_api_strict") else "not installed",
    ),
    (
        BackendCase("array_api_strict-device1", "array_api_strict", device="device1"),
        lambda: None if importlib.util.find_spec("array_api_strict") else "not installed",
    ),
    (
        BackendCase("torch", "torch", device="cpu"),
        lambda: None if importlib.util.find_spec("torch") else "torch is not installed",
    ),
    (
        BackendCase("jax", "jax"),
        lambda: None if importlib.util.find_spec("jax") else "jax is not installed",
    ),
    (BackendCase("cupy", "cupy"), _cuda_reason),
    (BackendCase("torch-cuda", "torch", device="cuda"), _torch_cuda_reason),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        default=os.environ.get("PORTABLE_NN_TEST_BACKENDS", ""),
        help="comma-separated backend ids to test (default: all available)",
    )


def _selected(config: pytest.Config) -> set[str] | None:
    text = config.getoption("--backend")
    return {part.strip() for part in text.split(",") if part.strip()} or None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    chosen = _selected(metafunc.config)
    params = []
    for case, why_not in ALL_CASES:
        if chosen is not None and case.id not in chosen:
            continue
        params.append(pytest.param((case, why_not), id=case.id))
    metafunc.parametrize("backend", params, indirect=True)


_reasons: dict[str, str | None] = {}


@pytest.fixture
def backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BackendCase]:
    """The active backend case; portable_nn's active backend is set to it for the test."""
    case, why_not = request.param
    if case.id not in _reasons:
        _reasons[case.id] = why_not()
    if _reasons[case.id] is not None:
        pytest.skip(f"{case.id}: {_reasons[case.id]}")
    if case.readonly:
        original = backend_arrays.host_to

        import portable_nn.init as init_module

        def read_only(make: Any) -> Any:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                out = make(*args, **kwargs)
                if isinstance(out, np.ndarray):
                    out = np.array(out)
                    out.flags.writeable = False
                return out

            return wrapped

        # every array portable_nn copies from the host or fills (zeros/ones) becomes read-only
        monkeypatch.setattr(backend_arrays, "host_to", read_only(original))
        monkeypatch.setattr(backend_state, "host_to", read_only(original))
        monkeypatch.setattr(init_module, "constant", read_only(init_module.constant))
    pnn.seed(0)
    with case.use():
        yield case


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tag each test with its backend id so the summary can count per backend.

    With ``PORTABLE_NN_BACKEND_TESTS_ONLY=1`` (used by ci/gpu-check.sh) tests that take no
    ``backend`` are deselected: a GPU run need not repeat the CPU-only ones.
    """
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "backend" in callspec.params:
            item.user_properties.append(("backend", callspec.params["backend"][0].id))
            keep.append(item)
        else:
            drop.append(item)
    if os.environ.get("PORTABLE_NN_BACKEND_TESTS_ONLY") == "1" and drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many tests passed, failed and skipped on each backend of the matrix."""
    table: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            name = dict(getattr(report, "user_properties", ())).get("backend")
            if name is None or (outcome in ("passed", "failed") and report.when != "call"):
                continue
            row = table.setdefault(name, dict.fromkeys(("passed", "failed", "skipped", "error"), 0))
            row[outcome] += 1
    if not table:
        return
    terminalreporter.section("tests per backend")
    for case, _ in ALL_CASES:
        row = table.get(case.id)
        if row is not None:
            why_not = _reasons.get(case.id)
            terminalreporter.write_line(
                f"{case.id:26s} passed {row['passed']:5d}  failed {row['failed']:4d}  "
                f"skipped {row['skipped']:4d}  errors {row['error']:3d}"
                + (f"  (backend skipped: {why_not})" if why_not else "")
            )
