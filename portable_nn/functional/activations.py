"""Activation functions ``f(x)`` next to their backward passes ``f_grad(x, dy) = dy * f'(x)``.

Where ``f'`` is a function of the output (sigmoid, tanh, relu, softmax) there is also
``f_grad_from_output(y, dy)``, so a layer can keep ``y`` instead of ``x`` for its backward.
:data:`ACTIVATION_RULES` lists each name's ``(f, grad, grad_from_output)`` in one table.

Every function is elementwise (softmax and log_softmax reduce over ``axis``, the last by
default) and returns an array in ``x``'s namespace, on its device, in its dtype. Inputs are
expected to be real floating arrays. No intermediate overflows for any finite input (``|x| = 1e4``
in float32 included): the formulas go through ``exp(-|x|) <= 1`` (sigmoid, swish, softplus;
``exp(-2|x|)`` for tanh') or ``expm1(min(x, 0))`` (elu, selu), as each docstring states.

At a kink the derivative takes the right-hand value only for ``x > 0`` (``relu'(0) = 0``, as
in PyTorch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from portable_nn.backend import namespace_of

from .softmax import log_softmax, log_softmax_grad, softmax, softmax_grad, softmax_grad_from_output
from .special import normal_cdf_fast

Array = Any

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_INV_SQRT_2PI = 0.39894228040143267793994605993438


def linear(x: Array) -> Array:
    """Identity ``f(x) = x`` (Keras' ``"linear"``, also what ``get(None)`` gives)."""
    return x


def linear_grad(x: Array, dy: Array) -> Array:
    return dy


def _exp_neg_abs(x: Array) -> Array:
    xp = namespace_of(x)
    return xp.exp(-xp.abs(x))


def sigmoid(x: Array) -> Array:
    """``1 / (1 + exp(-x))``, evaluated through ``z = exp(-|x|)`` on both sides of 0."""
    z = _exp_neg_abs(x)
    return namespace_of(x).where(x >= 0, 1.0, z) / (1.0 + z)


def sigmoid_grad(x: Array, dy: Array) -> Array:
    """``dy * s(x) * (1 - s(x)) = dy * z / (1 + z)^2`` with ``z = exp(-|x|)``."""
    z = _exp_neg_abs(x)
    r = 1.0 / (1.0 + z)
    return dy * (z * r * r)


def sigmoid_grad_from_output(y: Array, dy: Array) -> Array:
    """dL/dx from the cached output ``y = sigmoid(x)``: ``dy * y * (1 - y)``."""
    return dy * (y * (1.0 - y))


def tanh(x: Array) -> Array:
    """Hyperbolic tangent."""
    return namespace_of(x).tanh(x)


def tanh_grad(x: Array, dy: Array) -> Array:
    """``dy * (1 - tanh(x)^2) = dy * 4w / (1 + w)^2`` with ``w = exp(-2|x|)``."""
    xp = namespace_of(x)
    w = xp.exp(-2.0 * xp.abs(x))
    r = 1.0 / (1.0 + w)
    return dy * (4.0 * w * r * r)


def tanh_grad_from_output(y: Array, dy: Array) -> Array:
    """dL/dx from the cached output ``y = tanh(x)``: ``dy * (1 - y^2)``."""
    return dy * (1.0 - y * y)


def relu(x: Array) -> Array:
    """``max(x, 0)`` (NaN stays NaN)."""
    return namespace_of(x).maximum(x, 0.0)


def relu_grad(x: Array, dy: Array) -> Array:
    """``dy * [x > 0]``: ``dy`` where ``x > 0``, else 0.

    A product with the 0/1 mask rather than ``xp.where``: on NumPy a ``where`` over a random mask
    is about 10x slower (branch mispredictions), and this runs in every ReLU backward. Unlike
    ``where``, a NaN in ``dy`` at ``x <= 0`` stays NaN (it is not hidden).
    """
    return dy * namespace_of(x).astype(x > 0, dy.dtype)


relu_grad_from_output = relu_grad  # [x > 0] == [relu(x) > 0]: dL/dx = dy * [y > 0]


def leaky_relu(x: Array, alpha: float = 0.01) -> Array:
    """``x`` for x > 0, ``alpha * x`` otherwise."""
    return namespace_of(x).where(x > 0, x, alpha * x)


def leaky_relu_grad(x: Array, dy: Array, alpha: float = 0.01) -> Array:
    """``dy`` for x > 0, ``alpha * dy`` otherwise."""
    return namespace_of(x).where(x > 0, dy, alpha * dy)


def elu(x: Array, alpha: float = 1.0) -> Array:
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise (``expm1`` of ``min(x, 0)``)."""
    xp = namespace_of(x)
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0.0)))


def elu_grad(x: Array, dy: Array, alpha: float = 1.0) -> Array:
    """``dy`` for x > 0, ``dy * alpha * exp(x)`` otherwise."""
    xp = namespace_of(x)
    return xp.where(x > 0, dy, (alpha * dy) * xp.exp(xp.minimum(x, 0.0)))


def selu(x: Array) -> Array:
    """``scale * elu(x, alpha)``, Klambauer et al. (2017) constants SELU_ALPHA, SELU_SCALE."""
    xp = namespace_of(x)
    negative = (SELU_SCALE * SELU_ALPHA) * xp.expm1(xp.minimum(x, 0.0))
    return xp.where(x > 0, SELU_SCALE * x, negative)


def selu_grad(x: Array, dy: Array) -> Array:
    """``scale * dy`` for x > 0, ``scale * alpha * exp(x) * dy`` otherwise."""
    xp = namespace_of(x)
    negative = (SELU_SCALE * SELU_ALPHA) * dy * xp.exp(xp.minimum(x, 0.0))
    return xp.where(x > 0, SELU_SCALE * dy, negative)


def swish(x: Array) -> Array:
    """``x * sigmoid(x)`` (also called SiLU)."""
    return x * sigmoid(x)


def swish_grad(x: Array, dy: Array) -> Array:
    """``dy * (s(x) + x * s'(x))`` with ``s'(x) = z / (1 + z)^2``, ``z = exp(-|x|)``."""
    xp = namespace_of(x)
    z = _exp_neg_abs(x)
    r = 1.0 / (1.0 + z)
    s = xp.where(x >= 0, 1.0, z) * r
    return dy * (s + x * (z * r * r))


silu = swish
silu_grad = swish_grad


def gelu(x: Array) -> Array:
    """Exact GELU ``x * Phi(x)`` (not the tanh form), Phi the standard normal CDF through the
    namespace's erfc, else Cody's (:func:`~portable_nn.functional.special.normal_cdf_fast`)."""
    return x * normal_cdf_fast(x)


def gelu_grad(x: Array, dy: Array) -> Array:
    """``dy * (Phi(x) + x * phi(x))`` with ``phi(x) = exp(-x^2/2) / sqrt(2 pi)``."""
    xp = namespace_of(x)
    density = _INV_SQRT_2PI * xp.exp(-0.5 * (x * x))
    return dy * (normal_cdf_fast(x) + x * density)


def softplus(x: Array) -> Array:
    """``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))`` (no threshold switch)."""
    xp = namespace_of(x)
    return xp.maximum(x, 0.0) + xp.log1p(_exp_neg_abs(x))


def softplus_grad(x: Array, dy: Array) -> Array:
    """``dy * sigmoid(x)``."""
    return dy * sigmoid(x)


class ActivationRule(NamedTuple):
    """One activation: ``y = f(x, **options)`` and its backward ``dL/dx = grad(x, dy, **options)``.

    ``grad_from_output(y, dy, **options)`` gives the same dL/dx from the output ``y = f(x)``
    when ``f'`` is written in ``y``; layers then save ``y`` for backward instead of ``x``.
    """

    f: Callable[..., Array]
    grad: Callable[..., Array]
    grad_from_output: Callable[..., Array] | None = None


# name -> (f, grad(x, dy), grad_from_output(y, dy) or None); read-only
ACTIVATION_RULES: Mapping[str, ActivationRule] = MappingProxyType(
    {
        "linear": ActivationRule(linear, linear_grad),
        "sigmoid": ActivationRule(sigmoid, sigmoid_grad, sigmoid_grad_from_output),
        "tanh": ActivationRule(tanh, tanh_grad, tanh_grad_from_output),
        "relu": ActivationRule(relu, relu_grad, relu_grad_from_output),
        "leaky_relu": ActivationRule(leaky_relu, leaky_relu_grad),
        "elu": ActivationRule(elu, elu_grad),
        "selu": ActivationRule(selu, selu_grad),
        "swish": ActivationRule(swish, swish_grad),
        "silu": ActivationRule(silu, silu_grad),
        "gelu": ActivationRule(gelu, gelu_grad),
        "softplus": ActivationRule(softplus, softplus_grad),
        "softmax": ActivationRule(softmax, softmax_grad, softmax_grad_from_output),
        "log_softmax": ActivationRule(log_softmax, log_softmax_grad),
    }
)

ACTIVATIONS: tuple[str, ...] = tuple(ACTIVATION_RULES)


def rule(name: str | None) -> ActivationRule:
    """The :class:`ActivationRule` of an activation name (case-insensitive; None is linear).

    Raises ``TypeError`` for a non-string and ``ValueError`` for an unknown name, listing the
    valid ones (``ACTIVATIONS``).
    """
    if name is None:
        return ACTIVATION_RULES["linear"]
    if not isinstance(name, str):
        raise TypeError(
            f"activation must be a name (str) or None. Received: {name!r} of type "
            f"{type(name).__name__}"
        )
    try:
        return ACTIVATION_RULES[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; valid names are {', '.join(ACTIVATIONS)}"
        ) from None


def get(name: str | None) -> tuple[Callable[..., Array], Callable[..., Array]]:
    """``(f, f_grad)`` for an activation name: the first two fields of :func:`rule`."""
    return rule(name)[:2]


# The table names every public function: NAME, NAME_grad and NAME_grad_from_output.
__all__ = ["ACTIVATIONS", "ACTIVATION_RULES", "ActivationRule", "SELU_ALPHA", "SELU_SCALE"]
__all__ += ["get", "rule"] + [
    f"{name}{suffix}"
    for name, entry in ACTIVATION_RULES.items()
    for suffix, function in zip(("", "_grad", "_grad_from_output"), entry)
    if function is not None
]
