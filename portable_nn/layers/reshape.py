"""Shape-only layers: Flatten and Reshape (the batch axis is always kept)."""

from __future__ import annotations

import math
from typing import Any

from portable_nn.backend import namespace_of

from ._checks import check_gradient, require_floating, shape_tuple
from .base import Layer, Shape


class Flatten(Layer):
    """``(batch, d1, ..., dk) -> (batch, d1 * ... * dk)`` in row-major (C) order.

    A ``(batch,)`` input becomes ``(batch, 1)``, as in Keras. Backward reshapes ``dy`` back.
    """

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        features = tuple(input_shape[1:])
        size = None if None in features else math.prod(features)
        return (input_shape[0], size)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        require_floating(self.name, x)
        self.ensure_built(x)
        shape = tuple(x.shape)
        out = (shape[0], math.prod(shape[1:]))
        return namespace_of(x).reshape(x, out), (shape, out)

    def backward(self, dy: Any, cache: Any) -> tuple[Any, dict[str, Any]]:
        shape, out = cache
        check_gradient(self.name, dy, out)
        return namespace_of(dy).reshape(dy, shape), {}  # dL/dx = dy reshaped to x's shape


class Reshape(Layer):
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
        self.target_shape = shape_tuple("target_shape", target_shape, allow_minus_one=True)
        super().__init__(input_shape=input_shape, name=name)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        features = tuple(input_shape[1:])
        if None in features:
            return (input_shape[0], *(None if d == -1 else d for d in self.target_shape))
        return (input_shape[0], *self._resolve(math.prod(features), features))

    def _resolve(self, size: int, features: tuple[int, ...]) -> tuple[int, ...]:
        """``target_shape`` with the -1 filled in for ``size`` elements per sample."""
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape and size % known == 0:
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known == size and -1 not in self.target_shape:
            return self.target_shape
        raise ValueError(
            f"{self.name}: cannot reshape input features {features} ({size} elements per sample) "
            f"into target_shape {self.target_shape}"
        )

    def build(self, input_shape: Shape) -> None:
        features = tuple(input_shape[1:])
        unknown = None in features  # resolved per call then
        self._out = None if unknown else self._resolve(math.prod(features), features)
        super().build(input_shape)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        require_floating(self.name, x)
        self.ensure_built(x)
        shape = tuple(x.shape)
        out = (shape[0], *(self._out or self._resolve(math.prod(shape[1:]), shape[1:])))
        return namespace_of(x).reshape(x, out), (shape, out)

    def backward(self, dy: Any, cache: Any) -> tuple[Any, dict[str, Any]]:
        shape, out = cache
        check_gradient(self.name, dy, out)
        return namespace_of(dy).reshape(dy, shape), {}  # dL/dx = dy reshaped to x's shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


__all__ = ["Flatten", "Reshape"]
