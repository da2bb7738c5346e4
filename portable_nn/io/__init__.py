"""Checkpoints: safetensors files, written atomically, readable on every backend. No pickle.

* :func:`save_tensors` / :func:`load_tensors` / :func:`read_metadata` — named arrays.
"""

from .atomic import atomic_open, atomic_write_bytes
from .tensors import load_tensors, read_metadata, save_tensors

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "load_tensors",
    "read_metadata",
    "save_tensors",
]
