"""Finite-difference gradient checks for hand-written backward passes (``pnn.gradcheck``).

A fixed random upstream gradient ``dy`` (seeded, uniform in [-1, 1)) turns the output into the
scalar ``L = sum(y * dy)``, whose exact gradient is what ``backward(dy, ...)`` must return. Each
element is checked against central differences in float64 (PyTorch ``gradcheck`` defaults)::

    numeric = (L(x + eps) - L(x - eps)) / (2 eps)        pass: |a - n| <= atol + rtol |n|

Function mode: ``gradcheck(fn, *inputs, backward=bwd)`` with ``fn(*inputs) -> y`` and
``bwd(dy, *inputs) -> gradient`` (one input) or a tuple/list with one gradient per input.

Layer mode: ``gradcheck(layer, x, training=False)`` for anything with ``params`` (dict),
``forward(x, training) -> (y, cache)`` and ``backward(dy, cache) -> (dx, grads)``; it checks
``dx`` and every parameter, perturbing ``layer.params[name]`` by rebinding the entry (or through
``layer.set_parameters`` when ``params`` is a computed view, as in containers). Side effects are
undone: the ``state`` entries of the layer and of nested ``layer.layers`` are restored after
every forward, and every ``params``/``state`` entry is the original object when the check ends.

Randomness rule: every ``generator`` attribute (a ``pnn.random.Generator``) found on the layer
or its nested ``layers`` has ``get_state()`` saved once, and ``set_state(saved)`` is called
before *every* forward, so Dropout replays one mask; the state is restored at the end.

Extra checks (reported, part of ``ok``): forward twice gives identical outputs, backward twice
gives identical gradients, a zero ``dy`` gives exactly zero gradients, and inputs, parameters and
buffers keep their values. ``max_elements`` checks a seeded random subset of that many elements
per array (analytic gradients are still computed in full).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import array_api_extra as xpx

from portable_nn.backend import is_array, namespace_and_device, namespace_of
from portable_nn.random import Generator


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` (``raise_exception=True``) with the readable report."""


@dataclass
class GradcheckEntry:
    """Comparison for one input or parameter: the element that came closest to failing."""

    name: str
    shape: tuple[int, ...]
    checked: int
    ok: bool = True
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    score: float = 0.0  # max |a - n| / (atol + rtol |n|); > 1 fails
    element: tuple[int, ...] | None = None
    analytic: float = 0.0
    numeric: float = 0.0

    def describe(self) -> str:
        if self.element is None:
            return f"{self.name}: no elements"
        return (
            f"{self.name}, element {self.element}: analytic {self.analytic:.6g}, "
            f"numeric {self.numeric:.6g}"
        )


@dataclass
class GradcheckResult:
    """Outcome of :func:`gradcheck`; truthy when every comparison and extra check passed.

    ``max_rel_error`` uses ``|a - n| / max(|n|, atol)`` so zero gradients do not divide by zero.
    """

    ok: bool
    max_abs_error: float
    max_rel_error: float
    worst: str
    entries: list[GradcheckEntry] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (what, ok, detail)
    tolerances: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.ok

    def report(self) -> str:
        """Multi-line text: per input/parameter its worst element, then the extra checks."""
        settings = ", ".join(f"{k}={v:g}" for k, v in self.tolerances.items())
        lines = [f"gradcheck {'passed' if self.ok else 'FAILED'} ({settings})"]
        for e in self.entries:
            lines.append(
                f"  [{'ok' if e.ok else 'FAIL'}] {e.describe()}; max abs error "
                f"{e.max_abs_error:.3g}, max rel error {e.max_rel_error:.3g} "
                f"({e.checked}/{math.prod(e.shape)} elements of shape {e.shape})"
            )
        for what, ok, detail in self.checks:
            lines.append(f"  [{'ok' if ok else 'FAIL'}] {what}" + (f": {detail}" if detail else ""))
        return "\n".join(lines)


@dataclass(frozen=True)
class _Options:
    eps: float
    atol: float
    rtol: float
    max_elements: int | None
    generator: Generator


def gradcheck(
    fn: Any,
    *inputs: Any,
    backward: Callable[..., Any] | None = None,
    training: bool = False,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    max_elements: int | None = None,
    raise_exception: bool = True,
) -> GradcheckResult:
    """Compare analytic gradients with float64 central differences (see the module docstring).

    Parameters
    ----------
    fn : a function of ``inputs`` (then ``backward`` is required) or a layer (one input ``x``).
    inputs : real float64 arrays of one namespace and device (``TypeError`` otherwise).
    backward : ``backward(dy, *inputs) -> gradient or tuple of gradients`` (function mode).
    training : layer mode only: run ``forward(x, training)`` in training mode.
    eps, atol, rtol : step and tolerances (PyTorch ``gradcheck`` defaults).
    seed : seeds ``dy`` (drawn on the inputs' device) and the ``max_elements`` subsets.
    max_elements : check at most this many seeded random elements per array (None: all).
    raise_exception : raise :class:`GradcheckError` with the report when a check fails.
    """
    for name, value in (("eps", eps), ("atol", atol), ("rtol", rtol)):
        if not (isinstance(value, (int, float)) and value >= 0.0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite non-negative number. Received: {value!r}")
    if eps == 0.0:
        raise ValueError("eps must be positive. Received: eps=0.0")
    if max_elements is not None and (not isinstance(max_elements, int) or max_elements < 1):
        raise ValueError(f"max_elements must be a positive int. Received: {max_elements!r}")
    opts = _Options(float(eps), float(atol), float(rtol), max_elements, Generator(seed))
    if backward is None:
        if not all(hasattr(fn, a) for a in ("forward", "backward", "params")):
            raise TypeError(
                "gradcheck(fn, *inputs) needs backward=...; or pass a layer with "
                f"forward/backward/params. Received: {type(fn).__name__}"
            )
        if len(inputs) != 1:
            raise TypeError(f"layer mode takes exactly one input x; received {len(inputs)}")
        entries, checks = _check_layer(fn, inputs[0], training, opts)
    else:
        if training:
            raise TypeError("training=True applies to layers only; fn takes no training flag")
        entries, checks = _check_function(fn, inputs, backward, opts)
    result = _result(entries, checks, opts)
    if raise_exception and not result.ok:
        raise GradcheckError(result.report())
    return result


# -- shared helpers ---------------------------------------------------------------------------
def _require_float64(x: Any, what: str) -> None:
    if not is_array(x):
        raise TypeError(f"{what} must be an array, got {type(x).__name__}")
    if x.dtype != namespace_of(x).float64:
        raise TypeError(
            f"{what} has dtype {x.dtype}; gradcheck requires real float64 arrays "
            "(float32 finite differences are meaningless)"
        )


def _require_gradient(g: Any, x: Any, what: str) -> None:
    """The analytic gradient must be an array with its input's shape, dtype and device."""
    if not is_array(g):
        raise TypeError(f"gradient for {what} must be an array, got {type(g).__name__}")
    if tuple(g.shape) != tuple(x.shape):
        raise ValueError(
            f"gradient for {what} has shape {tuple(g.shape)}, expected {tuple(x.shape)}"
        )
    if g.dtype != x.dtype:
        raise TypeError(f"gradient for {what} has dtype {g.dtype}, expected {x.dtype}")
    try:
        namespace_and_device(g, x)
    except ValueError as exc:
        raise ValueError(f"gradient for {what}: {exc}") from None


def _loss(y: Any, dy: Any) -> float:
    """L = sum(y * dy), read back as a Python float."""
    return float(namespace_of(y).sum(y * dy))


def _random_dy(y: Any, opts: _Options) -> Any:
    """Seeded uniform [-1, 1) upstream gradient on y's device."""
    _require_float64(y, "the output")
    xp, device = namespace_of(y), array_api_compat.device(y)  # y may be a NumPy scalar
    u = opts.generator.uniform(tuple(y.shape), xp=xp, device=device, dtype=xp.float64)
    return 2.0 * u - 1.0


def _unravel(k: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(k % size)
        k //= size
    return tuple(reversed(index))


def _chosen(total: int, opts: _Options) -> list[int]:
    if opts.max_elements is None or total <= opts.max_elements:
        return list(range(total))
    permutation = opts.generator.host.permutation(total)
    return sorted(int(k) for k in permutation[: opts.max_elements])


def _compare(
    name: str, x: Any, analytic: Any, loss_at: Callable[[Any], float], opts: _Options
) -> GradcheckEntry:
    """Central differences of ``loss_at`` over (chosen) elements of x, against ``analytic``."""
    xp, shape = namespace_of(x), tuple(x.shape)
    flat, a_flat = xp.reshape(x, (-1,)), xp.reshape(analytic, (-1,))
    indices = _chosen(math.prod(shape), opts)
    entry = GradcheckEntry(name, shape, len(indices))
    for k in indices:
        plus = loss_at(xp.reshape(xpx.at(flat)[k].add(opts.eps, copy=True), shape))
        minus = loss_at(xp.reshape(xpx.at(flat)[k].add(-opts.eps, copy=True), shape))
        n, a = (plus - minus) / (2.0 * opts.eps), float(a_flat[k])
        error = abs(a - n)
        score = error / (opts.atol + opts.rtol * abs(n)) if opts.atol + opts.rtol > 0.0 else error
        if math.isnan(score):
            score = error = math.inf
        entry.max_abs_error = max(entry.max_abs_error, error)
        entry.max_rel_error = max(entry.max_rel_error, error / max(abs(n), opts.atol, 1e-300))
        if entry.element is None or score > entry.score:
            entry.score, entry.element, entry.analytic, entry.numeric = (
                score,
                _unravel(k, shape),
                a,
                n,
            )
    entry.ok = entry.score <= 1.0 if opts.atol + opts.rtol > 0.0 else entry.score == 0.0
    return entry


def _same(
    pairs: Sequence[tuple[str, Any, Any]], what: str, hint: str = ""
) -> tuple[str, bool, str]:
    """Extra check: each pair of arrays is bitwise equal."""
    bad = [name for name, a, b in pairs if not bool(namespace_of(a).all(a == b))]
    return what, not bad, ("differs for " + ", ".join(bad) + hint) if bad else ""


def _zeros(named: Sequence[tuple[str, Any]], what: str) -> tuple[str, bool, str]:
    bad = [name for name, g in named if not bool(namespace_of(g).all(g == 0.0))]
    return what, not bad, ("non-zero for " + ", ".join(bad)) if bad else ""


def _copy(x: Any) -> Any:
    return namespace_of(x).asarray(x, copy=True)


def _result(
    entries: list[GradcheckEntry], checks: list[tuple[str, bool, str]], opts: _Options
) -> GradcheckResult:
    worst = max(entries, key=lambda e: e.score, default=None)
    return GradcheckResult(
        ok=all(e.ok for e in entries) and all(ok for _, ok, _ in checks),
        max_abs_error=max((e.max_abs_error for e in entries), default=0.0),
        max_rel_error=max((e.max_rel_error for e in entries), default=0.0),
        worst="" if worst is None else worst.describe(),
        entries=entries,
        checks=checks,
        tolerances={"eps": opts.eps, "atol": opts.atol, "rtol": opts.rtol},
    )


_TWICE = "backward run twice gives identical gradients"
_ZERO = "zero upstream gradient gives exactly zero gradients"
_REPLAY = "forward run twice gives identical outputs"
_HINT_FN = "; fn must be deterministic"
_HINT_LAYER = "; a layer's randomness must come from a `generator` attribute (see gradcheck)"


# -- function mode ----------------------------------------------------------------------------
def _as_tuple(grads: Any, n: int) -> tuple[Any, ...]:
    if isinstance(grads, (tuple, list)):
        if len(grads) != n:
            raise ValueError(f"backward returned {len(grads)} gradients for {n} inputs")
        return tuple(grads)
    if n != 1:
        raise ValueError(f"backward returned one gradient for {n} inputs; return a tuple")
    return (grads,)


def _check_function(
    fn: Callable[..., Any], inputs: tuple[Any, ...], backward: Callable[..., Any], opts: _Options
) -> tuple[list[GradcheckEntry], list[tuple[str, bool, str]]]:
    if not inputs:
        raise TypeError("gradcheck needs at least one input array")
    for i, x in enumerate(inputs):
        _require_float64(x, f"input {i}")
    namespace_and_device(*inputs)
    originals = [_copy(x) for x in inputs]
    y = fn(*inputs)
    dy = _random_dy(y, opts)
    grads = _as_tuple(backward(dy, *inputs), len(inputs))
    for i, (g, x) in enumerate(zip(grads, inputs)):
        _require_gradient(g, x, f"input {i}")
    names = [f"input {i}" for i in range(len(inputs))]
    again = _as_tuple(backward(dy, *inputs), len(inputs))
    zero = _as_tuple(backward(namespace_of(dy).zeros_like(dy), *inputs), len(inputs))
    checks = [
        _same([("the output", y, fn(*inputs))], _REPLAY, _HINT_FN),
        _same(list(zip(names, grads, again)), _TWICE),
        _zeros(list(zip(names, zero)), _ZERO),
    ]

    def loss_for(i: int) -> Callable[[Any], float]:
        return lambda xi: _loss(fn(*inputs[:i], xi, *inputs[i + 1 :]), dy)

    entries = [_compare(names[i], x, grads[i], loss_for(i), opts) for i, x in enumerate(inputs)]
    checks.append(_same(list(zip(names, inputs, originals)), "inputs keep their values"))
    return entries, checks


# -- layer mode -------------------------------------------------------------------------------
def _tree(layer: Any) -> list[Any]:
    """The layer and the layers nested in its ``layers`` attribute (containers), depth first."""
    found = [layer]
    for sub in getattr(layer, "layers", None) or ():
        found.extend(_tree(sub))
    return found


class _LayerGuard:
    """Saves what a check could change on a layer tree, replays randomness, puts things back."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        tree = _tree(layer)
        self.dicts = [  # (layer, "params"/"state", dict object, its entries): real dicts only
            (sub, kind, getattr(sub, kind), dict(getattr(sub, kind)))
            for sub in tree
            for kind in ("params", "state")
            if isinstance(getattr(sub, kind, None), dict)
            and getattr(sub, kind) is getattr(sub, kind)
        ]
        generators = [getattr(sub, "generator", None) for sub in tree]
        self.generators = [(g, g.get_state()) for g in generators if hasattr(g, "set_state")]
        top = {**layer.params, **(getattr(layer, "state", None) or {})}
        self.copies = [(repr(k), v, _copy(v)) for k, v in top.items() if is_array(v)]

    def forward(self, x: Any, training: bool) -> tuple[Any, Any]:
        """``layer.forward`` with the saved random state, then the buffers restored."""
        for generator, saved in self.generators:
            generator.set_state(saved)
        try:
            return self.layer.forward(x, training)
        finally:
            self.restore(("state",))

    def restore(self, kinds: tuple[str, ...] = ("params", "state")) -> None:
        for sub, kind, obj, entries in self.dicts:
            if kind in kinds:
                if getattr(sub, kind) is not obj:
                    setattr(sub, kind, obj)
                obj.clear()
                obj.update(entries)
        if "params" in kinds:
            for generator, saved in self.generators:
                generator.set_state(saved)

    def values_kept(self) -> tuple[str, bool, str]:
        return _same(self.copies, "parameters and buffers keep their values")


def _layer_grads(layer: Any, dy: Any, cache: Any, x: Any, params: dict[str, Any]) -> list[Any]:
    """``layer.backward`` validated: [dx, then one gradient per parameter in params' order]."""
    out = layer.backward(dy, cache)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise TypeError("layer.backward(dy, cache) must return (dx, grads) with grads a dict")
    dx, grads = out
    if set(grads) != set(params):
        raise ValueError(
            f"backward returned gradients for {sorted(grads)}, expected {sorted(params)}"
        )
    _require_gradient(dx, x, "input x")
    for name, p in params.items():
        _require_gradient(grads[name], p, f"parameter {name!r}")
    return [dx, *(grads[name] for name in params)]


def _check_layer(
    layer: Any, x: Any, training: bool, opts: _Options
) -> tuple[list[GradcheckEntry], list[tuple[str, bool, str]]]:
    _require_float64(x, "input x")
    if not getattr(layer, "built", True) and hasattr(layer, "ensure_built"):
        layer.ensure_built(x)
    params = dict(layer.params)
    for name, p in params.items():
        _require_float64(p, f"parameter {name!r}")
    namespace_and_device(x, *params.values())
    guard = _LayerGuard(layer)
    x_copy = _copy(x)
    try:
        entries, checks = _run_layer(layer, x, training, opts, guard, params)
    finally:
        guard.restore()
    checks.append(_same([("input x", x, x_copy)], "inputs keep their values"))
    checks.append(guard.values_kept())
    return entries, checks


def _run_layer(
    layer: Any, x: Any, training: bool, opts: _Options, guard: _LayerGuard, params: dict[str, Any]
) -> tuple[list[GradcheckEntry], list[tuple[str, bool, str]]]:
    y, cache = guard.forward(x, training)
    dy = _random_dy(y, opts)
    grads = _layer_grads(layer, dy, cache, x, params)
    again = _layer_grads(layer, dy, cache, x, params)
    zero = _layer_grads(layer, namespace_of(dy).zeros_like(dy), cache, x, params)
    names = ["input x", *(f"parameter {name!r}" for name in params)]
    checks = [
        _same([("the output", y, guard.forward(x, training)[0])], _REPLAY, _HINT_LAYER),
        _same(list(zip(names, grads, again)), _TWICE),
        _zeros(list(zip(names, zero)), _ZERO),
    ]
    entries = [
        _compare(names[0], x, grads[0], lambda v: _loss(guard.forward(v, training)[0], dy), opts)
    ]
    rebind = layer.params is layer.params  # a real dict; containers may compute a view

    def loss_for(name: str) -> Callable[[Any], float]:
        def put(value: Any) -> None:
            if rebind:
                layer.params[name] = value
            else:
                layer.set_parameters({name: value})

        def loss_at(value: Any) -> float:
            put(value)
            try:
                return _loss(guard.forward(x, training)[0], dy)
            finally:
                put(params[name])

        return loss_at

    for i, (name, p) in enumerate(params.items()):
        entries.append(_compare(names[i + 1], p, grads[i + 1], loss_for(name), opts))
    return entries, checks
