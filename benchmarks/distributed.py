"""Data-parallel scaling: ``fit(distributed=True)`` on 2 processes x 1 thread against 1 process x
1 thread, in the same run, interleaved.

Model 784-1024-1024-10 (ReLU), Adam, float32, global batch 512, synthetic data. Each repeat
runs one single-process job and one ``mpiexec -n 2`` job (``--engine torch``: ``torchrun``
with the torch backend), each timing ``--steps`` global batches after a warm-up epoch; the
throughput ratio (samples/s of the 2-process job over the 1-process one) is the median of
the per-repeat ratios. The 2-process job also reports the backward time and the all-reduce
wait per step: the time from the end of the backward pass until the summed gradients are in
hand (buckets of ``--bucket-mb`` start their all-reduce during the backward pass; a bucket size
above the model's gradients, e.g. 1000, starts one all-reduce after it: no overlap). Writes JSON
to ``results/distributed-<engine>-cpu-<date>.json``::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/distributed.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = (784, 1024, 1024, 10)
TARGET = 1.4
THREADS = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def worker(backend: str, steps: int, batch: int, sizes: tuple[int, ...]) -> None:
    """One process of a job: prints one JSON line (rank 0) with its timings."""
    import numpy as np

    import portable_nn as pnn
    from portable_nn import layers as L
    from portable_nn.distributed.parallel import DataParallel

    if backend == "torch":
        import torch

        torch.set_num_threads(1)
    pnn.set_backend(backend)
    pnn.distributed.init()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * steps, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=batch * steps)
    layers = [L.Dense(sizes[1], activation="relu", input_dim=sizes[0], seed=1)]
    layers += [L.Dense(u, activation="relu", seed=i + 2) for i, u in enumerate(sizes[2:-1])]
    model = pnn.Sequential([*layers, L.Dense(sizes[-1], seed=9)])
    model.compile(loss=pnn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer="adam", jit=False)  # fmt: skip
    fit = dict(batch_size=batch, distributed=True, verbose=0, shuffle=False)
    model.fit(x[: 2 * batch], y[: 2 * batch], **fit)  # warm-up: first steps, allocations
    start = time.perf_counter()
    model.fit(x, y, epochs=1, **fit)
    seconds = time.perf_counter() - start
    last = DataParallel.last  # the timed fit's
    parallel_seconds = last.seconds if last is not None and last.engine.size > 1 else None
    if pnn.distributed.is_main():
        out = {
            "processes": pnn.distributed.world_size(),
            "engine": pnn.distributed.engine().name,
            "seconds_per_step": seconds / steps,
            "samples_per_second": batch * steps / seconds,
            "parallel": parallel_seconds,
        }
        print("RESULT " + json.dumps(out), flush=True)


def launch(processes: int, engine: str, backend: str, steps: int, batch: int) -> dict:
    me = [str(Path(__file__).resolve()), "--worker", "--backend", backend, "--steps",
          str(steps), "--batch", str(batch)]  # fmt: skip
    if processes == 1:
        command = [sys.executable, *me]
    elif engine == "mpi":
        mpiexec = Path(sys.executable).parent / "mpiexec"
        runner = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec") or "mpiexec"
        command = [runner, "-n", str(processes), sys.executable, *me]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                   str(processes), *me]  # fmt: skip
    env = {**os.environ, **THREADS, "PYTHONPATH": str(HERE.parent)}
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    if run.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    return json.loads(lines[0][len("RESULT ") :])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("mpi", "torch"), default="mpi")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="timed global batches per job")
    parser.add_argument("--batch", type=int, default=512, help="global batch size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--bucket-mb",
        type=float,
        default=None,
        help="PORTABLE_NN_BUCKET_MB for the jobs (default: the library's 8)",
    )
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default=None, help="default: numpy (mpi), torch (torch)")
    args = parser.parse_args()
    if args.bucket_mb is not None:
        os.environ["PORTABLE_NN_BUCKET_MB"] = str(args.bucket_mb)
    backend = args.backend or ("torch" if args.engine == "torch" else "numpy")
    sizes = (32, 16, 16, 4) if args.quick else SIZES
    if args.quick:
        args.steps, args.repeats, args.batch = 3, 1, 16
    if args.worker:
        worker(backend, args.steps, args.batch, sizes)
        return 0
    runs = []
    for repeat in range(args.repeats):  # interleaved: both jobs see the same machine load
        one = launch(1, args.engine, backend, args.steps, args.batch)
        many = launch(args.processes, args.engine, backend, args.steps, args.batch)
        ratio = many["samples_per_second"] / one["samples_per_second"]
        runs.append({"one": one, "many": many, "ratio": ratio})
        print(f"repeat {repeat + 1}: 1 process {one['samples_per_second']:.0f} samples/s, "
              f"{args.processes} processes {many['samples_per_second']:.0f} samples/s, "
              f"ratio {ratio:.2f}", flush=True)  # fmt: skip
    med = lambda values: statistics.median(values)  # noqa: E731
    parallel = [r["many"]["parallel"] for r in runs if r["many"]["parallel"]]
    summary = {
        "ratio": med([r["ratio"] for r in runs]),
        "one_process_samples_per_second": med([r["one"]["samples_per_second"] for r in runs]),
        "many_samples_per_second": med([r["many"]["samples_per_second"] for r in runs]),
        "many_seconds_per_step": med([r["many"]["seconds_per_step"] for r in runs]),
        "allreduce_wait_per_step": med([p["allreduce_wait"] / p["steps"] for p in parallel])
        if parallel else None,
        "backward_per_step": med([p["backward"] / p["steps"] for p in parallel])
        if parallel else None,
        "target_ratio": TARGET,
    }  # fmt: skip
    summary["meets_target"] = summary["ratio"] >= TARGET
    print(json.dumps(summary, indent=1))
    if args.quick and args.out is None:
        return 0
    date = datetime.date.today().isoformat()
    out = Path(args.out or HERE / "results" / f"distributed-{args.engine}-cpu-{date}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "data_parallel_fit",
        "command": sys.argv,
        "settings": {
            "sizes": sizes,
            "global_batch": args.batch,
            "steps": args.steps,
            "repeats": args.repeats,
            "engine": args.engine,
            "backend": backend,
            "processes": args.processes,
            "threads_per_process": 1,
            "dtype": "float32",
            "cpu_count": os.cpu_count(),
        },  # fmt: skip
        "summary": summary,
        "runs": runs,
    }
    out.write_text(json.dumps(document, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
