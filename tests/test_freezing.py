"""``layer.trainable = False`` (Keras): frozen weights and their (absent) optimizer slots stay
bitwise unchanged through ``fit``, a frozen BatchNormalization normalises with its running
statistics, freezing and unfreezing between fits needs no recompile, containers pass the flag
on, configs and checkpoints keep it, the summary counts it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L

RNG = np.random.default_rng(5)
X, Y = RNG.standard_normal((32, 4)), RNG.standard_normal((32, 1))


def host(a: Any) -> np.ndarray:
    return np.array(pnn.to_numpy(a))


def snapshot(model: Any) -> dict[str, np.ndarray]:
    return {k: host(v) for k, v in model.state_dict().items()}


def model_of(jit: Any = "auto") -> pnn.Sequential:
    pnn.seed(0)
    model = pnn.Sequential(
        [L.Dense(8, activation="relu"), L.BatchNormalization(), L.Dropout(0.1), L.Dense(1)]
    )
    model.compile(loss="mse", optimizer="adam", jit=jit)
    return model


def test_frozen_layers_and_slots_stay_bitwise(backend) -> None:
    model = model_of()
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    model.layers[0].trainable = False
    model.layers[1].trainable = False
    before = snapshot(model)
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    after = snapshot(model)
    for name in ("0.weight", "0.bias", "1.gamma", "1.beta", "1.running_mean", "1.running_var"):
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert not np.array_equal(after["3.weight"], before["3.weight"])
    slots = {name.split(".")[0] for name in model.optimizer._state if name != "step"}
    assert slots == {"3"}  # no optimizer slots for the frozen layers
    assert sorted(model.trainable_parameters()) == ["3.bias", "3.weight"]
    assert len(model.parameters()) == 6  # parameters() still lists every weight


def test_frozen_batch_normalization_runs_in_inference_mode(backend) -> None:
    norm = L.BatchNormalization()
    x = backend.asarray(RNG.standard_normal((16, 3)) * 3.0 + 1.0, "float32")
    norm.forward(x, training=True)  # running statistics move once
    norm.trainable = False
    stats = {k: host(v) for k, v in norm.buffers().items()}
    trained, _ = norm.forward(x, training=True)
    inferred, _ = norm.forward(x, training=False)
    np.testing.assert_array_equal(host(trained), host(inferred))
    for name, value in norm.buffers().items():
        np.testing.assert_array_equal(host(value), stats[name])


def test_unfreezing_between_fits_and_the_step_count(backend) -> None:
    model = model_of()
    model.layers[0].trainable = False
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    assert model.optimizer.iterations == 4
    frozen = snapshot(model)["0.weight"]
    model.layers[0].trainable = True  # no recompile
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    assert model.optimizer.iterations == 8
    assert not np.array_equal(snapshot(model)["0.weight"], frozen)
    assert "0.weight" in model.optimizer._state


def test_freezing_a_model_freezes_every_layer_and_the_summary_counts(backend) -> None:
    inner = pnn.Sequential([L.Dense(3), L.Dense(2)])
    model = pnn.Sequential([L.Dense(4), inner, L.Dense(1)])
    model.compile(loss="mse", optimizer=pnn.optimizers.SGD(0.1))
    model.build((None, 4))
    inner.trainable = False
    assert all(not layer.trainable for layer in inner.layers)
    text = model.summary(print_fn=None)
    assert "Trainable params: 23" in text and "Non-trainable params: 23" in text
    before = snapshot(model)
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    after = snapshot(model)
    assert all(np.array_equal(after[k], before[k]) for k in before if k.startswith("1."))
    model.trainable = False
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)  # nothing to train: nothing changes
    assert all(np.array_equal(snapshot(model)[k], v) for k, v in after.items())
    assert "Trainable params: 0" in model.summary(print_fn=None)


def test_compiled_step_equals_eager_with_a_frozen_layer() -> None:
    pytest.importorskip("jax")
    runs = []
    with pnn.use_backend("jax"):
        for jit in (False, "auto"):
            model = model_of(jit)
            model.fit(X, Y, epochs=1, batch_size=8, verbose=0, seed=1)
            model.layers[0].trainable = False
            model.fit(X, Y, epochs=1, batch_size=8, verbose=0, seed=2)
            runs.append(snapshot(model))
    for name, value in runs[0].items():
        np.testing.assert_allclose(runs[1][name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_config_and_checkpoint_keep_trainable(backend, tmp_path) -> None:
    model = model_of()
    model.layers[0].trainable = False
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    config = model.get_config()
    assert config["layers"][0]["config"]["trainable"] is False
    assert "trainable" not in config["layers"][3]["config"]
    path = tmp_path / "frozen.safetensors"
    model.save(path)
    loaded = pnn.load_model(path)
    assert not loaded.layers[0].trainable and loaded.layers[3].trainable
    loaded.fit(X, Y, epochs=1, batch_size=8, verbose=0)  # resumes with the saved slots
    np.testing.assert_array_equal(snapshot(loaded)["0.weight"], snapshot(model)["0.weight"])
    with pytest.raises((TypeError, ValueError), match="trainable"):
        model.layers[0].trainable = "no"


def test_training_backward_stops_at_the_frozen_base(backend, monkeypatch) -> None:
    """A Sequential's training backward (``input_grad=False``) runs no backward below the
    lowest trainable layer: a frozen base costs a forward only; with ``input_grad=True``
    every layer runs and dL/dx comes back."""
    model = pnn.Sequential([L.Dense(5), L.ReLU(), L.Dense(5), L.Dense(1)])
    model.build((None, 4))
    model.layers[0].trainable = model.layers[2].trainable = False
    calls: list[str] = []
    for layer in model.layers:
        original = layer.backward

        def counted(*args: Any, _name: str = layer.name, _f: Any = original, **kw: Any) -> Any:
            calls.append(_name)
            return _f(*args, **kw)

        monkeypatch.setattr(layer, "backward", counted)
    _, caches = model.forward(backend.asarray(X, "float32"), training=True)
    dy = backend.asarray(np.ones((32, 1)), "float32")
    dx, grads = model.backward(dy, caches, input_grad=False)
    assert dx is None and sorted(grads) == ["3.bias", "3.weight"]
    assert calls == [model.layers[3].name]
    calls.clear()
    dx, grads = model.backward(dy, caches)
    assert len(calls) == 4 and tuple(dx.shape) == (32, 4) and len(grads) == 6
