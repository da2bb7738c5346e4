"""Options and helpers shared by the function and layer modes of ``pnn.gradcheck``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import array_api_compat
import array_api_extra as xpx

from portable_nn.backend import is_array, namespace_and_device, namespace_of
from portable_nn.grad_check.result import GradcheckEntry, GradcheckResult
from portable_nn.random import Generator


@dataclass(frozen=True)
class _Options:
    eps: float
    atol: float
    rtol: float
    max_elements: int | None
    generator: Generator


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
