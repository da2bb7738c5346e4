"""Smoke tests of ``benchmarks/mlp.py`` and ``benchmarks/_timing.py``: tiny sizes, one repeat.

They keep the benchmark runnable (CLI, JSON layout, correctness check against PyTorch) without
measuring anything; the numbers themselves come from a full run (see benchmarks/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import _mlp_contenders  # noqa: E402
import _timing  # noqa: E402
import mlp  # noqa: E402


def test_cli_quick_run_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "mlp.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "mlp.py"), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "samples/s" in done.stdout
    document = json.loads(out.read_text())
    assert document["settings"]["quick"] is True
    assert document["environment"]["numpy"] == np.__version__
    assert document["environment"]["torch_threads"] == document["settings"]["threads"]
    names = {"pytorch-cpu", "handwritten-numpy", "pnn-numpy", "pnn-numpy-train_step"}
    for model in mlp.MODELS:
        rows = {r["contender"]: r for r in document["results"] if r["model"] == model}
        assert set(rows) == names, (model, sorted(rows))
        assert rows["pytorch-cpu"]["ratio_to_pytorch"] == 1.0
        for row in rows.values():
            assert row["median_items_per_second"] > 0
            assert len(row["seconds_per_step"]) == 1
        assert all(check["ok"] for check in document["correctness"][model].values())


def test_main_in_process_does_not_import_cupy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    already = "cupy" in sys.modules
    argv = ["--quick", "--models", "tiny", "--backend", "numpy,torch", "--phases", "--profile", "5"]
    assert mlp.main([*argv, "--out", str(tmp_path / "t.json")]) == 0
    printed = capsys.readouterr().out
    assert "== phases" in printed and "optimizer" in printed
    assert "== profile" in printed and "us/step" in printed
    rows = json.loads((tmp_path / "t.json").read_text())["results"]
    assert {"pnn-torch-cpu", "pnn-numpy"} <= {r["contender"] for r in rows}
    assert already or "cupy" not in sys.modules


def test_cli_quick_run_with_jax(tmp_path: Path) -> None:
    """The hand-written ``jax.jit`` step passes the check against PyTorch; pnn's JAX train_step
    runs compiled (and says so), the manual step eagerly; both are compared with the jit step."""
    pytest.importorskip("jax", reason="the JAX contenders need jax")
    out = tmp_path / "jax.json"
    command = [sys.executable, str(BENCH / "mlp.py"), "--quick", "--backend", "numpy,jax"]
    done = subprocess.run(
        [*command, "--threads", "1", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "handwritten-jax-jit" in done.stdout and "jit" in done.stdout
    document = json.loads(out.read_text())
    assert document["settings"]["jax_threads"] == 1
    assert document["environment"]["jax"]
    for model in mlp.MODELS:
        rows = {r["contender"]: r for r in document["results"] if r["model"] == model}
        assert {"handwritten-jax-jit", "pnn-jax", "pnn-jax-train_step"} <= set(rows), model
        assert rows["handwritten-jax-jit"]["compiled"] is True
        assert rows["pnn-jax-train_step"]["compiled"] is True
        assert rows["pnn-jax"]["compiled"] is False
        assert rows["pnn-numpy"]["compiled"] is False
        for name in ("pnn-jax", "pnn-jax-train_step"):
            assert rows[name]["handwritten_reference"] == "handwritten-jax-jit"
            assert rows[name]["ratio_to_handwritten"] > 0
        checks = document["correctness"][model]
        assert checks["handwritten-jax-jit"]["ok"], checks
        assert all(check["ok"] for check in checks.values()), checks


class _GradientTimesTwo(_mlp_contenders.HandwrittenMLP):
    """A bug Adam hides: the update ignores the gradient's scale, the gradient check does not."""

    def _loss(self, out, y):
        loss, grad = super()._loss(out, y)
        return loss, 2.0 * grad


class _NoBiasCorrection(_mlp_contenders.HandwrittenMLP):
    def _adam(self, grads):
        self.t = 10**6  # 1 - beta**t == 1: the first steps come out ~3x too large
        super()._adam(grads)


@pytest.mark.parametrize("model", ["small", "tiny"])
@pytest.mark.parametrize("bug", [_GradientTimesTwo, _NoBiasCorrection])
def test_correctness_check_catches_wrong_steps(model: str, bug: type) -> None:
    spec = mlp.QUICK_MODELS[model]
    weights, batches = mlp.make_problem(spec)
    good = _mlp_contenders.HandwrittenMLP(np, spec.loss, weights, batches)
    bad = bug(np, spec.loss, weights, batches)
    bad.name = "buggy"
    torch_side = _mlp_contenders.TorchMLP(spec.loss, weights, batches, "cpu")
    report = mlp.check_against_torch([torch_side, good, bad])
    assert report["handwritten-numpy"]["ok"], report
    assert not report["buggy"]["ok"], report


def test_correctness_check_catches_a_wrong_jax_step() -> None:
    pytest.importorskip("jax", reason="the JAX contenders need jax")

    class WrongJax(_mlp_contenders.HandwrittenJaxMLP):
        name = "buggy"

        def _loss(self, out, y):
            loss, grad = super()._loss(out, y)
            return loss, 2.0 * grad

    spec = mlp.QUICK_MODELS["small"]
    weights, batches = mlp.make_problem(spec)
    good = _mlp_contenders.HandwrittenJaxMLP(spec.loss, weights, batches)
    bad = WrongJax(spec.loss, weights, batches)
    torch_side = _mlp_contenders.TorchMLP(spec.loss, weights, batches, "cpu")
    report = mlp.check_against_torch([torch_side, good, bad])
    assert report["handwritten-jax-jit"]["ok"], report
    assert not report["buggy"]["ok"], report


def test_targets_and_verdicts() -> None:
    """pnn-numpy: PyTorch and hand-written NumPy targets; pnn-torch-cpu: the PyTorch target;
    pnn-jax-train_step: 0.8 x the hand-written jax.jit step; judged on paired ratios."""
    names_seconds = {
        "pytorch-cpu": 1.0,
        "handwritten-numpy": 0.5,
        "handwritten-jax-jit": 0.5,
        "pnn-numpy": 0.52,  # 1.92 x PyTorch, 0.96 x hand
        "pnn-torch-cpu": 1.2,  # 0.83 x PyTorch: misses 0.9
        "pnn-jax": 5.0,  # eager: no target
        "pnn-jax-train_step": 0.6,  # 0.83 x hand-written jit: meets 0.8
    }
    measured = {
        name: _timing.Measurement(name, 1, 10, seconds=[s, s]) for name, s in names_seconds.items()
    }
    args = mlp.parse_args(["--backend", "numpy,torch,jax"])
    compiled = {"handwritten-jax-jit": True, "pnn-jax-train_step": True}
    rows = {r["contender"]: r for r in mlp.summarise(mlp.MODELS["small"], measured, args, compiled)}
    assert rows["pnn-numpy"]["meets_target"] is True
    assert rows["pnn-torch-cpu"]["target_ratio_to_pytorch"] == 0.9
    assert rows["pnn-torch-cpu"]["meets_target"] is False
    assert "target_ratio_to_handwritten" not in rows["pnn-torch-cpu"]
    jit = rows["pnn-jax-train_step"]
    assert jit["target_ratio_to_handwritten"] == mlp.JAX_JIT_TARGET == 0.8
    assert jit["meets_target"] is True and jit["compiled"] is True
    assert "target_ratio_to_pytorch" not in jit
    assert "meets_target" not in rows["pnn-jax"] and rows["pnn-jax"]["compiled"] is False
    table = mlp.format_table(list(rows.values()))
    assert "PyTorch>=0.9 MISS" in table and "hand>=0.8 ok" in table
    assert "PyTorch>=0.9 ok, hand>=0.9 ok" in table
    tiny = mlp.summarise(mlp.MODELS["tiny"], measured, args)
    assert {r["contender"]: r.get("target_ratio_to_pytorch") for r in tiny}["pnn-torch-cpu"] == 3
    quick = mlp.summarise(mlp.MODELS["small"], measured, mlp.parse_args(["--quick"]))
    assert not any("meets_target" in r for r in quick)


def test_interleaved_timing_rotates_and_counts() -> None:
    calls: list[str] = []
    contenders = [
        _timing.Contender(name, (lambda n=name: calls.append(n)), items=4) for name in "abc"
    ]
    results = _timing.run_interleaved(contenders, repeats=3, min_time=0.0, warmup=1, steps=2)
    assert calls[:3] == ["a", "b", "c"]  # warmup, then timed repeats in rotating order
    assert calls[3:] == [*"aabbcc", *"bbccaa", *"ccaabb"]
    for m in results.values():
        assert m.steps_per_repeat == 2 and len(m.seconds) == 3
        assert m.median_throughput == pytest.approx(4 / m.median_seconds, rel=0.5)


def test_calibrate_reaches_min_time() -> None:
    import time

    n = _timing.calibrate(lambda: time.sleep(0.002), _timing.no_sync, min_time=0.02)
    assert 5 <= n <= 40
    with pytest.raises(ValueError, match="repeats"):
        _timing.run_interleaved([], repeats=0, min_time=0.0)


def test_ratios_and_spread() -> None:
    a = _timing.Measurement("a", 1, 10, seconds=[1.0, 2.0, 4.0])  # 10, 5, 2.5 items/s
    b = _timing.Measurement("b", 1, 10, seconds=[2.0, 2.0, 2.0])  # 5 items/s
    assert a.median_throughput == 5.0
    assert a.spread == pytest.approx((10 - 2.5) / 5)
    assert _timing.paired_ratio(a, b) == 1.0  # 2, 1, 0.5
    assert _timing.ratio(1.0, 0.0) != _timing.ratio(1.0, 0.0)  # NaN
