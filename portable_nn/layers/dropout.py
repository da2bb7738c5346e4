"""Inverted dropout (Srivastava et al., 2014): zero each input with probability ``rate``."""

from __future__ import annotations

from typing import Any, NamedTuple

import array_api_compat

from portable_nn.backend import has_dtype, namespace_of
from portable_nn.random import Generator, get_generator
from portable_nn.validation import fraction, require_dtype, require_shape

from .base import Layer, Shape


class DropoutCache(NamedTuple):
    scale: Any  # mask / (1 - rate): 0 or 1 / (1 - rate) per element; None for the identity
    shape: tuple[int, ...]  # the output's shape, which dy must have


class Dropout(Layer):
    """Training: ``y = x * mask / (1 - rate)`` with ``mask ~ Bernoulli(1 - rate)``; else ``y = x``.

    Kept units are scaled by ``1 / (1 - rate)`` so the expected output equals the input and
    inference needs no rescaling. Inference (``training=False``) and ``rate == 0`` are the
    identity. Shapes: any ``(batch, ...)``, output like the input.

    How masks are drawn: ``self.generator.bernoulli(x.shape, 1 - rate, xp=..., device=...)``
    evaluates a counter-based integer hash (see :mod:`portable_nn.random`) **on the input's
    device and in its namespace**: there is no host round trip and no host-to-device copy per
    step. The hash uses only int32 xor/shift/multiply, which every array library computes
    identically, so for the same seed and the same sequence of calls the masks are *bitwise
    identical on NumPy, CuPy, PyTorch, JAX and array-api-strict*. Each training-mode call
    advances the generator's counter by one, so consecutive batches get new masks.

    Parameters
    ----------
    rate : fraction of units dropped, ``0 <= rate < 1``.
    seed : an int or a ``pnn.random.Generator``; ``None`` seeds a private generator from the
        global generator's host stream when the layer is made, so ``pnn.seed(n)`` before
        building a model makes every run repeat.
    """

    has_training_behaviour = True

    def __init__(
        self,
        rate: float,
        seed: int | Generator | None = None,
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.rate = fraction("rate", rate)
        if seed is not None and not isinstance(seed, (int, Generator)) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, a Generator or None. Received: seed={seed!r}")
        self.seed = seed if isinstance(seed, int) else None
        if seed is None:
            seed = get_generator(None).host.integers(2**62)
        self.generator = get_generator(seed)
        super().__init__(input_shape=input_shape, name=name)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, DropoutCache]:
        if not has_dtype(x, "real floating"):
            require_dtype(f"{self.name}: input", x, "real floating", "a real floating array")
        self.ensure_built(x)
        if not training or self.rate == 0.0:
            return x, DropoutCache(None, tuple(x.shape))  # y = x
        xp, device, keep = namespace_of(x), array_api_compat.device(x), 1.0 - self.rate
        mask = self.generator.bernoulli(tuple(x.shape), keep, xp=xp, device=device)
        scale = xp.astype(mask, x.dtype) * (1.0 / keep)  # mask / (1 - rate)
        return x * scale, DropoutCache(scale, tuple(x.shape))  # y = x * mask / (1 - rate)

    def backward(self, dy: Any, cache: DropoutCache) -> tuple[Any, dict[str, Any]]:
        if dy.shape != cache.shape:
            require_shape(f"{self.name}: upstream gradient dy", dy, cache.shape)
        # dL/dx = dy * mask / (1 - rate)   (identity at inference)
        return (dy if cache.scale is None else dy * cache.scale), {}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}

    def __repr__(self) -> str:
        return f"Dropout(rate={self.rate}, name={self.name!r})"


__all__ = ["Dropout", "DropoutCache"]
