"""Argument and data checks run once per ``fit``/``evaluate`` call, before anything changes.

Shape and dtype checks are free (no device work). Value checks (NaN/inf in x or y, class labels
outside ``[0, classes)``) are reduced on the data's device to 0-d booleans and combined into one,
read back with a single ``bool()`` (:func:`portable_nn.validation.run_checks`): **one host sync
per call**, whatever the dataset size. Only when that flag is false are the individual checks read
to name the culprit.
"""

from __future__ import annotations

from typing import Any

from portable_nn.backend import namespace_of
from portable_nn.data import ArrayData
from portable_nn.validation import Check, non_negative_int, positive_int, run_checks


def fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1). Received: {name}={value!r}")
    return float(value)


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
    if not namespace_of(x).isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{prefix}x must hold real floating features. Received: dtype={x.dtype}; "
            "cast it first, e.g. pnn.asarray(x, dtype='float32')"
        )
    if y is not None:
        if len(y.shape) == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"{prefix}x and y hold different numbers of samples: "
                f"x.shape={tuple(x.shape)}, y.shape={tuple(y.shape)}"
            )


def is_labels(y: Any, classes: int) -> bool:
    """Integer class labels of shape (N,) or (N, 1) for a model with ``classes > 1`` outputs."""
    shape = tuple(y.shape)
    return (
        classes > 1
        and (len(shape) == 1 or shape[1:] == (1,))
        and namespace_of(y).isdtype(y.dtype, "integral")
    )


def value_checks(data: ArrayData, classes: int, what: str = "") -> list[Check]:
    """Lazy checks: x finite; y finite (floats) or in ``[0, classes)`` (integer labels)."""
    prefix = f"{what} " if what else ""
    x, y = data.x, data.y
    xp = namespace_of(x)
    found: list[Check] = [
        (xp.all(xp.isfinite(x)), lambda: f"{prefix}x contains NaN or infinite values")
    ]
    if y is None:
        return found
    yp = namespace_of(y)
    if yp.isdtype(y.dtype, "real floating"):
        found.append((yp.all(yp.isfinite(y)), lambda: f"{prefix}y contains NaN or infinite values"))
    elif is_labels(y, classes):
        low, high = yp.min(y), yp.max(y)

        def message() -> str:
            bad = int(low) if int(low) < 0 else int(high)
            return (
                f"{prefix}y: class label {bad} is out of range for a model with {classes} "
                f"outputs; labels must be in [0, {classes - 1}]"
            )

        found.append(((low >= 0) & (high < classes), message))
    return found


__all__ = [
    "check_shapes",
    "fraction",
    "is_labels",
    "non_negative_int",
    "positive_int",
    "run_checks",
    "value_checks",
]
