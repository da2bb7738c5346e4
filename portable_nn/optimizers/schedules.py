"""Learning-rate schedules: ``schedule(step) -> float`` where ``step`` counts updates done.

Every schedule returns a Python float (no arrays, no device sync) and round-trips through
``get_config()`` / ``from_config(config)`` (plain hyper-parameters, as in Keras) or
``serialize`` / ``deserialize`` (``{"class_name": ..., "config": ...}``). Schedules are
dataclasses of checked hyper-parameters (``hyper.py``), equal when of one class with equal
hyper-parameters.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

from portable_nn.validation import (
    flag,
    non_negative,
    non_negative_int,
    positive,
    positive_int,
    real_number,
)

from .hyper import Hyper, hyper, optional

SCHEDULES: dict[str, type[LearningRateSchedule]] = {}


def _unit(name: str, value: Any) -> float:
    """A real number in ``[0, 1]``."""
    return real_number(name, value, 0.0, 1.0)


@dataclass
class LearningRateSchedule(Hyper):
    """Base class: a callable from the number of updates already done to a learning rate."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        SCHEDULES[cls.__name__] = cls

    def __call__(self, step: int) -> float:
        if step < 0:
            raise ValueError(f"step must be >= 0. Received: step={step!r}")
        return float(self._value(step))

    def _value(self, step: int) -> float:
        raise NotImplementedError


@dataclass
class ExponentialDecay(LearningRateSchedule):
    """``lr(step) = initial_learning_rate * decay_rate ** (step / decay_steps)`` (Keras).

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``. ``decay_steps=1``
    gives ``torch.optim.lr_scheduler.ExponentialLR(gamma=decay_rate)`` stepped once per update.
    """

    initial_learning_rate: float = hyper(positive)
    decay_steps: int = hyper(positive_int)
    decay_rate: float = hyper(positive)
    staircase: bool = hyper(flag, False)

    def _value(self, step: int) -> float:
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self.decay_rate**exponent


@dataclass
class StepDecay(LearningRateSchedule):
    """``lr(step) = initial_learning_rate * gamma ** (step // step_size)`` (torch ``StepLR``)."""

    initial_learning_rate: float = hyper(positive)
    step_size: int = hyper(positive_int)
    gamma: float = hyper(positive, 0.1)

    def _value(self, step: int) -> float:
        return self.initial_learning_rate * self.gamma ** (int(step) // self.step_size)


@dataclass
class CosineDecay(LearningRateSchedule):
    """Cosine decay with optional linear warmup, as Keras 3 ``CosineDecay``.

    Without ``warmup_target`` (Keras: warmup is skipped, ``warmup_steps`` ignored)::

        t = min(step, decay_steps) / decay_steps
        lr = initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * t)) + alpha)

    With ``warmup_target``: for ``step < warmup_steps`` the rate rises linearly from
    ``initial_learning_rate`` to ``warmup_target``,
    ``lr = initial + (warmup_target - initial) * step / warmup_steps``; afterwards the cosine
    above runs from ``warmup_target`` over ``step - warmup_steps`` (capped at ``decay_steps``).
    Loshchilov & Hutter 2017, SGDR, https://arxiv.org/abs/1608.03983.
    """

    initial_learning_rate: float = hyper(non_negative)
    decay_steps: int = hyper(positive_int)
    alpha: float = hyper(_unit, 0.0)
    warmup_steps: int = hyper(non_negative_int, 0)
    warmup_target: float | None = hyper(optional(positive), None)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.warmup_target is None and self.initial_learning_rate == 0.0:
            raise ValueError(
                "initial_learning_rate must be > 0 without warmup_target. "
                f"Received: initial_learning_rate={self.initial_learning_rate!r}"
            )

    def _decay(self, step: float, peak: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * (step / self.decay_steps)))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)

    def _value(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return rise * (step / self.warmup_steps) + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)


@dataclass
class PolynomialDecay(LearningRateSchedule):
    """Polynomial decay from ``initial_learning_rate`` to ``end_learning_rate`` (Keras)::

        s = min(step, decay_steps)                     # cycle=False
        D = decay_steps * max(1, ceil(step / decay_steps))   # cycle=True (s = step)
        lr = (initial - end) * (1 - s / D) ** power + end

    ``power=1`` is linear decay; with ``cycle`` the decay restarts, from a longer period.
    """

    initial_learning_rate: float = hyper(positive)
    decay_steps: int = hyper(positive_int)
    end_learning_rate: float = hyper(non_negative, 0.0001)
    power: float = hyper(positive, 1.0)
    cycle: bool = hyper(flag, False)

    def _value(self, step: int) -> float:
        period = self.decay_steps
        if self.cycle:
            period *= max(1, math.ceil(step / self.decay_steps))
        else:
            step = min(step, period)
        rise = self.initial_learning_rate - self.end_learning_rate
        return rise * (1.0 - step / period) ** self.power + self.end_learning_rate


@dataclass
class InverseTimeDecay(LearningRateSchedule):
    """``lr = initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (Keras); with
    ``staircase`` the ratio ``step / decay_steps`` is floored."""

    initial_learning_rate: float = hyper(positive)
    decay_steps: int = hyper(positive_int)
    decay_rate: float = hyper(non_negative)
    staircase: bool = hyper(flag, False)

    def _value(self, step: int) -> float:
        ratio = step / self.decay_steps
        if self.staircase:
            ratio = math.floor(ratio)
        return self.initial_learning_rate / (1.0 + self.decay_rate * ratio)


@dataclass
class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts, SGDR (Loshchilov & Hutter 2017,
    https://arxiv.org/abs/1608.03983), as Keras ``CosineDecayRestarts``. Period ``i``
    (``i = 0, 1, ...``) lasts ``first_decay_steps * t_mul**i`` steps and peaks at
    ``initial_learning_rate * m_mul**i``; with ``x = step / first_decay_steps``::

        i = floor(log(1 - x * (1 - t_mul)) / log(t_mul))   (t_mul > 1)   or   floor(x)
        f = (x - (1 - t_mul**i) / (1 - t_mul)) / t_mul**i  (t_mul > 1)   or   x - i
        lr = initial * ((1 - alpha) * m_mul**i * 0.5 * (1 + cos(pi * f)) + alpha)

    ``i`` is corrected where the logarithm rounds across a restart (Keras's float formula
    then lands one period late for a step, e.g. step 484 with ``first_decay_steps=4,
    t_mul=3``). ``t_mul`` must be >= 1 (below 1 the periods sum to a finite time).
    """

    initial_learning_rate: float = hyper(positive)
    first_decay_steps: int = hyper(positive_int)
    t_mul: float = hyper(lambda name, value: real_number(name, value, 1.0), 2.0)
    m_mul: float = hyper(non_negative, 1.0)
    alpha: float = hyper(_unit, 0.0)

    def _value(self, step: int) -> float:
        x, t_mul = step / self.first_decay_steps, self.t_mul
        if t_mul == 1.0:
            i = math.floor(x)
            fraction = x - i
        else:
            start = lambda i: (1.0 - t_mul**i) / (1.0 - t_mul)  # noqa: E731 - x where i begins
            i = math.floor(math.log(1.0 - x * (1.0 - t_mul)) / math.log(t_mul))
            i += (start(i + 1) <= x) - (start(i) > x)  # the logarithm's rounding, undone
            fraction = (x - start(i)) / t_mul**i
        cosine = 0.5 * self.m_mul**i * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)


def _each(check: Any) -> Any:
    """``check`` on every entry of a list, each named ``name[i]``."""
    return lambda name, values: [check(f"{name}[{i}]", v) for i, v in enumerate(values)]


@dataclass
class PiecewiseConstant(LearningRateSchedule):
    """``values[i]`` for ``boundaries[i-1] < step <= boundaries[i]`` (Keras semantics).

    ``values`` has one more entry than ``boundaries``: ``values[0]`` while
    ``step <= boundaries[0]``, ``values[-1]`` once ``step > boundaries[-1]``.
    """

    boundaries: list[int] = hyper(_each(non_negative_int))
    values: list[float] = hyper(_each(positive))

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                "values must have one more entry than boundaries. Received: "
                f"{len(self.boundaries)} boundaries and {len(self.values)} values"
            )
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(
                f"boundaries must be increasing. Received: boundaries={self.boundaries!r}"
            )

    def _value(self, step: int) -> float:
        return self.values[bisect.bisect_left(self.boundaries, step)]


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` for a schedule."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict[str, Any]) -> LearningRateSchedule:
    """Rebuild a schedule written by :func:`serialize`."""
    if not isinstance(config, dict) or set(config) != {"class_name", "config"}:
        raise ValueError(
            "a schedule config must be a dict with keys 'class_name' and 'config'. "
            f"Received: {config!r}"
        )
    try:
        cls = SCHEDULES[config["class_name"]]
    except KeyError:
        raise ValueError(
            f"unknown schedule {config['class_name']!r}; valid names are {sorted(SCHEDULES)}"
        ) from None
    return cls.from_config(config["config"])


__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstant",
    "PolynomialDecay",
    "StepDecay",
    "deserialize",
    "serialize",
]
