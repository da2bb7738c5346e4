"""Image utility layers: SpatialDropout2D, ZeroPadding2D, Cropping2D, UpSampling2D.

Images are ``(batch, height, width, channels)`` (``data_format="channels_last"``, Keras's
default) or ``(batch, channels, height, width)`` (``"channels_first"``, PyTorch's). Another
rank is a ``ValueError`` naming the layer and the shape.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

from portable_nn.backend import namespace_of
from portable_nn.random import Generator
from portable_nn.validation import format_shape, int_tuple

from ._spatial import data_format_arg, spatial_axes
from .base import Layer, Shape
from .dropout import Dropout
from .pooling import crop, pad

Border = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))


class ImageCache(NamedTuple):
    shape: tuple[int, ...]  # x's shape, which dx gets
    out: tuple[int, ...]  # y's shape, which dy must have


class SpatialDropout2D(Dropout):
    """Dropout of whole channels: ``y[b, ..., c] = x[b, ..., c] * mask[b, c] / (1 - rate)``.

    One draw per (sample, channel) (Tompson et al., 2015): neighbouring pixels are strongly
    correlated, so dropping them one by one barely regularises. Kept channels are scaled by
    ``1 / (1 - rate)``; inference and ``rate == 0`` are the identity. Masks come from the
    device-side generator of :class:`Dropout` (the same masks on every backend for a seed).

    Parameters
    ----------
    rate : fraction of channels dropped, ``0 <= rate < 1``.
    data_format : ``"channels_last"`` or ``"channels_first"``.
    seed : an int, a ``pnn.random.Generator`` or ``None`` (as :class:`Dropout`).
    """

    def __init__(
        self,
        rate: float,
        data_format: str = "channels_last",
        seed: int | Generator | None = None,
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.data_format = data_format_arg(data_format)
        super().__init__(rate, seed, input_shape=input_shape, name=name)

    def build(self, input_shape: Shape) -> None:
        spatial_axes(self.name, input_shape, 2, self.data_format)
        super().build(input_shape)

    def _mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.data_format == "channels_last":
            return (shape[0], 1, 1, shape[3])  # one draw per (sample, channel)
        return (shape[0], shape[1], 1, 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format}


def _border(name: str, value: Any) -> Border:
    """``((top, bottom), (left, right))`` from an int, two ints (height, width: symmetric) or
    two pairs, all ``>= 0`` (Keras's meanings)."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, (list, tuple)) for v in value):
        if len(value) == 2:
            top_bottom, left_right = (int_tuple(name, v, 2, low=0) for v in value)
            return top_bottom, left_right
        raise ValueError(f"Expected ((top, bottom), (left, right)). Received: {name}={value!r}")
    height, width = int_tuple(name, value, 2, low=0)
    return (height, height), (width, width)


class _Border(Layer):
    """Shared parts of ZeroPadding2D (adds a border) and Cropping2D (removes one)."""

    _sign: ClassVar[int]  # +1: the border is added, -1: removed

    def __init__(
        self, border: Border, data_format: str, *, input_shape: Shape | None, name: str | None
    ) -> None:
        self._border = border
        self.data_format = data_format_arg(data_format)
        super().__init__(input_shape=input_shape, name=name)

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)  # a bad rank or an over-sized crop raises here
        super().build(input_shape)

    def _widths(self) -> tuple[tuple[int, int], ...]:
        """``(before, after)`` cells per axis of the 4-D input."""
        if self.data_format == "channels_last":
            return ((0, 0), *self._border, (0, 0))
        return ((0, 0), (0, 0), *self._border)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        spatial_axes(self.name, input_shape, 2, self.data_format)
        out = [
            n if n is None else n + self._sign * (b + a)
            for n, (b, a) in zip(input_shape, self._widths())
        ]
        if any(n is not None and n < 1 for n in out[1:]):
            raise ValueError(
                f"{self.name}: cropping={[list(p) for p in self._border]} leaves nothing of "
                f"input shape {format_shape(input_shape)}"
            )
        return tuple(out)

    def _config(self, arg: str) -> dict[str, Any]:
        border = [list(pair) for pair in self._border]
        return {**super().get_config(), arg: border, "data_format": self.data_format}


class ZeroPadding2D(_Border):
    """``y = x`` inside a border of zeros: ``top``/``bottom`` rows, ``left``/``right`` columns.

    ``padding``: an int (every side), two ints ``(height, width)`` (symmetric) or
    ``((top, bottom), (left, right))`` (Keras). Shape ``(b, h, w, c) -> (b, h + top + bottom,
    w + left + right, c)`` (channels-last).
    """

    _sign = 1

    def __init__(
        self,
        padding: Any = (1, 1),
        data_format: str = "channels_last",
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.padding = _border("padding", padding)
        super().__init__(self.padding, data_format, input_shape=input_shape, name=name)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, ImageCache]:
        self.ensure_built(x)
        y = pad(namespace_of(x), x, self._widths(), 0.0)  # y = x inside a border of zeros
        return y, ImageCache(tuple(x.shape), tuple(y.shape))

    def backward(self, dy: Any, cache: ImageCache) -> tuple[Any, dict[str, Any]]:
        self.check_gradient(dy, cache.out)
        return crop(dy, self._widths()), {}  # dL/dx = dy without the border

    def get_config(self) -> dict[str, Any]:
        return self._config("padding")


class Cropping2D(_Border):
    """``y = x`` without ``top``/``bottom`` rows and ``left``/``right`` columns.

    ``cropping``: an int, two ints ``(height, width)`` (symmetric) or
    ``((top, bottom), (left, right))`` (Keras). ``ValueError`` when nothing would be left.
    """

    _sign = -1

    def __init__(
        self,
        cropping: Any = ((0, 0), (0, 0)),
        data_format: str = "channels_last",
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.cropping = _border("cropping", cropping)
        super().__init__(self.cropping, data_format, input_shape=input_shape, name=name)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, ImageCache]:
        self.ensure_built(x)
        y = crop(x, self._widths())  # y = x without the border
        return y, ImageCache(tuple(x.shape), tuple(y.shape))

    def backward(self, dy: Any, cache: ImageCache) -> tuple[Any, dict[str, Any]]:
        self.check_gradient(dy, cache.out)
        return pad(namespace_of(dy), dy, self._widths(), 0.0), {}  # dL/dx = dy, zeros around

    def get_config(self) -> dict[str, Any]:
        return self._config("cropping")


class UpSampling2D(Layer):
    """Nearest neighbour: ``y[b, i, j, c] = x[b, i // sh, j // sw, c]`` for ``size = (sh, sw)``.

    Shape ``(b, h, w, c) -> (b, h * sh, w * sw, c)`` (channels-last). Each input cell fills an
    ``sh x sw`` block, so its gradient is the sum of ``dy`` over that block. ``size``: an int or
    two ints.
    """

    def __init__(
        self,
        size: int | tuple[int, int] = (2, 2),
        data_format: str = "channels_last",
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.size = int_tuple("size", size, 2)
        self.data_format = data_format_arg(data_format)
        super().__init__(input_shape=input_shape, name=name)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        out = list(input_shape)
        for axis, s in zip(spatial_axes(self.name, input_shape, 2, self.data_format), self.size):
            out[axis] = None if out[axis] is None else out[axis] * s
        return tuple(out)

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)
        super().build(input_shape)

    def _blocks(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``x``'s shape with a size-1 axis after each spatial axis, and ``y``'s as blocks."""
        first, (sh, sw) = (1 if self.data_format == "channels_last" else 2), self.size
        lead, (h, w), tail = shape[:first], shape[first : first + 2], shape[first + 2 :]
        return (*lead, h, 1, w, 1, *tail), (*lead, h, sh, w, sw, *tail)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, ImageCache]:
        self.ensure_built(x)
        xp, (cells, blocks) = namespace_of(x), self._blocks(tuple(x.shape))
        out = self.compute_output_shape(tuple(x.shape))
        y = xp.reshape(xp.broadcast_to(xp.reshape(x, cells), blocks), out)  # y = x per block
        return y, ImageCache(tuple(x.shape), out)

    def backward(self, dy: Any, cache: ImageCache) -> tuple[Any, dict[str, Any]]:
        self.check_gradient(dy, cache.out)
        xp, (_, blocks) = namespace_of(dy), self._blocks(cache.shape)
        first = 1 if self.data_format == "channels_last" else 2
        dx = xp.sum(xp.reshape(dy, blocks), axis=(first + 1, first + 3))  # dL/dx = block sums
        return dx, {}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        return {**config, "size": list(self.size), "data_format": self.data_format}


__all__ = [
    "Cropping2D",
    "ImageCache",
    "SpatialDropout2D",
    "UpSampling2D",
    "ZeroPadding2D",
]
