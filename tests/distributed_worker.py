"""One process of the data-parallel tests (tests/test_distributed.py starts it under mpiexec or
torchrun): ``python distributed_worker.py SCENARIO BACKEND OUT_DIR``.

Scenarios: ``train`` (3 epochs, every rank saves its final state and logs), ``checkpoint``
(2 epochs, then ``model.save``: rank 0 writes), ``raise`` / ``kill`` (rank 1 fails in epoch 2),
``mismatch`` (rank 1 builds another model), ``tiny`` (batches of one sample, no BatchNorm:
rank 1 holds no rows of any batch), ``sum`` / ``weighted`` / ``ignore`` (losses whose
reduction needs the global batch: ``reduction="sum"``, ``"mean_with_sample_weight"`` with
sample weights, ``ignore_class``), ``stop`` (plain BatchNormalization; rank 1 alone asks to
stop during a batch of epoch 2; a CSVLogger; rank 0 builds an extra model first, so layer
names differ), ``local`` (rank 0 alone runs a plain fit of a SyncBatchNormalization model).
:func:`job` describes each, for the test's single-process run too.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np

import portable_nn as pnn
from portable_nn import layers as L

N_SAMPLES, FEATURES, CLASSES, BATCH, SEED = 203, 10, 3, 32, 5  # 203: a partial last batch
TINY = 30  # samples of the "tiny" scenario


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N_SAMPLES, FEATURES)), rng.integers(0, CLASSES, size=N_SAMPLES)


def build(units: int = 16, norm: Any = L.SyncBatchNormalization, loss: Any = None) -> Any:
    """Dense (no bias before the norm) -> norm -> ReLU -> Dropout -> Dense (L2), Adam."""
    model = pnn.Sequential(
        [
            L.Dense(units, input_dim=FEATURES, use_bias=False, seed=1),
            *([norm()] if norm else []),
            L.Activation("relu"),
            L.Dropout(0.3, seed=2),
            L.Dense(CLASSES, seed=3, kernel_regularizer="l2"),
        ]
    )
    model.compile(
        loss=loss or pnn.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=pnn.optimizers.Adam(0.01),
        metrics=["accuracy"],
    )
    return model


LOSSES = {
    "sum": dict(reduction="sum"),
    "weighted": dict(reduction="mean_with_sample_weight"),
    "ignore": dict(ignore_class=0),
}


def job(scenario: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``(x, y, model, fit arguments)`` of a scenario (the same on every process)."""
    x, y = data()
    kwargs: dict[str, Any] = dict(epochs=3, batch_size=BATCH, seed=SEED, validation_split=0.2)
    norm, loss = L.SyncBatchNormalization, None
    if scenario == "tiny":
        x, y, norm = x[:TINY], y[:TINY], None
        kwargs["batch_size"] = 1
    if scenario in LOSSES:
        loss = pnn.losses.SparseCategoricalCrossentropy(from_logits=True, **LOSSES[scenario])
        kwargs["sample_weight"] = np.linspace(0.2, 2.0, len(y))
    if scenario == "stop":  # each process's batch statistics: shards of 2 rows or more
        norm, kwargs["batch_size"] = L.BatchNormalization, 30
    kwargs["epochs"] = 2 if scenario == "checkpoint" else kwargs["epochs"]
    return x, y, build(norm=norm, loss=loss), kwargs


class StopInEpoch2(pnn.callbacks.Callback):
    """Rank 1 alone sets ``stop_training`` after the 2nd batch of epoch 2."""

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ANN001
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):  # noqa: ANN001
        if self.epoch == 1 and batch == 1 and pnn.distributed.rank() == 1:
            self.model.stop_training = True


class FailInEpoch2(pnn.callbacks.Callback):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ANN001
        if epoch == 1 and pnn.distributed.rank() == 1:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("rank 1 fails on purpose")


def main() -> None:
    scenario, backend, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    pnn.set_backend(backend, dtype="float64")
    pnn.distributed.init()
    rank = pnn.distributed.rank()
    if scenario == "local":  # no distributed fit: SyncBatchNormalization stays local
        if rank == 0:
            x, y, model, kwargs = job("train")
            model.fit(x, y, verbose=0, **kwargs)
            np.savez(
                out / "rank0.npz", **{k: pnn.to_numpy(v) for k, v in model.state_dict().items()}
            )
        return
    if scenario == "stop" and rank == 0:
        build()  # layer names count up on rank 0 only
    x, y, model, kwargs = job(scenario)
    if scenario == "mismatch" and rank == 1:
        model = build(17)
    callbacks = [FailInEpoch2(scenario)] if scenario in ("raise", "kill") else []
    if scenario == "stop":
        callbacks = [StopInEpoch2(), pnn.callbacks.CSVLogger(out / "log.csv")]
    history = model.fit(x, y, distributed=True, verbose=0, callbacks=callbacks, **kwargs)
    if scenario == "checkpoint":
        model.save(out / "model.safetensors")
        return
    state = {k: pnn.to_numpy(v) for k, v in model.state_dict().items()}
    logs = {f"{k}{i}": v for k, values in history.history.items() for i, v in enumerate(values)}
    np.savez(out / f"rank{rank}.npz", **state, **logs)
    print(f"rank {rank} of {pnn.distributed.world_size()} on {pnn.distributed.engine().name}")


if __name__ == "__main__":
    main()
