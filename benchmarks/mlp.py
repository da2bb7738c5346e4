"""Training-step benchmark: portable_nn vs hand-written NumPy/JAX vs PyTorch, in the same run.

One step = forward, loss, backward and Adam update of a ReLU MLP in float32:

    small  784-256-256-10    batch 128   softmax cross-entropy from logits, integer labels
    large  784-1024-1024-10  batch 256   softmax cross-entropy from logits, integer labels
    tiny   2-16-16-1         batch 32    mean squared error

Every contender starts from the same weights and sees the same batches. Before timing, one step
from identical weights must give the same updated weights as PyTorch (float32 tolerances),
otherwise the run stops: the numbers would mean nothing. Contenders are then timed interleaved
(see ``_timing.py``); the table shows median samples/s, the ratio to PyTorch and to the
hand-written step of the same backend, and the verdicts on the issue's targets.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/mlp.py
    python benchmarks/mlp.py --backend numpy,torch --models tiny --repeats 9
    python benchmarks/mlp.py --backend numpy,torch,jax --threads 1    # + hand-written jax.jit
    python benchmarks/mlp.py --backend cupy --torch-device cuda      # GPU machine
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import _harness
import numpy as np
from _mlp_contenders import (
    ADAM,
    HandwrittenJaxMLP,
    HandwrittenMLP,
    PortableMLP,
    TorchMLP,
    jax_unavailable,
    portable_unavailable,
)

check_against_torch = _harness.check_against_torch  # the tests' entry points


@dataclass(frozen=True)
class ModelSpec:
    """An MLP to benchmark: layer widths, batch size, loss and the target ratio to PyTorch."""

    key: str
    sizes: tuple[int, ...]
    batch: int
    loss: str  # "cross_entropy" (integer labels, from logits) or "mse"
    target: float  # portable_nn (numpy) samples/s >= target x PyTorch CPU samples/s

    @property
    def label(self) -> str:
        return "-".join(map(str, self.sizes)) + f" b{self.batch}"


MODELS = {
    "small": ModelSpec("small", (784, 256, 256, 10), 128, "cross_entropy", 0.9),
    "large": ModelSpec("large", (784, 1024, 1024, 10), 256, "cross_entropy", 0.9),
    "tiny": ModelSpec("tiny", (2, 16, 16, 1), 32, "mse", 3.0),
}
QUICK_MODELS = {
    "small": ModelSpec("small", (20, 16, 16, 10), 16, "cross_entropy", 0.9),
    "large": ModelSpec("large", (24, 32, 32, 10), 16, "cross_entropy", 0.9),
    "tiny": ModelSpec("tiny", (2, 16, 16, 1), 32, "mse", 3.0),
}
ABSTRACTION_TARGET = 0.9  # portable_nn >= 0.9 x hand-written NumPy (abstraction costs <= 10%)
JAX_JIT_TARGET = 0.8  # pnn-jax-train_step (compiled) >= 0.8 x the hand-written jax.jit step
N_BATCHES = 16  # steps cycle through this many batches so the model never fits one batch


def make_problem(spec: ModelSpec, seed: int = 0) -> tuple[list, list]:
    """Initial weights and batches, on the host in NumPy float32.

    Weights ``W_i`` (in, out) and ``b_i`` are drawn like ``torch.nn.Linear``'s default,
    U(-1/sqrt(in), 1/sqrt(in)). Inputs are N(0, 1); labels uniform over the classes (CE), or
    targets ``sin(2 x R)`` for some random ``R`` (MSE).
    """
    rng = np.random.default_rng(seed)
    weights = []
    for fan_in, fan_out in zip(spec.sizes[:-1], spec.sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
        weights.append((w, rng.uniform(-bound, bound, fan_out).astype(np.float32)))
    n_in, n_out = spec.sizes[0], spec.sizes[-1]
    batches = []
    mixing = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
    for _ in range(N_BATCHES):
        x = rng.standard_normal((spec.batch, n_in)).astype(np.float32)
        if spec.loss == "cross_entropy":
            y = rng.integers(0, n_out, spec.batch).astype(np.int64)
        else:
            y = np.sin(2.0 * x @ mixing).astype(np.float32)
        batches.append((x, y))
    return weights, batches


def build_contenders(spec: ModelSpec, args: argparse.Namespace) -> tuple[list, dict[str, str]]:
    """PyTorch first (the baseline), then hand-written NumPy/CuPy/JAX, then portable_nn."""
    weights, batches = make_problem(spec)
    contenders: list[Any] = [TorchMLP(spec.loss, weights, batches, args.torch_device)]
    skipped: dict[str, str] = {}
    contenders.append(HandwrittenMLP(np, spec.loss, weights, batches))
    if "cupy" in args.backend:
        import cupy

        contenders.append(HandwrittenMLP(cupy, spec.loss, weights, batches))
    if "jax" in args.backend:
        reason = jax_unavailable()
        if reason:
            skipped[HandwrittenJaxMLP.name] = reason
        else:
            contenders.append(HandwrittenJaxMLP(spec.loss, weights, batches))
    for backend in args.backend:
        device = args.torch_device if backend == "torch" else None
        for mode in args.pnn_modes:
            name = PortableMLP.contender_name(backend, device, mode)
            reason = portable_unavailable(mode) or (jax_unavailable() if backend == "jax" else None)
            if reason:
                skipped[name] = reason
                continue
            contenders.append(PortableMLP(backend, device, mode, spec.loss, weights, batches))
    return contenders, skipped


def reference_of(name: str) -> str | None:
    """The hand-written contender that a portable_nn contender is compared with."""
    if name.startswith("pnn-numpy"):
        return "handwritten-numpy"
    if name.startswith("pnn-cupy"):
        return "handwritten-cupy"
    if name.startswith("pnn-jax"):
        return HandwrittenJaxMLP.name
    return None


def targets_of(name: str, spec: ModelSpec, args: argparse.Namespace) -> dict[str, float]:
    """The issue's targets for one contender: ``{"pytorch": ratio, "handwritten": ratio}``.

    - ``pnn-numpy*``: ``spec.target`` x PyTorch CPU (0.9 small/large, 3 tiny) and 0.9 x
      hand-written NumPy;
    - ``pnn-torch-cpu*`` (our code on torch tensors): ``spec.target`` x native PyTorch;
    - ``pnn-jax-train_step`` (the compiled step): 0.8 x the hand-written ``jax.jit`` step.

    None with ``--quick`` (not a measurement); the PyTorch targets only against PyTorch CPU.
    """
    if args.quick:
        return {}
    cpu = args.torch_device == "cpu"
    if name.startswith("pnn-numpy") and cpu:
        return {"pytorch": spec.target, "handwritten": ABSTRACTION_TARGET}
    if name.startswith("pnn-torch-cpu") and cpu:
        return {"pytorch": spec.target}
    if name == "pnn-jax-train_step":
        return {"handwritten": JAX_JIT_TARGET}
    return {}


def summarise(
    spec: ModelSpec,
    measured: dict,
    args: argparse.Namespace,
    compiled: dict[str, bool] | None = None,
) -> list[dict]:
    """One row per contender: medians, ratios (of medians and paired), targets.

    ``compiled``: per contender, whether its step ran as one compiled function (``jax.jit``).
    """
    fields = {"model": spec.key, "sizes": list(spec.sizes), "batch": spec.batch, "loss": spec.loss}
    return _harness.summarise_rows(
        fields, measured, lambda name: targets_of(name, spec, args), reference_of, compiled
    )


def _label(row: dict) -> str:
    return "-".join(map(str, row["sizes"])) + f" b{row['batch']}"


def format_table(rows: list[dict]) -> str:
    """Medians, ratios of medians and (in parentheses) paired ratios, target verdicts."""
    return _harness.format_table(rows, _label)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _harness.add_common_arguments(parser, MODELS, "mlp")
    return _harness.finish_arguments(parser, parser.parse_args(argv), MODELS)


def run_model(spec: ModelSpec, args: argparse.Namespace) -> tuple[list, dict, dict]:
    """Check one model's contenders against PyTorch, then time them: (rows, check, skipped)."""
    contenders, skipped = build_contenders(spec, args)
    measured, check, compiled, _ = _harness.time_model(spec.label, spec.batch, contenders, args)
    if measured is None:
        return [], check, skipped
    return summarise(spec, measured, args, compiled), check, skipped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = _harness.start_run(args)
    for key in args.models:
        spec = (QUICK_MODELS if args.quick else MODELS)[key]
        rows, run["correctness"][key], skipped = run_model(spec, args)
        run["rows"] += rows
        run["skipped"].update(skipped)
    status = _harness.finish_run(run, _label)
    settings = {"dtype": "float32", "adam": ADAM, "batches_cycled": N_BATCHES}
    _harness.write_json(args, run, "mlp", settings)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
