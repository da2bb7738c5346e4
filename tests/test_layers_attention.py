"""MultiHeadAttention on every backend: PyTorch equality in float64 (outputs, the gradients of
query, value, key and every parameter; causal and padding masks, a fully masked row, self-attention
in a graph model), gradcheck in train and eval mode, dropout masks across backends, configs, bad
input, and a Transformer encoder block built with the graph API that trains and reloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L

RNG = np.random.default_rng(0)
B, TQ, TK, EQ, EV, EK = 2, 4, 5, 6, 3, 7  # cross-attention shapes of most tests


def host(a: Any) -> np.ndarray:
    return np.asarray(pnn.to_numpy(a))


def _inputs(backend: Any, dtype: str = "float64", tk: int = TK) -> list[Any]:
    shapes = [(B, TQ, EQ), (B, tk, EV), (B, tk, EK)]
    return [backend.asarray(RNG.normal(size=s), dtype) for s in shapes]


def _padding(tq: int = TQ, tk: int = TK) -> np.ndarray:
    """Keys past each sample's length are masked (sample 0: 3 keys, sample 1: all)."""
    lengths = np.array([3, tk])
    return np.broadcast_to(np.arange(tk) < lengths[:, None, None], (B, tq, tk)).copy()


def torch_reference(
    layer: Any, xs: list[np.ndarray], allowed: np.ndarray | None, dy: np.ndarray, drop: Any = None
) -> dict[str, np.ndarray]:
    """The same maths in torch ops with autograd: our projections, then torch's
    ``scaled_dot_product_attention`` (its own masked softmax) or, with a dropout mask, the
    softmax and the masked product written out. ``allowed``: bool, broadcasts to (B, h, Tq, Tk)."""
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    params = {k: torch.tensor(host(v), requires_grad=True) for k, v in layer.params.items()}
    q, v, k = (torch.tensor(x, requires_grad=True) for x in xs)
    h, dk = layer.num_heads, layer.key_dim

    def project(x: Any, role: str) -> Any:
        z = x @ params[f"{role}_weight"]
        z = z + params[f"{role}_bias"] if layer.use_bias else z
        return z.reshape(x.shape[0], x.shape[1], h, -1).permute(0, 2, 1, 3)

    qh, kh, vh = project(q, "query"), project(k, "key"), project(v, "value")
    mask = None if allowed is None else torch.tensor(allowed)
    if drop is None:
        o = f.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)
    else:
        s = qh @ kh.transpose(-1, -2) / dk**0.5
        s = s if mask is None else s.masked_fill(~mask, float("-inf"))
        o = (torch.softmax(s, dim=-1) * torch.tensor(host(drop))) @ vh
    o = o.permute(0, 2, 1, 3).reshape(q.shape[0], q.shape[1], -1)
    y = o @ params["output_weight"]
    y = y + params["output_bias"] if layer.use_bias else y
    y.backward(torch.tensor(dy))
    out = {"y": y, "query": q.grad, "value": v.grad, "key": k.grad}
    out.update({name: p.grad for name, p in params.items()})
    return {name: t.detach().numpy() for name, t in out.items()}


def _allowed(layer: Any, padding: np.ndarray | None, tq: int = TQ, tk: int = TK) -> Any:
    allowed = None if padding is None else padding[:, None]
    if layer.use_causal_mask:
        causal = np.tril(np.ones((tq, tk), bool))
        allowed = causal if allowed is None else allowed & causal
    return allowed


def _compare(ours: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
    for name, want in expected.items():
        got = host(ours[name])
        assert got.dtype == np.float64 and got.shape == want.shape, name
        assert np.isfinite(got).all(), name
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=name)


CASES = {
    "plain": ({}, False),
    "causal": ({"use_causal_mask": True}, False),
    "padding": ({}, True),
    "causal+padding": ({"use_causal_mask": True, "value_dim": 2}, True),
    "no bias": ({"use_bias": False, "value_dim": 5}, True),
    "dropout": ({"dropout": 0.4, "use_causal_mask": True}, True),  # torch gets our mask
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch(backend: Any, case: str) -> None:
    kwargs, padded = CASES[case]
    with backend.use("float64"):
        layer = L.MultiHeadAttention(2, 3, seed=1, **kwargs)
        xs = _inputs(backend)
        mask = _padding() if padded else None
        given = xs if mask is None else [*xs, backend.asarray(mask)]
        y, cache = layer.forward(given, training=True)
        backend.assert_same_place(y)
        dy = RNG.normal(size=tuple(y.shape))
        dxs, grads = layer.backward(backend.asarray(dy, "float64"), cache)
    assert len(dxs) == len(given) and list(grads) == list(layer.params)
    if mask is not None:
        assert dxs[3] is None  # a mask has no gradient
    assert (cache.drop is None) == (layer.dropout == 0.0)
    allowed = _allowed(layer, mask)
    expected = torch_reference(layer, [host(x) for x in xs], allowed, dy, cache.drop)
    _compare({"y": y, "query": dxs[0], "value": dxs[1], "key": dxs[2], **grads}, expected)


def test_key_defaults_to_value(backend: Any) -> None:
    """``[query, value]``: key = value, and dL/dvalue sums both of value's uses."""
    with backend.use("float64"):
        layer = L.MultiHeadAttention(3, 2, value_dim=4, seed=2)
        q = backend.asarray(RNG.normal(size=(B, TQ, EQ)), "float64")
        v = backend.asarray(RNG.normal(size=(B, TK, EV)), "float64")
        y, cache = layer.forward([q, v])
        dy = RNG.normal(size=tuple(y.shape))
        (dq, dv), grads = layer.backward(backend.asarray(dy, "float64"), cache)
    expected = torch_reference(layer, [host(q), host(v), host(v)], None, dy)
    expected["value"] = expected["value"] + expected.pop("key")
    _compare({"y": y, "query": dq, "value": dv, **grads}, expected)


def test_matches_torch_multihead_attention_module(backend: Any) -> None:
    """``torch.nn.MultiheadAttention`` (kdim/vdim, separate projections) with our weights: its
    weights act as ``x @ W.T``; a True in torch's bool mask forbids, in ours it allows."""
    torch = pytest.importorskip("torch")
    h, dk = 2, 3
    with backend.use("float64"):
        layer = L.MultiHeadAttention(h, dk, use_causal_mask=True, seed=3)
        xs = _inputs(backend)
        mask = backend.asarray(_padding())
        y, cache = layer.forward([*xs, mask])
    module = torch.nn.MultiheadAttention(h * dk, h, kdim=EK, vdim=EV, batch_first=True)
    module = module.double()
    p = {k: torch.tensor(host(v)) for k, v in layer.params.items()}
    with torch.no_grad():
        module.q_proj_weight.copy_(p["query_weight"].T)
        module.k_proj_weight.copy_(p["key_weight"].T)
        module.v_proj_weight.copy_(p["value_weight"].T)
        module.in_proj_bias.copy_(torch.cat([p["query_bias"], p["key_bias"], p["value_bias"]]))
        module.out_proj.weight.copy_(p["output_weight"].T)
        module.out_proj.bias.copy_(p["output_bias"])
    forbid = ~torch.tensor(_allowed(layer, _padding())).expand(B, h, TQ, TK).reshape(B * h, TQ, TK)
    q, v, k = (torch.tensor(host(x)) for x in xs)
    expected, weights = module(q, k, v, attn_mask=forbid, average_attn_weights=False)
    np.testing.assert_allclose(host(y), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(cache.probs), weights.detach().numpy(), atol=1e-12)


def test_fully_masked_row_outputs_bias_without_nan(backend: Any) -> None:
    with backend.use("float64"):
        layer = L.MultiHeadAttention(2, 3, use_causal_mask=True, seed=4)
        layer.forward(_inputs(backend))
        layer.params["output_bias"] = backend.asarray(RNG.normal(size=EQ), "float64")
        xs = _inputs(backend)
        mask = _padding()
        mask[1, 2, :] = False  # sample 1, query 2 sees no key
        y, cache = layer.forward([*xs, backend.asarray(mask)])
        dy = RNG.normal(size=tuple(y.shape))
        dxs, grads = layer.backward(backend.asarray(dy, "float64"), cache)
        dy[1, 2] += 10.0  # changes only the output bias's gradient
        again, grads_again = layer.backward(backend.asarray(dy, "float64"), cache)
    np.testing.assert_array_equal(host(y)[1, 2], host(layer.params["output_bias"]))
    assert not host(layer.last_attention_scores)[1, :, 2].any()
    assert not host(dxs[0])[1, 2].any()  # no gradient reaches the masked query
    for a, b in zip(dxs, again):
        np.testing.assert_array_equal(host(a), host(b))
    for name in grads:
        assert np.isfinite(host(grads[name])).all()
        if name != "output_bias":
            np.testing.assert_array_equal(host(grads[name]), host(grads_again[name]))
    expected = torch_reference(layer, [host(x) for x in xs], _allowed(layer, mask), dy)
    _compare(
        {"y": y, "query": again[0], "value": again[1], "key": again[2], **grads_again}, expected
    )


def test_self_attention_in_a_graph_model_sums_both_gradients(backend: Any) -> None:
    with backend.use("float64"):
        x = pnn.Input((TQ, EQ), name="x")
        mha = L.MultiHeadAttention(2, 4, use_causal_mask=True, seed=5, name="mha")
        model = pnn.Model(x, mha([x, x]))
        data = backend.asarray(RNG.normal(size=(B, TQ, EQ)), "float64")
        y, cache = model.forward(data)
        dy = RNG.normal(size=tuple(y.shape))
        dx, grads = model.backward(backend.asarray(dy, "float64"), cache)
    h = host(data)
    expected = torch_reference(mha, [h, h, h], _allowed(mha, None, TQ, TQ), dy)
    expected["query"] = expected["query"] + expected.pop("value") + expected.pop("key")
    ours = {"y": y, "query": dx, **{k.removeprefix("mha."): v for k, v in grads.items()}}
    _compare(ours, expected)


def test_sequence_masks_equal_the_attention_mask(backend: Any) -> None:
    """``forward(..., mask=[query_mask, value_mask, key_mask])`` (what containers pass) masks
    padded queries' rows and padded keys as Keras does: the attention mask
    ``query_mask[:, :, None] & value_mask[:, None] & key_mask[:, None]``."""
    qm = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    vm, km = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 1, 1]], bool), np.ones((B, TK), bool)
    km[1, 4] = False
    with backend.use("float64"):
        layer = L.MultiHeadAttention(2, 3, use_causal_mask=True, seed=11)
        xs = _inputs(backend)
        dy = backend.asarray(RNG.normal(size=(B, TQ, EQ)), "float64")
        masks = [backend.asarray(m) for m in (qm, vm, km)]
        y, cache = layer.forward(xs, mask=masks)
        dxs, grads = layer.backward(dy, cache)
        full = backend.asarray(qm[:, :, None] & vm[:, None] & km[:, None])
        y_full, cache_full = layer.forward([*xs, full])
        dxs_full, grads_full = layer.backward(dy, cache_full)
        assert layer.compute_mask(xs, masks) is masks[0]  # the output's steps are the query's
        np.testing.assert_array_equal(host(y), host(y_full))
        for ours, theirs in [*zip(dxs, dxs_full), *zip(grads.values(), grads_full.values())]:
            np.testing.assert_array_equal(host(ours), host(theirs))
        np.testing.assert_array_equal(host(y)[0, 3], host(layer.params["output_bias"]))
        for bad in (masks[:2], [masks[1], masks[1], masks[2]], [None, None, full]):
            with pytest.raises(ValueError, match="mask"):
                layer.forward(xs, mask=bad)


def _replayed(layer: Any, n: int, extra: list[Any], training: bool) -> tuple[Any, Any]:
    """(fn, backward) for function-mode gradcheck over the ``n`` float inputs and the
    parameters, each forward replaying the generator's state (the same dropout mask)."""
    keys, state = list(layer.params), layer.generator.get_state()

    def run(arrays: tuple[Any, ...]) -> tuple[Any, Any]:
        layer.params.update(zip(keys, arrays[n:]))
        layer.generator.set_state(state)
        return layer.forward([*arrays[:n], *extra], training=training)

    def backward(dy: Any, *arrays: Any) -> tuple[Any, ...]:
        dxs, grads = layer.backward(dy, run(arrays)[1])
        return (*dxs[:n], *(grads[k] for k in keys))

    return (lambda *arrays: run(arrays)[0]), backward


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("given", [2, 4])
def test_gradcheck(backend: Any, training: bool, given: int) -> None:
    """[query, value] (key = value) and [query, value, key, mask] with a causal mask and a fully
    masked row; dropout 0.3 (train mode replays the generator, so the mask stays put)."""
    with backend.use("float64"):
        causal = given == 4
        layer = L.MultiHeadAttention(2, 3, value_dim=2, dropout=0.3, use_causal_mask=causal, seed=6)
        xs = _inputs(backend, tk=4)[: min(given, 3)]
        mask = _padding(tk=4)
        mask[0, 3] = False  # a fully masked row
        extra = [backend.asarray(mask)] if given == 4 else []
        layer.forward([*xs, *extra])
        params = dict(layer.params)
        fn, backward = _replayed(layer, len(xs), extra, training)
        try:
            result = pnn.gradcheck(fn, *xs, *params.values(), backward=backward)
        finally:
            layer.params.update(params)
        assert result.ok, result.report()


def _dropout_masks(asarray: Any) -> list[np.ndarray]:
    """The dropout masks of two training calls of a seeded layer on the active backend."""
    layer = L.MultiHeadAttention(2, 3, dropout=0.5, seed=8)
    xs = [asarray(np.ones(s, "float32")) for s in [(B, TQ, EQ), (B, TK, EV)]]
    return [host(layer.forward(xs, training=True)[1].drop) != 0.0 for _ in range(2)]


def test_dropout_masks_equal_across_backends_and_identity_at_inference(backend: Any) -> None:
    masks = _dropout_masks(backend.asarray)
    with pnn.use_backend("numpy"):
        reference = _dropout_masks(np.asarray)
    for got, want in zip(masks, reference):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(masks[0], masks[1])  # each call draws anew
    assert 0.3 < masks[0].mean() < 0.7
    with backend.use("float64"):
        layer = L.MultiHeadAttention(2, 3, dropout=0.5, seed=9)
        plain = L.MultiHeadAttention(2, 3, seed=9)
        xs = _inputs(backend)
        y, cache = layer.forward(xs)
        assert cache.drop is None
        np.testing.assert_array_equal(host(y), host(plain(xs)))  # same seed, same weights
        trained, _ = layer.forward(xs, training=True)
        assert not np.allclose(host(trained), host(y))


def test_attention_scores_for_plotting(backend: Any) -> None:
    layer = L.MultiHeadAttention(2, 3, use_causal_mask=True, seed=10)
    xs = _inputs(backend, "float32")
    y, scores = layer(xs, return_attention_scores=True)
    backend.assert_same_place(scores)
    assert scores.dtype == backend.xp.float32 and tuple(scores.shape) == (B, 2, TQ, TK)
    np.testing.assert_allclose(host(scores).sum(-1), 1.0, atol=1e-6)
    assert not np.triu(host(scores)[0, 0], k=1).any()  # causal: key j <= query i
    np.testing.assert_array_equal(host(layer.last_attention_scores), host(scores))
    np.testing.assert_array_equal(host(layer(xs)), host(y))
    with pytest.raises(TypeError, match="arrays"):
        layer([pnn.Input((TQ, EQ)), pnn.Input((TK, EV))], return_attention_scores=True)


def test_config_round_trip() -> None:
    layer = L.MultiHeadAttention(
        4, 8, value_dim=6, dropout=0.1, use_bias=False, use_causal_mask=True, seed=3, name="att"
    )
    config = json.loads(
        json.dumps({"class_name": "MultiHeadAttention", "config": layer.get_config()})
    )
    again = L.get(config)
    assert type(again) is L.MultiHeadAttention and again.get_config() == layer.get_config()
    assert repr(again) == (
        "MultiHeadAttention(num_heads=4, key_dim=8, value_dim=6, dropout=0.1, use_bias=False, "
        "use_causal_mask=True, seed=3, name='att')"
    )
    xs = [RNG.normal(size=s).astype("float32") for s in [(B, TQ, EQ), (B, TK, EV)]]
    np.testing.assert_array_equal(host(layer(xs)), host(again(xs)))  # seeded weights


def test_bad_input(backend: Any) -> None:
    layer = L.MultiHeadAttention(2, 3, name="att")
    q, v, k = _inputs(backend, "float32")
    for bad in ([q], [q, v, k, backend.asarray(_padding()), v]):
        with pytest.raises(ValueError, match="att: expects a list"):
            layer.forward(bad)
    assert not layer.built and not layer.params
    with pytest.raises(TypeError, match="att: expects a list"):
        layer.forward(q)
    with pytest.raises(TypeError, match="att: query has dtype"):
        layer.forward([backend.asarray(host(q), "float64"), v])
    assert not layer.built  # a failed first call leaves the layer unbuilt
    layer.forward([q, v, k])
    before = {name: host(a).copy() for name, a in layer.params.items()}
    wrong = {
        "query must be \\(batch, T, 6\\)": [v, v, k],
        "value must be \\(batch, T, 3\\)": [q, k, k],
        "key must be \\(batch, T, 7\\)": [q, v, v],
        "key must be": [q, v],  # key = value, whose features do not fit key_weight
        "one batch size": [q, v[:1, ...], k[:1, ...]],
        "one\\s+length T_k": [q, v, k[:, :3, :]],
        "attention_mask must be \\(batch, T_q, T_k\\)": [
            q,
            v,
            k,
            backend.asarray(_padding()[:1, ...]),
        ],
        "attention_mask must be boolean": [q, v, k, backend.asarray(_padding(), "float32")],
    }
    for message, inputs in wrong.items():
        with pytest.raises(ValueError, match=f"att: .*{message}"):
            layer.forward(inputs)
    with pytest.raises(ValueError, match="att: query must be"):
        layer.forward([q[0, ...], v, k])
    for name, a in layer.params.items():
        np.testing.assert_array_equal(host(a), before[name])
    for kwargs in ({"num_heads": 0}, {"key_dim": -1}, {"value_dim": 0}, {"dropout": 1.0}):
        with pytest.raises(ValueError):
            L.MultiHeadAttention(**{"num_heads": 2, "key_dim": 2, **kwargs})
    with pytest.raises(TypeError):
        L.MultiHeadAttention(2, 2, use_causal_mask=1)
    with pytest.raises(ValueError, match="expects inputs of shape|query must be"):
        layer([pnn.Input((TQ, 5)), pnn.Input((TK, EV)), pnn.Input((TK, EK))])


def encoder_model(t: int = 6, e: int = 8, seed: int = 0) -> Any:
    """A Transformer encoder block in user code: self-attention, Add + LayerNormalization, a
    Dense feed-forward, Add + LayerNormalization, then a pooled regression head."""
    pnn.seed(seed)
    x = pnn.Input((t, e), name="tokens")
    a = L.MultiHeadAttention(2, 4, dropout=0.1, name="mha")([x, x])
    h = L.LayerNormalization(name="norm1")(L.Add(name="res1")([x, L.Dropout(0.1)(a)]))
    f = L.Dense(e, name="ff2")(L.Dense(16, activation="relu", name="ff1")(h))
    h = L.LayerNormalization(name="norm2")(L.Add(name="res2")([h, f]))
    return pnn.Model(x, L.Dense(1, name="head")(L.GlobalAveragePooling1D()(h)), name="encoder")


def test_transformer_encoder_block_trains_and_reloads(backend: Any, tmp_path: Path) -> None:
    xs = RNG.normal(size=(32, 6, 8)).astype("float32")
    ys = (xs[:, :, :2].sum(axis=(1, 2)) / 4.0)[:, None].astype("float32")
    model = encoder_model()
    model.compile(loss="mse", optimizer=pnn.optimizers.Adam(learning_rate=0.01))
    history = model.fit(xs, ys, epochs=6, batch_size=8, verbose=0, seed=1).history
    assert history["loss"][-1] < 0.7 * history["loss"][0], history["loss"]
    if backend.name == "jax":  # one jax.jit step, both generators' draws recorded
        assert len(model._compiled_step.order) == 2
    path = tmp_path / "encoder.safetensors"
    model.save(path)
    again = pnn.load_model(path)
    assert again.get_config() == model.get_config()
    np.testing.assert_array_equal(host(model.predict(xs)), host(again.predict(xs)))
    runs = [m.fit(xs, ys, epochs=1, batch_size=8, verbose=0).history for m in (model, again)]
    assert runs[0] == runs[1]  # exact resume: weights, optimizer and dropout generators
    again(backend.asarray(xs[:2]))  # an eager call keeps the weights for plotting
    scores = again.get_layer("mha").last_attention_scores
    assert tuple(scores.shape) == (2, 2, 6, 6)
