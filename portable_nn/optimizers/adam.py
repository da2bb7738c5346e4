"""Adam and AdamW, as ``torch.optim.Adam`` / ``torch.optim.AdamW``."""

from __future__ import annotations

import math
from typing import Any

from portable_nn.validation import flag, fraction, non_negative

from .base import Optimizer, Pure


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

    AMSGrad: Reddi et al. 2018, https://openreview.net/forum?id=ryQu7f-RZ, with torch's
    bias correction. Slots: ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq`` (amsgrad), as
    torch names them.
    """

    _hyper_keys = ("beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay")
    _decoupled = False

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        amsgrad: bool = False,
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        self.beta_1 = fraction("beta_1", beta_1)
        self.beta_2 = fraction("beta_2", beta_2)
        self.epsilon = non_negative("epsilon", epsilon)
        self.amsgrad = flag("amsgrad", amsgrad)
        self.weight_decay = non_negative("weight_decay", weight_decay)
        super().__init__(learning_rate, **kwargs)

    def _slots(self) -> tuple[str, ...]:
        slots = ("exp_avg", "exp_avg_sq")
        return (*slots, "max_exp_avg_sq") if self.amsgrad else slots

    def _constants(self, step: int, lr: float) -> tuple:
        b1, b2 = self.beta_1, self.beta_2
        bc2_sqrt = math.sqrt(1.0 - b2**step)  # bias corrections as Python floats
        step_size = lr * bc2_sqrt / (1.0 - b1**step)  # folded: see the class docstring
        wd = self.weight_decay
        l2, shrink = (0.0, 1.0 - lr * wd) if self._decoupled else (wd, 1.0)
        eps_hat = self.epsilon * bc2_sqrt
        return (b1, 1.0 - b1, b2, 1.0 - b2, step_size, eps_hat, l2, shrink)

    def _update(self, xp: Any, w: type[Pure], p: Any, g: Any, s: dict, c: tuple) -> Any:
        b1, c1, b2, c2, step_size, eps_hat, l2, shrink = c
        if self.weight_decay and self._decoupled:
            p = w.mul(p, shrink)  # AdamW: p <- p * (1 - lr * weight_decay)
        elif self.weight_decay:
            g = g + l2 * p
        m = s["exp_avg"] = w.add(w.mul(s["exp_avg"], b1), g * c1)
        v = s["exp_avg_sq"] = w.add(w.mul(s["exp_avg_sq"], b2), w.mul(g * g, c2))
        if self.amsgrad:
            v_max = s["max_exp_avg_sq"]
            v = s["max_exp_avg_sq"] = w.assign(v_max, xp.maximum(v_max, v))
        # each temporary dies once used: in place, at most two parameter-sized ones live at once
        return w.sub(p, w.mul(m / w.add(xp.sqrt(v), eps_hat), step_size))


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019, https://arxiv.org/abs/1711.05101), as
    ``torch.optim.AdamW``: Adam without the L2 term, plus the decoupled decay
    ``p <- p * (1 - lr * weight_decay)`` applied before the Adam step. Default
    ``weight_decay=0.01`` (torch's).
    """

    _decoupled = True

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        amsgrad: bool = False,
        weight_decay: float = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, **kwargs)
