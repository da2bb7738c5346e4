"""Keras-style training for models: compile / fit / evaluate / predict / train_step.

``mixin.py`` (fit, evaluate, predict), ``steps.py`` (compile and one batch), ``loop.py`` (the batch
loops, device-side sums and the callbacks' batch hooks), ``rng.py`` (random state for
checkpoints). Data checks, placement and batching live in :mod:`portable_nn.data`.
"""

from .mixin import TrainingMixin

__all__ = ["TrainingMixin"]
