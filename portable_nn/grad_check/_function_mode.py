"""``gradcheck(fn, *inputs, backward=...)``: perturb each input element of a function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portable_nn.backend import namespace_and_device, namespace_of
from portable_nn.grad_check._common import (
    _HINT_FN,
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
