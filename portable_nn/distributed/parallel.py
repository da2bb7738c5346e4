"""Data-parallel ``fit``: every process holds the whole model and takes its shard of each
global batch; gradients are summed across processes with one all-reduce per step.

For a global batch of ``B`` samples on ``W`` processes, process ``k`` takes rows
``[a_k, a_k + n_k)`` of it (``n_k`` = ``B // W``, one more for the first ``B % W``; maybe none)
and computes its part of the batch loss: its losses reduce inside
:func:`portable_nn.losses.base.global_batch`, dividing by the global batch's count (or sum of
sample weights, or of counted labels: one small all-reduce), so the processes' losses and
gradients add up to the whole batch's, whatever the split and the reduction (also the last,
partial batch). Penalties (regularizers) are added after the sum, once. The gradients are
all-reduced as flat buffers of about ``BUCKET_BYTES`` each, last layers first, each started
(non-blocking) as soon as the backward pass has produced it. Every process then applies the
same optimizer update to the same parameters.

Initial parameters, buffers and random generators are broadcast from rank 0; shuffling and
Dropout masks come from those generators, and a Dropout mask is drawn for the rows of the whole
batch (:class:`portable_nn.random.RowOffset`), so a run on ``W`` processes equals a run on one.
BatchNormalization uses each process's batch statistics, its running statistics broadcast from
rank 0 at the end of every epoch (PyTorch's DDP broadcasts them before every step);
``SyncBatchNormalization`` uses the whole batch's. Loss and metric sums are added across
processes once per epoch: callbacks see global logs at the epoch's end, this process's running
values during it, and a ``stop_training`` set during an epoch (by any process) ends training
at that epoch's end on every process.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from portable_nn.backend import namespace_of
from portable_nn.backend.collectives import Engine
from portable_nn.layers.base import activity_penalties
from portable_nn.losses.base import global_batch
from portable_nn.random import RowOffset
from portable_nn.training.loop import Totals, add_sums, batch_sums

# gradients are all-reduced in buckets of about this size (PyTorch DDP's bucket_cap_mb)
BUCKET_BYTES = int(float(os.environ.get("PORTABLE_NN_BUCKET_MB", "8")) * (1 << 20))
_STEP_ENGINE: contextvars.ContextVar[Engine | None] = contextvars.ContextVar("step", default=None)


def step_engine() -> Engine | None:
    """The engine while a data-parallel train step runs (``SyncBatchNormalization`` then sums
    its statistics over the processes), else ``None``."""
    return _STEP_ENGINE.get()


@contextlib.contextmanager
def _stepping(engine: Engine) -> Iterator[None]:
    token = _STEP_ENGINE.set(engine)
    try:
        yield
    finally:
        _STEP_ENGINE.reset(token)


class Shard:
    """This process's rows of each global batch (given to :class:`~portable_nn.data.ArrayData`
    as ``part``); remembers the current batch's first row and length for the step."""

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size
        self.first, self.total = 0, 0

    def rows(self, start: int, stop: int) -> tuple[int, int]:
        total = stop - start
        base, extra = divmod(total, self.size)
        first = self.rank * base + min(self.rank, extra)
        self.first, self.total = first, total
        return start + first, start + first + base + (self.rank < extra)


class DataParallel:
    """The distributed side of one ``fit`` (see the module docstring). ``DataParallel.last``:
    the latest one (its ``seconds`` are the benchmarks' timings)."""

    last: DataParallel | None = None

    def __init__(self, model: Any, engine: Engine) -> None:
        self.model, self.engine = model, engine
        self.shard = Shard(engine.rank, engine.size)
        self.seconds = {"steps": 0, "backward": 0.0, "allreduce_wait": 0.0}  # for benchmarks
        DataParallel.last = self

    # -- before the first step -----------------------------------------------------------------
    def check_same_job(self, x: Any, y: Any, settings: dict[str, Any]) -> None:
        """Every process must train the same model on the same data shapes with the same
        settings: compared through one gather, ``ValueError`` on every process naming the rank
        and what differs, before anything changes."""
        mine = {
            "model": json.dumps(_unnamed(self.model.get_config()), sort_keys=True, default=str),
            "data": [_shapes(x), _shapes(y)],
            **settings,
        }
        everyone = self.engine.allgather_object(mine)
        for rank, theirs in enumerate(everyone):
            for key in mine:
                if theirs.get(key) != everyone[0].get(key):
                    what = "model architecture" if key == "model" else key
                    detail = "" if key == "model" else f": {everyone[0][key]} vs {theirs[key]}"
                    raise ValueError(
                        f"distributed fit: rank {rank}'s {what} differs from rank 0's{detail}; "
                        "every process must build the same model and call fit with the same "
                        "data and arguments"
                    )

    def broadcast_state(self) -> None:
        """Rank 0's parameters, buffers and random generators on every process."""
        model = self.model
        for kind, arrays in (("params", model.parameters()), ("bufs", model.buffers())):
            if arrays:
                flat, split = _flatten(arrays)
                values = split(self.engine.broadcast(flat))
                if kind == "params":
                    model.assign_parameters(values)
                else:
                    model.assign_buffers(values)
        model.set_rng_state(self.engine.allgather_object(model.get_rng_state())[0])

    def attach(self, train: Any, val: Any) -> None:
        """Shard the prepared data (batches of arrays only), then start from rank 0's state."""
        for data in (train, val):
            if data is None:
                continue
            if not hasattr(data, "part"):
                raise ValueError(
                    "distributed fit needs arrays or memory maps (every process passes the "
                    "same data and takes its shard), not a batch generator"
                )
            data.part, data.prefetch = self.shard, False  # the step reads the shard's rows
        self.broadcast_state()

    # -- every step ----------------------------------------------------------------------------
    def train(self, x: Any, y: Any, count: int, sums: dict[str, Any]) -> tuple[dict, Any]:
        """The data-parallel train step on this process's ``count`` rows of the batch (maybe
        none: it then adds zeros, but joins every collective)."""
        model, total = self.model, self.shard.total
        with _stepping(self.engine):
            with RowOffset(self.shard.first), activity_penalties() as activity:
                y_pred, caches = model.forward(x, training=True)
            if activity:
                raise ValueError("distributed fit does not support activity_regularizer yet")
            with global_batch(total, self._sum_divisor):  # this process's part of the loss
                loss, dy = model._loss_value_and_gradient(y, y_pred)
            grads = self._backward_and_reduce(dy, caches)
        penalty, extra = model.penalties()
        if extra:
            # after the sum: every process adds the same dR/dW once
            grads = {k: g + extra[k] if k in extra else g for k, g in grads.items()}
        model.optimizer.step(model, grads)
        return add_sums(sums, self._sums(loss, penalty, y_pred, y, count)), loss + penalty

    def test(self, x: Any, y: Any, count: int, sums: dict[str, Any]) -> dict[str, Any]:
        """The inference step on this process's rows of a validation batch (maybe none), its
        loss reduced as part of the global batch's, as in :meth:`train`."""
        model = self.model
        y_pred = model.forward(x, training=False)[0]
        with global_batch(self.shard.total, self._sum_divisor):
            loss = model._loss_value_and_gradient(y, y_pred, gradient=False)
        return add_sums(sums, self._sums(loss, model.penalties()[0], y_pred, y, count))

    def _sums(self, part: Any, penalty: Any, y_pred: Any, y: Any, count: int) -> dict[str, Any]:
        """The batch's loss and metric sums on this process's ``count`` rows (maybe none):
        the loss sum from its ``part`` of the global batch's mean, plus the penalty per row,
        so the processes' sums add up to one process's."""
        sums = batch_sums(self.model, part, y_pred, y, count)
        sums["loss"] = part * float(self.shard.total) + penalty * float(count)
        return sums

    def _sum_divisor(self, divisor: Any) -> Any:
        """A loss's ``sum(w)`` (or count of counted values) over the processes."""
        return self.engine.allreduce(namespace_of(divisor).reshape(divisor, (1,)))[0]

    def _backward_and_reduce(self, dy: Any, caches: Any) -> dict[str, Any]:
        """Backward, and the gradients summed over processes: flat buckets of about
        ``BUCKET_BYTES``, each all-reduce started (non-blocking) as soon as the backward pass
        has produced its layers (a model whose ``backward`` takes ``on_layer``: Sequential),
        so the sums of the last layers travel while the first layers still run backward."""
        model, start = self.model, time.perf_counter()
        trained = set(model.trainable_parameters())
        pending: list[tuple[Any, Any]] = []
        bucket: dict[str, Any] = {}

        def ready(grads: dict[str, Any]) -> None:
            for name, g in grads.items():
                if name in trained:
                    bucket[name] = g
            if sum(_nbytes(g) for g in bucket.values()) >= BUCKET_BYTES:
                pending.append(self._start(dict(bucket)))
                bucket.clear()
            for work, _ in pending:
                work.progress()  # MPI moves a started collective along only inside its calls

        if "on_layer" in _parameters(model.backward):
            _, grads = model.backward(dy, caches, input_grad=False, on_layer=ready)
        else:
            _, grads = model.backward(dy, caches, input_grad=False)
            ready(dict(reversed(list(grads.items()))))
        backward_done = time.perf_counter()
        if bucket:
            pending.append(self._start(dict(bucket)))
        summed: dict[str, Any] = {}
        for work, split in pending:
            summed.update(split(work.wait()))
        seconds = self.seconds  # wall time; the wait includes starting the last all-reduce
        seconds["steps"] += 1
        seconds["backward"] += backward_done - start
        seconds["allreduce_wait"] += time.perf_counter() - backward_done
        return {name: summed[name] for name in grads if name in summed}

    def _start(self, grads: dict[str, Any]) -> tuple[Any, Any]:
        flat, split = _flatten(grads)
        return self.engine.iallreduce(flat), split

    # -- every epoch ---------------------------------------------------------------------------
    def end_epoch(self) -> None:
        """Rank 0's buffers on every process (BatchNormalization's running statistics, which
        each process's batches moved apart), so validation, ``evaluate`` and ``predict`` use
        one model; ``SyncBatchNormalization``'s are equal already. One broadcast per epoch."""
        buffers = self.model.buffers()
        if buffers:
            flat, split = _flatten(buffers)
            self.model.assign_buffers(split(self.engine.broadcast(flat)))

    def reduce(self, *totals: Totals | None) -> tuple[Totals | None, ...]:
        """Loss and metric sums and sample counts added over processes (the epoch's training
        and validation totals together), and whether any process asked to stop training
        (a callback during a batch: honoured at the epoch's end on every process): ONE
        all-reduce."""
        present = [t for t in totals if t is not None and t.sums]
        if not present:
            return totals
        first = next(iter(present[0].sums.values()))
        xp, dtype = namespace_of(first), first.dtype
        parts = []
        for t in present:
            parts += [xp.astype(xp.reshape(v, (1,)), dtype) for v in t.sums.values()]
            parts.append(xp.asarray([float(t.count)], dtype=dtype, device=first.device))
        stop = float(bool(self.model.stop_training))
        parts.append(xp.asarray([stop], dtype=dtype, device=first.device))
        summed, at, out = self.engine.allreduce(xp.concat(parts)), 0, {}
        self.model.stop_training = bool(summed[-1] > 0)
        for t in present:
            new = Totals()
            new.sums = {k: summed[at + i] for i, k in enumerate(t.sums)}
            at += len(t.sums)
            new.count, at = int(round(float(summed[at]))), at + 1
            out[id(t)] = new
        return tuple(None if t is None else out.get(id(t), t) for t in totals)


def data_parallel(model: Any, x: Any, y: Any, validation: Any, settings: dict) -> DataParallel:
    """The :class:`DataParallel` of a ``fit(distributed=True)`` on the launcher's engine
    (checked to run the same job on every process)."""
    from portable_nn import distributed

    parallel = DataParallel(model, distributed.init())
    val_shapes = None if not isinstance(validation, (tuple, list)) else _shapes(list(validation))
    parallel.check_same_job(x, y, {**settings, "validation": val_shapes})
    return parallel


def _unnamed(config: Any) -> Any:
    """A config without its ``name`` entries (names count up per process: a model built
    after another one on one rank only is still the same architecture)."""
    if isinstance(config, dict):
        return {k: _unnamed(v) for k, v in config.items() if k != "name"}
    if isinstance(config, list):
        return [_unnamed(v) for v in config]
    return config


def _shapes(data: Any) -> Any:
    if data is None:
        return None
    if isinstance(data, dict):
        return {k: _shapes(v) for k, v in sorted(data.items())}
    if isinstance(data, (list, tuple)):
        return [_shapes(v) for v in data]
    shape = getattr(data, "shape", None)
    return None if shape is None else [int(s) for s in shape]


def _parameters(method: Any) -> Any:
    import inspect

    return inspect.signature(method).parameters


def _nbytes(array: Any) -> int:
    size = 1
    for d in array.shape:
        size *= int(d)
    return size * (namespace_of(array).finfo(array.dtype).bits // 8)


def _flatten(arrays: dict[str, Any]) -> tuple[Any, Any]:
    """One flat array of ``arrays`` (in order) and the function splitting such an array back
    into arrays of their names and shapes."""
    first = next(iter(arrays.values()))
    xp = namespace_of(first)
    shapes = {k: tuple(a.shape) for k, a in arrays.items()}
    flat = xp.concat([xp.reshape(a, (-1,)) for a in arrays.values()])

    def split(values: Any) -> dict[str, Any]:
        out, start = {}, 0
        for name, shape in shapes.items():
            size = 1
            for d in shape:
                size *= d
            out[name] = xp.reshape(values[start : start + size], shape)
            start += size
        return out

    return flat, split


__all__ = ["DataParallel", "Shard"]
