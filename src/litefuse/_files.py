"""Atomic file output: every file litefuse writes appears complete or not at all.

A writer fills a temporary file in the destination's folder (same file system), which is then
given the permissions a plain ``open`` would have (``0666 & ~umask``; ``mkstemp`` creates
``0600``) and renamed over the destination with ``os.replace``. On any error the temporary
file is removed and an existing destination stays untouched.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["temporary_beside", "publish", "atomic_write_text"]


@contextmanager
def temporary_beside(path: Path, suffix: str = ".tmp") -> Iterator[str]:
    """A temporary file name in ``path``'s folder (created empty), removed unless published.

    ``suffix`` matters to writers that infer a format from the name (ffmpeg).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)


def publish(tmp: str, path: Path, fsync: bool = False) -> None:
    """Give a finished temporary file the usual permissions and move it over ``path``."""
    if fsync:
        with open(tmp, "r+b") as fh:  # Windows flushes only a handle open for writing (EBADF otherwise)
            os.fsync(fh.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary_beside(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        publish(tmp, path)
