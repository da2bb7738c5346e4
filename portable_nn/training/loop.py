"""The batch loops behind ``fit``/``evaluate``/``predict``, with device-side running sums.

Nothing here reads a value back to the host per batch: the loss (times the batch length) and
each metric's ``batch_value`` (a sum over the batch) are added to 0-d device arrays, and logs
hold ``sum / samples`` as 0-d arrays. :func:`read_logs` turns a whole logs dict into Python
floats with ONE transfer (the values are stacked on the device first).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import array_api_extra as xpx

from portable_nn.backend import namespace_of, read_scalars
from portable_nn.data import ArrayData, unweighted

WEIGHTS = "sample_weight"  # the sums' key of sum(w) over the batches of weighted data


class Totals:
    """Running sums on the device: ``{"loss": sum_b loss_b * n_b, metric: sum_b batch_value}``
    and, for weighted data, ``WEIGHTS: sum_b sum_n w_n``."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.count = 0

    def means(self, prefix: str = "") -> dict[str, Any]:
        """``{prefix + name: sum / samples}`` as 0-d device arrays (no sync). With sample
        weights the metrics are weighted means, ``sum w v / sum w`` (0 when ``sum w`` is 0), as
        Keras's; the loss stays the mean over samples of the batches' weighted losses."""
        scale = 1.0 / max(self.count, 1)
        sums, weights = dict(self.sums), self.sums.get(WEIGHTS)
        sums.pop(WEIGHTS, None)
        logs = {prefix + "loss": sums.pop("loss") * scale} if "loss" in sums else {}
        if weights is None:
            return logs | {prefix + name: total * scale for name, total in sums.items()}
        positive = weights > 0.0  # sum w / 0 gives 0 (Keras's divide_no_nan)
        divide = operator.truediv
        return logs | {
            prefix + name: xpx.apply_where(positive, (total, weights), divide, fill_value=0.0)
            for name, total in sums.items()
        }


def read_logs(logs: dict[str, Any]) -> dict[str, float]:
    """Device 0-d values -> Python floats with one transfer (already-float entries pass)."""
    return read_scalars(logs)


def add_sums(totals: dict[str, Any], sums: dict[str, Any]) -> dict[str, Any]:
    """``totals + sums`` key by key (a new dict; keys missing from ``totals`` start at 0)."""
    return {k: v if k not in totals else totals[k] + v for k, v in sums.items()}


def batch_sums(model: Any, loss: Any, y_pred: Any, y: Any, count: int) -> dict[str, Any]:
    """The batch's contribution: loss (a mean) times its length, each metric's sum (weighted
    for weighted data) and then ``sum(w)``."""
    y, w = unweighted(y)
    sums = {"loss": loss * float(count)}
    for metric in model.compiled_metrics:
        sums[metric.name] = metric.batch_value(y, y_pred, w)
    if w is not None:
        xp = namespace_of(w)
        sums[WEIGHTS] = xp.asarray(xp.sum(xp.astype(w, loss.dtype)))
    return sums


def batch_hooks(callbacks: Any, kind: str) -> tuple[Callable | None, Callable | None]:
    """``(on_<kind>_batch_begin(step), on_<kind>_batch_end(step, logs))``, each ``None`` when
    no callback uses it: the loop then skips the call and the per-batch logs altogether."""
    found = []
    for when in ("begin", "end"):
        hook = f"on_{kind}_batch_{when}"
        found.append(getattr(callbacks, hook) if callbacks.implements(hook) else None)
    begin, end = found
    return (None if begin is None else lambda step: begin(step, None)), end


def run_epoch(model: Any, data: ArrayData, batch_size: int, order: Any, callbacks: Any) -> Totals:
    """One pass of ``train_step`` over the batches; stops early when ``model.stop_training``."""
    on_batch_begin, on_batch_end = batch_hooks(callbacks, "train")
    train_step = model._step_function()
    totals = Totals()
    for step, (xb, yb, count) in enumerate(data.batches(batch_size, order)):
        if on_batch_begin is not None:
            on_batch_begin(step)
        totals.sums = train_step(xb, yb, count, totals.sums)[0]
        totals.count += count
        if on_batch_end is not None:
            on_batch_end(step, totals.means())
        if model.stop_training and getattr(model, "_parallel", None) is None:
            break  # distributed: at the epoch's end, on every process (DataParallel.reduce)
    return totals


def run_test(model: Any, data: ArrayData, batch_size: int, callbacks: Any) -> Totals:
    """Loss and metric sums over ``data`` in inference mode."""
    on_begin, on_end = batch_hooks(callbacks, "test")
    test_step = model._test_function()
    totals = Totals()
    for step, (xb, yb, count) in enumerate(data.batches(batch_size)):
        if on_begin is not None:
            on_begin(step)
        totals.sums = test_step(xb, yb, count, totals.sums)
        totals.count += count
        if on_end is not None:
            on_end(step, totals.means())
    return totals


def run_predict(model: Any, data: ArrayData, batch_size: int, callbacks: Any) -> Any:
    """Inference outputs of every batch, concatenated on the model's device."""
    on_begin, on_end = batch_hooks(callbacks, "predict")
    predict = model._predict_function()
    outputs = []
    for step, (xb, _, _) in enumerate(data.batches(batch_size)):
        if on_begin is not None:
            on_begin(step)
        outputs.append(predict(xb))
        if on_end is not None:
            on_end(step, {"outputs": outputs[-1]})
    if len(outputs) == 1:
        return outputs[0]
    if isinstance(outputs[0], list):  # several outputs: each concatenated
        return [_concat([batch[i] for batch in outputs]) for i in range(len(outputs[0]))]
    return _concat(outputs)


def _concat(arrays: list[Any]) -> Any:
    return namespace_of(arrays[0]).concat(arrays, axis=0)


__all__ = ["Totals", "add_sums", "batch_sums", "read_logs", "run_epoch", "run_predict", "run_test"]
