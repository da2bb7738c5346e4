"""Inverted dropout (Srivastava et al., 2014): zero each input with probability ``rate``."""

from __future__ import annotations

from typing import Any, NamedTuple

import array_api_compat

from portable_nn.backend import namespace_of
from portable_nn.random import Generator, get_generator
from portable_nn.validation import fraction

from ._weights import check_seed
from .base import Layer, Shape


class DropoutCache(NamedTuple):
    scale: Any  # mask / (1 - rate): 0 or 1 / (1 - rate) per mask element; None: the identity
    shape: tuple[int, ...]  # the output's shape, which dy must have


class Dropout(Layer):
    """Training: ``y = x * mask / (1 - rate)`` with ``mask ~ Bernoulli(1 - rate)``; else ``y = x``.

    Kept units are scaled by ``1 / (1 - rate)`` so the expected output equals the input and
    inference needs no rescaling. Inference (``training=False``) and ``rate == 0`` are the
    identity. Shapes: any ``(batch, ...)``, output like the input.

    Masks come from ``self.generator.bernoulli``, a counter-based hash evaluated **on the input's
    device** (see :mod:`portable_nn.random`): no host round trip per step, and for the same seed
    and calls *bitwise the same masks on every backend*. Each training-mode call advances the
    generator's counter, so consecutive batches get new masks.

    Parameters
    ----------
    rate : fraction of units dropped, ``0 <= rate < 1``.
    seed : an int or a ``pnn.random.Generator``; ``None`` seeds a private generator from the
        global generator's host stream when the layer is made, so ``pnn.seed(n)`` before
        building a model makes every run repeat.
    """

    has_training_behaviour = True
    keeps_mask = True  # the output's steps are the input's (masking, see layers.base)

    def __init__(
        self,
        rate: float,
        seed: int | Generator | None = None,
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.rate = fraction("rate", rate)
        check_seed(seed)
        self.seed = seed if isinstance(seed, int) else None
        if seed is None:
            seed = get_generator(None).host.integers(2**62)
        self.generator = get_generator(seed)
        super().__init__(input_shape=input_shape, name=name)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, DropoutCache]:
        self.ensure_built(x)
        if not training or self.rate == 0.0:
            return x, DropoutCache(None, tuple(x.shape))  # y = x
        xp, device, keep = namespace_of(x), array_api_compat.device(x), 1.0 - self.rate
        shape = self._mask_shape(tuple(x.shape))  # broadcasts against x
        mask = self.generator.bernoulli(shape, keep, xp=xp, device=device)
        scale = xp.astype(mask, x.dtype) * (1.0 / keep)  # mask / (1 - rate)
        return x * scale, DropoutCache(scale, tuple(x.shape))  # y = x * mask / (1 - rate)

    def _mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """One draw per element (SpatialDropout2D: per channel of each sample)."""
        return shape

    def backward(self, dy: Any, cache: DropoutCache) -> tuple[Any, dict[str, Any]]:
        self.check_gradient(dy, cache.shape)
        # dL/dx = dy * mask / (1 - rate)   (identity at inference)
        return (dy if cache.scale is None else dy * cache.scale), {}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


__all__ = ["Dropout", "DropoutCache"]
