"""The shared argument checks and the one-sync value checks (portable_nn.validation)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from portable_nn import validation


@pytest.mark.parametrize("value", [0, -3, 2.0, True, "4", None])
def test_positive_int_refuses(value: Any) -> None:
    with pytest.raises(ValueError, match=rf"Expected a positive integer\. Received: n={value!r}"):
        validation.positive_int("n", value)


@pytest.mark.parametrize("value", [-1, 1.0, False, "0"])
def test_non_negative_int_refuses(value: Any) -> None:
    with pytest.raises(ValueError, match=r"Expected a non-negative integer\. Received: n="):
        validation.non_negative_int("n", value)


def test_ints_pass_through() -> None:
    assert validation.positive_int("n", 3) == 3
    assert validation.non_negative_int("n", 0) == 0


def test_real_number() -> None:
    assert validation.real_number("a", 2) == 2.0
    assert type(validation.real_number("a", 2)) is float
    with pytest.raises(TypeError, match=r"a must be a real number\. Received: a=True"):
        validation.real_number("a", True)
    with pytest.raises(ValueError, match=r"a must be finite\. Received: a=nan"):
        validation.real_number("a", math.nan)
    with pytest.raises(ValueError, match=r"in \[0\.0, 1\.0\]\. Received: a=1\.5"):
        validation.real_number("a", 1.5, 0.0, 1.0)


def test_run_checks_one_readback_then_names_the_first_failure(backend: Any) -> None:
    xp = backend.xp
    good = xp.all(backend.asarray(np.ones(3)) > 0.0)
    bad = xp.any(backend.asarray(np.ones(3)) < 0.0)
    validation.run_checks([])
    validation.run_checks([(good, lambda: "unused"), (good, lambda: "unused")])
    with pytest.raises(ValueError, match="second"):
        validation.run_checks([(good, lambda: "first"), (bad, lambda: "second")])


def test_run_checks_mixes_host_and_device_flags(backend: Any) -> None:
    device_ok = backend.xp.all(backend.asarray(np.ones(2)) > 0.0)
    host_bad = np.all(np.zeros(2) > 0.0)
    with pytest.raises(ValueError, match="host"):
        validation.run_checks([(device_ok, lambda: "device"), (host_bad, lambda: "host")])
    validation.run_checks([(device_ok, lambda: "device"), (np.all(np.ones(2) > 0), lambda: "x")])


def test_int_tuple() -> None:
    assert validation.int_tuple("k", 3, 2) == (3, 3)
    assert validation.int_tuple("k", [1, np.int64(2)], 2) == (1, 2)
    assert validation.int_tuple("p", 0, 2, low=0) == (0, 0)
    for bad, n in (((3,), 2), (0, 2), ((1, True), 2), ("3", 1), (2.0, 1)):
        with pytest.raises(ValueError, match=r"tuple of \d\. Received: k="):
            validation.int_tuple("k", bad, n)
