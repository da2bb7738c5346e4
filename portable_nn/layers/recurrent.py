"""Recurrent layers on ``(batch, time, features)`` sequences: SimpleRNN, LSTM, GRU, Bidirectional.

Each kind writes one time step forward (``step``) next to that step's backward (``step_grad``);
the shared loop in :class:`_RNN` runs them over time (Thinc's ``layers/lstm.py`` split):

    xw = x @ W + b                          all steps in one matmul, before the loop
    hu_t = h_{t-1} @ U (+ c)                the recurrent projection, once per step
    states_t = step(xw_t, hu_t, states_{t-1})

and backward through time in reverse, with the weight gradients as one matmul each after it:

    dW = sum_t x_t.T @ dxw_t    dU = sum_t h_{t-1}.T @ dhu_t    dx = dxw @ W.T

Gate blocks are consecutive column blocks of width ``units`` in PyTorch's order (LSTM i, f, g,
o; GRU r, z, n). Masking follows Keras: a masked step (mask False) keeps the previous states,
gets no gradient, and outputs zeros with ``return_sequences``. ``go_backwards`` reads the
sequence from the end and returns the sequence outputs in that reversed order (Keras).
Initial states are extra inputs: ``forward([x, h0])`` (LSTM ``[x, h0, c0]``); backward then
returns ``[dx, dh0]`` (``[dx, dh0, dc0]``).
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

from portable_nn import functional as F
from portable_nn.backend import has_dtype, namespace_and_device, namespace_of
from portable_nn.random import Generator, get_generator
from portable_nn.validation import choice, flag, format_shape, positive_int, require_shape

from ._weights import check_initializer, check_seed, initializer_name, make_weight
from .activation import bind
from .base import Layer, Shape, gathered_penalties, layer_from_config

_sig_grad, _tanh_grad = F.sigmoid_grad_from_output, F.tanh_grad_from_output


class RNNCache(NamedTuple):
    x: Any  # the input (batch, time, features)
    weight: Any  # W and U that produced the outputs (references, not copies)
    recurrent_weight: Any
    order: list[int]  # the time index of each processed step
    h_prev: list[Any]  # h_{t-1} of each processed step (for dU)
    steps: list[Any]  # each processed step's own cache (the kind's NamedTuple)
    mask: list[Any] | None  # (batch, 1) boolean per time index, or None
    given: int  # how many initial states came as inputs (0 or the state count)


class _RNN(Layer):
    """The time loop, shapes, checks and config shared by SimpleRNN, LSTM and GRU."""

    gates: ClassVar[int] = 1  # blocks of width units in W, U, b
    state_names: ClassVar[tuple[str, ...]] = ("h",)
    accepts_mask: ClassVar[bool] = True
    takes_list: ClassVar[bool | None] = None  # one tensor, or a list [x, *initial states]
    skips_input_grad = True
    REGULARIZABLE = {
        "kernel_regularizer": ("weight",),
        "recurrent_regularizer": ("recurrent_weight",),
        "bias_regularizer": ("bias", "recurrent_bias"),
    }

    def __init__(
        self,
        units: int,
        *,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        seed: int | Generator | None = None,
        input_shape: Shape | None = None,
        name: str | None = None,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
    ) -> None:
        self.units = positive_int("units", units)
        self.set_regularizers(
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
        )
        self.return_sequences = flag("return_sequences", return_sequences)
        self.return_state = flag("return_state", return_state)
        self.go_backwards = flag("go_backwards", go_backwards)
        self.kernel_initializer = check_initializer("kernel_initializer", kernel_initializer)
        self.recurrent_initializer = check_initializer(
            "recurrent_initializer", recurrent_initializer
        )
        self.bias_initializer = check_initializer("bias_initializer", bias_initializer)
        check_seed(seed)
        self.seed = seed
        super().__init__(input_shape=input_shape, name=name)

    # -- shapes and weights ---------------------------------------------------------------------
    def build(self, input_shape: Any) -> None:
        """Weights for inputs ``(batch, time, features)`` (a list: the first is the sequence);
        any sequence length fits afterwards."""
        shape = tuple(input_shape[0] if isinstance(input_shape, list) else input_shape)
        if len(shape) != 3 or not isinstance(shape[-1], int):
            raise ValueError(
                f"{self.name}: expects inputs (batch, time, features) with a known feature "
                f"size. Received input shape {format_shape(shape)}"
            )
        generator, size = get_generator(self.seed), self.gates * self.units
        self.params = {
            "weight": make_weight(self.kernel_initializer, (shape[-1], size), generator),
            "recurrent_weight": make_weight(
                self.recurrent_initializer, (self.units, size), generator
            ),
            "bias": self._bias(generator),
        }
        super().build((None, *shape[1:]))

    def _bias(self, generator: Generator) -> Any:
        return make_weight(self.bias_initializer, (self.gates * self.units,), generator)

    def compute_output_shape(self, input_shape: Any) -> Any:
        batch, time = tuple(input_shape[0] if isinstance(input_shape, list) else input_shape)[:2]
        out = (batch, time, self.units) if self.return_sequences else (batch, self.units)
        return [out, *[(batch, self.units)] * len(self.state_names)] if self.return_state else out

    def compute_mask(self, x: Any, mask: Any) -> Any:
        """The mask the output carries: the input's with ``return_sequences``, else None
        (with ``return_state`` a list, None for each state)."""
        if isinstance(mask, (list, tuple)):  # called on [x, *initial states]: x's mask
            mask = mask[0]
        out = mask if self.return_sequences else None
        return [out, *[None] * len(self.state_names)] if self.return_state else out

    def check_input(self, x: Any) -> None:
        _check_sequence(self, x)

    def _inputs(self, x: Any, mask: Any) -> tuple[Any, list[Any], list[Any] | None]:
        """The sequence, the initial states (checked) and the mask as (batch, 1) columns."""
        states = []
        if isinstance(x, (list, tuple)):
            x, *states = x
            if len(states) != len(self.state_names):
                raise ValueError(
                    f"{self.name}: expects [x, {', '.join(n + '0' for n in self.state_names)}]; "
                    f"received a list of {1 + len(states)}"
                )
        self.ensure_built(x)
        batch, time = int(x.shape[0]), int(x.shape[1])
        for name, s in zip(self.state_names, states):
            label = f"{self.name}: initial state {name}0"
            require_shape(label, s, (batch, self.units))
            namespace_and_device(x, s)
            if s.dtype != x.dtype:
                raise TypeError(f"{label} has dtype {s.dtype}, expected {x.dtype}")
        if isinstance(mask, (list, tuple)):  # called on [x, *initial states]: x's mask
            mask = mask[0]
        if mask is None:
            return x, states, None
        require_shape(f"{self.name}: mask", mask, (batch, time), " (batch, time)")
        namespace_and_device(x, mask)
        if not has_dtype(mask, "bool"):
            raise TypeError(f"{self.name}: mask must be boolean. Received: dtype={mask.dtype}")
        return x, states, [mask[:, t, None] for t in range(time)]

    # -- the time loop ----------------------------------------------------------------------------
    def forward(self, x: Any, training: bool = False, mask: Any = None) -> tuple[Any, RNNCache]:
        x, states, masks = self._inputs(x, mask)
        xp, p = namespace_of(x), self.params
        w, u, c = p["weight"], p["recurrent_weight"], p.get("recurrent_bias")
        xw = x @ w + p["bias"]  # xw = x W + b for every step: (batch, time, gates * units)
        given = len(states)
        if not states:
            states = [xp.zeros_like(xw[:, 0, : self.units])] * len(self.state_names)
        time = int(x.shape[1])
        order = list(range(time - 1, -1, -1) if self.go_backwards else range(time))
        outputs, h_prev, steps = [], [], []
        for t in order:
            hu = states[0] @ u  # hu = h_{t-1} U (+ c)
            new, cache = self.step(xw[:, t, :], hu if c is None else hu + c, states)
            h_prev.append(states[0])
            steps.append(cache)
            if masks is not None:  # a masked step keeps the states and outputs zeros
                m = masks[t]
                outputs.append(xp.where(m, new[0], 0.0))
                new = [xp.where(m, a, b) for a, b in zip(new, states)]
            else:
                outputs.append(new[0])
            states = new
        y = xp.stack(outputs, axis=1) if self.return_sequences else states[0]
        cache = RNNCache(x, w, u, order, h_prev, steps, masks, given)
        return ([y, *states] if self.return_state else y), cache

    def backward(
        self, dy: Any, cache: RNNCache, input_grad: bool = True
    ) -> tuple[Any, dict[str, Any]]:
        """``(dx or [dx, *d initial states], grads)``; ``dy`` is a list ``[d output, *d
        states]`` (entries may be None) with ``return_state``."""
        x, w, u, order, h_prev, steps, masks, given = cache
        xp, (batch, time) = namespace_of(x), (int(x.shape[0]), int(x.shape[1]))
        d_out, d_states = self._split_gradient(dy, batch, time, h_prev[0])
        if d_out is not None and not self.return_sequences:
            d_states[0] = d_states[0] + d_out  # y = h_T
        dxw, dhu = [None] * time, [None] * len(order)
        for k in range(len(order) - 1, -1, -1):
            t = order[k]
            keep = None
            if masks is not None:  # a masked step passes the state gradients through
                keep = [xp.where(masks[t], 0.0, d) for d in d_states]
            if d_out is not None and self.return_sequences:  # y_k = h of the k-th step
                d_states = [d_states[0] + d_out[:, k, :], *d_states[1:]]
            if masks is not None:
                d_states = [xp.where(masks[t], d, 0.0) for d in d_states]
            dxw[t], dhu[k], d_prev = self.step_grad(d_states, steps[k])
            dh = dhu[k] @ u.T  # dL/dh_{t-1} = dhu U.T (+ the step's direct terms)
            d_prev[0] = dh if d_prev[0] is None else d_prev[0] + dh
            d_states = d_prev if keep is None else [a + b for a, b in zip(d_prev, keep)]
        dxw_all = xp.stack(dxw, axis=1)  # (batch, time, gates * units)
        dxw_flat, size = xp.reshape(dxw_all, (-1, w.shape[1])), w.shape[1]
        dhu_flat = xp.reshape(xp.stack(dhu, axis=0), (-1, size))  # processing order
        h_flat = xp.reshape(xp.stack(h_prev, axis=0), (-1, self.units))
        grads = {
            "weight": xp.reshape(x, (-1, x.shape[-1])).T @ dxw_flat,  # dW = sum_t x_t.T dxw_t
            "recurrent_weight": h_flat.T @ dhu_flat,  # dU = sum_t h_{t-1}.T dhu_t
            "bias": xp.sum(dxw_flat, axis=0),
        }
        if "recurrent_bias" in self.params:
            grads["recurrent_bias"] = xp.sum(dhu_flat, axis=0)
        if not input_grad:
            return None, grads
        dx = dxw_all @ w.T  # dL/dx = dxw W.T
        return ([dx, *d_states] if given else dx), grads

    def _split_gradient(self, dy: Any, batch: int, time: int, like: Any) -> tuple[Any, list[Any]]:
        """``(d output or None, [d final state, ...])``; a missing state gradient is zeros."""
        n, state = len(self.state_names), (batch, self.units)
        dys = list(dy) if self.return_state and isinstance(dy, (list, tuple)) else [dy]
        if self.return_state and len(dys) != 1 + n:
            raise ValueError(
                f"{self.name}: expects a list of {1 + n} output gradients (entries may be None). "
                f"Received: {len(dys)}"
            )
        d_out, d_states = dys[0], [*dys[1:], *[None] * (n + 1 - len(dys))]
        if d_out is not None:
            out = (batch, time, self.units) if self.return_sequences else state
            self.check_gradient(d_out, out)
        for d in d_states:
            if d is not None:
                self.check_gradient(d, state)
        zeros = namespace_of(like).zeros_like
        return d_out, [zeros(like) if d is None else d for d in d_states]

    # -- one step (each kind) ---------------------------------------------------------------------
    def step(self, xw: Any, hu: Any, states: list[Any]) -> tuple[list[Any], Any]:
        """``(new states, the step's cache)`` from ``xw = x_t W + b`` and ``hu = h_{t-1} U``."""
        raise NotImplementedError

    def step_grad(self, d: list[Any], cache: Any) -> tuple[Any, Any, list[Any]]:
        """``(dL/dxw, dL/dhu, [dL/dstate_{t-1} not through U (None: none)...])`` from the state
        gradients ``d``."""
        raise NotImplementedError

    # -- configuration ----------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "kernel_initializer": initializer_name(self.kernel_initializer),
            "recurrent_initializer": initializer_name(self.recurrent_initializer),
            "bias_initializer": initializer_name(self.bias_initializer),
            "seed": self.seed if isinstance(self.seed, int) else None,
        }


def _check_sequence(layer: Layer, x: Any) -> None:
    """``ValueError`` for a non-3-D input or a feature size other than the weights' (any sequence
    length fits), or for another namespace or device than the weights'; ``TypeError`` for
    another dtype (the checks of :meth:`Layer.check_input` but the time axis)."""
    shape, expected = tuple(x.shape), layer.input_shape
    if len(shape) != 3 or shape[1] == 0 or (expected is not None and shape[-1] != expected[-1]):
        features = "features" if expected is None else expected[-1]
        raise ValueError(
            f"{layer.name}: expects inputs (batch, time >= 1, {features}). Received input shape "
            f"{format_shape(shape)}"
        )
    first = next(iter(layer.params.values()), None)
    if first is None:
        return
    device = getattr(x, "device", None)  # None for a JAX tracer: the full check
    if type(x) is not type(first) or device is None or device != getattr(first, "device", None):
        try:
            namespace_and_device(x, first)
        except ValueError as exc:
            raise ValueError(f"{layer.name}: input and weights differ: {exc}") from None
    if x.dtype != first.dtype:
        raise TypeError(
            f"{layer.name}: input dtype {x.dtype} differs from the weights' dtype {first.dtype}; "
            "cast the input (pnn.asarray does) or change the backend dtype"
        )


class SimpleRNNStepCache(NamedTuple):
    saved: Any  # the activation's output h or input z, whichever f' uses; None for linear


class SimpleRNN(_RNN):
    """``h_t = activation(x_t W + h_{t-1} U + b)`` (PyTorch ``nn.RNN``, Keras ``SimpleRNN``).

    Input (batch, time, features) -> output (batch, units), or (batch, time, units) with
    ``return_sequences``; ``return_state`` adds ``h``. Parameters ``weight`` (features, units),
    ``recurrent_weight`` (units, units), ``bias`` (units,). See :mod:`.recurrent` for masks,
    ``go_backwards`` and initial states (``forward([x, h0])``).
    """

    def __init__(
        self,
        units: int,
        activation: str | None = "tanh",
        *,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        seed: int | Generator | None = None,
        input_shape: Shape | None = None,
        name: str | None = None,
        **regularizers: Any,
    ) -> None:
        self.activation, self._f, self._grad, self._saves_output = bind(activation)
        super().__init__(
            units, return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            seed=seed, input_shape=input_shape, name=name, **regularizers,
        )  # fmt: skip

    def step(self, xw: Any, hu: Any, states: list[Any]) -> tuple[list[Any], SimpleRNNStepCache]:
        z = xw + hu  # z = x W + b + h U
        if self._f is None:
            return [z], SimpleRNNStepCache(None)
        h = self._f(z)  # h = f(z)
        return [h], SimpleRNNStepCache(h if self._saves_output else z)

    def step_grad(self, d: list[Any], cache: SimpleRNNStepCache) -> tuple[Any, Any, list[Any]]:
        dz = d[0] if self._f is None else self._grad(cache.saved, d[0])  # dz = f'(z) dh
        return dz, dz, [None]  # dL/dh_{t-1} = dz U.T only

    def get_config(self) -> dict[str, Any]:
        activation = None if self.activation == "linear" else self.activation
        return {**super().get_config(), "activation": activation}


class LSTMStepCache(NamedTuple):
    i: Any  # input gate sigma(z_i)
    f: Any  # forget gate sigma(z_f)
    g: Any  # cell candidate tanh(z_g)
    o: Any  # output gate sigma(z_o)
    c_prev: Any  # c_{t-1}
    tanh_c: Any  # tanh(c_t)


class LSTM(_RNN):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997), PyTorch's gate order i, f, g, o::

        [z_i | z_f | z_g | z_o] = x_t W + h_{t-1} U + b
        i, f, o = sigmoid(z_i, z_f, z_o)    g = tanh(z_g)
        c_t = f * c_{t-1} + i * g           h_t = o * tanh(c_t)

    Parameters ``weight`` (features, 4 units), ``recurrent_weight`` (units, 4 units), ``bias``
    (4 units,); ``unit_forget_bias`` (Keras's default) starts the forget block of ``bias`` at 1.
    ``return_state`` adds ``[h, c]``; initial states ``forward([x, h0, c0])``.
    """

    gates = 4
    state_names = ("h", "c")

    def __init__(
        self,
        units: int,
        *,
        unit_forget_bias: bool = True,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        seed: int | Generator | None = None,
        input_shape: Shape | None = None,
        name: str | None = None,
        **regularizers: Any,
    ) -> None:
        self.unit_forget_bias = flag("unit_forget_bias", unit_forget_bias)
        super().__init__(
            units, return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            seed=seed, input_shape=input_shape, name=name, **regularizers,
        )  # fmt: skip

    def _bias(self, generator: Generator) -> Any:
        if not self.unit_forget_bias:
            return super()._bias(generator)
        u, init = self.units, self.bias_initializer  # as Keras: [init(u), ones(u), init(2u)]
        parts = [make_weight(init, (u,), generator), make_weight("ones", (u,))]
        parts.append(make_weight(init, (2 * u,), generator))
        return namespace_of(parts[0]).concat(parts)

    def step(self, xw: Any, hu: Any, states: list[Any]) -> tuple[list[Any], LSTMStepCache]:
        u, (_, c_prev) = self.units, states
        z = xw + hu  # z = x W + b + h U
        i, f = F.sigmoid(z[:, :u]), F.sigmoid(z[:, u : 2 * u])
        g, o = F.tanh(z[:, 2 * u : 3 * u]), F.sigmoid(z[:, 3 * u :])
        c = f * c_prev + i * g  # c_t = f c_{t-1} + i g
        tanh_c = F.tanh(c)
        return [o * tanh_c, c], LSTMStepCache(i, f, g, o, c_prev, tanh_c)  # h_t = o tanh(c_t)

    def step_grad(self, d: list[Any], s: LSTMStepCache) -> tuple[Any, Any, list[Any]]:
        dh, dc = d
        dc = dc + _tanh_grad(s.tanh_c, dh * s.o)  # dc_t += dh o tanh'(c_t)
        dz = namespace_of(dh).concat(
            [
                _sig_grad(s.i, dc * s.g),  # dz_i = dc g i (1 - i)
                _sig_grad(s.f, dc * s.c_prev),  # dz_f = dc c_{t-1} f (1 - f)
                _tanh_grad(s.g, dc * s.i),  # dz_g = dc i (1 - g^2)
                _sig_grad(s.o, dh * s.tanh_c),  # dz_o = dh tanh(c_t) o (1 - o)
            ],
            axis=-1,
        )
        return dz, dz, [None, dc * s.f]  # dL/dc_{t-1} = dc f

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class GRUStepCache(NamedTuple):
    r: Any  # reset gate
    z: Any  # update gate
    n: Any  # new gate
    hu_n: Any  # h_{t-1} U_n + c_n
    h_prev: Any  # h_{t-1}


class GRU(_RNN):
    """Gated recurrent unit (Cho et al., 2014) with PyTorch's semantics, gates r, z, n::

        r = sigmoid(x W_r + b_r + h U_r + c_r)      z = sigmoid(x W_z + b_z + h U_z + c_z)
        n = tanh(x W_n + b_n + r * (h U_n + c_n))   h_t = (1 - z) * n + z * h_{t-1}

    Parameters ``weight`` (features, 3 units), ``recurrent_weight`` (units, 3 units), ``bias``
    and ``recurrent_bias`` (3 units,; PyTorch's ``bias_ih``, ``bias_hh``; Keras's
    ``reset_after=True``). ``recurrent_bias`` starts at zeros.
    """

    gates = 3

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        self.params["recurrent_bias"] = make_weight("zeros", (3 * self.units,))

    def step(self, xw: Any, hu: Any, states: list[Any]) -> tuple[list[Any], GRUStepCache]:
        u, h = self.units, states[0]
        r = F.sigmoid(xw[:, :u] + hu[:, :u])  # hu = h U + c
        z = F.sigmoid(xw[:, u : 2 * u] + hu[:, u : 2 * u])
        hu_n = hu[:, 2 * u :]
        n = F.tanh(xw[:, 2 * u :] + r * hu_n)
        return [n + z * (h - n)], GRUStepCache(r, z, n, hu_n, h)  # h_t = (1 - z) n + z h_{t-1}

    def step_grad(self, d: list[Any], s: GRUStepCache) -> tuple[Any, Any, list[Any]]:
        dh, concat = d[0], namespace_of(d[0]).concat
        dn = _tanh_grad(s.n, dh * (1.0 - s.z))  # dL/d(pre-tanh n) = dh (1 - z) (1 - n^2)
        dz = _sig_grad(s.z, dh * (s.h_prev - s.n))  # dh (h_{t-1} - n) z (1 - z)
        dr = _sig_grad(s.r, dn * s.hu_n)  # dn (h U_n + c_n) r (1 - r)
        dxw = concat([dr, dz, dn], axis=-1)
        return dxw, concat([dr, dz, dn * s.r], axis=-1), [dh * s.z]  # dhu_n = dn r


class BidirectionalCache(NamedTuple):
    forward: Any  # the forward direction's cache
    backward: Any  # the backward direction's cache
    saved: Any  # (forward output, aligned backward output) for "mul", else None
    given: int  # initial states given per direction


class Bidirectional(Layer):
    """Runs ``layer`` forward in time and a copy backward, and merges the two outputs.

    ``y = merge(forward(x), align(backward(x)))`` where the backward copy has ``go_backwards``
    flipped and, with ``return_sequences``, its outputs are put back in the input's time order
    (Keras and PyTorch). ``merge_mode``: ``"concat"`` (forward first, 2 units), ``"sum"``,
    ``"mul"``, ``"ave"``. Parameters ``forward.<name>`` and ``backward.<name>``;
    ``return_state`` (from ``layer``) adds the forward states, then the backward ones; initial
    states come the same way: ``forward([x, *forward states, *backward states])``. The copy's
    ``seed`` is the layer's + 1 (so the two directions start apart).
    """

    accepts_mask: ClassVar[bool] = True
    takes_list: ClassVar[bool | None] = None
    skips_input_grad = True

    def __init__(
        self,
        layer: _RNN,
        merge_mode: str = "concat",
        *,
        input_shape: Shape | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(layer, _RNN):
            raise TypeError(
                "Bidirectional wraps a SimpleRNN, LSTM or GRU layer. "
                f"Received: layer={layer!r} of type {type(layer).__name__}"
            )
        self.merge_mode = choice("merge_mode", merge_mode, ("concat", "sum", "mul", "ave"))
        config = layer.get_config()
        config.update(go_backwards=not layer.go_backwards, name=f"backward_{layer.name}")
        if isinstance(config["seed"], int):
            config["seed"] += 1
        self.forward_layer, self.backward_layer = layer, type(layer).from_config(config)
        super().__init__(input_shape=input_shape, name=name)
        if layer.built and not self.built:
            self.build(layer.input_shape)

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    @property
    def return_state(self) -> bool:
        return self.forward_layer.return_state

    def build(self, input_shape: Any) -> None:
        for _, sub in self._directions():
            if not sub.built:
                sub.build(input_shape)
        self.params = {p + k: v for p, sub in self._directions() for k, v in sub.params.items()}
        super().build(self.forward_layer.input_shape)

    def penalties(self) -> tuple[Any, dict[str, Any]]:
        """Both directions' regularizers (the wrapped layer's, copied to the backward one), on
        this layer's current parameters."""
        for prefix, sub in self._directions():
            sub.params = {k: self.params[prefix + k] for k in sub.params}
        return gathered_penalties(self._directions())

    def _directions(self) -> list[tuple[str, _RNN]]:
        return [("forward.", self.forward_layer), ("backward.", self.backward_layer)]

    check_input = _check_sequence

    def ensure_built(self, x: Any) -> None:
        """:meth:`Layer.ensure_built`; a first input that does not fit unbuilds both directions
        too."""
        if self.built:
            return self.check_input(x)
        try:
            super().ensure_built(x)
        except (TypeError, ValueError):
            for _, sub in self._directions():
                sub.params, sub.built, sub.input_shape = {}, False, None
            raise
        return None

    def compute_output_shape(self, input_shape: Any) -> Any:
        out = self.forward_layer.compute_output_shape(input_shape)
        y = out[0] if self.return_state else out
        if self.merge_mode == "concat":
            y = (*y[:-1], 2 * y[-1])
        return [y, *out[1:], *out[1:]] if self.return_state else y

    compute_mask = _RNN.compute_mask

    @property
    def state_names(self) -> tuple[str, ...]:  # for compute_mask: the states of both directions
        return self.forward_layer.state_names * 2

    def forward(
        self, x: Any, training: bool = False, mask: Any = None
    ) -> tuple[Any, BidirectionalCache]:
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        n = len(self.forward_layer.state_names)
        if len(xs) not in (1, 1 + 2 * n):
            raise ValueError(
                f"{self.name}: expects x or [x, {n} forward states, {n} backward states]; "
                f"received a list of {len(xs)}"
            )
        self.ensure_built(xs[0])
        for prefix, sub in self._directions():  # the layers run on this layer's parameters
            sub.params = {k: self.params[prefix + k] for k in sub.params}
        given = (len(xs) - 1) // 2  # initial states per direction
        args = [[xs[0], *xs[1 + i * n : 1 + (i + 1) * n]] if given else xs[0] for i in (0, 1)]
        yf, cf = self.forward_layer.forward(args[0], training, mask=mask)
        yb, cb = self.backward_layer.forward(args[1], training, mask=mask)
        of, ob = (yf[0], yb[0]) if self.return_state else (yf, yb)
        xp = namespace_of(of)
        if self.return_sequences:
            ob = xp.flip(ob, axis=1)  # back in the input's time order
        mode = self.merge_mode
        if mode == "concat":
            y = xp.concat([of, ob], axis=-1)  # y = [forward | backward]
        else:
            y = of * ob if mode == "mul" else (of + ob) * (0.5 if mode == "ave" else 1.0)
        cache = BidirectionalCache(cf, cb, (of, ob) if mode == "mul" else None, given)
        return ([y, *yf[1:], *yb[1:]] if self.return_state else y), cache

    def backward(
        self, dy: Any, cache: BidirectionalCache, input_grad: bool = True
    ) -> tuple[Any, dict[str, Any]]:
        n = len(self.forward_layer.state_names)
        dys = list(dy) if self.return_state and isinstance(dy, (list, tuple)) else [dy]
        if self.return_state and len(dys) != 1 + 2 * n:
            raise ValueError(
                f"{self.name}: expects a list of {1 + 2 * n} output gradients (entries may be "
                f"None). Received: {len(dys)}"
            )
        d, mode = dys[0], self.merge_mode
        if d is None:
            df = db = None
        elif mode == "concat":
            u = self.forward_layer.units
            df, db = d[..., :u], d[..., u:]  # dL/d(forward), dL/d(backward): dy's halves
        elif mode == "mul":
            df, db = d * cache.saved[1], d * cache.saved[0]
        else:
            df = db = d * 0.5 if mode == "ave" else d
        if db is not None and self.return_sequences:
            db = namespace_of(db).flip(db, axis=1)  # into the backward layer's step order
        if self.return_state:
            df, db = [df, *dys[1 : 1 + n]], [db, *dys[1 + n :]]
        outs = [
            sub.backward(g, c, input_grad)
            for sub, g, c in zip((self.forward_layer, self.backward_layer), (df, db), cache[:2])
        ]
        grads = {p + k: v for (p, _), (_, g) in zip(self._directions(), outs) for k, v in g.items()}
        if not input_grad:
            return None, grads
        (dxf, _), (dxb, _) = outs
        if not cache.given:
            return dxf + dxb, grads
        return [dxf[0] + dxb[0], *dxf[1:], *dxb[1:]], grads

    def get_config(self) -> dict[str, Any]:
        layer = self.forward_layer
        config = {"class_name": type(layer).__name__, "config": layer.get_config()}
        return {**super().get_config(), "layer": config, "merge_mode": self.merge_mode}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Bidirectional:
        config = dict(config)
        inner = config.pop("layer")
        return cls(layer_from_config(inner["class_name"], dict(inner["config"])), **config)


__all__ = [
    "GRU",
    "LSTM",
    "Bidirectional",
    "BidirectionalCache",
    "GRUStepCache",
    "LSTMStepCache",
    "RNNCache",
    "SimpleRNN",
    "SimpleRNNStepCache",
]
