"""Pair source images in a folder by file stem.

A fusion folder holds two sub-folders, one per source, and files of the same stem form a pair
(any image extension on either side). The recognised layouts are those of the public
benchmarks: ``ir/vi`` (MSRS, TNO, LLVIP copies), ``infrared/visible``, ``Inf/Vis`` and ``A/B``
(multi-focus, multi-exposure, medical). Names are matched case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io import IMAGE_EXTENSIONS

__all__ = ["PAIR_LAYOUTS", "Pair", "PairProblem", "find_pairs", "pair_dirs"]

PAIR_LAYOUTS: tuple[tuple[str, str], ...] = (("ir", "vi"), ("infrared", "visible"), ("inf", "vis"), ("a", "b"))


@dataclass(frozen=True)
class Pair:
    """Two registered sources of one scene; ``a`` is the infrared (or source A)."""

    name: str
    a: Path
    b: Path


@dataclass(frozen=True)
class PairProblem:
    """A file that could not be paired, and why."""

    name: str
    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def pair_dirs(root: str | Path) -> tuple[Path, Path]:
    """Find the two source sub-folders of ``root`` (see :data:`PAIR_LAYOUTS`)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a directory" if root.exists() else "directory not found", root)
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    for a, b in PAIR_LAYOUTS:
        if a in subdirs and b in subdirs:
            return subdirs[a], subdirs[b]
    layouts = ", ".join(f"{a}/{b}" for a, b in PAIR_LAYOUTS)
    raise InputError(f"no source sub-folders found; expected one of {layouts}", root)


def _images_by_stem(folder: Path, problems: list[PairProblem]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in found:
            problems.append(PairProblem(path.stem, path, f"duplicate stem (also {found[path.stem].name}); skipped"))
            continue
        found[path.stem] = path
    return found


def find_pairs(root: str | Path) -> tuple[list[Pair], list[PairProblem]]:
    """Pairs in ``root`` sorted by name, and the files that have no partner."""
    dir_a, dir_b = pair_dirs(root)
    problems: list[PairProblem] = []
    a_files, b_files = _images_by_stem(dir_a, problems), _images_by_stem(dir_b, problems)
    dupes = {p.name for p in problems}
    pairs = [Pair(s, a_files[s], b_files[s]) for s in sorted(a_files.keys() & b_files.keys()) if s not in dupes]
    for stem in sorted(a_files.keys() - b_files.keys()):
        problems.append(PairProblem(stem, a_files[stem], f"no partner in {dir_b.name}/"))
    for stem in sorted(b_files.keys() - a_files.keys()):
        problems.append(PairProblem(stem, b_files[stem], f"no partner in {dir_a.name}/"))
    return pairs, problems
