"""BatchNormalization and LayerNormalization: PyTorch equality (float64), gradcheck, safety."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.5, 2.0, shape)


def foreign_library(backend: Any) -> str:
    """A second installed library for 'foreign array' checks (as in test_layers_common.py)."""
    for name in ("torch", "numpy", "array_api_strict"):
        if name != backend.name and importlib.util.find_spec(name) is not None:
            return name
    pytest.skip(f"no library besides {backend.name} is installed to make foreign arrays")


def _rel_error(a: Any, ref: Any) -> float:
    a, ref = np.asarray(a), np.asarray(ref)
    return float(np.max(np.abs(a - ref)) / max(np.max(np.abs(ref)), 1e-300))


def _affine(backend: Any, layer: Any, features: int) -> tuple[np.ndarray, np.ndarray]:
    """Random gamma/beta set through set_parameters; returns them for the torch module."""
    rng = np.random.default_rng(9)
    gamma, beta = rng.uniform(0.5, 1.5, features), rng.uniform(-0.5, 0.5, features)
    layer.set_parameters(
        {"gamma": backend.asarray(gamma, "float64"), "beta": backend.asarray(beta, "float64")}
    )
    return gamma, beta


def _host(d: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.array(pnn.to_numpy(v), copy=True) for k, v in d.items()}


# -- PyTorch equality ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 4)])
def test_batchnorm_matches_torch_train_then_eval(backend: Any, shape: tuple[int, ...]) -> None:
    """Several training steps (outputs, all gradients, running stats), then inference."""
    torch = pytest.importorskip("torch")
    features = shape[-1]
    ref = torch.nn.BatchNorm1d(features, momentum=0.1, eps=1e-5, dtype=torch.float64)

    def to_torch(a: np.ndarray) -> Any:  # (N, L, C) -> (N, C, L) for BatchNorm1d
        t = torch.tensor(a, dtype=torch.float64)
        return t.permute(0, 2, 1) if t.ndim == 3 else t

    def from_torch(t: Any) -> np.ndarray:
        return (t.permute(0, 2, 1) if t.ndim == 3 else t).detach().numpy()

    with backend.use("float64"):
        layer = L.BatchNormalization(momentum=0.1, epsilon=1e-5, input_shape=shape[1:])
        gamma, beta = _affine(backend, layer, features)
        with torch.no_grad():
            ref.weight.copy_(torch.tensor(gamma))
            ref.bias.copy_(torch.tensor(beta))
        for step, training in enumerate([True, True, True, False]):
            ref.train(training)
            x_np, dy_np = _x(shape, seed=step), _x(shape, seed=10 + step)
            xt = to_torch(x_np).requires_grad_(True)
            ref.zero_grad()
            yt = ref(xt)
            yt.backward(to_torch(dy_np))
            y, cache = layer.forward(backend.asarray(x_np, "float64"), training=training)
            dx, grads = layer.backward(backend.asarray(dy_np, "float64"), cache)
            assert _rel_error(backend.to_numpy(y), from_torch(yt)) <= 1e-10
            assert _rel_error(backend.to_numpy(dx), from_torch(xt.grad)) <= 1e-10
            assert _rel_error(backend.to_numpy(grads["gamma"]), ref.weight.grad) <= 1e-10
            assert _rel_error(backend.to_numpy(grads["beta"]), ref.bias.grad) <= 1e-10
            stats = layer.buffers()
            mean_ref, var_ref = ref.running_mean.numpy(), ref.running_var.numpy()
            assert _rel_error(backend.to_numpy(stats["running_mean"]), mean_ref) <= 1e-10
            assert _rel_error(backend.to_numpy(stats["running_var"]), var_ref) <= 1e-10
            for out in (y, dx, *grads.values(), *stats.values()):
                backend.assert_same_place(out)
                assert out.dtype == backend.xp.float64


@pytest.mark.parametrize("shape", [(5, 6), (2, 3, 6)])
def test_layernorm_matches_torch(backend: Any, shape: tuple[int, ...]) -> None:
    torch = pytest.importorskip("torch")
    ref = torch.nn.LayerNorm(shape[-1], eps=1e-5, dtype=torch.float64)
    x_np, dy_np = _x(shape), _x(shape, seed=1)
    with backend.use("float64"):
        layer = L.LayerNormalization(input_shape=shape[1:])
        gamma, beta = _affine(backend, layer, shape[-1])
        with torch.no_grad():
            ref.weight.copy_(torch.tensor(gamma))
            ref.bias.copy_(torch.tensor(beta))
        xt = torch.tensor(x_np, requires_grad=True)
        yt = ref(xt)
        yt.backward(torch.tensor(dy_np))
        for training in (True, False):
            y, cache = layer.forward(backend.asarray(x_np, "float64"), training=training)
            dx, grads = layer.backward(backend.asarray(dy_np, "float64"), cache)
            assert _rel_error(backend.to_numpy(y), yt.detach().numpy()) <= 1e-10
            assert _rel_error(backend.to_numpy(dx), xt.grad.numpy()) <= 1e-10
            assert _rel_error(backend.to_numpy(grads["gamma"]), ref.weight.grad) <= 1e-10
            assert _rel_error(backend.to_numpy(grads["beta"]), ref.bias.grad) <= 1e-10
            backend.assert_same_place(dx)
    assert layer.buffers() == {}


# -- images: statistics over every axis but the channels' ------------------------------------------
@pytest.mark.parametrize("axis", [1, -1, -3])
def test_batchnorm_on_images_matches_torch_batchnorm2d(backend: Any, axis: int) -> None:
    """Channels-first through ``axis=1`` (or -3), channels-last (default ``axis=-1``) through a
    permute: outputs, all gradients and the running statistics over several steps."""
    torch = pytest.importorskip("torch")
    first = axis != -1
    ref = torch.nn.BatchNorm2d(3, momentum=0.1, eps=1e-5, dtype=torch.float64)

    def to_torch(a: np.ndarray) -> Any:  # ours -> (N, C, H, W)
        return torch.tensor(a) if first else torch.tensor(a).permute(0, 3, 1, 2)

    def from_torch(t: Any) -> np.ndarray:
        return (t if first else t.permute(0, 2, 3, 1)).detach().numpy()

    shape = (4, 3, 5, 6) if first else (4, 5, 6, 3)
    with backend.use("float64"):
        layer = L.BatchNormalization(axis=axis, input_shape=shape[1:])
        gamma, beta = _affine(backend, layer, 3)
        with torch.no_grad():
            ref.weight.copy_(torch.tensor(gamma))
            ref.bias.copy_(torch.tensor(beta))
        for step, training in enumerate([True, True, True, False, True, False]):
            ref.train(training)
            x_np, dy_np = _x(shape, seed=step), _x(shape, seed=10 + step)
            xt = to_torch(x_np).requires_grad_(True)
            ref.zero_grad()
            yt = ref(xt)
            yt.backward(to_torch(dy_np))
            y, cache = layer.forward(backend.asarray(x_np, "float64"), training=training)
            dx, grads = layer.backward(backend.asarray(dy_np, "float64"), cache)
            assert _rel_error(backend.to_numpy(y), from_torch(yt)) <= 1e-10
            assert _rel_error(backend.to_numpy(dx), from_torch(xt.grad)) <= 1e-10
            assert _rel_error(backend.to_numpy(grads["gamma"]), ref.weight.grad) <= 1e-10
            assert _rel_error(backend.to_numpy(grads["beta"]), ref.bias.grad) <= 1e-10
            stats = layer.buffers()
            mean_ref, var_ref = ref.running_mean.numpy(), ref.running_var.numpy()
            assert _rel_error(backend.to_numpy(stats["running_mean"]), mean_ref) <= 1e-10
            assert _rel_error(backend.to_numpy(stats["running_var"]), var_ref) <= 1e-10
            for out in (y, dx, *grads.values(), *stats.values()):
                backend.assert_same_place(out)
                assert out.dtype == backend.xp.float64
            assert all(tuple(a.shape) == (3,) for a in (*grads.values(), *stats.values()))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(("axis", "shape"), [(1, (3, 2, 4, 3)), (-1, (3, 4, 3, 2)), (2, (2, 3, 4))])
def test_batchnorm_axis_gradcheck(backend: Any, axis: int, shape: Any, training: bool) -> None:
    with backend.use("float64"):
        layer = L.BatchNormalization(axis=axis)
        layer.build((None, *shape[1:]))
        features = shape[axis]
        rng = np.random.default_rng(4)
        layer.set_parameters(
            {k: backend.asarray(rng.uniform(0.5, 1.5, features), "float64") for k in layer.params}
        )
        layer.forward(backend.asarray(_x(shape, seed=5), "float64"), training=True)
        result = pnn.gradcheck(layer, backend.asarray(_x(shape), "float64"), training=training)
        assert result.ok, result.report()


def test_batchnorm_axis_config_and_old_configs() -> None:
    layer = L.BatchNormalization(axis=1, input_shape=(3, 4, 4), name="bn")
    config = layer.get_config()
    assert config["axis"] == 1
    clone = L.layer_from_config("BatchNormalization", config)
    assert clone.get_config() == config and tuple(clone.bufs["running_mean"].shape) == (3,)
    assert "axis=1" in repr(clone) and "axis" not in repr(L.BatchNormalization())
    old = {k: v for k, v in L.BatchNormalization(input_shape=(5,)).get_config().items()}
    del old["axis"]  # a checkpoint written before the argument existed
    assert L.layer_from_config("BatchNormalization", old).axis == -1
    assert "axis" not in L.LayerNormalization().get_config()


@pytest.mark.parametrize("axis", [0, "1", 1.0, True, None])
def test_batchnorm_bad_axis_argument(axis: Any) -> None:
    with pytest.raises(ValueError, match=f"axis={axis!r}"):
        L.BatchNormalization(axis=axis)


def test_batchnorm_axis_out_of_range_changes_nothing(backend: Any) -> None:
    layer = L.BatchNormalization(axis=4, name="bn")
    with pytest.raises(ValueError, match=r"bn: .*axis=4.*\(None, 3, 4, 4\)"):
        layer.forward(backend.asarray(_x((2, 3, 4, 4)), "float32"), training=True)
    assert not layer.built and layer.params == {} and layer.bufs == {}
    with pytest.raises(ValueError, match=r"axis=-4.*\(None, 3, 4, 4\)"):  # the batch axis
        L.BatchNormalization(axis=-4).build((None, 3, 4, 4))
    layer = L.BatchNormalization(axis=1, input_shape=(3, 4, 4))
    before = _snapshot(layer)
    with pytest.raises(ValueError, match=r"expected input of shape \(None, 3, 4, 4\)"):
        layer.forward(backend.asarray(_x((2, 4, 4, 3)), "float32"), training=True)
    _assert_unchanged(layer, before)


# -- gradcheck -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "training"),
    [
        (lambda: L.BatchNormalization(), True),
        (lambda: L.BatchNormalization(), False),
        (lambda: L.BatchNormalization(center=False, scale=False), True),
        (lambda: L.LayerNormalization(), False),
        (lambda: L.LayerNormalization(center=False), False),
    ],
)
def test_gradcheck(backend: Any, make: Any, training: bool) -> None:
    with backend.use("float64"):
        layer = make()
        layer.build((None, 3))
        if layer.params:
            rng = np.random.default_rng(4)
            layer.set_parameters(
                {k: backend.asarray(rng.uniform(0.5, 1.5, 3), "float64") for k in layer.params}
            )
        if layer.bufs:  # non-trivial running statistics for inference mode
            layer.forward(backend.asarray(_x((6, 3), seed=5), "float64"), training=True)
        result = pnn.gradcheck(layer, backend.asarray(_x((4, 3)), "float64"), training=training)
        assert result.ok, result.report()


# -- float32 placement and defaults -------------------------------------------------------------
def test_float32_defaults_and_placement(backend: Any) -> None:
    x = backend.asarray(_x((4, 3)), "float32")
    for layer in (L.BatchNormalization(), L.LayerNormalization()):
        y, cache = layer.forward(x, training=True)
        dx, grads = layer.backward(x, cache)
        for out in (y, dx, *grads.values(), *layer.buffers().values()):
            backend.assert_same_place(out)
            assert out.dtype == backend.xp.float32
        np.testing.assert_array_equal(backend.to_numpy(layer.params["gamma"]), np.ones(3))
        np.testing.assert_array_equal(backend.to_numpy(layer.params["beta"]), np.zeros(3))
        assert sorted(layer.params) == ["beta", "gamma"]
    assert sorted(layer.buffers()) == []
    bn = L.BatchNormalization(input_shape=(3,))
    np.testing.assert_array_equal(backend.to_numpy(bn.bufs["running_var"]), np.ones(3))
    assert sorted(bn.bufs) == ["running_mean", "running_var"]


def test_batchnorm_training_rebinds_buffers_without_writing(backend: Any) -> None:
    layer = L.BatchNormalization(input_shape=(3,))
    state, old = layer.bufs, dict(layer.bufs)
    layer.forward(backend.asarray(_x((4, 3)), "float32"), training=True)
    assert layer.bufs is state
    for key, value in old.items():
        assert layer.bufs[key] is not value
        expected = np.zeros(3) if key == "running_mean" else np.ones(3)
        np.testing.assert_array_equal(backend.to_numpy(value), expected)  # old arrays untouched
    y1 = backend.to_numpy(layer(backend.asarray(_x((4, 3)), "float32")))
    y2 = backend.to_numpy(layer(backend.asarray(_x((4, 3)), "float32")))
    np.testing.assert_array_equal(y1, y2)  # inference changes nothing


# -- state safety ---------------------------------------------------------------------------------
def _snapshot(layer: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    return dict(layer.state_dict()), _host(layer.state_dict())


def _assert_unchanged(layer: Any, snapshot: tuple[dict[str, Any], dict[str, np.ndarray]]) -> None:
    objects, values = snapshot
    now = layer.state_dict()
    assert now.keys() == objects.keys()
    for key, value in now.items():
        assert value is objects[key], key
        np.testing.assert_array_equal(pnn.to_numpy(value), values[key])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_batchnorm_non_finite_batch_keeps_stats_without_a_sync(backend: Any, bad: float) -> None:
    layer = L.BatchNormalization()
    layer.forward(backend.asarray(_x((4, 3)), "float32"), training=True)
    before = _snapshot(layer)
    x = _x((4, 3))
    x[2, 1] = bad
    y, _ = layer.forward(backend.asarray(x, "float32"), training=True)
    assert not np.all(np.isfinite(backend.to_numpy(y)))  # the loss will show it
    np.testing.assert_array_equal(
        backend.to_numpy(layer.bufs["running_mean"]), before[1]["running_mean"]
    )
    np.testing.assert_array_equal(
        backend.to_numpy(layer.bufs["running_var"]), before[1]["running_var"]
    )
    after = _snapshot(layer)
    y, _ = layer.forward(backend.asarray(x, "float32"), training=False)  # inference: no buffers
    assert np.isnan(backend.to_numpy(y)[2, 1]) or np.isinf(backend.to_numpy(y)[2, 1])
    _assert_unchanged(layer, after)


def test_batchnorm_batch_of_one_in_training(backend: Any) -> None:
    layer = L.BatchNormalization(input_shape=(3,))
    before = _snapshot(layer)
    with pytest.raises(ValueError, match="more than one value per feature"):
        layer.forward(backend.asarray(_x((1, 3)), "float32"), training=True)
    _assert_unchanged(layer, before)
    y, _ = layer.forward(backend.asarray(_x((1, 3)), "float32"))  # inference is fine
    assert tuple(y.shape) == (1, 3)


@pytest.mark.parametrize("make", [L.BatchNormalization, L.LayerNormalization])
def test_bad_inputs_change_nothing(backend: Any, make: Any) -> None:
    layer = make(input_shape=(3,))
    before = _snapshot(layer)
    with pytest.raises(ValueError, match=r"expected input of shape \(None, 3\).*\(4, 5\)"):
        layer.forward(backend.asarray(_x((4, 5)), "float32"), training=True)
    with pytest.raises(TypeError, match="int"):
        layer.forward(backend.asarray(np.ones((4, 3), dtype=np.int32)), training=True)
    with pytest.raises(TypeError, match="float64"):
        layer.forward(backend.asarray(_x((4, 3)), "float64"), training=True)
    other = foreign_library(backend)
    with pnn.use_backend(other):
        foreign = pnn.asarray(_x((4, 3)))
    with pytest.raises(ValueError, match="two backends"):
        layer.forward(foreign, training=True)
    with pytest.raises(ValueError, match="gamma"):
        layer.set_parameters({"gamma": backend.asarray(np.ones(4), "float32")})
    _, cache = layer.forward(backend.asarray(_x((4, 3)), "float32"))
    with pytest.raises(ValueError, match="dy has shape"):
        layer.backward(backend.asarray(_x((4, 1)), "float32"), cache)
    _assert_unchanged(layer, before)


def test_batchnorm_without_params_checks_namespace(backend: Any) -> None:
    layer = L.BatchNormalization(center=False, scale=False, input_shape=(3,))
    assert layer.params == {}
    with pytest.raises(TypeError, match="float64"):
        layer.forward(backend.asarray(_x((4, 3)), "float64"), training=True)
    other = foreign_library(backend)
    with pnn.use_backend(other):
        foreign = pnn.asarray(_x((4, 3)))
    with pytest.raises(ValueError, match="two backends"):
        layer.forward(foreign, training=True)


# -- construction and config -----------------------------------------------------------------------
def test_constructor_checks() -> None:
    with pytest.warns(UserWarning, match="Keras' momentum=0.99 is momentum=0.01"):
        L.BatchNormalization(momentum=0.99)
    with pytest.raises(ValueError, match="momentum"):
        L.BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        L.LayerNormalization(epsilon=0.0)
    with pytest.raises(TypeError, match="center"):
        L.LayerNormalization(center="yes")
    with pytest.raises(ValueError, match=r"features.*\(None,\)"):
        L.BatchNormalization().build((None,))


@pytest.mark.parametrize("cls", [L.BatchNormalization, L.LayerNormalization])
def test_config_round_trip(cls: Any) -> None:
    layer = cls(epsilon=1e-3, center=False, input_shape=(4,), name="norm")
    config = layer.get_config()
    clone = L.layer_from_config(cls.__name__, config)
    assert clone.get_config() == config
    assert sorted(clone.params) == ["gamma"] and clone.epsilon == 1e-3
    assert sorted(clone.buffers()) == sorted(layer.buffers())


def test_batchnorm_without_gamma_beta_checks_input_against_buffers(backend):
    """With center=scale=False there are no parameters: the running statistics are the reference."""
    layer = pnn.layers.BatchNormalization(center=False, scale=False)
    layer(backend.asarray(np.ones((4, 3), dtype=np.float32)))
    with pytest.raises(TypeError, match="dtype"):
        layer.forward(backend.asarray(np.ones((4, 3))), training=True)
    if backend.name != "numpy":  # a plain NumPy input is foreign to every other backend
        with pytest.raises(ValueError, match="differ"):
            layer.forward(np.ones((4, 3), dtype=np.float32), training=True)
