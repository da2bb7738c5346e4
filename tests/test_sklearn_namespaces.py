"""``portable_nn.sklearn``'s MLPs train where ``X`` lives and answer there.

On every backend of the matrix (``backend`` fixture: NumPy, read-only NumPy, array-api-strict on
its CPU device and on ``device1``, torch, JAX; CuPy and torch-cuda where a GPU is): predictions,
probabilities, ``classes_``, ``coefs_`` and ``intercepts_`` come back in ``X``'s namespace, on
its device, in its float dtype, and equal scikit-learn's NumPy run (float32: relative 1e-4 of
each array's largest entry; float64: 1e-8). ``backend=``/``device=`` move the training and
still answer in ``X``'s namespace. Last, scikit-learn's ``array_api_dispatch`` (a fresh
process: it needs ``SCIPY_ARRAY_API=1`` before SciPy is imported).
"""

from __future__ import annotations

import functools
import json
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

from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import portable_nn as pnn  # noqa: E402
from portable_nn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

ROOT = Path(pnn.__file__).resolve().parent.parent
TOLERANCE = {"float32": 1e-4, "float64": 1e-8}  # relative to each array's largest entry


@functools.cache
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def fit(est: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def host(array: Any) -> np.ndarray:
    return np.asarray(pnn.to_numpy(array))


def assert_close(expected: Any, actual: Any, dtype: str) -> None:
    """``actual`` (any namespace) within the dtype's tolerance of ``expected`` (NumPy)."""
    expected, actual = np.asarray(expected), host(actual)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = float(np.max(np.abs(expected)))
    error = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    assert error <= TOLERANCE[dtype] * scale, f"max error {error:.3g}, scale {scale:.3g}"


def assert_in_place_of(backend: Any, arrays: list, dtype: Any = None) -> None:
    """Every array in the backend's namespace and on its device (and of ``dtype``)."""
    for array in arrays:
        backend.assert_same_place(array)
        if dtype is not None:
            assert array.dtype == dtype, (array.dtype, dtype)


# -- answers where X lives ----------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_classifier_answers_in_the_namespace_of_x(backend: Any, dtype: str, solver: str) -> None:
    X, y = iris()
    params = dict(
        hidden_layer_sizes=(8,), solver=solver, max_iter=5, learning_rate_init=0.05,
        random_state=0,
    )  # fmt: skip
    ref = fit(sk_nn.MLPClassifier(**params), X.astype(dtype), y)
    Xb, yb = backend.asarray(X, dtype), backend.asarray(y)
    est = fit(MLPClassifier(**params), Xb, yb)
    xp = backend.xp
    float_dtype = getattr(xp, dtype)
    assert_in_place_of(backend, [*est.coefs_, *est.intercepts_], float_dtype)
    proba, log_proba = est.predict_proba(Xb), est.predict_log_proba(Xb)
    assert_in_place_of(backend, [proba, log_proba], float_dtype)
    predicted = est.predict(Xb)
    assert_in_place_of(backend, [est.classes_, predicted], yb.dtype)
    for expected, actual in zip(ref.coefs_ + ref.intercepts_, est.coefs_ + est.intercepts_):
        assert_close(expected, actual, dtype)
    assert_close(ref.predict_proba(X.astype(dtype)), proba, dtype)
    assert_close(ref.predict_log_proba(X.astype(dtype)), log_proba, dtype)
    np.testing.assert_array_equal(host(predicted), ref.predict(X.astype(dtype)))
    np.testing.assert_array_equal(host(est.classes_), ref.classes_)
    assert est.n_iter_ == ref.n_iter_
    assert est.loss_ == pytest.approx(ref.loss_, rel=TOLERANCE[dtype])
    assert est.score(Xb, yb) == ref.score(X, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regressor_answers_in_the_namespace_of_x(backend: Any, dtype: str) -> None:
    """Multi-output targets and sample weights from the backend; early stopping on it (float64
    only: on JAX each new shape costs seconds of compiling)."""
    X, target = iris()
    Y = np.stack([X[:, 0] + 0.5 * X[:, 1], np.sin(X[:, 2]), target / 2.0], axis=1)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(Y))
    params = dict(
        hidden_layer_sizes=(8,), max_iter=6, early_stopping=dtype == "float64",
        n_iter_no_change=2, learning_rate_init=0.02, random_state=0,
    )  # fmt: skip
    ref = fit(sk_nn.MLPRegressor(**params), X.astype(dtype), Y.astype(dtype), weights)
    Xb = backend.asarray(X, dtype)
    Yb = backend.asarray(Y, dtype)
    est = fit(MLPRegressor(**params), Xb, Yb, backend.asarray(weights, dtype))
    float_dtype = getattr(backend.xp, dtype)
    predicted = est.predict(Xb)
    assert_in_place_of(backend, [*est.coefs_, *est.intercepts_, predicted], float_dtype)
    assert tuple(predicted.shape) == Y.shape
    for expected, actual in zip(ref.coefs_ + ref.intercepts_, est.coefs_ + est.intercepts_):
        assert_close(expected, actual, dtype)
    assert_close(ref.predict(X.astype(dtype)), predicted, dtype)
    assert est.n_iter_ == ref.n_iter_
    if dtype == "float64":
        assert est.validation_scores_ == pytest.approx(ref.validation_scores_, rel=1e-8)
        assert est.best_validation_score_ == pytest.approx(ref.best_validation_score_, rel=1e-8)
    else:
        assert est.loss_curve_ == pytest.approx(ref.loss_curve_, rel=TOLERANCE[dtype])
    assert est.score(Xb, Yb) == pytest.approx(ref.score(X, Y), rel=TOLERANCE[dtype])
    single = fit(MLPRegressor(hidden_layer_sizes=(8,), max_iter=2), Xb, Yb[:, 0])
    assert tuple(single.predict(Xb).shape) == (len(Y),)


def test_multilabel_and_partial_fit_answer_in_the_namespace_of_x(backend: Any) -> None:
    X, y = iris()  # the shapes of the other tests: JAX compiles each new one
    Y = np.stack([y == 0, y == 1, X[:, 0] > 0], axis=1).astype(np.int64)
    params = dict(hidden_layer_sizes=(8,), max_iter=3, learning_rate_init=0.05, random_state=0)
    ref = fit(sk_nn.MLPClassifier(**params), X, Y)
    Xb = backend.asarray(X, "float64")
    est = fit(MLPClassifier(**params), Xb, backend.asarray(Y))
    predicted = est.predict(Xb)
    assert_in_place_of(backend, [predicted, est.classes_])
    assert tuple(predicted.shape) == Y.shape
    np.testing.assert_array_equal(host(predicted), ref.predict(X))
    for expected, actual in zip(ref.coefs_ + ref.intercepts_, est.coefs_ + est.intercepts_):
        assert_close(expected, actual, "float64")

    ref = sk_nn.MLPClassifier(**params)
    est = MLPClassifier(**params)
    for _ in range(3):  # classes on every call: checked against classes_ (on the device)
        ref.partial_fit(X, y, classes=[0, 1, 2])
        est.partial_fit(Xb, backend.asarray(y), classes=backend.asarray([0, 1, 2]))
    assert_in_place_of(backend, [*est.coefs_, est.classes_])
    for expected, actual in zip(ref.coefs_ + ref.intercepts_, est.coefs_ + est.intercepts_):
        assert_close(expected, actual, "float64")
    assert est.loss_curve_ == pytest.approx(ref.loss_curve_, rel=1e-8)
    with pytest.raises(ValueError, match="is not the same as on last call to partial_fit"):
        est.partial_fit(Xb, backend.asarray(y), classes=backend.asarray([0, 1, 2, 3]))


def test_pickled_estimator_answers_and_trains_on_like_the_original(backend: Any) -> None:
    """A pickle of an estimator trained on the backend predicts the same there, and its
    ``partial_fit`` continues the original's run (optimizer state included)."""
    X, y = iris()
    Xb, yb = backend.asarray(X, "float64"), backend.asarray(y)
    est = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.05, random_state=0)
    est.partial_fit(Xb, yb, classes=[0, 1, 2])
    copy = pickle.loads(pickle.dumps(est))
    assert_in_place_of(backend, [*copy.coefs_, copy.classes_])
    np.testing.assert_array_equal(host(copy.predict_proba(Xb)), host(est.predict_proba(Xb)))
    for model in (est, copy):
        model.partial_fit(Xb, yb)
    assert_in_place_of(backend, [*copy.coefs_, copy.predict(Xb)])
    for expected, actual in zip(est.coefs_ + est.intercepts_, copy.coefs_ + copy.intercepts_):
        np.testing.assert_array_equal(host(actual), host(expected))
    assert copy.loss_curve_ == est.loss_curve_


def test_partial_fit_moving_from_numpy_to_the_backend_continues_the_run(backend: Any) -> None:
    """The network, its optimizer state and ``classes_`` follow the data to another namespace."""
    X, y = iris()
    params = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.1, random_state=0)
    ref, est = sk_nn.MLPClassifier(**params), MLPClassifier(**params)
    ref.partial_fit(X, y, classes=[0, 1, 2])
    est.partial_fit(X, y, classes=[0, 1, 2])
    ref.partial_fit(X, y)
    est.partial_fit(backend.asarray(X, "float64"), backend.asarray(y))
    assert_in_place_of(backend, [*est.coefs_, *est.intercepts_, est.classes_])
    for expected, actual in zip(ref.coefs_ + ref.intercepts_, est.coefs_ + est.intercepts_):
        assert_close(expected, actual, "float64")
    assert est.loss_curve_ == pytest.approx(ref.loss_curve_, rel=1e-8)


# -- backend= and device= -----------------------------------------------------------------------
def test_forced_backend_trains_there_and_answers_in_numpy(backend: Any) -> None:
    """NumPy in, the network on the fixture's backend and device, NumPy out."""
    X, y = iris()
    params = dict(hidden_layer_sizes=(8,), max_iter=4, learning_rate_init=0.05, random_state=0)
    ref = fit(sk_nn.MLPClassifier(**params), X, y)
    est = fit(MLPClassifier(**params, backend=backend.name, device=backend.device), X, y)
    assert est._placement.backend.xp is backend.xp
    assert est._placement.backend.device == backend.dev
    for array in [*est.coefs_, est.classes_, est.predict(X), est.predict_proba(X)]:
        assert isinstance(array, np.ndarray), type(array)
    assert est.coefs_[0].dtype == np.float64
    for expected, actual in zip(ref.coefs_ + ref.intercepts_, est.coefs_ + est.intercepts_):
        assert_close(expected, actual, "float64")
    np.testing.assert_array_equal(est.predict(X), ref.predict(X))


@pytest.mark.parametrize(
    "place", [("numpy", None), ("array_api_strict", "device1")], ids=["numpy", "device1"]
)
def test_torch_input_trained_elsewhere_answers_in_torch(place: tuple) -> None:
    torch = pytest.importorskip("torch")
    if place[0] == "array_api_strict":
        pytest.importorskip("array_api_strict")
    X, y = iris()
    params = dict(hidden_layer_sizes=(8,), max_iter=4, learning_rate_init=0.05, random_state=0)
    ref = fit(MLPClassifier(**params), X.astype(np.float32), y)
    Xt, yt = torch.asarray(X, dtype=torch.float32), torch.asarray(y)
    est = fit(MLPClassifier(**params, backend=place[0], device=place[1]), Xt, yt)
    assert est._placement.backend.name == place[0]
    outputs = [*est.coefs_, *est.intercepts_, est.predict_proba(Xt), est.predict_log_proba(Xt)]
    for array in outputs:
        assert isinstance(array, torch.Tensor) and array.dtype == torch.float32
    assert isinstance(est.classes_, torch.Tensor) and est.classes_.dtype == torch.int64
    predicted = est.predict(Xt)
    assert isinstance(predicted, torch.Tensor) and predicted.dtype == torch.int64
    for expected, actual in zip(ref.coefs_ + ref.intercepts_, est.coefs_ + est.intercepts_):
        assert_close(expected, actual, "float32")
    np.testing.assert_array_equal(predicted.numpy(), ref.predict(X.astype(np.float32)))


def test_string_labels_need_host_inputs(backend: Any) -> None:
    X, y = iris()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    if backend.name == "numpy":
        est = fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2), backend.asarray(X), names)
        assert est.predict(backend.asarray(X)).dtype == names.dtype
        assert set(est.predict(backend.asarray(X))) <= set(names)
        return
    with pytest.raises(ValueError, match="labels of non-NumPy inputs must be numeric"):
        MLPClassifier(max_iter=2).fit(backend.asarray(X), names)


# -- bad input on the backend -------------------------------------------------------------------
def test_bad_device_input_raises_scikit_learns_errors(backend: Any) -> None:
    X, y = iris()
    with_nan, with_inf = X.copy(), X.copy()
    with_nan[2, 3], with_inf[4, 1] = np.nan, -np.inf
    yb = backend.asarray(y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MLPClassifier().fit(backend.asarray(with_nan), yb)
    with pytest.raises(ValueError, match="Input X contains infinity"):
        MLPClassifier().fit(backend.asarray(with_inf), yb)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        MLPClassifier().fit(backend.asarray(X), backend.asarray(y[:-1]))
    est = fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=1), backend.asarray(X), yb)
    with pytest.raises(
        ValueError, match="X has 2 features, but MLPClassifier is expecting 4 features as input"
    ):
        est.predict(backend.asarray(X[:, :2]))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.predict_proba(backend.asarray(with_nan))
    with pytest.raises(ValueError, match="Expected 2D array"):
        est.predict(backend.asarray(X[:, 0]))
    with pytest.raises(ValueError, match="Input y contains infinity"):
        MLPRegressor().fit(backend.asarray(X), backend.asarray(np.where(y == 1, np.inf, y)))


# -- scikit-learn's array_api_dispatch ------------------------------------------------------------
DISPATCH = r"""
import json
import numpy as np
import sklearn
from sklearn.datasets import load_iris
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
import torch
torch.set_num_threads(1)
from portable_nn.sklearn import MLPClassifier, MLPRegressor

X, y = load_iris(return_X_y=True)
X32 = X.astype(np.float32)
def pipeline():
    return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=20,
                         learning_rate_init=0.05, random_state=0))
reference = pipeline().fit(X32, y)
out = {}
sklearn.set_config(array_api_dispatch=True)
try:
    model = pipeline().fit(torch.asarray(X32), torch.asarray(y))
    proba = model.predict_proba(torch.asarray(X32))
    out["torch"] = {
        "scaler_mean": type(model[0].mean_).__module__,
        "coefs": type(model[-1].coefs_[0]).__module__,
        "classes": type(model[-1].classes_).__module__,
        "predict": type(model.predict(torch.asarray(X32))).__module__,
        "proba": type(proba).__module__,
        "proba_dtype": str(proba.dtype),
        "proba_error": float(np.max(np.abs(proba.numpy() - reference.predict_proba(X32)))),
        "same_predictions": bool((model.predict(torch.asarray(X32)).numpy()
                                  == reference.predict(X32)).all()),
        "score": float(model.score(torch.asarray(X32), torch.asarray(y))),
    }
    try:  # the MLP itself (the scaler's own transform fails first on NumPy input)
        model[-1].predict(X32)
        out["numpy_after_torch"] = "no error"
    except ValueError as error:
        out["numpy_after_torch"] = str(error)
finally:
    sklearn.set_config(array_api_dispatch=False)
import array_api_strict as xps
with sklearn.config_context(array_api_dispatch=True):
    Xs = xps.asarray(X32, device=xps.Device("device1"))
    model = pipeline().fit(Xs, xps.asarray(y, device=xps.Device("device1")))
    predicted = model.predict(Xs)
    cpu = xps.Device("CPU_DEVICE")
    regressor = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(4,), max_iter=3))
    values = regressor.fit(Xs, Xs[:, 0]).predict(Xs)
    out["strict"] = {
        "predict": type(predicted).__module__.split(".")[0],
        "device": str(predicted.device),
        "regressor": str(values.device),
        "same_predictions": bool((np.asarray(xps.asarray(predicted, device=cpu))
                                  == reference.predict(X32)).all()),
    }
print(json.dumps(out))
"""


def test_array_api_dispatch_keeps_torch_tensors_end_to_end() -> None:
    """``set_config(array_api_dispatch=True)``/``config_context``: a scaler-and-MLP pipeline on
    torch CPU tensors (and array-api-strict on ``device1``) keeps them from fit to predict."""
    pytest.importorskip("torch")
    pytest.importorskip("array_api_strict")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCIPY_ARRAY_API": "1"}
    result = subprocess.run(
        [sys.executable, "-W", "ignore::sklearn.exceptions.ConvergenceWarning", "-c", DISPATCH],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"dispatch process failed:\n{result.stdout}\n{result.stderr}"
    out = json.loads(result.stdout.strip().splitlines()[-1])
    torch_run = out["torch"]
    for key in ("scaler_mean", "coefs", "classes", "predict", "proba"):
        assert torch_run[key] == "torch", (key, torch_run[key])
    assert torch_run["proba_dtype"] == "torch.float32"
    assert torch_run["proba_error"] < 1e-4
    assert torch_run["same_predictions"] and torch_run["score"] > 0.8
    assert "must use the same namespace" in out["numpy_after_torch"]
    assert out["strict"]["predict"] == "array_api_strict"
    assert "device1" in out["strict"]["device"] and "device1" in out["strict"]["regressor"]
    assert out["strict"]["same_predictions"]
