"""Loss functions with hand-written gradients (Keras argument order: ``loss(y_true, y_pred)``).

``pnn.losses.get`` accepts a name (``"mse"``, ``"mae"``, ``"huber"``, ``"bce"``,
``"categorical_crossentropy"``, ...), a class name, a ``Loss`` instance or class, or a
``{"class_name": ..., "config": ...}`` dict as written by :func:`serialize` (checkpoints).
"""

from __future__ import annotations

from typing import Any

from .base import LOSS_REGISTRY, REDUCTIONS, Loss
from .crossentropy import BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy
from .regression import Huber, MeanAbsoluteError, MeanSquaredError

_SHORT_NAMES: dict[str, type[Loss]] = {
    "mse": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "huber": Huber,
    "bce": BinaryCrossentropy,
    "cce": CategoricalCrossentropy,
    "scce": SparseCategoricalCrossentropy,
}
# plus the Keras names: mean_squared_error, huber_loss, binary_crossentropy, ...
_ALIASES = {**_SHORT_NAMES, **{cls.default_name: cls for cls in _SHORT_NAMES.values()}}


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
    "CategoricalCrossentropy",
    "Huber",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "get",
    "serialize",
]
