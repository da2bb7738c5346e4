"""Hyper-parameters as dataclass fields, each declared once with its check.

Optimizers and schedules are dataclasses: ``beta_1: float = hyper(fraction, 0.9)`` gives the
constructor argument, its check (``portable_nn.validation``, run at construction, raising with
the argument's name and value) and its place in ``repr`` and ``get_config()``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

Check = Callable[[str, Any], Any]  # check(name, value) -> the value, converted, or raise


def hyper(
    check: Check, default: Any = dataclasses.MISSING, *, quiet: bool = False, **kwargs: Any
) -> Any:
    """A dataclass field whose value becomes ``check(name, value)`` at construction.
    ``quiet``: left out of ``repr`` while it has its default value."""
    if quiet:
        kwargs["repr"] = False
    metadata = {"check": check, "quiet": quiet}
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def optional(check: Check) -> Check:
    """``check``, letting ``None`` (an option left off) through."""
    return lambda name, value: None if value is None else check(name, value)


def patterns(name: str, value: Any) -> list[str]:
    """A list of non-empty strings, each a valid regular expression (``re.search`` patterns)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(
            f"{name} must be a list of parameter names or regular expressions. "
            f"Received: {name}={value!r}"
        )
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise ValueError(f"Expected a non-empty string. Received: {name}[{i}]={item!r}")
        try:
            re.compile(item)
        except re.error as error:
            raise ValueError(
                f"{name}[{i}] is not a valid regular expression ({error}). "
                f"Received: {name}[{i}]={item!r}"
            ) from None
    return list(value)


_CHANGES = 0  # hyper-parameter assignments so far, in every optimizer and schedule


def changes() -> int:
    """How many hyper-parameters were assigned so far (any optimizer's or schedule's field,
    construction included): a compiled step's constants made ahead stay valid while it holds."""
    return _CHANGES


class Hyper:
    """Base of the hyper-parameter dataclasses: every field's check, a config of the fields."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name[0] != "_" and name in getattr(type(self), "__dataclass_fields__", ()):
            global _CHANGES
            _CHANGES += 1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if "check" in f.metadata:
                setattr(self, f.name, f.metadata["check"](f.name, getattr(self, f.name)))

    def _values(self, *, shown: bool = False) -> dict[str, Any]:
        """Field values in the constructor's order (``shown``: only those ``repr`` shows, and
        the quiet ones that differ from their default)."""
        fields = sorted(dataclasses.fields(self), key=lambda f: f.kw_only)  # type: ignore[arg-type]
        return {f.name: getattr(self, f.name) for f in fields if not shown or _shown(self, f)}

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-friendly dict."""
        return self._values()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """Rebuild from :meth:`get_config` output."""
        return cls(**config)


def _shown(obj: Any, f: dataclasses.Field) -> bool:
    return f.repr or (f.metadata.get("quiet", False) and getattr(obj, f.name) != f.default)
