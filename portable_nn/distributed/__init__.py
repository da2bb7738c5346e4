"""Data-parallel training across processes and hosts on MPI or ``torch.distributed``.

Launch one process per device with ``mpiexec -n N python train.py`` (NumPy, CuPy or JAX
models; MPI through mpi4py; CuPy arrays through NCCL where CuPy has it) or ``torchrun
--nproc-per-node N train.py`` (torch models: gloo on CPUs, NCCL on GPUs); the same script works
under both and in one plain process::

    import portable_nn as pnn
    pnn.distributed.init()                  # idempotent; nothing to do in a single process
    model.fit(x, y, batch_size=512, distributed=True)   # every rank passes the same x, y
    if pnn.distributed.is_main():
        print("done")

See :mod:`portable_nn.distributed.parallel` for what ``fit(distributed=True)`` does. JAX's own
multi-process runtime is not used (JAX models use MPI with host staging).
"""

from __future__ import annotations

from portable_nn.backend.collectives import Engine, launcher_engine, make_engine

_engine: Engine | None = None


def init(engine: str | None = None) -> Engine:
    """Join the job the launcher started (``engine``: ``"mpi"``, ``"torch"`` or ``"none"``;
    default: from the launcher's environment). Calling it again returns the same engine."""
    global _engine
    if _engine is None:
        _engine = make_engine(engine or launcher_engine())
    elif engine is not None and engine != "none" and not _engine.name.startswith(engine):
        raise ValueError(f"distributed.init: already running on {_engine.name}, not {engine}")
    return _engine


def engine() -> Engine:
    """The job's engine (:func:`init` on first use)."""
    return init()


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1 (0 in a single process)."""
    return 0 if _engine is None else _engine.rank


def world_size() -> int:
    """The number of processes (1 in a single process)."""
    return 1 if _engine is None else _engine.size


def is_main() -> bool:
    """True on rank 0, which prints progress bars and writes checkpoints."""
    return rank() == 0


__all__ = ["Engine", "engine", "init", "is_main", "rank", "world_size"]
