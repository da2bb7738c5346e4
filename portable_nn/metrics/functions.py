"""Per-sample metric functions ``(y_true, y_pred) -> (N,)`` in ``y_pred``'s floating dtype.

Shapes: ``y_pred`` is (N, ...) with the batch axis first; labels are (N,) or (N, 1). Targets
of shape (N,) with predictions of shape (N, 1) (or the reverse) are accepted for binary and
regression metrics; any other shape difference raises ``ValueError`` (never silent
broadcasting). Everything runs in the inputs' namespace on their device: no host sync.
"""

from __future__ import annotations

from typing import Any

from portable_nn.backend import namespace_and_device, namespace_of

Array = Any


# -- shape and dtype helpers ------------------------------------------------------------------
def _float_dtype(xp: Any, a: Array) -> Any:
    return a.dtype if xp.isdtype(a.dtype, "real floating") else xp.float32


def _index_dtype(xp: Any, device: Any) -> Any:
    return xp.__array_namespace_info__().default_dtypes(device=device)["indexing"]


def _aligned(xp: Any, y_true: Array, y_pred: Array, what: str) -> Array:
    """``y_true`` with ``y_pred``'s shape; (N,) vs (N, 1) is the only difference allowed."""
    ts, ps = tuple(y_true.shape), tuple(y_pred.shape)
    if len(ps) == 0 or len(ts) == 0:
        raise ValueError(f"{what}: inputs need a batch axis; got shapes {ts} and {ps}")
    if ts == ps:
        return y_true
    if ts + (1,) == ps or ts == ps + (1,):
        return xp.reshape(y_true, ps)
    raise ValueError(f"{what}: y_true shape {ts} does not match y_pred shape {ps}")


def _sparse_labels(y_true: Array, y_pred: Array, what: str) -> tuple[Any, Any, Array, int]:
    """Labels (N,) or (N, 1) against scores (N, C): namespace, device, labels as (N,), C."""
    ts, ps = tuple(y_true.shape), tuple(y_pred.shape)
    if len(ps) != 2 or ts not in ((ps[0],), (ps[0], 1)):
        raise ValueError(
            f"{what}: expected labels of shape (N,) or (N, 1) and scores of shape (N, C); "
            f"got y_true {ts} and y_pred {ps}"
        )
    xp, device = namespace_and_device(y_true, y_pred)
    if xp.isdtype(y_true.dtype, "bool"):
        raise TypeError(f"{what}: labels must be integer or float class indices, got bool")
    return xp, device, xp.reshape(y_true, (ps[0],)), ps[1]


def _per_sample_mean(xp: Any, values: Array) -> Array:
    """Average over every axis but the batch axis: (N, ...) -> (N,)."""
    return values if values.ndim == 1 else xp.mean(values, axis=tuple(range(1, values.ndim)))


def _equal_as_float(xp: Any, pred_index: Array, labels: Array, dtype: Any) -> Array:
    """1.0 where an argmax equals a label (integer labels compared as indices)."""
    if xp.isdtype(labels.dtype, "integral"):
        hit = xp.astype(labels, pred_index.dtype) == pred_index
    else:
        hit = xp.astype(pred_index, labels.dtype) == labels
    return xp.astype(hit, dtype)


# -- per-sample functions (y_true, y_pred) -> (N,) --------------------------------------------
def sparse_categorical_accuracy(y_true: Array, y_pred: Array) -> Array:
    """``1[argmax_c y_pred[n, c] == y_true[n]]``; ties go to the first maximal class (the
    standard's ``argmax``); labels outside [0, C) never match."""
    xp, _, labels, _ = _sparse_labels(y_true, y_pred, "sparse_categorical_accuracy")
    return _equal_as_float(xp, xp.argmax(y_pred, axis=-1), labels, _float_dtype(xp, y_pred))


def categorical_accuracy(y_true: Array, y_pred: Array) -> Array:
    """``1[argmax y_pred[n] == argmax y_true[n]]`` for one-hot (or soft) targets, both (N, C)."""
    xp, _ = namespace_and_device(y_true, y_pred)
    if y_pred.ndim != 2 or tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            "categorical_accuracy: expected one-hot targets and scores of the same shape (N, C); "
            f"got y_true {tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}"
        )
    hit = xp.argmax(y_true, axis=-1) == xp.argmax(y_pred, axis=-1)
    return xp.astype(hit, _float_dtype(xp, y_pred))


def binary_accuracy(y_true: Array, y_pred: Array, threshold: float = 0.5) -> Array:
    """``mean_j 1[(y_pred[n, j] > threshold) == y_true[n, j]]`` (Keras: targets must be 0/1)."""
    xp, _ = namespace_and_device(y_true, y_pred)
    y_true = _aligned(xp, y_true, y_pred, "binary_accuracy")
    if not xp.isdtype(y_pred.dtype, "real floating"):  # integer or bool predictions
        y_pred = xp.astype(y_pred, xp.float32)
    positive = y_pred > threshold
    if xp.isdtype(y_true.dtype, "bool"):
        hit = positive == y_true
    else:
        hit = xp.astype(positive, y_true.dtype) == y_true
    return _per_sample_mean(xp, xp.astype(hit, _float_dtype(xp, y_pred)))


def sparse_top_k_categorical_accuracy(y_true: Array, y_pred: Array, k: int = 5) -> Array:
    """``1[#{c : y_pred[n, c] > y_pred[n, y_true[n]]} < k]``.

    Ties count in the label's favour, as Keras's ``in_top_k`` does: classes scoring exactly the
    label's score never push it out of the top k. A NaN score at the label, or a label outside
    [0, C), is a miss.
    """
    xp, device, labels, n_classes = _sparse_labels(y_true, y_pred, "top_k_accuracy")
    index = xp.astype(labels, _index_dtype(xp, device))
    valid = (index >= 0) & (index < n_classes)
    safe = xp.where(valid, index, xp.zeros_like(index))
    at_label = xp.take_along_axis(y_pred, xp.reshape(safe, (-1, 1)), axis=1)  # (N, 1)
    dtype = _float_dtype(xp, y_pred)
    above = xp.sum(xp.astype(y_pred > at_label, dtype), axis=1)
    hit = valid & (above < float(k)) & ~xp.isnan(at_label[:, 0])
    return xp.astype(hit, dtype)


def accuracy(y_true: Array, y_pred: Array) -> Array:
    """Keras's ``"accuracy"``: binary for (N,)/(N, 1) predictions (threshold 0.5), categorical
    when targets have the scores' shape (N, C), sparse categorical for labels (N,)/(N, 1)."""
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        if tuple(y_true.shape) == tuple(y_pred.shape):
            return categorical_accuracy(y_true, y_pred)
        return sparse_categorical_accuracy(y_true, y_pred)
    return binary_accuracy(y_true, y_pred)


def _error(y_true: Array, y_pred: Array, what: str) -> Array:
    xp, _ = namespace_and_device(y_true, y_pred)
    dtype = _float_dtype(xp, y_pred)
    y_true = xp.astype(_aligned(xp, y_true, y_pred, what), dtype)
    return xp.astype(y_pred, dtype) - y_true


def mean_squared_error(y_true: Array, y_pred: Array) -> Array:
    """``mean_j (y_pred[n, j] - y_true[n, j])**2``."""
    diff = _error(y_true, y_pred, "mean_squared_error")
    return _per_sample_mean(namespace_of(diff), diff * diff)


def mean_absolute_error(y_true: Array, y_pred: Array) -> Array:
    """``mean_j |y_pred[n, j] - y_true[n, j]|``."""
    diff = _error(y_true, y_pred, "mean_absolute_error")
    return _per_sample_mean(namespace_of(diff), namespace_of(diff).abs(diff))


__all__ = [
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "mean_absolute_error",
    "mean_squared_error",
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
]
