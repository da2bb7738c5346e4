"""Argument and value checks shared across the library (layers, losses, optimizers, callbacks,
training). Errors name the argument and echo the value received, Keras style::

    Expected a positive integer. Received: units=0

Value checks on arrays are *lazy*: each :data:`Check` pairs a 0-d boolean "all good" array,
computed on the data's device, with a function building the error message.
:func:`run_checks` combines them and reads ONE flag back to the host (one device sync on the
happy path); only when it is false are the individual flags read to name the culprit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from portable_nn.backend import namespace_and_device, namespace_of

Check = tuple[Any, Callable[[], str]]  # (0-d boolean "all good", message builder)


def positive_int(name: str, value: Any) -> int:
    """``value`` when it is an ``int`` > 0 (bool refused), else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"Expected a positive integer. Received: {name}={value!r}")
    return int(value)


def non_negative_int(name: str, value: Any) -> int:
    """``value`` when it is an ``int`` >= 0 (bool refused), else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Expected a non-negative integer. Received: {name}={value!r}")
    return int(value)


def real_number(name: str, value: Any, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a Python float when it is a finite real number in ``[low, high]``.

    ``TypeError`` for anything but an int/float (bool refused), ``ValueError`` for NaN, inf or
    a value out of range; both name ``name`` and echo ``value``.
    """
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


__all__ = ["Check", "non_negative_int", "positive_int", "real_number", "run_checks"]


def check_like(label: str, value: Any, reference: Any) -> None:
    """Raise ``ValueError`` unless ``value`` matches ``reference`` in shape, dtype, namespace and
    device; messages start with ``label`` (e.g. ``"model: parameter '0.weight'"``)."""
    if tuple(value.shape) != tuple(reference.shape):
        raise ValueError(
            f"{label} has shape {tuple(value.shape)}, expected {tuple(reference.shape)}"
        )
    if value.dtype != reference.dtype:
        raise ValueError(f"{label} has dtype {value.dtype}, expected {reference.dtype}")
    try:
        namespace_and_device(value, reference)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None
