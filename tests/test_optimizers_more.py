"""Optimizer options shared by every algorithm: exclude_from_weight_decay, gradient
accumulation, the moving average of the weights (EMA); Lion against its formula."""

from __future__ import annotations

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import optimizers as opt_mod
from portable_nn.layers import Dense

SHAPES = {"0.weight": (3, 4), "0.bias": (4,), "1.gamma": (4,), "2.weight": (4, 2)}
N_STEPS = 10


def problem(seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    grads = [{k: rng.uniform(0.1, 3.0) * rng.normal(size=s) for k, s in SHAPES.items()}]
    grads += [{k: rng.normal(size=s) for k, s in SHAPES.items()} for _ in range(N_STEPS - 1)]
    return params, grads


def on(backend, arrays: dict) -> dict:
    return {k: backend.asarray(np.array(v)) for k, v in arrays.items()}


def host(d: dict) -> dict:
    return {k: np.array(pnn.to_numpy(v)) for k, v in d.items()}


def run(backend, opt, *, inplace: bool = False, steps: int = N_STEPS) -> tuple[dict, dict, list]:
    """``steps`` updates in float64; the parameters after each one (host copies)."""
    params, grads = problem()
    with backend.use("float64"):
        p = on(backend, params)
        state = opt.init(p)
        seen = []
        for g in grads[:steps]:
            p, state = opt.update(p, on(backend, g), state, inplace=inplace)
            seen.append(host(p))
    return p, state, seen


class TinyModel:
    def __init__(self, params: dict) -> None:
        self.params = dict(params)

    def parameters(self) -> dict:
        return dict(self.params)

    def set_parameters(self, values: dict) -> None:
        self.params.update(values)


# -- Lion ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("inplace", [False, True], ids=["pure", "inplace"])
def test_lion_matches_its_formula(backend, inplace):
    """Chen et al. 2023, Algorithm 2, with decoupled weight decay, written out in NumPy."""
    lr, b1, b2, wd = 0.01, 0.8, 0.95, 0.5
    p, state, _ = run(
        backend, opt_mod.Lion(lr, beta_1=b1, beta_2=b2, weight_decay=wd), inplace=inplace
    )
    want, grads = problem()
    m = {k: np.zeros(s) for k, s in SHAPES.items()}
    for g in grads:
        for k in SHAPES:
            update = np.sign(b1 * m[k] + (1 - b1) * g[k])
            want[k] = want[k] * (1 - lr * wd) - lr * update
            m[k] = b2 * m[k] + (1 - b2) * g[k]
    for k in SHAPES:
        np.testing.assert_allclose(backend.to_numpy(p[k]), want[k], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(backend.to_numpy(state[k]["exp_avg"]), m[k], rtol=1e-13)
    assert opt_mod.get("lion").get_config()["config"]["beta_2"] == 0.99  # Keras's defaults


@pytest.mark.parametrize("inplace", [False, True], ids=["pure", "inplace"])
def test_adam_epsilon_hat_matches_its_formula(backend, inplace):
    """``epsilon_hat=True``: Keras's, TensorFlow's and scikit-learn's Adam, epsilon added to
    ``sqrt(v)`` without bias correction; a large epsilon makes it differ from torch's form."""
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 0.5
    p, _, _ = run(backend, opt_mod.Adam(lr, b1, b2, eps, epsilon_hat=True), inplace=inplace)
    want, grads = problem()
    m = {k: np.zeros(s) for k, s in SHAPES.items()}
    v = {k: np.zeros(s) for k, s in SHAPES.items()}
    for t, g in enumerate(grads, start=1):
        rate = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        for k in SHAPES:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            want[k] = want[k] - rate * m[k] / (np.sqrt(v[k]) + eps)
    for k in SHAPES:
        np.testing.assert_allclose(backend.to_numpy(p[k]), want[k], rtol=1e-13, atol=1e-15)
    torch_form, _, _ = run(backend, opt_mod.Adam(lr, b1, b2, eps), inplace=inplace)
    assert not np.allclose(backend.to_numpy(torch_form["0.weight"]), want["0.weight"])
    config = opt_mod.serialize(opt_mod.Adam(epsilon_hat=True))
    assert opt_mod.deserialize(config).epsilon_hat is True


# -- exclude_from_weight_decay -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "torch_name", "torch_kwargs"),
    [
        (
            lambda ex: opt_mod.AdamW(0.01, weight_decay=0.3, exclude_from_weight_decay=ex),
            "AdamW",
            {"lr": 0.01, "weight_decay": 0.3},
        ),
        (
            lambda ex: opt_mod.SGD(0.05, 0.9, weight_decay=0.2, exclude_from_weight_decay=ex),
            "SGD",
            {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.2},
        ),
        (
            lambda ex: opt_mod.Nadam(0.01, weight_decay=0.2, exclude_from_weight_decay=ex),
            "NAdam",
            {"lr": 0.01, "weight_decay": 0.2},
        ),
    ],
    ids=["adamw", "sgd", "nadam"],
)
def test_excluded_parameters_match_torch_param_groups_without_decay(
    backend, make, torch_name, torch_kwargs
):
    """``["bias", r"^1\\.gamma$"]`` leaves 0.bias and 1.gamma undecayed: torch with two param
    groups, the second with weight_decay=0."""
    torch = pytest.importorskip("torch")
    params, grads = problem()
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    plain = [tensors["0.weight"], tensors["2.weight"]]
    groups = [
        {"params": plain},
        {"params": [tensors["0.bias"], tensors["1.gamma"]], "weight_decay": 0.0},
    ]
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref = getattr(torch.optim, torch_name)(groups, **torch_kwargs)
        for g in grads:
            for k, t in tensors.items():
                t.grad = torch.tensor(g[k])
            ref.step()
    finally:
        torch.set_default_dtype(default)
    for inplace in (False, True):
        p, _, _ = run(backend, make(["bias", r"^1\.gamma$"]), inplace=inplace)
        for k, t in tensors.items():
            got, want = backend.to_numpy(p[k]), t.detach().numpy()
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=k)
    opt = make(["bias", r"^1\.gamma$"])
    assert opt._decays("0.weight") and not opt._decays("0.bias")


def test_excluded_parameters_in_step_match_the_pure_update_bitwise(backend):
    """``step(model)`` (fused flat buffers are skipped when some parameter is excluded) equals
    the pure per-array update."""
    make = lambda: opt_mod.AdamW(0.05, weight_decay=0.5, exclude_from_weight_decay=["bias"])  # noqa: E731
    params, grads = problem()
    model, opt = TinyModel(on(backend, params)), make()
    ref, ref_opt = on(backend, params), make()
    state = ref_opt.init(ref)
    for g in grads[:4]:
        opt.step(model, on(backend, g))
        ref, state = ref_opt.update(ref, on(backend, g), state)
    for k in SHAPES:
        np.testing.assert_array_equal(backend.to_numpy(model.params[k]), backend.to_numpy(ref[k]))
    assert opt._flat is None  # no flat buffer: decay is per parameter


# -- gradient accumulation -----------------------------------------------------------------------
def two_models(backend, k: int):
    """Two equal float64 MLPs: one with SGD accumulating over ``k`` steps, one plain."""
    with backend.use("float64"):
        pnn.seed(1)
        a = pnn.Sequential([Dense(5, input_dim=3, activation="tanh"), Dense(2)])
        b = pnn.Sequential([Dense(5, input_dim=3, activation="tanh"), Dense(2)])
    b.load_state_dict(on(backend, host(a.state_dict())))
    a.compile(loss="mse", optimizer=opt_mod.SGD(0.1, gradient_accumulation_steps=k))
    b.compile(loss="mse", optimizer=opt_mod.SGD(0.1))
    return a, b


@pytest.mark.parametrize("k", [2, 3])
def test_accumulating_k_batches_equals_one_batch_k_times_larger(backend, k):
    """SGD, float64: k train steps of batch b, then one of batch k*b, twice; between updates
    the weights are bitwise unchanged. On JAX the steps are jit-compiled (where-selection on
    the update flag: one compiled function for every call)."""
    a, b = two_models(backend, k)
    rng = np.random.default_rng(2)
    for _ in range(2):
        x, y = rng.normal(size=(4 * k, 3)), rng.normal(size=(4 * k, 2))
        before = host(a.parameters())
        for i in range(k):
            a.train_step(
                backend.asarray(x[4 * i : 4 * i + 4]), backend.asarray(y[4 * i : 4 * i + 4])
            )
            if i < k - 1:
                for name, v in host(a.parameters()).items():
                    np.testing.assert_array_equal(v, before[name])
        b.train_step(backend.asarray(x), backend.asarray(y))
        for name, v in host(b.parameters()).items():
            np.testing.assert_allclose(host(a.parameters())[name], v, rtol=1e-12, atol=1e-14)
            assert not np.array_equal(v, before[name])
    assert a.optimizer.iterations == 2 * k and b.optimizer.iterations == 2
    assert (a._compiled() is not None) == (backend.name == "jax")


def test_accumulation_counts_updates_for_schedules_and_bias_corrections(backend):
    """Adam with a schedule, k=3, each gradient given 3 times = plain Adam on each gradient."""
    sched = opt_mod.ExponentialDecay(0.05, 1, 0.5)
    acc, _, _ = run(backend, opt_mod.Adam(sched, gradient_accumulation_steps=3), steps=0)
    params, grads = problem()
    with backend.use("float64"):
        p = q = on(backend, params)
        opt, plain = opt_mod.Adam(sched, gradient_accumulation_steps=3), opt_mod.Adam(sched)
        s, t = opt.init(p), plain.init(q)
        for g in grads[:4]:
            for _ in range(3):
                assert opt.learning_rate_at(s["step"] // 3) == plain.learning_rate_at(t["step"])
                p, s = opt.update(p, on(backend, g), s)
            q, t = plain.update(q, on(backend, g), t)
    for k in SHAPES:
        np.testing.assert_allclose(backend.to_numpy(p[k]), backend.to_numpy(q[k]), rtol=1e-13)
    assert s["step"] == 12 and t["step"] == 4


@pytest.mark.parametrize(
    "make",
    [
        lambda: opt_mod.SGD(0.05, momentum=0.9, gradient_accumulation_steps=3),
        lambda: opt_mod.Adamax(0.05, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2),
        lambda: opt_mod.Nadam(
            0.05,
            clipnorm=0.5,
            gradient_accumulation_steps=2,
            use_ema=True,
            weight_decay=0.1,
            exclude_from_weight_decay=["bias"],
        ),
        lambda: opt_mod.Lion(0.01, weight_decay=0.5, gradient_accumulation_steps=2, use_ema=True),
    ],
    ids=["sgd-accumulate", "adamax-ema-overwrite", "nadam-everything", "lion-accumulate-ema"],
)
def test_inplace_pure_and_fused_paths_agree_bitwise(backend, make):
    """update(inplace=True), update(inplace=False) and step(model) (flat buffers where the
    library has view slices) give the same parameters and slots, bitwise."""
    pure, pure_state, _ = run(backend, make())
    inplace, state, _ = run(backend, make(), inplace=True)
    params, grads = problem()
    with backend.use("float64"):
        model, opt = TinyModel(on(backend, params)), make()
        for g in grads:
            opt.step(model, on(backend, g))
    for k in SHAPES:
        want = backend.to_numpy(pure[k])
        np.testing.assert_array_equal(backend.to_numpy(inplace[k]), want)
        np.testing.assert_array_equal(backend.to_numpy(model.params[k]), want)
        for slot, value in pure_state[k].items():
            np.testing.assert_array_equal(backend.to_numpy(state[k][slot]), backend.to_numpy(value))
            got = opt.state_dict()[f"{k}.{slot}"]
            np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(value))


# -- EMA ---------------------------------------------------------------------------------------
def sgd_with_ema(lr: float, m: float, every: int | None) -> tuple[dict, dict]:
    """Plain SGD in NumPy with Keras's EMA: ema = w after update 1, then
    ema <- m * ema + (1 - m) * w; every ``every`` updates w <- ema."""
    w, grads = problem()
    ema = {}
    for t, g in enumerate(grads, start=1):
        for k in SHAPES:
            w[k] = w[k] - lr * g[k]
            ema[k] = w[k].copy() if t == 1 else m * ema[k] + (1 - m) * w[k]
            if every and t % every == 0:
                w[k] = ema[k].copy()
    return w, ema


@pytest.mark.parametrize("every", [None, 3])
@pytest.mark.parametrize("inplace", [False, True], ids=["pure", "inplace"])
def test_ema_follows_keras_formula(backend, inplace, every):
    opt = opt_mod.SGD(0.1, use_ema=True, ema_momentum=0.7, ema_overwrite_frequency=every)
    p, state, _ = run(backend, opt, inplace=inplace)
    want_w, want_ema = sgd_with_ema(0.1, 0.7, every)
    for k in SHAPES:
        np.testing.assert_allclose(backend.to_numpy(p[k]), want_w[k], rtol=1e-13, atol=1e-15)
        got = backend.to_numpy(state[k]["ema"])
        np.testing.assert_allclose(got, want_ema[k], rtol=1e-13, atol=1e-15)
    if every is None:  # the EMA leaves the weights alone: bitwise the plain SGD's
        plain, _, _ = run(backend, opt_mod.SGD(0.1), inplace=inplace)
        for k in SHAPES:
            np.testing.assert_array_equal(backend.to_numpy(p[k]), backend.to_numpy(plain[k]))


def test_finalize_and_swap_copy_the_ema_into_the_model(backend):
    params, grads = problem()
    with backend.use("float64"):
        model, opt = TinyModel(on(backend, params)), opt_mod.Adam(0.1, use_ema=True)
        opt.finalize_variable_values(model)  # before any step: nothing to do
        for k in SHAPES:
            np.testing.assert_array_equal(backend.to_numpy(model.params[k]), params[k])
        for g in grads[:5]:
            opt.step(model, on(backend, g))
        weights = host(model.params)
        ema = {k: np.array(pnn.to_numpy(v)) for k, v in opt.state_dict().items() if k != "step"}
        opt.swap_ema_weights(model)
        swapped = opt.state_dict()
        for k in SHAPES:
            np.testing.assert_array_equal(backend.to_numpy(model.params[k]), ema[f"{k}.ema"])
            np.testing.assert_array_equal(backend.to_numpy(swapped[f"{k}.ema"]), weights[k])
        opt.swap_ema_weights(model)  # and back
        for k in SHAPES:
            np.testing.assert_array_equal(backend.to_numpy(model.params[k]), weights[k])
        opt.finalize_variable_values(model)
        for k in SHAPES:
            np.testing.assert_array_equal(backend.to_numpy(model.params[k]), ema[f"{k}.ema"])
        opt.step(model, on(backend, grads[5]))  # training goes on from there
    with pytest.raises(ValueError, match="use_ema=True"):
        opt_mod.Adam().swap_ema_weights(model)


def test_fit_ends_with_the_ema_weights(backend):
    """Keras: fit overwrites the weights with their moving average at its end."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)), rng.normal(size=(32, 2))
    with backend.use("float64"):
        pnn.seed(0)
        model = pnn.Sequential([Dense(4, input_dim=3, activation="tanh"), Dense(2)])
    model.compile(loss="mse", optimizer=opt_mod.Adam(0.05, use_ema=True, ema_momentum=0.9))
    model.fit(backend.asarray(x), backend.asarray(y), epochs=2, batch_size=8, verbose=0)
    sd = model.optimizer.state_dict()
    for k, v in host(model.parameters()).items():
        np.testing.assert_array_equal(v, np.asarray(pnn.to_numpy(sd[f"{k}.ema"])))
    assert model.optimizer.iterations == 8


# -- state ---------------------------------------------------------------------------------------
def make_all() -> opt_mod.Optimizer:
    return opt_mod.Nadam(
        0.05,
        weight_decay=0.1,
        exclude_from_weight_decay=["bias"],
        gradient_accumulation_steps=3,
        use_ema=True,
        ema_momentum=0.8,
    )


def test_state_dict_round_trip_mid_accumulation_continues_identically(backend):
    params, grads = problem()
    model, opt = TinyModel(on(backend, params)), make_all()
    for g in grads[:4]:  # one update and one accumulated gradient
        opt.step(model, on(backend, g))
    saved, weights = opt.state_dict(), host(model.params)
    assert set(saved) == {"step"} | {
        f"{k}.{s}" for k in SHAPES for s in ("exp_avg", "exp_avg_sq", "accumulated_grad", "ema")
    }
    for g in grads[4:]:
        opt.step(model, on(backend, g))
    resumed, again = TinyModel(on(backend, weights)), make_all()
    again.load_state_dict(saved)
    for g in grads[4:]:
        again.step(resumed, on(backend, g))
    for k in SHAPES:
        np.testing.assert_array_equal(
            backend.to_numpy(resumed.params[k]), backend.to_numpy(model.params[k])
        )
    for key, value in opt.state_dict().items():
        got = again.state_dict()[key]
        assert (
            key == "step" and got == value or np.array_equal(pnn.to_numpy(got), pnn.to_numpy(value))
        )


def test_checkpoint_round_trip_keeps_accumulator_and_ema(backend, tmp_path):
    from portable_nn import io as pio

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    with backend.use("float64"):
        pnn.seed(0)
        model = pnn.Sequential([Dense(4, input_dim=3, activation="tanh"), Dense(2)])
    model.compile(loss="mse", optimizer=make_all())
    model.fit(backend.asarray(x), backend.asarray(y), epochs=1, batch_size=4, verbose=0)
    assert model.optimizer.iterations == 5
    pio.save_model(model, tmp_path / "m.safetensors")
    loaded = pio.load_model(tmp_path / "m.safetensors")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    want, got = model.optimizer.state_dict(), loaded.optimizer.state_dict()
    assert want.keys() == got.keys() and got["step"] == 5
    for key in want:
        if key != "step":
            np.testing.assert_array_equal(
                np.asarray(pnn.to_numpy(got[key])), np.asarray(pnn.to_numpy(want[key]))
            )


# -- arguments -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: opt_mod.SGD(gradient_accumulation_steps=0),
            ValueError,
            r"gradient_accumulation_steps=0",
        ),
        (
            lambda: opt_mod.Adam(gradient_accumulation_steps=2.5),
            ValueError,
            r"gradient_accumulation_steps=2.5",
        ),
        (lambda: opt_mod.Adam(ema_momentum=1.0), ValueError, r"ema_momentum must be in \[0, 1\)"),
        (lambda: opt_mod.Adam(ema_momentum=-0.1), ValueError, r"ema_momentum=-0.1"),
        (lambda: opt_mod.Adam(ema_overwrite_frequency=0), ValueError, r"ema_overwrite_frequency=0"),
        (lambda: opt_mod.Adam(use_ema=1), TypeError, r"use_ema must be True or False"),
        (
            lambda: opt_mod.AdamW(exclude_from_weight_decay="bias"),
            ValueError,
            r"must be a list.*='bias'",
        ),
        (
            lambda: opt_mod.AdamW(exclude_from_weight_decay=["bias", ""]),
            ValueError,
            r"exclude_from_weight_decay\[1\]=''",
        ),
        (
            lambda: opt_mod.AdamW(exclude_from_weight_decay=["("]),
            ValueError,
            r"not a valid regular expression",
        ),
        (lambda: opt_mod.Nadam(momentum_decay=0.0), ValueError, r"momentum_decay=0.0"),
        (lambda: opt_mod.Nadam(beta_2=1.0), ValueError, r"beta_2=1.0"),
        (lambda: opt_mod.Adamax(epsilon=-1.0), ValueError, r"epsilon=-1.0"),
        (lambda: opt_mod.Lion(beta_1=1.5), ValueError, r"beta_1=1.5"),
        (lambda: opt_mod.Lion(weight_decay=-1), ValueError, r"weight_decay=-1"),
    ],
)
def test_bad_arguments_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_gradient_mid_accumulation_changes_nothing(backend):
    params, grads = problem()
    model, opt = TinyModel(on(backend, params)), make_all()
    opt.check_finite = True
    for g in grads[:2]:
        opt.step(model, on(backend, g))
    weights, state = host(model.params), opt.state_dict()
    bad = dict(grads[2])
    bad["0.bias"] = np.full(4, np.nan)
    with pytest.raises(ValueError, match="0.bias"):
        opt.step(model, on(backend, bad))
    for k in SHAPES:
        np.testing.assert_array_equal(backend.to_numpy(model.params[k]), weights[k])
    for key, value in opt.state_dict().items():
        assert (
            key == "step"
            and value == 2
            or np.array_equal(pnn.to_numpy(value), pnn.to_numpy(state[key]))
        )


def test_config_round_trips_with_every_option():
    import json

    opt = make_all()
    config = json.loads(json.dumps(opt.get_config()))
    again = opt_mod.get(config)
    assert type(again) is opt_mod.Nadam and again.get_config() == opt.get_config()
    assert again.exclude_from_weight_decay == ["bias"] and again.gradient_accumulation_steps == 3
    assert again.slot_names == ("exp_avg", "exp_avg_sq", "accumulated_grad", "ema")
    for name, cls in [("nadam", opt_mod.Nadam), ("adamax", opt_mod.Adamax), ("lion", opt_mod.Lion)]:
        assert type(opt_mod.get(name)) is cls
