"""scikit-learn's own estimator checks on ``portable_nn.sklearn``'s estimators.

``parametrize_with_checks`` runs every check scikit-learn applies to its estimators (fit/predict
contracts, clone and pickle, input validation messages, sample weights, sparse input, ...); the
checks expected to fail are declared once, in ``portable_nn.sklearn.EXPECTED_FAILED_CHECKS``.
The array-API input checks (array-api-strict, torch, CuPy ... under
``array_api_dispatch=True``) need ``SCIPY_ARRAY_API=1`` before SciPy is imported: a second
pytest process runs them with it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from portable_nn.sklearn import EXPECTED_FAILED_CHECKS, MLPClassifier, MLPRegressor  # noqa: E402
from portable_nn.sklearn.checks import expected_failed_checks  # noqa: E402

ESTIMATORS = [MLPClassifier(max_iter=200), MLPRegressor(max_iter=200)]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_check(estimator, check) -> None:
    check(estimator)


def test_expected_failures_are_few_and_explained() -> None:
    assert set(EXPECTED_FAILED_CHECKS) == {"MLPClassifier", "MLPRegressor"}
    for reasons in EXPECTED_FAILED_CHECKS.values():
        assert len(reasons) <= 5
        assert all(isinstance(r, str) and r for r in reasons.values())


@pytest.mark.skipif(
    os.environ.get("SCIPY_ARRAY_API") == "1",
    reason="SCIPY_ARRAY_API=1 here: the array-API checks ran in this process",
)
def test_array_api_checks_in_a_process_with_scipy_array_api() -> None:
    pytest.importorskip("array_api_strict")
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-rs",
         "-k", "array_api", "-W", "ignore"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    # array-api-strict (two devices, two dtypes) and torch on the CPU, for both classes
    passed = int(out.rsplit(" passed", 1)[0].split()[-1])
    assert passed >= 6, out[-2000:]
