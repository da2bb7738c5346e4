"""Two interleaved spirals: a linear model fails (about 50%), a deep MLP separates them.

Data: for class k in {0, 1} and t uniform in [0.05, 1],

    angle = 2 pi * turns * t + k pi,    point = t * (cos(angle), sin(angle)) + noise

so each spiral is the other turned by 180 degrees and no straight line splits them. Both
models train with binary cross-entropy on logits and Adam (cosine-decayed step size); accuracy
is measured on a fresh test set drawn with another seed. The MLP's decision boundary is saved
as ``spiral_decision_boundary.png``. Run: ``python examples/spiral.py --backend numpy``.
"""

from __future__ import annotations

from typing import Any

import _common
import numpy as np

import portable_nn as pnn


def make_spirals(
    n_per_class: int = 200, turns: float = 1.5, noise: float = 0.03, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (2n, 2) float32 in about [-1, 1]^2 and labels ``y`` (2n, 1) float32 in {0, 1}."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.05, 1.0, n_per_class)
    points, labels = [], []
    for k in (0, 1):
        angle = 2.0 * np.pi * turns * t + k * np.pi
        xy = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
        points.append(xy + rng.normal(0.0, noise, xy.shape))
        labels.append(np.full((n_per_class, 1), k))
    return np.concatenate(points).astype(np.float32), np.concatenate(labels).astype(np.float32)


def build_mlp(units: tuple[int, ...] = (64, 64, 64)) -> pnn.Sequential:
    """2 -> 64 -> 64 -> 64 -> 1 (ReLU hidden layers, one logit out)."""
    hidden = [pnn.layers.Dense(u, activation="relu") for u in units]
    return pnn.Sequential([*hidden, pnn.layers.Dense(1)], name="spiral_mlp")


def _train(model: pnn.Sequential, data: tuple, epochs: int, batch_size: int, lr: float) -> float:
    """Fit on the training set; return the test accuracy."""
    (x, y), (x_test, y_test) = data
    steps = epochs * -(-len(x) // batch_size)
    model.compile(
        loss=pnn.losses.BinaryCrossentropy(from_logits=True),
        optimizer=pnn.optimizers.Adam(pnn.optimizers.CosineDecay(lr, steps)),
        metrics=["binary_accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return model.evaluate(x_test, y_test, batch_size=len(x_test))["binary_accuracy"]


def run(
    backend: str | None = None,
    device: Any = None,
    epochs: int = 60,
    batch_size: int = 32,
    n_per_class: int = 200,
    learning_rate: float = 0.01,
    seed: int = 0,
    out: str | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train a linear model and an MLP; returns both test accuracies (and the figure path)."""
    train = make_spirals(n_per_class, seed=seed)
    data = (train, make_spirals(n_per_class, seed=seed + 1))
    with _common.backend_scope(backend, device, threads=threads) as active:
        print(f"two spirals, {2 * n_per_class} training points, on {_common.describe(active)}")
        pnn.seed(seed)
        linear = pnn.Sequential([pnn.layers.Dense(1)], name="linear")
        linear_accuracy = _train(linear, data, epochs, batch_size, lr=0.05)
        print(f"  linear model    test accuracy {linear_accuracy:.1%}")
        mlp = build_mlp()
        mlp_accuracy = _train(mlp, data, epochs, batch_size, lr=learning_rate)
        print(f"  MLP 2-64-64-64-1 test accuracy {mlp_accuracy:.1%}")
        figure = _common.save_figure(
            pnn.plot.decision_boundary,
            _common.figure_path(out, "spiral_decision_boundary.png"),
            mlp,
            *train,
            title=f"two spirals: MLP, test accuracy {mlp_accuracy:.1%}",
        )
    return {
        "backend": active.name,
        "linear_accuracy": linear_accuracy,
        "mlp_accuracy": mlp_accuracy,
        "figure": figure,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.splitlines()[0], epochs=60, batch_size=32)
    p.add_argument("--points", type=int, default=200, help="points per spiral (200)")
    p.add_argument("--learning-rate", type=float, default=0.01, help="MLP's Adam step (0.01)")
    args = p.parse_args(argv)
    # quick: 80 full-batch steps with a larger step size instead of 60 x 13 mini-batches
    quick = args.quick
    epochs, batch_size = (80, 2 * args.points) if quick else (args.epochs, args.batch_size)
    return run(
        args.backend,
        args.device,
        epochs,
        batch_size,
        args.points,
        learning_rate=0.03 if quick else args.learning_rate,
        seed=args.seed,
        out=args.out,
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
