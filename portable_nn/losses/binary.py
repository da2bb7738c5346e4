"""Binary cross-entropy, elementwise, averaged over all elements (PyTorch's definition)."""

from __future__ import annotations

from types import ModuleType

from .base import Array
from .probabilities import _ProbabilisticLoss, clip_epsilon


class BinaryCrossentropy(_ProbabilisticLoss):
    """``values = -(y log p + (1 - y) log(1 - p))`` per element; y_true and y_pred alike.

    ``from_logits=True`` (recommended): ``y_pred`` holds logits ``x`` and, with
    ``z = exp(-|x|)``, ``values = max(x, 0) - x y + log1p(z)`` and ``grad = sigmoid(x) - y``:
    exact for any finite ``x`` (|x| = 1e4 included), so a confidently wrong logit keeps a
    gradient of magnitude 1 (keras#9664).

    ``from_logits=False``: ``y_pred`` holds probabilities in [0, 1] (``ValueError`` otherwise).
    As in Keras, they are clipped to ``[eps, 1 - eps]`` before the log, with
    ``eps = max(epsilon, machine_eps(dtype) / 2)`` (1e-7 by default, so that ``1 - eps < 1`` also
    in float32, keras#377). The gradient is ``(p_c - y) / (p_c (1 - p_c))`` at the clipped
    ``p_c``: a saturated wrong prediction still gets a (large, finite) gradient, as in PyTorch,
    rather than the zero gradient of the flat clipped region.
    """

    default_name = "binary_crossentropy"

    def _values(self, xp: ModuleType, t: Array, p: Array) -> Array:
        if self.from_logits:
            return xp.maximum(p, 0.0) - p * t + xp.log1p(xp.exp(-xp.abs(p)))
        pc = self._clip(xp, p)
        return -(t * xp.log(pc) + (1.0 - t) * xp.log1p(-pc))

    def _grads(self, xp: ModuleType, t: Array, p: Array) -> Array:
        if self.from_logits:
            return self._logit_grad(xp, t, p, xp.exp(-xp.abs(p)))
        pc = self._clip(xp, p)
        return (pc - t) / (pc * (1.0 - pc))

    def _values_and_grads(self, xp: ModuleType, t: Array, p: Array) -> tuple[Array, Array]:
        if not self.from_logits:
            pc = self._clip(xp, p)
            values = -(t * xp.log(pc) + (1.0 - t) * xp.log1p(-pc))
            return values, (pc - t) / (pc * (1.0 - pc))
        z = xp.exp(-xp.abs(p))
        values = xp.maximum(p, 0.0) - p * t + xp.log1p(z)
        return values, self._logit_grad(xp, t, p, z)

    @staticmethod
    def _logit_grad(xp: ModuleType, t: Array, x: Array, z: Array) -> Array:
        """``sigmoid(x) - y`` with ``z = exp(-|x|)``, as ``(1 - y) - z/(1+z)`` for x >= 0 so
        that hard labels lose no digits to cancellation (``sigmoid(5) - 1`` in float32)."""
        q = z / (1.0 + z)
        return xp.where(x >= 0, (1.0 - t) - q, q - t)

    def _clip(self, xp: ModuleType, p: Array) -> Array:
        eps = clip_epsilon(xp, self.epsilon, p.dtype)
        return xp.clip(p, eps, 1.0 - eps)


__all__ = ["BinaryCrossentropy"]
