"""Categorical cross-entropies over the last axis, one value per sample (mean over samples).

With logits ``x``: ``values = -sum(y * log_softmax(x))`` (``logsumexp(x) - x[label]`` for
integer labels), gradient ``softmax(x) * sum(y) - y`` (``softmax - onehot`` for integer labels),
computed with the row maximum subtracted (no overflow at |x| = 1e4).

With probabilities (``from_logits=False``), as Keras does: rows are normalised,
``q = y_pred / sum(y_pred)``, clipped to ``[eps, 1 - eps]`` (``eps`` as for
:class:`BinaryCrossentropy`), and ``values = -sum(y * log(q_c))``. The gradient treats the clip
as the identity (``dL/dq = -y / q_c``) and is then exact through the normalisation:
``dL/dy_pred = (g - sum(g * q)) / sum(y_pred)`` with ``g = -y / q_c``.
"""

from __future__ import annotations

from types import ModuleType

import array_api_compat

from portable_nn.functional.softmax import log_softmax, log_softmax_and_softmax, logsumexp

from . import checks
from .base import Array
from .probabilities import _ProbabilisticLoss, clip_epsilon, distribution_checks


class _Crossentropy(_ProbabilisticLoss):
    """Settings, checks and the probability path shared by both categorical losses."""

    has_class_axis = True

    prediction_checks = staticmethod(distribution_checks)  # rows are normalised

    def _from_probabilities(
        self, xp: ModuleType, y: Array, p: Array, with_grad: bool
    ) -> tuple[Array, Array | None]:
        total = xp.sum(p, axis=-1, keepdims=True)
        q = p / total
        eps = clip_epsilon(xp, self.epsilon, p.dtype)
        qc = xp.clip(q, eps, 1.0 - eps)
        values = -xp.sum(y * xp.log(qc), axis=-1)
        if not with_grad:
            return values, None
        g = -y / qc  # dL/dq, the clip taken as the identity
        return values, (g - xp.sum(g * q, axis=-1, keepdims=True)) / total


class CategoricalCrossentropy(_Crossentropy):
    """Cross-entropy with one-hot or soft targets: y_true and y_pred of shape (batch, classes)."""

    default_name = "categorical_crossentropy"

    def _values(self, xp: ModuleType, t: Array, p: Array) -> Array:
        if self.from_logits:
            return -xp.sum(t * log_softmax(p), axis=-1)
        return self._from_probabilities(xp, t, p, with_grad=False)[0]

    def _values_and_grads(self, xp: ModuleType, t: Array, p: Array) -> tuple[Array, Array]:
        if not self.from_logits:
            return self._from_probabilities(xp, t, p, with_grad=True)
        logp, s = log_softmax_and_softmax(p)
        values = -xp.sum(t * logp, axis=-1)
        return values, s * xp.sum(t, axis=-1, keepdims=True) - t


class SparseCategoricalCrossentropy(_Crossentropy):
    """Cross-entropy with integer labels: y_true (batch,) of any integer dtype with values in
    ``[0, classes)``, y_pred (batch, classes)."""

    default_name = "sparse_categorical_crossentropy"

    def _targets(self, xp: ModuleType, y_true: Array, y_pred: Array) -> Array:
        if not checks.isdtype(xp, y_true.dtype, "integral"):
            raise TypeError(
                f"{self.name}: y_true must hold integer class labels. Received: "
                f"dtype={y_true.dtype} (use CategoricalCrossentropy for one-hot or soft targets)"
            )
        if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
            raise ValueError(
                f"{self.name}: y_true must have y_pred's shape without the class axis, "
                f"(batch,) for y_pred (batch, classes). Received: "
                f"y_true.shape={checks.shape_text(y_true)}, "
                f"y_pred.shape={checks.shape_text(y_pred)}"
            )
        return y_true

    def _value_checks(self, xp: ModuleType, t: Array, p: Array) -> list[checks.Check]:
        found = checks.labels_in_range(self.name, xp, t, p.shape[-1])
        return found + super()._value_checks(xp, t, p)

    def _values(self, xp: ModuleType, t: Array, p: Array) -> Array:
        mask = self._mask(xp, t, p)
        if self.from_logits:
            return logsumexp(p) - xp.sum(xp.where(mask, p, 0.0), axis=-1)
        return self._from_probabilities(xp, xp.astype(mask, p.dtype), p, with_grad=False)[0]

    def _values_and_grads(self, xp: ModuleType, t: Array, p: Array) -> tuple[Array, Array]:
        mask = self._mask(xp, t, p)
        onehot = xp.astype(mask, p.dtype)
        if not self.from_logits:
            return self._from_probabilities(xp, onehot, p, with_grad=True)
        logp, s = log_softmax_and_softmax(p)
        return -xp.sum(xp.where(mask, logp, 0.0), axis=-1), s - onehot

    @staticmethod
    def _mask(xp: ModuleType, labels: Array, p: Array) -> Array:
        """Boolean one-hot of ``labels`` (already checked to lie in range), shaped like ``p``."""
        if labels.dtype != xp.int32:
            labels = xp.astype(labels, xp.int32)
        classes = xp.arange(p.shape[-1], dtype=xp.int32, device=array_api_compat.device(p))
        return xp.expand_dims(labels, axis=-1) == classes


__all__ = ["CategoricalCrossentropy", "SparseCategoricalCrossentropy"]
