"""Compiled train steps (``compile(jit="auto")``): the same results as the eager step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import BatchNormalization, Dense, Dropout

jax = pytest.importorskip("jax")  # most tests here are about jax.jit


def blobs(n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] - x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)


def model(jit: Any, optimizer: Any = None, dtype: str = "float32") -> pnn.Sequential:
    with pnn.use_backend("jax", dtype=dtype):
        pnn.seed(0)
        m = pnn.Sequential(
            [
                Dense(16, input_dim=6, activation="relu"),
                BatchNormalization(),
                Dropout(0.3),
                Dense(3),
            ]
        )
    loss = pnn.losses.SparseCategoricalCrossentropy(from_logits=True)
    m.compile(
        loss=loss, optimizer=optimizer or pnn.optimizers.Adam(0.01), metrics=["accuracy"], jit=jit
    )
    return m


def fit(m: pnn.Sequential, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> dict[str, list[float]]:
    args = dict(epochs=3, batch_size=16, verbose=0, validation_split=0.2, seed=3)
    return m.fit(x, y, **{**args, **kwargs}).history


def host(m: pnn.Sequential) -> dict[str, np.ndarray]:
    return {k: np.asarray(pnn.to_numpy(v)) for k, v in m.state_dict().items()}


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: pnn.optimizers.Adam(0.01),
        lambda: pnn.optimizers.SGD(pnn.optimizers.ExponentialDecay(0.1, 3, 0.5), momentum=0.9),
        lambda: pnn.optimizers.RMSprop(0.01, centered=True, clipnorm=1.0),
    ],
    ids=["adam", "sgd-schedule", "rmsprop-clipnorm"],
)
def test_compiled_fit_equals_eager_float32(optimizer: Any) -> None:
    """Dropout masks bitwise equal (same keys), arithmetic equal to float32 rounding."""
    x, y = blobs()
    eager, compiled = model(False, optimizer()), model("auto", optimizer())
    h_eager, h_compiled = fit(eager, x, y), fit(compiled, x, y)
    assert compiled._compiled() is not None and eager._compiled() is None
    assert list(h_compiled) == list(h_eager)  # same logs in the same order
    for key in h_eager:
        np.testing.assert_allclose(h_compiled[key], h_eager[key], rtol=1e-4, atol=1e-6)
    a, b = host(eager), host(compiled)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-5, err_msg=key)
    state_a, state_b = eager.optimizer.state_dict(), compiled.optimizer.state_dict()
    assert state_a["step"] == state_b["step"] == 3 * 5
    np.testing.assert_array_equal(
        eager.predict(x[:7]) > 0, compiled.predict(x[:7]) > 0
    )  # same decisions


def test_compiled_fit_equals_eager_float64() -> None:
    x, y = blobs()
    eager, compiled = model(False, dtype="float64"), model("auto", dtype="float64")
    h_eager, h_compiled = fit(eager, x, y), fit(compiled, x, y)
    for key in h_eager:
        np.testing.assert_allclose(h_compiled[key], h_eager[key], rtol=1e-10)
    a, b = host(eager), host(compiled)
    for key in a:
        scale = max(np.max(np.abs(a[key])), 1e-300)
        assert np.max(np.abs(b[key] - a[key])) <= 1e-10 * scale, key


def test_one_compilation_per_batch_length_and_kind() -> None:
    x, y = blobs()
    m = model("auto")
    fit(m, x, y, epochs=4)  # 80 training samples: batches of 16; 20 validation: 16 + 4
    assert sorted(m._compiled().cache) == [("test", 4), ("test", 16), ("train", 16)]
    m.predict(x, batch_size=32)  # 100 = 3 x 32 + 4
    assert ("predict", 32) in m._compiled().cache and ("predict", 4) in m._compiled().cache


def test_train_step_is_compiled_and_matches_eager() -> None:
    x, y = blobs(32)
    eager, compiled = model(False), model("auto")
    with pnn.use_backend("jax"):
        xb, yb = pnn.asarray(x), pnn.asarray(y)
        losses = [
            (float(eager.train_step(xb, yb)), float(compiled.train_step(xb, yb))) for _ in range(4)
        ]
    for a, b in losses:
        assert b == pytest.approx(a, rel=1e-5)
    assert ("train", 32) in compiled._compiled().cache


def test_resume_exactly_with_compiled_steps(tmp_path) -> None:
    x, y = blobs()
    straight = model("auto")
    full = fit(straight, x, y, epochs=3)
    first = model("auto")
    fit(first, x, y, epochs=1)
    path = tmp_path / "m.safetensors"
    first.save(path)
    with pnn.use_backend("jax"):
        resumed = pnn.load_model(path)
    rest = resumed.fit(
        x, y, epochs=3, batch_size=16, verbose=0, validation_split=0.2, initial_epoch=1
    ).history
    np.testing.assert_array_equal(rest["loss"], full["loss"][1:])  # exact: every step compiled
    for key, value in host(straight).items():
        np.testing.assert_array_equal(host(resumed)[key], value, err_msg=key)


def test_jit_arguments() -> None:
    m = pnn.Sequential([Dense(2, input_dim=3)])
    with pytest.raises(ValueError, match="jit must be one of"):
        m.compile(loss="mse", optimizer="sgd", jit="yes")
    m.compile(loss="mse", optimizer="sgd", jit=True)  # NumPy model: no compiled step
    with pytest.raises(ValueError, match="jit=True"):
        m.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), verbose=0)


def test_torch_compile_when_asked_equals_eager() -> None:
    """``jit=True`` on torch: the same pure step through ``torch.compile`` (slow to compile,
    off by default)."""
    pytest.importorskip("torch")
    x, y = blobs(48)
    histories = {}
    for jit in (False, True):
        with pnn.use_backend("torch"):
            pnn.seed(0)
            m = pnn.Sequential([Dense(8, input_dim=6, activation="relu"), Dropout(0.2), Dense(3)])
        loss = pnn.losses.SparseCategoricalCrossentropy(from_logits=True)
        m.compile(loss=loss, optimizer=pnn.optimizers.Adam(0.01), jit=jit)
        histories[jit] = m.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=1).history
        assert (m._compiled() is not None) == jit
    np.testing.assert_allclose(histories[True]["loss"], histories[False]["loss"], rtol=1e-5)
