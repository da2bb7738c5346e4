"""Smoke tests of ``benchmarks/mlp.py``, ``cnn.py``, ``rnn.py`` and ``_timing.py``: tiny sizes,
one repeat.

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

import _cnn_contenders  # noqa: E402
import _harness  # noqa: E402
import _mlp_contenders  # noqa: E402
import _rnn_contenders  # noqa: E402
import _timing  # noqa: E402
import cnn  # noqa: E402
import mlp  # noqa: E402
import rnn  # noqa: E402


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


# -- cnn.py -------------------------------------------------------------------------------------


def test_cnn_cli_quick_run_writes_json(tmp_path: Path) -> None:
    """``cnn.py --quick``: every contender passes the check against PyTorch and is timed; the
    JSON has mlp.py's layout plus the model specs, the phases and the time breakdown."""
    out = tmp_path / "cnn.json"
    command = [sys.executable, str(BENCH / "cnn.py"), "--quick", "--phases", "--threads", "1"]
    jax_wanted = _mlp_contenders.jax_unavailable() is None
    backends = "numpy,torch,jax" if jax_wanted else "numpy,torch"
    done = subprocess.run(
        [*command, "--backend", backends, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "samples/s" in done.stdout and "== where the time goes" in done.stdout
    document = json.loads(out.read_text())
    assert document["benchmark"] == "cnn_train_step"
    assert document["settings"]["quick"] is True and document["settings"]["threads"] == 1
    assert document["environment"]["torch_threads"] == 1
    names = {"pytorch-cpu", "handwritten-numpy", "pnn-numpy", "pnn-numpy-train_step"}
    names |= {"pnn-torch-cpu", "pnn-torch-cpu-train_step"}
    if jax_wanted:
        names |= {"pnn-jax", "pnn-jax-train_step"}
    for model in cnn.MODELS:
        specs = document["settings"]["model_specs"][model]
        assert specs["image"] == list(cnn.QUICK_MODELS[model].image)
        rows = {r["contender"]: r for r in document["results"] if r["model"] == model}
        assert set(rows) == names, (model, sorted(rows))
        assert rows["pytorch-cpu"]["ratio_to_pytorch"] == 1.0
        assert rows["pnn-numpy"]["handwritten_reference"] == "handwritten-numpy"
        assert "meets_target" not in rows["pnn-numpy"]  # --quick: no verdicts
        if jax_wanted:
            assert rows["pnn-jax-train_step"]["compiled"] is True
        for row in rows.values():
            assert row["median_items_per_second"] > 0 and len(row["seconds_per_step"]) == 1
        checks = document["correctness"][model]
        assert set(checks) == names - {"pytorch-cpu"}
        assert all(check["ok"] for check in checks.values()), checks
        phases = document["phases"][model]
        assert set(phases["pnn-numpy"]) == {"forward", "loss+gradient", "backward", "optimizer"}
        assert "handwritten-numpy" in phases
        found = document["breakdown"][model]
        assert found["layers"][0]["layer"].startswith("Conv2D")
        for row in found["layers"]:
            assert row["forward_s"][0] > 0 and row["handwritten_backward_s"][0] > 0
        first, second = found["convolutions"]
        assert first["input_grad"] is False and second["input_grad"] is True
        parts = second["parts_s"]
        for part in ("im2col (windows)", "matmul y = cols W", "matmul dW = cols.T dy"):
            assert parts[part][0] > 0, part
        assert "col2im (windows_grad)" in parts and "col2im (windows_grad)" not in first["parts_s"]
        assert "torch convolution_backward" in parts
    assert document["breakdown"]["block"]["convolutions"][0]["parts_s"]["pad"][0] > 0


class _ConvGradientTimesTwo(_cnn_contenders.HandwrittenCNN):
    """The conv weights' gradient twice too large: Adam hides it, the gradient check does not."""

    def _conv_backward(self, dy, cache, layer, p, grads, first):
        dx = super()._conv_backward(dy, cache, layer, p, grads, first)
        grads[p] = 2.0 * grads[p]
        return dx


class _Col2imMissesAnOffset(_cnn_contenders.HandwrittenCNN):
    """col2im without the last kernel offset: the first conv's gradients come out wrong."""

    def _conv_backward(self, dy, cache, layer, p, grads, first):
        w = self.params[p]
        saved = w[-1, -1].copy()
        w[-1, -1] = 0.0  # dcols of offset (kh-1, kw-1) vanish: nothing added back from it
        try:
            return super()._conv_backward(dy, cache, layer, p, grads, first)
        finally:
            w[-1, -1] = saved


class _FlattenInTorchOrder(_cnn_contenders.HandwrittenCNN):
    """Flatten in PyTorch's (c, h, w) order with our (h, w, c) weights."""

    def _layer_forward(self, index, x):
        if self.layers[index].kind == "flatten":
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(x.shape[0], -1), x.shape
        return super()._layer_forward(index, x)

    def _layer_backward(self, index, dy, cache, grads):
        if self.layers[index].kind == "flatten":
            n, h, w, c = cache
            return dy.reshape(n, c, h, w).transpose(0, 2, 3, 1)
        return super()._layer_backward(index, dy, cache, grads)


class _CnnNoBiasCorrection(_cnn_contenders.HandwrittenCNN):
    def _adam(self, grads):
        self.t = 10**6  # 1 - beta**t == 1: the first steps come out ~3x too large
        super()._adam(grads)


class _BatchNormWithoutMeanTerm(_cnn_contenders.HandwrittenCNN):
    """BatchNorm's backward without the ``- mean(dy)`` term."""

    def _bn_backward(self, dy, cache, p, grads):
        dx = super()._bn_backward(dy, cache, p, grads)
        xhat, scale = cache
        return dx + (grads[p + 1] * (1.0 / xhat.shape[0]) * scale).astype(np.float32)


@pytest.mark.parametrize("model", ["lenet", "block"])
@pytest.mark.parametrize(
    "bug",
    [_ConvGradientTimesTwo, _Col2imMissesAnOffset, _FlattenInTorchOrder, _CnnNoBiasCorrection],
)
def test_cnn_correctness_check_catches_wrong_steps(model: str, bug: type) -> None:
    problem = cnn.QUICK_MODELS[model].problem()
    torch_side = _cnn_contenders.TorchCNN(problem, "cpu")
    good = _cnn_contenders.HandwrittenCNN(problem)
    bad = bug(problem)
    bad.name = "buggy"
    report = cnn.check_against_torch([torch_side, good, bad])
    assert report["handwritten-numpy"]["ok"], report
    assert not report["buggy"]["ok"], report


def test_cnn_correctness_check_catches_a_batchnorm_bug() -> None:
    problem = cnn.QUICK_MODELS["block"].problem()
    torch_side = _cnn_contenders.TorchCNN(problem, "cpu")
    bad = _BatchNormWithoutMeanTerm(problem)
    bad.name = "buggy"
    report = cnn.check_against_torch([torch_side, bad])
    assert not report["buggy"]["ok"], report


def test_cnn_wrong_pnn_step_fails_the_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A portable_nn contender whose step is wrong: no timing of that model, exit status 1."""

    class Wrong(_cnn_contenders.PortableCNN):
        def step(self):
            loss = super().step()
            if self.count == 1:  # the checked step: one weight array moved by 1e-2
                key = self.param_keys[0]
                params = self.model.parameters()
                self.model.assign_parameters({key: params[key] + 1e-2})
            return loss

    monkeypatch.setattr(cnn, "PortableCNN", Wrong)
    status = cnn.main(["--quick", "--models", "lenet", "--out", str(tmp_path / "bad.json")])
    assert status == 1
    document = json.loads((tmp_path / "bad.json").read_text())
    assert document["results"] == []
    assert not document["correctness"]["lenet"]["pnn-numpy"]["ok"]


def test_kink_tolerant_check() -> None:
    """Strict element-wise check, or up to kinks: a few weights off where the gradient is tiny
    and gradients within 1e-2 in relative L2 norm pass; a weight off where the gradient is
    large, or a gradient 2x too large, do not."""
    rng = np.random.default_rng(0)
    g = rng.standard_normal(1000).astype(np.float32)
    g[0] = 1e-6  # a tiny gradient: the first Adam step's sign hangs on it
    w = rng.standard_normal(1000).astype(np.float32)

    class Fake:
        name = "fake"
        loss_value = 1.0

        def __init__(self, weights, grads):
            self._w, self._g = weights, grads

        def weights(self):
            return [self._w]

        def grads(self):
            return None if self._g is None else [self._g]

    def check(weights, grads, tolerant=True):
        return _harness.compare(Fake(weights, grads), [w], [g], 1.0, tolerant)

    assert check(w, g)["strict_ok"] and check(w, g)["ok"]
    kink = w.copy()
    kink[0] += 2e-3  # 2 lr: the sign of the tiny gradient flipped
    noisy = g.copy()
    noisy[5] += 0.05  # one misrouted gradient: relative L2 ~ 2e-3
    result = check(kink, noisy)
    assert result["ok"] and not result["strict_ok"] and result["weights_off"] == 1
    assert not check(kink, noisy, tolerant=False)["ok"]
    assert check(kink, None)["ok"]  # train_step: weights only
    large = w.copy()
    large[1] += 2e-3  # where the gradient is large: a real error
    assert not check(large, g)["ok"]
    assert not check(w, 2.0 * g)["ok"]


def test_cnn_targets_and_verdicts() -> None:
    """pnn-numpy*: at least 0.5x PyTorch CPU; no target for the others; none with --quick."""
    names_seconds = {
        "pytorch-cpu": 1.0,
        "handwritten-numpy": 1.2,
        "pnn-numpy": 1.6,  # 0.63 x PyTorch: meets 0.5
        "pnn-numpy-train_step": 2.5,  # 0.4 x PyTorch: misses
        "pnn-torch-cpu": 3.0,  # no target
    }
    measured = {
        name: _timing.Measurement(name, 1, 64, seconds=[s, s]) for name, s in names_seconds.items()
    }
    args = cnn.parse_args(["--backend", "numpy,torch"])
    rows = {r["contender"]: r for r in cnn.summarise(cnn.MODELS["block"], measured, args)}
    assert rows["pnn-numpy"]["target_ratio_to_pytorch"] == 0.5
    assert rows["pnn-numpy"]["meets_target"] is True
    assert rows["pnn-numpy-train_step"]["meets_target"] is False
    assert rows["pnn-numpy"]["ratio_to_handwritten"] == pytest.approx(0.75)
    assert "target_ratio_to_handwritten" not in rows["pnn-numpy"]
    assert "meets_target" not in rows["pnn-torch-cpu"]
    assert "meets_target" not in rows["handwritten-numpy"]
    table = cnn.format_table(list(rows.values()))
    assert "PyTorch>=0.5 ok" in table and "PyTorch>=0.5 MISS" in table
    assert "block 32x32x3 b64" in table
    quick = cnn.summarise(cnn.MODELS["block"], measured, cnn.parse_args(["--quick"]))
    assert not any("meets_target" in r for r in quick)


def test_cnn_weight_layouts_round_trip() -> None:
    """Our (in, out) dense weights after a flatten of (H, W, C) <-> torch's (out, C*H*W)."""
    h, w, c, out = 2, 3, 4, 5
    ours = np.arange(h * w * c * out, dtype=np.float32).reshape(h * w * c, out)
    theirs = _cnn_contenders.dense_to_torch(ours, (h, w, c))
    x = np.random.default_rng(1).standard_normal((h, w, c)).astype(np.float32)
    assert np.allclose(x.reshape(-1) @ ours, theirs @ x.transpose(2, 0, 1).reshape(-1))
    assert np.array_equal(_cnn_contenders.dense_from_torch(theirs, (h, w, c)), ours)
    assert _cnn_contenders.shapes(cnn.MODELS["lenet"].layers, (28, 28, 1))[7] == (256,)
    assert _cnn_contenders.shapes(cnn.MODELS["block"].layers, (32, 32, 3))[9] == (4096,)


# -- rnn.py -------------------------------------------------------------------------------------
def test_rnn_cli_quick_run_writes_json(tmp_path: Path) -> None:
    """``rnn.py --quick``: both models' contenders pass the check against PyTorch (every
    gradient but the attention's key bias, see ``Problem.checked``) and are timed on one
    thread by default."""
    out = tmp_path / "rnn.json"
    jax_wanted = _mlp_contenders.jax_unavailable() is None
    backends = "numpy,torch,jax" if jax_wanted else "numpy,torch"
    command = [sys.executable, str(BENCH / "rnn.py"), "--quick", "--backend", backends]
    done = subprocess.run(
        [*command, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(out.read_text())
    assert document["benchmark"] == "rnn_train_step"
    assert document["settings"]["threads"] == 1 and document["environment"]["torch_threads"] == 1
    names = {"pytorch-cpu", "pnn-numpy", "pnn-numpy-train_step"}
    names |= {"pnn-torch-cpu", "pnn-torch-cpu-train_step"}
    if jax_wanted:
        names |= {"pnn-jax", "pnn-jax-train_step"}
    for model, sizes in rnn.QUICK_MODELS.items():
        assert document["settings"]["model_sizes"][model]["time"] == sizes.time
        rows = {r["contender"]: r for r in document["results"] if r["model"] == model}
        assert set(rows) == names, (model, sorted(rows))
        assert rows["pytorch-cpu"]["ratio_to_pytorch"] == 1.0
        assert "meets_target" not in rows["pnn-numpy"]  # --quick: no verdicts
        if jax_wanted:
            assert rows["pnn-jax-train_step"]["compiled"] is True
        checks = document["correctness"][model]
        assert set(checks) == names - {"pytorch-cpu"}
        assert all(check["ok"] for check in checks.values()), checks
        assert all("max_grad_error_over_scale" in checks[n] for n in ("pnn-numpy", "pnn-torch-cpu"))


@pytest.mark.parametrize("model", ["lstm", "attention"])
@pytest.mark.parametrize("planted", ["weights", "gradient"])
def test_rnn_correctness_check_catches_wrong_steps(model: str, planted: str) -> None:
    """A step that moves one weight array by 1e-2 too much, or reports a gradient of the
    recurrent (or query) weights off by 1 %, fails the check; the honest step passes."""
    problem = _rnn_contenders.make_problem(rnn.QUICK_MODELS[model])
    target = problem.names[1]  # "0.recurrent_weight" / "attention.query_bias"

    class Wrong(_rnn_contenders.PortableModel):
        def step(self):
            loss = super().step()
            if planted == "weights":
                params = self.model.parameters()
                self.model.assign_parameters({target: params[target] + 1e-2})
            else:
                self.last_grads = {**self.last_grads, target: self.last_grads[target] * 1.01}
            return loss

    torch_side = _rnn_contenders.TorchModel(problem, "cpu")
    good = _rnn_contenders.PortableModel("numpy", None, "manual", problem)
    bad = Wrong("numpy", None, "manual", problem)
    bad.name = "wrong"
    report = rnn.check_against_torch([torch_side, good, bad])
    assert report["pnn-numpy"]["ok"], report
    assert not report["wrong"]["ok"], report


def test_rnn_targets_only_for_numpy_at_full_size() -> None:
    args = rnn.parse_args([])
    assert args.threads == 1
    assert rnn.targets_of("pnn-numpy-train_step", args) == {"pytorch": 0.5}
    assert rnn.targets_of("pnn-torch-cpu", args) == {}
    assert rnn.targets_of("pnn-numpy", rnn.parse_args(["--quick"])) == {}


# -- sklearn_mlp.py -----------------------------------------------------------------------------
def test_sklearn_mlp_cli_quick_run_writes_json(tmp_path: Path) -> None:
    """``sklearn_mlp.py --quick``: iris with the three solvers (portable_nn on float64 input
    predicts exactly as scikit-learn), one tiny timed fit per contender, no verdicts."""
    pytest.importorskip("sklearn", reason="the benchmark compares with scikit-learn")
    out = tmp_path / "sklearn-mlp.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "sklearn_mlp.py"), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "== quality" in done.stdout and "== speed" in done.stdout
    document = json.loads(out.read_text())
    assert document["benchmark"] == "sklearn_mlp"
    assert document["settings"]["quick"] is True and document["settings"]["threads"] == 1
    assert document["environment"]["sklearn"]
    quality = document["quality"]
    assert [(r["dataset"], r["solver"]) for r in quality] == [
        ("iris", "adam"),
        ("iris", "sgd"),
        ("iris", "lbfgs"),
    ]
    for row in quality:
        for contender in ("sklearn", "pnn-float64", "pnn-float32", "sklearn-1ulp"):
            assert len(row[contender]["scores"]) == 1, (row["solver"], contender)
        assert row["same_predictions_pnn-float64"] == 1.0, row
        assert row["diff_pnn-float64"] == 0.0 and row["meets_target_pnn-float64"], row
    rows = {r["contender"]: r for r in document["speed"]}
    names = {"sklearn", "pnn-numpy-float64", "pnn-numpy-float32"}
    names |= {"pnn-torch-cpu-float64", "pnn-torch-cpu-float32"}  # torch imports here
    assert set(rows) == names, sorted(rows)
    assert rows["sklearn"]["paired_ratio_to_sklearn"] == 1.0
    for row in rows.values():
        assert row["median_wall_seconds"] > 0 and len(row["wall_seconds"]) == 1
        assert row["median_cpu_seconds"] > 0 and row["n_iter"] == row["max_iter"]
        assert "meets_target" not in row  # --quick: no verdicts


def test_sklearn_mlp_defaults_and_result_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sklearn_mlp

    args = sklearn_mlp.parse_args([])
    assert args.threads == 1 and args.seeds == [0, 1, 2, 3, 4] and args.repeats >= 5
    assert args.solvers == ["adam", "sgd", "lbfgs"] and len(args.datasets) == 5
    assert sklearn_mlp.parse_args(["--quick"]).datasets == ["iris"]
    assert sklearn_mlp.write_json(sklearn_mlp.parse_args(["--quick"]), {}) is None
    monkeypatch.setattr(sklearn_mlp, "RESULTS", tmp_path)
    path = sklearn_mlp.write_json(args, {"benchmark": "sklearn_mlp"})
    assert path.parent == tmp_path
    assert path.name.startswith("sklearn-mlp-cpu-") and path.name.endswith("-threads1.json")
    with pytest.raises(SystemExit):
        sklearn_mlp.parse_args(["--solvers", "newton"])
