"""The optimizer base class: a pure ``init``/``update`` core and a stateful ``step``.

State layout (``init`` returns it, ``update`` returns the next one)::

    {"step": 0, "dense.weight": {"exp_avg": array, ...}, "dense.bias": {...}}

``"step"`` counts the updates done (a Python int); each parameter has a dict of slot arrays of
its shape, dtype and device, so no parameter may be called ``"step"``. A subclass writes its
update rule once, in ``_update``, against a writer (``writers.py``): in place when every array
allows it, new arrays otherwise, with bitwise-equal results.

What every optimizer shares is written once here (Keras's ``BaseOptimizer``): weight decay
(``g + wd * p`` before the rule, or ``p * (1 - lr * wd)`` for the decoupled kind) with
``exclude_from_weight_decay``; gradient accumulation (slot ``accumulated_grad``); the moving
average of the weights (slot ``ema``). ``"step"`` counts calls; with
``gradient_accumulation_steps=k`` only every k-th call is an update, and schedules and bias
corrections count updates (``t = step // k + 1``), so k steps of batch b equal one of batch kb.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from portable_nn.backend import backend_name_of, namespace_of
from portable_nn.validation import (
    flag,
    format_shape,
    fraction,
    positive,
    positive_int,
    require_dtype,
)

from . import clipping
from .fused import FlatState
from .hyper import Hyper, hyper, optional, patterns
from .serialization import SerializationMixin, key_mismatch
from .writers import InPlace, Pure, writer_for

OPTIMIZERS: dict[str, type[Optimizer]] = {}
Params = Mapping[str, Any]
ACCUMULATOR, EMA = "accumulated_grad", "ema"  # the shared slots


def trainable_parameters(model: Any) -> Params:
    """``model.trainable_parameters()`` (frozen layers left out), or ``model.parameters()``
    for a model without that method."""
    find = getattr(model, "trainable_parameters", None)
    return model.parameters() if find is None else find()


class NonFiniteGradientError(FloatingPointError, ValueError):
    """A gradient holds NaN or inf (raised only with ``check_finite=True``)."""


@dataclass(eq=False, repr=False)
class Optimizer(SerializationMixin, Hyper):
    """Base class: a dataclass of hyper-parameters (``hyper.py``). Subclasses add theirs as
    fields and define slots, per-step constants and ``_update``.

    Parameters
    ----------
    learning_rate : a float > 0, or a schedule ``f(step) -> float`` (see ``schedules``).
    clipnorm : clip all gradients together to this global 2-norm (``clip_grad_norm_``).
    clipvalue : clip every gradient element to ``[-clipvalue, clipvalue]``.
    check_finite : raise :class:`NonFiniteGradientError` naming the parameters whose gradient has
        NaN/inf, before anything changes. Off by default: it reads a flag back from the device
        every step; Keras-style ``TerminateOnNaN`` on the loss is the cheaper loop-level guard.
    inplace : let :meth:`step` update writeable arrays in place (same results, fewer copies).
    exclude_from_weight_decay : parameter names or regular expressions; a parameter whose name
        any of them matches (``re.search``, as Keras and ``transformers``: ``"bias"`` matches
        ``"0.bias"``, ``r"^0\\.bias$"`` only that one) gets no weight decay.
    gradient_accumulation_steps : ``k``: gradients are summed over ``k`` calls and the k-th
        call updates with their mean ``(g_1 + ... + g_k) / k`` (then clipped); the other calls
        leave the parameters bitwise unchanged. Schedules and bias corrections count updates.
    use_ema : keep ``ema <- m * ema + (1 - m) * p`` after every update (``m = ema_momentum``,
        ``m = 0`` at the first update, as Keras); :meth:`finalize_variable_values` copies it into
        the model (``fit`` does at its end) and :meth:`swap_ema_weights` swaps it in and out.
    ema_overwrite_frequency : with ``use_ema``, every this many updates the parameters are
        overwritten with their moving average (Keras).
    """

    learning_rate: float | Callable[[int], float]
    _: KW_ONLY
    clipnorm: float | None = hyper(optional(positive), None)
    clipvalue: float | None = hyper(optional(positive), None)
    check_finite: bool = hyper(flag, False, repr=False)
    inplace: bool = hyper(flag, True, repr=False)
    exclude_from_weight_decay: list[str] | None = hyper(optional(patterns), None, quiet=True)
    gradient_accumulation_steps: int | None = hyper(optional(positive_int), None, quiet=True)
    use_ema: bool = hyper(flag, False, quiet=True)
    ema_momentum: float = hyper(fraction, 0.99, quiet=True)
    ema_overwrite_frequency: int | None = hyper(optional(positive_int), None, quiet=True)
    weight_decay = 0.0  # not a field here: each subclass declares its own, with its check
    _decoupled = False  # decay p <- p * (1 - lr * weight_decay) (AdamW) instead of g + wd * p

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        OPTIMIZERS[cls.__name__] = cls

    def __post_init__(self) -> None:
        if not callable(self.learning_rate):
            self.learning_rate = positive("learning_rate", self.learning_rate)
        super().__post_init__()  # every other field's check
        if self.clipnorm is not None and self.clipvalue is not None:
            raise ValueError(
                "set at most one of clipnorm and clipvalue (as Keras). Received: "
                f"clipnorm={self.clipnorm!r}, clipvalue={self.clipvalue!r}"
            )
        self._k = self.gradient_accumulation_steps or 1
        self._excluded: dict[str, bool] = {}  # parameter name -> matched (a cache)
        shared = ((ACCUMULATOR,) if self._k > 1 else ()) + ((EMA,) if self.use_ema else ())
        self.slot_names: tuple[str, ...] = self._slots() + shared
        self.reset()

    # -- what subclasses define ---------------------------------------------------------------
    def _slots(self) -> tuple[str, ...]:
        """Names of the per-parameter state arrays."""
        return ()

    def _slot_fill(self, slot: str) -> float:
        """Initial value of a slot array."""
        return 0.0

    def _constants(self, step: int, lr: float) -> tuple:
        """Python floats for update number ``step`` (1-based) at learning rate ``lr``."""
        raise NotImplementedError

    def _update(self, xp: Any, w: type[Pure], p: Any, g: Any, s: dict, c: tuple) -> Any:
        """One parameter's step: store new slots in ``s``, return the new parameter."""
        raise NotImplementedError

    # -- pure core ----------------------------------------------------------------------------
    def init(self, params: Params) -> dict[str, Any]:
        """Fresh state for ``params`` (name -> array): zero (or filled) slots and step 0."""
        if "step" in params:
            raise ValueError("a parameter may not be named 'step' (reserved for the step count)")
        state: dict[str, Any] = {"step": 0}
        for name, p in params.items():
            require_dtype(f"parameter {name!r}", p, "real floating", "of a float dtype")
            xp = namespace_of(p)
            state[name] = {s: xp.full_like(p, self._slot_fill(s)) for s in self.slot_names}
            if self.use_ema:
                state[name][EMA] = xp.asarray(p, copy=True)
        return state

    def update(
        self, params: Params, grads: Params, state: dict[str, Any], *, inplace: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """One optimisation step: ``(params, state) -> (new_params, new_state)``.

        ``params``/``grads``: dicts name -> array with equal keys and shapes; ``state`` from
        :meth:`init` or a previous ``update``. Pure by default (new dicts and arrays, inputs
        untouched; works on JAX). ``inplace=True`` writes into the parameter and slot arrays
        when all are writeable and returns the same dicts; otherwise it falls back to the pure
        path. Bad input (gradient names or shapes that differ from the parameters, gradients
        from another library, NaN/inf with ``check_finite``) raises before anything changes.
        Gradients of another float dtype are cast to the parameter's dtype.
        """
        work = self._prepare(params, grads, state)
        return self._apply(params, state, work, writer_for(_arrays(work), inplace))

    def _apply(
        self,
        params: Params,
        state: dict[str, Any],
        work: list[tuple],
        w: type[Pure],
        flat: FlatState | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``update`` after the checks, with the writer chosen; with ``flat`` (in place only)
        one update runs on the flat buffers that every parameter and slot is a view of."""
        if work and self.check_finite:
            self._check_finite(work)
        clip = bool(self.clipnorm or self.clipvalue)
        if flat is not None:  # clipped per array first: the norm of norms, as unfused
            work = self._clip(work) if clip else work  # (no flat buffers with accumulation)
            work = [("", flat.params, flat.gradients([g for _, _, g, _ in work]), flat.slots)]
        c = self._step_constants(state["step"])
        if w is not InPlace:
            return self._pure(work, c, {"step": state["step"] + 1})
        self._run(w, work, c, clip and flat is None)
        state["step"] += 1
        return params, state  # type: ignore[return-value]

    def _apply_rule(
        self, params: Params, grads: Params, slots: Mapping[str, dict], c: tuple
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Accumulation, clipping, decay, the update rule and the EMA, pure: ``(new_params,
        new_slots)`` keyed like ``params``.

        The seam a compiled train step (``jax.jit``) calls: no checks, no ``check_finite`` (a
        host sync), no step count. ``c = self._step_constants(step)`` may be traced, as 0-d
        arrays of the parameters' dtype or as Python floats (JAX traces those as weakly typed
        scalars): ``_update`` branches only on hyper-parameters fixed at construction, and the
        per-step choices (accumulate or update, overwrite with the EMA) are ``xp.where`` on a
        traced flag. ``slots``: parameter name -> slot dict (a state's ``"step"`` is not read).
        """
        work = [(n, p, grads[n], slots[n]) for n, p in params.items()]
        return self._pure(work, c, {})

    def _pure(self, work: list[tuple], c: tuple, new_state: dict) -> tuple[dict, dict[str, Any]]:
        """:meth:`_run` with the pure writer over ``work``; new slot dicts go into ``new_state``."""
        work = [(n, p, g, new_state.setdefault(n, dict(s))) for n, p, g, s in work]
        new_params = self._run(Pure, work, c)
        return dict(zip([n for n, _, _, _ in work], new_params)), new_state

    def _run(self, w: type[Pure], work: list[tuple], c: tuple, clip: bool = True) -> list[Any]:
        """One call on every parameter: the new parameters; new slots stored in each dict.

        Accumulation (``g <- (acc + g) / k`` on updates, only ``acc <- acc + g`` otherwise),
        clipping, decay, ``_update``, ``ema <- m * ema + (1 - m) * p`` and the EMA overwrite.
        Python flags in ``c`` branch; traced ones (``jax.jit``) compute the update and select."""
        if not work:
            return []
        xp = namespace_of(work[0][1])
        c, decay, go, ema_m, overwrite = self._split(c)
        if self._k > 1 and not _traced(go) and not go:  # not an update: add the gradients up
            for _, _, g, s in work:
                s[ACCUMULATOR] = w.add(s[ACCUMULATOR], g)
            return [p for _, p, _, _ in work]
        before = [(p, dict(s)) for _, p, _, s in work] if _traced(go) else []
        if self._k > 1:
            work = self._mean_gradients(xp, w, work, go)
        if clip and (self.clipnorm or self.clipvalue):
            work = self._clip(work)
        new = []
        for name, p, g, s in work:
            if decay is not None and self._decays(name):
                if self._decoupled:
                    p = w.mul(p, decay)  # p <- p * (1 - lr * weight_decay)
                else:
                    g = g + decay * p  # L2 penalty: g <- g + weight_decay * p
            p = self._update(xp, w, p, g, s, c)
            if self.use_ema:
                ema = s[EMA] = w.add(w.mul(s[EMA], ema_m), p * (1.0 - ema_m))
                if self.ema_overwrite_frequency:
                    p = _select(xp, w, overwrite, ema, p)
            new.append(p)
        for i, (p, old) in enumerate(before):  # traced: keep the update only on update calls
            new[i], s = xp.where(go != 0.0, new[i], p), work[i][3]
            for slot in old.keys() - {ACCUMULATOR}:
                s[slot] = xp.where(go != 0.0, s[slot], old[slot])
        return new

    def _mean_gradients(self, xp: Any, w: type[Pure], work: list[tuple], go: Any) -> list[tuple]:
        """``work`` with ``g <- (acc + g) / k``; the accumulators reset where ``go`` (an
        update), else keep ``acc + g`` (a traced flag on a call that is not an update)."""
        summed = [w.add(s[ACCUMULATOR], g) for _, _, g, s in work]
        work = [(n, p, acc / float(self._k), s) for (n, p, _, s), acc in zip(work, summed)]
        for (_, _, _, s), acc in zip(work, summed):  # reset after the mean (in place: same array)
            s[ACCUMULATOR] = _select(xp, w, go, xp.zeros_like(acc), acc)
        return work

    def _step_constants(self, step: int) -> tuple:
        """The constants of the call after ``step`` calls: ``_constants(t, lr)`` of update
        ``t = step // k + 1`` at ``lr = learning_rate_at(t - 1)``, then (those in use) the decay
        (``weight_decay``, or ``1 - lr * weight_decay`` decoupled), the update flag (1.0 on
        every k-th call), the EMA momentum (0.0 at ``t = 1``) and the overwrite flag."""
        t = step // self._k + 1
        lr = self.learning_rate_at(t - 1)
        c = self._constants(t, lr)
        if self.weight_decay:
            c += (1.0 - lr * self.weight_decay if self._decoupled else self.weight_decay,)
        if self._k > 1:
            c += (float((step + 1) % self._k == 0),)
        if self.use_ema:
            c += (0.0 if t == 1 else self.ema_momentum,)
            if self.ema_overwrite_frequency:
                c += (float(t % self.ema_overwrite_frequency == 0),)
        return c

    def _split(self, c: tuple) -> tuple[tuple, Any, Any, Any, Any]:
        """``(rule constants, decay, update flag, ema momentum, overwrite flag)`` of ``c``
        (``None`` for a feature not in use; the update flag is 1.0 without accumulation)."""
        extra = list(c[len(c) - self._n_extra :]) if self._n_extra else []
        rule = c[: len(c) - self._n_extra]
        decay = extra.pop(0) if self.weight_decay else None
        go = extra.pop(0) if self._k > 1 else 1.0
        ema_m = extra.pop(0) if self.use_ema else None
        overwrite = extra.pop(0) if self.use_ema and self.ema_overwrite_frequency else None
        return rule, decay, go, ema_m, overwrite

    @property
    def _n_extra(self) -> int:
        ema = (1 + bool(self.ema_overwrite_frequency)) if self.use_ema else 0
        return bool(self.weight_decay) + (self._k > 1) + ema

    def _decays(self, name: str) -> bool:
        """Whether the parameter called ``name`` gets weight decay (``""``: a flat buffer,
        used only when no parameter is excluded)."""
        found = self._excluded.get(name)
        if found is None:
            listed = self.exclude_from_weight_decay or ()
            found = self._excluded[name] = any(re.search(x, name) for x in listed)
        return not (found and name)

    def _prepare(self, params: Params, grads: Params, state: dict[str, Any]) -> list[tuple]:
        """``[(name, param, grad, slots)]`` after the cheap per-step checks."""
        if grads.keys() != params.keys():
            raise key_mismatch("gradient names", params, grads)
        if len(state) != len(params) + 1 or "step" not in state:
            raise key_mismatch(
                "optimizer state entries (init(params) or opt.reset() for new parameters)",
                params,
                set(state) - {"step"},
            )
        get = state.get
        work = [(name, p, grads[name], get(name)) for name, p in params.items()]
        for _, p, g, s in work:
            # fast filter (dtype objects are singletons); the slow path does the exact checks
            if s is None or type(g) is not type(p) or g.shape != p.shape or g.dtype is not p.dtype:
                return [(n, p, _checked_gradient(n, p, g, s), s) for n, p, g, s in work]
        return work

    def _check_finite(self, work: list[tuple]) -> None:
        """Raise naming the parameters whose gradient has NaN/inf (one sync when all are finite)."""
        xp = namespace_of(work[0][1])
        flags = {name: xp.all(xp.isfinite(g)) for name, _, g, _ in work}
        if not bool(xp.all(xp.stack(list(flags.values())))):
            bad = [name for name, ok in flags.items() if not bool(ok)]
            raise NonFiniteGradientError(f"non-finite (NaN or inf) gradient for parameters {bad}")

    def _clip(self, work: list[tuple]) -> list[tuple]:
        """``work`` with clipped gradients (new arrays; the caller's are untouched)."""
        xp, grads = namespace_of(work[0][1]), {name: g for name, _, g, _ in work}
        if self.clipnorm is not None:
            grads = clipping.clip_by_global_norm(grads, self.clipnorm, xp)
        else:
            grads = clipping.clip_by_value(grads, self.clipvalue, xp)
        return [(name, p, grads[name], s) for name, p, _, s in work]

    def learning_rate_at(self, step: int) -> float:
        """The learning rate used by the update that follows ``step`` updates already done."""
        lr = self.learning_rate
        return lr if isinstance(lr, float) else float(lr(step))

    # -- stateful convenience -----------------------------------------------------------------
    def reset(self) -> None:
        """Forget the internal state used by :meth:`step` (the next step starts afresh)."""
        self._state = None
        self._unchecked = False  # state loaded before the parameters were known
        self._flat: FlatState | None = None  # see fused.py
        self._not_flat: list[str] | None = None

    @property
    def _state(self) -> dict[str, Any] | None:
        """The state (layout: module docstring); a compiled step's record
        (:meth:`record_step`) is unpacked into it on the first read."""
        pending = self._pending
        if pending is not None:
            self.__dict__.update(_stored=pending.unpack(), _pending=None)
        return self._stored

    @_state.setter
    def _state(self, state: dict[str, Any] | None) -> None:
        self.__dict__.update(_stored=state, _pending=None)  # not fields: no Hyper.__setattr__

    @property
    def iterations(self) -> int:
        """Calls of :meth:`step` done (or loaded with :meth:`load_state_dict`); updates too,
        unless ``gradient_accumulation_steps=k`` (then ``iterations // k`` updates)."""
        pending = self._pending
        if pending is not None:
            return pending.step
        return 0 if self._stored is None else self._stored["step"]

    @property
    def current_learning_rate(self) -> float:
        """The learning rate of the next update."""
        return self.learning_rate_at(self.iterations // self._k)

    def retarget(self, params: Params) -> None:
        """Follow a change of the trained parameters (a layer frozen or unfrozen between
        ``fit`` calls): slots of parameters still trained are kept, new ones start fresh, the
        others are dropped; the step count stays. Nothing happens before the first step."""
        state = self._state
        if state is None or self._unchecked or state.keys() - {"step"} == params.keys():
            return
        fresh = self.init({name: p for name, p in params.items() if name not in state})
        self._state = {"step": state["step"]} | {
            name: state[name] if name in state else fresh[name] for name in params
        }
        self._flat = None

    def state_for(self, params: Params) -> dict[str, Any]:
        """The internal state :meth:`step` uses for ``params``: made on first use, checked
        against them when it was loaded before they were known."""
        state = self._state
        if state is None or self._unchecked:
            state = self._check_loaded(params) if self._unchecked else self.init(params)
            self._state, self._unchecked = state, False
        return state

    def next_constants(self) -> tuple:
        """``_step_constants`` of the next :meth:`step` (Python floats: from its step number
        and learning rate), for a compiled step that runs :meth:`_apply_rule` itself."""
        return self._step_constants(self.iterations)

    def record_step(self, record: Any) -> None:
        """Take the new state of a step run outside :meth:`step` (a compiled one) without
        building it now (a compiled step's per-call cost): ``record.step`` is the new step
        count and ``record.unpack()`` returns the new state, called when the state is first
        read. ``_pending`` is ``record`` until then (a compiled step checks that nobody
        replaced or read the state since)."""
        self.__dict__.update(_stored=None, _pending=record)  # not fields: no Hyper.__setattr__

    def step(self, model: Any, grads: Params) -> None:
        """Update ``model`` (anything with ``parameters()`` and ``set_parameters(d)``) in place.

        The state is created on the first call; ``grads`` is keyed like ``model.parameters()``.
        With ``inplace`` (default) and writeable arrays, the arrays ``model.parameters()`` hands
        out are updated in place and ``set_parameters`` is not called: they must be the model's
        own arrays, as every pnn Layer's and Sequential's are. A model whose ``parameters()``
        returns copies needs ``inplace=False`` (then every step calls ``set_parameters``).
        Many small arrays (NumPy, CuPy, torch) are updated as one (``fused.py``): the first step
        hands the model views of one flat buffer through ``set_parameters``.
        """
        params = trainable_parameters(model)
        if not params:  # every layer frozen: nothing to update
            return
        if len(grads) != len(params):  # a frozen layer's gradients: not used
            grads = {name: g for name, g in grads.items() if name in params}
        state = self.state_for(params)
        work = self._prepare(params, grads, state)
        # The internal slots are our own arrays (made by init, by update or copied on load):
        # writeable whenever the parameters are, so only the parameters need a look.
        w = writer_for(params.values(), self.inplace)
        flat = self._flat_state(model, params, state) if w is InPlace else None
        new_params, new_state = self._apply(params, state, work, w, flat)
        if new_state is not state:  # (in place: the same dict, updated)
            self._state = new_state
        if new_params is not params:
            model.set_parameters(new_params)

    def _flat_state(self, model: Any, params: Params, state: dict) -> FlatState | None:
        """The flat buffers for a model of many small arrays (built on first use, and again
        after the model's or the state's arrays were replaced); None when not worth it."""
        flat = self._flat
        if flat is not None and flat.current(params, state):
            return flat
        self._flat = None
        excluded = self.weight_decay and not all(map(self._decays, params))
        clipped_mean = self._k > 1 and (self.clipnorm or self.clipvalue)
        if excluded or clipped_mean or list(params) == self._not_flat:
            return None
        if not FlatState.worth_it(params):
            self._not_flat = list(params)
            return None
        flat = FlatState(params, state, self.slot_names)
        model.set_parameters(flat.views)  # the model now holds views: updates reach it
        self._flat = flat
        return flat

    # -- moving average of the weights (use_ema) ----------------------------------------------
    def finalize_variable_values(self, model: Any) -> None:
        """With ``use_ema``, overwrite the model's parameters with their moving average, as
        Keras does at the end of ``fit``; nothing otherwise or before the first step."""
        if self.use_ema and self.iterations:
            self._put(model, {n: s[EMA] for n, s in self._ema_slots(model).items()})

    def swap_ema_weights(self, model: Any) -> None:
        """Exchange the model's parameters and their moving average (Keras's
        ``SwapEMAWeights``): swap, evaluate or save, swap back."""
        if not self.use_ema:
            raise ValueError("swap_ema_weights needs use_ema=True. Received: use_ema=False")
        slots = self._ema_slots(model)
        params = model.parameters()
        old = {n: namespace_of(params[n]).asarray(params[n], copy=True) for n in slots}
        self._put(model, {n: s[EMA] for n, s in slots.items()})
        for n, s in slots.items():
            s[EMA] = InPlace.assign(s[EMA], old[n]) if self._writes(s[EMA]) else old[n]

    def _ema_slots(self, model: Any) -> dict[str, dict]:
        state = self.state_for(model.parameters())
        return {n: s for n, s in state.items() if n != "step"}

    def _put(self, model: Any, values: dict[str, Any]) -> None:
        """Write ``values`` into the model's parameters (in place when allowed, else copies)."""
        params = model.parameters()
        if writer_for((params[n] for n in values), self.inplace) is InPlace:
            for n, v in values.items():
                InPlace.assign(params[n], v)
        else:
            model.set_parameters(
                {n: namespace_of(v).asarray(v, copy=True) for n, v in values.items()}
            )

    def _writes(self, array: Any) -> bool:
        return writer_for([array], self.inplace) is InPlace

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._values(shown=True).items())
        return f"{type(self).__name__}({args})"


def _traced(flag: Any) -> bool:
    """Whether a per-step flag is an array (traced by ``jax.jit``) rather than a Python float."""
    return not isinstance(flag, (int, float))


def _select(xp: Any, w: type[Pure], flag: Any, new: Any, old: Any) -> Any:
    """``new`` where ``flag`` else ``old`` (written into ``old`` by ``w``): a Python branch on a
    Python flag, ``xp.where`` on a traced one (then ``w`` is :class:`Pure`)."""
    if _traced(flag):
        return xp.where(flag != 0.0, new, old)
    return w.assign(old, new) if flag else old


def _arrays(work: list[tuple]) -> Iterable[Any]:
    """Every parameter and slot array of ``work`` (what the in-place writer writes)."""
    for _, p, _, s in work:
        yield p
        yield from s.values()


def _checked_gradient(name: str, p: Any, g: Any, slots: Any) -> Any:
    """The slow path of the per-step check: raise naming the parameter, or cast ``g``'s dtype."""
    if slots is None:
        raise ValueError(f"optimizer state has no entry for parameter {name!r}; call init(params)")
    if not hasattr(g, "shape") or not hasattr(g, "dtype"):
        raise TypeError(f"gradient for parameter {name!r} is not an array: {type(g).__name__}")
    if tuple(g.shape) != tuple(p.shape):
        raise ValueError(
            f"gradient for parameter {name!r} has shape {format_shape(g.shape)}, "
            f"expected the parameter's shape {format_shape(p.shape)}"
        )
    xp, gxp = namespace_of(p), namespace_of(g)
    if gxp is not xp:
        raise ValueError(
            f"gradient for parameter {name!r} is a {backend_name_of(gxp)} array but the "
            f"parameter is a {backend_name_of(xp)} array"
        )
    return g if g.dtype == p.dtype else xp.astype(g, p.dtype)
