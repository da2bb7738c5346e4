"""The models and contenders of ``rnn.py``: an LSTM classifier and a self-attention block.

Both models are built once by portable_nn on NumPy from a seed; their initial parameters (in
``model.parameters()`` order and portable_nn's layout) and a few fixed batches make the
:class:`Problem` that every contender starts from. PyTorch gets the same numbers in its own
layout (``to_torch``) and reports its weights and gradients back in portable_nn's
(``from_torch``), so ``_harness.check_against_torch`` compares them directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import _timing
import numpy as np
from _mlp_contenders import ADAM, PortableMLP

N_BATCHES = 4  # distinct batches cycled through by every contender
CLASSES = 10


@dataclass(frozen=True)
class Sizes:
    """``lstm``: LSTM(units) on (batch, time, features) -> last state -> Dense(10).
    ``attention``: x (batch, time, features) -> MultiHeadAttention(heads, features // heads)
    self-attention -> Add(x) -> LayerNormalization -> mean over time -> Dense(10)."""

    kind: str
    batch: int
    time: int
    features: int
    units: int = 0  # LSTM units
    heads: int = 0  # attention heads


@dataclass
class Problem:
    sizes: Sizes
    names: list[str]  # portable_nn parameter names, in model.parameters() order
    params: list[np.ndarray]  # their initial values (float32, portable_nn layout)
    batches: list[tuple[np.ndarray, np.ndarray]]  # (x float32, integer labels)

    @property
    def checked(self) -> list[str]:
        """The parameters compared with PyTorch's after one step: all but the attention's key
        bias, whose gradient is 0 in exact arithmetic (it adds ``q . b_k``, the same for every
        key, to a query's scores, and the softmax ignores that); both libraries return float32
        rounding noise (~1e-8) there, and Adam turns noise into steps of ``lr`` in random
        directions. The layer tests compare that gradient with PyTorch's in float64."""
        return [name for name in self.names if name != "attention.key_bias"]


def build_portable(pnn: Any, sizes: Sizes) -> Any:
    """The portable_nn model of ``sizes`` (built, on the active backend)."""
    L = pnn.layers  # noqa: N806
    if sizes.kind == "lstm":
        model = pnn.Sequential([L.LSTM(sizes.units, name="lstm"), L.Dense(CLASSES, name="head")])
        model.build((None, sizes.time, sizes.features))
        return model
    x = pnn.Input((sizes.time, sizes.features), name="x")
    key_dim = sizes.features // sizes.heads
    attended = L.MultiHeadAttention(sizes.heads, key_dim, name="attention")([x, x])
    h = L.LayerNormalization(epsilon=1e-5, name="norm")(L.Add(name="residual")([x, attended]))
    pooled = L.GlobalAveragePooling1D(name="pool")(h)
    return pnn.Model(x, L.Dense(CLASSES, name="head")(pooled), name="attention_block")


def make_problem(sizes: Sizes, seed: int = 0) -> Problem:
    """Initial parameters from portable_nn's initialisers (NumPy, ``seed``) and random batches."""
    import portable_nn as pnn

    with pnn.use_backend("numpy"):
        pnn.seed(seed)
        params = build_portable(pnn, sizes).parameters()
    rng = np.random.default_rng(seed)
    batches = [
        (
            rng.standard_normal((sizes.batch, sizes.time, sizes.features)).astype(np.float32),
            rng.integers(0, CLASSES, sizes.batch).astype(np.int64),
        )
        for _ in range(N_BATCHES)
    ]
    values = [np.array(pnn.to_numpy(v), dtype=np.float32) for v in params.values()]
    return Problem(sizes, list(params), values, batches)


class TorchModel:
    """``torch.nn.LSTM`` (``batch_first``, its last hidden state) + ``Linear``, or
    ``torch.nn.MultiheadAttention`` (``batch_first``, ``need_weights=False``: the SDPA kernel) +
    residual + ``LayerNorm`` + mean + ``Linear``; ``CrossEntropyLoss`` and ``torch.optim.Adam``.

    The LSTM's second bias ``bias_hh_l0`` (portable_nn and Keras have one) is zero and frozen,
    so the two models are the same function with the same trainable parameters.
    """

    def __init__(self, problem: Problem, device: str) -> None:
        import torch

        self.torch, self.name, self.compiled = torch, f"pytorch-{device}", False
        nn, s = torch.nn, problem.sizes
        if s.kind == "lstm":
            self.layers = nn.ModuleDict(
                {
                    "rnn": nn.LSTM(s.features, s.units, batch_first=True),
                    "head": nn.Linear(s.units, CLASSES),
                }
            )
            self.layers["rnn"].bias_hh_l0.requires_grad_(False)
        else:
            self.layers = nn.ModuleDict(
                {
                    "mha": nn.MultiheadAttention(s.features, s.heads, batch_first=True),
                    "norm": nn.LayerNorm(s.features, eps=1e-5),
                    "head": nn.Linear(s.features, CLASSES),
                }
            )
        self.kind = s.kind
        self.layers.to(device)
        self._load(dict(zip(problem.names, problem.params)))
        trainable = [p for p in self.layers.parameters() if p.requires_grad]
        betas = (ADAM["beta1"], ADAM["beta2"])
        self.optimizer = torch.optim.Adam(trainable, lr=ADAM["lr"], betas=betas, eps=ADAM["eps"])
        self.loss = nn.CrossEntropyLoss()
        self.names = problem.checked
        self.batches = [
            (torch.tensor(x, device=device), torch.tensor(y, device=device))
            for x, y in problem.batches
        ]
        self.count = 0
        self.sync = _timing.torch_cuda_sync() if device == "cuda" else _timing.no_sync

    def _pairs(self) -> dict[str, tuple[Any, Any]]:
        """portable_nn name -> (torch tensor, slice of its rows or None); the value in
        portable_nn's layout is ``tensor[rows].T`` for matrices."""
        m = self.layers
        if self.kind == "lstm":
            rnn = m["rnn"]
            return {
                "0.weight": (rnn.weight_ih_l0, None),  # Sequential names: layer index
                "0.recurrent_weight": (rnn.weight_hh_l0, None),
                "0.bias": (rnn.bias_ih_l0, None),
                "1.weight": (m["head"].weight, None),
                "1.bias": (m["head"].bias, None),
            }
        mha, e = m["mha"], m["mha"].embed_dim
        rows = {"query": slice(0, e), "key": slice(e, 2 * e), "value": slice(2 * e, 3 * e)}
        found = {}
        for part, span in rows.items():
            found[f"attention.{part}_weight"] = (mha.in_proj_weight, span)
            found[f"attention.{part}_bias"] = (mha.in_proj_bias, span)
        found["attention.output_weight"] = (mha.out_proj.weight, None)
        found["attention.output_bias"] = (mha.out_proj.bias, None)
        found["norm.gamma"], found["norm.beta"] = (m["norm"].weight, None), (m["norm"].bias, None)
        found["head.weight"], found["head.bias"] = (m["head"].weight, None), (m["head"].bias, None)
        return found

    def _load(self, values: dict[str, np.ndarray]) -> None:
        pairs = self._pairs()
        if set(pairs) != set(values):
            raise RuntimeError(f"torch and portable_nn parameters differ: {sorted(values)}")
        with self.torch.no_grad():
            for name, (tensor, rows) in pairs.items():
                value = self.torch.from_numpy(np.ascontiguousarray(values[name].T))
                (tensor if rows is None else tensor[rows]).copy_(value)
            if self.kind == "lstm":
                self.layers["rnn"].bias_hh_l0.zero_()

    def _read(self, grads: bool) -> list[np.ndarray]:
        pairs, out = self._pairs(), []
        for name in self.names:
            tensor, rows = pairs[name]
            tensor = tensor.grad if grads else tensor
            value = tensor if rows is None else tensor[rows]
            out.append(np.ascontiguousarray(value.detach().cpu().numpy().T))
        return out

    def forward(self, x: Any) -> Any:
        m = self.layers
        if self.kind == "lstm":
            _, (h, _) = m["rnn"](x)
            return m["head"](h[-1])
        attended, _ = m["mha"](x, x, x, need_weights=False)
        return m["head"](m["norm"](x + attended).mean(dim=1))

    def step(self) -> Any:
        x, y = self.batches[self.count % len(self.batches)]
        self.count += 1
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.forward(x), y)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def grads(self) -> list[np.ndarray]:
        return self._read(grads=True)

    def weights(self) -> list[np.ndarray]:
        return self._read(grads=False)


class PortableModel(PortableMLP):
    """portable_nn on one backend (:func:`build_portable`), cross-entropy from logits and Adam;
    the manual step or ``compile`` + ``train_step`` (:class:`PortableMLP`'s)."""

    def __init__(self, backend: str, device: str | None, mode: str, problem: Problem) -> None:
        self.problem = problem
        super().__init__(backend, device, mode, "cross_entropy", problem.params, problem.batches)

    def _build(self, pnn: Any, weights: list) -> Any:
        model = build_portable(pnn, self.problem.sizes)
        if list(model.parameters()) != self.problem.names:
            raise RuntimeError("portable_nn's parameters do not line up with the problem's")
        # copies: pnn.asarray may alias a NumPy array, and the optimizer updates in place
        model.set_parameters(
            {k: pnn.asarray(np.array(w, order="C")) for k, w in zip(self.problem.names, weights)}
        )
        return model

    def grads(self) -> list[np.ndarray] | None:
        if self.mode == "train_step":
            return None
        return [np.array(self.pnn.to_numpy(self.last_grads[k])) for k in self.problem.checked]

    def weights(self) -> list[np.ndarray]:
        params = self.model.parameters()
        return [np.array(self.pnn.to_numpy(params[k])) for k in self.problem.checked]
