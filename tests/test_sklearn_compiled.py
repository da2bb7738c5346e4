"""``portable_nn.sklearn``'s stochastic solvers on JAX: one compiled call per mini-batch.

The compiled update equals the eager one (``_compile = False``) to rounding (float64: 1e-10
of each array's largest entry; float32: 1e-4), for ``adam`` and ``sgd`` (Nesterov momentum,
``invscaling``), classifier and regressor, with sample weights; it traces once per batch
length (the last partial batch adds one) and fits of the same settings share the functions.
"""

from __future__ import annotations

import functools
import pickle
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
jnp = pytest.importorskip("jax.numpy")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import portable_nn as pnn  # noqa: E402
from portable_nn.sklearn import MLPClassifier, MLPRegressor, _compiled  # noqa: E402

TOLERANCE = {"float32": 1e-4, "float64": 1e-10}  # relative to each array's largest entry
SOLVERS = {
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "sgd": dict(
        solver="sgd", momentum=0.9, nesterovs_momentum=True, learning_rate="invscaling",
        learning_rate_init=0.2, power_t=0.3,
    ),
}  # fmt: skip


@functools.cache
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]  # 300 rows, batches of 64: four full ones and one of 44
    return X, y, np.random.default_rng(0).uniform(0.5, 2.0, len(y))


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """No compiled function from other tests: every trace of the test is counted."""
    monkeypatch.setattr(_compiled, "_FUNCTIONS", OrderedDict())


def fit(est: Any, compile_steps: bool, *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """``est`` fitted (compiled or eager) and the number of traces it took."""
    est._compile = compile_steps
    before = _compiled.TRACES[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(*args, **kwargs)
    return est, _compiled.TRACES[0] - before


def assert_close(expected: Any, actual: Any, dtype: str) -> None:
    expected, actual = np.asarray(pnn.to_numpy(expected)), np.asarray(pnn.to_numpy(actual))
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    scale = float(np.max(np.abs(expected)))
    error = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    assert error <= TOLERANCE[dtype] * scale, f"max error {error:.3g}, scale {scale:.3g}"


def estimator(kind: str, solver: str, **params: Any) -> Any:
    cls = MLPClassifier if kind == "classifier" else MLPRegressor
    base = dict(hidden_layer_sizes=(16,), batch_size=64, max_iter=4, alpha=1e-3, random_state=0)
    return cls(**(base | SOLVERS[solver] | params))


def targets(kind: str, y: np.ndarray) -> np.ndarray:
    if kind == "classifier":
        return y
    return np.stack([y / 9.0, np.cos(y)], axis=1)  # two outputs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_compiled_update_equals_the_eager_one(fresh: None, solver: str, kind: str, dtype: str):
    X, y, w = digits()
    Xj, yj, wj = jnp.asarray(X, dtype=dtype), jnp.asarray(targets(kind, y)), jnp.asarray(w, dtype)
    compiled, traces = fit(estimator(kind, solver), True, Xj, yj, sample_weight=wj)
    eager, eager_traces = fit(estimator(kind, solver), False, Xj, yj, sample_weight=wj)
    assert 1 <= traces <= 2 and eager_traces == 0  # a full batch and the last, shorter one
    for expected, actual in zip(
        eager.coefs_ + eager.intercepts_, compiled.coefs_ + compiled.intercepts_
    ):
        assert_close(expected, actual, dtype)
    assert compiled.n_iter_ == eager.n_iter_ == 4
    assert compiled.loss_curve_ == pytest.approx(eager.loss_curve_, rel=TOLERANCE[dtype])
    assert compiled._optimizer.iterations == eager._optimizer.iterations == 20
    state, expected = compiled._optimizer.state_dict(), eager._optimizer.state_dict()
    assert state.keys() == expected.keys() and state["step"] == expected["step"] == 20
    for name in expected.keys() - {"step"}:  # the slots, kept by the compiled update
        assert_close(expected[name], state[name], dtype)


def test_traces_stay_few_over_epochs_fits_and_rate_changes(fresh: None) -> None:
    """One trace per batch length and weighting, whatever the epochs, the rate (``adaptive``
    divides it), another estimator of the same settings or ``partial_fit`` calls."""
    X, y, w = digits()
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    params = dict(learning_rate="adaptive", tol=10.0, n_iter_no_change=1)
    est, traces = fit(estimator("classifier", "sgd", max_iter=8, **params), True, Xj, yj)
    assert traces == 2 and est.n_iter_ == 8
    assert est._learning_rate < 0.2  # the rate changed between epochs: no new trace
    _, traces = fit(estimator("classifier", "sgd", max_iter=3, **params), True, Xj, yj)
    assert traces == 0
    _, traces = fit(
        estimator("classifier", "sgd", max_iter=3, **params), True, Xj, yj, jnp.asarray(w)
    )
    assert traces == 2  # with sample weights: their own functions
    other = dict(params, learning_rate_init=0.05, momentum=0.5, nesterovs_momentum=False)
    est_other, traces = fit(estimator("classifier", "sgd", max_iter=3, **other), True, Xj, yj)
    eager, _ = fit(estimator("classifier", "sgd", max_iter=3, **other), False, Xj, yj)
    assert traces == 2  # Nesterov or not: another trace; the rate and momentum are arguments
    _, traces = fit(
        estimator("classifier", "sgd", max_iter=3, **params, momentum=0.6), True, Xj, yj
    )
    assert traces == 0
    for expected, actual in zip(eager.coefs_, est_other.coefs_):
        assert_close(expected, actual, "float64")
    before = _compiled.TRACES[0]
    for _ in range(3):
        est.partial_fit(Xj, yj)
    assert _compiled.TRACES[0] == before


def test_state_read_between_calls_and_pickles_continue_the_run(fresh: None) -> None:
    """The optimizer's state is kept by the compiled update and read on demand: a pickle taken
    between ``partial_fit`` calls continues as the original, which continues as an eager run."""
    X, y, _ = digits()
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    est = estimator("classifier", "adam")
    eager = estimator("classifier", "adam")
    eager._compile = False
    for model in (est, eager):
        model.partial_fit(Xj, yj, classes=np.arange(10))
    copy = pickle.loads(pickle.dumps(est))
    for model in (est, copy, eager):
        model.partial_fit(Xj, yj)
    for expected, actual in zip(eager.coefs_ + eager.intercepts_, est.coefs_ + est.intercepts_):
        assert_close(expected, actual, "float64")
    for expected, actual in zip(est.coefs_ + est.intercepts_, copy.coefs_ + copy.intercepts_):
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


def test_other_backends_run_the_eager_update(fresh: None) -> None:
    X, y, _ = digits()
    _, traces = fit(estimator("classifier", "adam"), True, X, y)
    assert traces == 0 and not _compiled._FUNCTIONS
