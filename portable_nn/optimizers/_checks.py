"""Constructor checks shared by optimizers and schedules: errors name the argument and value
(finite reals through :func:`portable_nn.validation.real_number`)."""

from __future__ import annotations

import operator
from typing import Any

from portable_nn.validation import real_number


def positive(name: str, value: Any) -> float:
    """A finite float > 0."""
    out = real_number(name, value)
    if out <= 0.0:
        raise ValueError(f"{name} must be > 0. Received: {name}={value!r}")
    return out


def non_negative(name: str, value: Any) -> float:
    """A finite float >= 0."""
    out = real_number(name, value)
    if out < 0.0:
        raise ValueError(f"{name} must be >= 0. Received: {name}={value!r}")
    return out


def fraction(name: str, value: Any) -> float:
    """A float in [0, 1) (decay rates such as beta_1, rho, momentum)."""
    out = real_number(name, value)
    if not 0.0 <= out < 1.0:
        raise ValueError(f"{name} must be in [0, 1). Received: {name}={value!r}")
    return out


def optional_positive(name: str, value: Any) -> float | None:
    return None if value is None else positive(name, value)


def count(name: str, value: Any, minimum: int = 1) -> int:
    """A Python int >= ``minimum`` (step counts)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer. Received: {name}={value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer. Received: {name}={value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}. Received: {name}={value!r}")
    return value


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False. Received: {name}={value!r}")
    return value
