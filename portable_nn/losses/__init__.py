"""Loss functions with hand-written gradients (Keras argument order: ``loss(y_true, y_pred)``).

``pnn.losses.get`` accepts a name (``"mse"``, ``"mae"``, ``"huber"``, ``"bce"``,
``"categorical_crossentropy"``, ``"kl_divergence"``, ``"hinge"``, ...: the short names below and
each class's Keras name), a class name, a ``Loss`` instance or class, or a
``{"class_name": ..., "config": ...}`` dict as written by :func:`serialize` (checkpoints).

Every loss takes ``sample_weight`` and the Keras reductions (see :mod:`.base`); losses with one
term per element also give the terms through ``loss.elementwise(y_true, y_pred)``.
"""

from __future__ import annotations

from typing import Any

from .base import LOSS_REGISTRY, REDUCTIONS, Loss
from .crossentropy import (
    BinaryCrossentropy,
    BinaryFocalCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
)
from .hinge import CategoricalHinge, Hinge, SquaredHinge
from .regression import Huber, LogCosh, MeanAbsoluteError, MeanSquaredError, Poisson
from .similarity import CosineSimilarity, KLDivergence

_SHORT_NAMES: dict[str, type[Loss]] = {
    "mse": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "huber": Huber,
    "bce": BinaryCrossentropy,
    "cce": CategoricalCrossentropy,
    "scce": SparseCategoricalCrossentropy,
    "kld": KLDivergence,
    "kullback_leibler_divergence": KLDivergence,
    "logcosh": LogCosh,
}
_KERAS_NAMED = (
    *_SHORT_NAMES.values(),
    BinaryFocalCrossentropy,
    CategoricalHinge,
    CosineSimilarity,
    Hinge,
    LogCosh,
    Poisson,
    SquaredHinge,
)
# plus the Keras names: mean_squared_error, huber_loss, binary_crossentropy, kl_divergence, ...
_ALIASES = {**_SHORT_NAMES, **{cls.default_name: cls for cls in _KERAS_NAMED}}


def _class_for(name: str) -> type[Loss]:
    found = _ALIASES.get(name.lower()) or LOSS_REGISTRY.get(name)
    if found is None or found is Loss or found.__name__.startswith("_"):
        valid = sorted(_ALIASES) + sorted(k for k in LOSS_REGISTRY if not k.startswith("_"))
        raise ValueError(f"unknown loss {name!r}; valid names are {', '.join(valid)}")
    return found


def get(identifier: Any) -> Loss:
    """A ``Loss`` from a name, class name, instance, class or ``{"class_name", "config"}`` dict.

    Names build the loss with default arguments (``from_logits=False``, ``reduction="mean"``).
    Raises ``ValueError`` for an unknown name and ``TypeError`` for anything else.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        return _class_for(identifier)()
    if isinstance(identifier, type) and issubclass(identifier, Loss) and identifier is not Loss:
        return identifier()
    if isinstance(identifier, dict):
        if set(identifier) - {"class_name", "config"} or "class_name" not in identifier:
            raise ValueError(
                "a loss config must be {'class_name': ..., 'config': {...}}. "
                f"Received keys: {sorted(identifier)}"
            )
        config = identifier.get("config") or {}
        if not isinstance(config, dict):
            raise TypeError(f"loss 'config' must be a dict. Received: {config!r}")
        return _class_for(str(identifier["class_name"])).from_config(dict(config))
    raise TypeError(
        "loss must be a name, a Loss instance or class, or a {'class_name', 'config'} dict. "
        f"Received: {identifier!r} of type {type(identifier).__name__}"
    )


def serialize(loss: Loss) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` (JSON-friendly); ``get`` rebuilds an equal loss."""
    if not isinstance(loss, Loss):
        raise TypeError(f"expected a Loss instance. Received: {type(loss).__name__}")
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


__all__ = [
    "LOSS_REGISTRY",
    "REDUCTIONS",
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalHinge",
    "CosineSimilarity",
    "Hinge",
    "Huber",
    "KLDivergence",
    "LogCosh",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Poisson",
    "SparseCategoricalCrossentropy",
    "SquaredHinge",
    "get",
    "serialize",
]
