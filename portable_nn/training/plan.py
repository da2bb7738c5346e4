"""What the compiled train step keeps from one call to the next (``compiled.py``).

A small model's jitted step runs in about 0.1 ms, so its Python side must be a few lookups,
not a walk of the model: the step plans once (which arrays, under which names, where in the
model they live) and then only checks that the plan still holds. A new plan is made when the
optimizer or its state was replaced or read (``compile``, ``load_state_dict``, ``reset``,
``state_dict``, a layer frozen: ``retarget``) or a ``trainable`` flag changed; the
parameters and buffers are read from the model at every call, so ``set_parameters``,
``load_weights`` or a checkpoint restore between steps are seen without a new plan. Plans of
one layout (names, slots, flags) and optimizer share their compiled functions.

The optimizer's per-step constants go to the device once per :data:`ROWS` steps
(:class:`Constants`), and the optimizer's state stays a flat :class:`Record` that each step
updates, made into the optimizer's state dict only when someone reads it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from portable_nn.optimizers.hyper import changes
from portable_nn.optimizers.schedules import LearningRateSchedule

ROWS = 256  # steps of optimizer constants sent to the device at once


class Layout(NamedTuple):
    """The names behind the flat tuples a compiled train step takes and returns: its static
    structure (one compiled function per layout, optimizer and batch length)."""

    trained: tuple[str, ...]  # the parameters the optimizer updates: its state's, in order
    frozen: tuple[str, ...]  # the other parameters (read, not updated nor donated)
    bufs: tuple[str, ...]  # every buffer
    slots: tuple[tuple[str, ...], ...]  # each trained parameter's slot names
    flags: tuple[bool, ...]  # every layer's ``trainable`` (a frozen BatchNormalization's
    # forward differs: the trace depends on them)


class Record:
    """The optimizer state a compiled train step keeps, flat: the optimizer holds it pending
    (:meth:`Optimizer.record_step`) and unpacks it into its state dict only when the state is
    read; until then each step counts on in it."""

    __slots__ = ("layout", "slots", "step")

    def __init__(self, step: int, layout: Layout, slots: tuple) -> None:
        self.step, self.layout, self.slots = step, layout, slots

    def unpack(self) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.step}
        flat = iter(self.slots)
        for name, slots in zip(self.layout.trained, self.layout.slots):
            state[name] = {slot: next(flat) for slot in slots}
        return state


class Plan:
    """A :class:`Layout` bound to a model and its optimizer: where each array lives
    (``(layer, name)``), the optimizer's state as a :class:`Record` it holds pending, and
    the checks that say all this still holds."""

    def __init__(self, model: Any, state: dict[str, Any], layout: Layout, dtype: Any) -> None:
        self.optimizer, self.layout = model.optimizer, layout
        self.dtype = dtype  # the parameters' (the constants are sent in it)
        self.layers = [model, *model._sublayers()]
        self.flags = list(layout.flags)
        self.trained = [model._locate(name) for name in layout.trained]
        self.frozen = [model._locate(name) for name in layout.frozen]
        self.bufs = [model._locate(name) for name in layout.bufs]
        self.split = len(self.trained) + len(self.bufs)  # where the slots start in ``arrays``
        self.fns: dict[int, Any] = {}  # batch length -> compiled step
        names = zip(layout.trained, layout.slots)
        slots = tuple(state[name][slot] for name, slots in names for slot in slots)
        self.record = Record(state["step"], layout, slots)
        self.optimizer.record_step(self.record)

    def holds(self, model: Any) -> bool:
        """Whether nothing the plan depends on changed since the last step: the same
        optimizer, holding the plan's record (its state not read, replaced nor reset since),
        the same ``trainable`` flags."""
        optimizer = model.optimizer
        return (
            optimizer is self.optimizer
            and optimizer._pending is self.record
            and [layer.trainable for layer in self.layers] == self.flags
        )

    def arrays(self) -> tuple[tuple, tuple]:
        """The step's inputs as two flat tuples: what it updates (the model's trained
        parameters and buffers now, then the optimizer's slots), and the frozen parameters."""
        arrays = [layer.params[name] for layer, name in self.trained]
        if self.bufs:
            arrays += [layer.bufs[name] for layer, name in self.bufs]
        frozen = self.frozen
        return (*arrays, *self.record.slots), (
            tuple([layer.params[name] for layer, name in frozen]) if frozen else ()
        )

    def install(self, arrays: tuple, frozen: tuple = ()) -> None:
        """Rebind the model's arrays: the parameters and buffers at the start of ``arrays``
        (as :meth:`arrays` orders them), and ``frozen`` when given."""
        for (layer, name), value in zip(self.trained, arrays):
            layer.params[name] = value
        if self.bufs:
            for (layer, name), value in zip(self.bufs, arrays[len(self.trained) :]):
                layer.bufs[name] = value
        for (layer, name), value in zip(self.frozen, frozen):
            layer.params[name] = value

    def count(self, arrays: tuple) -> None:
        """One more step in the optimizer's record, with the new slots (the end of
        ``arrays``)."""
        record = self.record
        record.step += 1
        record.slots = arrays[self.split :]


class Constants:
    """The optimizer constants of the next :data:`ROWS` steps, one row each, on the device,
    and the device index of the next row (each step returns it plus one).

    The rows are Python floats computed ahead (``_step_constants``, as the eager step does
    at each step) for a float learning rate or a :class:`LearningRateSchedule`: pure
    functions of the step and the hyper-parameters. A new block is made when the optimizer,
    its step count (a loaded state, an eager step between) or any hyper-parameter (a
    callback's new learning rate: :func:`~portable_nn.optimizers.hyper.changes`) differs
    from the block's. With another learning-rate callable the step's one row is computed
    at each call and sent with it.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.optimizer: Any = None
        self.changes, self.dtype = -1, None  # hyper-parameter changes and dtype of the block
        self.start = self.at = self.rows = 0  # rows: 0 for a one-call row
        self.block: Any = None
        self.index: Any = None  # the device index of row ``at``
        self.zero: Any = None

    def take(self, optimizer: Any, step: int, dtype: Any) -> tuple[Any, Any]:
        """``(block, index)`` holding the constants of ``optimizer``'s step after ``step``
        (its ``iterations``)."""
        at = self.at
        if (
            at < self.rows
            and step - self.start == at
            and optimizer is self.optimizer
            and changes() == self.changes
            and dtype is self.dtype
        ):
            return self.block, self.index
        if self.zero is None:
            xp, device = self.backend.xp, self.backend.device
            self.zero = xp.zeros((), dtype=xp.int32, device=device)
        if isinstance(optimizer.learning_rate, (float, LearningRateSchedule)):
            rows = [optimizer._step_constants(step + i) for i in range(ROWS)]
            self.block = self.backend.scalars(rows, dtype, resident=True)
            self.rows = ROWS
        else:  # a callable that may not be pure: this step's row only, sent with the call
            self.block = self.backend.scalars([optimizer.next_constants()], dtype)
            self.rows = 0
        self.optimizer, self.changes, self.dtype = optimizer, changes(), dtype
        self.start, self.at = step, 0
        self.index = self.zero
        return self.block, self.zero

    def advance(self, index: Any) -> None:
        """After a step: ``index`` (the one it returned) points at the next row."""
        self.index, self.at = index, self.at + 1


__all__ = ["ROWS", "Constants", "Layout", "Plan", "Record"]
