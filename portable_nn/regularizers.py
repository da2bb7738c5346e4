"""Weight penalties (Keras's ``pnn.regularizers``): ``penalty(w)`` and its gradient.

A layer given ``kernel_regularizer=L2(1e-4)`` (or ``bias_regularizer``, ``recurrent_regularizer``,
``embeddings_regularizer``, ``gamma_regularizer``/``beta_regularizer`` where the layer has those
weights) adds ``penalty(W)`` to the loss and ``dpenalty/dW`` to W's gradient once per training
step (``Layer.penalties``); ``fit``/``evaluate`` report the loss with the penalties, as Keras.

    L1(l1):        l1 * sum |w|            gradient l1 * sign(w)   (0 at w = 0)
    L2(l2):        l2 * sum w^2            gradient 2 * l2 * w
    L1L2(l1, l2):  the sum of both
    OrthogonalRegularizer(factor, mode="rows"): factor * mean over pairs i < j of
                   |n_i . n_j| for the L2-normalised rows n_i of a 2-D kernel (columns with
                   mode="columns"), Keras's formula
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from portable_nn.backend import namespace_of
from portable_nn.validation import non_negative

Array = Any


class Regularizer:
    """``regularizer(w)`` -> 0-d penalty; ``gradient(w)`` -> its gradient, shaped like ``w``."""

    def __call__(self, w: Array) -> Array:
        raise NotImplementedError

    def gradient(self, w: Array) -> Array:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """``l1 * sum |w| + l2 * sum w^2``; gradient ``l1 * sign(w) + 2 * l2 * w``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1, self.l2 = non_negative("l1", l1), non_negative("l2", l2)

    def __call__(self, w: Array) -> Array:
        xp = namespace_of(w)
        terms = [self.l1 * xp.sum(xp.abs(w))] if self.l1 else []
        terms += [self.l2 * xp.sum(w * w)] if self.l2 else []
        total = terms[0] + terms[1] if len(terms) == 2 else terms[0] if terms else xp.sum(0.0 * w)
        return xp.asarray(total)  # NumPy: a 0-d array, not a scalar

    def gradient(self, w: Array) -> Array:
        xp = namespace_of(w)
        grad = (2.0 * self.l2) * w
        return grad + self.l1 * xp.sign(w) if self.l1 else grad

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum |w|`` (Keras's default ``l1=0.01``)."""

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum w^2`` (Keras's default ``l2=0.01``; PyTorch's ``weight_decay=d`` on SGD is
    ``l2 = d / 2``)."""

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Keras's: ``factor * sum_{i<j} |n_i . n_j| / (k (k - 1) / 2)`` over the ``k`` rows ``n_i``
    of ``W`` divided by their norms (``mode="columns"``: over the columns).

    Gradient, with ``M = N N^T`` and ``G = c * sign(M)`` off the diagonal (0 on it, ``c`` the
    factor over the number of pairs, halved as each pair appears twice in ``M``): ``dN = 2 G N``
    and through the normalisation ``dW = (dN - N * rowsum(dN * N)) / ||w_row||``."""

    def __init__(self, factor: float = 0.01, mode: str = "rows") -> None:
        from portable_nn.validation import choice

        self.factor = non_negative("factor", factor)
        self.mode = choice("mode", mode, ("rows", "columns"))

    def _rows(self, w: Array) -> tuple[Any, Array, Array, float]:
        xp = namespace_of(w)
        if w.ndim != 2:
            raise ValueError(f"OrthogonalRegularizer needs a 2-D kernel; got shape {w.shape}")
        rows = w if self.mode == "rows" else w.T
        norm = xp.sqrt(xp.clip(xp.sum(rows * rows, axis=1, keepdims=True), min=1e-12))
        k = rows.shape[0]
        return xp, rows / norm, norm, self.factor * 0.5 / max(k * (k - 1) / 2.0, 1.0)

    def _off_diagonal(self, xp: Any, m: Array) -> Array:
        eye = xp.eye(m.shape[0], dtype=m.dtype, device=array_api_compat.device(m))
        return m * (1.0 - eye)

    def __call__(self, w: Array) -> Array:
        xp, n, _, c = self._rows(w)
        return xp.asarray(c * xp.sum(xp.abs(self._off_diagonal(xp, n @ n.T))))

    def gradient(self, w: Array) -> Array:
        xp, n, norm, c = self._rows(w)
        g = self._off_diagonal(xp, c * xp.sign(n @ n.T))
        dn = 2.0 * (g @ n)
        dw = (dn - n * xp.sum(dn * n, axis=1, keepdims=True)) / norm
        return dw if self.mode == "rows" else dw.T

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor, "mode": self.mode}


_CLASSES = {cls.__name__: cls for cls in (L1, L2, L1L2, OrthogonalRegularizer)}
_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2, "orthogonal": OrthogonalRegularizer}


def get(identifier: Any) -> Regularizer | None:
    """None, a :class:`Regularizer`, a name (``"l1"``, ``"l2"``, ``"l1_l2"``: Keras defaults) or a
    :func:`serialize` dict; ``ValueError`` for an unknown name, ``TypeError`` otherwise."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() not in _NAMES:
            raise ValueError(f"unknown regularizer {identifier!r}; known: {sorted(_NAMES)}")
        return _NAMES[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(dict(identifier.get("config", {})))
    raise TypeError(
        "a regularizer must be None, a pnn.regularizers.Regularizer, a name or a serialized "
        f"dict. Received: {identifier!r}"
    )


def serialize(regularizer: Regularizer) -> dict[str, Any]:
    """``{"class_name", "config"}`` (JSON-friendly; :func:`get` rebuilds it)."""
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


__all__ = ["L1", "L1L2", "L2", "OrthogonalRegularizer", "Regularizer", "get", "serialize"]
