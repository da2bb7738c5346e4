"""Hinge losses (Keras): ``Hinge`` and ``SquaredHinge`` per element with labels in {-1, 1}
(labels all in {0, 1} become -1/1), averaged over the last axis; ``CategoricalHinge`` per sample
over the last (class) axis."""

from __future__ import annotations

from types import ModuleType

import array_api_compat

from .base import Array, Elements, Forward, Loss, _PerElement, expand


def hinge_labels(xp: ModuleType, t: Array) -> Array:
    """Keras: when every label is 0 or 1, ``2 t - 1``; else ``t`` (chosen on the device)."""
    binary = xp.all((t == 0.0) | (t == 1.0))
    return xp.where(binary, 2.0 * t - 1.0, t)


class Hinge(_PerElement):
    """``e = max(1 - y p, 0)``; ``de/dp = -y`` where ``1 - y p > 0``, else 0."""

    default_name = "hinge"

    def _elements(self, xp: ModuleType, t: Array, p: Array) -> Elements:
        y = hinge_labels(xp, t)
        margin = 1.0 - y * p
        return xp.maximum(margin, 0.0), lambda: xp.where(margin > 0.0, -y, 0.0)


class SquaredHinge(_PerElement):
    """``e = h^2`` with ``h = max(1 - y p, 0)``; ``de/dp = -2 y h``."""

    default_name = "squared_hinge"

    def _elements(self, xp: ModuleType, t: Array, p: Array) -> Elements:
        y = hinge_labels(xp, t)
        h = xp.maximum(1.0 - y * p, 0.0)
        return h * h, lambda: -2.0 * y * h


class CategoricalHinge(Loss):
    """One-hot targets, classes on the last axis: ``pos = sum(y p)``, ``neg = max((1 - y) p)``,
    ``v = max(neg - pos + 1, 0)``; where ``v > 0``, ``dv/dp = (1 - y) onehot(argmax((1 - y) p))
    - y`` (the first maximum when tied)."""

    default_name = "categorical_hinge"
    has_class_axis = True

    def _forward(self, xp: ModuleType, t: Array, p: Array) -> Forward:
        others = (1.0 - t) * p
        v = xp.maximum(xp.max(others, axis=-1) - xp.sum(t * p, axis=-1) + 1.0, 0.0)

        def backward(dv: object) -> Array:
            best = xp.argmax(others, axis=-1, keepdims=True)
            ids = xp.arange(p.shape[-1], dtype=best.dtype, device=array_api_compat.device(p))
            onehot = xp.astype(best == ids, p.dtype)
            active = expand(xp, xp.astype(v > 0.0, p.dtype) * dv, -1)
            return active * ((1.0 - t) * onehot - t)

        return v, backward


__all__ = ["CategoricalHinge", "Hinge", "SquaredHinge"]
