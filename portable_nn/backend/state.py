"""The active backend: which namespace, device and default dtype new arrays get."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .arrays import (
    backend_name_of,
    device_of,
    from_foreign,
    has_dtype,
    host_dtype_kind,
    host_to,
    host_to_async,
    is_array,
    namespace_of,
    same_device,
)
from .registry import (
    BACKEND_NAMES,
    cuda_problem,
    device_free_bytes,
    enable_jax_float64,
    load_namespace,
    parse_device,
)

FLOAT_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """An array library, a device on it and the default floating dtype.

    Attributes
    ----------
    name : one of ``numpy, cupy, torch, jax, array_api_strict``.
    xp : the array-API namespace (``array_api_compat.numpy``, ``jax.numpy``, ...).
    device : the library's device object (``"cpu"``, ``torch.device``, ...).
    dtype : the namespace's default floating dtype object (float32 unless asked otherwise).
    """

    name: str
    xp: ModuleType
    device: Any
    dtype: Any

    @property
    def dtype_name(self) -> str:
        return "float64" if self.dtype == self.xp.float64 else "float32"

    def placed(self, device: Any = None, dtype: Any = None) -> Backend:
        """This backend on another ``device`` (a name or device object) and/or with another
        default float ``dtype`` (``"float32"``, ``"float64"`` or one of the namespace's two float
        dtypes); None keeps the current one. JAX gets float64 storage switched on when asked."""
        if device is None and dtype is None:
            return self
        name = self.dtype_name if dtype is None else _float_name(self.xp, dtype)
        if self.name == "jax" and name == "float64":
            enable_jax_float64()
        place = self.device if device is None else parse_device(self.name, device)
        return Backend(self.name, self.xp, place, getattr(self.xp, name))

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        """Where new arrays and kernels go while it is entered: CuPy's current-device context on
        CuPy (array-api-compat's CuPy creation functions ignore ``device=`` and ``zeros_like``
        allocates on the *current* device), nothing to do on the other libraries."""
        return self.device if self.name == "cupy" else contextlib.nullcontext()

    @property
    def is_cpu(self) -> bool:
        """True when arrays live in host memory (NumPy, array-api-strict, torch/JAX on a CPU)."""
        if self.name in ("numpy", "array_api_strict"):
            return True
        kind = getattr(self.device, "type", None) or getattr(self.device, "platform", None)
        return kind == "cpu"

    def free_memory(self) -> int | None:
        """Free bytes on the device (None on a CPU, or when the library cannot say)."""
        if self.is_cpu:
            return None
        return device_free_bytes(self.name, self.device)

    @property
    def can_jit(self) -> bool:
        """Whether :meth:`jit` compiles: JAX (``jax.jit``) and torch (``torch.compile``)."""
        return self.name in ("jax", "torch")

    def jit(self, fn: Any, donate: tuple[int, ...] = ()) -> Any:
        """``fn`` compiled for this backend: ``jax.jit`` (the ``donate`` arguments' buffers are
        reused for the outputs on accelerators) or ``torch.compile``; ``fn`` itself elsewhere."""
        if self.name == "jax":
            import jax

            return jax.jit(fn, donate_argnums=() if self.is_cpu else donate)
        if self.name == "torch":
            import torch

            return torch.compile(fn)
        return fn

    def scalars(self, values: Any, dtype: Any, *, resident: bool = False) -> Any:
        """Per-step Python floats for a compiled function, as ONE array of ``dtype`` (a tuple
        of floats: 1-D; a list of equal-length tuples: 2-D, a row per step): a NumPy array
        for JAX (the call moves it: one transfer, no eager dispatch, no retrace), an array on
        the device elsewhere. ``resident``: on the device for JAX too (one transfer now, for
        the many calls that read it). The function indexes it back into scalars."""
        if self.name == "jax":
            host = np.asarray(values, dtype=np.dtype(str(dtype)))
            if not resident:
                return host
            import jax

            return jax.device_put(host, self.device)  # (jnp.asarray(device=...): 3x slower)
        return self.xp.asarray(values, dtype=dtype, device=self.device)

    def host_int32(self, rows: Any) -> Any:
        """Small int32 data for a compiled function: a NumPy array for JAX (the call moves it,
        no eager dispatch), an array on the device elsewhere."""
        if self.name == "jax":
            return np.asarray(rows, dtype=np.int32)
        return self.xp.asarray(rows, dtype=self.xp.int32, device=self.device)

    def shapes_of(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)``'s outputs, or records of their shapes and dtypes: JAX traces without
        running (``jax.eval_shape``); the other libraries run ``fn`` once."""
        if self.name == "jax":
            import jax

            return jax.eval_shape(fn, *args)
        return fn(*args)

    def holds(self, array: Any) -> bool:
        """True when ``array`` is already in this backend's namespace and on its device."""
        return (
            is_array(array)
            and namespace_of(array) is self.xp
            and same_device(device_of(array), self.device)
        )

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r}, dtype={self.dtype_name!r})"


def _float_name(xp: ModuleType, dtype: Any) -> str:
    if isinstance(dtype, str) and dtype in FLOAT_DTYPES:
        return dtype
    if not isinstance(dtype, str) and dtype in (xp.float32, xp.float64):
        return "float32" if dtype == xp.float32 else "float64"
    raise ValueError(f"dtype must be 'float32' or 'float64'. Received: dtype={dtype!r}")


def backend_of(array: Any) -> Backend:
    """Where ``array`` lives: its namespace and device, with its dtype as the default float dtype
    when it is floating (else the active backend's). The active backend itself when equal."""
    active = get_backend()
    xp, device = namespace_of(array), device_of(array)
    dtype = array.dtype if has_dtype(array, "real floating") else active.dtype
    if xp is active.xp and same_device(device, active.device) and dtype == active.dtype:
        return active
    return Backend(name=backend_name_of(xp), xp=xp, device=device, dtype=dtype)


def move(array: Any, like: Any) -> Any:
    """``array`` in ``like``'s namespace and on its device (as it is when already there;
    through DLPack where the libraries support it, see :func:`from_foreign`)."""
    xp, device = namespace_of(like), device_of(like)
    if namespace_of(array) is xp and same_device(device_of(array), device):
        return array
    return from_foreign(array, xp, device)


def make_backend(name: str = "numpy", device: Any = None, dtype: str = "float32") -> Backend:
    """Build a Backend without activating it; errors name what is wrong."""
    if not isinstance(name, str) or name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; valid names are {', '.join(BACKEND_NAMES)}")
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {FLOAT_DTYPES}. Received: dtype={dtype!r}")
    if name == "auto":
        name = "cupy" if cuda_problem() is None else "numpy"
    xp = load_namespace(name)
    if name == "jax" and dtype == "float64":
        enable_jax_float64()
    return Backend(name=name, xp=xp, device=parse_device(name, device), dtype=getattr(xp, dtype))


def _from_environment() -> Backend:
    name = os.environ.get("PORTABLE_NN_BACKEND", "numpy") or "numpy"
    device = os.environ.get("PORTABLE_NN_DEVICE") or None
    return make_backend(name, device)


_active: Backend | None = None


def get_backend() -> Backend:
    """The active backend (first call reads ``PORTABLE_NN_BACKEND``/``PORTABLE_NN_DEVICE``)."""
    global _active
    if _active is None:
        _active = _from_environment()
    return _active


def set_backend(name: str | Backend, device: Any = None, dtype: str = "float32") -> Backend:
    """Make ``name`` (``numpy, cupy, torch, jax, array_api_strict, auto``) the active backend."""
    global _active
    _active = name if isinstance(name, Backend) else make_backend(name, device, dtype)
    return _active


@contextlib.contextmanager
def use_backend(
    name: str | Backend, device: Any = None, dtype: str = "float32"
) -> Iterator[Backend]:
    """Activate a backend inside a ``with`` block; the previous one comes back on exit or error."""
    previous = get_backend()
    backend = set_backend(name, device, dtype)
    try:
        with backend.scope():
            yield backend
    finally:
        set_backend(previous)


def asarray(
    data: Any, dtype: Any = None, backend: Backend | None = None, *, asynchronous: bool = False
) -> Any:
    """Put ``data`` (lists, NumPy, or another library's array) on the active backend's device.

    Floating data gets the backend's default dtype unless ``dtype`` (a name or a dtype of the
    backend's namespace) is given; integer and boolean data keep their kind. CPU backends wrap
    NumPy data without a copy where the dtype allows it. ``asynchronous=True`` lets a host copy
    return before it is done where the library can (:func:`host_to_async`).
    """
    backend = backend or get_backend()
    with backend.scope():
        return _asarray(data, dtype, backend, asynchronous)


def _asarray(data: Any, dtype: Any, backend: Backend, asynchronous: bool = False) -> Any:
    xp, device = backend.xp, backend.device
    if isinstance(dtype, str):
        dtype = getattr(xp, dtype)
    if is_array(data) and not isinstance(data, np.ndarray):
        if namespace_of(data) is not xp or not same_device(device_of(data), device):
            data = from_foreign(data, xp, device)
        if dtype is None and has_dtype(data, "real floating"):
            dtype = backend.dtype
        return data if dtype is None or data.dtype == dtype else xp.astype(data, dtype)
    host = data
    if dtype is None and host_dtype_kind(host) == "f":
        dtype = backend.dtype
    if dtype is None and backend.name == "jax" and host_dtype_kind(host) in "iu":
        dtype = xp.asarray(0).dtype  # int32 unless jax_enable_x64
    return (host_to_async if asynchronous else host_to)(host, xp, device, dtype)
