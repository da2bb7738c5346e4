"""The masking contract (layers/base.py): masks made by ``Embedding(mask_zero=True)`` or given
as a boolean graph input travel through ``Sequential`` and ``Model`` (nested too), reach only
the layers with ``accepts_mask``, pass ``keeps_mask`` layers and stop at the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L


def host(a: Any) -> np.ndarray:
    return np.asarray(pnn.to_numpy(a))


class MaskTestRecorder(L.Layer):
    """The identity; records every mask its forward receives (``accepts_mask``) and keeps it."""

    accepts_mask = True
    keeps_mask = True
    seen: ClassVar[dict[str, list[Any]]] = {}

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> tuple[Any, Any]:
        self.ensure_built(x)
        MaskTestRecorder.seen.setdefault(self.name, []).append(mask)
        return x, tuple(x.shape)

    def backward(self, dy: Any, cache: Any) -> tuple[Any, dict[str, Any]]:
        return dy, {}


class MaskTestStrict(L.Layer):
    """Keeps the mask without ``accepts_mask``: its forward has no ``mask`` argument at all."""

    keeps_mask = True

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        self.ensure_built(x)
        return x, None

    def backward(self, dy: Any, cache: Any) -> tuple[Any, dict[str, Any]]:
        return dy, {}


@pytest.fixture(autouse=True)
def fresh_records() -> None:
    MaskTestRecorder.seen.clear()


def last(name: str) -> Any:
    return MaskTestRecorder.seen[name][-1]


TOKENS = np.array([[3, 1, 4, 0, 0], [5, 9, 2, 6, 0], [0, 0, 0, 0, 0]])


def assert_mask(mask: Any, expected: np.ndarray) -> None:
    assert mask is not None
    np.testing.assert_array_equal(host(mask), expected)


def test_sequential_carries_the_embedding_mask(backend: Any) -> None:
    """Through Dense, LayerNormalization, Dropout and activations (keeps_mask); stopped by a
    layer that drops it (GlobalAveragePooling1D) and never given to a layer without
    accepts_mask."""
    model = pnn.Sequential(
        [
            L.Embedding(10, 4, mask_zero=True, seed=0),
            MaskTestRecorder(name="after_embedding"),
            L.Dense(3, seed=1),
            L.LayerNormalization(),
            L.Dropout(0.5, seed=2),
            L.ReLU(),
            MaskTestStrict(),
            L.Activation("tanh"),
            MaskTestRecorder(name="after_dense"),
            L.GlobalAveragePooling1D(),
            MaskTestRecorder(name="after_pooling"),
        ]
    )
    x = backend.asarray(TOKENS)
    y, caches, out_mask = model.forward_masked(x, training=True)
    assert_mask(last("after_embedding"), TOKENS != 0)
    assert_mask(last("after_dense"), TOKENS != 0)
    assert last("after_pooling") is None and out_mask is None
    assert model.compute_mask(x, None) is None
    dx, grads = model.backward(backend.asarray(np.ones((3, 3), "float32")), caches)
    assert dx is None and sorted(grads) == ["0.weight", "2.bias", "2.weight", "3.beta", "3.gamma"]
    assert tuple(model(x).shape) == (3, 3)


def test_no_mask_without_mask_zero_and_mask_given_to_the_model(backend: Any) -> None:
    model = pnn.Sequential([L.Embedding(10, 2, seed=0), MaskTestRecorder(name="r"), L.Dense(2)])
    x = backend.asarray(TOKENS)
    model.forward(x)
    assert last("r") is None
    given = backend.asarray(np.array([[True] * 5, [False] * 5, [True, False] * 2 + [True]]))
    model.forward(x, mask=given)  # Embedding without mask_zero: the mask stops there
    assert last("r") is None
    floats = pnn.Sequential([MaskTestRecorder(name="first"), L.Dense(2, seed=0)])
    features = backend.asarray(np.ones((3, 5, 2), "float32"))
    _, _, out = floats.forward_masked(features, mask=given)
    assert last("first") is given and out is given
    assert floats.compute_mask(features, given) is given
    MaskTestRecorder.seen.clear()
    floats(features, mask=given)  # inference call with a mask
    assert last("first") is given


def test_nested_sequential_and_model(backend: Any) -> None:
    """A mask made outside reaches layers inside nested containers, and comes back out."""
    inner_seq = pnn.Sequential([L.Dense(3, seed=1), MaskTestRecorder(name="in_seq")])
    graph_in = pnn.Input((5, 3))
    inner_model = pnn.Model(graph_in, MaskTestRecorder(name="in_model")(L.Dense(3)(graph_in)))
    outer = pnn.Sequential(
        [
            L.Embedding(10, 4, mask_zero=True, seed=0),
            inner_seq,
            inner_model,
            MaskTestRecorder(name="outer_after"),
        ]
    )
    x = backend.asarray(TOKENS)
    _, caches, out = outer.forward_masked(x)
    for name in ("in_seq", "in_model", "outer_after"):
        assert_mask(last(name), TOKENS != 0)
    assert_mask(out, TOKENS != 0)
    outer.backward(backend.asarray(np.ones((3, 5, 3), "float32")), caches)

    tokens = pnn.Input((5,), name="tokens")
    h = L.Embedding(10, 4, mask_zero=True, seed=0)(tokens)
    h = pnn.Sequential([L.Dense(3, seed=1), MaskTestRecorder(name="seq_in_graph")])(h)
    h = inner_model(h)
    graph = pnn.Model(tokens, MaskTestRecorder(name="graph_out")(h))
    _, _, out = graph.forward_masked(x)
    for name in ("seq_in_graph", "in_model", "graph_out"):
        assert_mask(last(name), TOKENS != 0)
    assert_mask(out, TOKENS != 0)
    assert_mask(graph.compute_mask(x, None), TOKENS != 0)


def mask_input_model() -> pnn.Model:
    """Features and a boolean mask input: ``layer(x, mask=m)`` makes m that node's mask."""
    features = pnn.Input((5, 2), name="features")
    steps = pnn.Input((5,), name="steps")
    h = L.Dense(3, seed=0, name="dense")(features)
    h = MaskTestRecorder(name="given")(h, mask=steps)
    h = L.Dropout(0.2, seed=1, name="drop")(h)
    h = MaskTestRecorder(name="carried")(h)
    out = L.Dense(1, seed=2, name="head")(L.GlobalAveragePooling1D(name="pool")(h))
    return pnn.Model([features, steps], out, name="masked")


def test_mask_as_a_graph_input(backend: Any, tmp_path: Path) -> None:
    model = mask_input_model()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 5, 2)).astype("float32")
    steps = rng.random((8, 5)) < 0.7
    xs = [backend.asarray(x), backend.asarray(steps)]
    y, cache = model.forward(xs, training=True)
    assert_mask(last("given"), steps)
    assert_mask(last("carried"), steps)
    dx, grads = model.backward(backend.asarray(np.ones((8, 1), "float32")), cache)
    assert dx[1] is None and tuple(dx[0].shape) == (8, 5, 2)  # the mask has no gradient
    assert sorted(grads) == ["dense.bias", "dense.weight", "head.bias", "head.weight"]
    assert [r.kind for r in model.input_rules()] == ["real floating", "bool"]

    model.compile(loss="mse", optimizer="adam", jit=False)  # eager: the recorder keeps values
    model.fit([x, steps], np.zeros((8, 1), "float32"), batch_size=4, verbose=0, shuffle=False)
    assert_mask(last("given"), steps[4:])
    with pytest.raises(TypeError, match=r"x\[1\] must hold booleans"):
        model.fit([x, steps.astype("float32")], np.zeros((8, 1), "float32"), verbose=0)

    config = model.get_config()
    assert config["nodes"][1] == ["given", ["dense", 0, 0], {"mask": ["steps", 0, 0]}]
    clone = pnn.Model.from_config(config)
    assert clone.get_config() == config
    model.save(tmp_path / "masked.safetensors")
    loaded = pnn.load_model(tmp_path / "masked.safetensors")
    # the loaded model predicts jit-compiled on JAX, the original eagerly (jit=False): 1 ulp
    np.testing.assert_allclose(
        host(loaded.predict([x, steps])), host(model.predict([x, steps])), rtol=1e-6
    )
    loaded.forward(xs)
    assert_mask(last("given"), steps)


def test_graph_call_checks_and_eager_call_with_mask(backend: Any) -> None:
    features = pnn.Input((5, 2))
    with pytest.raises(TypeError, match="mask must be a symbolic tensor"):
        MaskTestRecorder()(features, mask=np.ones((1, 5), bool))
    with pytest.raises(ValueError, match="disconnected"):
        other = pnn.Input((5,), name="other")
        pnn.Model(features, MaskTestRecorder()(features, mask=other))
    x = backend.asarray(np.ones((2, 5, 2), "float32"))
    given = backend.asarray(np.array([[True] * 5, [False] * 5]))
    recorder = MaskTestRecorder(name="eager")
    recorder(x, mask=given)
    assert last("eager") is given
    assert tuple(L.Dense(2)(x, mask=given).shape) == (2, 5, 2)  # a layer without accepts_mask


def test_list_calls_get_the_list_of_masks(backend: Any) -> None:
    """A layer called on a list gets one mask per input (None when none carries one)."""

    class MaskTestPair(MaskTestRecorder):
        takes_list = True
        keeps_mask = False

        def forward(self, x: Any, training: bool = False, mask: Any = None) -> tuple[Any, Any]:
            MaskTestRecorder.seen.setdefault(self.name, []).append(mask)
            return x[0] + x[1], None

        def build(self, input_shape: Any) -> None:
            self.built = True

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape[0]

    tokens = pnn.Input((5,))
    a = L.Embedding(10, 2, mask_zero=True, seed=0)(tokens)
    b = L.Embedding(10, 2, seed=1)(tokens)
    model = pnn.Model(tokens, MaskTestPair(name="pair")([a, b]))
    model.forward(backend.asarray(TOKENS))
    masks = last("pair")
    assert len(masks) == 2 and masks[1] is None
    assert_mask(masks[0], TOKENS != 0)
    model = pnn.Model(tokens, MaskTestPair(name="none")([b, b]))
    model.forward(backend.asarray(TOKENS))
    assert last("none") is None


def test_fit_with_embedding_mask_on_every_backend(backend: Any) -> None:
    model = pnn.Sequential(
        [
            L.Embedding(10, 4, mask_zero=True, seed=0),
            MaskTestRecorder(name="r"),
            L.Dense(2, seed=1),
            L.GlobalAveragePooling1D(),
        ]
    )
    model.compile(loss="mse", optimizer="sgd", jit=False)
    model.fit(TOKENS, np.zeros((3, 2), "float32"), epochs=2, batch_size=2, verbose=0, shuffle=False)
    assert_mask(last("r"), TOKENS[2:] != 0)
    assert all(m is not None for m in MaskTestRecorder.seen["r"])


def test_masks_inside_a_compiled_jax_step() -> None:
    """The mask is computed inside the traced step (``x != 0``) and equals the eager run."""
    pytest.importorskip("jax")
    losses = {}
    for jit in (False, "auto"):
        with pnn.use_backend("jax"):
            model = pnn.Sequential(
                [
                    L.Embedding(10, 4, mask_zero=True, seed=0),
                    MaskTestRecorder(name=f"r{jit}"),
                    L.Dense(2, seed=1),
                    L.GlobalAveragePooling1D(),
                ]
            )
            model.compile(loss="mse", optimizer="sgd", jit=jit)
            y = np.ones((3, 2), "float32")
            losses[jit] = model.fit(TOKENS, y, epochs=2, batch_size=2, verbose=0, seed=0)
            assert (model._compiled() is not None) == (jit == "auto")
        masks = MaskTestRecorder.seen[f"r{jit}"]
        assert all(tuple(m.shape) == (2, 5) or tuple(m.shape) == (1, 5) for m in masks)
        assert all(str(m.dtype) == "bool" for m in masks)
    assert losses[False].history == losses["auto"].history


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_average_pooling_1d_averages_the_real_steps(backend: Any, data_format: str) -> None:
    """Keras's masked mean: sum of the real steps over their count (a fully masked row: 0);
    the gradient goes to the real steps only (float64 finite differences); the mask stops."""
    pool = L.GlobalAveragePooling1D(data_format=data_format)
    rng = np.random.default_rng(0)
    values = rng.standard_normal((3, 5, 4))  # (batch, time, features)
    mask = TOKENS != 0
    expected = np.stack([values[b][mask[b]].mean(axis=0) for b in range(2)] + [np.zeros(4)])
    x = values if data_format == "channels_last" else values.transpose(0, 2, 1)
    xs, ms = backend.asarray(x, "float64"), backend.asarray(mask)
    y, cache, out_mask = pool.forward_masked(xs, mask=ms)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)
    assert out_mask is None
    dx = host(pool.backward(backend.asarray(np.ones((3, 4)), "float64"), cache)[0])
    weights = mask / np.maximum(1, mask.sum(axis=1, keepdims=True))
    dx = dx if data_format == "channels_last" else dx.transpose(0, 2, 1)
    np.testing.assert_allclose(dx, np.broadcast_to(weights[..., None], dx.shape), atol=1e-15)

    def fn(x: Any) -> Any:
        return pool.forward(x, mask=ms)[0]

    def grad(dy: Any, x: Any) -> Any:
        return pool.backward(dy, pool.forward(x, mask=ms)[1])[0]

    assert pnn.gradcheck(fn, xs, backward=grad).ok
    with pytest.raises(ValueError, match="mask has shape"):
        pool.forward(xs, mask=backend.asarray(mask[:, :4]))


def test_embedding_mask_reaches_global_average_pooling(backend: Any) -> None:
    """Embedding(mask_zero) -> GlobalAveragePooling1D in a Sequential: the padding (index 0,
    whose embedding row is not zero) does not dilute the mean."""
    model = pnn.Sequential([L.Embedding(10, 3, mask_zero=True), L.GlobalAveragePooling1D()])
    tokens = backend.asarray(TOKENS[:2])
    found = host(model.predict(tokens))
    table = host(model.parameters()["0.weight"])
    expected = np.stack([table[row[row != 0]].mean(axis=0) for row in TOKENS[:2]])
    np.testing.assert_allclose(found, expected, rtol=1e-6)
