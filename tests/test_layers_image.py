"""Image layers: ZeroPadding2D, Cropping2D and UpSampling2D against PyTorch (float64),
SpatialDropout2D and Dropout on images, gradcheck and placement on every backend, configs,
names and bad inputs."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import layers as L
from portable_nn.layers.base import default_name


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape)  # no zeros: y == 0 <=> dropped


def _rel_error(a: Any, ref: Any) -> float:
    a, ref = np.asarray(a), np.asarray(ref)
    return float(np.max(np.abs(a - ref)) / max(np.max(np.abs(ref)), 1e-300))


def _shape(data_format: str, batch: int = 2, h: int = 5, w: int = 6, c: int = 3):
    return (batch, h, w, c) if data_format == "channels_last" else (batch, c, h, w)


# -- PyTorch equality ---------------------------------------------------------------------------
CASES = {  # layer arguments -> torch function on (N, C, H, W)
    "pad_pairs": (lambda f: L.ZeroPadding2D(((1, 2), (0, 3)), f), ("pad", (0, 3, 1, 2))),
    "pad_int": (lambda f: L.ZeroPadding2D(2, f), ("pad", (2, 2, 2, 2))),
    "pad_hw": (lambda f: L.ZeroPadding2D((1, 3), f), ("pad", (3, 3, 1, 1))),
    "crop_pairs": (lambda f: L.Cropping2D(((1, 2), (0, 3)), f), ("pad", (0, -3, -1, -2))),
    "crop_int": (lambda f: L.Cropping2D(1, f), ("pad", (-1, -1, -1, -1))),
    "crop_hw": (lambda f: L.Cropping2D((2, 1), f), ("pad", (-1, -1, -2, -2))),
    "up_int": (lambda f: L.UpSampling2D(2, f), ("interpolate", (2, 2))),
    "up_pair": (lambda f: L.UpSampling2D((2, 3), f), ("interpolate", (2, 3))),
}


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch(backend: Any, case: str, data_format: str) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    make, (kind, arg) = CASES[case]
    x = np.random.default_rng(0).normal(size=_shape(data_format))
    with backend.use("float64"):
        layer = make(data_format)
        y, cache = layer.forward(backend.asarray(x, "float64"), training=True)
        dy = np.random.default_rng(1).normal(size=tuple(y.shape))
        dx, grads = layer.backward(backend.asarray(dy, "float64"), cache)
    assert grads == {} and tuple(y.shape) == layer.compute_output_shape(x.shape)
    for out in (y, dx):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float64
    last = data_format == "channels_last"
    xt = torch.tensor(x).permute(0, 3, 1, 2) if last else torch.tensor(x)
    xt.requires_grad_(True)
    if kind == "pad":
        yt = F.pad(xt, arg)
    else:
        yt = F.interpolate(xt, scale_factor=arg, mode="nearest")
    yt.backward(torch.tensor(dy).permute(0, 3, 1, 2) if last else torch.tensor(dy))
    y_ref = (yt.permute(0, 2, 3, 1) if last else yt).detach().numpy()
    dx_ref = (xt.grad.permute(0, 2, 3, 1) if last else xt.grad).numpy()
    assert backend.to_numpy(y).shape == y_ref.shape
    assert _rel_error(backend.to_numpy(y), y_ref) <= 1e-10
    assert _rel_error(backend.to_numpy(dx), dx_ref) <= 1e-10


# -- SpatialDropout2D and Dropout on images ------------------------------------------------------
def _channel_masks(seed: int, rate: float, shape: tuple[int, ...], calls: int) -> list[np.ndarray]:
    """Reference (batch, channels) masks from the NumPy backend (a fresh layer, same seed)."""
    with pnn.use_backend("numpy"):
        layer = L.SpatialDropout2D(rate, seed=seed)
        ones = np.ones(shape, dtype=np.float32)
        return [
            np.asarray(layer.forward(ones, training=True)[0])[:, 0, 0] != 0 for _ in range(calls)
        ]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_spatial_dropout_drops_whole_channels(backend: Any, data_format: str) -> None:
    rate, shape = 0.3, _shape(data_format, batch=100, h=3, w=4, c=50)
    x_np = _x(shape)
    layer = L.SpatialDropout2D(rate, data_format, seed=7)
    y, cache = layer.forward(backend.asarray(x_np, "float32"), training=True)
    dx, grads = layer.backward(backend.asarray(np.ones(shape), "float32"), cache)
    y_np, dx_np = backend.to_numpy(y), backend.to_numpy(dx)
    if data_format == "channels_first":  # compare as channels-last
        x_np, y_np, dx_np = (np.moveaxis(a, 1, -1) for a in (x_np, y_np, dx_np))
    kept = y_np[:, 0, 0] != 0  # (batch, channels)
    np.testing.assert_array_equal(y_np != 0, np.broadcast_to(kept[:, None, None], y_np.shape))
    assert abs(kept.mean() - (1 - rate)) < 0.02  # 5 000 draws: 4 standard deviations
    scale = np.float32(1 / (1 - rate))
    where = np.broadcast_to(kept[:, None, None], y_np.shape)
    np.testing.assert_allclose(y_np[where], x_np.astype(np.float32)[where] * scale, rtol=1e-6)
    np.testing.assert_allclose(dx_np, where * scale, rtol=1e-6)  # dL/dx = dy * mask / (1 - rate)
    assert grads == {}
    for out in (y, dx):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float32


def test_spatial_dropout_masks_identical_across_backends(backend: Any) -> None:
    shape = (6, 2, 3, 9)
    reference = _channel_masks(seed=1234, rate=0.4, shape=shape, calls=3)
    layer = L.SpatialDropout2D(0.4, seed=1234)
    ones = backend.asarray(np.ones(shape), "float32")
    masks = [
        backend.to_numpy(layer.forward(ones, training=True)[0])[:, 0, 0] != 0 for _ in range(3)
    ]
    for got, want in zip(masks, reference):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(masks[0], masks[1])  # each call draws new masks
    first = L.SpatialDropout2D(0.4, "channels_first", seed=1234)  # the same (batch, channels)
    y = first.forward(backend.asarray(np.ones((6, 9, 2, 3)), "float32"), training=True)[0]
    np.testing.assert_array_equal(backend.to_numpy(y)[:, :, 0, 0] != 0, reference[0])


def test_spatial_dropout_identity_at_inference_and_rate_zero(backend: Any) -> None:
    x, dy = (backend.asarray(_x((2, 3, 3, 4), seed), "float32") for seed in (0, 1))
    for layer, training in (
        (L.SpatialDropout2D(0.5, seed=1), False),
        (L.SpatialDropout2D(0.0), True),
    ):
        y, cache = layer.forward(x, training=training)
        dx, grads = layer.backward(dy, cache)
        assert y is x and dx is dy and grads == {}


@pytest.mark.parametrize("training", [True, False])
def test_dropout_accepts_images(backend: Any, training: bool) -> None:
    with backend.use("float64"):
        x = backend.asarray(_x((2, 4, 4, 3)), "float64")
        layer = L.Dropout(0.5, seed=3)
        y, _ = layer.forward(x, training=True)
        dropped = backend.to_numpy(y) == 0
        assert tuple(y.shape) == (2, 4, 4, 3) and 0 < dropped.mean() < 1
        assert not np.all(dropped == dropped[:, :1, :1])  # element by element, not per channel
        result = pnn.gradcheck(layer, x, training=training)
        assert result.ok, result.report()


# -- gradcheck, placement -----------------------------------------------------------------------
GRADCHECK = [
    lambda: L.SpatialDropout2D(0.5, seed=2),
    lambda: L.SpatialDropout2D(0.5, "channels_first", seed=2),
    lambda: L.ZeroPadding2D(((1, 0), (2, 1))),
    lambda: L.Cropping2D(((1, 0), (2, 1)), "channels_first"),
    lambda: L.UpSampling2D((2, 3)),
    lambda: L.UpSampling2D(2, "channels_first"),
]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("make", GRADCHECK)
def test_gradcheck(backend: Any, make: Any, training: bool) -> None:
    layer = make()
    with backend.use("float64"):
        x = backend.asarray(_x(_shape(layer.data_format, h=4, w=5, c=2)), "float64")
        result = pnn.gradcheck(layer, x, training=training)
    assert result.ok, result.report()


ALL = {
    "SpatialDropout2D": lambda f: L.SpatialDropout2D(0.5, f, seed=1),
    "ZeroPadding2D": lambda f: L.ZeroPadding2D(data_format=f),
    "Cropping2D": lambda f: L.Cropping2D(((1, 0), (0, 2)), f),
    "UpSampling2D": lambda f: L.UpSampling2D(data_format=f),
}


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name", sorted(ALL))
def test_float32_placement_and_output_shape(backend: Any, name: str, data_format: str) -> None:
    layer = ALL[name](data_format)
    shape = _shape(data_format)
    x = backend.asarray(_x(shape), "float32")
    y, cache = layer.forward(x, training=True)
    dx, _ = layer.backward(y, cache)
    assert tuple(dx.shape) == shape and tuple(y.shape) == layer.compute_output_shape(shape)
    assert layer.compute_output_shape((None, *shape[1:]))[0] is None
    for out in (y, dx):
        backend.assert_same_place(out)
        assert out.dtype == backend.xp.float32
    if name != "SpatialDropout2D":
        np.testing.assert_array_equal(backend.to_numpy(layer(x)), backend.to_numpy(y))


def test_argument_forms_follow_keras() -> None:
    def out(layer: Any) -> tuple[Any, ...]:
        return layer.compute_output_shape((None, 10, 12, 3))

    assert out(L.ZeroPadding2D()) == (None, 12, 14, 3)  # (1, 1): one cell on every side
    assert out(L.ZeroPadding2D((1, 2))) == (None, 12, 16, 3)  # (height, width), symmetric
    assert out(L.ZeroPadding2D(((0, 1), (2, 3)))) == (None, 11, 17, 3)
    assert out(L.Cropping2D()) == (None, 10, 12, 3)
    assert out(L.Cropping2D([[1, 2], [3, 4]])) == (None, 7, 5, 3)  # a JSON config's lists
    assert out(L.UpSampling2D()) == (None, 20, 24, 3)
    assert out(L.UpSampling2D((1, 3))) == (None, 10, 36, 3)
    first = L.ZeroPadding2D(((0, 1), (2, 3)), "channels_first")
    assert first.compute_output_shape((4, 3, 10, 12)) == (4, 3, 11, 17)
    assert L.ZeroPadding2D(1).padding == ((1, 1), (1, 1))
    assert L.Cropping2D((1, 2)).cropping == ((1, 1), (2, 2))
    assert L.UpSampling2D(3).size == (3, 3)


# -- names, configs -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ALL))
def test_config_round_trip_and_default_name(name: str) -> None:
    keras = {
        "SpatialDropout2D": "spatial_dropout2d",
        "ZeroPadding2D": "zero_padding2d",
        "Cropping2D": "cropping2d",
        "UpSampling2D": "up_sampling2d",
    }[name]
    layer = ALL[name]("channels_first")
    assert default_name(name) == keras and re.fullmatch(rf"{keras}(_\d+)?", layer.name)
    layer.build((None, 3, 6, 6))
    config = json.loads(json.dumps(layer.get_config()))
    assert config["data_format"] == "channels_first"
    clone = L.get({"class_name": name, "config": config})
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    assert repr(clone).startswith(name)


# -- bad inputs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: L.ZeroPadding2D(-1), r"padding=-1"),
        (lambda: L.ZeroPadding2D((1, 2, 3)), r"padding=\(1, 2, 3\)"),
        (lambda: L.ZeroPadding2D(((1, 2), (3, -1))), r"padding=\(3, -1\)"),
        (lambda: L.ZeroPadding2D(((1, 2), (3, 4), (5, 6))), r"top, bottom.*padding="),
        (lambda: L.ZeroPadding2D("same"), r"padding='same'"),
        (lambda: L.Cropping2D(1.5), r"cropping=1.5"),
        (lambda: L.UpSampling2D(0), r"size=0"),
        (lambda: L.UpSampling2D((2, True)), r"size=\(2, True\)"),
        (lambda: L.UpSampling2D(data_format="NCHW"), r"data_format.*'NCHW'"),
        (lambda: L.SpatialDropout2D(1.0), r"rate"),
        (lambda: L.SpatialDropout2D(0.5, "channels"), r"data_format"),
    ],
)
def test_bad_arguments(make: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("name", sorted(ALL))
def test_wrong_rank_names_layer_and_shape(backend: Any, name: str) -> None:
    layer = ALL[name]("channels_last")
    layer.name = "img"
    with pytest.raises(ValueError, match=r"img: expects inputs \(batch, height.*\(None, 4, 3\)"):
        layer.forward(backend.asarray(_x((2, 4, 3)), "float32"), training=True)
    assert not layer.built and layer.input_shape is None


def test_cropping_more_than_the_image(backend: Any) -> None:
    layer = L.Cropping2D(((2, 3), (0, 0)), name="crop")
    with pytest.raises(ValueError, match=r"crop: cropping=.*leaves nothing.*\(None, 5, 6, 3\)"):
        layer.forward(backend.asarray(_x((2, 5, 6, 3)), "float32"))
    assert not layer.built
    with pytest.raises(ValueError, match="leaves nothing"):
        L.Cropping2D(3, input_shape=(6, 6, 1))
    layer = L.UpSampling2D(input_shape=(4, 4, 2), name="up")
    with pytest.raises(ValueError, match=r"up: expected input of shape \(None, 4, 4, 2\)"):
        layer.forward(backend.asarray(_x((2, 4, 5, 2)), "float32"))
    _, cache = layer.forward(backend.asarray(_x((2, 4, 4, 2)), "float32"))
    with pytest.raises(ValueError, match="dy has shape"):
        layer.backward(backend.asarray(_x((2, 4, 4, 2)), "float32"), cache)
    with pytest.raises(TypeError, match="real floating"):
        L.ZeroPadding2D().forward(backend.asarray(np.ones((1, 2, 2, 1), dtype=np.int32)))
