"""Sequential: dotted names, state dicts, validation, summary, config, forward/backward chaining."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.backend import namespace_of
from portable_nn.layers.base import Layer

# -- tiny layers written against the Layer contract (independent of pnn.layers) ----------------


class SeqTestAffine(Layer):
    """y = x @ W + b with W drawn on the host from the global generator."""

    def __init__(self, units: int, **kwargs: Any) -> None:
        self.units = units
        super().__init__(**kwargs)

    def build(self, input_shape: tuple) -> None:
        host = pnn.random.get_generator().host
        weight = host.normal((int(input_shape[-1]), self.units), 0.0, 0.5, "float64")
        bias = host.normal((self.units,), 0.0, 0.1, "float64")
        self.params = {"weight": pnn.asarray(weight), "bias": pnn.asarray(bias)}
        super().build(input_shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], self.units)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        self.ensure_built(x)
        xp = namespace_of(x)
        return xp.matmul(x, self.params["weight"]) + self.params["bias"], x

    def backward(self, dy: Any, x: Any) -> tuple[Any, dict[str, Any]]:
        xp = namespace_of(dy)
        grads = {"weight": xp.matmul(x.T, dy), "bias": xp.sum(dy, axis=0)}
        return xp.matmul(dy, self.params["weight"].T), grads

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


class SeqTestTanh(Layer):
    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        y = namespace_of(x).tanh(x)
        return y, y

    def backward(self, dy: Any, y: Any) -> tuple[Any, dict[str, Any]]:
        return dy * (1.0 - y * y), {}  # dL/dx = dy (1 - tanh^2)


class SeqTestRunningMean(Layer):
    """Identity that tracks a running mean of its inputs in training mode (a buffer)."""

    def build(self, input_shape: tuple) -> None:
        backend = pnn.get_backend()
        shape = (int(input_shape[-1]),)
        self.bufs = {
            "running_mean": backend.xp.zeros(shape, dtype=backend.dtype, device=backend.device)
        }
        super().build(input_shape)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        self.ensure_built(x)
        if training:
            mean = namespace_of(x).mean(x, axis=0)
            self.bufs["running_mean"] = 0.9 * self.bufs["running_mean"] + 0.1 * mean
        return x, None

    def backward(self, dy: Any, cache: Any) -> tuple[Any, dict[str, Any]]:
        return dy, {}


def make_model(name: str | None = None) -> pnn.Sequential:
    return pnn.Sequential(
        [SeqTestAffine(4, input_shape=(3,)), SeqTestTanh(), SeqTestRunningMean(), SeqTestAffine(2)],
        name=name,
    )


def host_state(model: pnn.Sequential) -> dict[str, np.ndarray]:
    return {k: np.array(pnn.to_numpy(v)) for k, v in model.state_dict().items()}


def data(backend: Any, n: int = 5, features: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, features)).astype("float32")


# -- names and state ---------------------------------------------------------------------------


def test_dotted_names(backend: Any) -> None:
    model = make_model()
    assert list(model.parameters()) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert list(model.buffers()) == ["2.running_mean"]
    assert list(model.state_dict()) == [
        "0.weight",
        "0.bias",
        "2.running_mean",
        "3.weight",
        "3.bias",
    ]
    assert model.parameters()["3.weight"] is model.layers[3].params["weight"]
    for value in model.state_dict().values():
        backend.assert_same_place(value)


def test_nested_names_and_grads(backend: Any) -> None:
    inner = pnn.Sequential([SeqTestAffine(4), SeqTestTanh()])
    model = pnn.Sequential([SeqTestAffine(3, input_shape=(2,)), inner, SeqTestAffine(1)])
    assert list(model.parameters()) == [
        "0.weight", "0.bias", "1.0.weight", "1.0.bias", "2.weight", "2.bias"
    ]  # fmt: skip
    x = backend.asarray(data(backend, features=2))
    y, caches = model.forward(x, training=True)
    _, grads = model.backward(backend.xp.ones_like(y), caches)
    assert list(grads) == list(model.parameters())
    new = {"1.0.bias": backend.xp.zeros((4,), dtype=backend.xp.float32, device=backend.dev)}
    model.set_parameters(new)
    assert np.all(backend.to_numpy(inner.layers[0].params["bias"]) == 0.0)


def test_buffers_visible_after_training_forward(backend: Any) -> None:
    model = make_model()
    x_host = data(backend)
    x = backend.asarray(x_host)
    before = backend.to_numpy(model.buffers()["2.running_mean"])
    model.forward(x, training=True)
    after = backend.to_numpy(model.buffers()["2.running_mean"])
    hidden = np.tanh(
        x_host @ backend.to_numpy(model.parameters()["0.weight"])
        + backend.to_numpy(model.parameters()["0.bias"])
    )
    np.testing.assert_allclose(
        after, 0.9 * before + 0.1 * hidden.mean(axis=0), rtol=1e-5, atol=1e-6
    )
    model.forward(x, training=False)
    np.testing.assert_array_equal(backend.to_numpy(model.buffers()["2.running_mean"]), after)


def test_state_dict_round_trip(backend: Any) -> None:
    source, target = make_model(), make_model()
    x = backend.asarray(data(backend))
    source.forward(x, training=True)  # non-zero running mean
    assert not np.allclose(backend.to_numpy(source(x)), backend.to_numpy(target(x)))
    target.load_state_dict(source.state_dict())
    np.testing.assert_array_equal(backend.to_numpy(source(x)), backend.to_numpy(target(x)))
    for key, value in host_state(source).items():
        np.testing.assert_array_equal(host_state(target)[key], value)
    partial = make_model()
    partial.set_parameters(source.parameters())
    assert set(partial.parameters()) == set(source.parameters())
    np.testing.assert_array_equal(host_state(partial)["3.bias"], host_state(source)["3.bias"])


def _foreign(backend: Any, host: np.ndarray) -> Any:
    """The same values in another namespace or on another device."""
    if backend.name == "numpy":
        torch = pytest.importorskip("torch")
        return torch.asarray(host)
    if backend.name == "array_api_strict":  # same library, another device
        import array_api_strict

        other = "CPU_DEVICE" if backend.device == "device1" else "device1"
        return array_api_strict.asarray(host, device=array_api_strict.Device(other))
    return np.asarray(host)


def _bad_entries(backend: Any, model: pnn.Sequential) -> list[tuple[str, Any, str]]:
    xp, dev = backend.xp, backend.dev
    good = host_state(model)
    return [
        ("9.weight", xp.zeros((3, 4), dtype=xp.float32, device=dev), "9.weight"),
        ("0.nonsense", xp.zeros((3, 4), dtype=xp.float32, device=dev), "0.nonsense"),
        ("3.weight", xp.zeros((2, 4), dtype=xp.float32, device=dev), "3.weight"),
        ("3.bias", xp.zeros((2,), dtype=xp.float64, device=dev), "3.bias"),
        ("3.bias", _foreign(backend, good["3.bias"]), "3.bias"),
    ]


@pytest.mark.parametrize("case", range(5))
def test_bad_load_names_entry_and_changes_nothing(backend: Any, case: int) -> None:
    model, other = make_model(), make_model()
    before = host_state(model)
    key, value, named = _bad_entries(backend, model)[case]
    values = {**other.state_dict(), key: value}  # valid entries first, the bad one last
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        model.load_state_dict(values)
    params = {**other.parameters(), key: value}
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        model.set_parameters(params)
    after = host_state(model)
    for name, array in before.items():
        np.testing.assert_array_equal(after[name], array)


def test_strict_load_reports_missing(backend: Any) -> None:
    model = make_model()
    values = model.state_dict()
    del values["2.running_mean"]
    with pytest.raises(ValueError, match="running_mean"):
        model.load_state_dict(values)
    model.load_state_dict(values, strict=False)  # fine when not strict


def test_unbuilt_model_refuses_loads_and_summary(backend: Any) -> None:
    model = pnn.Sequential([SeqTestAffine(2)])
    assert not model.built
    with pytest.raises(ValueError, match="build"):
        model.load_state_dict({})
    with pytest.raises(ValueError, match="build"):
        model.summary(print_fn=None)
    model.build((None, 5))
    assert model.built and tuple(model.parameters()["0.weight"].shape) == (5, 2)
    with pytest.raises(ValueError, match=r"\(None, 5\).*\(None, 4\)"):
        model.build((None, 4))  # already built for 5 features


def test_lazy_build_on_first_forward(backend: Any) -> None:
    model = pnn.Sequential([SeqTestAffine(4), SeqTestTanh(), SeqTestAffine(2)])
    y = model(backend.asarray(data(backend, features=6)))
    assert tuple(y.shape) == (5, 2) and model.built
    assert model.input_shape == (None, 6)
    with pytest.raises(ValueError, match=r"\(None, 6\)"):
        model(backend.asarray(data(backend, features=5)))


# -- structure ---------------------------------------------------------------------------------


def test_add_checks(backend: Any) -> None:
    model = pnn.Sequential()
    with pytest.raises(TypeError, match="Layer"):
        model.add("dense")  # type: ignore[arg-type]
    layer = SeqTestAffine(3, input_shape=(2,))
    model.add(layer)
    with pytest.raises(ValueError, match="already"):
        model.add(layer)
    with pytest.raises(ValueError, match=r"\(None, 7\)"):
        model.add(SeqTestAffine(1, input_shape=(7,)))
    model.add(SeqTestAffine(5))  # built at once for the current output (None, 3)
    assert tuple(model.layers[1].params["weight"].shape) == (3, 5)
    assert len(model) == 2 and model[1] is model.layers[1]
    with pytest.raises(ValueError, match="no layers"):
        pnn.Sequential().forward(backend.asarray(data(backend)))


def test_summary_counts(backend: Any) -> None:
    model = make_model(name="tiny")
    lines: list[str] = []
    text = model.summary(print_fn=lines.append)
    assert lines == [text]
    assert 'Model: "tiny"' in text
    # 3*4+4 = 16, 4 buffer entries, 4*2+2 = 10
    rows = [line.split() for line in text.splitlines()]
    counts = {row[0]: row[-1] for row in rows if row and row[0].isdigit()}
    assert counts == {"0": "16", "1": "0", "2": "4", "3": "10"}
    assert "Total params: 30" in text
    assert "Trainable params: 26" in text
    assert "Non-trainable params: 4" in text
    assert "(None, 4)" in text and "(None, 2)" in text
    assert "SeqTestAffine" in text


def test_config_round_trip(backend: Any) -> None:
    model = make_model(name="net")
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["name"] == "net"
    assert [item["class_name"] for item in config["layers"]] == [
        "SeqTestAffine", "SeqTestTanh", "SeqTestRunningMean", "SeqTestAffine"
    ]  # fmt: skip
    rebuilt = pnn.Sequential.from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.built
    rebuilt.load_state_dict(model.state_dict())
    x = backend.asarray(data(backend))
    np.testing.assert_array_equal(backend.to_numpy(rebuilt(x)), backend.to_numpy(model(x)))
    nested = pnn.Sequential([model, SeqTestAffine(1)])
    again = pnn.Sequential.from_config(json.loads(json.dumps(nested.get_config())))
    assert again.get_config() == nested.get_config()
    assert isinstance(again.layers[0], pnn.Sequential)


# -- forward / backward ------------------------------------------------------------------------


def test_forward_backward_equal_layer_by_layer(backend: Any) -> None:
    model = make_model()
    x = backend.asarray(data(backend))
    y, caches = model.forward(x, training=False)
    h, manual_caches = x, []
    for layer in model.layers:
        h, cache = layer.forward(h, training=False)
        manual_caches.append(cache)
    np.testing.assert_array_equal(backend.to_numpy(y), backend.to_numpy(h))
    backend.assert_same_place(y)
    dy = backend.asarray(np.random.default_rng(3).normal(size=(5, 2)).astype("float32"))
    dx, grads = model.backward(dy, caches)
    g = dy
    for i in range(len(model.layers) - 1, -1, -1):
        g, layer_grads = model.layers[i].backward(g, manual_caches[i])
        for key, value in layer_grads.items():
            np.testing.assert_array_equal(
                backend.to_numpy(grads[f"{i}.{key}"]), backend.to_numpy(value)
            )
    np.testing.assert_array_equal(backend.to_numpy(dx), backend.to_numpy(g))
    assert set(grads) == set(model.parameters())


def _torch_reference(weights: dict[str, np.ndarray], x: np.ndarray, dy: np.ndarray) -> dict:
    torch = pytest.importorskip("torch")
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = torch.tanh(tx @ t["0.weight"] + t["0.bias"]) @ t["3.weight"] + t["3.bias"]
    y.backward(torch.tensor(dy, dtype=torch.float64))
    out = {k: v.grad.numpy() for k, v in t.items()}
    return {"y": y.detach().numpy(), "dx": tx.grad.numpy(), **out}


def test_matches_torch_float64(backend: Any) -> None:
    rng = np.random.default_rng(7)
    x_host, dy_host = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    with backend.use("float64"):
        model = make_model()
        x, dy = backend.asarray(x_host, "float64"), backend.asarray(dy_host, "float64")
        y, caches = model.forward(x, training=True)
        dx, grads = model.backward(dy, caches)
    weights = {k: backend.to_numpy(v) for k, v in model.parameters().items()}
    ref = _torch_reference(weights, x_host, dy_host)
    ours = {"y": y, "dx": dx, **grads}
    for key, expected in ref.items():
        got = backend.to_numpy(ours[key])
        assert got.dtype == np.float64, key
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=key)


def test_dense_mlp_matches_torch_float64(backend: Any) -> None:
    """A 3-layer MLP of pnn.layers.Dense: forward, dx and every parameter gradient vs autograd."""
    torch = pytest.importorskip("torch")
    from portable_nn.layers import Dense

    rng = np.random.default_rng(11)
    x_host, dy_host = rng.normal(size=(7, 4)), rng.normal(size=(7, 3))
    with backend.use("float64"):
        model = pnn.Sequential(
            [Dense(6, activation="tanh"), Dense(5, activation="sigmoid"), Dense(3)]
        )
        x = backend.asarray(x_host, "float64")
        y, caches = model.forward(x, training=True)
        dx, grads = model.backward(backend.asarray(dy_host, "float64"), caches)
    weights = {
        k: torch.tensor(backend.to_numpy(v), requires_grad=True)
        for k, v in model.parameters().items()
    }
    tx = torch.tensor(x_host, requires_grad=True)
    h = torch.tanh(tx @ weights["0.weight"] + weights["0.bias"])
    h = torch.sigmoid(h @ weights["1.weight"] + weights["1.bias"])
    ty = h @ weights["2.weight"] + weights["2.bias"]
    ty.backward(torch.tensor(dy_host))
    reference = {"y": ty, "dx": tx.grad, **{k: v.grad for k, v in weights.items()}}
    ours = {"y": y, "dx": dx, **grads}
    assert set(ours) == set(reference)
    for key, expected in reference.items():
        got = backend.to_numpy(ours[key])
        assert got.dtype == np.float64, key
        np.testing.assert_allclose(
            got, expected.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=key
        )


def test_dense_summary(backend: Any) -> None:
    from portable_nn.layers import BatchNormalization, Dense, ReLU

    model = pnn.Sequential([Dense(16, input_dim=2), BatchNormalization(), ReLU(), Dense(1)])
    text = model.summary(print_fn=None)
    # 2*16+16 = 48; BatchNorm: gamma+beta 32 trainable, running mean/var 32 non-trainable; 17
    assert "Total params: 129" in text
    assert "Trainable params: 97" in text
    assert "Non-trainable params: 32" in text


def test_backward_without_input_gradient(backend: Any) -> None:
    """``input_grad=False`` (what training uses): same parameter gradients, no dL/dx."""
    from portable_nn.layers import Dense, Dropout

    x = backend.asarray(data(backend))
    for first in (Dense(4), SeqTestAffine(4)):  # skips dL/dx / cannot skip it
        model = pnn.Sequential([first, SeqTestTanh(), Dense(2)])
        assert model.skips_input_grad and not model.has_training_behaviour
        y, caches = model.forward(x, training=True)
        dy = backend.xp.ones_like(y)
        _, full = model.backward(dy, caches)
        dx, grads = model.backward(dy, caches, input_grad=False)
        assert dx is None and list(grads) == list(full)
        for key, value in full.items():
            np.testing.assert_array_equal(backend.to_numpy(grads[key]), backend.to_numpy(value))
    assert pnn.Sequential([Dense(2), Dropout(0.5)]).has_training_behaviour


def test_default_names_are_unique_and_keras_style():
    from portable_nn.layers.base import default_name

    assert default_name("BatchNormalization") == "batch_normalization"
    assert default_name("LeakyReLU") == "leaky_re_lu"
    first, second = pnn.layers.Dense(2), pnn.layers.Dense(2)
    assert first.name.startswith("dense") and second.name.startswith("dense_")
    assert first.name != second.name
    named = pnn.layers.Dense(2, name="head")
    assert named.name == "head"
    model = pnn.Sequential([first, second])
    assert pnn.Sequential.from_config(model.get_config()).layers[1].name == second.name
