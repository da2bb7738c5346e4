"""SimpleRNN, LSTM, GRU and Bidirectional on every backend: PyTorch equality in float64 (outputs,
states, input, initial-state and parameter gradients; return_sequences, return_state, initial
states, go_backwards, masks, every merge mode), gradcheck, initialisation, configs, bad input, and
training inside ``fit`` with a checkpoint round trip."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L

B, T, FEATURES, UNITS = 3, 5, 4, 6
KINDS = {
    "SimpleRNN": lambda **kw: L.SimpleRNN(UNITS, **kw),
    "SimpleRNN-relu": lambda **kw: L.SimpleRNN(UNITS, "relu", **kw),
    "LSTM": lambda **kw: L.LSTM(UNITS, **kw),
    "GRU": lambda **kw: L.GRU(UNITS, **kw),
}


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, shape)
    return np.where(np.abs(x) < 0.1, 0.1 + x, x)  # off the kinks (RELIABILITY.md)


def _mask(seed: int = 0) -> np.ndarray:
    """Post-padding, pre-padding, holes, a full row and an empty row."""
    mask = np.random.default_rng(seed).uniform(size=(4, T)) > 0.3
    mask[0] = [True, True, True, False, False]
    mask[1] = [False, False, True, True, True]
    mask[2] = True
    mask[3] = False
    return mask


def _rel_error(a: Any, ref: Any) -> float:
    a, ref = np.asarray(a), np.asarray(ref)
    assert a.shape == ref.shape, (a.shape, ref.shape)
    return float(np.max(np.abs(a - ref)) / max(np.max(np.abs(ref)), 1e-300))


def _host(array: Any) -> np.ndarray:
    return np.array(pnn.to_numpy(array), copy=True)


# -- PyTorch references ---------------------------------------------------------------------------
TORCH = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


def _torch_weights(module: Any, layer: Any, suffix: str = "") -> None:
    """Our parameters into a torch RNN module or cell (transposed; ``bias_hh``: GRU's
    ``recurrent_bias``, zeros for the others)."""
    import torch

    p = {k: torch.tensor(_host(v)) for k, v in layer.params.items()}
    hh = p.get("recurrent_bias", torch.zeros_like(p["bias"]))
    with torch.no_grad():
        for name, value in (("weight_ih", p["weight"].T), ("weight_hh", p["recurrent_weight"].T),
                            ("bias_ih", p["bias"]), ("bias_hh", hh)):  # fmt: skip
            getattr(module, name + suffix).copy_(value)


def _torch_grads(module: Any, layer: Any, suffix: str = "") -> dict[str, np.ndarray]:
    g = {k: getattr(module, k + suffix).grad.numpy() for k in ("weight_ih", "weight_hh", "bias_ih")}
    grads = {"weight": g["weight_ih"].T, "recurrent_weight": g["weight_hh"].T, "bias": g["bias_ih"]}
    if "recurrent_bias" in layer.params:
        grads["recurrent_bias"] = getattr(module, "bias_hh" + suffix).grad.numpy()
    return grads


def _cell(layer: Any) -> Any:
    torch = pytest.importorskip("torch")
    kind, args = type(layer).__name__, (layer.input_shape[-1], layer.units)
    if kind == "SimpleRNN":
        return torch.nn.RNNCell(*args, nonlinearity=layer.activation, dtype=torch.float64)
    return getattr(torch.nn, kind + "Cell")(*args, dtype=torch.float64)


def _torch_run(layer: Any, x: np.ndarray, states: list, mask: Any, dys: list) -> dict[str, Any]:
    """The reference: ``layer``'s semantics as a loop over torch's cells (a masked step keeps
    the states and outputs zeros; go_backwards reads from the end and returns the outputs in
    that order), differentiated by autograd with ``L = sum(output_i * dy_i)``."""
    torch = pytest.importorskip("torch")
    cell = _cell(layer)
    _torch_weights(cell, layer)
    lstm = type(layer).__name__ == "LSTM"
    xt = torch.tensor(x, requires_grad=True)
    n = 2 if lstm else 1
    given = [torch.tensor(s, requires_grad=True) for s in states]
    now = given or [torch.zeros(x.shape[0], layer.units, dtype=torch.float64)] * n
    outputs = []
    steps = range(x.shape[1] - 1, -1, -1) if layer.go_backwards else range(x.shape[1])
    for t in steps:
        new = list(cell(xt[:, t], tuple(now))) if lstm else [cell(xt[:, t], now[0])]
        if mask is None:
            outputs.append(new[0])
        else:
            m = torch.tensor(mask[:, t, None])
            outputs.append(torch.where(m, new[0], 0.0))
            new = [torch.where(m, a, b) for a, b in zip(new, now)]
        now = new
    y = torch.stack(outputs, 1) if layer.return_sequences else now[0]
    results = [y, *now] if layer.return_state else [y]
    terms = [torch.sum(r * torch.tensor(d.copy())) for r, d in zip(results, dys) if d is not None]
    sum(terms).backward()
    return {
        "outputs": [r.detach().numpy() for r in results],
        "dx": xt.grad.numpy(),
        "dstates": [s.grad.numpy() for s in given],
        "grads": _torch_grads(cell, layer),
    }


def _ours(backend: Any, layer: Any, x, states, mask, dys) -> dict[str, Any]:
    a = lambda v: None if v is None else backend.asarray(v, "float64")  # noqa: E731
    inputs = [a(x), *map(a, states)] if states else a(x)
    m = None if mask is None else backend.asarray(mask)
    y, cache = layer.forward(inputs, training=True, mask=m)
    outputs = y if layer.return_state else [y]
    dy = [a(d) for d in dys] if layer.return_state else a(dys[0])
    dx, grads = layer.backward(dy, cache)
    for out in [*outputs, *(dx if states else [dx]), *grads.values()]:
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float64
    dx = dx if states else [dx]
    return {
        "outputs": [backend.to_numpy(o) for o in outputs],
        "dx": backend.to_numpy(dx[0]),
        "dstates": [backend.to_numpy(d) for d in dx[1:]],
        "grads": {k: backend.to_numpy(v) for k, v in grads.items()},
    }


def _assert_same(ours: dict[str, Any], ref: dict[str, Any]) -> None:
    assert len(ours["outputs"]) == len(ref["outputs"])
    for a, b in zip(ours["outputs"], ref["outputs"]):
        assert _rel_error(a, b) <= 1e-10
    assert _rel_error(ours["dx"], ref["dx"]) <= 1e-10
    assert len(ours["dstates"]) == len(ref["dstates"])
    for a, b in zip(ours["dstates"], ref["dstates"]):
        assert _rel_error(a, b) <= 1e-10
    assert sorted(ours["grads"]) == sorted(ref["grads"])
    for key, value in ref["grads"].items():
        assert _rel_error(ours["grads"][key], value) <= 1e-10, key


OPTIONS = {
    "last": {},
    "sequences": {"return_sequences": True},
    "state": {"return_state": True},
    "sequences-state": {"return_sequences": True, "return_state": True},
    "backwards": {"go_backwards": True, "return_sequences": True},
    "initial-state": {"initial": True, "return_state": True},
    "masked": {"mask": True, "return_sequences": True},
    "masked-backwards-state": {
        "mask": True,
        "go_backwards": True,
        "return_state": True,
        "initial": True,
    },  # fmt: skip
}


def _case(backend: Any, kind: str, options: dict[str, Any]) -> tuple[Any, ...]:
    options = dict(options)
    initial, masked = options.pop("initial", False), options.pop("mask", False)
    batch = 4 if masked else B
    with backend.use("float64"):
        layer = KINDS[kind](bias_initializer="uniform", seed=3, **options)
        layer.build((None, T, FEATURES))
        if kind == "GRU":  # recurrent_bias starts at zeros: make it count
            layer.params["recurrent_bias"] = backend.asarray(_x((3 * UNITS,), 9), "float64")
    x = _x((batch, T, FEATURES))
    n = 2 if kind == "LSTM" else 1
    states = [_x((batch, UNITS), 10 + i) for i in range(n)] if initial else []
    mask = _mask() if masked else None
    shapes = layer.compute_output_shape((batch, T, FEATURES))
    shapes = shapes if layer.return_state else [shapes]
    dys = [_x(tuple(s), 20 + i) for i, s in enumerate(shapes)]
    if layer.return_state and len(dys) > 2:
        dys[2] = None  # a missing output gradient counts as zeros
    return layer, x, states, mask, dys


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_torch_float64(backend: Any, kind: str, option: str) -> None:
    layer, x, states, mask, dys = _case(backend, kind, OPTIONS[option])
    ref = _torch_run(layer, x, states, mask, dys)
    _assert_same(_ours(backend, layer, x, states, mask, dys), ref)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("backwards", [False, True])
def test_torch_modules_equal_the_reference_loop(kind: str, backwards: bool) -> None:
    """``nn.RNN``/``nn.LSTM``/``nn.GRU`` (on the flipped input for go_backwards) give what the
    cell loop gives, so the loop is PyTorch's recurrence."""
    torch = pytest.importorskip("torch")
    with pnn.use_backend("numpy", dtype="float64"):
        layer = KINDS[kind](return_sequences=True, return_state=True, go_backwards=backwards,
                            bias_initializer="uniform", seed=3)  # fmt: skip
        layer.build((None, T, FEATURES))
    x, n = _x((B, T, FEATURES)), 2 if kind == "LSTM" else 1
    states = [_x((B, UNITS), 10 + i) for i in range(n)]
    dys = [_x((B, T, UNITS), 20), *[_x((B, UNITS), 21 + i) for i in range(n)]]
    ref = _torch_run(layer, x, states, None, dys)
    module = getattr(torch.nn, TORCH[kind])(FEATURES, UNITS, batch_first=True, dtype=torch.float64)
    _torch_weights(module, layer, "_l0")
    xt = torch.tensor(x, requires_grad=True)
    given = [torch.tensor(s[None], requires_grad=True) for s in states]
    hx = tuple(given) if n > 1 else given[0]
    y, final = module(torch.flip(xt, (1,)) if backwards else xt, hx)
    final = list(final) if n > 1 else [final]
    outputs = [y, *(f[0] for f in final)]
    sum(torch.sum(o * torch.tensor(d)) for o, d in zip(outputs, dys)).backward()
    _assert_same(
        ref,
        {
            "outputs": [o.detach().numpy() for o in outputs],
            "dx": xt.grad.numpy(),
            "dstates": [g.grad.numpy()[0] for g in given],
            "grads": _torch_grads(module, layer, "_l0"),
        },
    )


# -- Bidirectional --------------------------------------------------------------------------------
MERGE = {
    "concat": lambda f, b: np.concatenate([f, b], -1),
    "sum": lambda f, b: f + b,
    "mul": lambda f, b: f * b,
    "ave": lambda f, b: (f + b) / 2,
}


@pytest.mark.parametrize("sequences", [True, False], ids=["sequences", "last"])
@pytest.mark.parametrize("mode", list(MERGE))
@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_bidirectional_matches_torch(backend: Any, kind: str, mode: str, sequences: bool) -> None:
    """Against ``nn.RNN/LSTM/GRU(bidirectional=True)``: the backward direction's outputs are
    in the input's time order; without return_sequences its output is its final state."""
    torch = pytest.importorskip("torch")
    with backend.use("float64"):
        layer = L.Bidirectional(
            KINDS[kind](return_sequences=sequences, bias_initializer="uniform", seed=3), mode
        )
        layer.build((None, T, FEATURES))
    assert [k.split(".")[0] for k in layer.params].count("backward") == len(layer.params) // 2
    module = getattr(torch.nn, TORCH[kind])(
        FEATURES, UNITS, batch_first=True, bidirectional=True, dtype=torch.float64
    )
    _torch_weights(module, layer.forward_layer, "_l0")
    _torch_weights(module, layer.backward_layer, "_l0_reverse")
    x = _x((B, T, FEATURES))
    xt = torch.tensor(x, requires_grad=True)
    out, final = module(xt)
    final = final[0] if kind == "LSTM" else final
    f, b = (out[..., :UNITS], out[..., UNITS:]) if sequences else (final[0], final[1])
    merged = {"concat": lambda: torch.cat([f, b], -1), "sum": lambda: f + b,
              "mul": lambda: f * b, "ave": lambda: (f + b) / 2}[mode]()  # fmt: skip
    dy = _x(tuple(merged.shape), 5)
    torch.sum(merged * torch.tensor(dy)).backward()
    with backend.use("float64"):
        y, cache = layer.forward(backend.asarray(x, "float64"), training=True)
        dx, grads = layer.backward(backend.asarray(dy, "float64"), cache)
    assert tuple(y.shape) == layer.compute_output_shape((B, T, FEATURES))
    assert _rel_error(backend.to_numpy(y), merged.detach().numpy()) <= 1e-10
    assert _rel_error(backend.to_numpy(dx), xt.grad.numpy()) <= 1e-10
    for prefix, suffix in (("forward.", "_l0"), ("backward.", "_l0_reverse")):
        for key, ref in _torch_grads(module, layer.forward_layer, suffix).items():
            assert _rel_error(backend.to_numpy(grads[prefix + key]), ref) <= 1e-10, prefix + key
    for out in (y, dx, *grads.values()):
        backend.assert_same_place(out)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_bidirectional_with_masks_states_and_initial_states(backend: Any, kind: str) -> None:
    """Each direction equals the torch loop on the same mask, the backward one re-aligned;
    states of both directions come back, initial states go in forward first."""
    with backend.use("float64"):
        layer = L.Bidirectional(
            KINDS[kind](return_sequences=True, return_state=True, bias_initializer="uniform"),
            "mul",
        )
        layer.build((None, T, FEATURES))
    n, x, mask = len(layer.forward_layer.state_names), _x((4, T, FEATURES)), _mask(1)
    states = [_x((4, UNITS), 10 + i) for i in range(2 * n)]
    dy, d_states = _x((4, T, UNITS), 20), [_x((4, UNITS), 30 + i) for i in range(2 * n)]
    d_states[0] = None
    with backend.use("float64"):
        f = _torch_run(layer.forward_layer, x, states[:n], mask, [dy])["outputs"][0]
        b = _torch_run(layer.backward_layer, x, states[n:], mask, [dy])["outputs"][0][:, ::-1]
        # the merged output's gradient reaches each direction through the product
        fwd_ref = _torch_run(layer.forward_layer, x, states[:n], mask, [dy * b, *d_states[:n]])
        bwd_ref = _torch_run(
            layer.backward_layer, x, states[n:], mask, [(dy * f)[:, ::-1], *d_states[n:]]
        )
        a = lambda v: None if v is None else backend.asarray(v, "float64")  # noqa: E731
        m = backend.asarray(mask)
        out, cache = layer.forward([a(x), *map(a, states)], training=True, mask=m)
        grads_in, grads = layer.backward([a(dy), *map(a, d_states)], cache)
    assert len(out) == 1 + 2 * n and len(grads_in) == 1 + 2 * n
    assert _rel_error(backend.to_numpy(out[0]), f * b) <= 1e-10
    for got, want in zip(out[1:], [*fwd_ref["outputs"][1:], *bwd_ref["outputs"][1:]]):
        assert _rel_error(backend.to_numpy(got), want) <= 1e-10
    assert _rel_error(backend.to_numpy(grads_in[0]), fwd_ref["dx"] + bwd_ref["dx"]) <= 1e-10
    for got, want in zip(grads_in[1:], [*fwd_ref["dstates"], *bwd_ref["dstates"]]):
        assert _rel_error(backend.to_numpy(got), want) <= 1e-10
    for prefix, ref in (("forward.", fwd_ref), ("backward.", bwd_ref)):
        for key, want in ref["grads"].items():
            assert _rel_error(backend.to_numpy(grads[prefix + key]), want) <= 1e-10
    np.testing.assert_array_equal(backend.to_numpy(out[0])[3], 0.0)  # an empty row: zeros


# -- gradients ------------------------------------------------------------------------------------
GRADCHECK = {
    "SimpleRNN": lambda: L.SimpleRNN(3, return_sequences=True, bias_initializer="uniform"),
    "SimpleRNN-relu-backwards": lambda: L.SimpleRNN(3, "relu", go_backwards=True),
    "LSTM": lambda: L.LSTM(3, return_sequences=True),
    "LSTM-backwards": lambda: L.LSTM(3, go_backwards=True, bias_initializer="uniform"),
    "GRU": lambda: L.GRU(3, bias_initializer="uniform"),
    "Bidirectional-concat": lambda: L.Bidirectional(L.LSTM(2, return_sequences=True)),
    "Bidirectional-sum": lambda: L.Bidirectional(L.GRU(2), "sum"),
    "Bidirectional-mul": lambda: L.Bidirectional(L.SimpleRNN(2, return_sequences=True), "mul"),
    "Bidirectional-ave": lambda: L.Bidirectional(L.LSTM(2), "ave"),
}


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(GRADCHECK))
def test_gradcheck(backend: Any, name: str, training: bool) -> None:
    with backend.use("float64"):
        layer = GRADCHECK[name]()
        layer.build((None, 4, 3))
        if "recurrent_bias" in layer.params:
            layer.params["recurrent_bias"] = backend.asarray(_x((9,), 2), "float64")
        result = pnn.gradcheck(layer, backend.asarray(_x((2, 4, 3)), "float64"), training=training)
    assert result.ok, result.report()
    assert len(result.entries) == 1 + len(layer.params)


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU", "Bidirectional"])
def test_gradcheck_initial_states_masks_and_states(backend: Any, name: str) -> None:
    """Function mode over ``[x, *initial states]`` with a mask and ``return_state``: the outputs
    joined into one array, its gradient split back."""
    with backend.use("float64"):
        cls = {"SimpleRNN": L.SimpleRNN, "LSTM": L.LSTM, "GRU": L.GRU}.get(name, L.LSTM)
        layer = cls(3, return_sequences=True, return_state=True, bias_initializer="uniform")
        if name == "Bidirectional":
            layer = L.Bidirectional(layer, "concat")
        layer.build((None, 4, 2))
        xp = backend.xp
        mask = backend.asarray(_mask(2)[:, :4])
        n = (len(layer.forward(backend.asarray(_x((4, 4, 2)), "float64"))[0])) - 1
        inputs = [backend.asarray(_x((4, 4, 2)), "float64")]
        inputs += [backend.asarray(_x((4, 3), 3 + i), "float64") for i in range(n)]

        def fn(*xs: Any) -> Any:
            outs = layer.forward(list(xs), training=True, mask=mask)[0]
            return xp.concat([xp.reshape(o, (4, -1)) for o in outs], axis=1)

        def backward(dy: Any, *xs: Any) -> list[Any]:
            outs, cache = layer.forward(list(xs), training=True, mask=mask)
            sizes = [int(np.prod(o.shape[1:])) for o in outs]
            starts = np.cumsum([0, *sizes])
            dys = [
                xp.reshape(dy[:, a:b], o.shape) for a, b, o in zip(starts[:-1], starts[1:], outs)
            ]
            return layer.backward(dys, cache)[0]

        result = pnn.gradcheck(fn, *inputs, backward=backward)
    assert result.ok, result.report()


def test_backward_repeatable_and_zero_dy_gives_zero(backend: Any) -> None:
    layer = L.LSTM(4, return_sequences=True, seed=0)
    x = backend.asarray(_x((2, T, 3)), "float32")
    y, cache = layer.forward(x, training=True, mask=backend.asarray(_mask()[:2]))
    dy = backend.asarray(_x(tuple(y.shape), seed=1), "float32")
    first, again = layer.backward(dy, cache), layer.backward(dy, cache)
    for a, b in zip((first[0], *first[1].values()), (again[0], *again[1].values())):
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    dx, grads = layer.backward(backend.asarray(np.zeros(tuple(y.shape)), "float32"), cache)
    for g in (dx, *grads.values()):
        assert not np.any(backend.to_numpy(g))
    none, same = layer.backward(dy, cache, input_grad=False)
    assert none is None and L.LSTM.skips_input_grad
    for key, value in same.items():
        np.testing.assert_array_equal(backend.to_numpy(value), backend.to_numpy(first[1][key]))


def test_masked_steps_keep_the_state_and_output_zeros(backend: Any) -> None:
    layer = L.GRU(3, return_sequences=True, return_state=True, seed=0)
    x, mask = _x((4, T, 2)), _mask()
    (y, h), _ = layer.forward(backend.asarray(x, "float32"), mask=backend.asarray(mask))
    y, h = backend.to_numpy(y), backend.to_numpy(h)
    assert np.all(y[~mask] == 0.0) and np.all(y[mask] != 0.0)
    np.testing.assert_array_equal(h[3], 0.0)  # nothing real: the zero initial state
    short, _ = layer.forward(backend.asarray(x[:1, :3], "float32"))  # row 0: 3 real steps
    np.testing.assert_allclose(backend.to_numpy(short[1])[0], h[0], rtol=1e-6)


# -- initialisation, configuration ----------------------------------------------------------------
def test_unit_forget_bias_and_initial_weights(backend: Any) -> None:
    with backend.use():
        lstm = L.LSTM(4, input_shape=(None, 3), seed=0)
        plain = L.LSTM(4, unit_forget_bias=False, input_shape=(None, 3), seed=0)
        drawn = L.LSTM(4, bias_initializer="uniform", input_shape=(None, 3), seed=0)
        gru = L.GRU(4, input_shape=(None, 3), bias_initializer="uniform", seed=0)
    forget_ones = [0.0] * 4 + [1.0] * 4 + [0.0] * 8
    np.testing.assert_array_equal(backend.to_numpy(lstm.params["bias"]), forget_ones)
    np.testing.assert_array_equal(backend.to_numpy(plain.params["bias"]), np.zeros(16))
    bias = backend.to_numpy(drawn.params["bias"])
    assert np.all(bias[4:8] == 1.0) and np.all(bias[:4] != 0.0) and np.all(bias[8:] != 0.0)
    np.testing.assert_array_equal(backend.to_numpy(gru.params["recurrent_bias"]), np.zeros(12))
    shapes = {k: tuple(v.shape) for k, v in gru.params.items()}
    assert shapes == {"weight": (3, 12), "recurrent_weight": (4, 12), "bias": (12,),
                      "recurrent_bias": (12,)}  # fmt: skip
    u = backend.to_numpy(L.SimpleRNN(5, input_shape=(None, 3), seed=1).params["recurrent_weight"])
    np.testing.assert_allclose(u @ u.T, np.eye(5), atol=1e-5)  # orthogonal


def _all_layers() -> dict[str, Any]:
    return {
        "SimpleRNN": lambda: L.SimpleRNN(4, "relu", bias_initializer="uniform", seed=12),
        "LSTM": lambda: L.LSTM(4, bias_initializer="uniform", seed=12),
        "GRU": lambda: L.GRU(4, bias_initializer="uniform", seed=12),
        "Bidirectional": lambda: L.Bidirectional(L.GRU(4, seed=12), "ave"),
    }


@pytest.mark.parametrize("name", list(_all_layers()))
def test_seeded_weights_identical_on_every_backend(backend: Any, name: str) -> None:
    with pnn.use_backend("numpy"):
        reference = _all_layers()[name]()
        reference.build((None, T, 3))
    layer = _all_layers()[name]()
    with backend.use():
        layer.build((None, T, 3))
    assert list(layer.params) == list(reference.params)
    for key, value in layer.params.items():
        backend.assert_same_place(value)
        assert value.dtype == backend.xp.float32
        np.testing.assert_array_equal(backend.to_numpy(value), _host(reference.params[key]))
    if name == "Bidirectional":  # the copy draws from seed + 1
        f, b = (_host(layer.params[d + ".weight"]) for d in ("forward", "backward"))
        assert not np.array_equal(f, b)


@pytest.mark.parametrize(
    ("layer", "config"),
    [
        (
            lambda: L.SimpleRNN(
                3,
                "relu",
                return_sequences=True,
                go_backwards=True,
                seed=5,
                input_shape=(7, 2),
                name="s",
            ),
            {"activation": "relu", "return_sequences": True, "go_backwards": True, "seed": 5},
        ),  # fmt: skip
        (
            lambda: L.LSTM(
                3,
                unit_forget_bias=False,
                return_state=True,
                name="l",
                recurrent_initializer="glorot_uniform",
            ),
            {
                "unit_forget_bias": False,
                "return_state": True,
                "recurrent_initializer": "glorot_uniform",
            },
        ),  # fmt: skip
        (lambda: L.GRU(3, bias_initializer="ones", name="g"), {"bias_initializer": "ones"}),
        (
            lambda: L.Bidirectional(L.LSTM(3, seed=1, name="l"), "sum", name="b"),
            {"merge_mode": "sum"},
        ),  # fmt: skip
    ],
)
def test_config_round_trip(layer: Any, config: dict[str, Any]) -> None:
    original = layer()
    original.build((None, 7, 2))
    saved = json.loads(json.dumps(original.get_config()))
    assert config.items() <= saved.items()
    clone = L.get({"class_name": type(original).__name__, "config": saved})
    assert type(clone) is type(original) and clone.get_config() == saved
    assert clone.built and list(clone.params) == list(original.params)
    if isinstance(original, L.Bidirectional):
        assert saved["layer"]["class_name"] == "LSTM" and saved["layer"]["config"]["name"] == "l"
        assert clone.backward_layer.go_backwards and not clone.forward_layer.go_backwards
    if isinstance(saved.get("seed"), int):
        for key, value in original.params.items():
            np.testing.assert_array_equal(_host(clone.params[key]), _host(value))
    assert repr(L.LSTM(2, return_sequences=True, name="r")) == (
        "LSTM(units=2, return_sequences=True, name='r')"
    )


@pytest.mark.parametrize(
    ("layer", "shape", "expected"),
    [
        (lambda: L.LSTM(4), (None, 9, 3), (None, 4)),
        (lambda: L.GRU(4, return_sequences=True), (2, None, 3), (2, None, 4)),
        (lambda: L.LSTM(4, return_state=True), (None, 9, 3), [(None, 4)] * 3),
        (
            lambda: L.SimpleRNN(4, return_state=True, return_sequences=True),
            (None, 9, 3),
            [(None, 9, 4), (None, 4)],
        ),  # fmt: skip
        (lambda: L.Bidirectional(L.GRU(4, return_sequences=True)), (None, 9, 3), (None, 9, 8)),
        (
            lambda: L.Bidirectional(L.LSTM(4, return_state=True), "sum"),
            (None, 9, 3),
            [(None, 4)] * 5,
        ),  # fmt: skip
    ],
)
def test_compute_output_shape(layer: Any, shape: tuple, expected: Any) -> None:
    assert layer().compute_output_shape(shape) == expected


def test_compute_mask_and_any_sequence_length(backend: Any) -> None:
    m = backend.asarray(_mask())
    assert L.LSTM(2, return_sequences=True).compute_mask(None, m) is m
    assert L.LSTM(2).compute_mask(None, m) is None
    assert L.GRU(2, return_sequences=True, return_state=True).compute_mask(None, [m, None]) == [
        m,
        None,
    ]
    assert L.Bidirectional(L.LSTM(2, return_sequences=True)).compute_mask(None, m) is m
    assert L.LSTM.accepts_mask and L.Bidirectional.accepts_mask
    layer = L.SimpleRNN(3, return_sequences=True)
    for steps in (4, 7, 1):
        y, _ = layer.forward(backend.asarray(_x((2, steps, 2)), "float32"))
        assert tuple(y.shape) == (2, steps, 3)


# -- bad input ------------------------------------------------------------------------------------
def test_bad_inputs_raise_naming_the_layer_and_change_nothing(backend: Any) -> None:
    layer = L.LSTM(3, name="lstm_bad", seed=0)
    with pytest.raises(ValueError, match=r"lstm_bad: expects inputs \(batch, time, features\)"):
        layer.forward(backend.asarray(_x((2, 4)), "float32"))
    assert not layer.built and layer.params == {}
    x = backend.asarray(_x((2, 4, 3)), "float32")
    y, cache = layer.forward(x)
    before = {k: _host(v) for k, v in layer.params.items()}
    h = backend.asarray(_x((2, 3)), "float32")
    bad = [
        (ValueError, r"lstm_bad: expects inputs \(batch, time >= 1, 3\). Received input shape "
                     r"\(2, 4, 5\)", backend.asarray(_x((2, 4, 5)), "float32"), None),
        (ValueError, r"Received input shape \(2, 3\)", backend.asarray(_x((2, 3)), "float32"),
         None),
        (ValueError, r"Received input shape \(2, 0, 3\)", backend.asarray(np.ones((2, 0, 3)),
         "float32"), None),
        (ValueError, r"lstm_bad: expects \[x, h0, c0\]; received a list of 2", [x, h], None),
        (ValueError, r"lstm_bad: initial state c0 has shape \(2, 4\), expected \(2, 3\)",
         [x, h, backend.asarray(_x((2, 4)), "float32")], None),
        (TypeError, r"initial state h0 has dtype", [x, backend.asarray(_x((2, 3)), "float64"), h],
         None),
        (ValueError, r"lstm_bad: mask has shape \(2, 5\), expected \(2, 4\)", x,
         backend.asarray(np.ones((2, 5), bool))),
        (TypeError, r"lstm_bad: mask must be boolean", x, backend.asarray(np.ones((2, 4)))),
    ]  # fmt: skip
    for error, message, value, mask in bad:
        with pytest.raises(error, match=message):
            layer.forward(value, mask=mask)
    with pytest.raises(ValueError, match=r"lstm_bad: upstream gradient dy has shape \(2, 4, 3\)"):
        layer.backward(backend.asarray(_x((2, 4, 3)), "float32"), cache)
    with pytest.raises(TypeError, match="wraps a SimpleRNN, LSTM or GRU"):
        L.Bidirectional(L.Dense(3))
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        L.Bidirectional(L.LSTM(3), "max")
    with pytest.raises(ValueError, match="Expected a positive integer. Received: units=0"):
        L.GRU(0)
    with pytest.raises(TypeError, match="return_sequences must be True or False"):
        L.GRU(2, return_sequences=1)
    stated = L.GRU(3, return_state=True, name="gru_bad")
    (out, h_t), cache = stated.forward(x)
    with pytest.raises(ValueError, match="gru_bad: expects a list of 2 output gradients"):
        stated.backward([out], cache)
    for key, value in layer.params.items():
        np.testing.assert_array_equal(_host(value), before[key])


# -- in models ------------------------------------------------------------------------------------
def _sequences(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Label: does the running sum of the first feature end positive."""
    x = np.random.default_rng(0).standard_normal((n, 4, 3)).astype(np.float32)
    return x, (x[:, :, 0].sum(axis=1) > 0).astype(np.int32)


def test_fit_with_dropout_and_a_checkpoint_round_trip(backend: Any, tmp_path: Any) -> None:
    x_host, y_host = _sequences()
    with backend.use():
        pnn.seed(0)
        model = pnn.Sequential(
            [L.Bidirectional(L.LSTM(6, return_sequences=True, seed=1)), L.Dropout(0.2, seed=2),
             L.GRU(5, go_backwards=True, seed=3), L.Dense(2, seed=4)]
        )  # fmt: skip
        model.compile(loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True),
                      optimizer="adam", metrics=["accuracy"])  # fmt: skip
        x, y = backend.asarray(x_host), backend.asarray(y_host)
        history = model.fit(x, y, epochs=4, batch_size=16, verbose=0)
        losses = history.history["loss"]
        assert all(np.isfinite(losses)) and losses[-1] < losses[0]
        path = tmp_path / "rnn.safetensors"
        model.save(path)
        loaded = pnn.load_model(path)
        np.testing.assert_array_equal(backend.to_numpy(loaded(x)), backend.to_numpy(model(x)))
        assert list(loaded.state_dict()) == list(model.state_dict())
        assert "0.forward.weight" in model.parameters() and "0.backward.bias" in model.parameters()


def test_graph_model_with_initial_states_and_returned_states(backend: Any) -> None:
    """``LSTM(...)([x, h0, c0])`` in a graph; ``return_state`` outputs feed other layers."""
    with backend.use("float64"):
        x_in, h_in, c_in = pnn.Input((T, 2)), pnn.Input((3,)), pnn.Input((3,))
        lstm = L.LSTM(3, return_state=True, seed=0)
        out, h, c = lstm([x_in, h_in, c_in])
        model = pnn.Model([x_in, h_in, c_in], L.Add()([out, h, c]))
        inputs = [backend.asarray(_x(s, i), "float64") for i, s in
                  enumerate([(2, T, 2), (2, 3), (2, 3)])]  # fmt: skip
        y, cache = model.forward(inputs)
        (ref_out, ref_h, ref_c), ref_cache = lstm.forward(inputs)
        np.testing.assert_allclose(backend.to_numpy(y), backend.to_numpy(ref_out + ref_h + ref_c))
        dy = backend.asarray(_x((2, 3), 9), "float64")
        dx, grads = model.backward(dy, cache)
        ref_dx, ref_grads = lstm.backward([dy, dy, dy], ref_cache)
    for got, want in zip(dx, ref_dx):
        np.testing.assert_allclose(backend.to_numpy(got), backend.to_numpy(want), rtol=1e-12)
    for key, value in ref_grads.items():
        np.testing.assert_allclose(
            backend.to_numpy(grads[f"{lstm.name}.{key}"]), backend.to_numpy(value), rtol=1e-12
        )


def test_embedding_mask_reaches_the_recurrent_layer(backend: Any) -> None:
    """``Embedding(mask_zero=True)`` before an LSTM in a Sequential: the same as the LSTM on the
    embeddings with the mask ``x != 0`` given by hand."""
    if not hasattr(L, "Embedding") or not hasattr(L.Layer, "forward_masked"):
        pytest.skip("Embedding and the masking mechanism are not in this checkout yet")
    tokens = np.array([[3, 1, 4, 0, 0], [0, 2, 7, 1, 8], [5, 0, 0, 0, 0]], dtype=np.int32)
    with backend.use():
        model = pnn.Sequential(
            [L.Embedding(10, 4, mask_zero=True, seed=0), L.LSTM(3, return_sequences=True, seed=1)]
        )
        y, cache = model.forward(backend.asarray(tokens), training=True)
        embedded = model.layers[0].forward(backend.asarray(tokens))[0]
        ref, _ = model.layers[1].forward(embedded, mask=backend.asarray(tokens != 0))
    np.testing.assert_array_equal(backend.to_numpy(y), backend.to_numpy(ref))
    assert np.all(backend.to_numpy(y)[tokens == 0] == 0.0)
    dy = backend.asarray(_x(tuple(y.shape), 1), "float32")
    _, grads = model.backward(dy, cache, input_grad=False)
    assert set(grads) == {"0.weight", "1.weight", "1.recurrent_weight", "1.bias"}


def test_graph_mask_input_reaches_the_layer(backend: Any) -> None:
    """``layer(x, mask=m)`` with a boolean ``pnn.Input((time,))``: the model gives what the
    layer gives with the mask by hand; the sequence output carries the mask on."""
    if not hasattr(L.Layer, "forward_masked"):
        pytest.skip("the masking mechanism is not in this checkout yet")
    with backend.use("float64"):
        x_in, m_in = pnn.Input((T, 2)), pnn.Input((T,))
        rnn = L.Bidirectional(L.GRU(3, return_sequences=True, return_state=True, seed=0))
        out, h_f, h_b = rnn(x_in, mask=m_in)
        model = pnn.Model([x_in, m_in], [L.LSTM(2, seed=1)(out), h_f, h_b])
        x, m = backend.asarray(_x((4, T, 2)), "float64"), backend.asarray(_mask(3))
        (y, hf, hb), cache = model.forward([x, m])
        (ref_out, ref_f, ref_b), _ = rnn.forward(x, mask=m)
        ref_y, _ = model.get_layer(model.layers[1].name).forward(ref_out, mask=m)
    for got, want in ((y, ref_y), (hf, ref_f), (hb, ref_b)):
        np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want))
    dys = [backend.asarray(_x(tuple(a.shape), 5 + i), "float64") for i, a in enumerate((y, hf, hb))]
    (dx, dm), grads = model.backward(dys, cache)
    assert dm is None and tuple(dx.shape) == (4, T, 2)
    assert sorted(grads) == sorted(model.parameters())


def test_bidirectional_first_bad_input_builds_nothing(backend: Any) -> None:
    layer = L.Bidirectional(L.GRU(2))
    with pytest.raises(TypeError, match="int"):
        layer.forward(backend.asarray(np.ones((2, 3, 4), np.int32)))
    for part in (layer, layer.forward_layer, layer.backward_layer):
        assert not part.built and part.params == {}
    y, _ = layer.forward(backend.asarray(_x((2, 3, 4)), "float32"))
    assert tuple(y.shape) == (2, 4)
