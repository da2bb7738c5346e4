"""Input validation for losses: clear errors before anything is computed.

Value checks (NaN targets, labels out of range, predictions that are not probabilities) are
combined into one boolean that is read back once per call: a single device sync on the happy
path (:func:`portable_nn.validation.run_checks`). Only when it is false are the individual
checks evaluated to name the culprit.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from portable_nn.backend import is_array, namespace_and_device
from portable_nn.validation import Check, run_checks

Array = Any


def shape_text(x: Array) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ("," if x.ndim == 1 else "") + ")"


_NAMESPACE_BY_TYPE: dict[type, ModuleType] = {}  # array types already seen to be arrays
_ISDTYPE: dict[tuple[Any, Any, Any], Any] = {}  # isdtype answers and integer ranges


def namespace(owner: str, y_true: Any, y_pred: Any) -> ModuleType:
    """The shared namespace of ``y_true`` and ``y_pred`` (``TypeError``/``ValueError`` if none).

    Fast path (every training step): both of one array type already seen and equal ``.device``
    attributes; anything else gets the full check of ``namespace_and_device``.
    """
    kind = type(y_pred)
    xp = _NAMESPACE_BY_TYPE.get(kind)
    if xp is not None and type(y_true) is kind:
        try:
            if y_true.device == y_pred.device:
                return xp
        except Exception:  # noqa: BLE001 - e.g. a tracer without a device: take the full check
            pass
    for what, value in (("y_true", y_true), ("y_pred", y_pred)):
        if not is_array(value):
            raise TypeError(
                f"{owner}: {what} must be an array (see pnn.asarray). "
                f"Received: {type(value).__name__}"
            )
    try:
        xp, _ = namespace_and_device(y_true, y_pred)
    except ValueError as exc:
        raise ValueError(f"{owner}: y_true and y_pred: {exc}") from None
    _NAMESPACE_BY_TYPE[kind] = xp
    return xp


def isdtype(xp: ModuleType, dtype: Any, kind: Any) -> bool:
    """``xp.isdtype(dtype, kind)``, remembered per (namespace, dtype, kind)."""
    key = (xp, dtype, kind)
    try:
        return _ISDTYPE[key]
    except KeyError:
        answer = _ISDTYPE[key] = bool(xp.isdtype(dtype, kind))
        return answer
    except TypeError:  # an unhashable dtype object
        return bool(xp.isdtype(dtype, kind))


def require_float_predictions(owner: str, xp: ModuleType, y_pred: Array) -> None:
    if not isdtype(xp, y_pred.dtype, "real floating"):
        raise TypeError(
            f"{owner}: y_pred must be a real floating array (scores, logits or probabilities). "
            f"Received: dtype={y_pred.dtype}"
        )


def float_targets(owner: str, xp: ModuleType, y_true: Array, dtype: Any) -> Array:
    """Real floating, integer or boolean targets, cast to the predictions' ``dtype``."""
    if not isdtype(xp, y_true.dtype, ("real floating", "integral", "bool")):
        raise TypeError(
            f"{owner}: y_true must be a real (float, integer or bool) array. "
            f"Received: dtype={y_true.dtype}"
        )
    return y_true if y_true.dtype == dtype else xp.astype(y_true, dtype)


def require_same_shape(owner: str, y_true: Array, y_pred: Array) -> None:
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            f"{owner}: y_true and y_pred must have the same shape (no broadcasting). "
            f"Received: y_true.shape={shape_text(y_true)}, y_pred.shape={shape_text(y_pred)}"
        )


def require_nonempty(owner: str, y_pred: Array, samples: int) -> None:
    if samples == 0 or math.prod(y_pred.shape) == 0:
        raise ValueError(f"{owner}: y_pred is empty. Received: y_pred.shape={shape_text(y_pred)}")


def finite_targets(owner: str, xp: ModuleType, y_true: Array) -> list[Check]:
    """Check that floating targets contain no NaN or infinity (integer targets always pass)."""
    if not isdtype(xp, y_true.dtype, "real floating"):
        return []
    return [
        (
            xp.all(xp.isfinite(y_true)),
            lambda: f"{owner}: y_true contains NaN or infinite values; targets must be finite",
        )
    ]


def _int_range(xp: ModuleType, dtype: Any) -> tuple[int, int]:
    key = (xp, dtype, "iinfo")
    found = _ISDTYPE.get(key)
    if found is None:
        info = xp.iinfo(dtype)
        found = _ISDTYPE[key] = (int(info.min), int(info.max))
    return found


def labels_in_range(owner: str, xp: ModuleType, labels: Array, classes: int) -> list[Check]:
    """Check that integer labels lie in ``[0, classes)``; the message names a bad label."""
    lowest, highest = _int_range(xp, labels.dtype)
    check_low, check_high = lowest < 0, classes <= highest  # else the dtype cannot hold them
    if check_low and check_high:
        ok = xp.all((labels >= 0) & (labels < classes))
    elif check_low or check_high:
        ok = xp.all(labels >= 0) if check_low else xp.all(labels < classes)
    else:
        return []

    def message() -> str:
        bad = labels < 0 if check_low else None
        if check_high:
            bad = labels >= classes if bad is None else (bad | (labels >= classes))
        flat = xp.reshape(bad, (-1,))
        position = int(xp.argmax(xp.astype(flat, xp.int32)))
        value = int(xp.reshape(labels, (-1,))[position])
        return (
            f"{owner}: class label {value} in y_true (at flat position {position}) is out of "
            f"range for y_pred with {classes} classes; labels must be in [0, {classes - 1}]"
        )

    return [(ok, message)]


__all__ = [
    "Check",
    "finite_targets",
    "float_targets",
    "isdtype",
    "labels_in_range",
    "namespace",
    "require_float_predictions",
    "require_nonempty",
    "require_same_shape",
    "run_checks",
    "shape_text",
]
