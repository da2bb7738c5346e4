"""Random-state access for checkpoints: the model's generator and every layer's generator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from portable_nn.random import Generator


class RngStateMixin:
    """``get_rng_state()`` / ``set_rng_state(state)`` with JSON-friendly dicts."""

    def _layers_with_generators(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """``("2", dropout), ("1.3", inner_dropout), ...``: layers holding a ``generator``
        under their arrays' names (``"dropout"`` in a graph model; nested models are walked,
        their own shuffling generator is unused and skipped)."""
        for head, layer in self._prefixed():  # type: ignore[attr-defined]
            name = prefix + head[:-1]
            if isinstance(layer, RngStateMixin):
                yield from layer._layers_with_generators(name + ".")
            elif isinstance(getattr(layer, "generator", None), Generator):
                yield name, layer

    def get_rng_state(self) -> dict[str, Any]:
        """``{"generator": model generator state, "layers": {"2": state, ...}}`` (copies)."""
        return {
            "generator": self.generator.get_state(),
            "layers": {
                name: layer.generator.get_state() for name, layer in self._layers_with_generators()
            },
        }

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_rng_state`'s output; the layer names must match exactly (checked
        before anything is set, ``ValueError`` naming the entry otherwise)."""
        if not isinstance(state, dict) or set(state) != {"generator", "layers"}:
            raise ValueError(
                "an RNG state must be {'generator': ..., 'layers': {...}}. "
                f"Received keys: {sorted(state) if isinstance(state, dict) else type(state)}"
            )
        owners = dict(self._layers_with_generators())
        given = state["layers"]
        for name in sorted(set(owners) ^ set(given)):
            where = (
                "is missing from the state" if name in owners else "is not a layer with a generator"
            )
            raise ValueError(f"RNG state entry {name!r} {where}; expected {sorted(owners)}")
        for name, value in [("generator", state["generator"]), *given.items()]:
            _check_generator_state(name, value)
        self.generator.set_state(state["generator"])
        for name, value in given.items():
            owners[name].generator.set_state(value)


def _check_generator_state(name: str, value: Any) -> None:
    if not isinstance(value, dict) or not {"seed", "counter", "host"} <= set(value):
        raise ValueError(
            f"RNG state entry {name!r} must hold 'seed', 'counter' and 'host'. Received: {value!r}"
        )


__all__ = ["RngStateMixin"]
