"""Losses comparing whole vectors along an axis (Keras): ``KLDivergence`` (distributions on the
last axis) and ``CosineSimilarity`` (any ``axis``); one value per sample."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .base import Array, Forward, Loss, axis_argument, expand

EPSILON = 1e-7  # Keras' backend epsilon


class KLDivergence(Loss):
    """``v = sum(y_c (log y_c - log p_c))`` over the last axis, ``y_c = clip(y, eps, 1)`` and
    ``p_c = clip(p, eps, 1)`` (Keras; PyTorch's ``kl_div(log p, y)`` summed over the classes
    where ``y >= eps``). ``dv/dp = -y_c / p_c`` (the clip taken as the identity)."""

    default_name = "kl_divergence"
    has_class_axis = True

    def _forward(self, xp: ModuleType, t: Array, p: Array) -> Forward:
        tc, pc = xp.clip(t, EPSILON, 1.0), xp.clip(p, EPSILON, 1.0)
        values = xp.sum(tc * (xp.log(tc) - xp.log(pc)), axis=-1)
        return values, lambda dv: expand(xp, dv, -1) * (-tc / pc)


class CosineSimilarity(Loss):
    """Keras's sign: ``v = -sum(a u, axis)``, ``a = y / max(|y|, eps)``, ``u = p / m`` with
    ``m = max(|p|, eps)``: -1 for vectors pointing the same way, 0 when one is zero.
    ``dv/dp = (u (a . u) - a) / m`` (``-a / m`` where ``|p| <= eps``)."""

    default_name = "cosine_similarity"
    has_class_axis = True

    def __init__(self, axis: int = -1, reduction: str = "mean", name: str | None = None):
        self.axis = axis_argument(axis)
        super().__init__(reduction=reduction, name=name)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}

    def _forward(self, xp: ModuleType, t: Array, p: Array) -> Forward:
        axis = self.axis
        a = t / xp.clip(xp.sqrt(xp.sum(t * t, axis=axis, keepdims=True)), min=EPSILON)
        n = xp.sqrt(xp.sum(p * p, axis=axis, keepdims=True))
        m = xp.clip(n, min=EPSILON)
        u = p / m
        cos = xp.sum(a * u, axis=axis, keepdims=True)

        def backward(dv: Any) -> Array:
            return expand(xp, dv, axis) * ((u * xp.where(n > EPSILON, cos, 0.0) - a) / m)

        return -xp.squeeze(cos, axis=axis), backward


__all__ = ["CosineSimilarity", "KLDivergence"]
