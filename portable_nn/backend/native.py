"""Native kernels of a namespace for what the array API standard lacks (erf, erfc).

The portable versions in :mod:`portable_nn.functional.special` stay the reference; where the
library behind a namespace has its own kernel (one fused launch instead of ~25 elementwise ones
on a GPU), :func:`native` returns it and the functional code calls it instead. Tests compare the
two paths on every backend that has one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

import array_api_compat

_KERNELS = ("erf", "erfc")


@functools.cache
def native(xp: ModuleType, name: str) -> Callable[[Any], Any] | None:
    """``xp``'s library kernel ``name`` (``"erf"`` or ``"erfc"``), or None when it has none
    (NumPy without SciPy, array-api-strict): torch.special, jax.scipy.special,
    cupyx.scipy.special, scipy.special for NumPy."""
    if name not in _KERNELS:
        raise ValueError(f"unknown kernel {name!r}; known: {', '.join(_KERNELS)}")
    try:
        if array_api_compat.is_torch_namespace(xp):
            import torch

            return getattr(torch.special, name)
        if array_api_compat.is_jax_namespace(xp):
            import jax.scipy.special

            return getattr(jax.scipy.special, name)
        if array_api_compat.is_cupy_namespace(xp):
            import cupyx.scipy.special

            return getattr(cupyx.scipy.special, name)
        if array_api_compat.is_numpy_namespace(xp):
            import scipy.special

            return getattr(scipy.special, name)
    except ImportError:
        return None
    return None


__all__ = ["native"]
