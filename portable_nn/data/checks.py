"""Checks on training data, run once per ``fit``/``evaluate``/``predict`` before anything changes.

Shapes and dtypes are free (:func:`check_shapes`). Value checks (NaN/inf, class labels outside
``[0, classes)``, what the layers reading a model input ask for: :class:`InputRule`) are lazy
:data:`~portable_nn.validation.Check` flags reduced where the data lives and read back together
with ONE sync (:func:`portable_nn.validation.run_checks`). Host features (NumPy, memory maps)
are checked in chunks of :data:`CHECK_CHUNK_BYTES`, so checking a file-backed array never
allocates a temporary of its size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from portable_nn.backend import has_dtype, namespace_of
from portable_nn.validation import Check, all_finite, all_non_negative, labels_in_range

CHECK_CHUNK_BYTES = 64 << 20
_KIND_TEXT = {"real floating": "real floating features", "integral": "integers", "bool": "booleans"}


class InputRule(NamedTuple):
    """What one model input must hold, from the layers reading it (a model's ``input_rules()``):
    a dtype kind (``"real floating"``; ``"integral"`` for Embedding's indices; ``"bool"`` for a
    mask) and lazy value checks ``check(label, x) -> list[Check]`` of the whole data."""

    kind: str = "real floating"
    checks: tuple[Callable[[str, Any], list[Check]], ...] = ()


FEATURES = InputRule()


class Weighted(NamedTuple):
    """Targets ``y`` (an array or a list, one per output) with per-sample weights ``w`` of
    shape ``(N,)``: what ``fit(sample_weight=...)`` batches in place of ``y`` (a pytree for a
    compiled step). The loss and the metrics get ``w`` as their ``sample_weight``."""

    y: Any
    w: Any


def each(fn: Callable[[Any], Any], data: Any) -> Any:
    """``fn`` of one array, or of each array of a list (a model's several inputs or outputs)
    or of a :class:`Weighted` (targets and weights)."""
    if isinstance(data, Weighted):
        return Weighted(each(fn, data.y), fn(data.w))
    return [fn(a) for a in data] if isinstance(data, list) else fn(data)


def as_list(data: Any) -> list[Any]:
    """A list of arrays as it is; one array as a list of one; a :class:`Weighted`'s arrays."""
    if isinstance(data, Weighted):
        return [*as_list(data.y), data.w]
    return data if isinstance(data, list) else [data]


def unweighted(y: Any) -> tuple[Any, Any]:
    """``(targets, sample weights or None)``."""
    return (y.y, y.w) if isinstance(y, Weighted) else (y, None)


def first(data: Any) -> Any:
    """The array, or the first of a list (every one holds the same samples)."""
    return data[0] if isinstance(data, list) else data


def named(label: str, data: Any) -> list[tuple[str, Any]]:
    """``[("x", x)]``, or ``[("x[0]", x0), ("x[1]", x1), ...]`` for a list."""
    if isinstance(data, list):
        return [(f"{label}[{i}]", a) for i, a in enumerate(data)]
    return [(label, data)]


def check_shapes(x: Any, y: Any, what: str = "", rules: list[InputRule] | None = None) -> None:
    """x: (samples, features...) of the kind its rule asks for (real floating by default); y
    (if given): the same number of samples. Either may be a list of arrays (several inputs or
    outputs, ``rules`` one per input), all holding the same samples."""
    prefix = f"{what} " if what else ""
    n = None
    for (name, a), rule in zip(named("x", x), rules or _features(x)):
        if not hasattr(a, "shape") or len(a.shape) < 2:
            shape = tuple(getattr(a, "shape", ()))
            raise ValueError(
                f"{prefix}{name} must have shape (samples, features, ...). "
                f"Received: {name}.shape={shape}"
            )
        if int(a.shape[0]) == 0:
            raise ValueError(
                f"{prefix}{name} has no samples. Received: {name}.shape={tuple(a.shape)}"
            )
        if not has_dtype(a, rule.kind):
            hint = "cast it first, e.g. pnn.asarray(x, dtype='float32')"
            raise TypeError(
                f"{prefix}{name} must hold {_KIND_TEXT.get(rule.kind, rule.kind)}. Received: "
                f"dtype={a.dtype}{'; ' + hint if rule.kind == 'real floating' else ''}"
            )
        n = n or (name, a)
        _same_samples(prefix, n, (name, a))
    y, w = unweighted(y)
    for item in named("y", y) if y is not None else []:
        _same_samples(prefix, n, item)
    if w is not None:
        _same_samples(prefix, n, ("sample_weight", w))
        if tuple(w.shape) != (w.shape[0],) or not has_dtype(w, "real floating"):
            raise ValueError(
                f"{prefix}sample_weight must be a float array of shape (samples,). Received: "
                f"shape={tuple(w.shape)}, dtype={w.dtype}"
            )


def _features(x: Any) -> list[InputRule]:
    return [FEATURES] * len(as_list(x))


def _same_samples(prefix: str, reference: Any, item: tuple[str, Any]) -> None:
    (ref, a), (name, b) = reference, item
    if len(b.shape) == 0 or b.shape[0] != a.shape[0]:
        raise ValueError(
            f"{prefix}{ref} and {name} hold different numbers of samples: "
            f"{ref}.shape={tuple(a.shape)}, {name}.shape={tuple(b.shape)}"
        )


def is_labels(y: Any, classes: int) -> bool:
    """Integer class labels of shape (N,) or (N, 1) for a model with ``classes > 1`` outputs."""
    shape = tuple(y.shape)
    return classes > 1 and (len(shape) == 1 or shape[1:] == (1,)) and has_dtype(y, "integral")


def _chunks(a: Any, host: bool) -> Iterator[Any]:
    """``a`` itself on a device; row blocks of about ``CHECK_CHUNK_BYTES`` on the host."""
    n = int(a.shape[0])
    row_bytes = max(a.dtype.itemsize * (a.size // max(n, 1)), 1) if host else 0
    rows = max(CHECK_CHUNK_BYTES // row_bytes, 1) if host else n
    for start in range(0, n, rows):
        yield a if rows >= n else a[start : start + rows, ...]


def value_checks(
    x: Any,
    y: Any,
    classes: Any,
    host: bool,
    what: str = "",
    rules: list[InputRule] | None = None,
    finite: bool = True,
    ignore: Any = None,
) -> list[Check]:
    """Lazy checks: x finite (unless ``finite=False``: ``predict``) and its rule's checks; y
    finite (floats) or in ``[0, classes)`` (integer labels; a label equal to ``ignore``, a
    sparse loss's ``ignore_class``, passes). Lists of arrays are checked one by one
    (``classes`` and ``ignore``: then one per output, ``rules`` one per input)."""
    prefix = f"{what} " if what else ""
    found = [
        c
        for (name, a), rule in zip(named("x", x), rules or _features(x))
        for part in _chunks(a, host)
        for check in ((all_finite,) if finite else ()) + rule.checks
        for c in check(prefix + name, part)
    ]
    counts = classes if isinstance(classes, list) else [classes]
    ignored = ignore if isinstance(ignore, list) else [ignore] * len(counts)
    y, w = unweighted(y)
    if w is not None:
        found += all_finite(prefix + "sample_weight", w) + all_non_negative(
            prefix + "sample_weight", w
        )
    for (name, t), k, skip in zip(named("y", y) if y is not None else [], counts, ignored):
        if is_labels(t, k):  # targets are small next to features: checked whole
            if skip is not None:  # the ignored class counts as label 0 here
                xp = namespace_of(t)
                t = xp.where(t == skip, xp.zeros_like(t), t)
            found += labels_in_range(prefix + name, t, k)
        else:
            found += all_finite(prefix + name, t)
    return found


__all__ = [
    "CHECK_CHUNK_BYTES",
    "FEATURES",
    "InputRule",
    "Weighted",
    "as_list",
    "check_shapes",
    "each",
    "first",
    "is_labels",
    "unweighted",
    "value_checks",
]
