"""Flatten and Reshape on every backend: values, shapes, gradients, Keras -1 semantics, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


@pytest.mark.parametrize(
    ("make", "in_shape", "out_shape"),
    [
        (L.Flatten, (3, 2, 4), (3, 8)),
        (L.Flatten, (3, 5), (3, 5)),
        (L.Flatten, (3,), (3, 1)),
        (lambda: L.Reshape((4, 2)), (3, 8), (3, 4, 2)),
        (lambda: L.Reshape((-1, 2)), (3, 2, 4), (3, 4, 2)),
        (lambda: L.Reshape([2, -1]), (3, 8), (3, 2, 4)),
        (lambda: L.Reshape(6), (2, 3, 2), (2, 6)),
    ],
)
def test_forward_backward_match_numpy_reshape(
    backend: Any, make: Any, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> None:
    layer = make()
    x_np, dy_np = _x(in_shape).astype(np.float32), _x(out_shape, seed=1).astype(np.float32)
    y, cache = layer.forward(backend.asarray(x_np), training=True)
    dx, grads = layer.backward(backend.asarray(dy_np), cache)
    np.testing.assert_array_equal(backend.to_numpy(y), x_np.reshape(out_shape))
    np.testing.assert_array_equal(backend.to_numpy(dx), dy_np.reshape(in_shape))
    assert grads == {}
    for out in (y, dx):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float32
    assert layer.compute_output_shape((None, *in_shape[1:])) == (None, *out_shape[1:])


@pytest.mark.parametrize("make", [L.Flatten, lambda: L.Reshape((-1, 3))])
def test_gradcheck(backend: Any, make: Any) -> None:
    with backend.use("float64"):
        x = backend.asarray(_x((2, 3, 2)), dtype="float64")
        result = pnn.gradcheck(make(), x)
        assert result.ok, result.report()


def test_reshape_size_mismatch_names_both() -> None:
    with pytest.raises(ValueError, match=r"features \(5,\) \(5 elements.*target_shape \(2, 2\)"):
        L.Reshape((2, 2), input_shape=(5,))
    with pytest.raises(ValueError, match=r"\(3,\).*target_shape \(-1, 2\)"):
        L.Reshape((-1, 2)).forward(np.zeros((4, 3), dtype=np.float32))


@pytest.mark.parametrize("target", [(-1, -1), (0, 2), (2, -2), (2.0,), "ab", (True, 2)])
def test_bad_target_shape(target: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="target_shape"):
        L.Reshape(target)


def test_wrong_input_after_build(backend: Any) -> None:
    layer = L.Flatten()
    _, cache = layer.forward(backend.asarray(np.zeros((2, 3, 4)), dtype="float32"))
    with pytest.raises(ValueError, match=r"expected input of shape \(None, 3, 4\).*\(2, 4, 3\)"):
        layer.forward(backend.asarray(np.zeros((2, 4, 3)), dtype="float32"))
    with pytest.raises(ValueError, match=r"dy has shape \(2, 3, 4\).*\(2, 12\)"):
        layer.backward(backend.asarray(np.zeros((2, 3, 4)), dtype="float32"), cache)
    with pytest.raises(TypeError, match="real floating"):
        layer.forward(backend.asarray(np.zeros((2, 3, 4), dtype=np.int64)))


def test_batch_of_zero_and_one(backend: Any) -> None:
    for batch in (0, 1):
        y, _ = L.Reshape((-1,)).forward(backend.asarray(np.zeros((batch, 2, 3)), dtype="float32"))
        assert tuple(y.shape) == (batch, 6)


def test_config_round_trip() -> None:
    layer = L.Reshape((-1, 4), input_shape=(2, 4), name="r")
    config = layer.get_config()
    assert config == {"name": "r", "input_shape": [2, 4], "target_shape": [-1, 4]}
    clone = L.layer_from_config("Reshape", config)
    assert clone.target_shape == (-1, 4)
    assert clone.compute_output_shape((None, 2, 4)) == (None, 2, 4)
    flat = L.layer_from_config("Flatten", L.Flatten(input_shape=(2, 3)).get_config())
    assert flat.compute_output_shape(flat.input_shape) == (None, 6)
    assert L.Flatten().compute_output_shape((None, None, 3)) == (None, None)
