"""A train step compiled as ONE function: ``model.compile(..., jit="auto")``.

The step is written as a pure function of everything it changes,

    (params, buffers, slots, constants, keys, sums, x, y)
        -> (params, buffers, slots, sums)

built from the same code as the eager step: the model's layers get the traced arrays, run
``forward``/``loss.value_and_gradient``/``backward``, the optimizer's update rule runs with the
step's constants (bias corrections, learning rate) passed in as 0-d arrays, and the loss and
metric sums of the batch are added to the running ``sums``. Host-side bookkeeping stays
outside: the step count and the constants (Python floats, as in the eager step), and the
random keys of every draw (Dropout masks), computed by each generator in the order the first
(eager) step recorded (:class:`portable_nn.random.KeyFeed`); so a compiled step gives the
eager results: the same masks bitwise, the same arithmetic.

On JAX it is wrapped in ``jax.jit`` with parameters, buffers and slots donated (updated in
place on the device); a new batch shape (the last partial batch) compiles once more. Elsewhere
the eager step runs (CUDA graphs for CuPy and ``torch.compile`` are not wired in yet).
"""

from __future__ import annotations

from typing import Any

from portable_nn.backend import Backend
from portable_nn.data import Weighted, first
from portable_nn.layers.base import activity_penalties
from portable_nn.random import KeyFeed

from .loop import WEIGHTS, add_sums, batch_sums


class CompiledStep:
    """The model's train, test and predict steps, each one compiled function (JAX).

    ``train(x, y, count, sums) -> (sums, loss)``; ``test(x, y, count, sums) -> sums``;
    ``predict(x) -> y``. One compiled function per batch length.
    """

    def __init__(self, model: Any, backend: Backend) -> None:
        self.model, self.backend = model, backend
        self.order: list[int] | None = None  # draws: indices of generator-holding layers
        self.keys: list[str] = []  # the sums in the loop's order (JAX returns sorted dicts)
        self.zeros: dict[bool, dict[str, Any]] = {}  # a 0-d zero per sum, by weighted data
        self.cache: dict[tuple[str, int], Any] = {}
        self.traced = False  # set while a trace runs (the model then holds tracers)

    def train(self, x: Any, y: Any, count: int, sums: dict[str, Any]) -> tuple[dict, Any]:
        model, opt = self.model, self.model.optimizer
        params, trained = model.parameters(), list(model.trainable_parameters())
        if not trained:  # everything frozen: nothing to compile
            return eager_step(model, x, y, count, sums)
        state = opt.state_for({name: params[name] for name in trained})
        if self.order is None:
            self._record_draws(x)
            if self.order is None:  # a generator the model does not list: stay eager
                return eager_step(model, x, y, count, sums)
        c = self.backend.scalars(opt.next_constants(), next(iter(params.values())).dtype)
        keys = None
        if self.order:  # the layers' generators now (fit(seed=...) replaces them)
            generators = self._generators()
            keys = self.backend.host_int32([generators[i].next_keys() for i in self.order])
        slots = {name: value for name, value in state.items() if name != "step"}
        fn = self._compiled("train", count, self._train, donate=(0, 1, 2))
        sums = sums or self._zeros(fn, params, slots, c, keys, {}, x, y)
        params, bufs, new, sums, loss = self._run(fn, params, slots, c, keys, sums, x, y)
        self._install(params, bufs)  # the step's outputs (also replaces any tracers)
        # JAX hands dicts back sorted by key: the state keeps the parameters' and slots' order
        opt.record_step({n: {s: new[n][s] for s in slots[n]} for n in trained})
        return self._ordered(sums), loss

    def test(self, x: Any, y: Any, count: int, sums: dict[str, Any]) -> dict[str, Any]:
        fn = self._compiled("test", count, self._test)
        params = self.model.parameters()
        sums = sums or self._zeros(fn, params, {}, x, y)
        return self._ordered(self._run(fn, params, sums, x, y))

    def predict(self, x: Any) -> Any:
        fn = self._compiled("predict", int(first(x).shape[0]), self._predict)
        return self._run(fn, self.model.parameters(), x)

    # -- the pure functions ---------------------------------------------------------------------
    def _train(self, count: int) -> Any:
        model = self.model

        def step(params, bufs, slots, constants, keys, sums, x, y):  # type: ignore[no-untyped-def]
            self._install(params, bufs)
            c = tuple(constants[i] for i in range(constants.shape[0]))
            with KeyFeed(keys), activity_penalties() as activity:
                y_pred, caches = model.forward(x, training=True)
            loss, dy = model._loss_value_and_gradient(y, y_pred)
            _, grads = model.backward(dy, caches, input_grad=False)
            loss, grads = model._regularized(loss, grads, activity)
            # the trained parameters are the slots' (frozen layers' stay as they are); a new
            # set (a layer frozen between fits) is a new pytree structure: JAX traces again
            trained = {name: params[name] for name in slots}
            grads = {name: grads[name] for name in slots}
            new, new_slots = model.optimizer._apply_rule(trained, grads, slots, c)
            new_params = {**params, **new}
            sums = add_sums(sums, batch_sums(model, loss, y_pred, y, count))
            return new_params, model.buffers(), new_slots, sums, loss

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

    def _zeros(self, fn: Any, params: dict, *args: Any) -> dict[str, Any]:
        """0-d zeros for the sums ``fn`` returns (their dtypes found by tracing it without
        running): every call then takes a full dict, so an epoch's first batch compiles
        nothing new. ``args``: ``fn``'s arguments after parameters and buffers; weighted
        targets (a :class:`Weighted` ``y``, the last argument) add the sum of the weights."""
        weighted = isinstance(args[-1], Weighted)
        if weighted not in self.zeros:
            bufs = self.model.buffers()
            out = self.backend.shapes_of(fn, params, bufs, *args)
            self._install(params, bufs)
            sums = out[3] if isinstance(out, tuple) else out
            keys = batch_sums_names(self.model) + ([WEIGHTS] if weighted else [])
            xp, device = self.backend.xp, self.backend.device
            zeros = {k: xp.zeros((), dtype=sums[k].dtype, device=device) for k in keys}
            self.zeros[weighted] = zeros
        self.keys = list(self.zeros[weighted])
        return self.zeros[weighted]

    def _ordered(self, sums: dict[str, Any]) -> dict[str, Any]:
        return {k: sums[k] for k in self.keys}


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
