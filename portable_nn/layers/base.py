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

Backward never mutates parameters (JAX arrays are immutable). A training-mode forward that
updates buffers rebinds the entries of ``bufs`` to new arrays instead of writing in place.
Weights are created by :meth:`build` when the input shape is first known (lazy, Keras style),
or up front when ``input_shape`` is given, on the active backend's device and dtype.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any, ClassVar

from portable_nn.backend import has_dtype, namespace_and_device
from portable_nn.validation import check_like, format_shape, require_dtype, require_shape

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
        if not arrays:  # nothing to compare with: any real floating input
            if not has_dtype(x, "real floating"):
                require_dtype(f"{self.name}: input", x, "real floating", "a real floating array")
            return
        first = next(iter(arrays.values()))
        device = getattr(x, "device", None)
        same = type(x) is type(first) and device is not None
        if not same or device != getattr(first, "device", None):
            try:
                namespace_and_device(x, first)
            except ValueError as exc:
                raise ValueError(f"{self.name}: input and weights differ: {exc}") from None
        if x.dtype != first.dtype:
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

    def __call__(self, x: Any) -> Any:
        """Inference: ``forward(x, training=False)[0]``; on symbolic tensors (``pnn.Input``) the
        call is recorded as a node of a graph model (:func:`portable_nn.graph.call_symbolic`)."""
        if is_symbolic(x):
            from portable_nn.graph import call_symbolic

            return call_symbolic(self, x)
        return self.forward(x, training=False)[0]

    # -- parameters ---------------------------------------------------------------------------
    def parameters(self) -> dict[str, Any]:
        """Trainable arrays by name (a new dict; the arrays themselves are not copied)."""
        return dict(self.params)

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
    return cls.from_config(config)


__all__ = [
    "BUILTIN_LAYER_MODULES",
    "LAYER_REGISTRY",
    "Layer",
    "Shape",
    "Symbolic",
    "check_entries",
    "default_name",
    "format_shape",
    "is_symbolic",
    "layer_from_config",
    "registered_layers",
    "unique_name",
]
