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
import datetime
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _timing
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

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


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


def check_against_torch(contenders: list) -> dict[str, dict[str, Any]]:
    """One step from identical weights: loss, gradients and new weights must match PyTorch's.

    float32 tolerances: loss within 1e-4 relative; gradients within 1e-3 relative plus 1e-4 of
    their largest magnitude; weights within 1e-4 relative plus 1e-4 absolute, i.e. 10 % of the
    first Adam step ``lr * g / (|g| + eps)``: where ``|g|`` is near ``eps`` that step amplifies
    float32 rounding of ``g`` to a few % of ``lr``. Adam ignores the scale of ``g``, so only the
    gradient check catches a gradient off by a constant factor.
    """
    before = _flat(contenders[0].weights())
    for contender in contenders:
        contender.loss_value = float(contender.step())
        contender.sync()
    reference, ref_grads = _flat(contenders[0].weights()), _flat(contenders[0].grads())
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(reference, before))
    if moved < 0.5 * ADAM["lr"]:
        raise RuntimeError(f"PyTorch's step moved the weights by only {moved:g}; bad setup")
    ref_loss = contenders[0].loss_value
    return {c.name: _compare(c, reference, ref_grads, ref_loss) for c in contenders[1:]}


def _compare(contender: Any, reference: list, ref_grads: list, ref_loss: float) -> dict:
    got = _flat(contender.weights())
    result: dict[str, Any] = {
        "loss_diff": abs(contender.loss_value - ref_loss),
        "max_abs_weight_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(got, reference)),
    }
    ok = result["loss_diff"] <= 1e-4 * max(1.0, abs(ref_loss))
    ok = ok and all(np.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(got, reference))
    grads = contender.grads()
    if grads is not None:
        errors = [
            np.max(np.abs(a - b) - 1e-3 * np.abs(b)) / max(np.max(np.abs(b)), 1e-30)
            for a, b in zip(_flat(grads), ref_grads)
        ]
        result["max_grad_error_over_scale"] = float(max(errors))
        ok = ok and result["max_grad_error_over_scale"] <= 1e-4
    result["ok"] = bool(ok)
    return result


def _flat(pairs: list) -> list:
    return [array for pair in pairs for array in pair]


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
    torch_name = next(iter(measured))
    rows = []
    for name, m in measured.items():
        row = {
            "model": spec.key,
            "sizes": list(spec.sizes),
            "batch": spec.batch,
            "loss": spec.loss,
            "contender": name,
            "compiled": bool((compiled or {}).get(name, False)),
            **m.as_dict(),
        }
        row["ratio_to_pytorch"] = _timing.ratio(
            m.median_throughput, measured[torch_name].median_throughput
        )
        row["paired_ratio_to_pytorch"] = _timing.paired_ratio(m, measured[torch_name])
        ref = reference_of(name)
        if ref in measured:
            row["handwritten_reference"] = ref
            row["ratio_to_handwritten"] = _timing.ratio(
                m.median_throughput, measured[ref].median_throughput
            )
            row["paired_ratio_to_handwritten"] = _timing.paired_ratio(m, measured[ref])
        # verdicts on the paired ratios: steadier than ratios of medians on a busy machine
        verdicts = []
        for kind, target in targets_of(name, spec, args).items():
            if kind == "handwritten" and "paired_ratio_to_handwritten" not in row:
                continue  # the hand-written step of this backend was not run
            row[f"target_ratio_to_{kind}"] = target
            row[f"meets_{kind}_target"] = bool(row[f"paired_ratio_to_{kind}"] >= target)
            verdicts.append(row[f"meets_{kind}_target"])
        if verdicts:
            row["meets_target"] = all(verdicts)
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """Medians, ratios of medians and (in parentheses) paired ratios, target verdicts."""
    header = ("model", "contender", "step", "samples/s", "spread", "x PyTorch", "x hand", "targets")
    lines = [header]
    for row in rows:
        hand = row.get("ratio_to_handwritten")
        lines.append(
            (
                "-".join(map(str, row["sizes"])) + f" b{row['batch']}",
                row["contender"],
                "jit" if row.get("compiled") else "eager",
                f"{row['median_items_per_second']:,.0f}",
                f"{100 * row['spread']:.0f}%",
                f"{row['ratio_to_pytorch']:.2f} ({row['paired_ratio_to_pytorch']:.2f})",
                "" if hand is None else f"{hand:.2f} ({row['paired_ratio_to_handwritten']:.2f})",
                _verdicts(row),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.rjust(w) if 3 <= i <= 6 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        ).rstrip()
        for line in lines
    ]
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


def _verdicts(row: dict) -> str:
    """``PyTorch>=0.9 ok, hand>=0.9 MISS``: the targets that apply to the row, judged."""
    found = []
    for kind, label in (("pytorch", "PyTorch"), ("handwritten", "hand")):
        if f"meets_{kind}_target" in row:
            verdict = "ok" if row[f"meets_{kind}_target"] else "MISS"
            found.append(f"{label}>={row[f'target_ratio_to_{kind}']:g} {verdict}")
    return ", ".join(found)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend",
        default="numpy",
        help="portable_nn backend(s), comma-separated: numpy,torch,cupy,jax",
    )
    parser.add_argument("--torch-device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (median reported)")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per repeat (min)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before calibration")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for NumPy's BLAS and torch (default: NumPy's BLAS threads)",
    )
    parser.add_argument(
        "--pnn-modes",
        default="manual,train_step",
        help="portable_nn step styles: manual (forward/loss/backward/"
        "optimizer.step), train_step (compile + model.train_step)",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="after timing, time forward / loss / backward / optimizer apart for the "
        "portable_nn and hand-written contenders",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="TOP",
        help="after timing, cProfile the portable_nn and hand-written steps and print the "
        "TOP functions by own time (us per step)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, 1 repeat, 2 steps: a smoke test, not a measurement",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="JSON path (default results/mlp-<cpu|cuda>-<date>.json; "
        "none with --quick unless given)",
    )
    args = parser.parse_args(argv)
    args.backend = [b.strip() for b in args.backend.split(",") if b.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.pnn_modes = [m.strip() for m in args.pnn_modes.split(",") if m.strip()]
    for backend in args.backend:
        if backend not in ("numpy", "torch", "cupy", "jax"):
            parser.error(f"unknown backend {backend!r}; choose from numpy, torch, cupy, jax")
    for model in args.models:
        if model not in MODELS:
            parser.error(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    if args.quick:
        args.repeats, args.min_time, args.warmup = 1, 0.0, 1
    return args


def setup_threads(requested: int | None, backends: list[str]) -> tuple[int, Any, int | None]:
    """Give torch as many threads as NumPy's BLAS (or ``requested`` to both, and to JAX's
    CPU client: see :func:`limit_jax_threads`): (threads, BLAS limiter, JAX's threads)."""
    import torch

    limiter, jax_threads = None, None
    if requested is not None:
        if "jax" in backends:
            jax_threads = limit_jax_threads(requested)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            raise SystemExit("--threads needs threadpoolctl (pip install threadpoolctl)") from None
        limiter = threadpool_limits(limits=requested, user_api="blas")
    threads = requested or _timing.numpy_blas_threads()
    torch.set_num_threads(threads)
    return threads, limiter, jax_threads


def limit_jax_threads(threads: int) -> int | None:
    """Start JAX's CPU client with an intra-op thread pool of ``threads`` threads.

    XLA has no flag for it: the pool gets one thread per CPU this process may run on when the
    client starts. So the process is restricted to ``threads`` CPUs while the client starts,
    then every thread gets the original CPU set back (the pool keeps its size). Returns the
    pool size, or ``None`` where that is not possible (no affinity API, jax missing, or a
    client already started, as in a test run in-process).
    """
    if not hasattr(os, "sched_setaffinity") or "jax" in sys.modules:
        return None
    try:
        import jax
    except ImportError:
        return None
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(allowed)[:threads])
    try:
        jax.devices("cpu")
    finally:
        for task in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(task), allowed)
            except OSError:  # a thread that ended meanwhile
                pass
    return threads


def print_phases(spec: ModelSpec, contenders: list, quick: bool) -> None:
    """Forward, loss, backward and optimizer timed apart: min and median us per call."""
    phases = {c.name: c.phases() for c in contenders}
    syncs = {c.name: c.sync for c in contenders}
    samples, min_time = (2, 0.0) if quick else (15, 0.02)
    found = _timing.time_phases(phases, syncs, samples, min_time)
    names = list(phases)
    print(f"\n== phases {spec.label}: min / median us per call")
    print(f"{'phase':14s}" + "".join(f"{name:>28s}" for name in names))
    for phase in phases[names[0]]:
        cells = [found[name].get(phase) for name in names]
        print(
            f"{phase:14s}"
            + "".join(
                f"{'':>28s}" if cell is None else f"{1e6 * cell[0]:15.1f} / {1e6 * cell[1]:10.1f}"
                for cell in cells
            )
        )


def run_model(spec: ModelSpec, args: argparse.Namespace) -> tuple[list, dict, dict]:
    """Check one model's contenders against PyTorch, then time them: (rows, check, skipped)."""
    contenders, skipped = build_contenders(spec, args)
    check = check_against_torch(contenders)
    bad = [name for name, result in check.items() if not result["ok"]]
    if bad:
        print(f"{spec.label}: WRONG RESULTS after one step for {bad}:", file=sys.stderr)
        print(json.dumps(check, indent=1), file=sys.stderr)
        return [], check, skipped
    timed = [_timing.Contender(c.name, c.step, c.sync, spec.batch) for c in contenders]
    steps = 2 if args.quick else None
    measured = _timing.run_interleaved(timed, args.repeats, args.min_time, args.warmup, steps)
    compiled = {c.name: bool(c.compiled) for c in contenders}  # after the steps run
    for name, is_compiled in compiled.items():
        if name == "pnn-jax-train_step" and not is_compiled:
            print(f"{spec.label}: {name} ran EAGER (no compiled step)", file=sys.stderr)
    if args.phases:
        chosen = [c for c in contenders if c.name.startswith(("pnn-", "handwritten-"))]
        print_phases(spec, chosen, args.quick)
    if args.profile:
        for c in contenders:
            if c.name.startswith(("pnn-", "handwritten-")):
                steps = 2 if args.quick else measured[c.name].steps_per_repeat
                print(f"\n== profile {spec.label} {c.name} ({steps} steps)")
                print(_timing.profile_steps(c.step, steps, top=args.profile))
    return summarise(spec, measured, args, compiled), check, skipped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if str(HERE.parent) not in sys.path:  # run from a checkout: import this portable_nn
        sys.path.insert(0, str(HERE.parent))
    threads, _limiter, jax_threads = setup_threads(args.threads, args.backend)
    run = {
        "threads": threads,
        "jax_threads": jax_threads,
        "load_average_start": _timing.load_average(),
        "rows": [],
        "correctness": {},
        "skipped": {},
    }
    jax_note = "" if "jax" not in args.backend else f", JAX {jax_threads or 'default'}"
    print(
        f"threads: NumPy BLAS {_timing.numpy_blas_threads()}, torch {threads}{jax_note}; "
        f"{args.repeats} repeats x >= {args.min_time:g} s, interleaved"
    )
    for key in args.models:
        spec = (QUICK_MODELS if args.quick else MODELS)[key]
        rows, run["correctness"][key], skipped = run_model(spec, args)
        run["rows"] += rows
        run["skipped"].update(skipped)
    for name, reason in run["skipped"].items():
        print(f"skipped {name}: {reason}")
    if run["rows"]:
        print(format_table(run["rows"]))
    print(
        f"load average (1, 5, 15 min): {run['load_average_start']} at start, "
        f"{_timing.load_average()} at end, on {os.cpu_count()} CPUs"
    )
    write_json(args, run)
    failed = any(not r["ok"] for check in run["correctness"].values() for r in check.values())
    return 1 if failed else 0


def write_json(args: argparse.Namespace, run: dict) -> None:
    """The run as JSON: environment, settings, correctness, per-repeat timings, ratios."""
    if args.out is None and args.quick:
        return
    day = datetime.date.today().isoformat()
    path = Path(args.out) if args.out else RESULTS / f"mlp-{args.torch_device}-{day}.json"
    settings = {
        "backends": args.backend,
        "torch_device": args.torch_device,
        "pnn_modes": args.pnn_modes,
        "models": args.models,
        "repeats": args.repeats,
        "min_time_s": args.min_time,
        "warmup_steps": args.warmup,
        "threads": run["threads"],
        "jax_threads": run["jax_threads"],  # None: JAX's default (one per CPU)
        "quick": args.quick,
        "dtype": "float32",
        "adam": ADAM,
        "batches_cycled": N_BATCHES,
    }
    environment = _timing.environment()
    environment["load_average_start"] = run["load_average_start"]
    document = {
        "benchmark": "mlp_train_step",
        "command": [Path(sys.executable).name, *sys.argv],
        "environment": environment,
        "settings": settings,
        "correctness": run["correctness"],
        "skipped": run["skipped"],
        "results": run["rows"],
        "ratio_to_pytorch": {
            f"{r['model']}/{r['contender']}": round(r["ratio_to_pytorch"], 3) for r in run["rows"]
        },
        "verdicts": {
            f"{r['model']}/{r['contender']}": _verdicts(r) for r in run["rows"] if _verdicts(r)
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
