"""Activation layers ``y = f(x)``: :class:`Activation` by name and one class per activation.

Each layer reads its ``f`` and backward from ``pnn.functional.ACTIVATION_RULES``. Forward saves
what the backward formula needs: the output ``y`` when ``f'`` is written in ``y`` (sigmoid,
tanh, relu, softmax), else the input ``x``, nothing for ``linear``. Shapes: any
``(batch, ...)``; the output has the input's shape, namespace, device and dtype. Softmax and
LogSoftmax act along ``axis`` (the last by default).
"""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any, NamedTuple

from portable_nn import functional as F
from portable_nn.backend import has_dtype
from portable_nn.validation import real_number, require_dtype, require_shape

from .base import Layer, Shape


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

    def __init__(
        self, activation: str | None, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        f, grad, grad_from_output = F.rule(activation)  # checks the name
        self.activation = "linear" if activation is None else activation.lower()
        self._saves_output = grad_from_output is not None  # then backward takes y, not x
        grad = grad_from_output or grad
        options = self.options()  # alpha, axis: bound once
        if options:
            f, grad = partial(f, **options), partial(grad, **options)
        self._f, self._grad = (None if f is F.linear else f), grad  # None: y = x
        super().__init__(input_shape=input_shape, name=name)

    def options(self) -> dict[str, Any]:
        """Extra keyword arguments of the activation function (alpha, axis)."""
        return {}

    def forward(self, x: Any, training: bool = False) -> tuple[Any, ActivationCache]:
        if not has_dtype(x, "real floating"):
            require_dtype(f"{self.name}: input", x, "real floating", "a real floating array")
        self.ensure_built(x)
        if self._f is None:
            return x, ActivationCache(None, tuple(x.shape))  # y = x: nothing to save
        y = self._f(x)  # y = f(x)
        return y, ActivationCache(y if self._saves_output else x, tuple(x.shape))

    def backward(self, dy: Any, cache: ActivationCache) -> tuple[Any, dict[str, Any]]:
        if dy.shape != cache.shape:
            require_shape(f"{self.name}: upstream gradient dy", dy, cache.shape)
        if self._f is None:
            return dy, {}  # dL/dx = dy
        return self._grad(cache.saved, dy), {}  # dL/dx = f'(x) * dy (softmax: a JVP)

    def _named_by_argument(self) -> bool:
        """Whether the constructor takes ``activation`` (ReLU, Softmax, ... fix theirs)."""
        return "activation" in inspect.signature(type(self)).parameters

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), **self.options()}
        if self._named_by_argument():
            config["activation"] = self.activation
        return config

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in self.options().items()]
        if self._named_by_argument():
            args.insert(0, repr(self.activation))
        return f"{type(self).__name__}({', '.join([*args, f'name={self.name!r}'])})"


class ReLU(Activation):
    """``y = max(x, 0)``."""

    def __init__(self, *, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__("relu", input_shape=input_shape, name=name)


class Sigmoid(Activation):
    """``y = 1 / (1 + exp(-x))``."""

    def __init__(self, *, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__("sigmoid", input_shape=input_shape, name=name)


class Tanh(Activation):
    """``y = tanh(x)``."""

    def __init__(self, *, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__("tanh", input_shape=input_shape, name=name)


class SELU(Activation):
    """``y = scale * (x if x > 0 else alpha * (exp(x) - 1))``, Klambauer et al. (2017)."""

    def __init__(self, *, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__("selu", input_shape=input_shape, name=name)


class Swish(Activation):
    """``y = x * sigmoid(x)`` (SiLU)."""

    def __init__(self, *, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__("swish", input_shape=input_shape, name=name)


class GELU(Activation):
    """``y = x * Phi(x)``, the exact (erf) form, as ``torch.nn.GELU()``."""

    def __init__(self, *, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__("gelu", input_shape=input_shape, name=name)


class Softplus(Activation):
    """``y = log(1 + exp(x))``."""

    def __init__(self, *, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__("softplus", input_shape=input_shape, name=name)


class LeakyReLU(Activation):
    """``y = x if x > 0 else alpha * x``."""

    def __init__(
        self, alpha: float = 0.01, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        self.alpha = real_number("alpha", alpha)
        super().__init__("leaky_relu", input_shape=input_shape, name=name)

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class ELU(Activation):
    """``y = x if x > 0 else alpha * (exp(x) - 1)``."""

    def __init__(
        self, alpha: float = 1.0, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        self.alpha = real_number("alpha", alpha)
        super().__init__("elu", input_shape=input_shape, name=name)

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Softmax(Activation):
    """``y = exp(x - m) / sum(exp(x - m))`` along ``axis`` (m the maximum along it)."""

    def __init__(
        self, axis: int = -1, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        self.axis = _axis(axis)
        super().__init__("softmax", input_shape=input_shape, name=name)

    def options(self) -> dict[str, Any]:
        return {"axis": self.axis}


class LogSoftmax(Activation):
    """``y = x - m - log(sum(exp(x - m)))`` along ``axis``."""

    def __init__(
        self, axis: int = -1, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        self.axis = _axis(axis)
        super().__init__("log_softmax", input_shape=input_shape, name=name)

    def options(self) -> dict[str, Any]:
        return {"axis": self.axis}


def _axis(axis: Any) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"axis must be an int. Received: axis={axis!r}")
    return axis


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
