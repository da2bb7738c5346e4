"""Losses: finite-difference checks, PyTorch equivalence, extreme inputs, bad input, configs.

Tolerances and known failures follow ../shared/RELIABILITY.md: float64 gradient checks, float64
agreement with torch to 1e-10 relative, BCE from logits exact at |x| = 1e4, clipped BCE
saturation (keras#9664, keras#377).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import portable_nn as pnn
from portable_nn import losses

N, C = 4, 3  # every backend test uses these shapes: JAX compiles per shape
REDUCTIONS = ("mean", "sum", "none")
PER_ELEMENT = ("mse", "mae", "huber", "huber-0.5", "bce-logits", "bce-probs")


def _diffs(rng, shape):
    """Differences |d| in [0.15, 2.4], >= 0.1 away from the kinks at 0, 0.5 and 1 (Huber)."""
    magnitude = rng.choice([0.2, 0.3, 0.7, 0.8, 1.2, 1.6, 2.3], size=shape)
    return rng.choice([-1.0, 1.0], size=shape) * (magnitude + rng.uniform(-0.04, 0.04, shape))


def _regression(rng):
    t = rng.normal(size=(N, C))
    return t, t + _diffs(rng, (N, C))


def _binary_logits(rng):
    return rng.uniform(0.0, 1.0, (N, C)), 3.0 * rng.normal(size=(N, C))


def _binary_probabilities(rng):
    return rng.uniform(0.0, 1.0, (N, C)), rng.uniform(0.05, 0.95, (N, C))


def _soft_logits(rng):
    return rng.dirichlet(np.ones(C), size=N), 2.0 * rng.normal(size=(N, C))


def _soft_scores(rng):
    return rng.dirichlet(np.ones(C), size=N), rng.uniform(0.1, 1.0, (N, C))


def _labels_logits(rng):
    return rng.permutation(np.arange(N) % C), 2.0 * rng.normal(size=(N, C))


def _labels_scores(rng):
    return rng.permutation(np.arange(N) % C), rng.uniform(0.1, 1.0, (N, C))


def _torch_reference(case, y_true, y_pred, reduction):
    """Value and d(value summed)/dy_pred from torch autograd in float64."""
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    p = torch.tensor(y_pred, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(y_true)

    def keras_ce(logq):  # Keras' CE with probabilities: normalise rows, then -sum(y log q)
        values = -(t * logq).sum(-1)
        return {"mean": values.mean(), "sum": values.sum(), "none": values}[reduction]

    normalised = lambda: torch.log(p / p.sum(-1, keepdim=True))  # noqa: E731
    reduction_of = None
    if case in PER_ELEMENT and reduction != "mean":  # Keras: mean over the last axis first
        reduction_of, reduction = reduction, "none"
    value = {
        "mse": lambda: tf.mse_loss(p, t, reduction=reduction),
        "mae": lambda: tf.l1_loss(p, t, reduction=reduction),
        "huber": lambda: tf.huber_loss(p, t, reduction=reduction, delta=1.0),
        "huber-0.5": lambda: tf.huber_loss(p, t, reduction=reduction, delta=0.5),
        "bce-logits": lambda: tf.binary_cross_entropy_with_logits(p, t, reduction=reduction),
        "bce-probs": lambda: tf.binary_cross_entropy(p, t, reduction=reduction),
        "cce-logits": lambda: tf.cross_entropy(p, t, reduction=reduction),
        "cce-probs": lambda: keras_ce(normalised()),
        "scce-logits": lambda: tf.cross_entropy(p, t, reduction=reduction),
        "scce-probs": lambda: tf.nll_loss(normalised(), t, reduction=reduction),
    }[case]()
    if reduction_of is not None:
        value = value.mean(-1)
        value = value.sum() if reduction_of == "sum" else value
    value.sum().backward()
    return value.detach().numpy(), p.grad.numpy()


CASES = {  # id -> (loss factory(reduction), data maker)
    "mse": (lambda r: losses.MeanSquaredError(reduction=r), _regression),
    "mae": (lambda r: losses.MeanAbsoluteError(reduction=r), _regression),
    "huber": (lambda r: losses.Huber(reduction=r), _regression),
    "huber-0.5": (lambda r: losses.Huber(0.5, reduction=r), _regression),
    "bce-logits": (
        lambda r: losses.BinaryCrossentropy(from_logits=True, reduction=r),
        _binary_logits,
    ),
    "bce-probs": (lambda r: losses.BinaryCrossentropy(reduction=r), _binary_probabilities),
    "cce-logits": (
        lambda r: losses.CategoricalCrossentropy(from_logits=True, reduction=r),
        _soft_logits,
    ),
    "cce-probs": (lambda r: losses.CategoricalCrossentropy(reduction=r), _soft_scores),
    "scce-logits": (
        lambda r: losses.SparseCategoricalCrossentropy(from_logits=True, reduction=r),
        _labels_logits,
    ),
    "scce-probs": (lambda r: losses.SparseCategoricalCrossentropy(reduction=r), _labels_scores),
}
PARAMS = [(case, r) for case in CASES for r in REDUCTIONS]


def _make(backend, case, reduction, dtype="float64", seed=0):
    factory, data = CASES[case]
    y_true, y_pred = data(np.random.default_rng(seed))
    t_dtype = None if y_true.dtype.kind == "i" else dtype
    return (
        factory(reduction),
        backend.asarray(y_true, t_dtype),
        backend.asarray(y_pred, dtype),
        (y_true, y_pred),
    )


def _value_shape(case, reduction):
    return () if reduction != "none" else (N,)  # one value per sample (Keras)


# -- finite differences --------------------------------------------------------------------------
@pytest.mark.parametrize("case, reduction", PARAMS)
def test_gradcheck(backend, case, reduction):
    loss, y_true, y_pred, _ = _make(backend, case, reduction)
    xp = backend.xp

    def backward(dy, p):
        grad = loss.gradient(y_true, p)  # for "none": row i is d value_i / dp
        return xp.expand_dims(dy, axis=-1) * grad if reduction == "none" else dy * grad

    # 8 of the 12 elements (seeded): enough to catch a wrong formula, cheaper on JAX
    result = pnn.gradcheck(lambda p: loss(y_true, p), y_pred, backward=backward, max_elements=8)
    assert result.ok


# -- PyTorch equivalence, place, dtype -----------------------------------------------------------
@pytest.mark.parametrize("case, reduction", PARAMS)
def test_matches_torch_float64(backend, case, reduction):
    loss, y_true, y_pred, host = _make(backend, case, reduction, seed=1)
    value, grad = loss.value_and_gradient(y_true, y_pred)
    for out, shape in ((value, _value_shape(case, reduction)), (grad, (N, C))):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float64
        assert tuple(out.shape) == shape
    # the one-pass path agrees with the separate calls
    np.testing.assert_allclose(
        backend.to_numpy(loss(y_true, y_pred)), backend.to_numpy(value), rtol=1e-14, atol=1e-15
    )
    np.testing.assert_allclose(
        backend.to_numpy(loss.gradient(y_true, y_pred)), backend.to_numpy(grad), rtol=1e-14
    )
    ref_value, ref_grad = _torch_reference(case, *host, reduction)
    np.testing.assert_allclose(backend.to_numpy(value), ref_value, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(grad), ref_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("case", CASES)
def test_float32_keeps_place_and_dtype(backend, case):
    for reduction in ("mean", "none"):
        loss, y_true, y_pred, host = _make(backend, case, reduction, dtype="float32", seed=2)
        value, grad = loss.value_and_gradient(y_true, y_pred)
        for out, shape in ((value, _value_shape(case, reduction)), (grad, (N, C))):
            backend.assert_same_place(out)
            assert out.dtype == backend.xp.float32
            assert tuple(out.shape) == shape
        ref_value, ref_grad = _torch_reference(case, *host, reduction)
        np.testing.assert_allclose(backend.to_numpy(value), ref_value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(backend.to_numpy(grad), ref_grad, rtol=1e-4, atol=1e-6)


def test_targets_are_cast_to_the_predictions_dtype(backend):
    y_pred = backend.asarray(np.linspace(0.1, 0.9, N * C).reshape(N, C), "float32")
    hard = np.arange(N * C).reshape(N, C) % 2
    expected = None
    for y_true in (
        backend.asarray(hard, "float64"),
        backend.asarray(hard),  # integer 0/1 targets, as Keras allows
        backend.asarray(hard.astype(bool)),
    ):
        value, grad = losses.BinaryCrossentropy().value_and_gradient(y_true, y_pred)
        assert value.dtype == grad.dtype == backend.xp.float32
        expected = expected or float(value)
        assert float(value) == expected


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64"])
def test_sparse_labels_of_any_integer_dtype(backend, dtype):
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    logits = backend.asarray(np.random.default_rng(3).normal(size=(N, C)), "float32")
    labels = np.array([2, 0, 1, 2])
    reference = loss.value_and_gradient(backend.asarray(labels, "int32"), logits)
    value, grad = loss.value_and_gradient(backend.asarray(labels, dtype), logits)
    np.testing.assert_array_equal(backend.to_numpy(value), backend.to_numpy(reference[0]))
    np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(reference[1]))


# -- extreme inputs and known failures -----------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_from_logits_exact_at_extremes(backend, dtype):
    """grad == sigmoid(x) - y exactly: a clipped-probability BCE gives 0 instead of -1 at a
    confidently wrong logit (keras#9664)."""
    x = np.array([[1e4, -1e4, 1e4], [-1e4, 100.0, -100.0], [0.0, 30.0, -30.0], [1e3, -1e3, 5.0]])
    y = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.5, 1.0, 0.0], [0.0, 1.0, 1.0]])
    loss = losses.BinaryCrossentropy(from_logits=True, reduction="none")
    flat = [backend.asarray(a.reshape(-1), dtype) for a in (y, x)]  # 1-D: one value per element
    value, grad = (
        backend.to_numpy(a).astype(float).reshape(N, C) for a in loss.value_and_gradient(*flat)
    )
    np.testing.assert_array_equal(backend.to_numpy(loss.elementwise(*flat)), value.reshape(-1))
    assert np.isfinite(value).all() and np.isfinite(grad).all()
    np.testing.assert_array_equal(grad[:2], [[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])
    np.testing.assert_array_equal(value[:2], [[1e4, 1e4, 0.0], [0.0, 100.0, 100.0]])
    # s(x) - y written as (1 - y) - s(-x) for x >= 0: no cancellation in the reference either
    s_neg = 1.0 / (1.0 + np.exp(np.minimum(x, 700.0)))  # s(-x)
    s_pos = 1.0 / (1.0 + np.exp(np.minimum(-x, 700.0)))  # s(x)
    expected_grad = np.where(x >= 0, (1.0 - y) - s_neg, s_pos - y)
    expected_value = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    rtol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(grad, expected_grad, rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(value, expected_value, rtol=rtol, atol=1e-30)
    mean = losses.BinaryCrossentropy(from_logits=True).gradient(
        backend.asarray(y, dtype), backend.asarray(x, dtype)
    )
    np.testing.assert_allclose(
        backend.to_numpy(mean), expected_grad / (N * C), rtol=rtol, atol=1e-30
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_crossentropy_from_logits_at_extremes(backend, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4], [0.0, 1e3, -1e3]])
    labels = np.array([1, 2, 0, 1])
    sparse = losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    value, grad = sparse.value_and_gradient(backend.asarray(labels), backend.asarray(x, dtype))
    value, grad = backend.to_numpy(value).astype(float), backend.to_numpy(grad).astype(float)
    np.testing.assert_allclose(value, [2e4, np.log(3.0), np.log(2.0), 0.0], rtol=1e-6)
    expected = [[1.0, -1.0, 0.0], [1 / 3, 1 / 3, -2 / 3], [-0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-7)
    dense = losses.CategoricalCrossentropy(from_logits=True, reduction="none")
    onehot = np.eye(C)[labels]
    v2, g2 = dense.value_and_gradient(backend.asarray(onehot, dtype), backend.asarray(x, dtype))
    np.testing.assert_allclose(backend.to_numpy(v2), value, rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(g2), grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_with_saturated_probabilities(backend, dtype):
    """p in {0, 1} exactly: clipping keeps log finite (in float32 1 - 1e-9 == 1, keras#377) and
    a confidently wrong prediction keeps a gradient of the right sign."""
    p = np.array([[1.0, 0.0, 1.0], [0.0, 0.5, 1.0], [0.5, 0.5, 0.5], [0.0, 1.0, 0.2]])
    y = np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.5], [1.0, 0.0, 1.0]])
    for epsilon in (1e-7, 1e-9, 1e-30):
        loss = losses.BinaryCrossentropy(reduction="none", epsilon=epsilon)
        flat = [backend.asarray(a.reshape(-1), dtype) for a in (y, p)]  # one value per element
        value, grad = (
            backend.to_numpy(a).astype(float).reshape(N, C) for a in loss.value_and_gradient(*flat)
        )
        assert np.isfinite(value).all() and np.isfinite(grad).all(), (epsilon, value, grad)
        assert grad[0, 0] > 1e6 and grad[0, 1] < -1e6 and grad[1, 2] > 1e6  # wrong: pushed
        assert value[0, 0] > 15.0 and value[1, 2] > 15.0  # -log(eps) with eps <= 1e-7
        assert abs(value[0, 2]) < 1e-6 and abs(value[1, 0]) < 1e-6  # right: ~0
    default = losses.BinaryCrossentropy()
    value = backend.to_numpy(
        default.elementwise(backend.asarray(y, dtype), backend.asarray(p, dtype))
    )
    # Keras' epsilon: p = 0 -> -log(1e-7); p = 1 -> -log(1 - (1 - 1e-7 rounded to the dtype))
    upper = float(np.asarray(1.0 - 1e-7, dtype=dtype))
    np.testing.assert_allclose(value[0, 1], -np.log(1e-7), rtol=1e-6)
    np.testing.assert_allclose(value[0, 0], -np.log1p(-upper), rtol=1e-6)


def test_crossentropy_probabilities_with_zero_for_the_true_class(backend):
    p = backend.asarray(np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]] * 2), "float32")
    for loss, y in (
        (losses.SparseCategoricalCrossentropy(), backend.asarray(np.array([0, 2, 0, 2]))),
        (losses.CategoricalCrossentropy(), backend.asarray(np.eye(3)[[0, 2, 0, 2]], "float32")),
    ):
        value, grad = loss.value_and_gradient(y, p)
        assert np.isfinite(backend.to_numpy(value)).all()
        assert np.isfinite(backend.to_numpy(grad)).all()
        np.testing.assert_allclose(
            backend.to_numpy(value), (-np.log(1e-7) - np.log(0.5)) / 2, rtol=1e-5
        )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regression_losses_at_extremes(backend, dtype):
    y_pred = backend.asarray(np.array([[1e4, -1e4, 0.0]] * N), dtype)
    y_true = backend.asarray(np.array([[-1e4, 1e4, 1e-30]] * N), dtype)
    for loss in (losses.MeanSquaredError("sum"), losses.MeanAbsoluteError("sum"), losses.Huber()):
        value, grad = loss.value_and_gradient(y_true, y_pred)
        assert np.isfinite(backend.to_numpy(value)) and np.isfinite(backend.to_numpy(grad)).all()
    value = losses.MeanSquaredError("sum")(y_true, y_pred)  # the sum of per-sample means
    np.testing.assert_allclose(backend.to_numpy(value), N * 8e8 / C, rtol=1e-6)


# -- bad input -----------------------------------------------------------------------------------
ALL_LOSSES = [
    losses.MeanSquaredError(),
    losses.MeanAbsoluteError(),
    losses.Huber(),
    losses.BinaryCrossentropy(),
    losses.BinaryCrossentropy(from_logits=True),
    losses.CategoricalCrossentropy(),
    losses.CategoricalCrossentropy(from_logits=True),
]
SPARSE = [
    losses.SparseCategoricalCrossentropy(),
    losses.SparseCategoricalCrossentropy(from_logits=True),
]


def _probs(backend, shape=(N, C)):
    return backend.asarray(np.full(shape, 1.0 / C), "float32")


def test_shape_mismatch_is_never_broadcast(backend):
    y_pred = _probs(backend, (N, 1))
    for loss in ALL_LOSSES:
        for shape, text in (((N,), r"\(4,\)"), ((N, 2), r"\(4, 2\)"), ((1, 1), r"\(1, 1\)")):
            with pytest.raises(ValueError, match=rf"y_true has shape {text}, expected \(4, 1\)"):
                loss(backend.asarray(np.zeros(shape), "float32"), y_pred)
            with pytest.raises(ValueError, match="no broadcasting"):
                loss.gradient(backend.asarray(np.zeros(shape), "float32"), y_pred)


def test_sparse_label_shape_and_dtype(backend):
    for loss in SPARSE:
        with pytest.raises(ValueError, match=r"y_true has shape \(4, 2\), expected \(4,\)"):
            loss(backend.asarray(np.zeros((N, 2), dtype=np.int32)), _probs(backend))
        with pytest.raises(ValueError, match=r"y_true has shape \(2,\), expected \(4,\)"):
            loss(backend.asarray(np.zeros((2, 1), dtype=np.int32)), _probs(backend))
        with pytest.raises(TypeError, match="integer class labels.*float32"):
            loss(backend.asarray(np.zeros(N), "float32"), _probs(backend))
        with pytest.raises(TypeError, match="integer class labels"):
            loss.value_and_gradient(backend.asarray(np.zeros(N, dtype=bool)), _probs(backend))


@pytest.mark.parametrize("bad", [-1, 3, 100])
def test_sparse_labels_out_of_range(backend, bad):
    labels = np.array([0, 2, bad, 1])
    for loss in SPARSE:
        for call in (loss, loss.gradient, loss.value_and_gradient):
            with pytest.raises(ValueError, match=rf"class label {bad} .*position 2.*3 classes"):
                call(backend.asarray(labels), _probs(backend))


def test_uint8_label_out_of_range_is_named(backend):
    labels = backend.asarray(np.array([0, 200, 1, 2], dtype=np.uint8))
    with pytest.raises(ValueError, match="class label 200"):
        losses.SparseCategoricalCrossentropy(from_logits=True)(labels, _probs(backend))


def test_label_dtype_narrower_than_the_classes(backend):
    """int8 labels with 200 classes: only negatives can be out of range; uint8 with 300: none."""
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    logits = np.random.default_rng(0).standard_normal((N, 300))
    with pytest.raises(ValueError, match="class label -1 .*position 1.*200 classes"):
        loss(
            backend.asarray(np.array([0, -1, 5, 127], dtype=np.int8)),
            backend.asarray(logits[:, :200], "float32"),
        )
    labels = np.array([0, 255, 5, 127])
    got = loss(backend.asarray(labels.astype(np.uint8)), backend.asarray(logits, "float32"))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    expected = -np.mean(logp[np.arange(N), labels])
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_targets(backend, bad):
    y_true = np.full((N, C), 0.25)
    y_true[1, 2] = bad
    for loss in ALL_LOSSES:
        for call in (loss, loss.gradient, loss.value_and_gradient):
            with pytest.raises(ValueError, match="y_true contains NaN"):
                call(backend.asarray(y_true, "float32"), _probs(backend))


def test_integer_predictions_are_a_type_error(backend):
    y_pred = backend.asarray(np.ones((N, C), dtype=np.int32))
    for loss in ALL_LOSSES:
        with pytest.raises(TypeError, match="y_pred must be a real floating array.*int32"):
            loss(backend.asarray(np.ones((N, C)), "float32"), y_pred)
    for loss in SPARSE:
        with pytest.raises(TypeError, match="y_pred must be a real floating"):
            loss(backend.asarray(np.zeros(N, dtype=np.int32)), y_pred)


def test_probabilities_out_of_range(backend):
    y_true = backend.asarray(np.eye(C)[[0, 1, 2, 0]], "float32")
    logits = backend.asarray(np.random.default_rng(4).normal(size=(N, C)) * 3.0, "float32")
    for loss in (losses.BinaryCrossentropy(), losses.CategoricalCrossentropy()):
        with pytest.raises(ValueError, match="from_logits=True"):
            loss(y_true, logits)
    with pytest.raises(ValueError, match="from_logits=True"):
        losses.SparseCategoricalCrossentropy()(backend.asarray(np.array([0, 1, 2, 0])), logits)
    zero_row = backend.asarray(np.array([[0.0, 0.0, 0.0], [0.2, 0.3, 0.5]]), "float32")
    with pytest.raises(ValueError, match="positive sum per row"):
        losses.CategoricalCrossentropy()(y_true[:2, ...], zero_row)


def test_check_values_false_skips_only_the_value_checks(backend):
    """For fit/evaluate, which validate the whole data once: no device read-back per batch."""
    loss = losses.MeanSquaredError(reduction="none")
    y_true = np.full((N, C), 0.5)
    y_true[0, 0] = np.nan
    value, grad = loss.value_and_gradient(
        backend.asarray(y_true, "float32"), _probs(backend), check_values=False
    )
    assert np.isnan(backend.to_numpy(value)[0]) and np.isnan(backend.to_numpy(grad)[0, 0])
    sparse = losses.SparseCategoricalCrossentropy(from_logits=True)
    labels = backend.asarray(np.array([0, 1, 2, 0]))
    for check in (True, False):
        expected = sparse.value_and_gradient(labels, _probs(backend))
        got = sparse.value_and_gradient(labels, _probs(backend), check_values=check)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
        assert float(sparse(labels, _probs(backend), check_values=check)) == float(expected[0])
    with pytest.raises(ValueError, match="no broadcasting"):  # shapes are still checked
        loss.gradient(backend.asarray(np.zeros(N), "float32"), _probs(backend), check_values=False)


def test_nan_predictions_are_not_an_input_error(backend):
    """A NaN loss is the training loop's business (TerminateOnNaN), not a ValueError."""
    y_pred = backend.asarray(np.array([[np.nan, 0.5, 0.5]] + [[0.2, 0.3, 0.5]] * 3), "float32")
    y_true = backend.asarray(np.eye(C)[[1, 0, 1, 2]], "float32")
    for loss in ALL_LOSSES:
        assert np.isnan(backend.to_numpy(loss(y_true, y_pred)))


def test_mixed_libraries_or_devices(backend):
    y_pred = _probs(backend)
    if backend.name == "array_api_strict" and backend.device is not None:
        import array_api_strict

        other = array_api_strict.asarray(np.zeros((N, C), dtype=np.float32))  # CPU_DEVICE
        match = "two devices"
    elif backend.name == "numpy":
        import torch

        other, match = torch.zeros((N, C)), "two backends"
    else:
        other, match = np.zeros((N, C), dtype=np.float32), "two backends"
    loss = losses.MeanSquaredError()
    loss(y_pred, y_pred)  # a first good call: the fast path now knows this array type
    with pytest.raises(ValueError, match=match):
        loss(other, y_pred)
    with pytest.raises(ValueError, match=match):
        loss(y_pred, other)


def test_inside_jax_jit(backend):
    """Under ``jax.jit`` the arrays are tracers without ``.device``: the full namespace check
    runs and the traced loss equals the eager one."""
    if backend.name != "jax":
        pytest.skip("jax.jit needs the jax backend")
    import jax

    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    labels = backend.asarray(np.array([2, 0, 1, 2]))
    logits = backend.asarray(np.random.default_rng(5).normal(size=(N, C)), "float32")
    traced = jax.jit(lambda t, p: loss.value_and_gradient(t, p, check_values=False))
    for got, eager in zip(traced(labels, logits), loss.value_and_gradient(labels, logits)):
        np.testing.assert_allclose(backend.to_numpy(got), backend.to_numpy(eager), rtol=1e-6)


def test_non_arrays_and_empty_batches(backend):
    loss = losses.MeanSquaredError()
    with pytest.raises(TypeError, match="y_true must be an array"):
        loss([[0.0, 1.0]], backend.asarray(np.zeros((1, 2)), "float32"))
    with pytest.raises(TypeError, match="y_pred must be an array"):
        loss(backend.asarray(np.zeros((1, 2)), "float32"), 0.5)
    empty = backend.asarray(np.zeros((0, C)), "float32")
    with pytest.raises(ValueError, match="empty"):
        loss(empty, empty)
    with pytest.raises(ValueError, match="empty"):
        SPARSE[1](backend.asarray(np.zeros(0, dtype=np.int32)), empty)


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="reduction must be one of 'mean', .*'sum'.*'avg'"):
        losses.MeanSquaredError(reduction="avg")
    with pytest.raises(ValueError, match="delta must be > 0"):
        losses.Huber(delta=0.0)
    with pytest.raises(TypeError, match="delta must be"):
        losses.Huber(delta="1")
    with pytest.raises(TypeError, match="from_logits must be True or False"):
        losses.BinaryCrossentropy(from_logits="yes")
    with pytest.raises(ValueError, match="epsilon must be in"):
        losses.CategoricalCrossentropy(epsilon=0.0)


# -- get / config --------------------------------------------------------------------------------
def test_get_by_name():
    expected = {
        "mse": losses.MeanSquaredError,
        "mean_squared_error": losses.MeanSquaredError,
        "mae": losses.MeanAbsoluteError,
        "huber": losses.Huber,
        "binary_crossentropy": losses.BinaryCrossentropy,
        "bce": losses.BinaryCrossentropy,
        "categorical_crossentropy": losses.CategoricalCrossentropy,
        "sparse_categorical_crossentropy": losses.SparseCategoricalCrossentropy,
        "SparseCategoricalCrossentropy": losses.SparseCategoricalCrossentropy,
        "MSE": losses.MeanSquaredError,
    }
    for name, cls in expected.items():
        loss = losses.get(name)
        assert type(loss) is cls and loss.reduction == "mean"
    instance = losses.Huber(2.0)
    assert losses.get(instance) is instance
    assert type(losses.get(losses.MeanAbsoluteError)) is losses.MeanAbsoluteError
    with pytest.raises(ValueError, match="unknown loss 'hinges'.*valid names"):
        losses.get("hinges")
    with pytest.raises(TypeError, match="loss must be a name"):
        losses.get(42)
    with pytest.raises(TypeError, match="loss must be a name"):
        losses.get(None)


@pytest.mark.parametrize("case", CASES)
def test_config_round_trip(case):
    for reduction in REDUCTIONS:
        loss = CASES[case][0](reduction)
        text = json.dumps(losses.serialize(loss))  # checkpoints store it as JSON
        rebuilt = losses.get(json.loads(text))
        assert type(rebuilt) is type(loss) and rebuilt == loss and hash(rebuilt) == hash(loss)
        assert rebuilt.get_config() == loss.get_config()
        again = type(loss).from_config(loss.get_config())
        assert again.get_config() == loss.get_config() and repr(again) == repr(loss)
    assert losses.Huber(1.0) != losses.Huber(2.0) and losses.MeanSquaredError() != "mse"
    custom = losses.BinaryCrossentropy(True, "sum", name="bce_sum", epsilon=1e-6)
    assert losses.get(losses.serialize(custom)).get_config() == {
        "name": "bce_sum",
        "reduction": "sum",
        "from_logits": True,
        "label_smoothing": 0.0,
        "epsilon": 1e-6,
    }
    with pytest.raises(ValueError, match="class_name"):
        losses.get({"config": {}})
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get({"class_name": "Nope", "config": {}})


# -- property tests (NumPy) ----------------------------------------------------------------------
_f32 = st.floats(-(2.0**100), 2.0**100, width=32)  # finite float32


@given(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6), elements=_f32),
    st.data(),
)
def test_bce_from_logits_properties(logits, data):
    targets = data.draw(
        hnp.arrays(np.float32, logits.shape, elements=st.floats(0.0, 1.0, width=32))
    )
    loss = losses.BinaryCrossentropy(from_logits=True, reduction="none")
    grad = loss.gradient(targets, logits) * (logits.shape[-1] if logits.ndim == 2 else 1)
    value = loss.elementwise(targets, logits)
    assert value.dtype == grad.dtype == np.float32
    assert np.isfinite(value).all() and (value >= -1e-6 * np.maximum(1.0, np.abs(logits))).all()
    assert np.isfinite(grad).all() and (np.abs(grad) <= 1.0 + 1e-6).all()


@given(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6), elements=_f32),
    st.data(),
)
def test_sparse_crossentropy_from_logits_properties(logits, data):
    labels = data.draw(
        hnp.arrays(np.int64, logits.shape[:1], elements=st.integers(0, logits.shape[1] - 1))
    )
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    value, grad = loss.value_and_gradient(labels, logits)
    assert np.isfinite(value).all() and (value >= 0.0).all()
    assert np.isfinite(grad).all() and (np.abs(grad) <= 1.0).all()
    np.testing.assert_allclose(grad.astype(np.float64).sum(axis=-1), 0.0, atol=1e-5)
