"""``fit``/``evaluate`` with ``sample_weight``, ``class_weight`` and weighted validation data
(Keras's rules): the weighted loss and metric formulas, class weights equal to the matching
sample weights, compiled equal to eager, generators of ``(x, y, w)``, one read per epoch, and bad
weights refused before anything changes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import Dense

RNG = np.random.default_rng(3)
X = RNG.standard_normal((48, 4))
LABELS = RNG.integers(0, 3, 48)
CLASS_WEIGHT = {0: 2.0, 2: 0.25}  # class 1 left out: weight 1
WEIGHTS = np.array([CLASS_WEIGHT.get(int(c), 1.0) for c in LABELS])


def host(a: Any) -> np.ndarray:
    return np.asarray(pnn.to_numpy(a))


def classifier(jit: Any = "auto", metrics: Any = ("accuracy",)) -> pnn.Sequential:
    pnn.seed(0)
    model = pnn.Sequential([Dense(8, activation="tanh", seed=1), Dense(3, seed=2)])
    loss = pnn.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(loss=loss, optimizer=pnn.optimizers.SGD(0.1), metrics=list(metrics), jit=jit)
    model.build((None, 4))
    return model


def params(model: pnn.Sequential) -> dict[str, np.ndarray]:
    return {k: host(v).copy() for k, v in model.parameters().items()}


def test_evaluate_gives_the_weighted_formulas(backend) -> None:
    """One batch: loss ``sum w l / N`` (Keras's sum_over_batch_size), accuracy ``sum w hit /
    sum w``; zero weights everywhere give accuracy 0, never NaN."""
    model = classifier()
    x = backend.asarray(X, "float64")
    logits = host(model.predict(x)).astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    losses = -log_p[np.arange(48), LABELS]
    hits = (logits.argmax(axis=1) == LABELS).astype(float)
    found = model.evaluate(X, LABELS, batch_size=48, sample_weight=WEIGHTS)
    np.testing.assert_allclose(found["loss"], (WEIGHTS * losses).sum() / 48, rtol=1e-5)
    np.testing.assert_allclose(found["accuracy"], (WEIGHTS * hits).sum() / WEIGHTS.sum(), rtol=1e-6)
    plain = model.evaluate(X, LABELS, batch_size=48)
    np.testing.assert_allclose(plain["loss"], losses.mean(), rtol=1e-5)
    zero = model.evaluate(X, LABELS, batch_size=16, sample_weight=np.zeros(48))
    assert zero == {"loss": 0.0, "accuracy": 0.0}


def test_class_weight_equals_the_matching_sample_weight(backend) -> None:
    """Same weights, same losses, same history (float64, SGD, no shuffling)."""
    runs = []
    for weights in ({"class_weight": CLASS_WEIGHT}, {"sample_weight": WEIGHTS}):
        with backend.use("float64"):
            model = classifier()
            history = model.fit(
                X, LABELS, epochs=2, batch_size=16, shuffle=False, verbose=0, **weights
            )
        runs.append((params(model), history.history))
    (first, h1), (second, h2) = runs
    for name in first:
        np.testing.assert_allclose(first[name], second[name], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-12)
    unweighted = classifier()
    unweighted.fit(X, LABELS, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert not np.allclose(params(unweighted)["1.weight"], first["1.weight"], atol=1e-4)


def test_class_weight_from_one_hot_and_binary_targets(backend) -> None:
    """One-hot targets weigh by their argmax; a single sigmoid output by the rounded target."""
    one_hot = np.eye(3)[LABELS]
    runs = []
    L = pnn.losses  # noqa: N806
    for targets, loss in (
        (LABELS, L.SparseCategoricalCrossentropy),
        (one_hot, L.CategoricalCrossentropy),
    ):
        model = classifier()
        model.compile(loss=loss(from_logits=True), optimizer=pnn.optimizers.SGD(0.1))
        found = model.evaluate(X, targets, batch_size=48, sample_weight=WEIGHTS)["loss"]
        model.fit(X, targets, epochs=1, batch_size=48, verbose=0, class_weight=CLASS_WEIGHT)
        runs.append((found, params(model)))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
    np.testing.assert_allclose(runs[0][1]["1.weight"], runs[1][1]["1.weight"], rtol=1e-4)
    pnn.seed(0)
    binary = pnn.Sequential([Dense(1, activation="sigmoid", seed=1)])
    binary.compile(loss="binary_crossentropy", optimizer=pnn.optimizers.SGD(0.1))
    targets = (LABELS == 0).astype(float)[:, None]
    binary.build((None, 4))
    before = params(binary)
    binary.fit(X, targets, epochs=1, batch_size=48, verbose=0, class_weight={1: 3.0})
    by_class = params(binary)
    binary.set_parameters({k: pnn.asarray(v) for k, v in before.items()})
    binary.fit(X, targets, epochs=1, batch_size=48, verbose=0, sample_weight=1 + 2 * targets)
    np.testing.assert_allclose(by_class["0.weight"], host(binary.parameters()["0.weight"]))


def test_compiled_step_equals_eager_with_weights() -> None:
    """The JAX compiled step (weights as part of the batch pytree) gives the eager results,
    and a model first fitted without weights then with them compiles both sums."""
    pytest.importorskip("jax")
    runs = []
    with pnn.use_backend("jax"):
        for jit in (False, "auto"):
            model = classifier(jit=jit)
            model.fit(X, LABELS, epochs=1, batch_size=16, shuffle=False, verbose=0)
            history = model.fit(
                X, LABELS, epochs=2, batch_size=16, shuffle=False, verbose=0,
                sample_weight=WEIGHTS, validation_data=(X, LABELS, WEIGHTS),
            )  # fmt: skip
            runs.append((params(model), history.history))
    (eager, h1), (compiled, h2) = runs
    for name in eager:
        np.testing.assert_allclose(eager[name], compiled[name], rtol=1e-5, atol=1e-6)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-5)


def test_weighted_validation_data_and_generators(backend) -> None:
    """``validation_data=(x, y, w)`` logs what ``evaluate(sample_weight=w)`` gives; a generator
    of ``(x, y, w)`` batches trains like the arrays with ``sample_weight``."""
    model = classifier()
    history = model.fit(
        X, LABELS, epochs=1, batch_size=16, verbose=0, validation_data=(X, LABELS, WEIGHTS)
    )
    found = model.evaluate(X, LABELS, batch_size=16, sample_weight=WEIGHTS)
    np.testing.assert_allclose(history.history["val_loss"][0], found["loss"], rtol=1e-5)
    np.testing.assert_allclose(history.history["val_accuracy"][0], found["accuracy"], rtol=1e-6)

    batches = [(X[i : i + 16], LABELS[i : i + 16], WEIGHTS[i : i + 16]) for i in range(0, 48, 16)]
    streamed, arrays = classifier(), classifier()
    streamed.fit(iter(batches), epochs=1, verbose=0)
    arrays.fit(X, LABELS, epochs=1, batch_size=16, shuffle=False, verbose=0, sample_weight=WEIGHTS)
    for name, value in params(arrays).items():
        np.testing.assert_allclose(params(streamed)[name], value, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"sample_weight": -WEIGHTS}, "sample_weight contains negative values"),
        ({"sample_weight": np.where(LABELS == 1, np.nan, 1.0)}, "sample_weight contains NaN"),
        ({"sample_weight": WEIGHTS[:40]}, "different numbers of samples"),
        ({"sample_weight": np.ones((48, 2))}, r"sample_weight must be a float array of shape"),
        ({"class_weight": {3: 1.0}}, "class_weight names class 3"),
        ({"class_weight": {0: -1.0}}, "class_weight"),
        ({"class_weight": {0: 1.0}, "sample_weight": WEIGHTS}, "not both"),
    ],
)
def test_bad_weights_raise_before_anything_changes(backend, weights, message) -> None:
    model = classifier()
    before = params(model)
    with pytest.raises(ValueError, match=message):
        model.fit(X, LABELS, epochs=1, batch_size=16, verbose=0, **weights)
    for name, value in params(model).items():
        np.testing.assert_array_equal(value, before[name])
    assert model.optimizer.iterations == 0


def test_fit_with_weights_reads_one_value_per_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights add nothing to the host reads: the data check once, then one per epoch."""
    torch = pytest.importorskip("torch")
    from test_training import ReadCounter

    counter = ReadCounter(monkeypatch, torch.Tensor)
    with pnn.use_backend("torch"):
        model = classifier()
        x, y = pnn.asarray(X), pnn.asarray(LABELS)
        counter.n = 0
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, class_weight=CLASS_WEIGHT)
    assert counter.n <= 1 + 3, counter.n
