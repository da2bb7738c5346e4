"""Every argument and value check of the library, one helper per kind.

Errors name the argument and echo the value received, Keras style::

    Expected a positive integer. Received: units=0

* **Arguments** (Python values): :func:`positive_int`, :func:`non_negative_int`,
  :func:`real_number`, :func:`positive`, :func:`non_negative`, :func:`fraction`, :func:`flag`,
  :func:`choice`, :func:`text`. Integers follow Keras (``ValueError`` for anything but an int in
  range); real numbers raise ``TypeError`` for a non-number and ``ValueError`` for NaN, inf or a
  value out of range.
* **Arrays** (no device work): :func:`require_dtype`, :func:`require_shape`, :func:`check_like`,
  :func:`format_shape`.
* **Values on the device** are *lazy*: a :data:`Check` pairs a 0-d boolean "all good" array,
  computed where the data lives, with a function building the message (:func:`all_finite`,
  :func:`labels_in_range`). :func:`run_checks` combines them and reads ONE flag back to the
  host (one device sync on the happy path); only when it is false are the flags read one by
  one to name the culprit.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from typing import Any

from portable_nn.backend import has_dtype, integer_range, namespace_and_device, namespace_of

Check = tuple[Any, Callable[[], str]]  # (0-d boolean "all good", message builder)


# -- arguments --------------------------------------------------------------------------------
def _integer(value: Any) -> int | None:
    """``value`` as a Python int when it is an integer (NumPy's too, through ``__index__``;
    bool refused), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def positive_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` when it is an integer > 0, else ``ValueError`` naming ``name``."""
    number = _integer(value)
    if number is None or number <= 0:
        raise ValueError(f"Expected a positive integer. Received: {name}={value!r}")
    return number


def non_negative_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` when it is an integer >= 0, else ``ValueError`` naming ``name``."""
    number = _integer(value)
    if number is None or number < 0:
        raise ValueError(f"Expected a non-negative integer. Received: {name}={value!r}")
    return number


def int_tuple(name: str, value: Any, n: int, low: int = 1) -> tuple[int, ...]:
    """``value`` (an int, or ``n`` ints) as ``n`` Python ints ``>= low`` (1 or 0), else
    ``ValueError`` naming ``name`` and echoing the value (Keras's ``standardize_tuple``)."""
    items = tuple(value) if isinstance(value, (list, tuple)) else (value,) * n
    numbers = tuple(_integer(v) for v in items)
    if len(numbers) != n or any(v is None or v < low for v in numbers):
        kind = "positive" if low else "non-negative"
        raise ValueError(f"Expected a {kind} integer or a tuple of {n}. Received: {name}={value!r}")
    return numbers  # type: ignore[return-value]


def real_number(name: str, value: Any, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a Python float when it is a finite real number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number. Received: {name}={value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite. Received: {name}={value!r}")
    if not low <= number <= high:
        raise ValueError(
            f"{name} must be a finite number in [{low}, {high}]. Received: {name}={value!r}"
        )
    return number


def positive(name: str, value: Any) -> float:
    """A finite real number > 0, as a Python float."""
    number = real_number(name, value)
    if number <= 0.0:
        raise ValueError(f"{name} must be > 0. Received: {name}={value!r}")
    return number


def non_negative(name: str, value: Any) -> float:
    """A finite real number >= 0, as a Python float."""
    number = real_number(name, value)
    if number < 0.0:
        raise ValueError(f"{name} must be >= 0. Received: {name}={value!r}")
    return number


def fraction(name: str, value: Any) -> float:
    """A real number in ``[0, 1)`` (rates, decays, momentum, validation_split)."""
    number = real_number(name, value)
    if not 0.0 <= number < 1.0:
        raise ValueError(f"{name} must be in [0, 1). Received: {name}={value!r}")
    return number


def flag(name: str, value: Any) -> bool:
    """``True`` or ``False`` exactly (``TypeError`` for 0, 1, None, ...)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False. Received: {name}={value!r}")
    return value


def choice(name: str, value: Any, options: Iterable[Any]) -> Any:
    """``value`` when it equals one of ``options`` (a bool only a bool: ``1`` is not ``True``),
    else ``ValueError`` listing them."""
    options = tuple(options)
    for option in options:
        same_kind = isinstance(value, bool) == isinstance(option, bool)
        if value is option or (same_kind and _equal(value, option)):
            return option
    listed = ", ".join(repr(o) for o in options)
    raise ValueError(f"{name} must be one of {listed}. Received: {name}={value!r}")


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and odd objects compare to nothing here
        return False


def text(name: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"Expected a non-empty string. Received: {name}={value!r}")
    return value


# -- arrays -----------------------------------------------------------------------------------
def format_shape(shape: Iterable[Any]) -> str:
    """``(None, 3)``-style text of a shape (a batch axis may be ``None``); ``(3,)`` for 1-D."""
    return str(tuple(None if s is None else int(s) for s in shape))


def require_dtype(label: str, x: Any, kind: Any, expected: str, hint: str = "") -> None:
    """``TypeError`` unless ``x.dtype`` is of ``kind`` (``xp.isdtype`` kinds, cached)::

    {label} must be {expected}. Received: dtype={x.dtype}{hint}
    """
    if not has_dtype(x, kind):
        raise TypeError(f"{label} must be {expected}. Received: dtype={x.dtype}{hint}")


def require_shape(label: str, x: Any, expected: tuple[Any, ...], hint: str = "") -> None:
    """``ValueError`` unless ``x.shape == expected`` (never silent broadcasting)."""
    if tuple(x.shape) != tuple(expected):
        raise ValueError(
            f"{label} has shape {format_shape(x.shape)}, expected {format_shape(expected)}{hint}"
        )


def check_like(label: str, value: Any, reference: Any) -> None:
    """Raise ``ValueError`` unless ``value`` matches ``reference`` in shape, dtype, namespace and
    device; messages start with ``label`` (e.g. ``"model: parameter '0.weight'"``)."""
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise ValueError(f"{label} is not an array: {type(value).__name__}")
    require_shape(label, value, tuple(reference.shape))
    if value.dtype != reference.dtype:
        raise ValueError(f"{label} has dtype {value.dtype}, expected {reference.dtype}")
    try:
        namespace_and_device(value, reference)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None


# -- values on the device (lazy, one read-back) -----------------------------------------------
def all_finite(label: str, x: Any) -> list[Check]:
    """``[check that x holds no NaN/inf]`` for floating ``x``; ``[]`` for integers and bools."""
    if not has_dtype(x, "real floating"):
        return []
    xp = namespace_of(x)
    return [(xp.all(xp.isfinite(x)), lambda: f"{label} contains NaN or infinite values")]


def all_non_negative(label: str, x: Any) -> list[Check]:
    """``[check that x holds no negative value]`` (NaN passes: :func:`all_finite` names it)."""
    xp = namespace_of(x)
    return [(xp.logical_not(xp.any(x < 0)), lambda: f"{label} contains negative values")]


def labels_in_range(label: str, labels: Any, classes: int) -> list[Check]:
    """``[check that integer labels lie in [0, classes)]``; the message names a bad label and
    its flat position. Bounds the dtype already guarantees are not computed."""
    xp = namespace_of(labels)
    lowest, highest = integer_range(labels)
    check_low, check_high = lowest < 0, classes <= highest
    if not (check_low or check_high):
        return []
    low, high = (labels >= 0) if check_low else None, (labels < classes) if check_high else None
    ok = low if high is None else high if low is None else low & high

    def message() -> str:
        flat = xp.reshape(xp.logical_not(ok), (-1,))
        position = int(xp.argmax(xp.astype(flat, xp.int32)))
        value = int(xp.reshape(labels, (-1,))[position])
        return (
            f"{label}: class label {value} (at flat position {position}) is out of range for "
            f"{classes} classes; labels must be in [0, {classes - 1}]"
        )

    return [(xp.all(ok), message)]


def run_checks(checks: list[Check]) -> None:
    """One read-back for every check; on failure raise ``ValueError`` from the first bad one.

    The flags may come from different namespaces (a host-side NumPy check next to device
    checks): a flag from another namespace than the first is read back on its own.
    """
    if not checks:
        return
    everything = checks[0][0]
    xp = namespace_of(everything)
    for ok, _ in checks[1:]:
        everything = everything & (ok if namespace_of(ok) is xp else bool(ok))
    if bool(everything):
        return
    for ok, message in checks:
        if not bool(ok):
            raise ValueError(message())


__all__ = [
    "Check",
    "all_finite",
    "all_non_negative",
    "check_like",
    "choice",
    "flag",
    "format_shape",
    "fraction",
    "int_tuple",
    "labels_in_range",
    "non_negative",
    "non_negative_int",
    "positive",
    "positive_int",
    "real_number",
    "require_dtype",
    "require_shape",
    "run_checks",
    "text",
]
