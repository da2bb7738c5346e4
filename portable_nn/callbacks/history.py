"""Records of training: ``History`` (in memory) and ``CSVLogger`` (one CSV row per epoch)."""

from __future__ import annotations

import contextlib
import csv
import os
from typing import Any

from .base import Callback, Logs, file_path


class History(Callback):
    """Epoch logs as lists: ``history["loss"][i]`` is the loss of epoch ``epoch[i]``.

    ``fit`` returns it and sets ``model.history`` to it. Keys first seen after epoch 0 (e.g.
    validation every few epochs) have shorter lists, as in Keras.
    """

    def __init__(self) -> None:
        super().__init__()
        self.on_train_begin()

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        self._attach()

    def on_train_begin(self, logs: Logs = None) -> None:
        self.epoch: list[int] = []
        self.history: dict[str, list[Any]] = {}

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self._attach()

    def _attach(self) -> None:
        if self.model is not None:
            with contextlib.suppress(AttributeError):  # a model without that attribute slot
                self.model.history = self


class CSVLogger(Callback):
    """Write ``epoch`` and the epoch logs (sorted keys) as CSV rows, flushed every epoch.

    As Keras: the columns are fixed by the first epoch; when it has no ``val_*`` keys, ``val_``
    columns are added for every key (``NA`` until validation runs); missing values are ``NA``.
    With ``append=True`` an existing non-empty file keeps its header and gets new rows.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename = file_path("filename", filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(
                f"Expected a one-character separator. Received: separator={separator!r}"
            )
        self.separator = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self._file: Any = None
        self._writer: Any = None

    def on_train_begin(self, logs: Logs = None) -> None:
        self.close()
        if not self._silent():
            mode = "a" if self.append else "w"
            self._file = open(self.filename, mode, newline="", encoding="utf-8")

    def _silent(self) -> bool:
        """In a data-parallel ``fit`` only rank 0 writes (every rank has the same logs)."""
        parallel = getattr(self.model, "_parallel", None)
        return parallel is not None and parallel.engine.rank != 0

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        if self._silent():
            return
        if self._file is None:
            self.on_train_begin()
        if self._writer is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += ["val_" + k for k in self.keys]
            fields = ["epoch", *self.keys]
            self._writer = csv.DictWriter(self._file, fieldnames=fields, delimiter=self.separator)
            if not self._file.tell():  # a new or empty file (append mode opens at its end)
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


__all__ = ["CSVLogger", "History"]
