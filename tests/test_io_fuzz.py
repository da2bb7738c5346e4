"""Fuzzing the checkpoint loaders with corrupted files (a seeded generator, so every run and every
failure is reproducible: the case index names it).

Every case is a file derived from a real checkpoint: truncated anywhere, bytes flipped in the
header, the data or anywhere, a huge/negative/wrong header length, overlapping tensors, wrong
dtype strings, deeply nested or huge JSON in the header and in every metadata field, randomly
mutated or byte-flipped configs, configs asking for enormous layers, another model's valid file.
For each, ``pnn.load_weights`` (into a built model) and ``pnn.load_model`` must either load (a
flipped data byte may still be a valid file) or raise ``ValueError`` naming the file — never
another exception — within a second; a failed ``load_weights`` leaves the model bitwise
unchanged, and cases that cannot be valid must fail. A few hundred cases run by default, 10,000
under ``slow``.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import portable_nn as pnn
from portable_nn import io as pio
from portable_nn.layers import BatchNormalization, Dense, Dropout, ReLU

SEED = 20240607
JSON_FIELDS = ("model_config", "compile_config", "optimizer_state", "training_state")
SCALAR_FIELDS = ("format", "format_version", "content", "model_class")
MAX_SECONDS = 1.0


# -- the checkpoints the cases start from -------------------------------------------------------
def _model(seed: int, units: int = 5) -> pnn.Sequential:
    pnn.seed(seed)
    model = pnn.Sequential(
        [Dense(units, input_shape=(3,)), BatchNormalization(), ReLU(), Dropout(0.3), Dense(2)]
    )
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    return model


class Base:
    """A saved model and its weights (bytes, tensors, metadata, raw header), another model's
    files, and a built target model for ``load_weights``."""

    def __init__(self, folder: Path) -> None:
        with pnn.use_backend("numpy"):
            model = _model(0)
            x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
            model.train_step(x, np.zeros((8, 2), np.float32))
            other = _model(1, units=7)
            other.build((None, 3))
            files = {
                "model": lambda p: pio.save_model(model, p),
                "weights": lambda p: pio.save_weights(model, p),
                "other model": lambda p: pio.save_model(other, p),
                "other weights": lambda p: pio.save_weights(other, p),
            }
            self.raw: dict[str, bytes] = {}
            for name, save in files.items():
                save(folder / "base")
                self.raw[name] = (folder / "base").read_bytes()
            (folder / "base").write_bytes(self.raw["model"])
            self.tensors = pio.load_tensors(folder / "base", backend="numpy")
            self.metadata = pio.read_metadata(folder / "base")
            self.target = _model(2)
            self.target.build((None, 3))
        self.snapshot = self.target.state_dict()
        self.values = {k: np.array(v).tobytes() for k, v in self.snapshot.items()}

    def header(self, kind: str = "model") -> tuple[dict, bytes]:
        raw = self.raw[kind]
        n = int.from_bytes(raw[:8], "little")
        return json.loads(raw[8 : 8 + n]), raw[8 + n :]

    def with_metadata(self, **fields: str) -> bytes:
        return safetensors.numpy.save(self.tensors, {**self.metadata, **fields})

    def reset_target(self) -> None:
        """After a load that succeeded (a valid mutated file), put the original arrays back."""
        self.target.load_state_dict(dict(self.snapshot))


def _encode(header: dict | str, data: bytes, length: int | None = None) -> bytes:
    text = (header if isinstance(header, str) else json.dumps(header)).encode()
    text += b" " * (-len(text) % 8)
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


def _nested(rng: np.random.Generator) -> str:
    depth = int(rng.choice([33, 40, 200, 1000, 5000, 100_000]))
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# -- case generators: (file bytes, must load_weights fail, must load_model fail) ------------------
Case = tuple[bytes, bool, bool]


def truncate(base: Base, rng: np.random.Generator) -> Case:
    raw = base.raw[str(rng.choice(["model", "weights"]))]
    return raw[: int(rng.integers(0, len(raw)))], True, True


def _flip(raw: bytes, rng: np.random.Generator, low: int, high: int) -> bytes:
    out = bytearray(raw)
    for _ in range(int(rng.integers(1, 4))):
        out[int(rng.integers(low, high))] = int(rng.integers(0, 256))
    return bytes(out)


def flip_header(base: Base, rng: np.random.Generator) -> Case:
    raw = base.raw["model"]
    return _flip(raw, rng, 8, 8 + int.from_bytes(raw[:8], "little")), False, False


def flip_data(base: Base, rng: np.random.Generator) -> Case:
    raw = base.raw[str(rng.choice(["model", "weights"]))]
    return _flip(raw, rng, 8 + int.from_bytes(raw[:8], "little"), len(raw)), False, False


def flip_anywhere(base: Base, rng: np.random.Generator) -> Case:
    raw = base.raw["model"]
    return _flip(raw, rng, 0, len(raw)), False, False


def header_length(base: Base, rng: np.random.Generator) -> Case:
    raw = base.raw["model"]
    n = int.from_bytes(raw[:8], "little")
    choices = [2**64 - 1, 2**63, 2**64 - n, 2**32, 0, 1, 7, len(raw), n + 1, n + 8, n - 8]
    value = (
        choices[int(rng.integers(len(choices)))] if rng.random() < 0.7 else int(rng.integers(2**63))
    )
    return value.to_bytes(8, "little") + raw[8:], True, True


def overlap(base: Base, rng: np.random.Generator) -> Case:
    header, data = base.header()
    names = sorted(
        (k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"]
    )
    name = names[int(rng.integers(1, len(names)))]
    begin, end = header[name]["data_offsets"]
    shift = int(rng.integers(1, begin + 1))  # moves into the previous tensor, keeps its length
    header[name]["data_offsets"] = [begin - shift, end - shift]
    return _encode(header, data), True, True


def wrong_dtype(base: Base, rng: np.random.Generator) -> Case:
    header, data = base.header()
    names = [k for k in header if k != "__metadata__"]
    name = names[int(rng.integers(0, len(names)))]
    codes = ["F64", "F16", "BF16", "I32", "U32", "I64", "U8", "BOOL", "F8_E4M3", "C64", "f32", "",
             "X" * 1000, "F32 ", "\u00e9"]  # fmt: skip
    header[name]["dtype"] = str(rng.choice(codes))
    optimizer = name.startswith("optimizer/")
    return _encode(header, data), not optimizer, True


def nested_header(base: Base, rng: np.random.Generator) -> Case:
    text = json.dumps(base.header()[0])
    junk = _nested(rng)
    where = int(rng.integers(0, 3))
    if where == 0:  # a new top-level entry
        text = text[:-1] + f', "junk": {junk}}}'
    elif where == 1:  # inside the metadata
        text = text.replace('"__metadata__": {', f'"__metadata__": {{"junk": {junk}, ', 1)
    else:  # as a tensor's shape
        text = text.replace('"shape": [', f'"shape": [{junk}, ', 1)
    return _encode(text, base.header()[1]), True, True


def huge_header(base: Base, rng: np.random.Generator) -> Case:
    header, data = base.header()
    count = int(rng.choice([5_000, 20_000, 40_000]))
    prefix = str(rng.choice(["junk", "optimizer/0.weight.junk", "0.weight."]))
    for i in range(count):
        header[f"{prefix}{i}"] = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
    weights_may_load = prefix.startswith("optimizer/")
    if rng.random() < 0.3:  # past the header limit as well
        header["__metadata__"]["pad"] = "x" * (2 * 2**20)
    return _encode(header, data), not weights_may_load, True


def huge_metadata_value(base: Base, rng: np.random.Generator) -> Case:
    size = int(rng.choice([2**16, 2**19, 2**20 + 1, 3 * 2**20]))
    field = str(rng.choice([*JSON_FIELDS, "extra"]))
    value = str(rng.choice(["string", "list", "layers", "valid"]))
    if value == "string":
        text = json.dumps("x" * size)
    elif value == "list":
        text = "[" + ",".join(["0"] * (size // 2)) + "]"
    elif value == "layers":
        text = json.dumps({"layers": [{"class_name": "ReLU", "config": {}}] * (size // 34)})
    else:  # a valid config with a huge name: loads if under the limits
        text = json.dumps({**json.loads(base.metadata["model_config"]), "name": "n" * size})
    # training_state ignores unknown keys, so {"layers": [...]} there is a valid (odd) value
    must = field != "extra" and value != "valid" and (field, value) != ("training_state", "layers")
    return base.with_metadata(**{field: text}), False, must


def nested_field(base: Base, rng: np.random.Generator) -> Case:
    field = str(rng.choice(JSON_FIELDS))
    junk = _nested(rng)
    if rng.random() < 0.5:  # inside an otherwise valid value (every field is a JSON object)
        text = base.metadata[field][:-1] + f', "junk": {junk}}}'
    else:
        text = junk
    return base.with_metadata(**{field: text}), False, True


JUNK: list[object] = [None, True, False, 0, -1, 1, 2**31, 2**70, 10**300, -(10**30), 0.5, -0.0,
                      1e308, -1e308, float("nan"), float("inf"), "", "x", "zeros", "Sequential",
                      "Dense", "adam", [], {}, [1, 2], [None], {"a": 1},
                      {"class_name": "Dense", "config": {"units": 10**9}},
                      {"class_name": "Sequential", "config": {"layers": []}},
                      {"class_name": "Nope", "config": {}}, {"config": {}},
                      [[[[[[1]]]]]]]  # fmt: skip


def _mutate(value: object, rng: np.random.Generator) -> object:
    """``value`` with one randomly chosen node (a dict entry or list item) replaced by junk."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = list(value)[int(rng.integers(0, len(value)))]
        return {**value, key: _mutate(value[key], rng)}
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = int(rng.integers(0, len(value)))
        return [*value[:i], _mutate(value[i], rng), *value[i + 1 :]]
    return JUNK[int(rng.integers(0, len(JUNK)))]


def mutate_field(base: Base, rng: np.random.Generator) -> Case:
    field = str(rng.choice(JSON_FIELDS))
    value = json.loads(base.metadata[field])
    for _ in range(int(rng.integers(1, 4))):
        value = _mutate(value, rng)
    return base.with_metadata(**{field: json.dumps(value)}), False, False


def flip_field(base: Base, rng: np.random.Generator) -> Case:
    field = str(rng.choice(JSON_FIELDS))
    text = bytearray(base.metadata[field].encode())
    for _ in range(int(rng.integers(1, 3))):
        text[int(rng.integers(0, len(text)))] = int(rng.integers(32, 127))
    return base.with_metadata(**{field: text.decode()}), False, False


def cut_field(base: Base, rng: np.random.Generator) -> Case:
    field = str(rng.choice(JSON_FIELDS))
    text = base.metadata[field]
    return base.with_metadata(**{field: text[: int(rng.integers(0, len(text) - 1))]}), False, True


def enormous_layer(base: Base, rng: np.random.Generator) -> Case:
    config = json.loads(base.metadata["model_config"])
    size = int(10 ** rng.integers(2, 16))
    layers = config["layers"]
    choice = int(rng.integers(0, 4))
    if choice == 0:
        layers[0]["config"]["units"] = size
    elif choice == 1:
        layers[0]["config"]["input_shape"] = [size]
    elif choice == 2:
        layers.append({"class_name": "Dense", "config": {"units": size}})
    else:
        layers.insert(0, {"class_name": "Reshape", "config": {"target_shape": [size]}})
    return base.with_metadata(model_config=json.dumps(config)), False, True


def scalar_field(base: Base, rng: np.random.Generator) -> Case:
    field = str(rng.choice(SCALAR_FIELDS))
    values = ["", "0", "1", "2", "99999999999", "-1", "weights", "model", "Dense", "ReLU",
              "Sequential", "portable_nn", "x" * 100_000, "\u0661"]  # fmt: skip
    value = str(rng.choice(values))
    return base.with_metadata(**{field: value}), False, False


def other_model(base: Base, rng: np.random.Generator) -> Case:
    return base.raw[str(rng.choice(["other model", "other weights"]))], True, False


KINDS: list[Callable[[Base, np.random.Generator], Case]] = [
    truncate, flip_header, flip_data, flip_anywhere, header_length, overlap, wrong_dtype,
    nested_header, huge_header, huge_metadata_value, nested_field, mutate_field, flip_field,
    cut_field, enormous_layer, scalar_field, other_model,
]  # fmt: skip
RARE = {huge_header: 10, huge_metadata_value: 4}  # slow to build: one case in N of their turns


def _kind(i: int) -> Callable[[Base, np.random.Generator], Case]:
    kind = KINDS[i % len(KINDS)]
    turn = i // len(KINDS)
    if kind in RARE and turn % RARE[kind] != 0:
        return KINDS[(i + 1) % len(KINDS)]  # its neighbour takes the turn
    return kind


# -- running the cases ----------------------------------------------------------------------------
def _outcome(load: Callable[[], object], path: Path) -> tuple[str, float]:
    start = time.perf_counter()
    try:
        load()
        outcome = "loaded"
    except ValueError as exc:  # naming the file
        outcome = "ValueError" if repr(str(path)) in str(exc) else f"ValueError: {str(exc)[:200]}"
    except Exception as exc:  # the property under test: nothing but ValueError escapes
        outcome = f"{type(exc).__name__}: {str(exc)[:200]}"
    return outcome, time.perf_counter() - start


def _run(tmp_path: Path, count: int) -> None:
    base = Base(tmp_path)
    path = tmp_path / "case.safetensors"
    problems, kinds, outcomes, slowest = [], Counter(), Counter(), (0.0, "")
    with pnn.use_backend("numpy"):
        for i in range(count):
            kind = _kind(i)
            raw, weights_must_fail, model_must_fail = kind(base, np.random.default_rng([SEED, i]))
            path.write_bytes(raw)
            kinds[kind.__name__] += 1
            label = f"case {i} ({kind.__name__})"
            for loader, must_fail, load in [
                ("load_weights", weights_must_fail, lambda: pio.load_weights(base.target, path)),
                ("load_model", model_must_fail, lambda: pio.load_model(path)),
            ]:
                outcome, seconds = _outcome(load, path)
                outcomes[f"{loader} {outcome[:10]}"] += 1
                slowest = max(slowest, (seconds, f"{label} {loader}"))
                if outcome not in ("loaded", "ValueError") or seconds > MAX_SECONDS:
                    problems.append(f"{label} {loader}: {outcome} in {seconds:.2f} s")
                elif must_fail and outcome == "loaded":
                    problems.append(f"{label} {loader}: loaded a file that cannot be valid")
            now = base.target.state_dict()
            changed = any(now[k] is not base.snapshot[k] for k in now)
            if changed:  # load_weights succeeded (a valid file): values differ, put them back
                base.reset_target()
            elif any(np.array(now[k]).tobytes() != base.values[k] for k in now):
                problems.append(f"{label}: a failed load_weights changed the model's arrays")
    print(f"{count} cases, max load time {slowest[0]:.3f} s ({slowest[1]}); {dict(outcomes)}")
    print(f"kinds: {dict(kinds)}")
    assert not problems, "\n".join(problems[:20])
    assert set(kinds) == {k.__name__ for k in KINDS}


def test_fuzz_checkpoint_loading_short(tmp_path):
    _run(tmp_path, 340)


@pytest.mark.slow
def test_fuzz_checkpoint_loading_10000(tmp_path):
    _run(tmp_path, 10_000)


def test_enormous_layer_config_allocates_nothing(tmp_path):
    """A config asking for a 50-million-element layer is refused before any array is made."""
    base = Base(tmp_path)
    config = json.loads(base.metadata["model_config"])
    config["layers"][0]["config"]["units"] = 50_000_000 // 3
    path = tmp_path / "big.safetensors"
    path.write_bytes(base.with_metadata(model_config=json.dumps(config)))
    with pnn.use_backend("numpy"):
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match="would take the model past the 52 elements"):
                pio.load_model(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 5 * 2**20, f"peak {peak} bytes while refusing a 200 MB layer"
