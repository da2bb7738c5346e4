"""Regression losses, elementwise with ``d = y_pred - y_true`` (PyTorch's mean over elements).

Shapes: ``y_true`` and ``y_pred`` alike (any shape); values have that shape too.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from portable_nn.validation import positive

from .base import Array, Forward, Loss


class MeanSquaredError(Loss):
    """``values = d^2``; gradient of their sum ``2 d``."""

    default_name = "mean_squared_error"

    def _forward(self, xp: ModuleType, t: Array, p: Array) -> Forward:
        d = p - t
        return d * d, lambda: 2.0 * d


class MeanAbsoluteError(Loss):
    """``values = |d|``; gradient ``sign(d)`` (0 at d = 0, as PyTorch's ``l1_loss``)."""

    default_name = "mean_absolute_error"

    def _forward(self, xp: ModuleType, t: Array, p: Array) -> Forward:
        d = p - t
        return xp.abs(d), lambda: xp.sign(d)


class Huber(Loss):
    """``values = d^2 / 2`` where ``|d| <= delta``, else ``delta * (|d| - delta / 2)``.

    Gradient ``clip(d, -delta, delta)``. Matches ``torch.nn.functional.huber_loss`` and Keras'
    ``Huber``.
    """

    default_name = "huber_loss"

    def __init__(self, delta: float = 1.0, reduction: str = "mean", name: str | None = None):
        self.delta = positive("delta", delta)
        super().__init__(reduction=reduction, name=name)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "delta": self.delta}

    def _forward(self, xp: ModuleType, t: Array, p: Array) -> Forward:
        d, delta = p - t, self.delta
        a = xp.abs(d)
        values = xp.where(a <= delta, 0.5 * (d * d), delta * (a - 0.5 * delta))
        return values, lambda: xp.clip(d, -delta, delta)


__all__ = ["Huber", "MeanAbsoluteError", "MeanSquaredError"]
