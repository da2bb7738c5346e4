"""Keras-style training API for models: compile / fit / evaluate / predict (work in progress)."""

from __future__ import annotations

from typing import Any


class TrainingMixin:
    """compile / fit / evaluate / predict / train_step for a model with forward/backward."""

    def _init_training(self) -> None:
        self.loss: Any = None
        self.optimizer: Any = None
        self.compiled_metrics: list[Any] = []
        self.stop_training = False
        self.epoch = 0
        self.history: Any = None
