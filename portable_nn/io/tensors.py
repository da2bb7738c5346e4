"""Safetensors files of named arrays from any backend, read back onto any backend.

Arrays are written from host copies (``to_numpy``), so a file saved from PyTorch, JAX, CuPy or
array-api-strict is the same bytes as one saved from NumPy. Reading validates the whole header
(dtypes, shapes, byte counts, offsets) against the file size before allocating anything, then
reads each tensor straight into a fresh NumPy array and checks its values (NaN/inf rejected
unless ``allow_nonfinite=True``) before any array reaches a device.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np

from portable_nn.backend import Backend, arrays, get_backend, make_backend, to_numpy

from .atomic import PathLike, atomic_open
from .format import (
    DTYPES,
    HEADER_LENGTH_BYTES,
    METADATA_KEY,
    TensorInfo,
    dtype_code,
    encode_header,
    header_length,
    parse_header,
)


# -- writing ---------------------------------------------------------------------------------
def host_copies(tensors: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """NumPy host copies of named arrays (any backend), with names and dtypes checked."""
    host: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name == METADATA_KEY:
            raise ValueError(
                f"tensor names must be non-empty strings other than {METADATA_KEY!r}; got {name!r}"
            )
        array = np.asarray(to_numpy(value))
        dtype_code(name, array.dtype)  # TypeError for dtypes the format cannot hold
        host[name] = array
    return host


def tensor_bytes(array: np.ndarray) -> memoryview:
    """Raw little-endian C-order bytes of one host array (no copy when it is already so)."""
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return memoryview(little.reshape(-1).view(np.uint8))


def write_host(
    file: BinaryIO, host: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None
) -> None:
    """Write host arrays in the safetensors layout (widest dtypes first, as safetensors does)."""
    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str to str; got {key!r}: {type(value).__name__}")
    names = sorted(host, key=lambda n: (-host[n].dtype.itemsize, n))
    entries = [(n, dtype_code(n, host[n].dtype), tuple(host[n].shape)) for n in names]
    file.write(encode_header(entries, metadata))
    for name in names:
        file.write(tensor_bytes(host[name]))


def save_tensors(
    path: PathLike,
    tensors: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
    *,
    overwrite: bool = True,
) -> None:
    """Save named arrays (any backend, any device) to a safetensors file, atomically.

    Parameters
    ----------
    path : destination; replaced only once the new file is complete and synced to disk.
    tensors : ``{name: array}``; arrays are copied to the host first.
    metadata : optional ``{str: str}`` stored in the header's ``__metadata__``.
    overwrite : when False an existing ``path`` raises ``FileExistsError``.
    """
    host = host_copies(tensors)
    with atomic_open(path, overwrite=overwrite) as file:
        write_host(file, host, metadata)


# -- reading ---------------------------------------------------------------------------------
def _read_header(file: BinaryIO) -> tuple[list[TensorInfo], dict[str, str]]:
    size = os.fstat(file.fileno()).st_size
    n = header_length(file.read(HEADER_LENGTH_BYTES), size)
    raw = file.read(n)
    if len(raw) != n:
        raise ValueError("file ended inside the header: truncated")
    return parse_header(raw, size - HEADER_LENGTH_BYTES - n)


def _read_tensor(file: BinaryIO, info: TensorInfo, allow_nonfinite: bool) -> np.ndarray:
    """Read one validated tensor into a fresh array and check its values."""
    array = np.empty(info.shape, dtype=info.dtype)
    buffer = memoryview(array.reshape(-1).view(np.uint8))
    got = file.readinto(buffer) if buffer.nbytes else 0
    if got != buffer.nbytes:
        raise ValueError(f"tensor {info.name!r}: file ended after {got} of {buffer.nbytes} bytes")
    if info.code == "BOOL" and array.size and int(array.view(np.uint8).max()) > 1:
        raise ValueError(f"tensor {info.name!r}: BOOL data holds bytes other than 0 and 1")
    if not allow_nonfinite and array.dtype.kind in "fc":
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ValueError(
                f"tensor {info.name!r} contains {bad} NaN/inf value(s); "
                "pass allow_nonfinite=True to load it anyway"
            )
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def read_host(
    path: PathLike, *, allow_nonfinite: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Validated host arrays and metadata of a safetensors file.

    Raises ``ValueError("<path>: ...")`` naming the tensor or the problem for any corrupt,
    truncated or foreign file; nothing is allocated before the header checks pass.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        try:
            infos, metadata = _read_header(file)
            host = {info.name: _read_tensor(file, info, allow_nonfinite) for info in infos}
        except ValueError as exc:
            raise ValueError(f"cannot load {path!r}: {exc}") from None
    return host, metadata


def read_metadata(path: PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (reads and validates the header only)."""
    path = os.fspath(path)
    with open(path, "rb") as file:
        try:
            return _read_header(file)[1]
        except ValueError as exc:
            raise ValueError(f"cannot read {path!r}: {exc}") from None


def resolve_backend(backend: Backend | str | None) -> Backend:
    """``backend`` as a Backend: the active one for None, ``make_backend(name)`` for a name."""
    if backend is None:
        return get_backend()
    if isinstance(backend, Backend):
        return backend
    return make_backend(backend)


def to_device(host: Mapping[str, np.ndarray], xp: ModuleType, device: Any) -> dict[str, Any]:
    """Copy host arrays into namespace ``xp`` on ``device``, keeping each dtype exactly."""
    out = {}
    for name, array in host.items():
        dtype = getattr(xp, array.dtype.name, None)
        if dtype is None:
            raise ValueError(
                f"tensor {name!r}: dtype {array.dtype} does not exist in {xp.__name__}"
            )
        value = arrays.host_to(array, xp, device, dtype)
        if value.dtype != dtype:  # e.g. JAX without jax_enable_x64 turns float64 into float32
            raise ValueError(
                f"tensor {name!r}: the backend stored dtype {array.dtype} as {value.dtype} "
                "(for JAX float64, enable jax_enable_x64)"
            )
        out[name] = value
    return out


def load_tensors(
    path: PathLike, *, backend: Backend | str | None = None, allow_nonfinite: bool = False
) -> dict[str, Any]:
    """Load a safetensors file (ours or any other) onto a backend, keeping every dtype.

    Parameters
    ----------
    path : the file.
    backend : where the arrays go: a Backend, a backend name, or None for the active backend.
    allow_nonfinite : accept NaN/inf values (rejected by default with ``ValueError``).
    """
    target = resolve_backend(backend)
    host, _ = read_host(path, allow_nonfinite=allow_nonfinite)
    return to_device(host, target.xp, target.device)


__all__ = [
    "DTYPES",
    "host_copies",
    "load_tensors",
    "read_host",
    "read_metadata",
    "resolve_backend",
    "save_tensors",
    "to_device",
    "write_host",
]
