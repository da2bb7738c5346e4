"""Figures: training curves, 2-D decision boundaries and activation functions (matplotlib).

matplotlib is optional (``pip install 'portable-nn[plot]'``) and imported only inside the drawing
functions. Figures are plain :class:`matplotlib.figure.Figure` objects made without ``pyplot``:
no window opens, no global state changes, and ``savefig`` renders with Agg, so everything works
on a headless machine. Each function returns its figure and saves it when given ``path``.

>>> pnn.plot.history(model.fit(x, y, epochs=10, validation_split=0.1), "curves.png")
>>> pnn.plot.decision_boundary(model, x, y, "boundary.png")
>>> pnn.plot.activations(path="activations.png")
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from portable_nn import functional
from portable_nn.backend import get_backend, namespace_of, to_numpy

_VECTOR_ACTIVATIONS = ("softmax", "log_softmax")


def _figure(width: float, height: float) -> Any:
    """A new ``Figure`` (no pyplot); a clear ImportError names the ``plot`` extra."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "portable_nn.plot needs matplotlib, which is not installed: "
            "pip install 'portable-nn[plot]' (or python -m pip install matplotlib)"
        ) from exc
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: str | os.PathLike | None, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` (format from the suffix), creating parent folders."""
    if path is None:
        return
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=dpi)


# -- training curves --------------------------------------------------------------------------
def _history_dict(history: Any) -> tuple[dict[str, list[float]], list[int]]:
    """``(logs, epochs)`` from a History, a trained model (its ``.history``) or a
    ``{key: [values]}`` dict."""
    logs = history
    for _ in range(2):  # model -> History -> dict
        if not isinstance(logs, dict) and hasattr(logs, "history"):
            history, logs = logs, logs.history
    if not isinstance(logs, dict):
        raise TypeError(
            f"history must be a History or a dict of lists. Received: {type(history).__name__}"
        )
    logs = {key: [float(v) for v in values] for key, values in logs.items()}
    if not logs or not any(logs.values()):
        raise ValueError("history is empty: train for at least one epoch first")
    epochs = list(getattr(history, "epoch", []) or [])
    longest = max(len(values) for values in logs.values())
    if len(epochs) != longest:
        epochs = list(range(longest))
    return logs, epochs


def history(
    history: Any,
    path: str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
) -> Any:
    """Loss and metrics per epoch, one panel each, training and ``val_`` curves together.

    Parameters
    ----------
    history : the :class:`~portable_nn.callbacks.History` that ``fit`` returns, the trained
        model, or a dict ``{"loss": [...], "val_loss": [...], "accuracy": [...]}``.
    path : save the figure there (PNG, SVG, PDF... from the suffix); folders are created.
    metrics : metric names to draw after the loss (default: every non-``val_`` key).
    title : figure title.

    Returns the ``matplotlib.figure.Figure``. Epochs are numbered from 1, as the progress bar.
    """
    logs, epochs = _history_dict(history)
    names = ["loss"] if "loss" in logs else []
    known = [k for k in logs if not k.startswith("val_") and k != "loss"]
    if metrics is None:
        names += known
    else:
        unknown = [m for m in metrics if m not in logs]
        if unknown:
            raise ValueError(f"metrics {unknown} are not in the history; it has {sorted(logs)}")
        names += [m for m in metrics if m != "loss"]
    fig = _figure(4.2 * len(names), 3.4)
    for ax, name in zip(fig.subplots(1, len(names), squeeze=False)[0], names):
        for key, style in ((name, "-o"), ("val_" + name, "--s")):
            values = logs.get(key)
            if values:
                first = epochs[len(epochs) - len(values)]  # shorter lists start later
                xs = [first + 1 + i for i in range(len(values))]
                ax.plot(xs, values, style, markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


# -- decision boundary ------------------------------------------------------------------------
def _classes(scores: Any) -> tuple[Any, Any]:
    """``(class, level)`` per row of model outputs: one column is read as a probability of
    class 1 (as a logit when outside [0, 1]), several as class scores (argmax)."""
    xp = namespace_of(scores)
    if scores.ndim == 1 or scores.shape[1] == 1:
        z = xp.reshape(scores, (-1,))
        is_prob = bool(xp.all((z >= 0.0) & (z <= 1.0)))
        p = z if is_prob else functional.sigmoid(z)
        return xp.astype(p > 0.5, xp.int64), p
    label = xp.argmax(scores, axis=1)
    return label, xp.astype(label, scores.dtype)


def decision_boundary(
    model: Any,
    x: Any,
    y: Any,
    path: str | os.PathLike | None = None,
    *,
    resolution: int = 200,
    padding: float = 0.1,
    title: str | None = None,
    batch_size: int = 8192,
) -> Any:
    """The model's predicted class over the plane, with the points ``(x, y)`` on top.

    ``x`` has shape (N, 2); ``y`` holds labels (N,) or (N, 1), or one-hot rows (N, k). The
    model maps (M, 2) to one column (a probability of class 1, or a logit when its values
    leave [0, 1]; the shading is that probability and the line its 0.5 level) or to k class
    scores (the shading is the argmax). ``padding`` widens the box around the data by that
    fraction of its size. The default title gives the accuracy on ``(x, y)``.
    """
    xh, yh = to_numpy(x), to_numpy(y)
    if xh.ndim != 2 or xh.shape[1] != 2:
        raise ValueError(f"x must have shape (N, 2). Received: x.shape={tuple(xh.shape)}")
    hx = namespace_of(xh)
    labels = hx.argmax(yh, axis=1) if yh.ndim == 2 and yh.shape[1] > 1 else hx.reshape(yh, (-1,))
    if labels.shape[0] != xh.shape[0]:
        raise ValueError(f"x has {xh.shape[0]} rows but y has {labels.shape[0]} labels")
    axes = []
    for j in range(2):
        lo, hi = float(hx.min(xh[:, j])), float(hx.max(xh[:, j]))
        pad = padding * max(hi - lo, 1e-6)
        axes.append(hx.linspace(lo - pad, hi + pad, resolution, dtype=xh.dtype))
    gx, gy = hx.meshgrid(*axes)
    grid = hx.stack([hx.reshape(gx, (-1,)), hx.reshape(gy, (-1,))], axis=1)
    _, level = _classes(to_numpy(model.predict(grid, batch_size=batch_size)))
    predicted, _ = _classes(to_numpy(model.predict(xh, batch_size=batch_size)))
    hits = predicted == hx.astype(labels, predicted.dtype)
    accuracy = float(hx.mean(hx.astype(hits, hx.float64)))
    fig = _figure(5.0, 4.4)
    ax = fig.subplots()
    level = hx.reshape(level, gx.shape)
    ax.contourf(gx, gy, level, levels=20, cmap="RdBu", alpha=0.6)
    if float(hx.max(level)) <= 1.0:
        ax.contour(gx, gy, level, levels=[0.5], colors="k", linewidths=1.0)
    size = max(8.0, min(80.0, 4000.0 / xh.shape[0]))
    ax.scatter(xh[:, 0], xh[:, 1], c=labels, cmap="RdBu", edgecolors="w", s=size, linewidths=0.6)
    ax.set_title(title if title is not None else f"decision boundary (accuracy {accuracy:.1%})")
    ax.set_aspect("equal", adjustable="box")
    _save(fig, path)
    return fig


# -- activations ------------------------------------------------------------------------------
def activation_curves(x: Any, names: Sequence[str] | None = None) -> dict[str, tuple[Any, Any]]:
    """``{name: (f(x), f'(x))}`` for 1-D ``x``, derivatives from the library's ``*_grad`` with
    ``dy = 1``. Softmax and log-softmax act on rows ``[x, 0]`` and report component 0 (softmax
    of ``[x, 0]`` is ``sigmoid(x)``), with ``dy = [1, 0]``. Arrays stay on ``x``'s backend."""
    xp = namespace_of(x)
    out = {}
    for name in names if names is not None else functional.ACTIVATIONS:
        f, f_grad = functional.get(name)
        if name in _VECTOR_ACTIVATIONS:
            rows = xp.stack([x, xp.zeros_like(x)], axis=1)
            dy = xp.stack([xp.ones_like(x), xp.zeros_like(x)], axis=1)
            out[name] = (f(rows)[:, 0], f_grad(rows, dy)[:, 0])
        elif name == "glu":  # glu([x, x]) = x sigmoid(x); d/dx sums both halves' gradients
            rows = xp.stack([x, x], axis=1)
            g = f_grad(rows, xp.ones_like(rows[:, :1]))
            out[name] = (f(rows)[:, 0], g[:, 0] + g[:, 1])
        else:
            out[name] = (f(x), f_grad(x, xp.ones_like(x)))
    return out


def activations(
    names: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    *,
    x_range: tuple[float, float] = (-4.0, 4.0),
    num: int = 400,
    ncols: int = 4,
) -> Any:
    """A grid with every activation of ``pnn.functional`` (or ``names``) and its derivative.

    Values are computed on the active backend by :func:`activation_curves` over ``num``
    points of ``x_range``; solid line ``f(x)``, dashed ``f'(x)``.
    """
    names = list(names if names is not None else functional.ACTIVATIONS)
    backend = get_backend()
    x = backend.xp.linspace(*x_range, num, dtype=backend.dtype, device=backend.device)
    curves = activation_curves(x, names)
    xh = to_numpy(x)
    nrows = math.ceil(len(names) / ncols)
    fig = _figure(3.0 * ncols, 2.5 * nrows)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    for ax, name in zip(grid.flat, names):
        f, df = curves[name]
        ax.plot(xh, to_numpy(f), label="f(x)")
        ax.plot(xh, to_numpy(df), "--", label="f'(x)")
        label = f"{name}([x, 0])[0]" if name in _VECTOR_ACTIVATIONS else name
        label = "glu([x, x])" if name == "glu" else label
        ax.set_title(label, fontsize=10)
        ax.axhline(0.0, color="0.6", linewidth=0.5)
        ax.axvline(0.0, color="0.6", linewidth=0.5)
        ax.grid(alpha=0.3)
    for ax in list(grid.flat)[len(names) :]:
        ax.set_visible(False)
    grid.flat[0].legend(fontsize=8)
    _save(fig, path)
    return fig


__all__ = ["activation_curves", "activations", "decision_boundary", "history"]
