"""scikit-learn's multi-layer perceptron as a portable_nn network and objective.

The network is a :class:`~portable_nn.Sequential` of :class:`~portable_nn.layers.Dense` layers
whose last layer is linear: it outputs ``z``, and the output activation (softmax, logistic, exp
or identity) is the canonical link of the loss, fused into it in training and applied to ``z``
at prediction, as scikit-learn's ``delta = activation(z) - y`` does. ``coefs_[i]`` is layer
``i``'s ``weight`` (fan_in, fan_out) and ``intercepts_[i]`` its ``bias``.

The objective of a batch of ``n`` samples with weights ``s`` (1 when absent), ``S = sum(s)``::

    L = sum_i s_i l(y_i, z_i) / S  +  alpha / (2 S) * sum_layers ||W||^2

with ``l`` per output activation (``K`` outputs):

* softmax: ``-sum_k y_k log softmax(z)_k`` (categorical cross-entropy),
* logistic: ``sum_k BCE(y_k, sigmoid(z_k))`` (binary and multilabel),
* exp: ``sum_k exp(z_k) - y_k z_k + y_k log y_k - y_k`` (half Poisson deviance),
* identity: ``(1 / 2K) sum_k (z_k - y_k)^2`` (half the mean squared error).

Its gradient is scikit-learn's: ``dL/dz_i = s_i (activation(z_i) - y_i) / S``, so for the
squared error it is ``K`` times the gradient of the reported loss (scikit-learn sums the
squared-error gradient over outputs while ``loss_`` averages them); the others are exact.
The terms come from :mod:`portable_nn.losses` (``CategoricalCrossentropy``,
``BinaryCrossentropy`` from logits, ``Poisson(log_input=True)``, ``MeanSquaredError``) with
``reduction="mean_with_sample_weight"``, and the penalty from ``regularizers.L2(alpha / 2)``.
"""

from __future__ import annotations

from typing import Any

import array_api_extra as xpx

from portable_nn import losses, regularizers
from portable_nn.backend import Backend, namespace_of, use_backend
from portable_nn.functional import sigmoid, softmax
from portable_nn.layers import Dense
from portable_nn.models import Sequential

HIDDEN = {"identity": None, "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
REDUCTION = "mean_with_sample_weight"


def build_network(units: list[int], activation: str, backend: Backend) -> Sequential:
    """Dense layers ``units[0] -> units[1] -> ... -> units[-1]``, the hidden ones with the
    ``activation``, the last one linear; zero weights (:func:`initial_weights` sets them)."""
    with use_backend(backend):
        layers = [
            Dense(
                fan_out,
                activation=HIDDEN[activation] if i < len(units) - 2 else None,
                kernel_initializer="zeros",
                input_dim=fan_in,
            )
            for i, (fan_in, fan_out) in enumerate(zip(units[:-1], units[1:]))
        ]
        return Sequential(layers)


def initial_weights(units: list[int], activation: str, random_state: Any) -> list[tuple]:
    """scikit-learn's initialisation, drawn from its ``RandomState`` in its order (so a
    ``random_state`` gives scikit-learn's very weights): per layer ``W`` then ``b``, uniform in
    ``+-sqrt(f / (fan_in + fan_out))``, ``f = 2`` for logistic hidden units, else 6."""
    factor = 2.0 if activation == "logistic" else 6.0
    weights = []
    for fan_in, fan_out in zip(units[:-1], units[1:]):
        bound = (factor / (fan_in + fan_out)) ** 0.5
        w = random_state.uniform(-bound, bound, (fan_in, fan_out))
        weights.append((w, random_state.uniform(-bound, bound, fan_out)))
    return weights


def parameter_names(n_layers: int) -> tuple[list[str], list[str]]:
    """The network's weight and bias names, layer by layer."""
    return [f"{i}.weight" for i in range(n_layers)], [f"{i}.bias" for i in range(n_layers)]


class Objective:
    """The loss above for one output activation; :meth:`value_and_gradient` on a batch."""

    def __init__(self, out_activation: str, n_outputs: int, alpha: float) -> None:
        self.out_activation, self.n_outputs = out_activation, n_outputs
        self.penalty = regularizers.L2(0.5 * alpha) if alpha > 0 else None
        self.loss = {
            "softmax": lambda: losses.CategoricalCrossentropy(True, reduction=REDUCTION),
            "logistic": lambda: losses.BinaryCrossentropy(True, reduction=REDUCTION),
            "exp": lambda: losses.Poisson(REDUCTION, log_input=True),
            "identity": lambda: losses.MeanSquaredError(REDUCTION),
        }[out_activation]()
        k = float(n_outputs)  # per-element losses average over the K outputs; these sum them
        self.value_scale, self.gradient_scale = {
            "softmax": (1.0, 1.0),
            "logistic": (k, k),
            "exp": (k, k),
            "identity": (0.5, 0.5 * k),
        }[out_activation]

    def value_and_gradient(
        self, y: Any, z: Any, sample_weight: Any, weights: dict[str, Any]
    ) -> tuple[Any, Any, dict[str, Any]]:
        """``(L, dL/dz, dPenalty/dW for each weight)`` of a batch; no host read."""
        given = {} if sample_weight is None else {"sample_weight": sample_weight}
        value, dz = self.loss.value_and_gradient(y, z, check_values=False, **given)
        value = value * self.value_scale
        if self.out_activation == "exp":  # the deviance's constant: y log y - y
            value = value + self.n_outputs * _weighted_mean(_ylogy(y), sample_weight)
        if self.gradient_scale != 1.0:
            dz = dz * self.gradient_scale
        total = float(z.shape[0]) if sample_weight is None else namespace_of(z).sum(sample_weight)
        if self.penalty is None:
            return value, dz, {}
        value = value + sum(self.penalty(w) for w in weights.values()) / total
        return value, dz, {name: self.penalty.gradient(w) / total for name, w in weights.items()}

    def link(self, z: Any) -> Any:
        """The output activation: probabilities, rates or values from ``z``."""
        if self.out_activation == "softmax":
            return softmax(z, axis=-1)
        if self.out_activation == "logistic":
            return sigmoid(z)
        return namespace_of(z).exp(z) if self.out_activation == "exp" else z


def loss_and_gradients(
    net: Any, objective: Objective, x: Any, y: Any, sample_weight: Any
) -> tuple[Any, dict[str, Any]]:
    """The objective of a batch and its gradient for every parameter (forward, loss, backward)."""
    z, caches = net.forward(x, training=True)
    params = net.parameters()
    weights = {name: params[name] for name in parameter_names(len(net))[0]}
    loss, dz, penalty = objective.value_and_gradient(y, z, sample_weight, weights)
    _, grads = net.backward(dz, caches, input_grad=False)
    return loss, {name: g + penalty[name] if name in penalty else g for name, g in grads.items()}


def _ylogy(y: Any) -> Any:
    """``y log y - y`` per sample, averaged over outputs (``0 log 0 = 0``)."""
    xp = namespace_of(y)
    ylogy = xpx.apply_where(y > 0, y, lambda v: v * xp.log(v), fill_value=0.0)
    return xp.mean(ylogy - y, axis=-1)


def _weighted_mean(values: Any, sample_weight: Any) -> Any:
    xp = namespace_of(values)
    if sample_weight is None:
        return xp.mean(values)
    return xp.sum(values * sample_weight) / xp.sum(sample_weight)
