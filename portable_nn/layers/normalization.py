"""Batch and layer normalization over the feature (last) axis, PyTorch semantics.

Both compute ``y = gamma * xhat + beta`` with ``xhat = (x - mean) / sqrt(var + epsilon)``; they
differ in the axes ``mean`` and ``var`` are taken over (:meth:`_normalize`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

from portable_nn.backend import namespace_of
from portable_nn.validation import flag, positive, real_number

from ._weights import make_weight
from .base import Layer, Shape


class NormCache(NamedTuple):
    xhat: Any  # (x - mean) / sqrt(var + epsilon)
    inv_std: Any  # 1 / sqrt(var + epsilon)
    gamma: Any  # the scale that produced y (a reference); None without scale
    shape: tuple[int, ...]  # the output's shape, which dy must have
    axes: tuple[int, ...] | None  # the axes of mean and var; None: constants (BatchNorm inference)


class _Normalization(Layer):
    """Shared parts: argument checks, gamma/beta, forward's affine step, backward, config."""

    def __init__(
        self,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.epsilon = positive("epsilon", epsilon)  # keeps 1 / sqrt(var + epsilon) finite
        self.center, self.scale = flag("center", center), flag("scale", scale)
        super().__init__(input_shape=input_shape, name=name)

    def build(self, input_shape: Shape) -> None:
        features = input_shape[-1] if len(input_shape) >= 2 else None
        if not isinstance(features, int):
            raise ValueError(
                f"{self.name}: expects inputs (batch, ..., features) with a known feature axis. "
                f"Received input shape {tuple(input_shape)}"
            )
        self.params = {}
        if self.scale:
            self.params["gamma"] = make_weight("ones", (features,))
        if self.center:
            self.params["beta"] = make_weight("zeros", (features,))
        self._axes = tuple(range(len(input_shape) - 1))  # every axis but the features
        super().build(input_shape)

    def _normalize(self, x: Any, training: bool) -> tuple[Any, Any, tuple[int, ...] | None]:
        """``(xhat, 1 / sqrt(var + epsilon), the axes of mean and var or None)``."""
        raise NotImplementedError

    def forward(self, x: Any, training: bool = False) -> tuple[Any, NormCache]:
        self.ensure_built(x)
        xhat, inv_std, axes = self._normalize(x, training)
        gamma = self.params.get("gamma")
        y = xhat if gamma is None else xhat * gamma  # y = gamma * xhat + beta
        if self.center:
            y = y + self.params["beta"]
        return y, NormCache(xhat, inv_std, gamma, tuple(x.shape), axes)

    def backward(self, dy: Any, cache: NormCache) -> tuple[Any, dict[str, Any]]:
        xhat, inv_std, gamma, shape, axes = cache
        self.check_gradient(dy, shape)
        xp = namespace_of(dy)
        dbeta = xp.sum(dy, axis=self._axes)  # dL/dbeta = sum(dy)
        dgamma = xp.sum(dy * xhat, axis=self._axes)  # dL/dgamma = sum(dy * xhat)
        grads = {k: g for k, g in (("gamma", dgamma), ("beta", dbeta)) if k in self.params}
        g_scale = inv_std if gamma is None else gamma * inv_std
        if axes is None:  # mean and var are constants
            return dy * g_scale, grads  # dL/dx = dy * gamma / sqrt(var + eps)
        # dL/dx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps) with g = dL/dxhat =
        # gamma * dy and means over ``axes``; over the parameters' axes (BatchNorm) they are the
        # sums above divided by n
        if axes == self._axes:
            n = math.prod(shape[:-1])
            return g_scale * (dy - dbeta / n - xhat * (dgamma / n)), grads
        g = dy if gamma is None else dy * gamma
        mean_g = xp.mean(g, axis=axes, keepdims=True)
        mean_gx = xp.mean(g * xhat, axis=axes, keepdims=True)
        return inv_std * (g - mean_g - xhat * mean_gx), grads

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        return {**config, "epsilon": self.epsilon, "center": self.center, "scale": self.scale}


class BatchNormalization(_Normalization):
    """``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` per feature (last axis).

    Statistics are taken over every axis but the last (the batch axis for ``(batch, features)``
    inputs). Semantics are PyTorch's ``BatchNorm1d``:

    * training (``training=True``): the batch mean and the **biased** batch variance (divide by
      ``n``) normalise; the running buffers are then updated with the **unbiased** variance
      (divide by ``n - 1``): ``running = (1 - momentum) * running + momentum * batch``.
      ``momentum`` is the weight of the NEW batch (PyTorch). Keras users: Keras' ``momentum=0.99``
      weighs the OLD value; it corresponds to ``momentum=0.01`` here.
    * inference: the running statistics normalise; nothing changes.

    Training mode rebinds ``bufs["running_mean"]``/``bufs["running_var"]`` to new arrays (no
    in-place writes). It raises ``ValueError`` for a batch with one value per feature (variance
    undefined, as PyTorch does). A batch with NaN/inf keeps the running statistics as they
    were, decided on the device (``xp.where``: no host sync per step); its output and loss are
    NaN for ``TerminateOnNaN`` to see, and ``fit`` refuses non-finite data up front.
    Params ``"gamma"``, ``"beta"`` (features,); buffers ``"running_mean"`` (zeros),
    ``"running_var"`` (ones).
    """

    has_training_behaviour = True

    def __init__(
        self,
        momentum: float = 0.1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        self.momentum = real_number("momentum", momentum, 0.0, 1.0)
        if self.momentum > 0.5:
            warnings.warn(
                f"BatchNormalization momentum={momentum} weighs the NEW batch (PyTorch meaning); "
                "Keras' momentum=0.99 is momentum=0.01 here",
                UserWarning,
                stacklevel=2,
            )
        super().__init__(epsilon, center, scale, input_shape=input_shape, name=name)

    def build(self, input_shape: Shape) -> None:
        super().build(input_shape)
        features = (input_shape[-1],)
        self.bufs = {
            "running_mean": make_weight("zeros", features),
            "running_var": make_weight("ones", features),
        }

    def _normalize(self, x: Any, training: bool) -> tuple[Any, Any, tuple[int, ...] | None]:
        xp, bufs = namespace_of(x), self.bufs
        if not training:  # the running statistics normalise
            inv_std = 1.0 / xp.sqrt(bufs["running_var"] + self.epsilon)
            return (x - bufs["running_mean"]) * inv_std, inv_std, None
        n = math.prod(x.shape[:-1])
        if n < 2:
            raise ValueError(
                f"{self.name}: training needs more than one value per feature to estimate a "
                f"variance; received input of shape {tuple(x.shape)}"
            )
        mean = xp.mean(x, axis=self._axes)
        xc = x - mean
        var = xp.mean(xc * xc, axis=self._axes)  # biased: normalises the batch
        m = self.momentum
        new_mean = (1.0 - m) * bufs["running_mean"] + m * mean
        new_var = (1.0 - m) * bufs["running_var"] + (m * n / (n - 1)) * var  # unbiased
        finite = xp.all(xp.isfinite(new_mean) & xp.isfinite(new_var))  # on the device: no sync
        bufs["running_mean"] = xp.where(finite, new_mean, bufs["running_mean"])  # rebind, no
        bufs["running_var"] = xp.where(finite, new_var, bufs["running_var"])  # in-place writes
        inv_std = 1.0 / xp.sqrt(var + self.epsilon)
        return xc * inv_std, inv_std, self._axes

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum}


class LayerNormalization(_Normalization):
    """``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` per sample, over the last axis.

    PyTorch ``LayerNorm(features)`` semantics: biased variance, the same in training and
    inference, no buffers. Params ``"gamma"`` (ones) and ``"beta"`` (zeros), shape (features,).
    """

    def _normalize(self, x: Any, training: bool) -> tuple[Any, Any, tuple[int, ...] | None]:
        xp = namespace_of(x)
        xc = x - xp.mean(x, axis=-1, keepdims=True)
        inv_std = 1.0 / xp.sqrt(xp.mean(xc * xc, axis=-1, keepdims=True) + self.epsilon)
        return xc * inv_std, inv_std, (-1,)


__all__ = ["BatchNormalization", "LayerNormalization", "NormCache"]
