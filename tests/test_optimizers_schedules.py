"""Learning-rate schedules vs torch.optim.lr_scheduler and closed forms; use in optimizers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from portable_nn import optimizers as opt_mod
from portable_nn.optimizers import schedules


def torch_rates(make_scheduler, lr: float, n: int) -> list[float]:
    """The learning rate torch uses for updates 0..n-1 (scheduler stepped after each update)."""
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(opt)
    rates = []
    for _ in range(n):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return rates


def test_step_decay_matches_torch_step_lr():
    torch = pytest.importorskip("torch")
    ref = torch_rates(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, gamma=0.5), 0.2, 20)
    got = [schedules.StepDecay(0.2, 3, gamma=0.5)(k) for k in range(20)]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert all(type(v) is float for v in got)


def test_exponential_decay_matches_torch_exponential_lr():
    torch = pytest.importorskip("torch")
    ref = torch_rates(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), 0.3, 25)
    got = [schedules.ExponentialDecay(0.3, 1, 0.9)(k) for k in range(25)]
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_exponential_decay_staircase_and_continuous_closed_form():
    smooth = schedules.ExponentialDecay(1.0, decay_steps=4, decay_rate=0.5)
    stairs = schedules.ExponentialDecay(1.0, decay_steps=4, decay_rate=0.5, staircase=True)
    assert smooth(2) == pytest.approx(0.5**0.5, rel=1e-15)
    assert smooth(8) == pytest.approx(0.25, rel=1e-15)
    assert [stairs(k) for k in (0, 3, 4, 7, 8, 11)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_cosine_decay_matches_torch_cosine_annealing():
    torch = pytest.importorskip("torch")
    make = lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=0.01)  # noqa: E731
    ref = torch_rates(make, 0.1, 21)
    got = [schedules.CosineDecay(0.1, 20, alpha=0.1)(k) for k in range(21)]
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_cosine_decay_with_warmup_closed_form():
    """Keras 3: linear warmup from initial to warmup_target, then cosine from warmup_target."""
    s = schedules.CosineDecay(0.0, decay_steps=20, alpha=0.1, warmup_steps=10, warmup_target=1.0)
    assert s(0) == 0.0
    assert s(5) == pytest.approx(0.5, rel=1e-15)
    assert s(10) == pytest.approx(1.0, rel=1e-15)
    assert s(20) == pytest.approx(0.9 * 0.5 * (1 + math.cos(math.pi / 2)) + 0.1, rel=1e-14)
    assert s(25) == pytest.approx(0.9 * 0.5 * (1 + math.cos(0.75 * math.pi)) + 0.1, rel=1e-14)
    assert s(30) == pytest.approx(0.1, rel=1e-14)
    assert s(1000) == pytest.approx(0.1, rel=1e-14)
    nowarm = schedules.CosineDecay(2.0, decay_steps=8)
    assert [nowarm(k) for k in (0, 4, 8, 50)] == pytest.approx([2.0, 1.0, 0.0, 0.0], abs=1e-15)


def keras_polynomial(step, initial, decay_steps, end, power, cycle):
    """keras.optimizers.schedules.PolynomialDecay.__call__, in Python floats."""
    if cycle:
        multiplier = 1.0 if step == 0 else math.ceil(step / decay_steps)
        decay_steps = decay_steps * multiplier
    else:
        step = min(step, decay_steps)
    p = step / decay_steps
    return (initial - end) * (1 - p) ** power + end


@pytest.mark.parametrize("cycle", [False, True])
@pytest.mark.parametrize("power", [1.0, 0.5, 2.0])
def test_polynomial_decay_matches_keras_formula(power, cycle):
    s = schedules.PolynomialDecay(0.1, 7, end_learning_rate=0.01, power=power, cycle=cycle)
    for k in range(40):
        want = keras_polynomial(k, 0.1, 7, 0.01, power, cycle)
        assert s(k) == pytest.approx(want, rel=1e-14, abs=1e-16), k
    assert s(0) == 0.1 and s(7) == pytest.approx(0.01, rel=1e-15)
    assert schedules.PolynomialDecay(1.0, 10)(100) == 0.0001  # Keras's default end rate


def keras_inverse_time(step, initial, decay_steps, decay_rate, staircase):
    """keras.optimizers.schedules.InverseTimeDecay.__call__, in Python floats."""
    p = step / decay_steps
    if staircase:
        p = math.floor(p)
    return initial / (1 + decay_rate * p)


@pytest.mark.parametrize("staircase", [False, True])
def test_inverse_time_decay_matches_keras_formula(staircase):
    s = schedules.InverseTimeDecay(0.5, 4, 0.3, staircase=staircase)
    got = [s(k) for k in range(30)]
    want = [keras_inverse_time(k, 0.5, 4, 0.3, staircase) for k in range(30)]
    np.testing.assert_allclose(got, want, rtol=1e-15)


def keras_cosine_restarts(step, initial, first, t_mul, m_mul, alpha):
    """keras.optimizers.schedules.CosineDecayRestarts.__call__, in Python floats."""
    completed_fraction = step / first
    if t_mul == 1.0:
        i_restart = math.floor(completed_fraction)
        completed_fraction -= i_restart
    else:
        i_restart = math.floor(math.log(1.0 - completed_fraction * (1.0 - t_mul)) / math.log(t_mul))
        sum_r = (1.0 - t_mul**i_restart) / (1.0 - t_mul)
        completed_fraction = (completed_fraction - sum_r) / t_mul**i_restart
    m_fac = m_mul**i_restart
    cosine_decayed = 0.5 * m_fac * (1.0 + math.cos(math.pi * completed_fraction))
    return initial * ((1 - alpha) * cosine_decayed + alpha)


@pytest.mark.parametrize(
    ("t_mul", "m_mul", "alpha"), [(2.0, 1.0, 0.0), (1.0, 0.5, 0.1), (1.5, 0.8, 0.05)]
)
def test_cosine_decay_restarts_matches_keras_formula(t_mul, m_mul, alpha):
    s = schedules.CosineDecayRestarts(0.2, 10, t_mul=t_mul, m_mul=m_mul, alpha=alpha)
    for k in range(400):
        want = keras_cosine_restarts(k, 0.2, 10, t_mul, m_mul, alpha)
        assert s(k) == pytest.approx(want, rel=1e-12, abs=1e-15), k
    restarts = [0, 10, 30, 70] if t_mul == 2.0 else []
    for i, k in enumerate(restarts):  # each period starts at its peak initial * m_mul**i
        assert s(k) == pytest.approx(0.2 * m_mul**i, rel=1e-14)


def test_cosine_decay_restarts_lands_restarts_where_keras_rounding_misses():
    """first_decay_steps=4, t_mul=3: period i starts at step 4 * (3**i - 1) / 2; at 484 (i=5)
    Keras's float log rounds to i=4 and gives the end of the old period (alpha)."""
    s = schedules.CosineDecayRestarts(1.0, 4, t_mul=3.0, m_mul=0.5)
    assert keras_cosine_restarts(484, 1.0, 4, 3.0, 0.5, 0.0) == pytest.approx(0.0, abs=1e-12)
    for i in range(8):
        assert s(4 * (3**i - 1) // 2) == pytest.approx(0.5**i, rel=1e-13)


def test_piecewise_constant_keras_boundaries():
    s = schedules.PiecewiseConstant([3, 7], [1.0, 0.5, 0.1])
    assert [s(k) for k in range(10)] == [1.0] * 4 + [0.5] * 4 + [0.1] * 2


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.ExponentialDecay(0.1, 10, 0.96, staircase=True),
        schedules.StepDecay(0.1, 5, gamma=0.3),
        schedules.CosineDecay(0.0, 50, alpha=0.05, warmup_steps=5, warmup_target=0.2),
        schedules.PiecewiseConstant([10, 20], [0.3, 0.2, 0.1]),
        schedules.PolynomialDecay(0.1, 20, 0.001, power=2.0, cycle=True),
        schedules.InverseTimeDecay(0.1, 5, 0.5, staircase=True),
        schedules.CosineDecayRestarts(0.1, 7, t_mul=1.5, m_mul=0.9, alpha=0.01),
    ],
    ids=lambda s: type(s).__name__,
)
def test_schedule_config_round_trip(schedule):
    config = json.loads(json.dumps(schedule.get_config()))
    again = type(schedule).from_config(config)
    assert again == schedule and [again(k) for k in range(60)] == [schedule(k) for k in range(60)]
    assert schedules.deserialize(json.loads(json.dumps(schedules.serialize(schedule)))) == schedule


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), ValueError, "decay_steps=0"),
        (lambda: schedules.ExponentialDecay(-0.1, 1, 0.5), ValueError, "initial_learning_rate"),
        (lambda: schedules.StepDecay(0.1, 2.5), ValueError, "step_size=2.5"),
        (lambda: schedules.CosineDecay(0.1, 10, alpha=1.5), ValueError, "alpha=1.5"),
        (lambda: schedules.CosineDecay(0.0, 10), ValueError, "without warmup_target"),
        (lambda: schedules.PiecewiseConstant([5, 3], [1.0, 2, 3]), ValueError, "increasing"),
        (lambda: schedules.PiecewiseConstant([5], [1.0]), ValueError, "one more entry"),
        (lambda: schedules.deserialize({"class_name": "Nope", "config": {}}), ValueError, "Nope"),
        (lambda: schedules.PolynomialDecay(0.1, 0), ValueError, "decay_steps=0"),
        (lambda: schedules.PolynomialDecay(0.1, 5, power=-1.0), ValueError, "power=-1.0"),
        (lambda: schedules.PolynomialDecay(0.1, 5, -0.1), ValueError, "end_learning_rate=-0.1"),
        (lambda: schedules.PolynomialDecay(0.1, 5, cycle=1), TypeError, "cycle"),
        (lambda: schedules.InverseTimeDecay(0.1, 5, -0.5), ValueError, "decay_rate=-0.5"),
        (lambda: schedules.InverseTimeDecay(0.0, 5, 0.5), ValueError, "initial_learning_rate"),
        (lambda: schedules.CosineDecayRestarts(0.1, 0), ValueError, "first_decay_steps=0"),
        (lambda: schedules.CosineDecayRestarts(0.1, 5, t_mul=0.5), ValueError, "t_mul=0.5"),
        (lambda: schedules.CosineDecayRestarts(0.1, 5, m_mul=-1), ValueError, "m_mul=-1"),
        (lambda: schedules.CosineDecayRestarts(0.1, 5, alpha=2.0), ValueError, "alpha=2.0"),
    ],
)
def test_schedule_arguments_are_validated(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_schedule_in_optimizer_matches_torch_sgd_with_step_lr(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0, grads = rng.normal(size=(3, 2)), [rng.normal(size=(3, 2)) for _ in range(8)]
    w = torch.tensor(w0, requires_grad=True)
    ref_opt = torch.optim.SGD([w], lr=0.1, momentum=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(ref_opt, 3, gamma=0.2)
    for g in grads:
        w.grad = torch.tensor(g)
        ref_opt.step()
        scheduler.step()
    opt = opt_mod.SGD(opt_mod.StepDecay(0.1, 3, gamma=0.2), momentum=0.5)
    with backend.use("float64"):
        params = {"w": backend.asarray(w0)}
        state = opt.init(params)
        for g in grads:
            params, state = opt.update(params, {"w": backend.asarray(g)}, state)
    np.testing.assert_allclose(backend.to_numpy(params["w"]), w.detach().numpy(), rtol=1e-10)


class Holder:
    def __init__(self, w):
        self.w = w

    def parameters(self):
        return {"w": self.w}

    def set_parameters(self, values):
        self.w = values["w"]


def test_schedule_changes_the_step_size_and_current_learning_rate(backend):
    """With a zero-momentum SGD, the parameter moves by exactly lr(step) * g each step."""
    schedule = opt_mod.PiecewiseConstant([1, 2], [0.5, 0.25, 0.125])
    opt = opt_mod.SGD(schedule)
    holder = Holder(backend.asarray(np.zeros(2), "float32"))
    g = {"w": backend.asarray(np.ones(2), "float32")}
    moves = []
    for _ in range(4):
        assert opt.current_learning_rate == schedule(opt.iterations)
        before = float(backend.to_numpy(holder.w)[0])
        opt.step(holder, g)
        moves.append(before - float(backend.to_numpy(holder.w)[0]))
    assert moves == [0.5, 0.5, 0.25, 0.125]
    assert opt.learning_rate_at(0) == 0.5 and opt.learning_rate_at(100) == 0.125
    assert holder.w.dtype == backend.xp.float32


def test_adagrad_lr_decay_composes_with_a_schedule():
    """lr_t = schedule(t - 1) / (1 + (t - 1) * lr_decay), on a 1-element parameter."""
    opt = opt_mod.Adagrad(opt_mod.StepDecay(1.0, 1, gamma=0.5), lr_decay=1.0, epsilon=0.0)
    holder = Holder(np.asarray([0.0]))
    for _ in range(3):
        opt.step(holder, {"w": np.asarray([1.0])})
    # sum_t = t, so each step is lr_t * 1 / sqrt(t)
    want = -sum(0.5**k / (1 + k) / math.sqrt(k + 1) for k in range(3))
    assert holder.w[0] == pytest.approx(want, rel=1e-14)
