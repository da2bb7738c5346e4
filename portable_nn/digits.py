"""The 8x8 digits task shared by the demo (``python -m portable_nn``) and ``examples/digits.py``:
scikit-learn's bundled digits (no download), a stratified split standardised with training
statistics, and the Dense -> BatchNorm -> ReLU -> Dropout MLP that reaches >= 97 % test accuracy.
"""

from __future__ import annotations

import portable_nn as pnn
from portable_nn.backend import namespace_of


def load_digits_split(test_size: float = 0.25, seed: int = 0) -> tuple[tuple, tuple]:
    """``((x_train, y_train), (x_test, y_test))``: standardised float32 pixels, int labels."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise ImportError(
            "the demo needs scikit-learn for its data set: pip install 'portable-nn[examples]'"
        ) from exc
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    xp = namespace_of(x_train)
    mean = xp.mean(x_train, axis=0)
    std = xp.std(x_train, axis=0)
    std = xp.where(std == 0.0, 1.0, std)  # constant border pixels
    return tuple(
        (xp.astype((a - mean) / std, xp.float32), labels)
        for a, labels in ((x_train, y_train), (x_test, y_test))
    )


def build_digits_mlp(units: tuple[int, ...] = (256, 128), dropout: float = 0.2) -> pnn.Sequential:
    """Dense (no bias: BatchNorm's beta replaces it) -> BatchNorm -> ReLU -> Dropout blocks."""
    layers: list[pnn.layers.Layer] = []
    for width in units:
        layers += [
            pnn.layers.Dense(width, use_bias=False),
            pnn.layers.BatchNormalization(),
            pnn.layers.ReLU(),
            pnn.layers.Dropout(dropout),
        ]
    return pnn.Sequential([*layers, pnn.layers.Dense(10)], name="digits_mlp")
