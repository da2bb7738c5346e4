"""``compile`` and the single-batch steps: ``train_step`` / ``test_step`` (no host sync)."""

from __future__ import annotations

import functools
from typing import Any

from portable_nn import losses, optimizers
from portable_nn import metrics as pnn_metrics
from portable_nn.backend import device_scope
from portable_nn.data import backend_of_model
from portable_nn.validation import choice

from .compiled import CompiledStep, eager_step, eager_test


class StepsMixin:
    """Loss, optimizer and metrics, and one batch of training or evaluation."""

    def compile(
        self,
        loss: Any = None,
        optimizer: Any = "rmsprop",
        metrics: list[Any] | None = None,
        jit: bool | str = "auto",
    ) -> None:
        """Set the loss, optimizer and metrics: objects or names (``pnn.losses.get``,
        ``pnn.optimizers.get``, ``pnn.metrics.get``). Keras's default optimizer is RMSprop.

        ``jit``: ``"auto"`` (default) compiles the steps where it pays: on JAX each step is one
        ``jax.jit`` function (see :mod:`portable_nn.training.compiled`). ``True`` also compiles
        on torch, with ``torch.compile`` (off by default: on a CPU it compiled a 784-256-256-10
        step in 12 s and ran it 3x slower than eager); elsewhere it raises ``ValueError`` at the
        first step. ``False`` runs the eager step. Compiled and eager steps give the same
        results (the same Dropout masks, the same update arithmetic).
        """
        jit = choice("jit", jit, ("auto", True, False))
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
        self.jit, self._compiled_step = jit, None

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
            return self._step_function()(x, y, int(x.shape[0]), {})[1]

    def test_step(self, x: Any, y: Any) -> Any:
        """The batch loss in inference mode, a 0-d array (no host sync, nothing updated)."""
        self._require_compiled("test_step")
        with device_scope(x):
            return self._test_batch(x, y)[0]

    def _compiled(self) -> CompiledStep | None:
        """The compiled steps when ``compile(jit=...)`` and the backend call for them: JAX
        with ``jit="auto"`` or ``True``; torch (``torch.compile``) with ``jit=True`` only."""
        step, jit = self._compiled_step, self.jit
        if step is not None or not jit or not self.built:
            return step
        backend = backend_of_model(self)
        if backend.name == "jax" or (backend.can_jit and jit is True):
            self._compiled_step = CompiledStep(self, backend)
        elif jit is True:
            raise ValueError(
                f"jit=True: the {backend.name} backend has no compiled step (JAX and torch "
                "have); use jit='auto' or jit=False"
            )
        return self._compiled_step

    def _step_function(self) -> Any:
        """``step(x, y, count, sums) -> (sums, loss)``: compiled or eager."""
        compiled = self._compiled()
        return functools.partial(eager_step, self) if compiled is None else compiled.train

    def _test_function(self) -> Any:
        """``step(x, y, count, sums) -> sums`` in inference mode: compiled or eager."""
        compiled = self._compiled()
        return functools.partial(eager_test, self) if compiled is None else compiled.test

    def _predict_function(self) -> Any:
        """``predict(x) -> y``: compiled or eager."""
        compiled = self._compiled()
        if compiled is None:
            return lambda x: self.forward(x, training=False)[0]
        return compiled.predict

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
