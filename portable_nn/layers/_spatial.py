"""Layouts of image and sequence inputs, shared by convolution, pooling and image layers.

Channels-last is the default (Keras): ``(batch, steps, channels)``, ``(batch, height, width,
channels)``; ``data_format="channels_first"`` is PyTorch's ``(batch, channels, ...)``.
"""

from __future__ import annotations

from typing import Any

from portable_nn.validation import choice, format_shape

LAYOUTS = {
    ("channels_last", 1): "(batch, steps, channels)",
    ("channels_first", 1): "(batch, channels, steps)",
    ("channels_last", 2): "(batch, height, width, channels)",
    ("channels_first", 2): "(batch, channels, height, width)",
}


def data_format_arg(value: Any) -> str:
    """``"channels_last"`` (Keras, the default) or ``"channels_first"`` (PyTorch)."""
    return choice("data_format", value, ("channels_last", "channels_first"))


def spatial_axes(owner: str, shape: tuple, rank: int, data_format: str) -> tuple[int, ...]:
    """The positions of the ``rank`` spatial axes of ``shape`` (batch first); ``ValueError``
    naming ``owner`` and the shape when the input's rank is not ``rank + 2``."""
    if len(shape) != rank + 2:
        raise ValueError(
            f"{owner}: expects inputs {LAYOUTS[data_format, rank]} of rank {rank + 2}; "
            f"received input shape {format_shape(shape)}"
        )
    first = 1 if data_format == "channels_last" else 2
    return tuple(range(first, first + rank))
