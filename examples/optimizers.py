"""Gradient descent, momentum and Adam minimising f(x) = x^2 from x = 5.

Each optimizer is the library's own, driven through its pure interface on a one-element
parameter dict (the gradient is f'(x) = 2x)::

    state = opt.init({"x": x})
    params, state = opt.update(params, {"x": 2 * params["x"]}, state)

With the same step size (0.01) plain gradient descent shrinks x by a factor 0.98 per step;
momentum (0.9) travels faster and overshoots, spiralling in; Adam moves about ``lr`` per step
whatever the gradient's scale, then settles. The figure (``optimizers.png``) shows x per step
and |x| on a log scale. Run: ``python examples/optimizers.py --backend numpy``.
"""

from __future__ import annotations

import os
from typing import Any

import _common

import portable_nn as pnn


def optimizers(learning_rate: float = 0.01, adam_learning_rate: float = 0.1) -> dict[str, Any]:
    """The three contenders, by display name."""
    return {
        "gradient descent": pnn.optimizers.SGD(learning_rate),
        "momentum 0.9": pnn.optimizers.SGD(learning_rate, momentum=0.9),
        "Adam": pnn.optimizers.Adam(adam_learning_rate),
    }


def descend(opt: Any, x0: float, steps: int) -> list[float]:
    """x after 0, 1, ..., steps updates of ``opt`` on f(x) = x^2 (x read back every step)."""
    params = {"x": pnn.asarray([x0])}
    state = opt.init(params)
    path = [x0]
    for _ in range(steps):
        grads = {"x": 2.0 * params["x"]}  # f'(x) = 2x
        params, state = opt.update(params, grads, state)
        path.append(float(params["x"][0]))  # a copy: updates may reuse the array in place
    return path


def plot(paths: dict[str, list[float]], path: str) -> None:
    """x per step (left) and |x| on a log scale (right)."""
    from matplotlib.figure import Figure  # optional: the caller reports when it is missing

    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    for name, xs in paths.items():
        left.plot(range(len(xs)), xs, label=name)
        right.semilogy(range(len(xs)), [max(abs(v), 1e-12) for v in xs], label=name)
    left.set(xlabel="step", ylabel="x", title="f(x) = x^2 from x = 5")
    right.set(xlabel="step", ylabel="|x| (log scale)", title="convergence")
    for ax in (left, right):
        ax.axhline(0.0, color="0.6", linewidth=0.5)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=120)


def run(
    backend: str | None = None,
    device: Any = None,
    steps: int = 300,
    learning_rate: float = 0.01,
    adam_learning_rate: float = 0.1,
    x0: float = 5.0,
    out: str | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Run the three optimizers; returns every path, the final |x| of each and the figure."""
    with _common.backend_scope(backend, device, threads=threads) as active:
        print(f"minimising x^2 from x = {x0} for {steps} steps on {_common.describe(active)}")
        contenders = optimizers(learning_rate, adam_learning_rate)
        paths = {name: descend(opt, x0, steps) for name, opt in contenders.items()}
    final = {name: abs(xs[-1]) for name, xs in paths.items()}
    for name, value in final.items():
        print(f"  {name:17s} final |x| = {value:.3e}")
    if out is not None:
        os.makedirs(out, exist_ok=True)
    figure = _common.save_figure(plot, _common.figure_path(out, "optimizers.png"), paths)
    return {"backend": active.name, "paths": paths, "final": final, "figure": figure}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.splitlines()[0], epochs=300)
    p.add_argument("--steps", dest="epochs", type=int, help="same as --epochs: updates (300)")
    p.add_argument("--learning-rate", type=float, default=0.01, help="GD/momentum step (0.01)")
    p.add_argument("--adam-learning-rate", type=float, default=0.1, help="Adam step (0.1)")
    args = p.parse_args(argv)
    steps = min(args.epochs, 200) if args.quick else args.epochs
    return run(
        args.backend,
        args.device,
        steps,
        args.learning_rate,
        args.adam_learning_rate,
        out=args.out,
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
