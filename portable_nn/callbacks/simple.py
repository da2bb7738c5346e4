"""Small callbacks: ``TerminateOnNaN`` and ``LambdaCallback``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from portable_nn import validation

from .base import _ALIASES, HOOKS, Callback, Logs


class TerminateOnNaN(Callback):
    """Stop training when the loss becomes NaN or infinite.

    Default: the epoch's loss (a Python float, read with the epoch's logs) is checked at the
    end of every epoch: no host sync inside an epoch. ``check_every=N`` also checks the running
    loss after every N-th batch (Keras checks every batch: ``check_every=1``); each check reads
    a device value back, one sync. The logged loss is the epoch's running mean, so a NaN/inf
    from any batch stays in it and is caught at the next check (the weights are already
    non-finite after the first bad update either way). ``stopped_batch``/``stopped_epoch`` say
    where it stopped (``stopped_batch`` is None when the epoch-end check caught it).
    """

    def __init__(self, check_every: int | None = None) -> None:
        super().__init__()
        if check_every is not None:
            check_every = validation.positive_int("check_every", check_every)
        self.check_every = check_every
        self.stopped_batch: int | None = None
        self.stopped_epoch: int | None = None
        self._epoch = 0

    def implements(self, hook: str) -> bool:
        if hook == "on_train_batch_end":  # the loop skips per-batch logs when nobody reads them
            return self.check_every is not None
        return super().implements(hook)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        every = self.check_every
        if every is not None and (batch + 1) % every == 0 and self._bad(logs):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.stopped_batch, self.stopped_epoch = batch, self._epoch
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.stopped_epoch is None and self._bad(logs):
            print(f"Epoch {epoch + 1}: Invalid loss, terminating training")
            self.stopped_epoch = epoch
            self.model.stop_training = True

    @staticmethod
    def _bad(logs: Logs) -> bool:
        loss = (logs or {}).get("loss")
        return loss is not None and not math.isfinite(float(loss))


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda epoch, logs:
    print(logs["loss"]))``.

    Signatures: ``on_epoch_begin/on_epoch_end(epoch, logs)``, ``on_train_batch_begin/
    on_train_batch_end(batch, logs)``, ``on_train_begin/on_train_end(logs)``. The other Keras
    hooks (``on_test_begin=...``, ``on_predict_batch_end=...``) are accepted as keywords too.
    Keras 2's ``on_batch_begin``/``on_batch_end`` mean the train-batch hooks. Each function
    given becomes the instance's hook (as in Keras); hooks not given cost nothing:
    ``implements`` reports them unused.
    """

    def __init__(
        self,
        on_epoch_begin: Callable[[int, Logs], Any] | None = None,
        on_epoch_end: Callable[[int, Logs], Any] | None = None,
        on_train_batch_begin: Callable[[int, Logs], Any] | None = None,
        on_train_batch_end: Callable[[int, Logs], Any] | None = None,
        on_train_begin: Callable[[Logs], Any] | None = None,
        on_train_end: Callable[[Logs], Any] | None = None,
        **other_hooks: Callable[..., Any],
    ) -> None:
        super().__init__()
        hooks = dict(
            on_epoch_begin=on_epoch_begin,
            on_epoch_end=on_epoch_end,
            on_train_batch_begin=on_train_batch_begin,
            on_train_batch_end=on_train_batch_end,
            on_train_begin=on_train_begin,
            on_train_end=on_train_end,
        )
        hooks.update((_ALIASES.get(name, name), fn) for name, fn in other_hooks.items())
        for name, fn in hooks.items():
            if name not in HOOKS:
                raise TypeError(f"LambdaCallback got an unknown hook {name!r}; hooks: {HOOKS}")
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable. Received: {name}={fn!r}")
            if fn is not None:
                setattr(self, name, fn)


__all__ = ["LambdaCallback", "TerminateOnNaN"]
