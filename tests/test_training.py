"""Sequential's training API: compile / fit / evaluate / predict / train_step on every backend."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.callbacks import Callback
from portable_nn.layers import BatchNormalization, Dense, Dropout

# -- data and models ---------------------------------------------------------------------------


def regression_data(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).uniform(-1.0, 1.0, size=(n, 2)).astype("float32")
    y = (0.8 * x[:, :1] - 0.5 * x[:, 1:] + 0.3 * x[:, :1] * x[:, 1:] + 0.2).astype("float32")
    return x, y


def blobs(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    labels = np.arange(n) % 3
    centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    x = (centres[labels] + 0.4 * rng.normal(size=(n, 2))).astype("float32")
    return x, labels.astype("int64")


def regressor(optimizer: Any = None, dropout: float = 0.0) -> pnn.Sequential:
    layers = [Dense(8, activation="tanh", input_dim=2)]
    if dropout:
        layers.append(Dropout(dropout))
    model = pnn.Sequential([*layers, Dense(1)])
    model.compile(loss="mse", optimizer=optimizer or pnn.optimizers.Adam(0.02), metrics=["mae"])
    return model


def classifier() -> pnn.Sequential:
    model = pnn.Sequential([Dense(8, activation="relu", input_dim=2), Dense(3)])
    loss = pnn.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(loss=loss, optimizer=pnn.optimizers.Adam(0.02), metrics=["accuracy"])
    return model


def assert_0d_on_device(backend: Any, value: Any) -> None:
    """A 0-d value of the backend's namespace on its device (NumPy reductions give scalars)."""
    import array_api_compat

    assert getattr(value, "ndim", None) == 0, type(value)
    assert array_api_compat.array_namespace(value) is backend.xp
    assert array_api_compat.device(value) == backend.dev


def host_state(model: pnn.Sequential) -> dict[str, np.ndarray]:
    return {k: np.array(pnn.to_numpy(v)) for k, v in model.state_dict().items()}


def assert_same_state(before: dict[str, np.ndarray], model: pnn.Sequential) -> None:
    after = host_state(model)
    assert list(after) == list(before)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


class Recorder(Callback):
    """Records hook calls, params, and the per-batch logs it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.batch_logs: list[dict[str, Any]] = []
        self.epoch_logs: list[dict[str, Any]] = []

    def on_train_begin(self, logs: Any = None) -> None:
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.calls.append(f"epoch_begin {epoch}")

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.calls.append(f"batch_begin {batch}")

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.calls.append(f"batch_end {batch}")
        self.batch_logs.append(dict(logs))

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.calls.append(f"epoch_end {epoch}")
        self.epoch_logs.append(dict(logs))

    def on_train_end(self, logs: Any = None) -> None:
        self.calls.append("train_end")


# -- learning ----------------------------------------------------------------------------------


def test_regression_loss_decreases(backend: Any) -> None:
    x, y = regression_data()
    model = regressor()
    history = model.fit(backend.asarray(x), backend.asarray(y), epochs=15, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 15 and all(isinstance(v, float) for v in losses)
    assert losses[-1] < 0.2 * losses[0], losses
    assert model.evaluate(x, y, batch_size=8)["loss"] < 0.2 * losses[0]


def test_classification_learns(backend: Any) -> None:
    x, labels = blobs()
    model = classifier()
    history = model.fit(backend.asarray(x), backend.asarray(labels), epochs=12, batch_size=8,
                        verbose=0)  # fmt: skip
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    assert history.history["accuracy"][-1] >= 0.95
    scores = model.predict(backend.asarray(x))
    backend.assert_same_place(scores)
    assert (backend.to_numpy(scores).argmax(axis=1) == labels).mean() >= 0.95


def test_one_hot_targets_and_column_labels(backend: Any) -> None:
    x, labels = blobs(16)
    model = classifier()
    model.fit(
        x, labels[:, None], epochs=1, batch_size=8, verbose=0
    )  # (N, 1) labels are squeezed, as Keras
    onehot = np.eye(3, dtype="float32")[labels]
    model.compile(loss=pnn.losses.CategoricalCrossentropy(from_logits=True), optimizer="sgd",
                  metrics=["categorical_accuracy"])  # fmt: skip
    history = model.fit(backend.asarray(x), backend.asarray(onehot), epochs=2, batch_size=8,
                        verbose=0)  # fmt: skip
    assert set(history.history) == {"loss", "categorical_accuracy"}


# -- logs, history, validation -----------------------------------------------------------------


def test_history_and_validation_split(backend: Any) -> None:
    x, y = regression_data(32)
    model = regressor()
    history = model.fit(backend.asarray(x), backend.asarray(y), epochs=3, batch_size=8,
                        validation_split=0.25, verbose=0)  # fmt: skip
    assert history is model.history
    assert history.epoch == [0, 1, 2] and model.epoch == 3
    assert list(history.history) == ["loss", "mae", "val_loss", "val_mae"]
    assert all(len(v) == 3 for v in history.history.values())
    # the validation set is the LAST 25 % of the samples, evaluated with the final weights
    last = model.evaluate(backend.asarray(x[24:]), backend.asarray(y[24:]), batch_size=8)
    assert history.history["val_loss"][-1] == pytest.approx(last["loss"], rel=1e-5)
    assert history.history["val_mae"][-1] == pytest.approx(last["mae"], rel=1e-5)


def test_validation_data_equals_split_of_the_tail(backend: Any) -> None:
    x, y = regression_data(32)
    pnn.seed(3)
    first = regressor().fit(x, y, epochs=2, batch_size=8, validation_split=0.25, seed=1, verbose=0)
    pnn.seed(3)
    tail = (backend.asarray(x[24:]), backend.asarray(y[24:]))
    second = regressor().fit(x[:24], y[:24], epochs=2, batch_size=8, seed=1, verbose=0,
                             validation_data=tail)  # fmt: skip
    assert first.history == second.history


def test_initial_epoch_and_epoch_counter(backend: Any) -> None:
    x, y = regression_data(16)
    model = regressor()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    history = model.fit(x, y, epochs=4, batch_size=8, initial_epoch=model.epoch, verbose=0)
    assert history.epoch == [2, 3] and model.epoch == 4
    assert model.fit(x, y, epochs=4, batch_size=8, initial_epoch=4, verbose=0).history == {}


def test_callback_contract_and_device_batch_logs(backend: Any) -> None:
    x, y = regression_data(24)
    recorder = Recorder()
    model = regressor()
    model.fit(backend.asarray(x), backend.asarray(y), epochs=2, batch_size=8, verbose=0,
              callbacks=[recorder])  # fmt: skip
    assert recorder.model is model
    assert recorder.params == dict(epochs=2, steps=3, verbose=0, batch_size=8, samples=24)
    batches = ["batch_begin 0", "batch_end 0", "batch_begin 1", "batch_end 1",
               "batch_begin 2", "batch_end 2"]  # fmt: skip
    assert recorder.calls == ["train_begin", "epoch_begin 0", *batches, "epoch_end 0",
                              "epoch_begin 1", *batches, "epoch_end 1", "train_end"]  # fmt: skip
    for logs in recorder.batch_logs:  # running means as 0-d device arrays: no per-batch sync
        assert set(logs) == {"loss", "mae"}
        for value in logs.values():
            assert_0d_on_device(backend, value)
    for epoch in (0, 1):
        last_batch, epoch_logs = recorder.batch_logs[3 * epoch + 2], recorder.epoch_logs[epoch]
        assert all(isinstance(v, float) for v in epoch_logs.values())
        for key in ("loss", "mae"):  # the epoch value is the sample-weighted mean of batches
            assert float(last_batch[key]) == pytest.approx(epoch_logs[key], rel=1e-6)


def test_progress_output(backend: Any, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = regression_data(16)
    regressor().fit(x, y, epochs=2, batch_size=8, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "loss:" in out
    regressor().fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert capsys.readouterr().out == ""
    regressor().fit(x, y, epochs=1, batch_size=8, verbose=1)  # a tqdm bar
    captured = capsys.readouterr()
    assert "Epoch 1/1" in captured.out + captured.err


class StopAt(Callback):
    def __init__(self, epoch: int | None = None, batch: int | None = None) -> None:
        super().__init__()
        self.epoch, self.batch, self.batches_seen = epoch, batch, 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batches_seen += 1
        if batch == self.batch:
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == self.epoch:
            self.model.stop_training = True


def test_stop_training(backend: Any) -> None:
    x, y = regression_data(32)
    model = regressor()
    history = model.fit(x, y, epochs=10, batch_size=8, verbose=0, callbacks=[StopAt(epoch=1)])
    assert history.epoch == [0, 1] and model.epoch == 2
    stopper = StopAt(batch=1)  # stops mid-epoch (as TerminateOnNaN does)
    history = model.fit(x, y, epochs=10, batch_size=8, verbose=0, callbacks=[stopper])
    assert history.epoch == [0] and stopper.batches_seen == 2
    assert model.fit(x, y, epochs=1, batch_size=8, verbose=0).epoch == [
        0
    ]  # the flag is reset by fit


# -- evaluate / predict / steps ----------------------------------------------------------------


def test_evaluate_weights_batches_by_size(backend: Any) -> None:
    x, y = regression_data(12)
    model = regressor()
    result = model.evaluate(backend.asarray(x), backend.asarray(y), batch_size=8)
    assert list(result) == ["loss", "mae"]
    assert all(type(v) is float for v in result.values())
    pred = backend.to_numpy(model(backend.asarray(x))).astype("float64")
    assert result["loss"] == pytest.approx(np.mean((pred - y) ** 2), rel=1e-5)
    assert result["mae"] == pytest.approx(np.mean(np.abs(pred - y)), rel=1e-5)
    assert model.optimizer.iterations == 0


def test_predict_returns_input_namespace(backend: Any) -> None:
    x, _ = regression_data(12)
    model = regressor()
    expected = backend.to_numpy(model(backend.asarray(x)))
    out = model.predict(backend.asarray(x), batch_size=8)
    backend.assert_same_place(out)
    assert tuple(out.shape) == (12, 1)
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-6, atol=1e-6)
    from_host = model.predict(x, batch_size=8)  # NumPy in, NumPy out, whatever the backend
    assert isinstance(from_host, np.ndarray)
    np.testing.assert_allclose(from_host, expected, rtol=1e-6, atol=1e-6)
    assert isinstance(model.predict(x.tolist(), batch_size=8), np.ndarray)


def test_train_step_and_test_step(backend: Any) -> None:
    x_host, y_host = regression_data(8)
    x, y = backend.asarray(x_host), backend.asarray(y_host)
    model = regressor(optimizer="sgd")
    before = host_state(model)
    expected = float(model.loss(y, model(x)))
    tested = model.test_step(x, y)
    assert_0d_on_device(backend, tested)
    assert float(tested) == pytest.approx(expected, rel=1e-6)
    assert_same_state(before, model)
    loss = model.train_step(x, y)
    assert_0d_on_device(backend, loss)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert model.optimizer.iterations == 1
    assert not np.array_equal(host_state(model)["0.weight"], before["0.weight"])


# -- reproducibility and resume ----------------------------------------------------------------


def test_seeded_fits_repeat(backend: Any) -> None:
    x, y = regression_data(32)

    def run(seed: int) -> dict[str, list[float]]:
        pnn.seed(0)
        model = regressor(dropout=0.25)
        return model.fit(x, y, epochs=3, batch_size=8, seed=seed, verbose=0).history

    first, again, other = run(5), run(5), run(6)
    assert first == again
    assert first["loss"] != other["loss"]
    pnn.seed(0)
    in_order = regressor().fit(x, y, epochs=2, batch_size=8, shuffle=False, seed=1, verbose=0)
    pnn.seed(0)
    unseeded = regressor().fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert in_order.history == unseeded.history  # no shuffling: the seed has nothing to do
    # same weights, same seed: the same run again (batch order AND dropout masks are reseeded)
    pnn.seed(0)
    model = regressor(dropout=0.25)
    start = host_state(model)  # a copy: the in-place optimizer updates the model's arrays
    one = model.fit(x, y, epochs=2, batch_size=8, seed=9, verbose=0).history
    model.load_state_dict({k: backend.asarray(v) for k, v in start.items()})
    model.compile(loss="mse", optimizer=pnn.optimizers.Adam(0.02), metrics=["mae"])
    assert model.fit(x, y, epochs=2, batch_size=8, seed=9, verbose=0).history == one


def test_resume_matches_a_straight_run(backend: Any) -> None:
    x, y = regression_data(24)
    pnn.seed(0)
    straight = regressor(dropout=0.2)
    full = straight.fit(x, y, epochs=4, batch_size=8, seed=2, verbose=0).history
    pnn.seed(0)
    first = regressor(dropout=0.2)
    first.fit(x, y, epochs=2, batch_size=8, seed=2, verbose=0)
    weights, opt_state = first.state_dict(), first.optimizer.state_dict()
    rng = json.loads(json.dumps(first.get_rng_state()))  # JSON-friendly
    pnn.seed(123)  # a different initialisation, all overwritten below
    resumed = regressor(dropout=0.2)
    resumed.load_state_dict(weights)
    resumed.optimizer.load_state_dict(opt_state, params=resumed.parameters())
    resumed.set_rng_state(rng)
    rest = resumed.fit(x, y, epochs=4, batch_size=8, initial_epoch=2, verbose=0).history
    assert rest["loss"] == full["loss"][2:]
    assert rest["mae"] == full["mae"][2:]


def test_rng_state_checks_entries(backend: Any) -> None:
    model = regressor(dropout=0.5)
    state = model.get_rng_state()
    assert list(state["layers"]) == ["1"]
    nested = pnn.Sequential([Dense(2, input_dim=2), pnn.Sequential([Dropout(0.1)])])
    assert list(nested.get_rng_state()["layers"]) == ["1.0"]
    bad = {"generator": state["generator"], "layers": {"2": state["layers"]["1"]}}
    before = model.generator.get_state()
    with pytest.raises(ValueError, match="'1'"):
        model.set_rng_state(bad)
    assert model.generator.get_state() == before


# -- data placement ----------------------------------------------------------------------------


def _count_moves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from portable_nn.data import arrays as data_arrays

    calls: list[int] = []
    original = data_arrays.asarray

    def counting(data: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(int(data.shape[0]) if hasattr(data, "shape") and data.ndim else 0)
        return original(data, *args, **kwargs)

    monkeypatch.setattr(data_arrays, "asarray", counting)
    return calls


def test_host_data_is_never_copied_whole_on_a_cpu_backend(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = regression_data(40)
    moves = _count_moves(monkeypatch)
    pnn.seed(0)
    regressor().fit(x, y, epochs=2, batch_size=8, seed=1, verbose=0)
    # x and y batch by batch: the dry run's first batch, then 5 batches x 2 epochs
    assert sorted(moves) == [8] * 22


def test_accelerator_takes_data_whole_when_it_fits_else_per_batch_one_ahead(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend that says it is no CPU (an accelerator) with 1 MB free: 40 samples go whole;
    with no room they move batch by batch, fetched one batch ahead; same losses."""
    from portable_nn.backend import Backend
    from portable_nn.data import arrays as data_arrays

    monkeypatch.setattr(Backend, "is_cpu", property(lambda self: False))
    monkeypatch.setattr(Backend, "free_memory", lambda self: 1 << 20)
    x, y = regression_data(40)
    moves = _count_moves(monkeypatch)
    pnn.seed(0)
    whole = regressor().fit(x, y, epochs=2, batch_size=8, seed=1, verbose=0).history
    assert sorted(moves) == [40, 40, 40, 40]  # x and y once, one index array per epoch
    moves.clear()
    monkeypatch.setattr(data_arrays, "DEVICE_FRACTION", 0.0)  # "too big": batch by batch
    pnn.seed(0)
    batched = regressor().fit(x, y, epochs=2, batch_size=8, seed=1, verbose=0).history
    # the dry run (its first batch and the one fetched ahead), then 5 batches x 2 epochs
    assert sorted(moves) == [8] * 24
    for key in whole:
        np.testing.assert_allclose(batched[key], whole[key], rtol=1e-6)


def test_one_ahead_makes_the_next_item_before_yielding() -> None:
    from portable_nn.data import one_ahead

    made: list[int] = []

    def items():
        for i in range(3):
            made.append(i)
            yield i

    seen = []
    for item in one_ahead(items()):
        seen.append((item, list(made)))
    assert seen == [(0, [0, 1]), (1, [0, 1, 2]), (2, [0, 1, 2])]
    assert list(one_ahead([])) == []


# -- bad input ---------------------------------------------------------------------------------


def _bad_fit_cases() -> dict[str, tuple[Any, str]]:
    x, labels = blobs(16)
    nan_x = x.copy()
    nan_x[5, 1] = np.nan
    out_of_range, negative = labels.copy(), labels.copy()
    out_of_range[7], negative[3] = 3, -1
    return {
        "length": (lambda b: dict(x=b.asarray(x), y=b.asarray(labels[:-1])), "samples"),
        "features": (
            lambda b: dict(x=b.asarray(np.ones((16, 3), "float32")), y=b.asarray(labels)),
            r"\(None, 2\)",
        ),  # fmt: skip
        "label_high": (lambda b: dict(x=b.asarray(x), y=b.asarray(out_of_range)), "label 3"),
        "label_negative": (lambda b: dict(x=b.asarray(x), y=b.asarray(negative)), "label -1"),
        "nan_x": (lambda b: dict(x=b.asarray(nan_x), y=b.asarray(labels)), "NaN"),
        "val_label": (
            lambda b: dict(x=x, y=labels, validation_data=(x, out_of_range)),
            "validation y",
        ),
        "val_length": (lambda b: dict(x=x, y=labels, validation_data=(x, labels[:3])), "samples"),
        "val_tuple": (
            lambda b: dict(x=x, y=labels, validation_data=(x, labels, labels, labels)),
            "validation_data",
        ),  # fmt: skip
        "split": (lambda b: dict(x=x, y=labels, validation_split=0.95), "validation_split"),
        "batch_size": (lambda b: dict(x=x, y=labels, batch_size=0), "batch_size"),
    }


@pytest.mark.parametrize("case", list(_bad_fit_cases()))
def test_bad_input_raises_before_any_change(backend: Any, case: str) -> None:
    make_args, message = _bad_fit_cases()[case]
    model = pnn.Sequential([Dense(4, input_dim=2), BatchNormalization(), Dense(3)])
    model.compile(loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    before, rng = host_state(model), model.get_rng_state()
    with pytest.raises(ValueError, match=message):
        model.fit(**{"batch_size": 8, **make_args(backend)}, epochs=2, verbose=0)
    assert_same_state(before, model)
    assert model.optimizer.iterations == 0 and model.epoch == 0
    assert model.get_rng_state() == rng


def test_bad_dtypes_and_targets(backend: Any) -> None:
    x, labels = blobs(16)
    model = classifier()
    before = host_state(model)
    with pytest.raises(TypeError, match="floating"):
        model.fit(backend.asarray(x.astype("int64")), backend.asarray(labels), verbose=0)
    with pytest.raises(TypeError, match="integer class labels"):
        model.fit(
            backend.asarray(x), backend.asarray(labels.astype("float32")), batch_size=8, verbose=0
        )
    regression = regressor()
    with pytest.raises(ValueError, match="NaN or infinite"):
        regression.fit(x, np.full((16, 1), np.inf, "float32"), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="shape"):
        regression.fit(x, np.zeros((16, 2), "float32"), batch_size=8, verbose=0)
    assert_same_state(before, model)
    assert regression.optimizer.iterations == 0


def test_bad_callbacks_change_nothing(backend: Any) -> None:
    x, y = regression_data(16)
    model = regressor(dropout=0.5)
    before, rng = host_state(model), model.get_rng_state()
    with pytest.raises(TypeError, match="Callback"):
        model.fit(x, y, batch_size=8, seed=3, callbacks=[lambda logs: None], verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        model.fit(x, y, batch_size=8, seed=3, verbose=7)
    assert_same_state(before, model)
    assert model.get_rng_state() == rng and model.optimizer.iterations == 0


def test_compile_required_and_checked(backend: Any) -> None:
    x, y = regression_data(8)
    model = pnn.Sequential([Dense(1, input_dim=2)])
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.evaluate(x, y),
                 lambda: model.train_step(backend.asarray(x), backend.asarray(y))):  # fmt: skip
        with pytest.raises(RuntimeError, match="compile"):
            call()
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile(loss="nope")
    with pytest.raises(ValueError, match="unique"):
        model.compile(loss="mse", metrics=["mae", "mae"])
    assert model.loss is None
    model.compile(loss="mse", optimizer="sgd")
    assert isinstance(model.optimizer, pnn.optimizers.SGD) and model.compiled_metrics == []


# -- host synchronisation ----------------------------------------------------------------------

_SYNC_METHODS = ("__float__", "__int__", "__bool__", "__index__", "item", "tolist", "numpy",
                 "__array__")  # fmt: skip


class ReadCounter:
    """Counts every way an array's value can reach Python (float, bool, item, tolist, NumPy
    conversion ...) for one library's array type; nested calls count once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, array_type: type) -> None:
        self.n, self._depth = 0, 0
        for name in _SYNC_METHODS:
            original = getattr(array_type, name, None)
            if original is not None:
                monkeypatch.setattr(array_type, name, self._wrap(original))

    def _wrap(self, original: Any) -> Any:
        def counted(array: Any, *args: Any, **kwargs: Any) -> Any:
            self.n += self._depth == 0
            self._depth += 1
            try:
                return original(array, *args, **kwargs)
            finally:
                self._depth -= 1

        return counted


def _array_type(name: str) -> type:
    if name == "torch":
        return pytest.importorskip("torch").Tensor
    return type(pytest.importorskip("jax.numpy").zeros(1))


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_fit_reads_one_value_per_epoch(monkeypatch: pytest.MonkeyPatch, library: str) -> None:
    """BatchNorm, Dropout, a metric and validation data in ``fit``: the only device-to-host
    reads are the once-per-fit data check and one per epoch (its logs, training and validation
    together), whatever the number of batches (69 per epoch here)."""
    counter = ReadCounter(monkeypatch, _array_type(library))
    x, labels = blobs(240)
    with pnn.use_backend(library):
        pnn.seed(0)
        model = pnn.Sequential(
            [Dense(16, input_dim=2), BatchNormalization(), Dropout(0.2), Dense(3)]
        )
        loss = pnn.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(loss=loss, optimizer="adam", metrics=["accuracy"])
        xt, yt = pnn.asarray(x), pnn.asarray(labels)
        counter.n = 0
        model.fit(xt, yt, epochs=3, batch_size=8, verbose=0, validation_split=0.25)
        fit_reads = counter.n
        counter.n = 0
        model.evaluate(xt, yt, batch_size=8)
        evaluate_reads = counter.n
        bar = pnn.callbacks.ProgressBar(1, file=io.StringIO(), refresh_interval=0.0)
        counter.n = 0  # a redraw after every batch: one read per redraw, all values at once
        model.fit(xt, yt, epochs=3, batch_size=8, verbose=0, validation_split=0.25, callbacks=[bar])
        bar_reads = counter.n
    assert fit_reads <= 1 + 3, fit_reads
    assert evaluate_reads <= 2, evaluate_reads
    assert bar_reads <= 1 + 3 + 3 * 23, bar_reads  # 23 training batches an epoch


def test_ignore_class_labels_pass_the_data_check(backend) -> None:
    """A sparse loss's ``ignore_class`` (-1 here) passes fit's label check and those samples
    count for nothing: one full-batch SGD step equals the step on the other samples alone (the
    mean is over the kept samples, as Keras); without ignore_class -1 is refused."""
    rng = np.random.default_rng(4)
    x, labels = rng.standard_normal((12, 3)), rng.integers(0, 3, 12)
    padded = labels.copy()
    padded[::3] = -1
    loss = pnn.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    runs = []
    for xs, ys in ((x, padded), (x[padded != -1], labels[padded != -1])):
        pnn.seed(0)
        model = pnn.Sequential([Dense(3, seed=0)])
        model.compile(loss=loss, optimizer=pnn.optimizers.SGD(0.1))
        model.fit(xs, ys, epochs=1, batch_size=12, verbose=0, shuffle=False)
        runs.append(np.asarray(pnn.to_numpy(model.parameters()["0.weight"])))
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5, atol=1e-7)
    plain = pnn.Sequential([Dense(3)])
    plain.compile(loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="sgd")
    with pytest.raises(ValueError, match="class label -1"):
        plain.fit(x, padded, epochs=1, verbose=0)
