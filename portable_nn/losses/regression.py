"""Regression losses, elementwise with ``d = y_pred - y_true`` (PyTorch's mean over elements)."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from .base import Array, Loss


class MeanSquaredError(Loss):
    """``values = d^2``; gradient of their sum ``2 d``. Shapes: y_true, y_pred alike (any)."""

    default_name = "mean_squared_error"

    def _values(self, xp: ModuleType, t: Array, p: Array) -> Array:
        d = p - t
        return d * d

    def _grads(self, xp: ModuleType, t: Array, p: Array) -> Array:
        return 2.0 * (p - t)

    def _values_and_grads(self, xp: ModuleType, t: Array, p: Array) -> tuple[Array, Array]:
        d = p - t
        return d * d, 2.0 * d


class MeanAbsoluteError(Loss):
    """``values = |d|``; gradient ``sign(d)`` (0 at d = 0, as PyTorch's ``l1_loss``)."""

    default_name = "mean_absolute_error"

    def _values(self, xp: ModuleType, t: Array, p: Array) -> Array:
        return xp.abs(p - t)

    def _grads(self, xp: ModuleType, t: Array, p: Array) -> Array:
        return xp.sign(p - t)

    def _values_and_grads(self, xp: ModuleType, t: Array, p: Array) -> tuple[Array, Array]:
        d = p - t
        return xp.abs(d), xp.sign(d)


class Huber(Loss):
    """``values = d^2 / 2`` where ``|d| <= delta``, else ``delta * (|d| - delta / 2)``.

    Gradient ``clip(d, -delta, delta)``. Matches ``torch.nn.functional.huber_loss`` and Keras'
    ``Huber``.
    """

    default_name = "huber_loss"

    def __init__(self, delta: float = 1.0, reduction: str = "mean", name: str | None = None):
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            raise TypeError(f"delta must be a positive number. Received: delta={delta!r}")
        if not (math.isfinite(delta) and delta > 0):
            raise ValueError(f"delta must be a positive finite number. Received: delta={delta!r}")
        super().__init__(reduction=reduction, name=name)
        self.delta = float(delta)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "delta": self.delta}

    def _from_difference(self, xp: ModuleType, d: Array) -> Array:
        a = xp.abs(d)
        return xp.where(a <= self.delta, 0.5 * (d * d), self.delta * (a - 0.5 * self.delta))

    def _values(self, xp: ModuleType, t: Array, p: Array) -> Array:
        return self._from_difference(xp, p - t)

    def _grads(self, xp: ModuleType, t: Array, p: Array) -> Array:
        return xp.clip(p - t, -self.delta, self.delta)

    def _values_and_grads(self, xp: ModuleType, t: Array, p: Array) -> tuple[Array, Array]:
        d = p - t
        return self._from_difference(xp, d), xp.clip(d, -self.delta, self.delta)


__all__ = ["Huber", "MeanAbsoluteError", "MeanSquaredError"]
