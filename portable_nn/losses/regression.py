"""Regression losses: one term per element of ``d = y_pred - y_true`` (or of ``y_true`` and
``y_pred``), averaged over the last axis per sample as Keras does.

Shapes: ``y_true`` and ``y_pred`` alike (any shape). Values: ``y_pred.shape[:-1]`` (``y_pred``'s
shape for 0-d and 1-D inputs); ``loss.elementwise`` gives the terms themselves.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from portable_nn.validation import flag, positive

from .base import Array, Elements, _PerElement

POISSON_EPSILON = 1e-7  # Keras' backend epsilon
_LOG_2 = math.log(2.0)


class MeanSquaredError(_PerElement):
    """``e = d^2``; ``de/dp = 2 d``."""

    default_name = "mean_squared_error"

    def _elements(self, xp: ModuleType, t: Array, p: Array) -> Elements:
        d = p - t
        return d * d, lambda: 2.0 * d


class MeanAbsoluteError(_PerElement):
    """``e = |d|``; ``de/dp = sign(d)`` (0 at d = 0, as PyTorch's ``l1_loss``)."""

    default_name = "mean_absolute_error"

    def _elements(self, xp: ModuleType, t: Array, p: Array) -> Elements:
        d = p - t
        return xp.abs(d), lambda: xp.sign(d)


class Huber(_PerElement):
    """``e = d^2 / 2`` where ``|d| <= delta``, else ``delta * (|d| - delta / 2)``.

    ``de/dp = clip(d, -delta, delta)``. Matches ``torch.nn.functional.huber_loss`` and Keras'
    ``Huber``.
    """

    default_name = "huber_loss"

    def __init__(self, delta: float = 1.0, reduction: str = "mean", name: str | None = None):
        self.delta = positive("delta", delta)
        super().__init__(reduction=reduction, name=name)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "delta": self.delta}

    def _elements(self, xp: ModuleType, t: Array, p: Array) -> Elements:
        d, delta = p - t, self.delta
        a = xp.abs(d)
        values = xp.where(a <= delta, 0.5 * (d * d), delta * (a - 0.5 * delta))
        return values, lambda: xp.clip(d, -delta, delta)


class LogCosh(_PerElement):
    """``e = log(cosh(d))``: ``|d| + log1p(exp(-2|d|)) - log 2`` for ``|d| >= 1`` (finite for
    any finite ``d``: ``|d| - log 2`` at ``|d| = 1e4``), ``log1p(2 sinh(d/2)^2)`` below (no
    cancellation: ``d^2 / 2`` to full precision for small ``d``); ``de/dp = tanh(d)``."""

    default_name = "log_cosh"

    def _elements(self, xp: ModuleType, t: Array, p: Array) -> Elements:
        d = p - t
        a = xp.abs(d)
        small = xp.sinh(0.5 * xp.minimum(a, 1.0))  # clamped: the large branch never overflows
        large = a + xp.log1p(xp.exp(-2.0 * a)) - _LOG_2
        return xp.where(a < 1.0, xp.log1p(2.0 * (small * small)), large), lambda: xp.tanh(d)


class Poisson(_PerElement):
    """``e = p - y log(p + eps)`` (Keras, ``eps = 1e-7``; PyTorch's ``poisson_nll_loss`` with
    ``log_input=False``); ``de/dp = 1 - y / (p + eps)``. ``y_pred`` holds rates ``>= 0``.

    ``log_input=True``: ``y_pred`` holds log-rates ``z`` (PyTorch's default): ``e = exp(z) - y z``,
    ``de/dz = exp(z) - y``, exact for any finite ``z`` (no epsilon, no division).
    """

    default_name = "poisson"

    def __init__(
        self, reduction: str = "mean", name: str | None = None, log_input: bool = False
    ) -> None:
        self.log_input = flag("log_input", log_input)
        super().__init__(reduction=reduction, name=name)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "log_input": self.log_input}

    def _elements(self, xp: ModuleType, t: Array, p: Array) -> Elements:
        if self.log_input:
            rate = xp.exp(p)
            return rate - t * p, lambda: rate - t
        shifted = p + POISSON_EPSILON
        return p - t * xp.log(shifted), lambda: 1.0 - t / shifted


__all__ = ["Huber", "LogCosh", "MeanAbsoluteError", "MeanSquaredError", "Poisson"]
