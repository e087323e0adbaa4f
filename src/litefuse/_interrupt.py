"""Ctrl-C while the ``litefuse`` command is still starting (importing torch takes a second or
two): one line and exit code 130, as during a command, instead of a traceback from the import
machinery. Library users (``import litefuse`` in their own program) get the KeyboardInterrupt."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

_COMMANDS = {"litefuse", "litefuse.exe", "litefuse-script.py"}


def running_as_command(argv: list[str] | None = None) -> bool:
    """Whether this process is the ``litefuse`` command: its console script, or ``python -m
    litefuse`` (whose ``argv[0]`` is ``"-m"`` while the package is being imported)."""
    argv = sys.argv if argv is None else argv
    first = argv[0] if argv else ""
    return os.path.basename(first) in _COMMANDS or first == "-m" or first.endswith(os.path.join("litefuse", "__main__.py"))


@contextmanager
def quiet_interrupt() -> Iterator[None]:
    """Turn a KeyboardInterrupt inside the block into ``interrupted`` and exit code 130 when
    :func:`running_as_command`; re-raise it otherwise."""
    try:
        yield
    except KeyboardInterrupt:
        if not running_as_command():
            raise
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
