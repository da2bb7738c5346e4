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
undone: the ``bufs`` entries of the layer and of nested ``layer.layers`` are restored after
every forward, and every ``params``/``bufs`` entry is the original object when the check ends.

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
from collections.abc import Callable
from typing import Any

from portable_nn.grad_check._common import _Options, _result
from portable_nn.grad_check._function_mode import _check_function
from portable_nn.grad_check._layer_mode import _check_layer
from portable_nn.grad_check.result import GradcheckEntry, GradcheckError, GradcheckResult
from portable_nn.random import Generator

__all__ = ["GradcheckEntry", "GradcheckError", "GradcheckResult", "gradcheck"]


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
