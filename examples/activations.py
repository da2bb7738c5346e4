"""Every activation of ``pnn.functional`` and its derivative, checked and drawn in one grid.

Derivatives come from the library's backward functions with an upstream gradient of ones,
``f'(x) = NAME_grad(x, dy=1)``, and are checked here against central differences
``(f(x + h) - f(x - h)) / 2h`` (float64, h = 1e-5, at 400 points of [-4, 4], none of them at
the kink x = 0). Softmax and log-softmax are vector functions: the figure shows component 0
of ``softmax([x, 0])`` (which is ``sigmoid(x)``) and its derivative. The grid is saved as
``activations.png``. Run: ``python examples/activations.py --backend numpy``.
"""

from __future__ import annotations

from typing import Any

import _common

import portable_nn as pnn
from portable_nn.plot import activation_curves

STEP = 1e-5


def derivative_errors(x: Any, names: list[str]) -> dict[str, float]:
    """``max |f'(x) - central difference| / max(1, |f'(x)|)`` per activation."""
    xp = pnn.backend.namespace_of(x)
    exact = activation_curves(x, names)
    above = activation_curves(x + STEP, names)
    below = activation_curves(x - STEP, names)
    errors = {}
    for name in names:
        numeric = (above[name][0] - below[name][0]) / (2.0 * STEP)
        analytic = exact[name][1]
        scale = xp.maximum(xp.abs(analytic), xp.ones_like(analytic))
        errors[name] = float(xp.max(xp.abs(analytic - numeric) / scale))
    return errors


def run(
    backend: str | None = None,
    device: Any = None,
    names: list[str] | None = None,
    num: int = 400,
    out: str | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Check every derivative and draw the grid; returns the errors and the figure path."""
    names = list(names if names is not None else pnn.functional.ACTIVATIONS)
    with _common.backend_scope(backend, device, "float64", threads) as active:
        print(f"{len(names)} activations on {_common.describe(active)}")
        x = active.xp.linspace(-4.0, 4.0, num, dtype=active.dtype, device=active.device)
        curves = activation_curves(x, names)
        errors = derivative_errors(x, names)
        print(f"  {'name':12s} {'f(-4)':>10s} {'f(4)':>10s} {'max f_prime':>11s} {'fd error':>9s}")
        for name in names:
            f, df = (pnn.to_numpy(a) for a in curves[name])
            line = f"  {name:12s} {f[0]:10.4f} {f[-1]:10.4f} {df.max():11.4f}"
            print(f"{line} {errors[name]:9.1e}")
        figure = _common.save_figure(
            pnn.plot.activations, _common.figure_path(out, "activations.png"), names, num=num
        )
    return {"backend": active.name, "names": names, "errors": errors, "figure": figure}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.splitlines()[0], epochs=0)
    p.add_argument("--points", type=int, default=400, help="points in [-4, 4] (400)")
    args = p.parse_args(argv)
    num = 100 if args.quick else args.points
    return run(args.backend, args.device, num=num, out=args.out, threads=args.threads)


if __name__ == "__main__":
    main()
