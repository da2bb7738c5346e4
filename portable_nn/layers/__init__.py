"""Layers: each maps ``forward(x, training) -> (y, cache)`` and ``backward(dy, cache) -> (dx,
grads)`` (see :mod:`portable_nn.layers.base` for the contract)."""

from __future__ import annotations

from typing import Any

from portable_nn import functional as _functional

from .activation import (
    ELU,
    GELU,
    SELU,
    Activation,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Swish,
    Tanh,
)
from .base import LAYER_REGISTRY, Layer, layer_from_config, registered_layers
from .dense import Dense
from .dropout import Dropout
from .normalization import BatchNormalization, LayerNormalization
from .reshape import Flatten, Reshape


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


__all__ = [
    "ELU",
    "GELU",
    "SELU",
    "Activation",
    "BatchNormalization",
    "Dense",
    "Dropout",
    "Flatten",
    "LayerNormalization",
    "LeakyReLU",
    "LogSoftmax",
    "ReLU",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Swish",
    "Tanh",
    "Layer",
    "get",
    "layer_from_config",
]
