"""Callbacks that set the optimizer's learning rate: ``LearningRateScheduler`` and
``ReduceLROnPlateau``. Both log the epoch's rate as ``logs["learning_rate"]``.

They need ``model.optimizer.learning_rate`` to be a number: an optimizer built with a schedule
object already decides its rate every step, so they raise ``TypeError`` at ``on_train_begin``
(before training changes anything) rather than silently replace the schedule, as Keras does.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from portable_nn import validation

from .base import Callback, Logs
from .monitor import MonitorCallback


def get_learning_rate(model: Any, owner: str) -> float:
    """The optimizer's current learning rate as a float (a 0-d array is read back once)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(f"{owner} needs a model whose optimizer has a learning_rate (compile it)")
    rate = optimizer.learning_rate
    if callable(rate):
        raise TypeError(
            f"{owner} sets the learning rate, but the optimizer follows the schedule {rate!r}; "
            "build the optimizer with a float learning_rate to use this callback"
        )
    return float(rate)


def set_learning_rate(model: Any, value: float) -> None:
    model.optimizer.learning_rate = float(value)


class LearningRateScheduler(Callback):
    """At each epoch's start, ``lr = schedule(epoch, lr)`` (or ``schedule(epoch)`` for a
    one-argument function); ``epoch`` is 0-based. The result must be a finite float >= 0."""

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be callable. Received: schedule={schedule!r}")
        self.schedule = schedule
        self.verbose = validation.non_negative_int("verbose", verbose)
        self._passes_rate = _takes_rate(schedule)

    def on_train_begin(self, logs: Logs = None) -> None:
        get_learning_rate(self.model, "LearningRateScheduler")

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        rate = get_learning_rate(self.model, "LearningRateScheduler")
        new = self.schedule(epoch, rate) if self._passes_rate else self.schedule(epoch)
        is_real = not isinstance(new, (str, bool)) and (
            isinstance(new, (int, float)) or getattr(new, "ndim", None) == 0
        )
        number = float(new) if is_real else math.nan
        if not (math.isfinite(number) and number >= 0.0):
            raise ValueError(
                f"schedule must return a finite float >= 0. Received: {new!r} at epoch {epoch}"
            )
        set_learning_rate(self.model, number)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {new}.")

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(self.model, "LearningRateScheduler")


def _takes_rate(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts ``(epoch, lr)`` (assumed for builtins without a signature)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(0, 0.0)
    except TypeError:
        return False
    return True


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved (by more
    than ``min_delta``) for ``patience`` epochs; never below ``min_lr``.

    After a reduction, ``cooldown`` epochs pass before the patience count restarts. Keras
    semantics: the count resets on improvement and during cooldown; ``mode="auto"`` is max for
    names containing ``"acc"``, min otherwise.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, validation.non_negative("min_delta", min_delta), verbose)
        self.factor = validation.real_number("factor", factor)
        if not 0.0 < self.factor < 1.0:
            raise ValueError(f"Expected 0 < factor < 1. Received: factor={factor!r}")
        self.patience = validation.non_negative_int("patience", patience)
        self.cooldown = validation.non_negative_int("cooldown", cooldown)
        self.min_lr = validation.non_negative("min_lr", min_lr)
        self._reset()

    def _reset(self) -> None:
        self.best, self.wait, self.cooldown_counter = self._worst(), 0, 0

    def on_train_begin(self, logs: Logs = None) -> None:
        get_learning_rate(self.model, "ReduceLROnPlateau")
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        rate = get_learning_rate(self.model, "ReduceLROnPlateau")
        if logs is not None:
            logs["learning_rate"] = rate
        current = self.get_monitor_value(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and rate > self.min_lr:
                new = max(rate * self.factor, self.min_lr)
                set_learning_rate(self.model, new)
                self._say(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                self.cooldown_counter, self.wait = self.cooldown, 0


__all__ = ["LearningRateScheduler", "ReduceLROnPlateau", "get_learning_rate", "set_learning_rate"]
