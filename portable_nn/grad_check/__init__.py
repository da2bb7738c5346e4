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

from collections.abc import Callable
from typing import Any

from portable_nn import validation
from portable_nn.grad_check._core import Options
from portable_nn.grad_check._modes import check_function, check_layer
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
    opts = Options(
        validation.positive("eps", eps),
        validation.non_negative("atol", atol),
        validation.non_negative("rtol", rtol),
        None if max_elements is None else validation.positive_int("max_elements", max_elements),
        Generator(seed),
    )
    if backward is None:
        if not all(hasattr(fn, a) for a in ("forward", "backward", "params")):
            raise TypeError(
                "gradcheck(fn, *inputs) needs backward=...; or pass a layer with "
                f"forward/backward/params. Received: {type(fn).__name__}"
            )
        if len(inputs) != 1:
            raise TypeError(f"layer mode takes exactly one input x; received {len(inputs)}")
        entries, checks = check_layer(fn, inputs[0], training, opts)
    else:
        if training:
            raise TypeError("training=True applies to layers only; fn takes no training flag")
        entries, checks = check_function(fn, inputs, backward, opts)
    result = GradcheckResult.collect(entries, checks, eps=opts.eps, atol=opts.atol, rtol=opts.rtol)
    if raise_exception and not result.ok:
        raise GradcheckError(result.report())
    return result
