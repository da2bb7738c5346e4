"""Records of training: ``History`` (in memory) and ``CSVLogger`` (one CSV row per epoch)."""

from __future__ import annotations

import csv
import os
from typing import Any

from .base import Callback, Logs


class History(Callback):
    """Epoch logs as lists: ``history["loss"][i]`` is the loss of epoch ``epoch[i]``.

    ``fit`` returns it and sets ``model.history`` to it. Keys first seen after epoch 0 (e.g.
    validation every few epochs) have shorter lists, as in Keras.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epoch: list[int] = []
        self.history: dict[str, list[Any]] = {}

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        _try_set_history(model, self)

    def on_train_begin(self, logs: Logs = None) -> None:
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        _try_set_history(self.model, self)


def _try_set_history(model: Any, history: History) -> None:
    if model is not None:
        try:
            model.history = history
        except AttributeError:  # a model without that attribute slot
            pass


class CSVLogger(Callback):
    """Write ``epoch`` and the epoch logs (sorted keys) as CSV rows, flushed every epoch.

    As Keras: the columns are fixed by the first epoch; when it has no ``val_*`` keys, ``val_``
    columns are added for every key (``NA`` until validation runs); missing values are ``NA``.
    With ``append=True`` an existing non-empty file keeps its header and gets new rows.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)) or not os.fspath(filename):
            raise ValueError(f"Expected a file path. Received: filename={filename!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(
                f"Expected a one-character separator. Received: separator={separator!r}"
            )
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self._file: Any = None
        self._writer: Any = None
        self._write_header = True

    def on_train_begin(self, logs: Logs = None) -> None:
        self._open()

    def _open(self) -> None:
        self.close()
        exists = os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._write_header = not (self.append and exists)
        self._file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")
        self.keys, self._writer = None, None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        if self._file is None:
            self._open()
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += ["val_" + k for k in self.keys]
        if self._writer is None:
            fields = ["epoch", *self.keys]
            self._writer = csv.DictWriter(self._file, fieldnames=fields, delimiter=self.separator)
            if self._write_header:
                self._writer.writeheader()
        row = {"epoch": epoch, **{k: _cell(logs.get(k, "NA")) for k in self.keys}}
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs: Logs = None) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._writer = None, None


def _cell(value: Any) -> Any:
    if isinstance(value, (str, int, float)):
        return value
    if getattr(value, "ndim", None) == 0:
        return float(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
