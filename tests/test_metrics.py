"""Metrics on every backend: values against NumPy references, ties, shapes, no host reads."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import metrics

RNG = np.random.default_rng(7)
N, C = 12, 5


def _scores_with_ties() -> np.ndarray:
    """(N, C) float scores on a coarse grid (many ties), with some fully tied rows."""
    scores = RNG.integers(0, 4, size=(N, C)).astype(np.float64) / 4.0
    scores[0] = 0.5  # every class tied
    scores[1, :3] = 1.0  # three-way tie for the max
    return scores


def _labels() -> np.ndarray:
    labels = RNG.integers(0, C, size=N)
    labels[0], labels[1] = 3, 2
    return labels


@contextlib.contextmanager
def _no_device_reads(backend) -> Iterator[None]:
    """Fail on any device -> host read-back inside the block: torch tensors refuse
    ``float/int/bool/item/tolist/numpy``; JAX's transfer guard does the same on accelerators."""
    with contextlib.ExitStack() as stack:
        if backend.name == "torch":
            import torch

            def refuse(*args, **kwargs):
                raise AssertionError("a metric read a device value back to the host")

            mp = stack.enter_context(pytest.MonkeyPatch.context())
            for name in ("__float__", "__int__", "__bool__", "item", "tolist", "numpy"):
                mp.setattr(torch.Tensor, name, refuse)
        if backend.name == "jax":
            import jax

            stack.enter_context(jax.transfer_guard_device_to_host("disallow"))
        yield


def _check(backend, metric, y_true, y_pred, per_sample_ref, dtype="float32") -> None:
    """batch_value is the SUM (0-d, same place), __call__ the mean, both vs the reference."""
    t, p = backend.asarray(y_true), backend.asarray(y_pred, dtype)
    with _no_device_reads(backend):
        total, mean = metric.batch_value(t, p), metric(t, p)
    for value in (total, mean):
        assert value.ndim == 0
        backend.assert_same_place(value)
        assert value.dtype == getattr(backend.xp, dtype)
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(backend.to_numpy(total), per_sample_ref.sum(), rtol=tol, atol=tol)
    np.testing.assert_allclose(backend.to_numpy(mean), per_sample_ref.mean(), rtol=tol, atol=tol)


# -- accuracies ---------------------------------------------------------------------------------
@pytest.mark.parametrize("label_shape", ["flat", "column", "float"])
def test_sparse_categorical_accuracy_with_ties(backend, label_shape) -> None:
    scores, labels = _scores_with_ties(), _labels()
    ref = (np.argmax(scores, axis=1) == labels).astype(float)  # first maximal class wins
    y_true = {"flat": labels, "column": labels[:, None], "float": labels.astype(np.float32)}
    _check(backend, metrics.get("sparse_categorical_accuracy"), y_true[label_shape], scores, ref)
    _check(backend, metrics.get("acc"), y_true[label_shape], scores, ref)


def test_categorical_accuracy_one_hot_matches_sparse(backend) -> None:
    scores, labels = _scores_with_ties(), _labels()
    one_hot = np.eye(C)[labels]
    ref = (np.argmax(scores, axis=1) == labels).astype(float)
    _check(backend, metrics.get("categorical_accuracy"), one_hot, scores, ref)
    _check(backend, metrics.get("accuracy"), one_hot.astype(np.float32), scores, ref)


@pytest.mark.parametrize("threshold", [0.5, 0.7])
@pytest.mark.parametrize("target_shape", ["flat", "column", "bool"])
def test_binary_accuracy_thresholds(backend, threshold, target_shape) -> None:
    probs = np.array([0.1, 0.5, 0.5000001, 0.7, 0.71, 0.9, 0.3, 0.69])[:, None]
    targets = np.array([0, 1, 1, 1, 1, 0, 0, 1])
    ref = ((probs[:, 0] > threshold) == targets).astype(float)  # strictly above, as Keras
    y_true = {"flat": targets, "column": targets[:, None], "bool": targets.astype(bool)}
    metric = metrics.BinaryAccuracy(threshold=threshold)
    _check(backend, metric, y_true[target_shape], probs, ref)
    if threshold == 0.5:
        _check(backend, metrics.get("accuracy"), y_true[target_shape], probs, ref)


def test_binary_accuracy_multi_label_averages_per_sample(backend) -> None:
    probs = RNG.uniform(size=(N, 3))
    targets = RNG.integers(0, 2, size=(N, 3)).astype(np.float32)
    ref = ((probs > 0.5) == targets).mean(axis=1)
    _check(backend, metrics.get("binary_accuracy"), targets, probs, ref, dtype="float64")


def _in_top_k_reference(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Keras/TF ``in_top_k``: fewer than k classes score strictly above the label's score."""
    at_label = scores[np.arange(len(labels)), labels]
    return ((scores > at_label[:, None]).sum(axis=1) < k).astype(float)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
def test_top_k_accuracy_matches_in_top_k_with_ties(backend, k) -> None:
    scores, labels = _scores_with_ties(), _labels()
    ref = _in_top_k_reference(scores, labels, k)
    _check(backend, metrics.TopKAccuracy(k=k), labels, scores, ref)
    _check(backend, metrics.TopKAccuracy(k=k), labels[:, None], scores, ref)


def test_top_k_accuracy_without_ties_matches_sorting(backend) -> None:
    scores = RNG.permuted(np.tile(np.arange(C, dtype=float), (N, 1)), axis=1)
    labels = _labels()
    top2 = np.argsort(-scores, axis=1)[:, :2]
    ref = (top2 == labels[:, None]).any(axis=1).astype(float)
    _check(backend, metrics.TopKAccuracy(k=2), labels, scores, ref)


def test_top_k_tie_rule_and_bad_labels(backend) -> None:
    """A label tied with better-ranked classes is in the top k; NaN or out-of-range misses."""
    scores = np.array([[0.5, 0.5, 0.5, 0.1], [0.9, 0.2, 0.2, 0.2], [0.1, np.nan, 0.3, 0.2]])
    scores = np.concatenate([scores, [[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]]])
    labels = np.array([2, 3, 1, -1, 4])
    _check(backend, metrics.TopKAccuracy(k=1), labels, scores, np.array([1.0, 0, 0, 0, 0]))
    _check(backend, metrics.TopKAccuracy(k=2), labels, scores, np.array([1.0, 1, 0, 0, 0]))


# -- regression ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mse", "mean_squared_error", "mae", "mean_absolute_error"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regression_metrics(backend, name, dtype) -> None:
    y_true, y_pred = RNG.normal(size=(N, 3)), RNG.normal(size=(N, 3))
    diff = y_pred.astype(dtype).astype(float) - y_true.astype(dtype).astype(float)
    absolute = name in ("mae", "mean_absolute_error")
    ref = (np.abs(diff) if absolute else diff**2).mean(axis=1)
    metric = metrics.get(name)
    assert metric.name == name
    _check(backend, metric, y_true.astype(dtype), y_pred, ref, dtype=dtype)


def test_regression_flat_targets_against_column_predictions(backend) -> None:
    y_true, y_pred = RNG.normal(size=N), RNG.normal(size=(N, 1))
    ref = (y_pred[:, 0] - y_true) ** 2
    _check(backend, metrics.get("mse"), y_true, y_pred, ref, dtype="float64")
    ref = np.abs(y_pred[:, 0] - y_true)
    _check(backend, metrics.get("mae"), y_true, y_pred, ref, dtype="float64")


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "t_shape", "p_shape"),
    [
        ("mse", (4, 3), (4, 2)),
        ("mse", (4,), (4, 2)),
        ("binary_accuracy", (4, 2), (4, 1)),
        ("categorical_accuracy", (4, 3), (4, 2)),
        ("sparse_categorical_accuracy", (5,), (4, 3)),
        ("sparse_categorical_accuracy", (4, 2), (4, 3)),
        ("top_k_accuracy", (4,), (4,)),
        ("accuracy", (3,), (4, 3)),
    ],
)
def test_shape_mismatch_names_both_shapes(backend, name, t_shape, p_shape) -> None:
    t, p = backend.asarray(np.zeros(t_shape)), backend.asarray(np.zeros(p_shape))
    pattern = re.escape(str(t_shape)) + ".*" + re.escape(str(p_shape))
    with pytest.raises(ValueError, match=pattern):
        metrics.get(name).batch_value(t, p)


def test_mixed_backends_and_bool_labels_raise(backend) -> None:
    p = backend.asarray(np.zeros((3, 2)))
    if backend.name != "numpy":
        with pytest.raises(ValueError, match="two backends"):
            metrics.get("mse")(np.zeros((3, 2)), p)
    with pytest.raises(TypeError, match="bool"):
        metrics.get("sparse_categorical_accuracy")(backend.asarray(np.ones(3, bool)), p)


# -- get / config -------------------------------------------------------------------------------
def test_get_names_instances_functions() -> None:
    assert isinstance(metrics.get("acc"), metrics.Accuracy)
    assert metrics.get("acc").name == "acc"
    assert metrics.get("top_k_accuracy").k == 5
    assert metrics.get("binary_accuracy").threshold == 0.5
    instance = metrics.BinaryAccuracy(0.3)
    assert metrics.get(instance) is instance
    assert isinstance(metrics.get(metrics.mean_squared_error), metrics.MeanSquaredError)
    assert isinstance(metrics.get(metrics.CategoricalAccuracy), metrics.CategoricalAccuracy)
    with pytest.raises(ValueError, match="unknown metric 'accurcy'.*accuracy"):
        metrics.get("accurcy")
    with pytest.raises(TypeError, match="Received: 3"):
        metrics.get(3)


@pytest.mark.parametrize(
    "metric",
    [
        metrics.Accuracy(),
        metrics.SparseCategoricalAccuracy(name="sca"),
        metrics.CategoricalAccuracy(),
        metrics.BinaryAccuracy(threshold=0.25, name="b"),
        metrics.TopKAccuracy(k=3),
        metrics.MeanSquaredError(),
        metrics.MeanAbsoluteError(name="l1"),
    ],
)
def test_config_round_trip(metric) -> None:
    import json

    rebuilt = type(metric).from_config(json.loads(json.dumps(metric.get_config())))
    assert type(rebuilt) is type(metric) and rebuilt.get_config() == metric.get_config()
    again = metrics.deserialize(json.loads(json.dumps(metrics.serialize(metric))))
    assert type(again) is type(metric) and again.get_config() == metric.get_config()
    assert metrics.get(metrics.serialize(metric)).name == metric.name


def test_constructor_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="k=0"):
        metrics.TopKAccuracy(k=0)
    with pytest.raises(ValueError, match="k=2.5"):
        metrics.TopKAccuracy(k=2.5)
    with pytest.raises(ValueError, match="threshold=nan"):
        metrics.BinaryAccuracy(threshold=float("nan"))
    with pytest.raises(TypeError, match="threshold='0.5'"):
        metrics.BinaryAccuracy(threshold="0.5")
    with pytest.raises(TypeError, match="name=''"):
        metrics.Accuracy(name="")
    with pytest.raises(ValueError, match="unknown metric class 'Nope'"):
        metrics.deserialize({"class_name": "Nope", "config": {}})


# -- custom functions ---------------------------------------------------------------------------
def test_custom_function_per_sample_and_scalar(backend) -> None:
    def squared_log_error(y_true, y_pred):
        xp = backend.xp
        d = xp.log1p(y_pred) - xp.log1p(y_true)
        return xp.mean(d * d, axis=1)

    def batch_max(y_true, y_pred):
        return backend.xp.max(y_pred - y_true)

    y_true, y_pred = RNG.uniform(size=(N, 2)), RNG.uniform(size=(N, 2))
    ref = ((np.log1p(y_pred) - np.log1p(y_true)) ** 2).mean(axis=1)
    metric = metrics.get(squared_log_error)
    assert metric.name == "squared_log_error"
    _check(backend, metric, y_true, y_pred, ref, dtype="float64")
    scalar = metrics.get(batch_max)  # a 0-d result is a batch mean: the sum is N times it
    _check(backend, scalar, y_true, y_pred, np.full(N, (y_pred - y_true).max()), dtype="float64")
    with pytest.raises(ValueError, match="cannot rebuild"):
        metrics.deserialize(metrics.serialize(metric))
    rebuilt = metrics.deserialize(
        metrics.serialize(metric), custom_objects={"squared_log_error": squared_log_error}
    )
    assert rebuilt.user_fn is squared_log_error and rebuilt.name == metric.name


def test_custom_function_with_wrong_length_raises(backend) -> None:
    metric = metrics.get(lambda t, p: p[:2, 0])
    with pytest.raises(ValueError, match="returned 2 values for a batch of 3"):
        metric.batch_value(backend.asarray(np.zeros((3, 1))), backend.asarray(np.zeros((3, 1))))


def test_exported_from_package() -> None:
    assert pnn.metrics.get is metrics.get


# -- state and sample weights (Keras's protocol) ------------------------------------------------
@pytest.mark.parametrize(
    "name", ["sparse_categorical_accuracy", "mse", "mae", "top_k_accuracy", "custom"]
)
def test_update_state_accumulates_weighted_means(backend, name) -> None:
    """Three batches through update_state (weights, none, all zero) give
    ``sum w v / sum w`` over everything, on the device, no host read; reset starts over."""
    scores, labels = RNG.uniform(size=(N, C)), _labels()
    weights = RNG.uniform(0.0, 2.0, N)
    if name == "custom":
        metric = metrics.get(lambda t, p: backend.xp.mean(p, axis=1))
        targets, per_sample = labels, scores.mean(axis=1)
    elif name in ("mse", "mae"):
        metric, targets = metrics.get(name), RNG.uniform(size=(N, C))
        error = scores - targets
        per_sample = (error**2 if name == "mse" else np.abs(error)).mean(axis=1)
    else:
        metric, targets = metrics.get(name), labels
        per_sample = metrics.get(name).per_sample(labels, scores)  # checked above vs NumPy
    cuts = [(0, 5, weights[:5]), (5, 9, None), (9, N, np.zeros(N - 9))]
    with _no_device_reads(backend):
        for a, b, w in cuts:
            sw = None if w is None else backend.asarray(w, "float64")
            t = backend.asarray(targets[a:b])
            metric.update_state(t, backend.asarray(scores[a:b], "float64"), sample_weight=sw)
        found = metric.result()
    backend.assert_same_place(found)
    used = np.concatenate([weights[:5], np.ones(4), np.zeros(N - 9)])
    expected = (used * np.asarray(per_sample)).sum() / used.sum()
    np.testing.assert_allclose(backend.to_numpy(found), expected, rtol=1e-12)
    metric.reset_state()
    assert metric.result() == 0.0


def test_weighted_call_and_zero_weights(backend) -> None:
    """``metric(y, p, sample_weight)`` is the weighted batch mean (state untouched); all-zero
    weights give 0, never NaN (Keras's divide_no_nan); (N, 1) weights are accepted."""
    metric = metrics.get("binary_accuracy")
    y, p = np.array([1, 0, 1, 1]), np.array([0.9, 0.2, 0.4, 0.8])
    t, s = backend.asarray(y), backend.asarray(p, "float32")
    w = backend.asarray(np.array([[1.0], [3.0], [2.0], [0.0]]), "float32")
    np.testing.assert_allclose(backend.to_numpy(metric(t, s, sample_weight=w)), 4.0 / 6.0)
    zero = backend.asarray(np.zeros(4), "float32")
    assert float(backend.to_numpy(metric(t, s, sample_weight=zero))) == 0.0
    assert metric.total is None  # __call__ leaves the state alone
    metric.update_state(t, s, sample_weight=zero)
    assert float(backend.to_numpy(metric.result())) == 0.0


def test_binary_accuracy_on_integer_and_bool_predictions(backend) -> None:
    """Hard predictions (integers or booleans) are thresholded like probabilities on every
    backend (array-api-strict refuses to compare an integer array with a float)."""
    y = backend.asarray(np.array([1, 0, 1, 1]))
    for predictions in (np.array([1, 0, 0, 1]), np.array([True, False, False, True])):
        found = metrics.get("binary_accuracy")(y, backend.asarray(predictions))
        assert float(backend.to_numpy(found)) == 0.75


def test_bad_sample_weights_raise(backend) -> None:
    metric = metrics.get("mae")
    t, p = backend.asarray(np.zeros((4, 2)), "float32"), backend.asarray(np.ones((4, 2)), "float32")
    for bad in (np.ones(3), np.ones((4, 2))):
        with pytest.raises(ValueError, match=r"sample_weight must have shape \(4,\)"):
            metric.update_state(t, p, sample_weight=backend.asarray(bad, "float32"))
    assert metric.total is None and metric.count is None  # nothing was added
