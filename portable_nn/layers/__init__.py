"""Layers: each maps ``forward(x, training) -> (y, cache)`` and ``backward(dy, cache) -> (dx,
grads)`` (see :mod:`portable_nn.layers.base` for the contract)."""

from __future__ import annotations

from typing import Any

from portable_nn import functional as _functional

# Each module's __all__ is the single list of its public names; this package re-exports them.
from . import (
    activation,
    attention,
    convolution,
    dense,
    dropout,
    embedding,
    image,
    merge,
    normalization,
    pooling,
    recurrent,
    reshape,
)
from .activation import *  # noqa: F403
from .activation import Activation
from .attention import *  # noqa: F403
from .base import LAYER_REGISTRY, Layer, layer_from_config, registered_layers
from .convolution import *  # noqa: F403
from .dense import *  # noqa: F403
from .dropout import *  # noqa: F403
from .embedding import *  # noqa: F403
from .image import *  # noqa: F403
from .merge import *  # noqa: F403
from .normalization import *  # noqa: F403
from .pooling import *  # noqa: F403
from .recurrent import *  # noqa: F403
from .reshape import *  # noqa: F403


def get(identifier: str | dict[str, Any] | Layer) -> Layer:
    """A layer from an instance (returned as is), a ``{"class_name", "config"}`` dict, a class
    name taking no required argument (``"Flatten"``, case-insensitive) or an activation name
    (``"relu"`` -> ``Activation("relu")``)."""
    if isinstance(identifier, Layer):
        return identifier
    if isinstance(identifier, dict):
        if set(identifier) != {"class_name", "config"}:
            raise ValueError(
                "a layer config dict needs exactly the keys 'class_name' and 'config'. "
                f"Received keys: {sorted(identifier)}"
            )
        return layer_from_config(identifier["class_name"], dict(identifier["config"]))
    if not isinstance(identifier, str):
        raise TypeError(
            f"expected a Layer, a config dict or a name. Received: {identifier!r} of type "
            f"{type(identifier).__name__}"
        )
    by_lower = {name.lower(): cls for name, cls in registered_layers().items()}
    cls = by_lower.get(identifier.lower())
    if cls is not None:
        try:
            return cls()
        except TypeError as exc:
            raise TypeError(
                f"layer {identifier!r} needs arguments ({exc}); pass an instance or a config dict"
            ) from None
    if identifier.lower() in _functional.ACTIVATIONS:
        return Activation(identifier)
    raise ValueError(
        f"unknown layer {identifier!r}; valid names are {', '.join(sorted(LAYER_REGISTRY))} "
        f"or an activation ({', '.join(_functional.ACTIVATIONS)})"
    )


_MODULES = (
    activation,
    attention,
    convolution,
    dense,
    dropout,
    embedding,
    image,
    merge,
    normalization,
    pooling,
    recurrent,
    reshape,
)
__all__ = ["Layer", "get", "layer_from_config"]  # and each module's layer classes (not caches)
__all__ += sorted(name for m in _MODULES for name in m.__all__ if not name.endswith("Cache"))
