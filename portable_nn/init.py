"""Weight initializers with Keras 3 semantics, bitwise identical on every backend.

Every random initializer draws once on the host (NumPy PCG64 through ``generator.host``), casts
to the requested dtype there and copies the result to the device, so the same seed gives the
same bits on NumPy, CuPy, PyTorch, JAX and array-api-strict, and a float32 init never creates a
float64 array on the device. ``zeros``/``ones``/``constant`` are made directly on the device.

Common signature: ``name(shape, ..., *, seed=None, dtype=None, device=None)``

* ``shape``: tuple of non-negative ints, Keras layout (a Dense kernel is ``(in, out)``).
* ``seed``: an int (a fresh ``pnn.random.Generator(seed)``), a ``Generator`` (advanced by the
  draw), or None (the global generator, reset by ``pnn.seed(n)``).
* ``dtype``: "float32"/"float64" (or the backend's dtype object); default: the backend's.
* ``device``: overrides the active backend's device (a name such as "cpu" or a device object).

Variance scaling (Keras ``VarianceScaling``): with receptive field ``r = prod(shape[:-2])``,
``fan_in = shape[-2] * r`` and ``fan_out = shape[-1] * r`` (1-D: both ``shape[0]``; 0-D: 1),
``var = scale / max(1, fan)``. ``*_uniform`` draws ``U(-sqrt(3 var), sqrt(3 var))``; ``*_normal``
draws a normal truncated at 2 standard deviations with ``std = sqrt(var) / 0.8796256610342398``
(the std of a unit normal truncated to [-2, 2]), so the result has variance ``var``.

Differences from PyTorch's ``torch.nn.init``: PyTorch weights are ``(out, in)`` so its fan_in is
``shape[1] * r``; ``xavier_normal_``/``kaiming_normal_`` draw an *untruncated* normal;
``trunc_normal_`` cuts at absolute bounds ``[a, b] = [-2, 2]`` rather than at 2 std;
``orthogonal_`` flattens to ``(shape[0], prod(shape[1:]))`` where Keras uses
``(prod(shape[:-1]), shape[-1])``; and ``nn.Linear`` defaults to ``kaiming_uniform_(a=sqrt(5))``,
i.e. ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, which none of these names reproduce.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from portable_nn.backend import arrays as _arrays  # looked up per call (tests patch host_to)
from portable_nn.backend import get_backend
from portable_nn.random import Generator, get_generator
from portable_nn.validation import real_number

Seed = int | Generator | None
_TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]


def _shape(shape: Any) -> tuple[int, ...]:
    try:
        if isinstance(shape, (tuple, list)) and not any(isinstance(s, bool) for s in shape):
            dims = tuple(operator.index(s) for s in shape)
            if all(d >= 0 for d in dims):
                return dims
    except TypeError:
        pass
    raise ValueError(f"shape must be a tuple of non-negative ints. Received: shape={shape!r}")


def _place(shape: Any, dtype: Any, device: Any) -> tuple[tuple[int, ...], Any, Any, str]:
    """Validated (shape, xp, device, dtype name) on the active backend."""
    target = get_backend().placed(device, dtype)
    return _shape(shape), target.xp, target.device, target.dtype_name


def _draw(shape: Any, seed: Seed, dtype: Any, device: Any, sample: Callable[..., Any]) -> Any:
    """``sample(host_stream, shape, dtype_name)`` on the host, then copied to the device."""
    shape, xp, place, name = _place(shape, dtype, device)
    host = get_generator(seed).host
    return _arrays.host_to(sample(host, shape, name), xp, place)


# -- constants --------------------------------------------------------------------------------
def constant(
    shape: tuple[int, ...],
    value: float = 0.0,
    *,
    seed: Seed = None,
    dtype: Any = None,
    device: Any = None,
) -> Any:
    """An array of ``shape`` filled with ``value``, made on the device (``seed`` is unused)."""
    shape, xp, place, name = _place(shape, dtype, device)
    try:
        fill = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"value must be a real number. Received: value={value!r}") from None
    return xp.full(shape, fill, dtype=getattr(xp, name), device=place)


def zeros(
    shape: tuple[int, ...], *, seed: Seed = None, dtype: Any = None, device: Any = None
) -> Any:
    """All zeros (Keras ``Zeros``)."""
    return constant(shape, 0.0, dtype=dtype, device=device)


def ones(
    shape: tuple[int, ...], *, seed: Seed = None, dtype: Any = None, device: Any = None
) -> Any:
    """All ones (Keras ``Ones``)."""
    return constant(shape, 1.0, dtype=dtype, device=device)


# -- plain distributions ----------------------------------------------------------------------
def normal(
    shape: tuple[int, ...],
    mean: float = 0.0,
    stddev: float = 0.05,
    *,
    seed: Seed = None,
    dtype: Any = None,
    device: Any = None,
) -> Any:
    """``N(mean, stddev^2)`` (Keras ``RandomNormal``)."""
    mu, std = real_number("mean", mean), real_number("stddev", stddev, 0.0)
    return _draw(shape, seed, dtype, device, lambda h, s, d: h.normal(s, mu, std, d))


def uniform(
    shape: tuple[int, ...],
    minval: float = -0.05,
    maxval: float = 0.05,
    *,
    seed: Seed = None,
    dtype: Any = None,
    device: Any = None,
) -> Any:
    """``U(minval, maxval)`` (Keras ``RandomUniform``)."""
    low, high = real_number("minval", minval), real_number("maxval", maxval)
    if not low <= high:
        raise ValueError(
            f"minval must not exceed maxval. Received: minval={minval}, maxval={maxval}"
        )
    return _draw(shape, seed, dtype, device, lambda h, s, d: h.uniform(s, low, high, d))


def truncated_normal(
    shape: tuple[int, ...],
    mean: float = 0.0,
    stddev: float = 0.05,
    *,
    seed: Seed = None,
    dtype: Any = None,
    device: Any = None,
) -> Any:
    """``N(mean, stddev^2)`` with draws beyond 2 ``stddev`` redrawn (Keras ``TruncatedNormal``).

    The result's std is about ``0.88 * stddev``.
    """
    mu, std = real_number("mean", mean), real_number("stddev", stddev, 0.0)
    return _draw(shape, seed, dtype, device, lambda h, s, d: h.truncated_normal(s, mu, std, d))


def orthogonal(
    shape: tuple[int, ...],
    gain: float = 1.0,
    *,
    seed: Seed = None,
    dtype: Any = None,
    device: Any = None,
) -> Any:
    """``gain * Q`` with Q (semi-)orthogonal for the ``(prod(shape[:-1]), shape[-1])`` matrix.

    Tall matrices have orthonormal columns (``Q^T Q = I``), wide ones orthonormal rows
    (``Q Q^T = I``); Q comes from the QR of a Gaussian matrix with sign-fixed R (Keras
    ``Orthogonal``, Saxe et al. 2014). Needs at least two dimensions, as in Keras.
    """
    dims = _shape(shape)
    if len(dims) < 2:
        raise ValueError(
            f"orthogonal needs a shape with at least 2 dimensions. Received: shape={shape!r}"
        )
    g = real_number("gain", gain)
    return _draw(dims, seed, dtype, device, lambda h, s, d: h.orthogonal(s, g, d))


# -- variance scaling -------------------------------------------------------------------------
def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras fans: ``(shape[-2] * r, shape[-1] * r)`` with ``r = prod(shape[:-2])``."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _scaled(mode: str, scale: float, normal_: bool) -> Callable[..., Any]:
    def init(
        shape: tuple[int, ...], *, seed: Seed = None, dtype: Any = None, device: Any = None
    ) -> Any:
        fan_in, fan_out = compute_fans(_shape(shape))
        fan = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
        variance = scale / max(1.0, fan)
        if normal_:
            std = math.sqrt(variance) / _TRUNCATED_STD
            return _draw(
                shape, seed, dtype, device, lambda h, s, d: h.truncated_normal(s, 0.0, std, d)
            )
        limit = math.sqrt(3.0 * variance)
        return _draw(shape, seed, dtype, device, lambda h, s, d: h.uniform(s, -limit, limit, d))

    return init


def _variance_scaling(
    name: str, mode: str, scale: float, normal_: bool, doc: str
) -> Callable[..., Any]:
    init = _scaled(mode, scale, normal_)
    init.__name__ = init.__qualname__ = name
    kind = (
        "truncated normal, std = sqrt(var) / 0.8796..."
        if normal_
        else "U(-sqrt(3 var), sqrt(3 var))"
    )
    init.__doc__ = f"{doc}: var = {scale:g} / {mode}; {kind} (Keras, see module docstring)."
    return init


glorot_uniform = _variance_scaling("glorot_uniform", "fan_avg", 1.0, False, "Glorot/Xavier uniform")
glorot_normal = _variance_scaling("glorot_normal", "fan_avg", 1.0, True, "Glorot/Xavier normal")
he_uniform = _variance_scaling("he_uniform", "fan_in", 2.0, False, "He/Kaiming uniform")
he_normal = _variance_scaling("he_normal", "fan_in", 2.0, True, "He/Kaiming normal")
lecun_uniform = _variance_scaling("lecun_uniform", "fan_in", 1.0, False, "LeCun uniform")
lecun_normal = _variance_scaling("lecun_normal", "fan_in", 1.0, True, "LeCun normal")


# -- lookup -----------------------------------------------------------------------------------
INITIALIZERS: tuple[str, ...] = (
    "zeros",
    "ones",
    "constant",
    "normal",
    "uniform",
    "truncated_normal",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
)
_ALIASES = {"randomnormal": "normal", "randomuniform": "uniform"}  # Keras class names


def get(identifier: str | Callable[..., Any]) -> Callable[..., Any]:
    """The initializer named ``identifier`` (snake_case or Keras class name, e.g. "HeNormal"),
    or ``identifier`` itself when it is callable."""
    if callable(identifier):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(f"expected an initializer name or a callable. Received: {identifier!r}")
    key = identifier.replace("_", "").lower()
    by_key = {name.replace("_", ""): name for name in INITIALIZERS}
    name = by_key.get(key) or _ALIASES.get(key)
    if name is None:
        raise ValueError(
            f"unknown initializer {identifier!r}; valid names are {', '.join(INITIALIZERS)}"
        )
    return globals()[name]


__all__ = [*INITIALIZERS, "INITIALIZERS", "compute_fans", "get"]
