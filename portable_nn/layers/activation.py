"""Activation layers ``y = f(x)``: :class:`Activation` by name and one class per activation.

Each layer reads its ``f`` and backward from ``pnn.functional.ACTIVATION_RULES``. Forward saves
what the backward formula needs: the output ``y`` when ``f'`` is written in ``y`` (sigmoid,
tanh, relu, relu6, exponential, softmax), else the input ``x``, nothing for ``linear``. Shapes: any
``(batch, ...)``; the output has the input's shape, namespace, device and dtype, except
``Activation("glu")``, which halves the last axis. Softmax and LogSoftmax act along ``axis`` (the
last by default).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, NamedTuple

from portable_nn import functional as F
from portable_nn.functional.activations import _relu_options
from portable_nn.validation import flag, real_number

from .base import Layer, Shape


def bind(
    activation: str | None, *, fused: bool = True, **options: Any
) -> tuple[str, Callable | None, Callable, bool]:
    """``(name, f, grad, saves_output)`` for a layer applying ``activation`` with ``options``
    (alpha, axis): ``f`` is None for linear (``y = x``); ``grad(saved, dy)`` takes ``y`` when
    ``saves_output`` (f' written in y), else ``x``. A bad name raises as ``F.rule``; so does
    ``"glu"`` (it halves the last axis) when ``fused`` (Dense, Conv, RNN: f on their output)."""
    f, grad, grad_from_output = F.rule(activation)
    name = "linear" if activation is None else activation.lower()
    if fused and f is F.glu:
        raise ValueError(
            "activation 'glu' halves the last axis, so a layer cannot fuse it: use twice the "
            "units and an Activation('glu') layer after it. Received: activation='glu'"
        )
    grad = grad_from_output or grad
    if options:
        f, grad = partial(f, **options), partial(grad, **options)
    return name, (None if f is F.linear else f), grad, grad_from_output is not None


class ActivationCache(NamedTuple):
    saved: Any  # y (f' written in y), x (the others) or None (linear)
    shape: tuple[int, ...]  # the output's shape, which dy must have (glu: half of x's)


class Activation(Layer):
    """Applies a named activation elementwise: ``y = f(x)``.

    Parameters
    ----------
    activation : one of ``pnn.functional.ACTIVATIONS`` (``"relu"``, ``"softmax"``, ...).
    input_shape, name : see :class:`Layer`.
    """

    _options: ClassVar[tuple[str, ...]] = ()  # attributes passed to f and its grad (alpha, axis)
    keeps_mask = True  # the output's steps are the input's (masking, see layers.base)

    def __init__(
        self, activation: str | None, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        self.activation, self._f, self._grad, self._saves_output = bind(
            activation, fused=False, **self.options()
        )
        super().__init__(input_shape=input_shape, name=name)

    def options(self) -> dict[str, Any]:
        """Extra keyword arguments of the activation function (alpha, axis)."""
        return {key: getattr(self, key) for key in self._options}

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The input shape; for glu its last axis halved (``ValueError`` when odd)."""
        *lead, last = input_shape
        if self.activation != "glu" or last is None:
            return tuple(input_shape)
        if last % 2:
            raise ValueError(f"{self.name}: glu needs an even last axis. Received: {input_shape}")
        return (*lead, last // 2)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, ActivationCache]:
        self.ensure_built(x)
        if self._f is None:
            return x, ActivationCache(None, tuple(x.shape))  # y = x: nothing to save
        y = self._f(x)  # y = f(x)
        return y, ActivationCache(y if self._saves_output else x, tuple(y.shape))

    def backward(self, dy: Any, cache: ActivationCache) -> tuple[Any, dict[str, Any]]:
        self.check_gradient(dy, cache.shape)
        if self._f is None:
            return dy, {}  # dL/dx = dy
        return self._grad(cache.saved, dy), {}  # dL/dx = f'(x) * dy (softmax: a JVP)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), **self.options()}
        if "activation" in inspect.signature(type(self)).parameters:  # ReLU, ... fix theirs
            config["activation"] = self.activation
        return config


class _Fixed(Activation):
    """A layer for the one activation named by its class's ``function``; subclasses with options
    set them (the attributes named in ``_options``) before calling this constructor."""

    function: ClassVar[str]

    def __init__(self, *, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__(self.function, input_shape=input_shape, name=name)


class ReLU(_Fixed):
    """Keras's ReLU: ``y = min(x, max_value)`` for x > threshold, else ``negative_slope * (x -
    threshold)``; ``max(x, 0)`` by default, ReLU6 with ``max_value=6``. Needs ``threshold >= 0``,
    ``negative_slope >= 0`` and ``max_value`` None or ``> threshold`` (``ValueError``)."""

    function, _options = "relu", ("max_value", "negative_slope", "threshold")

    def __init__(
        self,
        max_value: float | None = None,
        negative_slope: float = 0.0,
        threshold: float = 0.0,
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        options = _relu_options(max_value, threshold, negative_slope)
        self.max_value, self.threshold, self.negative_slope = options
        super().__init__(input_shape=input_shape, name=name)


class Sigmoid(_Fixed):
    """``y = 1 / (1 + exp(-x))``."""

    function = "sigmoid"


class Tanh(_Fixed):
    """``y = tanh(x)``."""

    function = "tanh"


class SELU(_Fixed):
    """``y = scale * (x if x > 0 else alpha * (exp(x) - 1))``, Klambauer et al. (2017)."""

    function = "selu"


class Swish(_Fixed):
    """``y = x * sigmoid(x)`` (SiLU)."""

    function = "swish"


class GELU(_Fixed):
    """``y = x * Phi(x)``, the exact (erf) form, as ``torch.nn.GELU()``; ``approximate=True``:
    the tanh form ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""

    function, _options = "gelu", ("approximate",)

    def __init__(
        self,
        approximate: bool = False,
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.approximate = flag("approximate", approximate)
        super().__init__(input_shape=input_shape, name=name)


class Softplus(_Fixed):
    """``y = log(1 + exp(x))``."""

    function = "softplus"


class LeakyReLU(_Fixed):
    """``y = x if x > 0 else alpha * x``."""

    function, _options = "leaky_relu", ("alpha",)

    def __init__(
        self, alpha: float = 0.01, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        self.alpha = real_number("alpha", alpha)
        super().__init__(input_shape=input_shape, name=name)


class ELU(_Fixed):
    """``y = x if x > 0 else alpha * (exp(x) - 1)``."""

    function, _options = "elu", ("alpha",)

    def __init__(
        self, alpha: float = 1.0, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        self.alpha = real_number("alpha", alpha)
        super().__init__(input_shape=input_shape, name=name)


class _AlongAxis(_Fixed):
    """Softmax and LogSoftmax: ``axis`` (an int) is the axis they act along."""

    _options = ("axis",)

    def __init__(
        self, axis: int = -1, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"axis must be an int. Received: axis={axis!r}")
        self.axis = axis
        super().__init__(input_shape=input_shape, name=name)


class Softmax(_AlongAxis):
    """``y = exp(x - m) / sum(exp(x - m))`` along ``axis`` (m the maximum along it)."""

    function = "softmax"


class LogSoftmax(_AlongAxis):
    """``y = x - m - log(sum(exp(x - m)))`` along ``axis``."""

    function = "log_softmax"


__all__ = [
    "ELU",
    "GELU",
    "SELU",
    "Activation",
    "ActivationCache",
    "LeakyReLU",
    "LogSoftmax",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Swish",
    "Tanh",
]
