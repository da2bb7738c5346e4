"""Seeded randomness: one generator with a host stream and a device stream.

Design
------
* **Host stream** (NumPy PCG64, in :mod:`portable_nn.backend`): initialisers draw float32
  values on the host once and copy them to the device, so a seed gives bitwise the same
  weights on every backend. Shuffling also draws here, once per epoch.
* **Device stream** (this module): per-step randomness such as dropout masks is computed *on the
  array's device* by a counter-based hash, so a GPU never waits for the host. Element ``i`` of
  draw number ``c`` is ``mix(mix(i ^ k1) ^ k2)`` where ``(k1, k2)`` are derived from
  ``(seed, c)`` in Python and ``mix`` is Chris Wellons' *lowbias32* integer hash evaluated with
  int32 wrapping arithmetic (xor, logical shift, multiply), which every array-API library
  computes identically. The masks are therefore bitwise equal across backends too.
  Uniforms take the top 24 bits: ``u = (h >>> 8) * 2**-24``, exact in float32, in ``[0, 1)``.
"""

from __future__ import annotations

import secrets
from types import ModuleType
from typing import Any

from portable_nn.backend import HostStream

_MASK32 = 0xFFFFFFFF
_MUL1 = 0x7FEB352D
_MUL2 = 0x846CA68B


def _signed32(value: int) -> int:
    value &= _MASK32
    return value - (1 << 32) if value >= 1 << 31 else value


def _mix_int(value: int) -> int:
    """lowbias32 on a Python int (unsigned 32-bit)."""
    value &= _MASK32
    value ^= value >> 16
    value = (value * _MUL1) & _MASK32
    value ^= value >> 15
    value = (value * _MUL2) & _MASK32
    value ^= value >> 16
    return value


def _shift_right(x: Any, bits: int) -> Any:
    """Logical right shift of int32 bits (the standard's ``>>`` is arithmetic on signed ints)."""
    return (x >> bits) & ((1 << (32 - bits)) - 1)


def _mix_array(x: Any) -> Any:
    """lowbias32 on an int32 array: multiplication wraps modulo 2**32 on every backend."""
    x = x ^ _shift_right(x, 16)
    x = x * _signed32(_MUL1)
    x = x ^ _shift_right(x, 15)
    x = x * _signed32(_MUL2)
    return x ^ _shift_right(x, 16)


def hash_bits(n: int, key1: Any, key2: Any, xp: ModuleType, device: Any, start: int = 0) -> Any:
    """``n`` pseudo-random int32 words for keys ``(key1, key2)``, computed on ``device``: words
    ``start .. start + n - 1`` of the draw. The keys are Python ints, or int32 0-d arrays
    already in signed form (a compiled step's inputs)."""
    index = xp.arange(start, start + n, dtype=xp.int32, device=device)
    k1, k2 = (_signed32(k) if isinstance(k, int) else k for k in (key1, key2))
    return _mix_array(_mix_array(index ^ k1) ^ k2)


class RowOffset:
    """Draws of a shard of a batch: while ``with RowOffset(rows):`` is active, a draw of shape
    ``(batch, ...)`` takes the words its rows have in a draw over the whole batch, i.e. starting
    at ``rows * (words per row)``. Data-parallel training sets it to the first row of each
    process's shard, so every sample gets the Dropout mask it gets in one process."""

    rows = 0

    def __init__(self, rows: int) -> None:
        self.value, self.saved = int(rows), 0

    def __enter__(self) -> RowOffset:
        self.saved, RowOffset.rows = RowOffset.rows, self.value
        return self

    def __exit__(self, *exc: Any) -> None:
        RowOffset.rows = self.saved


def _start(shape: tuple[int, ...], n: int) -> int:
    rows = RowOffset.rows
    return rows * (n // int(shape[0])) if rows and shape and int(shape[0]) else 0


class KeyFeed:
    """Hands draws to a compiled step: while active (``with feed:``), every generator's next
    keys come from ``keys`` (a traced ``(n, 2)`` int32 array) in order instead of its counter,
    and :attr:`order` records which generator took each row. The host then computes the same
    keys with :meth:`Generator.next_keys` in that order for every step, so the masks of a
    compiled step equal the eager ones bitwise."""

    active: KeyFeed | None = None

    def __init__(self, keys: Any = None) -> None:
        self.keys, self.order = keys, []

    def __enter__(self) -> KeyFeed:
        KeyFeed.active = self
        return self

    def __exit__(self, *exc: Any) -> None:
        KeyFeed.active = None

    def take(self, generator: Generator) -> tuple[Any, Any]:
        row = len(self.order)
        self.order.append(generator)
        if self.keys is None:  # recording: an eager step, the generator's own keys
            return generator.next_keys()
        return self.keys[row, 0], self.keys[row, 1]


class Generator:
    """A seeded random source (``seed=None`` draws a fresh seed from the OS).

    ``uniform`` / ``bernoulli`` draw on the device with the counter-based hash (no host round
    trip); ``host`` is a NumPy-backed stream used by initialisers and shuffling.
    """

    def __init__(self, seed: int | None = None) -> None:
        if seed is None:
            seed = secrets.randbits(63)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
        self.seed = seed
        self.counter = 0
        self.host = HostStream(seed)

    def _next_keys(self) -> tuple[Any, Any]:
        feed = KeyFeed.active
        return self.next_keys() if feed is None else feed.take(self)

    def next_keys(self) -> tuple[int, int]:
        """The keys of the next draw (signed int32 values as Python ints); advances the
        counter."""
        low, high = self.seed & _MASK32, (self.seed >> 32) & _MASK32
        key1 = _mix_int(_mix_int(low ^ 0x9E3779B9) ^ self.counter)
        key2 = _mix_int(_mix_int(high ^ 0x85EBCA6B) ^ key1 ^ (self.counter >> 32))
        self.counter += 1
        return _signed32(key1), _signed32(key2)

    def uniform(self, shape: tuple[int, ...], *, xp: ModuleType, device: Any, dtype: Any) -> Any:
        """Uniform values in ``[0, 1)`` of ``shape``, made on ``device`` in ``dtype``."""
        n = 1
        for size in shape:
            n *= int(size)
        keys, start = self._next_keys(), _start(shape, n)
        bits = _shift_right(hash_bits(n, *keys, xp=xp, device=device, start=start), 8)
        return xp.reshape(xp.astype(bits, dtype) * (2.0**-24), tuple(shape))

    def bernoulli(self, shape: tuple[int, ...], keep: float, *, xp: ModuleType, device: Any) -> Any:
        """Boolean mask of ``shape`` whose entries are True with probability ``keep``."""
        n = 1
        for size in shape:
            n *= int(size)
        keys, start = self._next_keys(), _start(shape, n)
        bits = _shift_right(hash_bits(n, *keys, xp=xp, device=device, start=start), 8)
        return xp.reshape(bits < int(round(keep * 2**24)), tuple(shape))

    def get_state(self) -> dict[str, Any]:
        """JSON-friendly state (seed, device-stream counter, host-stream state)."""
        return {"seed": self.seed, "counter": self.counter, "host": self.host.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.counter = int(state["counter"])
        self.host = HostStream(self.seed)
        self.host.set_state(state["host"])


_global = Generator(0)


def seed(value: int) -> None:
    """Reset the global generator: the same seed gives the same weights on every backend."""
    global _global
    _global = Generator(value)


def get_generator(generator: Generator | int | None = None) -> Generator:
    """``generator`` itself, a new one for an int seed, or the global one for ``None``."""
    if generator is None:
        return _global
    if isinstance(generator, Generator):
        return generator
    return Generator(generator)
