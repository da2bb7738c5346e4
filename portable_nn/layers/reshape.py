"""Shape-only layers: Flatten and Reshape (the batch axis is always kept)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from portable_nn.backend import has_dtype, namespace_of
from portable_nn.validation import require_dtype, require_shape

from .base import Layer, Shape


class ReshapeCache(NamedTuple):
    in_shape: tuple[int, ...]  # x's shape, which dx gets
    out_shape: tuple[int, ...]  # y's shape, which dy must have


class _Reshaping(Layer):
    """Forward and backward of the shape-only layers: ``y`` is ``x`` in the output shape."""

    def forward(self, x: Any, training: bool = False) -> tuple[Any, ReshapeCache]:
        if not has_dtype(x, "real floating"):
            require_dtype(f"{self.name}: input", x, "real floating", "a real floating array")
        self.ensure_built(x)
        shape = tuple(x.shape)
        out = self.compute_output_shape(shape)
        return namespace_of(x).reshape(x, out), ReshapeCache(shape, out)

    def backward(self, dy: Any, cache: ReshapeCache) -> tuple[Any, dict[str, Any]]:
        if dy.shape != cache.out_shape:
            require_shape(f"{self.name}: upstream gradient dy", dy, cache.out_shape)
        return namespace_of(dy).reshape(dy, cache.in_shape), {}  # dL/dx = dy in x's shape


class Flatten(_Reshaping):
    """``(batch, d1, ..., dk) -> (batch, d1 * ... * dk)`` in row-major (C) order.

    A ``(batch,)`` input becomes ``(batch, 1)``, as in Keras. Backward reshapes ``dy`` back.
    """

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        features = tuple(input_shape[1:])
        return (input_shape[0], None if None in features else math.prod(features))


class Reshape(_Reshaping):
    """``(batch, *input_features) -> (batch, *target_shape)`` (Keras ``Reshape``).

    ``target_shape`` excludes the batch axis; one entry may be -1, inferred from the input
    size. The number of elements per sample must not change (``ValueError`` naming both).
    """

    def __init__(
        self,
        target_shape: tuple[int, ...] | list[int],
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.target_shape = _target_shape(target_shape)
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

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


def _target_shape(value: Any) -> tuple[int, ...]:
    """A tuple of positive ints with at most one -1, from an int, a list or a tuple."""
    dims = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    bad = any(isinstance(d, bool) or not isinstance(d, int) or not (d > 0 or d == -1) for d in dims)
    if bad or dims.count(-1) > 1:
        raise ValueError(
            "target_shape must be positive ints and at most one -1. "
            f"Received: target_shape={value!r}"
        )
    return dims


__all__ = ["Flatten", "Reshape", "ReshapeCache"]
