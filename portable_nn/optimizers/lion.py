"""Lion (EvoLved Sign Momentum), as Keras's ``Lion``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portable_nn.validation import fraction, non_negative

from .base import Optimizer, Pure
from .hyper import hyper


@dataclass(eq=False, repr=False)
class Lion(Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms",
    https://arxiv.org/abs/2302.06675, Algorithm 2), Keras's defaults. Per update::

        p <- p * (1 - lr * weight_decay)               # decoupled, as AdamW
        p <- p - lr * sign(beta_1 * m + (1 - beta_1) * g)
        m <- beta_2 * m + (1 - beta_2) * g

    Every coordinate moves by exactly ``lr`` (or 0), so Lion wants a learning rate 3-10x
    smaller than AdamW's and a weight decay 3-10x larger (the paper). Slot: ``exp_avg``.
    """

    learning_rate: Any = 0.001
    beta_1: float = hyper(fraction, 0.9)
    beta_2: float = hyper(fraction, 0.99)
    weight_decay: float = hyper(non_negative, 0.0)
    _decoupled = True

    def _slots(self) -> tuple[str, ...]:
        return ("exp_avg",)

    def _constants(self, step: int, lr: float) -> tuple:
        b1, b2 = self.beta_1, self.beta_2
        return (lr, b1, 1.0 - b1, b2, 1.0 - b2)

    def _update(self, xp: Any, w: type[Pure], p: Any, g: Any, s: dict, c: tuple) -> Any:
        lr, b1, c1, b2, c2 = c
        m = s["exp_avg"]
        p = w.sub(p, w.mul(xp.sign(m * b1 + g * c1), lr))
        s["exp_avg"] = w.add(w.mul(m, b2), g * c2)
        return p
