"""``EarlyStopping``: stop when a monitored quantity stops improving (Keras 3 semantics)."""

from __future__ import annotations

from typing import Any

from portable_nn import validation
from portable_nn.backend import namespace_of

from .base import Logs
from .monitor import MonitorCallback


class EarlyStopping(MonitorCallback):
    """Stop training once ``monitor`` has not improved for ``patience`` epochs.

    An epoch improves when ``current < best - min_delta`` (mode min) or
    ``current > best + min_delta`` (mode max); ``mode="auto"`` is max for names containing
    ``"acc"``, min otherwise. NaN never improves. With ``patience=0`` training stops at the
    first epoch that does not improve. Epochs before ``start_from_epoch`` are ignored.

    ``baseline``: epochs that improve on ``best`` but not on the baseline do not reset the
    patience count, so training stops after ``patience`` epochs that fail to beat it, as the
    Keras documentation says (Keras 3's code skips the check on improving epochs, so it never
    stops while the value creeps towards the baseline).

    ``restore_best_weights``: the parameters and buffers of the best epoch are copied (real
    copies on the device, no host transfer) and loaded back at the end of training, whether or
    not it stopped early (Keras 3); the first monitored epoch counts as the best until one
    improves.

    Attributes: ``stopped_epoch`` (0-based, 0 if not stopped), ``best``, ``best_epoch``,
    ``wait``, ``best_weights``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(
            monitor, mode, abs(validation.real_number("min_delta", min_delta)), verbose
        )
        self.patience = validation.non_negative_int("patience", patience)
        self.baseline = None if baseline is None else validation.real_number("baseline", baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = validation.non_negative_int("start_from_epoch", start_from_epoch)
        self.on_train_begin()

    def on_train_begin(self, logs: Logs = None) -> None:
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best: float | None = None
        self.best_weights: dict[str, Any] | None = None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = _copy_state(self.model)
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
                return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = _copy_state(self.model), epoch
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs = None) -> None:
        if self.stopped_epoch > 0:
            self._say(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            self._say(
                f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}."
            )
            self.model.load_state_dict(self.best_weights)


def _copy_state(model: Any) -> dict[str, Any]:
    """Copies of every parameter and buffer, in their namespace and on their device (an
    in-place optimizer update cannot change them)."""
    return {name: namespace_of(a).asarray(a, copy=True) for name, a in model.state_dict().items()}


__all__ = ["EarlyStopping"]
