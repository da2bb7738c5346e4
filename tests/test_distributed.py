"""Data-parallel training (``portable_nn.distributed``): 2-process jobs under ``mpiexec``
(NumPy, MPI) and ``torchrun`` (torch, gloo) started by the tests themselves, compared with a
single-process ``fit`` of the same global batch and seed (float64, Adam, SyncBatchNorm, Dropout,
L2, a partial last batch, a validation split); checkpoints from 2 processes resumed on 1; a
failing or killed rank stopping the job; unit tests of the sharding and the mask offsets."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.distributed.parallel import Shard
from portable_nn.random import Generator, RowOffset

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker  # noqa: E402

WORKER = str(Path(__file__).parent / "distributed_worker.py")
ROOT = Path(__file__).resolve().parents[1]


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    return found if found and importlib.util.find_spec("mpi4py") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(
    engine: str, scenario: str, out: Path, timeout: float = 240, **env: str
) -> tuple[int, str, float]:
    if engine == "mpi":
        runner = _mpiexec()
        if runner is None:
            pytest.skip("mpi4py / mpiexec not installed (pip install 'portable-nn[distributed]')")
        command = [runner, "-n", "2", sys.executable, WORKER, scenario, "numpy", str(out)]
    else:
        pytest.importorskip("torch")
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                   "--master-port", str(_free_port()), WORKER, scenario, "torch",
                   str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    env.pop("PORTABLE_NN_BACKEND", None)
    start = time.monotonic()
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    return run.returncode, run.stdout + run.stderr, time.monotonic() - start


def _single_process(scenario: str = "train") -> tuple[pnn.Sequential, dict]:
    with pnn.use_backend("numpy", dtype="float64"):
        x, y, model, kwargs = worker.job(scenario)
        history = model.fit(x, y, verbose=0, **kwargs)
    return model, history.history


def _assert_close(got: dict, want: dict) -> None:
    for name, value in want.items():
        scale = max(float(np.abs(value).max()), 1e-300)
        assert float(np.abs(got[name] - value).max()) <= 1e-10 * scale, name


@pytest.mark.parametrize(("engine", "bucket_mb"), [("mpi", "8"), ("torch", "8"), ("mpi", "1e-4")])
def test_two_processes_equal_one(engine, bucket_mb, tmp_path):
    # 1e-4 MB: a bucket per layer, all-reduces started while the backward pass goes on
    code, out, _ = _launch(engine, "train", tmp_path, PORTABLE_NN_BUCKET_MB=bucket_mb)
    assert code == 0, out[-3000:]
    _assert_ranks_equal_one(tmp_path)
    assert "rank 0 of 2" in out and ("mpi" in out if engine == "mpi" else "torch-gloo" in out)


@pytest.mark.parametrize("scenario", ["tiny", "sum", "weighted", "ignore"])
def test_batches_and_losses_that_need_the_whole_batch(scenario, tmp_path):
    # tiny: batches of 1 sample, rank 1 holds no rows (adds zeros, joins every collective);
    # the others: the loss divides by the global batch's sum of weights or counted labels
    code, out, _ = _launch("mpi", scenario, tmp_path)
    assert code == 0, out[-3000:]
    _assert_ranks_equal_one(tmp_path, scenario)


def _assert_ranks_equal_one(out: Path, scenario: str = "train") -> None:
    model, history = _single_process(scenario)
    want = {k: pnn.to_numpy(v) for k, v in model.state_dict().items()}
    ranks = [dict(np.load(out / f"rank{r}.npz")) for r in (0, 1)]
    for got in ranks:  # both ranks hold the single-process state (SyncBN buffers too)
        _assert_close(got, want)
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(
                [got[f"{key}{i}"] for i in range(3)], history[key], rtol=1e-12
            )


def test_a_stop_asked_during_a_batch_ends_the_epoch_on_every_rank(tmp_path):
    code, out, _ = _launch("mpi", "stop", tmp_path)  # also: layer names differ between ranks
    assert code == 0, out[-3000:]
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in (0, 1)]
    assert [len([k for k in got if k.startswith("val_loss")]) for got in ranks] == [2, 2]
    for name, value in ranks[0].items():  # BatchNorm's running statistics are rank 0's too
        np.testing.assert_array_equal(ranks[1][name], value, err_msg=name)
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,")  # rank 0 alone wrote it


def test_a_plain_fit_on_one_rank_keeps_sync_batch_norm_local(tmp_path):
    code, out, _ = _launch("mpi", "local", tmp_path, timeout=120)
    assert code == 0, out[-3000:]  # no collective waits for rank 1
    model, _ = _single_process()
    want = {k: pnn.to_numpy(v) for k, v in model.state_dict().items()}
    _assert_close(dict(np.load(tmp_path / "rank0.npz")), want)


def test_checkpoint_of_two_processes_resumes_on_one(tmp_path):
    code, out, _ = _launch("mpi", "checkpoint", tmp_path)
    assert code == 0, out[-3000:]
    uninterrupted, _ = _single_process()
    with pnn.use_backend("numpy", dtype="float64"):
        model = pnn.load_model(tmp_path / "model.safetensors")
        x, y, _, kwargs = worker.job("train")
        del kwargs["seed"]  # the checkpoint's generators go on
        model.fit(x, y, initial_epoch=2, verbose=0, **kwargs)
    want = {k: pnn.to_numpy(v) for k, v in uninterrupted.state_dict().items()}
    _assert_close({k: pnn.to_numpy(v) for k, v in model.state_dict().items()}, want)


@pytest.mark.parametrize("scenario", ["raise", "kill"])
@pytest.mark.parametrize("engine", ["mpi", "torch"])
def test_a_failing_rank_stops_the_job(engine, scenario, tmp_path):
    code, out, seconds = _launch(engine, scenario, tmp_path, timeout=120)
    assert code != 0
    assert seconds < 60, out[-3000:]
    assert not (tmp_path / "rank0.npz").exists()  # the survivor did not finish training
    if scenario == "raise":
        assert "rank 1 of 2" in out and "fails on purpose" in out, out[-3000:]
    elif engine == "torch":  # torchrun names the dead worker's rank
        assert "rank      : 1" in out and "SIGKILL" in out, out[-3000:]
    else:  # MPICH's launcher names its PID and the signal
        assert "BAD TERMINATION" in out and "signal 9" in out, out[-3000:]


def test_a_different_model_on_one_rank_is_refused_before_training(tmp_path):
    code, out, _ = _launch("mpi", "mismatch", tmp_path, timeout=120)
    assert code != 0
    assert "rank 1's model architecture differs from rank 0's" in out, out[-3000:]


def test_scaling_benchmark_runs(tmp_path):
    if _mpiexec() is None:
        pytest.skip("mpi4py / mpiexec not installed")
    out = tmp_path / "distributed.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "distributed.py"),
        "--quick",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(out.read_text())["summary"]
    assert summary["ratio"] > 0 and summary["backward_per_step"] > 0
    assert summary["allreduce_wait_per_step"] >= 0


# -- in one process ------------------------------------------------------------------------------
@pytest.mark.parametrize(("total", "size"), [(32, 2), (11, 2), (10, 3), (7, 4), (64, 1)])
def test_shards_cover_the_batch_once(total, size):
    rows = []
    for rank in range(size):
        shard = Shard(rank, size)
        start, stop = shard.rows(100, 100 + total)
        assert shard.total == total and start == 100 + shard.first
        assert abs((stop - start) - total / size) < 1
        rows += list(range(start, stop))
    assert rows == list(range(100, 100 + total))


def test_row_offset_gives_the_rows_of_the_whole_batch_draw(backend):
    xp, device = backend.xp, backend.dev
    whole = backend.to_numpy(Generator(7).bernoulli((10, 3, 2), 0.5, xp=xp, device=device))
    with RowOffset(4):
        part = Generator(7).uniform((6, 3, 2), xp=xp, device=device, dtype=xp.float32)
    full = backend.to_numpy(Generator(7).uniform((10, 3, 2), xp=xp, device=device,
                                                 dtype=xp.float32))  # fmt: skip
    np.testing.assert_array_equal(backend.to_numpy(part), full[4:])
    with RowOffset(4):
        mask = Generator(7).bernoulli((6, 3, 2), 0.5, xp=xp, device=device)
    np.testing.assert_array_equal(backend.to_numpy(mask), whole[4:])


def test_distributed_fit_in_one_process_is_a_plain_fit(backend):
    with backend.use("float64"):
        x, y = worker.data()
        runs = []
        for distributed in (False, True):
            model = worker.build()
            model.fit(x, y, epochs=2, batch_size=worker.BATCH, seed=worker.SEED, verbose=0,
                      distributed=distributed)  # fmt: skip
            runs.append({k: backend.to_numpy(v) for k, v in model.state_dict().items()})
    for name in runs[0]:  # JAX's plain fit is the compiled step: equal to rounding
        np.testing.assert_allclose(runs[1][name], runs[0][name], rtol=1e-12, atol=1e-15)
    assert pnn.distributed.world_size() == 1 and pnn.distributed.is_main()
