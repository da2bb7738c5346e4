"""Adamax, as ``torch.optim.Adamax``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portable_nn.validation import fraction, non_negative

from .base import Optimizer, Pure
from .hyper import hyper


@dataclass(eq=False, repr=False)
class Adamax(Optimizer):
    """Adamax, Adam's infinity-norm variant (Kingma & Ba 2015, section 7.1,
    https://arxiv.org/abs/1412.6980), as ``torch.optim.Adamax``. At update ``t = 1, 2, ...``::

        g <- g + weight_decay * p                      # L2 penalty
        m <- beta_1 * m + (1 - beta_1) * g
        u <- max(beta_2 * u, |g| + epsilon)
        p <- p - lr / (1 - beta_1**t) * m / u

    ``epsilon`` inside the max is torch's form (Keras adds it to ``u`` in the last line and
    defaults to ``learning_rate=0.001, epsilon=1e-7``). Defaults are torch's. Slots:
    ``exp_avg``, ``exp_inf``.
    """

    learning_rate: Any = 0.002
    beta_1: float = hyper(fraction, 0.9)
    beta_2: float = hyper(fraction, 0.999)
    epsilon: float = hyper(non_negative, 1e-8)
    weight_decay: float = hyper(non_negative, 0.0)

    def _slots(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_inf")

    def _constants(self, step: int, lr: float) -> tuple:
        b1 = self.beta_1
        return (b1, 1.0 - b1, self.beta_2, self.epsilon, lr / (1.0 - b1**step))

    def _update(self, xp: Any, w: type[Pure], p: Any, g: Any, s: dict, c: tuple) -> Any:
        b1, c1, b2, eps, step_size = c
        m = s["exp_avg"] = w.add(w.mul(s["exp_avg"], b1), g * c1)
        u = s["exp_inf"]
        u = s["exp_inf"] = w.assign(u, xp.maximum(w.mul(u, b2), xp.abs(g) + eps))
        return w.sub(p, w.mul(m / u, step_size))
