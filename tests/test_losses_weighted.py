"""Sample weights and the Keras reductions on every loss, new and old.

References in PyTorch float64 (per-sample values from ``reduction="none"``, averaged over the
last axis where Keras does, then weighted and reduced by hand; autograd for the gradient), to
1e-10 relative; a written formula where PyTorch has no equal (Keras's hinge losses, focal loss).
"""

from __future__ import annotations

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import losses

N, C, T = 4, 3, 2
REDUCTIONS = ("mean", "sum_over_batch_size", "sum", "none", "mean_with_sample_weight")
WEIGHTS = np.array([0.5, 0.0, 1.7, 1.1])  # a zero weight on purpose


# -- data: (y_true, y_pred) in NumPy float64 (labels int64) ------------------------------------
def _regression(rng):
    t = rng.normal(size=(N, C))
    magnitude = rng.choice([0.2, 0.3, 0.7, 1.2, 1.6, 2.3], size=(N, C))  # away from kinks
    return t, t + rng.choice([-1.0, 1.0], size=(N, C)) * magnitude


def _binary_logits(rng):
    return rng.uniform(0.0, 1.0, (N, C)), 3.0 * rng.normal(size=(N, C))


def _binary_probabilities(rng):
    return rng.uniform(0.0, 1.0, (N, C)), rng.uniform(0.05, 0.95, (N, C))


def _hard_binary_logits(rng):
    return rng.integers(0, 2, (N, C)).astype(float), 2.0 * rng.normal(size=(N, C))


def _soft_logits(rng):
    return rng.dirichlet(np.ones(C), size=N), 2.0 * rng.normal(size=(N, C))


def _soft_scores(rng):
    return rng.dirichlet(np.ones(C), size=N), rng.uniform(0.1, 1.0, (N, C))


def _distributions(rng):
    return rng.dirichlet(2.0 * np.ones(C), size=N), rng.dirichlet(2.0 * np.ones(C), size=N)


def _labels_logits(rng):
    return rng.permutation(np.arange(N) % C), 2.0 * rng.normal(size=(N, C))


def _labels_scores(rng):
    return rng.permutation(np.arange(N) % C), rng.uniform(0.1, 1.0, (N, C))


def _counts(rng):
    return rng.poisson(2.0, (N, C)).astype(float), rng.uniform(0.5, 3.0, (N, C))


def _vectors(rng):
    return rng.normal(size=(N, C)), rng.normal(size=(N, C))


def _signs(rng):
    """Labels in {-1, 1} and predictions with margins 1 - y p at least 0.15 from the kink."""
    y = rng.choice([-1.0, 1.0], (N, C))
    margin = rng.choice([-1.0, 1.0], (N, C)) * rng.uniform(0.15, 2.0, (N, C))
    return y, (1.0 - margin) * y


def _onehot_scores(rng):
    """One-hot targets; the best wrong class leads the runner-up by >= 0.3 (no argmax tie)."""
    labels = np.arange(N) % C
    p = rng.normal(size=(N, C))
    wrong = (1.0 - np.eye(C)[labels]) * p + np.eye(C)[labels] * -9.0
    best = wrong.argmax(-1)
    p[np.arange(N), best] = np.sort(wrong, -1)[:, -2] + 0.3 + rng.uniform(0, 1, N)
    return np.eye(C)[labels], p


def _soft_logits_3d(rng):
    return rng.dirichlet(np.ones(C), size=(N, T)).transpose(0, 2, 1), rng.normal(size=(N, C, T))


def _labels_logits_3d(rng):
    return rng.integers(0, C, (N, T)), rng.normal(size=(N, C, T))


# -- PyTorch per-sample values ---------------------------------------------------------------
def _focal(tf, torch, y, x, from_logits, alpha=None, gamma=2.0):
    """Keras's binary focal crossentropy, written out (torchvision is not a dependency)."""
    p = torch.sigmoid(x) if from_logits else x
    bce = (
        tf.binary_cross_entropy_with_logits(x, y, reduction="none")
        if from_logits
        else tf.binary_cross_entropy(x, y, reduction="none")
    )
    e = (1.0 - (y * p + (1.0 - y) * (1.0 - p))) ** gamma * bce
    return (e if alpha is None else (alpha * y + (1.0 - alpha) * (1.0 - y)) * e).mean(-1)


def _per_sample(case, t, p):
    """Keras's per-sample values from torch (``t``: float or int64 targets, ``p``: float64)."""
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    ls = 0.2
    normalised = lambda: torch.log(p / p.sum(-1, keepdim=True))  # noqa: E731
    return {
        "mse": lambda: tf.mse_loss(p, t, reduction="none").mean(-1),
        "mae": lambda: tf.l1_loss(p, t, reduction="none").mean(-1),
        "huber": lambda: tf.huber_loss(p, t, reduction="none").mean(-1),
        "bce-logits": lambda: tf.binary_cross_entropy_with_logits(p, t, reduction="none").mean(-1),
        "bce-probs": lambda: tf.binary_cross_entropy(p, t, reduction="none").mean(-1),
        "bce-smooth": lambda: tf.binary_cross_entropy_with_logits(
            p, t * (1 - ls) + 0.5 * ls, reduction="none"
        ).mean(-1),
        "cce-logits": lambda: tf.cross_entropy(p, t, reduction="none"),
        "cce-smooth": lambda: tf.cross_entropy(p, t, reduction="none", label_smoothing=ls),
        "cce-probs": lambda: -(t * normalised()).sum(-1),
        "cce-axis1": lambda: tf.cross_entropy(p, t, reduction="none"),  # torch's classes: dim 1
        "scce-logits": lambda: tf.cross_entropy(p, t, reduction="none"),
        "scce-smooth": lambda: tf.cross_entropy(p, t, reduction="none", label_smoothing=ls),
        "scce-ignore": lambda: tf.cross_entropy(p, t, reduction="none", ignore_index=1),
        "scce-probs": lambda: tf.nll_loss(normalised(), t, reduction="none"),
        "scce-axis1": lambda: tf.cross_entropy(p, t, reduction="none"),
        "kld": lambda: tf.kl_div(torch.log(p), t, reduction="none").sum(-1),
        "poisson": lambda: tf.poisson_nll_loss(
            p, t, log_input=False, full=False, eps=1e-7, reduction="none"
        ).mean(-1),
        "poisson-log": lambda: tf.poisson_nll_loss(
            p, t, log_input=True, full=False, reduction="none"
        ).mean(-1),
        "logcosh": lambda: torch.log(torch.cosh(p - t)).mean(-1),
        "cosine": lambda: -tf.cosine_similarity(p, t, dim=-1),
        "hinge": lambda: torch.clamp(1.0 - t * p, min=0.0).mean(-1),
        "hinge-01": lambda: torch.clamp(1.0 - (2.0 * t - 1.0) * p, min=0.0).mean(-1),
        "squared-hinge": lambda: (torch.clamp(1.0 - t * p, min=0.0) ** 2).mean(-1),
        "categorical-hinge": lambda: torch.clamp(
            ((1.0 - t) * p).max(-1).values - (t * p).sum(-1) + 1.0, min=0.0
        ),
        "focal-probs": lambda: _focal(tf, torch, t, p, False),
        "focal-logits": lambda: _focal(
            tf, torch, t * (1 - 0.1) + 0.05, p, True, alpha=0.3, gamma=1.5
        ),
    }[case]()


CASES = {  # id -> (loss factory(reduction), data maker)
    "mse": (lambda r: losses.MeanSquaredError(r), _regression),
    "mae": (lambda r: losses.MeanAbsoluteError(r), _regression),
    "huber": (lambda r: losses.Huber(reduction=r), _regression),
    "bce-logits": (lambda r: losses.BinaryCrossentropy(True, r), _binary_logits),
    "bce-probs": (lambda r: losses.BinaryCrossentropy(False, r), _binary_probabilities),
    "bce-smooth": (
        lambda r: losses.BinaryCrossentropy(True, r, label_smoothing=0.2),
        _hard_binary_logits,
    ),
    "cce-logits": (lambda r: losses.CategoricalCrossentropy(True, r), _soft_logits),
    "cce-smooth": (
        lambda r: losses.CategoricalCrossentropy(True, r, label_smoothing=0.2),
        _soft_logits,
    ),
    "cce-probs": (lambda r: losses.CategoricalCrossentropy(False, r), _soft_scores),
    "cce-axis1": (lambda r: losses.CategoricalCrossentropy(True, r, axis=1), _soft_logits_3d),
    "scce-logits": (lambda r: losses.SparseCategoricalCrossentropy(True, r), _labels_logits),
    "scce-smooth": (
        lambda r: losses.SparseCategoricalCrossentropy(True, r, label_smoothing=0.2),
        _labels_logits,
    ),
    "scce-ignore": (
        lambda r: losses.SparseCategoricalCrossentropy(True, r, ignore_class=1),
        _labels_logits,
    ),
    "scce-probs": (lambda r: losses.SparseCategoricalCrossentropy(False, r), _labels_scores),
    "scce-axis1": (
        lambda r: losses.SparseCategoricalCrossentropy(True, r, axis=-2),
        _labels_logits_3d,
    ),
    "kld": (lambda r: losses.KLDivergence(r), _distributions),
    "poisson": (lambda r: losses.Poisson(r), _counts),
    "poisson-log": (lambda r: losses.Poisson(r, log_input=True), _counts),
    "logcosh": (lambda r: losses.LogCosh(r), _regression),
    "cosine": (lambda r: losses.CosineSimilarity(reduction=r), _vectors),
    "hinge": (lambda r: losses.Hinge(r), _signs),
    "hinge-01": (lambda r: losses.Hinge(r), _hard_binary_logits),
    "squared-hinge": (lambda r: losses.SquaredHinge(r), _signs),
    "categorical-hinge": (lambda r: losses.CategoricalHinge(r), _onehot_scores),
    "focal-probs": (
        lambda r: losses.BinaryFocalCrossentropy(reduction=r),
        _binary_probabilities,
    ),
    "focal-logits": (
        lambda r: losses.BinaryFocalCrossentropy(True, 0.3, 1.5, True, 0.1, r),
        _binary_logits,
    ),
}


def torch_reference(case, y_true, y_pred, reduction, weights=None):
    """``(value, d sum(value) / dy_pred)`` from torch autograd, float64."""
    torch = pytest.importorskip("torch")
    p = torch.tensor(y_pred, dtype=torch.float64, requires_grad=True)
    v = _per_sample(case, torch.tensor(y_true), p)
    w = torch.ones_like(v) if weights is None else torch.tensor(weights)
    w = w.reshape(tuple(w.shape) + (1,) * (v.ndim - w.ndim)).expand_as(v)
    counted = torch.tensor(y_true != 1, dtype=torch.float64) if case == "scce-ignore" else None
    w = w if counted is None else w * counted
    total = (w * v).sum()
    value = {
        "none": lambda: w * v,
        "sum": lambda: total,
        "mean": lambda: total / (v.numel() if counted is None else counted.sum()),
        "mean_with_sample_weight": lambda: total / w.sum(),
    }[reduction if reduction != "sum_over_batch_size" else "mean"]()
    value.sum().backward()
    return value.detach().numpy(), p.grad.numpy()


def make(backend, case, reduction, dtype="float64", seed=0):
    factory, data = CASES[case]
    y_true, y_pred = data(np.random.default_rng(seed))
    t_dtype = None if y_true.dtype.kind == "i" else dtype
    loss = factory(reduction)
    return loss, backend.asarray(y_true, t_dtype), backend.asarray(y_pred, dtype), (y_true, y_pred)


def max_relative_error(got, expected):
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    scale = np.maximum(np.abs(expected), 1e-300)
    return float(np.max(np.where(got == expected, 0.0, np.abs(got - expected) / scale)))


# -- equality with PyTorch -------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_weighted_matches_torch_float64(backend, case):
    """Every reduction, with and without weights: value and gradient to 1e-10 relative."""
    for reduction in REDUCTIONS:
        for weights in (WEIGHTS, None):
            loss, y_true, y_pred, host = make(backend, case, reduction, seed=1)
            w = None if weights is None else backend.asarray(weights, "float64")
            value, grad = loss.value_and_gradient(y_true, y_pred, w)
            expected_shape = (N, T) if "axis1" in case else (N,)
            assert tuple(value.shape) == (expected_shape if reduction == "none" else ())
            backend.assert_same_place(value)
            backend.assert_same_place(grad)
            assert value.dtype == grad.dtype == backend.xp.float64
            np.testing.assert_array_equal(
                backend.to_numpy(loss(y_true, y_pred, w)), backend.to_numpy(value)
            )
            ref_value, ref_grad = torch_reference(case, *host, reduction, weights)
            np.testing.assert_allclose(backend.to_numpy(value), ref_value, rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(backend.to_numpy(grad), ref_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("case", ["mse", "bce-logits", "scce-ignore", "kld", "focal-logits"])
def test_weighted_gradcheck(backend, case):
    """Finite differences of the weighted losses, float64."""
    for reduction in ("sum", "mean_with_sample_weight", "mean"):
        loss, y_true, y_pred, _ = make(backend, case, reduction)
        w = backend.asarray(WEIGHTS + 0.25, "float64")
        result = pnn.gradcheck(
            lambda p: loss(y_true, p, w),  # noqa: B023
            y_pred,
            backward=lambda dy, p: dy * loss.gradient(y_true, p, w),  # noqa: B023
            max_elements=6,
        )
        assert result.ok, (case, reduction)


def test_float32_weighted_keeps_dtype_and_place(backend):
    loss, y_true, y_pred, host = make(backend, "cce-logits", "mean", dtype="float32")
    for w in (WEIGHTS, WEIGHTS.astype(np.int64) + 1, WEIGHTS > 0.4):  # float, integer, bool
        value, grad = loss.value_and_gradient(y_true, y_pred, backend.asarray(w))
        assert value.dtype == grad.dtype == backend.xp.float32
        backend.assert_same_place(value)
        ref_value, ref_grad = torch_reference("cce-logits", *host, "mean", w.astype(float))
        np.testing.assert_allclose(backend.to_numpy(value), ref_value, rtol=1e-5)
        np.testing.assert_allclose(backend.to_numpy(grad), ref_grad, rtol=1e-4, atol=1e-7)


# -- semantics -------------------------------------------------------------------------------
def test_mean_of_a_2d_mse_is_unchanged(backend):
    """Keras's mean of per-sample means equals the old mean over elements (rows of one width)."""
    rng = np.random.default_rng(7)
    t, p = rng.normal(size=(N, C)), rng.normal(size=(N, C))
    for dtype, rtol in (("float64", 1e-14), ("float32", 1e-6)):
        value, grad = losses.MeanSquaredError().value_and_gradient(
            backend.asarray(t, dtype), backend.asarray(p, dtype)
        )
        np.testing.assert_allclose(float(value), np.mean((p - t) ** 2), rtol=rtol)
        np.testing.assert_allclose(backend.to_numpy(grad), 2 * (p - t) / (N * C), rtol=rtol)


def test_none_and_sum_are_per_sample(backend):
    rng = np.random.default_rng(8)
    t, p = rng.normal(size=(N, C)), rng.normal(size=(N, C))
    args = backend.asarray(t, "float64"), backend.asarray(p, "float64")
    mse = losses.MeanSquaredError
    np.testing.assert_allclose(
        backend.to_numpy(mse("none")(*args)), ((p - t) ** 2).mean(-1), rtol=1e-14
    )
    np.testing.assert_allclose(float(mse("sum")(*args)), ((p - t) ** 2).mean(-1).sum(), rtol=1e-14)
    elementwise = backend.to_numpy(mse().elementwise(*args))
    np.testing.assert_allclose(elementwise, (p - t) ** 2, rtol=1e-14)
    one_d = [backend.asarray(a[:, 0], "float64") for a in (t, p)]  # (batch,): one per element
    np.testing.assert_allclose(
        backend.to_numpy(mse("none")(*one_d)), (p[:, 0] - t[:, 0]) ** 2, rtol=1e-14
    )


def test_weight_shapes(backend):
    """(N,) == (N, 1); a 0-d weight scales; (N, T) weights line up with (N, T, C) targets."""
    rng = np.random.default_rng(9)
    t, p = rng.normal(size=(N, T, C)), rng.normal(size=(N, T, C))
    args = backend.asarray(t, "float64"), backend.asarray(p, "float64")
    per_sample = ((p - t) ** 2).mean(-1)  # (N, T)
    for reduction in REDUCTIONS:
        loss = losses.MeanSquaredError(reduction)
        by_sample = loss.value_and_gradient(*args, backend.asarray(WEIGHTS, "float64"))
        column = loss.value_and_gradient(*args, backend.asarray(WEIGHTS[:, None], "float64"))
        for a, b in zip(by_sample, column):
            np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
        steps = rng.uniform(0.0, 2.0, (N, T))
        value = loss(*args, backend.asarray(steps, "float64"))
        total = (steps * per_sample).sum()
        expected = {
            "none": steps * per_sample,
            "sum": total,
            "mean": total / (N * T),
            "sum_over_batch_size": total / (N * T),
            "mean_with_sample_weight": total / steps.sum(),
        }[reduction]
        np.testing.assert_allclose(backend.to_numpy(value), expected, rtol=1e-13)
    scalar = losses.MeanSquaredError("sum")(*args, backend.asarray(2.5, "float64"))
    np.testing.assert_allclose(float(scalar), 2.5 * per_sample.sum(), rtol=1e-13)


def test_none_weights_equal_ones(backend):
    for case in ("mse", "scce-ignore", "cosine"):
        for reduction in REDUCTIONS:
            loss, y_true, y_pred, _ = make(backend, case, reduction)
            ones = backend.asarray(np.ones(N), "float64")
            for a, b in zip(
                loss.value_and_gradient(y_true, y_pred),
                loss.value_and_gradient(y_true, y_pred, ones),
            ):
                np.testing.assert_allclose(backend.to_numpy(a), backend.to_numpy(b), rtol=1e-15)


def test_all_zero_weights_and_all_ignored(backend):
    """``mean_with_sample_weight`` with weights summing to 0, or ``ignore_class`` ignoring
    every sample: loss 0 and gradient 0 (Keras's divide_no_nan), never NaN."""
    loss, y_true, y_pred, _ = make(backend, "mse", "mean_with_sample_weight")
    value, grad = loss.value_and_gradient(y_true, y_pred, backend.asarray(np.zeros(N)))
    assert float(value) == 0.0 and not np.any(backend.to_numpy(grad))
    for reduction in ("mean", "mean_with_sample_weight", "sum"):
        ignore = losses.SparseCategoricalCrossentropy(True, reduction, ignore_class=2)
        labels = backend.asarray(np.full(N, 2))
        value, grad = ignore.value_and_gradient(labels, y_pred)
        assert float(value) == 0.0 and not np.any(backend.to_numpy(grad))


def test_inside_jax_jit_without_a_host_read(backend):
    """``check_values=False`` with weights traces under ``jax.jit`` (a host read would fail
    on a tracer): the training step's path never syncs."""
    if backend.name != "jax":
        pytest.skip("jax.jit needs the jax backend")
    import jax

    for case in ("scce-ignore", "mse", "focal-logits"):
        for reduction in REDUCTIONS:
            loss, y_true, y_pred, _ = make(backend, case, reduction)
            w = backend.asarray(WEIGHTS)
            step = jax.jit(lambda t, p, w: loss.value_and_gradient(t, p, w, check_values=False))  # noqa: B023
            for got, eager in zip(
                step(y_true, y_pred, w), loss.value_and_gradient(y_true, y_pred, w)
            ):
                np.testing.assert_allclose(
                    backend.to_numpy(got), backend.to_numpy(eager), rtol=1e-12
                )


# -- bad weights -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "weights, message",
    [
        (np.array([1.0, -0.5, 1.0, 1.0]), r"sample_weight contains negative values \(minimum -0.5"),
        (np.array([1.0, np.nan, 1.0, 1.0]), "sample_weight contains NaN or infinite"),
        (np.array([1.0, np.inf, 1.0, 1.0]), "sample_weight contains NaN or infinite"),
        (np.array([1, -2, 0, 1]), r"negative values \(minimum -2"),
        (np.ones(3), r"sample_weight has shape \(3,\), expected \(4,\)"),
        (np.ones(5), r"sample_weight has shape \(5,\), expected \(4,\)"),
        (np.ones((N, 2)), r"sample_weight has shape \(4, 2\)"),
        (np.ones((1,)), r"sample_weight has shape \(1,\)"),
        (np.ones((N, 1, 1)), r"sample_weight has shape \(4, 1, 1\)"),
    ],
)
def test_bad_weights_raise_and_change_nothing(backend, weights, message):
    for case in ("mse", "scce-logits", "kld"):
        loss, y_true, y_pred, host = make(backend, case, "mean")
        w = backend.asarray(weights)
        for call in (loss, loss.gradient, loss.value_and_gradient):
            with pytest.raises(ValueError, match=message):
                call(y_true, y_pred, w)
        for array, original in zip((y_true, y_pred, w), (*host, weights)):
            np.testing.assert_array_equal(backend.to_numpy(array), original)


def test_value_checks_on_weights_are_skippable(backend):
    """``check_values=False`` skips the (syncing) sign/NaN checks, never the shape check."""
    loss, y_true, y_pred, _ = make(backend, "mse", "sum")
    value = loss(y_true, y_pred, backend.asarray(-np.ones(N)), check_values=False)
    assert float(value) < 0.0
    with pytest.raises(ValueError, match="sample_weight has shape"):
        loss(y_true, y_pred, backend.asarray(np.ones(3)), check_values=False)


def test_weights_of_another_kind(backend):
    loss, y_true, y_pred, _ = make(backend, "mse", "mean")
    with pytest.raises(TypeError, match="sample_weight must be an array"):
        loss(y_true, y_pred, [1.0, 1.0, 1.0, 1.0])
    if backend.name == "numpy":
        with pytest.raises(TypeError, match="sample_weight must be a real"):
            loss(y_true, y_pred, np.ones(N) + 1j)
        torch = pytest.importorskip("torch")
        with pytest.raises(ValueError, match="two backends"):
            loss(y_true, y_pred, torch.ones(N, dtype=torch.float64))


def test_reduction_names():
    for reduction in REDUCTIONS:
        loss = losses.get({"class_name": "MeanSquaredError", "config": {"reduction": reduction}})
        assert loss.reduction == reduction
    with pytest.raises(ValueError, match="reduction must be one of.*mean_with_sample_weight"):
        losses.Huber(reduction="weighted_mean")
