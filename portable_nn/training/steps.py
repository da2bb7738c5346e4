"""``compile`` and the single-batch steps: ``train_step`` / ``test_step`` (no host sync)."""

from __future__ import annotations

import functools
import operator
from typing import Any

from portable_nn import losses, optimizers
from portable_nn import metrics as pnn_metrics
from portable_nn.backend import device_scope
from portable_nn.data import backend_of_model, each, first, unweighted
from portable_nn.layers.base import activity_penalties
from portable_nn.validation import choice, real_number

from .compiled import CompiledStep, eager_step, eager_test


class OutputMetric:
    """A metric of one output of a model with several: named ``"<output>_<metric>"`` (Keras's
    ``dense_1_accuracy``), computed on ``y[index]`` and ``y_pred[index]``."""

    def __init__(self, metric: Any, index: int, output: str) -> None:
        self.metric, self.index, self.name = metric, index, f"{output}_{metric.name}"

    def batch_value(self, y: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        return self.metric.batch_value(y[self.index], y_pred[self.index], sample_weight)


class StepsMixin:
    """Loss, optimizer and metrics, and one batch of training or evaluation."""

    output_names: list[str]

    def compile(
        self,
        loss: Any = None,
        optimizer: Any = "rmsprop",
        metrics: Any = None,
        jit: bool | str = "auto",
        loss_weights: Any = None,
    ) -> None:
        """Set the loss, optimizer and metrics: objects or names (``pnn.losses.get``,
        ``pnn.optimizers.get``, ``pnn.metrics.get``). Keras's default optimizer is RMSprop.

        A model with several outputs takes ``loss`` as a list (one per output), a dict by output
        name, or one loss for every output (as Keras), and minimises ``sum_i loss_weights[i] *
        loss_i`` (weights 1 by default; a list or dict as well). Its ``metrics`` are a list with
        one entry per output (a metric, a list of them, or None) or a dict by output name; each
        is logged as ``"<output name>_<metric name>"`` (Keras's names).

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
        outputs = self.output_names
        loss = _per_output("loss", loss, outputs, losses.get)
        weights = None
        if loss_weights is not None:
            number = lambda w: real_number("loss_weights", w)  # noqa: E731
            weights = _per_output("loss_weights", loss_weights, outputs, number)
        if len(outputs) > 1 and metrics is not None:
            per = per_output("metrics", metrics, outputs)
            by_output = [[pnn_metrics.get(m) for m in _listed(v)] for v in per]
            compiled: list[Any] = [
                OutputMetric(m, i, outputs[i]) for i, ms in enumerate(by_output) for m in ms
            ]
        else:
            if metrics is not None and not isinstance(metrics, (list, tuple)):
                raise TypeError(f"metrics must be a list. Received: metrics={metrics!r}")
            by_output = None
            compiled = [pnn_metrics.get(m) for m in metrics or []]
        optimizer = optimizers.get(optimizer)
        names = ["loss"] + [m.name for m in compiled]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"metric names must be unique and not 'loss'; got {names}")
        self.loss, self.optimizer, self.compiled_metrics = loss, optimizer, compiled
        self.loss_weights, self._output_metrics = weights, by_output
        self.jit, self._compiled_step = jit, None

    def get_compile_config(self) -> dict[str, Any] | None:
        """JSON-friendly compile settings (``None`` before ``compile``), as Keras's; checkpoints
        store them and :meth:`compile_from_config` restores them."""
        if self.loss is None and self.optimizer is None:
            return None
        metrics = self._output_metrics or self.compiled_metrics  # per output, or one list
        config = {
            "loss": None if self.loss is None else each(losses.serialize, self.loss),
            "optimizer": None if self.optimizer is None else optimizers.serialize(self.optimizer),
            "metrics": [each(pnn_metrics.serialize, m) for m in metrics],
        }
        if self.loss_weights is not None:
            config["loss_weights"] = self.loss_weights
        return config

    def compile_from_config(
        self, config: dict[str, Any], custom_objects: dict[str, Any] | None = None
    ) -> None:
        """Compile as :meth:`get_compile_config` described (``custom_objects``: user metric
        functions by name)."""
        loss, optimizer = config.get("loss"), config.get("optimizer")
        load = lambda m: pnn_metrics.deserialize(m, custom_objects)  # noqa: E731
        self.compile(
            loss=None if loss is None else each(losses.get, loss),
            optimizer=None if optimizer is None else optimizers.get(optimizer),
            metrics=[each(load, m) for m in config.get("metrics", [])],
            loss_weights=config.get("loss_weights"),
        )

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
        compiled = self._compiled_step  # (made by a compiled model's first step)
        if compiled is None:
            self._require_compiled("train_step")
            compiled = self._compiled()
        if compiled is not None:  # JAX or torch: no device context to enter; no sums
            return compiled.train(x, y, int(first(x).shape[0]), None)[1]
        with device_scope(first(x)):
            return eager_step(self, x, y, int(first(x).shape[0]), {})[1]

    def test_step(self, x: Any, y: Any) -> Any:
        """The batch loss in inference mode, a 0-d array (no host sync, nothing updated)."""
        self._require_compiled("test_step")
        with device_scope(first(x)):
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
        """``step(x, y, count, sums) -> (sums, loss)``: data-parallel, compiled or eager."""
        parallel = getattr(self, "_parallel", None)
        if parallel is not None:
            return parallel.train
        compiled = self._compiled()
        return functools.partial(eager_step, self) if compiled is None else compiled.train

    def _test_function(self) -> Any:
        """``step(x, y, count, sums) -> sums`` in inference mode: data-parallel, compiled or
        eager."""
        parallel = getattr(self, "_parallel", None)
        if parallel is not None:
            return parallel.test
        compiled = self._compiled()
        return functools.partial(eager_test, self) if compiled is None else compiled.test

    def _predict_function(self) -> Any:
        """``predict(x) -> y``: compiled or eager."""
        compiled = self._compiled()
        if compiled is None:
            return lambda x: self.forward(x, training=False)[0]
        return compiled.predict

    def _train_batch(self, x: Any, y: Any) -> tuple[Any, Any]:
        with activity_penalties() as activity:
            y_pred, caches = self.forward(x, training=True)
        loss, dy = self._loss_value_and_gradient(y, y_pred)
        _, grads = self.backward(dy, caches, input_grad=False)
        loss, grads = self._regularized(loss, grads, activity)
        self.optimizer.step(self, grads)
        return loss, y_pred

    def _test_batch(self, x: Any, y: Any) -> tuple[Any, Any]:
        with activity_penalties() as activity:
            y_pred = self.forward(x, training=False)[0]
        loss = self._loss_value_and_gradient(y, y_pred, gradient=False)
        return self._regularized(loss, None, activity)[0], y_pred

    def _regularized(
        self, loss: Any, grads: dict[str, Any] | None = None, activity: list[Any] = ()
    ) -> tuple[Any, Any]:
        """The penalties added (Keras reports the loss with them, in training and evaluation
        alike): ``loss + sum_i R_i(W_i) + sum_j A_j(y_j)`` and ``dL/dW_i + dR_i/dW_i`` (the
        activity penalties' gradients reach ``dy`` in backward: ``Layer.backward_from``);
        unchanged without regularizers."""
        penalty, extra = self.penalties()
        for value in activity:
            loss = loss + value
        if not extra:
            return loss, grads
        if grads is not None:
            grads = {k: g + extra[k] if k in extra else g for k, g in grads.items()}
        return loss + penalty, grads

    def _loss_value_and_gradient(self, y: Any, y_pred: Any, gradient: bool = True) -> Any:
        """``loss.value_and_gradient`` (or the value alone) without the per-call value checks
        (NaN targets, label range, probability range), which read a flag back from the device:
        ``fit`` and ``evaluate`` check the whole data once instead. Shape and dtype checks
        still run. A user loss that is not a ``pnn.losses.Loss`` is called as it is.

        Several outputs: ``L = sum_i w_i L_i(y_i, p_i)`` and ``dL/dp_i = w_i dL_i/dp_i`` (a list).
        ``y`` may be a :class:`~portable_nn.data.Weighted`: its per-sample weights go to every
        loss as ``sample_weight`` (Keras's ``fit(sample_weight=...)``).
        """
        (y, sample_weight), loss, weights = unweighted(y), self.loss, self.loss_weights
        if not isinstance(loss, list):
            return _value_and_gradient(loss, y, y_pred, gradient, weights, sample_weight)
        terms = [
            _value_and_gradient(one, t, p, gradient, w, sample_weight)
            for one, t, p, w in zip(loss, y, y_pred, weights or [None] * len(loss))
        ]
        values = [t[0] for t in terms] if gradient else terms
        total = functools.reduce(operator.add, values)
        return (total, [t[1] for t in terms]) if gradient else total


def _value_and_gradient(
    loss: Any, y: Any, y_pred: Any, gradient: bool, weight: float | None, sample_weight: Any
) -> Any:
    """One loss (times ``weight`` when given), checked as :meth:`_loss_value_and_gradient` says;
    ``sample_weight`` (None or ``(N,)``) goes to the loss (a user loss gets it by keyword only
    when given)."""
    given = {} if sample_weight is None else {"sample_weight": sample_weight}
    if not isinstance(loss, losses.Loss):
        out = loss.value_and_gradient(y, y_pred, **given) if gradient else loss(y, y_pred, **given)
    elif gradient:
        out = loss.value_and_gradient(y, y_pred, check_values=False, **given)
    else:
        out = loss(y, y_pred, check_values=False, **given)
    if weight is None or weight == 1.0:
        return out
    return (out[0] * weight, out[1] * weight) if gradient else out * weight


def per_output(what: str, value: Any, outputs: list[str]) -> list[Any]:
    """``value`` as one entry per output: from a list/tuple in output order or a dict by output
    name; a single value serves a model with one output (and every output, for the loss).
    ``ValueError`` naming the argument, the outputs and what was received otherwise."""
    if isinstance(value, dict):
        if set(value) != set(outputs):
            raise ValueError(
                f"{what} must have one entry per output {outputs}. Received keys {sorted(value)}"
            )
        return [value[k] for k in outputs]
    if isinstance(value, (list, tuple)):
        if len(value) != len(outputs):
            raise ValueError(
                f"{what} must have one entry per output {outputs}. Received {what}={value!r} of "
                f"length {len(value)}"
            )
        return list(value)
    if len(outputs) > 1 and what != "loss":  # one loss serves every output, as in Keras
        raise ValueError(
            f"{what} must be a list or a dict with one entry per output {outputs}. "
            f"Received: {what}={value!r}"
        )
    return [value] * max(len(outputs), 1)


def _per_output(what: str, value: Any, outputs: list[str], fn: Any) -> Any:
    """``fn`` of each entry: a list for several outputs, one value for one."""
    values = [fn(v) for v in per_output(what, value, outputs)]
    return values if len(outputs) > 1 else values[0]


def _listed(value: Any) -> list[Any]:
    """A metric entry of one output: None, one metric, or a list of them."""
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


__all__ = ["OutputMetric", "StepsMixin", "per_output"]
