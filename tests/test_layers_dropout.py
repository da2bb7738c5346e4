"""Dropout on every backend: inverted scaling, device-side masks identical across backends."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L
from portable_nn.backend import arrays as backend_arrays
from portable_nn.backend import state as backend_state


def _x(shape: tuple[int, ...] = (4, 6), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape)  # no zeros: y == 0 <=> dropped


def _masks_numpy(seed: int, rate: float, shape: tuple[int, ...], calls: int) -> list[np.ndarray]:
    """Reference masks from the NumPy backend (a fresh layer with the same seed)."""
    with pnn.use_backend("numpy"):
        layer = L.Dropout(rate, seed=seed)
        ones = np.ones(shape, dtype=np.float32)
        return [np.asarray(layer.forward(ones, training=True)[0]) != 0.0 for _ in range(calls)]


def test_identity_at_inference_and_rate_zero(backend: Any) -> None:
    x = backend.asarray(_x(), dtype="float32")
    dy = backend.asarray(_x(seed=1), dtype="float32")
    for layer, training in ((L.Dropout(0.5, seed=1), False), (L.Dropout(0.0, seed=1), True)):
        y, cache = layer.forward(x, training=training)
        dx, grads = layer.backward(dy, cache)
        assert y is x and dx is dy and grads == {}
    assert layer(x) is x


def test_masks_bitwise_identical_across_backends(backend: Any) -> None:
    shape = (7, 13)
    reference = _masks_numpy(seed=1234, rate=0.4, shape=shape, calls=3)
    layer = L.Dropout(0.4, seed=1234)
    ones = backend.asarray(np.ones(shape), dtype="float32")
    masks = [backend.to_numpy(layer.forward(ones, training=True)[0]) != 0.0 for _ in range(3)]
    for got, want in zip(masks, reference):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(masks[0], masks[1])  # each call draws a new mask


def test_kept_fraction_and_scaling(backend: Any) -> None:
    rate = 0.3
    x_np = _x((200, 50))
    layer = L.Dropout(rate, seed=7)
    y, cache = layer.forward(backend.asarray(x_np, dtype="float32"), training=True)
    y_np = backend.to_numpy(y)
    kept = y_np != 0.0
    assert abs(kept.mean() - (1.0 - rate)) < 0.02  # 10 000 draws: 4 standard deviations
    expected = x_np.astype(np.float32) * np.float32(1.0 / (1.0 - rate))
    np.testing.assert_allclose(y_np[kept], expected[kept], rtol=1e-6)
    dx, _ = layer.backward(backend.asarray(np.ones((200, 50)), dtype="float32"), cache)
    dx_np = backend.to_numpy(dx)
    np.testing.assert_array_equal(dx_np != 0.0, kept)  # dL/dx = dy * mask / (1 - rate)
    np.testing.assert_allclose(dx_np[kept], np.float32(1.0 / (1.0 - rate)), rtol=1e-6)


def test_mask_made_on_device_without_host_transfer(backend: Any, monkeypatch: Any) -> None:
    x = backend.asarray(_x(), dtype="float32")
    layer = L.Dropout(0.5, seed=3)
    layer.forward(x)  # build outside the guarded call
    calls: list[tuple[Any, Any]] = []
    draw = layer.generator.bernoulli

    def spy(shape: tuple[int, ...], keep: float, *, xp: Any, device: Any) -> Any:
        calls.append((xp, device))
        return draw(shape, keep, xp=xp, device=device)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Dropout copied data between host and device")

    monkeypatch.setattr(layer.generator, "bernoulli", spy)
    for module in (backend_arrays, backend_state):
        for name in ("host_to", "to_numpy"):  # wherever the backend defines or imports them
            if hasattr(module, name):
                monkeypatch.setattr(module, name, forbidden)
    y, cache = layer.forward(x, training=True)
    dx, _ = layer.backward(x, cache)
    monkeypatch.undo()
    assert calls == [(backend.xp, backend.dev)]
    for out in (y, dx):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float32


def test_float64_kept_and_gradcheck_train_and_eval(backend: Any) -> None:
    with backend.use("float64"):
        x = backend.asarray(_x((3, 5)), dtype="float64")
        layer = L.Dropout(0.5, seed=11)
        y, _ = layer.forward(x, training=True)
        assert y.dtype == backend.xp.float64
        for training in (True, False):
            result = pnn.gradcheck(layer, x, training=training)
            assert result.ok, result.report()


def test_global_seed_makes_runs_repeat(backend: Any) -> None:
    ones = backend.asarray(np.ones((5, 8)), dtype="float32")

    def run() -> list[np.ndarray]:
        pnn.seed(42)
        a, b = L.Dropout(0.5), L.Dropout(0.5)
        return [backend.to_numpy(layer.forward(ones, training=True)[0]) for layer in (a, b)]

    first, second = run(), run()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])  # two layers, two streams


def test_generator_argument_and_config() -> None:
    generator = pnn.random.Generator(5)
    layer = L.Dropout(0.25, seed=generator)
    assert layer.generator is generator
    assert layer.get_config()["seed"] is None
    layer = L.Dropout(0.25, seed=9, name="drop")
    config = layer.get_config()
    assert config == {"name": "drop", "rate": 0.25, "seed": 9}
    clone = L.layer_from_config("Dropout", config)
    assert clone.rate == 0.25 and clone.generator.seed == 9


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        L.Dropout(rate)


def test_bad_seed_and_inputs(backend: Any) -> None:
    with pytest.raises(TypeError, match="seed"):
        L.Dropout(0.5, seed="abc")
    with pytest.raises(ValueError, match="seed"):
        L.Dropout(0.5, seed=-1)
    layer = L.Dropout(0.5, seed=1)
    with pytest.raises(TypeError, match="real floating"):
        layer.forward(backend.asarray(np.ones((2, 3), dtype=np.int32)), training=True)
    _, cache = layer.forward(backend.asarray(np.ones((2, 3)), dtype="float32"), training=True)
    with pytest.raises(ValueError, match=r"dy has shape \(3, 2\)"):
        layer.backward(backend.asarray(np.ones((3, 2)), dtype="float32"), cache)
    with pytest.raises(ValueError, match=r"\(None, 3\).*\(2, 4\)"):
        layer.forward(backend.asarray(np.ones((2, 4)), dtype="float32"), training=True)
