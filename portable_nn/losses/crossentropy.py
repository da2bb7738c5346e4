"""Cross-entropies: binary (per element) and categorical (per sample, classes on the last axis).

From logits, the stable forms (no overflow at |x| = 1e4); from probabilities
(``from_logits=False``), Keras' forms with predictions clipped to ``[eps, 1 - eps]``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

import array_api_compat

from portable_nn.functional.softmax import log_softmax_and_softmax
from portable_nn.validation import (
    Check,
    flag,
    labels_in_range,
    real_number,
    require_dtype,
    require_shape,
)

from .base import Array, Forward, Loss

DEFAULT_EPSILON = 1e-7  # Keras' backend epsilon


def clip_epsilon(xp: ModuleType, epsilon: float, dtype: Any) -> float:
    """``epsilon``, raised to half the dtype's machine epsilon if smaller.

    This keeps ``1 - epsilon < 1`` in the dtype: in float32 ``1 - 1e-9 == 1`` and the clipped
    probability would give ``log(0)`` (keras#377). 1e-7 (the default) is kept as is in float32.
    """
    return max(epsilon, 0.5 * float(xp.finfo(dtype).eps))  # a Python float, never NumPy's


class _Probabilistic(Loss):  # "_": pnn.losses.get refuses it
    """``from_logits`` and ``epsilon`` settings, and the range check of ``y_pred`` when it holds
    probabilities (NaN passes: a NaN loss is the training loop's business)."""

    requirement: ClassVar[str] = "probabilities in [0, 1]"

    def __init__(
        self,
        from_logits: bool = False,
        reduction: str = "mean",
        name: str | None = None,
        *,
        epsilon: float = DEFAULT_EPSILON,
    ) -> None:
        self.from_logits = flag("from_logits", from_logits)
        self.epsilon = real_number("epsilon", epsilon)
        if not 0.0 < self.epsilon < 0.5:
            raise ValueError(f"epsilon must be in (0, 0.5). Received: epsilon={epsilon!r}")
        super().__init__(reduction=reduction, name=name)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits, "epsilon": self.epsilon}

    def _invalid(self, xp: ModuleType, p: Array) -> Array:
        """0-d boolean: some prediction breaks ``requirement``."""
        return xp.any((p < 0.0) | (p > 1.0))

    def _value_checks(self, xp: ModuleType, t: Array, p: Array) -> list[Check]:
        found = super()._value_checks(xp, t, p)
        if self.from_logits:
            return found

        def message() -> str:
            return (
                f"{self.name}: with from_logits=False, y_pred must hold {self.requirement}; "
                f"received values in [{float(xp.min(p)):.6g}, {float(xp.max(p)):.6g}]. "
                "Pass from_logits=True for logits"
            )

        return [*found, (xp.logical_not(self._invalid(xp, p)), message)]


class BinaryCrossentropy(_Probabilistic):
    """``values = -(y log p + (1 - y) log(1 - p))`` per element; y_true and y_pred alike.

    ``from_logits=True`` (recommended): with ``z = exp(-|x|)``,
    ``values = max(x, 0) - x y + log1p(z)`` and ``grad = sigmoid(x) - y``, exact for any finite
    ``x``: a confidently wrong logit keeps a gradient of magnitude 1 (keras#9664).

    ``from_logits=False``: probabilities in [0, 1], clipped (``p_c``) before the log. The
    gradient ``(p_c - y) / (p_c (1 - p_c))`` keeps a large, finite push on a saturated wrong
    prediction, as in PyTorch, rather than the zero gradient of the flat clipped region.
    """

    default_name = "binary_crossentropy"

    def _forward(self, xp: ModuleType, t: Array, x: Array) -> Forward:
        if not self.from_logits:
            eps = clip_epsilon(xp, self.epsilon, x.dtype)
            pc = xp.clip(x, eps, 1.0 - eps)
            values = -(t * xp.log(pc) + (1.0 - t) * xp.log1p(-pc))
            return values, lambda: (pc - t) / (pc * (1.0 - pc))
        z = xp.exp(-xp.abs(x))

        def backward() -> Array:
            # sigmoid(x) - y, as (1 - y) - sigmoid(-x) for x >= 0: hard labels lose no digits
            # to cancellation (sigmoid(5) - 1 in float32)
            q = z / (1.0 + z)  # sigmoid(-|x|)
            return xp.where(x >= 0, (1.0 - t) - q, q - t)

        return xp.maximum(x, 0.0) - x * t + xp.log1p(z), backward


class _Crossentropy(_Probabilistic):
    """Keras' categorical cross-entropy on class scores (``from_logits=False``): rows are
    normalised, ``q = p / sum(p)``, clipped (``q_c``), ``values = -sum(y log q_c)``. The gradient
    takes the clip as the identity (``g = dL/dq = -y / q_c``) and is exact through the
    normalisation: ``dL/dp = (g - sum(g q)) / sum(p)``."""

    has_class_axis = True
    requirement = "non-negative class scores with a positive sum per row"

    def _invalid(self, xp: ModuleType, p: Array) -> Array:
        return xp.any(p < 0.0) | xp.any(xp.sum(p, axis=-1) <= 0.0)

    def _normalised(self, xp: ModuleType, y: Array, p: Array) -> Forward:
        total = xp.sum(p, axis=-1, keepdims=True)
        q = p / total
        eps = clip_epsilon(xp, self.epsilon, p.dtype)
        qc = xp.clip(q, eps, 1.0 - eps)

        def backward() -> Array:
            g = -y / qc
            return (g - xp.sum(g * q, axis=-1, keepdims=True)) / total

        return -xp.sum(y * xp.log(qc), axis=-1), backward


class CategoricalCrossentropy(_Crossentropy):
    """One-hot or soft targets, y_true and y_pred of shape (batch, classes). From logits:
    ``values = -sum(y * log_softmax(x))``, gradient ``softmax(x) * sum(y) - y``."""

    default_name = "categorical_crossentropy"

    def _forward(self, xp: ModuleType, t: Array, p: Array) -> Forward:
        if not self.from_logits:
            return self._normalised(xp, t, p)
        logp, s = log_softmax_and_softmax(p)
        return -xp.sum(t * logp, axis=-1), lambda: s * xp.sum(t, axis=-1, keepdims=True) - t


class SparseCategoricalCrossentropy(_Crossentropy):
    """Integer labels: y_true (batch,) of any integer dtype with values in ``[0, classes)``,
    y_pred (batch, classes). From logits: ``values = logsumexp(x) - x[label]``, gradient
    ``softmax(x) - onehot``."""

    default_name = "sparse_categorical_crossentropy"

    def _targets(self, xp: ModuleType, y_true: Array, y_pred: Array) -> Array:
        label = f"{self.name}: y_true"
        hint = " (use CategoricalCrossentropy for one-hot or soft targets)"
        require_dtype(label, y_true, "integral", "integer class labels", hint)
        require_shape(label, y_true, y_pred.shape[:-1], " = y_pred.shape without the class axis")
        return y_true

    def _value_checks(self, xp: ModuleType, t: Array, p: Array) -> list[Check]:
        in_range = labels_in_range(f"{self.name}: y_true", t, p.shape[-1])
        return in_range + super()._value_checks(xp, t, p)

    def _forward(self, xp: ModuleType, labels: Array, p: Array) -> Forward:
        if labels.dtype != xp.int32:
            labels = xp.astype(labels, xp.int32)
        classes = xp.arange(p.shape[-1], dtype=xp.int32, device=array_api_compat.device(p))
        mask = xp.expand_dims(labels, axis=-1) == classes  # boolean one-hot, shaped like p
        if not self.from_logits:
            return self._normalised(xp, xp.astype(mask, p.dtype), p)
        logp, s = log_softmax_and_softmax(p)
        return -xp.sum(xp.where(mask, logp, 0.0), axis=-1), lambda: s - xp.astype(mask, p.dtype)


__all__ = ["BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy"]
