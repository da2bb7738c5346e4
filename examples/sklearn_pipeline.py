"""portable_nn.sklearn in scikit-learn's tools: a Pipeline, GridSearchCV, array-API inputs.

1. ``Pipeline(StandardScaler, portable_nn.sklearn.MLPClassifier)`` tuned by ``GridSearchCV``
   (hidden layers x alpha, 3 folds) on scikit-learn's digits (75/25 stratified split); prints
   the best parameters and the test accuracy. NumPy data, so it trains on NumPy, exactly as
   scikit-learn's own ``MLPClassifier`` would.
2. The best pipeline again on torch tensors under ``sklearn.config_context(
   array_api_dispatch=True)``: the scaler and the network both run on torch, and ``predict``
   returns a torch tensor (skipped with a note when torch is missing).
3. The same on CuPy arrays when a GPU is usable (``portable_nn.backend.cuda_problem()`` is None).

scikit-learn's array-API mode needs ``SCIPY_ARRAY_API=1`` before SciPy is first imported, so this
script sets it on its first lines. Run: ``python examples/sklearn_pipeline.py`` (``--quick``:
a smaller grid and fewer epochs, as the tests use).
"""

from __future__ import annotations

import os

os.environ["SCIPY_ARRAY_API"] = "1"  # before SciPy / scikit-learn are imported

import argparse
import importlib.util
import time
import warnings
from typing import Any

import _common  # (puts this checkout's portable_nn on the path)
import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from portable_nn.backend import cuda_problem
from portable_nn.sklearn import MLPClassifier


def search(X: np.ndarray, y: np.ndarray, quick: bool = False) -> GridSearchCV:
    """Grid search over the pipeline's MLP (``mlpclassifier__...`` parameters), 3-fold CV."""
    pipeline = make_pipeline(
        StandardScaler(), MLPClassifier(max_iter=30 if quick else 200, random_state=0)
    )
    grid = {
        "mlpclassifier__hidden_layer_sizes": [(32,)] if quick else [(64,), (128,)],
        "mlpclassifier__alpha": [1e-4, 1e-1],
    }
    return GridSearchCV(pipeline, grid, cv=3).fit(X, y)


def on_device(pipeline: Any, data: tuple, xp: Any, name: str) -> dict[str, Any]:
    """Fit a fresh copy of ``pipeline`` on ``xp`` arrays (float32) under array-API dispatch;
    print what ``predict`` returns."""
    X_train, X_test, y_train, y_test = (xp.asarray(a) for a in data)
    X_train, X_test = (xp.asarray(a, dtype=xp.float32) for a in (X_train, X_test))
    with sklearn.config_context(array_api_dispatch=True):
        model = clone(pipeline).fit(X_train, y_train)
        predicted = model.predict(X_test)
    accuracy = float(xp.mean(xp.asarray(predicted == y_test, dtype=xp.float32)))
    print(
        f"{name}: predict returned {type(predicted).__module__}.{type(predicted).__name__} "
        f"(dtype {predicted.dtype}, device {predicted.device}); test accuracy {accuracy:.4f}"
    )
    return {"type": type(predicted), "accuracy": accuracy}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller grid, fewer epochs")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (1; 0: default)")
    args = parser.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    data = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    X_train, X_test, y_train, y_test = data
    result: dict[str, Any] = {}
    with warnings.catch_warnings(), _common.cpu_threads(args.threads):
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: fine here
        start = time.perf_counter()
        found = search(X_train, y_train, args.quick)
        result["best_params"] = found.best_params_
        result["accuracy"] = float(found.score(X_test, y_test))
        print(f"GridSearchCV ({time.perf_counter() - start:.1f} s): best {found.best_params_}")
        print(f"NumPy: cross-validated {found.best_score_:.4f}, test {result['accuracy']:.4f}")
        best = found.best_estimator_
        if importlib.util.find_spec("torch") is None:
            print("torch: not installed, skipped (pip install torch)")
        else:
            import torch

            result["torch"] = on_device(best, data, torch, "torch")
        problem = cuda_problem()
        if problem is None:
            import cupy

            result["cupy"] = on_device(best, data, cupy, "CuPy")
        else:
            print(f"CuPy: skipped ({problem})")
    return result


if __name__ == "__main__":
    main()
