"""Embedding, PositionEmbedding and sinusoidal positions on every backend: PyTorch equality
(float64, repeated indices), the native scatter-add against the one-hot reference, integer
dtypes, bad input, the once-per-call index check, training and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L
from portable_nn.backend.native import scatter_add
from portable_nn.layers import embedding as embedding_module

RNG = np.random.default_rng(7)
INTEGER_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def host(a: Any) -> np.ndarray:
    return np.asarray(pnn.to_numpy(a))


def indices(shape: tuple[int, ...], high: int, seed: int = 0) -> np.ndarray:
    """Indices with repeats (``high`` small next to the count) and both ends of the range."""
    x = np.random.default_rng(seed).integers(0, high, shape)
    x.flat[0], x.flat[-1] = 0, high - 1
    return x


@pytest.fixture(params=["native", "portable"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run Embedding's backward through the library's scatter-add or the one-hot matmul."""
    if request.param == "portable":
        monkeypatch.setattr(embedding_module, "_add_rows", lambda xp: embedding_module.one_hot_rows)
    return request.param


# -- Embedding maths -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 6), (7,), (2, 3, 5)])
def test_embedding_matches_torch_float64(backend: Any, path: str, shape: tuple[int, ...]) -> None:
    """Outputs and dL/dW equal to ``torch.nn.Embedding`` (float64), indices repeating."""
    torch = pytest.importorskip("torch")
    x = indices(shape, 5)
    assert len(np.unique(x)) < x.size  # repeats: rows of dW accumulate
    with backend.use("float64"):
        layer = L.Embedding(5, 3, seed=1)
        y, cache = layer.forward(backend.asarray(x), training=True)
        dy = RNG.standard_normal((*shape, 3))
        dx, grads = layer.backward(backend.asarray(dy), cache)
    weight = host(layer.params["weight"])
    reference = torch.nn.Embedding(5, 3, dtype=torch.float64)
    with torch.no_grad():
        reference.weight.copy_(torch.as_tensor(weight.copy()))
    y_ref = reference(torch.as_tensor(x))
    y_ref.backward(torch.as_tensor(dy))
    assert dx is None and sorted(grads) == ["weight"]
    np.testing.assert_allclose(host(y), y_ref.detach().numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(host(grads["weight"]), reference.weight.grad.numpy(), atol=1e-12)
    for out in (y, grads["weight"]):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float64


def test_native_scatter_add_equals_one_hot(backend: Any) -> None:
    """The library's scatter-add (where it has one) equals the portable one-hot matmul."""
    xp = backend.xp
    add_rows = scatter_add(xp)
    if add_rows is None:
        pytest.skip(f"{backend.id}: no native scatter-add (the one-hot matmul is the default)")
    idx = backend.asarray(indices((300,), 17).astype("int64"))
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        values = backend.asarray(RNG.standard_normal((300, 4)), dtype)
        native = add_rows(idx, values, 17)
        portable = embedding_module.one_hot_rows(idx, values, 17)
        backend.assert_same_place(native)
        assert native.dtype == values.dtype and tuple(native.shape) == (17, 4)
        np.testing.assert_allclose(host(native), host(portable), rtol=tol, atol=tol)


def test_embedding_weight_gradcheck(backend: Any) -> None:
    """dL/dW by central differences (function mode: the indices have no gradient)."""
    x = indices((3, 4), 6)
    with backend.use("float64"):
        layer = L.Embedding(6, 2, seed=0)
        xb = backend.asarray(x)
        layer.build((None, 4))

        def forward(w: Any) -> Any:
            layer.params["weight"] = w
            return layer.forward(xb)[0]

        def backward(dy: Any, w: Any) -> Any:
            layer.params["weight"] = w
            return layer.backward(dy, layer.forward(xb)[1])[1]["weight"]

        result = pnn.gradcheck(forward, layer.params["weight"], backward=backward)
    assert result.ok


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
def test_every_integer_dtype(backend: Any, dtype: str) -> None:
    x = indices((3, 4), 7)
    layer = L.Embedding(7, 2, mask_zero=True, seed=0)
    try:
        xb = backend.asarray(x.astype(dtype))
    except (TypeError, ValueError, RuntimeError) as exc:  # a library without this dtype
        pytest.skip(f"{backend.id} cannot hold {dtype}: {exc}")
    y, cache = layer.forward(xb, training=True)
    expected = host(layer.params["weight"])[x]
    np.testing.assert_array_equal(host(y), expected)
    _, grads = layer.backward(backend.asarray(np.ones((3, 4, 2), "float32")), cache)
    np.testing.assert_allclose(host(grads["weight"])[:, 0], np.bincount(x.ravel(), minlength=7))
    np.testing.assert_array_equal(host(layer.compute_mask(xb, None)), x != 0)
    assert not [c for c in layer.input_checks("x", xb) if not bool(c[0])]


def test_float_or_bool_input_is_type_error_and_builds_nothing(backend: Any) -> None:
    layer = L.Embedding(5, 2)
    for bad in (np.zeros((2, 3), "float32"), np.zeros((2, 3), bool)):
        with pytest.raises(TypeError, match="integer"):
            layer.forward(backend.asarray(bad))
        assert not layer.built and layer.params == {}


def test_constructor_checks_config_and_mask() -> None:
    for kwargs, error in [
        (dict(input_dim=0, output_dim=2), "input_dim=0"),
        (dict(input_dim=3, output_dim=-1), "output_dim=-1"),
        (dict(input_dim=3, output_dim=2, mask_zero=1), "mask_zero"),
        (dict(input_dim=3, output_dim=2, embeddings_initializer="nope"), "nope"),
    ]:
        with pytest.raises((TypeError, ValueError), match=error):
            L.Embedding(**kwargs)
    layer = L.Embedding(9, 4, mask_zero=True, seed=3, name="words")
    config = json.loads(json.dumps(layer.get_config()))
    assert config == {
        "name": "words",
        "input_dim": 9,
        "output_dim": 4,
        "embeddings_initializer": "uniform",
        "mask_zero": True,
        "seed": 3,
    }
    clone = L.Embedding.from_config(config)
    assert clone.get_config() == config
    assert (
        repr(clone) == "Embedding(input_dim=9, output_dim=4, mask_zero=True, seed=3, name='words')"
    )
    assert L.Embedding(3, 2).compute_mask(np.array([[0, 1]]), None) is None
    assert layer.compute_output_shape((None, 7)) == (None, 7, 4)


def test_seeded_uniform_init_is_the_same_everywhere(backend: Any) -> None:
    weight = host(L.Embedding(4, 3, seed=5).forward(backend.asarray(np.zeros((1, 2), "int64")))[0])
    with pnn.use_backend("numpy"):
        reference = host(pnn.init.uniform((4, 3), seed=pnn.random.Generator(5)))
    np.testing.assert_array_equal(weight[0, 0], reference[0])
    assert np.all(np.abs(reference) <= 0.05)


# -- PositionEmbedding and sinusoidal positions ------------------------------------------------
def test_position_embedding_adds_the_first_rows_and_gradchecks(backend: Any) -> None:
    with backend.use("float64"):
        layer = L.PositionEmbedding(6, seed=2)
        x = RNG.uniform(-1, 1, (3, 4, 5))
        y, cache = layer.forward(backend.asarray(x))
        weight = host(layer.params["weight"])
        assert weight.shape == (6, 5)
        np.testing.assert_allclose(host(y), x + weight[:4], atol=1e-15)
        dy = RNG.standard_normal((3, 4, 5))
        dx, grads = layer.backward(backend.asarray(dy), cache)
        np.testing.assert_array_equal(host(dx), dy)
        np.testing.assert_allclose(host(grads["weight"])[:4], dy.sum(axis=0), atol=1e-12)
        np.testing.assert_array_equal(host(grads["weight"])[4:], 0.0)
        assert pnn.gradcheck(layer, backend.asarray(x)).ok


def test_position_embedding_lengths(backend: Any) -> None:
    """One layer serves every length up to max_length (a graph input with free steps)."""
    layer = L.PositionEmbedding(5, seed=0)
    model = pnn.Model(inp := pnn.Input((None, 2)), layer(inp))
    weight = host(layer.params["weight"])
    for steps in (1, 5):
        x = np.ones((2, steps, 2), "float32")
        expected = np.broadcast_to(1.0 + weight[:steps], (2, steps, 2))
        np.testing.assert_allclose(host(model(backend.asarray(x))), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="6 steps, more than max_length=5"):
        model(backend.asarray(np.ones((2, 6, 2), "float32")))
    with pytest.raises(ValueError, match="6 steps"):
        L.PositionEmbedding(5).build((None, 6, 2))
    with pytest.raises(ValueError, match="features"):
        L.PositionEmbedding(5).build((None, 6))
    config = L.PositionEmbedding(5, "zeros", seed=1, name="pos").get_config()
    assert config == {"name": "pos", "max_length": 5, "initializer": "zeros", "seed": 1}


@pytest.mark.parametrize(("length", "dim"), [(50, 16), (7, 5), (1, 1), (0, 4)])
def test_sinusoidal_positions_match_the_formula(backend: Any, length: int, dim: int) -> None:
    position = np.arange(length)[:, None]
    angle = position / np.power(10000.0, (2 * (np.arange(dim) // 2)) / dim)
    expected = np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))
    for dtype, atol in (("float64", 1e-12), ("float32", 2e-5)):
        with backend.use(dtype):
            table = pnn.functional.sinusoidal_positions(length, dim)
        backend.assert_same_place(table)
        assert table.dtype == getattr(backend.xp, dtype) and tuple(table.shape) == (length, dim)
        np.testing.assert_allclose(host(table), expected, rtol=0, atol=atol)
    if length > 1 and dim > 1:  # Vaswani et al.: PE(1, 0) = sin(1), PE(1, 1) = cos(1)
        np.testing.assert_allclose(expected[1, :2], [np.sin(1.0), np.cos(1.0)])
    with pytest.raises(ValueError, match="dim=0"):
        pnn.functional.sinusoidal_positions(3, 0)


# -- in models ---------------------------------------------------------------------------------
def sequence_data(n: int = 96, steps: int = 8, vocab: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 when token 1 appears; zero padding at the end of every row."""
    rng = np.random.default_rng(3)
    x = rng.integers(2, vocab, (n, steps))
    y = rng.integers(0, 2, n)
    x[y == 1, rng.integers(0, steps - 2, int(y.sum()))] = 1
    lengths = rng.integers(steps - 2, steps + 1, n)
    x[np.arange(steps) >= lengths[:, None]] = 0
    return x, y


def text_model(vocab: int = 12, steps: int = 8) -> pnn.Sequential:
    return pnn.Sequential(
        [
            L.Embedding(vocab, 8, mask_zero=True, seed=0),
            L.PositionEmbedding(steps, seed=1),
            L.LayerNormalization(),
            L.Dropout(0.1, seed=2),
            L.Dense(8, activation="relu", seed=3),
            L.GlobalAveragePooling1D(),
            L.Dense(2, seed=4),
        ]
    )


def test_fit_an_embedding_model(backend: Any) -> None:
    x, y = sequence_data()
    model = text_model()
    loss = pnn.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(loss=loss, optimizer=pnn.optimizers.Adam(0.05), metrics=["accuracy"])
    history = model.fit(
        x.astype("int32"), y, epochs=10, batch_size=16, verbose=0, seed=0, validation_split=0.25
    ).history
    assert history["loss"][-1] < 0.5 * history["loss"][0], history["loss"]
    assert model.evaluate(x, y)["accuracy"] > 0.8
    probabilities = model.predict(backend.asarray(x))
    backend.assert_same_place(probabilities)
    assert tuple(probabilities.shape) == (96, 2)


def test_out_of_range_index_is_value_error_naming_it(backend: Any) -> None:
    x, y = sequence_data(32)
    model = text_model()
    model.compile(loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    model.build((None, 8))
    before = {k: host(v).copy() for k, v in model.state_dict().items()}
    for bad_value, where in ((12, 0), (-1, 5), (200, 17)):  # the first batch too: no IndexError
        bad = x.copy()
        bad.flat[where] = bad_value
        message = f"index {bad_value} .at flat position {where}.*input_dim=12"
        with pytest.raises(ValueError, match=message):
            model.fit(backend.asarray(bad), y, epochs=1, verbose=0)
        with pytest.raises(ValueError, match=f"validation x: {message}"):
            model.fit(x, y, validation_data=(bad, y), verbose=0)
        with pytest.raises(ValueError, match=message):
            model.evaluate(bad, y)
        with pytest.raises(ValueError, match=message):
            model.predict(backend.asarray(bad))
    with pytest.raises(TypeError, match="x must hold integers"):
        model.fit(x.astype("float32"), y, verbose=0)
    for key, value in model.state_dict().items():  # nothing changed
        np.testing.assert_array_equal(host(value), before[key])
    assert model.optimizer.iterations == 0 and model.epoch == 0
    with pytest.raises(ValueError, match="index 12"):  # host batches from a generator: each
        model.fit(iter([(x, y), (np.full_like(x, 12), y)]), epochs=1, verbose=0)


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_fit_reads_one_value_per_epoch(monkeypatch: pytest.MonkeyPatch, library: str) -> None:
    """The index check joins the once-per-call data check: no read per batch."""
    from test_training import ReadCounter, _array_type

    counter = ReadCounter(monkeypatch, _array_type(library))
    x, y = sequence_data()
    with pnn.use_backend(library):
        model = text_model()
        model.compile(
            loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam"
        )
        xt, yt = pnn.asarray(x), pnn.asarray(y)
        counter.n = 0
        model.fit(xt, yt, epochs=3, batch_size=8, verbose=0, validation_split=0.25)
        fit_reads, counter.n = counter.n, 0
        model.evaluate(xt, yt, batch_size=8)
        evaluate_reads, counter.n = counter.n, 0
        model.predict(xt, batch_size=8)
        predict_reads = counter.n
    assert fit_reads <= 1 + 3, fit_reads
    assert evaluate_reads <= 2, evaluate_reads
    assert predict_reads <= 2, predict_reads  # the index check and the result's transfer


def test_checkpoint_round_trip(backend: Any, tmp_path: Path) -> None:
    x, y = sequence_data(32)
    model = text_model()
    model.compile(loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "text.safetensors")
    loaded = pnn.load_model(tmp_path / "text.safetensors")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(host(loaded.predict(x)), host(model.predict(x)))
    assert loaded.layers[0].mask_zero and loaded.layers[1].max_length == 8


def test_graph_model_with_token_input(backend: Any) -> None:
    """An Embedding reading a graph input; the int input has no gradient (dx None)."""
    tokens = pnn.Input((8,), name="tokens")
    h = L.Embedding(12, 4, seed=0, name="emb")(tokens)
    h = L.Add()([h, L.Dense(4, seed=1)(h)])
    model = pnn.Model(tokens, L.Dense(2, seed=2)(L.GlobalAveragePooling1D()(h)))
    assert model.input_rules()[0].kind == "integral"
    x, y = sequence_data(32)
    _, cache = model.forward(backend.asarray(x))
    dx, grads = model.backward(backend.asarray(np.ones((32, 2), "float32")), cache)
    assert dx is None and tuple(grads["emb.weight"].shape) == (12, 4)
    model.compile(loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="tokens.*index 12|index 12"):
        model.evaluate(np.full_like(x, 12), y)
