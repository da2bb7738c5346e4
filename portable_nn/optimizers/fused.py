"""Many small parameters updated as one: the parameters and slots become views of flat buffers.

An update rule costs a few library calls per array (~1-2 us each on NumPy, a kernel launch each
on a GPU) whatever the array's size, so a model of many small arrays (biases, a 2-16-16-1 MLP)
spends its optimizer time in call overhead. :class:`FlatState` lays every parameter and slot
out in one buffer per kind, gives the model and the optimizer state *views* into them, and then
runs ``_update`` once per step on ``(flat parameters, concat(gradients), flat slots)``: the same
elementwise operations on the same numbers, so the results equal the per-array update bitwise.
It costs one copy of the gradients per step, hence it is used only when the arrays are small on
average (:data:`MEAN_SIZE_LIMIT`) and only where slices are views that in-place writes reach
(NumPy, CuPy, torch: :func:`portable_nn.backend.has_view_slices`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from portable_nn.backend import flat_views, has_view_slices, namespace_of

MEAN_SIZE_LIMIT = 16384  # elements per array: above it, a gradient copy costs more than it saves


class FlatState:
    """Flat parameter and slot buffers with the views handed to the model and the state."""

    def __init__(self, params: Mapping[str, Any], state: dict[str, Any], slots: tuple) -> None:
        self.names = list(params)
        self.params, views = flat_views([params[n] for n in self.names])
        self.views = dict(zip(self.names, views))  # what the model holds from now on
        self.slots: dict[str, Any] = {}
        self.slot_views: dict[str, list[Any]] = {}
        for slot in slots:
            self.slots[slot], self.slot_views[slot] = flat_views(
                [state[n][slot] for n in self.names]
            )
            for name, view in zip(self.names, self.slot_views[slot]):
                state[name][slot] = view

    @staticmethod
    def worth_it(params: Mapping[str, Any]) -> bool:
        """Several arrays, small on average, of one dtype, in a library with view slices."""
        arrays = list(params.values())
        size = sum(math.prod(a.shape) for a in arrays)
        if len(arrays) < 2 or size > MEAN_SIZE_LIMIT * len(arrays):
            return False
        return len({a.dtype for a in arrays}) == 1 and has_view_slices(arrays[0])

    def current(self, params: Mapping[str, Any], state: dict[str, Any]) -> bool:
        """Whether the model and the state still hold our views (a load or ``set_parameters``
        rebinds them; then the caller builds a new flat state)."""
        if list(params) != self.names:
            return False
        for name, view in self.views.items():
            if params[name] is not view:
                return False
        for slot, views in self.slot_views.items():
            for name, view in zip(self.names, views):
                if state[name][slot] is not view:
                    return False
        return True

    def gradients(self, grads: list[Any]) -> Any:
        """The gradients (in the parameters' order) as one flat array: one copy."""
        xp = namespace_of(self.params)
        return xp.concat([xp.reshape(g, (-1,)) for g in grads])


__all__ = ["MEAN_SIZE_LIMIT", "FlatState"]
