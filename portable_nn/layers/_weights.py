"""Weights of built-in layers: drawn by ``pnn.init`` on the active backend's device and dtype."""

from __future__ import annotations

from typing import Any

from portable_nn import init
from portable_nn.backend import get_backend


def check_initializer(name: str, initializer: Any) -> Any:
    """``initializer`` after checking that ``pnn.init.get`` knows it (errors name the argument)."""
    try:
        init.get(initializer)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None
    return initializer


def make_weight(initializer: Any, shape: tuple[int, ...], seed: Any = None) -> Any:
    """``pnn.init.get(initializer)(shape, seed=seed)`` on the active backend (device, dtype)."""
    backend = get_backend()
    return init.get(initializer)(shape, seed=seed, dtype=backend.dtype, device=backend.device)
