"""pnn.gradcheck on every backend: correct gradients pass, wrong ones fail with a useful report."""

from __future__ import annotations

from typing import Any

import array_api_compat
import array_api_extra as xpx
import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.backend import namespace_of
from portable_nn.layers.base import Layer


def _data(backend: Any, *shapes: tuple[int, ...], seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [backend.asarray(rng.uniform(-1.0, 1.0, shape), dtype="float64") for shape in shapes]


def _matmul(x: Any, w: Any) -> Any:
    return x @ w


def _matmul_grad(dy: Any, x: Any, w: Any) -> tuple[Any, Any]:
    return dy @ w.T, x.T @ dy  # dL/dx = dy W^T ; dL/dW = x^T dy


# -- function mode: correct gradients pass --------------------------------------------------------
def test_matmul_passes(backend: Any) -> None:
    x, w = _data(backend, (4, 3), (3, 2))
    result = pnn.gradcheck(_matmul, x, w, backward=_matmul_grad)
    assert result.ok and bool(result)
    assert result.max_abs_error < 1e-8
    assert [e.name for e in result.entries] == ["input 0", "input 1"]
    assert [e.checked for e in result.entries] == [12, 6]
    assert all(ok for _, ok, _ in result.checks) and len(result.checks) == 4
    assert "passed" in result.report()


@pytest.mark.parametrize("name", ["sin", "exp", "tanh"])
def test_elementwise_passes(backend: Any, name: str) -> None:
    xp = backend.xp
    f = getattr(xp, name)
    derivative = {"sin": xp.cos, "exp": xp.exp, "tanh": lambda x: 1.0 - xp.tanh(x) ** 2}[name]
    (x,) = _data(backend, (2, 3))
    result = pnn.gradcheck(f, x, backward=lambda dy, x: dy * derivative(x))
    assert result.ok, result.report()
    assert result.max_rel_error < 1e-6


def test_scalar_output_and_zero_d_input(backend: Any) -> None:
    xp = backend.xp
    (x,) = _data(backend, (5,))
    s = backend.asarray(np.asarray(0.7), dtype="float64")
    result = pnn.gradcheck(
        lambda x, s: s * xp.sum(x * x),
        x,
        s,
        backward=lambda dy, x, s: (2.0 * dy * s * x, dy * xp.sum(x * x)),
    )
    assert result.ok, result.report()
    assert result.entries[1].shape == ()


# -- function mode: wrong gradients fail ----------------------------------------------------------
def test_wrong_gradient_fails_naming_input_and_element(backend: Any) -> None:
    x, w = _data(backend, (4, 3), (3, 2))

    def wrong(dy: Any, x: Any, w: Any) -> tuple[Any, Any]:
        dx, dw = _matmul_grad(dy, x, w)
        return dx, xpx.at(dw)[1, 0].add(0.1)

    with pytest.raises(pnn.GradcheckError, match=r"input 1, element \(1, 0\)"):
        pnn.gradcheck(_matmul, x, w, backward=wrong)
    result = pnn.gradcheck(_matmul, x, w, backward=wrong, raise_exception=False)
    assert not result and not result.ok
    assert result.worst.startswith("input 1, element (1, 0): analytic")
    assert [e.ok for e in result.entries] == [True, False]
    assert abs(result.max_abs_error - 0.1) < 1e-6
    report = result.report()
    assert "FAILED" in report and "[FAIL] input 1" in report and "[ok] input 0" in report


def test_slightly_wrong_derivative_fails(backend: Any) -> None:
    xp = backend.xp
    (x,) = _data(backend, (3, 2))
    result = pnn.gradcheck(
        xp.sin, x, backward=lambda dy, x: dy * xp.cos(x) * 1.01, raise_exception=False
    )
    assert not result.ok
    assert 5e-3 < result.max_rel_error < 2e-2


def test_nan_gradient_fails(backend: Any) -> None:
    xp = backend.xp
    (x,) = _data(backend, (2, 2))
    result = pnn.gradcheck(
        xp.sin, x, backward=lambda dy, x: dy * float("nan"), raise_exception=False
    )
    assert not result.ok and result.max_abs_error == float("inf")
    assert "analytic nan" in result.worst


def test_extra_checks_catch_bias_and_nondeterminism(backend: Any) -> None:
    xp = backend.xp
    (x,) = _data(backend, (3,))
    # a constant 1e-9 is far below atol, but dy = 0 must give exactly zero
    biased = pnn.gradcheck(
        xp.sin, x, backward=lambda dy, x: dy * xp.cos(x) + 1e-9, raise_exception=False
    )
    assert [e.ok for e in biased.entries] == [True]
    assert not biased.ok and "[FAIL] zero upstream gradient" in biased.report()
    calls = []

    def drifting(dy: Any, x: Any) -> Any:
        calls.append(1)
        return dy * xp.cos(x) * (1.0 + 1e-12 * len(calls))

    drift = pnn.gradcheck(xp.sin, x, backward=drifting, raise_exception=False)
    assert not drift.ok and "[FAIL] backward run twice" in drift.report()
    noisy = pnn.gradcheck(
        lambda x: (
            x
            + 1e-3
            * pnn.random.get_generator().uniform((3,), xp=xp, device=backend.dev, dtype=xp.float64)
        ),
        x,
        backward=lambda dy, x: dy,
        raise_exception=False,
    )
    assert not noisy.ok and "[FAIL] forward run twice" in noisy.report()


# -- function mode: input validation --------------------------------------------------------------
def test_rejects_float32_and_integer_inputs(backend: Any) -> None:
    x32 = backend.asarray(np.ones((2, 2)), dtype="float32")
    with pytest.raises(TypeError, match="float64"):
        pnn.gradcheck(backend.xp.sin, x32, backward=lambda dy, x: dy)
    xi = backend.asarray(np.ones((2, 2), dtype=np.int32))
    with pytest.raises(TypeError, match="input 0 .*float64"):
        pnn.gradcheck(backend.xp.sin, xi, backward=lambda dy, x: dy)
    (x,) = _data(backend, (2, 2))
    with pytest.raises(TypeError, match="output .*float64"):
        pnn.gradcheck(
            lambda x: backend.xp.astype(x, backend.xp.float32), x, backward=lambda d, x: d
        )


def test_rejects_wrong_gradient_shape_dtype_and_count(backend: Any) -> None:
    xp = backend.xp
    x, w = _data(backend, (4, 3), (3, 2))
    with pytest.raises(ValueError, match=r"input 1 has shape \(2, 3\), expected \(3, 2\)"):
        pnn.gradcheck(_matmul, x, w, backward=lambda dy, x, w: (dy @ w.T, (x.T @ dy).T))
    with pytest.raises(TypeError, match="input 0 has dtype"):
        pnn.gradcheck(
            _matmul, x, w, backward=lambda dy, x, w: (xp.astype(dy @ w.T, xp.float32), x.T @ dy)
        )
    with pytest.raises(ValueError, match="1 gradients for 2 inputs"):
        pnn.gradcheck(_matmul, x, w, backward=lambda dy, x, w: (dy @ w.T,))
    with pytest.raises(ValueError, match="one gradient for 2 inputs"):
        pnn.gradcheck(_matmul, x, w, backward=lambda dy, x, w: dy @ w.T)


def test_rejects_bad_options(backend: Any) -> None:
    (x,) = _data(backend, (2,))
    with pytest.raises(ValueError, match="eps"):
        pnn.gradcheck(backend.xp.sin, x, backward=lambda dy, x: dy, eps=0.0)
    with pytest.raises(ValueError, match="max_elements"):
        pnn.gradcheck(backend.xp.sin, x, backward=lambda dy, x: dy, max_elements=0)
    with pytest.raises(TypeError, match="backward"):
        pnn.gradcheck(backend.xp.sin, x)
    with pytest.raises(TypeError, match="training"):
        pnn.gradcheck(backend.xp.sin, x, backward=lambda dy, x: dy, training=True)


def test_inputs_are_not_mutated(backend: Any) -> None:
    x, w = _data(backend, (3, 3), (3, 2))
    before = [backend.to_numpy(x).copy(), backend.to_numpy(w).copy()]
    seen = []

    def f(x_: Any, w_: Any) -> Any:
        seen.append((x_ is x, w_ is w))
        return x_ @ w_

    pnn.gradcheck(f, x, w, backward=_matmul_grad)
    np.testing.assert_array_equal(backend.to_numpy(x), before[0])
    np.testing.assert_array_equal(backend.to_numpy(w), before[1])
    assert (False, True) in seen and (True, False) in seen  # perturbed copies, never the caller's


def test_max_elements_checks_a_seeded_subset(backend: Any) -> None:
    xp = backend.xp
    (x,) = _data(backend, (30, 20))
    result = pnn.gradcheck(xp.sin, x, backward=lambda dy, x: dy * xp.cos(x), max_elements=25)
    assert result.ok and result.entries[0].checked == 25
    wrong = pnn.gradcheck(
        xp.sin, x, backward=lambda dy, x: dy * xp.sin(x), max_elements=25, raise_exception=False
    )
    assert not wrong.ok


# -- layer mode ----------------------------------------------------------------------------------
class _GradcheckTanhAffine(Layer):
    """y = tanh(x @ w + b); training updates a running mean of y (rebinding the buffer)."""

    has_training_behaviour = True

    def __init__(self, w: Any, b: Any, *, wrong_bias: bool = False) -> None:
        super().__init__(name="tanh_affine")
        self.params = {"w": w, "b": b}
        self.bufs = {"running_mean": namespace_of(b).zeros_like(b)}
        self.built = True
        self.wrong_bias = wrong_bias

    def mask(self, z: Any, training: bool) -> Any:
        return None

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        xp = namespace_of(x)
        y = xp.tanh(x @ self.params["w"] + self.params["b"])
        mask = self.mask(y, training)
        if mask is not None:
            y = y * mask
        if training:
            self.bufs["running_mean"] = 0.9 * self.bufs["running_mean"] + 0.1 * xp.mean(y, axis=0)
        return y, (x, y, mask, self.params["w"])

    def backward(self, dy: Any, cache: Any) -> tuple[Any, dict[str, Any]]:
        xp = namespace_of(dy)
        x, y, mask, w = cache
        if mask is not None:
            dy, y = dy * mask, y / xp.where(mask == 0.0, 1.0, mask)
        dz = dy * (1.0 - y * y)  # tanh' = 1 - tanh^2
        db = xp.sum(dz, axis=0) * (1.5 if self.wrong_bias else 1.0)
        return dz @ w.T, {"w": x.T @ dz, "b": db}


class _GradcheckDropoutAffine(_GradcheckTanhAffine):
    """Inverted dropout (keep 0.5) after the tanh, drawn from ``self.generator``."""

    def __init__(self, w: Any, b: Any, attribute: str = "generator") -> None:
        super().__init__(w, b)
        setattr(self, attribute, pnn.random.Generator(7))
        self.attribute = attribute

    def mask(self, z: Any, training: bool) -> Any:
        if not training:
            return None
        xp = namespace_of(z)
        draw = getattr(self, self.attribute).bernoulli(
            tuple(z.shape), 0.5, xp=xp, device=array_api_compat.device(z)
        )
        return xp.astype(draw, z.dtype) * 2.0


def _layer(backend: Any, cls: type = _GradcheckTanhAffine, **kwargs: Any) -> tuple[Any, Any]:
    x, w, b = _data(backend, (5, 3), (3, 4), (4,), seed=1)
    return cls(w, b, **kwargs), x


def _snapshot(layer: Any) -> tuple[dict[str, Any], dict[str, Any], Any, Any]:
    return dict(layer.params), dict(layer.bufs), layer.params, layer.bufs


def _assert_untouched(layer: Any, snapshot: Any) -> None:
    params, state, params_dict, state_dict = snapshot
    assert layer.params is params_dict and layer.bufs is state_dict
    assert layer.params.keys() == params.keys() and layer.bufs.keys() == state.keys()
    assert all(layer.params[k] is v for k, v in params.items())
    assert all(layer.bufs[k] is v for k, v in state.items())


@pytest.mark.parametrize("training", [False, True])
def test_layer_mode_passes_and_has_no_side_effects(backend: Any, training: bool) -> None:
    layer, x = _layer(backend)
    snapshot = _snapshot(layer)
    result = pnn.gradcheck(layer, x, training=training)
    assert result.ok, result.report()
    assert [e.name for e in result.entries] == ["input x", "parameter 'w'", "parameter 'b'"]
    assert [e.checked for e in result.entries] == [15, 12, 4]
    _assert_untouched(layer, snapshot)
    assert not np.any(backend.to_numpy(layer.bufs["running_mean"]))


def test_layer_mode_wrong_parameter_gradient_fails(backend: Any) -> None:
    layer, x = _layer(backend, wrong_bias=True)
    snapshot = _snapshot(layer)
    with pytest.raises(pnn.GradcheckError, match=r"\[FAIL\] parameter 'b', element \(\d,\)"):
        pnn.gradcheck(layer, x)
    _assert_untouched(layer, snapshot)


def test_layer_mode_replays_the_generator(backend: Any) -> None:
    layer, x = _layer(backend, _GradcheckDropoutAffine)
    state_before = layer.generator.get_state()
    masks = backend.to_numpy(layer.forward(x, training=True)[0]) == 0.0
    assert 0 < masks.sum() < masks.size  # the mask really drops something
    layer.generator.set_state(state_before)
    result = pnn.gradcheck(layer, x, training=True)
    assert result.ok, result.report()
    assert layer.generator.get_state() == state_before


def test_layer_mode_unreplayable_randomness_fails(backend: Any) -> None:
    layer, x = _layer(backend, _GradcheckDropoutAffine, attribute="hidden_rng")
    result = pnn.gradcheck(layer, x, training=True, raise_exception=False)
    assert not result.ok
    assert "[FAIL] forward run twice gives identical outputs" in result.report()


def test_layer_mode_restores_on_error(backend: Any) -> None:
    layer, x = _layer(backend)
    snapshot = _snapshot(layer)
    calls = []
    original_forward = layer.forward

    def flaky(x: Any, training: bool = False) -> tuple[Any, Any]:
        calls.append(1)
        if len(calls) == 40:  # calls 3-32 perturb x, 33-56 perturb parameter 'w'
            raise RuntimeError("boom")
        return original_forward(x, training)

    layer.forward = flaky
    with pytest.raises(RuntimeError, match="boom"):
        pnn.gradcheck(layer, x, training=True)
    _assert_untouched(layer, snapshot)


class _GradcheckChain:
    """A container: dotted parameter names computed on the fly, set through set_parameters."""

    def __init__(self, *layers: Any) -> None:
        self.layers = list(layers)

    @property
    def params(self) -> dict[str, Any]:
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()
        }

    @property
    def state(self) -> dict[str, Any]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.bufs.items()}

    def set_parameters(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            index, name = key.split(".")
            self.layers[int(index)].params[name] = value

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        caches = []
        for layer in self.layers:
            x, cache = layer.forward(x, training)
            caches.append(cache)
        return x, caches

    def backward(self, dy: Any, caches: Any) -> tuple[Any, dict[str, Any]]:
        grads = {}
        for i in reversed(range(len(self.layers))):
            dy, layer_grads = self.layers[i].backward(dy, caches[i])
            grads.update({f"{i}.{k}": g for k, g in layer_grads.items()})
        return dy, grads


def test_layer_mode_on_a_container_with_nested_randomness(backend: Any) -> None:
    first, x = _layer(backend)
    w, b = _data(backend, (4, 2), (2,), seed=2)
    chain = _GradcheckChain(first, _GradcheckDropoutAffine(w, b))
    snapshots = [_snapshot(layer) for layer in chain.layers]
    state_before = chain.layers[1].generator.get_state()
    result = pnn.gradcheck(chain, x, training=True)
    assert result.ok, result.report()
    names = ["input x", "parameter '0.w'", "parameter '0.b'", "parameter '1.w'", "parameter '1.b'"]
    assert [e.name for e in result.entries] == names
    for layer, snapshot in zip(chain.layers, snapshots):
        _assert_untouched(layer, snapshot)
    assert chain.layers[1].generator.get_state() == state_before


def test_layer_mode_validation(backend: Any) -> None:
    layer, x = _layer(backend)
    with pytest.raises(TypeError, match="input x .*float64"):
        pnn.gradcheck(layer, backend.asarray(np.ones((5, 3)), dtype="float32"))
    with pytest.raises(TypeError, match="exactly one input"):
        pnn.gradcheck(layer, x, x)
    layer.params["w"] = backend.xp.astype(layer.params["w"], backend.xp.float32)
    with pytest.raises(TypeError, match="parameter 'w' .*float64"):
        pnn.gradcheck(layer, x)
    layer, x = _layer(backend)
    original = layer.backward
    layer.backward = lambda dy, cache: (original(dy, cache)[0], {"w": original(dy, cache)[1]["w"]})
    with pytest.raises(ValueError, match=r"gradients for \['w'\], expected \['b', 'w'\]"):
        pnn.gradcheck(layer, x)
