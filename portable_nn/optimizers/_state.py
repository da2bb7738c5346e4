"""Optimizer-state helpers: writeability, input checks, flat ``state_dict`` (de)serialisation."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from typing import Any

import array_api_compat

from portable_nn.backend import backend_name_of, namespace_of
from portable_nn.validation import check_like

# type -> True/False when writeability is a property of the class, None when it is per array
# (NumPy's ``flags.writeable``). Mirrors ``array_api_compat.is_writeable_array`` at a dict lookup.
_WRITEABLE_BY_TYPE: dict[type, bool | None] = {}


def is_writeable(x: Any) -> bool:
    """``array_api_compat.is_writeable_array(x)``, cached by type (this is on the hot path)."""
    kind = type(x)
    try:
        fixed = _WRITEABLE_BY_TYPE[kind]
    except KeyError:
        numpy_like = array_api_compat.is_numpy_array(x)
        fixed = None if numpy_like else array_api_compat.is_writeable_array(x)
        _WRITEABLE_BY_TYPE[kind] = fixed
    return bool(x.flags.writeable) if fixed is None else fixed


def all_writeable(work: list[tuple[str, Any, Any, dict[str, Any]]], check_slots: bool) -> bool:
    """True when every parameter (and slot, with ``check_slots``) of ``work`` is writeable."""
    for _, p, _, _ in work:
        if not is_writeable(p):
            return False
    if check_slots:
        for _, _, _, slots in work:
            for s in slots.values():
                if not is_writeable(s):
                    return False
    return True


def key_mismatch(what: str, expected: Iterable[str], received: Iterable[str]) -> ValueError:
    """A ``ValueError`` naming the missing and unexpected names of ``received``."""
    expected, received = set(expected), set(received)
    missing, extra = sorted(expected - received), sorted(received - expected)
    return ValueError(f"{what} do not match the parameters: missing {missing}, unexpected {extra}")


def checked_gradient(name: str, p: Any, g: Any, slots: Any) -> Any:
    """The slow path of the per-step check: raise naming the parameter, or cast ``g``'s dtype."""
    if slots is None:
        raise ValueError(f"optimizer state has no entry for parameter {name!r}; call init(params)")
    if not hasattr(g, "shape") or not hasattr(g, "dtype"):
        raise TypeError(f"gradient for parameter {name!r} is not an array: {type(g).__name__}")
    if tuple(g.shape) != tuple(p.shape):
        raise ValueError(
            f"gradient for parameter {name!r} has shape {tuple(g.shape)}, "
            f"expected the parameter's shape {tuple(p.shape)}"
        )
    xp, gxp = namespace_of(p), namespace_of(g)
    if gxp is not xp:
        raise ValueError(
            f"gradient for parameter {name!r} is a {backend_name_of(gxp)} array but the "
            f"parameter is a {backend_name_of(xp)} array"
        )
    return g if g.dtype == p.dtype else xp.astype(g, p.dtype)


def flatten(state: Mapping[str, Any]) -> dict[str, Any]:
    """``{"step": n, name: {slot: a}}`` -> ``{"step": n, "name.slot": copy of a}``."""
    out: dict[str, Any] = {"step": int(state["step"])}
    for name, slots in state.items():
        if name != "step":
            for slot, a in slots.items():
                out[f"{name}.{slot}"] = namespace_of(a).asarray(a, copy=True)
    return out


def unflatten(flat: Mapping[str, Any], slot_names: tuple[str, ...]) -> tuple[int, dict]:
    """Split ``"name.slot"`` keys into ``(step, {name: {slot: array}})`` checking slot names."""
    if not isinstance(flat, Mapping) or "step" not in flat:
        raise ValueError("an optimizer state dict needs a 'step' entry")
    step = _step_count(flat["step"])
    groups: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        if key == "step":
            continue
        name, _, slot = key.rpartition(".")
        if not name or slot not in slot_names:
            raise ValueError(
                f"unexpected optimizer state entry {key!r}; expected '<param>.<slot>' with slot "
                f"in {list(slot_names)}"
            )
        groups.setdefault(name, {})[slot] = value
    for name, slots in groups.items():
        missing = [s for s in slot_names if s not in slots]
        if missing:
            raise ValueError(f"optimizer state for {name!r} is missing slots {missing}")
    return step, groups


def _step_count(value: Any) -> int:
    try:
        step = operator.index(value)
    except TypeError:
        raise ValueError(f"'step' must be an integer count. Received: {value!r}") from None
    if isinstance(value, bool) or step < 0:
        raise ValueError(f"'step' must be a non-negative integer. Received: {value!r}")
    return step


def check_groups(
    groups: dict[str, dict[str, Any]],
    reference: Mapping[str, Any],
    slot_names: tuple[str, ...],
) -> dict[str, dict[str, Any]]:
    """Check loaded slots against ``reference`` (name -> array of the required shape, dtype and
    place, or None when unknown); return copies, one entry per reference name."""
    if slot_names and set(groups) != set(reference):
        raise key_mismatch("optimizer state entries", reference, groups)
    out = {}
    for name, ref in reference.items():
        out[name] = {}
        for slot in slot_names:
            value = groups[name][slot]
            _check_slot(f"{name}.{slot}", value, ref)
            out[name][slot] = namespace_of(value).asarray(value, copy=True)
    return out


def _check_slot(key: str, value: Any, ref: Any) -> None:
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise ValueError(f"optimizer state entry {key!r} is not an array: {type(value).__name__}")
    if ref is None:
        return
    check_like(f"optimizer state entry {key!r}", value, ref)
