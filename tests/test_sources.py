"""The sources compile without warnings: an invalid escape sequence in a docstring (``\\ s``) is
a DeprecationWarning on Python 3.11, a SyntaxWarning from 3.12 and an error in a later Python,
and it shows only where no cached bytecode exists (a fresh install)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("src", "benchmarks", "tools", "tests") for p in (ROOT / d).rglob("*.py"))


def test_there_are_sources_to_check():
    assert any(p.name == "api.py" for p in SOURCES) and len(SOURCES) > 50


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_compiles_without_warnings(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
