"""Optimizers (pure ``init``/``update`` over dicts keyed by parameter name), schedules, clipping.

>>> opt = pnn.optimizers.get("adam")
>>> state = opt.init(params)                         # {"step": 0, name: {slot: array}}
>>> params, state = opt.update(params, grads, state) # new dicts; inputs untouched
>>> opt.step(model, grads)                           # stateful convenience, in place when possible
"""

from __future__ import annotations

from typing import Any

from . import schedules
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .base import OPTIMIZERS, NonFiniteGradientError, Optimizer
from .clipping import clip_by_global_norm, clip_by_value, global_norm
from .lion import Lion
from .nadam import Nadam
from .rmsprop import RMSprop
from .schedules import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstant,
    PolynomialDecay,
    StepDecay,
)
from .sgd import SGD

_ALIASES = {name.lower(): cls for name, cls in OPTIMIZERS.items()}


def get(identifier: str | Optimizer | dict[str, Any]) -> Optimizer:
    """An optimizer from a name (``"sgd"``, ``"adam"``, ``"adamw"``, ``"nadam"``, ``"adamax"``,
    ``"lion"``, ``"rmsprop"``, ``"adagrad"``; default hyper-parameters), an instance (returned
    as is) or a config dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return _named(identifier)()
    raise TypeError(
        "expected an optimizer name, instance or config dict. "
        f"Received: {type(identifier).__name__} {identifier!r}"
    )


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` (same as ``optimizer.get_config()``)."""
    return optimizer.get_config()


def deserialize(config: dict[str, Any]) -> Optimizer:
    """Rebuild an optimizer from ``{"class_name": ..., "config": ...}``."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"an optimizer config needs 'class_name' and 'config'. Received: {config!r}"
        )
    return _named(config["class_name"]).from_config(dict(config.get("config", {})))


def _named(name: Any) -> type[Optimizer]:
    """The optimizer class called ``name`` (any case)."""
    try:
        return _ALIASES[str(name).lower()]
    except KeyError:
        raise ValueError(
            f"unknown optimizer {name!r}; valid names are {sorted(_ALIASES)}"
        ) from None


__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "Lion",
    "Nadam",
    "NonFiniteGradientError",
    "Optimizer",
    "PiecewiseConstant",
    "PolynomialDecay",
    "RMSprop",
    "StepDecay",
    "clip_by_global_norm",
    "clip_by_value",
    "deserialize",
    "get",
    "global_norm",
    "schedules",
    "serialize",
]
