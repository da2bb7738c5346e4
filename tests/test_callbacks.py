"""Callbacks driven by hand with a fake model, plus a few runs through the real ``fit``."""

from __future__ import annotations

import csv
import io
import math
import re
from typing import Any

import array_api_compat
import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import callbacks as cbs
from portable_nn.callbacks import progress


# -- a fake model and a driver ------------------------------------------------------------------
class FakeOptimizer:
    def __init__(self, learning_rate: Any = 1.0) -> None:
        self.learning_rate = learning_rate


class FakeModel:
    """What callbacks may use: stop_training, optimizer, state_dict/load_state_dict, save*."""

    def __init__(self, backend: Any = None, learning_rate: Any = 1.0) -> None:
        make = backend.asarray if backend is not None else np.asarray
        self.weights = {"0.weight": make(np.zeros((2, 3))), "1.running_mean": make(np.zeros(3))}
        self.stop_training = False
        self.optimizer = FakeOptimizer(learning_rate)
        self.saved: list[tuple[str, str]] = []
        self.history: Any = None

    def parameters(self) -> dict[str, Any]:
        return {"0.weight": self.weights["0.weight"]}

    def buffers(self) -> dict[str, Any]:
        return {"1.running_mean": self.weights["1.running_mean"]}

    def state_dict(self) -> dict[str, Any]:
        return dict(self.weights)

    def load_state_dict(self, values: dict[str, Any]) -> None:
        self.weights = dict(values)

    def train_epoch(self) -> None:
        """Add 1 to every array, in place where the array allows it (as optimizers do)."""
        for name, array in self.weights.items():
            if array_api_compat.is_writeable_array(array):
                array += 1.0
            else:
                self.weights[name] = array + 1.0

    def save(self, path: str) -> None:
        self.saved.append(("model", path))

    def save_weights(self, path: str) -> None:
        self.saved.append(("weights", path))


def drive(callbacks: list[Any], model: FakeModel, epoch_logs: list[dict], steps: int = 2) -> int:
    """Run the hooks as fit does; returns the number of epochs run."""
    hooks = cbs.CallbackList(callbacks, model=model, params={"epochs": len(epoch_logs)})
    hooks.on_train_begin(None)
    ran = 0
    for epoch, logs in enumerate(epoch_logs):
        hooks.on_epoch_begin(epoch, None)
        for batch in range(steps):
            hooks.on_train_batch_begin(batch, None)
            hooks.on_train_batch_end(batch, {"loss": logs.get("loss", 0.0)})
        model.train_epoch()
        ran += 1
        hooks.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    hooks.on_train_end(None)
    return ran


def val_losses(*values: float) -> list[dict]:
    return [{"loss": 1.0, "val_loss": v} for v in values]


def weight_value(model: FakeModel) -> float:
    return float(pnn.to_numpy(model.weights["0.weight"])[0, 0])


# -- EarlyStopping ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "patience", "stops_after"),
    [
        ((1.0, 0.9, 0.95, 0.96, 0.97, 0.5), 2, 4),  # best at epoch 1; stop at epoch 3
        ((1.0, 0.9, 0.95, 0.5), 0, 3),  # patience 0: first non-improving epoch
        ((1.0, 0.9, 0.8, 0.7), 1, 4),  # always improving: never stops
        ((1.0, 1.1, 0.9, 1.0, 1.0, 1.0), 2, 5),  # epoch 2 resets the count
    ],
)
def test_early_stopping_stops_at_the_right_epoch(values, patience, stops_after) -> None:
    model, stopper = FakeModel(), cbs.EarlyStopping(patience=patience)
    assert drive([stopper], model, val_losses(*values)) == stops_after
    assert stopper.stopped_epoch == (stops_after - 1 if stops_after < len(values) else 0)


def test_early_stopping_restores_real_copies_of_the_best_weights(backend) -> None:
    model = FakeModel(backend)
    stopper = cbs.EarlyStopping(patience=2, restore_best_weights=True)
    assert drive([stopper], model, val_losses(1.0, 0.9, 0.95, 0.96, 0.97)) == 4
    assert stopper.best_epoch == 1 and stopper.best == 0.9
    # weights were updated (in place where allowed) after the copy: the copy kept epoch 1's
    for name, shape in (("0.weight", (2, 3)), ("1.running_mean", (3,))):
        np.testing.assert_array_equal(backend.to_numpy(model.weights[name]), np.full(shape, 2.0))
        backend.assert_same_place(model.weights[name])


def test_early_stopping_restores_at_train_end_even_without_stopping() -> None:
    model = FakeModel()
    stopper = cbs.EarlyStopping(patience=5, restore_best_weights=True)
    assert drive([stopper], model, val_losses(1.0, 0.5, 0.7, 0.8)) == 4
    assert weight_value(model) == 2.0  # end of epoch 1 (Keras 3 restores at on_train_end)


def test_early_stopping_mode_min_delta_baseline_and_start() -> None:
    model = FakeModel()
    acc = [{"val_accuracy": v} for v in (0.5, 0.6, 0.6, 0.55)]
    assert drive([cbs.EarlyStopping("val_accuracy", patience=1)], model, acc) == 3  # auto: max
    small_gains = val_losses(1.0, 0.99, 0.98, 0.97)
    assert drive([cbs.EarlyStopping(min_delta=0.05, patience=1)], FakeModel(), small_gains) == 2
    never_beats_baseline = val_losses(1.0, 0.9, 0.8, 0.7, 0.6)
    stopper = cbs.EarlyStopping(patience=2, baseline=0.5)
    assert drive([stopper], FakeModel(), never_beats_baseline) == 2  # wait grows from epoch 0
    late = cbs.EarlyStopping(patience=0, start_from_epoch=2)
    assert drive([late], FakeModel(), val_losses(1.0, 2.0, 3.0, 2.0, 2.5)) == 5
    assert late.best == 2.0 and late.stopped_epoch == 4


def test_early_stopping_ignores_nan_and_warns_on_missing_monitor() -> None:
    stopper = cbs.EarlyStopping(patience=1, restore_best_weights=True)
    model = FakeModel()
    assert drive([stopper], model, val_losses(math.nan, 1.0, 0.9, 2.0, 3.0)) == 4
    assert stopper.best == 0.9 and weight_value(model) == 3.0
    with pytest.warns(RuntimeWarning, match="'val_loss'.*Available: loss"):
        assert drive([cbs.EarlyStopping()], FakeModel(), [{"loss": 1.0}] * 3) == 3


# -- ReduceLROnPlateau / LearningRateScheduler --------------------------------------------------
def test_reduce_lr_on_plateau_cooldown_and_min_lr() -> None:
    model = FakeModel(learning_rate=1.0)
    history = cbs.History()
    plateau = cbs.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=2, min_lr=0.2)
    drive([plateau, history], model, val_losses(*[1.0] * 14))
    # reductions after epochs 2, 5, 8 (patience 2, then 2 cooldown epochs), floored at 0.2
    expected = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2, 0.2]
    assert history.history["learning_rate"] == pytest.approx(expected)
    assert model.optimizer.learning_rate == pytest.approx(0.2)


def test_reduce_lr_on_plateau_improvements_reset_and_mode_max() -> None:
    model, history = FakeModel(learning_rate=0.1), cbs.History()
    values = [1.0, 0.5, 0.49995, 0.4, 0.4, 0.4]  # 0.49995 is within min_delta=1e-4
    drive([cbs.ReduceLROnPlateau(patience=1), history], model, val_losses(*values))
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.001])
    model, history = FakeModel(learning_rate=1.0), cbs.History()
    accs = [{"val_acc": v} for v in (0.5, 0.6, 0.6, 0.7)]
    drive([cbs.ReduceLROnPlateau("val_acc", patience=1), history], model, accs)
    assert history.history["learning_rate"] == pytest.approx([1.0, 1.0, 1.0, 0.1])


def test_learning_rate_scheduler_two_and_one_argument_schedules() -> None:
    model, history = FakeModel(learning_rate=0.8), cbs.History()
    halve_after_two = cbs.LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr / 2)
    drive([halve_after_two, history], model, val_losses(1, 1, 1, 1))
    assert history.history["learning_rate"] == pytest.approx([0.8, 0.8, 0.4, 0.2])
    model, history = FakeModel(), cbs.History()
    drive([cbs.LearningRateScheduler(lambda epoch: 0.1 * (epoch + 1)), history], model, [{}] * 3)
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize("bad", [math.nan, -0.1, "0.1", None])
def test_learning_rate_scheduler_rejects_bad_schedule_output(bad) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        drive([cbs.LearningRateScheduler(lambda epoch: bad)], FakeModel(), [{}])


def test_lr_callbacks_refuse_an_optimizer_schedule_before_training() -> None:
    for callback in (cbs.LearningRateScheduler(lambda e, lr: lr), cbs.ReduceLROnPlateau()):
        model = FakeModel(learning_rate=lambda step: 0.1)
        with pytest.raises(TypeError, match="schedule"):
            drive([callback], model, [{"val_loss": 1.0}])


# -- ModelCheckpoint ----------------------------------------------------------------------------
def test_model_checkpoint_formats_names_and_saves_every_epoch(tmp_path) -> None:
    model = FakeModel()
    pattern = str(tmp_path / "ck" / "{epoch:02d}-{val_loss:.4f}.safetensors")
    drive([cbs.ModelCheckpoint(pattern, save_weights_only=True)], model, val_losses(0.5, 0.25))
    names = [(kind, path.replace(str(tmp_path), "")) for kind, path in model.saved]
    sep = re.escape(str(tmp_path / "x")[len(str(tmp_path)) : -1])
    assert [k for k, _ in names] == ["weights", "weights"]
    assert re.fullmatch(f"{sep}ck{sep}01-0.5000.safetensors", names[0][1])
    assert names[1][1].endswith("02-0.2500.safetensors")
    assert (tmp_path / "ck").is_dir()


def test_model_checkpoint_best_only_saves_on_improvement(tmp_path) -> None:
    model = FakeModel()
    checkpoint = cbs.ModelCheckpoint(str(tmp_path / "m{epoch}"), save_best_only=True)
    drive([checkpoint], model, val_losses(1.0, 0.8, 0.9, 0.8, 0.7))
    assert [p[-2:] for _, p in model.saved] == ["m1", "m2", "m5"]
    assert {kind for kind, _ in model.saved} == {"model"}
    model = FakeModel()
    maxed = cbs.ModelCheckpoint(str(tmp_path / "a{epoch}"), "val_acc", save_best_only=True)
    drive([maxed], model, [{"val_acc": v} for v in (0.5, 0.4, 0.6)])
    assert [p[-2:] for _, p in model.saved] == ["a1", "a3"]
    model = FakeModel()
    threshold = cbs.ModelCheckpoint(
        str(tmp_path / "t{epoch}"), save_best_only=True, initial_value_threshold=0.85
    )
    drive([threshold], model, val_losses(1.0, 0.8, 0.9))
    assert [p[-2:] for _, p in model.saved] == ["t2"]


def test_model_checkpoint_missing_format_key(tmp_path) -> None:
    checkpoint = cbs.ModelCheckpoint(str(tmp_path / "{val_acc:.2f}"))
    with pytest.raises(KeyError, match="'val_acc'.*available: epoch, loss, val_loss"):
        drive([checkpoint], FakeModel(), val_losses(1.0))


# -- CSVLogger / History / TerminateOnNaN / LambdaCallback --------------------------------------
def test_csv_logger_contents_and_append(tmp_path) -> None:
    path = tmp_path / "log.csv"
    logs = [{"loss": 0.5, "val_loss": 0.25, "accuracy": 0.75}, {"loss": 0.125, "accuracy": 1.0}]
    drive([cbs.CSVLogger(path)], FakeModel(), logs)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_loss"]
    assert [[float(v) if v != "NA" else v for v in r] for r in rows[1:]] == [
        [0, 0.75, 0.5, 0.25],
        [1, 1.0, 0.125, "NA"],
    ]
    drive([cbs.CSVLogger(path, append=True)], FakeModel(), logs[:1])
    assert len(list(csv.reader(path.open()))) == 4  # no second header
    drive([cbs.CSVLogger(path, separator=";")], FakeModel(), [{"loss": 1.5}])
    assert path.read_text().splitlines() == ["epoch;loss;val_loss", "0;1.5;NA"]


def test_history_records_epochs_and_sets_model_history() -> None:
    model, history = FakeModel(), cbs.History()
    drive([history], model, [{"loss": 1.0}, {"loss": 0.5, "val_loss": 0.7}])
    assert history.epoch == [0, 1] and model.history is history
    assert history.history == {"loss": [1.0, 0.5], "val_loss": [0.7]}


def test_terminate_on_nan_every_batch_and_every_n(backend) -> None:
    def batches(callback: Any, bad_batch: int) -> int:
        model = FakeModel()
        callback.set_model(model)
        running = 0.0
        for batch in range(10):
            running += math.nan if batch == bad_batch else 1.0  # a running mean stays NaN
            callback.on_train_batch_end(batch, {"loss": backend.asarray(np.asarray(running))})
            if model.stop_training:
                return batch
        return -1

    assert batches(cbs.TerminateOnNaN(check_every=1), 3) == 3
    assert batches(cbs.TerminateOnNaN(check_every=4), 1) == 3  # caught at the next check
    assert batches(cbs.TerminateOnNaN(check_every=1), 99) == -1
    assert batches(cbs.TerminateOnNaN(), 3) == -1  # default: no per-batch read
    assert not cbs.TerminateOnNaN().implements("on_train_batch_end")
    model = FakeModel()
    drive([cbs.TerminateOnNaN()], model, [{"loss": 1.0}, {"loss": math.inf}, {"loss": 1.0}])
    assert model.stop_training


def test_lambda_callback_and_keras2_batch_aliases() -> None:
    seen: list[Any] = []
    lam = cbs.LambdaCallback(
        on_train_begin=lambda logs: seen.append("begin"),
        on_epoch_end=lambda epoch, logs: seen.append(("epoch", epoch, logs["loss"])),
        on_batch_end=lambda batch, logs: seen.append(("batch", batch)),
    )
    assert lam.implements("on_train_batch_end") and not lam.implements("on_epoch_begin")

    class Old(cbs.Callback):
        def on_batch_end(self, batch: int, logs: Any = None) -> None:
            seen.append(("old", batch))

    drive([lam, Old()], FakeModel(), [{"loss": 0.5}], steps=2)
    assert seen == ["begin", ("batch", 0), ("old", 0), ("batch", 1), ("old", 1), ("epoch", 0, 0.5)]
    with pytest.raises(TypeError, match="unknown hook 'on_epch_end'"):
        cbs.LambdaCallback(on_epch_end=print)
    with pytest.raises(TypeError, match="on_epoch_end must be callable"):
        cbs.LambdaCallback(on_epoch_end=3)


def test_callback_list_order_shared_logs_and_defaults() -> None:
    order: list[str] = []

    class Adds(cbs.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            order.append("adds")
            logs["extra"] = 1.0

    hooks = cbs.CallbackList([Adds()], add_history=True, add_progbar=True, params={"verbose": 0})
    assert isinstance(hooks.history, cbs.History) and len(hooks) == 2  # verbose 0: no bar
    hooks.on_epoch_end(0, {"loss": 1.0})
    assert order == ["adds"] and hooks.history.history == {"loss": [1.0], "extra": [1.0]}
    mine = cbs.ProgressBar(2)
    hooks = cbs.CallbackList([mine], add_progbar=True, params={"verbose": 1})
    assert list(hooks) == [mine]
    with pytest.raises(TypeError, match=r"callbacks\[1\].*Received: 'oops'"):
        cbs.CallbackList([cbs.History(), "oops"])
    assert not cbs.CallbackList([cbs.History()]).implements("on_train_batch_end")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: cbs.EarlyStopping(patience=-1), "patience=-1"),
        (lambda: cbs.EarlyStopping(mode="maximum"), "mode='maximum'"),
        (lambda: cbs.EarlyStopping(start_from_epoch=1.5), "start_from_epoch=1.5"),
        (lambda: cbs.ReduceLROnPlateau(factor=1.0), "factor=1.0"),
        (lambda: cbs.ReduceLROnPlateau(factor=0), "factor=0"),
        (lambda: cbs.ReduceLROnPlateau(cooldown=-2), "cooldown=-2"),
        (lambda: cbs.ReduceLROnPlateau(min_lr=-1e-3), "min_lr=-0.001"),
        (lambda: cbs.ReduceLROnPlateau(min_delta=math.inf), "min_delta=inf"),
        (lambda: cbs.ModelCheckpoint(""), "filepath=''"),
        (lambda: cbs.CSVLogger("x.csv", separator=";;"), "separator=';;'"),
        (lambda: cbs.ProgressBar(verbose=3), "verbose=3"),
        (lambda: cbs.ProgressBar(refresh_interval=-1.0), "-1.0"),
        (lambda: cbs.TerminateOnNaN(check_every=0), "check_every=0"),
    ],
)
def test_constructor_arguments_are_validated(make, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_non_callable_schedule_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="schedule='x'"):
        cbs.LearningRateScheduler("x")


# -- ProgressBar --------------------------------------------------------------------------------
class CountingScalar:
    """Counts device-to-host transfers (calls of the backend's ``to_numpy``) while logs hold
    real 0-d arrays, as ``fit``'s per-batch logs do."""

    reads = 0


@pytest.fixture(autouse=True)
def count_transfers(monkeypatch: pytest.MonkeyPatch) -> None:
    from portable_nn.backend import arrays

    real = arrays.to_numpy

    def counted(array: Any) -> Any:
        CountingScalar.reads += 1
        return real(array)

    monkeypatch.setattr(arrays, "to_numpy", counted)


def scalar(value: float) -> Any:
    return np.asarray(value, dtype=np.float32)


def run_bar(bar: Any, epochs: int = 2, steps: int = 1000, samples: int | None = None) -> None:
    params = {"epochs": epochs, "steps": steps, "verbose": bar.verbose, "batch_size": 8}
    params["samples"] = samples if samples is not None else steps * 8
    hooks = cbs.CallbackList([bar], params=params)
    hooks.on_train_begin(None)
    for epoch in range(epochs):
        hooks.on_epoch_begin(epoch, None)
        for batch in range(steps):
            logs = {"loss": scalar(1.0 / (batch + 1)), "accuracy": scalar(0.5)}
            hooks.on_train_batch_end(batch, logs)
        hooks.on_epoch_end(epoch, {"loss": 0.1234, "accuracy": 0.95, "val_loss": 0.0005})
    hooks.on_train_end(None)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each clock read advances 1 ms: 1000 batches take one second."""
    ticks = iter(range(10**9))
    monkeypatch.setattr(progress, "_clock", lambda: next(ticks) * 1e-3)


def test_progress_bar_reads_device_values_only_when_it_redraws(fake_clock) -> None:
    CountingScalar.reads = 0
    run_bar(cbs.ProgressBar(1, file=io.StringIO(), refresh_interval=0.2))
    # one second per epoch, at most every 0.2 s: <= 5 redraws x 2 epochs, ONE transfer each
    assert 0 < CountingScalar.reads <= 10
    CountingScalar.reads = 0
    run_bar(cbs.ProgressBar(1, file=io.StringIO(), refresh_interval=0.0))  # redraw every batch
    assert CountingScalar.reads == 2 * 1000  # both values in one transfer per redraw
    for verbose in (0, 2):
        CountingScalar.reads = 0
        run_bar(cbs.ProgressBar(verbose, file=io.StringIO()))
        assert CountingScalar.reads == 0


def test_progress_bar_with_the_real_clock_reads_rarely() -> None:
    CountingScalar.reads = 0
    run_bar(cbs.ProgressBar(1, file=io.StringIO()), epochs=1, steps=1000)
    assert CountingScalar.reads <= 20  # 1000 quick batches: a few redraws, not 1000


def test_progress_bar_verbose_1_shows_bar_loss_and_samples_per_second(fake_clock) -> None:
    out = io.StringIO()
    run_bar(cbs.ProgressBar(1, file=out, refresh_interval=0.01), steps=50, samples=397)
    text = out.getvalue()
    assert "Epoch 1/2" in text and "Epoch 2/2" in text
    assert re.search(r"397/397 \[[^\]]*samples/s, loss: 0\.1234 - accuracy: 0\.9500", text)
    assert "val_loss: 5.0000e-04" in text  # small values in scientific notation, as Keras
    assert re.search(r"\d+/397 \[[^\]]*loss: 0\.\d{4} - accuracy: 0\.5000", text)  # mid-epoch
    assert text.count("\n") == 2  # one finished line per epoch


def test_progress_bar_verbose_2_one_line_per_epoch_and_verbose_0_silent() -> None:
    out = io.StringIO()
    run_bar(cbs.ProgressBar(2, file=out), epochs=3, steps=5)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    pattern = r"Epoch 3/3 - \d+\.\ds - loss: 0\.1234 - accuracy: 0\.9500 - val_loss: 5\.0000e-04"
    assert re.fullmatch(pattern, lines[2])
    silent = io.StringIO()
    run_bar(cbs.ProgressBar(0, file=silent), steps=5)
    assert silent.getvalue() == ""
    assert not cbs.ProgressBar(2).implements("on_train_batch_end")


def test_progress_bar_formats_device_arrays(backend) -> None:
    logs = {"loss": backend.asarray(np.asarray(0.25)), "accuracy": backend.asarray(np.asarray(1.0))}
    assert cbs.format_logs(logs) == "loss: 0.2500 - accuracy: 1.0000"
    assert cbs.format_logs({"outputs": backend.asarray(np.zeros(3)), "n": "x"}) == ""


def test_progress_bar_for_evaluate_outside_fit() -> None:
    out = io.StringIO()
    bar = cbs.ProgressBar(2, file=out)
    bar.set_params({"steps": 3, "verbose": 2})
    bar.on_test_begin(None)
    bar.on_test_end({"loss": 0.5})
    assert re.fullmatch(r"Evaluate - \d+\.\ds - loss: 0\.5000\n", out.getvalue())


# -- end to end through the real fit ------------------------------------------------------------
def _fitted_setup(seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)
    model = pnn.Sequential([pnn.layers.Dense(8, activation="relu"), pnn.layers.Dense(3)])
    model.compile(
        optimizer=pnn.optimizers.SGD(learning_rate=0.1),
        loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model, x, y


class Script(cbs.Callback):
    """Replaces ``val_loss`` with scripted values, keeps host snapshots of the weights, and
    records what the per-batch logs hold."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values, self.snapshots, self.batch_logs = values, [], []

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batch_logs.append(dict(logs))

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs["val_loss"] = self.values[epoch]
        state = self.model.state_dict()
        self.snapshots.append({k: pnn.to_numpy(v).copy() for k, v in state.items()})


def test_fit_early_stopping_restores_best_weights_and_batch_logs_stay_on_device(backend) -> None:
    model, x, y = _fitted_setup()
    script = Script([1.0, 0.5, 0.7, 0.8, 0.9, 0.1])
    stopper = cbs.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=6, batch_size=8, callbacks=[script, stopper], verbose=0)
    assert history.epoch == [0, 1, 2, 3] and stopper.stopped_epoch == 3
    assert history.history["val_loss"] == [1.0, 0.5, 0.7, 0.8]
    assert model.history is history
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(backend.to_numpy(value), script.snapshots[1][name])
        backend.assert_same_place(value)
    assert len(script.batch_logs) == 4 * 5
    for key in ("loss", "accuracy"):  # per-batch logs: device 0-d arrays, not floats
        value = script.batch_logs[-1][key]
        assert not isinstance(value, float) and value.ndim == 0
        if not backend.readonly:  # NumPy reductions may give NumPy scalars there
            backend.assert_same_place(value)
    assert all(isinstance(v, float) for v in history.history["loss"])


def test_fit_progress_output_verbose_1_and_2(capsys) -> None:
    with pnn.use_backend("numpy"):
        model, x, y = _fitted_setup()
        model.fit(x, y, epochs=2, batch_size=8, verbose=1, validation_split=0.25)
        out = capsys.readouterr()
        text = out.out + out.err
        assert "Epoch 1/2" in text and "Epoch 2/2" in text and "30/30" in text
        assert re.search(r"samples/s, loss: \d\.\d{4} - accuracy: \d\.\d{4} - val_loss", text)
        model.fit(x, y, epochs=2, batch_size=8, verbose=2)
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2
        assert re.fullmatch(
            r"Epoch 2/2 - \d+\.\ds - loss: \d\.\d{4} - accuracy: \d\.\d{4}", lines[1]
        )


def test_fit_lr_plateau_csv_checkpoint_and_nan(tmp_path) -> None:
    with pnn.use_backend("numpy"):
        model, x, y = _fitted_setup()
        callbacks = [
            Script([1.0, 1.0, 1.0]),
            cbs.ReduceLROnPlateau(factor=0.5, patience=0),
            cbs.CSVLogger(tmp_path / "log.csv"),
            cbs.ModelCheckpoint(str(tmp_path / "w{epoch}.safetensors"), save_weights_only=True),
        ]
        history = model.fit(x, y, epochs=3, batch_size=8, callbacks=callbacks, verbose=0)
        assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05])
        assert model.optimizer.learning_rate == pytest.approx(0.025)
        rows = list(csv.DictReader((tmp_path / "log.csv").open()))
        assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.1, 0.1, 0.05])
        assert [float(r["loss"]) for r in rows] == pytest.approx(history.history["loss"])
        fresh, _, _ = _fitted_setup()
        fresh.build((None, 4))
        fresh.load_weights(tmp_path / "w3.safetensors")
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(pnn.to_numpy(fresh.state_dict()[name]), value)

        def poison(batch: int, logs: Any) -> None:
            if batch == 1:
                params = model.parameters()
                model.set_parameters({k: v * math.nan for k, v in params.items()})

        nan_stop = cbs.TerminateOnNaN(check_every=1)
        history = model.fit(
            x,
            y,
            epochs=5,
            batch_size=8,
            callbacks=[cbs.LambdaCallback(on_train_batch_end=poison), nan_stop],
            verbose=0,
        )
        assert history.epoch == [0] and math.isnan(history.history["loss"][0])
        assert nan_stop.stopped_batch == 2 and nan_stop.stopped_epoch == 0
        at_epoch_end = cbs.TerminateOnNaN()  # default: checks the epoch's loss only
        history = model.fit(x, y, epochs=5, batch_size=8, callbacks=[at_epoch_end], verbose=0)
        assert history.epoch == [0] and at_epoch_end.stopped_batch is None
        assert at_epoch_end.stopped_epoch == 0


def test_swap_ema_weights_validates_with_the_average(backend) -> None:
    """``SwapEMAWeights``: validation inside fit sees the optimizer's moving average, training
    goes on with the raw weights (same training losses and final weights as without it), and
    ``evaluate``/``predict`` with the callback use the average too."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 3)), rng.standard_normal((32, 1))
    runs = []
    for callbacks in ([], [pnn.callbacks.SwapEMAWeights()]):
        pnn.seed(0)
        model = pnn.Sequential([pnn.layers.Dense(4, activation="tanh"), pnn.layers.Dense(1)])
        model.compile(loss="mse", optimizer=pnn.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5))
        history = model.fit(
            x, y, epochs=2, batch_size=8, shuffle=False, verbose=0,
            validation_data=(x, y), callbacks=callbacks,
        )  # fmt: skip
        runs.append((model, history.history))
    (plain, h0), (swapped, h1) = runs
    np.testing.assert_allclose(h1["loss"], h0["loss"], rtol=1e-6)
    assert not np.allclose(h1["val_loss"], h0["val_loss"], rtol=1e-4)
    for name, value in plain.parameters().items():  # both end on the average (finalize)
        np.testing.assert_allclose(
            backend.to_numpy(swapped.parameters()[name]), backend.to_numpy(value), rtol=1e-6
        )
    swapped.train_step(backend.asarray(x, "float32"), backend.asarray(y, "float32"))
    raw = {k: np.array(backend.to_numpy(v)) for k, v in swapped.parameters().items()}
    callback = pnn.callbacks.SwapEMAWeights()
    with_average = swapped.evaluate(x, y, callbacks=[callback])["loss"]
    assert not callback.swapped
    for name, value in swapped.parameters().items():  # swapped back afterwards
        np.testing.assert_array_equal(np.array(backend.to_numpy(value)), raw[name])
    assert with_average != swapped.evaluate(x, y)["loss"]
