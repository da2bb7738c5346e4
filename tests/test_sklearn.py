"""``portable_nn.sklearn``'s MLPs against scikit-learn's own, on NumPy float64.

With the same ``random_state`` (or the same weights set by hand) one epoch, a few epochs and a
whole ``fit`` give scikit-learn's ``coefs_``/``intercepts_`` to float64 rounding (relative
1e-8 of each array's largest entry here), with the same fitted attributes, printed lines and
warnings. Then the ecosystem (clone, pipelines, grid search, joblib workers, pickles loaded by a
fresh interpreter, ``partial_fit``, ``warm_start``, sparse input) and bad input (scikit-learn's
errors, and a fitted estimator left as it was by a fit that fails).

Where the network trains on other libraries' arrays: ``tests/test_sklearn_namespaces.py``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

import scipy.sparse  # noqa: E402
from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import (  # noqa: E402
    load_digits,
    load_iris,
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402

import portable_nn as pnn  # noqa: E402
from portable_nn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

ROOT = Path(pnn.__file__).resolve().parent.parent
OURS = {sk_nn.MLPClassifier: MLPClassifier, sk_nn.MLPRegressor: MLPRegressor}
REL = 1e-8  # of each array's largest entry: float64 rounding after a few epochs is ~1e-15


# -- data (small: the whole file runs in seconds) -----------------------------------------------
@functools.cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    """240 digits, 64 features in [0, 1], 10 classes."""
    X, y = load_digits(return_X_y=True)
    return X[:240] / 16.0, y[:240]


@functools.cache
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


@functools.cache
def binary() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=200, n_features=8, random_state=0)


@functools.cache
def multilabel() -> tuple[np.ndarray, np.ndarray]:
    X, Y = make_multilabel_classification(n_samples=120, n_features=8, n_classes=4, random_state=0)
    return X / X.max(), Y


@functools.cache
def multi_output() -> tuple[np.ndarray, np.ndarray]:
    X, Y = make_regression(n_samples=150, n_features=6, n_targets=3, noise=0.1, random_state=0)
    return X, Y / np.abs(Y).max()


@functools.cache
def counts() -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts with a log-linear rate."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 5))
    return X, rng.poisson(np.exp(X @ rng.normal(scale=0.3, size=5))).astype(float)


def optional_torch() -> Any:
    """torch, or None where it is not installed."""
    return importlib.import_module("torch") if importlib.util.find_spec("torch") else None


def weights_for(n: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(0.1, 3.0, n)


# -- comparisons --------------------------------------------------------------------------------
def assert_arrays_close(expected: list, actual: list, rel: float = REL) -> None:
    """Each array of ``actual`` within ``rel`` of the largest entry of its ``expected`` array."""
    assert len(expected) == len(actual)
    for i, (e, a) in enumerate(zip(expected, actual)):
        e, a = np.asarray(e), np.asarray(a)
        assert e.shape == a.shape and e.dtype == a.dtype, (i, e.shape, a.shape, e.dtype, a.dtype)
        scale = max(float(np.max(np.abs(e))), 1e-300)
        error = float(np.max(np.abs(e - a)))
        assert error <= rel * scale, f"array {i}: max error {error:.3g}, scale {scale:.3g}"


def assert_same_weights(ref: Any, ours: Any, rel: float = REL) -> None:
    assert_arrays_close(ref.coefs_, ours.coefs_, rel)
    assert_arrays_close(ref.intercepts_, ours.intercepts_, rel)


def fitted_attributes(est: Any) -> set[str]:
    return {k for k in vars(est) if k.endswith("_") and not k.startswith("_")}


def assert_same_attributes(ref: Any, ours: Any, rel: float = REL) -> None:
    """Every public fitted attribute of scikit-learn's estimator, and no other, equal."""
    assert fitted_attributes(ours) == fitted_attributes(ref)
    assert_same_weights(ref, ours, rel)
    for name in sorted(fitted_attributes(ref) - {"coefs_", "intercepts_"}):
        e, a = getattr(ref, name), getattr(ours, name)
        if name == "classes_" or isinstance(e, np.ndarray):
            np.testing.assert_array_equal(a, e, err_msg=name)
            assert np.asarray(a).dtype == e.dtype, name
        elif isinstance(e, list):
            assert a == pytest.approx(e, rel=rel, abs=0), name
        elif isinstance(e, float) and np.isfinite(e):
            assert isinstance(a, float), (name, type(a))
            assert a == pytest.approx(e, rel=rel, abs=0), name
        else:
            assert a == e and type(a) is type(e), (name, a, e)


def pair(sk_class: type, **params: Any) -> tuple[Any, Any]:
    """scikit-learn's estimator and ours with the same parameters."""
    return sk_class(**params), OURS[sk_class](**params)


def fit_both(ref: Any, ours: Any, X: Any, y: Any, **fit_params: Any) -> list[list[str]]:
    """Fit both; returns the messages of the warnings each raised (scikit-learn's first)."""
    messages = []
    for est in (ref, ours):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(X, y, **fit_params)
        messages.append([f"{w.category.__name__}: {w.message}" for w in caught])
    return messages


def set_weights(est: Any, seed: int) -> None:
    """The same hand-made weights for either estimator (fresh copies: both update in place)."""
    rng = np.random.default_rng(seed)
    est.coefs_ = [rng.uniform(-0.3, 0.3, c.shape) for c in est.coefs_]
    est.intercepts_ = [rng.uniform(-0.3, 0.3, b.shape) for b in est.intercepts_]


# -- 1. one epoch from the same weights --------------------------------------------------------
EPOCH_CASES = {
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "adam-alpha": dict(solver="adam", learning_rate_init=0.01, alpha=0.5),
    "sgd-nesterov": dict(solver="sgd", learning_rate_init=0.1, nesterovs_momentum=True),
    "sgd-momentum": dict(solver="sgd", learning_rate_init=0.1, nesterovs_momentum=False),
    "sgd-plain": dict(solver="sgd", learning_rate_init=0.1, momentum=0.0),
    "sgd-alpha": dict(solver="sgd", learning_rate_init=0.1, alpha=0.5),
}


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("case", EPOCH_CASES)
def test_one_epoch_from_the_same_weights_equals_sklearn(
    case: str, weighted: bool, shuffle: bool
) -> None:
    X, y = digits()
    sample_weight = weights_for(len(y)) if weighted else None
    params = dict(hidden_layer_sizes=(16,), batch_size=50, max_iter=1, random_state=3)
    ref, ours = pair(sk_nn.MLPClassifier, **params, **EPOCH_CASES[case])
    fit_both(ref, ours, X, y)
    for est in (ref, ours):
        set_weights(est, seed=7)
        est.set_params(warm_start=True, shuffle=shuffle)
    start = [c.copy() for c in ref.coefs_]
    fit_both(ref, ours, X, y, sample_weight=sample_weight)
    assert max(np.max(np.abs(c - s)) for c, s in zip(ref.coefs_, start)) > 1e-3  # it moved
    assert_same_attributes(ref, ours)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    assert_arrays_close([ref.predict_proba(X)], [ours.predict_proba(X)])


# -- 1. a few epochs: schedules, stopping, early stopping ----------------------------------------
SCHEDULES = {
    "sgd-invscaling": dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5),
    # tol far above any improvement: the rate is divided by 5 every other epoch
    "sgd-adaptive": dict(
        solver="sgd",
        learning_rate="adaptive",
        learning_rate_init=0.2,
        tol=1.0,
        n_iter_no_change=1,
    ),  # fmt: skip
    "sgd-adaptive-too-small": dict(
        solver="sgd",
        learning_rate="adaptive",
        learning_rate_init=2e-6,
        tol=1.0,
        n_iter_no_change=1,
    ),  # fmt: skip
    "adam-stops": dict(solver="adam", learning_rate_init=0.01, tol=1.0, n_iter_no_change=2),
    "sgd-stops": dict(solver="sgd", learning_rate_init=0.1, tol=1.0, n_iter_no_change=2),
}


@pytest.mark.parametrize("case", SCHEDULES)
def test_schedules_and_stopping_equal_sklearn(case: str) -> None:
    X, y = digits()
    ref, ours = pair(
        sk_nn.MLPClassifier, hidden_layer_sizes=(16,), batch_size=60, max_iter=8, random_state=0,
        **SCHEDULES[case],
    )  # fmt: skip
    messages = fit_both(ref, ours, X, y)
    assert messages[1] == messages[0]
    assert_same_attributes(ref, ours)
    if case.startswith("sgd-adaptive"):
        assert ours._learning_rate == pytest.approx(ref._optimizer.learning_rate, rel=1e-15)
        assert ours._learning_rate < SCHEDULES[case]["learning_rate_init"]
    if case.endswith("stops"):
        assert ref.n_iter_ < 8  # the stopping rule fired, in the same epoch for both


EARLY_STOPPING = {
    "classifier": (sk_nn.MLPClassifier, digits, False),
    "classifier-weighted": (sk_nn.MLPClassifier, digits, True),
    "binary": (sk_nn.MLPClassifier, binary, False),
    "multilabel": (sk_nn.MLPClassifier, multilabel, False),
    "regressor": (sk_nn.MLPRegressor, multi_output, False),
    "regressor-weighted": (sk_nn.MLPRegressor, multi_output, True),
}


@pytest.mark.parametrize("case", EARLY_STOPPING)
def test_early_stopping_equals_sklearn(case: str) -> None:
    sk_class, data, weighted = EARLY_STOPPING[case]
    X, y = data()
    sample_weight = weights_for(len(y)) if weighted else None
    ref, ours = pair(
        sk_class, hidden_layer_sizes=(12,), early_stopping=True, validation_fraction=0.2,
        n_iter_no_change=2, max_iter=12, learning_rate_init=0.01, random_state=1,
    )  # fmt: skip
    messages = fit_both(ref, ours, X, y, sample_weight=sample_weight)
    assert messages[1] == messages[0]
    assert ref.best_loss_ is None and len(ref.validation_scores_) == ref.n_iter_ > 1
    assert_same_attributes(ref, ours)


# -- 1. whole fits on every kind of target -------------------------------------------------------
PROBLEMS = {
    "multiclass": (sk_nn.MLPClassifier, digits, {}),
    "binary": (sk_nn.MLPClassifier, binary, {}),
    "multilabel": (sk_nn.MLPClassifier, multilabel, {}),
    "regression": (sk_nn.MLPRegressor, lambda: (multi_output()[0], multi_output()[1][:, 0]), {}),
    "multi-output": (sk_nn.MLPRegressor, multi_output, {}),
    "poisson": (sk_nn.MLPRegressor, counts, {"loss": "poisson"}),
}
SOLVERS = {
    "adam": dict(solver="adam", learning_rate_init=0.01, max_iter=5),
    "sgd": dict(solver="sgd", learning_rate_init=0.05, max_iter=5),
    "lbfgs": dict(solver="lbfgs", max_iter=25),
}


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_fit_equals_sklearn(problem: str, solver: str) -> None:
    sk_class, data, extra = PROBLEMS[problem]
    X, y = data()
    ref, ours = pair(
        sk_class, hidden_layer_sizes=(10, 6), activation="tanh", alpha=0.01, batch_size=40,
        random_state=0, **extra, **SOLVERS[solver],
    )  # fmt: skip
    messages = fit_both(ref, ours, X, y)
    assert messages[1] == messages[0]
    assert_same_attributes(ref, ours)
    predicted, expected = ours.predict(X), ref.predict(X)
    assert predicted.dtype == expected.dtype and predicted.shape == expected.shape
    if sk_class is sk_nn.MLPClassifier:
        np.testing.assert_array_equal(predicted, expected)
        assert_arrays_close([ref.predict_proba(X)], [ours.predict_proba(X)])
        assert_arrays_close([ref.predict_log_proba(X)], [ours.predict_log_proba(X)])
    else:
        assert_arrays_close([expected], [predicted])
    assert ours.score(X, y) == pytest.approx(ref.score(X, y), rel=REL)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_every_activation_equals_sklearn(activation: str) -> None:
    X, y = iris()
    ref, ours = pair(
        sk_nn.MLPClassifier, hidden_layer_sizes=(7, 5), activation=activation, max_iter=4,
        learning_rate_init=0.05, random_state=2,
    )  # fmt: skip
    fit_both(ref, ours, X, y)
    assert_same_attributes(ref, ours)


def test_float32_input_trains_in_float32_like_sklearn() -> None:
    X, y = iris()
    ref, ours = pair(sk_nn.MLPClassifier, hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    fit_both(ref, ours, X.astype(np.float32), y)
    assert ours.coefs_[0].dtype == ref.coefs_[0].dtype == np.float32
    assert ours.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert_same_weights(ref, ours, rel=1e-5)


# -- 1. printed lines and warnings ---------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        dict(solver="adam", max_iter=3),
        dict(solver="sgd", learning_rate="adaptive", tol=1.0, n_iter_no_change=1, max_iter=5),
        dict(solver="adam", early_stopping=True, n_iter_no_change=1, tol=1.0, max_iter=6),
        dict(solver="sgd", tol=1.0, n_iter_no_change=1, max_iter=6),
    ],
    ids=["adam", "sgd-adaptive", "early-stopping", "training-loss-stops"],
)
def test_verbose_output_equals_sklearn(params: dict, capsys: pytest.CaptureFixture) -> None:
    X, y = digits()
    ref, ours = pair(sk_nn.MLPClassifier, hidden_layer_sizes=(8,), verbose=True, **params)
    printed = []
    for est in (ref, ours):
        est.set_params(random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        printed.append(capsys.readouterr().out)
    assert "Iteration 1, loss = " in printed[0]
    assert printed[1] == printed[0]


def test_convergence_warnings_equal_sklearn() -> None:
    X, y = iris()
    for params in (dict(solver="adam", max_iter=3), dict(solver="lbfgs", max_iter=2)):
        ref, ours = pair(sk_nn.MLPClassifier, hidden_layer_sizes=(5,), random_state=0, **params)
        with pytest.warns(ConvergenceWarning) as caught:
            ours.fit(X, y)
        with pytest.warns(ConvergenceWarning) as expected:
            ref.fit(X, y)
        assert [str(w.message) for w in caught] == [str(w.message) for w in expected]
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y)


def test_batch_size_larger_than_data_warns_like_sklearn() -> None:
    X, y = iris()
    ref, ours = pair(
        sk_nn.MLPClassifier, hidden_layer_sizes=(5,), batch_size=1000, max_iter=2, random_state=0
    )
    messages = fit_both(ref, ours, X, y)
    assert any("It is going to be clipped" in m for m in messages[0])
    assert messages[1] == messages[0]
    assert_same_attributes(ref, ours)


# -- 3. continuing training ---------------------------------------------------------------------
def test_warm_start_equals_sklearn() -> None:
    X, y = digits()
    ref, ours = pair(
        sk_nn.MLPClassifier, hidden_layer_sizes=(16,), max_iter=2, random_state=0,
        warm_start=True, learning_rate_init=0.01,
    )  # fmt: skip
    fit_both(ref, ours, X, y)
    first = [c.copy() for c in ours.coefs_]
    for est in (ref, ours):
        est.set_params(max_iter=3)
    fit_both(ref, ours, X, y)
    assert_same_attributes(ref, ours)
    assert ours.n_iter_ == 3 and ours.t_ == 5 * len(y) and len(ours.loss_curve_) == 5
    assert not np.allclose(first[0], ours.coefs_[0])
    ours.set_params(warm_start=False)  # a fresh start: scikit-learn's first weights again
    ref.set_params(warm_start=False)
    fit_both(ref, ours, X, y)
    assert_same_attributes(ref, ours)


def test_warm_start_with_other_classes_raises_like_sklearn() -> None:
    X, y = iris()
    ref, ours = pair(
        sk_nn.MLPClassifier, hidden_layer_sizes=(5,), max_iter=2, random_state=0, warm_start=True
    )
    fit_both(ref, ours, X, y)
    keep = y < 2
    with pytest.raises(ValueError) as expected:
        ref.fit(X[keep], y[keep])
    with pytest.raises(ValueError) as raised:
        ours.fit(X[keep], y[keep])
    assert str(raised.value) == str(expected.value)
    assert "warm_start can only be used" in str(raised.value)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_equals_sklearn(solver: str) -> None:
    X, y = digits()
    classes = np.arange(10)
    ref, ours = pair(
        sk_nn.MLPClassifier, hidden_layer_sizes=(16,), solver=solver, random_state=0,
        learning_rate_init=0.05,
    )  # fmt: skip
    for part in np.array_split(np.arange(len(y)), 4):
        for est in (ref, ours):
            est.partial_fit(X[part], y[part], classes=classes)
    assert_same_attributes(ref, ours)
    assert ours.n_iter_ == 1 and ours.t_ == len(y) and len(ours.loss_curve_) == 4


def test_partial_fit_regressor_equals_sklearn() -> None:
    X, y = multi_output()
    ref, ours = pair(sk_nn.MLPRegressor, hidden_layer_sizes=(8,), random_state=0)
    for part in np.array_split(np.arange(len(y)), 3):
        for est in (ref, ours):
            est.partial_fit(X[part], y[part], sample_weight=weights_for(len(part)))
    assert_same_attributes(ref, ours)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_after_setting_weights_keeps_the_optimizer_like_sklearn(solver: str) -> None:
    """scikit-learn's optimizer state (Adam's moments and step, SGD's velocities) outlives
    ``coefs_`` set by hand; ours is carried over to the network rebuilt for them."""
    X, y = digits()
    ref, ours = pair(
        sk_nn.MLPClassifier, hidden_layer_sizes=(8,), solver=solver, random_state=0,
        learning_rate_init=0.05,
    )  # fmt: skip
    for est in (ref, ours):
        est.partial_fit(X, y, classes=np.arange(10))
        set_weights(est, seed=4)
        est.partial_fit(X, y)
    assert_same_attributes(ref, ours)


def test_partial_fit_classes_and_solvers_like_sklearn() -> None:
    X, y = iris()
    ours, ref = MLPClassifier(hidden_layer_sizes=(5,)), sk_nn.MLPClassifier(hidden_layer_sizes=(5,))
    with pytest.raises(ValueError) as expected:
        ref.partial_fit(X, y)
    with pytest.raises(ValueError, match="classes must be passed on the first call") as raised:
        ours.partial_fit(X, y)
    assert str(raised.value) == str(expected.value)
    ours.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])  # classes not all in y: fine
    np.testing.assert_array_equal(ours.classes_, [0, 1, 2])
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        ours.partial_fit(X, np.where(y == 2, 5, y))
    ours.partial_fit(X, y)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPClassifier(solver="sgd"), "partial_fit")
    _raises_like_sklearn(
        lambda e: e.set_params(solver="lbfgs").partial_fit(X, y, classes=[0, 1, 2]),
        exception=AttributeError,
    )
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


# -- 3. the ecosystem ---------------------------------------------------------------------------
def test_clone_keeps_parameters_and_drops_the_fit() -> None:
    X, y = iris()
    est = MLPClassifier(hidden_layer_sizes=(6, 3), alpha=0.1, max_iter=3, random_state=0)
    est.set_params(backend="numpy")
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "coefs_")
    with pytest.warns(ConvergenceWarning):
        copy.fit(X, y)
    assert_same_weights(est, copy, rel=0)
    assert sorted(MLPClassifier().get_params()) == sorted(
        [*sk_nn.MLPClassifier().get_params(), "backend", "device"]
    )
    assert sorted(MLPRegressor().get_params()) == sorted(
        [*sk_nn.MLPRegressor().get_params(), "backend", "device"]
    )


def test_pipeline_equals_sklearn_pipeline() -> None:
    X, y = load_iris(return_X_y=True)
    params = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    ref = Pipeline([("scale", StandardScaler()), ("mlp", sk_nn.MLPClassifier(**params))])
    ours = Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifier(**params))])
    fit_both(ref, ours, X, y)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    assert_arrays_close([ref.predict_proba(X)], [ours.predict_proba(X)])
    assert ours.score(X, y) == ref.score(X, y)
    assert_same_attributes(ref[-1], ours[-1])


def test_grid_search_equals_sklearn() -> None:
    X, y = iris()
    grid = {"alpha": [1e-4, 1.0], "hidden_layer_sizes": [(4,), (8,)]}
    base = dict(max_iter=4, learning_rate_init=0.05, random_state=0)
    ref = GridSearchCV(sk_nn.MLPClassifier(**base), grid, cv=3)
    ours = GridSearchCV(MLPClassifier(**base), grid, cv=3)
    fit_both(ref, ours, X, y)
    assert ours.best_params_ == ref.best_params_
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"], rtol=1e-12
    )
    assert isinstance(ours.best_estimator_, MLPClassifier)
    assert_same_attributes(ref.best_estimator_, ours.best_estimator_)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_cross_val_score_equals_sklearn(n_jobs: int) -> None:
    X, y = iris()
    params = dict(hidden_layer_sizes=(6,), max_iter=4, learning_rate_init=0.05, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = cross_val_score(sk_nn.MLPClassifier(**params), X, y, cv=3)
        scores = cross_val_score(MLPClassifier(**params), X, y, cv=3, n_jobs=n_jobs)
    np.testing.assert_array_equal(scores, expected)
    X, y = multi_output()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = cross_val_score(sk_nn.MLPRegressor(**params), X, y, cv=3)
        scores = cross_val_score(MLPRegressor(**params), X, y, cv=3, n_jobs=n_jobs)
    np.testing.assert_allclose(scores, expected, rtol=1e-10)


def test_sparse_input_equals_dense_input() -> None:
    X, y = digits()
    sample_weight = weights_for(len(y))
    for fmt in ("csr", "csc"):
        for solver in ("adam", "lbfgs"):
            params = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=4, random_state=0)
            dense, sparse = MLPClassifier(**params), MLPClassifier(**params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                dense.fit(X, y, sample_weight=sample_weight)
                sparse.fit(scipy.sparse.csr_matrix(X).asformat(fmt), y, sample_weight=sample_weight)
            assert_same_weights(dense, sparse, rel=1e-12)
            assert sparse.loss_ == pytest.approx(dense.loss_, rel=1e-12)
            np.testing.assert_array_equal(
                sparse.predict(scipy.sparse.csr_matrix(X)), dense.predict(X)
            )
            assert_arrays_close(
                [dense.predict_proba(X)], [sparse.predict_proba(scipy.sparse.csc_matrix(X))], 1e-12
            )


def test_string_labels_equal_sklearn() -> None:
    X, y = iris()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    ref, ours = pair(sk_nn.MLPClassifier, hidden_layer_sizes=(5,), max_iter=4, random_state=0)
    fit_both(ref, ours, X, names)
    assert_same_attributes(ref, ours)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    assert ours.predict(X).dtype == ref.predict(X).dtype
    assert ours.score(X, names) == ref.score(X, names)


def test_list_input_and_column_targets_like_sklearn() -> None:
    X, y = iris()
    ref, ours = pair(sk_nn.MLPRegressor, hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    messages = fit_both(ref, ours, X.tolist(), y.reshape(-1, 1).astype(float))
    assert any("DataConversionWarning" in m for m in messages[0])
    assert messages[1] == messages[0]
    assert_same_attributes(ref, ours)
    assert ours.predict(X.tolist()).shape == (len(y),)


# -- 3. pickles ---------------------------------------------------------------------------------
def _fitted_pair() -> tuple[Any, Any]:
    X, y = digits()
    clf = MLPClassifier(hidden_layer_sizes=(12,), max_iter=3, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(12,), max_iter=3, random_state=0, solver="sgd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        reg.fit(X, y.astype(float))
    return clf, reg


def test_pickle_round_trip_predicts_the_same() -> None:
    X, _ = digits()
    for est in _fitted_pair():
        copy = pickle.loads(pickle.dumps(est))
        assert type(copy) is type(est)
        np.testing.assert_array_equal(copy.predict(X), est.predict(X))
        assert_same_weights(est, copy, rel=0)
        assert fitted_attributes(copy) == fitted_attributes(est)
        assert copy.loss_curve_ == est.loss_curve_
        if hasattr(est, "predict_proba"):
            np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))


def test_unpickled_estimator_keeps_training_like_sklearn() -> None:
    """scikit-learn pickles its optimizer: ``partial_fit`` on a copy continues the same run."""
    X, y = digits()
    for cls in (sk_nn.MLPClassifier, MLPClassifier):
        est = cls(hidden_layer_sizes=(12,), random_state=0, learning_rate_init=0.01)
        est.partial_fit(X, y, classes=np.arange(10))
        copy = pickle.loads(pickle.dumps(est))
        est.partial_fit(X, y)
        copy.partial_fit(X, y)
        assert_same_weights(est, copy, rel=1e-12)
        assert copy.loss_curve_ == pytest.approx(est.loss_curve_, rel=1e-12)


def test_unpickled_early_stopping_estimator_keeps_training_like_sklearn() -> None:
    """The best weights of early stopping survive pickling: a warm-started ``fit`` of the copy
    equals one of the original (it used to fail with AttributeError: _best_parameters)."""
    X, y = digits()
    params = dict(
        hidden_layer_sizes=(8,), early_stopping=True, warm_start=True, max_iter=4,
        learning_rate_init=0.01, random_state=0,
    )  # fmt: skip
    ref, est = sk_nn.MLPClassifier(**params), MLPClassifier(**params)
    fit_both(ref, est, X, y)
    copy = pickle.loads(pickle.dumps(est))
    for model in (ref, est, copy):
        model.set_params(learning_rate_init=1e-12, max_iter=2)  # no better validation score
        with pytest.warns(ConvergenceWarning):
            model.fit(X, y)
    assert_same_attributes(est, copy, rel=0)
    assert_same_weights(ref, est, rel=1e-8)


def test_warm_start_without_a_better_validation_score_keeps_the_best_weights() -> None:
    """Early stopping restores the best weights seen, also those of the previous warm-started
    fit when no epoch beats their validation score.

    scikit-learn 1.9 differs here: after a fit it hands its copy of the best weights out as
    ``coefs_`` (``self.coefs_ = self._best_coefs``), the next fit updates them in place, and
    "restoring" them gives that fit's last weights.
    """
    X, y = digits()
    est = MLPClassifier(
        hidden_layer_sizes=(8,), early_stopping=True, warm_start=True, max_iter=5,
        learning_rate_init=0.01, random_state=0,
    )  # fmt: skip
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    best = [np.array(c) for c in est.coefs_ + est.intercepts_]
    best_score = est.best_validation_score_
    est.set_params(max_iter=3)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    assert max(est.validation_scores_[-3:]) < best_score == est.best_validation_score_
    assert_arrays_close(best, est.coefs_ + est.intercepts_, rel=0)


LOAD_IN_FRESH_PROCESS = """
import pickle, sys
import numpy as np
with open(sys.argv[1], "rb") as f:
    models = pickle.load(f)
X = np.load(sys.argv[2])
np.savez(sys.argv[3], *[m.predict(X) for m in models], models[0].predict_proba(X))
print(type(models[0]).__module__, type(models[1]).__module__)
"""


def test_pickle_loads_in_a_fresh_process(tmp_path: Path) -> None:
    """The first portable_nn import of the new interpreter is the unpickling."""
    X, _ = digits()
    models = _fitted_pair()
    (tmp_path / "models.pkl").write_bytes(pickle.dumps(models))
    np.save(tmp_path / "X.npy", X)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(tmp_path / "models.pkl"),
         str(tmp_path / "X.npy"), str(tmp_path / "out.npz")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, f"fresh process failed:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.split() == ["portable_nn.sklearn.classifier"] + [
        "portable_nn.sklearn.regressor"
    ]
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_array_equal(out["arr_0"], models[0].predict(X))
        np.testing.assert_array_equal(out["arr_1"], models[1].predict(X))
        np.testing.assert_array_equal(out["arr_2"], models[0].predict_proba(X))


# -- 5. bad input: scikit-learn's errors ---------------------------------------------------------
def _raises_like_sklearn(call: Any, *args: Any, exception: type = ValueError) -> str:
    """``call(estimator, *args)`` raises the same ``exception`` and message for both."""
    outcome = []
    for est in (sk_nn.MLPClassifier(max_iter=2), MLPClassifier(max_iter=2)):
        with warnings.catch_warnings(), pytest.raises(exception) as raised:
            warnings.simplefilter("ignore", ConvergenceWarning)
            call(est, *args)
        outcome.append(str(raised.value))
    assert outcome[1] == outcome[0]
    return outcome[0]


def test_bad_input_raises_like_sklearn() -> None:
    X, y = iris()
    with_nan, with_inf = X.copy(), X.copy()
    with_nan[3, 1], with_inf[5, 0] = np.nan, np.inf
    assert "Input X contains NaN" in _raises_like_sklearn(lambda e: e.fit(with_nan, y))
    assert "Input X contains infinity" in _raises_like_sklearn(lambda e: e.fit(with_inf, y))
    assert "inconsistent numbers of samples" in _raises_like_sklearn(lambda e: e.fit(X, y[:-1]))
    assert "Expected 2D array" in _raises_like_sklearn(lambda e: e.fit(X[:, 0], y))
    _raises_like_sklearn(lambda e: e.predict(X), exception=NotFittedError)
    _raises_like_sklearn(lambda e: e.predict_proba(X), exception=NotFittedError)
    message = _raises_like_sklearn(lambda e: e.fit(X, y).predict(X[:, :3]))
    assert "X has 3 features, but MLPClassifier is expecting 4 features" in message
    _raises_like_sklearn(
        lambda e: e.set_params(solver="newton").fit(X, y), exception=InvalidParameterError
    )
    _raises_like_sklearn(
        lambda e: e.set_params(activation="gelu").fit(X, y), exception=InvalidParameterError
    )
    _raises_like_sklearn(lambda e: e.set_params(hidden_layer_sizes=(3, 0)).fit(X, y))
    _raises_like_sklearn(lambda e: e.fit(X, y, sample_weight=np.ones(3)))
    with pytest.raises(InvalidParameterError, match="'backend' parameter"):
        MLPClassifier(backend="tensorflow").fit(X, y)
    with pytest.raises(InvalidParameterError, match="'loss' parameter"):
        MLPRegressor(loss="log_loss").fit(X, y)
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPRegressor(early_stopping=True).fit(X[:8], y[:8])


def snapshot(est: Any) -> dict[str, Any]:
    """Every attribute, arrays as host copies, and the network's parameter values."""
    state = {}
    for key, value in vars(est).items():
        if isinstance(value, list) and value and hasattr(value[0], "shape"):
            state[key] = ("arrays", list(value), [np.array(v) for v in value])
        elif hasattr(value, "shape"):
            state[key] = ("array", value, np.array(value))
        elif isinstance(value, list | dict | float | int | str | tuple | type(None)):
            state[key] = ("value", pickle.dumps(value))
        else:
            state[key] = ("object", value)
    net = getattr(est, "_net", None)
    if net is not None:
        state["<network>"] = {k: np.array(v) for k, v in net.parameters().items()}
    return state


def assert_same_snapshot(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key in before:
        if key == "<network>":
            assert before[key].keys() == after[key].keys()
            for name in before[key]:
                np.testing.assert_array_equal(after[key][name], before[key][name], err_msg=name)
        elif before[key][0] == "arrays":
            assert len(after[key][1]) == len(before[key][1]), key
            assert all(a is b for a, b in zip(after[key][1], before[key][1])), key
            for b, a in zip(before[key][2], after[key][2]):
                np.testing.assert_array_equal(a, b, err_msg=key)
        elif before[key][0] == "array":
            assert after[key][1] is before[key][1], key
            np.testing.assert_array_equal(after[key][2], before[key][2], err_msg=key)
        elif before[key][0] == "value":
            assert after[key][1] == before[key][1], key
        else:
            assert after[key][1] is before[key][1], key


@pytest.mark.parametrize("warm_start", [False, True])
def test_failed_fit_changes_nothing(warm_start: bool) -> None:
    """A fitted estimator given bad data raises and is left exactly as it was: attributes,
    weights, network and optimizer state (its next ``partial_fit`` equals an untouched twin's)."""
    torch = optional_torch()

    X, y = iris()
    params = dict(hidden_layer_sizes=(5,), max_iter=3, random_state=0, warm_start=warm_start)
    est, twin = MLPClassifier(**params), MLPClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        twin.fit(X, y)
    with_nan = X.copy()
    with_nan[0, 0] = np.nan
    bad_calls = [
        lambda: est.fit(with_nan, y),
        lambda: est.fit(X, y[:-1]),
        lambda: est.fit(X, y, sample_weight=np.ones(2)),
        lambda: est.fit(X, y, sample_weight=np.full(len(y), np.nan)),
        lambda: est.fit(X, y.astype(float) + 0.5),  # continuous targets
        lambda: est.partial_fit(with_nan, y),
        lambda: est.partial_fit(X, np.where(y == 2, 7, y)),
        lambda: est.partial_fit(X[:, :2], y),
    ]
    if warm_start:  # continuing: the data must match the fit's
        bad_calls += [lambda: est.fit(X[:, :3], y), lambda: est.fit(X[y < 2], y[y < 2])]
    if torch is not None:
        bad_calls += [
            lambda: est.fit(torch.asarray(with_nan), torch.asarray(y)),
            lambda: est.fit(torch.asarray(X), torch.asarray(y[:-1])),
            lambda: est.partial_fit(torch.asarray(X[:, :2]), torch.asarray(y)),
            lambda: est.fit(torch.asarray(X), y, sample_weight=torch.ones(3)),
        ]
    for call in bad_calls:
        before = snapshot(est)
        with pytest.raises(ValueError):
            call()
        assert_same_snapshot(before, snapshot(est))
    est.partial_fit(X, y)
    twin.partial_fit(X, y)
    assert_same_weights(twin, est, rel=0)
    assert_same_attributes(twin, est, rel=0)


def test_failed_fit_of_a_regressor_changes_nothing() -> None:
    torch = pytest.importorskip("torch")
    X, y = multi_output()
    est = MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    bad_y = y.copy()
    bad_y[1, 1] = np.inf
    for call in (
        lambda: est.fit(X, bad_y),
        lambda: est.fit(torch.asarray(X), torch.asarray(bad_y)),
        lambda: est.fit(torch.asarray(X), torch.asarray(y[:-1])),
        lambda: est.partial_fit(X[:, :2], y),
    ):
        before = snapshot(est)
        with pytest.raises(ValueError):
            call()
        assert_same_snapshot(before, snapshot(est))
