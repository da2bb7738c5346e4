"""The adding problem: LSTM and GRU carry two numbers across 50 steps, a SimpleRNN does not.

The task (Hochreiter & Schmidhuber, 1997, experiment 4; here in the form of Le, Jaitly &
Hinton, 2015): each input is a sequence of T = 50 pairs ``(value, marker)``, the values drawn
from U(0, 1), the markers all 0 but two 1s, one in the first half of the sequence and one in
the second. The target is the sum of the two marked values, in [0, 2]. Predicting the mean, 1,
scores a mean squared error of Var(u1 + u2) = 1/6 = 0.167; a model only gets below that by
finding the marked steps and holding their values until the end, up to 49 steps later.

Models: ``LSTM(32)``, ``GRU(32)`` and ``SimpleRNN(32)`` (tanh) on the sequence, the last hidden
state into ``Dense(1)``; mean squared error, Adam (step size 1e-2), batches of 64, 15 epochs of
6,400 fresh training sequences (1,500 steps), a test set of 1,000 other sequences (drawn with
the same generator). Target: LSTM and GRU reach test MSE < 0.01; the SimpleRNN stays near the
constant predictor (its gradient through 25 tanh steps and more vanishes). The learning curves
of the three are saved as ``sequence_lstm.png``.
Run: ``python examples/sequence_lstm.py --backend numpy`` (``--models lstm,gru`` for a subset).
"""

from __future__ import annotations

import time
from typing import Any

import _common
import numpy as np

import portable_nn as pnn

L = pnn.layers
LAYERS = {"lstm": L.LSTM, "gru": L.GRU, "simplernn": L.SimpleRNN}
NAMES = {"lstm": "LSTM", "gru": "GRU", "simplernn": "SimpleRNN"}
TARGET_MSE = 0.01


def make_adding(n: int, length: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (n, length, 2) float32 ``(value, marker)`` pairs and ``y`` (n, 1) float32: the sum
    of the two marked values (one marker in each half of the sequence)."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (n, length))
    half, rows = length // 2, np.arange(n)
    first, second = rng.integers(0, half, n), rng.integers(half, length, n)
    markers = np.zeros((n, length))
    markers[rows, first] = markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values[rows, first] + values[rows, second])[:, None].astype(np.float32)
    return x, y


def build(kind: str, units: int = 32) -> pnn.Sequential:
    """``kind`` (lstm, gru, simplernn) with ``units`` units -> Dense(1)."""
    return pnn.Sequential([LAYERS[kind](units), L.Dense(1)], name=f"adding_{kind}")


def train(
    kind: str, data: tuple, epochs: int, units: int, batch_size: int, lr: float, seed: int
) -> dict[str, Any]:
    """One model on ``data``: its history (``val_loss`` = test MSE), test MSE and seconds."""
    (x, y), (x_test, y_test) = data
    pnn.seed(seed)
    model = build(kind, units)
    model.compile(loss="mse", optimizer=pnn.optimizers.Adam(lr))
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(x_test, y_test),
        verbose=0,
        seed=seed,
    )  # the test set only draws the curves: the number of epochs is fixed beforehand
    seconds = time.perf_counter() - start
    mse = model.evaluate(x_test, y_test, batch_size=batch_size)["loss"]  # the compiled shape
    return {"history": history.history, "mse": mse, "seconds": seconds}


def draw_curves(results: dict[str, dict], constant: float, length: int, path: str) -> None:
    """Training (dashed) and test (solid) MSE per epoch of every model, log scale."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2))
    ax = figure.add_subplot(1, 1, 1)
    for (kind, result), color in zip(results.items(), ("C0", "C1", "C3")):
        history = result["history"]
        epochs = np.arange(1, len(history["loss"]) + 1)
        label = f"{NAMES[kind]} (test {result['mse']:.4f})"
        ax.plot(epochs, history["val_loss"], color=color, label=label)
        ax.plot(epochs, history["loss"], color=color, linestyle="--", alpha=0.6)
    ax.axhline(constant, color="grey", linestyle=":", label=f"constant 1.0 ({constant:.3f})")
    ax.axhline(TARGET_MSE, color="black", linewidth=0.8, label=f"target {TARGET_MSE}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error (dashed: training)")
    ax.set_title(f"adding problem, T = {length}")
    ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def run(
    backend: str | None = None,
    device: Any = None,
    epochs: int = 15,
    models: tuple[str, ...] = ("lstm", "gru", "simplernn"),
    length: int = 50,
    units: int = 32,
    n_train: int = 6400,
    n_test: int = 1000,
    batch_size: int = 64,
    lr: float = 1e-2,
    seed: int = 0,
    out: str | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train each model of ``models`` on the same data; returns test MSEs, seconds, curves."""
    x, y = make_adding(n_train + n_test, length, seed)
    data = (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])
    y_test = data[1][1]
    constant = float(np.mean((y_test - 1.0) ** 2))  # the constant predictor 1 = E[u1 + u2]
    results = {}
    with _common.backend_scope(backend, device, threads=threads) as active:
        print(
            f"adding problem, T = {length}: {n_train} training / {n_test} test sequences on "
            f"{_common.describe(active)}; constant predictor: test MSE {constant:.4f}"
        )
        for kind in models:
            result = train(kind, data, epochs, units, batch_size, lr, seed)
            results[kind] = result
            met = "met" if result["mse"] < TARGET_MSE else "MISSED"
            note = "" if kind == "simplernn" else f", target < {TARGET_MSE} {met}"
            print(
                f"  {NAMES[kind]}({units}): test MSE {result['mse']:.4f}{note} "
                f"({epochs} epochs, {result['seconds']:.1f} s)"
            )
    figure = _common.save_figure(
        draw_curves, _common.figure_path(out, "sequence_lstm.png"), results, constant, length
    )
    return {
        "backend": active.name,
        "constant_mse": constant,
        "mse": {kind: r["mse"] for kind, r in results.items()},
        "seconds": {kind: r["seconds"] for kind, r in results.items()},
        "history": {kind: r["history"] for kind, r in results.items()},
        "figure": figure,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.splitlines()[0], epochs=15, batch_size=64)
    p.add_argument("--models", default="lstm,gru,simplernn", help="(lstm,gru,simplernn)")
    p.add_argument("--length", type=int, default=50, help="sequence length T (50)")
    p.add_argument("--units", type=int, default=32, help="recurrent units (32)")
    args = p.parse_args(argv)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in models if m not in LAYERS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(LAYERS)}")
    sizes: dict[str, Any] = {"epochs": args.epochs, "length": args.length, "units": args.units}
    if args.quick:
        sizes = {"epochs": 8, "length": 10, "units": 16, "n_train": 2048, "n_test": 256}
    return run(
        args.backend,
        args.device,
        models=models,
        batch_size=args.batch_size,
        seed=args.seed,
        out=args.out,
        threads=args.threads,
        **sizes,
    )


if __name__ == "__main__":
    main()
