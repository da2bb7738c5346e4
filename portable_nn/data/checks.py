"""Checks on training data, run once per ``fit``/``evaluate``/``predict`` before anything changes.

Shapes and dtypes are free (:func:`check_shapes`). Value checks (NaN/inf, class labels outside
``[0, classes)``) are lazy :data:`~portable_nn.validation.Check` flags reduced where the data
lives and read back together with ONE sync (:func:`portable_nn.validation.run_checks`). Host
features (NumPy, memory maps) are checked in chunks of :data:`CHECK_CHUNK_BYTES`, so checking a
file-backed array never allocates a temporary of its size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from portable_nn.backend import has_dtype
from portable_nn.validation import Check, all_finite, labels_in_range

CHECK_CHUNK_BYTES = 64 << 20


def check_shapes(x: Any, y: Any, what: str = "") -> None:
    """x: floating, (samples, features...); y (if given): the same number of samples."""
    prefix = f"{what} " if what else ""
    if not hasattr(x, "shape") or len(x.shape) < 2:
        shape = tuple(getattr(x, "shape", ()))
        raise ValueError(
            f"{prefix}x must have shape (samples, features, ...). Received: x.shape={shape}"
        )
    if int(x.shape[0]) == 0:
        raise ValueError(f"{prefix}x has no samples. Received: x.shape={tuple(x.shape)}")
    if not has_dtype(x, "real floating"):
        raise TypeError(
            f"{prefix}x must hold real floating features. Received: dtype={x.dtype}; "
            "cast it first, e.g. pnn.asarray(x, dtype='float32')"
        )
    if y is not None and (len(y.shape) == 0 or y.shape[0] != x.shape[0]):
        raise ValueError(
            f"{prefix}x and y hold different numbers of samples: "
            f"x.shape={tuple(x.shape)}, y.shape={tuple(y.shape)}"
        )


def is_labels(y: Any, classes: int) -> bool:
    """Integer class labels of shape (N,) or (N, 1) for a model with ``classes > 1`` outputs."""
    shape = tuple(y.shape)
    return classes > 1 and (len(shape) == 1 or shape[1:] == (1,)) and has_dtype(y, "integral")


def _chunks(a: Any, host: bool) -> Iterator[Any]:
    """``a`` itself on a device; row blocks of about ``CHECK_CHUNK_BYTES`` on the host."""
    n = int(a.shape[0])
    row_bytes = max(a.dtype.itemsize * (a.size // max(n, 1)), 1) if host else 0
    rows = max(CHECK_CHUNK_BYTES // row_bytes, 1) if host else n
    for start in range(0, n, rows):
        yield a if rows >= n else a[start : start + rows, ...]


def value_checks(x: Any, y: Any, classes: int, host: bool, what: str = "") -> list[Check]:
    """Lazy checks: x finite; y finite (floats) or in ``[0, classes)`` (integer labels)."""
    prefix = f"{what} " if what else ""
    found = [c for part in _chunks(x, host) for c in all_finite(f"{prefix}x", part)]
    if y is not None:  # targets are small next to features: checked whole
        if is_labels(y, classes):
            found += labels_in_range(f"{prefix}y", y, classes)
        else:
            found += all_finite(f"{prefix}y", y)
    return found


__all__ = ["CHECK_CHUNK_BYTES", "check_shapes", "is_labels", "value_checks"]
