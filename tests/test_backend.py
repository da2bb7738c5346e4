"""Backend selector, env vars, context manager, namespace/device rules and the random streams."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.backend import namespace_and_device


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="valid names are numpy, cupy, torch, jax"):
        pnn.set_backend("tensorflow")


def test_bad_dtype_is_named():
    with pytest.raises(ValueError, match="dtype="):
        pnn.set_backend("numpy", dtype="float16")


def test_use_backend_restores_on_error():
    before = pnn.get_backend()
    with pytest.raises(RuntimeError, match="boom"):
        with pnn.use_backend("numpy", dtype="float64") as active:
            assert active.dtype_name == "float64"
            assert pnn.get_backend() is active
            raise RuntimeError("boom")
    assert pnn.get_backend() is before


def test_cupy_without_gpu_says_why():
    from portable_nn.backend import cuda_problem

    problem = cuda_problem()
    if problem is None:
        pytest.skip("a CUDA device is usable here")
    with pytest.raises(pnn.BackendUnavailableError, match="not usable") as info:
        pnn.set_backend("cupy")
    assert problem in str(info.value)


def test_auto_picks_numpy_without_gpu():
    from portable_nn.backend import cuda_problem

    with pnn.use_backend("auto") as active:
        assert active.name == ("cupy" if cuda_problem() is None else "numpy")


@pytest.mark.parametrize(
    "env, expected",
    [
        (
            {"PORTABLE_NN_BACKEND": "array_api_strict", "PORTABLE_NN_DEVICE": "device1"},
            "array_api_strict device1",
        ),
        ({"PORTABLE_NN_BACKEND": "numpy"}, "numpy cpu"),
    ],
)
def test_environment_variables_choose_the_start_backend(env, expected):
    pytest.importorskip("array_api_strict")
    code = (
        "import portable_nn as pnn; b = pnn.get_backend(); "
        "print(b.name, getattr(b.device, '_device', b.device))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PORTABLE_NN_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == expected


def test_asarray_puts_host_data_on_backend(backend):
    x = pnn.asarray([[1.0, 2.0], [3.0, 4.0]])
    backend.assert_same_place(x)
    assert x.dtype == backend.xp.float32
    labels = pnn.asarray(np.array([0, 2, 1]))
    assert backend.xp.isdtype(labels.dtype, "integral")
    np.testing.assert_array_equal(pnn.to_numpy(labels), [0, 2, 1])
    np.testing.assert_array_equal(pnn.to_numpy(x), [[1, 2], [3, 4]])


def test_asarray_float64_backend(backend):
    with backend.use("float64"):
        x = pnn.asarray(np.ones(3, dtype=np.float32))
        assert x.dtype == backend.xp.float64


def test_mixed_namespaces_raise_naming_both():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="numpy and torch"):
        namespace_and_device(np.ones(2), torch.ones(2))


def test_mixed_devices_raise_naming_both():
    strict = pytest.importorskip("array_api_strict")
    a = strict.ones(2)
    b = strict.ones(2, device=strict.Device("device1"))
    with pytest.raises(ValueError, match="two devices.*CPU_DEVICE.*device1"):
        namespace_and_device(a, b)


def test_device_stream_identical_across_backends(backend):
    generator = pnn.random.Generator(7)
    u = generator.uniform((5, 3), xp=backend.xp, device=backend.dev, dtype=backend.xp.float32)
    mask = generator.bernoulli((400,), 0.25, xp=backend.xp, device=backend.dev)
    backend.assert_same_place(u)
    reference = pnn.random.Generator(7)
    with pnn.use_backend("numpy") as np_backend:
        u_ref = reference.uniform((5, 3), xp=np_backend.xp, device="cpu", dtype=np.float32)
        mask_ref = reference.bernoulli((400,), 0.25, xp=np_backend.xp, device="cpu")
    np.testing.assert_array_equal(backend.to_numpy(u), u_ref)
    np.testing.assert_array_equal(backend.to_numpy(mask), mask_ref)
    assert 0.15 < backend.to_numpy(mask).mean() < 0.35


def test_device_stream_statistics_and_independence():
    generator = pnn.random.Generator(3)
    from portable_nn.backend import make_backend

    b = make_backend("numpy")
    first = generator.uniform((200_000,), xp=b.xp, device="cpu", dtype=np.float64)
    second = generator.uniform((200_000,), xp=b.xp, device="cpu", dtype=np.float64)
    assert abs(first.mean() - 0.5) < 0.005 and abs(first.std() - 12**-0.5) < 0.005
    assert 0.0 <= first.min() and first.max() < 1.0
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.01
    counts = np.histogram(first, bins=16, range=(0, 1))[0]
    assert counts.min() > 0.95 * counts.mean()


def test_generator_state_roundtrip():
    from portable_nn.backend import make_backend

    b = make_backend("numpy")
    g = pnn.random.Generator(11)
    g.uniform((3,), xp=b.xp, device="cpu", dtype=np.float32)
    g.host.normal((4,), 0.0, 1.0, "float32")
    state = g.get_state()
    expected = (
        g.uniform((3,), xp=b.xp, device="cpu", dtype=np.float32),
        g.host.normal((4,), 0.0, 1.0, "float32"),
    )
    h = pnn.random.Generator(0)
    h.set_state(state)
    np.testing.assert_array_equal(
        h.uniform((3,), xp=b.xp, device="cpu", dtype=np.float32), expected[0]
    )
    np.testing.assert_array_equal(h.host.normal((4,), 0.0, 1.0, "float32"), expected[1])


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_generator_rejects_bad_seed(bad):
    with pytest.raises(ValueError, match="seed"):
        pnn.random.Generator(bad)
