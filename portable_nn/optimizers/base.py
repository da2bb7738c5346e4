"""The optimizer base class: a pure ``init``/``update`` core plus a stateful ``step``.

State layout (``init`` returns it, ``update`` returns the next one)::

    {"step": 0, "dense.weight": {"exp_avg": array, ...}, "dense.bias": {...}}

``"step"`` is a Python int (updates done); every parameter has a dict of slot arrays with the
parameter's shape, dtype and device. A parameter may therefore not be called ``"step"``.

``update(params, grads, state)`` returns new dicts and never writes into its inputs. With
``inplace=True`` and writeable arrays (``array_api_compat.is_writeable_array``: NumPy, CuPy,
torch; never JAX or read-only NumPy) it instead updates the parameter and slot arrays with
in-place operators, advances ``state["step"]`` and returns the same two dicts: fewer
temporaries, same numbers. ``step(model, grads)`` keeps the state inside the optimizer and uses
the in-place path when ``opt.inplace`` (default True) and the arrays allow it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from portable_nn.backend import namespace_of

from . import _checks, _state, clipping
from .serialization import SerializationMixin

OPTIMIZERS: dict[str, type[Optimizer]] = {}
Params = Mapping[str, Any]


class NonFiniteGradientError(FloatingPointError, ValueError):
    """A gradient holds NaN or inf (raised only with ``check_finite=True``)."""


class Optimizer(SerializationMixin):
    """Base class. Subclasses define slots, per-step constants and the per-array update.

    Parameters
    ----------
    learning_rate : a float > 0, or a schedule ``f(step) -> float`` (see ``schedules``).
    clipnorm : clip all gradients together to this global 2-norm (``clip_grad_norm_``).
    clipvalue : clip every gradient element to ``[-clipvalue, clipvalue]``.
    check_finite : raise :class:`NonFiniteGradientError` naming the parameters whose gradient has
        NaN/inf, before anything changes. Off by default: it reads a flag back from the device
        every step; Keras-style ``TerminateOnNaN`` on the loss is the cheaper loop-level guard.
    inplace : let :meth:`step` update writeable arrays in place (same results, fewer copies).
    """

    _hyper_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        OPTIMIZERS[cls.__name__] = cls

    def __init__(
        self,
        learning_rate: float | Callable[[int], float],
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        check_finite: bool = False,
        inplace: bool = True,
    ) -> None:
        if callable(learning_rate):
            self.learning_rate: float | Callable[[int], float] = learning_rate
        else:
            self.learning_rate = _checks.positive("learning_rate", learning_rate)
        self.clipnorm = _checks.optional_positive("clipnorm", clipnorm)
        self.clipvalue = _checks.optional_positive("clipvalue", clipvalue)
        if self.clipnorm is not None and self.clipvalue is not None:
            raise ValueError(
                "set at most one of clipnorm and clipvalue (as Keras). Received: "
                f"clipnorm={clipnorm!r}, clipvalue={clipvalue!r}"
            )
        self.check_finite = _checks.flag("check_finite", check_finite)
        self.inplace = _checks.flag("inplace", inplace)
        self.slot_names: tuple[str, ...] = self._slots()
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

    def _update_pure(self, xp: Any, p: Any, g: Any, slots: dict, c: tuple) -> tuple[Any, dict]:
        """New parameter and new slot dict; the inputs are left untouched."""
        raise NotImplementedError

    def _update_inplace(self, xp: Any, p: Any, g: Any, slots: dict, c: tuple) -> None:
        """The same maths with in-place operators on ``p`` and the slot arrays."""
        raise NotImplementedError

    # -- pure core ----------------------------------------------------------------------------
    def init(self, params: Params) -> dict[str, Any]:
        """Fresh state for ``params`` (name -> array): zero (or filled) slots and step 0."""
        if "step" in params:
            raise ValueError("a parameter may not be named 'step' (reserved for the step count)")
        state: dict[str, Any] = {"step": 0}
        for name, p in params.items():
            xp = namespace_of(p)
            if not xp.isdtype(p.dtype, "real floating"):
                raise TypeError(f"parameter {name!r} has dtype {p.dtype}; expected a float dtype")
            state[name] = {s: self._new_slot(xp, p, s) for s in self.slot_names}
        return state

    def _new_slot(self, xp: Any, p: Any, slot: str) -> Any:
        fill = self._slot_fill(slot)
        return xp.zeros_like(p) if fill == 0.0 else xp.full_like(p, fill)

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
        return self._apply(params, grads, state, inplace, check_slots=True)

    def _apply(
        self, params: Params, grads: Params, state: dict[str, Any], inplace: bool, check_slots: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``update``; ``check_slots=False`` trusts the slots to be writeable when their type is
        (true of the internal state: made by ``zeros_like`` or copied on load)."""
        work = self._prepare(params, grads, state)
        if work and (self.check_finite or self.clipnorm or self.clipvalue):
            work = self._transform(work)
        step = state["step"] + 1
        c = self._constants(step, self.learning_rate_at(step - 1))
        xp = namespace_of(work[0][1]) if work else None
        if inplace and _state.all_writeable(work, check_slots):
            for _, p, g, slots in work:
                self._update_inplace(xp, p, g, slots, c)
            state["step"] = step
            return params, state  # type: ignore[return-value]
        new_params: dict[str, Any] = {}
        new_state: dict[str, Any] = {"step": step}
        for name, p, g, slots in work:
            new_params[name], new_state[name] = self._update_pure(xp, p, g, slots, c)
        return new_params, new_state

    def _prepare(self, params: Params, grads: Params, state: dict[str, Any]) -> list[tuple]:
        """``[(name, param, grad, slots)]`` after the cheap per-step checks."""
        if grads.keys() != params.keys():
            raise _state.key_mismatch("gradient names", params, grads)
        if len(state) != len(params) + 1 or "step" not in state:
            raise _state.key_mismatch(
                "optimizer state entries (init(params) or opt.reset() for new parameters)",
                params,
                set(state) - {"step"},
            )
        get = state.get
        work = [(name, p, grads[name], get(name)) for name, p in params.items()]
        for _, p, g, slots in work:
            # fast filter (dtype objects are singletons); the slow path does the exact checks
            if (
                slots is None
                or type(g) is not type(p)
                or g.shape != p.shape
                or g.dtype is not p.dtype
            ):
                check = _state.checked_gradient
                return [(n, p, check(n, p, g, s), s) for n, p, g, s in work]
        return work

    def _transform(self, work: list[tuple]) -> list[tuple]:
        """Finite check and clipping (new gradient arrays; the caller's are untouched)."""
        xp = namespace_of(work[0][1])
        grads = {name: g for name, _, g, _ in work}
        if self.check_finite:
            _check_finite(grads, xp)
        if self.clipnorm is not None:
            grads = clipping.clip_by_global_norm(grads, self.clipnorm, xp)
        elif self.clipvalue is not None:
            grads = clipping.clip_by_value(grads, self.clipvalue, xp)
        return [(name, p, grads[name], slots) for name, p, _, slots in work]

    def learning_rate_at(self, step: int) -> float:
        """The learning rate used by the update that follows ``step`` updates already done."""
        lr = self.learning_rate
        return lr if isinstance(lr, float) else float(lr(step))

    # -- stateful convenience -----------------------------------------------------------------
    def reset(self) -> None:
        """Forget the internal state used by :meth:`step` (the next step starts afresh)."""
        self._state: dict[str, Any] | None = None
        self._pending: tuple[int, dict] | None = None  # loaded before the parameters were known
        self._shares_arrays: tuple[int, bool] | None = None

    @property
    def iterations(self) -> int:
        """Updates done by :meth:`step` (or loaded with :meth:`load_state_dict`)."""
        if self._pending is not None:
            return self._pending[0]
        return 0 if self._state is None else self._state["step"]

    @property
    def current_learning_rate(self) -> float:
        """The learning rate the next :meth:`step` will use."""
        return self.learning_rate_at(self.iterations)

    def step(self, model: Any, grads: Params) -> None:
        """Update ``model`` (anything with ``parameters()`` and ``set_parameters(d)``) in place.

        The state is created on the first call; ``grads`` is keyed like ``model.parameters()``.
        """
        params = model.parameters()
        if self._state is None:
            self._state = self._adopt_pending(params) if self._pending else self.init(params)
            self._pending = None
        new_params, self._state = self._apply(params, grads, self._state, self.inplace, False)
        if new_params is not params or not self._model_shares_arrays(model, params):
            model.set_parameters(new_params)

    def _model_shares_arrays(self, model: Any, params: Params) -> bool:
        """Whether ``model.parameters()`` hands out the model's own arrays (checked once)."""
        if self._shares_arrays is None or self._shares_arrays[0] != id(model):
            again = model.parameters()
            shares = all(again.get(name) is p for name, p in params.items())
            self._shares_arrays = (id(model), shares)
        return self._shares_arrays[1]

    def __repr__(self) -> str:
        keys = ("learning_rate", *self._hyper_keys, "clipnorm", "clipvalue")
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in keys)
        return f"{type(self).__name__}({args})"


def _check_finite(grads: dict[str, Any], xp: Any) -> None:
    """Raise naming every gradient with NaN/inf (one device sync when all are finite)."""
    flags = {name: xp.all(xp.isfinite(g)) for name, g in grads.items()}
    if bool(xp.all(xp.stack(list(flags.values())))):
        return
    bad = [name for name, ok in flags.items() if not bool(ok)]
    raise NonFiniteGradientError(f"non-finite (NaN or inf) gradient for parameters {bad}")
