"""Weight regularizers (``pnn.regularizers``) and the layers' ``*_regularizer`` arguments: the
penalty formulas and gradients, the training step against PyTorch's weight decay in float64,
the reported loss, configs of every regularizable layer, compiled JAX steps, bad arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L
from portable_nn import regularizers as R

W = np.random.default_rng(0).uniform(-1.0, 1.0, (4, 3))
W[0, 0] = 0.0  # L1's gradient at 0 is 0 (torch's abs)


def host(a: Any) -> np.ndarray:
    return np.asarray(pnn.to_numpy(a))


@pytest.mark.parametrize(
    ("regularizer", "value", "grad"),
    [
        (R.L1(0.3), 0.3 * np.abs(W).sum(), 0.3 * np.sign(W)),
        (R.L2(0.2), 0.2 * (W**2).sum(), 0.4 * W),
        (R.L1L2(0.3, 0.2), 0.3 * np.abs(W).sum() + 0.2 * (W**2).sum(), 0.3 * np.sign(W) + 0.4 * W),
        (R.L1L2(), 0.0, 0.0 * W),
    ],
)
def test_penalty_and_gradient(backend, regularizer, value, grad) -> None:
    w = backend.asarray(W, "float64")
    found = regularizer(w)
    assert found.ndim == 0
    backend.assert_same_place(found)
    np.testing.assert_allclose(host(found), value, rtol=1e-14)
    np.testing.assert_allclose(host(regularizer.gradient(w)), grad, rtol=1e-14)
    if regularizer.l2:  # smooth: central differences agree (L1 has a kink at 0)
        check = pnn.gradcheck(
            lambda v: regularizer(v), w, backward=lambda dy, v: dy * regularizer.gradient(v)
        )
        assert check.ok, check.report()


def test_training_step_equals_torch_weight_decay() -> None:
    """Dense(kernel_regularizer=L2(l2)) under SGD: PyTorch's SGD with weight_decay=2*l2 on the
    kernel only (a parameter group), float64, three steps; the logged loss includes l2 |W|^2."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 4)), rng.standard_normal((16, 3))
    l2, lr = 0.05, 0.1
    with pnn.use_backend("numpy", dtype="float64"):
        model = pnn.Sequential([L.Dense(3, kernel_regularizer=R.L2(l2), seed=0)])
        model.compile(loss="mse", optimizer=pnn.optimizers.SGD(lr), jit=False)
        model.build((None, 4))
        w0, b0 = (host(v).copy() for v in model.parameters().values())
        history = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    linear = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w0.T))
        linear.bias.copy_(torch.from_numpy(b0))
    groups = [{"params": [linear.weight], "weight_decay": 2 * l2}, {"params": [linear.bias]}]
    optimizer = torch.optim.SGD(groups, lr=lr)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(linear(torch.from_numpy(x)), torch.from_numpy(y))
        losses.append(float(loss.detach()) + l2 * float((linear.weight.detach() ** 2).sum()))
        loss.backward()
        optimizer.step()
    params = model.parameters()
    np.testing.assert_allclose(host(params["0.weight"]), linear.weight.detach().numpy().T, 1e-12)
    np.testing.assert_allclose(host(params["0.bias"]), linear.bias.detach().numpy(), 1e-12)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-12)


def test_evaluate_reports_the_penalty_and_compiled_equals_eager(backend) -> None:
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((12, 4)), rng.standard_normal((12, 1))
    runs = []
    for jit in (False, "auto"):
        pnn.seed(0)
        model = pnn.Sequential(
            [L.Dense(5, activation="tanh", kernel_regularizer="l2", bias_regularizer=R.L1(0.1)),
             L.Dense(1, kernel_regularizer=R.L1L2(0.01, 0.02), activity_regularizer="l2")]
        )  # fmt: skip
        model.compile(loss="mse", optimizer=pnn.optimizers.SGD(0.05), jit=jit)
        plain = float(host(model.loss(backend.asarray(y), model.predict(backend.asarray(x)))))
        output = host(model.predict(backend.asarray(x)))
        penalty = float(host(model.penalties()[0])) + 0.01 * float((output**2).sum())
        assert penalty > 0.0
        np.testing.assert_allclose(
            model.evaluate(x, y, batch_size=12)["loss"], plain + penalty, 1e-5
        )
        model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
        runs.append({k: host(v) for k, v in model.parameters().items()})
    for name, value in runs[0].items():
        np.testing.assert_allclose(runs[1][name], value, rtol=1e-5, atol=1e-6)


LAYERS = [
    (lambda **r: L.Dense(3, **r), (None, 4), ["kernel_regularizer", "bias_regularizer"]),
    (lambda **r: L.Conv2D(2, 3, **r), (None, 5, 5, 2), ["kernel_regularizer", "bias_regularizer"]),
    (lambda **r: L.Embedding(7, 3, **r), (None, 5), ["embeddings_regularizer"]),
    (
        lambda **r: L.GRU(3, **r),
        (None, 5, 2),
        ["kernel_regularizer", "recurrent_regularizer", "bias_regularizer"],
    ),
    (lambda **r: L.SimpleRNN(3, **r), (None, 5, 2), ["recurrent_regularizer"]),
    (lambda **r: L.LSTM(3, **r), (None, 5, 2), ["kernel_regularizer"]),
    (lambda **r: L.BatchNormalization(**r), (None, 4), ["gamma_regularizer", "beta_regularizer"]),
    (lambda **r: L.LayerNormalization(**r), (None, 4), ["gamma_regularizer"]),
]


@pytest.mark.parametrize(("make", "shape", "arguments"), LAYERS)
def test_every_regularizable_layer(make, shape, arguments) -> None:
    """Each argument's penalty covers its parameters (sum of L2 over them), configs round-trip
    and an unknown regularizer name raises."""
    layer = make(**{arg: R.L2(0.5) for arg in arguments})
    layer.build(shape)
    total, grads = layer.penalties()
    covered = [n for arg in arguments for n in layer.REGULARIZABLE[arg] if n in layer.params]
    assert sorted(grads) == sorted(covered) and covered
    expected = sum(0.5 * float((host(layer.params[n]) ** 2).sum()) for n in covered)
    np.testing.assert_allclose(float(host(total)), expected, rtol=1e-6)
    for name in covered:
        np.testing.assert_allclose(host(grads[name]), host(layer.params[name]), rtol=1e-6)
    clone = type(layer).from_config(layer.get_config())
    assert clone.regularizers == layer.regularizers
    with pytest.raises(ValueError, match="unknown regularizer"):
        make(**{arguments[0]: "l3"})


def test_attention_and_bidirectional_penalties() -> None:
    mha = L.MultiHeadAttention(2, 3, kernel_regularizer=R.L2(1.0))
    mha.build([(None, 4, 6), (None, 4, 6)])
    assert sorted(mha.penalties()[1]) == sorted(
        f"{r}_weight" for r in ("query", "key", "value", "output")
    )
    both = L.Bidirectional(L.LSTM(3, bias_regularizer=R.L1(1.0)))
    both.build((None, 5, 2))
    total, grads = both.penalties()
    assert sorted(grads) == ["backward.bias", "forward.bias"]
    expected = sum(float(np.abs(host(both.params[n])).sum()) for n in grads)
    np.testing.assert_allclose(float(host(total)), expected, rtol=1e-6)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="l1"):
        R.L1(-0.1)
    with pytest.raises(TypeError, match="regularizer must be"):
        L.Dense(2, kernel_regularizer=3.0)
    assert R.get("l1_l2") == R.L1L2() and R.get(None) is None
    assert R.get(R.serialize(R.L1L2(0.1, 0.2))) == R.L1L2(0.1, 0.2)


@pytest.mark.parametrize("graph", [False, True])
def test_activity_regularizer_equals_torch_autograd(graph: bool) -> None:
    """``Dense(5, tanh, activity_regularizer=L2(0.1))``: the loss gains ``0.1 * sum(h^2)`` of the
    layer's output and backward adds its gradient to ``dy``; two SGD steps equal PyTorch
    autograd of the same loss in float64 (Sequential and graph model)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 1))
    with pnn.use_backend("numpy", dtype="float64"):
        hidden = L.Dense(5, activation="tanh", activity_regularizer=R.L2(0.1), seed=0)
        head = L.Dense(1, seed=1)
        if graph:
            inputs = pnn.Input((4,))
            model = pnn.Model(inputs, head(hidden(inputs)))
        else:
            model = pnn.Sequential([hidden, head])
        model.compile(loss="mse", optimizer=pnn.optimizers.SGD(0.1), jit=False)
        model.build((None, 4))
        start = [host(v).copy() for v in model.parameters().values()]
        history = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    w1, b1, w2, b2 = (torch.tensor(a, requires_grad=True) for a in start)
    losses = []
    for _ in range(2):
        h = torch.tanh(torch.from_numpy(x) @ w1 + b1)
        loss = ((h @ w2 + b2 - torch.from_numpy(y)) ** 2).mean() + 0.1 * (h**2).sum()
        losses.append(float(loss))
        grads = torch.autograd.grad(loss, [w1, b1, w2, b2])
        with torch.no_grad():
            for p, g in zip((w1, b1, w2, b2), grads):
                p -= 0.1 * g
    for found, expected in zip(model.parameters().values(), (w1, b1, w2, b2)):
        np.testing.assert_allclose(host(found), expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-12)
    configs = [layer["config"] for layer in model.get_config()["layers"]]
    assert sum("activity_regularizer" in c for c in configs) == 1


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer(backend, mode: str) -> None:
    """Keras's formula (mean |cosine| over pairs of rows or columns, times the factor) and its
    gradient against central differences in float64; rank-2 kernels only."""
    w = np.random.default_rng(1).standard_normal((5, 3))
    regularizer = R.OrthogonalRegularizer(0.3, mode)
    rows = w if mode == "rows" else w.T
    n = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    k = n.shape[0]
    expected = 0.3 * np.abs(n @ n.T - np.eye(k)).sum() / 2 / (k * (k - 1) / 2)
    ws = backend.asarray(w, "float64")
    np.testing.assert_allclose(float(host(regularizer(ws))), expected, rtol=1e-12)
    check = pnn.gradcheck(
        lambda v: regularizer(v), ws, backward=lambda dy, v: dy * regularizer.gradient(v)
    )
    assert check.ok, check.report()
    assert R.get(R.serialize(regularizer)) == regularizer and R.get("orthogonal").mode == "rows"
    with pytest.raises(ValueError, match="2-D kernel"):
        regularizer(backend.asarray(np.ones((2, 2, 2)), "float64"))
    with pytest.raises(ValueError, match="mode"):
        R.OrthogonalRegularizer(mode="diagonal")
