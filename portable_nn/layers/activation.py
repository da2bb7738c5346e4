"""Activation layers ``y = f(x)``: :class:`Activation` by name and one class per activation.

Each layer reads its ``f`` and backward from ``pnn.functional.ACTIVATION_RULES``. Forward saves
what the backward formula needs: the output ``y`` when ``f'`` is written in ``y`` (sigmoid,
tanh, relu, softmax), else the input ``x``, nothing for ``linear``. Shapes: any
``(batch, ...)``; the output has the input's shape, namespace, device and dtype. Softmax and
LogSoftmax act along ``axis`` (the last by default).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, NamedTuple

from portable_nn import functional as F
from portable_nn.validation import real_number

from .base import Layer, Shape


def bind(activation: str | None, **options: Any) -> tuple[str, Callable | None, Callable, bool]:
    """``(name, f, grad, saves_output)`` for a layer applying ``activation`` with ``options``
    (alpha, axis): ``f`` is None for linear (``y = x``); ``grad(saved, dy)`` takes ``y`` when
    ``saves_output`` (f' written in y), else ``x``. A bad name raises as ``F.rule``."""
    f, grad, grad_from_output = F.rule(activation)
    grad = grad_from_output or grad
    if options:
        f, grad = partial(f, **options), partial(grad, **options)
    name = "linear" if activation is None else activation.lower()
    return name, (None if f is F.linear else f), grad, grad_from_output is not None


class ActivationCache(NamedTuple):
    saved: Any  # y (f' written in y), x (the others) or None (linear)
    shape: tuple[int, ...]  # the output's shape, which dy must have


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
            activation, **self.options()
        )
        super().__init__(input_shape=input_shape, name=name)

    def options(self) -> dict[str, Any]:
        """Extra keyword arguments of the activation function (alpha, axis)."""
        return {key: getattr(self, key) for key in self._options}

    def forward(self, x: Any, training: bool = False) -> tuple[Any, ActivationCache]:
        self.ensure_built(x)
        if self._f is None:
            return x, ActivationCache(None, tuple(x.shape))  # y = x: nothing to save
        y = self._f(x)  # y = f(x)
        return y, ActivationCache(y if self._saves_output else x, tuple(x.shape))

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
    """``y = max(x, 0)``."""

    function = "relu"


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
    """``y = x * Phi(x)``, the exact (erf) form, as ``torch.nn.GELU()``."""

    function = "gelu"


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
