"""Training data: checks, host→device moves, the validation split, shuffled batches.

Checks (once per ``fit``/``evaluate``/``predict`` call, before anything changes): shapes and
dtypes are free (:func:`check_shapes`); value checks (NaN/inf, class labels outside
``[0, classes)``) are reduced on the data's device and read back with ONE sync
(:meth:`ArrayData.value_checks` with :func:`portable_nn.validation.run_checks`).

Placement. Arrays already in the model's namespace and on its device are used as they are (float
data cast to the model's dtype). Anything else (lists, NumPy, another library's arrays) is copied
with :func:`portable_nn.asarray`: **the whole dataset at once** when x and y together take at most
``DEVICE_LIMIT_BYTES`` (1 GiB) on the host, otherwise it stays on the host and each *batch* is
copied when it is used. Nothing is ever moved sample by sample.

Shuffling. Each epoch draws one permutation on the host, ``generator.host.permutation(n)``
(NumPy PCG64), and — for data on the device — copies that index array to the device once; each
batch is then ``xp.take(x, idx[start:stop], axis=0)``. A host permutation costs one small copy per
epoch and gives the *same batch order on every backend* for a seed, which an on-device argsort of
uniforms would not (ties and sort algorithms differ between libraries).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from portable_nn.backend import (
    Backend,
    asarray,
    backend_of,
    get_backend,
    has_dtype,
    namespace_of,
    to_numpy,
)
from portable_nn.random import Generator
from portable_nn.validation import Check, all_finite, labels_in_range

DEVICE_LIMIT_BYTES = 1 << 30


def backend_of_model(model: Any) -> Backend:
    """Where the model computes: its parameters' namespace, device and dtype, else the active
    backend (a model without parameters runs wherever the data goes)."""
    params = model.parameters() if model.built else {}
    return backend_of(next(iter(params.values()))) if params else get_backend()


def check_shapes(x: Any, y: Any, what: str = "") -> None:
    """x: floating, (samples, features...); y (if given): the same number of samples."""
    prefix = f"{what} " if what else ""
    if not hasattr(x, "shape") or len(x.shape) < 2:
        shape = tuple(getattr(x, "shape", ()))
        raise ValueError(
            f"{prefix}x must have shape (samples, features, ...). Received: x.shape={shape}"
        )
    if int(x.shape[0]) == 0:
        raise ValueError(f"{prefix}x has no samples. Received: x.shape={tuple(x.shape)}")
    if not has_dtype(x, "real floating"):
        raise TypeError(
            f"{prefix}x must hold real floating features. Received: dtype={x.dtype}; "
            "cast it first, e.g. pnn.asarray(x, dtype='float32')"
        )
    if y is not None and (len(y.shape) == 0 or y.shape[0] != x.shape[0]):
        raise ValueError(
            f"{prefix}x and y hold different numbers of samples: "
            f"x.shape={tuple(x.shape)}, y.shape={tuple(y.shape)}"
        )


def is_labels(y: Any, classes: int) -> bool:
    """Integer class labels of shape (N,) or (N, 1) for a model with ``classes > 1`` outputs."""
    shape = tuple(y.shape)
    return classes > 1 and (len(shape) == 1 or shape[1:] == (1,)) and has_dtype(y, "integral")


class ArrayData:
    """Inputs ``x`` and optional targets ``y`` (samples on axis 0) ready for batching.

    ``on_device`` tells whether the arrays already live on ``backend`` (then batches are slices
    or ``take``s there) or on the host as NumPy arrays (then each batch is copied over).
    """

    def __init__(self, x: Any, y: Any, backend: Backend, on_device: bool) -> None:
        self.x, self.y, self.backend, self.on_device = x, y, backend, on_device
        self.n = int(x.shape[0])

    @classmethod
    def from_inputs(cls, x: Any, y: Any, backend: Backend, limit: int | None = None) -> ArrayData:
        """Place ``x`` (and ``y`` unless None) for ``backend``; data taking more than ``limit``
        bytes (default ``DEVICE_LIMIT_BYTES``) stays on the host and moves batch by batch."""
        size, staged = 0, []
        for array in (x, y):
            if array is not None and not backend.holds(array):
                array = to_numpy(array)  # a view for CPU arrays
                size += array.nbytes
            staged.append(array)
        if size <= (DEVICE_LIMIT_BYTES if limit is None else limit):
            return cls(*_put(*staged, backend), backend, on_device=True)
        host_y = None if y is None else to_numpy(staged[1])
        return cls(to_numpy(staged[0]), host_y, backend, on_device=False)

    def value_checks(self, classes: int, what: str = "") -> list[Check]:
        """Lazy checks: x finite; y finite (floats) or in ``[0, classes)`` (integer labels)."""
        prefix = f"{what} " if what else ""
        found = all_finite(f"{prefix}x", self.x)
        if self.y is not None:
            if is_labels(self.y, classes):
                found += labels_in_range(f"{prefix}y", self.y, classes)
            else:
                found += all_finite(f"{prefix}y", self.y)
        return found

    def split(self, fraction: float) -> tuple[ArrayData, ArrayData]:
        """The first ``1 - fraction`` of the samples and the LAST ``fraction`` (Keras's rule:
        ``cut = floor(n * (1 - fraction))``, taken before any shuffling)."""
        cut = int(math.floor(self.n * (1.0 - fraction)))
        if cut <= 0 or cut >= self.n:
            raise ValueError(
                f"validation_split={fraction} of {self.n} samples leaves "
                f"{cut} for training and {self.n - cut} for validation; both need at least one"
            )
        head, tail = slice(None, cut), slice(cut, None)
        return self._rows(head), self._rows(tail)

    def _rows(self, rows: slice) -> ArrayData:
        y = None if self.y is None else self.y[rows, ...]
        return ArrayData(self.x[rows, ...], y, self.backend, self.on_device)

    def order(self, generator: Generator, shuffle: bool) -> Any:
        """This epoch's sample order: ``None`` (as stored) or a permutation, placed like the
        data (one host draw and at most one host→device copy per epoch)."""
        if not shuffle:
            return None
        permutation = generator.host.permutation(self.n)
        return asarray(permutation, backend=self.backend) if self.on_device else permutation

    def steps(self, batch_size: int) -> int:
        return math.ceil(self.n / batch_size)

    def batches(self, batch_size: int, order: Any = None) -> Iterator[tuple[Any, Any, int]]:
        """``(x_batch, y_batch or None, batch_length)`` on the model's device."""
        x, y, n = self.x, self.y, self.n
        take = namespace_of(x).take if self.on_device and order is not None else None
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            if order is None:
                xb, yb = x[start:stop, ...], None if y is None else y[start:stop, ...]
            elif take is not None:
                index = order[start:stop]
                xb = take(x, index, axis=0)
                yb = None if y is None else take(y, index, axis=0)
            else:  # host NumPy arrays, host index
                index = order[start:stop]
                xb, yb = x[index, ...], None if y is None else y[index, ...]
            if not self.on_device:
                xb, yb = _put(xb, yb, self.backend)
            yield xb, yb, stop - start


def _put(x: Any, y: Any, backend: Backend) -> tuple[Any, Any]:
    """``pnn.asarray`` both (floats get the model's dtype; integer labels keep theirs)."""
    return asarray(x, backend=backend), None if y is None else asarray(y, backend=backend)


__all__ = ["DEVICE_LIMIT_BYTES", "ArrayData", "backend_of_model", "check_shapes", "is_labels"]
