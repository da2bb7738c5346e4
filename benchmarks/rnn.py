"""Sequence-model training-step benchmark: portable_nn vs PyTorch CPU, in the same run.

One step = forward, loss, backward and Adam update in float32, softmax cross-entropy from
logits with integer labels (10 classes):

    lstm       (64, 50, 32)   LSTM(128), its last hidden state -> Dense 10
    attention  (32, 64, 128)  MultiHeadAttention(8 heads, key_dim 16) self-attention ->
                              Add (residual) -> LayerNormalization -> mean over time -> Dense 10

The method and the JSON are ``mlp.py``'s (``_harness.py``, ``_timing.py``): every contender
starts from the same weights (portable_nn's initialisers, seed 0) and sees the same batches;
one step must match PyTorch's (loss, every gradient, the new weights; float32 tolerances)
before any timing, else that model is not timed and the exit status is 1; contenders are timed
interleaved, medians of the repeats, ratios paired repeat by repeat. Contenders:
``pytorch-cpu`` (``torch.nn.LSTM`` / ``torch.nn.MultiheadAttention`` with
``need_weights=False``, its fused attention kernel; the baseline), ``pnn-<backend>`` (manual
step) and ``pnn-<backend>-train_step``. Both libraries run on one thread by default, as the
issue asks (``--threads``). Target: ``pnn-numpy*`` >= 0.5x PyTorch CPU on both models.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/rnn.py
    python benchmarks/rnn.py --backend numpy,torch,jax --phases
    python benchmarks/rnn.py --quick                    # smoke test: tiny sizes, 2 steps
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import _harness
from _mlp_contenders import ADAM, jax_unavailable, portable_unavailable
from _rnn_contenders import N_BATCHES, PortableModel, Sizes, TorchModel, make_problem

TARGET = 0.5  # pnn-numpy samples/s >= TARGET x PyTorch CPU samples/s
MODELS = {
    "lstm": Sizes("lstm", batch=64, time=50, features=32, units=128),
    "attention": Sizes("attention", batch=32, time=64, features=128, heads=8),
}
QUICK_MODELS = {
    "lstm": Sizes("lstm", batch=4, time=5, features=3, units=6),
    "attention": Sizes("attention", batch=4, time=5, features=8, heads=2),
}


def check_against_torch(contenders: list) -> dict[str, dict[str, Any]]:
    """``_harness.check_against_torch``, strict (no kinks in these models)."""
    return _harness.check_against_torch(contenders)


def build_contenders(sizes: Sizes, args: argparse.Namespace) -> tuple[list, dict[str, str]]:
    """PyTorch first (the baseline), then portable_nn per backend and step style."""
    problem = make_problem(sizes)
    contenders: list[Any] = [TorchModel(problem, args.torch_device)]
    skipped: dict[str, str] = {}
    for backend in args.backend:
        device = args.torch_device if backend == "torch" else None
        for mode in args.pnn_modes:
            name = PortableModel.contender_name(backend, device, mode)
            reason = portable_unavailable(mode) or (jax_unavailable() if backend == "jax" else None)
            if reason:
                skipped[name] = reason
                continue
            contenders.append(PortableModel(backend, device, mode, problem))
    return contenders, skipped


def targets_of(name: str, args: argparse.Namespace) -> dict[str, float]:
    """``pnn-numpy*``: ``TARGET`` x PyTorch CPU; none with ``--quick``."""
    if args.quick or args.torch_device != "cpu" or not name.startswith("pnn-numpy"):
        return {}
    return {"pytorch": TARGET}


def _label(row: dict) -> str:
    return f"{row['model']} {'x'.join(map(str, row['input']))}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _harness.add_common_arguments(parser, MODELS, "rnn")
    parser.set_defaults(threads=1)
    return _harness.finish_arguments(
        parser, parser.parse_args(argv), MODELS, ("manual", "train_step")
    )


def run_model(sizes: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    """Check one model's contenders against PyTorch, then time them."""
    contenders, skipped = build_contenders(sizes, args)
    label = f"{sizes.kind} {sizes.batch}x{sizes.time}x{sizes.features}"
    measured, check, compiled, phases = _harness.time_model(label, sizes.batch, contenders, args)
    found: dict[str, Any] = {"check": check, "skipped": skipped, "rows": [], "phases": phases}
    if measured is not None:
        fields = {"model": sizes.kind, "input": [sizes.batch, sizes.time, sizes.features]}
        found["rows"] = _harness.summarise_rows(
            fields, measured, lambda name: targets_of(name, args), lambda name: None, compiled
        )
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = _harness.start_run(args)
    models = QUICK_MODELS if args.quick else MODELS
    phases: dict[str, Any] = {}
    for key in args.models:
        found = run_model(models[key], args)
        run["correctness"][key] = found["check"]
        run["rows"] += found["rows"]
        run["skipped"].update(found["skipped"])
        if found["phases"]:
            phases[key] = found["phases"]
    status = _harness.finish_run(run, _label)
    settings = {
        "dtype": "float32",
        "adam": ADAM,
        "batches_cycled": N_BATCHES,
        "target_ratio_to_pytorch": TARGET,
        "model_sizes": {
            key: {
                **vars(sizes),
                "parameters": sum(math.prod(p.shape) for p in make_problem(sizes).params),
            }
            for key, sizes in models.items()
            if key in args.models
        },
    }
    _harness.write_json(args, run, "rnn", settings, {"phases": phases})
    return status


if __name__ == "__main__":
    raise SystemExit(main())
