"""Activations: finite-difference checks, PyTorch equivalence, extreme inputs, erf accuracy.

References and tolerances follow ../shared/RELIABILITY.md: float64 gradient checks with PyTorch's
gradcheck defaults, float64 agreement with torch autograd to 1e-10 relative, finite values and
gradients at |x| = 1e4 in float32 and float64, softmax rows summing to 1 within 1e-6 in float32.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import portable_nn as pnn
import portable_nn.functional as F
from portable_nn.functional import special
from portable_nn.functional.special import normal_cdf_fast

# glu halves an axis: on SHAPE = (2, 13) only axis 0 has an even size
DEFAULTS = {"glu": {"axis": 0}}
# name -> extra keyword arguments; every activation is also checked with non-default settings
CASES = [(name, DEFAULTS.get(name, {})) for name in F.ACTIVATIONS] + [
    ("leaky_relu", {"alpha": 0.2}),
    ("elu", {"alpha": 0.5}),
    ("softmax", {"axis": 0}),
    ("log_softmax", {"axis": 0}),
    ("relu", {"max_value": 6.0}),
    ("relu", {"negative_slope": 0.2}),
    ("relu", {"max_value": 2.0, "threshold": 0.5, "negative_slope": 0.1}),
    ("gelu", {"approximate": True}),
    ("celu", {"alpha": 0.5}),
    ("glu", {"axis": -2}),
]
CASE_IDS = [name + "".join(f"-{k}={v}" for k, v in kw.items()) for name, kw in CASES]
KINKS = (-3.0, 0.0, 0.5, 2.0, 3.0, 6.0)  # relu(0, 0.5, 2 with options), relu6 (6), hard_* (+-3)


def _inputs(shape, seed=0, low=-3.0, high=3.0):
    """Uniform inputs kept 0.1 away from the kinks (RELIABILITY.md)."""
    x = np.random.default_rng(seed).uniform(low, high, size=shape)
    for kink in KINKS:
        x[np.abs(x - kink) < 0.1] += 0.2
    return x


def _out_shape(name, kw, shape=None):
    """The output's shape: the input's, glu's axis halved."""
    shape = list(SHAPE if shape is None else shape)
    if name == "glu":
        shape[kw.get("axis", -1)] //= 2
    return tuple(shape)


def _call(name, kw, x, dy=None):
    f, f_grad = F.get(name)
    return f(x, **kw) if dy is None else f_grad(x, dy, **kw)


# Every backend test uses arrays of SHAPE: JAX compiles each operation once per shape and dtype,
# so one shape keeps this file fast.
SHAPE = (2, 13)
EXTREME = [-1e4, -1e3, -100.0, -30.0, -1.0, -1e-30, 0.0, 1e-30, 1.0, 30.0, 100.0, 1e3, 1e4]
X_EXTREME = np.array([EXTREME, EXTREME[::-1]])


# -- finite differences --------------------------------------------------------------------------
@pytest.mark.parametrize("name, kw", CASES, ids=CASE_IDS)
def test_gradcheck(backend, name, kw):
    x = backend.asarray(_inputs(SHAPE), "float64")
    result = pnn.gradcheck(
        lambda a: _call(name, kw, a),
        x,
        backward=lambda dy, a: _call(name, kw, a, dy),
        max_elements=13,
    )
    assert result.ok


# -- PyTorch equivalence -------------------------------------------------------------------------
def _torch_relu(t, max_value=None, threshold=0.0, negative_slope=0.0):
    """Keras's ReLU written with torch operations (torch has relu6 and leaky_relu only)."""
    top = t if max_value is None else t.clamp(max=max_value)
    return top.where(t > threshold, negative_slope * (t - threshold))


def _torch_reference(name, kw, x, dy):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    fns = {
        "linear": lambda t: t,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": lambda t: _torch_relu(t, **kw),
        "relu6": tf.relu6,
        # relu6(x + 3) / 6 as Keras 3 and tf.hardsigmoid, whose float64 kernels use 1/6 rounded
        # to float32 (relative error 3e-8), so written out here
        "hard_sigmoid": lambda t: tf.relu6(t + 3.0) / 6.0,
        "hard_silu": tf.hardswish,
        "hard_swish": tf.hardswish,
        "mish": tf.mish,
        "softsign": tf.softsign,
        "celu": lambda t: tf.celu(t, kw.get("alpha", 1.0)),
        "glu": lambda t: tf.glu(t, kw.get("axis", -1)),
        "log_sigmoid": tf.logsigmoid,
        "exponential": torch.exp,
        "leaky_relu": lambda t: tf.leaky_relu(t, kw.get("alpha", 0.01)),
        "elu": lambda t: tf.elu(t, kw.get("alpha", 1.0)),
        "selu": tf.selu,
        "swish": tf.silu,
        "silu": tf.silu,
        "gelu": lambda t: tf.gelu(t, approximate="tanh" if kw.get("approximate") else "none"),
        "softplus": tf.softplus,
        "softmax": lambda t: torch.softmax(t, kw.get("axis", -1)),
        "log_softmax": lambda t: torch.log_softmax(t, kw.get("axis", -1)),
    }
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = fns[name](t)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y.detach().numpy(), t.grad.numpy()


def assert_rel(actual, expected, rtol=1e-10, atol=None):
    """Relative error <= rtol, with an absolute floor (default rtol/100 of the array's scale)
    for elements crossing zero, where the reference's own rounding noise dominates."""
    if atol is None:
        atol = rtol * 1e-2 * max(np.abs(expected).max(), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def _check_place(backend, out, dtype, shape=SHAPE):
    backend.assert_same_place(out)
    assert out.dtype == getattr(backend.xp, dtype)
    assert tuple(out.shape) == shape


@pytest.mark.parametrize("name, kw", CASES, ids=CASE_IDS)
def test_matches_torch_float64(backend, name, kw):
    # |x| <= 6: below torch's softplus threshold (20), and where torch's 1 + erf keeps digits
    x = _inputs(SHAPE, seed=1, low=-6.0, high=6.0)
    dy = np.random.default_rng(2).normal(size=_out_shape(name, kw))
    y = _call(name, kw, backend.asarray(x, "float64"))
    dx = _call(name, kw, backend.asarray(x, "float64"), backend.asarray(dy, "float64"))
    _check_place(backend, y, "float64", _out_shape(name, kw))
    _check_place(backend, dx, "float64")
    ref_y, ref_dx = _torch_reference(name, kw, x, dy)
    assert_rel(backend.to_numpy(y), ref_y)
    assert_rel(backend.to_numpy(dx), ref_dx)


@pytest.mark.parametrize("name, kw", CASES, ids=CASE_IDS)
def test_matches_torch_float64_dense_numpy(name, kw):
    x = np.linspace(-19.0, 19.0, 3800).reshape(-1, 20)
    if name == "gelu" and not kw.get("approximate"):
        x = x[np.abs(x[:, 0]) <= 6.0]  # beyond, torch's 1 + erf(x / sqrt 2) cancels
    dy = np.random.default_rng(3).normal(size=_out_shape(name, kw, x.shape))
    ref_y, ref_dx = _torch_reference(name, kw, x, dy)
    assert_rel(_call(name, kw, x), ref_y)
    assert_rel(_call(name, kw, x, dy), ref_dx)


def _gelu_reference(x):
    """x * Phi(x) and Phi(x) + x phi(x) from math.erfc: exact in the far left tail too, where
    torch's 1 + erf(x / sqrt 2) cancels."""
    phi = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x.ravel()]).reshape(x.shape)
    density = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return x * phi, phi + x * density


def test_gelu_tails_match_math_erfc(backend):
    """GELU's Phi (native erfc, or Cody's middle-range rational alone) keeps its documented
    relative accuracy."""
    # results stay above the subnormal range (JAX on CPU flushes subnormals to zero)
    x = np.concatenate([np.linspace(-37.0, -3.0, 19), np.linspace(3.0, 40.0, 7)]).reshape(SHAPE)
    ref_y, ref_dx = _gelu_reference(x)
    xb = backend.asarray(x, "float64")
    y = backend.to_numpy(F.gelu(xb))
    dx = backend.to_numpy(F.gelu_grad(xb, backend.asarray(np.ones_like(x), "float64")))
    bound = np.where(x >= -8.5, 5e-12, np.where(x >= -14.0, 3.3e-10, 1e-7))
    assert (np.abs(y - ref_y) <= bound * np.abs(ref_y)).all()
    assert (np.abs(dx - ref_dx) <= bound * np.abs(ref_dx) + 1e-300).all()


@pytest.mark.parametrize("portable", [True, False], ids=["portable", "dispatched"])
def test_normal_cdf_accuracy_dense_grid_float64(portable):
    x = np.linspace(-38.0, 38.0, 200_001)
    ref = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x])
    normal = ref > 1e-300
    for cdf, bounds in (
        (F.normal_cdf, [(-38.0, 5e-13)]),  # erfc's 6e-14 plus the rounding of x / sqrt 2
        (normal_cdf_fast, [(-8.5, 5e-12), (-14.0, 3.3e-10), (-38.0, 1e-7)]),
    ):
        got = cdf(x, portable=portable)
        rel = np.abs(got - ref) / np.where(normal, ref, 1.0)
        for low, bound in bounds:
            assert rel[normal & (x >= low)].max() <= bound, (cdf.__name__, low)
        assert np.abs(got - ref).max() <= 3e-12  # erf's absolute error, far below 1e-7


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inplace_horner_equals_functional_path(backend, dtype):
    """The in-place speed path (NumPy, torch, CuPy) gives bitwise the functional result."""
    t = backend.asarray(np.linspace(0.0, 28.0, 26).reshape(SHAPE), dtype)
    args = (special._C8, special._C, special._D)
    fast = special._rational(t, *args, inplace=True)
    reference = special._rational(t, *args, inplace=False)
    _check_place(backend, fast, dtype)
    np.testing.assert_array_equal(backend.to_numpy(fast), backend.to_numpy(reference))


# -- erf accuracy (the standard has no erf) ------------------------------------------------------
# Cody's portable code is the reference; "dispatched" is the namespace's own kernel where it has
# one (SciPy for NumPy), the portable code elsewhere.
PORTABLE = pytest.mark.parametrize("portable", [True, False], ids=["portable", "dispatched"])


@PORTABLE
def test_erf_accuracy_dense_grid_float64(portable):
    x = np.linspace(-30.0, 30.0, 240_001)
    x = np.concatenate([x, [0.0, 0.46875, -0.46875, 4.0, -4.0, 1e-300, 1e-8, 26.5]])
    ref_erf = np.array([math.erf(v) for v in x])
    ref_erfc = np.array([math.erfc(v) for v in x])
    assert np.abs(F.erf(x, portable=portable) - ref_erf).max() <= 5e-16  # far below 1e-7
    normal = ref_erfc > 1e-300  # subnormal results lose digits, as in any libm
    erfc = F.erfc(x, portable=portable)
    assert (np.abs(erfc - ref_erfc)[normal] / ref_erfc[normal]).max() <= 1e-13
    tiny = F.erf(np.array(1e-300), portable=portable)
    assert tiny == 1e-300 * (2.0 / math.sqrt(math.pi))  # odd, exact near 0


def test_erf_matches_torch_special_erf():
    torch = pytest.importorskip("torch")
    x = np.linspace(-8.0, 8.0, 20_001)
    ref = torch.special.erf(torch.tensor(x)).numpy()
    assert np.abs(F.erf(x, portable=True) - ref).max() <= 5e-16


@PORTABLE
def test_erf_float32_dense_grid(portable):
    x = np.linspace(-6.0, 6.0, 20_001).astype(np.float32)
    ref = np.array([math.erf(float(v)) for v in x])
    got = F.erf(x, portable=portable)
    assert got.dtype == np.float32
    assert np.abs(got - ref).max() <= 3e-7  # float32 rounding, ~2.5 ulp of 1


@PORTABLE
def test_erf_every_backend(backend, portable):
    x = np.linspace(-6.0, 6.0, 26).reshape(SHAPE)
    ref = np.array([math.erf(v) for v in x.ravel()]).reshape(SHAPE)
    for dtype, tol in (("float32", 3e-7), ("float64", 5e-16)):
        got = F.erf(backend.asarray(x, dtype), portable=portable)
        _check_place(backend, got, dtype)
        assert np.abs(backend.to_numpy(got) - ref).max() <= tol


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["erf", "erfc", "normal_cdf", "normal_cdf_fast"])
def test_dispatched_equals_portable(backend, name, dtype):
    """The native kernels (torch.special, jax.scipy.special, cupyx, SciPy) agree with Cody's code
    in relative terms where the values are normal numbers, in the input's place and dtype."""
    x = np.linspace(-8.5, 8.5, 26).reshape(SHAPE)  # Phi(-8.5) = 1e-17, erfc(8.5) = 2e-33
    xb = backend.asarray(x, dtype)
    got = getattr(special, name)(xb)
    _check_place(backend, got, dtype)
    # the fast Phi is the accurate one where it is native, else within its own 5e-12
    reference = special.normal_cdf if name == "normal_cdf_fast" else getattr(special, name)
    ref = backend.to_numpy(reference(xb, portable=True)).astype(np.float64)
    got = backend.to_numpy(got).astype(np.float64)
    # float32: ~1e-6 (JAX's float32 erfc is the loosest) down to 1e-30
    rtol, floor = (2e-6, 1e-30) if dtype == "float32" else (1e-14, 1e-300)
    if name == "normal_cdf_fast" and dtype == "float64":
        rtol = 5e-12
    assert (np.abs(got - ref) <= rtol * np.abs(ref) + floor).all(), (got, ref)


# -- extreme inputs ------------------------------------------------------------------------------
def _relu_formula(max_value=None, threshold=0.0, negative_slope=0.0):
    """Keras's ReLU and its derivative (0 at the kinks, except the negative_slope side)."""
    top = (lambda v: v) if max_value is None else (lambda v: min(v, max_value))
    inside = (lambda v: 1) if max_value is None else (lambda v: 1 if v < max_value else 0)
    return (
        lambda v: top(v) if v > threshold else negative_slope * (v - threshold),
        lambda v: inside(v) if v > threshold else negative_slope,
    )


@functools.cache
def _mp_reference(name, options=()):
    """Values and derivatives (dy = 1) at X_EXTREME to 40 digits with mpmath, as float64."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    kw = dict(options)
    sig = lambda v: 1 / (1 + mp.exp(-v))  # noqa: E731
    cdf = lambda v: mp.ncdf(v)  # noqa: E731
    pdf = lambda v: mp.npdf(v)  # noqa: E731
    hs = lambda v: min(max(v + 3, 0), 6) / 6  # noqa: E731
    dhs = lambda v: mp.mpf(1) / 6 if -3 < v < 3 else 0  # noqa: E731
    sp = lambda v: mp.log1p(mp.exp(v))  # noqa: E731
    alpha = kw.get("alpha", 1.0)
    k, c = mp.sqrt(2 / mp.pi), mp.mpf("0.044715")
    u = lambda v: k * (v + c * v**3)  # noqa: E731
    elementwise = {
        "linear": (lambda v: v, lambda v: 1),
        "sigmoid": (sig, lambda v: sig(v) * sig(-v)),
        "tanh": (mp.tanh, lambda v: mp.sech(v) ** 2),
        "relu": _relu_formula(**(kw if name == "relu" else {})),
        "relu6": _relu_formula(max_value=6),
        "hard_sigmoid": (hs, dhs),
        "hard_silu": (lambda v: v * hs(v), lambda v: hs(v) + v * dhs(v)),
        "mish": (
            lambda v: v * mp.tanh(sp(v)),
            lambda v: mp.tanh(sp(v)) + v * sig(v) * mp.sech(sp(v)) ** 2,
        ),
        "softsign": (lambda v: v / (1 + abs(v)), lambda v: 1 / (1 + abs(v)) ** 2),
        "celu": (
            lambda v: v if v > 0 else alpha * mp.expm1(v / alpha),
            lambda v: 1 if v > 0 else mp.exp(v / alpha),
        ),
        "log_sigmoid": (lambda v: -mp.log1p(mp.exp(-v)), lambda v: sig(-v)),
        "exponential": (mp.exp, mp.exp),
        "leaky_relu": (lambda v: v if v > 0 else 0.01 * v, lambda v: 1 if v > 0 else 0.01),
        "elu": (lambda v: v if v > 0 else mp.expm1(v), lambda v: 1 if v > 0 else mp.exp(v)),
        "selu": (
            lambda v: F.SELU_SCALE * (v if v > 0 else F.SELU_ALPHA * mp.expm1(v)),
            lambda v: F.SELU_SCALE * (1 if v > 0 else F.SELU_ALPHA * mp.exp(v)),
        ),
        "swish": (lambda v: v * sig(v), lambda v: sig(v) + v * sig(v) * sig(-v)),
        "gelu": (lambda v: v * cdf(v), lambda v: cdf(v) + v * pdf(v)),
        "gelu-tanh": (  # x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)
            lambda v: v / 2 * (1 + mp.tanh(u(v))),
            lambda v: (1 + mp.tanh(u(v))) / 2 + v / 2 * mp.sech(u(v)) ** 2 * k * (1 + 3 * c * v**2),
        ),
        "softplus": (lambda v: mp.log1p(mp.exp(v)), sig),
    }
    elementwise["silu"] = elementwise["swish"]
    elementwise["hard_swish"] = elementwise["hard_silu"]
    if kw.get("approximate"):
        name = "gelu-tanh"
    rows = [[mp.mpf(float(v)) for v in row] for row in X_EXTREME]
    if name == "glu":  # axis 0: a = row 0, b = row 1
        a, b = rows
        y = [[p * sig(q) for p, q in zip(a, b)]]
        dx = [[sig(q) for q in b], [p * sig(q) * sig(-q) for p, q in zip(a, b)]]
    elif name in elementwise:
        f, df = elementwise[name]
        y = [[f(v) for v in row] for row in rows]
        dx = [[df(v) for v in row] for row in rows]
    else:  # softmax / log_softmax over the last axis, dy = 1
        y, dx = [], []
        for row in rows:
            total = mp.fsum(mp.exp(v) for v in row)
            probs = [mp.exp(v) / total for v in row]
            if name == "softmax":
                y.append(probs)
                dx.append([0 * p for p in probs])  # s * (1 - sum(s)) = 0
            else:
                y.append([v - mp.log(total) for v in row])
                dx.append([1 - len(row) * p for p in probs])
    to_float = np.vectorize(float, otypes=[np.float64])
    return to_float(np.array(y, dtype=object)), to_float(np.array(dx, dtype=object))


EXTREME_CASES = [(name, DEFAULTS.get(name, {})) for name in F.ACTIVATIONS] + [
    ("relu", {"max_value": 6.0, "threshold": 0.5, "negative_slope": 0.1}),
    ("gelu", {"approximate": True}),
    ("celu", {"alpha": 0.5}),
]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # exponential's inf
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "name, kw",
    EXTREME_CASES,
    ids=[name + "".join(f"-{k}={v}" for k, v in kw.items()) for name, kw in EXTREME_CASES],
)
def test_extreme_inputs(backend, name, kw, dtype):
    """Finite values and gradients at |x| <= 1e4, equal to 40-digit references (naive
    log(1 + exp(x)) or exp(x) / sum(exp(x)) overflow there, and y * (1 - y) or 1 - y^2 lose
    every digit of tiny sigmoid/tanh derivatives, as torch's float64 autograd does at x = 30).
    ``exponential`` is exp: inf where exp(x) exceeds the largest float, never NaN."""
    x = X_EXTREME
    dy = np.ones(_out_shape(name, kw))
    xb = backend.asarray(x, dtype)
    y, dx = _call(name, kw, xb), _call(name, kw, xb, backend.asarray(dy, dtype))
    _check_place(backend, y, dtype, _out_shape(name, kw))
    _check_place(backend, dx, dtype)
    y, dx = backend.to_numpy(y).astype(np.float64), backend.to_numpy(dx).astype(np.float64)
    ref_y, ref_dx = _mp_reference(name, tuple(kw.items()))
    if name == "exponential":
        overflow = ref_y > np.finfo(dtype).max
        assert (y[overflow] == np.inf).all() and (dx[overflow] == np.inf).all()
        y, dx, ref_y, ref_dx = y[~overflow], dx[~overflow], ref_y[~overflow], ref_dx[~overflow]
    assert np.isfinite(y).all(), y
    assert np.isfinite(dx).all(), dx
    # atol: results below the smallest normal number (float32 1.2e-38) lose digits or are
    # flushed to zero (JAX on CPU); the float64 results all stay normal or exactly 0.
    rtol, atol = (2e-6, 1e-37) if dtype == "float32" else (1e-12, 1e-300)
    if name == "gelu" and dtype == "float64" and not kw:  # normal_cdf_fast's documented bounds
        rtol = np.where(x >= -8.5, 5e-12, 1e-7)
    assert (np.abs(y - ref_y) <= rtol * np.abs(ref_y) + atol).all(), (y, ref_y)
    assert (np.abs(dx - ref_dx) <= rtol * np.abs(ref_dx) + atol).all(), (dx, ref_dx)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_rows_sum_to_one_with_huge_logits(backend, dtype):
    rows = [EXTREME, EXTREME[::-1], [1e4] * 5 + [-1e4] * 8, [-1e4] * 13, [3.0] * 13, [0.5] * 13]
    for x in np.array(rows).reshape(-1, *SHAPE):
        s = F.softmax(backend.asarray(x, dtype))
        sums = backend.to_numpy(s).astype(np.float64).sum(axis=-1)
        np.testing.assert_allclose(sums, 1.0, rtol=0, atol=1e-6)
        logs = backend.to_numpy(F.log_softmax(backend.asarray(x, dtype)))
        assert np.isfinite(logs).all() and (logs <= 0).all()


def test_stable_gradients_in_the_tails_float64():
    """Gradients written without 1 - s cancellation keep their digits where they are tiny."""
    x = np.array([-40.0, -20.0, 20.0, 40.0])
    one = np.ones_like(x)
    sech2 = np.array([1.0 / math.cosh(v) ** 2 for v in x])
    sig_prime = np.array([math.exp(-abs(v)) / (1.0 + math.exp(-abs(v))) ** 2 for v in x])
    np.testing.assert_allclose(F.tanh_grad(x, one), sech2, rtol=1e-13)
    np.testing.assert_allclose(F.sigmoid_grad(x, one), sig_prime, rtol=1e-13)
    np.testing.assert_allclose(F.softplus_grad(x, one), 1.0 / (1.0 + np.exp(-x)), rtol=1e-13)


# -- helpers, get --------------------------------------------------------------------------------
def test_grad_from_output_helpers(backend):
    """Every table entry with a grad_from_output gives grad's dL/dx from y = f(x)."""
    x = backend.asarray(_inputs(SHAPE, seed=3), "float64")
    dy = backend.asarray(np.random.default_rng(4).normal(size=SHAPE), "float64")
    from_output = {n: r for n, r in F.ACTIVATION_RULES.items() if r.grad_from_output}
    assert sorted(from_output) == ["exponential", "relu", "relu6", "sigmoid", "softmax", "tanh"]
    pairs = [(r.grad_from_output(r.f(x), dy), r.grad(x, dy)) for r in from_output.values()]
    pairs.append((F.softmax_grad_from_output(F.softmax(x, 0), dy, 0), F.softmax_grad(x, dy, 0)))
    for kw in ({"max_value": 2.0, "threshold": 0.5, "negative_slope": 0.1}, {"max_value": 1.0}):
        y = F.relu(x, **kw)  # the masks read from y equal those read from x
        pairs.append((F.relu_grad_from_output(y, dy, **kw), F.relu_grad(x, dy, **kw)))
    for cached, direct in pairs:
        _check_place(backend, cached, "float64")
        np.testing.assert_allclose(backend.to_numpy(cached), backend.to_numpy(direct), rtol=1e-12)


def test_logsumexp_matches_torch(backend):
    torch = pytest.importorskip("torch")
    x = _inputs(SHAPE, seed=5) * 100.0
    for axis, keepdims in [(-1, False), (0, True)]:
        got = F.logsumexp(backend.asarray(x, "float64"), axis=axis, keepdims=keepdims)
        backend.assert_same_place(got)
        ref = torch.logsumexp(torch.tensor(x), dim=axis, keepdim=keepdims).numpy()
        assert_rel(backend.to_numpy(got), ref)


def test_get_and_names():
    assert F.get("silu") == F.get("swish") == (F.swish, F.swish_grad)
    assert F.rule("Sigmoid") == (F.sigmoid, F.sigmoid_grad, F.sigmoid_grad_from_output)
    assert F.rule(None) is F.ACTIVATION_RULES["linear"]
    with pytest.raises(TypeError):
        F.ACTIVATION_RULES["mine"] = F.rule("relu")  # read-only table
    assert F.get("ReLU") == (F.relu, F.relu_grad)
    assert F.get(None) == (F.linear, F.linear_grad)
    assert set(F.ACTIVATIONS) >= {
        "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "swish", "silu", "gelu",
        "softplus", "softmax", "log_softmax",
    }  # fmt: skip
    for name in F.ACTIVATIONS:
        f, f_grad = F.get(name)
        assert callable(f) and callable(f_grad)
    with pytest.raises(ValueError, match="unknown activation 'relu7'.*valid names.*mish"):
        F.get("relu7")
    with pytest.raises(TypeError, match="activation must be a name"):
        F.get(3)
    assert F.get("hard_swish") == F.get("Hard_SiLU") == (F.hard_silu, F.hard_silu_grad)
    assert {"relu6", "hard_sigmoid", "mish", "softsign", "celu", "glu", "log_sigmoid"} <= set(
        F.ACTIVATIONS
    ) and {"exponential", "linear", "hard_swish", "hard_silu"} <= set(F.ACTIVATIONS)


def test_bad_arguments_are_clear_errors():
    x = np.linspace(-2.0, 2.0, 6).reshape(2, 3)
    for kw, message in [
        ({"max_value": -1.0}, r"max_value must be >= 0\. Received: max_value=-1\.0"),
        ({"threshold": -0.5}, r"threshold must be >= 0\. Received: threshold=-0\.5"),
        ({"negative_slope": -0.1}, r"negative_slope must be >= 0"),
        ({"max_value": 1.0, "threshold": 1.0}, r"max_value must be > threshold \(1\.0\)"),
        ({"max_value": float("nan")}, "max_value must be finite"),
    ]:
        for function in (F.relu, lambda a, **k: F.relu_grad(a, a, **k)):
            with pytest.raises(ValueError, match=message):
                function(x, **kw)
    with pytest.raises(TypeError, match="max_value must be a real number"):
        F.relu(x, max_value="6")
    for alpha in (0.0, -1.0):
        with pytest.raises(ValueError, match="alpha must be > 0"):
            F.celu(x, alpha=alpha)
        with pytest.raises(ValueError, match="alpha must be > 0"):
            F.celu_grad(x, x, alpha=alpha)
    with pytest.raises(TypeError, match="approximate must be True or False.*'tanh'"):
        F.gelu(x, approximate="tanh")
    with pytest.raises(ValueError, match=r"glu splits axis -1.*even.*\(2, 3\)"):
        F.glu(x)
    with pytest.raises(ValueError, match=r"axis must be an int in \[-2, 2\)\. Received: axis=2"):
        F.glu_grad(x, x, axis=2)


def test_relu_options_formula():
    """Keras's piecewise definition, and relu6 / hard_sigmoid / hard_swish at their kinks (the
    derivative is 0 on the flat side, as torch's)."""
    x = np.array([-2.0, 0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 6.0, 7.0])
    np.testing.assert_array_equal(
        F.relu(x, max_value=2.0, threshold=0.5, negative_slope=0.1),
        [-0.25, -0.05, -0.025, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0],
    )
    np.testing.assert_array_equal(
        F.relu_grad(x, np.ones_like(x), max_value=2.0, threshold=0.5, negative_slope=0.1),
        [0.1, 0.1, 0.1, 0.1, 1.0, 0.0, 0.0, 0.0, 0.0],
    )
    np.testing.assert_array_equal(F.relu6(x), [0, 0, 0.25, 0.5, 1, 2, 3, 6, 6])
    np.testing.assert_array_equal(F.relu6_grad(x, np.ones_like(x)), [0, 0, 1, 1, 1, 1, 1, 0, 0])
    kinks = np.array([-3.0, 3.0])
    np.testing.assert_array_equal(F.hard_sigmoid(kinks), [0.0, 1.0])
    np.testing.assert_array_equal(F.hard_sigmoid_grad(kinks, np.ones(2)), [0.0, 0.0])
    np.testing.assert_array_equal(F.hard_swish_grad(kinks, np.ones(2)), [0.0, 1.0])
    nan = np.array([np.nan])
    assert np.isnan(F.relu(nan, max_value=6.0)) and np.isnan(F.relu6(nan))


def test_torch_hardsigmoid_is_the_same_function():
    """torch's hardsigmoid is relu6(x + 3) / 6, as Keras 3 (its float64 kernels round 1/6 to
    float32, hence the reference written out in _torch_reference)."""
    torch = pytest.importorskip("torch")
    x = np.linspace(-5.0, 5.0, 1001)
    t = torch.tensor(x, requires_grad=True)
    y = torch.nn.functional.hardsigmoid(t)
    y.backward(torch.ones_like(t))
    np.testing.assert_allclose(F.hard_sigmoid(x), y.detach().numpy(), rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(F.hard_sigmoid_grad(x, np.ones_like(x)), t.grad, atol=1e-8)


def test_selu_constants_full_precision():
    assert F.SELU_ALPHA == 1.6732632423543772848170429916717
    assert F.SELU_SCALE == 1.0507009873554804934193349852946


# -- property test (NumPy) -----------------------------------------------------------------------
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=8),
        elements=st.floats(-(2.0**100), 2.0**100, width=32),  # row spreads stay finite
    )
)
def test_softmax_properties(x):
    with pnn.use_backend("numpy"):
        s = pnn.to_numpy(F.softmax(pnn.asarray(x)))
        logs = pnn.to_numpy(F.log_softmax(pnn.asarray(x)))
    assert s.dtype == np.float32 and logs.dtype == np.float32
    np.testing.assert_allclose(s.astype(np.float64).sum(axis=-1), 1.0, rtol=0, atol=1e-6)
    assert np.isfinite(logs).all() and (logs <= 0).all()
    np.testing.assert_allclose(np.exp(logs), s, rtol=0, atol=1e-6)


def test_package_exports_every_activation_and_its_gradient():
    """pnn.functional re-exports each submodule's public names (one list, no copies)."""
    assert len(F.__all__) == len(set(F.__all__))
    for name in F.ACTIVATIONS:
        f, f_grad = F.get(name)
        assert getattr(F, name) is f and getattr(F, f"{name}_grad") is f_grad
    for name in ("log_softmax_and_softmax", "logsumexp", "erf", "erfc", "normal_cdf"):
        assert name in F.__all__ and callable(getattr(F, name))
    assert all(hasattr(F, name) for name in F.__all__)
