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
    "relu_max_value": (lambda: L.ReLU(max_value=2.0), lambda nn: lambda t: t.clamp(0.0, 2.0)),
    "relu_options": (  # Keras's formula written with torch operations
        lambda: L.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.5),
        lambda nn: lambda t: t.clamp(max=2.0).where(t > 0.5, 0.1 * (t - 0.5)),
    ),
    "relu_leaky": (lambda: L.ReLU(negative_slope=0.2), lambda nn: nn.LeakyReLU(0.2)),
    "gelu_tanh": (lambda: L.GELU(approximate=True), lambda nn: nn.GELU(approximate="tanh")),
    "activation_relu6": (lambda: L.Activation("relu6"), lambda nn: nn.ReLU6()),
    # torch's float64 Hardsigmoid rounds 1/6 to float32: its formula, as Keras 3 defines it
    "activation_hard_sigmoid": (
        lambda: L.Activation("hard_sigmoid"),
        lambda nn: lambda t: nn.functional.relu6(t + 3.0) / 6.0,
    ),
    "activation_hard_swish": (lambda: L.Activation("hard_swish"), lambda nn: nn.Hardswish()),
    "activation_hard_silu": (lambda: L.Activation("hard_silu"), lambda nn: nn.Hardswish()),
    "activation_mish": (lambda: L.Activation("mish"), lambda nn: nn.Mish()),
    "activation_softsign": (lambda: L.Activation("softsign"), lambda nn: nn.Softsign()),
    "activation_celu": (lambda: L.Activation("celu"), lambda nn: nn.CELU()),
    "activation_glu": (lambda: L.Activation("glu"), lambda nn: nn.GLU(dim=-1)),
    "activation_log_sigmoid": (lambda: L.Activation("log_sigmoid"), lambda nn: nn.LogSigmoid()),
    "activation_exponential": (lambda: L.Activation("exponential"), lambda nn: lambda t: t.exp()),
}
# the new element-wise names, also fused into Dense
NEW_NAMES = ["relu6", "hard_sigmoid", "hard_swish", "hard_silu", "mish", "softsign", "celu"]
NEW_NAMES += ["log_sigmoid", "exponential", "linear"]
KINKS = (-3.0, 0.0, 0.5, 2.0, 3.0)  # relu (0, and 0.5, 2 with options), hard_* (-3, 3)


def _inputs(shape: tuple[int, ...] = (3, 4), seed: int = 0) -> np.ndarray:
    """Uniform(-3, 3) kept at least 0.1 away from the kinks (RELIABILITY.md)."""
    x = np.random.default_rng(seed).uniform(-3.0, 3.0, shape)
    for kink in KINKS:
        x = np.where(np.abs(x - kink) < 0.1, x + 0.2, x)
    return x


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
    xt = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
    yt = make_torch(torch.nn)(xt)
    dy_np = np.random.default_rng(2).uniform(-1.0, 1.0, tuple(yt.shape))
    yt.backward(torch.tensor(dy_np))
    with backend.use("float64"):
        layer = make()
        y, cache = layer.forward(backend.asarray(x_np, dtype="float64"), training=True)
        dx, grads = layer.backward(backend.asarray(dy_np, dtype="float64"), cache)
    assert grads == {}
    assert _rel_error(backend.to_numpy(y), yt.detach().numpy()) <= 1e-10
    assert _rel_error(backend.to_numpy(dx), xt.grad.numpy()) <= 1e-10
    assert layer.compute_output_shape((None, 4)) == (None, *yt.shape[1:])


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


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # exponential's inf
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_extreme_inputs_stay_finite(backend: Any, case: str, dtype: str) -> None:
    """Finite at |x| <= 1e4; exponential is exp: inf past log(max float), never NaN."""
    x = np.array([[-1e4, -30.0, 0.5, 1e4], [30.0, 1e4, -0.5, -1e4], [0.0, -1e4, 1e4, 30.0]])
    layer = CASES[case][0]()
    y, cache = layer.forward(backend.asarray(x, dtype=dtype), training=True)
    dx, _ = layer.backward(backend.asarray(np.ones(tuple(y.shape)), dtype=dtype), cache)
    y, dx = backend.to_numpy(y), backend.to_numpy(dx)
    if case == "activation_exponential":
        assert not np.isnan(y).any() and not np.isnan(dx).any()
        assert (np.isinf(y) == (x == 1e4)).all() and (np.isinf(dx) == (x == 1e4)).all()
    else:
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))


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
    with pytest.raises(ValueError, match="unknown activation 'relu7'.*valid names.*mish"):
        L.Activation("relu7")
    with pytest.raises(ValueError, match="unknown activation 'mysh'"):
        L.Dense(4, activation="mysh")
    with pytest.raises(ValueError, match=r"max_value must be >= 0\. Received: max_value=-6"):
        L.ReLU(max_value=-6)
    with pytest.raises(ValueError, match=r"threshold must be >= 0\. Received: threshold=-1"):
        L.ReLU(threshold=-1)
    with pytest.raises(ValueError, match="negative_slope must be >= 0"):
        L.ReLU(negative_slope=-0.1)
    with pytest.raises(ValueError, match=r"max_value must be > threshold \(1\.0\)"):
        L.ReLU(max_value=0.5, threshold=1.0)
    with pytest.raises(TypeError, match="approximate must be True or False"):
        L.GELU(approximate="tanh")
    for make in (lambda: L.Dense(4, activation="glu"), lambda: L.SimpleRNN(4, activation="glu")):
        with pytest.raises(ValueError, match=r"'glu' halves the last axis.*Activation\('glu'\)"):
            make()
    with pytest.raises(ValueError, match="glu needs an even last axis"):
        L.Activation("glu").compute_output_shape((None, 5))
    with pytest.raises(ValueError, match=r"glu splits axis -1.*even"):
        L.Activation("glu")(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="alpha must be a real number"):
        L.LeakyReLU(alpha="big")
    with pytest.raises(ValueError, match="alpha"):
        L.ELU(alpha=float("nan"))
    with pytest.raises(TypeError, match="axis must be an int"):
        L.Softmax(axis=1.5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case: str) -> None:
    layer = CASES[case][0]()
    layer.build((None, 6))
    config = layer.get_config()
    clone = L.layer_from_config(type(layer).__name__, config)
    assert type(clone) is type(layer) and clone.get_config() == config
    assert clone.activation == layer.activation and clone.options() == layer.options()
    assert clone.built and clone.input_shape == (None, 6)
    x = _inputs((2, 6))
    np.testing.assert_array_equal(pnn.to_numpy(clone(x)), pnn.to_numpy(layer(x)))


def test_get_by_name_and_config() -> None:
    assert isinstance(L.get("relu"), L.ReLU)
    assert isinstance(L.get("log_softmax"), L.Activation)
    assert L.get("silu").activation == "silu"
    assert L.get("mish").activation == "mish" and L.get("Hard_Swish").activation == "hard_swish"
    relu6 = L.get({"class_name": "ReLU", "config": {"max_value": 6.0}})
    assert relu6.get_config()["max_value"] == 6.0 and repr(relu6).startswith("ReLU(max_value=6.0")
    assert L.get({"class_name": "GELU", "config": {"approximate": True}}).approximate is True
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


@pytest.mark.parametrize("name", NEW_NAMES)
def test_dense_fuses_each_new_activation(backend: Any, name: str) -> None:
    """``Dense(4, activation=name)`` equals ``Dense(4)`` then ``Activation(name)`` (same weights),
    forward and backward, in float64."""
    with backend.use("float64"):
        fused = L.Dense(4, activation=name, seed=0)
        plain, act = L.Dense(4, seed=0), L.Activation(name)
        x = backend.asarray(_inputs((5, 3)), dtype="float64")
        dy = backend.asarray(np.random.default_rng(1).normal(size=(5, 4)), dtype="float64")
        y, cache = fused.forward(x, training=True)
        dx, grads = fused.backward(dy, cache)
        z, plain_cache = plain.forward(x, training=True)
        y_ref, act_cache = act.forward(z, training=True)
        dz, _ = act.backward(dy, act_cache)
        dx_ref, grads_ref = plain.backward(dz, plain_cache)
    for got, ref in [(y, y_ref), (dx, dx_ref), *((grads[k], grads_ref[k]) for k in grads)]:
        backend.assert_same_place(got)
        np.testing.assert_allclose(backend.to_numpy(got), backend.to_numpy(ref), rtol=1e-13)
    assert fused.get_config()["activation"] == (None if name == "linear" else name)


def test_glu_in_a_model_halves_the_features(backend: Any) -> None:
    """``Dense(2 * units)`` then ``Activation("glu")``: shapes flow through a Sequential."""
    model = pnn.Sequential([L.Dense(6, seed=0), L.Activation("glu"), L.Dense(1, seed=1)])
    model.build((None, 4))
    assert model.layers[1].compute_output_shape((None, 6)) == (None, 3)
    y = model.predict(backend.asarray(_inputs((5, 4)), dtype="float32"))
    backend.assert_same_place(y)
    assert tuple(y.shape) == (5, 1)
