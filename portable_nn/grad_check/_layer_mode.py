"""``gradcheck(layer, x)``: check dL/dx and every parameter, undoing every side effect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portable_nn.backend import is_array, namespace_and_device, namespace_of
from portable_nn.grad_check._common import (
    _HINT_LAYER,
    _REPLAY,
    _TWICE,
    _ZERO,
    _compare,
    _copy,
    _loss,
    _Options,
    _random_dy,
    _require_float64,
    _require_gradient,
    _same,
    _zeros,
)
from portable_nn.grad_check.result import GradcheckEntry


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
        self.dicts = [  # (layer, "params"/"bufs", dict object, its entries): real dicts only
            (sub, kind, getattr(sub, kind), dict(getattr(sub, kind)))
            for sub in tree
            for kind in ("params", "bufs")
            if isinstance(getattr(sub, kind, None), dict)
            and getattr(sub, kind) is getattr(sub, kind)
        ]
        generators = [getattr(sub, "generator", None) for sub in tree]
        self.generators = [(g, g.get_state()) for g in generators if hasattr(g, "set_state")]
        top = {**layer.params, **(getattr(layer, "bufs", None) or {})}
        self.copies = [(repr(k), v, _copy(v)) for k, v in top.items() if is_array(v)]

    def forward(self, x: Any, training: bool) -> tuple[Any, Any]:
        """``layer.forward`` with the saved random state, then the buffers restored."""
        for generator, saved in self.generators:
            generator.set_state(saved)
        try:
            return self.layer.forward(x, training)
        finally:
            self.restore(("bufs",))

    def restore(self, kinds: tuple[str, ...] = ("params", "bufs")) -> None:
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
