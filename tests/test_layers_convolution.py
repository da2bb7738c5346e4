"""Conv1D and Conv2D on every backend: PyTorch equality (float64), gradcheck, placement, seeded
weights, configs and bad input safety; the im2col core against a loop and as an adjoint pair."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L
from portable_nn.backend.native import convolution as native_convolution
from portable_nn.functional import convolution as C
from portable_nn.layers import convolution as conv_module


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, shape)
    return np.where(np.abs(x) < 0.1, 0.1 + x, x)  # off the kinks (RELIABILITY.md)


def _rel_error(a: Any, ref: Any) -> float:
    a, ref = np.asarray(a), np.asarray(ref)
    assert a.shape == ref.shape, (a.shape, ref.shape)
    return float(np.max(np.abs(a - ref)) / max(np.max(np.abs(ref)), 1e-300))


def _host(layer: Any) -> dict[str, np.ndarray]:
    return {k: np.array(pnn.to_numpy(v), copy=True) for k, v in layer.state_dict().items()}


def _assert_unchanged(layer: Any, objects: dict[str, Any], values: dict[str, np.ndarray]) -> None:
    assert layer.state_dict().keys() == objects.keys()
    for key, value in layer.state_dict().items():
        assert value is objects[key], key
        np.testing.assert_array_equal(pnn.to_numpy(value), values[key])


# -- PyTorch reference -----------------------------------------------------------------------------
def _keras_pads(size: int, k: int, s: int, d: int, padding: Any) -> tuple[int, int]:
    """Keras/TF padding written out again (the reference, not the code under test)."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        return total // 2, total - total // 2
    return padding, padding


def _torch_conv(layer: Any, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(y, dx, dW, db)`` from ``torch.nn.functional.conv{1,2}d`` + autograd, in our layouts;
    the padding is applied first with ``F.pad`` (Keras's "same" may be asymmetric)."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rank, first = layer.rank, layer.data_format == "channels_first"
    w = pnn.to_numpy(layer.params["weight"])
    to_torch = (lambda a: a) if first else (lambda a: np.moveaxis(a, -1, 1))
    from_torch = (lambda a: a) if first else (lambda a: np.moveaxis(a, 1, -1))
    xt = torch.tensor(to_torch(x), requires_grad=True)
    wt = torch.tensor(np.transpose(w, (rank + 1, rank, *range(rank))), requires_grad=True)
    bt = torch.tensor(pnn.to_numpy(layer.params["bias"]), requires_grad=True)
    padding = layer.padding
    pads = [
        _keras_pads(n, k, s, d, padding if isinstance(padding, str) else padding[i])
        for i, (n, k, s, d) in enumerate(
            zip(xt.shape[2:], layer.kernel_size, layer.strides, layer.dilation_rate)
        )
    ]
    flat = [p for pair in reversed(pads) for p in pair]  # F.pad: last axis first
    conv = functional.conv2d if rank == 2 else functional.conv1d
    z = conv(functional.pad(xt, flat), wt, bt, layer.strides, 0, layer.dilation_rate, layer.groups)
    if layer.activation != "linear":  # elementwise ones only here (relu, tanh)
        z = getattr(torch, layer.activation)(z)
    z.backward(torch.tensor(to_torch(dy)))
    w_grad = np.transpose(wt.grad.numpy(), (*range(2, rank + 2), 1, 0))
    return from_torch(z.detach().numpy()), from_torch(xt.grad.numpy()), w_grad, bt.grad.numpy()


CASES_2D = [
    ((2, 7, 8, 3), dict(filters=4, kernel_size=3)),
    ((2, 9, 8, 3), dict(filters=4, kernel_size=(3, 2), strides=2, padding="same")),  # asymmetric
    (
        (2, 8, 9, 2),
        dict(filters=3, kernel_size=3, strides=(2, 1), dilation_rate=(1, 2), padding=(1, 2)),
    ),
    ((2, 6, 7, 4), dict(filters=6, kernel_size=3, groups=2, padding="same", activation="tanh")),
    (
        (2, 7, 7, 4),
        dict(filters=8, kernel_size=3, groups=4, strides=2, padding="same"),
    ),  # depthwise
    (
        (2, 4, 8, 7),
        dict(
            filters=4,
            kernel_size=2,
            groups=2,
            dilation_rate=2,
            padding=1,
            data_format="channels_first",
            activation="relu",
        ),
    ),  # fmt: skip
    ((2, 9, 7, 1), dict(filters=3, kernel_size=(2, 3), strides=2, padding="same")),  # one channel
    (
        (2, 1, 6, 5),
        dict(
            filters=2, kernel_size=3, strides=(1, 2), padding="same", data_format="channels_first"
        ),
    ),  # fmt: skip
    ((2, 5, 4, 3), dict(filters=2, kernel_size=1)),  # 1x1: the windows are x itself
    ((2, 4, 5, 2), dict(filters=3, kernel_size=(4, 5))),  # one output pixel
]
CASES_1D = [
    ((2, 9, 3), dict(filters=4, kernel_size=3)),
    ((2, 10, 2), dict(filters=3, kernel_size=3, strides=2, dilation_rate=2, padding="same")),
    ((2, 3, 8), dict(filters=6, kernel_size=3, groups=3, padding=2, data_format="channels_first")),
    ((2, 8, 1), dict(filters=2, kernel_size=4, strides=3, padding="same", activation="tanh")),
    ((2, 5, 4), dict(filters=2, kernel_size=1, groups=2)),
]
CASES = [(L.Conv2D, *case) for case in CASES_2D] + [(L.Conv1D, *case) for case in CASES_1D]


def _case_id(case: tuple) -> str:
    cls, shape, kwargs = case
    return f"{cls.__name__}{shape}" + ",".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.fixture
def portable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the layers on the portable im2col path on every backend (no native convolution)."""
    monkeypatch.setattr(conv_module, "_kernels", lambda xp: conv_module._PORTABLE)


def _run(backend: Any, cls: type, shape: tuple, kwargs: dict, **options: Any) -> tuple[Any, ...]:
    """``(layer, x, dy, y, dx, grads)`` of one float64 forward and backward on ``backend``."""
    x_np = _x(shape)
    with backend.use("float64"):
        layer = cls(**kwargs, bias_initializer="uniform", seed=3)
        y, cache = layer.forward(backend.asarray(x_np, "float64"), training=True)
        dy_np = _x(tuple(y.shape), seed=1)
        dx, grads = layer.backward(backend.asarray(dy_np, "float64"), cache, **options)
    return layer, x_np, dy_np, y, dx, grads


@pytest.mark.parametrize(("cls", "shape", "kwargs"), CASES, ids=[_case_id(c) for c in CASES])
def test_matches_torch_float64(
    backend: Any, portable: None, cls: type, shape: tuple, kwargs: dict
) -> None:
    layer, x_np, dy_np, y, dx, grads = _run(backend, cls, shape, kwargs)
    y_ref, dx_ref, dw_ref, db_ref = _torch_conv(layer, x_np, dy_np)
    assert tuple(y.shape) == layer.compute_output_shape(shape) == y_ref.shape
    assert _rel_error(backend.to_numpy(y), y_ref) <= 1e-10
    assert _rel_error(backend.to_numpy(dx), dx_ref) <= 1e-10
    assert _rel_error(backend.to_numpy(grads["weight"]), dw_ref) <= 1e-10
    assert _rel_error(backend.to_numpy(grads["bias"]), db_ref) <= 1e-10
    for out in (y, dx, *grads.values()):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float64


@pytest.mark.parametrize(("cls", "shape", "kwargs"), CASES, ids=[_case_id(c) for c in CASES])
def test_native_kernel_equals_portable(
    backend: Any, monkeypatch: pytest.MonkeyPatch, cls: type, shape: tuple, kwargs: dict
) -> None:
    if native_convolution(backend.xp) is None:
        pytest.skip(f"{backend.id} has no native convolution (the portable path is its default)")
    native = _run(backend, cls, shape, kwargs)
    native_no_dx = _run(backend, cls, shape, kwargs, input_grad=False)
    monkeypatch.setattr(conv_module, "_kernels", lambda xp: conv_module._PORTABLE)
    portable = _run(backend, cls, shape, kwargs)
    for got, want in zip(
        (*native[3:5], *native[5].values()), (*portable[3:5], *portable[5].values())
    ):
        backend.assert_same_place(got)
        assert tuple(got.shape) == tuple(want.shape) and got.dtype == want.dtype
        assert _rel_error(backend.to_numpy(got), backend.to_numpy(want)) <= 1e-10
    assert native_no_dx[4] is None
    for key, value in native_no_dx[5].items():
        assert _rel_error(backend.to_numpy(value), backend.to_numpy(portable[5][key])) <= 1e-10


# -- gradients ------------------------------------------------------------------------------------
GRADCHECK = [
    (
        L.Conv2D,
        (2, 5, 4, 4),
        dict(
            filters=4,
            kernel_size=(3, 2),
            strides=(2, 1),
            padding="same",
            groups=2,
            activation="tanh",
        ),
    ),  # fmt: skip
    (
        L.Conv2D,
        (2, 2, 5, 4),
        dict(filters=2, kernel_size=2, dilation_rate=2, padding=1, data_format="channels_first"),
    ),  # fmt: skip
    (L.Conv2D, (2, 5, 5, 1), dict(filters=2, kernel_size=3, strides=2, activation="gelu")),
    (L.Conv1D, (2, 7, 3), dict(filters=3, kernel_size=3, groups=3, padding="same")),
]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize(
    ("cls", "shape", "kwargs"), GRADCHECK, ids=[_case_id(c) for c in GRADCHECK]
)
def test_gradcheck(backend: Any, cls: type, shape: tuple, kwargs: dict, training: bool) -> None:
    with backend.use("float64"):
        layer = cls(**kwargs, bias_initializer="uniform", seed=1)
        result = pnn.gradcheck(layer, backend.asarray(_x(shape), "float64"), training=training)
        assert result.ok, result.report()
        assert [e.name for e in result.entries][1:] == ["parameter 'weight'", "parameter 'bias'"]


def test_backward_repeatable_and_zero_dy_gives_zero(backend: Any) -> None:
    layer = L.Conv2D(3, 3, padding="same", activation="relu", seed=0)
    y, cache = layer.forward(backend.asarray(_x((2, 5, 6, 2)), "float32"), training=True)
    dy = backend.asarray(_x(tuple(y.shape), seed=1), "float32")
    first, again = layer.backward(dy, cache), layer.backward(dy, cache)
    for a, b in zip((first[0], *first[1].values()), (again[0], *again[1].values())):
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    dx, grads = layer.backward(backend.asarray(np.zeros(tuple(y.shape)), "float32"), cache)
    for g in (dx, *grads.values()):
        assert not np.any(backend.to_numpy(g))


@pytest.mark.parametrize("cls", [L.Conv1D, L.Conv2D])
def test_input_grad_false_skips_dx_only(backend: Any, cls: type) -> None:
    layer = cls(4, 3, seed=0)
    shape = (2, 6, 3) if cls is L.Conv1D else (2, 6, 5, 3)
    y, cache = layer.forward(backend.asarray(_x(shape), "float32"), training=True)
    dy = backend.asarray(_x(tuple(y.shape), seed=1), "float32")
    dx, grads = layer.backward(dy, cache)
    none, same = layer.backward(dy, cache, input_grad=False)
    assert L.Conv2D.skips_input_grad and none is None and tuple(dx.shape) == shape
    for key in ("weight", "bias"):
        np.testing.assert_array_equal(backend.to_numpy(same[key]), backend.to_numpy(grads[key]))


def test_cache_holds_only_what_backward_needs(backend: Any) -> None:
    x = backend.asarray(_x((2, 6, 5, 3)), "float32")
    layer = L.Conv2D(4, 3, groups=1, activation="sigmoid", seed=0)
    y, cache = layer.forward(x)
    assert cache._fields == ("inputs", "saved", "weight", "shape")
    assert cache.saved is y and cache.weight is layer.params["weight"]  # sigmoid' from y
    assert cache.shape == (2, 6, 5, 3)
    native = native_convolution(backend.xp) is not None
    if not native:  # the im2col windows (g, M, K)
        assert tuple(cache.inputs.shape) == (1, 2 * 4 * 3, 3 * 3 * 3)
    _, cache = L.Conv1D(3, 3, groups=3, data_format="channels_first").forward(
        backend.asarray(_x((2, 3, 7)), "float32")
    )
    assert cache.saved is None and cache.shape == (2, 1, 7, 3)  # linear; the 2-D channels-last view
    assert native or tuple(cache.inputs.shape) == (3, 2 * 5, 3)


# -- the im2col core ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("strides", "dilation"), [((1, 1), (1, 1)), ((2, 3), (1, 2)), ((1, 2), (3, 1))]
)
def test_windows_against_a_loop_and_windows_grad_is_its_adjoint(
    backend: Any, strides: tuple, dilation: tuple
) -> None:
    xp, (kh, kw) = backend.xp, (2, 3)
    x_np = _x((2, 9, 10, 3, 2))
    out = tuple(
        C.output_size(n, k, s, d) for n, k, s, d in zip((9, 10), (kh, kw), strides, dilation)
    )
    ref = np.zeros((2, *out, 3, kh, kw, 2))
    for i, j, a, b in itertools.product(range(out[0]), range(out[1]), range(kh), range(kw)):
        ref[:, i, j, :, a, b] = x_np[
            :, i * strides[0] + a * dilation[0], j * strides[1] + b * dilation[1]
        ]
    x = backend.asarray(x_np, "float64")
    last = C.windows(x, (kh, kw), strides, dilation, out, axis=4)
    np.testing.assert_array_equal(backend.to_numpy(last), ref)
    first = C.windows(x, (kh, kw), strides, dilation, out, axis=0)
    np.testing.assert_array_equal(backend.to_numpy(first), np.moveaxis(ref, (4, 5), (0, 1)))
    for axis, cols in ((4, last), (0, first)):  # <windows(x), c> == <x, windows_grad(c)>
        c_np = _x(tuple(cols.shape), seed=2)
        dx = C.windows_grad(
            backend.asarray(c_np, "float64"), x.shape, (kh, kw), strides, dilation, axis
        )
        backend.assert_same_place(dx)
        lhs = float(np.sum(backend.to_numpy(cols) * c_np))
        assert abs(lhs - float(np.sum(x_np * backend.to_numpy(dx)))) <= 1e-12 * abs(lhs)
    assert xp is backend.xp


@pytest.mark.parametrize(
    ("size", "k", "s", "d", "expected"),
    [
        (9, 3, 2, 1, (1, 1)),
        (8, 3, 2, 1, (0, 1)),
        (8, 2, 1, 1, (0, 1)),
        (7, 3, 3, 2, (2, 2)),
        (5, 1, 2, 1, (0, 0)),
    ],
)
def test_same_padding_is_keras(size: int, k: int, s: int, d: int, expected: tuple) -> None:
    assert C.pad_widths(size, k, s, d, "same") == expected == _keras_pads(size, k, s, d, "same")
    assert C.output_size(size + sum(expected), k, s, d) == -(-size // s)


# -- initialisation, placement, shapes ------------------------------------------------------------
def test_seeded_weights_identical_on_every_backend(backend: Any) -> None:
    with pnn.use_backend("numpy"):
        reference = L.Conv2D(
            6, (3, 2), groups=2, input_shape=(5, 5, 4), seed=12, bias_initializer="uniform"
        )
        ref = {k: np.asarray(v) for k, v in reference.params.items()}
    layer = L.Conv2D(
        6, (3, 2), groups=2, input_shape=(5, 5, 4), seed=12, bias_initializer="uniform"
    )
    assert ref["weight"].shape == (3, 2, 2, 6) and ref["bias"].shape == (6,)
    for name, value in layer.params.items():
        backend.assert_same_place(value)
        assert value.dtype == backend.xp.float32
        np.testing.assert_array_equal(backend.to_numpy(value), ref[name])
    limit = np.sqrt(6.0 / (3 * 2 * 2 + 3 * 2 * 6))  # glorot_uniform with Keras's receptive field
    assert np.all(np.abs(ref["weight"]) <= limit) and np.max(np.abs(ref["weight"])) > 0.8 * limit


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls", [L.Conv1D, L.Conv2D])
def test_outputs_in_the_inputs_namespace_device_dtype(backend: Any, cls: type, dtype: str) -> None:
    with backend.use(dtype):
        layer = cls(3, 2, padding="same", activation="relu", data_format="channels_first")
        x = backend.asarray(_x((2, 4, 5) if cls is L.Conv1D else (2, 4, 5, 3)), dtype)
        y, cache = layer.forward(x, training=True)
        dx, grads = layer.backward(backend.asarray(_x(tuple(y.shape), seed=1), dtype), cache)
        for out in (y, dx, *grads.values(), *layer.params.values()):
            backend.assert_same_place(out)
            assert out.dtype == getattr(backend.xp, dtype)
        assert tuple(dx.shape) == tuple(x.shape)
        assert tuple(y.shape) == layer.compute_output_shape(tuple(x.shape))


def test_unknown_spatial_sizes_take_any_size(backend: Any) -> None:
    layer = L.Conv2D(2, 3, strides=2, padding="same", input_shape=(None, None, 3))
    assert layer.compute_output_shape((None, None, None, 3)) == (None, None, None, 2)
    for shape in ((2, 6, 7, 3), (1, 9, 4, 3)):
        y, _ = layer.forward(backend.asarray(_x(shape), "float32"))
        assert tuple(y.shape) == (shape[0], -(-shape[1] // 2), -(-shape[2] // 2), 2)


@pytest.mark.parametrize(
    ("layer", "shape", "expected"),
    [
        (lambda: L.Conv2D(8, 5), (None, 28, 28, 1), (None, 24, 24, 8)),
        (lambda: L.Conv2D(8, 5, padding="same", strides=2), (None, 28, 27, 1), (None, 14, 14, 8)),
        (
            lambda: L.Conv2D(8, 3, padding=(1, 0), dilation_rate=2, data_format="channels_first"),
            (4, 3, 10, 10),
            (4, 8, 8, 6),
        ),  # fmt: skip
        (lambda: L.Conv1D(5, 4, strides=3), (None, 20, 2), (None, 6, 5)),
        (
            lambda: L.Conv1D(5, 4, padding="same", data_format="channels_first"),
            (None, 2, 9),
            (None, 5, 9),
        ),
    ],
)
def test_compute_output_shape(layer: Any, shape: tuple, expected: tuple) -> None:
    assert layer().compute_output_shape(shape) == expected


def test_keras_default_names() -> None:
    assert L.Conv2D(2, 3).name.startswith("conv2d") and L.Conv1D(2, 3).name.startswith("conv1d")
    first, second = L.Conv2D(2, 3), L.Conv2D(2, 3)
    assert second.name != first.name and second.name.startswith("conv2d_")
    assert L.Conv2D(2, 3, name="c").name == "c"


# -- configuration --------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [L.Conv1D, L.Conv2D])
def test_config_round_trip(cls: type) -> None:
    two = cls is L.Conv2D
    layer = cls(
        6, (3, 2) if two else 3, strides=(2, 1) if two else 2, padding=(1, 0) if two else 1,
        dilation_rate=2, groups=2, activation="relu", use_bias=False, data_format="channels_first",
        input_shape=(4, 9, 8) if two else (4, 9), seed=5, name="c",
    )  # fmt: skip
    config = json.loads(json.dumps(layer.get_config()))
    assert config == {
        "name": "c",
        "input_shape": [4, 9, 8] if two else [4, 9],
        "filters": 6,
        "kernel_size": [3, 2] if two else 3,
        "strides": [2, 1] if two else 2,
        "padding": [1, 0] if two else 1,
        "dilation_rate": 2,
        "groups": 2,
        "activation": "relu",
        "use_bias": False,
        "kernel_initializer": "glorot_uniform",
        "bias_initializer": "zeros",
        "data_format": "channels_first",
        "seed": 5,
    }
    clone = L.get({"class_name": cls.__name__, "config": config})
    assert type(clone) is cls and clone.get_config() == config
    np.testing.assert_array_equal(
        pnn.to_numpy(clone.params["weight"]), pnn.to_numpy(layer.params["weight"])
    )
    assert repr(cls(2, 3, padding="same")).startswith(
        f"{cls.__name__}(filters=2, kernel_size=3, padding='same', name="
    )


# -- bad input and state safety -------------------------------------------------------------------
def test_bad_inputs_raise_and_change_nothing(backend: Any) -> None:
    layer = L.Conv2D(4, 3, groups=2, input_shape=(6, 6, 4), seed=0)
    objects, values = dict(layer.state_dict()), _host(layer)
    bad = [
        ((2, 6, 6), r"expected input of shape \(None, 6, 6, 4\), received shape \(2, 6, 6\)"),
        ((2, 6, 6, 3), r"expected input of shape \(None, 6, 6, 4\), received shape \(2, 6, 6, 3\)"),
    ]
    for shape, match in bad:
        with pytest.raises(ValueError, match=match):
            layer.forward(backend.asarray(_x(shape), "float32"))
    with pytest.raises(TypeError, match="float64.*float32"):
        layer.forward(backend.asarray(_x((2, 6, 6, 4)), "float64"))
    with pytest.raises(TypeError, match="int"):
        layer.forward(backend.asarray(np.ones((2, 6, 6, 4), dtype=np.int32)))
    _, cache = layer.forward(backend.asarray(_x((2, 6, 6, 4)), "float32"))
    with pytest.raises(ValueError, match=r"dy has shape \(2, 4, 4\).*\(2, 4, 4, 4\)"):
        layer.backward(backend.asarray(np.ones((2, 4, 4)), "float32"), cache)
    with pytest.raises(ValueError):
        layer.set_parameters({"weight": backend.asarray(np.ones((3, 3, 4, 4)), "float32")})
    _assert_unchanged(layer, objects, values)


RANK_2 = r"conv2d\w*: expects inputs \(batch, height, width, channels\) of rank 4; "
SPANS = r"spans \(7, 7\), larger than the padded input \(6, 9\); "


@pytest.mark.parametrize(
    ("make", "shape", "match"),
    [
        (lambda: L.Conv2D(4, 3), (2, 6, 6), RANK_2 + r"received input shape \(None, 6, 6\)"),
        (
            lambda: L.Conv1D(4, 3, data_format="channels_first"),
            (2, 3, 6, 6),
            r"conv1d\w*: expects inputs \(batch, channels, steps\) of rank 3",
        ),
        (
            lambda: L.Conv2D(4, 3, groups=2),
            (2, 6, 6, 3),
            r"divisible by groups=2; received input shape \(None, 6, 6, 3\)",
        ),
        (
            lambda: L.Conv2D(4, 3, dilation_rate=3),
            (2, 6, 9, 3),
            SPANS + r"received input shape \(None, 6, 9, 3\)",
        ),
        (
            lambda: L.Conv1D(4, 5, padding=1),
            (2, 2, 3),
            r"spans \(5,\), larger than the padded input \(4,\)",
        ),
    ],
)
def test_bad_first_input_leaves_layer_unbuilt(
    backend: Any, make: Any, shape: tuple, match: str
) -> None:
    layer = make()
    with pytest.raises(ValueError, match=match):
        layer.forward(backend.asarray(_x(shape), "float32"))
    assert not layer.built and layer.params == {}


def test_kernel_larger_than_a_later_input(backend: Any) -> None:
    layer = L.Conv2D(2, 3, input_shape=(None, None, 1), seed=0)
    objects, values = dict(layer.state_dict()), _host(layer)
    with pytest.raises(
        ValueError, match=r"conv2d\w*: the kernel .* received input shape \(2, 2, 5, 1\)"
    ):
        layer.forward(backend.asarray(_x((2, 2, 5, 1)), "float32"))
    _assert_unchanged(layer, objects, values)
    with pytest.raises(ValueError, match="larger than the padded input"):
        L.Conv2D(2, 5, input_shape=(4, 4, 1))  # known sizes: refused at build


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"filters": 0}, ValueError, "Expected a positive integer. Received: filters=0"),
        ({"kernel_size": 0}, ValueError, "kernel_size=0"),
        ({"kernel_size": (3,)}, ValueError, r"tuple of 2. Received: kernel_size=\(3,\)"),
        ({"kernel_size": (3, 0)}, ValueError, r"kernel_size=\(3, 0\)"),
        ({"kernel_size": 2.5}, ValueError, "kernel_size=2.5"),
        ({"kernel_size": True}, ValueError, "kernel_size=True"),
        ({"strides": -1}, ValueError, "strides=-1"),
        ({"dilation_rate": (1, 0)}, ValueError, r"dilation_rate=\(1, 0\)"),
        ({"padding": "full"}, ValueError, "one of 'valid', 'same'. Received: padding='full'"),
        ({"padding": -1}, ValueError, "non-negative integer or a tuple of 2. Received: padding=-1"),
        ({"padding": (1, 2, 3)}, ValueError, r"padding=\(1, 2, 3\)"),
        ({"groups": 0}, ValueError, "groups=0"),
        ({"filters": 5, "groups": 2}, ValueError, "filters=5, groups=2"),
        ({"data_format": "NHWC"}, ValueError, "data_format='NHWC'"),
        ({"activation": "relu7"}, ValueError, "unknown activation 'relu7'"),
        ({"kernel_initializer": "bogus"}, ValueError, "kernel_initializer"),
        ({"use_bias": 1}, TypeError, "use_bias"),
        ({"seed": "s"}, TypeError, "seed"),
    ],
)  # fmt: skip
def test_constructor_checks(kwargs: dict, error: type, match: str) -> None:
    args = {"filters": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=match):
        L.Conv2D(**args)


def test_conv1d_takes_one_int_per_argument() -> None:
    assert L.Conv1D(2, (3,), strides=[2]).kernel_size == (3,)
    with pytest.raises(ValueError, match=r"tuple of 1. Received: kernel_size=\(3, 3\)"):
        L.Conv1D(2, (3, 3))
