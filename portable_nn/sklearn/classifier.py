"""``MLPClassifier``: scikit-learn's, trained by portable_nn where the data lives."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sklearn.base import ClassifierMixin, _fit_context
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels

from portable_nn.backend import is_array, namespace_of, to_numpy

from ._base import BaseMLP
from ._placement import Placement


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier`` (same parameters,
    defaults, attributes, messages and training arithmetic), whose network is a portable_nn
    ``Sequential`` trained on the namespace and device of ``X`` (NumPy, torch, CuPy, JAX,
    array-api-strict); predictions, probabilities, ``classes_`` and ``coefs_`` come back there.

    Minimises the log-loss (softmax output for several classes, logistic for binary and
    multilabel targets) plus ``alpha / (2 sum(sample_weight)) * sum ||W||^2`` with ``lbfgs``,
    ``sgd`` or ``adam``. ``backend``/``device``: train elsewhere than ``X`` (a backend name of
    ``pnn.set_backend`` and a device of it); results still come back in ``X``'s namespace.
    String labels need host (NumPy, list) targets; device targets must be numeric.
    """

    def __init__(
        self,
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
            loss="log_loss", shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            backend=backend, device=device,
        )  # fmt: skip

    # -- targets ---------------------------------------------------------------------------------
    def _host_targets(self) -> bool:
        return True

    def _output_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _stratify(self) -> bool:
        return self.n_outputs_ == 1  # as scikit-learn: not for multiclass/multilabel indicators

    def _encode_targets(
        self, y: Any, placement: Placement, incremental: bool, device_input: bool
    ) -> tuple[Any, Any]:
        """scikit-learn's label handling on host labels; returns the indicator targets on the
        training backend and on the host (to stratify the early-stopping split)."""
        if device_input and getattr(y, "dtype", None) is not None and y.dtype.kind not in "biuf":
            raise ValueError(
                "labels of non-NumPy inputs must be numeric: string or object labels need "
                f"NumPy (or list) inputs. Received y of dtype {y.dtype}"
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = placement.from_host(self._label_binarizer.classes_)
        else:
            classes, known = unique_labels(y), self._label_binarizer.classes_
            if self.warm_start:
                if set(classes) != set(known):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {known}, `y` has {classes}"
                    )
            elif len(set(classes) - set(known)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {known}. "
                    f"'y' has {classes}."
                )
        if incremental:  # the first call's classes_ came from the host ``classes``
            self.classes_ = placement.from_host(self._label_binarizer.classes_)
        indicators = self._label_binarizer.transform(y)
        return placement.inward(indicators.astype("float64")), indicators

    # -- fitting ---------------------------------------------------------------------------------
    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> Any:
        """One epoch over ``X``, ``y`` (sgd/adam only); ``classes`` (every label of the full
        data) is required on the first call."""
        classes = None if classes is None else _host(classes)
        if _first_partial_fit_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(_host(y)).startswith("multilabel"):
                self._label_binarizer.fit(_host(y))
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight, incremental=True)

    # -- prediction ------------------------------------------------------------------------------
    def predict(self, X: Any) -> Any:
        """The predicted classes (n_samples,), or the indicator matrix (n_samples, n_classes) of
        a multilabel model, in ``X``'s namespace."""
        probabilities, placement = self._forward(X, "predict")
        return self._decode(probabilities, placement)

    def _decode(self, probabilities: Any, placement: Placement) -> Any:
        xp = namespace_of(probabilities)
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            return placement.outward(xp.astype(probabilities > 0.5, xp.int64))
        if self.out_activation_ == "softmax":
            index = xp.argmax(probabilities, axis=1)
        elif len(self._label_binarizer.classes_) == 1:
            index = xp.zeros(
                probabilities.shape[0], dtype=xp.int64, device=placement.backend.device
            )
        else:
            index = xp.astype(probabilities[:, 0] > 0.5, xp.int64)
        classes = placement.from_host(self._label_binarizer.classes_)
        return namespace_of(classes).take(classes, placement.outward(index), axis=0)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities (n_samples, n_classes) in the order of ``classes_``."""
        return self._probabilities(X, "predict_proba")

    def predict_log_proba(self, X: Any) -> Any:
        """``log(predict_proba(X))``."""
        probabilities = self._probabilities(X, "predict_log_proba")
        return namespace_of(probabilities).log(probabilities)

    def _probabilities(self, X: Any, method: str) -> Any:
        probabilities, placement = self._forward(X, method)
        if self.n_outputs_ == 1:
            xp = namespace_of(probabilities)
            probabilities = xp.concat([1.0 - probabilities, probabilities], axis=1)
        return placement.outward(probabilities)

    score = BaseMLP.score  # not ClassifierMixin's (first in the MRO): it reads device labels

    def _metric(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        return float(accuracy_score(y_true, y_pred, sample_weight=sample_weight))

    def _validation_targets(self, data: Any) -> Any:
        return self._label_binarizer.inverse_transform(data.labels)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


def _host(y: Any) -> Any:
    return to_numpy(y) if is_array(y) else y


def _first_partial_fit_call(est: MLPClassifier, classes: Any) -> bool:
    """scikit-learn's ``_check_partial_fit_first_call`` (its messages), comparing ``classes``
    with a host copy of ``classes_`` (which may live on a device NumPy cannot read)."""
    known = getattr(est, "classes_", None)
    view = SimpleNamespace(classes_=None if known is None else _host(known))
    first = _check_partial_fit_first_call(view, classes)
    if first:
        est.classes_ = view.classes_
    return first


__all__ = ["MLPClassifier"]
