"""The loss contract: ``loss(y_true, y_pred)``, ``gradient`` and ``value_and_gradient``.

Arguments come in Keras order (targets first). Subclasses compute *unreduced* values (one per
element, or one per sample for cross-entropies) and the gradient of their sum; the base class
validates inputs, reduces and scales:

* ``reduction="mean"``: ``L = sum(values) / n`` and ``dL/dy_pred = grad / n`` (``n`` = number of
  values: elements for MSE/MAE/Huber/BCE, samples for cross-entropies, as PyTorch defines it);
* ``"sum"``: ``L = sum(values)``, ``dL/dy_pred = grad``;
* ``"none"``: ``L = values`` (shape ``y_pred.shape``, or ``y_pred.shape[:-1]`` for
  cross-entropies) and ``gradient`` returns ``d sum(values) / dy_pred`` (row ``i`` of it is the
  gradient of value ``i``, since each value depends only on its own element or row).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, ClassVar

from . import checks

Array = Any
REDUCTIONS = ("mean", "sum", "none")

LOSS_REGISTRY: dict[str, type[Loss]] = {}


class Loss:
    """Base class of all losses; see the module docstring for the reductions."""

    default_name: ClassVar[str] = "loss"
    has_class_axis: ClassVar[bool] = False  # values are per sample over the last axis

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LOSS_REGISTRY[cls.__name__] = cls

    def __init__(self, reduction: str = "mean", name: str | None = None) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"reduction must be one of {', '.join(REDUCTIONS)}. "
                f"Received: reduction={reduction!r}"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None. Received: name={name!r}")
        self.reduction = reduction
        self.name = name or self.default_name

    # -- public API -----------------------------------------------------------------------------
    # check_values=False skips the checks that read a flag back from the device (NaN targets,
    # label range, probability range) for callers that validated the whole data set once
    # (fit/evaluate); namespace, dtype and shape checks always run.
    def __call__(self, y_true: Array, y_pred: Array, *, check_values: bool = True) -> Array:
        """The reduced loss (0-d array), or per-element/per-sample values for ``"none"``."""
        xp, t, p = self._prepare(y_true, y_pred, check_values)
        return self._reduce(xp, self._values(xp, t, p))

    def gradient(self, y_true: Array, y_pred: Array, *, check_values: bool = True) -> Array:
        """``dL/dy_pred``: same shape, namespace, device and dtype as ``y_pred``."""
        xp, t, p = self._prepare(y_true, y_pred, check_values)
        return self._scale(self._grads(xp, t, p), p)

    def value_and_gradient(
        self, y_true: Array, y_pred: Array, *, check_values: bool = True
    ) -> tuple[Array, Array]:
        """``(loss(y_true, y_pred), gradient(y_true, y_pred))`` in one pass."""
        xp, t, p = self._prepare(y_true, y_pred, check_values)
        values, grads = self._values_and_grads(xp, t, p)
        return self._reduce(xp, values), self._scale(grads, p)

    def get_config(self) -> dict[str, Any]:
        """JSON-friendly constructor arguments (``from_config`` rebuilds an equal loss)."""
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        """Same class and same config (a reloaded checkpoint's loss equals the saved one)."""
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.get_config().items()))))

    # -- for subclasses -------------------------------------------------------------------------
    def _values_and_grads(self, xp: ModuleType, t: Array, p: Array) -> tuple[Array, Array]:
        """Unreduced values and the gradient of their sum with respect to ``p``."""
        raise NotImplementedError

    def _values(self, xp: ModuleType, t: Array, p: Array) -> Array:
        return self._values_and_grads(xp, t, p)[0]

    def _grads(self, xp: ModuleType, t: Array, p: Array) -> Array:
        return self._values_and_grads(xp, t, p)[1]

    def _targets(self, xp: ModuleType, y_true: Array, y_pred: Array) -> Array:
        """Validate dtype and shape of ``y_true`` and return it ready for the maths."""
        t = checks.float_targets(self.name, xp, y_true, y_pred.dtype)
        checks.require_same_shape(self.name, y_true, y_pred)
        return t

    def _value_checks(self, xp: ModuleType, t: Array, p: Array) -> list[checks.Check]:
        """Checks on values (one device read-back for all of them)."""
        return checks.finite_targets(self.name, xp, t)

    # -- internals ------------------------------------------------------------------------------
    def _prepare(
        self, y_true: Array, y_pred: Array, check_values: bool = True
    ) -> tuple[ModuleType, Array, Array]:
        xp = checks.namespace(self.name, y_true, y_pred)
        checks.require_float_predictions(self.name, xp, y_pred)
        if self.has_class_axis and y_pred.ndim < 1:
            raise ValueError(
                f"{self.name}: y_pred must have a class axis (last). "
                f"Received: y_pred.shape={checks.shape_text(y_pred)}"
            )
        t = self._targets(xp, y_true, y_pred)
        checks.require_nonempty(self.name, y_pred, self._count(y_pred))
        if check_values:
            checks.run_checks(self._value_checks(xp, t, y_pred))
        return xp, t, y_pred

    def _count(self, p: Array) -> int:
        return math.prod(p.shape[:-1] if self.has_class_axis else p.shape)

    def _reduce(self, xp: ModuleType, values: Array) -> Array:
        if self.reduction == "none":
            return values
        total = xp.sum(values)
        if self.reduction == "mean":
            total = total / math.prod(values.shape)
        # NumPy reductions give NumPy scalars, not 0-d arrays; the other libraries give arrays
        return total if type(total) is type(values) else xp.asarray(total)

    def _scale(self, grads: Array, p: Array) -> Array:
        return grads * (1.0 / self._count(p)) if self.reduction == "mean" else grads


__all__ = ["LOSS_REGISTRY", "REDUCTIONS", "Loss"]
