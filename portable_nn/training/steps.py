"""``compile`` and the single-batch steps: ``train_step`` / ``test_step`` (no host sync)."""

from __future__ import annotations

from typing import Any

from portable_nn import losses, optimizers
from portable_nn import metrics as pnn_metrics
from portable_nn.backend import device_scope


class StepsMixin:
    """Loss, optimizer and metrics, and one batch of training or evaluation."""

    def compile(
        self, loss: Any = None, optimizer: Any = "rmsprop", metrics: list[Any] | None = None
    ) -> None:
        """Set the loss, optimizer and metrics: objects or names (``pnn.losses.get``,
        ``pnn.optimizers.get``, ``pnn.metrics.get``). Keras's default optimizer is RMSprop."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. model.compile(loss='mse', ...)")
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics must be a list. Received: metrics={metrics!r}")
        loss = losses.get(loss)
        optimizer = optimizers.get(optimizer)
        compiled = [pnn_metrics.get(m) for m in metrics or []]
        names = ["loss"] + [m.name for m in compiled]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"metric names must be unique and not 'loss'; got {names}")
        self.loss, self.optimizer, self.compiled_metrics = loss, optimizer, compiled

    def _require_compiled(self, what: str) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(
                f"{what} needs a compiled model: call model.compile(loss=..., optimizer=...) first"
            )

    def train_step(self, x: Any, y: Any) -> Any:
        """Forward (training mode), loss and its gradient, backward, one optimizer update.

        Returns the batch loss as a 0-d array on the model's device (no host sync). ``x`` and
        ``y`` must already be arrays on the model's device (see ``pnn.asarray``).
        """
        self._require_compiled("train_step")
        with device_scope(x):
            return self._train_batch(x, y)[0]

    def test_step(self, x: Any, y: Any) -> Any:
        """The batch loss in inference mode, a 0-d array (no host sync, nothing updated)."""
        self._require_compiled("test_step")
        with device_scope(x):
            return self._test_batch(x, y)[0]

    def _train_batch(self, x: Any, y: Any) -> tuple[Any, Any]:
        y_pred, caches = self.forward(x, training=True)
        loss, dy = self._loss_value_and_gradient(y, y_pred)
        _, grads = self.backward(dy, caches, input_grad=False)
        self.optimizer.step(self, grads)
        return loss, y_pred

    def _test_batch(self, x: Any, y: Any) -> tuple[Any, Any]:
        y_pred = self.forward(x, training=False)[0]
        return self._loss_value_and_gradient(y, y_pred, gradient=False), y_pred

    def _loss_value_and_gradient(self, y: Any, y_pred: Any, gradient: bool = True) -> Any:
        """``loss.value_and_gradient`` (or the value alone) without the per-call value checks
        (NaN targets, label range, probability range), which read a flag back from the device:
        ``fit`` and ``evaluate`` check the whole data once instead. Shape and dtype checks
        still run. A user loss that is not a ``pnn.losses.Loss`` is called as it is."""
        loss = self.loss
        if not isinstance(loss, losses.Loss):
            return loss.value_and_gradient(y, y_pred) if gradient else loss(y, y_pred)
        if gradient:
            return loss.value_and_gradient(y, y_pred, check_values=False)
        return loss(y, y_pred, check_values=False)


__all__ = ["StepsMixin"]
