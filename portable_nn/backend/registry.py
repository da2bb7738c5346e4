"""Loading array libraries and parsing device names.

This subpackage is the only place in portable_nn that imports numpy, cupy, torch or jax.
Every library is imported lazily, so a missing optional backend costs nothing until asked for.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

from .arrays import canonical_device

BACKEND_NAMES: tuple[str, ...] = ("numpy", "cupy", "torch", "jax", "array_api_strict", "auto")


class BackendUnavailableError(RuntimeError):
    """A known backend cannot be used here (library missing, no GPU, driver error)."""


def _import(module: str, backend: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = {"cupy": "gpu-cuda12", "torch": "torch", "jax": "jax", "array_api_strict": "test"}
        hint = f" (pip install 'portable-nn[{extra[backend]}]')" if backend in extra else ""
        raise BackendUnavailableError(
            f"backend {backend!r} needs the {module.split('.')[0]!r} package, "
            f"which is not installed{hint}: {exc}"
        ) from exc


@functools.cache
def cuda_problem() -> str | None:
    """Why CuPy cannot run here, or ``None`` when a CUDA device is usable (probed once per
    process: the probe launches a kernel and synchronises)."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        return "CuPy is not installed (pip install 'portable-nn[gpu-cuda12]' or '[gpu-cuda13]')"
    except Exception as exc:  # a broken CUDA install can raise anything at import
        return f"CuPy failed to import: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError when the driver is missing
        return f"no usable CUDA driver ({type(exc).__name__}: {exc})"
    if count < 1:
        return "CuPy is installed but no CUDA device was found"
    try:
        cupy.zeros(1).sum().item()
    except Exception as exc:
        return f"a CUDA device exists but a test kernel failed ({type(exc).__name__}: {exc})"
    return None


def load_namespace(name: str) -> ModuleType:
    """The array-API namespace of backend ``name`` (one of BACKEND_NAMES except ``auto``)."""
    if name == "numpy":
        return _import("array_api_compat.numpy", name)
    if name == "cupy":
        problem = cuda_problem()
        if problem is not None:
            raise BackendUnavailableError(f"backend 'cupy' is not usable: {problem}")
        return _import("array_api_compat.cupy", name)
    if name == "torch":
        _import("torch", name)
        return _import("array_api_compat.torch", name)
    if name == "jax":
        return _import("jax.numpy", name)
    if name == "array_api_strict":
        return _import("array_api_strict", name)
    raise ValueError(f"unknown backend {name!r}; valid names are {', '.join(BACKEND_NAMES)}")


def enable_jax_float64() -> None:
    """JAX stores float64 only with ``jax_enable_x64``; turn it on when float64 is asked for."""
    import jax

    jax.config.update("jax_enable_x64", True)


def parse_device(name: str, device: Any) -> Any:
    """Turn a device given as ``None``, a string or a library object into the library's object."""
    if device is not None and not isinstance(device, (str, int)):
        return canonical_device(device)
    text = None if device is None else str(device)
    if name == "numpy":
        if text not in (None, "cpu"):
            raise ValueError(f"backend 'numpy' only has device 'cpu'. Received: device={device!r}")
        return "cpu"
    if name == "torch":
        import torch

        return canonical_device(torch.device(text or "cpu"))
    if name == "cupy":
        import cupy

        index = 0 if text is None else int(text.rsplit(":", 1)[-1])
        return cupy.cuda.Device(index)
    if name == "jax":
        return _jax_device(text)
    if name == "array_api_strict":
        import array_api_strict

        return array_api_strict.Device(text or "CPU_DEVICE")
    raise ValueError(f"unknown backend {name!r}; valid names are {', '.join(BACKEND_NAMES)}")


def _jax_device(text: str | None) -> Any:
    import jax

    if text is None:
        return jax.devices()[0]
    platform, _, index = text.partition(":")
    platform = {"cuda": "gpu"}.get(platform, platform)
    try:
        return jax.devices(platform)[int(index or 0)]
    except (RuntimeError, IndexError) as exc:
        raise ValueError(f"JAX has no device {text!r}: {exc}") from exc


def device_free_bytes(name: str, device: Any) -> int | None:
    """Free memory of an accelerator, asked of its library (None when it cannot say)."""
    try:
        if name == "cupy":
            import cupy

            with device:
                return int(cupy.cuda.runtime.memGetInfo()[0])
        if name == "torch":
            import torch

            return int(torch.cuda.mem_get_info(device)[0])
        if name == "jax":
            stats = device.memory_stats() or {}
            return int(stats["bytes_limit"] - stats["bytes_in_use"])
    except Exception:  # noqa: BLE001 - no such query on this build/device
        return None
    return None
