"""Errors litefuse reports to users as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations

from pathlib import Path


class LitefuseError(Exception):
    """Base class of every error meant for the user."""


class InputError(LitefuseError):
    """A bad input file or array: names the file (when there is one) and the problem."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class OutputError(LitefuseError):
    """An output that cannot or must not be written."""


class OptionError(LitefuseError, ValueError):
    """An unknown option value or an impossible combination of options (also a ``ValueError``)."""


class ModelError(LitefuseError):
    """Unknown model name, missing or incompatible weights."""


class TrainingError(LitefuseError):
    """A training run that cannot go on: its loss or weights stopped being finite numbers."""
