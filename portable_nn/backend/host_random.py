"""Host-side random draws with NumPy's PCG64: identical bits whatever backend receives them.

Initialisers draw here once (as Thinc does) and copy float32 values to the device, so the same
seed gives bitwise the same weights on NumPy, CuPy, PyTorch, JAX and array-api-strict.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class HostStream:
    """A seeded NumPy ``Generator`` whose state can be saved as JSON-friendly integers."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def uniform(self, shape: tuple[int, ...], low: float, high: float, dtype: str) -> np.ndarray:
        return self._rng.uniform(low, high, size=shape).astype(dtype)

    def normal(self, shape: tuple[int, ...], mean: float, std: float, dtype: str) -> np.ndarray:
        return self._rng.normal(mean, std, size=shape).astype(dtype)

    def truncated_normal(
        self, shape: tuple[int, ...], mean: float, std: float, dtype: str
    ) -> np.ndarray:
        """Normal draws, redrawing those more than two standard deviations from the mean."""
        values = self._rng.standard_normal(size=shape)
        outside = np.abs(values) > 2.0
        while outside.any():
            values[outside] = self._rng.standard_normal(size=int(outside.sum()))
            outside = np.abs(values) > 2.0
        return (mean + std * values).astype(dtype)

    def orthogonal(self, shape: tuple[int, ...], gain: float, dtype: str) -> np.ndarray:
        """A (semi-)orthogonal matrix from the QR of a Gaussian matrix (Saxe et al., 2014)."""
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        cols = shape[-1]
        flat = self._rng.standard_normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q = q * np.sign(np.diag(r))  # unique decomposition: positive diagonal of r
        if rows < cols:
            q = q.T
        return (gain * q).reshape(shape).astype(dtype)

    def permutation(self, n: int) -> np.ndarray:
        return self._rng.permutation(n)

    def integers(self, high: int) -> int:
        return int(self._rng.integers(0, high))

    def get_state(self) -> dict[str, Any]:
        return self._rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state
