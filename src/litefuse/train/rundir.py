"""The run folder: its file names, its creation, and the clean-up after a failed start.

A run that fails before it has a checkpoint (a bad config, no or unreadable data, a time budget
spent in a pre-pass, an interrupt) has nothing worth keeping and nothing to ``--resume``:
:class:`RunFolder` then removes the run files this invocation wrote, and the folder itself (with
any parents it made) when this invocation created it and nothing else is left in it. A folder
that cannot be created or written is an :class:`~litefuse.errors.OutputError`, reported as one
line like every other user-facing failure.

Two invocations never write one folder at once: ``create()`` takes an exclusive lock on the
folder's ``.litefuse-train.lock`` (``flock``; the OS drops it when the process ends, even on
``kill -9``), held until the ``with`` block ends (the file is then removed), and a second run into the folder is refused
with an :class:`~litefuse.errors.OutputError` (without it both wrote ``last.pt``, ``log.csv``
and the weights, interleaved). Where ``fcntl`` is missing (Windows) there is no lock.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from ..errors import OutputError

__all__ = ["CHECKPOINT", "CONFIG", "LOG", "SUMMARY", "TENSORBOARD", "WEIGHTS", "RUN_FILES", "RunFolder"]

CHECKPOINT = "last.pt"
WEIGHTS = "model.safetensors"
SUMMARY = "summary.json"
LOG = "log.csv"
CONFIG = "config.json"
TENSORBOARD = "tb"
LOCK = ".litefuse-train.lock"
#: everything a run writes into its folder
RUN_FILES = (CONFIG, LOG, TENSORBOARD, CHECKPOINT, WEIGHTS, SUMMARY)


def _entries(folder: Path) -> set[str]:
    try:
        return {p.name for p in folder.iterdir()}
    except OSError:
        return set()


class RunFolder:
    """Context manager around one training invocation in ``path`` (see the module docstring).

    ``create()`` makes the folder when the run is about to write; an exception leaving the
    ``with`` block before ``last.pt`` exists triggers :meth:`discard`. The exception itself
    propagates unchanged.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._before: set[str] = set()
        self._made: list[Path] = []  # folders this invocation created, deepest first
        self._lock: int | None = None  # the lock file's descriptor, while this invocation holds it
        self._refused = False  # another run holds the folder

    def __enter__(self) -> "RunFolder":
        self._before = _entries(self.path)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            # only the lock's holder cleans up: a run refused for another's lock leaves its files alone
            if kind is not None and not self._refused and not (self.path / CHECKPOINT).exists():
                self.discard()
        finally:
            if self._lock is not None:
                try:  # a run folder keeps only its run files; discard() may have removed it already,
                    # and the path may now be the lock file of a run that took the folder since: kept
                    if os.stat(self.path / LOCK).st_ino == os.fstat(self._lock).st_ino:
                        (self.path / LOCK).unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
                os.close(self._lock)  # releases the lock
                self._lock = None

    def create(self) -> None:
        """Create the folder (and parents) and check that it can be written; :class:`OutputError` if not."""
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{self.path}: exists and is not a folder; choose another --output")
        self._made = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.path):
                pass
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the run folder ({exc.strerror or exc}); choose another --output") from None
        self._take_lock()

    def _take_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here
            return
        path = self.path / LOCK
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:  # another user's file left by a killed run, or a folder in its place
                raise OutputError(f"{path}: cannot open the run folder's lock ({exc.strerror or exc}); "
                                  "remove it if no litefuse train is writing here, or choose another --output") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):  # no locks on this file system
                    (self.path / LOCK).unlink(missing_ok=True)
                    return
                self._refused = True
                raise OutputError(f"{self.path}: another litefuse train is writing to this run folder; "
                                  "wait for it to end (then --resume), or choose another --output") from None
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:  # not a file its last holder removed meanwhile
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self._lock = fd

    def discard(self) -> None:
        """Remove the run files that appeared since entry, then the folders made here if empty."""
        for name in (*RUN_FILES, LOCK):
            target = self.path / name
            if name in self._before or not (target.exists() or target.is_symlink()):
                continue
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        for folder in self._made:
            try:
                folder.rmdir()
            except OSError:  # not empty (someone else's files) or already gone: leave it
                break
