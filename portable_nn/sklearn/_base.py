"""What the classifier and the regressor share: scikit-learn's ``BaseMultilayerPerceptron``
parameters, fitting and prediction, on a portable_nn network placed where the data lives."""

from __future__ import annotations

import math
from typing import Any

from sklearn.base import BaseEstimator, _fit_context
from sklearn.neural_network import MLPClassifier as _SklearnMLP
from sklearn.utils import check_random_state
from sklearn.utils._array_api import check_same_namespace
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from portable_nn.backend import BACKEND_NAMES, is_array, read_scalars, to_numpy

from ._data import TrainingData
from ._network import Objective, build_network, initial_weights, parameter_names
from ._placement import Placement, check_device_input, check_finite, is_device_array
from ._solvers import fit_lbfgs, fit_stochastic, make_optimizer

STOCHASTIC = ("sgd", "adam")
OURS = {"backend": [StrOptions(set(BACKEND_NAMES) - {"auto"}), None], "device": "no_validation"}


class BaseMLP(BaseEstimator):
    """scikit-learn's MLP parameters (same names, defaults and checks), plus ``backend`` and
    ``device`` (None: train where ``X`` lives)."""

    _parameter_constraints: dict = {
        **{k: v for k, v in _SklearnMLP._parameter_constraints.items()},
        **OURS,
    }
    _compile = True  # sgd/adam on JAX: one compiled call per batch (False: the eager update)

    def __init__(self, hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
                 learning_rate_init, power_t, max_iter, loss, shuffle, random_state, tol,
                 verbose, warm_start, momentum, nesterovs_momentum, early_stopping,
                 validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun,
                 backend, device):  # fmt: skip  # noqa: E501
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.device = device

    # -- fitting ---------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BaseMLP:
        """Train on ``X`` (n_samples, n_features) and ``y`` from scratch (or from the current
        weights with ``warm_start=True``); ``sample_weight`` (n_samples,) weighs each sample's
        loss. Arrays of any array-API library train on their own device."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool) -> BaseMLP:
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if any(h <= 0 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        saved = dict(self.__dict__)
        try:  # checks change nothing when they fail (validate_data sets n_features_in_ first)
            data = self._training_data(X, y, sample_weight, incremental, first_pass)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        self.n_outputs_ = int(data.y.shape[1])
        units = [int(data.X.shape[1]), *hidden, self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(units, data.placement)
        else:
            self._network_for(data.placement)
        if self.solver in STOCHASTIC:
            fit_stochastic(self, data, incremental)
        else:
            fit_lbfgs(self, data)
        self._publish()
        self._check_weights_finite()
        return self

    def _training_data(
        self, X: Any, y: Any, sample_weight: Any, incremental: bool, reset: bool
    ) -> TrainingData:
        """Checked inputs on the training backend: scikit-learn's ``validate_data`` for host
        data, the same checks on the device for arrays of other libraries."""
        if is_device_array(X):
            X = check_device_input(X, None if reset else self.n_features_in_, type(self).__name__)
            if reset:
                self.n_features_in_ = int(X.shape[1])
                self.__dict__.pop("feature_names_in_", None)
            y_host = to_numpy(y) if self._host_targets() else y
        else:
            X, y_host = validate_data(
                self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                dtype=("float64", "float32"), reset=reset, y_numeric=not self._host_targets(),
            )  # fmt: skip
        n = int(X.shape[0])
        placement = Placement.of(X, self.backend, self.device)
        y, labels = self._encode_targets(
            y_host, placement, incremental, device_input=is_device_array(X)
        )
        if int(y.shape[0]) != n:
            raise ValueError(
                "Found input variables with inconsistent numbers of samples: "
                f"[{n}, {int(y.shape[0])}]"
            )
        weight = self._sample_weight(sample_weight, X, placement)
        if not scipy_sparse(X):
            X = placement.inward(X)
        return TrainingData(X, y, weight, placement, labels)

    def _check_solver(self) -> bool:
        """``partial_fit`` exists for the stochastic solvers only (``available_if``)."""
        if self.solver not in STOCHASTIC:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                f"{self.solver} is not stochastic."
            )
        return True

    def _sample_weight(self, sample_weight: Any, X: Any, placement: Placement) -> Any:
        if sample_weight is None:
            return None
        if is_device_array(sample_weight) or is_device_array(X):
            w = placement.inward(sample_weight)
            if w.ndim != 1 or int(w.shape[0]) != int(X.shape[0]):
                raise ValueError(
                    f"sample_weight.shape == {tuple(w.shape)}, expected ({int(X.shape[0])},)!"
                )
            check_finite(w, "sample_weight", type(self).__name__)
            return w
        return placement.inward(_check_sample_weight(sample_weight, X))

    def _initialize(self, units: list[int], placement: Placement) -> None:
        """scikit-learn's ``_initialize``: counters, output activation, weights, histories."""
        self.n_iter_, self.t_ = 0, 0
        self.n_layers_ = len(units)
        self.out_activation_ = self._output_activation()
        self._placement = placement
        self._net = build_network(units, self.activation, placement.backend)
        weights, biases = parameter_names(len(units) - 1)
        values = {}
        for w_name, b_name, (w, b) in zip(
            weights, biases, initial_weights(units, self.activation, self._random_state)
        ):
            values[w_name], values[b_name] = placement.inward(w), placement.inward(b)
        self._net.set_parameters(values)
        self._optimizer = None
        self._best_parameters = dict(values)
        if self.solver in STOCHASTIC:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -math.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = math.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _network_for(self, placement: Placement) -> None:
        """Continue training (``warm_start``, ``partial_fit``): the network holding ``coefs_``
        and ``intercepts_`` (rebuilt when they were set by hand, after unpickling, or when the
        data now lives elsewhere; the optimizer's state and the best weights of early stopping
        go along, as scikit-learn keeps them)."""
        old = getattr(self, "_placement", None)
        self._placement = placement
        if old is not None and old.backend == placement.backend and self._holds_published_weights():
            return
        units = [int(self.coefs_[0].shape[0])] + [int(c.shape[1]) for c in self.coefs_]
        self._net = build_network(units, self.activation, placement.backend)
        weights, biases = parameter_names(len(self.coefs_))
        values = {n: placement.inward(c) for n, c in zip(weights, self.coefs_)}
        values.update({n: placement.inward(b) for n, b in zip(biases, self.intercepts_)})
        self._net.set_parameters(values)
        if getattr(self, "_optimizer", None) is not None:
            state = self._optimizer.state_dict()
            self._optimizer.reset()  # its slots are checked against the new arrays at next step
            self._optimizer.load_state_dict(_mapped(state, placement.inward))
        if hasattr(self, "_best_parameters"):
            self._best_parameters = _mapped(self._best_parameters, placement.inward)

    def _holds_published_weights(self) -> bool:
        """Whether the network still holds what :meth:`_publish` handed out as ``coefs_`` and
        ``intercepts_`` (not when they were replaced by hand or after unpickling)."""
        if getattr(self, "_net", None) is None or not hasattr(self, "coefs_"):
            return False
        published = [*self.coefs_, *self.intercepts_]
        mine = getattr(self, "_published", [])
        return len(published) == len(mine) and all(a is b for a, b in zip(published, mine))

    def _publish(self) -> None:
        """``coefs_``/``intercepts_`` in the caller's namespace (the network's own arrays when it
        trains there)."""
        params, (weights, biases) = self._net.parameters(), parameter_names(len(self._net))
        self.coefs_ = [self._placement.outward(params[n]) for n in weights]
        self.intercepts_ = [self._placement.outward(params[n]) for n in biases]
        self._published = [*self.coefs_, *self.intercepts_]

    def _check_weights_finite(self) -> None:
        xp = self._placement.xp
        flags = {n: xp.all(xp.isfinite(p)) for n, p in self._net.parameters().items()}
        if not all(read_scalars(flags).values()):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain large"
                " values and need to be preprocessed."
            )

    def _objective(self) -> Objective:
        return Objective(self.out_activation_, self.n_outputs_, float(self.alpha))

    # -- prediction ------------------------------------------------------------------------------
    def _forward(self, X: Any, method: str) -> tuple[Any, Placement]:
        """The output activation of the network on ``X`` (checked as at fit), on the training
        backend, and the placement whose ``outward`` returns results in ``X``'s namespace.

        Under ``sklearn.set_config(array_api_dispatch=True)`` ``X`` must come from the fit's
        namespace and device (scikit-learn's rule); without it any array is taken."""
        check_is_fitted(self)
        check_same_namespace(X, self, attribute="_first_coef", method=method)
        if is_device_array(X):
            X = check_device_input(X, self.n_features_in_, type(self).__name__)
        else:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
            X = X.toarray() if scipy_sparse(X) else X
        if not self._holds_published_weights():
            self._network_for(self._placement)
        backend = self._placement.backend
        placement = Placement(X if is_device_array(X) else None, backend)
        z = self._net.forward(placement.inward(X, dtype=backend.dtype), training=False)[0]
        return self._objective().link(z), placement

    @property
    def _first_coef(self) -> Any:
        return self.coefs_[0]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy (classifier) or R^2 (regressor) of ``predict(X)``, by scikit-learn's
        ``accuracy_score``/``r2_score`` on host copies of ``y`` and the predictions."""
        return self._metric(_host(y), _host(self.predict(X)), _host(sample_weight))

    def _validation_score(self, data: Any) -> float:
        """The early-stopping score of the held-out ``data`` (NaN for non-finite outputs)."""
        x, _, weight = data.whole()
        z = self._net.forward(x, training=False)[0]
        xp = self._placement.xp
        if not bool(xp.all(xp.isfinite(z))):
            return math.nan
        placement = Placement(None, self._placement.backend)  # decode to the host
        predicted = self._decode(self._objective().link(z), placement)
        return self._metric(self._validation_targets(data), _host(predicted), _host(weight))

    # -- pickling --------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """scikit-learn pickles the estimator: the network is rebuilt from ``coefs_`` and
        ``intercepts_``; the optimizer's state and early stopping's best weights travel as
        NumPy arrays (``partial_fit`` after unpickling continues the same run)."""
        state = super().__getstate__()
        dropped = ("_net", "_optimizer", "_placement", "_published", "_best_parameters")
        kept = {k: v for k, v in state.items() if k not in dropped}
        if state.get("_optimizer") is not None:
            kept["_optimizer_state"] = _mapped(state["_optimizer"].state_dict(), to_numpy)
        if "_best_parameters" in state:
            kept["_best_parameters"] = _mapped(state["_best_parameters"], to_numpy)
        return kept

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        optimizer_state = state.pop("_optimizer_state", None)
        super().__setstate__(state)
        if "coefs_" in state:  # the next fit or prediction moves everything to its backend
            self._placement = Placement.of(self.coefs_[0], self.backend, self.device)
            self._net, self._optimizer, self._published = None, None, []
            if optimizer_state is not None:
                self._optimizer = make_optimizer(self)
                self._optimizer.load_state_dict(optimizer_state)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags


def scipy_sparse(X: Any) -> bool:
    import scipy.sparse

    return scipy.sparse.issparse(X)


def _host(data: Any) -> Any:
    return to_numpy(data) if is_array(data) else data


def _mapped(arrays: dict[str, Any], move: Any) -> dict[str, Any]:
    """``arrays`` with every array (not the optimizer's ``"step"`` count) passed to ``move``."""
    return {k: move(v) if is_array(v) else v for k, v in arrays.items()}


__all__ = ["BaseMLP"]
