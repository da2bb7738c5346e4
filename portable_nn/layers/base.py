"""The layer contract every portable_nn layer (and every user layer) follows.

A layer is a small object with

* ``params``  — dict name -> trainable array (e.g. ``{"weight": (in, out), "bias": (out,)}``);
* ``bufs``    — dict name -> buffer, a non-trainable array (e.g. BatchNorm running statistics);
* ``forward(x, training=False) -> (y, cache)`` — the output and exactly what backward needs
  (a ``NamedTuple`` with named fields in the built-in layers, e.g. ``DenseCache``);
* ``backward(dy, cache) -> (dx, grads)`` — dL/dx and a dict dL/dparam with the keys of ``params``.

Optional: a layer whose class sets ``skips_input_grad = True`` also accepts
``backward(dy, cache, input_grad=False)`` and then returns ``(None, grads)`` without computing
dL/dx. Containers use it for their first layer when nobody needs the gradient of the data (for
a Dense layer that saves the ``dy @ W.T`` matmul, a third of its backward cost).

Masks (Keras's masking, for sequences ``(batch, time, ...)``): a mask is a boolean array
``(batch, time)``, True for a real step, False for padding.

* ``accepts_mask = True`` (class attribute): the layer's forward is
  ``forward(x, training=False, mask=None)`` and uses ``mask`` (a masked step of a recurrent
  layer keeps the previous state and gets no gradient); it keeps what it used in its cache, so
  backward needs no mask. Masks never reach the forward of a layer without ``accepts_mask``.
* ``compute_mask(x, mask) -> mask or None``: the mask of the layer's output, from its input
  ``x`` and the input's ``mask``. By default ``mask`` when the class sets ``keeps_mask = True``
  (the output's steps are the input's: Dense, Activation, Dropout, LayerNormalization), else
  None (the mask stops there). ``Embedding(mask_zero=True)`` makes one: ``x != 0``.
* Containers carry it: ``Sequential`` runs ``forward_masked(x, training, mask) -> (y, cache,
  output mask)`` layer after layer (:meth:`Layer.forward_masked` passes ``mask=`` to layers with
  ``accepts_mask`` and then calls ``compute_mask``); a graph ``Model`` keeps one mask per
  symbolic tensor the same way, and ``layer(x, mask=m)`` on symbolic tensors makes the tensor
  ``m`` (a boolean ``pnn.Input((time,))`` for instance) that node's mask. ``Sequential`` and
  ``Model`` accept a mask and compute their output mask, so they nest. A layer called on a list
  gets a list of its inputs' masks (None when none has one).

Model inputs: ``input_dtype`` (class attribute) is the dtype kind a layer takes when it differs
from its weights' (``"integral"`` for Embedding's indices; a tuple, one kind per input, for a
layer called on a list); ``input_checks(label, x)`` returns lazy value checks (see
:mod:`portable_nn.validation`) that ``fit``/``evaluate``/``predict`` run once on the whole
data fed to the layer from a model input (Embedding: indices in ``[0, input_dim)``), within
their one device read. A layer giving no gradient to its input (integer indices) returns
``dx = None``.

Backward never mutates parameters (JAX arrays are immutable). A training-mode forward that
updates buffers rebinds the entries of ``bufs`` to new arrays instead of writing in place.
Weights are created by :meth:`build` when the input shape is first known (lazy, Keras style),
or up front when ``input_shape`` is given, on the active backend's device and dtype.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, NamedTuple

from portable_nn.backend import has_dtype, namespace_and_device
from portable_nn.validation import (
    Check,
    check_like,
    flag,
    format_shape,
    require_dtype,
    require_shape,
)

Shape = tuple[Any, ...]

# Filled as classes are defined (__init_subclass__); private bases (``_Normalization``) stay out.
LAYER_REGISTRY: dict[str, type[Layer]] = {}

# Modules that define built-in layer and model classes. Lookups import them first, so the registry
# knows every built-in class however the package was imported: a fresh process that only calls
# ``pnn.load_model`` has never touched ``pnn.Sequential``.
BUILTIN_LAYER_MODULES = ("portable_nn.layers", "portable_nn.models", "portable_nn.graph")


_NAMES_USED: dict[str, int] = {}


class Symbolic:
    """Marker base of symbolic tensors (``pnn.Input``): calling a layer on them records a node of
    a graph model instead of computing (see :mod:`portable_nn.graph`)."""

    __slots__ = ()


def is_symbolic(x: Any) -> bool:
    """``x`` is a symbolic tensor, or a list/tuple/dict holding one."""
    if isinstance(x, (list, tuple, dict)):
        return any(isinstance(v, Symbolic) for v in (x.values() if isinstance(x, dict) else x))
    return isinstance(x, Symbolic)


def default_name(class_name: str) -> str:
    """Keras's snake case: ``BatchNormalization`` -> ``batch_normalization``, ``ReLU`` ->
    ``re_lu``, ``Conv2D`` -> ``conv2d``, ``MaxPooling2D`` -> ``max_pooling2d``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """``base`` the first time, then ``base_1``, ``base_2``, ... (as Keras names layers)."""
    count = _NAMES_USED.get(base, 0)
    _NAMES_USED[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


class Layer:
    """Base class: parameter bookkeeping, lazy build, input checks, config."""

    has_training_behaviour: ClassVar[bool] = False
    skips_input_grad: ClassVar[bool] = False  # backward(dy, cache, input_grad=False) supported
    accepts_mask: ClassVar[bool] = False  # forward(x, training=False, mask=None) uses a mask
    keeps_mask: ClassVar[bool] = False  # the output carries the input's mask unchanged
    input_dtype: ClassVar[Any] = None  # None: the weights' dtype (real floating without any)
    # constructor argument -> the parameters it regularizes (Dense: kernel_regularizer -> weight)
    REGULARIZABLE: ClassVar[dict[str, tuple[str, ...]]] = {}
    regularizers: dict[str, Any] = {}  # argument -> Regularizer, set by set_regularizers
    activity_regularizer: Any = None  # a Regularizer of the layer's output (any layer)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            LAYER_REGISTRY[cls.__name__] = cls

    def __init__(self, *, input_shape: Shape | None = None, name: str | None = None) -> None:
        self.name = name or unique_name(default_name(type(self).__name__))
        self.params: dict[str, Any] = {}
        self.bufs: dict[str, Any] = {}
        self.built = False
        self.input_shape: Shape | None = None
        if input_shape is not None:
            self.build((None, *tuple(input_shape)))

    # -- building -----------------------------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        """Create ``params``/``bufs`` for inputs of ``input_shape`` (batch axis first)."""
        self.input_shape = tuple(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """Output shape for ``input_shape`` (batch axis first); identity by default."""
        return tuple(input_shape)

    def ensure_built(self, x: Any) -> None:
        """Build from ``x``'s shape on first use, then check ``x`` fits the built layer.

        If the first input does not fit the weights just made (another namespace, device or
        dtype than the active backend's), the build is undone before the error propagates.
        """
        if self.built:
            self.check_input(x)
            return
        self.build((None, *tuple(x.shape[1:])))
        try:
            self.check_input(x)
        except (TypeError, ValueError):
            self.params, self.bufs, self.built, self.input_shape = {}, {}, False, None
            raise

    def check_input(self, x: Any) -> None:
        """Raise ``ValueError`` naming both shapes when ``x`` does not match the built input shape,
        and when ``x`` lives in another namespace/device than the parameters (the buffers when
        there are none); ``TypeError`` for another dtype, or, in a layer without arrays, for an
        input that is not real floating. Fast path: Python tuple compare and the standard's
        ``.device`` attribute."""
        expected = self.input_shape
        if expected is not None and x.shape[1:] != expected[1:]:  # torch.Size is a tuple
            got = tuple(x.shape)
            if len(got) != len(expected) or any(
                e is not None and e != g for e, g in zip(expected[1:], got[1:])
            ):
                raise ValueError(
                    f"{self.name}: expected input of shape {format_shape(expected)}, "
                    f"received shape {format_shape(got)}"
                )
        arrays = self.params or self.bufs  # a layer with buffers only compares with those
        kind = self.input_dtype if isinstance(self.input_dtype, str) else None
        if kind is not None or not arrays:  # a kind of its own, or nothing to compare with
            if not has_dtype(x, kind or "real floating"):
                expected = _KIND_TEXT.get(kind or "real floating", f"of kind {kind!r}")
                require_dtype(f"{self.name}: input", x, kind or "real floating", expected)
            if not arrays:
                return
        first = next(iter(arrays.values()))
        device = getattr(x, "device", None)
        same = type(x) is type(first) and device is not None
        if not same or device != getattr(first, "device", None):
            try:
                namespace_and_device(x, first)
            except ValueError as exc:
                raise ValueError(f"{self.name}: input and weights differ: {exc}") from None
        if kind is None and x.dtype != first.dtype:
            raise TypeError(
                f"{self.name}: input dtype {x.dtype} differs from the weights' dtype "
                f"{first.dtype}; cast the input (pnn.asarray does) or change the backend dtype"
            )

    # -- running ------------------------------------------------------------------------------
    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        raise NotImplementedError

    def backward(self, dy: Any, cache: Any) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError

    def check_gradient(self, dy: Any, shape: tuple[int, ...]) -> None:
        """``ValueError`` unless the upstream gradient ``dy`` has the output's ``shape``."""
        if dy.shape != shape:  # torch.Size is a tuple
            require_shape(f"{self.name}: upstream gradient dy", dy, shape)

    def forward_masked(
        self, x: Any, training: bool = False, mask: Any = None
    ) -> tuple[Any, Any, Any]:
        """``(y, cache, output mask)``: :meth:`forward`, given ``mask`` only with
        ``accepts_mask``, then :meth:`compute_mask` (what containers call; see the module
        docstring)."""
        if self.accepts_mask:
            y, cache = self.forward(x, training, mask=mask)  # type: ignore[call-arg]
        else:
            y, cache = self.forward(x, training)
        if self.activity_regularizer is not None and _ACTIVITY:  # a training/test step runs
            outputs = y if isinstance(y, list) else [y]
            _ACTIVITY[-1].extend(self.activity_regularizer(o) for o in outputs)
            cache = ActivityCache(cache, y)
        return y, cache, self.compute_mask(x, mask)

    def backward_from(self, dy: Any, cache: Any, **options: Any) -> tuple[Any, dict[str, Any]]:
        """:meth:`backward` of a container's step: a cache made with an activity regularizer
        adds the penalty's gradient ``dR/dy`` to ``dy`` first."""
        if isinstance(cache, ActivityCache):
            reg, y = self.activity_regularizer, cache.y
            if isinstance(y, list):
                dy = [reg.gradient(o) if d is None else d + reg.gradient(o) for d, o in zip(dy, y)]
            else:
                dy = dy + reg.gradient(y)
            cache = cache.cache
        return self.backward(dy, cache, **options)

    def compute_mask(self, x: Any, mask: Any) -> Any:
        """The output's mask: the input's ``mask`` when ``keeps_mask``, else None."""
        return mask if self.keeps_mask else None

    def input_checks(self, label: str, x: Any) -> list[Check]:
        """Lazy value checks of data ``x`` fed to this layer from a model input (``label`` names
        it in messages); none by default (floating data is checked finite for every model)."""
        return []

    def __call__(self, x: Any, mask: Any = None) -> Any:
        """Inference: ``forward(x, training=False)[0]`` (with ``mask`` when the layer accepts
        one); on symbolic tensors (``pnn.Input``) the call is recorded as a node of a graph model
        (:func:`portable_nn.graph.call_symbolic`; a symbolic ``mask`` becomes the node's mask)."""
        if is_symbolic(x) or is_symbolic(mask):
            from portable_nn.graph import call_symbolic

            return call_symbolic(self, x, mask)
        return self.forward_masked(x, False, mask)[0]

    # -- regularization -----------------------------------------------------------------------
    def set_regularizers(self, **by_argument: Any) -> None:
        """Keep ``{argument: pnn.regularizers.get(value)}`` for the arguments in
        :attr:`REGULARIZABLE` that are not None (constructors call it with theirs)."""
        from portable_nn import regularizers

        self.activity_regularizer = regularizers.get(by_argument.pop("activity_regularizer", None))
        self.regularizers = {
            arg: regularizers.get(value) for arg, value in by_argument.items() if value is not None
        }

    def penalties(self) -> tuple[Any, dict[str, Any]]:
        """``(sum of the penalties, {parameter: penalty gradient})`` of this layer's
        regularizers, ``(0.0, {})`` without any (containers: :func:`gathered_penalties`)."""
        total: Any = 0.0
        grads: dict[str, Any] = {}
        for arg, regularizer in self.regularizers.items():
            for name in self.REGULARIZABLE[arg]:
                if name in self.params:
                    w = self.params[name]
                    total = total + regularizer(w)
                    grads[name] = regularizer.gradient(w)
        return total, grads

    # -- parameters ---------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        """False freezes the layer (Keras): ``fit`` leaves its weights alone and the optimizer
        keeps no slots for them (:meth:`trainable_parameters`); a frozen BatchNormalization
        normalises with its running statistics. Containers pass the value to every layer."""
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.__dict__["_trainable"] = flag("trainable", value)

    def parameters(self) -> dict[str, Any]:
        """Trainable arrays by name (a new dict; the arrays themselves are not copied), frozen
        or not: checkpoints and ``set_parameters`` see them all."""
        return dict(self.params)

    def trainable_parameters(self) -> dict[str, Any]:
        """The parameters ``fit`` updates: all of them, none when the layer is frozen."""
        return dict(self.params) if self.trainable else {}

    def buffers(self) -> dict[str, Any]:
        """Non-trainable arrays by name (e.g. running statistics)."""
        return dict(self.bufs)

    def state_dict(self) -> dict[str, Any]:
        """Parameters and buffers together, for checkpoints."""
        return {**self.params, **self.bufs}

    def set_parameters(self, values: dict[str, Any]) -> None:
        """Replace some or all trainable arrays after checking names, shapes and dtypes.

        All entries are checked before any is assigned, so a bad dict changes nothing.
        """
        check_entries(self.name, self.params, values, "parameter")
        self.params.update(values)

    def load_state_dict(self, values: dict[str, Any], strict: bool = True) -> None:
        """Load parameters and buffers; with ``strict`` every entry must be present."""
        own = self.state_dict()
        if strict:
            missing = sorted(set(own) - set(values))
            if missing:
                raise ValueError(f"{self.name}: state dict is missing {missing}")
        check_entries(self.name, own, values, "entry")
        for key, value in values.items():
            (self.params if key in self.params else self.bufs)[key] = value

    # -- configuration ------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """JSON-friendly constructor arguments (subclasses extend it)."""
        config: dict[str, Any] = {"name": self.name}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape[1:])
        if self.regularizers or self.activity_regularizer is not None:
            from portable_nn.regularizers import serialize

            config.update({arg: serialize(r) for arg, r in self.regularizers.items()})
            if self.activity_regularizer is not None:
                config["activity_regularizer"] = serialize(self.activity_regularizer)
        if not self.trainable:
            config["trainable"] = False
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def __repr__(self) -> str:
        """``Class(arg=value, ..., name=...)`` with the config's arguments that are not defaults."""
        defaults = {k: p.default for k, p in inspect.signature(type(self)).parameters.items()}
        config = self.get_config()
        skip = {"name", "input_shape"}  # the name comes last
        args = [f"{k}={v!r}" for k, v in config.items() if k not in skip and defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join([*args, f'name={self.name!r}'])})"


_KIND_TEXT = {"real floating": "a real floating array", "integral": "an integer array (indices)"}


def gathered_penalties(children: Iterable[tuple[str, Layer]]) -> tuple[Any, dict[str, Any]]:
    """The penalties of ``(prefix, layer)`` children: their sum and their gradients under
    ``prefix + name`` (what containers and wrappers report as their own)."""
    total: Any = 0.0
    grads: dict[str, Any] = {}
    for prefix, layer in children:
        value, own = layer.penalties()
        if own:
            total = total + value
            grads.update({prefix + key: g for key, g in own.items()})
    return total, grads


class ActivityCache(NamedTuple):
    """A layer's cache with its output ``y``, kept for its activity regularizer's gradient."""

    cache: Any
    y: Any


_ACTIVITY: list[list[Any]] = []  # the open collectors of activity penalties (innermost last)


@contextlib.contextmanager
def activity_penalties() -> Iterator[list[Any]]:
    """Collect the activity penalties ``R(y)`` of the layers run inside (0-d arrays, in call
    order); outside such a block layers record nothing (a plain ``model(x)`` call)."""
    found: list[Any] = []
    _ACTIVITY.append(found)
    try:
        yield found
    finally:
        _ACTIVITY.pop()


def check_entries(owner: str, own: dict[str, Any], values: dict[str, Any], what: str) -> None:
    """``ValueError`` unless every entry of ``values`` matches the entry of ``own`` with its name
    in shape, dtype, namespace and device (the message names ``owner``, ``what`` and the key).

    Nothing is assigned: containers call it on the whole dict before changing anything.
    """
    for key, value in values.items():
        if key not in own:
            raise ValueError(f"{owner}: unknown {what} {key!r}; expected one of {sorted(own)}")
        check_like(f"{owner}: {what} {key!r}", value, own[key])


def registered_layers() -> dict[str, type[Layer]]:
    """Every layer class by name: the built-in ones (imported here) and user subclasses."""
    for module in BUILTIN_LAYER_MODULES:
        importlib.import_module(module)
    return LAYER_REGISTRY


def layer_from_config(class_name: str, config: dict[str, Any]) -> Layer:
    """Rebuild a layer from ``{"class_name", "config"}`` as written by ``get_config``."""
    try:
        cls = registered_layers()[class_name]
    except KeyError:
        raise ValueError(f"unknown layer class {class_name!r}") from None
    config = dict(config)
    frozen = config.pop("trainable", True) is False  # written only for a frozen layer
    layer = cls.from_config(config)
    if frozen:
        layer.trainable = False
    return layer


__all__ = [
    "BUILTIN_LAYER_MODULES",
    "ActivityCache",
    "activity_penalties",
    "LAYER_REGISTRY",
    "Layer",
    "Shape",
    "Symbolic",
    "check_entries",
    "gathered_penalties",
    "default_name",
    "format_shape",
    "is_symbolic",
    "layer_from_config",
    "registered_layers",
    "unique_name",
]
