"""Shape-only layers: Reshape and Flatten (the batch axis is always kept)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from portable_nn.backend import namespace_of

from .base import Layer, Shape


class ReshapeCache(NamedTuple):
    in_shape: tuple[int, ...]  # x's shape, which dx gets
    out_shape: tuple[int, ...]  # y's shape, which dy must have


class Reshape(Layer):
    """``(batch, *input_features) -> (batch, *target_shape)`` (Keras ``Reshape``).

    ``target_shape`` excludes the batch axis; one entry may be -1, inferred from the input
    size. The number of elements per sample must not change (``ValueError`` naming both).
    Backward reshapes ``dy`` back.
    """

    def __init__(
        self,
        target_shape: tuple[int, ...] | list[int],
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        dims = tuple(target_shape) if isinstance(target_shape, (list, tuple)) else (target_shape,)
        if dims.count(-1) > 1 or any(
            isinstance(d, bool) or not isinstance(d, int) or not (d > 0 or d == -1) for d in dims
        ):
            raise ValueError(
                "target_shape must be positive ints and at most one -1. "
                f"Received: target_shape={target_shape!r}"
            )
        self.target_shape = dims
        super().__init__(input_shape=input_shape, name=name)

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)  # a size mismatch raises at build time
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        features, target = tuple(input_shape[1:]), self.target_shape
        if None in features:
            return (input_shape[0], *(None if d == -1 else d for d in target))
        size, known = math.prod(features), math.prod(d for d in target if d != -1)
        if (size % known == 0) if -1 in target else (size == known):  # -1: the rest
            return (input_shape[0], *(size // known if d == -1 else d for d in target))
        raise ValueError(
            f"{self.name}: cannot reshape input features {features} ({size} elements per sample) "
            f"into target_shape {target}"
        )

    def forward(self, x: Any, training: bool = False) -> tuple[Any, ReshapeCache]:
        self.ensure_built(x)
        shape = tuple(x.shape)
        out = self.compute_output_shape(shape)
        return namespace_of(x).reshape(x, out), ReshapeCache(shape, out)  # y = x in shape out

    def backward(self, dy: Any, cache: ReshapeCache) -> tuple[Any, dict[str, Any]]:
        self.check_gradient(dy, cache.out_shape)
        return namespace_of(dy).reshape(dy, cache.in_shape), {}  # dL/dx = dy in x's shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Flatten(Reshape):
    """``(batch, d1, ..., dk) -> (batch, d1 * ... * dk)`` in row-major (C) order.

    ``Reshape((-1,))``: a ``(batch,)`` input becomes ``(batch, 1)``, as in Keras.
    """

    def __init__(self, *, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__((-1,), input_shape=input_shape, name=name)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["target_shape"]  # always (-1,)
        return config


__all__ = ["Flatten", "Reshape", "ReshapeCache"]
