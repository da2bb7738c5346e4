"""A train step compiled as ONE function: ``model.compile(..., jit="auto")``.

The step is written as a pure function of everything it changes,

    ((trained, buffers, slots), frozen, constants, index, keys, sums, x, y)
        -> ((trained, buffers, slots), index + 1, sums, loss)

built from the same code as the eager step: the model's layers get the traced arrays, run
``forward``/``loss.value_and_gradient``/``backward``, the optimizer's update rule runs with the
step's constants (bias corrections, learning rate: row ``index`` of ``constants``) as 0-d
arrays, and the loss and metric sums of the batch are added to the running ``sums`` (none
for ``train_step``: ``sums=None``). Host-side bookkeeping stays outside: the step count and
the constants (Python floats, as in the eager step), and the random keys of every draw
(Dropout masks), computed by each generator in the order the first (eager) step recorded
(:class:`portable_nn.random.KeyFeed`); so a compiled step gives the eager results: the same
masks bitwise, the same arithmetic.

On JAX it is wrapped in ``jax.jit`` with the trained parameters, buffers and slots donated
(updated in place on the device); a new batch shape (the last partial batch) compiles once
more. Elsewhere the eager step runs (CUDA graphs for CuPy and ``torch.compile`` are not wired
in yet).

The arrays travel as flat tuples named by a :class:`~.plan.Layout`, and the constants come
from a block of rows made ahead on the device (:class:`~.plan.Constants`): per call the host
checks its plan, reads the arrays, calls, rebinds the outputs and hands the new slots to the
optimizer, nothing more (``plan.py``: a tiny model's step is ~0.1 ms).
"""

from __future__ import annotations

from typing import Any

from portable_nn.backend import Backend
from portable_nn.data import Weighted, first
from portable_nn.layers.base import activity_penalties
from portable_nn.random import KeyFeed

from .loop import WEIGHTS, add_sums, batch_sums
from .plan import Constants, Layout, Plan


class CompiledStep:
    """The model's train, test and predict steps, each one compiled function (JAX).

    ``train(x, y, count, sums) -> (sums, loss)``; ``test(x, y, count, sums) -> sums``;
    ``predict(x) -> y``. One compiled function per batch length (and for ``train``, per
    layout and optimizer).
    """

    def __init__(self, model: Any, backend: Backend) -> None:
        self.model, self.backend = model, backend
        self.order: list[int] | None = None  # draws: indices of generator-holding layers
        # a 0-d zero per sum, by weighted data, and the sums' order when not sorted (JAX
        # hands dicts back sorted by key; the loop's order is the loss, then the metrics)
        self.zeros: dict[bool, tuple[dict[str, Any], list[str] | None]] = {}
        self.keys: list[str] | None = None  # the order of the sums of the current loop
        self.cache: dict[tuple[str, int], Any] = {}
        self.traced = False  # set while a trace runs (the model then holds tracers)
        self.plan: Plan | None = None  # the train step's, while it holds (see plan.py)
        self.trains: dict[tuple, Any] = {}  # (layout, optimizer, batch length) -> function
        self.constants = Constants(backend)

    def train(self, x: Any, y: Any, count: int, sums: dict | None) -> tuple[dict | None, Any]:
        """One train step; ``sums=None`` (``train_step``): the loss only, no sums."""
        plan = self.plan
        if plan is None or not plan.holds(self.model):
            plan = self.plan = self._plan(x)
            if plan is None:  # nothing trained, or draws the step cannot feed: stay eager
                return eager_step(self.model, x, y, count, sums or {})
        arrays, frozen = plan.arrays()
        block, index = self.constants.take(plan.optimizer, plan.record.step, plan.dtype)
        keys = None
        if self.order:  # the layers' generators now (fit(seed=...) replaces them)
            generators = self._generators()
            keys = self.backend.host_int32([generators[i].next_keys() for i in self.order])
        fn = plan.fns.get(count) or self._train_function(plan, count)
        args = [arrays, frozen, block, index, keys, sums, x, y]
        if sums == {}:
            args[5] = self._zeros(lambda: self._shapes(fn, args, plan)[2], y)
        self.traced = False
        try:
            new, index, sums, loss = fn(*args)
        finally:
            if self.traced:  # the model holds tracers: its arrays back
                plan.install(arrays, frozen)
        plan.install(new)
        plan.count(new)
        self.constants.advance(index)
        return (None if sums is None else self._ordered(sums)), loss

    def _plan(self, x: Any) -> Plan | None:
        """A new plan for the train step (None: run it eagerly). The optimizer follows a
        change of the trained parameters as ``fit`` makes it (``retarget``)."""
        model, opt = self.model, self.model.optimizer
        trained = model.trainable_parameters()
        if not trained:  # everything frozen: nothing to compile
            return None
        opt.retarget(trained)
        state = opt.state_for(trained)
        if self.order is None:
            self._record_draws(x)
            if self.order is None:  # a generator the model does not list
                return None
        names = tuple(name for name in state if name != "step")
        params = model.parameters()
        layout = Layout(
            names,
            tuple(name for name in params if name not in state),
            tuple(model.buffers()),
            tuple(tuple(state[name]) for name in names),
            tuple(layer.trainable for layer in [model, *model._sublayers()]),
        )
        plan = Plan(model, state, layout, next(iter(params.values())).dtype)
        for (known, optimizer, count), fn in self.trains.items():
            if known == layout and optimizer is opt:  # compiled before (a plan ago)
                plan.fns[count] = fn
        return plan

    def _train_function(self, plan: Plan, count: int) -> Any:
        fn = self._train(plan.layout, plan.optimizer, count)
        fn = self.backend.jit(fn, donate=(0,))
        self.trains[plan.layout, plan.optimizer, count] = plan.fns[count] = fn
        self.cache["train", count] = fn
        return fn

    def _shapes(self, fn: Any, args: list, plan: Plan) -> Any:
        """``fn(*args)``'s outputs as shapes and dtypes (traced, not run); the model gets its
        arrays back."""
        try:
            return self.backend.shapes_of(fn, *args)
        finally:
            plan.install(args[0], args[1])

    def test(self, x: Any, y: Any, count: int, sums: dict[str, Any]) -> dict[str, Any]:
        fn = self._compiled("test", count, self._test)
        params = self.model.parameters()
        if not sums:
            sums = self._zeros(lambda: self._test_shapes(fn, params, x, y), y)
        return self._ordered(self._run(fn, params, sums, x, y))

    def predict(self, x: Any) -> Any:
        fn = self._compiled("predict", int(first(x).shape[0]), self._predict)
        return self._run(fn, self.model.parameters(), x)

    # -- the pure functions ---------------------------------------------------------------------
    def _train(self, layout: Layout, opt: Any, count: int) -> Any:
        model = self.model
        trained, bufs, slots = layout.trained, layout.bufs, layout.slots
        n, m = len(trained), len(trained) + len(bufs)

        def step(arrays, frozen, block, index, keys, sums, x, y):  # type: ignore[no-untyped-def]
            params = dict(zip(trained, arrays[:n])) | dict(zip(layout.frozen, frozen))
            self._install(params, dict(zip(bufs, arrays[n:m])))
            row = block[index]  # this step's constants
            c = tuple(row[i] for i in range(row.shape[0]))
            with KeyFeed(keys), activity_penalties() as activity:
                y_pred, caches = model.forward(x, training=True)
            loss, dy = model._loss_value_and_gradient(y, y_pred)
            _, grads = model.backward(dy, caches, input_grad=False)
            loss, grads = model._regularized(loss, grads, activity)
            # the trained parameters are the optimizer state's (frozen layers' stay as they are)
            flat = iter(arrays[m:])
            state = {name: {s: next(flat) for s in names} for name, names in zip(trained, slots)}
            new, new_state = opt._apply_rule(
                {name: params[name] for name in trained},
                {name: grads[name] for name in trained},
                state,
                c,
            )
            if sums is not None:
                sums = add_sums(sums, batch_sums(model, loss, y_pred, y, count))
            new_bufs = model.buffers()
            arrays = (
                *(new[name] for name in trained),
                *(new_bufs[name] for name in bufs),
                *(new_state[name][s] for name, names in zip(trained, slots) for s in names),
            )
            return arrays, index + 1, sums, loss

        return step

    def _test(self, count: int) -> Any:
        def step(params, bufs, sums, x, y):  # type: ignore[no-untyped-def]
            self._install(params, bufs)
            return eager_test(self.model, x, y, count, sums)

        return step

    def _predict(self, count: int) -> Any:
        def step(params, bufs, x):  # type: ignore[no-untyped-def]
            self._install(params, bufs)
            return self.model.forward(x, training=False)[0]

        return step

    # -- plumbing -------------------------------------------------------------------------------
    def _compiled(self, kind: str, count: int, make: Any, donate: tuple[int, ...] = ()) -> Any:
        fn = self.cache.get((kind, count))
        if fn is None:
            fn = self.cache[kind, count] = self.backend.jit(make(count), donate=donate)
        return fn

    def _run(self, fn: Any, params: dict, *args: Any) -> Any:
        """``fn(params, buffers, *args)``; after a call that traced (the model then holds
        tracers) or failed, the model gets its concrete arrays back."""
        bufs = self.model.buffers()
        self.traced = False
        try:
            return fn(params, bufs, *args)
        except BaseException:
            self._install(params, bufs)
            raise
        finally:
            if self.traced:
                self._install(params, bufs)

    def _generators(self) -> list[Any]:
        return [layer.generator for _, layer in self.model._layers_with_generators()]

    def _install(self, params: dict, bufs: dict) -> None:
        self.traced = True  # inside a trace: the model now holds tracers
        self.model.assign_parameters(params)
        self.model.assign_buffers(bufs)

    def _record_draws(self, x: Any) -> None:
        """Which layer's generator makes each draw of a training forward, in order: traced
        once without running (``eval_shape``); the generators' counters are put back."""
        generators = self._generators()
        saved = [g.get_state() for g in generators]
        params, bufs = self.model.parameters(), self.model.buffers()

        def forward(params: dict, bufs: dict, x: Any) -> Any:
            self._install(params, bufs)
            return self.model.forward(x, training=True)[0]

        try:
            with KeyFeed() as feed:
                self.backend.shapes_of(forward, params, bufs, x)
        finally:
            self._install(params, bufs)
            for generator, state in zip(generators, saved):
                generator.set_state(state)
        owners = [id(g) for g in generators]
        if all(id(g) in owners for g in feed.order):
            self.order = [owners.index(id(g)) for g in feed.order]

    def _zeros(self, trace: Any, y: Any) -> dict[str, Any]:
        """0-d zeros for the sums a step returns (their dtypes from ``trace()``, which traces
        the step without running it): every call then takes a full dict, so an epoch's first
        batch compiles nothing new. Weighted targets (a :class:`Weighted` ``y``) add the sum
        of the weights."""
        weighted = isinstance(y, Weighted)
        found = self.zeros.get(weighted)
        if found is None:
            sums = trace()
            keys = batch_sums_names(self.model) + ([WEIGHTS] if weighted else [])
            xp, device = self.backend.xp, self.backend.device
            zeros = {k: xp.zeros((), dtype=sums[k].dtype, device=device) for k in keys}
            found = self.zeros[weighted] = (zeros, None if keys == sorted(keys) else keys)
        zeros, self.keys = found
        return zeros

    def _test_shapes(self, fn: Any, params: dict, x: Any, y: Any) -> Any:
        """The test step's sums as shapes and dtypes (traced, not run)."""
        bufs = self.model.buffers()
        try:
            return self.backend.shapes_of(fn, params, bufs, {}, x, y)
        finally:
            self._install(params, bufs)

    def _ordered(self, sums: dict[str, Any]) -> dict[str, Any]:
        keys = self.keys
        return sums if keys is None else {k: sums[k] for k in keys}


def eager_step(model: Any, x: Any, y: Any, count: int, sums: dict[str, Any]) -> tuple[dict, Any]:
    """The eager train step, accumulating the batch's loss and metric sums."""
    loss, y_pred = model._train_batch(x, y)
    return add_sums(sums, batch_sums(model, loss, y_pred, y, count)), loss


def eager_test(model: Any, x: Any, y: Any, count: int, sums: dict[str, Any]) -> dict[str, Any]:
    """The eager test step (inference mode), accumulating the batch's loss and metric sums."""
    loss, y_pred = model._test_batch(x, y)
    return add_sums(sums, batch_sums(model, loss, y_pred, y, count))


def batch_sums_names(model: Any) -> list[str]:
    """The names of a batch's sums, in order: the loss, then each metric."""
    return ["loss", *(metric.name for metric in model.compiled_metrics)]


__all__ = ["CompiledStep", "eager_step", "eager_test"]
