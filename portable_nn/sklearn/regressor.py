"""``MLPRegressor``: scikit-learn's, trained by portable_nn where the data lives."""

from __future__ import annotations

from typing import Any

from sklearn.base import RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if

from portable_nn.backend import is_array, namespace_of, to_numpy

from ._base import BaseMLP
from ._placement import Placement, check_finite


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor`` (same parameters,
    defaults, attributes, messages and training arithmetic), whose network is a portable_nn
    ``Sequential`` trained on the namespace and device of ``X``; predictions and ``coefs_``
    come back there.

    ``loss="squared_error"``: half the mean squared error, identity output.
    ``loss="poisson"``: half the Poisson deviance, ``exp`` output (targets are counts or rates).
    Plus ``alpha / (2 sum(sample_weight)) * sum ||W||^2``. ``backend``/``device`` as in
    :class:`~portable_nn.sklearn.MLPClassifier`.
    """

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: Any = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_fun: int = 15000,
        backend: str | None = None,
        device: Any = None,
    ) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss=loss, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            backend=backend, device=device,
        )  # fmt: skip

    def _host_targets(self) -> bool:
        return False

    def _output_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _stratify(self) -> bool:
        return False

    def _encode_targets(
        self, y: Any, placement: Placement, incremental: bool, device_input: bool
    ) -> tuple[Any, Any]:
        """Targets as (n_samples, n_outputs) on the training backend (checked there when they
        come from another library)."""
        if is_array(y) and device_input:
            if y.ndim not in (1, 2):
                raise ValueError(f"y must be 1-D or 2-D; got shape {tuple(y.shape)}")
            y = placement.inward(y)
            check_finite(y, "y", type(self).__name__)
        elif y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        y = placement.inward(y)
        xp = namespace_of(y)
        return (xp.reshape(y, (-1, 1)) if y.ndim == 1 else y), None

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """One epoch over ``X``, ``y`` (sgd/adam only)."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: Any) -> Any:
        """Predicted values (n_samples,), or (n_samples, n_outputs), in ``X``'s namespace."""
        values, placement = self._forward(X, "predict")
        return placement.outward(self._decode(values, placement))

    def _decode(self, values: Any, placement: Placement) -> Any:
        return namespace_of(values).reshape(values, (-1,)) if values.shape[1] == 1 else values

    score = BaseMLP.score  # not RegressorMixin's (first in the MRO): it reads device targets

    def _metric(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        return float(r2_score(y_true, y_pred, sample_weight=sample_weight))

    def _validation_targets(self, data: Any) -> Any:
        y = to_numpy(data.y)
        return y[:, 0] if y.shape[1] == 1 else y


__all__ = ["MLPRegressor"]
