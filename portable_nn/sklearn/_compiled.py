"""The stochastic solvers' mini-batch update as ONE compiled function (JAX).

The update of ``_solvers.train_batch`` written as a pure function of what it changes::

    (arrays, constants, index, rate, total, x, y, sample_weight)
        -> (arrays, index + 1, total + n * loss)

``arrays``: the network's parameters, then the optimizer's slots, as flat tuples named by a
:class:`~portable_nn.training.plan.Layout`. It is traced from the eager code itself (the
network gets the traced arrays, then ``loss_and_gradients``, ``* rate`` for ``sgd`` and the
optimizer's pure rule ``_apply_rule``), as ``Model.fit``'s compiled step
(:mod:`portable_nn.training.compiled`) is, and reuses its pieces: the :class:`Plan` (where the
arrays live; the optimizer's state kept as a flat record, unpacked when read) and the
:class:`Constants` (Adam's bias corrections made on the host ahead, a row per step, sent once
per 256 steps). What changes between calls is an argument, never a traced-in constant:
``sgd``'s rate (``invscaling``, ``adaptive``: a 0-d array, sent again when it changes), the
constants' row index and the batch (the sample weights' sum is taken inside). So one function
is traced per batch length (the last partial batch adds one), with or without sample weights,
and shared by every fit with the same settings (:data:`_FUNCTIONS`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from portable_nn.training.plan import Constants, Layout, Plan

from ._network import Objective, loss_and_gradients

KEEP = 32  # compiled functions kept (the settings last used)
_FUNCTIONS: OrderedDict[tuple, tuple[Any, _Tracing]] = OrderedDict()
TRACES = [0]  # traces so far (the tests count them)


class _Tracing:
    """The update a shared function traces with, set for the length of each call."""

    current: CompiledUpdate | None = None


class CompiledUpdate:
    """``(x, y, sample_weight, n, total) -> total + n * loss``, updating ``est``'s network and
    optimizer as ``train_batch`` does, in one compiled call."""

    def __init__(self, est: Any, objective: Objective) -> None:
        self.est, self.objective, self.net = est, objective, est._net
        self.backend = est._placement.backend
        self.sgd = est.solver == "sgd"
        self.settings = _settings(est)
        self.plan: Plan | None = None
        self.constants = Constants(self.backend)
        self.rate: tuple[float, Any] | None = None  # sgd: (rate, a 1-element array of it)
        self.zero: Any = None

    def __call__(self, x: Any, y: Any, sample_weight: Any, n: int, total: Any) -> Any:
        plan = self.plan
        if plan is None or not plan.holds(self.net):
            plan = self.plan = self._plan()
        if total is None:
            total = self.zero
        arrays, _ = plan.arrays()
        block, index = self.constants.take(plan.optimizer, plan.record.step, plan.dtype)
        fn, tracing = self._function(plan.layout, n, sample_weight is not None)
        rate, traces, tracing.current = self._rate(plan), TRACES[0], self
        try:
            new, index, total = fn(arrays, block, index, rate, total, x, y, sample_weight)
        finally:
            tracing.current = None
            if TRACES[0] != traces:  # the network holds tracers: its arrays back
                plan.install(arrays)
        plan.install(new)
        plan.count(new)
        self.constants.advance(index)
        return total

    def _plan(self) -> Plan:
        """Where the arrays live and the optimizer's state as a record it holds pending."""
        net, optimizer = self.net, self.est._optimizer
        net.optimizer = optimizer  # the plan's optimizer (``Plan.holds`` checks it)
        params = net.parameters()
        state = optimizer.state_for(params)
        names = tuple(name for name in state if name != "step")
        slots = tuple(tuple(state[name]) for name in names)
        flags = tuple(layer.trainable for layer in [net, *net._sublayers()])
        dtype = next(iter(params.values())).dtype
        xp = self.backend.xp
        self.zero = xp.zeros((), dtype=dtype, device=self.backend.device)
        return Plan(net, state, Layout(names, (), (), slots, flags), dtype)

    def _rate(self, plan: Plan) -> Any:
        """``sgd``'s current rate as a 1-element array on the device (None for ``adam``)."""
        if not self.sgd:
            return None
        rate = float(self.est._learning_rate)
        if self.rate is None or self.rate[0] != rate:
            self.rate = (rate, self.backend.scalars((rate,), plan.dtype, resident=True))
        return self.rate[1]

    def _function(self, layout: Layout, n: int, weighted: bool) -> tuple[Any, _Tracing]:
        key = (self.settings, layout, n, weighted)
        found = _FUNCTIONS.get(key)
        if found is None:
            tracing = _Tracing()
            found = _FUNCTIONS[key] = (self.backend.jit(_update(tracing, layout, n)), tracing)
            if len(_FUNCTIONS) > KEEP:
                _FUNCTIONS.popitem(last=False)
        else:
            _FUNCTIONS.move_to_end(key)
        return found


def _update(tracing: _Tracing, layout: Layout, n: int) -> Any:
    """The pure update of one batch of ``n`` samples (traced with ``tracing.current``)."""
    names, slots, count = layout.trained, layout.slots, len(layout.trained)

    def update(arrays, block, index, rate, total, x, y, sample_weight):  # type: ignore[no-untyped-def]
        this = tracing.current
        assert this is not None and this.plan is not None, "traced outside a call"
        TRACES[0] += 1
        this.plan.install(arrays)  # the network computes on the traced arrays
        loss, grads = loss_and_gradients(this.net, this.objective, x, y, sample_weight)
        if rate is not None:  # sgd: the rate folded into the gradient (train_batch)
            grads = {name: g * rate[0] for name, g in grads.items()}
        row = block[index]  # this step's constants (Adam's bias corrections)
        constants = tuple(row[i] for i in range(row.shape[0]))
        flat = iter(arrays[count:])
        state = {name: {s: next(flat) for s in kept} for name, kept in zip(names, slots)}
        params = dict(zip(names, arrays[:count]))
        new, new_state = this.plan.optimizer._apply_rule(params, grads, state, constants)
        arrays = (
            *(new[name] for name in names),
            *(new_state[name][s] for name, kept in zip(names, slots) for s in kept),
        )
        return arrays, index + 1, total + loss * float(n)

    return update


def _settings(est: Any) -> tuple:
    """What a trace bakes in besides the layout and the arrays' shapes and dtypes: the hidden
    and output activations, the penalty and the optimizer's branches (the rates, betas,
    epsilon and momentum are traced constants: a search over them shares the functions)."""
    momentum = est.solver == "sgd" and est.momentum > 0
    nesterov = momentum and bool(est.nesterovs_momentum)
    return (est.activation, est.out_activation_, float(est.alpha), est.solver, momentum, nesterov)


__all__ = ["TRACES", "CompiledUpdate"]
