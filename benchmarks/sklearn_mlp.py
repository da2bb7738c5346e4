"""portable_nn.sklearn against scikit-learn's MLPs, in the same run: quality and fit time.

Quality: test accuracy (classifiers) or R^2 (regression) on a fixed held-out split (25 %,
``train_test_split(random_state=0)``, stratified for classifiers), mean over the estimator's
``random_state`` 0-4, for the solvers adam, sgd and lbfgs, with the same hyper-parameters for
both libraries (``max_iter=300``, scikit-learn's defaults otherwise; ConvergenceWarning
silenced):

    digits         MLPClassifier  raw pixels 0-16
    breast_cancer  MLPClassifier  StandardScaler (fitted on the training part)
    iris           MLPClassifier  raw
    wine           MLPClassifier  StandardScaler
    diabetes       MLPRegressor   StandardScaler on X, targets standardised (training mean/std)

portable_nn runs on float64 input (it should equal scikit-learn to rounding) and on float32
input (it then trains in float32). Target: |pnn - scikit-learn| <= 0.01 for every mean. The
rounding noise floor: scikit-learn once more on the training inputs times ``1 + 2**-52`` (one
ulp): L-BFGS amplifies such differences to whole test predictions over ~50 iterations, for
scikit-learn itself as for portable_nn (``sk 1ulp diff``).

Speed: ``fit`` time, wall clock and process CPU time, of ``solver="adam", max_iter=20,
random_state=0`` on NumPy input:

    digits  hidden (100,)      load_digits (1,797 x 64, 10 classes)
    synth   hidden (256, 256)  make_classification(20,000 x 100, 50 informative, 10 classes)

scikit-learn (float64), portable_nn on float64 and float32 NumPy input, and portable_nn on
torch CPU tensors (float64, float32) when torch imports. Fits are interleaved: one untimed fit
each, then every repeat fits each contender once (or as often as fills ``--min-time``, 1 s), the
order rotating from repeat to repeat. Reported: medians over repeats of the time per fit, and
the paired ratio ``pnn time / scikit-learn time`` (median over repeats of the ratio within a
repeat). Target: paired wall-time ratio <= 1.0. One BLAS thread by default (``--threads``;
threadpoolctl, installed with scikit-learn; torch gets the same).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sklearn_mlp.py --threads 1
    python benchmarks/sklearn_mlp.py --no-quality --repeats 9      # speed only
    python benchmarks/sklearn_mlp.py --profile 25                  # + cProfile of pnn's fits
    python benchmarks/sklearn_mlp.py --quick                       # smoke test, seconds
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import _timing
import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
if str(HERE.parent) not in sys.path:  # run from a checkout: import this portable_nn
    sys.path.insert(0, str(HERE.parent))

SOLVERS = ("adam", "sgd", "lbfgs")
DATASETS = ("digits", "breast_cancer", "iris", "wine", "diabetes")
QUALITY_TARGET = 0.01  # |mean score of pnn - mean score of scikit-learn| <= this
SPEED_TARGET = 1.0  # paired pnn fit time / scikit-learn fit time <= this


@dataclass(frozen=True)
class SpeedModel:
    """A fit to time: data set, hidden layers, epochs."""

    key: str
    data: str
    hidden: tuple[int, ...]
    max_iter: int

    @property
    def label(self) -> str:
        return f"{self.key} {'x'.join(map(str, self.hidden))} it{self.max_iter}"


SPEED_MODELS = {
    "digits": SpeedModel("digits", "digits", (100,), 20),
    "synth": SpeedModel("synth", "synth", (256, 256), 20),
}
QUICK_SPEED_MODELS = {"digits": SpeedModel("digits", "digits", (16,), 2)}


# -- data ---------------------------------------------------------------------------------------
def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """``(X_train, X_test, y_train, y_test, is_classification)`` of a quality data set, float64,
    scaled as the module docstring says (scalers fitted on the training part only)."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    loader = getattr(datasets, f"load_{name}")
    X, y = loader(return_X_y=True)
    classification = name != "diabetes"
    X_train, X_test, y_train, y_test = train_test_split(
        X.astype(np.float64),
        y,
        test_size=0.25,
        random_state=0,
        stratify=y if classification else None,
    )
    if name in ("breast_cancer", "wine", "diabetes"):
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    if not classification:
        mean, std = y_train.mean(), y_train.std()
        y_train, y_test = (y_train - mean) / std, (y_test - mean) / std
    return X_train, X_test, y_train, y_test, classification


def speed_data(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole data set of a speed model, float64."""
    from sklearn.datasets import load_digits, make_classification

    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return X.astype(np.float64), y
    return make_classification(
        n_samples=20_000, n_features=100, n_informative=50, n_classes=10, random_state=0
    )


def estimators(classification: bool) -> tuple[type, type]:
    """(scikit-learn's class, portable_nn's class)."""
    from sklearn import neural_network

    import portable_nn.sklearn as pnn_sklearn

    name = "MLPClassifier" if classification else "MLPRegressor"
    return getattr(neural_network, name), getattr(pnn_sklearn, name)


def torch_or_none() -> Any:
    """The torch module, or None when it does not import."""
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        import torch
    except Exception:  # a broken install is a skip, not a failure
        return None
    return torch


# -- quality ------------------------------------------------------------------------------------
def quality(args: argparse.Namespace) -> list[dict]:
    """One row per (data set, solver): per-seed and mean scores of scikit-learn and of
    portable_nn on float64 and float32 input, the differences and the target verdicts."""
    from sklearn.exceptions import ConvergenceWarning

    rows = []
    for name in args.datasets:
        X_train, X_test, y_train, y_test, classification = load(name)
        sk_class, pnn_class = estimators(classification)
        inputs = {
            "sklearn": (sk_class, X_train, X_test),
            "pnn-float64": (pnn_class, X_train, X_test),
            "pnn-float32": (pnn_class, X_train.astype(np.float32), X_test.astype(np.float32)),
            # scikit-learn again, every training input 1 ulp larger: how far rounding alone
            # moves its score (L-BFGS amplifies 1e-16 to 1e-2 over ~50 iterations)
            "sklearn-1ulp": (sk_class, X_train * (1.0 + 2.0**-52), X_test),
        }
        for solver in args.solvers:
            row: dict[str, Any] = {
                "dataset": name,
                "task": "classification" if classification else "regression",
                "metric": "accuracy" if classification else "r2",
                "solver": solver,
                "n_train": int(X_train.shape[0]),
                "n_test": int(X_test.shape[0]),
                "n_features": int(X_train.shape[1]),
            }
            predictions: dict[str, list[np.ndarray]] = {k: [] for k in inputs}
            start = time.perf_counter()
            for contender, (cls, x_train, x_test) in inputs.items():
                scores, n_iter, losses = [], [], []
                for seed in args.seeds:
                    model = cls(
                        hidden_layer_sizes=args.hidden,
                        solver=solver,
                        max_iter=args.max_iter,
                        random_state=seed,
                    )
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        model.fit(x_train, y_train)
                    scores.append(float(model.score(x_test, y_test)))
                    predictions[contender].append(np.asarray(model.predict(x_test)))
                    n_iter.append(int(model.n_iter_))
                    losses.append(float(model.loss_))
                row[contender] = {
                    "scores": scores,
                    "mean": statistics.fmean(scores),
                    "n_iter": n_iter,
                    "final_loss": losses,
                }
            row["seconds"] = time.perf_counter() - start
            for contender in ("pnn-float64", "pnn-float32", "sklearn-1ulp"):
                diff = row[contender]["mean"] - row["sklearn"]["mean"]
                row[f"diff_{contender}"] = diff
                if contender.startswith("pnn"):
                    row[f"meets_target_{contender}"] = bool(abs(diff) <= QUALITY_TARGET)
                pairs = zip(predictions[contender], predictions["sklearn"])
                if classification:  # share of test predictions equal to scikit-learn's
                    same = [float(np.mean(a == b)) for a, b in pairs]
                    row[f"same_predictions_{contender}"] = min(same)
                else:
                    gap = [float(np.max(np.abs(a - b))) for a, b in pairs]
                    row[f"max_prediction_diff_{contender}"] = max(gap)
                row[f"max_loss_diff_{contender}"] = max(
                    abs(a - b)
                    for a, b in zip(row[contender]["final_loss"], row["sklearn"]["final_loss"])
                )
            rows.append(row)
            print(f"  quality {name}/{solver}: {row['seconds']:.1f} s", file=sys.stderr)
    return rows


def format_quality(rows: list[dict]) -> str:
    header = (
        "dataset",
        "metric",
        "solver",
        "sklearn",
        "pnn f64",
        "diff f64",
        "pnn f32",
        "diff f32",
        "same/max|d| f64",
        "sk 1ulp diff",
        f"|diff|<={QUALITY_TARGET:g}",
    )
    lines = [header]
    for row in rows:
        if row["task"] == "classification":
            agree = f"{100 * row['same_predictions_pnn-float64']:.1f}% same"
        else:
            agree = f"{row['max_prediction_diff_pnn-float64']:.1e}"
        verdict = all(row[f"meets_target_{c}"] for c in ("pnn-float64", "pnn-float32"))
        lines.append(
            (
                row["dataset"],
                row["metric"],
                row["solver"],
                f"{row['sklearn']['mean']:.4f}",
                f"{row['pnn-float64']['mean']:.4f}",
                f"{row['diff_pnn-float64']:+.4f}",
                f"{row['pnn-float32']['mean']:.4f}",
                f"{row['diff_pnn-float32']:+.4f}",
                agree,
                f"{row['diff_sklearn-1ulp']:+.4f}",
                "ok" if verdict else "MISS",
            )
        )
    return _table(lines, right=range(3, 10))


# -- speed --------------------------------------------------------------------------------------
@dataclass
class Fit:
    """One contender of the speed test: ``fit()`` trains a fresh estimator."""

    name: str
    fit: Callable[[], Any]
    wall: list[float]
    cpu: list[float]
    n_iter: int = 0
    fits_per_repeat: int = 1


def speed_contenders(model: SpeedModel, args: argparse.Namespace) -> tuple[list[Fit], dict]:
    """scikit-learn first (the baseline), then portable_nn on NumPy float64/float32 and on
    torch CPU tensors; returns (contenders, skipped)."""
    X, y = speed_data(model.data)
    sk_class, pnn_class = estimators(True)
    params = {
        "hidden_layer_sizes": model.hidden,
        "solver": "adam",
        "max_iter": model.max_iter,
        "random_state": 0,
    }
    inputs: list[tuple[str, type, Any, Any]] = [
        ("sklearn", sk_class, X, y),
        ("pnn-numpy-float64", pnn_class, X, y),
        ("pnn-numpy-float32", pnn_class, X.astype(np.float32), y),
    ]
    skipped = {}
    torch = torch_or_none() if args.torch else None
    if torch is not None:
        y_t = torch.asarray(y)
        for dtype in ("float64", "float32"):
            x_t = torch.asarray(X, dtype=getattr(torch, dtype))
            inputs.append((f"pnn-torch-cpu-{dtype}", pnn_class, x_t, y_t))
    elif args.torch:
        skipped["pnn-torch-cpu-*"] = "torch does not import"

    def fitter(cls: type, x: Any, target: Any) -> Callable[[], Any]:
        def fit() -> Any:
            from sklearn.exceptions import ConvergenceWarning

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                return cls(**params).fit(x, target)

        return fit

    return [Fit(name, fitter(cls, x, t), [], []) for name, cls, x, t in inputs], skipped


def time_fits(contenders: list[Fit], repeats: int, min_time: float, warmup: bool) -> None:
    """Interleaved: one untimed fit each (``warmup``; it also sets how many fits a repeat
    runs: enough for ``min_time`` seconds), then ``repeats`` rounds that fit every contender
    that many times, the order rotating by one each round; wall and process CPU seconds per
    fit (the mean of the round's fits)."""
    for contender in contenders if warmup else ():
        start = time.perf_counter()
        contender.fit()
        contender.fits_per_repeat = max(1, math.ceil(min_time / (time.perf_counter() - start)))
    for index in range(repeats):
        shift = index % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            n = contender.fits_per_repeat
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                fitted = contender.fit()
            contender.cpu.append((time.process_time() - cpu) / n)
            contender.wall.append((time.perf_counter() - wall) / n)
            contender.n_iter = int(fitted.n_iter_)


def speed_rows(model: SpeedModel, contenders: list[Fit], quick: bool) -> list[dict]:
    """Medians, spreads and ratios to scikit-learn (of medians and paired); verdicts."""
    base = contenders[0]
    rows = []
    for c in contenders:
        wall, cpu = statistics.median(c.wall), statistics.median(c.cpu)
        row: dict[str, Any] = {
            "model": model.key,
            "hidden_layer_sizes": list(model.hidden),
            "max_iter": model.max_iter,
            "contender": c.name,
            "n_iter": c.n_iter,
            "fits_per_repeat": c.fits_per_repeat,
            "wall_seconds": c.wall,
            "cpu_seconds": c.cpu,
            "median_wall_seconds": wall,
            "median_cpu_seconds": cpu,
            "spread": (max(c.wall) - min(c.wall)) / wall if wall > 0 else float("nan"),
            "ratio_to_sklearn": _timing.ratio(wall, statistics.median(base.wall)),
            "cpu_ratio_to_sklearn": _timing.ratio(cpu, statistics.median(base.cpu)),
            "paired_ratio_to_sklearn": paired(c.wall, base.wall),
            "paired_cpu_ratio_to_sklearn": paired(c.cpu, base.cpu),
        }
        if c is not base and not quick:
            row["target_ratio_to_sklearn"] = SPEED_TARGET
            row["meets_target"] = bool(row["paired_ratio_to_sklearn"] <= SPEED_TARGET)
        rows.append(row)
    return rows


def paired(times: list[float], base: list[float]) -> float:
    """Median over repeats of ``times[i] / base[i]``."""
    return statistics.median(_timing.ratio(a, b) for a, b in zip(times, base))


def format_speed(rows: list[dict]) -> str:
    header = (
        "model",
        "contender",
        "n_iter",
        "wall s",
        "cpu s",
        "spread",
        "x sklearn wall",
        "x sklearn cpu",
        f"<={SPEED_TARGET:g}",
    )
    lines = [header]
    for row in rows:
        verdict = "" if "meets_target" not in row else ("ok" if row["meets_target"] else "MISS")
        lines.append(
            (
                f"{row['model']} {'x'.join(map(str, row['hidden_layer_sizes']))}",
                row["contender"],
                str(row["n_iter"]),
                f"{row['median_wall_seconds']:.3f}",
                f"{row['median_cpu_seconds']:.3f}",
                f"{100 * row['spread']:.0f}%",
                f"{row['ratio_to_sklearn']:.2f} ({row['paired_ratio_to_sklearn']:.2f})",
                f"{row['cpu_ratio_to_sklearn']:.2f} ({row['paired_cpu_ratio_to_sklearn']:.2f})",
                verdict,
            )
        )
    return _table(lines, right=range(2, 8))


def profile_fits(model: SpeedModel, contenders: list[Fit], top: int) -> dict[str, str]:
    """cProfile one fit of each portable_nn contender; the ``top`` functions by own time."""
    found = {}
    for c in contenders[1:]:
        text = _timing.profile_steps(c.fit, 1, top=top)
        print(f"\n== profile {model.label} {c.name} (one fit; us per fit)\n{text}")
        found[c.name] = text
    return found


# -- table, options, JSON -------------------------------------------------------------------------
def _table(lines: list[tuple[str, ...]], right: range) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        ).rstrip()
        for line in lines
    ]
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help=f"quality data sets ({','.join(DATASETS)})"
    )
    parser.add_argument("--solvers", default=",".join(SOLVERS), help="adam,sgd,lbfgs")
    parser.add_argument("--seeds", type=int, default=5, help="random_state 0..N-1 (5)")
    parser.add_argument("--max-iter", type=int, default=300, help="max_iter of the quality fits")
    parser.add_argument(
        "--hidden", default="100", help="hidden_layer_sizes of the quality fits (e.g. 100 or 64,64)"
    )
    parser.add_argument(
        "--models", default=",".join(SPEED_MODELS), help="speed models (digits,synth)"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (median)")
    parser.add_argument(
        "--min-time", type=float, default=1.0, help="seconds of fits per repeat (at least one)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS (and OpenMP, torch) threads for both libraries (1; 0: library defaults)",
    )
    parser.add_argument("--no-quality", dest="quality", action="store_false")
    parser.add_argument("--no-speed", dest="speed", action="store_false")
    parser.add_argument(
        "--no-torch", dest="torch", action="store_false", help="no pnn-on-torch-tensors rows"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="TOP",
        help="after timing, cProfile one fit of each portable_nn contender (TOP functions)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: iris only, 1 seed, max_iter 5, a tiny digits fit, 1 repeat",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="JSON path (default results/sklearn-mlp-cpu-<date>[-threads<N>].json; "
        "none with --quick unless given)",
    )
    args = parser.parse_args(argv)
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    args.solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    for value, known, what in (
        (args.datasets, DATASETS, "data set"),
        (args.solvers, SOLVERS, "solver"),
        (args.models, SPEED_MODELS, "model"),
    ):
        for item in value:
            if item not in known:
                parser.error(f"unknown {what} {item!r}; choose from {', '.join(known)}")
    if args.quick:
        args.datasets, args.seeds, args.max_iter, args.hidden = ["iris"], 1, 5, (16,)
        args.models, args.repeats = list(QUICK_SPEED_MODELS), 1
    args.seeds = list(range(args.seeds))
    return args


def set_threads(threads: int) -> Any:
    """One BLAS/OpenMP limit for both libraries (threadpoolctl, a scikit-learn dependency), and
    the same for torch when it imports; returns the limiter (keep it for the run)."""
    if not threads:
        return None
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=threads)
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(threads)
    return limiter


def write_json(args: argparse.Namespace, document: dict) -> Path | None:
    if args.out is None and args.quick:
        return None
    day = datetime.date.today().isoformat()
    suffix = f"-threads{args.threads}" if args.threads else ""
    path = Path(args.out) if args.out else RESULTS / f"sklearn-mlp-cpu-{day}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limiter = set_threads(args.threads)  # noqa: F841  (held for the run)
    import scipy
    import sklearn

    load_start = _timing.load_average()
    print(
        f"scikit-learn {sklearn.__version__}; threads: NumPy BLAS {_timing.numpy_blas_threads()}"
        f"; quality: {len(args.seeds)} seeds, max_iter {args.max_iter}; speed: "
        f"{args.repeats} interleaved fits each"
    )
    quality_rows = quality(args) if args.quality else []
    if quality_rows:
        print("\n== quality: mean test score over random_state", args.seeds)
        print(format_quality(quality_rows))
    speed: list[dict] = []
    skipped: dict[str, str] = {}
    profiles: dict[str, dict[str, str]] = {}
    models = QUICK_SPEED_MODELS if args.quick else SPEED_MODELS
    for key in args.models if args.speed else ():
        model = models[key]
        contenders, missing = speed_contenders(model, args)
        skipped.update(missing)
        time_fits(contenders, args.repeats, args.min_time, warmup=not args.quick)
        speed += speed_rows(model, contenders, args.quick)
        if args.profile:
            profiles[key] = profile_fits(model, contenders, args.profile)
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    if speed:
        print("\n== speed: fit time, medians; ratios of medians (paired) to scikit-learn")
        print(format_speed(speed))
    print(
        f"load average (1, 5, 15 min): {load_start} at start, {_timing.load_average()} at end, "
        f"on {os.cpu_count()} CPUs"
    )
    environment = _timing.environment()
    environment.update(
        load_average_start=load_start, sklearn=sklearn.__version__, scipy=scipy.__version__
    )
    document = {
        "benchmark": "sklearn_mlp",
        "command": [Path(sys.executable).name, *sys.argv],
        "environment": environment,
        "settings": {
            "threads": args.threads,
            "datasets": args.datasets,
            "solvers": args.solvers,
            "seeds": args.seeds,
            "quality_max_iter": args.max_iter,
            "quality_hidden_layer_sizes": list(args.hidden),
            "test_size": 0.25,
            "split_random_state": 0,
            "speed_models": {k: asdict(models[k]) for k in args.models if args.speed},
            "repeats": args.repeats,
            "min_time_s": args.min_time,
            "quick": args.quick,
            "quality_target_abs_diff": QUALITY_TARGET,
            "speed_target_paired_ratio": SPEED_TARGET,
        },
        "quality": quality_rows,
        "speed": speed,
        "skipped": skipped,
        "profiles": profiles,
        "summary": {
            "quality_diff": {
                f"{r['dataset']}/{r['solver']}/{c}": round(r[f"diff_{c}"], 4)
                for r in quality_rows
                for c in ("pnn-float64", "pnn-float32", "sklearn-1ulp")
            },
            "speed_paired_ratio": {
                f"{r['model']}/{r['contender']}": round(r["paired_ratio_to_sklearn"], 3)
                for r in speed
            },
        },
    }
    write_json(args, document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
