"""Metrics: per-sample maths plus ``Metric`` objects that sum them on the inputs' device.

``metric.batch_value(y_true, y_pred)`` is the SUM over the batch of the per-sample metric, a
0-d array in the inputs' namespace and on their device (no host sync), so a training loop can
accumulate sums on device and divide by the sample count once per read-out;
``metric(y_true, y_pred)`` is the batch mean. Shapes: ``y_pred`` is (N, ...) with the batch
axis first; labels are (N,) or (N, 1). Targets of shape (N,) and predictions of shape (N, 1)
(or the reverse) are accepted for binary and regression metrics; any other shape difference
raises ``ValueError`` (never silent broadcasting).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .functions import (
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    mean_absolute_error,
    mean_squared_error,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
)
from .objects import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    MeanAbsoluteError,
    MeanMetricWrapper,
    MeanSquaredError,
    Metric,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKAccuracy,
)

_BY_NAME: dict[str, type[Metric]] = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_accuracy": TopKAccuracy,
    "sparse_top_k_categorical_accuracy": TopKAccuracy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
}
_CLASSES = {cls.__name__: cls for cls in set(_BY_NAME.values())}
_BY_FUNCTION = {cls.fn: cls for cls in _CLASSES.values()}


def serialize(metric: Metric) -> dict[str, Any]:
    """``{"class_name", "config"}`` for checkpoints."""
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(
    config: dict[str, Any], custom_objects: dict[str, Callable[..., Any]] | None = None
) -> Metric:
    """Rebuild a metric written by :func:`serialize`; custom functions come from
    ``custom_objects`` (by function name), never from an import path in the file."""
    class_name, inner = config.get("class_name"), dict(config.get("config", {}))
    if class_name == "MeanMetricWrapper":
        fn = (custom_objects or {}).get(inner.pop("fn", None) or "")
        if fn is None:
            return MeanMetricWrapper.from_config(config.get("config", {}))
        return MeanMetricWrapper(fn, **inner)
    if class_name not in _CLASSES:
        raise ValueError(f"unknown metric class {class_name!r}; known: {sorted(_CLASSES)}")
    return _CLASSES[class_name].from_config(inner)


def get(identifier: str | Metric | Callable[..., Any] | dict[str, Any]) -> Metric:
    """A Metric from a name (``"accuracy"``, ``"acc"``, ``"mse"``...), an instance, a Metric
    class, a per-sample function, or a :func:`serialize` dict. Names become the log key."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(
                f"unknown metric {identifier!r}; valid names are {', '.join(sorted(_BY_NAME))}"
            )
        return _BY_NAME[identifier](name=identifier)
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        cls = _BY_FUNCTION.get(identifier)
        return cls() if cls is not None else MeanMetricWrapper(identifier)
    raise TypeError(
        "a metric must be a name, a Metric, or a function (y_true, y_pred) -> values. "
        f"Received: {identifier!r}"
    )


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
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "deserialize",
    "get",
    "mean_absolute_error",
    "mean_squared_error",
    "serialize",
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
]
