"""RMSprop, as ``torch.optim.RMSprop``."""

from __future__ import annotations

from typing import Any

from . import _checks
from .base import Optimizer


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012, Coursera "Neural Networks for Machine Learning",
    lecture 6.5, https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf),
    same semantics and defaults as ``torch.optim.RMSprop`` (``rho`` is torch's ``alpha``)::

        g <- g + weight_decay * p                      # L2 penalty added to the gradient
        s <- rho * s + (1 - rho) * g**2
        a <- rho * a + (1 - rho) * g                   # centered only
        d <- sqrt(s - a**2) + epsilon   (centered)   or   sqrt(s) + epsilon
        b <- momentum * b + g / d ; p <- p - lr * b    (momentum > 0)
        p <- p - lr * g / d                            (otherwise)

    Slots: ``square_avg``, ``grad_avg`` (centered), ``momentum_buffer`` (momentum > 0).
    """

    _hyper_keys = ("rho", "momentum", "epsilon", "centered", "weight_decay")

    def __init__(
        self,
        learning_rate: Any = 0.01,
        rho: float = 0.99,
        momentum: float = 0.0,
        epsilon: float = 1e-8,
        centered: bool = False,
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        self.rho = _checks.fraction("rho", rho)
        self.momentum = _checks.fraction("momentum", momentum)
        self.epsilon = _checks.non_negative("epsilon", epsilon)
        self.centered = _checks.flag("centered", centered)
        self.weight_decay = _checks.non_negative("weight_decay", weight_decay)
        super().__init__(learning_rate, **kwargs)

    def _slots(self) -> tuple[str, ...]:
        slots = ("square_avg",)
        if self.centered:
            slots += ("grad_avg",)
        if self.momentum:
            slots += ("momentum_buffer",)
        return slots

    def _constants(self, step: int, lr: float) -> tuple:
        return (lr, self.rho, 1.0 - self.rho, self.epsilon, self.momentum, self.weight_decay)

    def _update_pure(self, xp: Any, p: Any, g: Any, slots: dict, c: tuple) -> tuple[Any, dict]:
        lr, rho, c_rho, eps, momentum, wd = c
        if wd:
            g = g + wd * p
        sq = rho * slots["square_avg"] + c_rho * (g * g)
        new = {"square_avg": sq}
        if self.centered:
            avg = new["grad_avg"] = rho * slots["grad_avg"] + c_rho * g
            denom = xp.sqrt(sq - avg * avg) + eps
        else:
            denom = xp.sqrt(sq) + eps
        if momentum:
            buf = new["momentum_buffer"] = momentum * slots["momentum_buffer"] + g / denom
            return p - lr * buf, new
        return p - lr * (g / denom), new

    def _update_inplace(self, xp: Any, p: Any, g: Any, slots: dict, c: tuple) -> None:
        lr, rho, c_rho, eps, momentum, wd = c
        if wd:
            g = g + wd * p
        sq = slots["square_avg"]
        g2 = g * g
        g2 *= c_rho
        sq *= rho
        sq += g2
        if self.centered:
            avg = slots["grad_avg"]
            avg *= rho
            avg += c_rho * g
            denom = xp.sqrt(sq - avg * avg)
        else:
            denom = xp.sqrt(sq)
        denom += eps
        delta = g / denom
        if momentum:
            buf = slots["momentum_buffer"]
            buf *= momentum
            buf += delta
            p -= lr * buf
        else:
            delta *= lr
            p -= delta
