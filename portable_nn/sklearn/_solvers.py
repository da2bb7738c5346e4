"""scikit-learn's two ways of training an MLP, on a portable_nn network.

* Stochastic (``sgd``, ``adam``): epochs of mini-batches, scikit-learn's shuffling, stopping
  rules and learning-rate schedules, with ``pnn.optimizers.SGD``/``Adam`` doing the updates.
  scikit-learn's momentum keeps a velocity ``v <- momentum v - lr g`` (``p <- p + v``, Nesterov:
  ``p <- p + momentum v - lr g``), torch's a buffer of gradients: feeding ``SGD(lr=1)`` the
  gradient times the current rate gives scikit-learn's update exactly, also after the rate
  changes (``invscaling``, ``adaptive``). Adam uses the "epsilon hat" form
  (``Adam(epsilon_hat=True)``), as scikit-learn. One host read per epoch (the loss; plus the
  validation predictions with ``early_stopping``). On JAX each mini-batch update is ONE
  ``jax.jit`` call (``_compiled.py``), equal to the eager one to rounding.
* ``lbfgs``: SciPy's L-BFGS-B over the flattened parameters, as scikit-learn, with the loss and
  gradient of the whole data computed by the network where it lives; only the flat parameter
  and gradient vectors cross to the host, once per function evaluation.
"""

from __future__ import annotations

import warnings
from typing import Any

import scipy.optimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, gen_batches, shuffle
from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
from sklearn.utils.optimize import _check_optimize_result

from portable_nn import optimizers
from portable_nn.backend import to_numpy

from ._compiled import CompiledUpdate
from ._network import Objective, loss_and_gradients, parameter_names


def batch_update(est: Any, objective: Objective) -> Any:
    """``(x, y, sample_weight, n, total) -> total + n * loss`` after one update on the batch
    (``total`` None: the first batch's): ONE compiled call on JAX (``_compiled.py``; equal to
    the eager update to rounding), :func:`train_batch` elsewhere or with ``_compile = False``."""
    if est._compile and est._placement.backend.name == "jax":
        return CompiledUpdate(est, objective)

    def update(x: Any, y: Any, sample_weight: Any, n: int, total: Any) -> Any:
        loss = train_batch(est, objective, x, y, sample_weight) * float(n)
        return loss if total is None else total + loss

    return update


def train_batch(est: Any, objective: Objective, x: Any, y: Any, sample_weight: Any) -> Any:
    """One update on one batch; returns the batch loss (0-d, on the device)."""
    net = est._net
    loss, grads = loss_and_gradients(net, objective, x, y, sample_weight)
    if est.solver == "sgd":  # the rate folded into the gradient: scikit-learn's velocity form
        rate = est._learning_rate
        grads = {name: g * rate for name, g in grads.items()}
    est._optimizer.step(net, grads)
    return loss


def make_optimizer(est: Any) -> Any:
    """``SGD(lr=1)`` (the rate goes into the gradients) or ``Adam(epsilon_hat=True)``."""
    if est.solver == "sgd":
        nesterov = est.nesterovs_momentum and est.momentum > 0
        return optimizers.SGD(learning_rate=1.0, momentum=est.momentum, nesterov=nesterov)
    return optimizers.Adam(
        learning_rate=est.learning_rate_init,
        beta_1=est.beta_1,
        beta_2=est.beta_2,
        epsilon=est.epsilon,
        epsilon_hat=True,
    )


def fit_stochastic(est: Any, data: Any, incremental: bool) -> None:
    """scikit-learn's ``_fit_stochastic`` on ``data`` (a :class:`~._data.TrainingData`)."""
    if not incremental or getattr(est, "_optimizer", None) is None:
        est._optimizer, est._learning_rate = make_optimizer(est), float(est.learning_rate_init)
    if est.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    train, val = data, None
    if est.early_stopping:
        train, val = _split(est, data)
    n_samples = train.n_samples
    if est.batch_size == "auto":
        batch_size = min(200, n_samples)
    else:
        if est.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be "
                "clipped",
                stacklevel=5,
            )
        batch_size = min(max(est.batch_size, 1), n_samples)
    update = batch_update(est, est._objective())
    order = train.host_range() if est.shuffle else None
    try:
        est.n_iter_ = 0
        for _ in range(est.max_iter):
            if est.shuffle:
                order = shuffle(order, random_state=est._random_state)  # of the last epoch's
            total = None
            for batch in gen_batches(n_samples, batch_size):
                x, y, w = train.batch(batch, order)
                total = update(x, y, w, batch.stop - batch.start, total)
            est.n_iter_ += 1
            est.loss_ = float(total) / n_samples
            est.t_ += n_samples
            est.loss_curve_.append(est.loss_)
            if est.verbose:
                print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
            _update_no_improvement_count(est, val)
            if est.solver == "sgd" and est.learning_rate == "invscaling":
                est._learning_rate = float(est.learning_rate_init) / (est.t_ + 1) ** est.power_t
            if est._no_improvement_count > est.n_iter_no_change:
                if _trigger_stopping(est, est.early_stopping):
                    break
                est._no_improvement_count = 0
            if incremental:
                break
            if est.n_iter_ == est.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the "
                    "optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=5,
                )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.", stacklevel=5)
    if est.early_stopping:
        est._net.set_parameters(est._best_parameters)


def _split(est: Any, data: Any) -> tuple[Any, Any]:
    """scikit-learn's early-stopping split (stratified for one-output classifiers), drawn
    from the same ``RandomState`` calls, so the same samples land in each part."""
    stratify = data.stratify_labels() if est._stratify() else None
    train_idx, val_idx = train_test_split(
        data.host_range(),
        random_state=est._random_state,
        test_size=est.validation_fraction,
        stratify=stratify,
    )
    if len(val_idx) < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' or the size of "
            "your dataset."
        )
    return data.subset(train_idx), data.subset(val_idx)


def _update_no_improvement_count(est: Any, val: Any) -> None:
    if val is not None:
        score = est._validation_score(val)
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {est.validation_scores_[-1]:f}")
        if score < est.best_validation_score_ + est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            xp = est._placement.xp
            params = est._net.parameters()
            est._best_parameters = {k: xp.asarray(v, copy=True) for k, v in params.items()}
    else:
        if est.loss_curve_[-1] > est.best_loss_ - est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if est.loss_curve_[-1] < est.best_loss_:
            est.best_loss_ = est.loss_curve_[-1]


def _trigger_stopping(est: Any, early_stopping: bool) -> bool:
    """scikit-learn's messages; ``adaptive`` SGD divides the rate by 5 instead, down to 1e-6."""
    what = "Validation score" if early_stopping else "Training loss"
    msg = (
        f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} "
        "consecutive epochs."
    )
    if est.solver != "sgd" or est.learning_rate != "adaptive":
        if est.verbose:
            print(msg + " Stopping.")
        return True
    if est._learning_rate <= 1e-6:
        if est.verbose:
            print(msg + " Learning rate too small. Stopping.")
        return True
    est._learning_rate /= 5.0
    if est.verbose:
        print(f"{msg} Setting learning rate to {est._learning_rate:f}")
    return False


def fit_lbfgs(est: Any, data: Any) -> None:
    """SciPy's L-BFGS-B over ``[W_1.ravel(), ..., W_L.ravel(), b_1, ..., b_L]`` (scikit-learn's
    packing), ``maxiter=max_iter``, ``maxfun=max_fun``, ``gtol=tol``."""
    net, objective = est._net, est._objective()
    names = [n for group in parameter_names(len(net)) for n in group]
    x, y, w = data.whole()
    xp = est._placement.xp

    def packed(values: dict[str, Any]) -> Any:
        return to_numpy(xp.concat([xp.reshape(values[n], (-1,)) for n in names]))

    def unpack(theta: Any) -> None:
        flat = est._placement.inward(theta)
        params, start, new = net.parameters(), 0, {}
        for name in names:
            size = 1
            for d in params[name].shape:
                size *= d
            new[name] = xp.reshape(flat[start : start + size], params[name].shape)
            start += size
        net.set_parameters(new)

    def loss_and_grad(theta: Any) -> tuple[float, Any]:
        unpack(theta)
        loss, grads = loss_and_gradients(net, objective, x, y, w)
        return float(loss), packed(grads)

    iprint = 1 if est.verbose is True or est.verbose >= 1 else -1
    result = scipy.optimize.minimize(
        loss_and_grad,
        packed(net.parameters()),
        method="L-BFGS-B",
        jac=True,
        options={
            "maxfun": est.max_fun,
            "maxiter": est.max_iter,
            "gtol": est.tol,
            **_get_additional_lbfgs_options_dict("iprint", iprint),
        },
    )
    est.n_iter_ = _check_optimize_result("lbfgs", result, est.max_iter)
    est.loss_ = float(result.fun)
    unpack(result.x)


__all__ = ["check_random_state", "fit_lbfgs", "fit_stochastic", "loss_and_gradients"]
