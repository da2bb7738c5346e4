"""Weights of built-in layers: drawn by ``pnn.init`` on the active backend's device and dtype."""

from __future__ import annotations

from typing import Any

from portable_nn.backend import get_backend


def make_weight(initializer: Any, shape: tuple[int, ...], seed: Any = None) -> Any:
    """``pnn.init.get(initializer)(shape, seed=seed)`` on the active backend (device, dtype)."""
    from portable_nn import init  # lazy: layers import without init

    backend = get_backend()
    return init.get(initializer)(shape, seed=seed, dtype=backend.dtype, device=backend.device)
