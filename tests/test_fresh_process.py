"""Checkpoints saved here load in a fresh Python process (issue #13: ``pnn.load_model`` failed
in a new interpreter with 'unknown layer class Sequential', because the layer registry filled
only as modules were imported).

One subprocess per backend loads every kind of checkpoint (``save_model``, ``save_weights``,
``ModelCheckpoint`` files of both kinds, a ``fit`` resumed from a checkpoint), its first
portable_nn call being the load; one more rebuilds every built-in class a checkpoint can name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import io as pio
from portable_nn.layers import BatchNormalization, Dense, Dropout, ReLU, Softmax

ROOT = Path(pnn.__file__).resolve().parent.parent
BACKENDS = ["numpy", "torch", "jax", "array_api_strict"]

# The settings tests/conftest.py gives this process, given to the fresh one before it imports
# portable_nn, so that values computed there can be compared exactly with values computed here.
MIRROR_CONFTEST = {
    "jax": 'import jax\njax.config.update("jax_enable_x64", True)\n',
    "torch": "import torch\ntorch.set_num_threads(1)\n",
}


def _run(script: str, *args: Any, backend: str = "numpy") -> None:
    """Run ``script`` in a fresh interpreter on this checkout; fail with its output if it fails."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PORTABLE_NN_BACKEND", None)
    result = subprocess.run(
        [sys.executable, "-c", MIRROR_CONFTEST.get(backend, "") + script, *map(json.dumps, args)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"fresh process failed:\n{result.stdout}\n{result.stderr}"


# -- every checkpoint kind, per backend ---------------------------------------------------------
def _model() -> pnn.Sequential:
    pnn.seed(0)
    model = pnn.Sequential(
        [Dense(6, input_shape=(4,)), BatchNormalization(), ReLU(), Dropout(0.25), Dense(3),
         Softmax()]
    )  # fmt: skip
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def _record(expected: dict[str, Any], prefix: str, arrays: dict[str, Any]) -> None:
    """Host copies now: the optimizer updates NumPy and torch weights in place later."""
    expected.update({prefix + k: np.array(pnn.to_numpy(v)) for k, v in arrays.items()})


LOAD_EVERY_KIND = """
import json, sys
import portable_nn as pnn  # nothing else of portable_nn is touched before the first load (#13)

name, folder = json.loads(sys.argv[1]), json.loads(sys.argv[2])
model = pnn.load_model(f"{folder}/model.safetensors", backend=name)

import numpy as np
from portable_nn import io as pio

expected = pio.load_tensors(f"{folder}/expected.safetensors", backend="numpy")
host = lambda a: np.asarray(pnn.to_numpy(a))

def same(state, prefix):
    for key, value in state.items():
        want = expected[prefix + key]
        got = host(value)
        assert got.dtype == want.dtype and np.array_equal(got, want), (prefix, key)

with pnn.use_backend(name):
    data = pio.load_tensors(f"{folder}/data.safetensors")
    x, y = data["x"], data["y"]
    same(model.state_dict(), "model/")
    assert model.epoch == 1 and model.optimizer.iterations == 3
    assert np.array_equal(host(model(x)), expected["model/prediction"])

    fresh = pnn.Sequential([pnn.layers.Dense(6), pnn.layers.BatchNormalization(),
                            pnn.layers.ReLU(), pnn.layers.Dropout(0.25), pnn.layers.Dense(3),
                            pnn.layers.Softmax()])
    fresh.build((None, 4))
    pnn.load_weights(fresh, f"{folder}/weights.safetensors")
    same(fresh.state_dict(), "model/")

    for epoch, prefix in [(1, "model/"), (3, "epoch3/")]:  # ModelCheckpoint files of both kinds
        saved = pnn.load_model(f"{folder}/ckpt/model-{epoch}.safetensors")
        same(saved.state_dict(), prefix)
        assert saved.epoch == epoch, (saved.epoch, epoch)
        pnn.load_weights(fresh, f"{folder}/ckpt/weights-{epoch}.safetensors")
        same(fresh.state_dict(), prefix)

    # a fit resumed from the checkpoint continues exactly as the same fit did in the saving process
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, initial_epoch=model.epoch)
    assert history.history["loss"] == json.loads(sys.argv[3]), history.history["loss"]
    same(model.state_dict(), "epoch3/")
"""


@pytest.mark.parametrize("name", BACKENDS)
def test_every_checkpoint_kind_loads_in_a_fresh_process(tmp_path, name):
    pytest.importorskip(name)
    rng = np.random.default_rng(1)
    x_host = rng.standard_normal((24, 4)).astype(np.float32)
    y_host = rng.integers(0, 3, size=24).astype(np.int32)
    pio.save_tensors(tmp_path / "data.safetensors", {"x": x_host, "y": y_host})
    expected: dict[str, Any] = {}
    with pnn.use_backend(name):
        x, y = pnn.asarray(x_host), pnn.asarray(y_host)
        model = _model()
        checkpoints = [
            pnn.callbacks.ModelCheckpoint(str(tmp_path / "ckpt" / "model-{epoch}.safetensors")),
            pnn.callbacks.ModelCheckpoint(
                str(tmp_path / "ckpt" / "weights-{epoch}.safetensors"), save_weights_only=True
            ),
        ]
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=checkpoints)
        pio.save_model(model, tmp_path / "model.safetensors")
        pio.save_weights(model, tmp_path / "weights.safetensors")
        _record(expected, "model/", {**model.state_dict(), "prediction": model(x)})
        # the reference for the resumed fit: the same fit continued in this process
        fit = model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=checkpoints,
                        initial_epoch=1)  # fmt: skip
        _record(expected, "epoch3/", model.state_dict())
    pio.save_tensors(tmp_path / "expected.safetensors", expected)
    _run(LOAD_EVERY_KIND, name, str(tmp_path), fit.history["loss"], backend=name)


# -- every built-in class a checkpoint can name -------------------------------------------------
def my_metric(y_true: Any, y_pred: Any) -> Any:
    return (y_true - y_pred) ** 2


ARGS = {  # constructor arguments of the classes that need some (others use their defaults)
    "Activation": {"activation": "tanh"},
    "Dense": {"units": 3, "use_bias": False, "kernel_regularizer": pnn.regularizers.L2(0.1)},
    "Dropout": {"rate": 0.3, "seed": 7},
    "Reshape": {"target_shape": (2, 2)},
    "Sequential": lambda: {"layers": [Dense(2)]},  # a nested model (fresh layers each time)
    "LeakyReLU": {"alpha": 0.2},
    "Conv2D": {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "groups": 1},
    "Conv1D": {"filters": 2, "kernel_size": 3, "dilation_rate": 2},
    "SpatialDropout2D": {"rate": 0.3, "seed": 7},
    "Embedding": {"input_dim": 5, "output_dim": 2, "mask_zero": True, "seed": 3},
    "PositionEmbedding": {"max_length": 4, "initializer": "zeros"},
    "MultiHeadAttention": {"num_heads": 2, "key_dim": 3, "dropout": 0.1, "use_causal_mask": True},
    "SimpleRNN": {"units": 2, "activation": "relu", "return_sequences": True},
    "LSTM": {"units": 2, "unit_forget_bias": False, "go_backwards": True},
    "GRU": {"units": 2, "return_state": True, "seed": 3},
    "Bidirectional": lambda: {"layer": pnn.layers.GRU(2, seed=1), "merge_mode": "mul"},
    "Model": lambda: (lambda x: {"inputs": x, "outputs": Dense(2)(x)})(pnn.Input((3,))),
    "Huber": {"delta": 2.5},
    "SGD": {"momentum": 0.9, "nesterov": True},
    "ExponentialDecay": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
    "StepDecay": {"initial_learning_rate": 0.1, "step_size": 5},
    "CosineDecay": {"initial_learning_rate": 0.1, "decay_steps": 100},
    "CosineDecayRestarts": {"initial_learning_rate": 0.1, "first_decay_steps": 10},
    "PolynomialDecay": {"initial_learning_rate": 0.1, "decay_steps": 10},
    "InverseTimeDecay": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
    "PiecewiseConstant": {"boundaries": [10], "values": [0.1, 0.01]},
    "TopKAccuracy": {"k": 2},
    "MeanMetricWrapper": {"fn": my_metric},
}


def _builtin(base: type) -> list[type]:
    """Public built-in subclasses of ``base`` (user and test classes are left out)."""
    found, todo = [], [base]
    while todo:
        for cls in todo.pop().__subclasses__():
            todo.append(cls)
            if cls.__module__.startswith("portable_nn.") and not cls.__name__.startswith("_"):
                found.append(cls)
    return sorted(set(found), key=lambda c: c.__name__)


def _make(cls: type, **extra: Any) -> Any:
    try:
        args = ARGS.get(cls.__name__, {})
        return cls(**(args() if callable(args) else args), **extra)
    except TypeError as exc:
        raise AssertionError(
            f"add constructor arguments for {cls.__name__} to ARGS: {exc}"
        ) from None


RESAVE_ALL = """
import json, sys
import portable_nn as pnn  # nothing else of portable_nn is touched before the first load (#13)

def my_metric(y_true, y_pred):
    return (y_true - y_pred) ** 2

for path in json.loads(sys.argv[1]):
    model = pnn.load_model(path, custom_objects={"my_metric": my_metric})
    pnn.save_model(model, path + ".again")
"""


def test_every_builtin_class_is_rebuilt_in_a_fresh_process(tmp_path):
    from portable_nn.layers.base import Layer, registered_layers
    from portable_nn.optimizers.schedules import LearningRateSchedule

    registered_layers()  # imports every built-in layer and model module
    layers = _builtin(Layer)
    losses = _builtin(pnn.losses.Loss)
    optimizers = _builtin(pnn.optimizers.Optimizer)
    schedules = [*_builtin(LearningRateSchedule), None]  # None: a constant learning rate
    metrics = _builtin(pnn.metrics.Metric)
    assert {"Sequential", "Dense", "Dropout", "BatchNormalization"} <= {c.__name__ for c in layers}
    groups = [layers, losses, optimizers, schedules, metrics]
    paths = []
    for i in range(max(map(len, groups))):
        layer, loss, optimizer, schedule, metric = (group[i % len(group)] for group in groups)
        lr = {} if schedule is None else {"learning_rate": _make(schedule)}
        model = pnn.Sequential([_make(layer)])
        model.compile(loss=_make(loss), optimizer=_make(optimizer, **lr), metrics=[_make(metric)])
        paths.append(str(tmp_path / f"{i}.safetensors"))
        pio.save_model(model, paths[-1])
    _run(RESAVE_ALL, paths)
    for path in paths:
        saved, again = pio.read_metadata(path), pio.read_metadata(path + ".again")
        assert again == saved, path
