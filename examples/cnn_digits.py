"""Handwritten digits as 8x8 images: a small residual CNN built with the functional API.

Data: scikit-learn's bundled digits (1,797 images, no download) as ``(8, 8, 1)`` images, a
stratified 75/25 split that depends on the seed, pixels standardised with the training set's
statistics. The network, built with ``pnn.Input`` / ``pnn.Model`` / ``Add``::

    image (8, 8, 1) -> Conv 3x3 -> BN -> ReLU ------------------------+
                         -> Conv 3x3 -> BN -> ReLU -> Conv 3x3 -> BN -> Add -> ReLU
    -> MaxPooling 2x2 (4, 4) -> Conv 3x3 -> BN -> ReLU -> GlobalAveragePooling -> Dense 10 (logits)

sparse categorical cross-entropy from logits, Adam with a cosine-decayed step size. Target: mean
test accuracy over seeds 0-2 >= 98.5 %, each seed under 60 s on NumPy on a 2-core machine.
Figures: the training curves of each seed and the first convolution's filters.
Run: ``python examples/cnn_digits.py --backend numpy`` (``--seeds 0`` for one seed).
"""

from __future__ import annotations

import time
from typing import Any

import _common
import numpy as np

import portable_nn as pnn
from portable_nn.digits import load_digits_split

L = pnn.layers


def build_cnn(width: int = 24) -> pnn.Model:
    """The residual CNN of the module docstring (``width`` channels in the first block)."""

    def conv_bn(x: Any, filters: int) -> Any:
        x = L.Conv2D(filters, 3, padding="same", use_bias=False)(x)  # BN's beta is the bias
        return L.BatchNormalization()(x)

    image = pnn.Input((8, 8, 1), name="image")
    x = L.ReLU()(conv_bn(image, width))
    residual = L.ReLU()(conv_bn(x, width))
    residual = conv_bn(residual, width)
    x = L.ReLU()(L.Add()([x, residual]))  # the skip connection
    x = L.MaxPooling2D(2)(x)
    x = L.ReLU()(conv_bn(x, 2 * width))
    x = L.GlobalAveragePooling2D()(x)
    logits = L.Dense(10, name="logits")(x)
    return pnn.Model(image, logits, name="residual_cnn")


def as_images(data: tuple) -> tuple:
    """``(N, 64)`` standardised pixels -> ``(N, 8, 8, 1)`` channels-last images."""
    (x, y), (x_test, y_test) = data
    return (np.reshape(x, (-1, 8, 8, 1)), y), (np.reshape(x_test, (-1, 8, 8, 1)), y_test)


def train(seed: int, epochs: int, batch_size: int = 32, lr: float = 3e-3) -> dict[str, Any]:
    """One seed: its split, weights and batches; returns accuracy, history, time, model."""
    (x, y), (x_test, y_test) = as_images(load_digits_split(seed=seed))
    pnn.seed(seed)
    model = build_cnn()
    steps = epochs * -(-len(x) // batch_size)
    model.compile(
        loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=pnn.optimizers.Adam(pnn.optimizers.CosineDecay(lr, steps)),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(x_test, y_test),
        verbose=0,
        seed=seed,
    )  # the test set only draws the val curves: the number of epochs is fixed beforehand
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(x_test, y_test, batch_size=256)["accuracy"]
    return {"accuracy": accuracy, "history": history, "seconds": seconds, "model": model}


def draw_filters(model: pnn.Model, path: str) -> None:  # save_figure passes path=
    """The first convolution's 3x3 filters as a grid of small images."""
    from matplotlib.figure import Figure

    first = next(layer for layer in model.layers if isinstance(layer, L.Conv2D))
    weight = pnn.to_numpy(first.params["weight"])  # (3, 3, 1, filters)
    filters = weight.shape[-1]
    columns = 8
    rows = -(-filters // columns)
    figure = Figure(figsize=(columns, rows))
    for index in range(filters):
        ax = figure.add_subplot(rows, columns, index + 1)
        ax.imshow(weight[:, :, 0, index], cmap="coolwarm")
        ax.set_axis_off()
    figure.suptitle(f"{first.name}: {filters} filters of 3x3")
    figure.savefig(path, dpi=80)


def run(
    backend: str | None = None,
    device: Any = None,
    epochs: int = 20,
    seeds: tuple[int, ...] = (0, 1, 2),
    out: str | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train one model per seed; returns the accuracies, their mean, times and figures."""
    results = []
    with _common.backend_scope(backend, device, threads=threads) as active:
        print(f"digits as 8x8 images, residual CNN on {_common.describe(active)}")
        for seed in seeds:
            result = train(seed, epochs)
            results.append(result)
            print(
                f"  seed {seed}: test accuracy {result['accuracy']:.2%} "
                f"({epochs} epochs, {result['seconds']:.1f} s)"
            )
    accuracies = [r["accuracy"] for r in results]
    mean = float(np.mean(accuracies))
    print(f"  mean test accuracy over seeds {list(seeds)}: {mean:.2%} (target 98.5%)")
    figures = [
        _common.save_figure(
            pnn.plot.history,
            _common.figure_path(out, f"cnn_digits_seed{seed}.png"),
            result["history"],
            title=f"digits CNN, seed {seed} (val = test)",
        )
        for seed, result in zip(seeds, results)
    ]
    filters = _common.figure_path(out, "cnn_digits_filters.png")
    figures.append(
        _common.save_figure(lambda path: draw_filters(results[0]["model"], path), filters)
    )
    return {
        "backend": active.name,
        "accuracies": accuracies,
        "mean_accuracy": mean,
        "seconds": [r["seconds"] for r in results],
        "figures": figures,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.splitlines()[0], epochs=20)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (0,1,2)")
    args = p.parse_args(argv)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    epochs = 3 if args.quick else args.epochs
    return run(args.backend, args.device, epochs, seeds, args.out, args.threads)


if __name__ == "__main__":
    main()
