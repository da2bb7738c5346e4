"""Graph models (Keras's functional API): ``Input`` gives a symbolic tensor, calling a layer on
symbolic tensors records a node, and ``Model(inputs, outputs)`` runs the nodes between them.

    x = pnn.Input(shape=(8,))
    h = Dense(16, activation="relu")(x)
    y = Add()([Dense(16)(h), h])                  # a residual connection
    model = pnn.Model(x, Dense(1)(y))

Forward runs the nodes in topological order, each layer with the forward of the Layer contract;
backward runs them in reverse with the chain rule summed over every use:

    dL/dt = sum over the nodes c that read t of (dL/dt through c)   (plus dL/dy if t is an output)
    dL/dW = sum over the calls of W's layer                         (a shared layer)

A model is itself a layer (it nests, and one model can be called on symbolic tensors inside
another); its arrays are named ``"<layer name>.<array>"`` (``"conv2d.weight"``).

Masks (see :mod:`portable_nn.layers.base`): every tensor carries one (None, or boolean
``(batch, time)``): an input's is the mask given to the model, a node's outputs get their
layer's ``compute_mask``. A node's layer receives the mask its input carries, or, for a call
``layer(x, mask=m)``, the value of the symbolic tensor ``m`` (say a boolean
``pnn.Input((time,))``: data then comes with a boolean array for it, True for a real step).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from portable_nn.backend import device_of, is_array, namespace_of
from portable_nn.data import InputRule
from portable_nn.layers.base import (
    Layer,
    Shape,
    Symbolic,
    format_shape,
    is_symbolic,
    layer_from_config,
    unique_name,
)
from portable_nn.models import _Container, _count, combine_rules, rule_of


class SymbolicTensor(Symbolic):
    """A placeholder with a ``shape`` (batch axis first, ``None``), made by :func:`Input` or by
    calling a layer; ``node`` is the call that made it (``None`` for an input)."""

    __slots__ = ("name", "node", "shape")

    def __init__(self, shape: Shape, name: str, node: Node | None = None) -> None:
        self.shape, self.name, self.node = tuple(shape), name, node

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={format_shape(self.shape)} name={self.name!r}>"


class Node(NamedTuple):
    """One call of ``layer``: its input tensors (``single``: called on one, not on a list), its
    outputs (``many``: the layer returns a list, as a model with several outputs does) and the
    mask it was given (``layer(x, mask=m)``: a tensor, or a list with None for a list call;
    None: the mask its input carries)."""

    layer: Layer
    args: list[SymbolicTensor]
    single: bool
    outputs: list[SymbolicTensor]
    many: bool
    mask: Any = None

    @property
    def masks(self) -> list[SymbolicTensor]:
        """The mask tensor(s) given to the call."""
        given = self.mask if isinstance(self.mask, list) else [self.mask]
        return [m for m in given if m is not None]

    @property
    def reads(self) -> list[SymbolicTensor]:
        """The tensors the call reads: its inputs and its given mask tensor(s)."""
        return [*self.args, *self.masks]


def Input(shape: Any, name: str | None = None) -> SymbolicTensor:  # noqa: N802 (Keras's name)
    """A model input holding samples of ``shape`` (without the batch axis; ``None`` for a size
    known only at run time): ``pnn.Input(shape=(8, 8, 1))``."""
    dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if any(
        d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1) for d in dims
    ):
        raise ValueError(f"shape must hold positive ints or None. Received: shape={shape!r}")
    if name is not None and (not isinstance(name, str) or not name or "." in name):
        raise ValueError(f"name must be a non-empty string without dots. Received: name={name!r}")
    return SymbolicTensor((None, *dims), name or unique_name("input_layer"))


def call_symbolic(layer: Layer, x: Any, mask: Any = None) -> Any:
    """Record ``layer(x)`` (or ``layer(x, mask=m)``) on symbolic tensors: build the layer for
    their shapes (or check a built one fits), and return symbolic outputs of
    ``layer.compute_output_shape``."""
    takes_list = getattr(layer, "takes_list", False)
    args = layer._flat_inputs(x) if isinstance(layer, Model) else x
    single = isinstance(args, Symbolic)
    args = [args] if single else list(args)
    if not all(isinstance(a, SymbolicTensor) for a in args):
        kinds = [type(a).__name__ for a in args]
        raise TypeError(f"{layer.name}: cannot mix symbolic tensors and other values: {kinds}")
    if single == takes_list:
        wanted = "a list of tensors" if takes_list else "one tensor"
        raise TypeError(f"{layer.name}: expects {wanted}. Received: {x!r}")
    shapes: Any = args[0].shape if single else [a.shape for a in args]
    if not layer.built:
        layer.build(shapes)
    elif layer.input_shape is not None and not _fits(layer.input_shape, shapes):
        raise ValueError(
            f"{layer.name}: expects inputs of shape {_format(layer.input_shape)}. "
            f"Received shape {_format(shapes)}"
        )
    out = layer.compute_output_shape(shapes)
    many = isinstance(out, list)
    node = Node(layer, args, single, [], many, _given_mask(layer, mask, len(args), single))
    node.outputs.extend(SymbolicTensor(s, layer.name, node) for s in (out if many else [out]))
    outputs = node.outputs if many else node.outputs[0]
    return layer._pack(outputs) if isinstance(layer, Model) else outputs


def _given_mask(layer: Layer, mask: Any, count: int, single: bool) -> Any:
    """``mask`` after checking it is a symbolic tensor (a list of ``count`` tensors or None
    for a layer called on a list), or None."""
    if mask is None:
        return None
    items = [mask] if single else mask
    ok = isinstance(items, (list, tuple)) and len(items) == count
    if not ok or not all(m is None or isinstance(m, SymbolicTensor) for m in items):
        wanted = "a symbolic tensor" if single else f"a list of {count} symbolic tensors or None"
        raise TypeError(f"{layer.name}: mask must be {wanted}. Received: mask={mask!r}")
    return mask if single else list(mask)


def _fits(expected: Any, got: Any) -> bool:
    """Per-sample shapes agree (``None`` matches anything); lists pairwise; a layer built on
    one input and called on a list (an RNN given its initial states) checks the first."""
    if isinstance(expected, list) != isinstance(got, list):
        first_expected = expected[0] if isinstance(expected, list) else expected
        return _fits(first_expected, got[0] if isinstance(got, list) else got)
    if isinstance(expected, list):
        pairs = list(zip(expected, got)) if len(expected) == len(got) else []
        return bool(pairs) and all(_fits(e, g) for e, g in pairs)
    return len(expected) == len(got) and all(
        e is None or g is None or e == g for e, g in zip(expected[1:], got[1:])
    )


def _format(shape: Any) -> str:
    return ", ".join(map(format_shape, shape)) if isinstance(shape, list) else format_shape(shape)


class GraphCache(NamedTuple):
    caches: list[Any]  # one per node
    dead: dict[int, tuple[int, ...]]  # shapes of the values no node reads (zero gradients)


class Model(_Container):
    """A graph of layers from ``inputs`` to ``outputs`` (symbolic tensors, lists or dicts).

    Parameters
    ----------
    inputs : one :func:`Input` tensor, a list of them, or a dict name -> tensor (data then
        comes as a dict with those keys).
    outputs : one symbolic tensor, a list, or a dict name -> tensor. Several outputs make
        ``forward`` return a list and ``backward`` take a list of output gradients.
    name : model name (default ``"functional"``, then ``"functional_1"``, ... as Keras).
    seed : seed of ``model.generator`` (shuffling in ``fit``), as for ``Sequential``.
    """

    def __init__(
        self, inputs: Any, outputs: Any, name: str | None = None, *, seed: int | None = None
    ) -> None:
        name = name or unique_name("functional")
        self.inputs, self.input_keys = _structure("inputs", inputs)
        self.outputs, self.output_keys = _structure("outputs", outputs)
        nodes = _topological(name, self.inputs, self.outputs)
        self.layers: list[Layer] = list({id(n.layer): n.layer for n in nodes}.values())
        self._by_name = _names(name, self.inputs, self.layers)
        self._init_container(name, seed)  # checks done: now the generator draws its seed
        self._nodes, self.built, self.takes_list = nodes, True, len(self.inputs) > 1
        self._prefixes = [(layer.name + ".", layer) for layer in self.layers]
        given, read = {id(t) for t in self.inputs}, {id(t) for n in nodes for t in n.reads}
        self._skip_dx = {  # reads model inputs only and can skip dL/dx (in training)
            id(n) for n in nodes if n.layer.skips_input_grad and all(id(t) in given for t in n.args)
        }
        every = [*self.inputs, *(t for n in nodes if n.many for t in n.outputs)]
        self._dead = [t for t in every if id(t) not in read and t not in self.outputs]
        self.input_names = self.input_keys or [t.name for t in self.inputs]
        names = [t.name if t.node is None else t.node.layer.name for t in self.outputs]
        repeats = [names[:i].count(n) for i, n in enumerate(names)]  # Keras: then _1, _2...
        self.output_names = self.output_keys or [
            f"{n}_{k}" if k else n for n, k in zip(names, repeats)
        ]
        shapes = [t.shape for t in self.inputs]
        self.input_shape: Any = shapes if self.takes_list else shapes[0]

    # -- structure ----------------------------------------------------------------------------
    def _prefixed(self) -> list[tuple[str, Layer]]:
        return self._prefixes

    def _child(self, head: str) -> Layer:
        return self._by_name[head]

    def get_layer(self, name: str) -> Layer:
        """The layer called ``name`` (``ValueError`` listing the names otherwise)."""
        if name not in self._by_name:
            raise ValueError(f"{self.name}: no layer {name!r}; layers: {list(self._by_name)}")
        return self._by_name[name]

    def _flat_inputs(self, x: Any) -> list[Any] | Any:
        """The inputs in model order (one when the model has one) from a value, a list or a
        dict by :attr:`input_names`; ``ValueError`` naming the model for a wrong count."""
        return _flatten(self.name, "inputs", x, self.input_names)

    def _flat_targets(self, y: Any) -> list[Any] | Any:
        return _flatten(self.name, "outputs", y, self.output_names)

    def _pack(self, y: Any) -> Any:
        """Outputs as ``forward`` gives them (one, or a list) in the structure the model was
        given: one, a list, or a dict by output keys."""
        if self.output_keys is None:
            return y
        return dict(zip(self.output_keys, y if len(self.outputs) > 1 else [y]))

    def build(self, input_shape: Any) -> None:
        """Already built from its inputs: checks ``input_shape`` fits them."""
        if not _fits(self.input_shape, input_shape):
            raise ValueError(
                f"{self.name}: expects inputs of shape {_format(self.input_shape)}. "
                f"Received shape {_format(input_shape)}"
            )

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Output shape(s) for ``input_shape`` (a list for several inputs): each layer's
        ``compute_output_shape`` along the graph."""
        shapes = self._walk(input_shape if self.takes_list else [input_shape], _output_shape)
        outs = [shapes[id(t)] for t in self.outputs]
        return outs if len(outs) > 1 else outs[0]

    def _walk(self, inputs: list[Any], call: Any, values: Any = None) -> dict[int, Any]:
        """Values of every tensor (by ``id``; filled into ``values`` when given): ``inputs``,
        then ``call(node, value(s) read)`` node by node in topological order."""
        values = {} if values is None else values
        values.update((id(t), v) for t, v in zip(self.inputs, inputs))
        for node in self._nodes:
            arg = values[id(node.args[0])] if node.single else [values[id(t)] for t in node.args]
            out = call(node, arg)
            values.update(zip(map(id, node.outputs), out if node.many else [out]))
        return values

    def check_input(self, x: Any) -> list[Any]:
        """The inputs as a list in model order, after checking their count and shapes."""
        xs = self._flat_inputs(x)
        xs = xs if self.takes_list else [xs]
        for t, a in zip(self.inputs, xs):
            got = getattr(a, "shape", None)
            if got is None or not _fits(t.shape, tuple(got)):
                raise ValueError(
                    f"{self.name}: input {t.name!r} expects shape {format_shape(t.shape)}. "
                    f"Received: {format_shape(got) if got is not None else type(a).__name__}"
                )
        return xs

    ensure_built = check_input

    # -- running ------------------------------------------------------------------------------
    def __call__(self, x: Any, mask: Any = None) -> Any:
        """Inference (outputs packed as given: one, a list or a dict), or a node on symbolic
        tensors (the model nested in a bigger graph)."""
        if is_symbolic(x) or is_symbolic(mask):
            return call_symbolic(self, x, mask)
        return self._pack(self.forward(x, mask=mask)[0])

    def forward_masked(
        self, x: Any, training: bool = False, mask: Any = None
    ) -> tuple[Any, GraphCache, Any]:
        """Every node in topological order; returns ``(y, cache, output mask)``, ``y`` (and the
        mask) a list for several outputs. ``x``: one array, a list in input order, or a dict by
        input name; ``mask``: None, the mask of the one input, or a list (one per input)."""
        caches, values = [], {}
        masks = dict(zip(map(id, self.inputs), self._input_masks(mask)))

        def call(node: Node, arg: Any) -> Any:
            y, cache, out = node.layer.forward_masked(arg, training, _mask_of(node, values, masks))
            caches.append(cache)
            outs = (out if out is not None else [None] * len(node.outputs)) if node.many else [out]
            masks.update(zip(map(id, node.outputs), outs))
            return y

        self._walk(self.check_input(x), call, values)
        outputs = [values[id(t)] for t in self.outputs]
        out_masks = [masks.get(id(t)) for t in self.outputs]
        dead = {id(t): tuple(values[id(t)].shape) for t in self._dead}
        cache = GraphCache(caches, dead)
        if len(outputs) > 1:
            return outputs, cache, out_masks
        return outputs[0], cache, out_masks[0]

    def _input_masks(self, mask: Any) -> list[Any]:
        """One mask (or None) per input from the mask given to the model."""
        if not self.takes_list:
            return [mask]
        if mask is None:
            return [None] * len(self.inputs)
        if not isinstance(mask, (list, tuple)) or len(mask) != len(self.inputs):
            raise ValueError(
                f"{self.name}: mask must be None or a list of {len(self.inputs)} masks (one "
                f"per input). Received: {type(mask).__name__}"
            )
        return list(mask)

    def input_rules(self) -> list[InputRule]:
        """Each input's rule from the nodes reading it (a mask read is boolean)."""
        rules = []
        for t in self.inputs:
            found = [
                rule_of(n.layer, i, n.single)
                for n in self._nodes
                for i, a in enumerate(n.args)
                if a is t
            ]
            found += [InputRule("bool") for n in self._nodes for m in n.masks if m is t]
            rules.append(combine_rules(found))
        return rules

    def backward(
        self, dy: Any, cache: GraphCache, input_grad: bool = True
    ) -> tuple[Any, dict[str, Any]]:
        """The nodes in reverse: returns ``(dL/dx, {"layer.name": dL/dparam})`` with dL/dx a list
        for several inputs (``None`` with ``input_grad=False``). ``dy``: one array, or a list
        (or dict by output name) for several outputs."""
        dys = self._flat_targets(dy)
        dys = dys if len(self.outputs) > 1 else [dys]
        grad: dict[int, Any] = {}  # dL/dt by id(t), summed over the readers of t

        def add(t: SymbolicTensor, g: Any) -> None:
            grad[id(t)] = grad[id(t)] + g if id(t) in grad else g

        def take(t: SymbolicTensor) -> Any:  # a value no node read has a zero gradient
            if id(t) in grad:
                return grad.pop(id(t))
            like = dys[0]
            return namespace_of(like).zeros(
                cache.dead[id(t)], dtype=like.dtype, device=device_of(like)
            )

        for t, d in zip(self.outputs, dys):
            add(t, d)
        per_layer: dict[int, dict[str, Any]] = {}
        for node, c in zip(reversed(self._nodes), reversed(cache.caches)):
            d = [take(t) for t in node.outputs] if node.many else take(node.outputs[0])
            if not input_grad and id(node) in self._skip_dx:
                _, layer_grads = node.layer.backward_from(d, c, input_grad=False)
            else:
                dx, layer_grads = node.layer.backward_from(d, c)
                for t, g in zip(node.args, [dx] if node.single else dx):
                    if g is not None:  # None: no gradient (integer indices)
                        add(t, g)  # dL/dt sums over the readers of t
            own = per_layer.setdefault(id(node.layer), {})
            for key, value in layer_grads.items():
                own[key] = own[key] + value if key in own else value  # a shared layer
        grads = {p + k: v for p, layer in self._prefixes for k, v in per_layer[id(layer)].items()}
        if not input_grad:
            return None, grads
        # an input read only as a mask or as indices has no gradient: None
        dx = [take(t) if id(t) in grad or id(t) in cache.dead else None for t in self.inputs]
        return (dx if self.takes_list else dx[0]), grads

    # -- description --------------------------------------------------------------------------
    def summary(self, print_fn: Any = print) -> str:
        """Print and return a table: layer, output shape, parameter count, the layers it is
        connected to (``name[call][output]``, as Keras), and totals."""
        rows = [("Layer (type)", "Output shape", "Param #", "Connected to")]
        for t in self.inputs:
            rows.append((f"{t.name} (InputLayer)", format_shape(t.shape), "0", "-"))
        refs = self._refs()
        for layer in self.layers:
            nodes = [n for n in self._nodes if n.layer is layer]
            shapes = {_format([t.shape for t in n.outputs]) for n in nodes}
            inbound = [_ref_text(refs[id(t)]) for n in nodes for t in n.args]
            count = _count(layer.parameters()) + _count(layer.buffers())
            shape = shapes.pop() if len(shapes) == 1 else "multiple"
            rows.append(
                (f"{layer.name} ({type(layer).__name__})", shape, f"{count:,}", ", ".join(inbound))
            )
        return self._table(rows, print_fn)

    # -- configuration ------------------------------------------------------------------------
    def _refs(self) -> dict[int, list[Any]]:
        """Each tensor as ``[layer or input name, call number, output number]`` (Keras's
        ``inbound_nodes`` references)."""
        refs: dict[int, list[Any]] = {id(t): [t.name, 0, 0] for t in self.inputs}
        calls: dict[int, int] = {}
        for node in self._nodes:
            k = calls[id(node.layer)] = calls.get(id(node.layer), -1) + 1
            refs.update((id(t), [node.layer.name, k, i]) for i, t in enumerate(node.outputs))
        return refs

    def get_config(self) -> dict[str, Any]:
        """JSON-friendly: inputs (name, shape), layers (class and config), the calls in
        topological order (layer name and input references) and the output references."""
        refs = self._refs()
        return {
            "name": self.name,
            "inputs": [{"name": t.name, "shape": list(t.shape[1:])} for t in self.inputs],
            "layers": [
                {"class_name": type(layer).__name__, "config": layer.get_config()}
                for layer in self.layers
            ],
            "nodes": [_node_config(n, refs) for n in self._nodes],
            "outputs": [refs[id(t)] for t in self.outputs],
            "input_keys": self.input_keys,
            "output_keys": self.output_keys,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        """Rebuild the graph (fresh weights) from :meth:`get_config`'s output."""
        inputs = [Input(i["shape"], name=i["name"]) for i in config["inputs"]]
        tensors = {(t.name, 0, 0): t for t in inputs}
        layers = [layer_from_config(c["class_name"], c["config"]) for c in config["layers"]]
        by_name = {layer.name: layer for layer in layers}
        calls: dict[str, int] = {}
        for name, arg, *options in config["nodes"]:
            single = isinstance(arg[0], str)  # one reference, else a list of them
            args = [tensors[tuple(ref)] for ref in ([arg] if single else arg)]
            mask = options[0].get("mask") if options else None
            if mask is not None:  # one reference, or a list of references and None
                one = isinstance(mask[0], str)
                refs = [mask] if one else mask
                found = [None if r is None else tensors[tuple(r)] for r in refs]
                mask = found[0] if one else found
            out = by_name[name](args[0] if single else args, mask=mask)
            first = _structure("outputs", out)[0][0]
            k = calls[name] = calls.get(name, -1) + 1
            tensors.update(((name, k, i), t) for i, t in enumerate(first.node.outputs))
        outputs = [tensors[tuple(r)] for r in config["outputs"]]
        keys = [config.get("input_keys"), config.get("output_keys")]
        ins, outs = (t if k is None else dict(zip(k, t)) for k, t in zip(keys, (inputs, outputs)))
        return cls(ins, outs, name=config.get("name"))

    def __repr__(self) -> str:
        return f"Model(inputs={self.input_names}, outputs={self.output_names}, name={self.name!r})"


# -- helpers ------------------------------------------------------------------------------------
def _structure(what: str, value: Any) -> tuple[list[SymbolicTensor], list[str] | None]:
    """Tensors as a list, and the dict keys when given a dict (a list of one is one)."""
    keys = list(value) if isinstance(value, dict) else None
    items = list(value.values()) if isinstance(value, dict) else value
    items = list(items) if isinstance(items, (list, tuple)) else [items]
    if not items or not all(isinstance(t, SymbolicTensor) for t in items):
        raise TypeError(
            f"Model {what} must be symbolic tensors (pnn.Input or layer outputs), a list or a "
            f"dict of them. Received: {what}={value!r}"
        )
    return items, keys


def _topological(model: str, inputs: list[SymbolicTensor], outputs: list[Any]) -> list[Node]:
    """The nodes between ``inputs`` and ``outputs``, each after the nodes it reads (iterative
    depth-first search); ``ValueError`` when an output depends on another input."""
    if len({id(t) for t in inputs}) != len(inputs) or any(t.node is not None for t in inputs):
        raise ValueError(f"{model}: inputs must be distinct pnn.Input tensors; got {inputs}")
    given = {id(t) for t in inputs}
    order: list[Node] = []
    done: set[int] = set()
    stack = [(t.node, False) for t in reversed(outputs) if t.node is not None]
    for t in outputs:
        if t.node is None and id(t) not in given:
            _disconnected(model, None, t, inputs)
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        for t in reversed(node.reads):
            if t.node is None and id(t) not in given:
                _disconnected(model, node, t, inputs)
            if t.node is not None and id(t.node) not in done:
                stack.append((t.node, False))
    return order


def _disconnected(model: str, node: Node | None, t: SymbolicTensor, inputs: list[Any]) -> None:
    where = "an output"
    if node is not None:
        where = (
            f"layer {node.layer.name!r} (input shape(s) {_format([a.shape for a in node.args])})"
        )
    raise ValueError(
        f"{model}: the graph is disconnected: {where} reads input {t.name!r} of shape "
        f"{format_shape(t.shape)}, which is not among the model's inputs "
        f"{[i.name for i in inputs]}"
    )


def _names(model: str, inputs: list[Any], layers: list[Layer]) -> dict[str, Layer]:
    """Layers by name; names must be unique (inputs included) and free of dots."""
    seen = {t.name for t in inputs}
    if len(seen) != len(inputs):
        raise ValueError(f"{model}: input names must be unique: {[t.name for t in inputs]}")
    by_name = {}
    for layer in layers:
        if layer.name in seen or "." in layer.name:
            raise ValueError(
                f"{model}: layer names must be unique and without dots (they name the "
                f"arrays); {layer.name!r} is not"
            )
        seen.add(layer.name)
        by_name[layer.name] = layer
    return by_name


def _flatten(model: str, what: str, data: Any, names: list[str]) -> Any:
    """``data`` for ``len(names)`` slots as a list in ``names``' order (one value when there
    is one slot): from a list/tuple or a dict by name. ``ValueError`` naming the model and the
    counts otherwise."""
    n = len(names)
    if isinstance(data, dict):
        if set(data) != set(names):
            raise ValueError(f"{model}: expects {what} {names}. Received keys {sorted(data)}")
        items = [data[k] for k in names]
    elif isinstance(data, (list, tuple)) and (
        n > 1 or len(data) == 1 and (is_array(data[0]) or isinstance(data[0], Symbolic))
    ):
        items = list(data)
    else:
        items = [data]
    if len(items) != n:
        shapes = [format_shape(getattr(a, "shape", ())) for a in items]
        raise ValueError(
            f"{model}: expects {n} {what} {names}. Received {len(items)}: shapes {shapes}"
        )
    return items if n > 1 else items[0]


def _mask_of(node: Node, values: dict[int, Any], masks: dict[int, Any]) -> Any:
    """The mask ``node``'s layer gets: the value of its given mask tensor(s), else the mask its
    input carries (for a list call: the list of its inputs' masks, None when none has one)."""
    given = node.mask
    if isinstance(given, SymbolicTensor):
        return values[id(given)]
    if given is not None:
        return [None if m is None else values[id(m)] for m in given]
    if node.single:
        return masks.get(id(node.args[0]))
    found = [masks.get(id(t)) for t in node.args]
    return None if all(m is None for m in found) else found


def _node_config(node: Node, refs: dict[int, list[Any]]) -> list[Any]:
    """``[layer name, input reference(s)]``, plus ``{"mask": reference(s)}`` for a given mask."""
    arg = refs[id(node.args[0])] if node.single else [refs[id(t)] for t in node.args]
    if node.mask is None:
        return [node.layer.name, arg]
    if isinstance(node.mask, SymbolicTensor):
        return [node.layer.name, arg, {"mask": refs[id(node.mask)]}]
    return [node.layer.name, arg, {"mask": [None if m is None else refs[id(m)] for m in node.mask]}]


def _output_shape(node: Node, shape: Any) -> Any:
    out = node.layer.compute_output_shape(shape)
    return [tuple(s) for s in out] if node.many else tuple(out)


def _ref_text(ref: list[Any]) -> str:
    return f"{ref[0]}[{ref[1]}][{ref[2]}]"


__all__ = ["Input", "Model", "SymbolicTensor", "call_symbolic"]
