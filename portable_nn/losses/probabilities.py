"""Shared pieces of the cross-entropies: ``from_logits``/``epsilon`` settings, the clipping
epsilon and the checks on probability inputs."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, ClassVar

from . import checks
from .base import Loss

Array = Any
DEFAULT_EPSILON = 1e-7  # Keras' backend epsilon


def check_settings(from_logits: Any, epsilon: Any) -> tuple[bool, float]:
    if not isinstance(from_logits, bool):
        raise TypeError(f"from_logits must be True or False. Received: from_logits={from_logits!r}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise TypeError(f"epsilon must be a number in (0, 0.5). Received: epsilon={epsilon!r}")
    if not (math.isfinite(epsilon) and 0.0 < epsilon < 0.5):
        raise ValueError(f"epsilon must be in (0, 0.5). Received: epsilon={epsilon!r}")
    return from_logits, float(epsilon)


def clip_epsilon(xp: ModuleType, epsilon: float, dtype: Any) -> float:
    """``epsilon``, raised to half the dtype's machine epsilon if smaller.

    This keeps ``1 - epsilon < 1`` in the dtype: in float32 ``1 - 1e-9 == 1`` and the clipped
    probability would give ``log(0)`` (keras#377). 1e-7 (the default) is kept as is in float32.
    """
    return max(epsilon, 0.5 * float(xp.finfo(dtype).eps))  # a Python float, never NumPy's


def probability_checks(owner: str, xp: ModuleType, p: Array) -> list[checks.Check]:
    """Predictions must lie in [0, 1] (NaN passes: a NaN loss is the training loop's business)."""

    def message() -> str:
        return (
            f"{owner}: with from_logits=False, y_pred must hold probabilities in [0, 1]; "
            f"received values in [{float(xp.min(p)):.6g}, {float(xp.max(p)):.6g}]. "
            "Pass from_logits=True for logits"
        )

    return [(xp.logical_not(xp.any((p < 0.0) | (p > 1.0))), message)]


def distribution_checks(owner: str, xp: ModuleType, p: Array) -> list[checks.Check]:
    """Class scores must be non-negative with a positive sum per row (they get normalised)."""

    def message() -> str:
        return (
            f"{owner}: with from_logits=False, y_pred must hold non-negative class scores with a "
            f"positive sum per row; received values in [{float(xp.min(p)):.6g}, "
            f"{float(xp.max(p)):.6g}]. Pass from_logits=True for logits"
        )

    bad = xp.any(p < 0.0) | xp.any(xp.sum(p, axis=-1) <= 0.0)
    return [(xp.logical_not(bad), message)]


class _ProbabilisticLoss(Loss):  # "_": pnn.losses.get refuses it
    """Base of the cross-entropies: ``from_logits`` and ``epsilon`` settings and config, and the
    range check of ``y_pred`` when it holds probabilities (``prediction_checks``)."""

    prediction_checks: ClassVar[Any] = staticmethod(probability_checks)

    def __init__(
        self,
        from_logits: bool = False,
        reduction: str = "mean",
        name: str | None = None,
        *,
        epsilon: float = DEFAULT_EPSILON,
    ) -> None:
        self.from_logits, self.epsilon = check_settings(from_logits, epsilon)
        super().__init__(reduction=reduction, name=name)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits, "epsilon": self.epsilon}

    def _value_checks(self, xp: ModuleType, t: Array, p: Array) -> list[checks.Check]:
        found = super()._value_checks(xp, t, p)
        if not self.from_logits:
            found += self.prediction_checks(self.name, xp, p)
        return found


__all__ = [
    "DEFAULT_EPSILON",
    "check_settings",
    "clip_epsilon",
    "distribution_checks",
    "probability_checks",
]
