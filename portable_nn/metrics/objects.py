"""Metric objects: a name, a per-sample function and its settings, with device-side state.

Keras's protocol: ``update_state(y_true, y_pred, sample_weight=None)`` adds the batch to a
running ``total = sum_n w_n v_n`` and ``count = sum_n w_n`` (``w = 1`` without weights),
``result()`` is ``total / count`` (0 before any update or when every weight is 0) and
``reset_state()`` starts over. Both stay 0-d arrays on the inputs' device: no host sync.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, ClassVar

import array_api_extra as xpx

from portable_nn.backend import is_array, namespace_and_device, namespace_of
from portable_nn.validation import positive_int, real_number

from .functions import (
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    mean_absolute_error,
    mean_squared_error,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
)

Array = Any


def _sum(values: Array) -> Array:
    """Sum as a 0-d array (NumPy reductions return scalars; ``asarray`` makes them arrays)."""
    xp = namespace_of(values)
    return xp.asarray(xp.sum(values))


def sample_weights(sample_weight: Array, n: int, like: Array) -> Array:
    """``sample_weight`` as ``(n,)`` in ``like``'s dtype: shape ``(n,)`` or ``(n, 1)``, in the
    namespace and on the device of ``like``, else ``ValueError`` naming the shapes. (Its values
    are checked finite and >= 0 once per ``fit``/``evaluate``: here that would be a host read.)"""
    xp, _ = namespace_and_device(like, sample_weight)
    if tuple(sample_weight.shape) not in ((n,), (n, 1)):
        raise ValueError(
            f"sample_weight must have shape ({n},) (one weight per sample); "
            f"got {tuple(sample_weight.shape)}"
        )
    return xp.astype(xp.reshape(sample_weight, (n,)), like.dtype)


def _divide(total: Array, count: Array | float) -> Array:
    """``total / count``, 0 where ``count`` is 0 (Keras's ``divide_no_nan``)."""
    if not is_array(count):  # an unweighted sample count, > 0
        return namespace_of(total).asarray(total / count)  # NumPy: a 0-d array, not a scalar
    return xpx.apply_where(count > 0.0, (total, count), operator.truediv, fill_value=0.0)


class Metric:
    """A named metric: ``batch_value`` sums per-sample values on device, ``__call__`` averages.

    Subclasses set ``default_name`` and ``fn`` (a per-sample function ``(y_true, y_pred) ->
    (N,)``) and return extra keyword arguments for ``fn`` from ``_kwargs``.
    """

    default_name: ClassVar[str] = "metric"
    fn: ClassVar[Callable[..., Array]]

    def __init__(self, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty string. Received: name={name!r}")
        self.name = name or self.default_name
        self.reset_state()

    def _kwargs(self) -> dict[str, Any]:
        return {}

    def per_sample(self, y_true: Array, y_pred: Array) -> Array:
        """Per-sample values, shape (N,), in ``y_pred``'s floating dtype."""
        return self.fn(y_true, y_pred, **self._kwargs())

    def batch_totals(
        self, y_true: Array, y_pred: Array, sample_weight: Array = None
    ) -> tuple[Array, Array | float]:
        """``(sum_n w_n v_n, sum_n w_n)`` of the batch's per-sample values ``v``: a 0-d array on
        the inputs' device and the weight total (the batch size, a float, without weights).
        A user function that returns a 0-d batch mean counts as that value for every sample."""
        values = self.per_sample(y_true, y_pred)
        n = int(y_pred.shape[0])
        xp = namespace_of(values)
        if sample_weight is None:
            return xp.asarray(values * float(n) if values.ndim == 0 else xp.sum(values)), float(n)
        w = sample_weights(sample_weight, n, values)
        count = _sum(w)
        return xp.asarray(values * count if values.ndim == 0 else xp.sum(values * w)), count

    def batch_value(self, y_true: Array, y_pred: Array, sample_weight: Array = None) -> Array:
        """``sum_n w_n v_n`` over the batch (``w = 1`` without ``sample_weight``), 0-d."""
        return self.batch_totals(y_true, y_pred, sample_weight)[0]

    def __call__(self, y_true: Array, y_pred: Array, sample_weight: Array = None) -> Array:
        """The (weighted) mean over the batch, a 0-d array; the state is left alone."""
        return _divide(*self.batch_totals(y_true, y_pred, sample_weight))

    def update_state(self, y_true: Array, y_pred: Array, sample_weight: Array = None) -> None:
        """Add the batch: ``total += sum_n w_n v_n``, ``count += sum_n w_n``."""
        total, count = self.batch_totals(y_true, y_pred, sample_weight)
        self.total = total if self.total is None else self.total + total
        self.count = count if self.count is None else self.count + count

    def result(self) -> Array:
        """``total / count`` as a 0-d array (0.0 before any update or with zero weight)."""
        return 0.0 if self.total is None else _divide(self.total, self.count)

    def reset_state(self) -> None:
        """Forget every update (the arrays are created by the next ``update_state``)."""
        self.total: Array = None
        self.count: Array | float | None = None

    def get_config(self) -> dict[str, Any]:
        """JSON-friendly constructor arguments; ``type(m).from_config(m.get_config())`` rebuilds."""
        return {"name": self.name, **self._kwargs()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Accuracy(Metric):
    """Keras's ``"accuracy"``: binary, categorical or sparse categorical by the shapes."""

    default_name = "accuracy"
    fn = staticmethod(accuracy)


class SparseCategoricalAccuracy(Metric):
    default_name = "sparse_categorical_accuracy"
    fn = staticmethod(sparse_categorical_accuracy)


class CategoricalAccuracy(Metric):
    default_name = "categorical_accuracy"
    fn = staticmethod(categorical_accuracy)


class BinaryAccuracy(Metric):
    default_name = "binary_accuracy"
    fn = staticmethod(binary_accuracy)

    def __init__(self, threshold: float = 0.5, name: str | None = None) -> None:
        threshold = real_number("threshold", threshold)
        super().__init__(name)
        self.threshold = threshold

    def _kwargs(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


class TopKAccuracy(Metric):
    """Sparse labels in the k best scores (ties in the label's favour, as ``in_top_k``)."""

    default_name = "top_k_accuracy"
    fn = staticmethod(sparse_top_k_categorical_accuracy)

    def __init__(self, k: int = 5, name: str | None = None) -> None:
        k = positive_int("k", k)
        super().__init__(name)
        self.k = k

    def _kwargs(self) -> dict[str, Any]:
        return {"k": self.k}


class MeanSquaredError(Metric):
    default_name = "mean_squared_error"
    fn = staticmethod(mean_squared_error)


class MeanAbsoluteError(Metric):
    default_name = "mean_absolute_error"
    fn = staticmethod(mean_absolute_error)


class MeanMetricWrapper(Metric):
    """A user function ``fn(y_true, y_pred)`` returning per-sample values (N,), or a 0-d batch
    mean (turned into a sum by multiplying by N)."""

    def __init__(self, fn: Callable[..., Array], name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable. Received: fn={fn!r}")
        super().__init__(name or getattr(fn, "__name__", "metric"))
        self.user_fn = fn

    def per_sample(self, y_true: Array, y_pred: Array) -> Array:
        values = self.user_fn(y_true, y_pred)
        if not is_array(values) or values.ndim > 1:
            raise ValueError(
                f"metric {self.name!r} must return an array of shape (N,) or (); "
                f"got {type(values).__name__} of shape {getattr(values, 'shape', None)}"
            )
        if values.ndim == 1 and values.shape[0] != y_pred.shape[0]:
            raise ValueError(
                f"metric {self.name!r} returned {values.shape[0]} values for a batch of "
                f"{y_pred.shape[0]} samples"
            )
        return values

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "fn": getattr(self.user_fn, "__name__", None)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        raise ValueError(
            f"cannot rebuild custom metric function {config.get('fn')!r} from a config; "
            "pass it to deserialize(..., custom_objects={name: fn})"
        )


SparseTopKCategoricalAccuracy = TopKAccuracy

__all__ = [
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "MeanAbsoluteError",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "Metric",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "TopKAccuracy",
]
