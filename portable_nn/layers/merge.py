"""Merge layers: one output from a list of inputs of the same shape (Keras's ``layers/merging``).

Each takes a list ``[x_1, ..., x_n]`` (``Subtract``: exactly two) and returns the list of input
gradients from backward. Inputs must have equal shapes (no broadcasting); ``Concatenate``'s may
differ along its axis only. Mostly used in graph models: ``Add()([h, Dense(8)(h)])``.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

from portable_nn.backend import has_dtype, namespace_and_device, namespace_of
from portable_nn.validation import format_shape, require_dtype

from .base import Layer, Shape


class MergeCache(NamedTuple):
    xs: list[Any] | None  # the inputs (Multiply, Maximum, Minimum); None when unused
    y: Any  # the output (Maximum, Minimum); None when unused
    shape: tuple[int, ...]  # the output's shape, which dy must have
    sizes: list[int]  # Concatenate: each input's length along the axis; else one 1 per input


class _Merge(Layer):
    """Checks and plumbing shared by the merge layers; ``_merge`` and ``_grads`` hold the maths."""

    takes_list: ClassVar[bool] = True  # called on a list of tensors (graph models check it)
    arity: ClassVar[int | None] = None  # exactly this many inputs (Subtract: 2)
    keeps: ClassVar[tuple[bool, bool]] = (False, False)  # the cache holds (xs, y)

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)

    def build(self, input_shape: Any) -> None:
        """``input_shape``: the list of input shapes (checked; the layer has no weights)."""
        self.compute_output_shape(input_shape)
        self.built = True  # input_shape stays None: a merge layer takes any fitting shapes

    def _check_count(self, count: int, what: Any) -> None:
        few = count < 2 if self.arity is None else count != self.arity
        if few:
            need = "at least 2" if self.arity is None else f"exactly {self.arity}"
            raise ValueError(f"{self.name}: expects a list of {need} inputs. Received: {what}")

    def compute_output_shape(self, input_shape: Any) -> Shape:
        if not isinstance(input_shape, list) or not input_shape:
            self._check_count(0, f"input shape {input_shape!r}")
        shapes = [tuple(s) for s in input_shape]
        self._check_count(len(shapes), f"{len(shapes)} inputs")
        return self._output_shape(shapes)

    def _output_shape(self, shapes: list[Shape]) -> Shape:
        """Equal shapes in, that shape out (``None`` dimensions match anything)."""
        first = shapes[0]
        for shape in shapes[1:]:
            if len(shape) != len(first) or any(
                a is not None and b is not None and a != b for a, b in zip(first, shape)
            ):
                raise ValueError(
                    f"{self.name}: inputs must have the same shape. Received shapes "
                    + ", ".join(format_shape(s) for s in shapes)
                )
        return first

    def forward(self, x: Any, training: bool = False) -> tuple[Any, MergeCache]:
        if not isinstance(x, (list, tuple)):
            raise TypeError(f"{self.name}: expects a list of arrays. Received: {type(x).__name__}")
        xs = list(x)
        self._check_count(len(xs), f"{len(xs)} inputs")
        shapes = [tuple(a.shape) for a in xs]
        if any(s != shapes[0] for s in shapes):
            self._output_shape(shapes)  # Concatenate's differ along the axis: checked there
        xp, _ = namespace_and_device(*xs)  # one library, one device
        if any(a.dtype != xs[0].dtype for a in xs):
            raise TypeError(f"{self.name}: inputs of dtypes {[str(a.dtype) for a in xs]}")
        if not has_dtype(xs[0], "real floating"):
            require_dtype(f"{self.name}: input", xs[0], "real floating", "a real floating array")
        self.built = True
        y, sizes = self._merge(xp, xs)
        keep_xs, keep_y = self.keeps
        return y, MergeCache(xs if keep_xs else None, y if keep_y else None, tuple(y.shape), sizes)

    def backward(self, dy: Any, cache: MergeCache) -> tuple[list[Any], dict[str, Any]]:
        self.check_gradient(dy, cache.shape)
        return self._grads(namespace_of(dy), dy, cache), {}

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, list[int]]:
        raise NotImplementedError

    def _grads(self, xp: Any, dy: Any, cache: MergeCache) -> list[Any]:
        raise NotImplementedError


def _sum(xs: list[Any]) -> Any:
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    return y


class Add(_Merge):
    """``y = x_1 + ... + x_n``; ``dL/dx_i = dy``."""

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, list[int]]:
        return _sum(xs), [1] * len(xs)  # y = sum_i x_i

    def _grads(self, xp: Any, dy: Any, cache: MergeCache) -> list[Any]:
        return [dy] * len(cache.sizes)  # dL/dx_i = dy


class Subtract(_Merge):
    """``y = x_1 - x_2``; ``dL/dx_1 = dy``, ``dL/dx_2 = -dy``."""

    arity = 2

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, list[int]]:
        return xs[0] - xs[1], [1, 1]  # y = x_1 - x_2

    def _grads(self, xp: Any, dy: Any, cache: MergeCache) -> list[Any]:
        return [dy, -dy]  # dL/dx_1 = dy, dL/dx_2 = -dy


class Average(_Merge):
    """``y = (x_1 + ... + x_n) / n``; ``dL/dx_i = dy / n``."""

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, list[int]]:
        return _sum(xs) * (1.0 / len(xs)), [1] * len(xs)  # y = sum_i x_i / n

    def _grads(self, xp: Any, dy: Any, cache: MergeCache) -> list[Any]:
        n = len(cache.sizes)
        return [dy * (1.0 / n)] * n  # dL/dx_i = dy / n


class Multiply(_Merge):
    """``y = x_1 * ... * x_n`` (elementwise); ``dL/dx_i = dy * prod_{j != i} x_j``."""

    keeps = (True, False)

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, list[int]]:
        y = xs[0]
        for x in xs[1:]:
            y = y * x  # y = prod_i x_i
        return y, [1] * len(xs)

    def _grads(self, xp: Any, dy: Any, cache: MergeCache) -> list[Any]:
        xs, grads = cache.xs or [], []
        for i in range(len(xs)):
            g = dy
            for j, x in enumerate(xs):
                if j != i:
                    g = g * x  # dL/dx_i = dy * prod_{j != i} x_j
            grads.append(g)
        return grads


class Maximum(_Merge):
    """``y = max_i x_i`` (elementwise); ``dL/dx_i = dy`` where ``x_i`` is the first maximum,
    else 0 (a tie sends the whole gradient to the first input holding the maximum)."""

    keeps = (True, True)
    op: ClassVar[str] = "maximum"

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, list[int]]:
        pick, y = getattr(xp, self.op), xs[0]
        for x in xs[1:]:
            y = pick(y, x)  # y = max_i x_i (Minimum: min)
        return y, [1] * len(xs)

    def _grads(self, xp: Any, dy: Any, cache: MergeCache) -> list[Any]:
        zero = xp.zeros_like(dy)
        free = xp.ones_like(dy, dtype=xp.bool)  # not yet given to an input
        grads = []
        for x in cache.xs or []:
            chosen = xp.logical_and(free, x == cache.y)
            grads.append(xp.where(chosen, dy, zero))  # dL/dx_i = dy where x_i gave y
            free = xp.logical_and(free, xp.logical_not(chosen))
        return grads


class Minimum(Maximum):
    """``y = min_i x_i`` (elementwise); ``dL/dx_i = dy`` where ``x_i`` is the first minimum."""

    op = "minimum"


class Concatenate(_Merge):
    """``y = concat([x_1, ..., x_n], axis)``; ``dL/dx_i`` is ``dy``'s slice of ``x_i``.

    Shapes must agree except along ``axis`` (default -1, the features; not the batch axis).
    """

    def __init__(self, axis: int = -1, *, name: str | None = None) -> None:
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise ValueError(
                f"axis must be a non-batch axis (an int, not 0). Received: axis={axis!r}"
            )
        self.axis = axis
        super().__init__(name=name)

    def _axis(self, rank: int) -> int:
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 0 < axis < rank:
            raise ValueError(
                f"{self.name}: axis={self.axis} is out of range for inputs of rank {rank}"
            )
        return axis

    def _output_shape(self, shapes: list[Shape]) -> Shape:
        ranks = {len(s) for s in shapes}
        axis = self._axis(min(ranks))
        rest = [s[:axis] + s[axis + 1 :] for s in shapes]
        if len(ranks) > 1 or any(
            a is not None and b is not None and a != b for r in rest for a, b in zip(rest[0], r)
        ):
            raise ValueError(
                f"{self.name}: inputs must have the same shape except along axis {self.axis}. "
                "Received shapes " + ", ".join(format_shape(s) for s in shapes)
            )
        sizes = [s[axis] for s in shapes]
        total = None if None in sizes else sum(sizes)
        return (*shapes[0][:axis], total, *shapes[0][axis + 1 :])

    def _merge(self, xp: Any, xs: list[Any]) -> tuple[Any, list[int]]:
        axis = self._axis(len(xs[0].shape))
        return xp.concat(xs, axis=axis), [int(x.shape[axis]) for x in xs]  # y = [x_1 | ... | x_n]

    def _grads(self, xp: Any, dy: Any, cache: MergeCache) -> list[Any]:
        axis, grads, start = self._axis(len(dy.shape)), [], 0
        for size in cache.sizes:
            index = (slice(None),) * axis + (slice(start, start + size),)
            grads.append(dy[index])  # dL/dx_i = dy[..., start_i : start_i + size_i, ...]
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
