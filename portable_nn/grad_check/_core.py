"""The check both modes share: ``dy``, validated analytic gradients, the extra checks and the
central differences, for arrays whose perturbed outputs a mode knows how to compute."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import array_api_compat
import array_api_extra as xpx

from portable_nn.backend import is_array, namespace_and_device, namespace_of
from portable_nn.grad_check.result import GradcheckEntry
from portable_nn.random import Generator
from portable_nn.validation import require_shape

Check = tuple[str, bool, str]  # (what, ok, detail)
REPLAY = "forward run twice gives identical outputs"
TWICE = "backward run twice gives identical gradients"
ZERO = "zero upstream gradient gives exactly zero gradients"


@dataclass(frozen=True)
class Options:
    eps: float
    atol: float
    rtol: float
    max_elements: int | None
    generator: Generator


def require_float64(x: Any, what: str) -> None:
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
    require_shape(f"gradient for {what}", g, tuple(x.shape))
    if g.dtype != x.dtype:
        raise TypeError(f"gradient for {what} has dtype {g.dtype}, expected {x.dtype}")
    try:
        namespace_and_device(g, x)
    except ValueError as exc:
        raise ValueError(f"gradient for {what}: {exc}") from None


def copy(x: Any) -> Any:
    return namespace_of(x).asarray(x, copy=True)


def check(what: str, flags: Iterable[tuple[str, Any]], detail: str, hint: str = "") -> Check:
    """Extra check ``what``: every named boolean array is all true, else ``detail`` names them."""
    bad = [name for name, flag in flags if not bool(namespace_of(flag).all(flag))]
    return what, not bad, f"{detail} for {', '.join(bad)}{hint}" if bad else ""


def run(
    names: Sequence[str],
    arrays: Sequence[Any],
    inputs: int,
    forward: Callable[[int, Any], tuple[Any, Any]],
    backward: Callable[[Any, Any], Sequence[Any]],
    opts: Options,
    hint: str,
) -> tuple[list[GradcheckEntry], list[Check]]:
    """Check the gradients of ``L = sum(y * dy)`` with respect to ``arrays`` (named ``names``),
    the first ``inputs`` of them inputs (their values must not change).

    ``forward(i, v) -> (y, cache)`` runs with ``arrays[i]`` replaced by ``v`` (``forward(0,
    arrays[0])`` is the plain run); ``backward(dy, cache)`` returns one gradient per array.
    """
    for name, x in zip(names, arrays):
        require_float64(x, name)
    namespace_and_device(*arrays)
    originals = [copy(x) for x in arrays[:inputs]]
    y, cache = forward(0, arrays[0])
    require_float64(y, "the output")
    xp, device = namespace_of(y), array_api_compat.device(y)  # y may be a NumPy scalar
    dy = 2.0 * opts.generator.uniform(tuple(y.shape), xp=xp, device=device, dtype=xp.float64) - 1.0

    def gradients(d: Any) -> Sequence[Any]:
        grads = backward(d, cache)
        for name, g, x in zip(names, grads, arrays):
            _require_gradient(g, x, name)
        return grads

    grads, again, zero = gradients(dy), gradients(dy), gradients(xp.zeros_like(dy))
    checks = [
        check(REPLAY, [("the output", y == forward(0, arrays[0])[0])], "differs", hint),
        check(TWICE, [(n, a == b) for n, a, b in zip(names, grads, again)], "differs"),
        check(ZERO, [(n, g == 0.0) for n, g in zip(names, zero)], "non-zero"),
    ]
    entries = [
        _compare(name, x, g, lambda v, i=i: forward(i, v)[0], dy, opts)
        for i, (name, x, g) in enumerate(zip(names, arrays, grads))
    ]
    kept = [(n, x == before) for n, x, before in zip(names, arrays, originals)]
    return entries, [*checks, check("inputs keep their values", kept, "differs")]


def _compare(
    name: str, x: Any, analytic: Any, output: Callable[[Any], Any], dy: Any, opts: Options
) -> GradcheckEntry:
    """Central differences of ``L(v) = sum(output(v) * dy)`` at the (chosen) elements of ``x``,
    against ``analytic``."""
    xp, shape = namespace_of(x), tuple(x.shape)
    flat, a_flat = xp.reshape(x, (-1,)), xp.reshape(analytic, (-1,))
    total = math.prod(shape)
    indices = range(total)
    if opts.max_elements is not None and total > opts.max_elements:
        indices = sorted(
            int(k) for k in opts.generator.host.permutation(total)[: opts.max_elements]
        )
    entry = GradcheckEntry(name, shape, len(indices))

    def loss(k: int, step: float) -> float:  # L with element k of x moved by step
        y = output(xp.reshape(xpx.at(flat)[k].add(step, copy=True), shape))
        return float(namespace_of(y).sum(y * dy))

    for k in indices:
        numeric = (loss(k, opts.eps) - loss(k, -opts.eps)) / (2.0 * opts.eps)
        element = tuple(k // math.prod(shape[d + 1 :]) % shape[d] for d in range(len(shape)))
        entry.add(element, float(a_flat[k]), numeric, opts.atol, opts.rtol)
    return entry
