"""Handwritten digits (scikit-learn's bundled 8x8 images): a modern MLP and the article's net.

Data: ``sklearn.datasets.load_digits`` (1,797 images of 64 pixels, shipped inside
scikit-learn, no download), a stratified 75/25 train/test split, pixels standardised with the
training set's mean and standard deviation.

1. The MLP: 64 -> [Dense 256 -> BatchNorm -> ReLU -> Dropout 0.2] -> [Dense 128 -> BatchNorm ->
   ReLU -> Dropout 0.2] -> Dense 10 (logits), sparse categorical cross-entropy, Adam with a
   cosine-decayed step size (3e-3 down to 0 over the run). About 98% test accuracy.
2. The article's network (784-30-10 on MNIST there, 64-30-10 here): sigmoid hidden and output
   units, the QUADRATIC cost (mean squared error against one-hot targets) and plain mini-batch
   SGD (batches of 10, no momentum, the article's step size eta = 3).

Training curves of both are saved as ``digits_mlp.png`` and ``digits_article.png``.
Run: ``python examples/digits.py --backend numpy``.
"""

from __future__ import annotations

from typing import Any

import _common
import numpy as np

import portable_nn as pnn
from portable_nn.digits import build_digits_mlp, load_digits_split

L = pnn.layers

# the demo's data split and MLP (portable_nn/digits.py), under this example's names
load_data = load_digits_split
build_mlp = build_digits_mlp


def build_article_net(hidden: int = 30) -> pnn.Sequential:
    """64 -> 30 sigmoid -> 10 sigmoid, the article's (Nielsen's) architecture."""
    return pnn.Sequential(
        [L.Dense(hidden, activation="sigmoid"), L.Dense(10, activation="sigmoid")], name="article"
    )


def train_mlp(data: tuple, epochs: int, batch_size: int = 32, lr: float = 3e-3) -> tuple:
    """Fit the MLP; returns ``(model, history, test accuracy, epoch times)``."""
    (x, y), (x_test, y_test) = data
    model = build_mlp()
    steps = epochs * -(-len(x) // batch_size)
    model.compile(
        loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=pnn.optimizers.Adam(pnn.optimizers.CosineDecay(lr, steps)),
        metrics=["accuracy"],
    )
    timer = _common.EpochTimer()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(x_test, y_test),
        verbose=0,
        callbacks=[timer],
    )  # the test set only draws the val curves: the number of epochs is fixed beforehand
    accuracy = model.evaluate(x_test, y_test, batch_size=256)["accuracy"]
    return model, history, accuracy, timer.times


def train_article_net(data: tuple, epochs: int, batch_size: int = 10, lr: float = 15.0) -> tuple:
    """Fit the article's net with MSE on one-hot targets and plain SGD; returns
    ``(model, history, test accuracy)``. Keras's MSE averages over the 10 outputs, so its
    gradient is 2/10 of that of the article's ``C = |y - a|^2 / 2``: lr 15 is its eta = 3."""
    (x, y), (x_test, y_test) = data
    one_hot = np.eye(10, dtype=np.float32)
    model = build_article_net()
    model.compile(loss="mse", optimizer=pnn.optimizers.SGD(lr), metrics=["categorical_accuracy"])
    history = model.fit(
        x,
        one_hot[y],
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(x_test, one_hot[y_test]),
        verbose=0,
    )
    accuracy = model.evaluate(x_test, one_hot[y_test], batch_size=256)["categorical_accuracy"]
    return model, history, accuracy


def run(
    backend: str | None = None,
    device: Any = None,
    epochs: int = 20,
    article_epochs: int = 30,
    seed: int = 0,
    out: str | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train both networks; returns accuracies, median MLP epoch time and figure paths."""
    data = load_data(seed=0)  # one fixed split; ``seed`` drives weights, batches and dropout
    (x, _), (x_test, _) = data
    with _common.backend_scope(backend, device, threads=threads) as active:
        print(
            f"digits: {len(x)} training / {len(x_test)} test images on {_common.describe(active)}"
        )
        pnn.seed(seed)
        _, history, accuracy, times = train_mlp(data, epochs)
        epoch_time = _common.median(times)
        print(
            f"  MLP (BatchNorm, Dropout, Adam), {epochs} epochs: test accuracy {accuracy:.2%}"
            f"  ({epoch_time * 1e3:.0f} ms/epoch, median)"
        )
        _, article_history, article_accuracy = train_article_net(data, article_epochs)
        print(
            f"  article's 64-30-10 sigmoid net (MSE, SGD), {article_epochs} epochs: "
            f"test accuracy {article_accuracy:.2%}"
        )
    figures = [
        _common.save_figure(pnn.plot.history, _common.figure_path(out, name), h, title=title)
        for name, h, title in (
            ("digits_mlp.png", history, "digits: MLP with BatchNorm and Dropout (val = test)"),
            (
                "digits_article.png",
                article_history,
                "digits: 64-30-10 sigmoid, MSE, SGD (val = test)",
            ),
        )
    ]
    return {
        "backend": active.name,
        "mlp_accuracy": accuracy,
        "history": history.history,
        "article_accuracy": article_accuracy,
        "epoch_times": times,
        "epoch_time": epoch_time,
        "figures": figures,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.splitlines()[0], epochs=20)
    p.add_argument("--article-epochs", type=int, default=30, help="epochs of the article's net")
    args = p.parse_args(argv)
    epochs, article_epochs = (8, 5) if args.quick else (args.epochs, args.article_epochs)
    return run(args.backend, args.device, epochs, article_epochs, args.seed, args.out, args.threads)


if __name__ == "__main__":
    main()
