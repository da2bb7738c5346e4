"""``Sequential``: a stack of layers that is itself a layer, with a Keras-style training API;
``_Container``: what it shares with graph models (:class:`portable_nn.graph.Model`).

Forward runs the layers in order and keeps one cache per layer; backward runs them in reverse:

    y = f_n(... f_1(x))           caches = [c_1, ..., c_n]
    dL/dx_i = backward_i(dL/dx_{i+1}, c_i)   (dx_{n+1} = dL/dy)

Masks (see :mod:`portable_nn.layers.base`) travel with the data: each layer gets the current
mask when it ``accepts_mask`` and its ``compute_mask`` gives the next one; a container accepts a
mask for its input and computes its output's, so models nest.

Parameters, buffers and gradients of layer ``i`` appear under dotted names ``"i.<name>"``
(``"0.weight"``, ``"2.running_mean"``; nested models give ``"1.0.weight"``), walked afresh on every
call so that buffers rebound by a training forward (BatchNorm) are always current.
``compile``/``fit``/``evaluate``/``predict``/``train_step`` come from
:class:`portable_nn.training.TrainingMixin`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from portable_nn import random as pnn_random
from portable_nn.data import FEATURES, InputRule
from portable_nn.layers.base import (
    Layer,
    Shape,
    check_entries,
    format_shape,
    gathered_penalties,
    layer_from_config,
    unique_name,
)
from portable_nn.training import TrainingMixin


class _Container(TrainingMixin, Layer):
    """A model made of layers: their arrays under dotted names (``"<child>.<name>"``), loads,
    the summary table, files, and the training API. Subclasses give ``layers`` and
    :meth:`_prefixed` / :meth:`_child` (the child's name: ``"0"`` in a Sequential, the layer's
    name in a graph model). Names are walked afresh on every call, so buffers rebound by a
    training forward (BatchNorm) are always current."""

    skips_input_grad = True  # backward(dy, caches, input_grad=False) is supported
    accepts_mask = True  # a mask of its input reaches its layers (layers.base: masks)
    layers: list[Layer]

    def _init_container(self, name: str, seed: int | None) -> None:
        self.name = name
        self.params: dict[str, Any] = {}  # always empty: the arrays live in the layers
        self.bufs: dict[str, Any] = {}
        if seed is None:
            seed = pnn_random.get_generator().host.integers(2**62)
        self.generator = pnn_random.Generator(seed)
        self._init_training()

    def _prefixed(self) -> Iterable[tuple[str, Layer]]:
        """``("0.", layer), ...``: each child with the prefix of its arrays' names."""
        raise NotImplementedError

    def _child(self, head: str) -> Layer:
        """The child named ``head`` (the part of an array name before the first dot)."""
        raise NotImplementedError

    def forward_masked(self, x: Any, training: bool = False, mask: Any = None) -> Any:
        """``(y, cache, output mask)``: the layers run with the masking contract."""
        raise NotImplementedError

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> tuple[Any, Any]:
        """``(y, cache)`` (:meth:`forward_masked` without the output mask)."""
        y, cache, _ = self.forward_masked(x, training, mask)
        return y, cache

    def compute_mask(self, x: Any, mask: Any) -> Any:
        """The output's mask for input ``x`` with ``mask`` (runs an inference forward; a
        container nested in another gives it from :meth:`forward_masked` instead)."""
        return self.forward_masked(x, False, mask)[2]

    def input_rules(self) -> list[InputRule]:
        """One :class:`~portable_nn.data.InputRule` per model input (dtype kind and value checks
        asked for by the layers reading it), for the data checks of fit/evaluate/predict."""
        raise NotImplementedError

    @property
    def has_training_behaviour(self) -> bool:  # type: ignore[override]
        """True when some layer behaves differently in training (Dropout, BatchNorm)."""
        return any(layer.has_training_behaviour for layer in self.layers)

    # -- parameters ---------------------------------------------------------------------------
    def _collect(self, method: str) -> dict[str, Any]:
        out = {}
        for prefix, layer in self._prefixed():
            for key, value in getattr(layer, method)().items():
                out[prefix + key] = value
        return out

    def penalties(self) -> tuple[Any, dict[str, Any]]:
        """Every layer's regularization penalties, summed, and their gradients by dotted name."""
        return gathered_penalties(self._prefixed())

    @Layer.trainable.setter  # type: ignore[attr-defined]
    def trainable(self, value: bool) -> None:
        """Freezing (or unfreezing) a model sets every layer, as Keras."""
        Layer.trainable.fset(self, value)  # type: ignore[attr-defined]
        for layer in self.layers:
            layer.trainable = self.trainable

    def trainable_parameters(self) -> dict[str, Any]:
        """The parameters of the trainable layers (none when the model is frozen)."""
        return self._collect("trainable_parameters") if self.trainable else {}

    def parameters(self) -> dict[str, Any]:
        """Trainable arrays of every layer under dotted names (``"0.weight"``)."""
        return self._collect("parameters")

    def buffers(self) -> dict[str, Any]:
        """Non-trainable arrays of every layer under dotted names (``"2.running_mean"``)."""
        return self._collect("buffers")

    def state_dict(self) -> dict[str, Any]:
        """Parameters and buffers together, in layer order."""
        return self._collect("state_dict")

    def set_parameters(self, values: dict[str, Any]) -> None:
        """Replace some or all trainable arrays; every entry is checked before any is assigned."""
        self._require_built("set_parameters")
        check_entries(self.name, self.parameters(), values, "parameter")
        self.assign_parameters(values)

    def assign_parameters(self, values: dict[str, Any], kind: str = "params") -> None:
        """Unchecked fast path of :meth:`set_parameters` (for arrays made from our own, e.g. by
        an optimizer update or a compiled step): rebinds ``layer.params[name]`` directly
        (``layer.bufs[name]`` with ``kind="bufs"``)."""
        locate = self._locate
        for key, value in values.items():
            layer, name = locate(key)
            getattr(layer, kind)[name] = value

    def _locate(self, key: str) -> tuple[Layer, str]:
        """``(layer, name)``: the layer (not a container) whose ``params`` or ``bufs`` hold the
        array called ``key`` here, under ``name`` (``"1.0.weight"`` -> ``(dense, "weight")``)."""
        head, _, rest = key.partition(".")
        layer = self._child(head)
        return layer._locate(rest) if isinstance(layer, _Container) else (layer, rest)

    def _sublayers(self) -> list[Layer]:
        """Every layer inside, depth first, nested containers and their layers included."""
        found: list[Layer] = []
        for _, layer in self._prefixed():
            found.append(layer)
            if isinstance(layer, _Container):
                found += layer._sublayers()
        return found

    def assign_buffers(self, values: dict[str, Any]) -> None:
        """Unchecked: rebinds ``layer.bufs[name]`` (see :meth:`assign_parameters`)."""
        self.assign_parameters(values, "bufs")

    def load_state_dict(self, values: dict[str, Any], strict: bool = True) -> None:
        """Load parameters and buffers; with ``strict`` every entry must be present.

        Names, shapes, dtypes, namespaces and devices of all entries are checked first, so a
        bad dict raises ``ValueError`` naming the entry and changes nothing.
        """
        self._require_built("load_state_dict")
        own = self.state_dict()
        if strict:
            missing = sorted(set(own) - set(values), key=list(own).index)
            if missing:
                raise ValueError(f"{self.name}: state dict is missing {missing}")
        check_entries(self.name, own, values, "entry")
        groups: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            head, _, rest = key.partition(".")
            groups.setdefault(head, {})[rest] = value
        for head, group in groups.items():
            self._child(head).load_state_dict(group, strict=False)

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"{self.name}: {what} needs a built model; call model.build((None, features)) "
                "or run it on data first"
            )

    # -- description --------------------------------------------------------------------------
    def _table(self, rows: list[tuple[str, ...]], print_fn: Any) -> str:
        """The summary: ``rows`` (a header, then one row per layer) and the parameter totals."""
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        rule = "=" * max(len(line) for line in lines)
        trainable = _count(self.trainable_parameters())
        frozen = _count(self.state_dict()) - trainable  # buffers and frozen layers' weights
        text = "\n".join(
            [f'Model: "{self.name}"', rule, lines[0], rule, *lines[1:], rule]
            + [
                f"Total params: {trainable + frozen:,}",
                f"Trainable params: {trainable:,}",
                f"Non-trainable params: {frozen:,}",
            ]
        )
        if print_fn is not None:
            print_fn(text)
        return text

    # -- files (thin wrappers over portable_nn.io, as Keras's model.save) ------------------------
    def save(self, path: Any, **kwargs: Any) -> None:
        """``pnn.save_model(self, path, **kwargs)``: architecture, weights, training state.
        In a data-parallel job only rank 0 writes (every rank holds the same state)."""
        from portable_nn import distributed
        from portable_nn.io import save_model

        if distributed.is_main():
            save_model(self, path, **kwargs)

    def save_weights(self, path: Any, **kwargs: Any) -> None:
        """``pnn.io.save_weights(self, path, **kwargs)``: parameters and buffers only (rank 0
        only in a data-parallel job)."""
        from portable_nn import distributed
        from portable_nn.io import save_weights

        if distributed.is_main():
            save_weights(self, path, **kwargs)

    def load_weights(self, path: Any, **kwargs: Any) -> None:
        """``pnn.io.load_weights(self, path, **kwargs)`` into this built model."""
        from portable_nn.io import load_weights

        load_weights(self, path, **kwargs)


class Sequential(_Container):
    """A linear stack of layers: ``Sequential([Dense(16), ReLU(), Dense(1)])``.

    Parameters
    ----------
    layers : layers to add in order (each a :class:`~portable_nn.layers.base.Layer`).
    name : model name (default ``"sequential"``, then ``"sequential_1"``, ... as Keras).
    seed : seed of ``model.generator`` (shuffling in ``fit``); ``None`` derives one from the
        global generator, so ``pnn.seed(n)`` makes the whole run reproducible.
    """

    def __init__(
        self, layers: list[Layer] | None = None, name: str | None = None, *, seed: int | None = None
    ) -> None:
        self.layers: list[Layer] = []
        self._built = False
        self._init_container(name or unique_name("sequential"), seed)
        for layer in layers or []:
            self.add(layer)

    def _prefixed(self) -> Iterable[tuple[str, Layer]]:
        return zip(_prefixes(len(self.layers)), self.layers)

    def _child(self, head: str) -> Layer:
        return self.layers[int(head)]

    # -- structure ----------------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Append ``layer``; when the model is already built, build it for the current output."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer. Received: {layer!r}")
        if any(layer is other for other in self.layers) or layer is self:
            raise ValueError(f"layer {layer.name!r} is already in model {self.name!r}")
        if self.layers and self.built:
            self._build_layer(layer, self.compute_output_shape(self.input_shape))
        self.layers.append(layer)
        self._compiled_step = None  # a compiled step knows the old stack only

    def _build_layer(self, layer: Layer, shape: Shape) -> None:
        """Build ``layer`` for inputs of ``shape``, or check that its built shape matches."""
        if not layer.built:
            layer.build(shape)
        elif layer.input_shape is not None and tuple(layer.input_shape[1:]) != tuple(shape[1:]):
            raise ValueError(
                f"{self.name}: layer {layer.name!r} expects inputs of shape "
                f"{format_shape(layer.input_shape)}, but it would receive {format_shape(shape)}"
            )

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    @property
    def built(self) -> bool:
        """True when every layer has its weights (and there is at least one layer)."""
        if not self._built:  # cached once true: layers never lose their weights
            self._built = bool(self.layers) and all(layer.built for layer in self.layers)
        return self._built

    @property
    def input_shape(self) -> Shape | None:
        return self.layers[0].input_shape if self.layers else None

    @property
    def output_names(self) -> list[str]:
        """The last layer's name, as Keras names a Sequential's output."""
        return [self.layers[-1].name] if self.layers else []

    def build(self, input_shape: Shape) -> None:
        """Build every layer in turn for inputs of ``input_shape`` (batch axis first)."""
        if not self.layers:
            raise ValueError(f"{self.name}: cannot build a model with no layers; add layers first")
        shape = tuple(input_shape)
        for layer in self.layers:
            self._build_layer(layer, shape)
            shape = tuple(layer.compute_output_shape(shape))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    def ensure_built(self, x: Any) -> None:
        if not self.built:
            self.build((None, *tuple(x.shape[1:])))
        self.layers[0].check_input(x)

    def check_input(self, x: Any) -> None:
        if self.layers:
            self.layers[0].check_input(x)

    def input_rules(self) -> list[InputRule]:
        return [rule_of(self.layers[0])] if self.layers else [FEATURES]

    # -- running ------------------------------------------------------------------------------
    def forward_masked(
        self, x: Any, training: bool = False, mask: Any = None
    ) -> tuple[Any, list[Any], Any]:
        """``y = f_n(...f_1(x))``; returns ``(y, [cache_1, ..., cache_n], output mask)``, the
        mask passed along: ``m_i = layer_i.compute_mask(x_i, m_{i-1})``."""
        if not self.layers:
            raise ValueError(f"{self.name}: the model has no layers; add layers first")
        if not self._built and not self.built:
            self.build((None, *tuple(x.shape[1:])))
        caches = []
        for layer in self.layers:
            x, cache, mask = layer.forward_masked(x, training, mask)
            caches.append(cache)
        return x, caches, mask

    def backward(
        self, dy: Any, caches: list[Any], input_grad: bool = True, on_layer: Any = None
    ) -> tuple[Any, dict[str, Any]]:
        """Chain rule in reverse: returns ``(dL/dx, {"i.name": dL/dparam})``.

        With ``input_grad=False`` dL/dx is not wanted (training): backpropagation stops at the
        lowest layer with trainable weights (a frozen base gets no backward at all), which
        skips its own dL/dx when it can (``skips_input_grad``); ``None`` is returned in place.
        ``on_layer(grads)`` is called with each layer's ``{"i.name": dL/dparam}`` as soon as it
        is computed, last layer first (data-parallel training starts summing them early).
        """
        layers, prefixes = self.layers, _prefixes(len(self.layers))
        per_layer: list[dict[str, Any]] = [{}] * len(layers)
        low = 0
        if not input_grad:  # the layers below the lowest trainable one need no gradient
            low = next((i for i, layer in enumerate(layers) if layer.trainable_parameters()), 0)
        for i in range(len(layers) - 1, low - 1, -1):
            if i == low and not input_grad and layers[i].skips_input_grad:
                dy, layer_grads = layers[i].backward_from(dy, caches[i], input_grad=False)
            else:
                dy, layer_grads = layers[i].backward_from(dy, caches[i])
            per_layer[i] = {prefixes[i] + key: value for key, value in layer_grads.items()}
            if on_layer is not None and per_layer[i]:
                on_layer(per_layer[i])
        grads = {name: value for named in per_layer for name, value in named.items()}
        return (dy if input_grad else None), grads

    # -- description --------------------------------------------------------------------------
    def summary(self, print_fn: Any = print) -> str:
        """Print and return a table: layer, type, output shape, parameter count, and totals."""
        self._require_built("summary")
        rows = [("#", "Layer (type)", "Output shape", "Param #")]
        shape = tuple(self.input_shape)
        for i, layer in enumerate(self.layers):
            shape = tuple(layer.compute_output_shape(shape))
            count = _count(layer.parameters()) + _count(layer.buffers())
            rows.append(
                (
                    str(i),
                    f"{layer.name} ({type(layer).__name__})",
                    format_shape(shape),
                    f"{count:,}",
                )
            )
        return self._table(rows, print_fn)

    # -- configuration ------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """JSON-friendly ``{"name", "layers": [{"class_name", "config"}, ...]}``."""
        return {
            "name": self.name,
            "layers": [
                {"class_name": type(layer).__name__, "config": layer.get_config()}
                for layer in self.layers
            ],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """Rebuild the architecture (fresh weights) from :meth:`get_config`'s output."""
        layers = [
            layer_from_config(item["class_name"], item["config"]) for item in config["layers"]
        ]
        return cls(layers, name=config.get("name"))

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], name={self.name!r})"


def rule_of(layer: Layer, position: int = 0, single: bool = True) -> InputRule:
    """What ``layer`` asks of the model data it reads at ``position`` (of a list it is called
    on, unless ``single``): its ``input_dtype`` and ``input_checks`` (a container's: its own
    input rule)."""
    if isinstance(layer, _Container):
        return layer.input_rules()[position]
    kind = layer.input_dtype
    if isinstance(kind, tuple):
        kind = kind[position] if position < len(kind) else None
    return InputRule(kind or "real floating", (layer.input_checks,) if single else ())


def combine_rules(rules: list[InputRule]) -> InputRule:
    """One rule for an input read by several layers: the first kind other than floating (an
    Embedding's ``"integral"``, a mask's ``"bool"``), every check."""
    kind = next((r.kind for r in rules if r.kind != FEATURES.kind), FEATURES.kind)
    return InputRule(kind, tuple(c for r in rules for c in r.checks))


_PREFIXES: list[str] = []


def _prefixes(n: int) -> list[str]:
    """``["0.", "1.", ...]`` (at least ``n``), built once: names are made on every step."""
    while len(_PREFIXES) < n:
        _PREFIXES.append(f"{len(_PREFIXES)}.")
    return _PREFIXES


def _count(arrays: dict[str, Any]) -> int:
    total = 0
    for array in arrays.values():
        size = 1
        for dim in array.shape:
            size *= int(dim)
        total += size
    return total


__all__ = ["Sequential"]
