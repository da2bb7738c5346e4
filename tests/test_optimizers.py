"""Optimizers vs torch.optim (10 steps, float64, every backend), pure vs in-place, dtypes."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from portable_nn import optimizers as opt_mod
from portable_nn.backend import is_writeable

SHAPES = {"dense.weight": (3, 4), "dense.bias": (4,), "out.weight": (4, 1)}
N_STEPS = 10

# id -> (portable_nn constructor, torch.optim class name, torch kwargs)
CASES = {
    "sgd": (lambda: opt_mod.SGD(0.1), "SGD", {"lr": 0.1}),
    "sgd-momentum": (lambda: opt_mod.SGD(0.05, momentum=0.9), "SGD", {"lr": 0.05, "momentum": 0.9}),
    "sgd-nesterov": (
        lambda: opt_mod.SGD(0.05, momentum=0.8, nesterov=True),
        "SGD",
        {"lr": 0.05, "momentum": 0.8, "nesterov": True},
    ),
    "sgd-weight_decay": (
        lambda: opt_mod.SGD(0.05, momentum=0.5, weight_decay=0.1),
        "SGD",
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1},
    ),
    "adam": (lambda: opt_mod.Adam(0.01), "Adam", {"lr": 0.01}),
    "adam-amsgrad": (
        lambda: opt_mod.Adam(0.01, beta_1=0.8, beta_2=0.9, amsgrad=True),
        "Adam",
        {"lr": 0.01, "betas": (0.8, 0.9), "amsgrad": True},
    ),
    "adam-weight_decay": (
        lambda: opt_mod.Adam(0.01, epsilon=1e-3, weight_decay=0.1),
        "Adam",
        {"lr": 0.01, "eps": 1e-3, "weight_decay": 0.1},
    ),
    "adamw": (lambda: opt_mod.AdamW(0.01), "AdamW", {"lr": 0.01}),
    "adamw-amsgrad": (
        lambda: opt_mod.AdamW(0.02, weight_decay=0.3, amsgrad=True),
        "AdamW",
        {"lr": 0.02, "weight_decay": 0.3, "amsgrad": True},
    ),
    "rmsprop": (lambda: opt_mod.RMSprop(0.01), "RMSprop", {"lr": 0.01}),
    "rmsprop-momentum": (
        lambda: opt_mod.RMSprop(0.01, rho=0.9, momentum=0.7),
        "RMSprop",
        {"lr": 0.01, "alpha": 0.9, "momentum": 0.7},
    ),
    "rmsprop-centered": (
        lambda: opt_mod.RMSprop(0.01, centered=True, momentum=0.3),
        "RMSprop",
        {"lr": 0.01, "centered": True, "momentum": 0.3},
    ),
    "rmsprop-weight_decay": (
        lambda: opt_mod.RMSprop(0.01, epsilon=1e-4, weight_decay=0.2),
        "RMSprop",
        {"lr": 0.01, "eps": 1e-4, "weight_decay": 0.2},
    ),
    "adagrad": (lambda: opt_mod.Adagrad(0.1), "Adagrad", {"lr": 0.1}),
    "adagrad-initial_accumulator": (
        lambda: opt_mod.Adagrad(0.1, initial_accumulator_value=0.5),
        "Adagrad",
        {"lr": 0.1, "initial_accumulator_value": 0.5},
    ),
    "adagrad-weight_decay": (
        lambda: opt_mod.Adagrad(0.1, weight_decay=0.2, epsilon=1e-6),
        "Adagrad",
        {"lr": 0.1, "weight_decay": 0.2, "eps": 1e-6},
    ),
    "adagrad-lr_decay": (
        lambda: opt_mod.Adagrad(0.1, lr_decay=0.3),
        "Adagrad",
        {"lr": 0.1, "lr_decay": 0.3},
    ),
    "nadam": (lambda: opt_mod.Nadam(0.01), "NAdam", {"lr": 0.01}),
    "nadam-options": (
        lambda: opt_mod.Nadam(0.02, beta_1=0.8, beta_2=0.9, epsilon=1e-4, momentum_decay=0.1),
        "NAdam",
        {"lr": 0.02, "betas": (0.8, 0.9), "eps": 1e-4, "momentum_decay": 0.1},
    ),
    "nadam-weight_decay": (
        lambda: opt_mod.Nadam(0.01, weight_decay=0.2),
        "NAdam",
        {"lr": 0.01, "weight_decay": 0.2},
    ),
    "adamax": (lambda: opt_mod.Adamax(0.01), "Adamax", {"lr": 0.01}),
    "adamax-options": (
        lambda: opt_mod.Adamax(0.05, beta_1=0.7, beta_2=0.9, epsilon=1e-3, weight_decay=0.1),
        "Adamax",
        {"lr": 0.05, "betas": (0.7, 0.9), "eps": 1e-3, "weight_decay": 0.1},
    ),
}


FALLBACK_CASES = ("sgd-momentum", "adam-amsgrad", "rmsprop-centered", "adagrad", "nadam", "adamax")


def host_problem(seed: int = 0, dtype: str = "float64") -> tuple[dict, list[dict]]:
    """Random parameters and N_STEPS gradient dicts whose scale changes from step to step."""
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}
    grads = []
    for _ in range(N_STEPS):
        scale = rng.uniform(0.1, 3.0)
        grads.append({k: (scale * rng.normal(size=s)).astype(dtype) for k, s in SHAPES.items()})
    return params, grads


@functools.cache
def torch_reference(case: str) -> tuple[dict, dict]:
    """Parameters and per-parameter optimizer state after N_STEPS of torch.optim."""
    torch = pytest.importorskip("torch")
    _, cls_name, kwargs = CASES[case]
    params, grads = host_problem()
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = getattr(torch.optim, cls_name)(list(tensors.values()), **kwargs)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # NAdam's mu_product: float64 as ours
    try:
        for g in grads:
            for k, t in tensors.items():
                t.grad = torch.tensor(g[k])
            opt.step()
    finally:
        torch.set_default_dtype(default)
    slots = {  # per-element slots (NAdam's 0-d mu_product is a Python float here)
        k: {s: v.numpy().copy() for s, v in opt.state[t].items() if v.ndim}
        for k, t in tensors.items()
    }
    return {k: t.detach().numpy().copy() for k, t in tensors.items()}, slots


def skip_inplace_where_pure(backend) -> None:
    """JAX and read-only NumPy take the pure path anyway (tested below): no need to repeat."""
    if backend.id in ("jax", "numpy_readonly"):
        pytest.skip("no in-place path on this backend")


def run(backend, opt, *, inplace: bool, dtype: str = "float64") -> tuple[dict, dict]:
    params, grads = host_problem(dtype=dtype)
    p = {k: backend.asarray(v) for k, v in params.items()}
    state = opt.init(p)
    for g in grads:
        p, state = opt.update(
            p, {k: backend.asarray(v) for k, v in g.items()}, state, inplace=inplace
        )
    return p, state


@pytest.mark.parametrize("inplace", [False, True], ids=["pure", "inplace"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_optim(backend, case, inplace):
    if inplace:
        skip_inplace_where_pure(backend)
    ref_params, ref_slots = torch_reference(case)
    opt = CASES[case][0]()
    with backend.use("float64"):
        params, state = run(backend, opt, inplace=inplace)
    assert state["step"] == N_STEPS
    for name, ref in ref_params.items():
        backend.assert_same_place(params[name])
        np.testing.assert_allclose(backend.to_numpy(params[name]), ref, rtol=1e-10, atol=1e-12)
        assert set(state[name]) == set(ref_slots[name])  # torch's slot names
        for slot, ref_slot in ref_slots[name].items():
            got = backend.to_numpy(state[name][slot])
            np.testing.assert_allclose(got, ref_slot, rtol=1e-10, atol=1e-12, err_msg=slot)


@pytest.mark.parametrize("case", list(CASES))
def test_inplace_path_equals_pure_path(backend, case):
    """Bitwise on NumPy (the in-place forms round exactly like the pure ones); the in-place
    path is really taken where arrays are writeable, and never on JAX / read-only NumPy."""
    if case not in FALLBACK_CASES:
        skip_inplace_where_pure(backend)
    with backend.use("float64"):
        pure, pure_state = run(backend, CASES[case][0](), inplace=False)
        params, grads = host_problem()
        p = {k: backend.asarray(v) for k, v in params.items()}
        opt = CASES[case][0]()
        state = opt.init(p)
        taken = []
        for host_g in grads:
            g = {k: backend.asarray(v) for k, v in host_g.items()}
            g_before = {k: np.array(backend.to_numpy(v)) for k, v in g.items()}
            writeable = all(is_writeable(a) for a in p.values())
            new_p, new_state = opt.update(p, g, state, inplace=True)
            for k, v in g.items():  # the gradients are never written to
                np.testing.assert_array_equal(backend.to_numpy(v), g_before[k])
            taken.append(new_p is p and new_state is state)
            assert taken[-1] == writeable
            p, state = new_p, new_state
    # JAX never; read-only NumPy inputs take the pure path once, then own writeable copies
    expected = {"jax": [False] * N_STEPS, "numpy_readonly": [False] + [True] * (N_STEPS - 1)}
    assert taken == expected.get(backend.id, [True] * N_STEPS)
    for name in SHAPES:
        got, want = backend.to_numpy(p[name]), backend.to_numpy(pure[name])
        if backend.id == "numpy":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0.0)
        for slot, value in pure_state[name].items():
            got = backend.to_numpy(state[name][slot])
            np.testing.assert_allclose(got, backend.to_numpy(value), rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("case", ["sgd-nesterov", "adam-amsgrad", "rmsprop-centered", "adagrad"])
def test_pure_update_does_not_touch_inputs(backend, case):
    params, grads = host_problem()
    p = {k: backend.asarray(v) for k, v in params.items()}
    g = {k: backend.asarray(v) for k, v in grads[0].items()}
    opt = CASES[case][0]()
    state = opt.init(p)
    state = opt.update(p, g, state)[1]  # non-zero slots before the checked step
    before = [{k: backend.to_numpy(v).copy() for k, v in d.items()} for d in (p, g)]
    slots_before = {
        k: {s: backend.to_numpy(a).copy() for s, a in v.items()}
        for k, v in state.items()
        if k != "step"
    }
    new_p, new_state = opt.update(p, g, state)
    assert new_p is not p and new_state is not state and state["step"] == 1
    assert new_state["step"] == 2
    for saved, live in zip(before, (p, g)):
        for k, v in saved.items():
            np.testing.assert_array_equal(backend.to_numpy(live[k]), v)
    for k, slots in slots_before.items():
        for s, v in slots.items():
            np.testing.assert_array_equal(backend.to_numpy(state[k][s]), v)
    assert any(not np.array_equal(backend.to_numpy(new_p[k]), before[0][k]) for k in SHAPES)


@pytest.mark.parametrize("inplace", [False, True], ids=["pure", "inplace"])
@pytest.mark.parametrize(
    "case", ["sgd-nesterov", "adam-amsgrad", "adamw", "rmsprop-centered", "adagrad-lr_decay"]
)
def test_float32_stays_float32(backend, case, inplace):
    if inplace:
        skip_inplace_where_pure(backend)
    opt = CASES[case][0]()
    params, state = run(backend, opt, inplace=inplace, dtype="float32")
    for name in SHAPES:
        assert params[name].dtype == backend.xp.float32
        backend.assert_same_place(params[name])
        for value in state[name].values():
            assert value.dtype == backend.xp.float32
    assert isinstance(state["step"], int)


def test_float64_gradients_are_cast_to_float32_parameters(backend):
    params, grads = host_problem()
    p = {k: backend.asarray(v, "float32") for k, v in params.items()}
    with backend.use("float64"):
        g = {k: backend.asarray(v, "float64") for k, v in grads[0].items()}
    opt = opt_mod.Adam(0.01)
    new_p, state = opt.update(p, g, opt.init(p))
    assert all(new_p[k].dtype == backend.xp.float32 for k in SHAPES)
    assert all(state[k]["exp_avg"].dtype == backend.xp.float32 for k in SHAPES)


JIT_CASES = {
    **{case: make for case, (make, _, _) in CASES.items()},
    "sgd-nesterov-weight_decay": lambda: opt_mod.SGD(0.05, 0.9, nesterov=True, weight_decay=0.1),
    "adamw-schedule": lambda: opt_mod.AdamW(opt_mod.StepDecay(0.05, 2, 0.5), weight_decay=0.2),
    "rmsprop-centered-weight_decay": lambda: opt_mod.RMSprop(0.01, centered=True, weight_decay=0.1),
    "rmsprop-momentum-weight_decay": lambda: opt_mod.RMSprop(0.01, momentum=0.5, weight_decay=0.1),
    "adagrad-all": lambda: opt_mod.Adagrad(0.1, 1e-6, 0.5, weight_decay=0.2, lr_decay=0.3),
    "adam-clipnorm": lambda: opt_mod.Adam(0.01, clipnorm=0.5),
    "sgd-clipvalue": lambda: opt_mod.SGD(0.05, momentum=0.9, clipvalue=0.5),
    "lion-weight_decay-schedule": lambda: opt_mod.Lion(
        opt_mod.StepDecay(0.01, 3), weight_decay=1.0
    ),
    "sgd-accumulate": lambda: opt_mod.SGD(0.05, momentum=0.9, gradient_accumulation_steps=3),
    "adam-ema-overwrite": lambda: opt_mod.Adam(0.01, use_ema=True, ema_overwrite_frequency=3),
    "adamw-everything": lambda: opt_mod.AdamW(
        opt_mod.PolynomialDecay(0.05, 4),
        weight_decay=0.1,
        clipnorm=0.5,
        exclude_from_weight_decay=["bias"],
        gradient_accumulation_steps=2,
        use_ema=True,
        ema_momentum=0.5,
        ema_overwrite_frequency=2,
    ),
}


@pytest.mark.parametrize("case", list(JIT_CASES))
def test_update_rule_inside_jax_jit_with_traced_constants(backend, case):
    """``_apply_rule`` (clipping and the rule: the seam a compiled train step uses) traced once by
    ``jax.jit`` with the per-step constants as traced 0-d float64 arrays: no Python branch on
    their values, nothing baked in, the same numbers as the eager pure update over N_STEPS."""
    if backend.name != "jax":
        pytest.skip("jax.jit needs the jax backend")
    import jax

    opt, traces = JIT_CASES[case](), []

    def rule(p, g, slots, c):
        traces.append(1)  # runs once per trace, not per call
        return opt._apply_rule(p, g, slots, c)

    traced = jax.jit(rule)
    with backend.use("float64"):
        params, grads = host_problem()
        p = eager = {k: backend.asarray(v) for k, v in params.items()}
        slots = state = opt.init(p)
        slots = {k: v for k, v in slots.items() if k != "step"}
        for step, host_g in enumerate(grads, start=1):
            g = {k: backend.asarray(v) for k, v in host_g.items()}
            constants = opt._step_constants(step - 1)  # all of them: flags too
            c = tuple(backend.xp.asarray(x, dtype=backend.xp.float64) for x in constants)
            p, slots = traced(p, g, slots, c)
            eager, state = opt.update(eager, g, state)
    assert len(traces) == 1
    for name in SHAPES:
        assert p[name].dtype == backend.xp.float64
        want = backend.to_numpy(eager[name])
        np.testing.assert_allclose(backend.to_numpy(p[name]), want, rtol=1e-13, atol=1e-15)
        for slot, value in state[name].items():
            got, want = backend.to_numpy(slots[name][slot]), backend.to_numpy(value)
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15, err_msg=slot)
