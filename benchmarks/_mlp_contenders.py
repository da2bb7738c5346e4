"""The contenders of ``mlp.py``: one training step of a ReLU MLP, four ways.

Each contender owns its weights, optimizer state and a copy of the batches, and offers
``step()`` (one forward/loss/backward/Adam step on the next batch; returns the loss before the
update), ``sync()`` (wait for queued device work) and ``weights()`` (host NumPy ``[(W, b)]``
with ``W`` of shape (in, out), for the correctness check). ``compiled`` says whether the step
runs as one compiled function (``jax.jit``); contenders without it are eager.
"""

from __future__ import annotations

import importlib
import inspect
import math
from types import ModuleType
from typing import Any

import _timing
import numpy as np

ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


class TorchMLP:
    """``torch.nn`` Linear/ReLU stack, ``CrossEntropyLoss``/``MSELoss``, ``torch.optim.Adam``
    with its defaults for the device (on CPU: the single-tensor loop, ``foreach=None``)."""

    def __init__(self, loss: str, weights: list, batches: list, device: str) -> None:
        import torch

        self.name = f"pytorch-{device}"
        self.compiled = False
        self.torch = torch
        layers: list[Any] = []
        for i, (w, b) in enumerate(weights):
            linear = torch.nn.Linear(*w.shape, device=device)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w.T.copy()))
                linear.bias.copy_(torch.from_numpy(b.copy()))
            layers += [linear] if i == len(weights) - 1 else [linear, torch.nn.ReLU()]
        self.model = torch.nn.Sequential(*layers)
        self.loss = torch.nn.CrossEntropyLoss() if loss == "cross_entropy" else torch.nn.MSELoss()
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=ADAM["lr"],
            betas=(ADAM["beta1"], ADAM["beta2"]),
            eps=ADAM["eps"],
        )
        self.batches = [
            (torch.tensor(x, device=device), torch.tensor(y, device=device)) for x, y in batches
        ]
        self.count = 0
        self.sync = _timing.torch_cuda_sync() if device == "cuda" else _timing.no_sync

    def step(self) -> Any:
        x, y = self.batches[self.count % len(self.batches)]
        self.count += 1
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def grads(self) -> list:
        """Gradients of the last step (PyTorch keeps them until the next ``zero_grad``)."""
        linears = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
        return [
            (m.weight.grad.cpu().numpy().T.copy(), m.bias.grad.cpu().numpy().copy())
            for m in linears
        ]

    def weights(self) -> list:
        linears = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
        return [
            (m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
            for m in linears
        ]


class HandwrittenMLP:
    """Plain NumPy (or CuPy, same calls): the "how fast can NumPy be" bar.

    Forward ``z_i = h_{i-1} W_i + b_i``, ``h_i = relu(z_i)`` (in place); backward
    ``dW_i = h_{i-1}^T dz_i``, ``db_i = sum_rows dz_i``, ``dh_{i-1} = dz_i W_i^T``,
    ``dz_{i-1} = dh_{i-1} * [h_{i-1} > 0]``; Adam in PyTorch's form with scratch buffers:
    ``p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``.
    """

    def __init__(self, xp: ModuleType, loss: str, weights: list, batches: list) -> None:
        self.name = f"handwritten-{xp.__name__}"
        self.compiled = False
        self.xp = xp
        self.loss_kind = loss
        self.params = [xp.array(a) for pair in weights for a in pair]  # W0, b0, W1, b1, ...
        self.m = [xp.zeros_like(p) for p in self.params]
        self.v = [xp.zeros_like(p) for p in self.params]
        self.scratch = [xp.empty_like(p) for p in self.params]
        self.batches = [(xp.asarray(x), xp.asarray(y)) for x, y in batches]
        self.rows = xp.arange(batches[0][0].shape[0])
        self.count = 0
        self.t = 0
        self.sync = _timing.cupy_sync() if xp.__name__ == "cupy" else _timing.no_sync

    def step(self) -> Any:
        x, y = self.batches[self.count % len(self.batches)]
        self.count += 1
        hidden = self._forward(x)
        loss, dz = self._loss(hidden[-1], y)
        self.last_grads = self._backward(hidden, dz)
        self._adam(self.last_grads)
        return loss

    def _forward(self, x: Any) -> list:
        xp, hidden, n = self.xp, [x], len(self.params) // 2
        for i in range(n):
            z = hidden[-1] @ self.params[2 * i]
            z += self.params[2 * i + 1]
            if i < n - 1:
                xp.maximum(z, 0.0, out=z)
            hidden.append(z)
        return hidden

    def _loss(self, out: Any, y: Any) -> tuple[Any, Any]:
        xp, batch = self.xp, out.shape[0]
        if self.loss_kind == "mse":  # L = mean((out - y)^2), dL/dout = 2 (out - y) / size
            diff = out - y
            loss = xp.mean(diff * diff)
            diff *= 2.0 / diff.size
            return loss, diff
        # L = mean(logsumexp(out) - out[label]), dL/dout = (softmax(out) - onehot) / batch
        shifted = out - xp.max(out, axis=1, keepdims=True)
        probs = xp.exp(shifted)
        total = xp.sum(probs, axis=1, keepdims=True)
        loss = xp.mean(xp.log(total[:, 0]) - shifted[self.rows, y])
        probs /= total
        probs[self.rows, y] -= 1.0
        probs *= 1.0 / batch
        return loss, probs

    def _backward(self, hidden: list, dz: Any) -> list:
        xp, n = self.xp, len(self.params) // 2
        grads: list[Any] = [None] * (2 * n)
        for i in range(n - 1, -1, -1):
            grads[2 * i] = hidden[i].T @ dz
            grads[2 * i + 1] = xp.sum(dz, axis=0)
            if i > 0:
                dz = dz @ self.params[2 * i].T
                xp.multiply(dz, hidden[i] > 0.0, out=dz)
        return grads

    def _adam(self, grads: list) -> None:
        xp, beta1, beta2 = self.xp, ADAM["beta1"], ADAM["beta2"]
        self.t += 1
        step_size = ADAM["lr"] / (1.0 - beta1**self.t)
        root_bc2 = 1.0 / math.sqrt(1.0 - beta2**self.t)
        for p, g, m, v, tmp in zip(self.params, grads, self.m, self.v, self.scratch):
            xp.multiply(g, 1.0 - beta1, out=tmp)  # m = b1 m + (1 - b1) g
            m *= beta1
            m += tmp
            xp.multiply(g, g, out=tmp)  # v = b2 v + (1 - b2) g^2
            tmp *= 1.0 - beta2
            v *= beta2
            v += tmp
            xp.sqrt(v, out=tmp)  # denominator sqrt(v_hat) + eps
            tmp *= root_bc2
            tmp += ADAM["eps"]
            xp.divide(m, tmp, out=tmp)
            tmp *= step_size
            p -= tmp

    def phases(self) -> dict[str, Any]:
        """The parts of :meth:`step` as separate calls on one batch (for ``--phases``)."""
        x, y = self.batches[0]
        hidden = self._forward(x)
        out = hidden[-1].copy()
        loss, dz = self._loss(out.copy(), y)
        grads = self._backward(hidden, dz)
        return {
            "forward": lambda: self._forward(x),
            "loss+gradient": lambda: self._loss(out.copy(), y),  # _loss overwrites its input
            "backward": lambda: self._backward(hidden, dz),
            "optimizer": lambda: self._adam(grads),
        }

    def grads(self) -> list:
        host = [g.get() if hasattr(g, "get") else g.copy() for g in self.last_grads]
        return list(zip(host[0::2], host[1::2]))

    def weights(self) -> list:
        host = [p.get() if hasattr(p, "get") else p.copy() for p in self.params]
        return list(zip(host[0::2], host[1::2]))


class HandwrittenJaxMLP:
    """Plain ``jax.numpy``, the whole step one ``jax.jit`` function: the "how fast can JAX be" bar.

    The maths of :class:`HandwrittenMLP` (forward, softmax cross-entropy from logits with integer
    labels or MSE, the same hand-written backward, Adam in PyTorch's form with the same
    constants), written as a pure optax-style update
    ``step(params, m, v, t, x, y) -> (params, m, v, t, loss)`` and compiled once per batch shape
    (no optax dependency). Nothing is donated on the CPU (as portable_nn's compiled step), so both
    allocate the new state each step; on accelerators params, m and v are donated.
    """

    name = "handwritten-jax-jit"
    compiled = True

    def __init__(self, loss: str, weights: list, batches: list) -> None:
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.loss_kind = loss
        self.params = tuple(jnp.asarray(a) for pair in weights for a in pair)
        self.m = tuple(jnp.zeros_like(p) for p in self.params)
        self.v = tuple(jnp.zeros_like(p) for p in self.params)
        self.t = jnp.zeros((), jnp.int32)
        labels = jnp.int32 if loss == "cross_entropy" else jnp.float32
        self.batches = [(jnp.asarray(x), jnp.asarray(y, dtype=labels)) for x, y in batches]
        self.count = 0
        on_cpu = jax.default_backend() == "cpu"
        self._step = jax.jit(self._pure_step, donate_argnums=() if on_cpu else (0, 1, 2))
        self._grads = jax.jit(self._loss_and_grads)
        self.last: tuple | None = None

    def sync(self) -> None:
        self.jax.block_until_ready(self.params)

    def step(self) -> Any:
        x, y = self.batches[self.count % len(self.batches)]
        self.count += 1
        if self.last is None:  # the first step's inputs, for grads() (the correctness check)
            self.last = (tuple(p.copy() for p in self.params), x, y)  # a copy: may be donated
        self.params, self.m, self.v, self.t, loss = self._step(
            self.params, self.m, self.v, self.t, x, y
        )
        return loss

    # -- the pure functions (traced once by jax.jit) ----------------------------------------
    def _forward(self, params: tuple, x: Any) -> list:
        jnp, hidden, n = self.jnp, [x], len(params) // 2
        for i in range(n):
            z = hidden[-1] @ params[2 * i] + params[2 * i + 1]
            hidden.append(jnp.maximum(z, 0.0) if i < n - 1 else z)
        return hidden

    def _loss(self, out: Any, y: Any) -> tuple[Any, Any]:
        jnp, batch = self.jnp, out.shape[0]
        if self.loss_kind == "mse":  # L = mean((out - y)^2), dL/dout = 2 (out - y) / size
            diff = out - y
            return jnp.mean(diff * diff), diff * (2.0 / diff.size)
        # L = mean(logsumexp(out) - out[label]), dL/dout = (softmax(out) - onehot) / batch
        rows = jnp.arange(batch)
        shifted = out - jnp.max(out, axis=1, keepdims=True)
        probs = jnp.exp(shifted)
        total = jnp.sum(probs, axis=1, keepdims=True)
        loss = jnp.mean(jnp.log(total[:, 0]) - shifted[rows, y])
        probs = (probs / total).at[rows, y].add(-1.0)
        return loss, probs * (1.0 / batch)

    def _backward(self, params: tuple, hidden: list, dz: Any) -> list:
        n = len(params) // 2
        grads: list[Any] = [None] * (2 * n)
        for i in range(n - 1, -1, -1):
            grads[2 * i] = hidden[i].T @ dz
            grads[2 * i + 1] = self.jnp.sum(dz, axis=0)
            if i > 0:
                dz = (dz @ params[2 * i].T) * (hidden[i] > 0.0)
        return grads

    def _adam(self, params: tuple, grads: list, m: tuple, v: tuple, t: Any) -> tuple:
        """PyTorch's Adam: ``p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``."""
        jnp, beta1, beta2 = self.jnp, ADAM["beta1"], ADAM["beta2"]
        t = t + 1
        tf = t.astype(params[0].dtype)
        step_size = ADAM["lr"] / (1.0 - beta1**tf)
        root_bc2 = 1.0 / jnp.sqrt(1.0 - beta2**tf)
        m = tuple(beta1 * mi + (1.0 - beta1) * g for mi, g in zip(m, grads))
        v = tuple(beta2 * vi + (1.0 - beta2) * (g * g) for vi, g in zip(v, grads))
        params = tuple(
            p - step_size * mi / (jnp.sqrt(vi) * root_bc2 + ADAM["eps"])
            for p, mi, vi in zip(params, m, v)
        )
        return params, m, v, t

    def _loss_and_grads(self, params: tuple, x: Any, y: Any) -> tuple[Any, list]:
        hidden = self._forward(params, x)
        loss, dz = self._loss(hidden[-1], y)
        return loss, self._backward(params, hidden, dz)

    def _pure_step(self, params: tuple, m: tuple, v: tuple, t: Any, x: Any, y: Any) -> tuple:
        loss, grads = self._loss_and_grads(params, x, y)
        params, m, v, t = self._adam(params, grads, m, v, t)
        return params, m, v, t, loss

    # -- checks and analysis ----------------------------------------------------------------
    def phases(self) -> dict[str, Any]:
        """Forward, loss, backward and Adam, each its own ``jax.jit`` function (``--phases``);
        each call waits for its result."""
        jax, ready = self.jax, self.jax.block_until_ready
        (x, y), params = self.batches[0], self.params
        forward = jax.jit(self._forward)
        loss = jax.jit(self._loss)
        backward = jax.jit(self._backward)
        adam = jax.jit(self._adam)
        hidden = forward(params, x)
        _, dz = loss(hidden[-1], y)
        grads = backward(params, hidden, dz)
        return {
            "forward": lambda: ready(forward(params, x)),
            "loss+gradient": lambda: ready(loss(hidden[-1], y)),
            "backward": lambda: ready(backward(params, hidden, dz)),
            "optimizer": lambda: ready(adam(params, grads, self.m, self.v, self.t)),
        }

    def grads(self) -> list:
        """Gradients of the first step (recomputed from its inputs by the same maths)."""
        assert self.last is not None, "grads() needs a step first"
        host = [np.asarray(g) for g in self._grads(*self.last)[1]]
        return list(zip(host[0::2], host[1::2]))

    def weights(self) -> list:
        host = [np.asarray(p) for p in self.params]
        return list(zip(host[0::2], host[1::2]))


def jax_unavailable() -> str | None:
    """Why the JAX contenders cannot run (jax missing), or ``None``."""
    try:
        importlib.import_module("jax")
    except ImportError as exc:
        return f"jax is not importable ({exc})"
    return None


def portable_unavailable(mode: str) -> str | None:
    """Why portable_nn cannot run ``mode`` yet (a module still missing), or ``None``."""
    needed = [
        "portable_nn.layers",
        "portable_nn.losses",
        "portable_nn.optimizers",
        "portable_nn.models",
    ]
    for module in needed:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module} is not importable ({exc})"
    import portable_nn as pnn

    for owner, attr in (
        (pnn.layers, "Dense"),
        (pnn.layers, "ReLU"),
        (pnn.optimizers, "Adam"),
        (pnn.losses, "SparseCategoricalCrossentropy"),
    ):
        if not hasattr(owner, attr):
            return f"{owner.__name__}.{attr} does not exist yet"
    if mode == "train_step" and not hasattr(pnn.Sequential, "train_step"):
        return "Sequential.train_step does not exist yet"
    if mode not in ("manual", "train_step", "relu_layer"):
        return f"unknown mode {mode!r}"
    return None


class PortableMLP:
    """portable_nn on one backend: ``Sequential([Dense, ReLU, ..., Dense])`` with
    ``SparseCategoricalCrossentropy(from_logits=True)`` or ``MeanSquaredError`` and ``Adam``.

    ``mode="manual"``: ``forward(x, training=True)``, ``loss.value_and_gradient``,
    ``backward(dout, caches, input_grad=False)``, ``optimizer.step(model, grads)``;
    ``mode="train_step"``: ``compile`` then ``model.train_step(x, y)``.
    """

    def __init__(
        self, backend: str, device: str | None, mode: str, loss: str, weights: list, batches: list
    ) -> None:
        import portable_nn as pnn

        self.pnn = pnn
        self.name = self.contender_name(backend, device, mode)
        self.mode = mode
        with pnn.use_backend(backend, device) as active:
            self.model = self._build(pnn, weights)
            self.batches = [(pnn.asarray(x), pnn.asarray(y)) for x, y in batches]
        if loss == "cross_entropy":
            self.loss = pnn.losses.SparseCategoricalCrossentropy(from_logits=True)
        else:
            self.loss = pnn.losses.MeanSquaredError()
        self.optimizer = make_adam(pnn)
        if mode == "train_step":
            self.model.compile(optimizer=self.optimizer, loss=self.loss)
        self.count = 0
        self.sync = self._synchroniser(backend, active.device)
        # dL/dx of the model input is not needed for training; skip it where the API allows
        wants = "input_grad" in inspect.signature(self.model.backward).parameters
        self.backward_options = {"input_grad": False} if wants else {}

    @staticmethod
    def contender_name(backend: str, device: str | None, mode: str) -> str:
        place = f"torch-{device or 'cpu'}" if backend == "torch" else backend
        return f"pnn-{place}" + ("" if mode == "manual" else f"-{mode}")

    def _build(self, pnn: Any, weights: list) -> Any:
        layers: list[Any] = []
        for i, (w, _) in enumerate(weights):
            hidden = i < len(weights) - 1
            if self.mode == "relu_layer":  # torch.nn style: Dense, ReLU, Dense, ReLU, Dense
                layers += [pnn.layers.Dense(w.shape[1])] + ([pnn.layers.ReLU()] if hidden else [])
            else:  # Keras style: the activation fused into Dense
                layers.append(pnn.layers.Dense(w.shape[1], activation="relu" if hidden else None))
        model = pnn.Sequential(layers)
        model.build((None, weights[0][0].shape[0]))
        self.dense_keys = []  # [(weight name, bias name, transposed)] per Dense layer
        params = model.parameters()
        for index, layer in enumerate(model.layers):
            own = layer.parameters()
            if not own:
                continue
            matrix = next(k for k, v in own.items() if len(v.shape) == 2)
            vector = next(k for k, v in own.items() if len(v.shape) == 1)
            (w, _) = weights[len(self.dense_keys)]
            transposed = tuple(own[matrix].shape) != w.shape
            self.dense_keys.append((f"{index}.{matrix}", f"{index}.{vector}", transposed))
        values = {}
        for (wk, bk, transposed), (w, b) in zip(self.dense_keys, weights):
            # copies: pnn.asarray may alias a NumPy array, and the optimizer updates in place
            values[wk] = pnn.asarray(np.array(w.T if transposed else w, order="C"))
            values[bk] = pnn.asarray(b.copy())
            assert tuple(values[wk].shape) == tuple(params[wk].shape), wk
        model.set_parameters(values)
        return model

    def _synchroniser(self, backend: str, device: Any) -> Any:
        if backend == "cupy":
            return _timing.cupy_sync()
        if backend == "torch" and "cuda" in str(device):
            return _timing.torch_cuda_sync()
        if backend == "jax":
            import jax

            return lambda: jax.block_until_ready(self.model.parameters())
        return _timing.no_sync

    def step(self) -> Any:
        x, y = self.batches[self.count % len(self.batches)]
        self.count += 1
        if self.mode == "train_step":
            return self.model.train_step(x, y)
        out, caches = self.model.forward(x, training=True)
        loss, dout = self.loss.value_and_gradient(y, out)
        _, grads = self.model.backward(dout, caches, **self.backward_options)
        self.optimizer.step(self.model, grads)
        self.last_grads = grads
        return loss

    @property
    def compiled(self) -> bool:
        """Whether ``train_step`` runs one compiled (``jax.jit``) function: after the first step
        the model holds its compiled steps with a train function in them."""
        if self.mode != "train_step":
            return False
        find = getattr(self.model, "_compiled", None)
        compiled = find() if callable(find) else None
        return compiled is not None and any(
            key[0] == "train" for key in getattr(compiled, "cache", {("train",): None})
        )

    def phases(self) -> dict[str, Any]:
        """The parts of :meth:`step` as separate calls on one batch (for ``--phases``)."""
        model, (x, y) = self.model, self.batches[0]
        out, caches = model.forward(x, training=True)
        loss, dout = self.loss.value_and_gradient(y, out)
        _, grads = model.backward(dout, caches, **self.backward_options)
        found = {
            "forward": lambda: model.forward(x, training=True),
            "loss+gradient": lambda: self.loss.value_and_gradient(y, out),
            "backward": lambda: model.backward(dout, caches, **self.backward_options),
            "optimizer": lambda: self.optimizer.step(model, grads),
        }
        unchecked = getattr(model, "_loss_value_and_gradient", None)
        if self.mode == "train_step" and unchecked is not None:
            found["loss+gradient"] = lambda: unchecked(y, out)  # train_step's: no value checks
        return found

    def grads(self) -> list | None:
        """Gradients of the last step (None for train_step, which does not return them)."""
        if self.mode == "train_step":
            return None
        return self._pairs(self.last_grads)

    def weights(self) -> list:
        return self._pairs(self.model.parameters())

    def _pairs(self, params: dict) -> list:
        to_numpy, out = self.pnn.to_numpy, []
        for wk, bk, transposed in self.dense_keys:
            w = np.array(to_numpy(params[wk]))
            out.append((w.T.copy() if transposed else w, np.array(to_numpy(params[bk]))))
        return out


def make_adam(pnn: Any) -> Any:
    """``pnn.optimizers.Adam`` with PyTorch's defaults (lr 1e-3, betas 0.9/0.999, eps 1e-8)."""
    return pnn.optimizers.Adam(
        learning_rate=ADAM["lr"],
        beta_1=ADAM["beta1"],
        beta_2=ADAM["beta2"],
        epsilon=ADAM["eps"],
    )
