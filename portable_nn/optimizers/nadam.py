"""NAdam, as ``torch.optim.NAdam``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from portable_nn.validation import fraction, non_negative, positive

from .base import Optimizer, Pure
from .hyper import hyper


@dataclass(eq=False, repr=False)
class Nadam(Optimizer):
    """Adam with Nesterov momentum (Dozat 2016, "Incorporating Nesterov Momentum into Adam",
    https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ), as ``torch.optim.NAdam``, with its
    momentum schedule. At update ``t = 1, 2, ...`` (``psi = momentum_decay``)::

        g <- g + weight_decay * p                      # L2 penalty
        mu_t = beta_1 * (1 - 0.5 * 0.96**(t * psi)) ;  P_t = mu_1 * ... * mu_t
        m <- beta_1 * m + (1 - beta_1) * g
        v <- beta_2 * v + (1 - beta_2) * g**2
        d = sqrt(v / (1 - beta_2**t)) + epsilon
        p <- p - lr * (1 - mu_t) / (1 - P_t) * g / d - lr * mu_{t+1} / (1 - P_t * mu_{t+1}) * m / d

    computed, like :class:`Adam`, with ``sqrt(1 - beta_2**t)`` folded into the scalars
    (``d' = sqrt(v) + epsilon * sqrt(1 - beta_2**t)``). ``P_t`` is a Python float (torch keeps
    it per parameter as ``mu_product``). ``momentum_decay=1.0`` gives Keras's ``Nadam``
    (``0.96**t``; Keras's defaults are ``learning_rate=0.001, epsilon=1e-7``). Defaults are
    torch's. Slots: ``exp_avg``, ``exp_avg_sq``.
    """

    learning_rate: Any = 0.002
    beta_1: float = hyper(fraction, 0.9)
    beta_2: float = hyper(fraction, 0.999)
    epsilon: float = hyper(non_negative, 1e-8)
    momentum_decay: float = hyper(positive, 0.004)
    weight_decay: float = hyper(non_negative, 0.0)

    def _slots(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def _mu(self, t: int) -> float:
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** (float(t) * self.momentum_decay))

    def _mu_product(self, t: int) -> float:
        """``mu_1 * ... * mu_t``, multiplied in torch's order (cached: O(1) per next step)."""
        done, product = getattr(self, "_product", (0, 1.0))
        if done > t:
            done, product = 0, 1.0
        for i in range(done + 1, t + 1):
            product *= self._mu(i)
        self._product = (t, product)
        return product

    def _constants(self, step: int, lr: float) -> tuple:
        b1, b2 = self.beta_1, self.beta_2
        bc2_sqrt = math.sqrt(1.0 - b2**step)
        mu, mu_next, product = self._mu(step), self._mu(step + 1), self._mu_product(step)
        c_g = lr * (1.0 - mu) / (1.0 - product) * bc2_sqrt
        c_m = lr * mu_next / (1.0 - product * mu_next) * bc2_sqrt
        return (b1, 1.0 - b1, b2, 1.0 - b2, c_g, c_m, self.epsilon * bc2_sqrt)

    def _update(self, xp: Any, w: type[Pure], p: Any, g: Any, s: dict, c: tuple) -> Any:
        b1, c1, b2, c2, c_g, c_m, eps_hat = c
        m = s["exp_avg"] = w.add(w.mul(s["exp_avg"], b1), g * c1)
        v = s["exp_avg_sq"] = w.add(w.mul(s["exp_avg_sq"], b2), w.mul(g * g, c2))
        nesterov = w.add(g * c_g, m * c_m)  # a temporary of its own: in place is fine
        return w.sub(p, nesterov / w.add(xp.sqrt(v), eps_hat))
