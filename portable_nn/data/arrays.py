"""Array data (``x``, optional ``y``, samples on axis 0): placement, split, shuffled batches.

Placement (:meth:`ArrayData.from_inputs`):

* arrays already in the model's namespace and on its device are used as they are (*resident*);
* arrays of another library or device move whole, through DLPack where possible;
* host data (NumPy arrays, memory maps, lists) on a **CPU backend is never copied whole**: it
  stays where it is and each batch is sliced there and wrapped (``torch.asarray`` of a NumPy
  slice shares its memory; a memory map is read batch by batch);
* host data for an **accelerator** goes whole when it takes at most :data:`DEVICE_FRACTION` of
  the device's free memory (``DEVICE_LIMIT_BYTES`` when the library cannot say); otherwise
  each batch is copied when used, one batch ahead (:func:`one_ahead`), asynchronously from
  pinned memory where the library allows it (torch), so the copy of batch k+1 overlaps the
  step on batch k.

Shuffling: each epoch draws one permutation on the host, ``generator.host.permutation(n)``
(NumPy PCG64), copied to the device once for resident data; batches are then
``xp.take(x, idx[start:stop], axis=0)``. The same batch order on every backend for a seed.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from portable_nn.backend import Backend, asarray, is_array, to_numpy
from portable_nn.backend import namespace_of as _namespace_of
from portable_nn.random import Generator
from portable_nn.validation import Check

from .checks import as_list, each, first, value_checks

DEVICE_FRACTION = 0.25  # of an accelerator's free memory, for data kept there whole
DEVICE_LIMIT_BYTES = 1 << 30  # when the library cannot report free memory


def one_ahead(items: Iterable[Any]) -> Iterator[Any]:
    """Yield each item after the NEXT one has been made: a batch's host-to-device copy is
    started before the step on the previous batch runs."""
    iterator = iter(items)
    previous = next(iterator, None)
    for item in iterator:
        yield previous
        previous = item
    if previous is not None:
        yield previous


def _is_host(array: Any) -> bool:
    """NumPy arrays (memory maps included) and Python data: not yet any library's device."""
    return not is_array(array) or type(array).__module__.startswith("numpy")


class ArrayData:
    """Inputs ``x`` and optional targets ``y`` ready for batching on ``backend``.

    ``resident``: the arrays live on ``backend`` (batches are slices or ``take``s there);
    otherwise they are host NumPy arrays and each batch is moved when used (``prefetch``: one
    batch ahead, asynchronously where possible). ``x`` and ``y`` may be lists of arrays (a
    model's several inputs or outputs): batches are then lists too.
    """

    def __init__(
        self, x: Any, y: Any, backend: Backend, resident: bool, prefetch: bool = False
    ) -> None:
        self.x, self.y, self.backend = x, y, backend
        self.resident, self.prefetch = resident, prefetch
        self.n = int(first(x).shape[0])
        self.part: Any = None  # data-parallel: .rows(start, stop) -> this process's rows
        self.max_steps: int | None = None  # Keras's steps_per_epoch / steps: the first batches

    @classmethod
    def from_inputs(cls, x: Any, y: Any, backend: Backend) -> ArrayData:
        """Place ``x`` (and ``y`` unless None) for ``backend`` (see the module docstring)."""
        host = [a for part in (x, y) if part is not None for a in as_list(part) if _is_host(a)]
        if host and not backend.is_cpu:
            free = backend.free_memory()
            limit = DEVICE_LIMIT_BYTES if free is None else int(DEVICE_FRACTION * free)
            if sum(int(to_numpy(a).nbytes) for a in host) > limit:
                return cls(*_host(x, y), backend, resident=False, prefetch=True)
        elif host:  # a CPU backend: host data stays where it is, batches are wrapped
            return cls(*_host(x, y), backend, resident=False)
        return cls(*_put(x, y, backend), backend, resident=True)

    def value_checks(
        self,
        classes: Any,
        what: str = "",
        rules: Any = None,
        finite: bool = True,
        ignore: Any = None,
    ) -> list[Check]:
        """NaN/inf, label-range and input-rule checks of the whole data (host data checked in
        chunks); see :func:`~portable_nn.data.checks.value_checks`."""
        host = not self.resident
        return value_checks(self.x, self.y, classes, host, what, rules, finite, ignore)

    def split(self, fraction: float) -> tuple[ArrayData, ArrayData]:
        """The first ``1 - fraction`` of the samples and the LAST ``fraction`` (Keras's rule:
        ``cut = floor(n * (1 - fraction))``, taken before any shuffling)."""
        cut = int(math.floor(self.n * (1.0 - fraction)))
        if cut <= 0 or cut >= self.n:
            raise ValueError(
                f"validation_split={fraction} of {self.n} samples leaves "
                f"{cut} for training and {self.n - cut} for validation; both need at least one"
            )
        return self._rows(slice(None, cut)), self._rows(slice(cut, None))

    def _rows(self, rows: slice) -> ArrayData:
        y = None if self.y is None else each(lambda a: a[rows, ...], self.y)
        x = each(lambda a: a[rows, ...], self.x)
        data = ArrayData(x, y, self.backend, self.resident, self.prefetch)
        data.part, data.max_steps = self.part, self.max_steps
        return data

    def order(self, generator: Generator, shuffle: bool) -> Any:
        """This epoch's sample order: ``None`` (as stored) or a permutation, placed like the
        data (one host draw and at most one host-to-device copy per epoch)."""
        if not shuffle:
            return None
        permutation = generator.host.permutation(self.n)
        return asarray(permutation, backend=self.backend) if self.resident else permutation

    def steps(self, batch_size: int) -> int:
        """Batches per pass: all of them, or the first ``max_steps`` (a warning when there are
        fewer: the pass ends with the data, as Keras's "ran out of data")."""
        available = math.ceil(self.n / batch_size)
        if self.max_steps is None:
            return available
        if self.max_steps > available:
            warnings.warn(
                f"{self.max_steps} steps asked, but {self.n} samples in batches of {batch_size} "
                f"give {available}: each pass runs {available}",
                UserWarning,
                stacklevel=3,
            )
        return min(self.max_steps, available)

    def samples(self, batch_size: int) -> int:
        """Samples per pass (all, or those of the first ``max_steps`` batches)."""
        return self.n if self.max_steps is None else min(self.n, self.max_steps * batch_size)

    def first(self, batch_size: int) -> tuple[Any, Any, int]:
        """The first batch, placed (what ``fit``'s dry run uses)."""
        return next(self.batches(batch_size))

    def batches(self, batch_size: int, order: Any = None) -> Iterator[tuple[Any, Any, int]]:
        """``(x_batch, y_batch or None, batch_length)`` on the model's device."""
        sliced = self._slices(batch_size, order)
        if self.resident:
            yield from sliced
            return
        moved = (
            (*_put(xb, yb, self.backend, asynchronous=self.prefetch), count)
            for xb, yb, count in sliced
        )
        yield from one_ahead(moved) if self.prefetch else moved

    def _slices(self, batch_size: int, order: Any) -> Iterator[tuple[Any, Any, int]]:
        """Batches where the data is stored (device or host)."""
        x, y, n = self.x, self.y, self.n
        take = _namespace_of(first(x)).take if self.resident and order is not None else None
        stop_at = n if self.max_steps is None else min(n, self.max_steps * batch_size)
        for begin in range(0, stop_at, batch_size):
            start, stop = begin, min(begin + batch_size, n)
            if self.part is not None:  # this process's share of the global batch
                start, stop = self.part.rows(start, stop)
            # a slice; or device rows (take); or a host index (a memory map reads just those)
            rows = slice(start, stop) if order is None else order[start:stop]
            pick = functools.partial(_pick, rows=rows, take=take)
            yield each(pick, x), None if y is None else each(pick, y), stop - start


def _pick(a: Any, rows: Any, take: Any) -> Any:
    return a[rows, ...] if take is None else take(a, rows, axis=0)


def _host(x: Any, y: Any) -> tuple[Any, Any]:
    return each(to_numpy, x), None if y is None else each(to_numpy, y)


def _put(x: Any, y: Any, backend: Backend, asynchronous: bool = False) -> tuple[Any, Any]:
    """``pnn.asarray`` both (floats get the model's dtype; integer labels keep theirs)."""
    move = lambda a: asarray(a, backend=backend, asynchronous=asynchronous)  # noqa: E731
    return each(move, x), None if y is None else each(move, y)


__all__ = ["DEVICE_FRACTION", "DEVICE_LIMIT_BYTES", "ArrayData", "one_ahead"]
