"""Embeddings: ``Embedding`` (a learned vector per integer index, Keras's API) and
``PositionEmbedding`` (a learned vector per step, added to a sequence).

Embedding's backward sums the rows of ``dy`` into the rows of ``dL/dW`` they came from; an
index that repeats gets the sum (``array_api_extra.at(...).add`` would keep only one of them on
NumPy and PyTorch). Portable path: a one-hot matmul ``onehot(x).T @ dy``; where the library has
a scatter-add (``np.bincount``, ``torch.index_add``, JAX ``.at[].add``, ``cupyx.scatter_add``:
:func:`portable_nn.backend.native.scatter_add`) that runs instead, tested equal to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import array_api_compat
import array_api_extra as xpx

from portable_nn.backend import integer_range, namespace_of
from portable_nn.backend.native import scatter_add
from portable_nn.random import Generator, get_generator
from portable_nn.validation import Check, flag, format_shape, positive_int

from ._weights import check_initializer, check_seed, initializer_name, make_weight
from .base import Layer, Shape


def one_hot_rows(indices: Any, values: Any, n: int) -> Any:
    """``out[v] = sum of values[k] where indices[k] == v``, shape ``(n, d)``: ``onehot.T @ values``
    (exact with repeats; ``N * n`` memory for the one-hot)."""
    onehot = xpx.one_hot(indices, n, dtype=values.dtype)  # (N, n)
    return namespace_of(values).matmul(onehot.T, values)


def _add_rows(xp: Any) -> Callable[[Any, Any, int], Any]:
    """The row scatter-add for arrays of ``xp``: the library's own where it has one."""
    return scatter_add(xp) or one_hot_rows


def _indices(x: Any) -> Any:
    """``x`` as indices every library takes: int32 or int64 (torch's ``index_select`` and its
    comparisons refuse the other integer dtypes); small dtypes become int32, others int64."""
    xp = namespace_of(x)
    if x.dtype == xp.int32 or x.dtype == xp.int64:
        return x
    low, high = integer_range(x)
    return xp.astype(x, xp.int32 if -(2**31) <= low and high < 2**31 else xp.int64)


class EmbeddingCache(NamedTuple):
    indices: Any  # the input's indices, flat (N,), as the lookup used them
    shape: tuple[int, ...]  # the output's shape, which dy must have


class Embedding(Layer):
    """``y[..., :] = W[x[...], :]``: each integer index ``v`` becomes row ``v`` of ``W``.

    ``W`` is the parameter ``weight`` of shape (input_dim, output_dim). Input: integers of any
    integer dtype and shape ``(batch, ...)``, each in ``[0, input_dim)``; output ``(batch, ...,
    output_dim)`` in the weights' dtype. A floating input is a ``TypeError``.
    Backward: ``dL/dW[v] = sum of dy[n] over the positions n with x[n] == v`` (repeats add up);
    the indices get no gradient (``dx`` is None).

    The index range is checked by ``fit``/``evaluate``/``predict`` on the whole data once, within
    their one device read (:meth:`input_checks`); a direct forward does not check (it would
    sync every batch), and then NumPy and torch raise ``IndexError`` and JAX returns NaN rows.

    Parameters
    ----------
    input_dim : vocabulary size (positive int): indices lie in ``[0, input_dim)``.
    output_dim : size of each vector (positive int).
    embeddings_initializer : name (or callable) for ``pnn.init.get``; Keras's ``"uniform"``
        draws ``U(-0.05, 0.05)``.
    mask_zero : index 0 is padding: :meth:`compute_mask` gives ``x != 0`` (Keras), which the
        layers after it that accept a mask use (recurrent layers skip those steps). Index 0
        still looks up row 0, so ``input_dim`` counts it (vocabulary + 1).
    input_shape : build at once for inputs ``(batch, *input_shape)``.
    seed : int or ``pnn.random.Generator`` for the initializer; None uses the global generator.
    name : layer name.
    """

    skips_input_grad = True
    input_dtype = "integral"
    REGULARIZABLE = {"embeddings_regularizer": ("weight",)}

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        mask_zero: bool = False,
        *,
        input_shape: Shape | None = None,
        seed: int | Generator | None = None,
        name: str | None = None,
        embeddings_regularizer: Any = None,
        activity_regularizer: Any = None,
    ) -> None:
        self.input_dim = positive_int("input_dim", input_dim)
        self.set_regularizers(
            embeddings_regularizer=embeddings_regularizer, activity_regularizer=activity_regularizer
        )
        self.output_dim = positive_int("output_dim", output_dim)
        self.embeddings_initializer = check_initializer(
            "embeddings_initializer", embeddings_initializer
        )
        self.mask_zero = flag("mask_zero", mask_zero)
        self.seed = check_seed(seed)
        super().__init__(input_shape=input_shape, name=name)

    def build(self, input_shape: Shape) -> None:
        shape = (self.input_dim, self.output_dim)
        generator = get_generator(self.seed)
        self.params = {"weight": make_weight(self.embeddings_initializer, shape, generator)}
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*tuple(input_shape), self.output_dim)

    def compute_mask(self, x: Any, mask: Any) -> Any:
        """``x != 0`` with ``mask_zero`` (True: a real step), else None."""
        return x != 0 if self.mask_zero else None

    def input_checks(self, label: str, x: Any) -> list[Check]:
        """Indices in ``[0, input_dim)`` (a lazy check, one flag); the message names the first
        bad index and its flat position. Bounds the dtype guarantees are not computed."""
        lowest, highest = integer_range(x)
        if 0 <= lowest and highest < self.input_dim:
            return []
        xp, indices, n = namespace_of(x), _indices(x), self.input_dim
        ok = (indices >= 0) & (indices < n) if lowest < 0 else indices < n

        def message() -> str:
            position = int(xp.argmax(xp.astype(xp.reshape(~ok, (-1,)), xp.int32)))
            value = int(xp.reshape(indices, (-1,))[position])
            return (
                f"{label}: index {value} (at flat position {position}) is out of range for "
                f"{self.name!r} with input_dim={n}; indices must be in [0, {n - 1}]"
            )

        return [(xp.all(ok), message)]

    def forward(self, x: Any, training: bool = False) -> tuple[Any, EmbeddingCache]:
        self.ensure_built(x)
        w = self.params["weight"]
        xp = namespace_of(w)
        indices = _indices(xp.reshape(x, (-1,)))
        y = xp.take(w, indices, axis=0)  # y[n] = W[x[n]]
        shape = (*tuple(x.shape), self.output_dim)
        return xp.reshape(y, shape), EmbeddingCache(indices, shape)

    def backward(
        self, dy: Any, cache: EmbeddingCache, input_grad: bool = True
    ) -> tuple[None, dict[str, Any]]:
        """``(None, {"weight": dL/dW})``: integer indices have no gradient."""
        self.check_gradient(dy, cache.shape)
        xp = namespace_of(dy)
        rows = xp.reshape(dy, (-1, self.output_dim))
        # dL/dW[v] = sum of dy[n] over the n with x[n] == v
        return None, {"weight": _add_rows(xp)(cache.indices, rows, self.input_dim)}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializer_name(self.embeddings_initializer),
            "mask_zero": self.mask_zero,
            "seed": self.seed if isinstance(self.seed, int) else None,
        }


class PositionEmbeddingCache(NamedTuple):
    steps: int  # T: the rows of W that were added
    shape: tuple[int, ...]  # the output's shape, which dy must have


class PositionEmbedding(Layer):
    """``y[b, t, :] = x[b, t, :] + W[t, :]``: a learned vector per step added to a sequence.

    ``W`` is the parameter ``weight`` of shape (max_length, features); an input ``(batch, T,
    features)`` with ``T <= max_length`` gets the first ``T`` rows added (so one layer serves
    every length up to ``max_length``). Backward: ``dL/dx = dy``, ``dL/dW[t] = sum over the
    batch of dy[:, t]`` for ``t < T`` and 0 for the rows not used. The output keeps the input's
    mask. For fixed positions add ``pnn.functional.sinusoidal_positions(T, features)`` instead.

    Parameters
    ----------
    max_length : the longest sequence (positive int).
    initializer : name (or callable) for ``pnn.init.get`` (Keras-hub's ``"glorot_uniform"``).
    input_shape, seed, name : as :class:`Embedding`.
    """

    keeps_mask = True

    def __init__(
        self,
        max_length: int,
        initializer: Any = "glorot_uniform",
        *,
        input_shape: Shape | None = None,
        seed: int | Generator | None = None,
        name: str | None = None,
    ) -> None:
        self.max_length = positive_int("max_length", max_length)
        self.initializer = check_initializer("initializer", initializer)
        self.seed = check_seed(seed)
        super().__init__(input_shape=input_shape, name=name)

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape)
        if len(shape) != 3 or not isinstance(shape[2], int):
            raise ValueError(
                f"{self.name}: expects inputs (batch, steps, features) with a known feature "
                f"size. Received input shape {format_shape(shape)}"
            )
        self._check_steps(shape)
        generator = get_generator(self.seed)
        weight = make_weight(self.initializer, (self.max_length, shape[2]), generator)
        self.params = {"weight": weight}
        super().build(shape)

    def _check_steps(self, shape: Shape) -> None:
        if shape[1] is not None and shape[1] > self.max_length:
            raise ValueError(
                f"{self.name}: inputs have {shape[1]} steps, more than max_length="
                f"{self.max_length}. Received input shape {format_shape(shape)}"
            )

    def forward(self, x: Any, training: bool = False) -> tuple[Any, PositionEmbeddingCache]:
        self.ensure_built(x)
        steps = x.shape[1]
        if steps > self.max_length:
            self._check_steps(tuple(x.shape))
        return x + self.params["weight"][:steps, :], PositionEmbeddingCache(steps, x.shape)

    def backward(self, dy: Any, cache: PositionEmbeddingCache) -> tuple[Any, dict[str, Any]]:
        self.check_gradient(dy, tuple(cache.shape))
        xp = namespace_of(dy)
        dw = xp.sum(dy, axis=0)  # dL/dW[t] = sum_b dy[b, t] for t < T
        unused = self.max_length - cache.steps
        if unused:  # rows T.. were not used: zero gradient
            device = array_api_compat.device(dy)
            zeros = xp.zeros((unused, dy.shape[2]), dtype=dy.dtype, device=device)
            dw = xp.concat([dw, zeros], axis=0)
        return dy, {"weight": dw}  # dL/dx = dy

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "initializer": initializer_name(self.initializer),
            "seed": self.seed if isinstance(self.seed, int) else None,
        }


__all__ = ["Embedding", "EmbeddingCache", "PositionEmbedding", "PositionEmbeddingCache"]
