"""RMSprop, as ``torch.optim.RMSprop``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portable_nn.validation import flag, fraction, non_negative

from .base import Optimizer, Pure
from .hyper import hyper


@dataclass(eq=False, repr=False)
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

    learning_rate: Any = 0.01
    rho: float = hyper(fraction, 0.99)
    momentum: float = hyper(fraction, 0.0)
    epsilon: float = hyper(non_negative, 1e-8)
    centered: bool = hyper(flag, False)
    weight_decay: float = hyper(non_negative, 0.0)

    def _slots(self) -> tuple[str, ...]:
        slots = ("square_avg",)
        if self.centered:
            slots += ("grad_avg",)
        if self.momentum:
            slots += ("momentum_buffer",)
        return slots

    def _constants(self, step: int, lr: float) -> tuple:
        return (lr, self.rho, 1.0 - self.rho, self.epsilon, self.momentum)

    def _update(self, xp: Any, w: type[Pure], p: Any, g: Any, s: dict, c: tuple) -> Any:
        lr, rho, c_rho, eps, mu = c  # weight decay: applied before, in base.py
        var = s["square_avg"] = w.add(w.mul(s["square_avg"], rho), w.mul(g * g, c_rho))
        if self.centered:
            avg = s["grad_avg"] = w.add(w.mul(s["grad_avg"], rho), g * c_rho)
            var = var - avg * avg
        denom = w.add(xp.sqrt(var), eps)
        if self.momentum:
            b = s["momentum_buffer"] = w.add(w.mul(s["momentum_buffer"], mu), g / denom)
            return w.sub(p, lr * b)
        return w.sub(p, w.mul(g / denom, lr))
