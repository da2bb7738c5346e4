"""The loss contract: ``loss(y_true, y_pred)``, ``gradient`` and ``value_and_gradient``.

Arguments come in Keras order (targets first). Each loss writes its maths once, in
``_forward(xp, t, p) -> (values, backward)``: unreduced values (one per element, or one per sample
for cross-entropies) and ``backward() = d sum(values) / dp``. The base class checks the inputs
(library and device, dtypes, shapes, never broadcast; then, unless ``check_values=False``, the
values: NaN targets, label range, probability range, read back as one flag), then reduces:

* ``reduction="mean"``: ``L = sum(values) / n`` and ``dL/dy_pred = grad / n`` (``n`` = number of
  values: elements for MSE/MAE/Huber/BCE, samples for cross-entropies, as PyTorch defines it);
* ``"sum"``: ``L = sum(values)``, ``dL/dy_pred = grad``;
* ``"none"``: ``L = values`` (shape ``y_pred.shape``, or ``y_pred.shape[:-1]`` for
  cross-entropies) and ``gradient`` returns ``d sum(values) / dy_pred`` (row ``i`` of it is the
  gradient of value ``i``, since each value depends only on its own element or row).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from portable_nn.backend import is_array, namespace_and_device, namespace_of
from portable_nn.validation import (
    Check,
    all_finite,
    choice,
    format_shape,
    require_dtype,
    require_shape,
    run_checks,
)

Array = Any
Forward = tuple[Array, Callable[[], Array]]  # (unreduced values, backward() -> d sum / dp)
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
        self.reduction = choice("reduction", reduction, REDUCTIONS)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None. Received: name={name!r}")
        self.name = name or self.default_name

    # -- public API -----------------------------------------------------------------------------
    def __call__(self, y_true: Array, y_pred: Array, *, check_values: bool = True) -> Array:
        """The reduced loss (0-d array), or per-element/per-sample values for ``"none"``."""
        xp, t = self._inputs(y_true, y_pred, check_values)
        return self._reduce(xp, self._forward(xp, t, y_pred)[0])

    def gradient(self, y_true: Array, y_pred: Array, *, check_values: bool = True) -> Array:
        """``dL/dy_pred``: same shape, namespace, device and dtype as ``y_pred``."""
        return self.value_and_gradient(y_true, y_pred, check_values=check_values)[1]

    def value_and_gradient(
        self, y_true: Array, y_pred: Array, *, check_values: bool = True
    ) -> tuple[Array, Array]:
        """``(loss(y_true, y_pred), gradient(y_true, y_pred))`` in one pass."""
        xp, t = self._inputs(y_true, y_pred, check_values)
        values, backward = self._forward(xp, t, y_pred)
        grad = backward()
        if self.reduction == "mean":
            grad = grad * (1.0 / math.prod(values.shape))
        return self._reduce(xp, values), grad

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
    def _forward(self, xp: ModuleType, t: Array, p: Array) -> Forward:
        """``(values, backward)``: unreduced values and ``backward() = d sum(values) / dp``."""
        raise NotImplementedError

    def _targets(self, xp: ModuleType, y_true: Array, y_pred: Array) -> Array:
        """Real (float, integer or bool) targets of ``y_pred``'s shape, in ``y_pred``'s dtype."""
        label = f"{self.name}: y_true"
        kinds = ("real floating", "integral", "bool")
        require_dtype(label, y_true, kinds, "a real (float, integer or bool) array")
        require_shape(label, y_true, y_pred.shape, " = y_pred.shape (no broadcasting)")
        return y_true if y_true.dtype == y_pred.dtype else xp.astype(y_true, y_pred.dtype)

    def _value_checks(self, xp: ModuleType, t: Array, p: Array) -> list[Check]:
        """Checks on values, skipped with ``check_values=False``: targets hold no NaN/inf."""
        return all_finite(f"{self.name}: y_true", t)

    # -- internals ------------------------------------------------------------------------------
    def _inputs(self, y_true: Array, y_pred: Array, check_values: bool) -> tuple[ModuleType, Any]:
        """The namespace and the checked targets; raises before anything is computed."""
        # Fast path (every training step): one array type, equal .device attributes (values
        # without one, e.g. JAX tracers or lists, never compare equal and take the full check).
        if type(y_true) is type(y_pred) and (
            getattr(y_true, "device", None) == getattr(y_pred, "device", False)
        ):
            xp = namespace_of(y_pred)
        else:
            xp = self._namespace(y_true, y_pred)
        label = f"{self.name}: y_pred"
        what = "a real floating array (scores, logits or probabilities)"
        require_dtype(label, y_pred, "real floating", what)
        if self.has_class_axis and y_pred.ndim < 1:
            raise ValueError(f"{label} must have a class axis (last). Received: y_pred.shape=()")
        t = self._targets(xp, y_true, y_pred)
        if 0 in y_pred.shape:
            raise ValueError(
                f"{label} is empty. Received: y_pred.shape={format_shape(y_pred.shape)}"
            )
        if check_values:
            run_checks(self._value_checks(xp, t, y_pred))
        return xp, t

    def _namespace(self, y_true: Array, y_pred: Array) -> ModuleType:
        """The full check: both arrays, of one library and one device."""
        for what, value in (("y_true", y_true), ("y_pred", y_pred)):
            if not is_array(value):
                raise TypeError(
                    f"{self.name}: {what} must be an array (see pnn.asarray). "
                    f"Received: {type(value).__name__}"
                )
        try:
            return namespace_and_device(y_true, y_pred)[0]
        except ValueError as exc:
            raise ValueError(f"{self.name}: y_true and y_pred: {exc}") from None

    def _reduce(self, xp: ModuleType, values: Array) -> Array:
        if self.reduction == "none":
            return values
        total = xp.sum(values)
        if self.reduction == "mean":
            total = total / math.prod(values.shape)
        if type(total) is not type(values):  # NumPy reductions give scalars, not 0-d arrays
            total = xp.asarray(total, dtype=values.dtype, device=values.device)
        return total


__all__ = ["LOSS_REGISTRY", "REDUCTIONS", "Loss"]
