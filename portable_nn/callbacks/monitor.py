"""The monitored quantity of EarlyStopping, ModelCheckpoint and ReduceLROnPlateau: direction
(``min``/``max``), improvement test and lookup in the epoch logs."""

from __future__ import annotations

import math
import warnings
from typing import Any


def resolve_mode(monitor: str, mode: Any) -> str:
    """``"min"`` or ``"max"``; ``"auto"`` is max for names containing ``"acc"`` or ending in
    ``"auc"`` (Keras's rule), min otherwise (losses, errors)."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'. Received: mode={mode!r}")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor or monitor.endswith("auc") else "min"


def improved(current: float, best: float, mode: str, min_delta: float = 0.0) -> bool:
    """``current < best - min_delta`` (min) or ``current > best + min_delta`` (max).
    NaN is never an improvement."""
    if mode == "min":
        return current < best - min_delta
    return current > best + min_delta


def monitor_value(logs: dict[str, Any] | None, monitor: str, owner: str) -> float | None:
    """The monitored value as a float, or ``None`` (with a warning) when logs lack it."""
    logs = logs or {}
    value = logs.get(monitor)
    if value is None:
        warnings.warn(
            f"{owner} is conditioned on {monitor!r}, which is not in the logs. "
            f"Available: {', '.join(sorted(logs)) or 'none'}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return float(value)


def worst(mode: str) -> float:
    return math.inf if mode == "min" else -math.inf


__all__ = ["improved", "monitor_value", "resolve_mode", "worst"]
