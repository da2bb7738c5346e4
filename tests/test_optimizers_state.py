"""Optimizers: clipping vs torch, bad input changes nothing, step(model), state_dict, config."""

from __future__ import annotations

import json

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import optimizers as opt_mod
from portable_nn.backend import has_view_slices, is_writeable

SHAPES = {"0.weight": (3, 4), "0.bias": (4,), "2.weight": (4, 2)}


def host(seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: scale * rng.normal(size=s) for k, s in SHAPES.items()}


def on(backend, arrays: dict, dtype: str | None = None) -> dict:
    """Fresh copies on the backend (NumPy's asarray would share memory with the host data)."""
    return {k: backend.asarray(np.array(v), dtype) for k, v in arrays.items()}


def snapshot(d: dict) -> dict:
    """NumPy copies of a params / state dict (nested one level)."""
    return {
        k: (v if isinstance(v, int) else {s: np.array(pnn.to_numpy(a)) for s, a in v.items()})
        if isinstance(v, (dict, int))
        else np.array(pnn.to_numpy(v))
        for k, v in d.items()
    }


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            assert_same(a[k], b[k])
        elif isinstance(a[k], int):
            assert a[k] == b[k]
        else:
            np.testing.assert_array_equal(a[k], b[k])


class TinyModel:
    """The parameters()/set_parameters() protocol of pnn layers and Sequential."""

    def __init__(self, params: dict, copies: bool = False) -> None:
        self.params, self.copies, self.set_calls = dict(params), copies, 0

    def parameters(self) -> dict:
        if self.copies:
            return {k: pnn.to_numpy(v).copy() for k, v in self.params.items()}
        return dict(self.params)

    def set_parameters(self, values: dict) -> None:
        self.set_calls += 1
        self.params.update(values)


# -- clipping ------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.1, 10.0], ids=["below", "above"])
def test_clip_by_global_norm_matches_torch(backend, scale):
    torch = pytest.importorskip("torch")
    grads = host(1, scale)
    tensors = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g)
    total = torch.nn.utils.clip_grad_norm_(tensors, max_norm=2.0)
    with backend.use("float64"):
        xp_grads = on(backend, grads)
        norm = opt_mod.global_norm(xp_grads, backend.xp)
        clipped = opt_mod.clip_by_global_norm(xp_grads, 2.0, backend.xp)
    np.testing.assert_allclose(float(norm), float(total), rtol=1e-12)
    for t, (k, g) in zip(tensors, clipped.items()):
        backend.assert_same_place(g)
        np.testing.assert_allclose(backend.to_numpy(g), t.grad.numpy(), rtol=1e-12, err_msg=k)
        np.testing.assert_array_equal(backend.to_numpy(xp_grads[k]), grads[k])  # untouched


def test_clip_by_value_matches_torch(backend):
    torch = pytest.importorskip("torch")
    grads = host(2, 2.0)
    tensors = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_value_(tensors, clip_value=0.5)
    with backend.use("float64"):
        clipped = opt_mod.clip_by_value(on(backend, grads), 0.5, backend.xp)
    for t, g in zip(tensors, clipped.values()):
        np.testing.assert_array_equal(backend.to_numpy(g), t.grad.numpy())


@pytest.mark.parametrize("clip", ["clipnorm", "clipvalue"])
def test_optimizer_clipping_matches_torch_loop(backend, clip):
    """SGD(momentum) with clipping over 5 steps vs torch clip_grad_*_ followed by step()."""
    torch = pytest.importorskip("torch")
    params = host(3)
    grads = [host(10 + i, 3.0) for i in range(5)]
    tensors = [torch.tensor(v, requires_grad=True) for v in params.values()]
    ref_opt = torch.optim.SGD(tensors, lr=0.1, momentum=0.9)
    for g in grads:
        for t, v in zip(tensors, g.values()):
            t.grad = torch.tensor(v)
        if clip == "clipnorm":
            torch.nn.utils.clip_grad_norm_(tensors, max_norm=1.5)
        else:
            torch.nn.utils.clip_grad_value_(tensors, clip_value=0.5)
        ref_opt.step()
    opt = opt_mod.SGD(0.1, momentum=0.9, **{clip: 1.5 if clip == "clipnorm" else 0.5})
    with backend.use("float64"):
        p = on(backend, params)
        state = opt.init(p)
        for g in grads:
            p, state = opt.update(p, on(backend, g), state, inplace=True)
    for t, v in zip(tensors, p.values()):
        np.testing.assert_allclose(backend.to_numpy(v), t.detach().numpy(), rtol=1e-10)


# -- bad input: clear error, nothing changed ------------------------------------------------------
def _bad_grads(backend, kind: str) -> tuple[dict, str]:
    g = host(5)
    if kind == "missing":
        del g["0.bias"]
        return on(backend, g), r"missing \['0.bias'\]"
    if kind == "extra":
        g["3.weight"] = np.ones(2)
        return on(backend, g), r"unexpected \['3.weight'\]"
    if kind == "shape":
        g["2.weight"] = np.ones((2, 4))
        return on(backend, g), r"'2.weight' has shape \(2, 4\), expected .* \(4, 2\)"
    g["0.bias"][1] = np.nan
    return on(backend, g), r"\['0.bias'\]"


@pytest.mark.parametrize("inplace", [False, True], ids=["pure", "inplace"])
@pytest.mark.parametrize("kind", ["missing", "extra", "shape", "nan"])
def test_bad_gradients_raise_and_change_nothing(backend, kind, inplace):
    opt = opt_mod.Adam(0.1, check_finite=True)
    p = on(backend, host(4))
    state = opt.update(p, on(backend, host(6)), opt.init(p))[1]  # non-zero slots, step 1
    p_before, state_before = snapshot(p), snapshot(state)
    grads, message = _bad_grads(backend, kind)
    error = opt_mod.NonFiniteGradientError if kind == "nan" else ValueError
    with pytest.raises(error, match=message):
        opt.update(p, grads, state, inplace=inplace)
    assert_same(snapshot(p), p_before)
    assert_same(snapshot(state), state_before)


def test_non_finite_error_is_both_floating_point_and_value_error(backend):
    model = TinyModel(on(backend, host(4)))
    opt = opt_mod.SGD(0.1, momentum=0.9, check_finite=True)
    opt.step(model, on(backend, host(5)))
    before, state_before = snapshot(model.params), opt.state_dict()
    grads = host(6)
    grads["2.weight"][0, 0] = np.inf
    with pytest.raises(FloatingPointError, match="2.weight"):
        opt.step(model, on(backend, grads))
    with pytest.raises(ValueError, match="non-finite"):
        opt.step(model, on(backend, grads))
    assert_same(snapshot(model.params), before)
    assert_same(snapshot(opt.state_dict()), snapshot(state_before))
    assert opt.iterations == 1


def test_without_check_finite_nan_gradients_propagate(backend):
    grads = host(5)
    grads["0.bias"][0] = np.nan
    p = on(backend, host(4))
    opt = opt_mod.SGD(0.1)
    new = opt.update(p, on(backend, grads), opt.init(p))[0]
    assert np.isnan(backend.to_numpy(new["0.bias"])[0])


def test_other_input_errors(backend):
    p = on(backend, host(4))
    opt = opt_mod.RMSprop()
    with pytest.raises(ValueError, match="'step'"):
        opt.init({**p, "step": p["0.bias"]})
    with pytest.raises(TypeError, match="float dtype"):
        opt.init({"w": backend.asarray(np.arange(3))})
    state = opt.init({k: v for k, v in p.items() if k != "0.bias"})
    with pytest.raises(ValueError, match=r"missing \['0.bias'\]"):
        opt.update(p, on(backend, host(5)), state)


def test_gradients_from_another_backend_are_rejected(backend):
    if backend.name == "numpy":
        pytest.skip("needs a non-NumPy backend")
    p = on(backend, host(4))
    opt = opt_mod.SGD(0.1)
    with pytest.raises(ValueError, match="'0.weight' is a numpy array"):
        opt.update(p, host(5), opt.init(p))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: opt_mod.SGD(0.0), r"learning_rate must be > 0. Received: learning_rate=0.0"),
        (lambda: opt_mod.SGD(-1), r"learning_rate=-1"),
        (lambda: opt_mod.SGD(float("nan")), r"learning_rate must be finite"),
        (lambda: opt_mod.SGD(momentum=1.0), r"momentum must be in \[0, 1\). Received: momentum"),
        (lambda: opt_mod.SGD(nesterov=True), r"nesterov=True needs momentum > 0"),
        (lambda: opt_mod.SGD(weight_decay=-0.1), r"weight_decay=-0.1"),
        (lambda: opt_mod.Adam(beta_1=1.0), r"beta_1=1.0"),
        (lambda: opt_mod.Adam(beta_2=-0.5), r"beta_2=-0.5"),
        (lambda: opt_mod.Adam(epsilon=-1e-8), r"epsilon=-1e-08"),
        (lambda: opt_mod.AdamW(weight_decay=-1.0), r"weight_decay=-1.0"),
        (lambda: opt_mod.RMSprop(rho=1.5), r"rho=1.5"),
        (lambda: opt_mod.Adagrad(lr_decay=-1), r"lr_decay=-1"),
        (lambda: opt_mod.Adagrad(initial_accumulator_value=-1), r"initial_accumulator"),
        (lambda: opt_mod.Adam(clipnorm=0), r"clipnorm=0"),
        (lambda: opt_mod.Adam(clipnorm=1.0, clipvalue=1.0), r"at most one of clipnorm"),
    ],
)
def test_hyper_parameters_are_validated(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_hyper_parameter_types_are_validated():
    with pytest.raises(TypeError, match="learning_rate must be a real number"):
        opt_mod.SGD("0.1")
    with pytest.raises(TypeError, match="amsgrad must be True or False"):
        opt_mod.Adam(amsgrad=1)


# -- step(model, grads) ----------------------------------------------------------------------------
def test_step_matches_pure_update_and_skips_set_parameters_in_place(backend):
    params = host(4)
    model = TinyModel(on(backend, params))
    opt = opt_mod.Adam(0.05)
    ref_p = on(backend, params)
    ref_state = opt_mod.Adam(0.05).init(ref_p)
    assert opt.iterations == 0
    for i in range(4):
        grads = on(backend, host(20 + i))
        opt.step(model, grads)
        ref_p, ref_state = opt_mod.Adam(0.05).update(ref_p, grads, ref_state)
    assert opt.iterations == 4
    for k in SHAPES:
        np.testing.assert_array_equal(backend.to_numpy(model.params[k]), backend.to_numpy(ref_p[k]))
    writeable = is_writeable(backend.asarray(np.zeros(1)))
    installs = int(has_view_slices(backend.asarray(np.zeros(1)))) or backend.id == "numpy_readonly"
    expected = {"jax": 4, "numpy_readonly": 2}.get(backend.id, installs if writeable else 4)
    # read-only: pure once, then our own writeable arrays; small arrays that can share one
    # flat buffer get its views once (fused.py), then every step is in place
    assert model.set_calls == expected


def test_step_with_a_model_whose_parameters_are_copies():
    """``step`` updates what ``parameters()`` hands out in place; a model handing out copies
    asks for ``inplace=False`` and gets ``set_parameters`` on every step."""
    model = TinyModel(host(4), copies=True)
    opt = opt_mod.SGD(0.5, inplace=False)
    opt.step(model, host(5))
    np.testing.assert_allclose(model.params["0.bias"], host(4)["0.bias"] - 0.5 * host(5)["0.bias"])
    assert model.set_calls == 1


def test_step_on_a_real_dense_layer(backend):
    layer = pnn.layers.Dense(3, input_dim=4)
    x = backend.asarray(np.random.default_rng(0).normal(size=(5, 4)), "float32")
    y, cache = layer.forward(x, training=True)
    _, grads = layer.backward(y, cache)  # loss 0.5 * sum(y**2)
    before = {k: np.array(backend.to_numpy(v)) for k, v in layer.parameters().items()}
    opt = opt_mod.SGD(0.1)
    opt.step(layer, grads)
    arrays = layer.parameters()  # its own arrays, or views of the optimizer's flat buffer
    for k, v in arrays.items():
        want = before[k] - 0.1 * backend.to_numpy(grads[k])
        np.testing.assert_allclose(backend.to_numpy(v), want, rtol=1e-6, atol=1e-6)
        backend.assert_same_place(v)
    opt.step(layer, grads)  # read-only arrays: replaced by writeable ones (then flat views)
    arrays = layer.parameters()
    opt.step(layer, grads)
    if all(map(is_writeable, arrays.values())):  # in place: the layer keeps those arrays
        assert all(layer.parameters()[k] is a for k, a in arrays.items())
    assert opt.iterations == 3


# -- state_dict / load_state_dict -----------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam", "adamax", "lion"]
)
def test_state_dict_round_trip_continues_identically(backend, name):
    def make():
        config = {"sgd": {"momentum": 0.9}, "rmsprop": {"centered": True}}.get(name, {})
        return opt_mod.get({"class_name": name, "config": {"learning_rate": 0.01, **config}})

    model, opt = TinyModel(on(backend, host(4))), make()
    for i in range(3):
        opt.step(model, on(backend, host(30 + i)))
    saved_state, saved_params = opt.state_dict(), snapshot(model.params)
    assert saved_state["step"] == 3 and isinstance(saved_state["step"], int)
    for i in range(3, 6):
        opt.step(model, on(backend, host(30 + i)))

    resumed, opt2 = TinyModel(on(backend, saved_params)), make()
    opt2.load_state_dict(saved_state)  # before any step: checked on the first step
    assert opt2.iterations == 3
    for i in range(3, 6):
        opt2.step(resumed, on(backend, host(30 + i)))
    assert_same(snapshot(resumed.params), snapshot(model.params))
    assert_same(snapshot(opt2.state_dict()), snapshot(opt.state_dict()))


def test_state_dict_keys_and_load_into_running_optimizer(backend):
    model, opt = TinyModel(on(backend, host(4))), opt_mod.Adam(amsgrad=True)
    opt.step(model, on(backend, host(5)))
    sd = opt.state_dict()
    slots = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    assert set(sd) == {"step"} | {f"{k}.{s}" for k in SHAPES for s in slots}
    opt.step(model, on(backend, host(6)))
    opt.load_state_dict(sd)
    assert opt.iterations == 1
    assert_same(snapshot(opt.state_dict()), snapshot(sd))


def _corrupt(backend, sd: dict, kind: str) -> tuple[dict, str]:
    sd = dict(sd)
    if kind == "missing_slot":
        del sd["0.bias.exp_avg_sq"]
        return sd, r"'0.bias' is missing slots \['exp_avg_sq'\]"
    if kind == "unknown_slot":
        sd["0.bias.velocity"] = sd["0.bias.exp_avg"]
        return sd, r"unexpected optimizer state entry '0.bias.velocity'"
    if kind == "unknown_param":
        sd["9.bias.exp_avg"] = sd["9.bias.exp_avg_sq"] = sd["0.bias.exp_avg"]
        return sd, r"unexpected \['9.bias'\]"
    if kind == "shape":
        sd["2.weight.exp_avg"] = backend.asarray(np.zeros((2, 4)), "float32")
        return sd, r"'2.weight.exp_avg' has shape \(2, 4\), expected \(4, 2\)"
    if kind == "dtype":
        sd["2.weight.exp_avg"] = backend.asarray(np.zeros((4, 2)), "float32")
        return sd, r"'2.weight.exp_avg' has dtype .*float32, expected .*float64"
    sd["step"] = -2
    return sd, r"'step' must be a non-negative integer"


@pytest.mark.parametrize(
    "kind", ["missing_slot", "unknown_slot", "unknown_param", "shape", "dtype", "step"]
)
def test_bad_state_dict_raises_and_changes_nothing(backend, kind):
    model, opt = TinyModel(on(backend, host(4))), opt_mod.Adam()
    opt.step(model, on(backend, host(5)))
    good = opt.state_dict()
    bad, message = _corrupt(backend, good, kind)
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(bad)
    assert_same(snapshot(opt.state_dict()), snapshot(good))
    fresh = opt_mod.Adam()  # not yet stepped: checked against the parameters given
    with pytest.raises(ValueError, match=message):
        fresh.load_state_dict(bad, params=model.parameters())
    assert fresh.state_dict() == {"step": 0}


def test_state_dict_loaded_before_first_step_is_checked_then(backend):
    model, opt = TinyModel(on(backend, host(4))), opt_mod.Adam()
    opt.step(model, on(backend, host(5)))
    sd = opt.state_dict()
    sd["0.bias.exp_avg"] = backend.asarray(np.zeros(7), "float32")
    sd["0.bias.exp_avg_sq"] = backend.asarray(np.zeros(7), "float32")
    other = opt_mod.Adam()
    other.load_state_dict(sd)
    before = snapshot(model.params)
    with pytest.raises(ValueError, match=r"'0.bias.exp_avg' has shape \(7,\), expected \(4,\)"):
        other.step(model, on(backend, host(6)))
    assert_same(snapshot(model.params), before)
    other.load_state_dict(opt.state_dict())  # a good one replaces it, still checked at step
    other.step(model, on(backend, host(6)))
    assert other.iterations == 2


# -- configuration ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam", "adamax", "lion", "Adam", "SGD"],
)
def test_get_by_name_and_config_round_trip(name):
    opt = opt_mod.get(name)
    assert type(opt).__name__.lower() == name.lower()
    config = json.loads(json.dumps(opt.get_config()))
    assert config["class_name"] == type(opt).__name__
    again = opt_mod.deserialize(config)
    assert type(again) is type(opt) and again.get_config() == opt.get_config()
    assert opt_mod.get(opt) is opt


def test_config_with_schedule_and_options_round_trips():
    schedule = opt_mod.CosineDecay(0.0, 100, alpha=0.1, warmup_steps=10, warmup_target=0.1)
    opt = opt_mod.AdamW(schedule, beta_2=0.99, weight_decay=0.05, amsgrad=True, clipnorm=1.0)
    config = json.loads(json.dumps(opt.get_config()))
    assert config["config"]["learning_rate"]["class_name"] == "CosineDecay"
    again = opt_mod.get(config)
    assert again.learning_rate == schedule and again.clipnorm == 1.0 and again.amsgrad
    assert again.get_config() == opt.get_config()
    assert opt_mod.AdamW.from_config(config["config"]).get_config() == opt.get_config()


def test_repr_config_and_signature_follow_the_constructor():
    opt = opt_mod.AdamW(0.01, amsgrad=True, clipnorm=1, check_finite=True)
    assert repr(opt) == (
        "AdamW(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-08, amsgrad=True, "
        "weight_decay=0.01, clipnorm=1.0, clipvalue=None)"
    )
    assert list(opt.get_config()["config"]) == [
        *("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "epsilon_hat", "weight_decay"),
        *("clipnorm", "clipvalue", "check_finite", "inplace", "exclude_from_weight_decay"),
        *("gradient_accumulation_steps", "use_ema", "ema_momentum", "ema_overwrite_frequency"),
    ]
    quiet = opt_mod.SGD(0.1, use_ema=True, exclude_from_weight_decay=["bias"])
    assert repr(quiet) == (  # the quiet options show only when set
        "SGD(learning_rate=0.1, momentum=0.0, nesterov=False, weight_decay=0.0, clipnorm=None, "
        "clipvalue=None, exclude_from_weight_decay=['bias'], use_ema=True)"
    )
    with pytest.raises(TypeError):
        opt_mod.SGD(0.1, 0.9, False, 0.0, 1.0)  # the options are keyword-only
    schedule = opt_mod.StepDecay(0.1, 3)
    assert repr(schedule) == "StepDecay(initial_learning_rate=0.1, step_size=3, gamma=0.1)"
    assert schedule == opt_mod.StepDecay(0.1, 3) != opt_mod.StepDecay(0.1, 4)


def test_get_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamx'.*'adagrad', 'adam'"):
        opt_mod.get("adamx")
    with pytest.raises(ValueError, match="unknown optimizer 'NAdamW'"):
        opt_mod.deserialize({"class_name": "NAdamW", "config": {}})
    with pytest.raises(TypeError, match="expected an optimizer name"):
        opt_mod.get(3)
    with pytest.raises(TypeError, match="plain callable"):
        opt_mod.SGD(lambda step: 0.1).get_config()


def test_package_exports_optimizers():
    assert pnn.optimizers.get("sgd").learning_rate == 0.01  # torch's default
    assert pnn.optimizers.Adagrad().epsilon == 1e-10
    assert pnn.optimizers.schedules.StepDecay is opt_mod.StepDecay


def test_read_only_slots_take_the_pure_path_and_are_copied_on_load(backend):
    if backend.id != "numpy":
        pytest.skip("read-only slot arrays are a NumPy matter")
    p = on(backend, host(4))
    opt = opt_mod.Adam(0.1)
    state = opt.update(p, on(backend, host(5)), opt.init(p))[1]
    for slots in (v for k, v in state.items() if k != "step"):
        for a in slots.values():
            a.flags.writeable = False
    p_before, state_before = snapshot(p), snapshot(state)
    new_p, new_state = opt.update(p, on(backend, host(6)), state, inplace=True)
    assert new_p is not p and new_state is not state  # fell back to the pure path
    assert_same(snapshot(p), p_before)
    assert_same(snapshot(state), state_before)

    flat = {
        "step": 1,
        **{f"{k}.{s}": a for k, v in state.items() if k != "step" for s, a in v.items()},
    }
    model = TinyModel(p)
    opt.load_state_dict(flat, params=p)  # copies: the internal slots are writeable
    opt.step(model, on(backend, host(6)))
    assert model.set_calls == 1  # in place (after handing the model views of one flat buffer)
    for k in SHAPES:
        np.testing.assert_array_equal(model.params[k], new_p[k])


# -- many small arrays updated as one (fused.py) -----------------------------------------------
FUSED_CASES = {
    "sgd-nesterov-wd": lambda: opt_mod.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam-amsgrad": lambda: opt_mod.Adam(0.05, amsgrad=True),
    "adamw-schedule": lambda: opt_mod.AdamW(opt_mod.ExponentialDecay(0.05, 2, 0.5)),
    "rmsprop-centered-momentum": lambda: opt_mod.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad-clipnorm": lambda: opt_mod.Adagrad(0.1, lr_decay=0.1, clipnorm=0.5),
}


@pytest.mark.parametrize("case", list(FUSED_CASES))
def test_fused_step_equals_the_per_array_update_bitwise(backend, case):
    """One update over flat buffers does the same elementwise operations on the same numbers:
    bitwise equal to the pure per-array update, also across a set_parameters and a state load
    (both rebind arrays: the flat buffers are rebuilt)."""
    model = TinyModel(on(backend, host(4), "float32"))
    opt = FUSED_CASES[case]()
    ref_p = on(backend, host(4), "float32")
    ref_opt = FUSED_CASES[case]()
    ref_state = ref_opt.init(ref_p)
    for i in range(6):
        grads = on(backend, host(20 + i), "float32")
        if i == 2:  # the model's arrays replaced: fused buffers rebuilt from them
            model.set_parameters(on(backend, host(7), "float32"))
            ref_p = on(backend, host(7), "float32")
        if i == 4:  # the state replaced by a load
            opt.load_state_dict(opt.state_dict(), params=model.parameters())
        opt.step(model, grads)
        ref_p, ref_state = ref_opt.update(ref_p, grads, ref_state)
        for k in SHAPES:
            assert np.array_equal(backend.to_numpy(model.params[k]), backend.to_numpy(ref_p[k]))
    assert_same(snapshot(opt.state_dict()), snapshot(ref_opt_flat(ref_state)))
    fused = opt._flat is not None
    assert fused == (
        has_view_slices(model.params["0.bias"]) and is_writeable(model.params["0.bias"])
    )


def ref_opt_flat(state: dict) -> dict:
    return {
        "step": state["step"],
        **{f"{k}.{s}": a for k, v in state.items() if k != "step" for s, a in v.items()},
    }


def test_large_arrays_are_not_fused(monkeypatch):
    from portable_nn.optimizers import fused

    monkeypatch.setattr(fused, "MEAN_SIZE_LIMIT", 4)  # SHAPES hold 9.3 elements on average
    model = TinyModel({k: np.array(v, np.float32) for k, v in host(4).items()})
    arrays = dict(model.params)
    opt = opt_mod.Adam(0.05)
    opt.step(model, {k: np.array(v, np.float32) for k, v in host(5).items()})
    assert opt._flat is None and model.set_calls == 0
    assert all(model.params[k] is a for k, a in arrays.items())
