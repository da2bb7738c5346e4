"""``MonitorCallback``: what EarlyStopping, ModelCheckpoint and ReduceLROnPlateau share (as
Keras 3's ``monitor_callback.py``): the monitored quantity, its direction and the improvement
test."""

from __future__ import annotations

import math
import warnings

from portable_nn import validation

from .base import Callback, Logs


class MonitorCallback(Callback):
    """Base of the callbacks that watch ``logs[monitor]`` at the end of each epoch.

    ``mode``: ``"min"`` or ``"max"``; ``"auto"`` is max for names containing ``"acc"`` or
    ending in ``"auc"`` (Keras's rule), min otherwise (losses, errors). ``min_delta`` (>= 0,
    checked by the subclass) is the least change that counts as an improvement.
    """

    def __init__(self, monitor: str, mode: str, min_delta: float, verbose: int) -> None:
        super().__init__()
        self.monitor = validation.text("monitor", monitor)
        mode = validation.choice("mode", mode, ("auto", "min", "max"))
        if mode == "auto":
            mode = "max" if "acc" in monitor or monitor.endswith("auc") else "min"
        self.mode: str = mode
        self.min_delta = min_delta
        self.verbose = validation.non_negative_int("verbose", verbose)

    def _is_improvement(self, current: float, reference: float | None) -> bool:
        """``current < reference - min_delta`` (min) or ``current > reference + min_delta``
        (max); anything but NaN improves on ``None``. NaN is never an improvement."""
        if reference is None:
            return not math.isnan(current)
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def _worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def get_monitor_value(self, logs: Logs) -> float | None:
        """The monitored value as a float, or ``None`` (with a warning) when logs lack it."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"{type(self).__name__} is conditioned on {self.monitor!r}, which is not in the "
                f"logs. Available: {', '.join(sorted(logs)) or 'none'}",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        return float(value)

    def _say(self, message: str) -> None:
        if self.verbose:
            print(message)


__all__ = ["MonitorCallback"]
