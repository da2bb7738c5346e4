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

from collections.abc import Iterable
from typing import Any

Logs = dict[str, Any] | None

HOOKS: tuple[str, ...] = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
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
            if getattr(cls, old) is not getattr(Callback, old) and _is_base(cls, new):
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
        method = getattr(self, hook)
        return getattr(method, "__func__", method) is not getattr(Callback, hook)

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


def _is_base(cls: type, hook: str) -> bool:
    return getattr(cls, hook) is getattr(Callback, hook)


def _forward_to(old: str) -> Any:
    def hook(self: Callback, batch: int, logs: Logs = None) -> None:
        getattr(self, old)(batch, logs)

    hook.__name__ = _ALIASES[old]
    return hook


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
        super().__init__()
        if isinstance(callbacks, Callback):
            callbacks = [callbacks]
        self.callbacks: list[Callback] = list(callbacks or [])
        for i, cb in enumerate(self.callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks[{i}] must be a pnn.callbacks.Callback. Received: {cb!r}"
                )
        self._add_defaults(add_history, add_progbar, (params or {}).get("verbose", 1))
        self._users: dict[str, list[Callback]] = {}
        if model is not None:
            self.set_model(model)
        self.set_params(params or {})

    def _add_defaults(self, add_history: bool, add_progbar: bool, verbose: int) -> None:
        from .history import History
        from .progress import ProgressBar

        self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        has_bar = any(isinstance(c, ProgressBar) for c in self.callbacks)
        if add_progbar and verbose and not has_bar:
            self.callbacks.append(ProgressBar(verbose))

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)
        self._users.clear()

    def append(self, callback: Callback) -> None:
        if not isinstance(callback, Callback):
            raise TypeError(f"expected a pnn.callbacks.Callback. Received: {callback!r}")
        self.callbacks.append(callback)
        self._users.clear()

    def implements(self, hook: str) -> bool:
        return bool(self._callbacks_using(hook))

    def _callbacks_using(self, hook: str) -> list[Callback]:
        users = self._users.get(hook)
        if users is None:
            users = self._users[hook] = [cb for cb in self.callbacks if cb.implements(hook)]
        return users

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self._callbacks_using(hook):
            getattr(cb, hook)(*args)

    def __iter__(self) -> Any:
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)


def _dispatcher(hook: str, batch_like: bool) -> Any:
    if batch_like:

        def method(self: CallbackList, index: int, logs: Logs = None) -> None:
            self._call(hook, index, logs)

    else:

        def method(self: CallbackList, logs: Logs = None) -> None:
            self._call(hook, logs)

    method.__name__ = hook
    return method


for _hook in HOOKS:
    setattr(CallbackList, _hook, _dispatcher(_hook, "batch" in _hook or "epoch" in _hook))

__all__ = ["HOOKS", "Callback", "CallbackList", "Logs"]
