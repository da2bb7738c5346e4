"""A 2-block Transformer encoder learns to sort sequences of 10 digits.

Data: sequences of 10 digits drawn uniformly from 0-9 (repeats allowed); the target of each
position is the digit at that position of the sorted sequence, so the model reads the whole
input and writes its ascending order, one softmax over the 10 digits per position. Training and
test sequences are drawn apart from one generator (``--seed``); a test sequence may also occur
in training with probability ~1e-6.

The network, built with ``pnn.Input`` / ``pnn.Model`` (Vaswani et al., 2017, post-norm)::

    digits (10,) -> Embedding(10, 64) -> PositionEmbedding(10)
    2 x [ -> MultiHeadAttention(4 heads, key_dim 16) -> Add (residual) -> LayerNormalization
          -> Dense 128 ReLU -> Dense 64 -> Add (residual) -> LayerNormalization ]
    -> Dense 10 per position (logits)   (batch, 10, 10)

sparse categorical cross-entropy from logits on the ``(batch, 10)`` integer labels, Adam with a
cosine-decayed step size (3e-3 down to 0). Target: per-token test accuracy >= 97 % within 5
minutes on NumPy on a 2-core machine (about 10 s per seed here). Printed: per-token and
whole-sequence accuracy per seed, a few sorted test sequences. Figure: the attention weights
of every head of both blocks for one test sequence (``transformer_attention.png``).
Run: ``python examples/transformer.py --backend numpy`` (``--seeds 0`` for one seed).
"""

from __future__ import annotations

import time
from typing import Any

import _common
import numpy as np

import portable_nn as pnn

L = pnn.layers
DIGITS = 10  # the vocabulary (0-9) and the classes of each position
TARGET = 0.97


def make_sorting(n: int, length: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (n, length) int32 digits and ``y`` (n, length) int32: each row sorted."""
    x = np.random.default_rng(seed).integers(0, DIGITS, (n, length)).astype(np.int32)
    return x, np.sort(x, axis=1)


def build_encoder(
    length: int = 10, dim: int = 64, heads: int = 4, ff: int = 128, blocks: int = 2
) -> pnn.Model:
    """The encoder of the module docstring; the attention layers are named ``attention0``,
    ``attention1``... (``key_dim`` = ``dim // heads``)."""
    digits = pnn.Input((length,), name="digits")
    h = L.Embedding(DIGITS, dim, name="embedding")(digits)
    h = L.PositionEmbedding(length, name="positions")(h)
    for b in range(blocks):
        a = L.MultiHeadAttention(heads, dim // heads, name=f"attention{b}")([h, h])
        h = L.LayerNormalization(name=f"norm{b}a")(L.Add()([h, a]))
        f = L.Dense(ff, activation="relu", name=f"ff{b}a")(h)
        f = L.Dense(dim, name=f"ff{b}b")(f)
        h = L.LayerNormalization(name=f"norm{b}b")(L.Add()([h, f]))
    logits = L.Dense(DIGITS, name="logits")(h)  # per position: (batch, length, 10)
    return pnn.Model(digits, logits, name="sorting_encoder")


def token_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Per sequence, the share of positions whose argmax is the label: ``(batch,)``.

    pnn's ``"accuracy"`` / ``"sparse_categorical_accuracy"`` take labels ``(N,)`` against
    scores ``(N, C)`` only, so ``(batch, time)`` labels get this per-sample function (a
    ``MeanMetricWrapper``); every sequence has the same length, so its mean over sequences is
    the per-token accuracy."""
    xp = pnn.backend.namespace_of(y_pred)
    predicted = xp.argmax(y_pred, axis=-1)
    hit = predicted == xp.astype(y_true, predicted.dtype)
    return xp.mean(xp.astype(hit, y_pred.dtype), axis=-1)


def train(
    seed: int,
    epochs: int,
    n_train: int,
    n_test: int,
    sizes: dict[str, int],
    batch_size: int = 64,
    lr: float = 3e-3,
) -> dict[str, Any]:
    """One seed: its data, weights and batches. Returns accuracies, history, seconds, model."""
    x, y = make_sorting(n_train + n_test, sizes.get("length", 10), seed)
    (x_train, y_train), (x_test, y_test) = (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])
    pnn.seed(seed)
    model = build_encoder(**sizes)
    steps = epochs * -(-n_train // batch_size)
    model.compile(
        loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=pnn.optimizers.Adam(pnn.optimizers.CosineDecay(lr, steps)),
        metrics=[token_accuracy],
    )
    start = time.perf_counter()
    history = model.fit(
        x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0, seed=seed
    )
    seconds = time.perf_counter() - start
    predicted = np.argmax(pnn.to_numpy(model.predict(x_test, batch_size=500)), axis=-1)
    return {
        "accuracy": float(np.mean(predicted == y_test)),  # per token
        "sequence_accuracy": float(np.mean(np.all(predicted == y_test, axis=1))),
        "history": history.history,
        "seconds": seconds,
        "model": model,
        "examples": (x_test[:4], predicted[:4], y_test[:4]),
    }


def draw_attention(model: pnn.Model, digits: np.ndarray, path: str) -> None:
    """The attention weights of every head of every block for one sequence: rows = query
    positions (the output positions), columns = key positions labelled with the input
    digits."""
    from matplotlib.figure import Figure

    model(pnn.asarray(digits[None, :]))  # an eager call: each attention layer keeps its weights
    layers = [layer for layer in model.layers if isinstance(layer, L.MultiHeadAttention)]
    heads = layers[0].num_heads
    figure = Figure(figsize=(2.4 * heads, 2.6 * len(layers) + 0.5), layout="constrained")
    sequence = " ".join(map(str, digits))
    ticks = np.arange(len(digits))
    for row, layer in enumerate(layers):
        scores = pnn.to_numpy(layer.last_attention_scores)[0]  # (heads, T_q, T_k)
        for head in range(heads):
            ax = figure.add_subplot(len(layers), heads, row * heads + head + 1)
            ax.imshow(scores[head], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_xticks(ticks, [str(d) for d in digits], fontsize=7)
            ax.set_yticks(ticks, [str(t) for t in ticks], fontsize=7)
            ax.set_title(f"{layer.name}, head {head}", fontsize=9)
            if head == 0:
                ax.set_ylabel("query position")
            if row == len(layers) - 1:
                ax.set_xlabel("key (input digit)")
    figure.suptitle(f"attention weights while sorting {sequence}")
    figure.savefig(path, dpi=90)


def run(
    backend: str | None = None,
    device: Any = None,
    epochs: int = 5,
    seeds: tuple[int, ...] = (0, 1, 2),
    n_train: int = 10000,
    n_test: int = 2000,
    sizes: dict[str, int] | None = None,
    out: str | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train one encoder per seed; returns per-token and sequence accuracies, seconds, figure."""
    sizes = dict(sizes or {})
    results = []
    with _common.backend_scope(backend, device, threads=threads) as active:
        print(f"sorting 10 digits with a Transformer encoder on {_common.describe(active)}")
        for seed in seeds:
            result = train(seed, epochs, n_train, n_test, sizes)
            results.append(result)
            print(
                f"  seed {seed}: per-token test accuracy {result['accuracy']:.2%}, whole "
                f"sequences {result['sequence_accuracy']:.2%} ({epochs} epochs of {n_train}, "
                f"{result['seconds']:.1f} s)"
            )
        x, predicted, y = results[0]["examples"]
        for digits, guess, truth in zip(x, predicted, y):
            wrong = "" if np.array_equal(guess, truth) else f"   (sorted: {_text(truth)})"
            print(f"    {_text(digits)}  ->  {_text(guess)}{wrong}")
        path = _common.figure_path(out, "transformer_attention.png")
        figure = _common.save_figure(draw_attention, path, results[0]["model"], x[0])
    accuracies = [r["accuracy"] for r in results]
    mean = float(np.mean(accuracies))
    print(f"  mean per-token test accuracy over seeds {list(seeds)}: {mean:.2%} (target 97%)")
    return {
        "backend": active.name,
        "accuracies": accuracies,
        "mean_accuracy": mean,
        "sequence_accuracies": [r["sequence_accuracy"] for r in results],
        "seconds": [r["seconds"] for r in results],
        "history": [r["history"] for r in results],
        "figure": figure,
    }


def _text(digits: np.ndarray) -> str:
    return " ".join(map(str, digits))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.splitlines()[0], epochs=5)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (0,1,2)")
    args = p.parse_args(argv)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    if args.quick:
        quick = {"dim": 32, "heads": 4, "ff": 64}
        sizes = (4, seeds[:1], 4096, 256, quick)
        return run(args.backend, args.device, *sizes, args.out, args.threads)
    return run(args.backend, args.device, args.epochs, seeds, out=args.out, threads=args.threads)


if __name__ == "__main__":
    main()
