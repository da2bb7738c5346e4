"""XOR with a 2-4-1 network: the smallest problem a linear model cannot solve.

    hidden = tanh(x @ W1 + b1)          W1: (2, 4)
    output = sigmoid(hidden @ W2 + b2)  W2: (4, 1), trained with binary cross-entropy

Full-batch SGD with momentum on the four points; afterwards all four outputs lie on the right
side of 0.5. Run: ``python examples/xor.py --backend numpy`` (or torch, jax, cupy,
array_api_strict, auto).
"""

from __future__ import annotations

from typing import Any

import _common
import numpy as np

import portable_nn as pnn

X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=np.float32)
Y = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=np.float32)


def build(hidden_activation: str = "tanh") -> pnn.Sequential:
    """2 inputs -> 4 hidden units -> 1 sigmoid output."""
    return pnn.Sequential(
        [
            pnn.layers.Dense(4, activation=hidden_activation, input_dim=2),
            pnn.layers.Dense(1, activation="sigmoid"),
        ],
        name="xor",
    )


def run(
    backend: str | None = None,
    device: Any = None,
    epochs: int = 300,
    learning_rate: float = 0.5,
    hidden_activation: str = "tanh",
    seed: int = 0,
    out: str | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train on the XOR table; returns outputs, loss and whether all four are right."""
    with _common.backend_scope(backend, device, threads=threads) as active:
        where = _common.describe(active)
        print(f"XOR 2-4-1 ({hidden_activation} hidden, sigmoid output) on {where}")
        pnn.seed(seed)
        model = build(hidden_activation)
        model.compile(
            loss="binary_crossentropy",
            optimizer=pnn.optimizers.SGD(learning_rate, momentum=0.9),
            metrics=["binary_accuracy"],
        )
        history = model.fit(X, Y, epochs=epochs, batch_size=4, shuffle=False, verbose=0)
        outputs = pnn.to_numpy(model.predict(X)).reshape(-1).tolist()
        figure = _common.save_figure(
            pnn.plot.decision_boundary,
            _common.figure_path(out, "xor_decision_boundary.png"),
            model,
            X,
            Y,
            padding=0.25,
            title="XOR: 2-4-1 network",
        )
    correct = [(o > 0.5) == (t > 0.5) for o, t in zip(outputs, Y[:, 0])]
    print("  x1 x2 | target | output")
    for (a, b), t, o in zip(X, Y[:, 0], outputs):
        print(f"   {a:.0f}  {b:.0f} |   {t:.0f}    | {o:.4f}")
    loss = history.history["loss"][-1]
    print(f"  final loss {loss:.4f}; all four correct: {all(correct)}")
    return {
        "backend": active.name,
        "outputs": outputs,
        "targets": Y[:, 0].tolist(),
        "correct": all(correct),
        "loss": loss,
        "figure": figure,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.splitlines()[0], epochs=300)
    p.add_argument("--hidden", default="tanh", choices=["tanh", "sigmoid"], help="(tanh)")
    p.add_argument("--learning-rate", type=float, default=0.5, help="SGD step size (0.5)")
    args = p.parse_args(argv)
    return run(
        args.backend,
        args.device,
        epochs=min(args.epochs, 100) if args.quick else args.epochs,
        learning_rate=args.learning_rate,
        hidden_activation=args.hidden,
        seed=args.seed,
        out=args.out,
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
