"""Gradient clipping over dicts of gradients (pure: new arrays, inputs untouched).

``clip_by_global_norm`` matches ``torch.nn.utils.clip_grad_norm_(max_norm)``::

    norm = || (||g_1||_2, ..., ||g_n||_2) ||_2          # one norm over all gradients
    g_i <- g_i * min(1, max_norm / (norm + 1e-6))

computed on the device (a 0-d array scale, no host sync). ``clip_by_value`` matches
``torch.nn.utils.clip_grad_value_``: each element clipped to ``[-clip_value, clip_value]``.
Non-finite gradients give a non-finite norm (so NaN/zero gradients), as in torch; ask the
optimizer for ``check_finite=True`` to stop instead.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_


def global_norm(grads: dict[str, Any], xp: ModuleType) -> Any:
    """The 2-norm of all gradients taken together, as a 0-d array (norm of per-array norms)."""
    norms = [xp.linalg.vector_norm(g) for g in grads.values()]
    if len(norms) == 1:
        return norms[0]
    return xp.linalg.vector_norm(xp.stack(norms))


def clip_by_global_norm(grads: dict[str, Any], max_norm: float, xp: ModuleType) -> dict[str, Any]:
    """Scale every gradient by ``min(1, max_norm / (global_norm + 1e-6))``."""
    if not grads:
        return {}
    norm = global_norm(grads, xp)
    scale = xp.minimum(max_norm / (norm + _EPS), xp.ones_like(norm))
    return {name: g * xp.astype(scale, g.dtype) for name, g in grads.items()}


def clip_by_value(grads: dict[str, Any], clip_value: float, xp: ModuleType) -> dict[str, Any]:
    """Clip every gradient element to ``[-clip_value, clip_value]``."""
    return {name: xp.clip(g, -clip_value, clip_value) for name, g in grads.items()}


__all__ = ["clip_by_global_norm", "clip_by_value", "global_norm"]
