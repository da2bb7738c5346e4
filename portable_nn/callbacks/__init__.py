"""Keras-style callbacks for ``fit``; :mod:`portable_nn.callbacks.base` states the hooks and
the logs they get (per-batch logs hold device 0-d arrays, read back only when a callback needs
them: ``ProgressBar`` when it redraws, ``TerminateOnNaN`` every ``check_every`` batches)."""

from .base import HOOKS, Callback, CallbackList
from .checkpoint import ModelCheckpoint
from .early_stopping import EarlyStopping
from .ema import SwapEMAWeights
from .history import CSVLogger, History
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau
from .progress import ProgbarLogger, ProgressBar, format_logs
from .simple import LambdaCallback, TerminateOnNaN

__all__ = [
    "HOOKS",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ProgbarLogger",
    "ProgressBar",
    "ReduceLROnPlateau",
    "SwapEMAWeights",
    "TerminateOnNaN",
    "format_logs",
]
