"""The loss contract: ``loss(y_true, y_pred, sample_weight=None)``, ``gradient`` and
``value_and_gradient`` (Keras argument order: targets first).

Each loss writes its maths once, in ``_forward(xp, t, p) -> (values, backward)``: one value per
sample, as Keras defines it, and ``backward(dv) = d sum(dv * values) / dp`` (``dv`` a Python
float or an array lined up with the values). Losses of one term per element (MSE, MAE, Huber,
BCE, ...) average the terms over the last axis (``_PerElement``; a 0-d or 1-D ``y_pred`` keeps
one value per element, i.e. per sample); class losses reduce over their class ``axis``.

The base class checks the inputs (library and device, dtypes, shapes, never broadcast; then,
unless ``check_values=False``, the values: NaN targets, label range, probability range, finite
non-negative weights, read back as ONE flag), then reduces. With ``w`` the sample weights lined
up with the values (times the mask of counted samples, e.g. ``ignore_class``; 1 when absent) and
``n`` the number of values (of counted values when a loss masks some):

* ``"mean"`` = ``"sum_over_batch_size"`` (default): ``L = sum(w v) / n``;
* ``"sum"``: ``L = sum(w v)``;
* ``"mean_with_sample_weight"``: ``L = sum(w v) / sum(w)`` (``w`` broadcast to the values; 0
  when ``sum(w) = 0``);
* ``"none"``: ``L = w v`` (the values' shape) and ``gradient`` is ``d sum(w v) / dy_pred``.

The gradient is ``backward(dL/dv)`` with ``dL/dv = w / divisor``: no host read on any path.

``sample_weight`` has shape ``(batch,)`` (Keras's ``(batch, 1)`` too) or any shape that lines up
with the values from the batch axis on (sizes equal, or 1 after the batch axis), e.g.
``(batch, steps)`` for per-step weights of a sequence loss.

Inside :func:`global_batch` (a data-parallel step: this process holds some rows of a global
batch) ``n`` and ``sum(w)`` are the global batch's, so the processes' losses and gradients add
up to the global batch's: ``n`` from the global row count, ``sum(w)`` and a mask's count summed
over the processes (one small all-reduce, only for those two reductions).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, ClassVar

import array_api_compat
import array_api_extra as xpx

from portable_nn.backend import (
    has_dtype,
    integer_range,
    is_array,
    namespace_and_device,
    namespace_of,
)
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
Scale = Any  # dL/dvalues: a Python float or an array lined up with the values
Forward = tuple[Array, Callable[[Scale], Array]]  # (per-sample values, backward(dv) -> dL/dp)
Elements = tuple[Array, Callable[[], Array]]  # (terms per element, de() -> de/dp)
REDUCTIONS = ("mean", "sum_over_batch_size", "sum", "none", "mean_with_sample_weight")
_REAL = ("real floating", "integral", "bool")
# (rows of the global batch, sum over processes) inside global_batch()
_GLOBAL: contextvars.ContextVar[tuple[int, Callable[[Array], Array]] | None] = (
    contextvars.ContextVar("global_batch", default=None)
)


@contextlib.contextmanager
def global_batch(rows: int, allreduce: Callable[[Array], Array]) -> Iterator[None]:
    """Losses reduce as parts of a global batch of ``rows`` rows (see the module docstring);
    ``allreduce`` sums an array over the processes. A process may hold no rows."""
    token = _GLOBAL.set((rows, allreduce))
    try:
        yield
    finally:
        _GLOBAL.reset(token)


LOSS_REGISTRY: dict[str, type[Loss]] = {}


def axis_argument(axis: Any) -> int:
    """``axis`` as a Python int (``TypeError`` for a bool or a non-integer)."""
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"axis must be an integer. Received: axis={axis!r}")
    return axis


def expand(xp: ModuleType, dv: Scale, axis: int) -> Scale:
    """``dv`` (float, 0-d, or lined up with the values) broadcastable along the reduced axis."""
    return dv if isinstance(dv, float) or dv.ndim == 0 else xp.expand_dims(dv, axis=axis)


class Loss:
    """Base class of all losses; see the module docstring for the reductions and weights."""

    default_name: ClassVar[str] = "loss"
    has_class_axis: ClassVar[bool] = False  # values reduce over ``self.axis`` (classes)
    axis: int = -1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LOSS_REGISTRY[cls.__name__] = cls

    def __init__(self, reduction: str = "mean", name: str | None = None) -> None:
        self.reduction = choice("reduction", reduction, REDUCTIONS)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None. Received: name={name!r}")
        self.name = name or self.default_name

    # -- public API -----------------------------------------------------------------------------
    def __call__(
        self,
        y_true: Array,
        y_pred: Array,
        sample_weight: Array | None = None,
        *,
        check_values: bool = True,
    ) -> Array:
        """The reduced loss (0-d array), or the weighted per-sample values for ``"none"``."""
        xp, t, w = self._inputs(y_true, y_pred, sample_weight, check_values)
        values, _ = self._forward(xp, t, y_pred)
        return self._reduce(xp, values, w, self._counted(xp, t))[0]

    def gradient(
        self,
        y_true: Array,
        y_pred: Array,
        sample_weight: Array | None = None,
        *,
        check_values: bool = True,
    ) -> Array:
        """``dL/dy_pred``: same shape, namespace, device and dtype as ``y_pred``."""
        return self.value_and_gradient(y_true, y_pred, sample_weight, check_values=check_values)[1]

    def value_and_gradient(
        self,
        y_true: Array,
        y_pred: Array,
        sample_weight: Array | None = None,
        *,
        check_values: bool = True,
    ) -> tuple[Array, Array]:
        """``(loss(y_true, y_pred, sample_weight), gradient(...))`` in one pass.

        ``check_values=False`` (the training step) skips only the checks that read a value back
        from the device (NaN/inf, label range, probability range, negative weights).
        """
        xp, t, w = self._inputs(y_true, y_pred, sample_weight, check_values)
        values, backward = self._forward(xp, t, y_pred)
        value, dv = self._reduce(xp, values, w, self._counted(xp, t))
        return value, backward(dv)

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
        """``(values, backward)``: per-sample values and ``backward(dv) = d sum(dv v) / dp``."""
        raise NotImplementedError

    def _axis(self, ndim: int) -> int | None:
        """The axis the per-sample reduction removes (``None``: one value per element)."""
        if not self.has_class_axis:
            return ndim - 1 if ndim >= 2 else None
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 0 <= axis < ndim or (axis == 0 and ndim >= 2):
            raise ValueError(
                f"{self.name}: axis={self.axis} must name the class axis of y_pred (not the "
                f"batch axis 0). Received: y_pred with {ndim} dimensions"
            )
        return axis

    def _targets(self, xp: ModuleType, y_true: Array, y_pred: Array) -> Array:
        """Real (float, integer or bool) targets of ``y_pred``'s shape, in ``y_pred``'s dtype."""
        label = f"{self.name}: y_true"
        require_dtype(label, y_true, _REAL, "a real (float, integer or bool) array")
        require_shape(label, y_true, y_pred.shape, " = y_pred.shape (no broadcasting)")
        return y_true if y_true.dtype == y_pred.dtype else xp.astype(y_true, y_pred.dtype)

    def _value_checks(self, xp: ModuleType, t: Array, p: Array) -> list[Check]:
        """Checks on values, skipped with ``check_values=False``: targets hold no NaN/inf."""
        return all_finite(f"{self.name}: y_true", t)

    def _counted(self, xp: ModuleType, t: Array) -> Array | None:
        """Boolean mask of the values that count (``None``: all); ``ignore_class`` uses it."""
        return None

    # -- internals ------------------------------------------------------------------------------
    def _inputs(
        self, y_true: Array, y_pred: Array, sample_weight: Array | None, check_values: bool
    ) -> tuple[ModuleType, Array, Array | None]:
        """The namespace, the checked targets and the lined-up weights (``y_pred``'s dtype);
        raises before anything is computed."""
        xp = self._namespace("y_true", y_true, y_pred)
        label = f"{self.name}: y_pred"
        what = "a real floating array (scores, logits or probabilities)"
        require_dtype(label, y_pred, "real floating", what)
        axis = self._axis(y_pred.ndim)
        t = self._targets(xp, y_true, y_pred)
        if 0 in y_pred.shape[1:] or (y_pred.shape[:1] == (0,) and _GLOBAL.get() is None):
            raise ValueError(
                f"{label} is empty. Received: y_pred.shape={format_shape(y_pred.shape)}"
            )
        shape = tuple(s for i, s in enumerate(y_pred.shape) if i != axis)
        w = None if sample_weight is None else self._sample_weight(xp, sample_weight, y_pred, shape)
        if check_values:
            found = self._value_checks(xp, t, y_pred)
            run_checks(found if w is None else found + _weight_checks(self.name, w))
        if w is not None and w.dtype != y_pred.dtype:
            w = xp.astype(w, y_pred.dtype)
        return xp, t, w

    def _namespace(self, what: str, value: Array, y_pred: Array) -> ModuleType:
        """``y_pred``'s namespace; ``value`` must be an array of the same library and device."""
        # Fast path (every training step): one array type, equal .device attributes (values
        # without one, e.g. JAX tracers or lists, never compare equal and take the full check).
        if type(value) is type(y_pred) and (
            getattr(value, "device", None) == getattr(y_pred, "device", False)
        ):
            return namespace_of(y_pred)
        for name, array in ((what, value), ("y_pred", y_pred)):
            if not is_array(array):
                raise TypeError(
                    f"{self.name}: {name} must be an array (see pnn.asarray). "
                    f"Received: {type(array).__name__}"
                )
        try:
            return namespace_and_device(value, y_pred)[0]
        except ValueError as exc:
            raise ValueError(f"{self.name}: {what} and y_pred: {exc}") from None

    def _sample_weight(self, xp: ModuleType, w: Array, p: Array, shape: tuple[int, ...]) -> Array:
        """``w`` reshaped to line up with values of ``shape`` (see the module docstring)."""
        label = f"{self.name}: sample_weight"
        self._namespace("sample_weight", w, p)
        require_dtype(label, w, _REAL, "a real (float, integer or bool) array")
        have = tuple(w.shape)
        if len(have) == len(shape) + 1 and have[-1] == 1:  # Keras's (batch, 1)
            have = have[:-1]
        if len(have) > len(shape) or any(
            a != b and (a != 1 or i == 0) for i, (a, b) in enumerate(zip(have, shape))
        ):
            batch = f"({shape[0]},) (one weight per sample) or " if shape else ""
            raise ValueError(
                f"{label} has shape {format_shape(w.shape)}, expected {batch}a shape lined up "
                f"with the per-sample loss {format_shape(shape)} from the batch axis on "
                "(sizes equal, or 1 after the batch axis)"
            )
        full = have + (1,) * (len(shape) - len(have))
        return w if full == tuple(w.shape) else xp.reshape(w, full)

    def _reduce(
        self, xp: ModuleType, values: Array, w: Array | None, counted: Array | None
    ) -> tuple[Array, Scale]:
        """``(L, dL/dvalues)`` for the reduction (see the module docstring)."""
        if counted is not None:
            mask = xp.astype(counted, values.dtype)
            w = mask if w is None else w * mask
        weighted = values if w is None else values * w
        if self.reduction == "none":
            return weighted, 1.0 if w is None else w
        total, part_of = xp.sum(weighted), _GLOBAL.get()
        if self.reduction == "sum":
            scale: Scale = 1.0
        elif counted is None and (w is None or self.reduction != "mean_with_sample_weight"):
            if part_of is None or values.ndim == 0:
                scale = 1.0 / math.prod(values.shape)
            else:  # the global batch's rows
                scale = 1.0 / (part_of[0] * math.prod(values.shape[1:]))
        else:
            weights = w if self.reduction == "mean_with_sample_weight" else mask  # counted
            divisor = xp.sum(xp.broadcast_to(weights, values.shape))
            if part_of is not None:
                divisor = part_of[1](divisor)
            scale = xpx.apply_where(divisor > 0.0, (divisor,), lambda d: 1.0 / d, fill_value=0.0)
        total = total * scale
        if type(total) is not type(values):  # NumPy reductions give scalars, not 0-d arrays
            total = xp.asarray(total, dtype=values.dtype, device=array_api_compat.device(values))
        return total, scale if w is None else w * scale


class _PerElement(Loss):  # "_": pnn.losses.get refuses it
    """One term per element, ``e = _elements(t, p)``; the values average it over the last
    axis (Keras): ``v = mean(e, axis=-1)``, ``dv/dp = (de/dp) / width``."""

    def _elements(self, xp: ModuleType, t: Array, p: Array) -> Elements:
        """``(e, de)``: the terms and ``de() = de/dp`` element by element."""
        raise NotImplementedError

    def _forward(self, xp: ModuleType, t: Array, p: Array) -> Forward:
        e, de = self._elements(xp, t, p)
        if p.ndim < 2:
            return e, lambda dv: dv * de()
        inverse_width = 1.0 / p.shape[-1]
        return xp.mean(e, axis=-1), lambda dv: expand(xp, dv * inverse_width, -1) * de()

    def elementwise(self, y_true: Array, y_pred: Array, *, check_values: bool = True) -> Array:
        """The terms before the per-sample mean: one per element, ``y_pred``'s shape (what
        PyTorch's ``reduction="none"`` returns)."""
        xp, t, _ = self._inputs(y_true, y_pred, None, check_values)
        return self._elements(xp, t, y_pred)[0]


def _weight_checks(name: str, w: Array) -> list[Check]:
    """Lazy checks that ``sample_weight`` is finite and ``>= 0``."""
    label = f"{name}: sample_weight"
    found = all_finite(label, w)
    if has_dtype(w, "bool") or (has_dtype(w, "integral") and integer_range(w)[0] >= 0):
        return found
    xp = namespace_of(w)

    def message() -> str:
        lowest = float(xp.min(w))
        return f"{label} contains negative values (minimum {lowest:.6g}); weights must be >= 0"

    return [*found, (xp.all(w >= 0), message)]


__all__ = ["LOSS_REGISTRY", "REDUCTIONS", "Elements", "Forward", "Loss", "axis_argument", "expand"]
