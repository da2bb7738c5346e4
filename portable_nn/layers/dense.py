"""Fully connected layer ``y = activation(x @ W + b)``."""

from __future__ import annotations

from typing import Any, NamedTuple

from portable_nn.backend import namespace_of
from portable_nn.random import Generator, get_generator
from portable_nn.validation import flag, positive_int

from ._weights import check_initializer, check_seed, initializer_name, make_weight
from .activation import bind
from .base import Layer, Shape


class DenseCache(NamedTuple):
    x: Any  # the input, as (batch, in) (an N-D input flattened to 2-D)
    saved: Any  # the activation's output y or input z, whichever f' uses; None for linear
    weight: Any  # the W that produced y (a reference, not a copy)
    shape: tuple[int, ...] | None  # an N-D input's shape, to restore; None for 2-D inputs


class Dense(Layer):
    """``y = activation(x @ W + b)`` with ``W`` of shape (in, units) and ``b`` of shape (units,).

    Input (batch, in) -> output (batch, units); inputs (batch, ..., in) act on the last axis.
    Weights are made on the first call (or at once from ``input_dim``/``input_shape``) by
    ``pnn.init`` on the active backend's device and dtype, so a seed gives the same weights on
    every backend. The activation is fused: its backward runs inside :meth:`backward`, from
    what :class:`DenseCache` keeps (with ``W`` itself, so backward uses the weights that produced
    ``y`` even if the parameters were rebound in between).

    Parameters
    ----------
    units : output features (positive int).
    activation : a name of ``pnn.functional.ACTIVATIONS`` or None (linear).
    use_bias : add ``b``.
    kernel_initializer, bias_initializer : names (or callables) for ``pnn.init.get``.
    input_dim, input_shape : build at once for inputs (batch, input_dim) / (batch, *input_shape).
    seed : int or ``pnn.random.Generator`` for the initializers; None uses the global generator.
    name : layer name.
    kernel_regularizer, bias_regularizer : ``pnn.regularizers`` penalties on ``W`` and ``b``.
    """

    skips_input_grad = True
    keeps_mask = True  # the output's steps are the input's (masking, see layers.base)
    REGULARIZABLE = {"kernel_regularizer": ("weight",), "bias_regularizer": ("bias",)}

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        input_dim: int | None = None,
        input_shape: Shape | None = None,
        seed: int | Generator | None = None,
        name: str | None = None,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
    ) -> None:
        self.units = positive_int("units", units)
        self.set_regularizers(
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
        )
        self.activation, self._f, self._grad, self._saves_output = bind(activation)
        self.use_bias = flag("use_bias", use_bias)
        self.kernel_initializer = check_initializer("kernel_initializer", kernel_initializer)
        self.bias_initializer = check_initializer("bias_initializer", bias_initializer)
        check_seed(seed)
        self.seed = seed
        if input_dim is not None:
            if input_shape is not None:
                raise ValueError("give input_dim or input_shape, not both")
            input_shape = (positive_int("input_dim", input_dim),)
        super().__init__(input_shape=input_shape, name=name)

    def build(self, input_shape: Shape) -> None:
        features = input_shape[-1] if len(input_shape) >= 2 else None
        if not isinstance(features, int):
            raise ValueError(
                f"{self.name}: expects inputs (batch, features) with a known feature size. "
                f"Received input shape {tuple(input_shape)}"
            )
        generator = get_generator(self.seed)
        params = {"weight": make_weight(self.kernel_initializer, (features, self.units), generator)}
        if self.use_bias:
            params["bias"] = make_weight(self.bias_initializer, (self.units,), generator)
        self.params = params
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*tuple(input_shape[:-1]), self.units)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, DenseCache]:
        self.ensure_built(x)
        shape = None if len(x.shape) == 2 else tuple(x.shape)
        if shape is not None:  # (batch, ..., in): the 2-D maths on (batch * ..., in)
            x = namespace_of(x).reshape(x, (-1, shape[-1]))
        w = self.params["weight"]
        z = x @ w  # z = x W + b
        if self.use_bias:
            z = z + self.params["bias"]
        y, saved = z, None  # linear: y = z, nothing to save
        if self._f is not None:
            y = self._f(z)  # y = f(z)
            saved = y if self._saves_output else z
        if shape is not None:
            y = namespace_of(y).reshape(y, (*shape[:-1], self.units))
        return y, DenseCache(x, saved, w, shape)

    def backward(
        self, dy: Any, cache: DenseCache, input_grad: bool = True
    ) -> tuple[Any, dict[str, Any]]:
        """``(dL/dx, {"weight": dL/dW, "bias": dL/db})``; ``dL/dx`` is None when not asked for."""
        x, saved, w, shape = cache
        out = (x.shape[0], self.units) if shape is None else (*shape[:-1], self.units)
        if dy.shape != out:  # compared here first: the hot path
            self.check_gradient(dy, out)
        xp = namespace_of(dy)
        if shape is not None:
            dy = xp.reshape(dy, (-1, self.units))
        dz = dy if self._f is None else self._grad(saved, dy)  # dL/dz = f'(z) * dy
        grads = {"weight": x.T @ dz}  # dL/dW = x.T @ dz
        if self.use_bias:
            grads["bias"] = xp.sum(dz, axis=0)  # dL/db = sum of dz over the batch
        if not input_grad:
            return None, grads
        dx = dz @ w.T  # dL/dx = dz @ W.T
        return (dx if shape is None else xp.reshape(dx, shape)), grads

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": None if self.activation == "linear" else self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": initializer_name(self.kernel_initializer),
            "bias_initializer": initializer_name(self.bias_initializer),
            "seed": self.seed if isinstance(self.seed, int) else None,
        }


__all__ = ["Dense", "DenseCache"]
