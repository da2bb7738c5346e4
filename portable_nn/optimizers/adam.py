"""Adam and AdamW, as ``torch.optim.Adam`` / ``torch.optim.AdamW``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from portable_nn.validation import flag, fraction, non_negative

from .base import Optimizer, Pure
from .hyper import hyper


@dataclass(eq=False, repr=False)
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, https://arxiv.org/abs/1412.6980), as ``torch.optim.Adam``.

    At update ``t = 1, 2, ...`` (``m``, ``v`` start at 0)::

        g <- g + weight_decay * p                      # L2 penalty (Adam); AdamW decouples it
        m <- beta_1 * m + (1 - beta_1) * g
        v <- beta_2 * v + (1 - beta_2) * g**2
        v_max <- max(v_max, v)                         # amsgrad only; then v_max replaces v
        p <- p - lr / (1 - beta_1**t) * m / (sqrt(v) / sqrt(1 - beta_2**t) + epsilon)

    ``epsilon`` is added *outside* the square root (torch's and the paper's form). The last line
    is computed with the bias correction folded into scalars (one division, no
    ``sqrt(v) / sqrt(1 - beta_2**t)`` pass; mathematically identical, rounding differs from
    torch's by a few ulp)::

        p <- p - (lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)) * m
                   / (sqrt(v) + epsilon * sqrt(1 - beta_2**t))

    ``epsilon_hat=True`` adds ``epsilon`` to ``sqrt(v)`` without the bias correction (the
    paper's "epsilon hat", section 2; Keras's, TensorFlow's and scikit-learn's form)::

        p <- p - (lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)) * m / (sqrt(v) + epsilon)

    AMSGrad: Reddi et al. 2018, https://openreview.net/forum?id=ryQu7f-RZ, with torch's
    bias correction. Slots: ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq`` (amsgrad), as
    torch names them.
    """

    learning_rate: Any = 0.001
    beta_1: float = hyper(fraction, 0.9)
    beta_2: float = hyper(fraction, 0.999)
    epsilon: float = hyper(non_negative, 1e-8)
    amsgrad: bool = hyper(flag, False)
    epsilon_hat: bool = hyper(flag, False, quiet=True)
    weight_decay: float = hyper(non_negative, 0.0)

    def _slots(self) -> tuple[str, ...]:
        slots = ("exp_avg", "exp_avg_sq")
        return (*slots, "max_exp_avg_sq") if self.amsgrad else slots

    def _constants(self, step: int, lr: float) -> tuple:
        b1, b2 = self.beta_1, self.beta_2
        bc2_sqrt = math.sqrt(1.0 - b2**step)  # bias corrections as Python floats
        step_size = lr * bc2_sqrt / (1.0 - b1**step)  # folded: see the class docstring
        eps_hat = self.epsilon if self.epsilon_hat else self.epsilon * bc2_sqrt
        return (b1, 1.0 - b1, b2, 1.0 - b2, step_size, eps_hat)

    def _update(self, xp: Any, w: type[Pure], p: Any, g: Any, s: dict, c: tuple) -> Any:
        b1, c1, b2, c2, step_size, eps_hat = c  # weight decay: applied before, in base.py
        m = s["exp_avg"] = w.add(w.mul(s["exp_avg"], b1), g * c1)
        v = s["exp_avg_sq"] = w.add(w.mul(s["exp_avg_sq"], b2), w.mul(g * g, c2))
        if self.amsgrad:
            v_max = s["max_exp_avg_sq"]
            v = s["max_exp_avg_sq"] = w.assign(v_max, xp.maximum(v_max, v))
        # each temporary dies once used: in place, at most two parameter-sized ones live at once
        return w.sub(p, w.mul(m / w.add(xp.sqrt(v), eps_hat), step_size))


@dataclass(eq=False, repr=False)
class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019, https://arxiv.org/abs/1711.05101), as
    ``torch.optim.AdamW``: Adam without the L2 term, plus the decoupled decay
    ``p <- p * (1 - lr * weight_decay)`` applied before the Adam step. Default
    ``weight_decay=0.01`` (torch's).
    """

    weight_decay: float = hyper(non_negative, 0.01)
    _decoupled = True
