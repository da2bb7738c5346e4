"""Namespaces, devices and host transfers of arrays from any supported library."""

from __future__ import annotations

import contextlib
import math
import warnings
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

# The library's one cache around array-api-compat (its own lookups cost ~4 us a call; these run
# several times per layer per step): namespace by array type, isdtype answers by
# (array type, dtype, kind). Keyed by type, so dtypes of two libraries never meet.
_NAMESPACE_BY_TYPE: dict[type, ModuleType] = {}
_ISDTYPE: dict[tuple[type, Any, Any], Any] = {}  # isdtype answers, integer ranges
_CANONICAL: dict[Any, Any] = {}  # a ``.device`` value -> its canonical device object


def namespace_of(array: Any) -> ModuleType:
    """The array-API namespace of one array (cached by type: this is on every hot path)."""
    kind = type(array)
    xp = _NAMESPACE_BY_TYPE.get(kind)
    if xp is None:
        xp = array_api_compat.array_namespace(array)
        _NAMESPACE_BY_TYPE[kind] = xp
    return xp


def has_dtype(array: Any, kind: Any) -> bool:
    """``xp.isdtype(array.dtype, kind)`` (``kind``: a kind name, a dtype, or a tuple of them)."""
    key = (type(array), array.dtype, kind)
    try:
        return _ISDTYPE[key]
    except KeyError:
        answer = _ISDTYPE[key] = bool(namespace_of(array).isdtype(array.dtype, kind))
        return answer
    except TypeError:  # an unhashable dtype object
        return bool(namespace_of(array).isdtype(array.dtype, kind))


def integer_range(array: Any) -> tuple[int, int]:
    """``(min, max)`` of an integer array's dtype (``xp.iinfo``, cached like :func:`has_dtype`)."""
    key = (type(array), array.dtype, "iinfo")
    found = _ISDTYPE.get(key)
    if found is None:
        info = namespace_of(array).iinfo(array.dtype)
        found = _ISDTYPE[key] = (int(info.min), int(info.max))  # type: ignore[assignment]
    return found  # type: ignore[return-value]


_WRITEABLE_BY_TYPE: dict[type, bool | None] = {}  # None: NumPy, where it is per array


def is_writeable(array: Any) -> bool:
    """Whether ``array`` may be updated in place (NumPy unless read-only, CuPy, torch; never
    JAX): ``array_api_compat.is_writeable_array``, answered per type (per array for NumPy's
    ``flags.writeable``) at a dict lookup, since optimizers ask on every step."""
    kind = type(array)
    try:
        fixed = _WRITEABLE_BY_TYPE[kind]
    except KeyError:
        numpy_like = array_api_compat.is_numpy_array(array)
        writeable = array_api_compat.is_writeable_array(array)
        fixed = _WRITEABLE_BY_TYPE[kind] = None if numpy_like else writeable
    return bool(array.flags.writeable) if fixed is None else fixed


def canonical_device(device: Any) -> Any:
    """One object per device: torch's ``cuda`` (no index) becomes ``cuda:<current>`` and
    ``cpu:0`` becomes ``cpu``, as torch tensors report them; other libraries' objects as they are.
    """
    kind, index = getattr(device, "type", None), getattr(device, "index", None)
    if type(device).__module__ != "torch" or kind is None:
        return device
    if kind == "cpu" and index is not None:
        return type(device)("cpu")
    if kind == "cuda" and index is None:
        import torch

        return torch.device("cuda", torch.cuda.current_device())
    return device


def same_device(a: Any, b: Any) -> bool:
    """Whether two device objects name the same device (see :func:`canonical_device`)."""
    return a == b or canonical_device(a) == canonical_device(b)


def device_of(array: Any) -> Any:
    """The canonical device of an array (``array_api_compat.device``, then canonicalised);
    None when the array cannot tell (a JAX tracer inside ``jax.grad``)."""
    try:
        return canonical_device(array_api_compat.device(array))
    except Exception:  # noqa: BLE001 - tracers and other device-less stand-ins
        return None


def device_scope(array: Any) -> contextlib.AbstractContextManager[Any]:
    """CuPy's current-device context for a CuPy array's device (its kernels and new arrays go
    to the *current* device); a no-op for every other library."""
    return array.device if array_api_compat.is_cupy_array(array) else contextlib.nullcontext()


def has_view_slices(array: Any) -> bool:
    """Whether slices of ``array`` are views that in-place writes reach (writeable NumPy, CuPy
    and torch arrays; not JAX, which is immutable, nor array-api-strict, which promises none)."""
    viewing = (
        array_api_compat.is_numpy_array(array)
        or array_api_compat.is_torch_array(array)
        or array_api_compat.is_cupy_array(array)
    )
    return viewing and is_writeable(array)


def flat_views(arrays: list[Any]) -> tuple[Any, list[Any]]:
    """One new contiguous 1-D buffer holding copies of ``arrays`` (one namespace and dtype, where
    :func:`has_view_slices`) and a view of it shaped like each array, in order."""
    xp = namespace_of(arrays[0])
    flat = xp.concat([xp.reshape(a, (-1,)) for a in arrays])
    views, start = [], 0
    for a in arrays:
        stop = start + math.prod(a.shape)
        views.append(xp.reshape(flat[start:stop], tuple(a.shape)))
        start = stop
    return flat, views


def backend_name_of(xp: ModuleType) -> str:
    """A short human name for a namespace, for error messages."""
    return xp.__name__.replace("array_api_compat.", "").replace(".numpy", "")


def namespace_and_device(*arrays: Any) -> tuple[ModuleType, Any]:
    """The namespace and device shared by ``arrays`` (``None`` entries and Python scalars skipped).

    Raises ``ValueError`` naming both when the arrays come from two libraries or two devices.
    Fast path (every training step): arrays of one type with equal ``.device`` attributes.
    """
    first = arrays[0] if arrays else None
    kind = type(first)
    xp = _NAMESPACE_BY_TYPE.get(kind)
    if xp is not None:
        try:
            device = first.device
            for other in arrays[1:]:
                if type(other) is not kind or other.device != device:
                    break
            else:
                canonical = _CANONICAL.get(device)
                if canonical is None:
                    canonical = _CANONICAL[device] = canonical_device(device)
                return xp, canonical
        except (AttributeError, TypeError):  # a JAX tracer has no device; unhashable devices
            pass
    found = [a for a in arrays if a is not None and not isinstance(a, (int, float, bool, complex))]
    if not found:
        raise TypeError("expected at least one array, got only None or Python scalars")
    xp = namespace_of(found[0])
    device = device_of(found[0])
    for other in found[1:]:
        other_xp = namespace_of(other)
        if other_xp is not xp:
            raise ValueError(
                "arrays from two backends cannot be mixed: "
                f"{backend_name_of(xp)} and {backend_name_of(other_xp)}"
            )
        other_device = device_of(other)
        if device is None or other_device is None:  # unknown (a tracer): cannot disagree
            device = device if other_device is None else other_device
        elif not same_device(other_device, device):
            raise ValueError(f"arrays on two devices cannot be mixed: {device} and {other_device}")
    return xp, device


def is_array(value: Any) -> bool:
    """True for an array of any array-API library (NumPy included)."""
    return array_api_compat.is_array_api_obj(value)


def to_numpy(array: Any) -> np.ndarray:
    """Copy (or view) any supported array, or host data, as a NumPy array on the host."""
    if isinstance(array, np.ndarray):
        return array
    if array_api_compat.is_cupy_array(array):
        return array.get()
    if array_api_compat.is_torch_array(array):
        return array.detach().cpu().numpy()
    if is_array(array) and array_api_compat.is_array_api_strict_namespace(namespace_of(array)):
        import array_api_strict

        cpu = array_api_strict.Device("CPU_DEVICE")
        return np.asarray(array_api_strict.asarray(array, device=cpu))
    return np.asarray(array)


def from_foreign(array: Any, xp: ModuleType, device: Any) -> Any:
    """Another library's (or device's) array in namespace ``xp`` on ``device``: through DLPack
    when both libraries support the exchange (no host round trip: torch-cuda, CuPy and JAX on one
    GPU share memory; CPU libraries share host memory), else through a host copy."""
    try:
        moved = xp.from_dlpack(array)
        if not same_device(device_of(moved), device):
            moved = array_api_compat.to_device(moved, device)
        return moved
    except Exception:  # noqa: BLE001 - no DLPack path (read-only NumPy, strict's fake devices...)
        return host_to(to_numpy(array), xp, device)


def host_to(host: Any, xp: ModuleType, device: Any, dtype: Any = None) -> Any:
    """Copy host data (NumPy, lists, scalars) into namespace ``xp`` on ``device``."""
    host = np.asarray(host)
    if not host.flags.c_contiguous:
        host = np.ascontiguousarray(host)
    if array_api_compat.is_cupy_namespace(xp):
        with device:
            return xp.asarray(host, dtype=dtype)
    if not host.flags.writeable and array_api_compat.is_torch_namespace(xp):
        with warnings.catch_warnings():  # a read-only memory map: we never write into inputs
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            return xp.asarray(host, dtype=dtype, device=device)
    return xp.asarray(host, dtype=dtype, device=device)


def host_to_async(host: Any, xp: ModuleType, device: Any, dtype: Any = None) -> Any:
    """:func:`host_to` that returns before the copy is done where the library allows it: torch
    on CUDA stages the batch in pinned (page-locked) memory and copies with
    ``non_blocking=True`` (kernels queued later on the stream wait for it), so the copy of the
    next batch overlaps the step on this one. Elsewhere the same as :func:`host_to`."""
    if array_api_compat.is_torch_namespace(xp) and getattr(device, "type", None) == "cuda":
        import torch

        host = np.asarray(host)
        if dtype is not None:  # cast on the host: fewer bytes cross the bus
            host = host.astype(str(dtype).removeprefix("torch."), copy=False)
        pinned = torch.from_numpy(np.ascontiguousarray(host)).pin_memory()
        return pinned.to(device, non_blocking=True)
    return host_to(host, xp, device, dtype)


def read_scalars(values: dict[str, Any]) -> dict[str, float]:
    """0-d arrays (and Python numbers) -> Python floats with ONE device-to-host transfer: the
    arrays are stacked on their device first (one namespace assumed; others read one by one)."""
    out = {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}
    keys = [k for k in values if k not in out]
    if keys:
        first = values[keys[0]]
        xp = namespace_of(first)
        same = [k for k in keys if namespace_of(values[k]) is xp]
        stacked = xp.stack([xp.astype(values[k], first.dtype) for k in same])
        out.update(zip(same, to_numpy(stacked).tolist()))
        out.update((k, float(values[k])) for k in keys if k not in out)
    return {k: out[k] for k in values}


def host_dtype_kind(host: Any) -> str:
    """'f' floating, 'i'/'u' integer, 'b' bool — of host data after ``np.asarray``."""
    return np.asarray(host).dtype.kind
