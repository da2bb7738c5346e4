"""Adagrad, as ``torch.optim.Adagrad``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portable_nn.validation import non_negative

from .base import Optimizer, Pure
from .hyper import hyper


@dataclass(eq=False, repr=False)
class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer 2011, JMLR 12, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization", https://jmlr.org/papers/v12/duchi11a.html), same
    semantics and defaults as ``torch.optim.Adagrad``. At update ``t = 1, 2, ...``::

        g <- g + weight_decay * p                      # L2 penalty added to the gradient
        lr_t = lr / (1 + (t - 1) * lr_decay)
        s <- s + g**2                                  # s starts at initial_accumulator_value
        p <- p - lr_t * g / (sqrt(s) + epsilon)

    Slot: ``sum`` (torch's name).
    """

    learning_rate: Any = 0.01
    epsilon: float = hyper(non_negative, 1e-10)
    initial_accumulator_value: float = hyper(non_negative, 0.0)
    weight_decay: float = hyper(non_negative, 0.0)
    lr_decay: float = hyper(non_negative, 0.0)

    def _slots(self) -> tuple[str, ...]:
        return ("sum",)

    def _slot_fill(self, slot: str) -> float:
        return self.initial_accumulator_value

    def _constants(self, step: int, lr: float) -> tuple:
        return (lr / (1.0 + (step - 1) * self.lr_decay), self.epsilon)

    def _update(self, xp: Any, w: type[Pure], p: Any, g: Any, s: dict, c: tuple) -> Any:
        lr_t, eps = c  # weight decay: applied before, in base.py
        acc = s["sum"] = w.add(s["sum"], g * g)
        return w.sub(p, w.mul(g / w.add(xp.sqrt(acc), eps), lr_t))
