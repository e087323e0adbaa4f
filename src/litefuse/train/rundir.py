"""The run folder: its file names, its creation, and the clean-up after a failed start.

A run that fails before it has a checkpoint (a bad config, no or unreadable data, a time budget
spent in a pre-pass, an interrupt) has nothing worth keeping and nothing to ``--resume``:
:class:`RunFolder` then removes the run files this invocation wrote, and the folder itself (with
any parents it made) when this invocation created it and nothing else is left in it. A folder
that cannot be created or written is an :class:`~litefuse.errors.OutputError`, reported as one
line like every other user-facing failure.
"""

from __future__ import annotations

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

    def __enter__(self) -> "RunFolder":
        self._before = _entries(self.path)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None and not (self.path / CHECKPOINT).exists():
            self.discard()

    def create(self) -> None:
        """Create the folder (and parents) and check that it can be written; :class:`OutputError` if not."""
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{self.path}: exists and is not a folder; choose another --out")
        self._made = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.path):
                pass
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the run folder ({exc.strerror or exc}); choose another --out") from None

    def discard(self) -> None:
        """Remove the run files that appeared since entry, then the folders made here if empty."""
        for name in RUN_FILES:
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
