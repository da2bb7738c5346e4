"""``ModelCheckpoint``: save the model (or its weights) at the end of epochs."""

from __future__ import annotations

import os
from typing import Any

from portable_nn import validation

from .base import Logs, file_path
from .monitor import MonitorCallback


class ModelCheckpoint(MonitorCallback):
    """Call ``model.save(path)`` or ``model.save_weights(path)`` at the end of each epoch.

    ``filepath`` may hold ``str.format`` fields filled from ``epoch`` (1-based, as Keras) and
    the epoch logs, e.g. ``"ckpt/{epoch:02d}-{val_loss:.4f}.safetensors"``; a missing field
    raises ``KeyError`` naming the available ones. Missing folders are created. With
    ``save_best_only`` it saves only when ``monitor`` improves on the best value so far
    (``mode`` as in :class:`EarlyStopping`; ``initial_value_threshold`` is the value to beat
    first); the best value is kept across ``fit`` calls, as in Keras. Saving happens every
    epoch (Keras's ``save_freq="epoch"``).
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, 0.0, verbose)
        self.filepath = file_path("filepath", filepath)
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.best = (
            self._worst()
            if initial_value_threshold is None
            else validation.real_number("initial_value_threshold", initial_value_threshold)
        )
        self.last_saved: str | None = None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        path = self.format_path(epoch, logs)
        if self.save_best_only:
            current = self.get_monitor_value(logs)
            if current is None:
                return
            if not self._is_improvement(current, self.best):
                self._say(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            self._say(
                f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                f"{current:.5f}, saving model to {path}"
            )
            self.best = current
        else:
            self._say(f"Epoch {epoch + 1}: saving model to {path}")
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        (self.model.save_weights if self.save_weights_only else self.model.save)(path)
        self.last_saved = path

    def format_path(self, epoch: int, logs: Logs = None) -> str:
        """``filepath`` with ``{epoch}`` (1-based) and log entries filled in."""
        fields: dict[str, Any] = {**(logs or {}), "epoch": epoch + 1}
        try:
            return self.filepath.format_map(fields)
        except KeyError as exc:
            raise KeyError(
                f"ModelCheckpoint cannot format filepath {self.filepath!r}: no log entry "
                f"{exc.args[0]!r}; available: {', '.join(sorted(fields))}"
            ) from None


__all__ = ["ModelCheckpoint"]
