"""pnn.init: Keras 3 initializers, bitwise identical on every backend for one seed."""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn

init = pnn.init
RANDOM = [n for n in init.INITIALIZERS if n not in ("zeros", "ones", "constant")]
TRUNCATED_STD = 0.87962566103423978  # Keras's correction: std of N(0, 1) cut at +-2


def _host(backend: Any, name: str, shape: tuple[int, ...], **kwargs: Any) -> np.ndarray:
    out = init.get(name)(shape, **kwargs)
    backend.assert_same_place(out)
    return backend.to_numpy(out)


# -- reproducibility across backends ------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", init.INITIALIZERS)
def test_same_seed_gives_the_numpy_backend_bits(backend: Any, name: str, dtype: str) -> None:
    shape = (3, 2, 4)
    out = init.get(name)(shape, seed=123, dtype=dtype)
    backend.assert_same_place(out)
    assert out.dtype == getattr(backend.xp, dtype) and tuple(out.shape) == shape
    with pnn.use_backend("numpy"):
        reference = np.asarray(init.get(name)(shape, seed=123, dtype=dtype))
    assert reference.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(backend.to_numpy(out), reference, strict=True)


def test_default_dtype_is_the_backends(backend: Any) -> None:
    assert init.he_uniform((2, 3)).dtype == backend.xp.float32
    assert init.ones((2,), dtype=backend.xp.float64).dtype == backend.xp.float64
    with backend.use("float64"):
        out = init.glorot_normal((2, 3), seed=1)
        assert out.dtype == backend.xp.float64
        assert init.zeros((2,)).dtype == backend.xp.float64
    backend.assert_same_place(out)


@pytest.mark.parametrize("name", RANDOM)
def test_global_generator_advances_and_pnn_seed_repeats(backend: Any, name: str) -> None:
    shape = (4, 3)
    pnn.seed(11)
    first, second = _host(backend, name, shape), _host(backend, name, shape)
    assert not np.array_equal(first, second)
    pnn.seed(11)
    np.testing.assert_array_equal(_host(backend, name, shape), first)
    generator = pnn.random.Generator(11)  # a Generator argument is advanced like the global one
    np.testing.assert_array_equal(_host(backend, name, shape, seed=generator), first)
    np.testing.assert_array_equal(_host(backend, name, shape, seed=generator), second)
    np.testing.assert_array_equal(_host(backend, name, shape, seed=11), first)


@pytest.mark.parametrize(
    ("name", "low", "high", "kwargs"),
    [  # shape (3, 4, 5): receptive field 3, fan_in 12, fan_out 15
        ("uniform", -0.05, 0.05, {}),
        ("uniform", -2.0, 3.0, {"minval": -2.0, "maxval": 3.0}),
        ("glorot_uniform", -math.sqrt(6.0 / 27.0), math.sqrt(6.0 / 27.0), {}),
        ("he_uniform", -math.sqrt(6.0 / 12.0), math.sqrt(6.0 / 12.0), {}),
        ("lecun_uniform", -math.sqrt(3.0 / 12.0), math.sqrt(3.0 / 12.0), {}),
    ],
)
def test_uniform_family_matches_a_pcg64_reference(
    backend: Any, name: str, low: float, high: float, kwargs: dict[str, float]
) -> None:
    shape = (3, 4, 5)
    expected = np.random.Generator(np.random.PCG64(5)).uniform(low, high, shape)
    got = _host(backend, name, shape, seed=5, **kwargs)
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    got64 = _host(backend, name, shape, seed=5, dtype="float64", **kwargs)
    np.testing.assert_array_equal(got64, expected)


def test_normal_matches_a_pcg64_reference(backend: Any) -> None:
    expected = np.random.Generator(np.random.PCG64(9)).normal(0.5, 2.0, (6, 2))
    got = _host(backend, "normal", (6, 2), mean=0.5, stddev=2.0, seed=9, dtype="float64")
    np.testing.assert_array_equal(got, expected)


# -- statistics ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "shape", "std"),
    [
        ("glorot_normal", (300, 500), math.sqrt(2.0 / 800.0)),
        ("he_normal", (400, 300), math.sqrt(2.0 / 400.0)),
        ("he_normal", (3, 3, 16, 800), math.sqrt(2.0 / 144.0)),  # conv kernel: fan_in 3*3*16
        ("lecun_normal", (250, 480), math.sqrt(1.0 / 250.0)),
        ("he_uniform", (400, 300), math.sqrt(2.0 / 400.0)),
        ("normal", (300, 400), 0.05),
        ("truncated_normal", (300, 400), 0.05 * TRUNCATED_STD),
    ],
)
def test_standard_deviation_on_a_big_draw(
    backend: Any, name: str, shape: tuple[int, ...], std: float
) -> None:
    values = _host(backend, name, shape, seed=3, dtype="float64")
    assert abs(values.mean()) < 0.02 * std
    assert values.std() == pytest.approx(std, rel=0.01)
    if name.endswith("_normal") and name != "normal":  # cut at 2 std of the untruncated draw
        bound = 2.0 * std / TRUNCATED_STD
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.99 * bound


def test_truncated_normal_stays_within_two_stddev(backend: Any) -> None:
    values = _host(backend, "truncated_normal", (200, 100), mean=1.0, stddev=0.5, seed=2)
    assert values.min() >= 0.0 and values.max() <= 2.0
    assert values.min() < 0.02 and values.max() > 1.98
    assert values.mean() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("name", ["glorot_uniform", "he_uniform", "lecun_uniform"])
def test_uniform_bounds(backend: Any, name: str) -> None:
    fan_in, fan_out = 120, 80
    scale = {"glorot_uniform": 6.0 / (fan_in + fan_out), "he_uniform": 6.0 / fan_in}
    limit = math.sqrt(scale.get(name, 3.0 / fan_in))
    values = _host(backend, name, (fan_in, fan_out), seed=4)
    assert np.abs(values).max() <= np.float32(limit)
    assert np.abs(values).max() > 0.99 * limit


def test_one_dimensional_fans(backend: Any) -> None:
    values = _host(backend, "he_uniform", (5000,), seed=1, dtype="float64")
    assert np.abs(values).max() <= math.sqrt(6.0 / 5000.0)
    assert init.compute_fans((7,)) == (7, 7) and init.compute_fans(()) == (1, 1)
    assert init.compute_fans((2, 3, 4, 5)) == (24, 30)


@pytest.mark.parametrize("shape", [(6, 4), (3, 5), (2, 3, 4), (4, 4)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_orthogonal(backend: Any, shape: tuple[int, ...], dtype: str) -> None:
    q = _host(backend, "orthogonal", shape, gain=2.0, seed=8, dtype=dtype)
    assert q.shape == shape and q.dtype == np.dtype(dtype)
    matrix = q.reshape(-1, shape[-1]).astype(np.float64)
    gram = matrix.T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.T
    tol = 1e-12 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(gram, 4.0 * np.eye(gram.shape[0]), atol=tol)


def test_constants_are_exact(backend: Any) -> None:
    assert not np.any(_host(backend, "zeros", (2, 3)))
    np.testing.assert_array_equal(_host(backend, "ones", (4,)), np.ones(4, np.float32))
    np.testing.assert_array_equal(
        _host(backend, "constant", (2, 2), value=0.1), np.full((2, 2), 0.1, np.float32)
    )
    out = _host(backend, "constant", (3,), value=0.1, dtype="float64")
    assert out.dtype == np.float64 and np.all(out == 0.1)


def test_zero_size_and_scalar_shapes(backend: Any) -> None:
    for name in init.INITIALIZERS:
        assert _host(backend, name, (0, 3)).shape == (0, 3)
    assert _host(backend, "normal", ()).shape == ()


# -- validation and lookup ----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(-1, 2), 3, (2.0, 3), (True, 2), "ab", None])
def test_bad_shape_raises_and_draws_nothing(backend: Any, shape: Any) -> None:
    pnn.seed(1)
    for name in ("glorot_uniform", "zeros"):
        with pytest.raises(ValueError, match=r"shape must be a tuple of non-negative ints"):
            init.get(name)(shape)
    pnn.seed(1)
    expected = _host(backend, "normal", (3,))
    pnn.seed(1)
    with pytest.raises(ValueError, match=r"Received: shape=\(-1, 2\)"):
        init.normal((-1, 2))
    np.testing.assert_array_equal(_host(backend, "normal", (3,)), expected)


def test_bad_arguments(backend: Any) -> None:
    for dtype in ("int32", "float16", backend.xp.int32):
        with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
            init.he_normal((2, 2), dtype=dtype)
        with pytest.raises(ValueError, match="dtype"):
            init.zeros((2, 2), dtype=dtype)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.orthogonal((4,))
    with pytest.raises(ValueError, match="stddev"):
        init.normal((2,), stddev=-1.0)
    with pytest.raises(ValueError, match="minval"):
        init.uniform((2,), minval=1.0, maxval=0.0)
    with pytest.raises(ValueError, match="mean=nan"):
        init.normal((2,), mean=float("nan"))
    with pytest.raises(ValueError, match="minval=nan"):
        init.uniform((2,), minval=float("nan"))
    with pytest.raises(TypeError, match="gain='1'"):
        init.orthogonal((2, 2), gain="1")
    with pytest.raises(TypeError, match="stddev=True"):
        init.truncated_normal((2,), stddev=True)
    with pytest.raises(TypeError, match="value"):
        init.constant((2,), "x")
    with pytest.raises(ValueError, match="seed"):
        init.uniform((2,), seed=-3)


def test_get() -> None:
    assert init.get("glorot_uniform") is init.glorot_uniform
    assert init.get("HeNormal") is init.he_normal
    assert init.get("RandomNormal") is init.normal and init.get("random_uniform") is init.uniform
    assert init.get(init.orthogonal) is init.orthogonal
    assert (
        init.glorot_normal.__name__ == "glorot_normal" and "fan_avg" in init.glorot_normal.__doc__
    )
    assert all(init.get(name).__name__ == name for name in init.INITIALIZERS)
    with pytest.raises(ValueError, match="unknown initializer 'nope'.*glorot_uniform"):
        init.get("nope")
    with pytest.raises(TypeError):
        init.get(3)


@pytest.mark.skipif(importlib.util.find_spec("array_api_strict") is None, reason="not installed")
def test_device_argument_overrides_the_backend() -> None:
    import array_api_compat
    import array_api_strict

    with pnn.use_backend("array_api_strict"):
        for name in ("he_uniform", "zeros"):
            out = init.get(name)((2, 3), seed=0, device="device1")
            assert array_api_compat.device(out) == array_api_strict.Device("device1")
            out = init.get(name)((2, 3), seed=0)
            assert array_api_compat.device(out) == array_api_strict.Device("CPU_DEVICE")
