"""Checkpoints: safetensors files, written atomically, readable on every backend. No pickle.

* :func:`save_model` / :func:`load_model` — architecture, weights, compile settings, optimizer
  state, RNG state and epoch: everything needed to predict or to resume training exactly.
* :func:`save_weights` / :func:`load_weights` — a model's parameters and buffers only.
* :func:`save_tensors` / :func:`load_tensors` / :func:`read_metadata` — any named arrays (also
  reads safetensors files written by other libraries).

Files are written to a temporary file in the same folder, synced, then renamed over the
destination, so an interrupted save never damages an existing checkpoint. Loading validates
the whole file before allocating or assigning anything and raises ``ValueError`` naming the
tensor or the problem.
"""

from .atomic import atomic_open, atomic_write_bytes
from .checkpoint import FORMAT, FORMAT_VERSION, load_model, load_weights, save_model, save_weights
from .tensors import load_tensors, read_metadata, save_tensors

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "atomic_open",
    "atomic_write_bytes",
    "load_model",
    "load_tensors",
    "load_weights",
    "read_metadata",
    "save_model",
    "save_tensors",
    "save_weights",
]
