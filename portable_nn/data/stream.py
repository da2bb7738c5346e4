"""Batches from any iterable or generator of ``(x, y)`` tuples (``x`` alone for ``predict``).

Keras's rules: with ``steps_per_epoch=N`` each epoch takes the next N batches of ONE iterator
(a generator continues where the last epoch stopped); without it each epoch runs until the
source is exhausted, calling ``iter(source)`` afresh when the source can restart (a list of
batches, a DataLoader, any re-iterable object). A source that runs dry before the epoch is done
sets :attr:`BatchStream.exhausted`, and ``fit`` stops with a warning, as Keras does.

Each batch is checked (shapes and dtypes; NaN/inf and label range on host batches, where that
costs no device sync) and moved to the model's device like array data: one batch ahead and
asynchronously on an accelerator.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from portable_nn.backend import Backend, is_array, to_numpy
from portable_nn.validation import run_checks

from .arrays import _is_host, _put, one_ahead
from .checks import Weighted, as_list, check_shapes, first, value_checks


def is_stream(x: Any) -> bool:
    """True for a generator/iterator or a non-array iterable that is not a list of values."""
    if is_array(x) or isinstance(x, (str, bytes, dict, list, tuple)):
        return False
    return hasattr(x, "__next__") or hasattr(x, "__iter__")


class BatchStream:
    """Batches of a source for ``backend``; ``steps`` batches per epoch (None: until the end).

    ``inputs``/``targets``: applied to each ``x``/``y`` batch as it comes (a model's list or
    dict of several inputs/outputs to a list of arrays; (N, 1) labels to (N,)); ``classes``: the
    model's outputs, for the label-range check.
    """

    resident = False

    def __init__(self, source: Iterable[Any], steps: int | None, backend: Backend) -> None:
        self.source, self.steps_per_epoch, self.backend = source, steps, backend
        self.one_shot = iter(source) is source  # a generator cannot restart
        self._iterator: Iterator[Any] | None = None
        self._replay: list[Any] = []  # batches read ahead (the dry run's), served first
        self.exhausted = False
        self.inputs: Callable[[Any], Any] = _host_numpy
        self.targets: Callable[[Any], Any] = _host_numpy
        self.weights: Callable[[Any], Any] = _host_numpy  # a batch's sample weights
        self.classes: Any = 0
        self.ignore: Any = None  # a sparse loss's ignore_class (per output)
        self.rules: Any = None  # the model's InputRules (dtype kind, value checks per input)
        self.what = ""

    def steps(self, batch_size: int | None = None) -> int | None:
        """Batches per epoch: ``steps_per_epoch``, else ``len(source)`` when known."""
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        return len(self.source) if hasattr(self.source, "__len__") else None  # type: ignore[arg-type]

    @property
    def n(self) -> None:
        """Samples are not known in advance."""
        return None

    def samples(self, batch_size: int) -> None:
        """Samples per epoch: not known in advance."""
        return None

    def value_checks(
        self, classes: Any, what: str = "", rules: Any = None, ignore: Any = None
    ) -> list[Any]:
        """Nothing to check up front: each host batch is checked as it arrives (``classes``,
        ``rules`` and ``ignore`` are kept for its checks)."""
        self.classes, self.what, self.ignore = classes, what or self.what, ignore
        self.rules = rules or self.rules
        return []

    def order(self, generator: Any, shuffle: bool) -> None:
        """Batches come in the source's order (shuffling is the source's business)."""
        return None

    def split(self, fraction: float) -> Any:
        raise ValueError(
            f"validation_split={fraction} needs arrays; with a batch generator pass "
            "validation_data (arrays or another generator) instead, as Keras requires"
        )

    def peek(self) -> Any:
        """The first batch's ``x`` as it comes (read once; the next epoch serves it again)."""
        if not self._replay:
            raw = next(self._epoch_iterator(), None)
            if raw is None:
                raise ValueError(f"{self.what or 'the data'}: the batch source yielded no batch")
            self._replay = [raw]
        return _split(self._replay[0], self.what)[0]

    def first(self, batch_size: int | None = None) -> tuple[Any, Any, int]:
        """The first batch, placed (the dry run); the next epoch serves it again first."""
        self.peek()
        return self._place(self._replay[0])

    def batches(self, batch_size: int | None = None, order: Any = None) -> Iterator[Any]:
        """One epoch of ``(x_batch, y_batch or None, batch_length)`` on the model's device."""
        placed = (self._place(raw) for raw in self._epoch())
        return placed if self.backend.is_cpu else one_ahead(placed)

    def _epoch_iterator(self) -> Iterator[Any]:
        """The iterator that carries on across epochs (``steps_per_epoch`` given, or a source
        that cannot restart), else a fresh ``iter(source)``."""
        if self._iterator is None or (self.steps_per_epoch is None and not self.one_shot):
            self._iterator = iter(self.source)
        return self._iterator

    def _epoch(self) -> Iterator[Any]:
        if self._replay:  # continue the dry run's iterator, its batch first
            items: Iterator[Any] = itertools.chain(self._replay, self._iterator or ())
            self._replay = []
        else:
            items = self._epoch_iterator()
        count = 0
        for raw in items:
            yield raw
            count += 1
            if count == self.steps_per_epoch:
                return
        self.exhausted = count == 0 or self.steps_per_epoch is not None  # ran dry early

    def _place(self, raw: Any) -> tuple[Any, Any, int]:
        xb, yb, wb = _split(raw, self.what)
        xb, yb = self.inputs(xb), None if yb is None else self.targets(yb)
        if wb is not None and yb is not None:
            yb = Weighted(yb, self.weights(wb))
        check_shapes(xb, yb, self.what, self.rules)
        arrays = as_list(xb) + ([] if yb is None else as_list(yb))
        if all(_is_host(a) for a in arrays):  # free on the host: no device sync
            checks = value_checks(
                xb, yb, self.classes, True, self.what, self.rules, ignore=self.ignore
            )
            run_checks(checks)
        xb, yb = _put(xb, yb, self.backend, asynchronous=not self.backend.is_cpu)
        return xb, yb, int(first(xb).shape[0])


def _host_numpy(data: Any) -> Any:
    """Host data (lists, NumPy) as NumPy; arrays of a library as they are."""
    return to_numpy(data) if _is_host(data) else data


def _split(item: Any, what: str) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` from a batch item: ``(x, y, w)``, ``(x, y)``, ``(x,)`` or
    ``x`` (missing parts None)."""
    if isinstance(item, (tuple, list)):
        if 1 <= len(item) <= 3:
            return (*item, *[None] * (3 - len(item)))
        raise ValueError(
            f"{what or 'a batch'}: expected (x, y, sample_weight), (x, y) or (x,) per batch; "
            f"received a {type(item).__name__} of {len(item)} items"
        )
    return item, None, None


__all__ = ["BatchStream", "is_stream"]
