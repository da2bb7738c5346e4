"""Activation functions ``f(x)`` next to their backward passes ``f_grad(x, dy) = dy * f'(x)``.

Where ``f'`` is a function of the output (sigmoid, tanh, relu, softmax) there is also
``f_grad_from_output(y, dy)``, so a layer can keep ``y`` instead of ``x`` for its backward.
:data:`ACTIVATION_RULES` lists each name's ``(f, grad, grad_from_output)`` in one table.

Every function is elementwise (softmax and log_softmax reduce over ``axis``, the last by
default; glu halves ``axis``) and returns an array in ``x``'s namespace, on its device, in its
dtype. Inputs are expected to be real floating arrays. No intermediate overflows for any finite
input (``|x| = 1e4`` in float32 included): the formulas go through ``exp(-|x|) <= 1`` (sigmoid,
swish, softplus, log_sigmoid, mish, tanh-GELU; ``exp(-2|x|)`` for tanh') or
``expm1(min(x, 0))`` (elu, selu, celu), as each docstring states. Only ``exponential``, which is
``exp``, reaches inf (never NaN) for large x.

At a kink the derivative is 0 on the flat side, as in PyTorch: ``relu'(0) = 0``,
``relu6'(6) = 0``, ``hard_sigmoid'(3) = 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from portable_nn.backend import namespace_of
from portable_nn.validation import flag, non_negative, positive

from .softmax import log_softmax, log_softmax_grad, softmax, softmax_grad, softmax_grad_from_output
from .special import normal_cdf_fast

Array = Any

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_INV_SQRT_2PI = 0.39894228040143267793994605993438
_TWO_SQRT_2_OVER_PI = 1.5957691216057307117597842397375  # 2 sqrt(2 / pi), tanh-GELU's 2u / x
_GELU_CUBIC = 0.044715


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


def _relu_options(
    max_value: float | None, threshold: float, negative_slope: float
) -> tuple[float | None, float, float]:
    """Keras's ReLU arguments as floats: ``threshold >= 0``, ``negative_slope >= 0`` and
    ``max_value`` None or ``> threshold`` (then ``y > threshold`` iff ``x > threshold``), else
    ``ValueError`` (``TypeError`` for a non-number) naming the argument."""
    threshold = non_negative("threshold", threshold)
    negative_slope = non_negative("negative_slope", negative_slope)
    if max_value is not None:
        max_value = non_negative("max_value", max_value)
        if max_value <= threshold:
            raise ValueError(
                f"max_value must be > threshold ({threshold}). Received: max_value={max_value!r}"
            )
    return max_value, threshold, negative_slope


def relu(
    x: Array, max_value: float | None = None, threshold: float = 0.0, negative_slope: float = 0.0
) -> Array:
    """Keras's ReLU: ``min(x, max_value)`` for x > threshold, ``negative_slope * (x - threshold)``
    otherwise; the defaults give ``max(x, 0)`` (NaN stays NaN), ``max_value=6`` ReLU6. Checks
    the arguments as :func:`_relu_options` (``ValueError`` for a negative ``max_value``)."""
    xp = namespace_of(x)
    if max_value is None and threshold == 0.0 and negative_slope == 0.0:
        return xp.maximum(x, 0.0)
    max_value, threshold, negative_slope = _relu_options(max_value, threshold, negative_slope)
    top = x if max_value is None else xp.minimum(x, max_value)  # NaN stays NaN
    low = 0.0 if negative_slope == 0.0 else negative_slope * (x - threshold)
    return xp.where(x <= threshold, low, top)


def relu_grad(
    x: Array,
    dy: Array,
    max_value: float | None = None,
    threshold: float = 0.0,
    negative_slope: float = 0.0,
) -> Array:
    """``dy`` for threshold < x < max_value, ``negative_slope * dy`` for x <= threshold, else 0.

    With the defaults ``dy * [x > 0]``: a product with the 0/1 mask rather than ``xp.where``: on
    NumPy a ``where`` over a random mask is about 10x slower (branch mispredictions), and this
    runs in every ReLU backward. Unlike ``where``, a NaN in ``dy`` at ``x <= 0`` stays NaN.
    """
    xp = namespace_of(x)
    if max_value is None and threshold == 0.0 and negative_slope == 0.0:
        return dy * xp.astype(x > 0, dy.dtype)
    max_value, threshold, negative_slope = _relu_options(max_value, threshold, negative_slope)
    inside = dy if max_value is None else dy * xp.astype(x < max_value, dy.dtype)
    return xp.where(x > threshold, inside, negative_slope * dy)


# y > threshold iff x > threshold and y < max_value iff x < max_value (max_value > threshold >= 0,
# negative_slope >= 0), so the same masks read from y: dL/dx = relu_grad(y, dy, ...)
relu_grad_from_output = relu_grad


def relu6(x: Array) -> Array:
    """``min(max(x, 0), 6)``: ``relu(x, max_value=6)``."""
    return relu(x, max_value=6.0)


def relu6_grad(x: Array, dy: Array) -> Array:
    """``dy * [0 < x < 6]``."""
    return relu_grad(x, dy, max_value=6.0)


relu6_grad_from_output = relu6_grad  # [0 < x < 6] == [0 < relu6(x) < 6]


def hard_sigmoid(x: Array) -> Array:
    """``relu6(x + 3) / 6`` (Keras 3 and ``torch.nn.functional.hardsigmoid``)."""
    return relu6(x + 3.0) / 6.0


def hard_sigmoid_grad(x: Array, dy: Array) -> Array:
    """``dy / 6`` for -3 < x < 3, else 0."""
    return relu6_grad(x + 3.0, dy) / 6.0


def hard_silu(x: Array) -> Array:
    """``x * hard_sigmoid(x)`` (hard swish, Howard et al. 2019, MobileNetV3)."""
    return x * hard_sigmoid(x)


def hard_silu_grad(x: Array, dy: Array) -> Array:
    """``dy * (hard_sigmoid(x) + x * hard_sigmoid'(x))``."""
    return dy * hard_sigmoid(x) + x * hard_sigmoid_grad(x, dy)


hard_swish = hard_silu
hard_swish_grad = hard_silu_grad


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


def _gelu_tanh_arg(x: Array) -> Array:
    """``2u = 2 sqrt(2/pi) (x + 0.044715 x^3)``, tanh-GELU's argument doubled."""
    return _TWO_SQRT_2_OVER_PI * (x + _GELU_CUBIC * (x * x * x))


def gelu(x: Array, approximate: bool = False) -> Array:
    """GELU ``x * Phi(x)``. Exact by default: Phi the standard normal CDF through the namespace's
    erfc, else Cody's (:func:`~portable_nn.functional.special.normal_cdf_fast`).
    ``approximate=True``: the tanh form ``x/2 * (1 + tanh(u))``, ``u = sqrt(2/pi) (x + 0.044715
    x^3)``, evaluated as ``x * sigmoid(2u)`` (no ``1 + tanh`` cancellation for x < 0)."""
    if flag("approximate", approximate):
        return x * sigmoid(_gelu_tanh_arg(x))
    return x * normal_cdf_fast(x)


def gelu_grad(x: Array, dy: Array, approximate: bool = False) -> Array:
    """Exact: ``dy * (Phi(x) + x * phi(x))`` with ``phi(x) = exp(-x^2/2) / sqrt(2 pi)``. Tanh
    form: ``dy * (s(2u) + x * s'(2u) * 2u')``, ``2u' = 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2)``."""
    if flag("approximate", approximate):
        slope = _TWO_SQRT_2_OVER_PI * (1.0 + (3.0 * _GELU_CUBIC) * (x * x))
        v = _gelu_tanh_arg(x)
        return dy * sigmoid(v) + x * sigmoid_grad(v, dy * slope)
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


def log_sigmoid(x: Array) -> Array:
    """``log(sigmoid(x)) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|))``."""
    return -softplus(-x)


def log_sigmoid_grad(x: Array, dy: Array) -> Array:
    """``dy * sigmoid(-x)`` (``1 - sigmoid(x)`` without the cancellation)."""
    return dy * sigmoid(-x)


def mish(x: Array) -> Array:
    """``x * tanh(softplus(x))`` (Misra 2019)."""
    return x * namespace_of(x).tanh(softplus(x))


def mish_grad(x: Array, dy: Array) -> Array:
    """``dy * (tanh(sp) + x * sigmoid(x) * (1 - tanh(sp)^2))``, ``sp = softplus(x)``, the last
    factor through :func:`tanh_grad`'s ``exp(-2|sp|)`` form."""
    sp = softplus(x)
    return dy * namespace_of(x).tanh(sp) + tanh_grad(sp, dy * (x * sigmoid(x)))


def softsign(x: Array) -> Array:
    """``x / (1 + |x|)``."""
    return x / (1.0 + namespace_of(x).abs(x))


def softsign_grad(x: Array, dy: Array) -> Array:
    """``dy / (1 + |x|)^2``."""
    r = 1.0 / (1.0 + namespace_of(x).abs(x))
    return dy * (r * r)


def celu(x: Array, alpha: float = 1.0) -> Array:
    """``x`` for x > 0, ``alpha * (exp(x / alpha) - 1)`` otherwise (Barron 2017); alpha > 0."""
    xp, alpha = namespace_of(x), positive("alpha", alpha)
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0.0) / alpha))


def celu_grad(x: Array, dy: Array, alpha: float = 1.0) -> Array:
    """``dy`` for x > 0, ``dy * exp(x / alpha)`` otherwise."""
    xp, alpha = namespace_of(x), positive("alpha", alpha)
    return xp.where(x > 0, dy, dy * xp.exp(xp.minimum(x, 0.0) / alpha))


def _halves(x: Array, axis: int) -> tuple[Array, Array]:
    """The two halves ``(a, b)`` of ``x`` along ``axis``; ``ValueError`` for an odd size."""
    if isinstance(axis, bool) or not isinstance(axis, int) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis must be an int in [-{x.ndim}, {x.ndim}). Received: axis={axis!r}")
    n = x.shape[axis]
    if n % 2:
        raise ValueError(
            f"glu splits axis {axis} in two halves: its size must be even. Received shape "
            f"{tuple(x.shape)}"
        )
    lead = (slice(None),) * (axis % x.ndim)
    return x[(*lead, slice(0, n // 2), ...)], x[(*lead, slice(n // 2, n), ...)]


def glu(x: Array, axis: int = -1) -> Array:
    """Gated linear unit (Dauphin et al. 2017): ``a * sigmoid(b)``, ``a, b`` the first and
    second halves of ``x`` along ``axis``; the output has half ``x``'s size along ``axis``."""
    a, b = _halves(x, axis)
    return a * sigmoid(b)


def glu_grad(x: Array, dy: Array, axis: int = -1) -> Array:
    """``concat(dy * sigmoid(b), dy * a * sigmoid'(b))`` along ``axis`` (``dy`` has y's shape)."""
    a, b = _halves(x, axis)
    return namespace_of(x).concat([dy * sigmoid(b), sigmoid_grad(b, dy * a)], axis=axis)


def exponential(x: Array) -> Array:
    """``exp(x)``: inf (not NaN) past ``log`` of the largest float, 88.7 in float32 and 709.8
    in float64, as any exp."""
    return namespace_of(x).exp(x)


def exponential_grad(x: Array, dy: Array) -> Array:
    """``dy * exp(x)``."""
    return dy * namespace_of(x).exp(x)


def exponential_grad_from_output(y: Array, dy: Array) -> Array:
    """dL/dx from the cached output ``y = exp(x)``: ``dy * y``."""
    return dy * y


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
        "relu6": ActivationRule(relu6, relu6_grad, relu6_grad_from_output),
        "leaky_relu": ActivationRule(leaky_relu, leaky_relu_grad),
        "elu": ActivationRule(elu, elu_grad),
        "selu": ActivationRule(selu, selu_grad),
        "swish": ActivationRule(swish, swish_grad),
        "silu": ActivationRule(silu, silu_grad),
        "gelu": ActivationRule(gelu, gelu_grad),
        "softplus": ActivationRule(softplus, softplus_grad),
        "softsign": ActivationRule(softsign, softsign_grad),
        "hard_sigmoid": ActivationRule(hard_sigmoid, hard_sigmoid_grad),
        "hard_silu": ActivationRule(hard_silu, hard_silu_grad),
        "hard_swish": ActivationRule(hard_swish, hard_swish_grad),
        "mish": ActivationRule(mish, mish_grad),
        "celu": ActivationRule(celu, celu_grad),
        "log_sigmoid": ActivationRule(log_sigmoid, log_sigmoid_grad),
        "exponential": ActivationRule(exponential, exponential_grad, exponential_grad_from_output),
        "glu": ActivationRule(glu, glu_grad),
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
