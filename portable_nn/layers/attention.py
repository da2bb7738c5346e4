"""Multi-head attention (Vaswani et al., 2017), Keras's ``MultiHeadAttention`` API."""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import array_api_compat

from portable_nn.backend import device_of, has_dtype, namespace_and_device, namespace_of
from portable_nn.functional.softmax import softmax, softmax_grad_from_output
from portable_nn.random import Generator, get_generator
from portable_nn.validation import flag, format_shape, fraction, positive_int

from ._weights import check_initializer, check_seed, initializer_name, make_weight
from .base import Layer, Shape, is_symbolic

ROLES = ("query", "key", "value")  # the projections, in the order of their parameters


class AttentionCache(NamedTuple):
    rows: tuple[Any, Any, Any]  # query, key, value inputs as rows (batch * T, E)
    q: Any  # Q / sqrt(key_dim), heads split: (batch, h, T_q, key_dim)
    k: Any  # K: (batch, h, T_k, key_dim)
    v: Any  # V: (batch, h, T_k, value_dim)
    probs: Any  # P: (batch, h, T_q, T_k), 0 where masked
    drop: Any  # dropout's mask / (1 - rate) on P; None without dropout
    context: Any  # O = P~ V with the heads joined: (batch * T_q, h * value_dim)
    weights: dict[str, Any]  # the parameters that produced y
    given: int  # inputs given: 2 ([query, value]), 3 (+ key) or 4 (+ attention_mask)


class MultiHeadAttention(Layer):
    """``y = concat_j(softmax(Q_j K_j^T / sqrt(key_dim) + mask) V_j) W_o + b_o`` over heads ``j``.

    Called on a list: ``mha([query, value])`` (key = value), ``mha([query, value, key])`` or
    ``mha([query, value, key, attention_mask])``; backward returns the list of gradients of the
    inputs given (None for the mask). Shapes: query ``(batch, T_q, E_q)``, value
    ``(batch, T_k, E_v)``, key ``(batch, T_k, E_k)``, output ``(batch, T_q, E_q)``.
    ``Q = query W_q + b_q`` (``W_q``: ``query_weight`` ``(E_q, h * key_dim)``), likewise ``K``
    and ``V`` (``key_weight``, ``value_weight``); head ``j`` takes columns
    ``j * key_dim : (j + 1) * key_dim``; ``output_weight`` is ``(h * value_dim, E_q)``.

    Masks, all combined: ``attention_mask`` is boolean ``(batch, T_q, T_k)``, True where query
    ``i`` may attend to key ``j`` (Keras); ``use_causal_mask`` lets query ``i`` see keys
    ``j <= i``; the inputs' sequence masks (``forward(..., mask=[query_mask, value_mask,
    key_mask])``, each None or boolean ``(batch, T)``, as containers pass them) mask padded
    queries' rows and padded keys (Keras), and the output carries the query's mask. Masked keys
    get probability 0; a fully masked row gets all-zero weights (its output is ``b_o``).
    Training: dropout on the weights, masks from ``self.generator`` on the device (as Dropout).
    The weights (before dropout) of the last eager forward are kept in
    ``last_attention_scores`` ``(batch, h, T_q, T_k)`` (None after a compiled JAX step), and
    ``mha(inputs, return_attention_scores=True)`` returns ``(y, scores)``.
    """

    takes_list: ClassVar[bool] = True
    has_training_behaviour = True
    accepts_mask: ClassVar[bool] = True  # forward(..., mask=[query_mask, value_mask, key_mask])
    input_dtype: ClassVar[Any] = (None, None, None, "bool")  # the attention_mask is boolean

    REGULARIZABLE = {
        "kernel_regularizer": tuple(f"{r}_weight" for r in ("query", "key", "value", "output")),
        "bias_regularizer": tuple(f"{r}_bias" for r in ("query", "key", "value", "output")),
    }

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        use_causal_mask: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        seed: int | Generator | None = None,
        name: str | None = None,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
    ) -> None:
        self.set_regularizers(
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
        )
        self.num_heads = positive_int("num_heads", num_heads)
        self.key_dim = positive_int("key_dim", key_dim)
        self.value_dim = self.key_dim if value_dim is None else positive_int("value_dim", value_dim)
        self.dropout, self.use_bias = fraction("dropout", dropout), flag("use_bias", use_bias)
        self.use_causal_mask = flag("use_causal_mask", use_causal_mask)
        self.kernel_initializer = check_initializer("kernel_initializer", kernel_initializer)
        self.bias_initializer = check_initializer("bias_initializer", bias_initializer)
        check_seed(seed)
        self.seed = seed if isinstance(seed, int) else None
        self._init_seed = seed  # weights: like Dense (None: the global generator at build)
        self.generator = get_generator(
            get_generator(None).host.integers(2**62) if seed is None else seed
        )
        self.last_attention_scores: Any = None
        super().__init__(name=name)

    # -- shapes -----------------------------------------------------------------------------------
    def build(self, input_shape: Any) -> None:
        """``input_shape``: the list of input shapes; makes the eight weights (Keras's order)."""
        shapes = self._check_shapes(input_shape)
        generator = get_generator(self._init_seed)
        width = {"query": self.key_dim, "key": self.key_dim, "value": self.value_dim}
        params = {}
        for role, shape in zip(ROLES, (shapes[0], shapes[2], shapes[1])):
            if not isinstance(shape[-1], int):
                raise ValueError(f"{self.name}: the {role}'s feature size must be known")
            out = self.num_heads * width[role]
            params[f"{role}_weight"] = make_weight(
                self.kernel_initializer, (shape[-1], out), generator
            )
            if self.use_bias:
                params[f"{role}_bias"] = make_weight(self.bias_initializer, (out,), generator)
        out = (self.num_heads * self.value_dim, shapes[0][-1])
        params["output_weight"] = make_weight(self.kernel_initializer, out, generator)
        if self.use_bias:
            params["output_bias"] = make_weight(self.bias_initializer, out[1:], generator)
        self.params, self.built = params, True

    def compute_output_shape(self, input_shape: Any) -> Shape:
        return self._check_shapes(input_shape)[0]  # (batch, T_q, E_q)

    def _check_shapes(self, input_shape: Any) -> list[Shape]:
        """``[query, value, key, mask or None]`` shapes after the checks (``ValueError``)."""
        n = len(input_shape) if isinstance(input_shape, (list, tuple)) else 0
        if not 2 <= n <= 4:
            raise ValueError(
                f"{self.name}: expects a list [query, value], [query, value, key] or [query, "
                f"value, key, attention_mask]. Received {n or type(input_shape).__name__} inputs"
            )
        q, v, k, mask = _unpack([tuple(s) for s in input_shape])
        for role, shape in (("query", q), ("value", v), ("key", k)):
            w = self.params.get(f"{role}_weight")
            if len(shape) != 3 or w is not None and shape[2] != w.shape[0]:
                want = "(batch, T, features)" if w is None else f"(batch, T, {w.shape[0]})"
                raise ValueError(
                    f"{self.name}: {role} must be {want}. Received {format_shape(shape)}"
                )
        rows = {s[0] for s in (q, v, k) if s[0] is not None}
        if len(rows) > 1 or _differ(v[1], k[1]):
            shapes = ", ".join(map(format_shape, (q, v, k)))
            raise ValueError(
                f"{self.name}: query, value and key need one batch size, value and key one "
                f"length T_k. Received shapes {shapes}"
            )
        want = (q[0] if q[0] is not None else v[0], q[1], v[1])
        if mask is not None and (len(mask) != 3 or any(map(_differ, mask, want))):
            raise ValueError(
                f"{self.name}: attention_mask must be (batch, T_q, T_k) = {format_shape(want)}. "
                f"Received {format_shape(mask)}"
            )
        return [q, v, k, mask]

    def _arrays(self, inputs: Any) -> tuple[Any, Any, Any, Any]:
        """``(query, value, key, mask or None)`` after the checks; builds on first use."""
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(
                f"{self.name}: expects a list of arrays. Received: {type(inputs).__name__}"
            )
        inputs, built = list(inputs), self.built
        shapes = [tuple(getattr(a, "shape", ())) for a in inputs]
        if built:
            self._check_shapes(shapes)
        else:
            self.build(shapes)
        try:
            w = self.params["query_weight"]
            try:
                namespace_and_device(*inputs, w)
            except ValueError as exc:
                raise ValueError(f"{self.name}: inputs and weights differ: {exc}") from None
            for role, x in zip(("query", "value", "key"), inputs[:3]):
                if x.dtype != w.dtype:
                    raise TypeError(
                        f"{self.name}: {role} has dtype {x.dtype}, the weights {w.dtype}"
                    )
            if len(inputs) == 4 and not has_dtype(inputs[3], "bool"):
                raise ValueError(
                    f"{self.name}: attention_mask must be boolean (True: may attend). "
                    f"Received: dtype={inputs[3].dtype}"
                )
        except (TypeError, ValueError):
            if not built:  # the first input did not fit the weights just made: undo the build
                self.params, self.built = {}, False
            raise
        return _unpack(inputs)

    # -- maths: each line of forward, its backward in the same order -----------------------------
    def forward(
        self, inputs: Any, training: bool = False, mask: Any = None
    ) -> tuple[Any, AttentionCache]:
        query, value, key, attention_mask = self._arrays(inputs)
        xp, device, h = namespace_of(query), array_api_compat.device(query), self.num_heads
        (b, tq, _), tk = query.shape, value.shape[1]
        rows = tuple(xp.reshape(x, (-1, x.shape[-1])) for x in (query, key, value))
        q, k, v = (_split(xp, self._project(x, role), b, h) for x, role in zip(rows, ROLES))
        q = q * (1.0 / math.sqrt(self.key_dim))  # Q / sqrt(d_k) with Q = x_q W_q + b_q, per head
        s = q @ xp.matrix_transpose(k)  # S = Q K^T / sqrt(d_k): (B, h, T_q, T_k)
        masks = self._masks(mask, list(inputs))
        allowed = self._allowed(xp, attention_mask, masks, (tq, tk), device)
        probs = softmax(s) if allowed is None else _masked_softmax(xp, s, allowed, device)  # P
        drop = self._drop(xp, s, device) if training and self.dropout > 0.0 else None
        context = _join(xp, (probs if drop is None else probs * drop) @ v)  # O = P~ V, joined
        y = xp.reshape(self._project(context, "output"), (b, tq, -1))  # y = O W_o + b_o
        self.last_attention_scores = probs if device_of(probs) is not None else None  # no tracer
        cache = AttentionCache(rows, q, k, v, probs, drop, context, dict(self.params), len(inputs))
        return y, cache

    def backward(self, dy: Any, cache: AttentionCache) -> tuple[list[Any], dict[str, Any]]:
        rows, q, k, v, probs, drop, context, w, given = cache
        b, _, tq, tk = probs.shape
        self.check_gradient(dy, (b, tq, w["output_weight"].shape[1]))
        xp, grads = namespace_of(dy), {}
        dy = xp.reshape(dy, (b * tq, -1))
        d_context = self._project_grad(xp, context, dy, w, "output", grads)  # dO = dy W_o^T
        d_context = _split(xp, d_context, b, self.num_heads)
        dv = xp.matrix_transpose(probs if drop is None else probs * drop) @ d_context  # P~^T dO
        dp = d_context @ xp.matrix_transpose(v)  # dP~ = dO V^T
        dp = dp if drop is None else dp * drop  # dP = dP~ * mask / (1 - rate)
        ds = softmax_grad_from_output(probs, dp)  # dS = P * (dP - sum(dP * P)); 0 where masked
        dq = (ds @ k) * (1.0 / math.sqrt(self.key_dim))  # dQ = dS K / sqrt(d_k)
        dk = xp.matrix_transpose(ds) @ q  # dK = dS^T Q / sqrt(d_k)  (q is scaled)
        dx = [
            xp.reshape(
                self._project_grad(xp, x, _join(xp, dz), w, role, grads), (b, -1, x.shape[-1])
            )
            for x, dz, role in zip(rows, (dq, dk, dv), ROLES)
        ]  # per projection Z = x W + b: dW = x^T dZ, db = sum(dZ), dx = dZ W^T
        dquery, dkey, dvalue = dx
        out = [dquery, dvalue + dkey] if given == 2 else [dquery, dvalue, dkey]  # key = value
        out += [None] * (given == 4)  # a boolean mask has no gradient
        return out, {name: grads[name] for name in w}

    def _project(self, x: Any, role: str) -> Any:
        z = x @ self.params[f"{role}_weight"]  # Z = x W + b
        return z + self.params[f"{role}_bias"] if self.use_bias else z

    def _project_grad(
        self, xp: Any, x: Any, dz: Any, w: dict[str, Any], role: str, grads: dict[str, Any]
    ) -> Any:
        grads[f"{role}_weight"] = x.T @ dz  # dW = x^T dZ
        if self.use_bias:
            grads[f"{role}_bias"] = xp.sum(dz, axis=0)  # db = sum of dZ over the rows
        return dz @ w[f"{role}_weight"].T  # dx = dZ W^T

    def _allowed(
        self, xp: Any, given: Any, masks: list[Any], t: tuple[int, int], device: Any
    ) -> Any:
        """Where query ``i`` may attend to key ``j`` (broadcasting to ``(B, h, T_q, T_k)``), from
        ``attention_mask``, the sequence masks (query: rows, value and key: columns) and the
        causal mask (``t = (T_q, T_k)``); None: everywhere."""
        parts = [] if given is None else [xp.expand_dims(given, axis=1)]  # (B, 1, T_q, T_k)
        for i, m in enumerate(masks):  # query (B, 1, T_q, 1); value, key (B, 1, 1, T_k)
            if m is not None:
                parts.append(xp.reshape(m, (m.shape[0], 1, -1, 1) if i == 0 else (-1, 1, 1, t[1])))
        if self.use_causal_mask:
            i = xp.reshape(xp.arange(t[0], device=device), (t[0], 1))
            parts.append(i >= xp.arange(t[1], device=device))  # key j <= query i
        allowed = None
        for part in parts:
            allowed = part if allowed is None else xp.logical_and(allowed, part)
        return allowed

    def _masks(self, mask: Any, inputs: list[Any]) -> list[Any]:
        """The sequence masks of query, value and key (None or boolean ``(B, T)`` each) from
        the list a container passes (one per input; the attention mask's own is ignored)."""
        if mask is None:
            return []
        if not isinstance(mask, (list, tuple)) or len(mask) != len(inputs):
            raise ValueError(
                f"{self.name}: mask must be None or a list of {len(inputs)} masks (one per input, "
                f"each None or boolean (batch, T)). Received: {type(mask).__name__}"
            )
        for role, m, x in zip(("query", "value", "key"), mask, inputs):
            if m is not None and (tuple(m.shape) != tuple(x.shape[:2]) or not has_dtype(m, "bool")):
                raise ValueError(
                    f"{self.name}: the {role}'s mask must be boolean {format_shape(x.shape[:2])}. "
                    f"Received shape {format_shape(m.shape)}, dtype {m.dtype}"
                )
        return list(mask[:3])

    def compute_mask(self, x: Any, mask: Any) -> Any:
        """The output's mask: the query's (its rows are the query's steps)."""
        return mask[0] if isinstance(mask, (list, tuple)) else None

    def _drop(self, xp: Any, s: Any, device: Any) -> Any:
        """Dropout's ``mask / (1 - rate)`` for the attention weights (a device-side draw)."""
        keep = 1.0 - self.dropout
        bits = self.generator.bernoulli(tuple(s.shape), keep, xp=xp, device=device)
        return xp.astype(bits, s.dtype) * (1.0 / keep)

    def __call__(self, inputs: Any, return_attention_scores: bool = False, **kwargs: Any) -> Any:
        """Inference; ``return_attention_scores=True`` (arrays only) gives ``(y, P)``."""
        if not return_attention_scores:
            return super().__call__(inputs, **kwargs)
        if is_symbolic(inputs):
            raise TypeError(
                f"{self.name}: return_attention_scores needs arrays; in a graph model read "
                "last_attention_scores after model(x)"
            )
        y, cache = self.forward(inputs)
        return y, cache.probs

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "use_causal_mask": self.use_causal_mask,
            "kernel_initializer": initializer_name(self.kernel_initializer),
            "bias_initializer": initializer_name(self.bias_initializer),
            "seed": self.seed,
        }


def _masked_softmax(xp: Any, s: Any, allowed: Any, device: Any) -> Any:
    """``exp(S - m) / sum(exp(S - m))`` over the allowed keys, 0 on the others; a row with no
    allowed key is all 0 (never NaN): its shift is 0 and its sum is replaced by 1."""
    s = xp.where(allowed, s, xp.asarray(-math.inf, dtype=s.dtype, device=device))
    m = xp.max(s, axis=-1, keepdims=True)
    e = xp.exp(s - xp.where(m == -math.inf, xp.zeros_like(m), m))  # exp(-inf) = 0 if masked
    total = xp.sum(e, axis=-1, keepdims=True)
    return e / xp.where(total > 0.0, total, xp.ones_like(total))


def _unpack(items: list[Any]) -> tuple[Any, Any, Any, Any]:
    """``(query, value, key, attention_mask)`` from a list of 2 to 4 (key: value, mask: None)."""
    query, value, *rest = items
    return query, value, rest[0] if rest else value, rest[1] if len(rest) > 1 else None


def _split(xp: Any, z: Any, batch: int, heads: int) -> Any:
    """``(B * T, h * d) -> (B, h, T, d)``: head ``j`` takes columns ``j*d : (j+1)*d``."""
    return xp.permute_dims(xp.reshape(z, (batch, -1, heads, z.shape[-1] // heads)), (0, 2, 1, 3))


def _join(xp: Any, z: Any) -> Any:
    """``(B, h, T, d) -> (B * T, h * d)``, the inverse of :func:`_split`."""
    b, h, t, d = z.shape
    return xp.reshape(xp.permute_dims(z, (0, 2, 1, 3)), (b * t, h * d))


def _differ(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a != b


__all__ = ["AttentionCache", "MultiHeadAttention"]
