"""The callback contract (Keras's hooks) and ``CallbackList``, which forwards them in order.

Logs given to the hooks:

* per-batch hooks get running means (loss, metrics) as DEVICE 0-d arrays: reading one back
  (``float(v)``) waits for the GPU, so a callback does it only when it needs the value;
* epoch hooks get Python floats (``loss``, metrics, ``val_*``); callbacks may add entries
  (``ReduceLROnPlateau`` adds ``learning_rate``) that later callbacks in the list see;
* ``logs`` may be ``None`` at the begin hooks.

``params`` holds ``epochs``, ``steps`` (batches per epoch), ``verbose``, ``batch_size`` and
``samples`` (any may be missing, e.g. for ``evaluate``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from portable_nn import validation

Logs = dict[str, Any] | None

_STAGES = ("train", "epoch", "train_batch", "test", "test_batch", "predict", "predict_batch")
HOOKS: tuple[str, ...] = tuple(
    f"on_{stage}_{when}" for stage in _STAGES for when in ("begin", "end")
)
_ALIASES = {"on_batch_begin": "on_train_batch_begin", "on_batch_end": "on_train_batch_end"}


class Callback:
    """Base class: every hook is a no-op; subclasses override the ones they need.

    ``self.model`` and ``self.params`` are set by the training loop before ``on_train_begin``.
    Keras 2's ``on_batch_begin``/``on_batch_end`` still work: a subclass overriding them gets
    them called as ``on_train_batch_begin``/``on_train_batch_end``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for old, new in _ALIASES.items():
            if getattr(cls, old) is not getattr(Callback, old) and not _overrides(cls, new):
                setattr(cls, new, _forward_to(old))

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = dict(params)

    def implements(self, hook: str) -> bool:
        """True when ``hook`` does something for this instance (the loop can skip the rest,
        and skip building per-batch logs when no callback uses the batch hooks)."""
        return _overrides(self, hook)

    def on_train_begin(self, logs: Logs = None) -> None: ...
    def on_train_end(self, logs: Logs = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None: ...
    def on_batch_begin(self, batch: int, logs: Logs = None) -> None: ...
    def on_batch_end(self, batch: int, logs: Logs = None) -> None: ...
    def on_test_begin(self, logs: Logs = None) -> None: ...
    def on_test_end(self, logs: Logs = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None: ...
    def on_predict_begin(self, logs: Logs = None) -> None: ...
    def on_predict_end(self, logs: Logs = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None: ...


def _overrides(owner: Any, hook: str) -> bool:
    """Whether ``owner`` (a class or an instance) has its own ``hook``, not Callback's no-op."""
    method = getattr(owner, hook)
    return getattr(method, "__func__", method) is not getattr(Callback, hook)


def _forward_to(old: str) -> Any:
    def hook(self: Callback, batch: int, logs: Logs = None) -> None:
        getattr(self, old)(batch, logs)

    hook.__name__ = _ALIASES[old]
    return hook


def file_path(name: str, value: Any) -> str:
    """A non-empty ``str`` or path object (``ModelCheckpoint``, ``CSVLogger``), as ``str``."""
    return validation.text(name, os.fspath(value) if isinstance(value, os.PathLike) else value)


class CallbackList(Callback):
    """Several callbacks called in list order, each hook skipping those that do not use it.

    ``add_history``/``add_progbar`` append a :class:`History` / :class:`ProgressBar` (with
    ``params["verbose"]``) unless the list already has one, as Keras's ``CallbackList`` does.
    The same ``logs`` dict goes to every callback, so additions are seen by those after.
    """

    def __init__(
        self,
        callbacks: Callback | Iterable[Callback] | None = None,
        *,
        model: Any = None,
        params: dict[str, Any] | None = None,
        add_history: bool = False,
        add_progbar: bool = False,
    ) -> None:
        from .history import History
        from .progress import ProgressBar

        super().__init__()
        self.callbacks: list[Callback] = []
        self._users: dict[str, list[Callback]] = {}  # hook -> the callbacks implementing it
        for callback in [callbacks] if isinstance(callbacks, Callback) else callbacks or []:
            self.append(callback)
        params = params or {}
        self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if self.history is None and add_history:
            self.history = History()
            self.append(self.history)
        has_bar = any(isinstance(c, ProgressBar) for c in self.callbacks)
        if add_progbar and params.get("verbose", 1) and not has_bar:
            self.append(ProgressBar(params.get("verbose", 1)))
        if model is not None:
            self.set_model(model)
        self.set_params(params)

    def append(self, callback: Callback) -> None:
        if not isinstance(callback, Callback):
            raise TypeError(
                f"callbacks[{len(self.callbacks)}] must be a pnn.callbacks.Callback. "
                f"Received: {callback!r}"
            )
        self.callbacks.append(callback)
        self._users.clear()

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(params)
        self._users.clear()

    def implements(self, hook: str) -> bool:
        return bool(self._callbacks_using(hook))

    def _callbacks_using(self, hook: str) -> list[Callback]:
        if hook not in self._users:
            self._users[hook] = [c for c in self.callbacks if c.implements(hook)]
        return self._users[hook]

    def __iter__(self) -> Iterator[Callback]:
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)


def _dispatcher(hook: str) -> Any:
    def call(self: CallbackList, args: tuple[Any, ...]) -> None:
        for callback in self._callbacks_using(hook):
            getattr(callback, hook)(*args)

    if "batch" in hook or "epoch" in hook:

        def method(self: CallbackList, index: int, logs: Logs = None) -> None:
            call(self, (index, logs))

    else:

        def method(self: CallbackList, logs: Logs = None) -> None:
            call(self, (logs,))

    method.__name__ = hook
    return method


for _hook in HOOKS:
    setattr(CallbackList, _hook, _dispatcher(_hook))

__all__ = ["HOOKS", "Callback", "CallbackList", "Logs"]
