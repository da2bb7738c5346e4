"""Safetensors files of named arrays, through the ``safetensors`` package, on any backend.

Writing: host copies -> ``safetensors.numpy.save`` -> :func:`atomic_open`, so a file saved from
PyTorch, JAX, CuPy or array-api-strict is the same bytes as one saved from NumPy. Reading:
our header length limit, then ``safe_open`` validates the header (dtypes, shapes, offsets, data
covering the file exactly); callers check names, shapes and dtypes (:meth:`Reader.info`) before
:meth:`Reader.read` reads a tensor and checks its values. Torch arrays for an accelerator load
straight onto it; the rest go through NumPy. No pickle.

Errors: inside ``with open_file(path)`` every ``ValueError`` (what safetensors and NumPy raise
on a corrupt file is turned into one by :func:`reraise`, as is what a corrupt config provokes)
leaves as ``ValueError("cannot load '<path>': ...")``, so messages inside never name the path.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np
import safetensors
import safetensors.numpy
from safetensors import SafetensorError

from portable_nn.backend import Backend, arrays, get_backend, make_backend, to_numpy

from .atomic import PathLike, atomic_open

MAX_HEADER_BYTES = 2 * 2**20  # safetensors allows 100 MB, which alone takes seconds to parse
CODES = "BOOL U8 I8 U16 I16 F16 U32 I32 F32 U64 I64 F64 C64".split()
NAMES = "bool uint8 int8 uint16 int16 float16 uint32 int32 float32 uint64 int64 float64 complex64"
DTYPES = dict(zip(CODES, NAMES.split()))  # safetensors code -> NumPy / array-API dtype name
MAPPED_DEVICES = ("cpu",)  # where safetensors' torch tensors are views of its memory map
# what safetensors and NumPy raise on a corrupt file, and constructors and ``get`` functions on
# a corrupt config (a MemoryError or RecursionError is no file problem: our limits rule them out)
ERRORS = (SafetensorError, ArithmeticError, AttributeError, LookupError, TypeError, ValueError)


def short(value: object, limit: int = 300) -> str:
    """``str(value)`` cut to ``limit`` characters (corrupt files make long messages)."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


@contextlib.contextmanager
def reraise(what: str = "", hint: str = "", kinds: tuple[type, ...] = ERRORS) -> Iterator[None]:
    """Report ``kinds`` raised inside as ``ValueError(f"{what}: {detail}{hint}")``; the detail
    names the exception's type unless it is a ``ValueError`` or ``SafetensorError``."""
    try:
        yield
    except kinds as exc:
        plain = isinstance(exc, (ValueError, SafetensorError))
        detail = short(exc) if plain else f"{type(exc).__name__}: {short(exc)}"
        raise ValueError(f"{what}: {detail}{hint}" if what else detail + hint) from None


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
    metadata : optional ``{str: str}`` stored in the header's ``__metadata__`` (``TypeError``
        from safetensors otherwise).
    overwrite : when False an existing ``path`` raises ``FileExistsError``.
    """
    host = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"tensor names must be non-empty strings but '__metadata__'; {name!r}")
        host[name] = np.asarray(to_numpy(value), order="C")  # contiguous, 0-d stays 0-d
        if host[name].dtype.name not in DTYPES.values():
            raise TypeError(
                f"tensor {name!r} has dtype {host[name].dtype}, which the safetensors format "
                f"cannot store; supported: {NAMES}"
            )
    data = safetensors.numpy.save(host, dict(metadata) if metadata else None)
    with atomic_open(path, overwrite=overwrite) as file:
        file.write(data)


class Reader:
    """An open safetensors file: ``path``, ``names``, ``metadata``, :meth:`info`, and
    :meth:`read` into the namespace ``xp`` and ``device`` given to :func:`open_file`."""

    def __init__(self, path: str, handle: Any, xp: ModuleType | None, device: Any) -> None:
        self.path, self._handle, self.xp, self.device = path, handle, xp, device
        self.names: list[str] = handle.offset_keys()
        self.metadata: dict[str, str] = handle.metadata() or {}

    def info(self, name: str) -> tuple[str, tuple[int, ...]]:
        """``(dtype code, shape)`` of tensor ``name`` from the header; no data is read."""
        piece = self._handle.get_slice(name)  # ``name`` is one of ``names``: nothing can fail
        code, shape = piece.get_dtype(), tuple(piece.get_shape())
        if code not in DTYPES:
            supported = ", ".join(CODES)
            raise ValueError(f"tensor {name!r} has dtype {code!r}; portable_nn reads {supported}")
        return code, shape

    def read(self, name: str, allow_nonfinite: bool) -> Any:
        """Tensor ``name`` with its dtype, values checked: BOOL bytes other than 0/1 and (unless
        ``allow_nonfinite``) NaN/inf are refused."""
        code, xp = self.info(name)[0], self.xp
        if (dtype := getattr(xp, DTYPES[code], None)) is None:
            raise ValueError(f"tensor {name!r} has dtype {DTYPES[code]}, which {xp.__name__} lacks")
        with reraise():
            value = self._handle.get_tensor(name)
        vxp = xp if array_api_compat.is_torch_array(value) else np  # loaded on the device
        if code == "BOOL" and math.prod(value.shape) and int(vxp.max(value.view(vxp.uint8))) > 1:
            raise ValueError(f"tensor {name!r} holds BOOL bytes other than 0 and 1")
        if not allow_nonfinite and code[0] in "FC":
            if bad := int(vxp.sum(vxp.astype(~vxp.isfinite(value), vxp.int64))):
                hint = "pass allow_nonfinite=True to load it"
                raise ValueError(f"tensor {name!r} contains {bad} NaN/inf value(s); {hint}")
        value = arrays.host_to(value, xp, self.device, dtype) if vxp is np else value
        if value.dtype != dtype:  # e.g. JAX without jax_enable_x64 turns float64 into float32
            hint = "for JAX float64, enable jax_enable_x64"
            raise ValueError(
                f"tensor {name!r} of dtype {DTYPES[code]} became {value.dtype} ({hint})"
            )
        return value


@contextlib.contextmanager
def open_file(path: PathLike, xp: ModuleType | None = None, device: Any = None) -> Iterator[Reader]:
    """A :class:`Reader` on ``path`` reading into ``xp`` on ``device``; any ``ValueError`` in the
    ``with`` block leaves as ``ValueError("cannot load '<path>': ...")``."""
    path = os.fspath(path)
    with open(path, "rb") as file:  # the header length, before safetensors parses anything
        prefix, size = file.read(8), os.fstat(file.fileno()).st_size
    n = int.from_bytes(prefix, "little")
    torch = xp is not None and array_api_compat.is_torch_namespace(xp)
    direct = torch and str(device) not in MAPPED_DEVICES
    try:
        with reraise(hint=" (truncated, corrupt or not safetensors)"):
            if len(prefix) < 8:
                raise ValueError(f"only {size} bytes, too short for a safetensors header")
            if n > MAX_HEADER_BYTES:
                raise ValueError(f"header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes")
            if 8 + n > size:
                raise ValueError(f"header length {n} runs past the end of the file ({size} bytes)")
            handle = safetensors.safe_open(
                path, "pt" if direct else "numpy", str(device) if direct else "cpu"
            )
        with handle:
            yield Reader(path, handle, xp, device)
    except ValueError as exc:
        raise ValueError(f"cannot load {path!r}: {exc}") from None


def read_metadata(path: PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (reads and validates the header only)."""
    with open_file(path) as reader:
        return reader.metadata


def resolve_backend(backend: Backend | str | None) -> Backend:
    """``backend`` as a Backend: the active one for None, ``make_backend(name)`` for a name."""
    if backend is None:
        return get_backend()
    return backend if isinstance(backend, Backend) else make_backend(backend)


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
    with open_file(path, target.xp, target.device) as reader:
        for name in reader.names:  # every dtype is checked before any data is read
            reader.info(name)
        return {n: reader.read(n, allow_nonfinite) for n in reader.names}
