"""CNN training-step benchmark: portable_nn vs hand-written NumPy vs PyTorch, in the same run.

One step = forward, loss, backward and Adam update in float32, softmax cross-entropy from
logits with integer labels (10 classes):

    lenet  (64, 28, 28, 1)  Conv 5x5x6 valid, ReLU, max pool 2 -> Conv 5x5x16 valid, ReLU,
                            max pool 2 -> Flatten (256) -> Dense 120, ReLU -> 84, ReLU -> 10
    block  (64, 32, 32, 3)  Conv 3x3x32 pad 1 (no bias), BatchNorm, ReLU, max pool 2 -> Conv
                            3x3x64 pad 1 (no bias), BatchNorm, ReLU, max pool 2 -> Flatten
                            (4096) -> Dense 10

The method and the JSON are ``mlp.py``'s (``_harness.py``, ``_timing.py``): every contender
starts from the same weights and sees the same batches; one step must match PyTorch's (loss,
gradients, new weights and BatchNorm running statistics, float32 tolerances, up to kinks: see
``_harness.check_against_torch``) before any timing, else that model is not timed and the exit
status is 1; contenders are timed interleaved. Contenders: ``pytorch-cpu`` (the baseline),
``handwritten-numpy`` (im2col with ``sliding_window_view``, one matmul per layer, hand-written
backward and Adam), ``pnn-<backend>`` (manual step) and ``pnn-<backend>-train_step``. Target:
``pnn-numpy*`` >= 0.5x PyTorch CPU on both models. After the timing, the portable_nn NumPy step
is broken down (``breakdown`` in the JSON; ``--no-breakdown`` skips it): each layer's forward
and backward next to the hand-written layers doing the same work, and each convolution's
im2col (``windows``), matmuls and col2im (``windows_grad``) timed directly on the model's
shapes, next to PyTorch's own convolution on the same shapes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/cnn.py --threads 1
    python benchmarks/cnn.py --backend numpy,torch,jax --threads 1 --phases
    python benchmarks/cnn.py --quick                    # smoke test: tiny sizes, 2 steps
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

import _harness
import _timing
import numpy as np
from _cnn_contenders import (
    BN,
    FLATTEN,
    N_BATCHES,
    POOL,
    RELU,
    HandwrittenCNN,
    PortableCNN,
    Problem,
    Spec,
    TorchCNN,
    conv,
    dense,
    make_problem,
    shapes,
)
from _mlp_contenders import ADAM, jax_unavailable, portable_unavailable


def check_against_torch(contenders: list) -> dict[str, dict[str, Any]]:
    """``_harness.check_against_torch`` up to kinks (ReLU, max pooling): see there."""
    return _harness.check_against_torch(contenders, tolerant=True)


@dataclass(frozen=True)
class ModelSpec:
    """A CNN to benchmark: input image, batch, layers and the target ratio to PyTorch CPU."""

    key: str
    image: tuple[int, int, int]
    batch: int
    layers: tuple[Spec, ...]
    target: float = 0.5  # pnn-numpy samples/s >= target x PyTorch CPU samples/s

    @property
    def label(self) -> str:
        return f"{self.key} {'x'.join(map(str, self.image))} b{self.batch}"

    def problem(self, seed: int = 0) -> Problem:
        return make_problem(self.layers, self.image, self.batch, seed)


def lenet(c1: int = 6, c2: int = 16, h1: int = 120, h2: int = 84) -> tuple[Spec, ...]:
    return (
        *(conv(5, c1), RELU, POOL, conv(5, c2), RELU, POOL, FLATTEN),
        *(dense(h1), RELU, dense(h2), RELU, dense(10)),
    )


def block(c1: int = 32, c2: int = 64) -> tuple[Spec, ...]:
    return (
        *(conv(3, c1, pad=1, bias=False), BN, RELU, POOL),
        *(conv(3, c2, pad=1, bias=False), BN, RELU, POOL),
        *(FLATTEN, dense(10)),
    )


MODELS = {
    "lenet": ModelSpec("lenet", (28, 28, 1), 64, lenet()),
    "block": ModelSpec("block", (32, 32, 3), 64, block()),
}
QUICK_MODELS = {  # the same layers, small: flattened maps of 2x2 (the flatten order matters)
    "lenet": ModelSpec("lenet", (20, 20, 1), 8, lenet(3, 4, 8, 6)),
    "block": ModelSpec("block", (8, 8, 3), 8, block(4, 6)),
}


def build_contenders(spec: ModelSpec, args: argparse.Namespace) -> tuple[list, dict[str, str]]:
    """PyTorch first (the baseline), then hand-written NumPy, then portable_nn per backend."""
    problem = spec.problem()
    contenders: list[Any] = [TorchCNN(problem, args.torch_device), HandwrittenCNN(problem)]
    skipped: dict[str, str] = {}
    for backend in args.backend:
        device = args.torch_device if backend == "torch" else None
        for mode in args.pnn_modes:
            name = PortableCNN.contender_name(backend, device, mode)
            reason = portable_unavailable(mode) or (jax_unavailable() if backend == "jax" else None)
            if reason:
                skipped[name] = reason
                continue
            contenders.append(PortableCNN(backend, device, mode, problem))
    return contenders, skipped


def reference_of(name: str) -> str | None:
    """The hand-written contender that a portable_nn contender is compared with."""
    return "handwritten-numpy" if name.startswith("pnn-numpy") else None


def targets_of(name: str, spec: ModelSpec, args: argparse.Namespace) -> dict[str, float]:
    """``pnn-numpy*``: ``spec.target`` (0.5) x PyTorch CPU; none with ``--quick``."""
    if args.quick or args.torch_device != "cpu" or not name.startswith("pnn-numpy"):
        return {}
    return {"pytorch": spec.target}


def summarise(
    spec: ModelSpec,
    measured: dict,
    args: argparse.Namespace,
    compiled: dict[str, bool] | None = None,
) -> list[dict]:
    """One row per contender: medians, ratios (of medians and paired), targets."""
    fields = {
        "model": spec.key,
        "image": list(spec.image),
        "batch": spec.batch,
        "layers": [_describe(layer) for layer in spec.layers],
    }
    return _harness.summarise_rows(
        fields, measured, lambda name: targets_of(name, spec, args), reference_of, compiled
    )


def _describe(layer: Spec) -> str:
    if layer.kind == "conv":
        pad = f" pad {layer.pad}" if layer.pad else ""
        return f"conv {layer.size}x{layer.size}x{layer.filters}{pad}" + (
            "" if layer.bias else " no bias"
        )
    return f"dense {layer.size}" if layer.kind == "dense" else layer.kind


def _label(row: dict) -> str:
    return f"{row['model']} {'x'.join(map(str, row['image']))} b{row['batch']}"


def format_table(rows: list[dict]) -> str:
    return _harness.format_table(rows, _label)


# -- where the time goes ------------------------------------------------------------------------
def breakdown(spec: ModelSpec, quick: bool) -> dict[str, Any]:
    """portable_nn's NumPy step taken apart on ``spec``'s shapes (min / median seconds per call).

    ``layers``: each layer's ``forward(x, training=True)`` and ``backward`` (the first without
    the input's gradient, as in training) on the inputs and gradients of one real step.
    ``convolutions``: per Conv2D, the functions of :mod:`portable_nn.functional.convolution` as
    ``conv2d``/``conv2d_grad`` call them: the zero padding, im2col (``windows``), the forward
    matmul, the ``dW`` matmul, the ``dcols`` matmul (one per kernel offset, batched), col2im
    (``windows_grad``), and both functions whole (the rest is reshapes, transposes and the crop
    of the padding); next to them PyTorch's ``conv2d`` and ``convolution_backward`` on the same
    shapes in NCHW (one thread when ``--threads 1``).
    """
    import portable_nn as pnn

    problem = spec.problem()
    contender = PortableCNN("numpy", None, "manual", problem)
    hand = HandwrittenCNN(problem).layer_jobs()
    model, (x, y) = contender.model, contender.batches[0]
    layers = model.layers
    inputs, caches = [], []
    out = x
    for layer in layers:
        inputs.append(out)
        out, cache = layer.forward(out, training=True)
        caches.append(cache)
    _, dy = contender.loss.value_and_gradient(y, out)
    grads_in: list[Any] = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        grads_in[i] = dy
        if i:
            dy, _ = layers[i].backward(dy, caches[i])
    jobs: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        options = {"input_grad": False} if i == 0 and layer.skips_input_grad else {}
        jobs[f"{i} forward"] = lambda i=i: layers[i].forward(inputs[i], training=True)
        jobs[f"{i} backward"] = lambda i=i, o=options: layers[i].backward(
            grads_in[i], caches[i], **o
        )
    conv_jobs = [
        _conv_jobs(i, layer, inputs[i], grads_in[i])
        for i, layer in enumerate(layers)
        if isinstance(layer, pnn.layers.Conv2D)
    ]
    for prefix, found in conv_jobs:
        jobs.update({f"{prefix} {k}": f for k, f in found.items()})
    samples, min_time = (1, 0.0) if quick else (7, 0.02)
    syncs = {"pnn": _timing.no_sync, "hand": _timing.no_sync}
    found = _timing.time_phases({"pnn": jobs, "hand": hand}, syncs, samples, min_time)
    timed = found["pnn"]
    result: dict[str, Any] = {"layers": [], "convolutions": []}
    for i, layer in enumerate(layers):
        covered = contender.covers[i]  # the hand-written layers doing the same work
        result["layers"].append(
            {
                "index": i,
                "layer": _layer_name(pnn, layer),
                "input_shape": list(inputs[i].shape),
                "forward_s": list(timed[f"{i} forward"]),
                "backward_s": list(timed[f"{i} backward"]),
                "handwritten_layers": [_describe(spec.layers[j]) for j in covered],
                "handwritten_forward_s": _summed(found["hand"], covered, "forward"),
                "handwritten_backward_s": _summed(found["hand"], covered, "backward"),
            }
        )
    for prefix, found in conv_jobs:
        i = int(prefix.split()[1])
        w = layers[i].params["weight"]
        result["convolutions"].append(
            {
                "layer": i,
                "input_shape": list(inputs[i].shape),
                "kernel": list(w.shape),
                "input_grad": i > 0,
                "parts_s": {k: list(timed[f"{prefix} {k}"]) for k in found},
            }
        )
    return result


def _summed(timed: dict, indices: list[int], phase: str) -> list[float]:
    """Min and median seconds of several layers' ``phase``, added."""
    return [sum(timed[f"{j} {phase}"][k] for j in indices) for k in (0, 1)]


def _layer_name(pnn: Any, layer: Any) -> str:
    """``Conv2D (relu)`` for a layer with a fused activation, else the class name."""
    name, activation = type(layer).__name__, getattr(layer, "activation", "linear")
    fused = activation != "linear" and not isinstance(layer, pnn.layers.Activation)
    return f"{name} ({activation})" if fused else name


def _conv_jobs(index: int, layer: Any, x: np.ndarray, dz: np.ndarray) -> tuple[str, dict]:
    """The parts of ``conv2d``/``conv2d_grad`` for one Conv2D layer, as ``conv2d_grad`` and
    ``conv2d`` run them (groups 1, stride 1, no dilation), and PyTorch's convolution."""
    import array_api_extra as xpx
    import torch

    from portable_nn.functional import convolution as F

    w = np.asarray(layer.params["weight"])
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    padding = layer.padding if isinstance(layer.padding, str) else tuple(layer.padding)
    pads, (oh, ow) = F.plan((h, wd), (kh, kw), (1, 1), (1, 1), padding)
    (top, bottom), (left, right) = pads
    hp, wp = h + top + bottom, wd + left + right
    geometry = ((kh, kw), (1, 1), (1, 1), (oh, ow))
    padded = xpx.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), xp=np)
    if c == 1:
        image, axis = padded.reshape(n, hp, wp), 0
    else:
        image, axis = padded.reshape(n, hp, wp, 1, c), 4
    _, cols = F.conv2d(x, w, (1, 1), pads)
    if layer.activation == "relu":  # the gradient reaching the convolution: dz = dy [y > 0]
        dz = dz * (np.asarray(layer.forward(x)[0]) > 0.0)
    elif layer.activation != "linear":
        raise ValueError(f"breakdown: unexpected activation {layer.activation!r}")
    input_grad = index > 0
    dy = dz.reshape(n * oh * ow, 1, f).transpose(1, 0, 2)  # (1, M, F)
    per_offset = w.reshape(kh * kw, c, 1, f).transpose(0, 2, 3, 1)  # (kh*kw, 1, F, C)
    dcols = np.matmul(dy, per_offset).transpose(0, 2, 1, 3).reshape(kh, kw, n, oh, ow, 1, c)
    parts: dict[str, Any] = {}
    if any(map(any, pads)):
        parts["pad"] = lambda: xpx.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), xp=np)
    parts["im2col (windows)"] = lambda: F.windows(image, *geometry, axis=axis)
    weight = w.reshape(1, kh * kw * c, f)
    parts["matmul y = cols W"] = lambda: np.matmul(cols, weight)
    parts["conv2d (whole)"] = lambda: F.conv2d(x, w, (1, 1), pads)
    parts["matmul dW = cols.T dy"] = lambda: np.matmul(np.swapaxes(dy, -1, -2), cols)
    if input_grad:
        parts["matmul dcols = dy W.T"] = lambda: np.matmul(dy, per_offset)
        shape = (n, hp, wp, 1, c)
        parts["col2im (windows_grad)"] = lambda: F.windows_grad(
            dcols, shape, (kh, kw), (1, 1), (1, 1), axis=0
        )
    parts["conv2d_grad (whole)"] = lambda: F.conv2d_grad(
        dz, cols, w, x.shape, (1, 1), pads, input_grad=input_grad
    )
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    dzt = torch.from_numpy(np.ascontiguousarray(dz.transpose(0, 3, 1, 2)))
    pad = [top, left]
    parts["torch conv2d"] = lambda: torch.nn.functional.conv2d(xt, wt, None, 1, pad)
    parts["torch convolution_backward"] = lambda: torch.ops.aten.convolution_backward(
        dzt, xt, wt, None, [1, 1], pad, [1, 1], False, [0, 0], 1, [input_grad, True, False]
    )
    return f"conv {index}", parts


def print_breakdown(spec: ModelSpec, found: dict[str, Any]) -> None:
    """The layer table (pnn-numpy and the hand-written NumPy layers doing the same work) and
    the convolution table, min us per call (median in brackets)."""

    def us(pair: list[float]) -> str:
        return f"{1e6 * pair[0]:,.0f} ({1e6 * pair[1]:,.0f})"

    print(f"\n== where the time goes: {spec.label}, min (median) us per call, one batch")
    header = ("layer", "input", "pnn forward", "hand forward", "pnn backward", "hand backward")
    lines = [header]
    total = [0.0] * 4
    for row in found["layers"]:
        keys = ("forward_s", "handwritten_forward_s", "backward_s", "handwritten_backward_s")
        for k, key in enumerate(keys):
            total[k] += row[key][0]
        lines.append(
            (
                f"{row['index']} {row['layer']}",
                "x".join(map(str, row["input_shape"])),
                *(us(row[key]) for key in keys),
            )
        )
    lines.append(("sum of the layers' minima", "", *(f"{1e6 * t:,.0f}" for t in total)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(
            zip(line, widths))))  # fmt: skip
    for entry in found["convolutions"]:
        shape = "x".join(map(str, entry["input_shape"]))
        kernel = "x".join(map(str, entry["kernel"]))
        print(f"conv layer {entry['layer']}: input {shape}, kernel {kernel}")
        for part, pair in entry["parts_s"].items():
            print(f"  {part:34s} {us(pair):>20s}")


# -- the run ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _harness.add_common_arguments(parser, MODELS, "cnn")
    parser.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="skip the per-layer and per-convolution time breakdown of pnn-numpy",
    )
    modes = ("manual", "train_step")
    return _harness.finish_arguments(parser, parser.parse_args(argv), MODELS, modes)


def run_model(spec: ModelSpec, args: argparse.Namespace) -> dict[str, Any]:
    """Check one model's contenders against PyTorch, time them, break pnn-numpy down."""
    contenders, skipped = build_contenders(spec, args)
    measured, check, compiled, phases = _harness.time_model(
        spec.label, spec.batch, contenders, args, tolerant=True
    )
    found: dict[str, Any] = {"check": check, "skipped": skipped, "rows": [], "phases": phases}
    if measured is None:
        return found
    found["rows"] = summarise(spec, measured, args, compiled)
    if args.breakdown:
        found["breakdown"] = breakdown(spec, args.quick)
        print_breakdown(spec, found["breakdown"])
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = _harness.start_run(args)
    extra: dict[str, Any] = {"breakdown": {}, "phases": {}}
    for key in args.models:
        spec = (QUICK_MODELS if args.quick else MODELS)[key]
        found = run_model(spec, args)
        run["correctness"][key] = found["check"]
        run["rows"] += found["rows"]
        run["skipped"].update(found["skipped"])
        if "breakdown" in found:
            extra["breakdown"][key] = found["breakdown"]
        if found["phases"]:
            extra["phases"][key] = found["phases"]
    status = _harness.finish_run(run, _label)
    settings = {
        "dtype": "float32",
        "adam": ADAM,
        "batches_cycled": N_BATCHES,
        "model_specs": {
            key: {
                "image": list(spec.image),
                "batch": spec.batch,
                "layers": [_describe(layer) for layer in spec.layers],
                "shapes": [list(s) for s in shapes(spec.layers, spec.image)],
                "target_ratio_to_pytorch": spec.target,
                "parameters": sum(math.prod(p.shape) for p in spec.problem().params),
            }
            for key, spec in (QUICK_MODELS if args.quick else MODELS).items()
            if key in args.models
        },
    }
    _harness.write_json(args, run, "cnn", settings, extra)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
