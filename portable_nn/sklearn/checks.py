"""The scikit-learn estimator checks these estimators are known to fail, with the reason, as
``parametrize_with_checks(..., expected_failed_checks=...)`` takes them (check name -> reason),
by class name."""

from __future__ import annotations

EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    "MLPClassifier": {},
    "MLPRegressor": {},
}


def expected_failed_checks(estimator: object) -> dict[str, str]:
    """The entry of ``estimator``'s class (for ``parametrize_with_checks``)."""
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


__all__ = ["EXPECTED_FAILED_CHECKS", "expected_failed_checks"]
