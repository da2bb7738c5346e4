"""Checkpoint state and JSON configuration for optimizers (mixed into ``Optimizer``).

``state_dict()`` is flat: ``{"step": int, "<param>.<slot>": array}`` with copies of the slot
arrays (later in-place steps do not change a saved dict). ``"step"`` is a Python int; a 0-d
integer array is accepted on load. ``get_config()`` is ``{"class_name", "config"}`` with the
learning rate as a float or as a serialised schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _state, schedules


class SerializationMixin:
    """``state_dict``/``load_state_dict`` and ``get_config``/``from_config``."""

    _hyper_keys: tuple[str, ...]
    slot_names: tuple[str, ...]
    _state: dict[str, Any] | None
    _pending: tuple[int, dict] | None

    def state_dict(self) -> dict[str, Any]:
        """Flat copy of the internal state: ``{"step": n, "<param>.<slot>": array, ...}``."""
        if self._pending is not None:
            step, groups = self._pending
            return _state.flatten({"step": step, **groups})
        if self._state is None:
            return {"step": 0}
        return _state.flatten(self._state)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> None:
        """Replace the internal state after checking every entry (nothing changes on error).

        Entries are checked against the current state, else against ``params`` when given,
        else on the first :meth:`step` (names, shapes, dtypes, namespace and device).
        """
        step, groups = _state.unflatten(state_dict, self.slot_names)
        if params is None and self._state is not None:
            params = {n: _first(slots) for n, slots in self._state.items() if n != "step"}
        if params is None:
            unknown = dict.fromkeys(groups)
            self._pending = (step, _state.check_groups(groups, unknown, self.slot_names))
            return
        checked = _state.check_groups(groups, params, self.slot_names)
        self._state, self._pending = {"step": step, **checked}, None

    def _adopt_pending(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """State loaded before the parameters were known, checked against them now."""
        assert self._pending is not None
        step, groups = self._pending
        return {"step": step, **_state.check_groups(groups, params, self.slot_names)}

    def get_config(self) -> dict[str, Any]:
        """``{"class_name": ..., "config": {hyper-parameters}}`` (JSON-friendly)."""
        lr = self.learning_rate  # type: ignore[attr-defined]
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif not isinstance(lr, float):
            raise TypeError(
                "learning_rate is a plain callable and cannot be serialised; "
                "use a pnn.optimizers.schedules.LearningRateSchedule"
            )
        config = {"learning_rate": lr, **{k: getattr(self, k) for k in self._hyper_keys}}
        for key in ("clipnorm", "clipvalue", "check_finite", "inplace"):
            config[key] = getattr(self, key)
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


def _first(slots: Mapping[str, Any]) -> Any:
    """A slot array standing for its parameter's shape/dtype/place (None for slotless)."""
    return next(iter(slots.values()), None)
