"""Stochastic gradient descent with (Nesterov) momentum, as ``torch.optim.SGD``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portable_nn.validation import flag, fraction, non_negative

from .base import Optimizer, Pure
from .hyper import hyper


@dataclass(eq=False, repr=False)
class SGD(Optimizer):
    """SGD, same semantics and defaults as ``torch.optim.SGD`` with ``dampening=0``.

    Per parameter ``p`` with gradient ``g`` (``b``, the momentum buffer, starts at 0 so that
    ``b = g`` after the first step, as torch)::

        g <- g + weight_decay * p                     # L2 penalty added to the gradient
        b <- momentum * b + g
        g <- g + momentum * b   if nesterov   else   g <- b
        p <- p - lr * g

    Nesterov momentum in the form of Sutskever et al. 2013, "On the importance of initialization
    and momentum in deep learning", http://proceedings.mlr.press/v28/sutskever13.html.
    Slots: ``momentum_buffer`` (only when ``momentum > 0``).
    """

    learning_rate: Any = 0.01
    momentum: float = hyper(fraction, 0.0)
    nesterov: bool = hyper(flag, False)
    weight_decay: float = hyper(non_negative, 0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nesterov and self.momentum == 0.0:
            raise ValueError(
                f"nesterov=True needs momentum > 0. Received: momentum={self.momentum!r}"
            )

    def _slots(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum else ()

    def _constants(self, step: int, lr: float) -> tuple:
        return (lr, self.momentum)

    def _update(self, xp: Any, w: type[Pure], p: Any, g: Any, s: dict, c: tuple) -> Any:
        lr, mu = c  # weight decay: applied before, in base.py
        if self.momentum:  # branches on hyper-parameters only: c may be traced (jax.jit)
            b = s["momentum_buffer"] = w.add(w.mul(s["momentum_buffer"], mu), g)
            g = g + mu * b if self.nesterov else b
        return w.sub(p, lr * g)
