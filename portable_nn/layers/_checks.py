"""Input checks shared by the built-in layers (errors name what was received).

``positive_int`` and ``real_number`` come from :mod:`portable_nn.validation`.
"""

from __future__ import annotations

from typing import Any

from portable_nn.backend import namespace_of
from portable_nn.validation import positive_int, real_number

# (array type, dtype) -> real floating? Cached: runs on every call. The array type in the key keeps
# dtypes of different libraries apart (array-api-strict warns when compared with NumPy's).
_IS_FLOATING: dict[tuple[type, Any], bool] = {}


def require_floating(owner: str, x: Any) -> None:
    """``TypeError`` unless ``x`` is a real floating array (integer/bool features are refused)."""
    dtype = x.dtype
    key = (type(x), dtype)
    ok = _IS_FLOATING.get(key)
    if ok is None:
        ok = bool(namespace_of(x).isdtype(dtype, "real floating"))
        _IS_FLOATING[key] = ok
    if not ok:
        raise TypeError(
            f"{owner}: expected a real floating input (float32 or float64). Received: dtype="
            f"{dtype}; cast it first, e.g. pnn.asarray(x, dtype='float32')"
        )


def check_gradient(owner: str, dy: Any, shape: tuple[int, ...]) -> None:
    """``ValueError`` when the upstream gradient's shape differs from the output's (no silent
    broadcasting in backward)."""
    if tuple(dy.shape) != shape:
        raise ValueError(
            f"{owner}: upstream gradient dy has shape {tuple(dy.shape)}, expected the output "
            f"shape {shape}"
        )


def shape_tuple(name: str, value: Any, allow_minus_one: bool = False) -> tuple[int, ...]:
    """A tuple of positive ints (and at most one -1 when allowed) from a list/tuple/int."""
    dims = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints. Received: {name}={value!r}") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int) or not (d > 0 or d == -1):
            raise ValueError(f"{name} must hold positive ints. Received: {name}={value!r}")
    if dims.count(-1) > (1 if allow_minus_one else 0):
        raise ValueError(
            f"{name} may contain -1 at most {int(allow_minus_one)} time(s). "
            f"Received: {name}={value!r}"
        )
    return dims


__all__ = ["check_gradient", "positive_int", "real_number", "require_floating", "shape_tuple"]
