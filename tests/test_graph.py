"""Graph models (``pnn.Input``, ``pnn.Model``) and merge layers, on every backend."""

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
from portable_nn.layers import (
    Add,
    Average,
    BatchNormalization,
    Concatenate,
    Dense,
    Dropout,
    Maximum,
    Minimum,
    Multiply,
    ReLU,
    Subtract,
)

RNG = np.random.default_rng(5)


def host(a: Any) -> np.ndarray:
    return np.asarray(pnn.to_numpy(a))


def host_state(model: Any) -> dict[str, np.ndarray]:
    return {k: np.array(host(v)) for k, v in model.state_dict().items()}


def residual_model() -> pnn.Model:
    """Two inputs, a layer shared by both branches, a residual Add, a Concatenate, two outputs."""
    a, b = pnn.Input((6,), name="a"), pnn.Input((6,), name="b")
    shared = Dense(5, activation="tanh", name="shared")
    ha, hb = shared(a), shared(b)
    r = Add(name="add")([ha, Dense(5, name="inner")(ha)])  # r = ha + inner(ha)
    c = Concatenate(name="concat")([r, hb])
    y1 = Dense(3, name="head")(c)
    y2 = Dense(2, activation="sigmoid", name="aux")(hb)
    return pnn.Model([a, b], [y1, y2], name="residual")


def torch_reference(weights: dict[str, np.ndarray], xs: list, dys: list) -> dict[str, Any]:
    torch = pytest.importorskip("torch")
    w = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    a, b = (torch.tensor(x, requires_grad=True) for x in xs)
    ha = torch.tanh(a @ w["shared.weight"] + w["shared.bias"])
    hb = torch.tanh(b @ w["shared.weight"] + w["shared.bias"])
    r = ha + (ha @ w["inner.weight"] + w["inner.bias"])
    y1 = torch.cat([r, hb], dim=1) @ w["head.weight"] + w["head.bias"]
    y2 = torch.sigmoid(hb @ w["aux.weight"] + w["aux.bias"])
    ((y1 * torch.tensor(dys[0])).sum() + (y2 * torch.tensor(dys[1])).sum()).backward()
    out = {"y1": y1, "y2": y2, "dx_a": a.grad, "dx_b": b.grad}
    return {k: v.detach().numpy() for k, v in {**out, **{k: v.grad for k, v in w.items()}}.items()}


def test_matches_torch_float64(backend: Any) -> None:
    """Output, input gradients and every parameter gradient equal autograd's (rel 1e-10)."""
    xs_host = [RNG.normal(size=(7, 6)) for _ in range(2)]
    dys_host = [RNG.normal(size=(7, 3)), RNG.normal(size=(7, 2))]
    with backend.use("float64"):
        model = residual_model()
        xs = [backend.asarray(x, "float64") for x in xs_host]
        (y1, y2), cache = model.forward(xs, training=True)
        dx, grads = model.backward([backend.asarray(d, "float64") for d in dys_host], cache)
    assert list(grads) == list(model.parameters())
    assert list(grads) == [
        f"{n}.{p}" for n in ("shared", "inner", "head", "aux") for p in ("weight", "bias")
    ]
    ref = torch_reference({k: host(v) for k, v in model.parameters().items()}, xs_host, dys_host)
    ours = {"y1": y1, "y2": y2, "dx_a": dx[0], "dx_b": dx[1], **grads}
    for key, expected in ref.items():
        got = host(ours[key])
        assert got.dtype == np.float64, key
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=key)


def gradcheck_model(model: Any, xs: list[Any]) -> None:
    """Central differences against ``backward`` for every input and every parameter (the
    outputs concatenated into one array for the checker)."""
    params = model.parameters()
    keys, n = list(params), len(xs)
    widths = [int(o.shape[-1]) for o in model.outputs]

    def run(arrays: tuple[Any, ...]) -> tuple[Any, Any]:
        model.assign_parameters(dict(zip(keys, arrays[n:])))
        return model.forward(list(arrays[:n]) if n > 1 else arrays[0], training=False)

    def fn(*arrays: Any) -> Any:
        y = run(arrays)[0]
        return pnn.get_backend().xp.concat(y, axis=1) if len(widths) > 1 else y

    def backward(dy: Any, *arrays: Any) -> tuple[Any, ...]:
        cache = run(arrays)[1]
        starts = np.cumsum([0, *widths])
        dys = [dy[:, int(s) : int(e)] for s, e in zip(starts[:-1], starts[1:])]
        dx, grads = model.backward(dys if len(widths) > 1 else dy, cache)
        return (*(dx if n > 1 else [dx]), *(grads[k] for k in keys))

    try:
        pnn.gradcheck(fn, *xs, *params.values(), backward=backward)
    finally:
        model.assign_parameters(params)


def test_gradcheck(backend: Any) -> None:
    with backend.use("float64"):
        model = residual_model()
        gradcheck_model(model, [backend.asarray(RNG.normal(size=(4, 6)), "float64") for _ in "ab"])


@pytest.mark.parametrize("layer", [Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate])
def test_merge_layers(backend: Any, layer: type) -> None:
    """Values against NumPy, gradients by central differences, config round trip."""
    count = 2 if layer is Subtract else 3
    hosts = [RNG.normal(size=(4, 5)) for _ in range(count)]
    expected = {
        Add: sum(hosts), Subtract: hosts[0] - hosts[-1], Multiply: np.prod(hosts, axis=0),
        Average: np.mean(hosts, axis=0), Maximum: np.max(hosts, axis=0),
        Minimum: np.min(hosts, axis=0), Concatenate: np.concatenate(hosts, axis=-1),
    }[layer]  # fmt: skip
    with backend.use("float64"):
        merge = layer(name="merge")
        xs = [backend.asarray(h, "float64") for h in hosts]
        y = merge(xs)
        backend.assert_same_place(y)
        np.testing.assert_allclose(host(y), expected, rtol=1e-14)

        def backward(dy: Any, *arrays: Any) -> Any:
            return tuple(merge.backward(dy, merge.forward(list(arrays))[1])[0])

        pnn.gradcheck(lambda *arrays: merge.forward(list(arrays))[0], *xs, backward=backward)
    config = {"class_name": layer.__name__, "config": merge.get_config()}
    again = pnn.layers.get(json.loads(json.dumps(config)))
    assert type(again) is layer and again.get_config() == merge.get_config()


def test_merge_checks(backend: Any) -> None:
    x, z = backend.asarray(np.ones((2, 3), "float32")), backend.asarray(np.ones((2, 4), "float32"))
    with pytest.raises(
        ValueError, match=r"add_me: inputs must have the same shape.*\(2, 3\), \(2, 4\)"
    ):
        Add(name="add_me")([x, z])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        Subtract()([x, x, x])
    with pytest.raises(ValueError, match="at least 2 inputs"):
        Add()([x])
    with pytest.raises(ValueError, match="axis"):
        Concatenate(axis=0)
    y = Concatenate(name="cat")([x, z])
    assert tuple(y.shape) == (2, 7)
    with pytest.raises(ValueError, match=r"cat: .*except along axis -1.*\(2, 3\), \(3, 4\)"):
        Concatenate(name="cat")([x, backend.asarray(np.ones((3, 4), "float32"))])
    tie = backend.asarray(np.ones((2, 3), "float32"))
    maximum = Maximum()
    _, cache = maximum.forward([tie, tie])
    first, second = maximum.backward(backend.asarray(np.full((2, 3), 2.0, "float32")), cache)[0]
    assert (host(first) == 2.0).all() and (host(second) == 0.0).all()  # a tie: the first wins


def test_shared_layer_gradients_are_summed(backend: Any) -> None:
    a, b = pnn.Input((3,)), pnn.Input((3,))
    shared = Dense(2, name="sh")
    model = pnn.Model([a, b], Add()([shared(a), shared(b)]))
    assert list(model.parameters()) == ["sh.weight", "sh.bias"]
    xa, xb = (backend.asarray(RNG.normal(size=(5, 3)).astype("float32")) for _ in "ab")
    dy = backend.asarray(RNG.normal(size=(5, 2)).astype("float32"))
    _, grads = model.backward(dy, model.forward([xa, xb], training=True)[1])
    parts = [shared.backward(dy, shared.forward(x)[1])[1] for x in (xa, xb)]
    for key in ("weight", "bias"):
        np.testing.assert_allclose(
            host(grads["sh." + key]), host(parts[0][key]) + host(parts[1][key]), rtol=1e-6
        )


def test_tensor_read_twice_and_unused_input(backend: Any) -> None:
    """A tensor read by several nodes (or twice by one) gets the sum of their gradients; an
    output may be an input; an unused input gets a zero gradient."""
    a, b = pnn.Input((3,)), pnn.Input((3,))
    x = backend.asarray(RNG.normal(size=(4, 3)).astype("float32"))
    dy = backend.asarray(RNG.normal(size=(4, 3)).astype("float32"))
    model = pnn.Model([a, b], Add()([a, a]))
    dx, grads = model.backward(dy, model.forward([x, x])[1])
    np.testing.assert_allclose(host(dx[0]), 2.0 * host(dy))
    assert not host(dx[1]).any() and grads == {}
    backend.assert_same_place(dx[1])
    same = pnn.Model(a, [a, Dense(2)(a)])
    (y0, y1), cache = same.forward(x)
    dx, _ = same.backward([dy, backend.xp.zeros_like(y1)], cache)
    np.testing.assert_allclose(host(y0), host(x))
    np.testing.assert_allclose(host(dx), host(dy), rtol=1e-6)


def test_input_grad_false_skips_dx_and_keeps_grads(backend: Any) -> None:
    with backend.use("float64"):
        model = residual_model()
        xs = [backend.asarray(RNG.normal(size=(3, 6)), "float64") for _ in "ab"]
        (y1, y2), cache = model.forward(xs, training=True)
        dys = [backend.xp.ones_like(y1), backend.xp.ones_like(y2)]
        _, full = model.backward(dys, cache)
        dx, grads = model.backward(dys, cache, input_grad=False)
    assert dx is None and list(grads) == list(full)
    for key, value in full.items():
        np.testing.assert_array_equal(host(grads[key]), host(value))


def test_nested_models(backend: Any) -> None:
    """A model with two outputs called inside another (one output unused), a Sequential inside a
    graph, and a graph inside a Sequential: names, values and gradients."""
    with backend.use("float64"):
        inner_in = pnn.Input((4,), name="inner_in")
        t = Dense(3, name="d1")(inner_in)
        inner = pnn.Model(inner_in, [t, Dense(2, name="d2")(t)], name="inner")
        x = pnn.Input((4,), name="x")
        o1, _ = inner(x)
        seq = pnn.Sequential([Dense(3, name="s0"), ReLU(name="s1")], name="seq")
        outer = pnn.Model(x, Add(name="sum")([seq(o1), o1]), name="outer")
        names = ["inner.d1.weight", "inner.d1.bias", "inner.d2.weight", "inner.d2.bias"]
        assert list(outer.parameters()) == [*names, "seq.0.weight", "seq.0.bias"]
        data = backend.asarray(RNG.normal(size=(5, 4)), "float64")
        h = inner(data)[0]
        np.testing.assert_allclose(host(outer(data)), host(seq(h) + h), rtol=1e-12)
        y, cache = outer.forward(data)
        dx, grads = outer.backward(backend.xp.ones_like(y), cache)
        assert set(grads) == set(outer.parameters()) and not host(grads["inner.d2.weight"]).any()
        gradcheck_model(outer, [data])
        stacked = pnn.Sequential([pnn.Model(inner_in, t), Dense(1, name="top")])
        assert list(stacked.parameters())[:2] == ["0.d1.weight", "0.d1.bias"]
        y, cache = stacked.forward(data)
        assert tuple(stacked.backward(backend.xp.ones_like(y), cache)[0].shape) == (5, 4)
        stacked.load_state_dict(stacked.state_dict())


def test_dicts_of_inputs_and_outputs(backend: Any) -> None:
    a, b = pnn.Input((2,), name="a"), pnn.Input((3,), name="b")
    h = Concatenate()([a, b])
    model = pnn.Model({"left": a, "right": b}, {"p": Dense(1)(h), "q": Dense(2)(h)})
    assert model.input_names == ["left", "right"] and model.output_names == ["p", "q"]
    xa, xb = (
        backend.asarray(np.ones((4, 2), "float32")),
        backend.asarray(np.ones((4, 3), "float32")),
    )
    out = model({"right": xb, "left": xa})
    assert set(out) == {"p", "q"} and tuple(out["q"].shape) == (4, 2)
    np.testing.assert_array_equal(host(model([xa, xb])["p"]), host(out["p"]))
    y, cache = model.forward({"left": xa, "right": xb})
    dx, _ = model.backward({"q": y[1], "p": y[0]}, cache)
    assert [tuple(d.shape) for d in dx] == [(4, 2), (4, 3)]


def test_bad_graphs_raise_naming_layer_and_shapes() -> None:
    a, b = pnn.Input((3,), name="a"), pnn.Input((3,), name="b")
    with pytest.raises(
        ValueError, match=r"layer 'lonely' \(input shape\(s\) \(None, 3\)\) reads input 'b'"
    ):
        pnn.Model(a, Dense(2, name="lonely")(b))
    with pytest.raises(ValueError, match="an output reads input 'b'"):
        pnn.Model(a, b)
    add = Add(name="bad_add")
    with pytest.raises(
        ValueError,
        match=r"bad_add: inputs must have the same shape\. Received shapes \(None, 4\), \(None, 5",
    ):
        add([Dense(4)(a), Dense(5)(a)])
    assert not add.built
    shared = Dense(2, name="sh")
    shared(a)
    with pytest.raises(
        ValueError, match=r"sh: expects inputs of shape \(None, 3\)\. Received shape \(None, 4\)"
    ):
        shared(pnn.Input((4,)))
    with pytest.raises(TypeError, match="expects one tensor"):
        Dense(2)([a, b])
    with pytest.raises(TypeError, match="expects a list of tensors"):
        Add()(a)
    with pytest.raises(ValueError, match="names must be unique.*'twin'"):
        pnn.Model(a, Dense(2, name="twin")(Dense(2, name="twin")(a)))
    with pytest.raises(TypeError, match="symbolic tensors"):
        pnn.Model(np.ones((2, 3)), a)
    with pytest.raises(ValueError, match="positive ints"):
        pnn.Input((0, 3))


def test_wrong_inputs_raise_and_change_nothing(backend: Any) -> None:
    model = residual_model()
    model.compile(loss=["mse", "mse"], optimizer="adam")
    x = backend.asarray(np.ones((4, 6), "float32"))
    before, rng = host_state(model), model.get_rng_state()
    calls = {
        "forward": lambda: model.forward(x),
        "call": lambda: model(x),
        "predict": lambda: model.predict(x),
        "three": lambda: model.forward([x, x, x]),
        "fit": lambda: model.fit(x, [x, x], epochs=1, verbose=0),
    }
    for call in calls.values():
        with pytest.raises(
            ValueError, match=r"residual: expects 2 inputs \['a', 'b'\]\. Received (1|3)"
        ):
            call()
    with pytest.raises(
        ValueError, match=r"expects inputs \['a', 'b'\]. Received keys \['a', 'c'\]"
    ):
        model.forward({"a": x, "c": x})
    wide = backend.asarray(np.ones((4, 7), "float32"))
    with pytest.raises(
        ValueError, match=r"residual: input 'a' expects shape \(None, 6\)\. Received: \(4, 7\)"
    ):
        model.predict([wide, x])
    with pytest.raises(ValueError, match="loss must have one entry per output"):
        model.compile(loss=["mse"])
    with pytest.raises(ValueError, match="metrics must have one entry per output"):
        model.compile(loss="mse", metrics=["mae"])
    after = host_state(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert model.get_rng_state() == rng and model.optimizer.iterations == 0


def two_headed(dropout: float = 0.0) -> pnn.Model:
    a, b = pnn.Input((2,), name="a"), pnn.Input((2,), name="b")
    h = Dense(8, activation="tanh", name="trunk")(Concatenate(name="join")([a, b]))
    if dropout:
        h = BatchNormalization(name="bn")(Dropout(dropout, name="drop")(h))
    return pnn.Model([a, b], [Dense(3, name="cls")(h), Dense(1, name="reg")(h)], name="two")


def two_headed_data(n: int = 48) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(n, 2)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")
    labels = (a[:, 0] > 0).astype("int64") + (b[:, 1] > 0.5).astype("int64")
    return [a, b], [labels, (a[:, :1] - b[:, 1:]).astype("float32")]


def compile_two(model: pnn.Model, **kwargs: Any) -> None:
    loss = [pnn.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"]
    args = dict(optimizer=pnn.optimizers.Adam(0.03), loss_weights=[1.0, 0.5])
    model.compile(loss=loss, metrics=[["accuracy"], ["mae"]], **{**args, **kwargs})


def test_fit_evaluate_predict_two_inputs_two_outputs(backend: Any) -> None:
    (xa, xb), (labels, target) = two_headed_data()
    model = two_headed()
    compile_two(model)
    xs, ys = (
        [backend.asarray(xa), backend.asarray(xb)],
        [backend.asarray(labels), backend.asarray(target)],
    )
    history = model.fit(xs, ys, epochs=12, batch_size=8, verbose=0, validation_split=0.25).history
    assert set(history) == {
        "loss",
        "cls_accuracy",
        "reg_mae",
        "val_loss",
        "val_cls_accuracy",
        "val_reg_mae",
    }
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    scores, values = model.predict(xs)
    backend.assert_same_place(scores)
    logs = model.evaluate({"a": xa, "b": xb}, {"cls": labels, "reg": target})
    sparse = pnn.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = float(sparse(ys[0], scores)) + 0.5 * float(pnn.losses.get("mse")(ys[1], values))
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-4)
    np.testing.assert_allclose(
        logs["cls_accuracy"], (host(scores).argmax(1) == labels).mean(), rtol=1e-6
    )


def test_fit_from_a_generator_of_lists(backend: Any) -> None:
    (xa, xb), (labels, target) = two_headed_data(32)
    model = two_headed()
    compile_two(model)

    def batches() -> Any:
        while True:
            for i in range(0, 32, 8):
                rows = slice(i, i + 8)
                yield [xa[rows], xb[rows]], {"cls": labels[rows], "reg": target[rows]}

    history = model.fit(batches(), epochs=2, steps_per_epoch=4, verbose=0).history
    assert len(history["loss"]) == 2 and set(history) == {"loss", "cls_accuracy", "reg_mae"}
    out = model.predict(iter([([xa, xb],)]))  # (x,): a pair would read as (x, y), as in Keras
    assert [tuple(o.shape) for o in out] == [(32, 3), (32, 1)]


def test_save_load_round_trip(backend: Any, tmp_path: Path) -> None:
    """Architecture, weights, compile settings (loss list, weights, per-output metrics),
    optimizer and RNG state, and an exact resume."""
    (xa, xb), ys = two_headed_data()
    model = two_headed(dropout=0.2)
    compile_two(model)
    model.fit([xa, xb], ys, epochs=1, batch_size=16, verbose=0, seed=1)
    path = tmp_path / "graph.safetensors"
    model.save(path)
    again = pnn.load_model(path)
    assert type(again) is pnn.Model and again.get_config() == model.get_config()
    assert (
        again.loss_weights == [1.0, 0.5]
        and again.get_compile_config() == model.get_compile_config()
    )
    assert [m.name for m in again.compiled_metrics] == ["cls_accuracy", "reg_mae"]
    assert set(again.get_rng_state()["layers"]) == {"drop"}
    for ours, theirs in zip(model.predict([xa, xb]), again.predict([xa, xb])):
        np.testing.assert_array_equal(host(ours), host(theirs))
    runs = [
        m.fit([xa, xb], ys, epochs=2, initial_epoch=1, batch_size=16, verbose=0).history
        for m in (model, again)
    ]
    assert runs[0] == runs[1]


def test_checkpoint_moves_between_backends(backend: Any, tmp_path: Path) -> None:
    (xa, xb), ys = two_headed_data(16)
    with pnn.use_backend("numpy"):
        model = two_headed()
        compile_two(model)
        model.save(tmp_path / "numpy.safetensors")
        expected = [host(y) for y in model.predict([xa, xb])]
    loaded = pnn.load_model(tmp_path / "numpy.safetensors")
    got = loaded.predict([backend.asarray(xa), backend.asarray(xb)])
    backend.assert_same_place(got[0])
    for e, g in zip(expected, got):
        np.testing.assert_allclose(host(g), e, rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_summary() -> None:
    model = residual_model()
    config = json.loads(json.dumps(model.get_config()))
    again = pnn.Model.from_config(config)
    again.load_state_dict(model.state_dict())
    assert again.get_config() == model.get_config()
    xs = [RNG.normal(size=(3, 6)).astype("float32") for _ in "ab"]
    for ours, theirs in zip(model(xs), again(xs)):
        np.testing.assert_array_equal(host(ours), host(theirs))
    text = model.summary(print_fn=None)
    assert text == again.summary(print_fn=None)
    rows = {line.split(" (")[0]: line for line in text.splitlines()}
    assert rows["a"].split()[-1] == "-" and "(None, 6)" in rows["a"]
    assert rows["shared"].endswith("a[0][0], b[0][0]") and " 35 " in rows["shared"]
    assert rows["add"].endswith("shared[0][0], inner[0][0]")
    assert rows["concat"].endswith("add[0][0], shared[1][0]") and "(None, 10)" in rows["concat"]
    assert "Connected to" in text and "Total params: 110" in text
    assert repr(model) == "Model(inputs=['a', 'b'], outputs=['head', 'aux'], name='residual')"


def test_compiled_step_equals_eager() -> None:
    """JAX: fit through the jax.jit step equals the eager fit (float64, Dropout masks and
    BatchNorm statistics included)."""
    pytest.importorskip("jax")
    (xa, xb), ys = two_headed_data()
    runs = []
    for jit in ("auto", False):
        with pnn.use_backend("jax", dtype="float64"):
            pnn.seed(0)
            model = two_headed(dropout=0.3)
            compile_two(model, jit=jit)
            history = model.fit([xa, xb], ys, epochs=2, batch_size=16, verbose=0, seed=4).history
        assert (model._compiled_step is not None) == (jit == "auto")
        if jit == "auto":  # compiled, with the Dropout's draws recorded (not an eager fallback)
            assert model._compiled_step.order == [0]
        runs.append((history, host_state(model)))
    assert runs[0][0].keys() == runs[1][0].keys()
    for key, values in runs[0][0].items():
        np.testing.assert_allclose(values, runs[1][0][key], rtol=1e-10, err_msg=key)
    for key, value in runs[0][1].items():
        np.testing.assert_allclose(value, runs[1][1][key], rtol=1e-10, atol=1e-12, err_msg=key)


LOAD_IN_FRESH_PROCESS = """
import sys
import numpy as np
import portable_nn as pnn  # the first portable_nn call is the load

folder = sys.argv[1]
model = pnn.load_model(folder + "/graph.safetensors")
data = np.load(folder + "/data.npz")
out = model.predict({"a": data["a"], "b": data["b"]})
assert type(model).__name__ == "Model" and model.output_names == ["cls", "reg"]
for got, key in zip(out, ("cls", "reg")):
    np.testing.assert_array_equal(np.asarray(pnn.to_numpy(got)), data[key])
"""


def test_load_in_a_fresh_process(tmp_path: Path) -> None:
    (xa, xb), ys = two_headed_data(16)
    with pnn.use_backend("numpy"):
        model = two_headed(dropout=0.2)
        compile_two(model)
        model.fit([xa, xb], ys, epochs=1, verbose=0)
        model.save(tmp_path / "graph.safetensors")
        cls, reg = model.predict([xa, xb])
    np.savez(tmp_path / "data.npz", a=xa, b=xb, cls=host(cls), reg=host(reg))
    root = Path(pnn.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("PORTABLE_NN_BACKEND", None)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(tmp_path)],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"fresh process failed:\n{result.stdout}\n{result.stderr}"


def test_a_built_rnn_called_on_a_list_with_its_initial_states() -> None:
    """A layer built on one input accepts [x, states...] in the graph (the first is checked)."""
    lstm = pnn.layers.LSTM(3, input_shape=(5, 2), return_state=True)
    x, h, c = pnn.Input((5, 2)), pnn.Input((3,)), pnn.Input((3,))
    model = pnn.Model([x, h, c], lstm([x, h, c])[0])
    data = [
        np.ones((2, 5, 2), np.float32),
        np.zeros((2, 3), np.float32),
        np.zeros((2, 3), np.float32),
    ]
    assert model.predict(data).shape == (2, 3)
    with pytest.raises(ValueError, match="expects inputs of shape"):
        lstm([pnn.Input((5, 4)), h, c])
