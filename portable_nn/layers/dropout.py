"""Inverted dropout (Srivastava et al., 2014): zero each input with probability ``rate``."""

from __future__ import annotations

from typing import Any

from portable_nn.backend import namespace_of
from portable_nn.random import Generator, get_generator

from ._checks import check_gradient, real_number, require_floating
from .base import Layer, Shape


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
        self.rate = real_number("rate", rate, 0.0, 1.0)
        if self.rate == 1.0:
            raise ValueError(f"rate must be in [0, 1): rate=1 drops everything. Received: {rate}")
        if seed is not None and not isinstance(seed, (int, Generator)) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, a Generator or None. Received: seed={seed!r}")
        self.seed = seed if isinstance(seed, int) else None
        if seed is None:
            seed = get_generator(None).host.integers(2**62)
        self.generator = get_generator(seed)
        super().__init__(input_shape=input_shape, name=name)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        require_floating(self.name, x)
        self.ensure_built(x)
        if not training or self.rate == 0.0:
            return x, (None, tuple(x.shape))
        xp = namespace_of(x)
        keep = 1.0 - self.rate
        mask = self.generator.bernoulli(tuple(x.shape), keep, xp=xp, device=x.device)
        scaled = xp.astype(mask, x.dtype) * (1.0 / keep)  # mask / (1 - rate)
        return x * scaled, (scaled, tuple(x.shape))

    def backward(self, dy: Any, cache: Any) -> tuple[Any, dict[str, Any]]:
        scaled, shape = cache
        check_gradient(self.name, dy, shape)
        # dL/dx = dy * mask / (1 - rate)   (identity at inference)
        return (dy if scaled is None else dy * scaled), {}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}

    def __repr__(self) -> str:
        return f"Dropout(rate={self.rate}, name={self.name!r})"


__all__ = ["Dropout"]
