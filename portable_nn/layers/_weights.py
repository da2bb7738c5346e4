"""Weights of built-in layers: drawn by ``pnn.init`` on the active backend's device and dtype.

A checkpoint loader rebuilds an architecture from a file's config inside :func:`weight_budget`:
:func:`make_weight` then refuses (``ValueError``) any weight that would take the total past the
element count of the file's own tensors, so a corrupt config cannot ask for an enormous layer.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from typing import Any

from portable_nn import init
from portable_nn.backend import get_backend
from portable_nn.random import Generator

_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("budget", default=None)


def check_initializer(name: str, initializer: Any) -> Any:
    """``initializer`` after checking that ``pnn.init.get`` knows it (errors name the argument)."""
    try:
        init.get(initializer)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None
    return initializer


def check_seed(seed: Any) -> Any:
    """``seed`` (an int, a ``pnn.random.Generator`` or None) as given, else ``TypeError``."""
    if seed is not None and not isinstance(seed, (int, Generator)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, a Generator or None. Received: seed={seed!r}")
    return seed


def initializer_name(initializer: Any) -> Any:
    """An initializer for a config: its name (a callable's ``__name__``)."""
    return initializer if isinstance(initializer, str) else getattr(initializer, "__name__", None)


@contextlib.contextmanager
def weight_budget(elements: int) -> Iterator[None]:
    """While held, :func:`make_weight` makes at most ``elements`` elements in total."""
    token = _budget.set([elements])
    try:
        yield
    finally:
        _budget.reset(token)


def make_weight(initializer: Any, shape: tuple[int, ...], seed: Any = None) -> Any:
    """``pnn.init.get(initializer)(shape, seed=seed)`` on the active backend (device, dtype)."""
    left = _budget.get()
    if left is not None:
        size = math.prod(shape)
        if not 0 <= size <= left[0]:
            raise ValueError(
                f"a weight of shape {tuple(shape)} would take the model past the {left[0]} "
                "elements left of the checkpoint's own tensors"
            )
        left[0] -= size
    backend = get_backend()
    return init.get(initializer)(shape, seed=seed, dtype=backend.dtype, device=backend.device)
