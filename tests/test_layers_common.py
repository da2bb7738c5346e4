"""Contract checks run over every exported layer class on every backend.

Shapes, placement and dtype of outputs and gradients, ``compute_output_shape``, JSON configs,
integer and foreign inputs. Layer-specific maths is tested in the other ``test_layers_*`` files.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L

FACTORIES: dict[str, Any] = {
    "Dense": lambda: L.Dense(3, activation="relu", seed=0),
    "Activation": lambda: L.Activation("tanh"),
    "ReLU": L.ReLU,
    "Sigmoid": L.Sigmoid,
    "Tanh": L.Tanh,
    "LeakyReLU": lambda: L.LeakyReLU(alpha=0.1),
    "ELU": lambda: L.ELU(alpha=0.5),
    "SELU": L.SELU,
    "Swish": L.Swish,
    "GELU": L.GELU,
    "Softplus": L.Softplus,
    "Softmax": L.Softmax,
    "LogSoftmax": L.LogSoftmax,
    "Dropout": lambda: L.Dropout(0.5, seed=1),
    "Flatten": L.Flatten,
    "Reshape": lambda: L.Reshape((-1,)),
    "BatchNormalization": L.BatchNormalization,
    "SyncBatchNormalization": L.SyncBatchNormalization,  # one process: BatchNormalization
    "LayerNormalization": L.LayerNormalization,
    # image and sequence layers: inputs (batch, h, w, c) / (batch, steps, c), see SHAPES
    "Conv2D": lambda: L.Conv2D(3, 2, padding="same", activation="relu", seed=0),
    "Conv1D": lambda: L.Conv1D(3, 2, strides=2, seed=0),
    "MaxPooling2D": lambda: L.MaxPooling2D(2, padding="same"),
    "AveragePooling2D": L.AveragePooling2D,
    "MaxPooling1D": L.MaxPooling1D,
    "AveragePooling1D": lambda: L.AveragePooling1D(2, padding="same"),
    "GlobalAveragePooling2D": L.GlobalAveragePooling2D,
    "GlobalMaxPooling2D": L.GlobalMaxPooling2D,
    "GlobalAveragePooling1D": L.GlobalAveragePooling1D,
    "GlobalMaxPooling1D": L.GlobalMaxPooling1D,
    "ZeroPadding2D": lambda: L.ZeroPadding2D(((1, 0), (0, 2))),
    "Cropping2D": lambda: L.Cropping2D(1),
    "UpSampling2D": lambda: L.UpSampling2D((2, 1)),
    "SpatialDropout2D": lambda: L.SpatialDropout2D(0.5, seed=1),
    "Embedding": lambda: L.Embedding(7, 3, mask_zero=True, seed=0),  # integer inputs: INDICES
    "PositionEmbedding": lambda: L.PositionEmbedding(8, seed=0),
    "SimpleRNN": lambda: L.SimpleRNN(3, seed=0),
    "LSTM": lambda: L.LSTM(3, return_sequences=True, seed=0),
    "GRU": lambda: L.GRU(3, go_backwards=True, seed=0),
    "Bidirectional": lambda: L.Bidirectional(L.LSTM(2, seed=0), "sum"),
}
NAMES = sorted(FACTORIES)
# (float32 input shape, float64 input shape); default: 2-D and 3-D feature inputs
SHAPES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    **dict.fromkeys(
        [
            "Conv2D",
            "MaxPooling2D",
            "AveragePooling2D",
            "GlobalAveragePooling2D",
            "GlobalMaxPooling2D",
            "ZeroPadding2D",
            "Cropping2D",
            "UpSampling2D",
            "SpatialDropout2D",
        ],
        ((4, 4, 5, 2), (4, 3, 4, 3)),
    ),
    **dict.fromkeys(
        [
            "Conv1D",
            "MaxPooling1D",
            "AveragePooling1D",
            "GlobalAveragePooling1D",
            "GlobalMaxPooling1D",
            "SimpleRNN",
            "LSTM",
            "GRU",
            "Bidirectional",
        ],
        ((4, 6, 2), (4, 5, 3)),
    ),
}
SHAPES.update(Embedding=((4, 6), (4, 2, 3)), PositionEmbedding=((4, 6, 2), (4, 5, 3)))
INDICES = {"Embedding": 7}  # layers taking integer indices (in [0, value)), no dx
MULTI_INPUT = {
    *("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"),
    "MultiHeadAttention",  # tested in test_layers_attention.py
}


def shapes(name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return SHAPES.get(name, ((4, 6), (4, 2, 3)))


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2.0, 2.0, shape)


def _input(name: str, shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    """Features of ``dtype``, or indices for the layers in ``INDICES``."""
    if name in INDICES:
        return np.random.default_rng(0).integers(0, INDICES[name], shape)
    return _x(shape).astype(dtype)


def foreign_library(backend: Any) -> str:
    """A second installed library for 'foreign array' checks: torch when there is one (numpy
    on the torch backend), else array-api-strict or numpy; skips when none is installed."""
    for name in ("torch", "numpy", "array_api_strict"):
        if name != backend.name and importlib.util.find_spec(name) is not None:
            return name
    pytest.skip(f"no library besides {backend.name} is installed to make foreign arrays")


def test_every_exported_layer_is_covered() -> None:
    exported = {
        name
        for name in L.__all__
        if isinstance(getattr(L, name), type) and issubclass(getattr(L, name), L.Layer)
    }
    assert exported - {"Layer"} - MULTI_INPUT == set(FACTORIES)  # merge layers: test_graph.py
    assert all(getattr(L, name).takes_list for name in MULTI_INPUT)
    assert not [name for name in L.registered_layers() if name.startswith("_")]  # no private bases


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shapes_placement_dtype(backend: Any, name: str, dtype: str) -> None:
    shape = shapes(name)[dtype == "float64"]
    with backend.use(dtype):
        layer = FACTORIES[name]()
        x = backend.asarray(_input(name, shape, dtype))
        y, cache = layer.forward(x, training=True)
        assert tuple(y.shape) == layer.compute_output_shape((4, *shape[1:]))
        assert tuple(y.shape)[1:] == layer.compute_output_shape(layer.input_shape)[1:]
        dy = backend.asarray(_x(tuple(y.shape), seed=1), dtype)
        dx, grads = layer.backward(dy, cache)
        assert (dx is None) if name in INDICES else tuple(dx.shape) == shape
        assert sorted(grads) == sorted(layer.params)
        arrays = [y, *grads.values(), *layer.params.values(), *layer.buffers().values()]
        arrays += [] if dx is None else [dx]
        for out in arrays:
            backend.assert_same_place(out)
            assert out.dtype == getattr(backend.xp, dtype)
        for key, g in grads.items():
            assert tuple(g.shape) == tuple(layer.params[key].shape)


@pytest.mark.parametrize("name", NAMES)
def test_integer_input_is_type_error_and_builds_nothing(backend: Any, name: str) -> None:
    """(Floating input for the layers taking indices.)"""
    layer = FACTORIES[name]()
    shape = shapes(name)[0]
    integers = np.arange(int(np.prod(shape))).reshape(shape)
    wrong = _x(shape).astype("float32") if name in INDICES else integers
    with pytest.raises(TypeError, match="int"):
        layer.forward(backend.asarray(wrong), training=True)
    assert not layer.built and layer.params == {} and layer.bufs == {}


@pytest.mark.parametrize("name", NAMES)
def test_foreign_input_after_build(backend: Any, name: str) -> None:
    """Layers with weights refuse another library's input; weightless ones follow the input."""
    layer = FACTORIES[name]()
    shape = shapes(name)[0]
    layer.forward(backend.asarray(_input(name, shape)))
    other = foreign_library(backend)
    with pnn.use_backend(other) as active:
        foreign = pnn.asarray(_input(name, shape))
    if layer.state_dict():
        with pytest.raises(ValueError, match=f"two backends cannot be mixed: {other}"):
            layer.forward(foreign, training=True)
    else:
        y, cache = layer.forward(foreign, training=True)
        dx, _ = layer.backward(y, cache)
        for out in (y, dx):
            assert pnn.backend.namespace_of(out) is active.xp


@pytest.mark.parametrize("name", NAMES)
def test_config_is_json_and_round_trips(name: str) -> None:
    layer = FACTORIES[name]()
    layer.build((None, *shapes(name)[0][1:]))
    config = json.loads(json.dumps(layer.get_config()))
    clone = L.get({"class_name": type(layer).__name__, "config": config})
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    assert sorted(clone.state_dict()) == sorted(layer.state_dict())
    assert repr(clone).startswith(type(layer).__name__)


@pytest.mark.parametrize("name", NAMES)
def test_inference_call_equals_forward_eval(backend: Any, name: str) -> None:
    layer = FACTORIES[name]()
    x = backend.asarray(_input(name, shapes(name)[0]))
    y_eval, _ = layer.forward(x, training=False)
    np.testing.assert_array_equal(backend.to_numpy(layer(x)), backend.to_numpy(y_eval))


def test_repr_shows_the_arguments_that_are_not_defaults() -> None:
    assert repr(L.Dense(4, "relu", name="d")) == "Dense(units=4, activation='relu', name='d')"
    assert repr(L.Dropout(0.5, seed=3, name="p")) == "Dropout(rate=0.5, seed=3, name='p')"
    assert repr(L.Activation("tanh", name="t")) == "Activation(activation='tanh', name='t')"
    assert repr(L.LeakyReLU(name="a")) == "LeakyReLU(name='a')"  # alpha=0.01: the default
    assert repr(L.Softmax(axis=0, name="s")) == "Softmax(axis=0, name='s')"
    assert repr(L.Reshape((2, -1), name="r")) == "Reshape(target_shape=[2, -1], name='r')"
    assert repr(L.Flatten(input_shape=(2, 3), name="f")) == "Flatten(name='f')"
