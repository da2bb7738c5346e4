"""``compile`` / ``fit`` / ``evaluate`` / ``predict`` / ``train_step`` for a model (Keras-shaped).

The model supplies ``forward(x, training) -> (y, caches)``, ``backward(dy, caches) -> (dx,
grads)``, ``parameters()``, ``build(shape)``, ``compute_output_shape``, ``generator`` and
``output_names``; a graph model with several inputs or outputs (``takes_list``, more than one
output name) takes ``x``/``y`` as lists or dicts (``_flat_inputs``/``_flat_targets`` turn them
into lists in model order) and returns a list or dict from ``predict`` (``_pack``).

Host syncs: none per batch. Loss and metric sums stay on the device; each epoch reads its logs
(training and validation together) back with one transfer, the input checks cost one more per
call, and a :class:`~portable_nn.callbacks.ProgressBar` reads values only when it redraws.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import array_api_compat

from portable_nn import random as pnn_random
from portable_nn import validation
from portable_nn.backend import has_dtype, is_array, move, namespace_of, to_numpy
from portable_nn.callbacks import CallbackList
from portable_nn.data import (
    ArrayData,
    BatchStream,
    Weighted,
    backend_of_model,
    check_shapes,
    each,
    first,
    is_stream,
    unweighted,
)
from portable_nn.losses import SparseCategoricalCrossentropy

from . import loop
from .rng import RngStateMixin
from .steps import StepsMixin

Method = TypeVar("Method", bound=Callable[..., Any])
Data = ArrayData | BatchStream


def model_scope(model: Any) -> Any:
    """The model's device scope (:meth:`Backend.scope`: on CuPy its device becomes the current
    one, so every array made and kernel launched lands there)."""
    return backend_of_model(model).scope()


def on_model_device(method: Method) -> Method:
    """Run ``method`` inside :func:`model_scope`."""

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with model_scope(self):
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


class TrainingMixin(StepsMixin, RngStateMixin):
    """Keras's training API on top of a model's forward/backward (see the module docstring)."""

    takes_list = False  # one input; a graph model with several takes a list

    def _init_training(self) -> None:
        self.loss: Any = None
        self.optimizer: Any = None
        self.compiled_metrics: list[Any] = []
        self.loss_weights: Any = None  # a number, or a list for several outputs
        self._output_metrics: list[list[Any]] | None = None  # several outputs: per output
        self.jit: bool | str = "auto"
        self._compiled_step: Any = None  # training.compiled.CompiledStep, made on first use
        self.stop_training = False
        self.epoch = 0  # epochs completed (for exact resume: fit(..., initial_epoch=model.epoch))
        self.history: Any = None
        self._parallel: Any = None  # distributed.parallel.DataParallel during fit(distributed)

    # -- fit ----------------------------------------------------------------------------------
    @on_model_device
    def fit(
        self,
        x: Any,
        y: Any = None,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks: list[Any] | None = None,
        verbose: int = 1,
        seed: int | None = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        sample_weight: Any = None,
        class_weight: dict[int, float] | None = None,
        distributed: bool = False,
    ) -> Any:
        """Train for ``epochs - initial_epoch`` epochs; returns the :class:`History`.

        ``x``, ``y``: arrays of any supported library, NumPy memory maps (read batch by batch),
        lists or dicts of them for a model with several inputs or outputs (dicts by input and
        output name), or ``x`` alone as an iterable/generator of ``(x, y)`` batches
        (``steps_per_epoch`` batches per epoch, else until it runs out; Keras's rules, see
        :mod:`portable_nn.data.stream`). On arrays ``steps_per_epoch`` (``validation_steps``)
        keeps the first batches of each epoch's order (of the validation data).
        ``validation_split`` holds out the LAST fraction of the samples (before shuffling);
        ``validation_data`` (arrays ``(x_val, y_val)`` or a generator, with
        ``validation_steps``) takes precedence over it. ``seed`` reseeds the
        model's generator (batch order) and every layer's generator (dropout masks), so two
        fits from the same weights with the same seed give identical losses; without it the
        generators simply continue. Bad input raises before any parameter changes.

        ``sample_weight`` ``(samples,)`` (or ``(samples, 1)``) weighs each sample's loss (the
        loss's ``sample_weight``: with the default reduction a batch's loss is ``sum w l / n``)
        and the metrics (``sum w v / sum w``), as Keras; ``class_weight`` ``{class: weight}``
        makes them from the labels instead (one output only; classes it leaves out weigh 1;
        one-hot targets by their argmax, a single sigmoid output by the rounded target).
        ``validation_data`` may carry its own weights: ``(x_val, y_val, sample_weight_val)``;
        a generator may yield ``(x, y, sample_weight)`` batches. Weights are checked once with
        the data (finite, >= 0, one per sample).

        ``distributed=True``: data-parallel training over the processes of an ``mpiexec`` or
        ``torchrun`` job (:mod:`portable_nn.distributed`): every process passes the same
        arrays; each trains on its shard of every global batch of ``batch_size`` samples and
        the results equal one process's. Only rank 0 shows progress. One process: a plain fit.
        """
        self._require_compiled("fit")
        validation.non_negative_int("epochs", epochs)
        validation.positive_int("batch_size", batch_size)
        validation.non_negative_int("initial_epoch", initial_epoch)
        split = validation.fraction("validation_split", validation_split)
        for name, value in (
            ("steps_per_epoch", steps_per_epoch),
            ("validation_steps", validation_steps),
        ):
            if value is not None:
                validation.positive_int(name, value)
        weights = (sample_weight, class_weight)
        parallel = None
        if distributed:
            settings = dict(
                batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch,
                shuffle=bool(shuffle), validation_split=split, seed=seed,
                weights=[sample_weight is not None, class_weight is not None],
            )  # fmt: skip
            from portable_nn.distributed.parallel import data_parallel  # its imports need ours

            parallel = data_parallel(self, x, y, validation_data, settings)
            verbose = verbose if parallel.engine.rank == 0 else 0
        train, val = self._fit_data(
            x, y, validation_data, split, batch_size, steps_per_epoch, validation_steps, weights
        )
        if parallel is not None:
            parallel.attach(train, val)
        self.optimizer.retarget(self.trainable_parameters())  # layers frozen since the last fit
        steps = train.steps(batch_size)
        params = dict(
            epochs=epochs,
            steps=steps,
            verbose=verbose,
            batch_size=batch_size,
            samples=train.samples(batch_size),
        )
        cbs = _callback_list(self, callbacks, params, add_history=True)
        if seed is not None:
            self._reseed(seed)
        self.history = cbs.history
        self.stop_training = False
        self._parallel = parallel
        try:
            return self._fit_epochs(train, val, batch_size, shuffle, cbs, initial_epoch, epochs)
        finally:
            self._parallel = None

    def _fit_epochs(
        self, train: Data, val: Data | None, batch_size: int, shuffle: bool, cbs: Any,
        initial_epoch: int, epochs: int,
    ) -> Any:  # fmt: skip
        cbs.on_train_begin(None)
        logs: dict[str, Any] = {}
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch, None)
            epoch_logs = self._fit_epoch(train, val, batch_size, shuffle, cbs)
            if epoch_logs is not None:  # None: the source had no batch left for this epoch
                logs = epoch_logs
                self.epoch = epoch + 1
                cbs.on_epoch_end(epoch, logs)
            if getattr(train, "exhausted", False):
                warnings.warn(
                    "the batch source ran out of data; stopping training (give "
                    "steps_per_epoch * epochs batches, or a source that can restart)",
                    UserWarning,
                    stacklevel=2,
                )
                self.stop_training = True
            if self.stop_training:
                break
        self.optimizer.finalize_variable_values(self)  # use_ema: the average becomes the weights
        cbs.on_train_end(logs)
        return self.history

    def _fit_epoch(
        self, train: Data, val: Data | None, batch_size: int, shuffle: bool, cbs: Any
    ) -> dict[str, float] | None:
        """Train on every batch, validate, then read all the epoch's logs back at once (None
        when a batch source had nothing left)."""
        order = train.order(self.generator, shuffle)
        totals = loop.run_epoch(self, train, batch_size, order, cbs)
        if not totals.sums:  # no batch (a distributed process may hold no rows of some)
            return None
        if self._parallel is not None:
            self._parallel.end_epoch()
        tested = None
        if val is not None:
            cbs.on_test_begin(None)
            tested = loop.run_test(self, val, batch_size, cbs)
        totals, tested = self._summed(totals, tested)
        logs = totals.means()
        if tested is None:
            return loop.read_logs(logs)
        logs = loop.read_logs(logs | tested.means("val_"))  # the epoch's one sync
        cbs.on_test_end({k[4:]: v for k, v in logs.items() if k.startswith("val_")})
        return logs

    def _summed(self, *totals: loop.Totals | None) -> tuple[loop.Totals | None, ...]:
        """The sums of every process of a distributed fit (one all-reduce), else as they are."""
        parallel = getattr(self, "_parallel", None)
        return totals if parallel is None else parallel.reduce(*totals)

    def _fit_data(
        self,
        x: Any,
        y: Any,
        validation_data: Any,
        split: float,
        batch_size: int,
        steps: int | None = None,
        validation_steps: int | None = None,
        weights: tuple[Any, Any] = (None, None),
    ) -> tuple[Data, Data | None]:
        """Place, split and check the training (and validation) data: one sync in all."""
        train = self._prepare(x, y, "", steps, *weights)
        val = None
        if is_stream(validation_data):
            val = self._prepare(validation_data, None, "validation_data", validation_steps)
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError(
                    "validation_data must be a tuple (x_val, y_val), (x_val, y_val, "
                    "sample_weight_val) or a batch generator. Received: "
                    f"{type(validation_data).__name__}"
                )
            x_val, y_val, *w_val = validation_data
            val = self._prepare(x_val, y_val, "validation_data", validation_steps, *w_val)
        elif split > 0.0:
            train, val = train.split(split)
            val.max_steps = validation_steps
        self._check_values(batch_size, train, val)
        return train, val

    def _prepare(
        self,
        x: Any,
        y: Any,
        what: str,
        steps: int | None = None,
        sample_weight: Any = None,
        class_weight: dict[int, float] | None = None,
    ) -> Data:
        """Shapes and dtypes (free), then build and place (the dry run comes after the value
        checks: an Embedding's indices are checked before any forward reads them). Sample
        weights travel with the targets as a :class:`Weighted`."""
        label = what or "fit/evaluate"
        if sample_weight is not None and class_weight is not None:
            raise ValueError(f"{label}: give sample_weight or class_weight, not both (as Keras)")
        if is_stream(x):
            if y is not None or sample_weight is not None or class_weight is not None:
                raise ValueError(
                    f"{label}: with a batch generator x, y must be None, and so must "
                    "sample_weight and class_weight (yield (x, y, sample_weight) batches)"
                )
            return self._stream(x, steps, what)
        if y is None:
            raise ValueError(f"{label}: y is required (targets for the loss)")
        targets = self._targets_of(y)
        if sample_weight is not None:
            targets = Weighted(targets, _as_weights(sample_weight))
        data = self._arrays(self._inputs_of(x), targets, what)
        data.max_steps = steps
        targets, weights = unweighted(data.y)
        targets = self._labels_as_loss_expects(targets)
        if class_weight is not None:
            weights = self._class_weights(class_weight, targets)
        data.y = targets if weights is None else Weighted(targets, weights)
        return data

    def _class_weights(self, class_weight: dict[int, float], y: Any) -> Any:
        """Per-sample weights ``class_weight.get(class of sample n, 1.0)`` in ``y``'s namespace
        and place, without a host read (labels outside the classes are clipped here and
        reported by the label check that follows)."""
        if len(self.output_names) > 1:
            raise ValueError("class_weight needs a model with one output; use sample_weight")
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight must be a dict {{class: weight}}; got {class_weight!r}")
        classes = max(int(self.compute_output_shape(self.input_shape)[-1]), 2)
        for key, value in class_weight.items():
            if validation.non_negative_int("a class_weight key", key) >= classes:
                raise ValueError(
                    f"class_weight names class {key!r}; the model has classes 0 to {classes - 1}"
                )
            validation.real_number(f"class_weight[{key!r}]", value, low=0.0)
        xp, device = namespace_of(y), array_api_compat.device(y)
        dtype = getattr(xp, backend_of_model(self).dtype_name)
        table = [float(class_weight.get(c, 1.0)) for c in range(classes)]
        table = xp.asarray(table, dtype=dtype, device=device)
        if y.ndim == 2 and y.shape[1] > 1:  # one-hot or probabilities: the argmax
            labels = xp.argmax(y, axis=1)
        elif has_dtype(y, "integral"):
            labels = xp.reshape(y, (-1,))
        else:  # one sigmoid output: the rounded target
            labels = xp.astype(xp.round(xp.reshape(y, (-1,))), xp.int64)
        return xp.take(table, xp.clip(labels, 0, classes - 1), axis=0)

    def _inputs_of(self, x: Any) -> Any:
        """``x`` as the data package takes it: an array, or a list of arrays in input order."""
        x = self._flat_inputs(x)
        return [_with_shape(a) for a in x] if self.takes_list else _with_shape(x)

    def _targets_of(self, y: Any) -> Any:
        """``y`` as an array, or a list of arrays in output order (several outputs)."""
        y = self._flat_targets(y)
        return [_with_shape(a) for a in y] if len(self.output_names) > 1 else _with_shape(y)

    def _flat_inputs(self, x: Any) -> Any:
        return x

    def _flat_targets(self, y: Any) -> Any:
        return y

    def _pack(self, y: Any) -> Any:
        return y

    def _arrays(self, x: Any, y: Any, what: str) -> ArrayData:
        """``x``, ``y`` as :meth:`_inputs_of` and :meth:`_targets_of` give them."""
        check_shapes(x, y, what, self.input_rules())
        if not self.built:
            self.build((None, *tuple(x.shape[1:])))
        return ArrayData.from_inputs(x, y, backend_of_model(self))

    def _stream(self, source: Any, steps: int | None, what: str) -> BatchStream:
        """A :class:`BatchStream`; an unbuilt model is built from the first batch's shape."""
        stream = BatchStream(source, steps, backend_of_model(self))
        if not self.built:
            self.build((None, *tuple(_with_shape(stream.peek()).shape[1:])))
            stream.backend = backend_of_model(self)
        stream.inputs, stream.what, stream.rules = self._inputs_of, what, self.input_rules()
        stream.targets = lambda y: self._labels_as_loss_expects(self._targets_of(y))
        stream.weights = _as_weights
        return stream

    def _labels_as_loss_expects(self, y: Any) -> Any:
        """(N, 1) integer labels become (N,) for sparse cross-entropy (as Keras squeezes)."""
        if isinstance(self.loss, list):
            return [_squeezed(loss, t) for loss, t in zip(self.loss, y)]
        return _squeezed(self.loss, y)

    def _dry_run(self, data: ArrayData, batch_size: int) -> None:
        """Inference forward, loss and metrics on the first batch: catches feature sizes, target
        shapes and dtypes before training changes anything (no sync, no state change). A full
        batch, so that libraries that compile per shape (JAX) reuse the work in training."""
        xb, yb, _ = data.first(batch_size)
        y_pred = self.forward(xb, training=False)[0]
        if yb is None:  # predict
            return
        self._loss_value_and_gradient(yb, y_pred)
        targets, weights = unweighted(yb)
        for metric in self.compiled_metrics:
            metric.batch_value(targets, y_pred, weights)

    def _check_values(self, batch_size: int, *datasets: Data | None) -> None:
        """NaN/inf, label range and the input rules (an Embedding's index range) over the
        whole data, one read-back for everything; then the dry run of each."""
        shapes = self.compute_output_shape(self.input_shape)
        classes = each(lambda shape: int(shape[-1]), shapes)
        ignore = each(lambda loss: getattr(loss, "ignore_class", None), self.loss)
        rules, found = self.input_rules(), []
        for data, what in zip(datasets, ("", "validation")):
            if data is not None:
                found += data.value_checks(classes, what, rules, ignore=ignore)
        validation.run_checks(found)
        for data in datasets:
            if data is not None:
                self._dry_run(data, batch_size)

    # -- evaluate / predict -------------------------------------------------------------------
    @on_model_device
    def evaluate(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        verbose: int = 0,
        callbacks: list[Any] | None = None,
        steps: int | None = None,
        sample_weight: Any = None,
    ) -> dict[str, float]:
        """Mean loss and metrics over ``(x, y)`` (or a generator of batches, ``steps`` of them
        or until it runs out) in inference mode, as Python floats; ``sample_weight`` as in
        :meth:`fit`."""
        self._require_compiled("evaluate")
        validation.positive_int("batch_size", batch_size)
        data = self._prepare(x, y, "", steps, sample_weight)
        self._check_values(batch_size, data)
        cbs = _callback_list(self, callbacks, dict(verbose=verbose, steps=data.steps(batch_size)))
        cbs.on_test_begin(None)
        logs = loop.read_logs(loop.run_test(self, data, batch_size, cbs).means())
        cbs.on_test_end(logs)
        return logs

    @on_model_device
    def predict(
        self,
        x: Any,
        batch_size: int = 32,
        verbose: int = 0,
        callbacks: list[Any] | None = None,
        steps: int | None = None,
    ) -> Any:
        """Inference outputs for ``x``, returned in ``x``'s namespace and on its device (host
        data such as lists gives a NumPy array; a generator of batches gives the outputs on
        the model's device)."""
        validation.positive_int("batch_size", batch_size)
        inputs = None if is_stream(x) else self._inputs_of(x)
        data = self._stream(x, steps, "") if inputs is None else self._arrays(inputs, None, "")
        if inputs is not None:  # the input rules only (indices in range): one read at most
            data.max_steps = steps  # arrays: the first batches (Keras's steps)
            validation.run_checks(data.value_checks(0, "", self.input_rules(), finite=False))
        cbs = _callback_list(self, callbacks, dict(verbose=verbose, steps=data.steps(batch_size)))
        cbs.on_predict_begin(None)
        y = loop.run_predict(self, data, batch_size, cbs)
        cbs.on_predict_end(None)
        if inputs is not None:  # back where x was
            y = each(lambda a: move(a, first(inputs)), y)
        return self._pack(y)

    # -- helpers ------------------------------------------------------------------------------
    def _reseed(self, seed: int) -> None:
        """A new model generator and new layer generators, all derived from ``seed``."""
        root = pnn_random.Generator(seed)
        self.generator = pnn_random.Generator(root.host.integers(2**62))
        for _, layer in self._layers_with_generators():
            layer.generator = pnn_random.Generator(root.host.integers(2**62))


def _callback_list(
    model: Any, callbacks: Any, params: dict[str, Any], add_history: bool = False
) -> CallbackList:
    """The call's callbacks, with a ``ProgressBar`` for ``verbose > 0`` (and a ``History``)."""
    return CallbackList(
        callbacks, model=model, params=params, add_history=add_history, add_progbar=True
    )


def _as_weights(sample_weight: Any) -> Any:
    """``sample_weight`` as a float array of shape ``(samples,)`` where it is (a ``(samples,
    1)`` column is flattened, integers and booleans become float32); other shapes are left for
    ``check_shapes`` to name."""
    w = _with_shape(sample_weight)
    xp = namespace_of(w)
    if w.ndim == 2 and w.shape[1] == 1:
        w = xp.reshape(w, (-1,))
    return w if has_dtype(w, "real floating") else xp.astype(w, xp.float32)


def _squeezed(loss: Any, y: Any) -> Any:
    if isinstance(loss, SparseCategoricalCrossentropy) and tuple(y.shape[1:]) == (1,):
        return namespace_of(y).reshape(y, (-1,))
    return y


def _with_shape(data: Any) -> Any:
    """Arrays as they are; lists and other host data as NumPy (via the backend helpers)."""
    return data if is_array(data) else to_numpy(data)


__all__ = ["TrainingMixin"]
