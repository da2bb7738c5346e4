"""Activation layers on every backend: gradcheck, PyTorch equality in float64, placement, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L

# (our layer factory, torch module factory)
CASES: dict[str, tuple[Any, Any]] = {
    "relu": (L.ReLU, lambda nn: nn.ReLU()),
    "sigmoid": (L.Sigmoid, lambda nn: nn.Sigmoid()),
    "tanh": (L.Tanh, lambda nn: nn.Tanh()),
    "leaky_relu": (lambda: L.LeakyReLU(alpha=0.2), lambda nn: nn.LeakyReLU(0.2)),
    "elu": (lambda: L.ELU(alpha=0.7), lambda nn: nn.ELU(alpha=0.7)),
    "selu": (L.SELU, lambda nn: nn.SELU()),
    "swish": (L.Swish, lambda nn: nn.SiLU()),
    "gelu": (L.GELU, lambda nn: nn.GELU()),
    "softplus": (L.Softplus, lambda nn: nn.Softplus()),
    "softmax": (L.Softmax, lambda nn: nn.Softmax(dim=-1)),
    "softmax_axis0": (lambda: L.Softmax(axis=0), lambda nn: nn.Softmax(dim=0)),
    "log_softmax": (L.LogSoftmax, lambda nn: nn.LogSoftmax(dim=-1)),
    "activation_tanh": (lambda: L.Activation("tanh"), lambda nn: nn.Tanh()),
    "activation_linear": (lambda: L.Activation("linear"), lambda nn: nn.Identity()),
}


def _inputs(shape: tuple[int, ...] = (3, 4), seed: int = 0) -> np.ndarray:
    """Uniform(-3, 3) kept at least 0.1 away from the kinks at 0 (RELIABILITY.md)."""
    x = np.random.default_rng(seed).uniform(-3.0, 3.0, shape)
    return np.where(np.abs(x) < 0.1, np.sign(x) * 0.1 + x, x)


def _rel_error(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(a - ref)) / max(np.max(np.abs(ref)), 1e-300))


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradcheck(backend: Any, case: str) -> None:
    with backend.use("float64"):
        layer = CASES[case][0]()
        x = backend.asarray(_inputs(), dtype="float64")
        result = pnn.gradcheck(layer, x)
        assert result.ok, result.report()
        assert result.max_abs_error < 1e-7


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch_float64(backend: Any, case: str) -> None:
    torch = pytest.importorskip("torch")
    make, make_torch = CASES[case]
    x_np = _inputs(seed=1)
    dy_np = np.random.default_rng(2).uniform(-1.0, 1.0, x_np.shape)
    xt = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
    yt = make_torch(torch.nn)(xt)
    yt.backward(torch.tensor(dy_np))
    with backend.use("float64"):
        layer = make()
        y, cache = layer.forward(backend.asarray(x_np, dtype="float64"), training=True)
        dx, grads = layer.backward(backend.asarray(dy_np, dtype="float64"), cache)
    assert grads == {}
    assert _rel_error(backend.to_numpy(y), yt.detach().numpy()) <= 1e-10
    assert _rel_error(backend.to_numpy(dx), xt.grad.numpy()) <= 1e-10


@pytest.mark.parametrize("case", ["relu", "sigmoid", "softmax", "gelu", "elu"])
def test_outputs_keep_namespace_device_dtype(backend: Any, case: str) -> None:
    layer = CASES[case][0]()
    x = backend.asarray(_inputs((3, 2, 2)), dtype="float32")
    y, cache = layer.forward(x, training=True)
    dx, _ = layer.backward(backend.asarray(np.ones((3, 2, 2)), dtype="float32"), cache)
    for out in (y, dx):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float32
        assert tuple(out.shape) == (3, 2, 2)
    assert layer.compute_output_shape((None, 2, 2)) == (None, 2, 2)


@pytest.mark.parametrize("case", sorted(CASES))
def test_extreme_inputs_stay_finite_float32(backend: Any, case: str) -> None:
    x = np.array([[-1e4, -30.0, 0.5, 1e4], [30.0, 1e4, -0.5, -1e4], [0.0, -1e4, 1e4, 30.0]])
    layer = CASES[case][0]()
    y, cache = layer.forward(backend.asarray(x, dtype="float32"), training=True)
    dx, _ = layer.backward(backend.asarray(np.ones_like(x), dtype="float32"), cache)
    assert np.all(np.isfinite(backend.to_numpy(y))) and np.all(np.isfinite(backend.to_numpy(dx)))


def test_saves_output_or_input_only(backend: Any) -> None:
    """Forward keeps what backward needs: y for sigmoid, x for gelu, nothing for linear."""
    x = backend.asarray(_inputs(), dtype="float32")
    y, (saved, _) = L.Sigmoid().forward(x)
    assert saved is y
    _, (saved, _) = L.GELU().forward(x)
    assert saved is x
    y, (saved, _) = L.Activation("linear").forward(x)
    assert saved is None and y is x


def test_integer_input_is_type_error(backend: Any) -> None:
    layer = L.ReLU()
    with pytest.raises(TypeError, match="real floating.*int"):
        layer.forward(backend.asarray(np.arange(6).reshape(2, 3)))
    assert not layer.built


def test_wrong_feature_shape_and_gradient_shape(backend: Any) -> None:
    layer = L.Tanh()
    _, cache = layer.forward(backend.asarray(np.zeros((2, 3)), dtype="float32"))
    with pytest.raises(ValueError, match=r"expected input of shape \(None, 3\).*\(2, 4\)"):
        layer.forward(backend.asarray(np.zeros((2, 4)), dtype="float32"))
    with pytest.raises(ValueError, match=r"dy has shape \(2, 1\).*\(2, 3\)"):
        layer.backward(backend.asarray(np.zeros((2, 1)), dtype="float32"), cache)


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="unknown activation 'relu6'"):
        L.Activation("relu6")
    with pytest.raises(TypeError, match="alpha must be a real number"):
        L.LeakyReLU(alpha="big")
    with pytest.raises(ValueError, match="alpha"):
        L.ELU(alpha=float("nan"))
    with pytest.raises(TypeError, match="axis must be an int"):
        L.Softmax(axis=1.5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case: str) -> None:
    layer = CASES[case][0]()
    layer.build((None, 5))
    config = layer.get_config()
    clone = L.layer_from_config(type(layer).__name__, config)
    assert type(clone) is type(layer) and clone.get_config() == config
    assert clone.activation == layer.activation
    assert clone.built and clone.input_shape == (None, 5)
    x = _inputs((2, 5))
    np.testing.assert_array_equal(pnn.to_numpy(clone(x)), pnn.to_numpy(layer(x)))


def test_get_by_name_and_config() -> None:
    assert isinstance(L.get("relu"), L.ReLU)
    assert isinstance(L.get("log_softmax"), L.Activation)
    assert L.get("silu").activation == "silu"
    layer = L.get({"class_name": "LeakyReLU", "config": {"alpha": 0.3}})
    assert isinstance(layer, L.LeakyReLU) and layer.alpha == 0.3
    same = L.ReLU()
    assert L.get(same) is same
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        L.get("nope")
    with pytest.raises(TypeError, match="'dense' needs arguments"):
        L.get("dense")
    with pytest.raises(ValueError, match="class_name"):
        L.get({"config": {}})
