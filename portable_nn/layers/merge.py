"""Merge layers: one output from a list of inputs of the same shape (Keras's ``layers/merging``).

Each takes a list ``[x_1, ..., x_n]`` (``Subtract``: exactly two) and its backward returns the
list of input gradients. Shapes must be equal (no broadcasting); ``Concatenate``'s may differ
along its axis. Mostly used in graph models: ``Add()([h, Dense(8)(h)])``.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

from portable_nn.backend import has_dtype, namespace_and_device, namespace_of
from portable_nn.validation import format_shape, require_dtype

from .base import Layer, Shape


class MergeCache(NamedTuple):
    saved: Any  # what the layer's backward needs: n (Add, Average), xs (Multiply), (xs, y)
    # (Maximum, Minimum), the sizes along the axis (Concatenate); None (Subtract)
    shape: tuple[int, ...]  # the output's shape, which dy must have


class _Merge(Layer):
    """Checks and plumbing of the merge layers; ``_merge`` and ``_grads`` hold the maths."""

    takes_list: ClassVar[bool] = True  # called on a list of tensors (graph models check it)
    arity: ClassVar[int | None] = None  # exactly this many inputs (else at least 2)

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)

    def build(self, input_shape: Any) -> None:
        """``input_shape``: the list of input shapes (checked); no weights, and any fitting
        shapes later (``input_shape`` stays None)."""
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Shape:
        count = len(input_shape) if isinstance(input_shape, list) else 0
        if count < 2 if self.arity is None else count != self.arity:
            need = "at least 2" if self.arity is None else f"exactly {self.arity}"
            raise ValueError(f"{self.name}: expects a list of {need} inputs. Received: {count}")
        return self._output_shape([tuple(s) for s in input_shape])

    def _output_shape(self, shapes: list[Shape]) -> Shape:
        """Equal shapes in, that shape out (``None`` matches anything)."""
        if not all(_same(shapes[0], s) for s in shapes):
            raise ValueError(
                f"{self.name}: inputs must have the same shape. Received shapes "
                + ", ".join(map(format_shape, shapes))
            )
        return shapes[0]

    def forward(self, x: Any, training: bool = False) -> tuple[Any, MergeCache]:
        if not isinstance(x, (list, tuple)):
            raise TypeError(f"{self.name}: expects a list of arrays. Received: {type(x).__name__}")
        xs = list(x)
        shapes = [tuple(a.shape) for a in xs]
        if len(set(shapes)) != 1 or self.arity not in (None, len(xs)) or len(xs) < 2:
            self.compute_output_shape(shapes)  # raises naming the layer and the shapes
        xp, _ = namespace_and_device(*xs)  # one library, one device
        if any(a.dtype != xs[0].dtype for a in xs):
            raise TypeError(f"{self.name}: inputs of dtypes {[str(a.dtype) for a in xs]}")
        if not has_dtype(xs[0], "real floating"):
            require_dtype(f"{self.name}: input", xs[0], "real floating", "a real floating array")
        self.built = True
        y, saved = self._merge(xp, xs)
        return y, MergeCache(saved, tuple(y.shape))

    def backward(self, dy: Any, cache: MergeCache) -> tuple[list[Any], dict[str, Any]]:
        self.check_gradient(dy, cache.shape)
        return self._grads(namespace_of(dy), dy, cache.saved), {}

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, Any]:
        raise NotImplementedError

    def _grads(self, xp: Any, dy: Any, saved: Any) -> list[Any]:
        raise NotImplementedError


def _same(a: Shape, b: Shape) -> bool:
    return len(a) == len(b) and all(p is None or q is None or p == q for p, q in zip(a, b))


def _product(xs: list[Any], start: Any) -> Any:
    for x in xs:
        start = start * x
    return start


class Add(_Merge):
    """``y = x_1 + ... + x_n``; ``dL/dx_i = dy``."""

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, Any]:
        return sum(xs[1:], xs[0]), len(xs)  # y = sum_i x_i

    def _grads(self, xp: Any, dy: Any, n: int) -> list[Any]:
        return [dy] * n  # dL/dx_i = dy


class Average(_Merge):
    """``y = (x_1 + ... + x_n) / n``; ``dL/dx_i = dy / n``."""

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, Any]:
        return sum(xs[1:], xs[0]) * (1.0 / len(xs)), len(xs)  # y = sum_i x_i / n

    def _grads(self, xp: Any, dy: Any, n: int) -> list[Any]:
        return [dy * (1.0 / n)] * n  # dL/dx_i = dy / n


class Subtract(_Merge):
    """``y = x_1 - x_2``; ``dL/dx_1 = dy``, ``dL/dx_2 = -dy``."""

    arity = 2

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, Any]:
        return xs[0] - xs[1], None  # y = x_1 - x_2

    def _grads(self, xp: Any, dy: Any, saved: None) -> list[Any]:
        return [dy, -dy]  # dL/dx_1 = dy, dL/dx_2 = -dy


class Multiply(_Merge):
    """``y = x_1 * ... * x_n`` (elementwise); ``dL/dx_i = dy * prod_{j != i} x_j``."""

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, Any]:
        return _product(xs[1:], xs[0]), xs  # y = prod_i x_i

    def _grads(self, xp: Any, dy: Any, xs: list[Any]) -> list[Any]:
        return [_product(xs[:i] + xs[i + 1 :], dy) for i in range(len(xs))]  # dy prod_{j!=i} x_j


class Maximum(_Merge):
    """``y = max_i x_i`` (elementwise); ``dL/dx_i = dy`` where ``x_i`` is the first input
    holding the maximum, else 0 (a tie sends the whole gradient to the first)."""

    op: ClassVar[str] = "maximum"

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, Any]:
        pick, y = getattr(xp, self.op), xs[0]
        for x in xs[1:]:
            y = pick(y, x)  # y = max_i x_i (Minimum: min)
        return y, (xs, y)

    def _grads(self, xp: Any, dy: Any, saved: tuple[list[Any], Any]) -> list[Any]:
        (xs, y), zero, grads = saved, xp.zeros_like(dy), []
        free = xp.ones_like(dy, dtype=xp.bool)  # not yet given to an input
        for x in xs:
            chosen = xp.logical_and(free, x == y)
            grads.append(xp.where(chosen, dy, zero))  # dL/dx_i = dy where x_i gave y
            free = xp.logical_and(free, xp.logical_not(chosen))
        return grads


class Minimum(Maximum):
    """``y = min_i x_i`` (elementwise); ``dL/dx_i = dy`` where ``x_i`` is the first minimum."""

    op = "minimum"


class Concatenate(_Merge):
    """``y = concat([x_1, ..., x_n], axis)``; ``dL/dx_i`` is ``dy``'s slice of ``x_i``.

    Shapes must agree except along ``axis`` (default -1, the features; never the batch axis).
    """

    def __init__(self, axis: int = -1, *, name: str | None = None) -> None:
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise ValueError(
                f"axis must be an int other than 0 (the batch). Received: axis={axis!r}"
            )
        self.axis = axis
        super().__init__(name=name)

    def _output_shape(self, shapes: list[Shape]) -> Shape:
        rank = len(shapes[0])
        axis = self.axis % rank if -rank <= self.axis < rank else 0
        rest = [s[:axis] + s[axis + 1 :] for s in shapes]
        if axis == 0 or not all(len(s) == rank and _same(rest[0], r) for s, r in zip(shapes, rest)):
            raise ValueError(
                f"{self.name}: inputs must have the same shape except along axis {self.axis}. "
                "Received shapes " + ", ".join(map(format_shape, shapes))
            )
        sizes = [s[axis] for s in shapes]
        return (*shapes[0][:axis], None if None in sizes else sum(sizes), *shapes[0][axis + 1 :])

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, Any]:
        axis = self.axis % len(xs[0].shape)
        return xp.concat(xs, axis=axis), [int(x.shape[axis]) for x in xs]  # y = [x_1|...|x_n]

    def _grads(self, xp: Any, dy: Any, sizes: list[int]) -> list[Any]:
        axis, grads, start = self.axis % len(dy.shape), [], 0
        for size in sizes:  # dL/dx_i = dy[..., start_i : start_i + size_i, ...]
            grads.append(dy[(slice(None),) * axis + (slice(start, start + size),)])
            start += size
        return grads

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


__all__ = [
    "Add",
    "Average",
    "Concatenate",
    "Maximum",
    "MergeCache",
    "Minimum",
    "Multiply",
    "Subtract",
]
