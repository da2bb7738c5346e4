"""Softmax and log-softmax over one axis (the last by default), with their backward passes.

All forms subtract the row maximum ``m`` first, so no ``exp`` overflows:
``softmax(x) = exp(x - m) / sum(exp(x - m))`` and
``log_softmax(x) = x - m - log(sum(exp(x - m)))``.
A row containing ``+inf`` or only ``-inf`` gives NaN, as in PyTorch.
"""

from __future__ import annotations

from typing import Any

from portable_nn.backend import namespace_of

Array = Any


def _shift(x: Array, axis: int) -> tuple[Array, Array, Array]:
    """``(x - m, exp(x - m), sum(exp(x - m)))`` with ``m`` the maximum along ``axis``."""
    xp = namespace_of(x)
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    e = xp.exp(shifted)
    return shifted, e, xp.sum(e, axis=axis, keepdims=True)


def softmax(x: Array, axis: int = -1) -> Array:
    """``exp(x - m) / sum(exp(x - m))`` along ``axis``; rows sum to 1."""
    _, e, total = _shift(x, axis)
    return e / total


def log_softmax(x: Array, axis: int = -1) -> Array:
    """``x - m - log(sum(exp(x - m)))`` along ``axis`` (never ``log(softmax(x))``)."""
    shifted, _, total = _shift(x, axis)
    return shifted - namespace_of(x).log(total)


def log_softmax_and_softmax(x: Array, axis: int = -1) -> tuple[Array, Array]:
    """Both ``log_softmax(x)`` and ``softmax(x)`` from one pass (cross-entropy uses both)."""
    shifted, e, total = _shift(x, axis)
    return shifted - namespace_of(x).log(total), e / total


def logsumexp(x: Array, axis: int = -1, keepdims: bool = False) -> Array:
    """``m + log(sum(exp(x - m)))`` along ``axis``."""
    xp = namespace_of(x)
    m = xp.max(x, axis=axis, keepdims=True)
    out = m + xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else xp.squeeze(out, axis=axis)


def softmax_grad_from_output(s: Array, dy: Array, axis: int = -1) -> Array:
    """dL/dx from the cached output ``s = softmax(x)``: ``s * (dy - sum(dy * s))``."""
    xp = namespace_of(s)
    return s * (dy - xp.sum(dy * s, axis=axis, keepdims=True))


def softmax_grad(x: Array, dy: Array, axis: int = -1) -> Array:
    """dL/dx of ``softmax(x)`` given dL/dy: ``s * (dy - sum(dy * s))``."""
    return softmax_grad_from_output(softmax(x, axis), dy, axis)


def log_softmax_grad(x: Array, dy: Array, axis: int = -1) -> Array:
    """dL/dx of ``log_softmax(x)`` given dL/dy: ``dy - softmax(x) * sum(dy)``."""
    xp = namespace_of(x)
    return dy - softmax(x, axis) * xp.sum(dy, axis=axis, keepdims=True)


__all__ = [
    "log_softmax",
    "log_softmax_and_softmax",
    "log_softmax_grad",
    "logsumexp",
    "softmax",
    "softmax_grad",
    "softmax_grad_from_output",
]
