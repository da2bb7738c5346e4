"""Training data: checks, placement, the validation split and batches.

``arrays.py`` (:class:`ArrayData`: arrays and memory maps, resident on the device or streamed
from the host batch by batch), ``stream.py`` (:class:`BatchStream`: any iterable or generator
of ``(x, y)`` batches, Keras's ``steps_per_epoch``), ``checks.py`` (shape/dtype checks and the
one-sync value checks). :func:`from_inputs` picks the right one.
"""

from __future__ import annotations

from typing import Any

from portable_nn.backend import Backend, backend_of, get_backend

from .arrays import DEVICE_FRACTION, DEVICE_LIMIT_BYTES, ArrayData, one_ahead
from .checks import (
    CHECK_CHUNK_BYTES,
    FEATURES,
    InputRule,
    Weighted,
    as_list,
    check_shapes,
    each,
    first,
    is_labels,
    unweighted,
    value_checks,
)
from .stream import BatchStream, is_stream


def backend_of_model(model: Any) -> Backend:
    """Where the model computes: its parameters' namespace, device and dtype, else the active
    backend (a model without parameters runs wherever the data goes)."""
    params = model.parameters() if model.built else {}
    return backend_of(next(iter(params.values()))) if params else get_backend()


__all__ = [
    "CHECK_CHUNK_BYTES",
    "DEVICE_FRACTION",
    "DEVICE_LIMIT_BYTES",
    "FEATURES",
    "ArrayData",
    "BatchStream",
    "InputRule",
    "Weighted",
    "as_list",
    "backend_of_model",
    "check_shapes",
    "each",
    "first",
    "is_labels",
    "is_stream",
    "one_ahead",
    "unweighted",
    "value_checks",
]
