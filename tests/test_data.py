"""Data sources for fit/evaluate/predict: batch generators (Keras's rules) and memory maps read
batch by batch."""

from __future__ import annotations

import gc
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import Dense


def regression(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.1).astype(np.float32)


def model(seed: int = 0) -> pnn.Sequential:
    pnn.seed(seed)
    m = pnn.Sequential([Dense(8, input_dim=3, activation="tanh"), Dense(1)])
    m.compile(loss="mse", optimizer=pnn.optimizers.SGD(0.05), metrics=["mae"])
    return m


class Loader:
    """A re-iterable source with a length, like a torch DataLoader or a Keras PyDataset."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def batches_of(x: np.ndarray, y: np.ndarray, size: int) -> Loader:
    return Loader([(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)])


def endless(items: list[Any]) -> Iterator[Any]:
    while True:
        yield from items


def test_generator_with_steps_per_epoch_equals_arrays_in_order(backend: Any) -> None:
    x, y = regression()
    on_arrays = model().fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    fitted = model()
    source = endless(batches_of(x, y, 8))
    history = fitted.fit(source, epochs=3, steps_per_epoch=5, verbose=0)
    np.testing.assert_allclose(history.history["loss"], on_arrays.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(history.history["mae"], on_arrays.history["mae"], rtol=1e-6)
    assert history.epoch == [0, 1, 2]


def test_steps_limit_array_passes_to_their_first_batches(backend: Any) -> None:
    """Keras's ``steps_per_epoch`` / ``validation_steps`` / ``steps`` on arrays: each pass
    takes the first batches of its order; asking more batches than there are warns."""
    x, y = regression(50)
    with backend.use():
        first = model().fit(x[:24], y[:24], epochs=2, batch_size=8, shuffle=False, verbose=0)
        fitted = model()
        history = fitted.fit(
            x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, steps_per_epoch=3,
            validation_data=(x[40:], y[40:]), validation_steps=1,
        )  # fmt: skip
        np.testing.assert_allclose(history.history["loss"], first.history["loss"], rtol=1e-5)
        val = fitted.evaluate(x[40:48], y[40:48], batch_size=8)
        np.testing.assert_allclose(history.history["val_loss"][-1], val["loss"], rtol=1e-5)
        head = fitted.evaluate(x[:8], y[:8], batch_size=8)
        assert fitted.evaluate(x, y, batch_size=8, steps=1) == pytest.approx(head, rel=1e-5)
        assert backend.to_numpy(fitted.predict(x, batch_size=8, steps=2)).shape == (16, 1)
        with pytest.warns(UserWarning, match="4 steps asked, but 50 samples in batches of 20"):
            fitted.fit(x, y, epochs=1, batch_size=20, steps_per_epoch=4, verbose=0)


def test_reiterable_source_restarts_every_epoch_and_reports_its_length(backend: Any) -> None:
    x, y = regression()
    steps_seen: list[Any] = []
    spy = pnn.callbacks.LambdaCallback(
        on_train_begin=lambda logs: steps_seen.append(spy.params["steps"])
    )
    on_arrays = model().fit(x, y, epochs=2, batch_size=10, shuffle=False, verbose=0)
    history = model().fit(batches_of(x, y, 10), epochs=2, verbose=0, callbacks=[spy])
    np.testing.assert_allclose(history.history["loss"], on_arrays.history["loss"], rtol=1e-6)
    assert steps_seen == [4]


def test_one_shot_generator_without_steps_stops_with_a_warning(backend: Any) -> None:
    x, y = regression()
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model().fit(iter(batches_of(x, y, 8)), epochs=3, verbose=0)
    assert history.epoch == [0]  # the second epoch found nothing left


def test_generator_running_dry_before_steps_per_epoch(backend: Any) -> None:
    x, y = regression()
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model().fit(iter(batches_of(x, y, 8)), epochs=3, steps_per_epoch=3, verbose=0)
    assert history.epoch == [0, 1]  # 3 + 2 batches of the 5


def test_validation_evaluate_and_predict_take_generators(backend: Any) -> None:
    x, y = regression()
    xv, yv = regression(20, seed=1)
    m = model()
    history = m.fit(
        x,
        y,
        epochs=2,
        batch_size=8,
        verbose=0,
        validation_data=endless(batches_of(xv, yv, 5)),
        validation_steps=4,
    )
    reference = m.evaluate(xv, yv, batch_size=5)
    np.testing.assert_allclose(history.history["val_loss"][-1], reference["loss"], rtol=1e-5)
    from_generator = m.evaluate(endless(batches_of(xv, yv, 5)), steps=4)
    np.testing.assert_allclose(from_generator["loss"], reference["loss"], rtol=1e-6)
    predicted = m.predict(iter([xb for xb, _ in batches_of(xv, yv, 5)]))
    backend.assert_same_place(predicted)
    np.testing.assert_allclose(pnn.to_numpy(predicted), m.predict(xv), rtol=1e-6, atol=1e-7)


def test_unbuilt_model_builds_from_a_one_shot_generators_first_batch(backend: Any) -> None:
    x, y = regression()
    pnn.seed(0)
    m = pnn.Sequential([Dense(4), Dense(1)])
    m.compile(loss="mse", optimizer="sgd")
    history = m.fit(iter(batches_of(x, y, 8)), epochs=1, verbose=0)
    assert m.built and m.input_shape == (None, 3) and len(history.history["loss"]) == 1


def test_bad_generator_input_is_named(backend: Any) -> None:
    x, y = regression()
    m = model()
    with pytest.raises(ValueError, match="y must be None"):
        m.fit(batches_of(x, y, 8), y, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(batches_of(x, y, 8), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch=0"):
        m.fit(batches_of(x, y, 8), steps_per_epoch=0, verbose=0)
    with pytest.raises(ValueError, match="4 items"):
        m.fit(Loader([(x, y, y, y)]), verbose=0)
    bad = x.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        m.fit(Loader([(x[:8], y[:8]), (bad[:8], y[:8])]), verbose=0)
    with pytest.raises(ValueError, match="no batch"):
        m.fit(Loader([]), verbose=0)


def test_device_batches_from_a_torch_loader_style_iterable() -> None:
    torch = pytest.importorskip("torch")
    x, y = regression()
    with pnn.use_backend("torch"):
        on_arrays = model().fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        loader = Loader(
            [(torch.from_numpy(xb), torch.from_numpy(yb)) for xb, yb in batches_of(x, y, 8)]
        )
        history = model().fit(loader, epochs=2, verbose=0)
    np.testing.assert_allclose(history.history["loss"], on_arrays.history["loss"], rtol=1e-6)


# -- memory maps -------------------------------------------------------------------------------
def _rss_anon() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_fit_on_a_1gb_memory_map_keeps_anonymous_memory_low(tmp_path, library: str) -> None:
    """1 GiB of float32 features on disk (4096 x 65536): fit and predict read it batch by
    batch; the process's anonymous memory (RssAnon: file pages count only in RSS) grows by far
    less than the file."""
    if library == "torch":
        pytest.importorskip("torch")
    rows, features = 4096, 65536
    path = os.fspath(tmp_path / "x.npy")
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, features))
    rng = np.random.default_rng(0)
    w = rng.normal(size=features).astype(np.float32) / math.sqrt(features)
    y = np.empty((rows, 1), np.float32)
    for start in range(0, rows, 256):  # written in blocks: no 1 GiB temporary here either
        block = rng.normal(size=(256, features)).astype(np.float32)
        x[start : start + 256] = block
        y[start : start + 256, 0] = block @ w
    x.flush()
    del x
    gc.collect()
    mapped = np.load(path, mmap_mode="r")
    with pnn.use_backend(library):
        pnn.seed(0)
        m = pnn.Sequential([Dense(1, input_dim=features)])
        m.compile(loss="mse", optimizer=pnn.optimizers.SGD(0.1))
        peak = [0]
        watch = pnn.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: peak.__setitem__(0, max(peak[0], _rss_anon()))
        )
        before = _rss_anon()
        history = m.fit(mapped, y, epochs=1, batch_size=256, verbose=0, callbacks=[watch])
        predicted = m.predict(mapped, batch_size=512)
        peak[0] = max(peak[0], _rss_anon())
    assert math.isfinite(history.history["loss"][0]) and predicted.shape == (rows, 1)
    assert peak[0] - before < (256 << 20), (before, peak[0])  # the file is 1024 MiB
