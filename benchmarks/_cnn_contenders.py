"""The contenders of ``cnn.py``: one training step of a small CNN, three ways.

A model is a tuple of layer specs (:class:`Spec`): ``conv`` (square kernel, stride 1, zero
padding ``pad`` on every side, optional bias), ``bn`` (BatchNorm over batch and pixels), ``relu``,
``pool`` (2x2 max pooling, stride 2), ``flatten`` and ``dense``. Every contender builds the
same model from the same initial values (:class:`Problem`), kept in portable_nn's layout:
channels-last images ``(N, H, W, C)``, conv kernels ``(kh, kw, in, out)``, dense weights
``(in, out)`` whose rows after a ``flatten`` follow the ``(h, w, c)`` order of channels-last
pixels. PyTorch works in NCHW with kernels ``(out, in, kh, kw)`` and flattens in ``(c, h, w)``
order, so :class:`TorchCNN` permutes on the way in and back.

Each contender offers what ``_harness.py`` needs: ``step()``, ``sync()``, ``weights()`` (the
parameters in spec order, then the BatchNorm running means and variances, all in portable_nn's
layout), ``grads()``, ``compiled`` and, for the hand-written and portable_nn ones, ``phases()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import _timing
import numpy as np
from _mlp_contenders import ADAM, HandwrittenMLP, PortableMLP, TorchMLP
from numpy.lib.stride_tricks import sliding_window_view

BN_MOMENTUM, BN_EPS = 0.1, 1e-5  # PyTorch's and portable_nn's defaults
N_BATCHES = 16  # steps cycle through this many batches so the model never fits one batch


class Spec(NamedTuple):
    """One layer: ``kind`` is conv, bn, relu, pool, flatten or dense; ``size`` the kernel
    (conv) or units (dense); ``filters`` the conv's output channels."""

    kind: str
    size: int = 0
    filters: int = 0
    pad: int = 0
    bias: bool = True


def conv(kernel: int, filters: int, pad: int = 0, bias: bool = True) -> Spec:
    return Spec("conv", kernel, filters, pad, bias)


def dense(units: int) -> Spec:
    return Spec("dense", units)


BN, RELU, POOL, FLATTEN = Spec("bn"), Spec("relu"), Spec("pool"), Spec("flatten")


def shapes(layers: tuple[Spec, ...], image: tuple[int, int, int]) -> list[tuple[int, ...]]:
    """The per-sample input shape of every layer, then the output's: ``(H, W, C)`` or
    ``(features,)``."""
    shape: tuple[int, ...] = image
    found = [shape]
    for layer in layers:
        if layer.kind == "conv":
            h, w, _ = shape
            grow = 2 * layer.pad - layer.size + 1
            shape = (h + grow, w + grow, layer.filters)
        elif layer.kind == "pool":
            h, w, c = shape
            if h % 2 or w % 2:
                raise ValueError(f"2x2 pooling needs even sizes; got {shape}")
            shape = (h // 2, w // 2, c)
        elif layer.kind == "flatten":
            shape = (math.prod(shape),)
        elif layer.kind == "dense":
            shape = (layer.size,)
        found.append(shape)
    return found


@dataclass
class Problem:
    """Initial values and batches, in NumPy float32 (labels int64), portable_nn's layout.

    ``params``: per layer with parameters, in order: conv ``W (kh, kw, in, out)`` [, ``b``];
    bn ``gamma, beta``; dense ``W (in, out), b``. ``buffers``: per bn, running mean (zeros) and
    variance (ones). ``batches``: ``(x (N, H, W, C), y (N,))`` pairs.
    """

    layers: tuple[Spec, ...]
    image: tuple[int, int, int]
    params: list
    buffers: list
    batches: list


def make_problem(layers: tuple[Spec, ...], image: tuple, batch: int, seed: int = 0) -> Problem:
    """Weights drawn like PyTorch's defaults (conv and linear: U(-1/sqrt(fan_in), +...)); the
    BatchNorm scale and shift drawn near 1 and 0 (not exactly, so that a gradient that ignores
    gamma shows); inputs N(0, 1), labels uniform over the last layer's units."""
    rng = np.random.default_rng(seed)
    found = shapes(layers, image)
    params, buffers = [], []
    for layer, shape in zip(layers, found):
        if layer.kind in ("conv", "dense"):
            if layer.kind == "conv":
                k, fan_in = layer.size, shape[-1] * layer.size**2
                w_shape, units = (k, k, shape[-1], layer.filters), layer.filters
            else:
                fan_in = shape[0]
                w_shape, units = (fan_in, layer.size), layer.size
            bound = 1.0 / math.sqrt(fan_in)
            params.append(rng.uniform(-bound, bound, w_shape).astype(np.float32))
            if layer.kind == "dense" or layer.bias:
                params.append(rng.uniform(-bound, bound, units).astype(np.float32))
        elif layer.kind == "bn":
            c = shape[-1]
            params.append(rng.uniform(0.8, 1.2, c).astype(np.float32))
            params.append(rng.uniform(-0.1, 0.1, c).astype(np.float32))
            buffers += [np.zeros(c, np.float32), np.ones(c, np.float32)]
    classes = found[-1][0]
    batches = [
        (
            rng.standard_normal((batch, *image)).astype(np.float32),
            rng.integers(0, classes, batch).astype(np.int64),
        )
        for _ in range(N_BATCHES)
    ]
    return Problem(tuple(layers), tuple(image), params, buffers, batches)


def dense_to_torch(w: np.ndarray, image: tuple | None) -> np.ndarray:
    """Our ``(in, out)`` weight -> torch's ``(out, in)``; after a flatten of ``image`` (H, W,
    C), rows in ``(h, w, c)`` order go to torch's ``(c, h, w)`` order."""
    if image is not None:
        h, wd, c = image
        w = w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(h * wd * c, -1)
    return np.ascontiguousarray(w.T)


def dense_from_torch(w: np.ndarray, image: tuple | None) -> np.ndarray:
    """The inverse of :func:`dense_to_torch`."""
    w = w.T
    if image is not None:
        h, wd, c = image
        w = w.reshape(c, h, wd, -1).transpose(1, 2, 0, 3).reshape(h * wd * c, -1)
    return np.ascontiguousarray(w)


class TorchCNN(TorchMLP):
    """``torch.nn`` Conv2d/BatchNorm2d/ReLU/MaxPool2d/Flatten/Linear in NCHW as torch users
    write it, ``CrossEntropyLoss``, ``torch.optim.Adam`` (the step of :class:`TorchMLP`)."""

    def __init__(self, problem: Problem, device: str) -> None:
        import torch

        nn = torch.nn
        self.name = f"pytorch-{device}"
        self.compiled = False
        self.torch = torch
        values, modules = iter(problem.params), []
        self.trained: list[tuple[Any, str, Any]] = []  # (module, kind, image flattened before)
        found = shapes(problem.layers, problem.image)

        def take(transform: Any = np.copy) -> Any:
            return nn.Parameter(torch.from_numpy(np.ascontiguousarray(transform(next(values)))))

        for index, (layer, shape) in enumerate(zip(problem.layers, found)):
            if layer.kind == "conv":
                module = nn.Conv2d(
                    shape[-1], layer.filters, layer.size, padding=layer.pad, bias=layer.bias
                )
                module.weight = take(lambda w: w.transpose(3, 2, 0, 1))
                if layer.bias:
                    module.bias = take()
                self.trained.append((module, "conv", None))
            elif layer.kind == "bn":
                module = nn.BatchNorm2d(shape[-1], eps=BN_EPS, momentum=BN_MOMENTUM)
                module.weight, module.bias = take(), take()
                self.trained.append((module, "bn", None))
            elif layer.kind == "dense":
                module = nn.Linear(shape[0], layer.size)
                flattened = index and problem.layers[index - 1].kind == "flatten"
                image = found[index - 1] if flattened else None  # (H, W, C) before Flatten
                module.weight = take(lambda w, image=image: dense_to_torch(w, image))
                module.bias = take()
                self.trained.append((module, "dense", image))
            else:
                module = {"relu": nn.ReLU, "pool": lambda: nn.MaxPool2d(2), "flatten": nn.Flatten}
                module = module[layer.kind]()
            modules.append(module)
        self.model = nn.Sequential(*modules).to(device)
        self.loss = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=ADAM["lr"],
            betas=(ADAM["beta1"], ADAM["beta2"]),
            eps=ADAM["eps"],
        )
        self.batches = [
            (
                torch.tensor(x.transpose(0, 3, 1, 2).copy(), device=device),
                torch.tensor(y, device=device),
            )
            for x, y in problem.batches
        ]
        self.count = 0
        self.sync = _timing.torch_cuda_sync() if device == "cuda" else _timing.no_sync

    def _pack(self, grads: bool) -> list:
        """Parameters (or their gradients) in spec order and portable_nn's layout."""
        out = []
        for module, kind, image in self.trained:
            w, b = module.weight, module.bias
            w, b = (w.grad, None if b is None else b.grad) if grads else (w, b)
            w = w.detach().cpu().numpy()
            if kind == "conv":
                w = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
            elif kind == "dense":
                w = dense_from_torch(w, image)
            out += [w.copy()] + ([] if b is None else [b.detach().cpu().numpy().copy()])
        return out

    def grads(self) -> list:
        return self._pack(grads=True)

    def weights(self) -> list:
        running = [
            getattr(module, name).detach().cpu().numpy().copy()
            for module, kind, _ in self.trained
            if kind == "bn"
            for name in ("running_mean", "running_var")
        ]
        return self._pack(grads=False) + running


class HandwrittenCNN(HandwrittenMLP):
    """Plain NumPy, no library code: the "how fast can NumPy be" bar for a CNN step.

    - conv: im2col with ``sliding_window_view`` (a view) copied once by ``reshape`` into
      ``cols`` (N*OH*OW, kh*kw*C) in ``(kh, kw, c)`` order, runs of ``kw*C`` contiguous floats
      (one channel: the windows first, ``(kh*kw, N*OH*OW)`` in runs of OW, read transposed by
      the matmul); ``y = cols @ W`` (one matmul), bias in place; zero padding by copying into
      the interior of a zero-bordered buffer kept across steps. Backward: ``dW = (dy.T @
      cols).T``, ``db = ones @ dy``; ``dx``: one matmul per kernel offset ``dcols[a, b] = dy @
      W[a, b].T`` (batched, contiguous blocks), added back into a zero padded ``dx`` slice by
      slice (col2im); the first conv skips ``dx``.
    - bn: batch mean and biased variance per channel as ``ones @ X`` matvecs, running
      statistics with the unbiased variance (PyTorch); backward
      ``dx = gamma/sigma (dy - mean(dy) - xhat mean(dy xhat))``.
    - pool 2x2: ``maximum`` of the four strided slices; backward sends ``dy`` to every cell
      equal to its window's maximum (ties among positive values have probability zero; ties at
      0 after a ReLU get a gradient the ReLU's mask then zeroes).
    - relu in place, backward ``dy * (y > 0)`` in place; dense, softmax cross-entropy and Adam
      as :class:`HandwrittenMLP` (the same ``_loss`` and ``_adam``).
    """

    def __init__(self, problem: Problem) -> None:  # HandwrittenMLP's attributes, for a CNN
        self.name = "handwritten-numpy"
        self.compiled = False
        self.xp = np
        self.loss_kind = "cross_entropy"
        self.layers = problem.layers
        self.params = [p.copy() for p in problem.params]
        self.running = [b.copy() for b in problem.buffers]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.scratch = [np.empty_like(p) for p in self.params]
        self.batches = list(problem.batches)
        self.rows = np.arange(problem.batches[0][0].shape[0])
        self.first = []  # per layer: the index of its first parameter (bn: and of its buffers)
        p = b = 0
        for layer in self.layers:
            self.first.append((p, b))
            p += {"conv": 1 + layer.bias, "bn": 2, "dense": 2}.get(layer.kind, 0)
            b += 2 if layer.kind == "bn" else 0
        self.ones: dict[int, np.ndarray] = {}
        self.padded: dict[int, np.ndarray] = {}  # per padded conv: a zero-bordered buffer
        self.count = 0
        self.t = 0
        self.sync = _timing.no_sync

    def _ones(self, n: int) -> np.ndarray:
        if n not in self.ones:
            self.ones[n] = np.ones(n, np.float32)
        return self.ones[n]

    # -- forward ----------------------------------------------------------------------------
    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, list]:
        caches = []
        for index in range(len(self.layers)):
            x, cache = self._layer_forward(index, x)
            caches.append(cache)
        return x, caches

    def _layer_forward(self, index: int, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """Layer ``index`` on ``x``: ``(y, what its backward needs)``."""
        layer, (p, b) = self.layers[index], self.first[index]
        if layer.kind == "conv":
            return self._conv(index, layer, x, p)
        if layer.kind == "bn":
            return self._bn(x, p, b)
        if layer.kind == "relu":
            np.maximum(x, 0.0, out=x)  # in place: x is this step's own temporary
            return x, x
        if layer.kind == "pool":
            return self._pool(x)
        if layer.kind == "flatten":
            return x.reshape(x.shape[0], -1), x.shape
        y = x @ self.params[p]  # dense
        y += self.params[p + 1]
        return y, x

    def _conv(self, index: int, layer: Spec, x: np.ndarray, p: int) -> tuple:
        n, _, _, c = x.shape
        k, pad = layer.size, layer.pad
        if pad:  # copy into the interior of a zero-bordered buffer kept across steps
            h, w = x.shape[1:3]
            if index not in self.padded:
                self.padded[index] = np.zeros((n, h + 2 * pad, w + 2 * pad, c), np.float32)
            padded = self.padded[index]
            padded[:, pad : pad + h, pad : pad + w, :] = x
            x = padded
        windows = sliding_window_view(x, (k, k), axis=(1, 2))  # (N, OH, OW, C, kh, kw), a view
        _, oh, ow = windows.shape[:3]
        if c == 1:  # (kh*kw, N*OH*OW): runs of OW
            cols = windows.transpose(4, 5, 0, 1, 2, 3).reshape(k * k, n * oh * ow).T
        else:  # (N*OH*OW, kh*kw*C): runs of kw*C
            cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, k * k * c)
        y = cols @ self.params[p].reshape(k * k * c, -1)
        if layer.bias:
            y += self.params[p + 1]
        return y.reshape(n, oh, ow, -1), (cols, x.shape)

    def _bn(self, x: np.ndarray, p: int, b: int) -> tuple:
        shape, c = x.shape, x.shape[-1]
        x = x.reshape(-1, c)
        n = x.shape[0]
        ones = self._ones(n)
        mean = (ones @ x) * (1.0 / n)
        xhat = x - mean
        var = (ones @ (xhat * xhat)) * (1.0 / n)  # biased: normalises the batch
        inv_std = 1.0 / np.sqrt(var + BN_EPS)
        xhat *= inv_std
        y = xhat * self.params[p]
        y += self.params[p + 1]
        running_mean, running_var = self.running[b], self.running[b + 1]
        running_mean *= 1.0 - BN_MOMENTUM
        running_mean += BN_MOMENTUM * mean
        running_var *= 1.0 - BN_MOMENTUM
        running_var += (BN_MOMENTUM * n / (n - 1)) * var  # unbiased
        return y.reshape(shape), (xhat, self.params[p] * inv_std)

    def _pool(self, x: np.ndarray) -> tuple:
        corners = (x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2])
        y = np.maximum(corners[0], corners[1])
        np.maximum(y, corners[2], out=y)
        np.maximum(y, corners[3], out=y)
        return y, (x, y)

    # -- backward ---------------------------------------------------------------------------
    def _backward(self, caches: list, dy: np.ndarray) -> list:
        grads: list[Any] = [None] * len(self.params)
        for index in range(len(self.layers) - 1, -1, -1):
            dy = self._layer_backward(index, dy, caches[index], grads)
        return grads

    def _layer_backward(self, index: int, dy: np.ndarray, cache: Any, grads: list) -> Any:
        """dL/dx of layer ``index`` (None for the first: the input needs none); its parameters'
        gradients go into ``grads``. May overwrite ``dy``."""
        layer, (p, _) = self.layers[index], self.first[index]
        first = index == 0
        if layer.kind == "conv":
            return self._conv_backward(dy, cache, layer, p, grads, first)
        if layer.kind == "bn":
            return self._bn_backward(dy, cache, p, grads)
        if layer.kind == "relu":
            return np.multiply(dy, cache > 0.0, out=dy)
        if layer.kind == "pool":
            return self._pool_backward(dy, *cache)
        if layer.kind == "flatten":
            return dy.reshape(cache)
        grads[p] = cache.T @ dy  # dense: dW = x.T @ dy, db = sum over the batch, dx = dy @ W.T
        grads[p + 1] = np.sum(dy, axis=0)
        return None if first else dy @ self.params[p].T

    def _conv_backward(
        self, dy: np.ndarray, cache: tuple, layer: Spec, p: int, grads: list, first: bool
    ) -> np.ndarray | None:
        cols, x_shape = cache
        n, oh, ow, f = dy.shape
        k, pad = layer.size, layer.pad
        dy = dy.reshape(-1, f)
        w = self.params[p]
        grads[p] = (dy.T @ cols).T.reshape(w.shape)  # dW = cols.T @ dy, the faster orientation
        if layer.bias:
            grads[p + 1] = self._ones(dy.shape[0]) @ dy  # db = column sums, as a matvec
        if first:
            return None
        c = w.shape[2]
        per_offset = w.reshape(k * k, c, f).transpose(0, 2, 1)  # W[a, b].T: (kh*kw, F, C)
        dcols = np.matmul(dy, per_offset).reshape(k, k, n, oh, ow, c)  # contiguous blocks
        dx = np.zeros(x_shape, np.float32)  # padded
        for a in range(k):
            for b in range(k):
                dx[:, a : a + oh, b : b + ow, :] += dcols[a, b]
        return dx[:, pad:-pad, pad:-pad, :] if pad else dx

    def _bn_backward(self, dy: np.ndarray, cache: tuple, p: int, grads: list) -> np.ndarray:
        xhat, scale = cache  # scale = gamma / sigma
        shape = dy.shape
        dy = dy.reshape(xhat.shape)
        n, ones = xhat.shape[0], self._ones(xhat.shape[0])
        dbeta = ones @ dy
        dgamma = ones @ (dy * xhat)
        grads[p], grads[p + 1] = dgamma, dbeta
        dx = xhat * (dgamma * (-1.0 / n))  # dx = gamma/sigma (dy - dbeta/n - xhat dgamma/n)
        dx += dy
        dx -= dbeta * (1.0 / n)
        dx *= scale
        return dx.reshape(shape)

    def _pool_backward(self, dy: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx = np.empty_like(x)
        for i in (0, 1):
            for j in (0, 1):
                np.multiply(dy, x[:, i::2, j::2] == y, out=dx[:, i::2, j::2])
        return dx

    # -- the step ---------------------------------------------------------------------------
    def step(self) -> Any:
        x, y = self.batches[self.count % len(self.batches)]
        self.count += 1
        out, caches = self._forward(x)
        loss, dout = self._loss(out, y)
        self.last_grads = self._backward(caches, dout)
        self._adam(self.last_grads)
        return loss

    def phases(self) -> dict[str, Any]:
        """The parts of :meth:`step` as separate calls on one batch (for ``--phases``)."""
        x, y = self.batches[0]
        out, caches = self._forward(x)
        loss, dout = self._loss(out.copy(), y)
        grads = self._backward(caches, dout.copy())
        return {
            "forward": lambda: self._forward(x),
            "loss+gradient": lambda: self._loss(out.copy(), y),  # _loss overwrites its input
            "backward": lambda: self._backward(caches, dout.copy()),  # so does the backward
            "optimizer": lambda: self._adam(grads),
        }

    def layer_jobs(self) -> dict[str, Any]:
        """Each layer's forward and backward as calls on one step's values (``{"3 forward":
        f, "3 backward": g, ...}``), for the breakdown."""
        x, y = self.batches[0]
        inputs, caches = [], []
        for index in range(len(self.layers)):
            inputs.append(x)
            x, cache = self._layer_forward(index, x)
            caches.append(cache)
        _, dy = self._loss(x, y)
        grads: list[Any] = [None] * len(self.params)
        douts: list[Any] = [None] * len(self.layers)
        for index in range(len(self.layers) - 1, -1, -1):
            douts[index] = dy.copy()
            dy = self._layer_backward(index, dy, caches[index], grads)
        jobs = {}
        for i in range(len(self.layers)):
            jobs[f"{i} forward"] = lambda i=i: self._layer_forward(i, inputs[i])
            jobs[f"{i} backward"] = lambda i=i: self._layer_backward(  # ReLU's: in place, 0/1
                i, douts[i], caches[i], grads
            )
        return jobs

    def grads(self) -> list:
        return [g.copy() for g in self.last_grads]

    def weights(self) -> list:
        return [p.copy() for p in self.params] + [b.copy() for b in self.running]


class PortableCNN(PortableMLP):
    """portable_nn on one backend: ``Sequential`` of Conv2D (ReLU fused as ``activation`` when
    one follows, as Keras users write it), BatchNormalization, ReLU, MaxPooling2D, Flatten and
    Dense; ``SparseCategoricalCrossentropy(from_logits=True)`` and ``Adam``; the manual step or
    ``compile`` + ``train_step`` (:class:`PortableMLP`'s)."""

    def __init__(self, backend: str, device: str | None, mode: str, problem: Problem) -> None:
        self.problem = problem
        super().__init__(
            backend, device, mode, "cross_entropy", problem.params, list(problem.batches)
        )

    def _build(self, pnn: Any, weights: list) -> Any:
        L, layers = pnn.layers, []  # noqa: N806
        specs = self.problem.layers
        self.covers: list[list[int]] = []  # per pnn layer: the spec layers it does
        for index, layer in enumerate(specs):
            relu_next = index + 1 < len(specs) and specs[index + 1].kind == "relu"
            if layer.kind == "relu" and index and specs[index - 1].kind in ("conv", "dense"):
                continue  # fused into the layer before
            activation = "relu" if relu_next and layer.kind in ("conv", "dense") else None
            self.covers.append([index, index + 1] if activation else [index])
            if layer.kind == "conv":
                layers.append(
                    L.Conv2D(
                        layer.filters,
                        layer.size,
                        padding=layer.pad or "valid",
                        use_bias=layer.bias,
                        activation=activation,
                    )
                )
            elif layer.kind == "dense":
                layers.append(L.Dense(layer.size, activation=activation))
            elif layer.kind == "bn":
                layers.append(L.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPS))
            elif layer.kind == "relu":
                layers.append(L.ReLU())
            elif layer.kind == "pool":
                layers.append(L.MaxPooling2D(2))
            else:
                layers.append(L.Flatten())
        model = pnn.Sequential(layers)
        model.build((None, *self.problem.image))
        self.param_keys = list(model.parameters())  # layer order; weight, bias / gamma, beta
        self.buffer_keys = list(model.buffers())  # running_mean, running_var per bn
        if [tuple(model.parameters()[k].shape) for k in self.param_keys] != [
            w.shape for w in weights
        ]:
            raise RuntimeError("portable_nn's parameters do not line up with the problem's")
        # copies: pnn.asarray may alias a NumPy array, and the optimizer updates in place
        model.set_parameters(
            {key: pnn.asarray(np.array(w, order="C")) for key, w in zip(self.param_keys, weights)}
        )
        return model

    def grads(self) -> list | None:
        if self.mode == "train_step":
            return None
        return [np.array(self.pnn.to_numpy(self.last_grads[k])) for k in self.param_keys]

    def weights(self) -> list:
        params, buffers = self.model.parameters(), self.model.buffers()
        to_numpy = self.pnn.to_numpy
        return [np.array(to_numpy(params[k])) for k in self.param_keys] + [
            np.array(to_numpy(buffers[k])) for k in self.buffer_keys
        ]
