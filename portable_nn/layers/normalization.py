"""Batch and layer normalization, PyTorch semantics.

Both compute ``y = gamma * xhat + beta`` with ``xhat = (x - mean) / sqrt(var + epsilon)``; they
differ in the axes ``mean`` and ``var`` are taken over (:meth:`_normalize`). ``gamma`` and
``beta`` have one entry per feature: the last axis (LayerNormalization, BatchNormalization's
default) or BatchNormalization's ``axis`` (``axis=1`` for channels-first images).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import array_api_compat

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

    axis: int = -1  # the feature axis, which gamma and beta run along
    REGULARIZABLE = {"gamma_regularizer": ("gamma",), "beta_regularizer": ("beta",)}

    def __init__(
        self,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
        gamma_regularizer: Any = None,
        beta_regularizer: Any = None,
    ) -> None:
        self.epsilon = positive("epsilon", epsilon)  # keeps 1 / sqrt(var + epsilon) finite
        self.set_regularizers(
            gamma_regularizer=gamma_regularizer, beta_regularizer=beta_regularizer
        )
        self.center, self.scale = flag("center", center), flag("scale", scale)
        super().__init__(input_shape=input_shape, name=name)

    def build(self, input_shape: Shape) -> None:
        rank = len(input_shape)
        feature = self.axis % rank if -rank <= self.axis < rank else 0  # 0: the batch, refused
        features = input_shape[feature] if feature else None
        if not isinstance(features, int):
            raise ValueError(
                f"{self.name}: expects inputs (batch, ..., features) with a known feature axis "
                f"(axis={self.axis}). Received input shape {tuple(input_shape)}"
            )
        self.params = {}
        if self.scale:
            self.params["gamma"] = make_weight("ones", (features,))
        if self.center:
            self.params["beta"] = make_weight("zeros", (features,))
        self._axes = tuple(a for a in range(rank) if a != feature)  # every axis but the features
        tail = rank - 1 - feature  # axes after the features: (features,) arrays need reshaping
        self._feature_shape = (features, *[1] * tail) if tail else None
        super().build(input_shape)

    def _sums(self, xp: Any, a: Any) -> Any:
        """Sums over every axis but the features, shape (features,). Features last: one
        ``ones @ a`` matvec over ``a`` seen as (rows, features): BLAS, several times faster than
        a multi-axis reduction on NumPy and more accurate in float32 (pairwise sums)."""
        if self._feature_shape is not None or a.ndim < 3:
            return xp.sum(a, axis=self._axes)
        rows = xp.reshape(a, (-1, a.shape[-1]))
        ones = xp.ones((1, rows.shape[0]), dtype=a.dtype, device=array_api_compat.device(a))
        return xp.reshape(ones @ rows, (a.shape[-1],))

    def _along(self, xp: Any, v: Any) -> Any:
        """A (features,) array shaped to broadcast against the input."""
        return v if self._feature_shape is None else xp.reshape(v, self._feature_shape)

    def _normalize(self, x: Any, training: bool) -> tuple[Any, Any, tuple[int, ...] | None]:
        """``(xhat, 1 / sqrt(var + epsilon), the axes of mean and var or None)``."""
        raise NotImplementedError

    def forward(self, x: Any, training: bool = False) -> tuple[Any, NormCache]:
        self.ensure_built(x)
        xp = namespace_of(x)
        xhat, inv_std, axes = self._normalize(x, training)
        gamma = self.params.get("gamma")
        gamma = None if gamma is None else self._along(xp, gamma)
        y = xhat if gamma is None else xhat * gamma  # y = gamma * xhat + beta
        if self.center:
            y = y + self._along(xp, self.params["beta"])
        return y, NormCache(xhat, inv_std, gamma, tuple(x.shape), axes)

    def backward(self, dy: Any, cache: NormCache) -> tuple[Any, dict[str, Any]]:
        xhat, inv_std, gamma, shape, axes = cache
        self.check_gradient(dy, shape)
        xp = namespace_of(dy)
        dbeta = self._sums(xp, dy)  # dL/dbeta = sum(dy)
        dgamma = self._sums(xp, dy * xhat)  # dL/dgamma = sum(dy * xhat)
        grads = {k: g for k, g in (("gamma", dgamma), ("beta", dbeta)) if k in self.params}
        g_scale = inv_std if gamma is None else gamma * inv_std
        if axes is None:  # mean and var are constants
            return dy * g_scale, grads  # dL/dx = dy * gamma / sqrt(var + eps)
        # dL/dx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps) with g = dL/dxhat =
        # gamma * dy and means over ``axes``; over the parameters' axes (BatchNorm) they are the
        # sums above divided by n
        if axes == self._axes:
            sum_dy, sum_dyx, n = self._batch_sums(xp, dbeta, dgamma, shape)
            mean_dy, mean_dyx = self._along(xp, sum_dy / n), self._along(xp, sum_dyx / n)
            return g_scale * (dy - mean_dy - xhat * mean_dyx), grads
        g = dy if gamma is None else dy * gamma
        mean_g = xp.mean(g, axis=axes, keepdims=True)
        mean_gx = xp.mean(g * xhat, axis=axes, keepdims=True)
        return inv_std * (g - mean_g - xhat * mean_gx), grads

    def _batch_sums(self, xp: Any, dbeta: Any, dgamma: Any, shape: Any) -> tuple[Any, Any, int]:
        """``(sum(dy), sum(dy * xhat), n)`` over the batch the statistics came from."""
        return dbeta, dgamma, math.prod(shape[a] for a in self._axes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        return {**config, "epsilon": self.epsilon, "center": self.center, "scale": self.scale}


class BatchNormalization(_Normalization):
    """``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` per feature (``axis``).

    Statistics are taken over every axis but ``axis`` (the last by default: the batch axis for
    ``(batch, features)`` inputs, batch and pixels for channels-last images; ``axis=1`` for
    channels-first images ``(batch, channels, height, width)``). Semantics are PyTorch's
    ``BatchNorm1d``/``BatchNorm2d``:

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
    ``"running_var"`` (ones), (features,) too. ``axis`` may not be the batch axis (0).
    """

    has_training_behaviour = True

    def __init__(
        self,
        momentum: float = 0.1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        axis: int = -1,
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
        **regularizers: Any,
    ) -> None:
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise ValueError(f"Expected a non-batch axis (an int, not 0). Received: axis={axis!r}")
        self.axis = axis
        self.momentum = real_number("momentum", momentum, 0.0, 1.0)
        if self.momentum > 0.5:
            warnings.warn(
                f"BatchNormalization momentum={momentum} weighs the NEW batch (PyTorch meaning); "
                "Keras' momentum=0.99 is momentum=0.01 here",
                UserWarning,
                stacklevel=2,
            )
        super().__init__(epsilon, center, scale, input_shape=input_shape, name=name, **regularizers)

    def build(self, input_shape: Shape) -> None:
        super().build(input_shape)
        features = (input_shape[self.axis],)
        self.bufs = {
            "running_mean": make_weight("zeros", features),
            "running_var": make_weight("ones", features),
        }

    def _normalize(self, x: Any, training: bool) -> tuple[Any, Any, tuple[int, ...] | None]:
        xp, bufs = namespace_of(x), self.bufs
        if not training or not self.trainable:  # the running statistics (frozen: Keras)
            inv_std = self._along(xp, 1.0 / xp.sqrt(bufs["running_var"] + self.epsilon))
            return (x - self._along(xp, bufs["running_mean"])) * inv_std, inv_std, None
        xc, mean, var, n = self._statistics(xp, x)
        m = self.momentum
        new_mean = (1.0 - m) * bufs["running_mean"] + m * mean
        new_var = (1.0 - m) * bufs["running_var"] + (m * n / (n - 1)) * var  # unbiased
        finite = xp.all(xp.isfinite(new_mean) & xp.isfinite(new_var))  # on the device: no sync
        bufs["running_mean"] = xp.where(finite, new_mean, bufs["running_mean"])  # rebind, no
        bufs["running_var"] = xp.where(finite, new_var, bufs["running_var"])  # in-place writes
        inv_std = self._along(xp, 1.0 / xp.sqrt(var + self.epsilon))
        return xc * inv_std, inv_std, self._axes

    def _statistics(self, xp: Any, x: Any) -> tuple[Any, Any, Any, int]:
        """``(x - mean, mean, var, n)``: the batch's per-feature mean, biased variance and
        number of values per feature."""
        n = self._count(math.prod(x.shape[a] for a in self._axes), x.shape)
        mean = self._sums(xp, x) * (1.0 / n)
        xc = x - self._along(xp, mean)
        return xc, mean, self._sums(xp, xc * xc) * (1.0 / n), n  # biased: normalises

    def _count(self, n: int, shape: Any) -> int:
        if n < 2:
            from portable_nn.distributed.parallel import step_engine

            shard = step_engine() is not None and shape[0] != "global batch"
            hint = (
                " (this process's shard of a data-parallel batch: use SyncBatchNormalization, "
                "or a batch size giving every process 2 rows or more)"
                if shard
                else ""
            )
            raise ValueError(
                f"{self.name}: training needs more than one value per feature to estimate a "
                f"variance; received input of shape {tuple(shape)}{hint}"
            )
        return n

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "axis": self.axis}


class SyncBatchNormalization(BatchNormalization):
    """:class:`BatchNormalization` whose training statistics are those of the whole global
    batch in a data-parallel ``fit`` (``torch.nn.SyncBatchNorm``, Keras's
    ``BatchNormalization(synchronized=True)``): the per-feature sums, then the sums of squared
    deviations from the global mean, and in backward ``sum(dy)`` and ``sum(dy * xhat)``, are
    added over the processes (three small all-reduces and two scalar reads per layer and step),
    so a run on ``W``
    processes equals BatchNormalization on one. Same parameters, buffers and checkpoint names
    as BatchNormalization; in one process it is BatchNormalization.
    """

    def _statistics(self, xp: Any, x: Any) -> tuple[Any, Any, Any, int]:
        engine = _engine()
        if engine is None:
            return super()._statistics(xp, x)
        local = math.prod(x.shape[a] for a in self._axes)
        count = xp.asarray([float(local)], dtype=x.dtype, device=array_api_compat.device(x))
        summed = engine.allreduce(xp.concat([self._sums(xp, x), count]))
        n = self._count(int(round(float(summed[-1]))), ("global batch", *x.shape[1:]))
        mean = summed[:-1] * (1.0 / n)
        xc = x - self._along(xp, mean)
        return xc, mean, engine.allreduce(self._sums(xp, xc * xc)) * (1.0 / n), n

    def _batch_sums(self, xp: Any, dbeta: Any, dgamma: Any, shape: Any) -> tuple[Any, Any, int]:
        engine = _engine()
        if engine is None:
            return super()._batch_sums(xp, dbeta, dgamma, shape)
        local = math.prod(shape[a] for a in self._axes)
        count = xp.asarray([float(local)], dtype=dbeta.dtype, device=array_api_compat.device(dbeta))
        total = engine.allreduce(xp.concat([dbeta, dgamma, count]))
        features = dbeta.shape[0]
        return total[:features], total[features:-1], int(round(float(total[-1])))


def _engine() -> Any:
    """The engine while a data-parallel train step runs on more than one process, else None
    (a plain ``fit`` on one rank of a job normalizes with its own batch)."""
    from portable_nn.distributed.parallel import step_engine

    engine = step_engine()
    return engine if engine is not None and engine.size > 1 else None


class LayerNormalization(_Normalization):
    """``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` per sample, over the last axis.

    PyTorch ``LayerNorm(features)`` semantics: biased variance, the same in training and
    inference, no buffers. Params ``"gamma"`` (ones) and ``"beta"`` (zeros), shape (features,).
    """

    keeps_mask = True  # the output's steps are the input's (masking, see layers.base)

    def _normalize(self, x: Any, training: bool) -> tuple[Any, Any, tuple[int, ...] | None]:
        xp = namespace_of(x)
        xc = x - xp.mean(x, axis=-1, keepdims=True)
        inv_std = 1.0 / xp.sqrt(xp.mean(xc * xc, axis=-1, keepdims=True) + self.epsilon)
        return xc * inv_std, inv_std, (-1,)


__all__ = ["BatchNormalization", "LayerNormalization", "NormCache", "SyncBatchNormalization"]
