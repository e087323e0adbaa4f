"""Pair source images in a folder by file stem.

A fusion folder holds two sub-folders, one per source, and files of the same stem form a pair
(any image extension on either side). The recognised layouts are those of the public
benchmarks: ``ir/vi`` (MSRS, TNO, LLVIP copies), ``infrared/visible``, ``Inf/Vis`` and ``A/B``
(multi-focus, multi-exposure, medical). Folder names are matched case-insensitively.
:func:`match_stems` is the one pairing rule, also used by ``litefuse eval`` for its three
folders.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import InputError, OptionError
from ..io import IMAGE_EXTENSIONS

__all__ = ["PAIR_LAYOUTS", "Pair", "PairProblem", "find_pairs", "guess_template", "match_stems", "pair_dirs", "pair_folders", "pair_task", "unpaired_detail"]

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


def pair_task(pair: Pair, default: str = "ivif") -> str:
    """The task a folder pair's sources are checked for: ``"ab"`` for an ``A/B`` pair (two
    colour sources allowed), else ``default``."""
    return "ab" if pair.a.parent.name.lower() == "a" else default


def pair_dirs(root: str | Path) -> tuple[Path, Path]:
    """Find the two source sub-folders of ``root`` (see :data:`PAIR_LAYOUTS`)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a directory" if root.exists() else "directory not found", root)
    found = _layout(root, quiet=False)  # an unreadable folder: its OSError ("cannot read"), not "no sub-folders"
    if found is not None:
        return found
    layouts = ", ".join(f"{a}/{b}" for a, b in PAIR_LAYOUTS)
    below = [p.relative_to(root).as_posix() for p in pair_folders(root)]
    hint = (f"; it holds pair folders ({', '.join(below[:4])}{', ...' if len(below) > 4 else ''}): give one of them"
            " (fuse --input, compare -i and train -d take the parent too)") if below else ""
    raise InputError(f"no source sub-folders found; expected one of {layouts}{hint}", root)


_MAX_DEPTH = 3  # how deep a parent is searched for pair folders
_SAID: set[str] = set()  # notes of unreadable folders given in this process (warnings' own "once" is reset by catch_warnings)


def pair_folders(root: str | Path, depth: int = _MAX_DEPTH, _below: bool = False) -> list[Path]:
    """``root`` itself when it is a pair folder, else the pair folders below it (sorted), at most
    ``depth`` levels down (``shared/data/ivif`` gives LLVIP, MSRS, RoadScene, TNO); ``[]`` when
    ``root`` is not a folder. A folder below ``root`` that cannot be listed is left out with a
    warning naming it (a set the user meant would otherwise vanish without a word)."""
    root = Path(root)
    if not root.is_dir():
        return []
    if _layout(root) is not None:
        return [root]
    if depth == 0:
        return []
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        note = f"{root}: cannot read the folder ({exc.strerror or exc}); not searched for pairs"
        if _below and note not in _SAID:  # once: a command walks its input more than once
            _SAID.add(note)
            warnings.warn(note, UserWarning, stacklevel=2)
        return []
    return [folder for child in children for folder in pair_folders(child, depth - 1, _below=True)]


def _layout(root: Path, quiet: bool = True) -> tuple[Path, Path] | None:
    """``root``'s two source sub-folders (:data:`PAIR_LAYOUTS`), or ``None`` (also for a folder
    that cannot be listed, unless not ``quiet``: then its ``OSError``)."""
    try:
        subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    except OSError:
        if not quiet:
            raise
        return None
    for a, b in PAIR_LAYOUTS:
        if a in subdirs and b in subdirs:
            return subdirs[a], subdirs[b]
    return None


def _listing(folder: Path) -> list[Path]:
    """``folder``'s entries, sorted; one that cannot be listed is an :class:`InputError` naming it."""
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise InputError(f"cannot read the folder ({exc.strerror or exc})", folder) from None


def _images_by_stem(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in _listing(folder):
        # a broken link is listed too, so reading it names it (rather than its partner as unpaired)
        listed = path.is_file() or (path.is_symlink() and not path.exists())
        if listed and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS:
            found.setdefault(path.stem, []).append(path)
    return found


def _loose(stem: str) -> str:
    """A stem as a person reads it: letter case and Unicode form (é as one character or as e and
    an accent, as macOS writes names) set aside."""
    return unicodedata.normalize("NFC", stem).casefold()


def _template(template: str) -> re.Pattern:
    """A file-name template such as ``"{stem}_fused"`` as a pattern capturing the stem."""
    if template.count("{stem}") != 1:
        raise OptionError(f"name template {template!r}: expected exactly one {{stem}}, e.g. '{{stem}}_fused'")
    before, after = template.split("{stem}")
    return re.compile(re.escape(before) + "(?P<stem>.+)" + re.escape(after))


def _renamed(found: dict[str, list[Path]], template: str) -> tuple[dict[str, list[Path]], list[PairProblem]]:
    """``found`` keyed by the stems that ``template`` names, and a problem for each file it does
    not fit: not this role's (``a.png`` beside ``a_fused.png`` under ``{stem}_fused`` is another
    file, not a duplicate, and never scored in place of a missing ``a_x.png`` under ``{stem}_x``)."""
    pattern, out, unfit = _template(template), {}, []
    for stem, paths in found.items():
        if m := pattern.fullmatch(stem):
            out.setdefault(m["stem"], []).extend(paths)
        else:
            unfit += [PairProblem(stem, p, f"does not fit the name template '{template}'; not scored") for p in paths]
    return out, unfit


def guess_template(stems: Iterable[str], sources: Iterable[str]) -> tuple[str, int] | None:
    """The ``{stem}`` template (``"{stem}_fused"``, ``"fused_{stem}"``) that names the most of
    ``stems`` after a stem in ``sources``, with how many it names; ``None`` when none names any.
    What another method's output folder most likely does, said to the user, never applied unasked."""
    sources = set(sources)
    counts: dict[str, int] = {}
    for stem in set(stems) - sources:
        for src in sources:
            if len(stem) > len(src) and stem.startswith(src):
                counts["{stem}" + stem[len(src):]] = counts.get("{stem}" + stem[len(src):], 0) + 1
            if len(stem) > len(src) and stem.endswith(src):
                counts[stem[: -len(src)] + "{stem}"] = counts.get(stem[: -len(src)] + "{stem}", 0) + 1
    if not counts:
        return None
    best = max(counts, key=lambda t: (counts[t], -len(t)))
    return best, counts[best]


def match_stems(
    folders: Mapping[str, Path], names: Mapping[str, str] | None = None, nested: str = "fuse it as its own pair folder",
) -> tuple[dict[str, dict[str, Path]], list[PairProblem]]:
    """Group the images of several folders by file stem: the one pairing rule of litefuse.

    Returns ``{stem: {role: path}}`` for the stems with exactly one image in every folder
    (sorted), and a :class:`PairProblem` for each other stem: a file with no partner in some
    folder, or a stem shared by several files of one folder (ambiguous, so skipped).
    ``names``: a role's file-name template, e.g. ``{"fused": "{stem}_fused"}`` (another method's
    outputs, ``00001D_fused.png`` for the sources' ``00001D``). ``nested``: what to do with a
    subfolder, said in its problem (folders are not searched below their own files).
    """
    by_role = {role: _images_by_stem(folder) for role, folder in folders.items()}
    problems: list[PairProblem] = []
    for role, template in (names or {}).items():
        by_role[role], unfit = _renamed(by_role[role], template)
        problems += unfit
    matched: dict[str, dict[str, Path]] = {}
    subfolders = {role: {p.name: p for p in _listing(folder) if p.is_dir() and not p.name.startswith(".")}
                  for role, folder in folders.items()}
    for stem in sorted(set().union(*by_role.values())):
        files = {role: found[stem] for role, found in by_role.items() if stem in found}
        first = next(iter(files.values()))[0]
        dupes = [paths for paths in files.values() if len(paths) > 1]
        if dupes:
            names = "; ".join(", ".join(p.name for p in paths) for paths in dupes)
            problems.append(PairProblem(stem, dupes[0][0], f"duplicate stem ({names}); skipped"))
        elif len(files) < len(folders):
            missing = " and ".join(f"{folders[r].name}/" for r in folders if r not in files)
            # stems match exactly (a case-insensitive file system would be the exception): name
            # a partner that differs only in case, which the user most likely meant
            near = [p.name for r in folders if r not in files for st, ps in by_role[r].items()
                    if st != stem and _loose(st) == _loose(stem) for p in ps]
            hint = f" ({', '.join(near)} there differs in letter case or Unicode form; stems match exactly)" if near else ""
            # a folder named like the file (ir/a.png/ beside vi/a.png): one problem, said here
            dirs = [f"{folders[r].name}/{first.name}" for r in folders if subfolders[r].pop(first.name, None)]
            hint += f" ({' and '.join(dirs)} is a folder)" if dirs else ""
            problems.append(PairProblem(stem, first, f"no partner in {missing}{hint}"))
        else:
            matched[stem] = {role: paths[0] for role, paths in files.items()}
    for role, subs in subfolders.items():  # pairs are the files directly inside: say so, not "no pairs"
        problems += [PairProblem(name, sub, "subfolder not searched (pairs are the files directly in "
                                            f"{folders[role].name}/; {nested})") for name, sub in subs.items()]
    return matched, problems


def unpaired_detail(problems: Iterable[PairProblem]) -> str:
    """What follows "no image pairs found" when files were there: how many could not be paired and
    the first of each folder with why, so a naming mismatch (``ir/IR_001.png`` beside
    ``vi/VIS_001.png``) shows in the one line; ``""`` when there were none."""
    problems = list(problems)
    if not problems:
        return ""
    first: dict[Path, PairProblem] = {}
    for problem in problems:
        first.setdefault(problem.path.parent, problem)
    shown = "; ".join(f"{p.path.parent.name}/{p.path.name}: {p.problem}" for p in list(first.values())[:2])
    return f" ({len(problems)} unpaired or unreadable files, e.g. {shown})"


def find_pairs(root: str | Path) -> tuple[list[Pair], list[PairProblem]]:
    """Pairs in ``root`` sorted by name, and the files that could not be paired."""
    dir_a, dir_b = pair_dirs(root)
    matched, problems = match_stems({"a": dir_a, "b": dir_b})
    return [Pair(stem, files["a"], files["b"]) for stem, files in matched.items()], problems
