"""Convolution layers ``y = activation(conv(x, W) + b)``: :class:`Conv2D` and :class:`Conv1D`.

Channels-last by default (Keras): images ``(batch, height, width, channels)``, sequences
``(batch, steps, channels)``; ``data_format="channels_first"`` takes PyTorch's
``(batch, channels, ...)`` and is moved to channels-last at the edges of the layer. The maths is
:mod:`portable_nn.functional.convolution` (im2col from strided slices, one matmul per group,
col2im) on NumPy, CuPy and array-api-strict; torch and JAX run their own convolution
(:func:`portable_nn.backend.native.convolution`), tested equal to it. ``Conv1D`` is the 2-D
convolution on a size-1 height axis.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import array_api_compat

from portable_nn.backend import namespace_of
from portable_nn.backend.native import Convolution, convolution
from portable_nn.functional.convolution import conv2d, conv2d_grad, plan
from portable_nn.random import Generator, get_generator
from portable_nn.validation import choice, flag, format_shape, int_tuple, positive_int

from ._spatial import LAYOUTS, data_format_arg
from ._weights import check_initializer, check_seed, initializer_name, make_weight
from .activation import bind
from .base import Layer, Shape

Ints = tuple[int, ...]


def _column_sums(xp: Any, dz: Any) -> Any:
    """``sum(dz, axis=(0, 1, 2))`` as ``ones @ dz``: on NumPy the matvec is ~7x faster than a
    column sum of a tall ``(batch * out_h * out_w, filters)`` array with few filters."""
    dz = xp.reshape(dz, (-1, dz.shape[-1]))
    return xp.matmul(xp.ones(dz.shape[0], dtype=dz.dtype, device=array_api_compat.device(dz)), dz)


_PORTABLE = Convolution(conv2d, conv2d_grad)


def _kernels(xp: Any) -> Convolution:
    """The convolution for arrays of ``xp``: the library's own where it has one, else portable."""
    return convolution(xp) or _PORTABLE


class ConvCache(NamedTuple):
    inputs: Any  # x as the convolution's backward takes it: im2col windows (portable) or x
    saved: Any  # the activation's output y or input z (channels-last), None for linear
    weight: Any  # the W that produced y (a reference, not a copy)
    shape: Ints  # the input's shape as (batch, height, width, channels): col2im's target


class _Conv(Layer):
    """The layer shared by Conv1D and Conv2D (``rank`` spatial axes)."""

    rank: ClassVar[int]
    skips_input_grad = True
    REGULARIZABLE = {"kernel_regularizer": ("weight",), "bias_regularizer": ("bias",)}

    def __init__(
        self,
        filters: int,
        kernel_size: int | Ints,
        strides: int | Ints = 1,
        padding: str | int | Ints = "valid",
        dilation_rate: int | Ints = 1,
        groups: int = 1,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        data_format: str = "channels_last",
        input_shape: Shape | None = None,
        seed: int | Generator | None = None,
        name: str | None = None,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
    ) -> None:
        rank = self.rank
        self.set_regularizers(
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
        )
        self.filters = positive_int("filters", filters)
        self.kernel_size = int_tuple("kernel_size", kernel_size, rank)
        self.strides = int_tuple("strides", strides, rank)
        self.dilation_rate = int_tuple("dilation_rate", dilation_rate, rank)
        if isinstance(padding, str):
            self.padding: str | Ints = choice("padding", padding.lower(), ("valid", "same"))
        else:
            self.padding = int_tuple("padding", padding, rank, low=0)
        self.groups = positive_int("groups", groups)
        if self.filters % self.groups:
            raise ValueError(
                f"filters must be divisible by groups. Received: filters={filters}, groups={groups}"
            )
        self.activation, self._f, self._grad, self._saves_output = bind(activation)
        self.use_bias = flag("use_bias", use_bias)
        self.kernel_initializer = check_initializer("kernel_initializer", kernel_initializer)
        self.bias_initializer = check_initializer("bias_initializer", bias_initializer)
        self.data_format = data_format_arg(data_format)
        check_seed(seed)
        self.seed = seed
        lift = (1,) * (2 - rank)  # Conv1D: a size-1 height axis
        pad = self.padding if isinstance(self.padding, str) else (0,) * (2 - rank) + self.padding
        self._geometry = (lift + self.kernel_size, lift + self.strides, lift + self.dilation_rate)
        self._padding2d = pad
        super().__init__(input_shape=input_shape, name=name)

    # -- shapes -----------------------------------------------------------------------------------
    def _split(self, shape: Shape) -> tuple[Any, tuple[Any, ...], Any]:
        """``(batch, spatial sizes, channels)`` of a shape in the layer's data format."""
        if len(shape) != self.rank + 2:
            raise ValueError(
                f"{self.name}: expects inputs {LAYOUTS[self.data_format, self.rank]} of rank "
                f"{self.rank + 2}; received input shape {format_shape(shape)}"
            )
        if self.data_format == "channels_first":
            return shape[0], tuple(shape[2:]), shape[1]
        return shape[0], tuple(shape[1:-1]), shape[-1]

    def _join(self, batch: Any, spatial: tuple[Any, ...], channels: Any) -> Shape:
        first = self.data_format == "channels_first"
        return (batch, channels, *spatial) if first else (batch, *spatial, channels)

    def _plan(self, spatial2d: Ints, shape: Shape) -> tuple[Any, Ints]:
        """Padding and output size of the 2-D view; ``ValueError`` when the kernel is larger
        than the padded input."""
        kernel, strides, dilation = self._geometry
        pads, out = plan(spatial2d, kernel, strides, dilation, self._padding2d)
        if min(out) < 1:
            span = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))[2 - self.rank :]
            padded = tuple(n + lo + hi for n, (lo, hi) in zip(spatial2d, pads))[2 - self.rank :]
            raise ValueError(
                f"{self.name}: the kernel (kernel_size={self.kernel_size}, dilation_rate="
                f"{self.dilation_rate}) spans {span}, larger than the padded input {padded}; "
                f"received input shape {format_shape(shape)}"
            )
        return pads, out

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        batch, spatial, _ = self._split(tuple(input_shape))
        if None in spatial:
            return self._join(batch, (None,) * self.rank, self.filters)
        _, out = self._plan((1,) * (2 - self.rank) + spatial, tuple(input_shape))
        return self._join(batch, out[2 - self.rank :], self.filters)

    def build(self, input_shape: Shape) -> None:
        _, _, channels = self._split(tuple(input_shape))
        if not isinstance(channels, int) or channels % self.groups:
            raise ValueError(
                f"{self.name}: the input channels must be known and divisible by groups="
                f"{self.groups}; received input shape {format_shape(input_shape)}"
            )
        self.compute_output_shape(input_shape)  # a kernel larger than the input raises here
        generator = get_generator(self.seed)
        shape = (*self.kernel_size, channels // self.groups, self.filters)
        params = {"weight": make_weight(self.kernel_initializer, shape, generator)}
        if self.use_bias:
            params["bias"] = make_weight(self.bias_initializer, (self.filters,), generator)
        self.params = params
        super().build(input_shape)

    def check_input(self, x: Any) -> None:
        super().check_input(x)
        self.compute_output_shape(tuple(x.shape))  # a kernel larger than the input raises

    # -- layout -----------------------------------------------------------------------------------
    def _to_2d(self, xp: Any, x: Any) -> Any:
        """The layer's layout -> (batch, height, width, channels), height 1 for Conv1D."""
        if self.data_format == "channels_first":
            x = xp.permute_dims(x, (0, *range(2, self.rank + 2), 1))
        return x if self.rank == 2 else xp.expand_dims(x, axis=1)

    def _from_2d(self, xp: Any, x: Any) -> Any:
        """The inverse of :meth:`_to_2d`."""
        x = x if self.rank == 2 else x[:, 0, ...]
        if self.data_format == "channels_first":
            x = xp.permute_dims(x, (0, self.rank + 1, *range(1, self.rank + 1)))
        return x

    # -- running ----------------------------------------------------------------------------------
    def forward(self, x: Any, training: bool = False) -> tuple[Any, ConvCache]:
        self.ensure_built(x)
        xp = namespace_of(x)
        x = self._to_2d(xp, x)
        shape, w = tuple(x.shape), self.params["weight"]
        pads, _ = self._plan(shape[1:3], shape)
        kernel = w if self.rank == 2 else xp.expand_dims(w, axis=0)  # Conv1D: (1, k, C/g, F)
        strides, dilation = self._geometry[1:]
        conv = _kernels(xp).forward
        z, inputs = conv(x, kernel, strides, pads, dilation, self.groups)  # z = windows(x) @ W
        if self.use_bias:
            z = z + self.params["bias"]  # z += b
        y, saved = z, None  # linear: y = z
        if self._f is not None:
            y = self._f(z)  # y = f(z)
            saved = y if self._saves_output else z
        return self._from_2d(xp, y), ConvCache(inputs, saved, w, shape)

    def backward(
        self, dy: Any, cache: ConvCache, input_grad: bool = True
    ) -> tuple[Any, dict[str, Any]]:
        """``(dL/dx, {"weight": dL/dW, "bias": dL/db})``; ``dL/dx`` is None when not asked for."""
        inputs, saved, w, shape = cache
        pads, out = self._plan(shape[1:3], shape)
        expected = self._join(shape[0], out[2 - self.rank :], self.filters)
        if dy.shape != expected:
            self.check_gradient(dy, expected)
        xp = namespace_of(dy)
        dz = self._to_2d(xp, dy)
        if self._f is not None:
            dz = self._grad(saved, dz)  # dL/dz = f'(z) * dy
        kernel = w if self.rank == 2 else xp.expand_dims(w, axis=0)
        strides, dilation = self._geometry[1:]
        grad = _kernels(xp).backward  # dL/dW = windows(x).T @ dz, dL/dx = col2im(dz @ W.T)
        dx, dw = grad(dz, inputs, kernel, shape, strides, pads, dilation, self.groups, input_grad)
        grads = {"weight": xp.reshape(dw, w.shape)}
        if self.use_bias:
            grads["bias"] = _column_sums(xp, dz)  # dL/db = sum of dz over batch and space
        return (None if dx is None else self._from_2d(xp, dx)), grads

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": _compact(self.kernel_size),
            "strides": _compact(self.strides),
            "padding": self.padding if isinstance(self.padding, str) else _compact(self.padding),
            "dilation_rate": _compact(self.dilation_rate),
            "groups": self.groups,
            "activation": None if self.activation == "linear" else self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": initializer_name(self.kernel_initializer),
            "bias_initializer": initializer_name(self.bias_initializer),
            "data_format": self.data_format,
            "seed": self.seed if isinstance(self.seed, int) else None,
        }


def _compact(values: Ints) -> int | list[int]:
    """One int when every axis has the same value (``3`` for ``(3, 3)``), else a JSON list."""
    return values[0] if len(set(values)) == 1 else list(values)


class Conv2D(_Conv):
    """2-D convolution ``y = activation(conv(x, W) + b)`` (cross-correlation, as Keras/PyTorch).

    ``y[n, i, j, f] = b[f] + sum_{a, b, c} x_p[n, i*sh + a*dh, j*sw + b*dw, c] W[a, b, c, f]``
    with ``x_p`` the zero-padded input and, for ``groups > 1``, ``c`` running over the channel
    block of ``f``'s group. Input ``(batch, height, width, channels)`` -> output ``(batch,
    out_h, out_w, filters)`` (``channels_first``: ``(batch, channels, height, width)`` ->
    ``(batch, filters, out_h, out_w)``). ``weight`` is ``(kh, kw, channels // groups, filters)``
    and ``bias`` ``(filters,)`` in both formats. The activation acts on the channels-last output
    (softmax over the filters in both formats); its backward is fused as in :class:`Dense`.

    Parameters
    ----------
    filters : output channels (positive int, divisible by ``groups``).
    kernel_size, strides, dilation_rate : an int or a pair (height, width).
    padding : ``"valid"`` (none), ``"same"`` (Keras/TF: output ``ceil(in / stride)``, the odd
        padded row/column at the bottom/right) or an int or pair of symmetric zero rows/columns
        (PyTorch's ``padding=``).
    groups : channels and filters split into ``groups`` contiguous blocks, block ``j`` of the
        filters seeing block ``j`` of the channels (depthwise when ``groups == channels``).
    activation, use_bias, kernel_initializer, bias_initializer, seed, name : as in Dense.
    data_format : ``"channels_last"`` (default) or ``"channels_first"``.
    input_shape : build at once for inputs ``(batch, *input_shape)``; height and width may be
        None (any size).
    """

    rank = 2


class Conv1D(_Conv):
    """1-D convolution over steps: ``(batch, steps, channels)`` -> ``(batch, out_steps,
    filters)`` (``channels_first``: ``(batch, channels, steps)``); ``weight`` ``(k, channels //
    groups, filters)``. The arguments are :class:`Conv2D`'s with one int each (a 1-tuple is
    accepted); the maths is Conv2D's on a size-1 height axis."""

    rank = 1


__all__ = ["Conv1D", "Conv2D", "ConvCache"]
