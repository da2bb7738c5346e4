"""The new losses and options: finite differences, extremes, argument checks, names, configs and
``compile(loss=name)`` on every backend (PyTorch equality: tests/test_losses_weighted.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_losses_weighted import CASES, C, N, make

import portable_nn as pnn
from portable_nn import losses
from portable_nn.layers import Dense

NEW = [
    "kld",
    "poisson",
    "poisson-log",
    "logcosh",
    "cosine",
    "hinge",
    "hinge-01",
    "squared-hinge",
    "categorical-hinge",
    "focal-probs",
    "focal-logits",
    "bce-smooth",
    "cce-smooth",
    "cce-axis1",
    "scce-smooth",
    "scce-ignore",
    "scce-axis1",
]


@pytest.mark.parametrize("case", NEW)
def test_gradcheck(backend, case):
    """float64 finite differences for ``"mean"`` and per sample (``"none"``: the vector-Jacobian
    product is ``gradient`` with the cotangent as ``sample_weight``, i.e. ``d sum(dy v) / dp``)."""
    for reduction in ("mean", "none"):
        loss, y_true, y_pred, _ = make(backend, case, reduction)

        def backward(dy, p, reduction=reduction):
            if reduction == "mean":
                return dy * loss.gradient(y_true, p)  # noqa: B023
            return loss.gradient(y_true, p, dy, check_values=False)  # noqa: B023

        result = pnn.gradcheck(lambda p: loss(y_true, p), y_pred, backward=backward, max_elements=8)  # noqa: B023
        assert result.ok, (case, reduction)


def test_every_case_is_covered():
    assert set(NEW) <= set(CASES)


# -- extremes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_cosh_is_stable_for_large_errors(backend, dtype):
    d = np.array([1e4, -1e4, 700.0, -800.0, 30.0, 0.0, 1e-4, -2.0])
    loss = losses.LogCosh(reduction="none")
    zeros = backend.asarray(np.zeros_like(d), dtype)
    value, grad = loss.value_and_gradient(zeros, backend.asarray(d, dtype))
    value, grad = backend.to_numpy(value).astype(float), backend.to_numpy(grad).astype(float)
    a = np.abs(d)
    series = a**2 / 2 - a**4 / 12 + a**6 / 45  # log cosh near 0, exact to float64 below 1e-2
    expected = np.where(a < 1e-2, series, np.logaddexp(a, -a) - np.log(2.0))
    rtol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=1e-30)  # 5e-9 at d = 1e-4
    np.testing.assert_allclose(grad, np.tanh(d), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_focal_from_logits_at_extremes(backend, dtype):
    x = np.array([[1e4, -1e4, 1e4], [-1e4, 100.0, -100.0], [0.0, 30.0, -30.0], [1e3, -1e3, 5.0]])
    y = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.5, 1.0, 0.0], [0.0, 1.0, 1.0]])
    for gamma in (0.0, 0.5, 2.0):
        loss = losses.BinaryFocalCrossentropy(True, 0.25, gamma, from_logits=True)
        value, grad = loss.value_and_gradient(backend.asarray(y, dtype), backend.asarray(x, dtype))
        value, grad = backend.to_numpy(value).astype(float), backend.to_numpy(grad).astype(float)
        assert np.isfinite(value).all() and np.isfinite(grad).all(), gamma
        assert grad[0, 0] > 0.0 and grad[0, 1] < 0.0  # confidently wrong: still pushed


def test_focal_with_gamma_0_is_bce(backend):
    for from_logits, data in ((True, "focal-logits"), (False, "focal-probs")):
        _, y_true, y_pred, _ = make(backend, data, "mean")
        focal = losses.BinaryFocalCrossentropy(gamma=0.0, from_logits=from_logits)
        bce = losses.BinaryCrossentropy(from_logits=from_logits)
        for a, b in zip(
            focal.value_and_gradient(y_true, y_pred), bce.value_and_gradient(y_true, y_pred)
        ):
            np.testing.assert_allclose(backend.to_numpy(a), backend.to_numpy(b), rtol=1e-13)


def test_cosine_and_kl_at_zero(backend):
    t = backend.asarray(np.array([[1.0, 0.0, 0.0]] * N), "float32")
    zero = backend.asarray(np.zeros((N, C)), "float32")
    for loss in (losses.CosineSimilarity(), losses.KLDivergence()):
        for a, b in ((t, zero), (zero, t)):
            value, grad = loss.value_and_gradient(a, b)
            assert (
                np.isfinite(backend.to_numpy(value)) and np.isfinite(backend.to_numpy(grad)).all()
            )
    assert float(losses.CosineSimilarity()(t, zero)) == 0.0  # Keras: 0 when one vector is 0
    np.testing.assert_allclose(float(losses.CosineSimilarity()(t, 3.0 * t)), -1.0, rtol=1e-6)


# -- options -----------------------------------------------------------------------------------
def test_sparse_labels_of_shape_n_1(backend):
    for case in ("scce-logits", "scce-probs", "scce-ignore"):
        loss, labels, y_pred, host = make(backend, case, "none")
        column = backend.asarray(host[0][:, None])
        for a, b in zip(
            loss.value_and_gradient(column, y_pred), loss.value_and_gradient(labels, y_pred)
        ):
            np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))


def test_ignore_class_outside_the_classes(backend):
    """ignore_class=-1 (or 255 for uint8 labels) is never range-checked and counts for nothing:
    the mean equals the loss of the kept samples alone."""
    _, _, logits, host = make(backend, "scce-logits", "mean")
    kept = losses.SparseCategoricalCrossentropy(from_logits=True)
    for ignored, dtype in ((-1, "int64"), (255, "uint8"), (-1, "int8")):
        labels = np.array([2, ignored, 0, ignored]).astype(dtype)
        loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=ignored)
        value, grad = loss.value_and_gradient(backend.asarray(labels), logits)
        rows = [0, 2]
        expected = kept(backend.asarray(labels[rows]), backend.asarray(host[1][rows], "float64"))
        np.testing.assert_allclose(float(value), float(expected), rtol=1e-14)
        assert not np.any(backend.to_numpy(grad)[[1, 3]])
    with pytest.raises(ValueError, match="class label 255"):  # -1 cannot be a uint8 label
        losses.SparseCategoricalCrossentropy(ignore_class=-1)(
            backend.asarray(np.array([0, 255, 1, 1], dtype=np.uint8)), logits
        )


@pytest.mark.parametrize("cls", [losses.BinaryCrossentropy, losses.CategoricalCrossentropy])
def test_label_smoothing_formula(backend, cls):
    """Keras: y (1 - s) + s / K (K = 2 for BCE); s = 1 is the uniform target."""
    _, y_true, y_pred, host = make(backend, "cce-logits", "mean")
    k = 2 if cls is losses.BinaryCrossentropy else C
    for s in (0.0, 0.3, 1.0):
        smooth = cls(from_logits=True, label_smoothing=s)(y_true, y_pred)
        plain = cls(from_logits=True)(backend.asarray(host[0] * (1 - s) + s / k, "float64"), y_pred)
        np.testing.assert_allclose(float(smooth), float(plain), rtol=1e-14)


def test_axis_equals_moving_the_classes_last(backend):
    _, y_true, y_pred, host = make(backend, "cce-axis1", "none")
    moved = [backend.asarray(np.moveaxis(a, 1, -1), "float64") for a in host]
    for loss, last in (
        (
            losses.CategoricalCrossentropy(True, "none", axis=1),
            losses.CategoricalCrossentropy(True, "none"),
        ),
        (
            losses.CosineSimilarity(axis=1, reduction="none"),
            losses.CosineSimilarity(reduction="none"),
        ),
    ):
        value, grad = loss.value_and_gradient(y_true, y_pred)
        value_last, grad_last = last.value_and_gradient(*moved)
        np.testing.assert_allclose(
            backend.to_numpy(value), backend.to_numpy(value_last), rtol=1e-14
        )
        np.testing.assert_allclose(
            backend.to_numpy(grad), np.moveaxis(backend.to_numpy(grad_last), -1, 1), rtol=1e-14
        )


# -- bad arguments -----------------------------------------------------------------------------
SMOOTHED = [
    losses.BinaryCrossentropy,
    losses.CategoricalCrossentropy,
    losses.SparseCategoricalCrossentropy,
    losses.BinaryFocalCrossentropy,
]


@pytest.mark.parametrize("cls", SMOOTHED)
def test_label_smoothing_outside_0_1(cls):
    for bad in (-0.1, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=rf"label_smoothing.*Received: label_smoothing={bad}"):
            cls(label_smoothing=bad)
    with pytest.raises(TypeError, match="label_smoothing must be a real number"):
        cls(label_smoothing="0.1")


def test_other_bad_arguments(backend):
    with pytest.raises(TypeError, match="ignore_class must be an integer or None"):
        losses.SparseCategoricalCrossentropy(ignore_class=1.0)
    for cls in (losses.CategoricalCrossentropy, losses.SparseCategoricalCrossentropy):
        with pytest.raises(TypeError, match="axis must be an integer. Received: axis=True"):
            cls(axis=True)
    with pytest.raises(TypeError, match="axis must be an integer"):
        losses.CosineSimilarity(axis=1.0)
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0.0, 1.0\]"):
        losses.BinaryFocalCrossentropy(alpha=1.5)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        losses.BinaryFocalCrossentropy(gamma=-1.0)
    with pytest.raises(TypeError, match="apply_class_balancing must be True or False"):
        losses.BinaryFocalCrossentropy(apply_class_balancing=1)
    _, y_true, y_pred, _ = make(backend, "cce-logits", "mean")
    for axis in (0, 2, -3):
        with pytest.raises(ValueError, match=rf"axis={axis} must name the class axis"):
            losses.CategoricalCrossentropy(axis=axis)(y_true, y_pred)
    with pytest.raises(ValueError, match="must name the class axis"):
        losses.KLDivergence()(backend.asarray(0.5, "float64"), backend.asarray(0.5, "float64"))


@pytest.mark.parametrize("case", ["kld", "poisson", "cosine", "categorical-hinge", "focal-probs"])
def test_new_losses_check_targets_and_shapes(backend, case):
    loss, y_true, y_pred, host = make(backend, case, "mean")
    bad = host[0].copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="y_true contains NaN"):
        loss(backend.asarray(bad, "float64"), y_pred)
    with pytest.raises(ValueError, match=r"y_true has shape \(4, 2\), expected \(4, 3\)"):
        loss.gradient(backend.asarray(host[0][:, :2], "float64"), y_pred)


def test_focal_probability_range(backend):
    _, y_true, logits, _ = make(backend, "focal-logits", "mean")
    with pytest.raises(ValueError, match="from_logits=True"):
        losses.BinaryFocalCrossentropy()(y_true, logits * 10.0)


# -- names, configs, compile -------------------------------------------------------------------
NAMES = {
    "kl_divergence": losses.KLDivergence,
    "kld": losses.KLDivergence,
    "kullback_leibler_divergence": losses.KLDivergence,
    "KLDivergence": losses.KLDivergence,
    "poisson": losses.Poisson,
    "log_cosh": losses.LogCosh,
    "logcosh": losses.LogCosh,
    "cosine_similarity": losses.CosineSimilarity,
    "hinge": losses.Hinge,
    "squared_hinge": losses.SquaredHinge,
    "categorical_hinge": losses.CategoricalHinge,
    "binary_focal_crossentropy": losses.BinaryFocalCrossentropy,
}


def test_get_by_name():
    for name, cls in NAMES.items():
        assert type(losses.get(name)) is cls and losses.get(name).reduction == "mean"


@pytest.mark.parametrize(
    "loss",
    [
        losses.KLDivergence("sum", name="kl"),
        losses.Poisson("none"),
        losses.LogCosh("mean_with_sample_weight"),
        losses.CosineSimilarity(axis=1, reduction="sum_over_batch_size"),
        losses.Hinge(),
        losses.SquaredHinge("sum"),
        losses.CategoricalHinge(),
        losses.BinaryFocalCrossentropy(True, 0.4, 1.5, True, 0.1, "sum", epsilon=1e-6),
        losses.BinaryCrossentropy(label_smoothing=0.2),
        losses.CategoricalCrossentropy(True, label_smoothing=0.1, axis=1),
        losses.SparseCategoricalCrossentropy(True, ignore_class=-1, label_smoothing=0.1, axis=-2),
    ],
    ids=repr,
)
def test_config_round_trip(loss):
    rebuilt = losses.get(json.loads(json.dumps(losses.serialize(loss))))
    assert rebuilt == loss and hash(rebuilt) == hash(loss) and repr(rebuilt) == repr(loss)
    assert rebuilt.get_config() == loss.get_config()


def test_old_configs_still_load():
    """Checkpoints written before label_smoothing/axis/ignore_class existed."""
    old = {"name": "scce", "reduction": "mean", "from_logits": True, "epsilon": 1e-7}
    loss = losses.get({"class_name": "SparseCategoricalCrossentropy", "config": old})
    assert loss.label_smoothing == 0.0 and loss.axis == -1 and loss.ignore_class is None


COMPILED = {  # name -> (output activation, targets maker)
    "kl_divergence": ("softmax", lambda r, n: r.dirichlet(np.ones(3), size=n)),
    "poisson": ("softplus", lambda r, n: r.poisson(1.5, (n, 3)).astype(float)),
    "log_cosh": (None, lambda r, n: r.normal(size=(n, 3))),
    "cosine_similarity": (None, lambda r, n: r.normal(size=(n, 3))),
    "hinge": ("tanh", lambda r, n: r.integers(0, 2, (n, 3)).astype(float)),
    "squared_hinge": ("tanh", lambda r, n: r.choice([-1.0, 1.0], (n, 3))),
    "categorical_hinge": (None, lambda r, n: np.eye(3)[r.integers(0, 3, n)]),
    "binary_focal_crossentropy": ("sigmoid", lambda r, n: r.integers(0, 2, (n, 3)).astype(float)),
}


@pytest.mark.parametrize("name", COMPILED)
def test_compile_by_name_and_fit(backend, name):
    activation, targets = COMPILED[name]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = targets(rng, 16).astype("float32")
    model = pnn.Sequential([Dense(3, activation=activation, input_dim=4)])
    model.compile(loss=name, optimizer=pnn.optimizers.SGD(0.05))
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]
    found = model.evaluate(x, y, batch_size=16)["loss"]
    expected = losses.get(name)(y, np.asarray(pnn.to_numpy(model.predict(x))))  # on the host
    np.testing.assert_allclose(found, float(expected), rtol=1e-5)
