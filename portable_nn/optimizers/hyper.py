"""Hyper-parameters as dataclass fields, each declared once with its check.

Optimizers and schedules are dataclasses: ``beta_1: float = hyper(fraction, 0.9)`` gives the
constructor argument, its check (``portable_nn.validation``, run at construction, raising with
the argument's name and value) and its place in ``repr`` and ``get_config()``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

Check = Callable[[str, Any], Any]  # check(name, value) -> the value, converted, or raise


def hyper(check: Check, default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field whose value becomes ``check(name, value)`` at construction."""
    return dataclasses.field(default=default, metadata={"check": check}, **kwargs)


def optional(check: Check) -> Check:
    """``check``, letting ``None`` (an option left off) through."""
    return lambda name, value: None if value is None else check(name, value)


class Hyper:
    """Base of the hyper-parameter dataclasses: every field's check, a config of the fields."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if "check" in f.metadata:
                setattr(self, f.name, f.metadata["check"](f.name, getattr(self, f.name)))

    def _values(self, *, shown: bool = False) -> dict[str, Any]:
        """Field values in the constructor's order (``shown``: only those ``repr`` shows)."""
        fields = sorted(dataclasses.fields(self), key=lambda f: f.kw_only)  # type: ignore[arg-type]
        return {f.name: getattr(self, f.name) for f in fields if f.repr or not shown}

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-friendly dict."""
        return self._values()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """Rebuild from :meth:`get_config` output."""
        return cls(**config)
