"""The parts of a training-step benchmark that ``mlp.py`` and ``cnn.py`` share.

A benchmark builds *contenders* (objects with ``name``, ``step()``, ``sync()``, ``weights()``,
``grads()``, ``compiled`` and, for the hand-written and portable_nn ones, ``phases()``), checks
one step of each against PyTorch's, times them interleaved (``_timing.py``) and writes rows
with medians, ratios and target verdicts to a table and a JSON document. This module holds the
check, the timing of one model, the rows, the table, the command-line options, the thread set-up
and the JSON writer; each benchmark keeps its models, contenders and targets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _timing
import numpy as np
from _mlp_contenders import ADAM

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


# -- correctness --------------------------------------------------------------------------------
KINK_GRAD_L2 = 1e-2  # kink-tolerant check: ||g - g_ref|| / ||g_ref|| per array at most this
KINK_SMALL_GRAD = 1e-2  # ... weights may differ only where |g_ref| <= this x max |g_ref|
KINK_SHARE = 0.01  # ... and at most this share of an array's elements (at least one)


def check_against_torch(contenders: list, tolerant: bool = False) -> dict[str, dict[str, Any]]:
    """One step from identical weights: loss, gradients and new weights must match PyTorch's.

    ``contenders[0]`` is PyTorch. float32 tolerances: loss within 1e-4 relative; gradients
    within 1e-3 relative plus 1e-4 of their largest magnitude; weights within 1e-4 relative plus
    1e-4 absolute, i.e. 10 % of the first Adam step ``lr * g / (|g| + eps)``: where ``|g|`` is
    near ``eps`` that step amplifies float32 rounding of ``g`` to a few % of ``lr``. Adam ignores
    the scale of ``g``, so only the gradient check catches a gradient off by a constant factor.
    ``weights()`` may list buffers (BatchNorm's running statistics) after the parameters; they
    are compared like weights.

    ``tolerant`` (``cnn.py``): a model with ReLU and max pooling has kinks, and float32 rounding
    differences (another summation order in a BatchNorm mean) move a few activations across one
    (an activation of 1e-7 against 0 routes a max pool's gradient to another cell). A step that
    fails the element-wise check above then still passes (``strict_ok`` False, ``ok`` True)
    when each gradient is within ``KINK_GRAD_L2`` in relative L2 norm (such flips gave 1e-3 to
    4e-3, float32 rounding alone 1e-6, a gradient off by a factor 2 gives 1) and the weights
    that differ are at most ``KINK_SHARE`` of an array (at least one), all where the reference
    gradient is below ``KINK_SMALL_GRAD`` of its largest magnitude (where the first Adam step,
    about ``lr * sign(g)``, hangs on the sign of a tiny gradient).
    """
    before = flat(contenders[0].weights())
    for contender in contenders:
        contender.loss_value = float(contender.step())
        contender.sync()
    reference, ref_grads = flat(contenders[0].weights()), flat(contenders[0].grads())
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(reference, before))
    if moved < 0.5 * ADAM["lr"]:
        raise RuntimeError(f"PyTorch's step moved the weights by only {moved:g}; bad setup")
    ref_loss = contenders[0].loss_value
    return {c.name: compare(c, reference, ref_grads, ref_loss, tolerant) for c in contenders[1:]}


def compare(
    contender: Any, reference: list, ref_grads: list, ref_loss: float, tolerant: bool = False
) -> dict:
    """The check of one contender after its first step (see :func:`check_against_torch`)."""
    got = flat(contender.weights())
    if [a.shape for a in got] != [b.shape for b in reference]:
        raise RuntimeError(f"{contender.name}: weights() has other shapes than PyTorch's")
    result: dict[str, Any] = {
        "loss_diff": abs(contender.loss_value - ref_loss),
        "max_abs_weight_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(got, reference)),
    }
    loss_ok = result["loss_diff"] <= 1e-4 * max(1.0, abs(ref_loss))
    close = [np.isclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(got, reference)]
    ok = loss_ok and all(c.all() for c in close)
    grads = contender.grads()
    if grads is not None:
        pairs = list(zip(flat(grads), ref_grads))
        errors = [np.max(np.abs(a - b) - 1e-3 * np.abs(b)) / _scale(b) for a, b in pairs]
        result["max_grad_error_over_scale"] = float(max(errors))
        ok = ok and result["max_grad_error_over_scale"] <= 1e-4
    if not tolerant:
        result["ok"] = bool(ok)
        return result
    result["strict_ok"] = bool(ok)
    off_count = 0
    tolerated = loss_ok
    for c, g in zip(close, ref_grads):  # the parameters (buffers follow, compared strictly)
        off = ~c
        small = np.abs(g) <= KINK_SMALL_GRAD * _scale(g)
        tolerated = tolerated and bool(np.all(small[off]))
        tolerated = tolerated and int(off.sum()) <= max(1, int(KINK_SHARE * off.size))
        off_count += int(off.sum())
    tolerated = tolerated and all(c.all() for c in close[len(ref_grads) :])
    result["weights_off"] = off_count
    if grads is not None:
        l2 = [np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-30) for a, b in pairs]
        result["max_grad_relative_l2"] = float(max(l2))
        tolerated = tolerated and result["max_grad_relative_l2"] <= KINK_GRAD_L2
    result["ok"] = bool(tolerated)
    return result


def _scale(g: np.ndarray) -> float:
    return max(float(np.max(np.abs(g))), 1e-30)


def flat(items: Any) -> list:
    """Arrays of nested lists and tuples (``[(W, b), ...]``) in order, as one list."""
    if isinstance(items, (list, tuple)):
        return [array for item in items for array in flat(item)]
    return [items]


# -- timing one model ---------------------------------------------------------------------------
def time_model(
    label: str, batch: int, contenders: list, args: argparse.Namespace, tolerant: bool = False
) -> tuple[dict | None, dict, dict, dict]:
    """Check ``contenders`` (PyTorch first) against PyTorch (``tolerant``: see
    :func:`check_against_torch`), then time them interleaved.

    Returns ``(measured or None when a check failed, check, compiled, phases)``: ``compiled``
    says per contender whether its step ran as one compiled function (read after the steps);
    ``phases`` (with ``args.phases``) holds min and median seconds per phase call.
    """
    check = check_against_torch(contenders, tolerant)
    for name, result in check.items():
        if result["ok"] and not result.get("strict_ok", True):
            l2 = result.get("max_grad_relative_l2")
            print(
                f"{label}: {name} passed the check only up to kinks: "
                f"{result['weights_off']} weights off where the gradient is tiny"
                + ("" if l2 is None else f", gradients within {l2:.1e} (relative L2)"),
                file=sys.stderr,
            )
    bad = [name for name, result in check.items() if not result["ok"]]
    if bad:
        print(f"{label}: WRONG RESULTS after one step for {bad}:", file=sys.stderr)
        print(json.dumps(check, indent=1), file=sys.stderr)
        return None, check, {}, {}
    timed = [_timing.Contender(c.name, c.step, c.sync, batch) for c in contenders]
    steps = 2 if args.quick else None
    measured = _timing.run_interleaved(timed, args.repeats, args.min_time, args.warmup, steps)
    compiled = {c.name: bool(c.compiled) for c in contenders}  # after the steps run
    for name, is_compiled in compiled.items():
        if name == "pnn-jax-train_step" and not is_compiled:
            print(f"{label}: {name} ran EAGER (no compiled step)", file=sys.stderr)
    phases: dict = {}
    analysed = [c for c in contenders if c.name.startswith(("pnn-", "handwritten-"))]
    if args.phases:
        phases = print_phases(label, analysed, args.quick)
    if args.profile:
        for c in analysed:
            steps = 2 if args.quick else measured[c.name].steps_per_repeat
            print(f"\n== profile {label} {c.name} ({steps} steps)")
            print(_timing.profile_steps(c.step, steps, top=args.profile))
    return measured, check, compiled, phases


def print_phases(label: str, contenders: list, quick: bool) -> dict[str, dict[str, list[float]]]:
    """Forward, loss, backward and optimizer timed apart: min and median us per call (printed);
    returns ``{contender: {phase: [min s, median s]}}``."""
    phases = {c.name: c.phases() for c in contenders}
    syncs = {c.name: c.sync for c in contenders}
    samples, min_time = (2, 0.0) if quick else (15, 0.02)
    found = _timing.time_phases(phases, syncs, samples, min_time)
    names = list(phases)
    print(f"\n== phases {label}: min / median us per call")
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
    return {name: {phase: list(v) for phase, v in found[name].items()} for name in names}


# -- rows, verdicts, table ----------------------------------------------------------------------
def summarise_rows(
    fields: dict[str, Any],
    measured: dict,
    targets: Callable[[str], dict[str, float]],
    reference: Callable[[str], str | None],
    compiled: dict[str, bool] | None = None,
) -> list[dict]:
    """One row per contender: ``fields`` (the model), medians, ratios (of medians and paired)
    to the first contender (PyTorch) and to ``reference(name)`` (the hand-written step), and
    verdicts on ``targets(name)`` (``{"pytorch": ratio, "handwritten": ratio}``), judged on the
    paired ratios (steadier than ratios of medians on a busy machine)."""
    torch_name = next(iter(measured))
    rows = []
    for name, m in measured.items():
        row = {
            **fields,
            "contender": name,
            "compiled": bool((compiled or {}).get(name, False)),
            **m.as_dict(),
        }
        row["ratio_to_pytorch"] = _timing.ratio(
            m.median_throughput, measured[torch_name].median_throughput
        )
        row["paired_ratio_to_pytorch"] = _timing.paired_ratio(m, measured[torch_name])
        ref = reference(name)
        if ref in measured:
            row["handwritten_reference"] = ref
            row["ratio_to_handwritten"] = _timing.ratio(
                m.median_throughput, measured[ref].median_throughput
            )
            row["paired_ratio_to_handwritten"] = _timing.paired_ratio(m, measured[ref])
        found = []
        for kind, target in targets(name).items():
            if kind == "handwritten" and "paired_ratio_to_handwritten" not in row:
                continue  # the hand-written step of this backend was not run
            row[f"target_ratio_to_{kind}"] = target
            row[f"meets_{kind}_target"] = bool(row[f"paired_ratio_to_{kind}"] >= target)
            found.append(row[f"meets_{kind}_target"])
        if found:
            row["meets_target"] = all(found)
        rows.append(row)
    return rows


def verdicts(row: dict) -> str:
    """``PyTorch>=0.9 ok, hand>=0.9 MISS``: the targets that apply to the row, judged."""
    found = []
    for kind, label in (("pytorch", "PyTorch"), ("handwritten", "hand")):
        if f"meets_{kind}_target" in row:
            verdict = "ok" if row[f"meets_{kind}_target"] else "MISS"
            found.append(f"{label}>={row[f'target_ratio_to_{kind}']:g} {verdict}")
    return ", ".join(found)


def format_table(rows: list[dict], label: Callable[[dict], str]) -> str:
    """Medians, ratios of medians and (in parentheses) paired ratios, target verdicts;
    ``label(row)`` names the model in the first column."""
    header = ("model", "contender", "step", "samples/s", "spread", "x PyTorch", "x hand", "targets")
    lines = [header]
    for row in rows:
        hand = row.get("ratio_to_handwritten")
        lines.append(
            (
                label(row),
                row["contender"],
                "jit" if row.get("compiled") else "eager",
                f"{row['median_items_per_second']:,.0f}",
                f"{100 * row['spread']:.0f}%",
                f"{row['ratio_to_pytorch']:.2f} ({row['paired_ratio_to_pytorch']:.2f})",
                "" if hand is None else f"{hand:.2f} ({row['paired_ratio_to_handwritten']:.2f})",
                verdicts(row),
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


# -- command line -------------------------------------------------------------------------------
def add_common_arguments(parser: argparse.ArgumentParser, models: dict, name: str) -> None:
    """Options every training-step benchmark has; ``models`` the model keys, ``name`` the
    benchmark's file stem (for the default JSON path)."""
    parser.add_argument(
        "--backend",
        default="numpy",
        help="portable_nn backend(s), comma-separated: numpy,torch,cupy,jax",
    )
    parser.add_argument("--torch-device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--models", default=",".join(models), help=f"comma-separated subset of {', '.join(models)}"
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
        help=f"JSON path (default results/{name}-<cpu|cuda>-<date>.json; "
        "none with --quick unless given)",
    )


def finish_arguments(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    models: dict,
    modes: tuple[str, ...] | None = None,
) -> argparse.Namespace:
    """Split the comma-separated options and check them (``modes``: the known portable_nn
    step styles, None: not checked here); ``--quick``: 1 repeat, one warm-up step, 2 steps."""
    args.backend = [b.strip() for b in args.backend.split(",") if b.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.pnn_modes = [m.strip() for m in args.pnn_modes.split(",") if m.strip()]
    for backend in args.backend:
        if backend not in ("numpy", "torch", "cupy", "jax"):
            parser.error(f"unknown backend {backend!r}; choose from numpy, torch, cupy, jax")
    for model in args.models:
        if model not in models:
            parser.error(f"unknown model {model!r}; choose from {', '.join(models)}")
    for mode in args.pnn_modes if modes is not None else ():
        if mode not in modes:
            parser.error(f"unknown mode {mode!r}; choose from {', '.join(modes)}")
    if args.quick:
        args.repeats, args.min_time, args.warmup = 1, 0.0, 1
    return args


# -- threads ------------------------------------------------------------------------------------
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


def start_run(args: argparse.Namespace) -> dict[str, Any]:
    """Import this checkout's portable_nn, set the threads, print them: the run's record."""
    if str(HERE.parent) not in sys.path:  # run from a checkout: import this portable_nn
        sys.path.insert(0, str(HERE.parent))
    threads, limiter, jax_threads = setup_threads(args.threads, args.backend)
    jax_note = "" if "jax" not in args.backend else f", JAX {jax_threads or 'default'}"
    print(
        f"threads: NumPy BLAS {_timing.numpy_blas_threads()}, torch {threads}{jax_note}; "
        f"{args.repeats} repeats x >= {args.min_time:g} s, interleaved"
    )
    return {
        "threads": threads,
        "jax_threads": jax_threads,
        "limiter": limiter,  # keeps the BLAS limit for the run
        "load_average_start": _timing.load_average(),
        "rows": [],
        "correctness": {},
        "skipped": {},
    }


def finish_run(run: dict[str, Any], label: Callable[[dict], str]) -> int:
    """Print the skipped contenders, the table and the load; 1 when a check failed, else 0."""
    for name, reason in run["skipped"].items():
        print(f"skipped {name}: {reason}")
    if run["rows"]:
        print(format_table(run["rows"], label))
    print(
        f"load average (1, 5, 15 min): {run['load_average_start']} at start, "
        f"{_timing.load_average()} at end, on {os.cpu_count()} CPUs"
    )
    failed = any(not r["ok"] for check in run["correctness"].values() for r in check.values())
    return 1 if failed else 0


# -- JSON ---------------------------------------------------------------------------------------
def write_json(
    args: argparse.Namespace,
    run: dict,
    name: str,
    settings: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path | None:
    """The run as JSON: environment, settings, correctness, per-repeat timings, ratios.

    ``name`` is the benchmark (``mlp`` -> ``mlp_train_step``, default path
    ``results/mlp-<device>-<date>.json``); ``settings`` its own settings, after the common
    ones; ``extra`` more top-level entries (``cnn.py``'s time breakdown). Nothing with
    ``--quick`` unless ``--out`` is given.
    """
    import datetime

    if args.out is None and args.quick:
        return None
    day = datetime.date.today().isoformat()
    path = Path(args.out) if args.out else RESULTS / f"{name}-{args.torch_device}-{day}.json"
    common = {
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
    }
    environment = _timing.environment()
    environment["load_average_start"] = run["load_average_start"]
    document = {
        "benchmark": f"{name}_train_step",
        "command": [Path(sys.executable).name, *sys.argv],
        "environment": environment,
        "settings": {**common, **settings},
        "correctness": run["correctness"],
        "skipped": run["skipped"],
        "results": run["rows"],
        "ratio_to_pytorch": {
            f"{r['model']}/{r['contender']}": round(r["ratio_to_pytorch"], 3) for r in run["rows"]
        },
        "verdicts": {
            f"{r['model']}/{r['contender']}": verdicts(r) for r in run["rows"] if verdicts(r)
        },
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path
