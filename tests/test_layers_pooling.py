"""Pooling layers: PyTorch equality (float64), Keras "same" padding, the max tie rule, gradcheck
and placement on every backend, configs, names and bad inputs."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L
from portable_nn.layers.base import default_name

WINDOWED = [L.MaxPooling2D, L.AveragePooling2D, L.MaxPooling1D, L.AveragePooling1D]
GLOBAL = [
    L.GlobalMaxPooling2D,
    L.GlobalAveragePooling2D,
    L.GlobalMaxPooling1D,
    L.GlobalAveragePooling1D,
]
RANK = {cls: 1 if cls.__name__.endswith("1D") else 2 for cls in WINDOWED + GLOBAL}


def _distinct(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Values 0.01 apart in random order: no ties, and no switch of a maximum under gradcheck's
    1e-6 steps."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) * 0.01 - 0.005 * n).reshape(shape)


def _rel_error(a: Any, ref: Any) -> float:
    a, ref = np.asarray(a), np.asarray(ref)
    return float(np.max(np.abs(a - ref)) / max(np.max(np.abs(ref)), 1e-300))


def _image(rank: int, data_format: str, batch: int = 2, size: int = 7, channels: int = 3):
    spatial = (size,) * rank if rank == 1 else (size, size + 2)
    if data_format == "channels_last":
        return (batch, *spatial, channels)
    return (batch, channels, *spatial)


def _run(backend: Any, layer: Any, x: np.ndarray, dy_seed: int = 1, training: bool = True):
    """(y, dx, dy) as NumPy arrays for a float64 run of ``layer`` on ``backend``."""
    y, cache = layer.forward(backend.asarray(x, "float64"), training=training)
    dy = np.random.default_rng(dy_seed).normal(size=tuple(y.shape))
    dx, grads = layer.backward(backend.asarray(dy, "float64"), cache)
    assert grads == {}
    for out in (y, dx):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float64
    return backend.to_numpy(y), backend.to_numpy(dx), dy


def _torch_layout(rank: int, data_format: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Permutations to and from torch's channels-first layout."""
    if data_format == "channels_first":
        identity = tuple(range(rank + 2))
        return identity, identity
    to_first = (0, rank + 1, *range(1, rank + 1))
    return to_first, tuple(int(i) for i in np.argsort(to_first))


def _torch_ref(fn: Any, x: np.ndarray, dy: np.ndarray, rank: int, data_format: str):
    torch = pytest.importorskip("torch")
    to_first, back = _torch_layout(rank, data_format)
    xt = torch.tensor(x).permute(*to_first).requires_grad_(True)
    yt = fn(xt)
    yt.backward(torch.tensor(dy).permute(*to_first))
    return yt.detach().permute(*back).numpy(), xt.grad.permute(*back).numpy()


# -- PyTorch equality ---------------------------------------------------------------------------
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize(("pool", "strides"), [(2, None), (3, 2), ((2, 3), (1, 2)), (2, 3)])
@pytest.mark.parametrize("cls", WINDOWED)
def test_valid_pooling_matches_torch(
    backend: Any, cls: Any, pool: Any, strides: Any, data_format: str
) -> None:
    F = pytest.importorskip("torch.nn.functional")
    rank = RANK[cls]
    if rank == 1 and isinstance(pool, tuple):
        pool, strides = pool[1], strides[1]
    fn = {
        "MaxPooling2D": F.max_pool2d,
        "AveragePooling2D": F.avg_pool2d,
        "MaxPooling1D": F.max_pool1d,
        "AveragePooling1D": F.avg_pool1d,
    }[cls.__name__]
    x = _distinct(_image(rank, data_format))
    with backend.use("float64"):
        layer = cls(pool, strides, data_format=data_format)
        y, dx, dy = _run(backend, layer, x)
    y_ref, dx_ref = _torch_ref(lambda t: fn(t, pool, strides), x, dy, rank, data_format)
    assert y.shape == y_ref.shape
    assert _rel_error(y, y_ref) <= 1e-10
    assert _rel_error(dx, dx_ref) <= 1e-10


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("cls", GLOBAL)
def test_global_pooling_matches_torch(backend: Any, cls: Any, data_format: str) -> None:
    F = pytest.importorskip("torch.nn.functional")
    rank = RANK[cls]
    fn = {
        "GlobalMaxPooling2D": F.adaptive_max_pool2d,
        "GlobalAveragePooling2D": F.adaptive_avg_pool2d,
        "GlobalMaxPooling1D": F.adaptive_max_pool1d,
        "GlobalAveragePooling1D": F.adaptive_avg_pool1d,
    }[cls.__name__]
    x = _distinct(_image(rank, data_format))
    with backend.use("float64"):
        y, dx, dy = _run(backend, cls(data_format=data_format), x)
    assert y.shape == (2, 3)
    ones = (1,) * rank  # torch keeps size-1 spatial axes
    dy_t = dy.reshape((2, *ones, 3) if data_format == "channels_last" else (2, 3, *ones))
    y_ref, dx_ref = _torch_ref(lambda t: fn(t, 1), x, dy_t, rank, data_format)
    assert _rel_error(y, y_ref.reshape(2, 3)) <= 1e-10
    assert _rel_error(dx, dx_ref) <= 1e-10


@pytest.mark.parametrize("cls", [L.MaxPooling2D, L.AveragePooling2D])
def test_symmetric_same_padding_matches_torch(backend: Any, cls: Any) -> None:
    """Odd total padding splits evenly: torch's padding=1 with -inf (max) or
    count_include_pad=False (average) is Keras's "same"."""
    F = pytest.importorskip("torch.nn.functional")
    x = _distinct((2, 7, 9, 3))
    with backend.use("float64"):
        y, dx, dy = _run(backend, cls(3, 1, padding="same"), x)
    if cls is L.MaxPooling2D:
        fn = lambda t: F.max_pool2d(t, 3, 1, padding=1)  # noqa: E731
    else:
        fn = lambda t: F.avg_pool2d(t, 3, 1, padding=1, count_include_pad=False)  # noqa: E731
    y_ref, dx_ref = _torch_ref(fn, x, dy, 2, "channels_last")
    assert y.shape == (2, 7, 9, 3)
    assert _rel_error(y, y_ref) <= 1e-10
    assert _rel_error(dx, dx_ref) <= 1e-10


# -- Keras "same" padding against a loop reference ----------------------------------------------
def _reference(x: np.ndarray, dy: np.ndarray | None, pool, strides, padding: str, mode: str):
    """Channels-last 2-D pooling by loops over windows (Keras/TensorFlow padding): y and dx.
    Padded cells are left out of each window; max ties go to the first cell in row-major order."""
    (kh, kw), (sh, sw) = pool, strides
    b, h, w, c = x.shape
    if padding == "valid":
        oh, ow, top, left = (h - kh) // sh + 1, (w - kw) // sw + 1, 0, 0
    else:
        oh, ow = -(-h // sh), -(-w // sw)
        top = max((oh - 1) * sh + kh - h, 0) // 2
        left = max((ow - 1) * sw + kw - w, 0) // 2
    y, dx = np.zeros((b, oh, ow, c)), np.zeros_like(x)
    for n, i, j, ch in itertools.product(range(b), range(oh), range(ow), range(c)):
        cells = [
            (r, q)
            for r in range(i * sh - top, i * sh - top + kh)
            for q in range(j * sw - left, j * sw - left + kw)
            if 0 <= r < h and 0 <= q < w
        ]
        values = [x[n, r, q, ch] for r, q in cells]
        if mode == "max":
            first = int(np.argmax(values))  # the first maximum in row-major order
            y[n, i, j, ch] = values[first]
            if dy is not None:
                dx[(n, *cells[first], ch)] += dy[n, i, j, ch]
        else:
            y[n, i, j, ch] = sum(values) / len(cells)  # real cells only
            if dy is not None:
                for r, q in cells:
                    dx[n, r, q, ch] += dy[n, i, j, ch] / len(cells)
    return y, dx


@pytest.mark.parametrize("cls", [L.MaxPooling2D, L.AveragePooling2D])
@pytest.mark.parametrize(
    ("shape", "pool", "strides"),
    [
        ((2, 7, 8, 2), (2, 2), (2, 2)),
        ((1, 5, 6, 2), (3, 2), (2, 1)),
        ((2, 4, 5, 1), (2, 3), (3, 2)),
    ],
)
def test_same_padding_matches_loop_reference(backend: Any, cls: Any, shape, pool, strides) -> None:
    mode = "max" if cls is L.MaxPooling2D else "avg"
    x = _distinct(shape)
    with backend.use("float64"):
        y, dx, dy = _run(backend, cls(pool, strides, padding="same"), x)
    y_ref, dx_ref = _reference(x, dy, pool, strides, "same", mode)
    assert y.shape == y_ref.shape
    assert _rel_error(y, y_ref) <= 1e-10
    assert _rel_error(dx, dx_ref) <= 1e-10


def test_same_average_divides_by_real_cells(backend: Any) -> None:
    """A constant image stays constant: padded cells neither add nor count (Keras)."""
    x = np.full((1, 5, 5, 2), 3.0)
    with backend.use("float64"):
        for cls in (L.AveragePooling2D, L.AveragePooling1D):
            layer = cls(2, padding="same")
            xin = x if cls is L.AveragePooling2D else x[:, 0]
            y, cache = layer.forward(backend.asarray(xin, "float64"))
            np.testing.assert_array_equal(backend.to_numpy(y), np.full(tuple(y.shape), 3.0))
            dx, _ = layer.backward(backend.asarray(np.ones(tuple(y.shape)), "float64"), cache)
            np.testing.assert_allclose(backend.to_numpy(dx).sum(), np.prod(tuple(y.shape)))


def test_one_d_is_two_d_on_a_size_one_axis(backend: Any) -> None:
    x = _distinct((2, 9, 3))
    with backend.use("float64"):
        for one, two in (
            (L.MaxPooling1D, L.MaxPooling2D),
            (L.AveragePooling1D, L.AveragePooling2D),
        ):
            y1, dx1, _ = _run(backend, one(3, 2, padding="same"), x)
            y2, dx2, _ = _run(backend, two((1, 3), (1, 2), padding="same"), x[:, None])
            np.testing.assert_array_equal(y1, y2[:, 0])
            np.testing.assert_array_equal(dx1, dx2[:, 0])


# -- the tie rule -------------------------------------------------------------------------------
def test_max_pooling_tie_goes_to_the_first_maximum_in_row_major_order(backend: Any) -> None:
    window = np.array([[1.0, 5.0, 2.0], [5.0, 0.0, 5.0], [3.0, 5.0, 4.0]])  # four maxima
    x = np.stack([window, np.zeros((3, 3)), -window], axis=-1)[None]  # channels: ties, all, one
    with backend.use("float64"):
        y, dx, dy = _run(backend, L.MaxPooling2D(3), x)
    np.testing.assert_array_equal(y.reshape(3), [5.0, 0.0, 0.0])
    expected = np.zeros((1, 3, 3, 3))
    expected[0, 0, 1, 0] = dy[0, 0, 0, 0]  # (0, 1) comes first among the 5s
    expected[0, 0, 0, 1] = dy[0, 0, 0, 1]  # all equal: the top-left cell
    expected[0, 1, 1, 2] = dy[0, 0, 0, 2]  # the unique maximum of -window (0 at the centre)
    np.testing.assert_array_equal(dx, expected)
    _, dx_ref = _reference(x, dy, (3, 3), (3, 3), "valid", "max")
    np.testing.assert_array_equal(dx, dx_ref)


def test_max_tie_rule_matches_torch_on_ties(backend: Any) -> None:
    """Overlapping windows over a quantised image: many ties; PyTorch's CPU kernel also keeps
    the first maximum of each window."""
    x = np.random.default_rng(3).integers(0, 3, (2, 6, 7, 2)).astype(np.float64)
    F = pytest.importorskip("torch.nn.functional")
    with backend.use("float64"):
        _, dx, dy = _run(backend, L.MaxPooling2D(3, 2), x)
    _, dx_ref = _torch_ref(lambda t: F.max_pool2d(t, 3, 2), x, dy, 2, "channels_last")
    np.testing.assert_array_equal(dx, dx_ref)


@pytest.mark.parametrize("cls", [L.GlobalMaxPooling2D, L.GlobalMaxPooling1D])
def test_global_max_tie_goes_to_the_first_maximum(backend: Any, cls: Any) -> None:
    x = np.zeros((1, 2, 3, 2) if cls is L.GlobalMaxPooling2D else (1, 6, 2))
    x[..., 1] = 1.0
    with backend.use("float64"):
        _, dx, dy = _run(backend, cls(), x)
    flat = dx.reshape(1, -1, 2)
    np.testing.assert_array_equal(flat[0, 0], dy[0])  # the first position of each channel
    assert np.count_nonzero(flat) == 2


# -- gradcheck, placement -----------------------------------------------------------------------
GRADCHECK = [
    lambda: L.MaxPooling2D(2),
    lambda: L.MaxPooling2D((2, 3), (1, 2), padding="same"),
    lambda: L.AveragePooling2D(3, 2, padding="same", data_format="channels_first"),
    lambda: L.AveragePooling2D(2, 1),
    lambda: L.MaxPooling1D(3, 2, padding="same", data_format="channels_first"),
    lambda: L.AveragePooling1D(2, padding="same"),
    lambda: L.GlobalMaxPooling2D(),
    lambda: L.GlobalAveragePooling2D(data_format="channels_first"),
    lambda: L.GlobalMaxPooling1D(data_format="channels_first"),
    lambda: L.GlobalAveragePooling1D(),
]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("make", GRADCHECK)
def test_gradcheck(backend: Any, make: Any, training: bool) -> None:
    layer = make()
    rank = RANK[type(layer)]
    x = _distinct(_image(rank, layer.data_format, batch=2, size=5, channels=2))
    with backend.use("float64"):
        result = pnn.gradcheck(layer, backend.asarray(x, "float64"), training=training)
    assert result.ok, result.report()


@pytest.mark.parametrize("cls", WINDOWED + GLOBAL)
def test_float32_placement_and_output_shape(backend: Any, cls: Any) -> None:
    shape = _image(RANK[cls], "channels_last", size=6)
    layer = cls() if cls in GLOBAL else cls(2, padding="same")
    x = backend.asarray(_distinct(shape), "float32")
    y, cache = layer.forward(x, training=True)
    dx, grads = layer.backward(y, cache)
    assert grads == {} and tuple(dx.shape) == shape
    assert tuple(y.shape) == layer.compute_output_shape(shape)
    assert layer.compute_output_shape((None, *shape[1:]))[0] is None
    for out in (y, dx):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float32
    np.testing.assert_array_equal(backend.to_numpy(layer(x)), backend.to_numpy(y))


def test_compute_output_shape() -> None:
    assert L.MaxPooling2D(2).compute_output_shape((None, 7, 9, 3)) == (None, 3, 4, 3)
    same = L.MaxPooling2D(2, padding="same")
    assert same.compute_output_shape((None, 7, 9, 3)) == (None, 4, 5, 3)
    cf = L.AveragePooling2D((3, 2), (2, 1), data_format="channels_first")
    assert cf.compute_output_shape((4, 3, 7, 9)) == (4, 3, 3, 8)
    assert L.AveragePooling1D(3, 2).compute_output_shape((2, 10, 4)) == (2, 4, 4)
    assert L.MaxPooling1D(3, padding="same").compute_output_shape((2, None, 4)) == (2, None, 4)
    first = L.GlobalMaxPooling2D(data_format="channels_first")
    assert first.compute_output_shape((None, 5, 8, 8)) == (None, 5)
    assert L.GlobalAveragePooling1D().compute_output_shape((3, 10, 6)) == (3, 6)


# -- names, configs -----------------------------------------------------------------------------
def test_default_names_follow_keras() -> None:
    names = {
        L.MaxPooling2D: "max_pooling2d",
        L.AveragePooling2D: "average_pooling2d",
        L.MaxPooling1D: "max_pooling1d",
        L.AveragePooling1D: "average_pooling1d",
        L.GlobalAveragePooling2D: "global_average_pooling2d",
        L.GlobalMaxPooling2D: "global_max_pooling2d",
        L.GlobalAveragePooling1D: "global_average_pooling1d",
        L.GlobalMaxPooling1D: "global_max_pooling1d",
    }
    for cls, name in names.items():
        assert default_name(cls.__name__) == name
        assert re.fullmatch(rf"{name}(_\d+)?", cls().name)


@pytest.mark.parametrize(
    "make",
    [
        lambda: L.MaxPooling2D(
            (2, 3), 1, padding="same", data_format="channels_first", input_shape=(3, 8, 8), name="p"
        ),
        lambda: L.AveragePooling1D(4, input_shape=(9, 2)),
        lambda: L.GlobalMaxPooling1D(data_format="channels_first", input_shape=(2, 9)),
        lambda: L.GlobalAveragePooling2D(),
    ],
)
def test_config_round_trip(make: Any) -> None:
    layer = make()
    config = json.loads(json.dumps(layer.get_config()))
    clone = L.get({"class_name": type(layer).__name__, "config": config})
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    assert clone.input_shape == layer.input_shape
    assert repr(clone).startswith(type(layer).__name__)


# -- bad inputs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pool_size": 0}, r"pool_size=0"),
        ({"pool_size": (2, 2, 2)}, r"pool_size=\(2, 2, 2\)"),
        ({"pool_size": 2.0}, r"pool_size=2.0"),
        ({"pool_size": True}, r"pool_size=True"),
        ({"strides": (1, -1)}, r"strides=\(1, -1\)"),
        ({"padding": "full"}, r"padding.*Received: padding='full'"),
        ({"data_format": "NHWC"}, r"data_format.*'NHWC'"),
    ],
)
def test_bad_arguments_name_argument_and_value(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        L.MaxPooling2D(**kwargs)
    with pytest.raises(ValueError, match="data_format"):
        L.GlobalAveragePooling2D(data_format="nchw")


@pytest.mark.parametrize("cls", WINDOWED + GLOBAL)
def test_wrong_rank_names_layer_and_shape(backend: Any, cls: Any) -> None:
    layer = cls(name="pool")
    bad = (2, 4, 4) if RANK[cls] == 2 else (2, 4, 4, 3)
    shown = re.escape(str((None, *bad[1:])))
    with pytest.raises(ValueError, match=rf"pool: expects inputs \(batch, .*shape {shown}"):
        layer.forward(backend.asarray(np.ones(bad), "float32"), training=True)
    assert not layer.built and layer.input_shape is None


def test_window_larger_than_input(backend: Any) -> None:
    layer = L.MaxPooling2D((3, 5), name="big")
    with pytest.raises(ValueError, match=r"big: pool_size=\(3, 5\).*larger.*\(None, 4, 4, 1\)"):
        layer.forward(backend.asarray(np.ones((2, 4, 4, 1)), "float32"))
    assert not layer.built
    layer = L.MaxPooling2D((3, 5), padding="same")  # padded: fits
    assert tuple(layer(backend.asarray(np.ones((2, 4, 4, 1)), "float32")).shape) == (2, 2, 1, 1)
    with pytest.raises(ValueError, match="larger"):
        L.AveragePooling1D(4, input_shape=(3, 2))


def test_bad_shapes_after_build_and_bad_dy(backend: Any) -> None:
    layer = L.AveragePooling2D(2, input_shape=(4, 4, 2), name="avg")
    with pytest.raises(ValueError, match=r"avg: expected input of shape \(None, 4, 4, 2\)"):
        layer.forward(backend.asarray(np.ones((1, 6, 4, 2)), "float32"))
    with pytest.raises(TypeError, match="real floating"):
        L.MaxPooling2D().forward(backend.asarray(np.ones((1, 4, 4, 2), dtype=np.int32)))
    for make in (lambda: L.MaxPooling2D(2), lambda: L.GlobalMaxPooling2D()):
        pool = make()
        _, cache = pool.forward(backend.asarray(np.ones((1, 4, 4, 2)), "float32"), training=True)
        with pytest.raises(ValueError, match="dy has shape"):
            pool.backward(backend.asarray(np.ones((1, 4, 4, 2)), "float32"), cache)
