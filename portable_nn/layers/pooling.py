"""Pooling over windows of sequences and images, channels-last by default (Keras).

Max and average pooling share one windowing (:func:`plan`): for a ``kh x kw`` window and
strides ``(sh, sw)`` the ``kh * kw`` strided slices ``x[:, i::sh, j::sw, :]``, one per kernel
offset ``(i, j)`` in row-major order, line up element ``(i, j)`` of every window. Forward
combines the slices (``maximum`` or ``+``); backward adds each slice's share of ``dy`` back
into a zero gradient at the same slice. Standard slicing only: no strided views, no library
pooling. The 1-D layers are the 2-D ones on a size-1 height axis; global pooling reduces over
every spatial axis.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, ClassVar, NamedTuple

import array_api_compat
import array_api_extra as xpx

from portable_nn.backend import namespace_of
from portable_nn.functional.convolution import output_size, pad_widths
from portable_nn.validation import choice, format_shape, int_tuple

from ._spatial import LAYOUTS, data_format_arg, spatial_axes
from .base import Layer, Shape

Ints = tuple[int, ...]


# -- the windowing ------------------------------------------------------------------------------
def _axis(size: int, k: int, s: int, padding: str) -> tuple[int, tuple[int, int]]:
    """Output length and ``(before, after)`` padding of one axis (Keras/TensorFlow rules, the
    convolution's geometry with dilation 1)."""
    before, after = pad_widths(size, k, s, 1, padding)
    return output_size(size + before + after, k, s, 1), (before, after)


class Plan(NamedTuple):
    """Where the windows of one input shape lie, in the 4-D layout (1-D inputs get a size-1
    height axis)."""

    shape: tuple[int, ...]  # the input, 4-D
    out: tuple[int, ...]  # the output, 4-D
    y_shape: tuple[int, ...]  # the layer's output shape (1-D: without the size-1 axis)
    pads: tuple[tuple[int, int], ...]  # (before, after) per axis ("same" padding)
    windows: tuple[tuple[slice, ...], ...]  # one strided slice per kernel offset, row-major
    cells: tuple[int, ...]  # the input's spatial shape, 4-D (batch and channels of size 1)


@functools.lru_cache(maxsize=256)
def plan(shape: Ints, pool: Ints, strides: Ints, padding: str, first: int) -> Plan:
    """The windows of ``pool`` (1 or 2 ints) moved by ``strides`` over the spatial axes from
    ``first`` on (1: channels-last, 2: channels-first) of an input of ``shape``."""
    lifted = len(pool) == 1
    if lifted:  # a 1-D input is a 2-D one of height 1
        shape, pool, strides = (*shape[:first], 1, *shape[first:]), (1, *pool), (1, *strides)
    axes, out, pads = (first, first + 1), list(shape), [(0, 0)] * 4
    for axis, k, s in zip(axes, pool, strides):
        out[axis], pads[axis] = _axis(shape[axis], k, s, padding)
    windows = []
    for offset in itertools.product(*(range(k) for k in pool)):
        index = [slice(None)] * 4
        for axis, i, s in zip(axes, offset, strides):
            index[axis] = slice(i, i + s * (out[axis] - 1) + 1, s)
        windows.append(tuple(index))
    y_shape = (*out[:first], *out[first + 1 :]) if lifted else tuple(out)
    cells = tuple(shape[a] if a in axes else 1 for a in range(4))
    return Plan(shape, tuple(out), y_shape, tuple(pads), tuple(windows), cells)


def _window_sum(xs: Any, windows: tuple[tuple[slice, ...], ...]) -> Any:
    """The sum over each window of ``xs`` (padded), one strided slice per offset."""
    total = xs[windows[0]]
    for window in windows[1:]:
        total = total + xs[window]
    return total


def pad(xp: Any, x: Any, pads: tuple[tuple[int, int], ...], value: float) -> Any:
    """``x`` with ``pads`` cells of ``value`` around it (``x`` itself when there are none)."""
    return xpx.pad(x, pads, constant_values=value, xp=xp) if any(map(any, pads)) else x


def crop(x: Any, pads: tuple[tuple[int, int], ...]) -> Any:
    """The inverse of :func:`pad`: ``x`` without its padded cells."""
    if not any(map(any, pads)):
        return x
    return x[tuple(slice(b, n - a) for (b, a), n in zip(pads, x.shape))]


# -- windowed pooling ---------------------------------------------------------------------------
class MaxPoolCache(NamedTuple):
    xs: Any  # the (padded) input, 4-D: backward finds each window's maximum again
    y: Any  # the output, 4-D
    plan: Plan
    shape: tuple[int, ...]  # x's shape, which dx gets


class AvgPoolCache(NamedTuple):
    count: Any  # real cells per window: kh * kw, or an array of them when padded
    plan: Plan
    shape: tuple[int, ...]  # x's shape, which dx gets


class _Pooling(Layer):
    """Shared parts of the windowed poolings: arguments, output shapes, the plan, config."""

    _rank: ClassVar[int] = 2

    def __init__(
        self,
        pool_size: int | tuple[int, ...] = 2,
        strides: int | tuple[int, ...] | None = None,
        padding: str = "valid",
        data_format: str = "channels_last",
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.pool_size = int_tuple("pool_size", pool_size, self._rank)
        strides = self.pool_size if strides is None else strides
        self.strides = int_tuple("strides", strides, self._rank)
        self.padding = choice("padding", padding, ("valid", "same"))
        self.data_format = data_format_arg(data_format)
        super().__init__(input_shape=input_shape, name=name)

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)  # a bad rank or a too small input raises here
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        out = list(input_shape)
        axes = spatial_axes(self.name, input_shape, self._rank, self.data_format)
        for axis, k, s in zip(axes, self.pool_size, self.strides):
            if input_shape[axis] is not None:
                out[axis] = _axis(input_shape[axis], k, s, self.padding)[0]
                if out[axis] < 1:
                    raise ValueError(
                        f"{self.name}: pool_size={self.pool_size} is larger than the input "
                        f"(padding='valid'); received input shape {format_shape(input_shape)}"
                    )
        return tuple(out)

    def _plan(self, x: Any) -> Plan:
        first = 1 if self.data_format == "channels_last" else 2
        return plan(tuple(x.shape), self.pool_size, self.strides, self.padding, first)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format,
        }


class _MaxPooling(_Pooling):
    """``y = max`` over each window. Backward sends ``dy`` to the FIRST maximal element of each
    window in row-major order (ties: one winner, as PyTorch's CPU kernel); "same" padding
    pads with -inf, so padded cells never win."""

    def forward(self, x: Any, training: bool = False) -> tuple[Any, MaxPoolCache]:
        self.ensure_built(x)
        xp, p = namespace_of(x), self._plan(x)
        xs = pad(xp, xp.reshape(x, p.shape), p.pads, -math.inf)
        y = xs[p.windows[0]]
        for window in p.windows[1:]:
            y = xp.maximum(y, xs[window])  # y = max over the window
        return xp.reshape(y, p.y_shape), MaxPoolCache(xs, y, p, tuple(x.shape))

    def backward(self, dy: Any, cache: MaxPoolCache) -> tuple[Any, dict[str, Any]]:
        xs, y, p, shape = cache
        self.check_gradient(dy, p.y_shape)
        xp, device = namespace_of(dy), array_api_compat.device(dy)
        dy = xp.reshape(dy, p.out)
        dxs = xp.zeros(xs.shape, dtype=dy.dtype, device=device)
        taken = xp.zeros(p.out, dtype=xp.bool, device=device)  # windows whose max has its dy
        for window in p.windows:  # row-major offsets: the first maximal element wins
            first = (xs[window] == y) & ~taken
            taken = taken | first
            # dL/dx = dy at the max (a product with the 0/1 mask: torch's CPU where is 5x slower)
            dxs = xpx.at(dxs)[window].add(dy * xp.astype(first, dy.dtype))
        return xp.reshape(crop(dxs, p.pads), shape), {}


class _AveragePooling(_Pooling):
    """``y = sum / count`` over each window; with "same" padding ``count`` is the number of
    real cells (padded cells neither add nor count, as in Keras)."""

    def forward(self, x: Any, training: bool = False) -> tuple[Any, AvgPoolCache]:
        self.ensure_built(x)
        xp, p = namespace_of(x), self._plan(x)
        total = _window_sum(pad(xp, xp.reshape(x, p.shape), p.pads, 0.0), p.windows)
        count = float(len(p.windows))
        if any(map(any, p.pads)):  # "same": the real cells per window, a window sum of ones
            ones = xp.ones(p.cells, dtype=x.dtype, device=array_api_compat.device(x))
            count = _window_sum(pad(xp, ones, p.pads, 0.0), p.windows)
        y = total / count  # y = sum over the window / count
        return xp.reshape(y, p.y_shape), AvgPoolCache(count, p, tuple(x.shape))

    def backward(self, dy: Any, cache: AvgPoolCache) -> tuple[Any, dict[str, Any]]:
        count, p, shape = cache
        self.check_gradient(dy, p.y_shape)
        xp = namespace_of(dy)
        share = xp.reshape(dy, p.out) / count  # dL/dx = dy / count for every cell of the window
        padded = tuple(n + b + a for n, (b, a) in zip(p.shape, p.pads))
        dxs = xp.zeros(padded, dtype=dy.dtype, device=array_api_compat.device(dy))
        for window in p.windows:
            dxs = xpx.at(dxs)[window].add(share)
        return xp.reshape(crop(dxs, p.pads), shape), {}


_POOL_DOC = """

    Input ``{last}`` (``data_format="channels_last"``, the default) or ``{first}``
    (``"channels_first"``); each spatial length ``n`` becomes ``floor((n - k) / s) + 1``
    (``padding="valid"``) or ``ceil(n / s)`` (``"same"``: padded evenly, an odd cell after).
    ``ValueError`` naming the layer and the shape for another rank or, with "valid", an input
    smaller than the window.

    Parameters
    ----------
    pool_size : window size, an int or {n} ints.
    strides : step between windows, an int or {n} ints; ``None`` means ``pool_size``.
    padding : ``"valid"`` (windows inside the input) or ``"same"``.
    data_format : ``"channels_last"`` or ``"channels_first"``.
    """

_GLOBAL_DOC = """

    Input ``{last}`` (``data_format="channels_last"``, the default) or ``{first}``
    (``"channels_first"``); output ``(batch, channels)``. ``ValueError`` naming the layer and
    the shape for another rank.
    """


def _with_doc(template: str, rank: int) -> Any:
    """Append ``template`` (shapes and parameters) for inputs of ``rank`` spatial axes."""

    def add(cls: type) -> type:
        last, first = LAYOUTS["channels_last", rank], LAYOUTS["channels_first", rank]
        cls.__doc__ = (cls.__doc__ or "") + template.format(last=last, first=first, n=rank)
        return cls

    return add


@_with_doc(_POOL_DOC, 2)
class MaxPooling2D(_MaxPooling):
    """Max over ``pool_size`` windows of an image; dy goes to the first maximal element of each
    window in row-major order."""


@_with_doc(_POOL_DOC, 1)
class MaxPooling1D(_MaxPooling):
    """Max over ``pool_size`` windows of a sequence; dy goes to the first maximal element of
    each window."""

    _rank = 1


@_with_doc(_POOL_DOC, 2)
class AveragePooling2D(_AveragePooling):
    """Mean over ``pool_size`` windows of an image ("same": over the real cells only)."""


@_with_doc(_POOL_DOC, 1)
class AveragePooling1D(_AveragePooling):
    """Mean over ``pool_size`` windows of a sequence ("same": over the real cells only)."""

    _rank = 1


# -- global pooling -----------------------------------------------------------------------------
class GlobalPoolCache(NamedTuple):
    x: Any  # max: the input as (batch, cells, channels) / (batch, channels, cells); mean: None
    shape: tuple[int, ...]  # x's shape, which dx gets
    weights: Any = None  # masked mean: (batch, time) weights mask / count; else None (1 / n)


class _GlobalPooling(Layer):
    """Shared parts: ``(batch, ..., channels) -> (batch, channels)`` over every spatial axis."""

    _rank: ClassVar[int] = 2

    def __init__(
        self,
        data_format: str = "channels_last",
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.data_format = data_format_arg(data_format)
        super().__init__(input_shape=input_shape, name=name)

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        spatial_axes(self.name, input_shape, self._rank, self.data_format)
        channels = input_shape[-1 if self.data_format == "channels_last" else 1]
        return (input_shape[0], channels)

    def _cells(self, x: Any) -> tuple[Any, int]:
        """``x`` as (batch, cells, channels) or (batch, channels, cells), and the cells' axis."""
        xp, batch, channels = namespace_of(x), x.shape[0], self.compute_output_shape(x.shape)[1]
        if self.data_format == "channels_last":
            return xp.reshape(x, (batch, -1, channels)), 1
        return xp.reshape(x, (batch, channels, -1)), 2

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format}


class _GlobalAveragePooling(_GlobalPooling):
    """``y[b, c] = mean of x[b, ..., c]`` over every spatial position."""

    def forward(self, x: Any, training: bool = False) -> tuple[Any, GlobalPoolCache]:
        self.ensure_built(x)
        cells, axis = self._cells(x)
        return namespace_of(x).mean(cells, axis=axis), GlobalPoolCache(None, tuple(x.shape))

    def backward(self, dy: Any, cache: GlobalPoolCache) -> tuple[Any, dict[str, Any]]:
        shape = cache.shape
        self.check_gradient(dy, self.compute_output_shape(shape))
        xp, n = namespace_of(dy), math.prod(shape) // math.prod(dy.shape)
        axis = 1 if self.data_format == "channels_last" else 2
        if cache.weights is not None:  # masked: dL/dx[b, t] = dy[b] * weights[b, t]
            w = xp.expand_dims(cache.weights, axis=3 - axis)
            return xp.expand_dims(dy, axis=axis) * w, {}
        cells = (shape[0], n, dy.shape[1]) if axis == 1 else (shape[0], dy.shape[1], n)
        dx = xp.zeros(cells, dtype=dy.dtype, device=array_api_compat.device(dy))
        dx = dx + xp.expand_dims(dy / float(n), axis=axis)  # dL/dx = dy / n at every position
        return xp.reshape(dx, shape), {}


class _GlobalMaxPooling(_GlobalPooling):
    """``y[b, c] = max of x[b, ..., c]``; dy goes to the first maximal position in row-major
    order (the standard's ``argmax`` rule)."""

    def forward(self, x: Any, training: bool = False) -> tuple[Any, GlobalPoolCache]:
        self.ensure_built(x)
        cells, axis = self._cells(x)
        return namespace_of(x).max(cells, axis=axis), GlobalPoolCache(cells, tuple(x.shape))

    def backward(self, dy: Any, cache: GlobalPoolCache) -> tuple[Any, dict[str, Any]]:
        cells, shape = cache.x, cache.shape
        self.check_gradient(dy, self.compute_output_shape(shape))
        xp, axis = namespace_of(dy), 1 if self.data_format == "channels_last" else 2
        first = xp.argmax(cells, axis=axis, keepdims=True)  # the first maximal position
        index = xp.arange(cells.shape[axis], device=array_api_compat.device(dy))
        index = xp.reshape(index, (1, -1, 1) if axis == 1 else (1, 1, -1))
        dx = xp.where(index == first, xp.expand_dims(dy, axis=axis), 0.0)  # dL/dx = dy at max
        return xp.reshape(dx, shape), {}


@_with_doc(_GLOBAL_DOC, 2)
class GlobalAveragePooling2D(_GlobalAveragePooling):
    """Mean of each channel over the image."""


@_with_doc(_GLOBAL_DOC, 1)
class GlobalAveragePooling1D(_GlobalAveragePooling):
    """Mean of each channel over the sequence; with a sequence mask ``(batch, time)`` (from
    ``Embedding(mask_zero=True)`` or a mask input) over the real steps only, as Keras:
    ``y[b] = sum_t mask[b, t] x[b, t] / max(1, sum_t mask[b, t])`` (a fully masked row gives
    zeros). The mask stops here."""

    _rank = 1
    accepts_mask = True

    def forward(
        self, x: Any, training: bool = False, mask: Any = None
    ) -> tuple[Any, GlobalPoolCache]:
        if mask is None:
            return super().forward(x, training)
        self.ensure_built(x)
        xp, axis = namespace_of(x), 1 if self.data_format == "channels_last" else 2
        if tuple(mask.shape) != (x.shape[0], x.shape[axis]):
            raise ValueError(
                f"{self.name}: the mask has shape {tuple(mask.shape)}, the input "
                f"{tuple(x.shape)} needs (batch, time) = {(x.shape[0], x.shape[axis])}"
            )
        weights = xp.astype(mask, x.dtype)
        weights = weights / xp.clip(xp.sum(weights, axis=1, keepdims=True), min=1.0)
        y = xp.sum(x * xp.expand_dims(weights, axis=3 - axis), axis=axis)
        return y, GlobalPoolCache(None, tuple(x.shape), weights)


@_with_doc(_GLOBAL_DOC, 2)
class GlobalMaxPooling2D(_GlobalMaxPooling):
    """Max of each channel over the image; dy goes to its first maximal position."""


@_with_doc(_GLOBAL_DOC, 1)
class GlobalMaxPooling1D(_GlobalMaxPooling):
    """Max of each channel over the sequence; dy goes to its first maximal position."""

    _rank = 1


__all__ = [
    "AvgPoolCache",
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalPoolCache",
    "MaxPoolCache",
    "MaxPooling1D",
    "MaxPooling2D",
]
