"""Safetensors tensor files: round trips on every backend, cross-backend loads, corrupt and
foreign files, atomic writes, and no pickle anywhere."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import io as pio
from portable_nn.io import atomic as atomic_module

PACKAGE = Path(pnn.__file__).parent
OTHER_BACKENDS = [("numpy", None), ("array_api_strict", "device1"), ("torch", "cpu"), ("jax", None)]


def _host_tensors(xp: object) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tensors = {
        "0.weight": rng.standard_normal((3, 4)).astype(np.float32),
        "0.bias": rng.standard_normal(4).astype(np.float32),
        "f64": rng.standard_normal((2, 2)),
        "i32": rng.integers(-5, 5, size=(5,), dtype=np.int32),
        "i64": rng.integers(-(2**40), 2**40, size=(2, 3), dtype=np.int64),
        "u8": rng.integers(0, 255, size=(4,), dtype=np.uint8),
        "mask": rng.random((2, 3)) > 0.5,
        "scalar": np.array(1.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "c64": (rng.standard_normal(3) + 1j * rng.standard_normal(3)).astype(np.complex64),
    }
    if hasattr(xp, "float16"):
        tensors["f16"] = rng.standard_normal(3).astype(np.float16)
    return tensors


def _assert_same(loaded: dict, host: dict[str, np.ndarray]) -> None:
    assert set(loaded) == set(host)
    for name, expected in host.items():
        got = pnn.to_numpy(loaded[name])
        assert got.dtype == expected.dtype, name
        assert got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


# -- round trips -------------------------------------------------------------------------------
def test_round_trip_every_dtype(backend, tmp_path):
    host = _host_tensors(backend.xp)
    arrays = {name: backend.asarray(value) for name, value in host.items()}
    path = tmp_path / "t.safetensors"
    pio.save_tensors(path, arrays, {"note": "hello"})
    loaded = pio.load_tensors(path)
    _assert_same(loaded, host)
    for value in loaded.values():
        backend.assert_same_place(value)
    assert pio.read_metadata(path) == {"note": "hello"}
    assert os.listdir(tmp_path) == ["t.safetensors"]


@pytest.mark.parametrize("target", OTHER_BACKENDS, ids=lambda t: "-".join(filter(None, t)))
def test_cross_backend_load(backend, tmp_path, target):
    name, device = target
    pytest.importorskip({"array_api_strict": "array_api_strict"}.get(name, name))
    host = _host_tensors(backend.xp)
    target_xp = pnn.backend.make_backend(name, device).xp
    if not hasattr(target_xp, "float16"):
        host.pop("f16", None)
    path = tmp_path / "t.safetensors"
    pio.save_tensors(path, {k: backend.asarray(v) for k, v in host.items()})
    with pnn.use_backend(name, device) as active:
        loaded = pio.load_tensors(path)  # the active backend
        explicit = pio.load_tensors(path, backend=pnn.backend.make_backend(name, device))
    for result in (loaded, explicit):
        _assert_same({k: v for k, v in result.items() if k in host}, host)
        for value in result.values():
            assert pnn.backend.namespace_of(value) is active.xp
            assert pnn.backend.namespace_and_device(value)[1] == active.device


def test_safetensors_package_interop(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    host = _host_tensors(np)
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    pio.save_tensors(ours, host, {"k": "v"})
    _assert_same(safetensors_numpy.load_file(str(ours)), host)
    safetensors_numpy.save_file(host, str(theirs), metadata={"k": "v"})
    _assert_same(pio.load_tensors(theirs, backend="numpy"), host)
    assert pio.read_metadata(theirs) == {"k": "v"}


def test_torch_loads_straight_onto_its_device(tmp_path, monkeypatch):
    """The accelerator path (``framework="pt"``, values checked by torch on the device), run on
    the CPU by letting it take the CPU too."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(pio.tensors, "MAPPED_DEVICES", ())
    host = _host_tensors(np)
    path = tmp_path / "t.safetensors"
    pio.save_tensors(path, host)
    loaded = pio.load_tensors(path, backend="torch")
    _assert_same(loaded, host)
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in loaded.values())
    bad = {"w": np.array([1.0, np.nan], np.float32), "c": np.array([np.inf], np.complex64)}
    for name, value in bad.items():
        pio.save_tensors(path, {name: value})
        with pytest.raises(ValueError, match=f"'{name}' contains 1 NaN/inf"):
            pio.load_tensors(path, backend="torch")
        assert pio.load_tensors(path, backend="torch", allow_nonfinite=True)[name].shape == (
            len(value),
        )
    _raw_file(path, {"a": {"dtype": "BOOL", "shape": [4], "data_offsets": [0, 4]}}, b"\0\1\2\0")
    with pytest.raises(ValueError, match="'a'.*BOOL"):
        pio.load_tensors(path, backend="torch")


def test_dtype_missing_on_target_backend_raises(tmp_path):
    pytest.importorskip("array_api_strict")
    path = tmp_path / "t.safetensors"
    pio.save_tensors(path, {"half": np.ones(2, np.float16)})
    with pytest.raises(ValueError, match="'half'.*float16"):
        pio.load_tensors(path, backend="array_api_strict")


def test_header_is_aligned_and_big_endian_input_is_stored_little_endian(tmp_path):
    values = np.arange(6, dtype=">f4").reshape(2, 3)
    path = tmp_path / "t.safetensors"
    pio.save_tensors(path, {"x": values})
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0
    assert raw[8 + n :] == values.astype("<f4").tobytes()
    loaded = pio.load_tensors(path, backend="numpy")["x"]
    np.testing.assert_array_equal(loaded, values)
    assert loaded.dtype == np.float32


def test_save_rejects_bad_names_and_dtypes(tmp_path):
    path = tmp_path / "t.safetensors"
    with pytest.raises(ValueError, match="__metadata__"):
        pio.save_tensors(path, {"__metadata__": np.zeros(1)})
    with pytest.raises(TypeError, match="'s'.*<U1"):
        pio.save_tensors(path, {"s": np.array(["a"])})
    with pytest.raises(TypeError, match="metadata"):
        pio.save_tensors(path, {"a": np.zeros(1)}, {"k": 1})
    assert not path.exists()
    assert os.listdir(tmp_path) == []


# -- corrupt and foreign files ----------------------------------------------------------------
def _raw_file(path: Path, header: dict, data: bytes, length: int | None = None) -> Path:
    text = json.dumps(header).encode()
    n = len(text) if length is None else length
    path.write_bytes(n.to_bytes(8, "little") + text + data)
    return path


def _good(tmp_path: Path) -> Path:
    path = tmp_path / "good.safetensors"
    pio.save_tensors(path, {"a": np.arange(4, dtype=np.float32), "b": np.ones(2, np.float64)})
    return path


F32 = np.arange(4, dtype=np.float32).tobytes()


@pytest.mark.parametrize(
    ("header", "data", "match"),
    [
        ({"a": {"dtype": "X42", "shape": [4], "data_offsets": [0, 16]}}, F32, "variant `X42`"),
        ({"a": {"dtype": "BF16", "shape": [8], "data_offsets": [0, 16]}}, F32, "'a'.*'BF16'"),
        ({"a": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}}, F32, "invalid shape"),
        ({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, F32, "`-4`"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16, 3]}}, F32, "length 3"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}, F32, "offset.*`a`"),
        ({"a": {"dtype": "F32", "shape": [4]}}, F32, "missing field `data_offsets`"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [4, 20]}}, F32, "offset.*`a`"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, F32[:12], "not fully"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, F32 + b"xx", "not fully"),
        (
            {
                "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
            },
            F32,
            "offset.*`b`",
        ),
        (
            {"a": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]}},
            F32,
            "not fully covered",
        ),
        ({"__metadata__": {"format": 1}}, b"", "expected a string"),
        ({"a": {"dtype": "BOOL", "shape": [4], "data_offsets": [0, 4]}}, b"\0\1\2\0", "'a'.*BOOL"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, F32[:8] * 2, None),
    ],
)
def test_corrupt_headers_raise_naming_the_problem(tmp_path, header, data, match):
    path = _raw_file(tmp_path / "bad.safetensors", header, data)
    if match is None:  # the control case: a hand-written valid file loads
        assert pio.load_tensors(path, backend="numpy")["a"].shape == (4,)
        return
    with pytest.raises(ValueError, match=match):
        pio.load_tensors(path)


def test_nan_and_inf_rejected_unless_allowed(backend, tmp_path):
    path = tmp_path / "nan.safetensors"
    values = np.array([1.0, np.nan, np.inf, 2.0], dtype=np.float32)
    pio.save_tensors(path, {"ok": np.ones(2, np.float32), "w": backend.asarray(values)})
    with pytest.raises(ValueError, match="'w' contains 2 NaN/inf"):
        pio.load_tensors(path)
    loaded = pio.load_tensors(path, allow_nonfinite=True)
    np.testing.assert_array_equal(backend.to_numpy(loaded["w"]), values)


def test_header_length_problems(tmp_path):
    good = _good(tmp_path).read_bytes()
    cases = {
        "too short": (good[:5], "too short"),
        "empty": (b"", "too short"),
        "beyond file": ((len(good)).to_bytes(8, "little") + good[8:], "past the end of the file"),
        "huge": ((2**63).to_bytes(8, "little") + good[8:], "exceeds the limit"),
        "truncated": (good[:-3], "not fully covered.*truncated"),
        "inside header": (good[:20], "past the end of the file"),
    }
    for label, (raw, match) in cases.items():
        path = tmp_path / f"{label}.safetensors"
        path.write_bytes(raw)
        with pytest.raises(ValueError, match=match):
            pio.load_tensors(path)


def test_foreign_files_raise_value_error(tmp_path):
    rng = np.random.default_rng(1)
    files = {
        "random": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text": b"hello world, this is not a checkpoint at all",
        "not json": (10).to_bytes(8, "little") + b"{not json}",
        "json list": (2).to_bytes(8, "little") + b"[]",
        "duplicate": (20).to_bytes(8, "little") + b'{"a": {}, "a": {}}  ',
        "npy": b"\x93NUMPY\x01\x00" + b"\x00" * 64,
    }
    for label, raw in files.items():
        path = tmp_path / label
        path.write_bytes(raw)
        with pytest.raises(ValueError, match="cannot load"):
            pio.load_tensors(path)


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payloads_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"0.weight": _Exploit(str(marker))}))
    with pytest.raises(ValueError):
        pio.load_tensors(path)
    with pytest.raises(ValueError):
        pio.read_metadata(path)
    assert not marker.exists()
    torch = pytest.importorskip("torch")
    torch_file = tmp_path / "model.pt"
    torch.save({"0.weight": torch.ones(2)}, torch_file)
    with pytest.raises(ValueError):
        pio.load_tensors(torch_file)


def test_no_pickle_in_the_package_source():
    forbidden = re.compile(
        r"^\s*(import|from)\s+(pickle|cPickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)\b"
        r"|allow_pickle\s*=\s*True|torch\.load\s*\(|np\.load\s*\(|numpy\.load\s*\("
        r"|pickle\.loads?\s*\(|__reduce__",
        re.MULTILINE,
    )
    hits = []
    for source in PACKAGE.rglob("*.py"):
        for match in forbidden.finditer(source.read_text()):
            hits.append(f"{source.relative_to(PACKAGE)}: {match.group(0).strip()}")
    assert hits == []
    assert forbidden.search("import pickle\n") and forbidden.search("np.load(f, allow_pickle=True)")


# -- atomic writes ----------------------------------------------------------------------------
def _old_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    old = np.arange(4, dtype=np.float32)
    path = tmp_path / "w.safetensors"
    pio.save_tensors(path, {"a": old})
    return path, old


def _assert_old_intact(path: Path, old: np.ndarray) -> None:
    np.testing.assert_array_equal(pio.load_tensors(path, backend="numpy")["a"], old)
    assert os.listdir(path.parent) == [path.name], "a temporary file was left behind"


def test_failed_fsync_keeps_old_file(tmp_path, monkeypatch):
    path, old = _old_file(tmp_path)

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        pio.save_tensors(path, {"a": np.zeros(4, np.float32)})
    monkeypatch.undo()
    _assert_old_intact(path, old)


@pytest.mark.parametrize("error", [RuntimeError("device lost"), KeyboardInterrupt()])
def test_interrupted_midway_keeps_old_file(backend, tmp_path, monkeypatch, error):
    path, old = _old_file(tmp_path)
    seen = []

    def interrupted_fsync(fd: int) -> None:  # the new bytes are in the temp file, not yet renamed
        seen.extend(p for p in os.listdir(tmp_path) if p.endswith(".tmp"))
        raise error

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    new = {"a": backend.asarray(np.zeros(4, np.float32)), "b": backend.asarray(np.ones(3))}
    with pytest.raises(type(error)):
        pio.save_tensors(path, new)
    monkeypatch.undo()
    assert len(seen) == 1, "the write did not go through a temporary file in the same folder"
    _assert_old_intact(path, old)


def test_failed_conversion_keeps_old_file(tmp_path, monkeypatch):
    path, old = _old_file(tmp_path)

    def broken(value: object) -> np.ndarray:
        raise RuntimeError("cannot copy from device")

    monkeypatch.setattr(pio.tensors, "to_numpy", broken)
    with pytest.raises(RuntimeError, match="cannot copy"):
        pio.save_tensors(path, {"a": np.zeros(4, np.float32)})
    monkeypatch.undo()
    _assert_old_intact(path, old)


def test_overwrite_false_and_folder_errors(tmp_path):
    path, old = _old_file(tmp_path)
    with pytest.raises(FileExistsError):
        pio.save_tensors(path, {"a": np.zeros(4, np.float32)}, overwrite=False)
    with pytest.raises(IsADirectoryError):
        pio.save_tensors(tmp_path, {"a": np.zeros(4, np.float32)})
    with pytest.raises(FileNotFoundError):
        pio.save_tensors(tmp_path / "missing" / "x.safetensors", {"a": np.zeros(1)})
    _assert_old_intact(path, old)


def test_atomic_write_keeps_permissions_and_syncs_folder(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    pio.atomic_write_bytes(path, b"one")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    path.chmod(0o600)
    synced = []
    original = atomic_module._fsync_directory
    monkeypatch.setattr(
        atomic_module, "_fsync_directory", lambda d: synced.append(d) or original(d)
    )
    pio.atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert path.stat().st_mode & 0o777 == 0o600
    assert synced == [str(tmp_path)]
