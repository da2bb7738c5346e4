"""Checkpoint state and JSON configuration for optimizers (mixed into ``Optimizer``).

``state_dict()`` is flat: ``{"step": int, "<param>.<slot>": array}`` with copies of the slot
arrays (later in-place steps do not change a saved dict). ``"step"`` is a Python int; a 0-d
integer array is accepted on load. ``get_config()`` is ``{"class_name", "config"}`` with the
learning rate as a float or as a serialised schedule.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from typing import Any

from portable_nn.backend import namespace_of
from portable_nn.validation import check_like

from . import schedules


class SerializationMixin:
    """``state_dict``/``load_state_dict`` and ``get_config``/``from_config``."""

    slot_names: tuple[str, ...]
    _state: dict[str, Any] | None
    _unchecked: bool

    def state_dict(self) -> dict[str, Any]:
        """Flat copy of the internal state: ``{"step": n, "<param>.<slot>": array, ...}``."""
        return {"step": 0} if self._state is None else _flatten(self._state)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> None:
        """Replace the internal state after checking every entry (nothing changes on error).

        Entries are checked against the current state, else against ``params`` when given,
        else on the first :meth:`step` (names, shapes, dtypes, namespace and device).
        """
        if params is None and self._state is not None and not self._unchecked:
            params = {
                n: next(iter(s.values()), None) for n, s in self._state.items() if n != "step"
            }
        self._state = _load(state_dict, self.slot_names, params)
        self._unchecked = params is None

    def _check_loaded(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The state loaded before the parameters were known, checked against them now."""
        assert self._state is not None
        return _load(_flatten(self._state), self.slot_names, params)

    def get_config(self) -> dict[str, Any]:
        """``{"class_name": ..., "config": {hyper-parameters}}`` (JSON-friendly)."""
        config = self._values()  # type: ignore[attr-defined]
        lr = config["learning_rate"]
        if isinstance(lr, schedules.LearningRateSchedule):
            config["learning_rate"] = schedules.serialize(lr)
        elif not isinstance(lr, float):
            raise TypeError(
                "learning_rate is a plain callable and cannot be serialised; "
                "use a pnn.optimizers.schedules.LearningRateSchedule"
            )
        return {"class_name": type(self).__name__, "config": config}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        """Rebuild from ``get_config()`` output (or its inner ``"config"`` dict)."""
        if "class_name" in config:
            if config["class_name"] != cls.__name__:
                raise ValueError(f"config is for {config['class_name']!r}, not {cls.__name__!r}")
            config = config["config"]
        config = dict(config)
        if isinstance(config.get("learning_rate"), Mapping):
            config["learning_rate"] = schedules.deserialize(dict(config["learning_rate"]))
        return cls(**config)


def key_mismatch(what: str, expected: Iterable[str], received: Iterable[str]) -> ValueError:
    """A ``ValueError`` naming the missing and unexpected names of ``received``."""
    expected, received = set(expected), set(received)
    missing, extra = sorted(expected - received), sorted(received - expected)
    return ValueError(f"{what} do not match the parameters: missing {missing}, unexpected {extra}")


def _flatten(state: Mapping[str, Any]) -> dict[str, Any]:
    """``{"step": n, name: {slot: a}}`` -> ``{"step": n, "name.slot": copy of a}``."""
    out: dict[str, Any] = {"step": int(state["step"])}
    for name, slots in state.items():
        if name != "step":
            for slot, a in slots.items():
                out[f"{name}.{slot}"] = namespace_of(a).asarray(a, copy=True)
    return out


def _load(
    flat: Mapping[str, Any], slot_names: tuple[str, ...], reference: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``{"step": n, name: {slot: copy}}`` from a flat state dict, checked against ``reference``
    (name -> an array of the required shape, dtype and place; None: not known yet)."""
    if not isinstance(flat, Mapping) or "step" not in flat:
        raise ValueError("an optimizer state dict needs a 'step' entry")
    state: dict[str, Any] = {"step": _step_count(flat["step"])}
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
    if reference is None:
        reference = dict.fromkeys(groups)
    elif slot_names and set(groups) != set(reference):
        raise key_mismatch("optimizer state entries", reference, groups)
    for name, ref in reference.items():
        state[name] = {}
        for slot in slot_names:
            label, value = f"optimizer state entry '{name}.{slot}'", groups[name][slot]
            if ref is not None:
                check_like(label, value, ref)
            elif not hasattr(value, "shape") or not hasattr(value, "dtype"):
                raise ValueError(f"{label} is not an array: {type(value).__name__}")
            state[name][slot] = namespace_of(value).asarray(value, copy=True)
    return state


def _step_count(value: Any) -> int:
    """The ``'step'`` entry as an int (a Python int or a 0-d integer array)."""
    try:
        step = operator.index(value)
    except TypeError:
        raise ValueError(f"'step' must be an integer count. Received: {value!r}") from None
    if isinstance(value, bool) or step < 0:
        raise ValueError(f"'step' must be a non-negative integer. Received: {value!r}")
    return step
