"""Cross-entropies: binary and binary focal (per element, averaged over the last axis per sample)
and categorical (per sample, classes on ``axis``, the last by default).

From logits, the stable forms (no overflow at |x| = 1e4); from probabilities
(``from_logits=False``), Keras' forms with predictions clipped to ``[eps, 1 - eps]``.
``label_smoothing`` (Keras) mixes the targets with the uniform distribution over ``K`` classes,
``y_s = y (1 - s) + s / K`` (``K = 2`` for the binary losses).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

import array_api_compat

from portable_nn.backend import integer_range
from portable_nn.functional.softmax import log_softmax_and_softmax
from portable_nn.validation import (
    Check,
    flag,
    labels_in_range,
    non_negative,
    real_number,
    require_dtype,
    require_shape,
)

from .base import Array, Elements, Forward, Loss, _PerElement, axis_argument, expand

DEFAULT_EPSILON = 1e-7  # Keras' backend epsilon


def clip_epsilon(xp: ModuleType, epsilon: float, dtype: Any) -> float:
    """``epsilon``, raised to half the dtype's machine epsilon if smaller.

    This keeps ``1 - epsilon < 1`` in the dtype: in float32 ``1 - 1e-9 == 1`` and the clipped
    probability would give ``log(0)`` (keras#377). 1e-7 (the default) is kept as is in float32.
    """
    return max(epsilon, 0.5 * float(xp.finfo(dtype).eps))  # a Python float, never NumPy's


class _Probabilistic(Loss):  # "_": pnn.losses.get refuses it
    """``from_logits``, ``label_smoothing`` and ``epsilon`` settings, and the range check of
    ``y_pred`` when it holds probabilities (NaN passes: a NaN loss is the training loop's
    business)."""

    requirement: ClassVar[str] = "probabilities in [0, 1]"

    def __init__(
        self,
        from_logits: bool = False,
        reduction: str = "mean",
        name: str | None = None,
        *,
        label_smoothing: float = 0.0,
        epsilon: float = DEFAULT_EPSILON,
    ) -> None:
        self.from_logits = flag("from_logits", from_logits)
        self.label_smoothing = real_number("label_smoothing", label_smoothing, 0.0, 1.0)
        self.epsilon = real_number("epsilon", epsilon)
        if not 0.0 < self.epsilon < 0.5:
            raise ValueError(f"epsilon must be in (0, 0.5). Received: epsilon={epsilon!r}")
        super().__init__(reduction=reduction, name=name)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "epsilon": self.epsilon,
        }

    def _smoothed(self, y: Array, classes: int) -> Array:
        """``y (1 - s) + s / classes`` (``y`` itself when ``s = 0``)."""
        s = self.label_smoothing
        return y * (1.0 - s) + s / classes if s else y

    def _clipped(self, xp: ModuleType, p: Array) -> Array:
        eps = clip_epsilon(xp, self.epsilon, p.dtype)
        return xp.clip(p, eps, 1.0 - eps)

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


def _bce_from_logits(xp: ModuleType, y: Array, x: Array) -> Elements:
    """``e = max(x, 0) - x y + log1p(exp(-|x|))``, ``de/dx = sigmoid(x) - y``: exact for any
    finite ``x`` (a confidently wrong logit keeps a gradient of magnitude 1, keras#9664)."""
    z = xp.exp(-xp.abs(x))

    def de() -> Array:
        # sigmoid(x) - y, as (1 - y) - sigmoid(-x) for x >= 0: hard labels lose no digits
        # to cancellation (sigmoid(5) - 1 in float32)
        q = z / (1.0 + z)  # sigmoid(-|x|)
        return xp.where(x >= 0, (1.0 - y) - q, q - y)

    return xp.maximum(x, 0.0) - x * y + xp.log1p(z), de


def _bce_from_probabilities(xp: ModuleType, y: Array, p: Array) -> Elements:
    """``e = -(y log p + (1 - y) log(1 - p))`` on clipped ``p``, ``de/dp = (p - y) / (p (1 - p))``
    (the clip taken as the identity: a saturated wrong prediction keeps a large, finite push,
    as in PyTorch, rather than the zero gradient of the flat clipped region)."""
    return -(y * xp.log(p) + (1.0 - y) * xp.log1p(-p)), lambda: (p - y) / (p * (1.0 - p))


class BinaryCrossentropy(_PerElement, _Probabilistic):
    """``e = -(y log p + (1 - y) log(1 - p))`` per element, ``y`` smoothed towards 0.5 by
    ``label_smoothing``; y_true and y_pred alike; values average ``e`` over the last axis.

    ``from_logits=True`` (recommended): ``e = max(x, 0) - x y + log1p(exp(-|x|))`` and
    ``de/dx = sigmoid(x) - y``, exact for any finite ``x``. ``from_logits=False``: probabilities
    in [0, 1], clipped before the log.
    """

    default_name = "binary_crossentropy"

    def _elements(self, xp: ModuleType, t: Array, x: Array) -> Elements:
        y = self._smoothed(t, 2)
        if self.from_logits:
            return _bce_from_logits(xp, y, x)
        return _bce_from_probabilities(xp, y, self._clipped(xp, x))


class BinaryFocalCrossentropy(_PerElement, _Probabilistic):
    """Focal loss (Lin et al. 2017, https://arxiv.org/abs/1708.02002), Keras' arguments.

    With ``p`` the probability (``sigmoid(x)`` from logits; clipped to ``[eps, 1 - eps]``
    otherwise), ``y`` the smoothed target and ``m = 1 - p_t = y (1 - p) + (1 - y) p``:
    ``e = a m^gamma bce(y, p)``, ``a = alpha y + (1 - alpha)(1 - y)`` with
    ``apply_class_balancing`` (else 1), ``de/dp = a (m^gamma dbce/dp + gamma m^(gamma - 1)
    (1 - 2y) bce)``. From logits the BCE is the stable log-sigmoid form (Keras clips sigmoid(x)
    first: the two agree while sigmoid(x) lies in ``[eps, 1 - eps]``).
    """

    default_name = "binary_focal_crossentropy"

    def __init__(
        self,
        apply_class_balancing: bool = False,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
        name: str | None = None,
        *,
        epsilon: float = DEFAULT_EPSILON,
    ) -> None:
        self.apply_class_balancing = flag("apply_class_balancing", apply_class_balancing)
        self.alpha = real_number("alpha", alpha, 0.0, 1.0)
        self.gamma = non_negative("gamma", gamma)
        super().__init__(
            from_logits, reduction, name, label_smoothing=label_smoothing, epsilon=epsilon
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "apply_class_balancing": self.apply_class_balancing,
            "alpha": self.alpha,
            "gamma": self.gamma,
        }

    def _elements(self, xp: ModuleType, t: Array, x: Array) -> Elements:
        y = self._smoothed(t, 2)
        if self.from_logits:
            bce, dbce = _bce_from_logits(xp, y, x)  # dbce: d/dx
            z = xp.exp(-xp.abs(x))
            big, small = 1.0 / (1.0 + z), z / (1.0 + z)
            p, q = xp.where(x >= 0, big, small), xp.where(x >= 0, small, big)  # s(x), s(-x)
            jacobian: Any = p * q  # dp/dx
        else:
            p = self._clipped(xp, x)
            q, jacobian = 1.0 - p, 1.0
            bce, dbce = _bce_from_probabilities(xp, y, p)
        m = y * q + (1.0 - y) * p
        focal = m**self.gamma
        a = self.alpha * y + (1.0 - self.alpha) * (1.0 - y) if self.apply_class_balancing else 1.0

        def de() -> Array:
            # d focal/dx = gamma m^gamma / m (1 - 2y) dp/dx; m = 0 only where the term is 0
            ratio = xp.where(m > 0.0, jacobian / xp.where(m > 0.0, m, 1.0), 0.0)
            return a * (focal * dbce() + self.gamma * (focal * ratio) * (1.0 - 2.0 * y) * bce)

        return a * focal * bce, de


class _Crossentropy(_Probabilistic):
    """Categorical cross-entropy over the class ``axis`` with float targets ``y`` shaped like
    ``y_pred``. From logits: ``v = -sum(y log_softmax(x))``, ``dv/dx = softmax(x) sum(y) - y``.

    From class scores (Keras): rows are normalised, ``q = p / sum(p)``, clipped (``q_c``),
    ``v = -sum(y log q_c)``. The gradient takes the clip as the identity (``g = -y / q_c``) and
    is exact through the normalisation: ``dv/dp = (g - sum(g q)) / sum(p)``."""

    has_class_axis = True
    requirement = "non-negative class scores with a positive sum per row"

    def __init__(
        self,
        from_logits: bool = False,
        reduction: str = "mean",
        name: str | None = None,
        *,
        label_smoothing: float = 0.0,
        axis: int = -1,
        epsilon: float = DEFAULT_EPSILON,
    ) -> None:
        self.axis = axis_argument(axis)
        super().__init__(
            from_logits, reduction, name, label_smoothing=label_smoothing, epsilon=epsilon
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}

    def _invalid(self, xp: ModuleType, p: Array) -> Array:
        return xp.any(p < 0.0) | xp.any(xp.sum(p, axis=self.axis) <= 0.0)

    def _dense(self, xp: ModuleType, y: Array, p: Array) -> Forward:
        """Values and backward for float targets ``y`` (already smoothed)."""
        axis = self.axis
        if self.from_logits:
            logp, s = log_softmax_and_softmax(p, axis=axis)
            grad = lambda: s * xp.sum(y, axis=axis, keepdims=True) - y  # noqa: E731
            return -xp.sum(y * logp, axis=axis), lambda dv: expand(xp, dv, axis) * grad()
        total = xp.sum(p, axis=axis, keepdims=True)
        q = p / total
        qc = self._clipped(xp, q)

        def backward(dv: Any) -> Array:
            g = -y / qc
            return expand(xp, dv, axis) * ((g - xp.sum(g * q, axis=axis, keepdims=True)) / total)

        return -xp.sum(y * xp.log(qc), axis=axis), backward


class CategoricalCrossentropy(_Crossentropy):
    """One-hot or soft targets shaped like y_pred, e.g. (batch, classes); ``label_smoothing``
    gives ``y (1 - s) + s / classes``."""

    default_name = "categorical_crossentropy"

    def _forward(self, xp: ModuleType, t: Array, p: Array) -> Forward:
        return self._dense(xp, self._smoothed(t, p.shape[self.axis]), p)


class SparseCategoricalCrossentropy(_Crossentropy):
    """Integer labels: y_true of y_pred's shape without the class axis, e.g. (batch,) for
    (batch, classes) (Keras's (batch, 1) is squeezed), any integer dtype, values in
    ``[0, classes)``. The one-hot target (smoothed by ``label_smoothing``, as PyTorch's
    ``cross_entropy`` does) goes through the categorical formula.

    ``ignore_class`` (Keras; PyTorch's ``ignore_index``): samples with that label have value 0
    and gradient 0, are not range-checked, and do not count in ``"mean"``:
    ``L = sum(w v) / (number of counted samples)`` (0 when none counts), and
    ``"mean_with_sample_weight"`` divides by the weights of the counted samples.
    """

    default_name = "sparse_categorical_crossentropy"

    def __init__(
        self,
        from_logits: bool = False,
        reduction: str = "mean",
        name: str | None = None,
        *,
        ignore_class: int | None = None,
        label_smoothing: float = 0.0,
        axis: int = -1,
        epsilon: float = DEFAULT_EPSILON,
    ) -> None:
        if ignore_class is not None and (
            isinstance(ignore_class, bool) or not isinstance(ignore_class, int)
        ):
            raise TypeError(
                f"ignore_class must be an integer or None. Received: ignore_class={ignore_class!r}"
            )
        self.ignore_class = ignore_class
        super().__init__(
            from_logits,
            reduction,
            name,
            label_smoothing=label_smoothing,
            axis=axis,
            epsilon=epsilon,
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ignore_class": self.ignore_class}

    def _targets(self, xp: ModuleType, y_true: Array, y_pred: Array) -> Array:
        label = f"{self.name}: y_true"
        hint = " (use CategoricalCrossentropy for one-hot or soft targets)"
        require_dtype(label, y_true, "integral", "integer class labels", hint)
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:  # (batch, 1), as Keras
            y_true = xp.reshape(y_true, tuple(y_true.shape[:-1]))
        axis = self._axis(y_pred.ndim)
        expected = tuple(s for i, s in enumerate(y_pred.shape) if i != axis)
        require_shape(label, y_true, expected, " = y_pred.shape without the class axis")
        return y_true

    def _counted(self, xp: ModuleType, labels: Array) -> Array | None:
        ignored = self.ignore_class
        if ignored is None or not integer_range(labels)[0] <= ignored <= integer_range(labels)[1]:
            return None  # no label of this dtype can equal it
        return labels != ignored

    def _value_checks(self, xp: ModuleType, t: Array, p: Array) -> list[Check]:
        counted = self._counted(xp, t)
        labels = t if counted is None else xp.where(counted, t, 0)
        in_range = labels_in_range(f"{self.name}: y_true", labels, p.shape[self.axis])
        return in_range + super()._value_checks(xp, t, p)

    def _forward(self, xp: ModuleType, labels: Array, p: Array) -> Forward:
        axis, classes = self._axis(p.ndim), p.shape[self.axis]
        counted = self._counted(xp, labels)
        if labels.dtype != xp.int32:
            labels = xp.astype(labels, xp.int32)
        if counted is not None:
            labels = xp.where(counted, labels, 0)
        shape = tuple(classes if i == axis else 1 for i in range(p.ndim))
        ids = xp.arange(classes, dtype=xp.int32, device=array_api_compat.device(p))
        onehot = xp.expand_dims(labels, axis=axis) == xp.reshape(ids, shape)
        values, backward = self._dense(xp, self._smoothed(xp.astype(onehot, p.dtype), classes), p)
        return (values if counted is None else xp.where(counted, values, 0.0)), backward


__all__ = [
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
]
