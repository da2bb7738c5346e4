"""``SwapEMAWeights``: evaluate and predict with the optimizer's moving average of the weights."""

from __future__ import annotations

from .base import Callback, Logs


class SwapEMAWeights(Callback):
    """Keras's ``SwapEMAWeights`` (without ``swap_on_epoch``): for an optimizer with
    ``use_ema=True``, the model's weights and their moving average are exchanged at
    ``on_test_begin``/``on_predict_begin`` and exchanged back at the matching ``*_end``, so
    validation inside ``fit`` (and ``evaluate``/``predict`` given this callback) sees the
    average while training goes on with the raw weights. At the end of ``fit`` the optimizer
    puts the average into the model anyway (``finalize_variable_values``), so saving after
    ``fit`` writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.swapped = False  # the moving average is in the model now

    def _swap(self, into_model: bool) -> None:
        if self.swapped != into_model:
            self.model.optimizer.swap_ema_weights(self.model)
            self.swapped = into_model

    def on_test_begin(self, logs: Logs = None) -> None:
        self._swap(True)

    def on_test_end(self, logs: Logs = None) -> None:
        self._swap(False)

    def on_predict_begin(self, logs: Logs = None) -> None:
        self._swap(True)

    def on_predict_end(self, logs: Logs = None) -> None:
        self._swap(False)
