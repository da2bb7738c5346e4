"""Where an estimator's network trains, and how its results go back to the caller's arrays.

scikit-learn's world is NumPy on the host: lists, NumPy arrays, SciPy sparse matrices and
DataFrames are checked by scikit-learn itself (``validate_data``) and train on NumPy. An array
of another array-API library (torch, CuPy, JAX, array-api-strict) is checked here with the
same messages, never leaves its device, and the network trains there. ``backend=``/``device=``
on the estimator force another place; results still come back in the caller's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import array_api_compat

from portable_nn.backend import (
    Backend,
    asarray,
    backend_of,
    device_of,
    has_dtype,
    host_to,
    is_array,
    make_backend,
    move,
    namespace_of,
    read_scalars,
    to_numpy,
)


def is_device_array(data: Any) -> bool:
    """An array of an array-API library other than NumPy (NumPy data is scikit-learn's)."""
    return is_array(data) and not array_api_compat.is_numpy_array(data)


@dataclass(frozen=True, eq=False)
class Placement:
    """The caller's array ``like`` (None: NumPy on the host) and the backend the network uses."""

    like: Any
    backend: Backend

    @classmethod
    def of(cls, X: Any, backend: str | None, device: Any) -> Placement:
        """Follow ``X`` (already validated: floating, 2-D) unless ``backend`` names another."""
        like = X if is_device_array(X) else None
        dtype = "float64" if _is_float64(X) else "float32"
        if backend is None and like is not None:
            if device is None:
                return cls(like, backend_of(X))
            return cls(like, backend_of(X).placed(device=device))
        return cls(like, make_backend(backend or "numpy", device, dtype))

    def inward(self, data: Any, dtype: Any = None) -> Any:
        """``data`` (host or any library's array) on the training backend; floating data in the
        network's dtype unless ``dtype`` is given."""
        return asarray(data, dtype=dtype, backend=self.backend)

    def outward(self, array: Any) -> Any:
        """A training-backend array in the caller's namespace and on its device."""
        if self.like is None:
            return to_numpy(array) if not array_api_compat.is_numpy_array(array) else array
        return move(array, self.like)

    def from_host(self, host: Any) -> Any:
        """Host data (e.g. ``classes_``) as it is, or in the caller's namespace and device."""
        if self.like is None:
            return host
        return host_to(host, namespace_of(self.like), device_of(self.like))

    @property
    def xp(self) -> Any:
        return self.backend.xp


def _is_float64(X: Any) -> bool:
    if is_array(X) and has_dtype(X, "real floating"):
        return X.dtype == namespace_of(X).float64
    return str(getattr(X, "dtype", "float64")) == "float64"


def check_device_input(X: Any, n_features: int | None, estimator: str) -> Any:
    """scikit-learn's ``check_array`` for a device array, with its messages: 2-D, at least one
    sample and one feature, real numbers (integers become floating), finite (ONE read-back)."""
    xp = namespace_of(X)
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead. Reshape your data either using "
            "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) "
            "if it contains a single sample."
        )
    if not has_dtype(X, "real floating"):
        if not has_dtype(X, "numeric") or has_dtype(X, "complex floating"):
            raise ValueError(f"X must hold real numbers; got dtype {X.dtype}")
        X = xp.astype(X, xp.float32 if array_api_compat.is_jax_namespace(xp) else xp.float64)
    n_samples, n_found = X.shape
    if n_samples < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum of 1 is "
            f"required by {estimator}."
        )
    if n_found < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is "
            f"required by {estimator}."
        )
    if n_features is not None and n_found != n_features:
        raise ValueError(
            f"X has {n_found} features, but {estimator} is expecting {n_features} features "
            "as input."
        )
    check_finite(X, "X", estimator)
    return X


def check_finite(array: Any, name: str, estimator: str) -> None:
    """scikit-learn's "Input X contains NaN." / "... infinity ..." from ONE read-back."""
    xp = namespace_of(array)
    flags = read_scalars({"nan": xp.any(xp.isnan(array)), "inf": xp.any(xp.isinf(array))})
    if flags["nan"]:
        raise ValueError(f"Input {name} contains NaN.")
    if flags["inf"]:
        raise ValueError(
            f"Input {name} contains infinity or a value too large for dtype('{array.dtype}')."
        )


__all__ = ["Placement", "check_device_input", "check_finite", "is_device_array"]
