"""Dense on every backend: gradcheck, PyTorch equality (float64), seeded init, bad input safety."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L

TORCH_ACTIVATIONS: dict[str | None, Any] = {
    None: lambda F, z: z,
    "relu": lambda F, z: F.relu(z),
    "sigmoid": lambda F, z: F.sigmoid(z),
    "tanh": lambda F, z: F.tanh(z),
    "leaky_relu": lambda F, z: F.leaky_relu(z, 0.01),
    "elu": lambda F, z: F.elu(z),
    "selu": lambda F, z: F.selu(z),
    "swish": lambda F, z: F.silu(z),
    "gelu": lambda F, z: F.gelu(z),
    "softplus": lambda F, z: F.softplus(z),
    "softmax": lambda F, z: F.softmax(z, dim=-1),
    "log_softmax": lambda F, z: F.log_softmax(z, dim=-1),
}


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def foreign_library(backend: Any) -> str:
    """A second installed library for 'foreign array' checks (as in test_layers_common.py)."""
    for name in ("torch", "numpy", "array_api_strict"):
        if name != backend.name and importlib.util.find_spec(name) is not None:
            return name
    pytest.skip(f"no library besides {backend.name} is installed to make foreign arrays")


def _rel_error(a: Any, ref: Any) -> float:
    a, ref = np.asarray(a), np.asarray(ref)
    return float(np.max(np.abs(a - ref)) / max(np.max(np.abs(ref)), 1e-300))


def _host(layer: Any) -> dict[str, np.ndarray]:
    return {k: np.array(pnn.to_numpy(v), copy=True) for k, v in layer.state_dict().items()}


def _assert_unchanged(layer: Any, objects: dict[str, Any], values: dict[str, np.ndarray]) -> None:
    assert layer.state_dict().keys() == objects.keys()
    for key, value in layer.state_dict().items():
        assert value is objects[key], key
        np.testing.assert_array_equal(pnn.to_numpy(value), values[key])


# -- gradients -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("activation", "use_bias", "shape"),
    [
        (None, True, (4, 3)),
        ("relu", True, (4, 3)),
        ("tanh", False, (4, 3)),
        ("softmax", True, (4, 3)),
        ("gelu", True, (2, 2, 3)),
    ],
)
def test_gradcheck(backend: Any, activation: str | None, use_bias: bool, shape: Any) -> None:
    with backend.use("float64"):
        layer = L.Dense(3, activation=activation, use_bias=use_bias, seed=1)
        x = _x(shape)
        x = np.where(np.abs(x) < 0.1, 0.1 + x, x)
        result = pnn.gradcheck(layer, backend.asarray(x, "float64"))
        assert result.ok, result.report()
        assert [e.name for e in result.entries][1:] == [
            f"parameter {n!r}" for n in (("weight", "bias") if use_bias else ("weight",))
        ]


@pytest.mark.parametrize("activation", list(TORCH_ACTIVATIONS), ids=str)
def test_matches_torch_float64(backend: Any, activation: str | None) -> None:
    torch = pytest.importorskip("torch")
    x_np, dy_np = _x((5, 4)), _x((5, 3), seed=1)
    with backend.use("float64"):
        layer = L.Dense(3, activation=activation, input_dim=4, seed=2)
        bias = backend.asarray(_x((3,), seed=3), "float64")  # non-zero bias
        layer.set_parameters({"bias": bias})
        y, cache = layer.forward(backend.asarray(x_np, "float64"), training=True)
        dx, grads = layer.backward(backend.asarray(dy_np, "float64"), cache)
    linear = torch.nn.Linear(4, 3, dtype=torch.float64)
    with torch.no_grad():  # torch stores W as (out, in): our weight transposed
        linear.weight.copy_(torch.tensor(backend.to_numpy(layer.params["weight"]).T))
        linear.bias.copy_(torch.tensor(backend.to_numpy(layer.params["bias"])))
    xt = torch.tensor(x_np, requires_grad=True)
    yt = TORCH_ACTIVATIONS[activation](torch.nn.functional, linear(xt))
    yt.backward(torch.tensor(dy_np))
    assert _rel_error(backend.to_numpy(y), yt.detach().numpy()) <= 1e-10
    assert _rel_error(backend.to_numpy(dx), xt.grad.numpy()) <= 1e-10
    assert _rel_error(backend.to_numpy(grads["weight"]), linear.weight.grad.numpy().T) <= 1e-10
    assert _rel_error(backend.to_numpy(grads["bias"]), linear.bias.grad.numpy()) <= 1e-10
    for out in (y, dx, *grads.values()):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float64


@pytest.mark.parametrize("shape", [(4, 3), (2, 2, 3)])
def test_input_grad_false_skips_dx_only(backend: Any, shape: tuple[int, ...]) -> None:
    layer = L.Dense(2, activation="tanh", seed=0)
    assert L.Dense.skips_input_grad and not L.ReLU.skips_input_grad
    y, cache = layer.forward(backend.asarray(_x(shape), "float32"), training=True)
    dy = backend.asarray(_x(tuple(y.shape), seed=1), "float32")
    dx, grads = layer.backward(dy, cache)
    none, same = layer.backward(dy, cache, input_grad=False)
    assert none is None and tuple(dx.shape) == shape
    for key in ("weight", "bias"):
        np.testing.assert_array_equal(backend.to_numpy(same[key]), backend.to_numpy(grads[key]))


def test_cache_holds_only_what_backward_needs(backend: Any) -> None:
    x = backend.asarray(_x((2, 3)), "float32")
    y, (saved_x, saved, *_) = L.Dense(4, activation="sigmoid").forward(x)
    assert saved_x is x and saved is y  # sigmoid' from the output
    layer = L.Dense(4)
    _, cache = layer.forward(x)
    assert cache.saved is None and cache.weight is layer.params["weight"]  # linear: x and W
    assert cache.shape is None  # a 2-D input: nothing to restore
    _, cache = L.Dense(4, activation="gelu").forward(backend.asarray(_x((2, 5, 3)), "float32"))
    assert cache.shape == (2, 5, 3) and tuple(cache.x.shape) == (10, 3)  # gelu' from z
    assert tuple(cache.saved.shape) == (10, 4)


# -- initialisation and placement ------------------------------------------------------------------
def test_seeded_weights_identical_on_every_backend(backend: Any) -> None:
    with pnn.use_backend("numpy"):
        reference = L.Dense(5, input_dim=4, seed=123, bias_initializer="uniform")
        ref = {k: np.asarray(v) for k, v in reference.params.items()}
        pnn.seed(7)
        ref_global = np.asarray(L.Dense(3, input_dim=2).params["weight"])
    layer = L.Dense(5, input_dim=4, seed=123, bias_initializer="uniform")
    for name, value in layer.params.items():
        backend.assert_same_place(value)
        assert value.dtype == backend.xp.float32
        np.testing.assert_array_equal(backend.to_numpy(value), ref[name])
    pnn.seed(7)
    np.testing.assert_array_equal(
        backend.to_numpy(L.Dense(3, input_dim=2).params["weight"]), ref_global
    )
    limit = np.sqrt(6.0 / (4 + 5))  # glorot_uniform
    assert np.all(np.abs(ref["weight"]) <= limit) and ref["weight"].shape == (4, 5)


def test_lazy_build_and_float32_outputs(backend: Any) -> None:
    layer = L.Dense(3, activation="relu")
    assert not layer.built and layer.params == {}
    y, cache = layer.forward(backend.asarray(_x((4, 2)), "float32"))
    assert layer.built and layer.input_shape == (None, 2)
    assert tuple(layer.params["weight"].shape) == (2, 3)
    np.testing.assert_array_equal(backend.to_numpy(layer.params["bias"]), np.zeros(3))
    dx, grads = layer.backward(backend.asarray(np.ones((4, 3)), "float32"), cache)
    for out in (y, dx, *grads.values()):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float32
    assert tuple(dx.shape) == (4, 2) and tuple(y.shape) == (4, 3)
    assert layer.compute_output_shape((None, 7, 2)) == (None, 7, 3)


def test_float64_backend_builds_float64(backend: Any) -> None:
    with backend.use("float64"):
        layer = L.Dense(2, input_dim=3)
        assert layer.params["weight"].dtype == backend.xp.float64
        backend.assert_same_place(layer.params["weight"])


# -- bad input and state safety --------------------------------------------------------------------
def test_bad_inputs_raise_and_change_nothing(backend: Any) -> None:
    layer = L.Dense(3, input_dim=4, seed=0)
    objects, values = dict(layer.state_dict()), _host(layer)
    with pytest.raises(ValueError, match=r"expected input of shape \(None, 4\).*\(2, 5\)"):
        layer.forward(backend.asarray(_x((2, 5)), "float32"))
    with pytest.raises(TypeError, match="float64.*float32"):
        layer.forward(backend.asarray(_x((2, 4)), "float64"))
    with pytest.raises(TypeError, match="int"):
        layer.forward(backend.asarray(np.ones((2, 4), dtype=np.int32)))
    other = foreign_library(backend)
    with pnn.use_backend(other):
        foreign = pnn.asarray(_x((2, 4)))
    with pytest.raises(
        ValueError, match=f"two backends cannot be mixed: {other} and {backend.name}"
    ):
        layer.forward(foreign)
    _, cache = layer.forward(backend.asarray(_x((2, 4)), "float32"))
    with pytest.raises(ValueError, match=r"dy has shape \(2, 1\).*\(2, 3\)"):
        layer.backward(backend.asarray(np.ones((2, 1)), "float32"), cache)
    bad_sets = [
        {"weight": backend.asarray(np.ones((3, 4)), "float32")},  # transposed shape
        {"weight": backend.asarray(np.ones((4, 3)), "float64")},  # dtype
        {"kernel": backend.asarray(np.ones((4, 3)), "float32")},  # name
        {"bias": backend.asarray(np.ones(3), "float32"), "weight": foreign},  # one bad entry
    ]
    for bad in bad_sets:
        with pytest.raises(ValueError):
            layer.set_parameters(bad)
    _assert_unchanged(layer, objects, values)


def test_input_on_another_device_names_both(backend: Any) -> None:
    if backend.name != "array_api_strict":
        pytest.skip("needs a second device of the same library (array-api-strict's device1)")
    import array_api_strict

    layer = L.Dense(3, input_dim=4)
    other = "CPU_DEVICE" if backend.id.endswith("device1") else "device1"
    x = array_api_strict.asarray(_x((2, 4)), dtype=array_api_strict.float32)
    x = array_api_strict.asarray(x, device=array_api_strict.Device(other))
    mine = "device1" if backend.id.endswith("device1") else "CPU_DEVICE"
    with pytest.raises(ValueError, match=f"two devices.*{other}.*{mine}"):
        layer.forward(x)


def test_first_call_with_foreign_input_leaves_layer_unbuilt(backend: Any) -> None:
    layer = L.Dense(3)
    with pytest.raises(TypeError, match="int"):
        layer.forward(backend.asarray(np.ones((2, 4), dtype=np.int64)))
    assert not layer.built and layer.params == {}
    other = foreign_library(backend)
    with pnn.use_backend(other):
        foreign = pnn.asarray(_x((2, 5)))
    with pytest.raises(ValueError, match="two backends"):
        layer.forward(foreign)
    assert not layer.built and layer.params == {}
    y, _ = layer.forward(backend.asarray(_x((2, 6)), "float32"))  # builds for the real input
    assert tuple(y.shape) == (2, 3) and layer.input_shape == (None, 6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"units": 0}, ValueError, "Expected a positive integer. Received: units=0"),
        ({"units": 2.5}, ValueError, "units=2.5"),
        ({"units": True}, ValueError, "units=True"),
        ({"units": 2, "activation": "relu7"}, ValueError, "unknown activation 'relu7'"),
        ({"units": 2, "kernel_initializer": "bogus"}, ValueError, "kernel_initializer"),
        ({"units": 2, "use_bias": 1}, TypeError, "use_bias"),
        ({"units": 2, "seed": "s"}, TypeError, "seed"),
        ({"units": 2, "input_dim": 0}, ValueError, "input_dim=0"),
        ({"units": 2, "input_dim": 3, "input_shape": (3,)}, ValueError, "not both"),
    ],
)
def test_constructor_checks(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        L.Dense(**kwargs)


def test_config_round_trip() -> None:
    layer = L.Dense(4, activation="tanh", use_bias=False, input_dim=3, seed=5, name="d1")
    config = layer.get_config()
    assert config == {
        "name": "d1",
        "input_shape": [3],
        "units": 4,
        "activation": "tanh",
        "use_bias": False,
        "kernel_initializer": "glorot_uniform",
        "bias_initializer": "zeros",
        "seed": 5,
    }
    clone = L.get({"class_name": "Dense", "config": config})
    assert clone.get_config() == config
    np.testing.assert_array_equal(
        pnn.to_numpy(clone.params["weight"]), pnn.to_numpy(layer.params["weight"])
    )
    assert L.Dense(2).get_config()["activation"] is None
