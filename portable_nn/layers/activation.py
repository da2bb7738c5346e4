"""Activation layers ``y = f(x)`` and the resolved activation that Dense fuses.

Forward saves exactly what the backward formula needs: the output ``y`` for sigmoid, tanh,
relu and softmax (``f'`` is a function of ``y``), the input ``x`` for the others, nothing for
``linear``. Shapes: any ``(batch, ...)``; the output has the input's shape, namespace, device
and dtype. Softmax and LogSoftmax act along ``axis`` (the last by default).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from portable_nn import functional as F

from ._checks import check_gradient, real_number, require_floating
from .base import LAYER_REGISTRY, Layer, Shape

# backward written in terms of the output y = f(x): relu'(x) = [x > 0] = [y > 0]
_GRAD_FROM_OUTPUT = {
    "sigmoid": F.sigmoid_grad_from_output,  # dy * y * (1 - y)
    "tanh": F.tanh_grad_from_output,  # dy * (1 - y^2)
    "relu": F.relu_grad,  # dy * [y > 0]
    "softmax": F.softmax_grad_from_output,  # y * (dy - sum(dy * y))
}


class ActivationFn:
    """A named activation resolved once: ``forward(x) -> (y, saved)``, ``backward(dy, saved)``."""

    __slots__ = ("name", "f", "grad", "from_output", "is_linear")

    def __init__(self, name: str | None, **options: Any) -> None:
        f, f_grad = F.get(name)
        self.name = "linear" if name is None else name.lower()
        self.is_linear = self.name == "linear"
        self.from_output = self.name in _GRAD_FROM_OUTPUT
        grad = _GRAD_FROM_OUTPUT.get(self.name, f_grad)
        self.f = partial(f, **options) if options else f
        self.grad = partial(grad, **options) if options else grad

    def forward(self, x: Any) -> tuple[Any, Any]:
        """``y = f(x)`` and what backward needs (``y``, ``x`` or None)."""
        if self.is_linear:
            return x, None
        y = self.f(x)
        return y, (y if self.from_output else x)

    def backward(self, dy: Any, saved: Any) -> Any:
        """``dL/dx = f'(x) * dy`` (softmax: the Jacobian-vector product)."""
        return dy if self.is_linear else self.grad(saved, dy)


class Activation(Layer):
    """Applies a named activation elementwise: ``y = f(x)``.

    Parameters
    ----------
    activation : one of ``pnn.functional.ACTIVATIONS`` (``"relu"``, ``"softmax"``, ...).
    input_shape, name : see :class:`Layer`.
    """

    _fixed: str | None = None  # the activation of a dedicated subclass (ReLU, Tanh, ...)

    def __init__(
        self, activation: str, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        self.fn = ActivationFn(activation, **self.options())
        self.activation = self.fn.name
        super().__init__(input_shape=input_shape, name=name)

    def options(self) -> dict[str, Any]:
        """Extra keyword arguments of the activation function (alpha, axis)."""
        return {}

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        require_floating(self.name, x)
        self.ensure_built(x)
        y, saved = self.fn.forward(x)
        return y, (saved, tuple(x.shape))

    def backward(self, dy: Any, cache: Any) -> tuple[Any, dict[str, Any]]:
        saved, shape = cache
        check_gradient(self.name, dy, shape)
        return self.fn.backward(dy, saved), {}

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), **self.options()}
        if self._fixed is None:
            config["activation"] = self.activation
        return config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        what = f"{self.activation!r}" if self._fixed is None else args
        return f"{type(self).__name__}({what + ', ' if what else ''}name={self.name!r})"


class _Fixed(Activation):
    """Base of the parameterless one-activation layers: ``ReLU()`` is ``Activation("relu")``."""

    def __init__(self, *, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__(self._fixed, input_shape=input_shape, name=name)


del LAYER_REGISTRY["_Fixed"]  # an implementation detail, not a layer users rebuild


class ReLU(_Fixed):
    """``y = max(x, 0)``."""

    _fixed = "relu"


class Sigmoid(_Fixed):
    """``y = 1 / (1 + exp(-x))``."""

    _fixed = "sigmoid"


class Tanh(_Fixed):
    """``y = tanh(x)``."""

    _fixed = "tanh"


class SELU(_Fixed):
    """``y = scale * (x if x > 0 else alpha * (exp(x) - 1))``, Klambauer et al. (2017)."""

    _fixed = "selu"


class Swish(_Fixed):
    """``y = x * sigmoid(x)`` (SiLU)."""

    _fixed = "swish"


class GELU(_Fixed):
    """``y = x * Phi(x)``, the exact (erf) form, as ``torch.nn.GELU()``."""

    _fixed = "gelu"


class Softplus(_Fixed):
    """``y = log(1 + exp(x))``."""

    _fixed = "softplus"


class LeakyReLU(Activation):
    """``y = x if x > 0 else alpha * x``."""

    _fixed = "leaky_relu"

    def __init__(
        self, alpha: float = 0.01, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        self.alpha = real_number("alpha", alpha)
        super().__init__(self._fixed, input_shape=input_shape, name=name)

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class ELU(Activation):
    """``y = x if x > 0 else alpha * (exp(x) - 1)``."""

    _fixed = "elu"

    def __init__(
        self, alpha: float = 1.0, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        self.alpha = real_number("alpha", alpha)
        super().__init__(self._fixed, input_shape=input_shape, name=name)

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Softmax(Activation):
    """``y = exp(x - m) / sum(exp(x - m))`` along ``axis`` (m the maximum along it)."""

    _fixed = "softmax"

    def __init__(
        self, axis: int = -1, *, input_shape: Shape | None = None, name: str | None = None
    ) -> None:
        self.axis = _axis(axis)
        super().__init__(self._fixed, input_shape=input_shape, name=name)

    def options(self) -> dict[str, Any]:
        return {"axis": self.axis}


class LogSoftmax(Softmax):
    """``y = x - m - log(sum(exp(x - m)))`` along ``axis``."""

    _fixed = "log_softmax"


def _axis(axis: Any) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"axis must be an int. Received: axis={axis!r}")
    return axis


__all__ = [
    "ELU",
    "GELU",
    "SELU",
    "Activation",
    "ActivationFn",
    "LeakyReLU",
    "LogSoftmax",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Swish",
    "Tanh",
]
