"""Writers: how an update rule, written once, stores its results (Keras's ``assign_add`` idea).

An optimizer's ``_update`` applies ``w.mul(x, a)``, ``w.add(x, a)``, ``w.sub(x, a)`` and
``w.assign(x, v)`` to a slot, the parameter or a temporary of its own (never the gradient) and
stores the result back (``m = s["exp_avg"] = w.add(w.mul(s["exp_avg"], b1), g * c1)``).
:class:`InPlace` runs ``x *= a``, ``x += a``, ``x -= a``, ``x[...] = v``; :class:`Pure` runs
``x * a``, ``x + a``, ``x - a``, ``v`` and leaves its inputs untouched. Same operations in the
same order: the two paths round alike and agree bitwise.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

from portable_nn.backend import is_writeable


class Pure:
    """Rebind to new arrays (JAX, read-only arrays, ``update(..., inplace=False)``)."""

    mul, add, sub = operator.mul, operator.add, operator.sub

    @staticmethod
    def assign(x: Any, value: Any) -> Any:
        return value


class InPlace(Pure):
    """Write into ``x`` and return it (every array written is writeable)."""

    mul, add, sub = operator.imul, operator.iadd, operator.isub

    @staticmethod
    def assign(x: Any, value: Any) -> Any:
        x[...] = value
        return x


def writer_for(arrays: Iterable[Any], inplace: bool) -> type[Pure]:
    """:class:`InPlace` when ``inplace`` and every array is writeable, else :class:`Pure`."""
    return InPlace if inplace and all(map(is_writeable, arrays)) else Pure
