"""Keras-style callbacks for ``fit``: hooks called at the start and end of training, epochs and
batches (see :mod:`portable_nn.callbacks.base` for the logs each hook gets).

Per-batch logs hold device 0-d arrays (running means); epoch logs hold Python floats. The
callbacks here read device values back only when they need them: ``ProgressBar`` when it
redraws, ``TerminateOnNaN`` at epoch end (and every ``check_every`` batches when asked).
"""

from .base import HOOKS, Callback, CallbackList
from .checkpoint import ModelCheckpoint
from .early_stopping import EarlyStopping
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
    "TerminateOnNaN",
    "format_logs",
]
