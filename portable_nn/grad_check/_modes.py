"""The two modes of ``pnn.gradcheck``: what each perturbs and how it undoes side effects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portable_nn.backend import is_array
from portable_nn.grad_check._core import Check, Options, check, copy, require_float64, run
from portable_nn.grad_check.result import GradcheckEntry


def check_function(
    fn: Callable[..., Any], inputs: tuple[Any, ...], backward: Callable[..., Any], opts: Options
) -> tuple[list[GradcheckEntry], list[Check]]:
    """``fn(*inputs) -> y`` against ``backward(dy, *inputs)``: one gradient, or one per input."""
    if not inputs:
        raise TypeError("gradcheck needs at least one input array")

    def gradients(dy: Any, _: Any) -> tuple[Any, ...]:
        grads = backward(dy, *inputs)
        if not isinstance(grads, (tuple, list)):
            if (n := len(inputs)) != 1:
                raise ValueError(f"backward returned one gradient for {n} inputs; return a tuple")
            grads = (grads,)
        if len(grads) != len(inputs):
            raise ValueError(f"backward returned {len(grads)} gradients for {len(inputs)} inputs")
        return tuple(grads)

    def forward(i: int, value: Any) -> tuple[Any, None]:
        return fn(*inputs[:i], value, *inputs[i + 1 :]), None

    names = [f"input {i}" for i in range(len(inputs))]
    hint = "; fn must be deterministic"
    return run(names, inputs, len(inputs), forward, gradients, opts, hint)


def _tree(layer: Any) -> list[Any]:
    """The layer and the layers nested in its ``layers`` attribute (containers), depth first."""
    found = [layer]
    for sub in getattr(layer, "layers", None) or ():
        found.extend(_tree(sub))
    return found


class _LayerRun:
    """The layer's side of a check: its forward with one array replaced, its backward checked,
    and what a check could change (the entries of the real ``params``/``bufs`` dicts of the
    layer tree, not views computed per access, and its generators' states) put back."""

    def __init__(self, layer: Any, x: Any, training: bool, params: dict[str, Any]) -> None:
        self.layer, self.x, self.training, self.params = layer, x, training, params
        self.keys = list(params)  # array i > 0 is parameter keys[i - 1]
        self.rebind = layer.params is layer.params  # a real dict; containers compute a view
        tree = _tree(layer)
        self.dicts = [  # (layer, "params"/"bufs", the dict, its entries)
            (sub, kind, getattr(sub, kind), dict(getattr(sub, kind)))
            for sub in tree
            for kind in ("params", "bufs")
            if isinstance(getattr(sub, kind, None), dict)
            and getattr(sub, kind) is getattr(sub, kind)
        ]
        generators = [getattr(sub, "generator", None) for sub in tree]
        self.generators = [(g, g.get_state()) for g in generators if hasattr(g, "set_state")]

    def restore(self, kinds: tuple[str, ...] = ("params", "bufs")) -> None:
        """Put back the saved entries of the dicts of ``kinds`` and every generator's state."""
        for sub, kind, obj, entries in self.dicts:
            if kind in kinds:
                if getattr(sub, kind) is not obj:
                    setattr(sub, kind, obj)
                obj.clear()
                obj.update(entries)
        for generator, state in self.generators:
            generator.set_state(state)

    def put(self, name: str, value: Any) -> None:
        if self.rebind:
            self.layer.params[name] = value
        else:
            self.layer.set_parameters({name: value})

    def forward(self, i: int, value: Any) -> tuple[Any, Any]:
        """``layer.forward`` with array ``i`` (0: x, then the parameters) replaced by ``value``,
        replaying the saved randomness; afterwards the buffers and the parameter are put back."""
        name = self.keys[i - 1] if i else None
        if name is not None:
            self.put(name, value)
        self.restore(())
        try:
            return self.layer.forward(value if name is None else self.x, self.training)
        finally:
            self.restore(("bufs",))
            if name is not None:
                self.put(name, self.params[name])

    def backward(self, dy: Any, cache: Any) -> list[Any]:
        """``[dx, then one gradient per parameter]`` from ``layer.backward(dy, cache)``."""
        out = self.layer.backward(dy, cache)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            raise TypeError("layer.backward(dy, cache) must return (dx, grads) with grads a dict")
        dx, grads = out
        if set(grads) != set(self.params):
            expected = sorted(self.params)
            raise ValueError(
                f"backward returned gradients for {sorted(grads)}, expected {expected}"
            )
        return [dx, *(grads[k] for k in self.keys)]


def check_layer(
    layer: Any, x: Any, training: bool, opts: Options
) -> tuple[list[GradcheckEntry], list[Check]]:
    """dL/dx and every parameter of ``layer``; params, bufs and generators restored."""
    require_float64(x, "input x")
    if not getattr(layer, "built", True) and hasattr(layer, "ensure_built"):
        layer.ensure_built(x)
    params = dict(layer.params)
    top = {**params, **(getattr(layer, "bufs", None) or {})}
    copies = [(repr(k), v, copy(v)) for k, v in top.items() if is_array(v)]
    side = _LayerRun(layer, x, training, params)
    names = ["input x", *(f"parameter {k!r}" for k in params)]
    hint = "; a layer's randomness must come from a `generator` attribute (see gradcheck)"
    try:
        entries, checks = run(
            names, [x, *params.values()], 1, side.forward, side.backward, opts, hint
        )
    finally:
        side.restore()
    flags = [(name, now == before) for name, now, before in copies]
    checks.append(check("parameters and buffers keep their values", flags, "differs"))
    return entries, checks
