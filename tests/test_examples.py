"""The examples, the plotting helpers and the ``python -m portable_nn`` demo, end to end.

Each example's ``run`` trains on the backend of the ``backend`` fixture (XOR, spirals,
optimizers, activations) with small sizes, and the tests check what the example claims: XOR
all four right, spirals linear < 70% and MLP >= 95% on held-out points, optimizer paths equal
to their closed forms, derivatives equal to central differences, digits >= 97%.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import portable_nn as pnn

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is not installed (pip install 'portable-nn[plot]')",
)
needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None,
    reason="scikit-learn is not installed (the digits data; pip install 'portable-nn[examples]')",
)


@cache
def example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (its folder on sys.path for ``_common``)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"pnn_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path: str | os.PathLike | None) -> None:
    assert path is not None and os.path.getsize(path) > 1000, path
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC


# -- XOR ---------------------------------------------------------------------------------------
def test_xor_learns_all_four(backend) -> None:
    result = example("xor").run(epochs=100)
    assert result["backend"] == backend.name
    outputs, targets = np.array(result["outputs"]), np.array(result["targets"])
    assert outputs.shape == (4,) and np.all((outputs > 0.0) & (outputs < 1.0))
    assert np.array_equal(outputs > 0.5, targets > 0.5), outputs
    assert result["correct"] and result["loss"] < 0.1


@needs_matplotlib
def test_xor_cli_sigmoid_hidden_and_figure(tmp_path, capsys) -> None:
    result = example("xor").main(
        ["--backend", "numpy", "--hidden", "sigmoid", "--out", str(tmp_path)]
    )
    assert result["correct"], result["outputs"]
    assert_png(tmp_path / "xor_decision_boundary.png")
    assert "all four correct: True" in capsys.readouterr().out


# -- two spirals -------------------------------------------------------------------------------
def test_spiral_linear_fails_mlp_separates(backend) -> None:
    result = example("spiral").run(epochs=80, batch_size=400, learning_rate=0.03)  # as --quick
    assert result["linear_accuracy"] < 0.70, result
    assert result["mlp_accuracy"] >= 0.95, result


@needs_matplotlib
def test_spiral_data_and_cli_figure(tmp_path) -> None:
    spiral = example("spiral")
    x, y = spiral.make_spirals(50, seed=3)
    assert x.shape == (100, 2) and y.shape == (100, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(np.sort(np.unique(y)), [0.0, 1.0])
    assert np.abs(x).max() < 1.3
    np.testing.assert_array_equal(x, spiral.make_spirals(50, seed=3)[0])  # seeded
    result = spiral.main(["--backend", "numpy", "--quick", "--out", str(tmp_path)])
    assert result["mlp_accuracy"] >= 0.95
    assert_png(tmp_path / "spiral_decision_boundary.png")


# -- optimizers on x^2 -------------------------------------------------------------------------
def reference_paths(steps: int, lr: float = 0.01, adam_lr: float = 0.1, x: float = 5.0) -> dict:
    """The same three optimizers written out in float64 Python (torch.optim's formulas)."""
    gd = [x * (1.0 - 2.0 * lr) ** t for t in range(steps + 1)]
    momentum, p, buf = [x], x, 0.0
    for _ in range(steps):
        buf = 0.9 * buf + 2.0 * p
        p -= lr * buf
        momentum.append(p)
    adam, p, m, v = [x], x, 0.0, 0.0
    for t in range(1, steps + 1):
        g = 2.0 * p
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        p -= adam_lr * (m / (1.0 - 0.9**t)) / (math.sqrt(v / (1.0 - 0.999**t)) + 1e-8)
        adam.append(p)
    return {"gradient descent": gd, "momentum 0.9": momentum, "Adam": adam}


def test_optimizers_follow_their_formulas_to_zero(backend) -> None:
    result = example("optimizers").run(steps=200)
    expected = reference_paths(200)
    for name, path in result["paths"].items():
        np.testing.assert_allclose(path, expected[name], rtol=1e-3, atol=1e-5, err_msg=name)
    final = result["final"]
    assert set(final) == {"gradient descent", "momentum 0.9", "Adam"}
    assert final["gradient descent"] < 0.1  # 5 * 0.98**200 = 0.088
    assert final["momentum 0.9"] < 1e-3 and final["Adam"] < 1e-2
    assert final["momentum 0.9"] < final["gradient descent"]


@needs_matplotlib
def test_optimizers_cli_writes_the_figure(tmp_path, capsys) -> None:
    out = tmp_path / "new" / "folder"
    result = example("optimizers").main(["--backend", "numpy", "--steps", "60", "--out", str(out)])
    assert len(result["paths"]["Adam"]) == 61
    assert_png(out / "optimizers.png")
    assert "final |x|" in capsys.readouterr().out


# -- activations -------------------------------------------------------------------------------
def test_activation_derivatives_match_central_differences(backend) -> None:
    result = example("activations").run(num=64)
    assert result["names"] == list(pnn.functional.ACTIVATIONS)
    for name, error in result["errors"].items():
        assert error < 1e-6, (name, error)


def test_activation_curves_values(backend) -> None:
    x = backend.asarray(np.linspace(-3.0, 3.0, 7), "float32")
    curves = pnn.plot.activation_curves(x, ["relu", "sigmoid", "softmax"])
    relu, relu_grad = (backend.to_numpy(a) for a in curves["relu"])
    np.testing.assert_array_equal(relu, np.maximum(np.linspace(-3.0, 3.0, 7), 0.0))
    np.testing.assert_array_equal(relu_grad, [0, 0, 0, 0, 1, 1, 1])
    s = 1.0 / (1.0 + np.exp(-np.linspace(-3.0, 3.0, 7)))
    for name in ("sigmoid", "softmax"):  # softmax([x, 0])[0] is sigmoid(x)
        f, df = (backend.to_numpy(a) for a in curves[name])
        np.testing.assert_allclose(f, s, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(df, s * (1.0 - s), rtol=1e-5, atol=1e-7)
    backend.assert_same_place(curves["softmax"][1])


@needs_matplotlib
def test_activations_cli_writes_the_grid(tmp_path) -> None:
    result = example("activations").main(["--backend", "numpy", "--quick", "--out", str(tmp_path)])
    assert_png(result["figure"])
    assert Path(result["figure"]) == tmp_path / "activations.png"


# -- digits ------------------------------------------------------------------------------------
@needs_matplotlib
@needs_sklearn
def test_digits_reaches_target_on_numpy(tmp_path) -> None:
    result = example("digits").run("numpy", epochs=10, article_epochs=5, out=str(tmp_path))
    assert result["mlp_accuracy"] >= 0.97, result["mlp_accuracy"]
    assert result["article_accuracy"] >= 0.90, result["article_accuracy"]
    assert len(result["epoch_times"]) == 10 and result["epoch_time"] > 0.0
    for path in result["figures"]:
        assert_png(path)


@needs_sklearn
def test_digits_torch_matches_numpy_on_a_short_run() -> None:
    pytest.importorskip("torch")
    digits = example("digits")
    runs = [digits.run(name, epochs=2, article_epochs=1) for name in ("numpy", "torch")]
    assert runs[1]["backend"] == "torch"
    for key in ("mlp_accuracy", "article_accuracy"):
        assert runs[0][key] > 0.85 and abs(runs[0][key] - runs[1][key]) <= 0.01, key
    # same seeds: same initial weights, batches and dropout masks on both libraries
    losses = [r["history"]["loss"] for r in runs]  # float32 sums drift apart slowly
    np.testing.assert_allclose(losses[0][0], losses[1][0], rtol=1e-3)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-2)


# -- cnn_digits --------------------------------------------------------------------------------
@needs_sklearn
def test_cnn_digits_short_run_on_every_backend(backend) -> None:
    """Two epochs of the residual CNN (functional API, Conv2D, BatchNorm, Add, pooling)."""
    result = example("cnn_digits").run(epochs=2, seeds=(0,))
    assert result["backend"] == backend.name
    assert result["accuracies"][0] > 0.85, result["accuracies"]


@pytest.mark.slow
@needs_matplotlib
@needs_sklearn
def test_cnn_digits_reaches_the_target_over_three_seeds(tmp_path) -> None:
    """The issue's target: mean test accuracy over seeds 0-2 >= 98.5 %, each seed < 60 s."""
    result = example("cnn_digits").run("numpy", epochs=20, out=str(tmp_path))
    assert result["mean_accuracy"] >= 0.985, result["accuracies"]
    assert max(result["seconds"]) < 60.0, result["seconds"]
    for path in result["figures"]:
        assert_png(path)


# -- pnn.plot ----------------------------------------------------------------------------------
@needs_matplotlib
def test_plot_history_from_dict_and_history(tmp_path) -> None:
    logs = {"loss": [1.0, 0.5, 0.25], "val_loss": [1.1, 0.7, 0.4], "accuracy": [0.5, 0.7, 0.9]}
    fig = pnn.plot.history(logs, tmp_path / "h.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert [line.get_label() for line in fig.axes[0].lines] == ["loss", "val_loss"]
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), [1, 2, 3])
    assert_png(tmp_path / "h.png")
    history = pnn.History()
    history.on_train_begin()
    for epoch, value in enumerate([0.3, 0.2]):
        history.on_epoch_end(epoch, {"loss": value, "mae": value / 2})
    fig = pnn.plot.history(history, metrics=["loss"])
    assert len(fig.axes) == 1 and list(fig.axes[0].lines[0].get_ydata()) == [0.3, 0.2]
    model = pnn.Sequential([pnn.layers.Dense(1, input_dim=2)])
    model.history = history  # as fit leaves it
    assert [ax.get_title() for ax in pnn.plot.history(model).axes] == ["loss", "mae"]


def test_plot_history_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="not in the history"):
        pnn.plot.history({"loss": [1.0]}, metrics=["accuracy"])
    with pytest.raises(ValueError, match="empty"):
        pnn.plot.history({"loss": []})
    with pytest.raises(TypeError, match="History or a dict"):
        pnn.plot.history([1.0, 2.0])


@needs_matplotlib
def test_plot_decision_boundary_multiclass_and_checks(tmp_path) -> None:
    x = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=np.float32)
    labels = np.array([0, 1, 2, 2])
    model = pnn.Sequential([pnn.layers.Dense(3, input_dim=2)])
    fig = pnn.plot.decision_boundary(model, x, labels, tmp_path / "b.png", resolution=20)
    assert "accuracy" in fig.axes[0].get_title()
    assert_png(tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        pnn.plot.decision_boundary(model, np.zeros((4, 3), np.float32), labels)
    with pytest.raises(ValueError, match="labels"):
        pnn.plot.decision_boundary(model, x, labels[:3])


def test_plot_without_matplotlib_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"portable-nn\[plot\]"):
        pnn.plot.history({"loss": [1.0]})


# -- python -m portable_nn ---------------------------------------------------------------------
def test_demo_help(capsys) -> None:
    from portable_nn.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--backend", "--epochs", "--batch-size", "--seed", "--out"):
        assert flag in text


@needs_matplotlib
@needs_sklearn
def test_demo_subprocess_reaches_target(tmp_path) -> None:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, "-m", "portable_nn", "--epochs", "8", "--out", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"backend (numpy|cupy) \(device", out), out
    accuracy = float(re.search(r"test accuracy: ([\d.]+)%", out).group(1))
    assert accuracy >= 97.0, out
    assert re.search(r"wall time: [\d.]+ s training", out), out
    assert "Epoch 8/8" in out  # the progress bar
    assert_png(tmp_path / "portable_nn_demo.png")


@needs_sklearn
def test_demo_without_matplotlib_skips_the_figure(tmp_path, monkeypatch, capsys) -> None:
    from portable_nn.__main__ import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out = tmp_path / "curves.png"
    assert main(["--backend", "numpy", "--epochs", "1", "--verbose", "0", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "not drawn" in text and "portable-nn[plot]" in text
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [(["--backend", "tensorflow"], "invalid choice"), (["--epochs", "0"], "positive integer")],
)
def test_demo_bad_flags_are_argparse_errors(argv, message, capsys) -> None:
    from portable_nn.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_demo_unusable_backend_exits_2_with_the_reason(capsys) -> None:
    from portable_nn.__main__ import main
    from portable_nn.backend import cuda_problem

    if cuda_problem() is None:
        pytest.skip("CuPy works here")
    assert main(["--backend", "cupy", "--epochs", "1"]) == 2
    assert "backend 'cupy' is not usable" in capsys.readouterr().err


# -- sequence_lstm (the adding problem) ----------------------------------------------------------
def test_sequence_lstm_short_run_on_every_backend(backend) -> None:
    """T = 10, 8 epochs: the gated layers find the marked values (GRU < 0.01, LSTM < 0.03) and
    every model beats the constant predictor (~0.15)."""
    sizes = {"epochs": 8, "length": 10, "units": 16, "n_train": 2048, "n_test": 256}
    result = example("sequence_lstm").run(**sizes)
    assert result["backend"] == backend.name
    mse = result["mse"]
    assert mse["gru"] < 0.01 and mse["lstm"] < 0.03, mse
    assert mse["simplernn"] < result["constant_mse"], mse
    assert len(result["history"]["lstm"]["val_loss"]) == 8


@pytest.mark.slow
@needs_matplotlib
def test_sequence_lstm_meets_the_target(tmp_path) -> None:
    """The issue's target at T = 50: LSTM and GRU test MSE < 0.01; the SimpleRNN stays within
    half of the constant predictor's error or above (it fails)."""
    result = example("sequence_lstm").run("numpy", out=str(tmp_path))
    mse = result["mse"]
    assert mse["lstm"] < 0.01 and mse["gru"] < 0.01, mse
    assert mse["simplernn"] > 0.5 * result["constant_mse"], mse
    assert_png(result["figure"])


# -- transformer (sorting digits) ----------------------------------------------------------------
def test_transformer_short_run_on_every_backend(backend) -> None:
    """A narrower encoder (width 32), 4 epochs of 4,096 sequences: >= 95 % per token."""
    result = example("transformer").run(
        epochs=4, seeds=(0,), n_train=4096, n_test=256, sizes={"dim": 32, "heads": 4, "ff": 64}
    )
    assert result["backend"] == backend.name
    assert result["accuracies"][0] >= 0.95, result["accuracies"]
    assert result["sequence_accuracies"][0] <= result["accuracies"][0]


@pytest.mark.slow
@needs_matplotlib
def test_transformer_meets_the_target(tmp_path) -> None:
    """The issue's target: >= 97 % per-token test accuracy on every seed 0-2, each within
    5 minutes on NumPy; the attention figure is written."""
    result = example("transformer").run("numpy", out=str(tmp_path))
    assert min(result["accuracies"]) >= 0.97, result["accuracies"]
    assert max(result["seconds"]) < 300.0, result["seconds"]
    assert_png(result["figure"])


# -- sklearn_pipeline (portable_nn.sklearn in Pipeline / GridSearchCV, array-API inputs) ---------
def run_sklearn_pipeline(*flags: str) -> str:
    """The example in a fresh process: it sets SCIPY_ARRAY_API=1 before SciPy is imported,
    which an in-process import cannot do once the tests have loaded SciPy."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "sklearn_pipeline.py"), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return done.stdout


@needs_sklearn
def test_sklearn_pipeline_quick_grid_search_and_torch_tensors() -> None:
    out = run_sklearn_pipeline("--quick")
    assert re.search(r"best \{'mlpclassifier__alpha': ", out), out
    accuracy = float(re.search(r"NumPy: cross-validated [\d.]+, test ([\d.]+)", out).group(1))
    assert accuracy > 0.85, out
    if importlib.util.find_spec("torch") is None:
        assert "torch: not installed, skipped" in out, out
    else:  # predict hands back a torch tensor, and the network learnt as on NumPy
        found = re.search(r"torch: predict returned torch\.Tensor .*test accuracy ([\d.]+)", out)
        assert found is not None, out
        assert abs(float(found.group(1)) - accuracy) <= 0.02, out
    assert "CuPy: " in out


@pytest.mark.slow
@needs_sklearn
def test_sklearn_pipeline_full_run_reaches_97_percent() -> None:
    out = run_sklearn_pipeline()
    accuracy = float(re.search(r"NumPy: cross-validated [\d.]+, test ([\d.]+)", out).group(1))
    assert accuracy >= 0.97, out
