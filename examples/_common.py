"""Shared command-line flags and helpers of the examples (not part of the library).

Every example runs as ``python examples/NAME.py --backend numpy|torch|jax|cupy|
array_api_strict|auto`` and has a ``run(...)`` function returning a dict of results; with
``backend=None`` ``run`` uses the active backend (as tests set it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

try:
    import portable_nn as pnn
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import portable_nn as pnn

from portable_nn.backend import BACKEND_NAMES


def parser(description: str, epochs: int, batch_size: int | None = None) -> argparse.ArgumentParser:
    """An argument parser with ``--backend --device --epochs --seed --out --quick``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_NAMES,
        help="array library (auto: CuPy when a GPU works, else NumPy)",
    )
    p.add_argument("--device", default=None, help="device of that library (e.g. cuda, device1)")
    p.add_argument("--epochs", type=int, default=epochs, help=f"training epochs ({epochs})")
    if batch_size is not None:
        p.add_argument("--batch-size", type=int, default=batch_size, help=f"({batch_size})")
    p.add_argument("--seed", type=int, default=0, help="seed of data, weights and batches (0)")
    p.add_argument("--out", default=".", help="folder for the figures (default: .)")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run (for tests)")
    p.add_argument(
        "--threads", type=int, default=1, help="CPU threads for BLAS/OpenMP (1; 0: library default)"
    )
    return p


@contextlib.contextmanager
def backend_scope(
    name: str | None, device: Any = None, dtype: str = "float32", threads: int | None = 1
) -> Iterator[pnn.Backend]:
    """Activate backend ``name`` with default ``dtype`` for the block; ``name=None`` keeps the
    active backend and device (switching its dtype when asked). ``threads`` caps the CPU
    thread pools (see :func:`cpu_threads`) once the backend's library is loaded."""
    if name is None:
        active = pnn.get_backend()
        name, device = active.name, active.device
        if active.dtype_name == dtype:
            with cpu_threads(threads):
                yield active
            return
    with pnn.use_backend(name, device, dtype) as backend, cpu_threads(threads):
        yield backend


def cpu_threads(threads: int | None) -> contextlib.AbstractContextManager:
    """Cap the BLAS and OpenMP thread pools of the loaded libraries (NumPy's OpenBLAS,
    PyTorch's OpenMP) at ``threads`` for a block; ``None`` or 0 keeps their defaults.

    The examples multiply small matrices (batch 32 x a few hundred units): one thread does
    that as fast as several, and stays fast when the CPU is shared, where handing each small
    product to several threads can make a step 20-40 times slower. Needs threadpoolctl
    (installed with scikit-learn); without it this does nothing.
    """
    if not threads:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads)


def describe(backend: pnn.Backend) -> str:
    return f"backend {backend.name}, device {backend.device}, dtype {backend.dtype_name}"


def figure_path(out: str | os.PathLike | None, name: str) -> str | None:
    """``out/name`` (folders created by :func:`save_figure`), or None when figures are off."""
    return None if out is None else os.path.join(os.fspath(out), name)


def save_figure(
    draw: Callable[..., Any], path: str | None, *args: Any, **kwargs: Any
) -> str | None:
    """Call ``draw(*args, path=path, **kwargs)``; without matplotlib print a note instead.

    Returns the path written, or None (no path asked, or matplotlib missing)."""
    if path is None:
        return None
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        draw(*args, path=path, **kwargs)
    except ImportError as exc:
        print(f"  (figure skipped: {exc})")
        return None
    print(f"  figure written to {path}")
    return path


class EpochTimer(pnn.callbacks.Callback):
    """Wall time of every epoch (seconds) in ``self.times``."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.times.append(time.perf_counter() - self._start)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if not ordered:
        return float("nan")
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
