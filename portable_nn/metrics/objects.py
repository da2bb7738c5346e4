"""Metric objects: a name, a per-sample function and its settings, with a device-side sum."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from portable_nn.backend import is_array, namespace_of
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

    def _kwargs(self) -> dict[str, Any]:
        return {}

    def per_sample(self, y_true: Array, y_pred: Array) -> Array:
        """Per-sample values, shape (N,), in ``y_pred``'s floating dtype."""
        return self.fn(y_true, y_pred, **self._kwargs())

    def batch_value(self, y_true: Array, y_pred: Array) -> Array:
        """Sum over the batch of the per-sample metric: a 0-d array on the inputs' device."""
        return _sum(self.per_sample(y_true, y_pred))

    def __call__(self, y_true: Array, y_pred: Array) -> Array:
        """Mean over the batch (0-d array)."""
        values = self.per_sample(y_true, y_pred)
        xp = namespace_of(values)
        return xp.asarray(xp.mean(values))

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

    def batch_value(self, y_true: Array, y_pred: Array) -> Array:
        values = self.per_sample(y_true, y_pred)
        if values.ndim == 0:
            return namespace_of(values).asarray(values * float(y_pred.shape[0]))
        return _sum(values)

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
