"""Atomic file writes: readers see the old file or the complete new one, never a torn one.

The new content goes to a temporary file in the destination's folder (same file system, so the
rename is atomic), is flushed and ``fsync``-ed, then ``os.replace``-d over the destination; the
folder is ``fsync``-ed too where the platform allows it, so the rename survives a power cut.
On any failure (including ``KeyboardInterrupt``) the temporary file is removed and the old
destination is left as it was (PyTorch Lightning #688/#689 lost checkpoints without this).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

PathLike = str | os.PathLike[str]


def _default_mode() -> int:
    """``0o666`` minus the process umask (what ``open(path, "w")`` would give a new file)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    """Persist a rename by syncing its folder; skipped where folders cannot be opened (Windows)
    or synced (some file systems)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path: PathLike, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Open a binary file whose content replaces ``path`` only if the ``with`` block succeeds.

    Parameters
    ----------
    path : destination file; its folder must exist.
    overwrite : when False, raise ``FileExistsError`` if ``path`` already exists.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write a file over the folder {path!r}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False")
    directory = os.path.dirname(os.path.abspath(path))
    mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.exists(path) else _default_mode()
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def atomic_write_bytes(path: PathLike, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, overwrite=overwrite) as file:
        file.write(data)
