"""One process of the data-parallel tests (tests/test_distributed.py starts it under mpiexec or
torchrun): ``python distributed_worker.py SCENARIO BACKEND OUT_DIR``.

Scenarios: ``train`` (3 epochs, every rank saves its final state), ``checkpoint`` (2 epochs,
then ``model.save``: rank 0 writes), ``raise`` / ``kill`` (rank 1 fails in epoch 2),
``mismatch`` (rank 1 builds another model), ``tiny`` (``train`` with batches of one sample and
no BatchNorm: rank 1 holds no rows of any batch).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np

import portable_nn as pnn
from portable_nn import layers as L

N_SAMPLES, FEATURES, CLASSES, BATCH, SEED = 203, 10, 3, 32, 5  # 203: a partial last batch
TINY = 30  # samples of the "tiny" scenario


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N_SAMPLES, FEATURES)), rng.integers(0, CLASSES, size=N_SAMPLES)


def build(units: int = 16, norm: bool = True) -> pnn.Sequential:
    """Dense (no bias before the norm) -> SyncBatchNorm -> ReLU -> Dropout -> Dense (L2), Adam."""
    model = pnn.Sequential(
        [
            L.Dense(units, input_dim=FEATURES, use_bias=False, seed=1),
            *([L.SyncBatchNormalization()] if norm else []),
            L.Activation("relu"),
            L.Dropout(0.3, seed=2),
            L.Dense(CLASSES, seed=3, kernel_regularizer="l2"),
        ]
    )
    model.compile(
        loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=pnn.optimizers.Adam(0.01),
        metrics=["accuracy"],
    )
    return model


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
    x, y = data()
    batch = BATCH
    if scenario == "tiny":
        x, y, batch = x[:TINY], y[:TINY], 1
    model = build(17 if scenario == "mismatch" and rank == 1 else 16, norm=scenario != "tiny")
    epochs = 2 if scenario == "checkpoint" else 3
    callbacks = [FailInEpoch2(scenario)] if scenario in ("raise", "kill") else []
    history = model.fit(
        x, y, epochs=epochs, batch_size=batch, seed=SEED, distributed=True, verbose=0,
        validation_split=0.2, callbacks=callbacks,
    )  # fmt: skip
    if scenario == "checkpoint":
        model.save(out / "model.safetensors")
        return
    state = {k: pnn.to_numpy(v) for k, v in model.state_dict().items()}
    logs = {f"{k}{i}": v for k, values in history.history.items() for i, v in enumerate(values)}
    np.savez(out / f"rank{rank}.npz", **state, **logs)
    print(f"rank {rank} of {pnn.distributed.world_size()} on {pnn.distributed.engine().name}")


if __name__ == "__main__":
    main()
