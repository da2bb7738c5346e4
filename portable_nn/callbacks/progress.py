"""``ProgressBar``: a tqdm bar per epoch (verbose=1), one line per epoch (verbose=2), or nothing.

Per-batch logs hold device 0-d arrays; reading one (``float``) waits for the GPU. The bar reads
them only when it redraws: at most once every ``refresh_interval`` seconds and at the end of
the epoch (which uses the epoch logs, already Python floats). Between redraws a batch costs
one clock read.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

from portable_nn import validation
from portable_nn.backend import is_array, read_scalars

from .base import Callback, Logs

_clock = time.perf_counter  # module attribute so tests can drive time


class ProgressBar(Callback):
    """Keras's progress output for ``fit`` (and for ``evaluate``/``predict`` outside ``fit``).

    Parameters
    ----------
    verbose : 1 (or ``"auto"``): a tqdm bar per epoch with samples/s and the running loss and
        metrics; 2: one line per epoch, ``Epoch 3/10 - 0.4s - loss: 0.1234 - val_loss: ...``;
        0: silent.
    file : a text stream; default ``sys.stdout`` at the time of writing.
    refresh_interval : least seconds between two redraws (and two device read-backs).
    """

    def __init__(
        self, verbose: int | str = 1, file: TextIO | None = None, refresh_interval: float = 0.2
    ) -> None:
        super().__init__()
        verbose = validation.choice("verbose", verbose, (0, 1, 2, "auto"))
        self.verbose = 1 if verbose == "auto" else verbose
        self.file = file
        self.refresh_interval = validation.non_negative("refresh_interval", refresh_interval)
        self._bar: Any = None
        self._in_fit = False
        self._desc, self._last_batch = "", None
        self._start_time = self._last_draw = 0.0

    def implements(self, hook: str) -> bool:
        if "batch" in hook:  # only the bar needs per-batch calls
            return self.verbose == 1 and super().implements(hook)
        return self.verbose != 0 and super().implements(hook)

    # -- fit ----------------------------------------------------------------------------------
    def on_train_begin(self, logs: Logs = None) -> None:
        self._in_fit = True

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        epochs = self.params.get("epochs")
        self._start(f"Epoch {epoch + 1}" + (f"/{epochs}" if epochs else ""))

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._advance(batch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self._finish(logs)

    def on_train_end(self, logs: Logs = None) -> None:
        self._close()
        self._in_fit = False

    # -- evaluate / predict outside fit (validation inside fit draws nothing) ------------------
    def on_test_begin(self, logs: Logs = None) -> None:
        if not self._in_fit:
            self._start("Evaluate")

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        if not self._in_fit:
            self._advance(batch, logs)

    def on_test_end(self, logs: Logs = None) -> None:
        if not self._in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs: Logs = None) -> None:
        self._start("Predict")

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._advance(batch, None)  # predict logs hold outputs, not metrics

    def on_predict_end(self, logs: Logs = None) -> None:
        self._finish(None)

    # -- drawing ------------------------------------------------------------------------------
    def _stream(self) -> TextIO:
        return self.file if self.file is not None else sys.stdout

    def _counts_samples(self) -> bool:
        return bool(self.params.get("samples")) and bool(self.params.get("batch_size"))

    def _position(self, batch: int) -> int:
        if self._counts_samples():
            return min((batch + 1) * self.params["batch_size"], self.params["samples"])
        return batch + 1

    def _start(self, desc: str) -> None:
        self._close()
        self._desc, self._last_batch = desc, None
        self._start_time = self._last_draw = _clock()
        if self.verbose == 1:
            samples = self._counts_samples()
            self._bar = tqdm(
                total=self.params.get("samples" if samples else "steps"),
                desc=desc,
                unit=" samples" if samples else " steps",
                file=self._stream(),
                mininterval=0.0,  # we decide when to draw; every update() below draws
                miniters=1,
            )

    def _advance(self, batch: int, logs: Logs) -> None:
        if self._bar is None:
            return
        self._last_batch, now = batch, _clock()
        if now - self._last_draw >= self.refresh_interval:
            self._last_draw = now
            self._bar.set_postfix_str(format_logs(logs), refresh=False)
            self._bar.update(max(self._position(batch) - self._bar.n, 0))

    def _finish(self, logs: Logs) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(format_logs(logs), refresh=False)
            if self._last_batch is not None:  # where the loop stopped (early stop included)
                self._bar.n = max(self._position(self._last_batch), self._bar.n)
            self._close()  # draws the final state once, with the epoch's average rate
        elif self.verbose == 2:
            text = format_logs(logs)
            line = f"{self._desc} - {_clock() - self._start_time:.1f}s"
            print(line + (f" - {text}" if text else ""), file=self._stream(), flush=True)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def format_logs(logs: Logs) -> str:
    """``"loss: 0.1234 - accuracy: 0.9500"``; the 0-d device values are read back together, in
    one transfer (one sync). Values below 1e-3 in magnitude use scientific notation, as Keras
    does."""
    scalars = {
        key: value
        for key, value in (logs or {}).items()
        if isinstance(value, (int, float)) or (is_array(value) and value.ndim == 0)
    }
    parts = []
    for key, number in read_scalars(scalars).items():
        small = number != 0.0 and math.isfinite(number) and abs(number) < 1e-3
        parts.append(f"{key}: {number:.4e}" if small else f"{key}: {number:.4f}")
    return " - ".join(parts)


ProgbarLogger = ProgressBar  # Keras's name

__all__ = ["ProgbarLogger", "ProgressBar", "format_logs"]
