"""Fixed sinusoidal positions (Vaswani et al., 2017, "Attention is all you need", section 3.5)."""

from __future__ import annotations

import math
from typing import Any

from portable_nn.backend import get_backend
from portable_nn.validation import non_negative_int, positive, positive_int


def sinusoidal_positions(
    length: int, dim: int, *, base: float = 10000.0, dtype: Any = None, device: Any = None
) -> Any:
    """``P`` of shape (length, dim): ``P[p, 2i] = sin(p / base^(2i/dim))`` and
    ``P[p, 2i+1] = cos(p / base^(2i/dim))``, to add to a sequence ``(batch, length, dim)``.

    Made on the active backend's device in its dtype (``dtype``/``device`` as ``pnn.init``);
    the frequencies are Python floats and the angles ``p * base^(-2i/dim)`` are formed in the
    dtype (in float32 each rounds by about ``|angle| * 6e-8``, as Keras-hub's
    ``SinePositionEncoding``).
    """
    length, dim = non_negative_int("length", length), positive_int("dim", dim)
    base = positive("base", base)
    target = get_backend().placed(device, dtype)
    xp, place, dtype = target.xp, target.device, target.dtype
    freqs = [math.exp(-math.log(base) * (j - j % 2) / dim) for j in range(dim)]  # base^(-2i/dim)
    angles = xp.reshape(xp.arange(length, dtype=dtype, device=place), (-1, 1)) * xp.asarray(
        freqs, dtype=dtype, device=place
    )
    even = xp.asarray([j % 2 == 0 for j in range(dim)], device=place)
    return xp.where(even, xp.sin(angles), xp.cos(angles))  # sin on even columns, cos on odd


__all__ = ["sinusoidal_positions"]
