"""Timing helpers shared by the benchmarks: interleaved repeats, medians, GPU synchronisation.

A *contender* is one implementation of the same work (one training step, say). All contenders
of a comparison are timed in the same process, repeat by repeat, in a rotating order, so that
machine noise (other jobs, frequency changes) hits every contender alike. Each repeat runs a
calibrated number of steps between two clock reads; a GPU contender synchronises its device
before each read so queued kernels are counted. Results are medians over repeats.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def no_sync() -> None:
    """The synchroniser of a CPU contender: nothing is queued, nothing to wait for."""


def torch_cuda_sync() -> Callable[[], None]:
    """``torch.cuda.synchronize`` (imports torch only when asked)."""
    import torch

    return torch.cuda.synchronize


def cupy_sync() -> Callable[[], None]:
    """Wait for every kernel queued on the current CuPy device (imports cupy only when asked)."""
    import cupy

    def sync() -> None:
        cupy.cuda.Device().synchronize()

    return sync


@dataclass
class Contender:
    """One implementation to time: ``step()`` does one unit of work on ``items`` samples."""

    name: str
    step: Callable[[], Any]
    sync: Callable[[], None] = no_sync
    items: int = 1


@dataclass
class Measurement:
    """Per-repeat timings of one contender: ``seconds[i]`` is the mean step time of repeat i."""

    name: str
    steps_per_repeat: int
    items: int
    seconds: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> list[float]:
        """Items (samples) per second of each repeat."""
        return [self.items / s for s in self.seconds]

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_throughput(self) -> float:
        return statistics.median(self.throughput)

    @property
    def spread(self) -> float:
        """(max - min) / median of the throughput over repeats: how noisy the repeats were."""
        values = self.throughput
        return (max(values) - min(values)) / statistics.median(values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps_per_repeat": self.steps_per_repeat,
            "items_per_step": self.items,
            "seconds_per_step": self.seconds,
            "items_per_second": self.throughput,
            "median_seconds_per_step": self.median_seconds,
            "median_items_per_second": self.median_throughput,
            "spread": self.spread,
        }


def time_steps(step: Callable[[], Any], sync: Callable[[], None], n: int) -> float:
    """Wall-clock seconds for ``n`` calls of ``step``, the device synchronised at both ends."""
    sync()
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    return time.perf_counter() - start


def calibrate(
    step: Callable[[], Any], sync: Callable[[], None], min_time: float, max_steps: int = 100_000
) -> int:
    """Smallest step count (doubling estimate) whose timed run lasts at least ``min_time``."""
    n = 1
    while True:
        elapsed = time_steps(step, sync, n)
        if elapsed >= min_time or n >= max_steps:
            return n
        guess = int(n * 1.2 * min_time / max(elapsed, 1e-9)) + 1
        n = min(max_steps, max(2 * n, guess))


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else float("nan")


def paired_ratio(a: Measurement, b: Measurement) -> float:
    """Median over repeats of throughput(a) / throughput(b), repeat by repeat.

    Repeats are interleaved, so repeat i of both ran at nearly the same time; pairing them
    cancels slow drifts of the machine that a ratio of medians would keep.
    """
    return statistics.median(ratio(x, y) for x, y in zip(a.throughput, b.throughput))


def run_interleaved(
    contenders: list[Contender],
    repeats: int,
    min_time: float,
    warmup: int = 3,
    steps: int | None = None,
) -> dict[str, Measurement]:
    """Time every contender ``repeats`` times, interleaved, rotating the order each repeat.

    Each contender first runs ``warmup`` untimed steps, then is calibrated to a step count
    lasting at least ``min_time`` seconds (or runs exactly ``steps`` when given).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1. Received: repeats={repeats}")
    counts: dict[str, int] = {}
    for contender in contenders:
        for _ in range(warmup):
            contender.step()
        contender.sync()
        counts[contender.name] = steps or calibrate(contender.step, contender.sync, min_time)
    results = {c.name: Measurement(c.name, counts[c.name], c.items) for c in contenders}
    for index in range(repeats):
        shift = index % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            n = counts[contender.name]
            elapsed = time_steps(contender.step, contender.sync, n)
            results[contender.name].seconds.append(elapsed / n)
    return results


def time_phases(
    phases: dict[str, dict[str, Callable[[], Any]]],
    sync: dict[str, Callable[[], None]],
    samples: int = 15,
    min_time: float = 0.02,
) -> dict[str, dict[str, tuple[float, float]]]:
    """Seconds per call of each phase of each contender: ``{contender: {phase: (min, median)}}``.

    Every phase is calibrated to ``min_time`` per sample, then the samples are interleaved
    across contenders and phases. The minimum is the least disturbed estimate of the cost
    (noise only adds time); the median shows how much the machine disturbed it.
    """
    jobs = [(c, name, fn) for c, named in phases.items() for name, fn in named.items()]
    counts = {(c, name): calibrate(fn, sync[c], min_time) for c, name, fn in jobs}
    times: dict[tuple[str, str], list[float]] = {key: [] for key in counts}
    for _ in range(samples):
        for c, name, fn in jobs:
            n = counts[(c, name)]
            times[(c, name)].append(time_steps(fn, sync[c], n) / n)
    out: dict[str, dict[str, tuple[float, float]]] = {c: {} for c in phases}
    for (c, name), values in times.items():
        out[c][name] = (min(values), statistics.median(values))
    return out


def profile_steps(step: Callable[[], Any], n: int, top: int = 20) -> str:
    """cProfile ``n`` calls of ``step``; the ``top`` functions by own time, in us per step.

    The profiler's clock is the process CPU time, so other jobs on the machine distort the
    attribution less than they distort wall-clock timings (the profiler's own overhead still
    inflates Python-heavy code by roughly 1.5-2x).
    """
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(n):
        step()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, ncalls, tt, ct, callers)}
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    total = sum(entry[2] for entry in stats.values())
    lines = [
        f"{'calls/step':>10} {'own us/step':>11} {'cum us/step':>11}  function",
        f"{'':>10} {1e6 * total / n:11.1f} {'':>11}  (all, profiled)",
    ]
    for (filename, line, name), (_, ncalls, own, cumulative, _) in rows:
        where = f"{_short(filename)}:{line}({name})" if line else name
        lines.append(
            f"{ncalls / n:10.1f} {1e6 * own / n:11.1f} {1e6 * cumulative / n:11.1f}  {where}"
        )
    return "\n".join(lines)


def _short(filename: str) -> str:
    """``.../site-packages/numpy/_core/x.py`` -> ``numpy/_core/x.py``; repo paths likewise."""
    for marker in ("site-packages/", "portable_nn/", "benchmarks/"):
        if marker in filename:
            head = "" if marker == "site-packages/" else marker
            return head + filename.split(marker, 1)[1]
    return filename


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_info() -> dict[str, Any]:
    """NumPy's BLAS: build config from ``numpy.show_config`` and threads from threadpoolctl."""
    import numpy as np

    info: dict[str, Any] = {}
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        keys = ("name", "version", "openblas configuration")
        info["numpy_build"] = {k: blas.get(k) for k in keys}
    except Exception as exc:  # show_config's layout changes between NumPy versions
        info["numpy_build"] = f"unavailable: {exc}"
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {
                k: pool.get(k)
                for k in (
                    "user_api",
                    "internal_api",
                    "prefix",
                    "version",
                    "num_threads",
                    "threading_layer",
                    "architecture",
                )
            }
            for pool in threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    return info


def numpy_blas_threads() -> int:
    """Threads NumPy's BLAS uses (threadpoolctl), else the CPUs this process may run on."""
    try:
        import numpy as np
        from threadpoolctl import threadpool_info

        np.ones(2) @ np.ones(2)  # make sure the BLAS library is loaded
        for pool in threadpool_info():
            if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", ""):
                return int(pool["num_threads"])
        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                return int(pool["num_threads"])
    except ImportError:
        pass
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: above the CPU count, other jobs shared the machine."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "XLA_FLAGS",
)


def environment() -> dict[str, Any]:
    """Machine and library facts that a benchmark result needs to be read later."""
    import numpy as np

    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": blas_info(),
        "env": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "load_average": load_average(),
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        env["torch_interop_threads"] = torch.get_num_interop_threads()
        env["torch_mkl"] = bool(torch.backends.mkl.is_available())
        env["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
        env["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
            env["torch_matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    if "jax" in sys.modules:
        jax = sys.modules["jax"]
        env["jax"] = jax.__version__
        env["jax_devices"] = [str(device) for device in jax.devices()]
    if "cupy" in sys.modules:
        cupy = sys.modules["cupy"]
        env["cupy"] = cupy.__version__
        env["cupy_device"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        env["cupy_tf32"] = os.environ.get("CUPY_TF32")
    return env
