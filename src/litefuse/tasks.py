"""Tasks: what a pair is, and which method fuses it when none is named.

``ivif`` is an infrared + visible pair; ``mff``, ``mef`` and ``medical`` are A/B pairs
(multi-focus, multi-exposure, medical); ``ab`` is an A/B pair whose task is not said (a folder
of ``A/B`` pairs does not say it). The default method per task follows each method's
:attr:`~litefuse.registry.ModelInfo.default_rank` (docs/models.md, "The default method per task").
Where neither a task nor a method is named, an A/B pair's task is read from its pixels
(:func:`read_ab_task`), so that its default fuses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .data.pairs import Pair, find_pairs, pair_dirs, pair_folders
from .errors import InputError, ModelError, OptionError
from .registry import MODEL_TASKS, ModelInfo, list_models

__all__ = ["TASKS", "AB_TASKS", "check_task", "covers", "default_model", "default_rank", "folder_task", "outside_task", "unnamed_ab_note",
           "read_ab_task", "read_pair_task", "read_folder_tasks", "shared_task", "read_task_note"]

AB_TASKS = frozenset(MODEL_TASKS) - {"ivif"}
TASKS = ("ivif", "ab", *sorted(AB_TASKS))  # "ab": an A/B pair of any of the A/B tasks


def check_task(task: str) -> str:
    """Validate a task name: ``ivif`` (infrared + visible), ``mff``, ``mef``, ``medical`` or ``ab``."""
    if task not in TASKS:
        raise OptionError(f"task {task!r}: expected one of {', '.join(TASKS)}")
    return task


def covers(info: ModelInfo, task: str) -> bool:
    """Whether a method's weights were made for ``task`` (``"ab"``: every A/B task)."""
    return (AB_TASKS if task == "ab" else {task}) <= set(info.tasks)


def default_rank(info: ModelInfo, task: str) -> int | None:
    """``info``'s place among the defaults for ``task`` (None: never its default): its
    ``default_rank`` for every task it covers, or per task where that is a mapping."""
    ranks = info.default_rank
    if isinstance(ranks, Mapping):  # ranked for the tasks named only
        return ranks.get(task)
    return ranks if ranks is not None and covers(info, task) else None


def default_model(task: str = "ivif") -> str:
    """The default method for ``task``: of the methods that ship weights and cover it, the one
    of lowest :attr:`~litefuse.registry.ModelInfo.default_rank` (the networks first, classical
    ``gff`` last; ``laplacian`` first for multi-focus and multi-exposure pairs, where it was
    measured ahead of every network). ``task="ab"`` stands for the A/B pair tasks (multi-focus,
    multi-exposure, medical) together, which one general network covers."""
    check_task(task)
    ranked = sorted((place, m.name) for m in list_models()
                    if (place := default_rank(m, task)) is not None and m.has_weights)
    if not ranked:
        raise ModelError(f"no registered method is a default for task {task!r}")
    return ranked[0][1]


def folder_task(folder: str | Path) -> str:
    """``"ab"`` for a folder of ``A/B`` pairs (multi-focus, multi-exposure, medical), else
    ``"ivif"``; for a parent of pair folders, theirs (all of one kind, else :class:`InputError`)."""
    kinds = {"ab" if pair_dirs(f)[0].name.lower() == "a" else "ivif" for f in pair_folders(folder) or [Path(folder)]}
    if len(kinds) > 1:
        raise InputError("holds both infrared/visible and A/B pair folders; give one kind at a time", folder)
    return kinds.pop()


def outside_task(label: str, info: ModelInfo, task: str) -> str | None:
    """The note for a method used on pairs of a ``task`` its weights never saw, or ``None``."""
    if covers(info, task):
        return None
    return f"{label} is made for {'/'.join(info.tasks)} pairs, not {'A/B' if task == 'ab' else task}: its weights never saw such pairs, expect weaker results"


def unnamed_ab_note(name: str, task_option: bool = True) -> str | None:
    """The note for A/B pairs fused with ``name``, the default of A/B pairs whose task is not
    named, where a named task would pick another method; ``None`` where none would.
    ``task_option``: the command takes ``--task`` (else the note names ``-m``)."""
    picks: dict[str, list[str]] = {}
    for task in sorted(AB_TASKS):
        if (other := default_model(task)) != name:
            picks.setdefault(other, []).append(task)
    said = "; ".join(f"--task {'|'.join(tasks)} picks {other}" if task_option else f"-m {other} for {'|'.join(tasks)} pairs"
                     for other, tasks in picks.items())
    return f"note: {name} fuses A/B pairs of any task; {said}, measured ahead of it on those pairs" if picks else None


# ------------------------------------------------------------------------------------------
# An A/B pair's task read from its pixels
# ------------------------------------------------------------------------------------------

#: A medical scan's background: the share of near-black pixels (luminance below :data:`DARK` of
#: the pair's peak) in *each* source. Development pairs (docs/models.md): every medical pair
#: 0.53-0.83, every multi-focus and multi-exposure photograph 0.00-0.32 (training split; threshold midway).
SCAN_BACKGROUND = 0.42
DARK = 0.04
#: Multi-exposure: ``|log|`` of the ratio of the sources' mean luminances (each + 0.02 of the
#: pair's peak), i.e. one source ~1.46x as bright as the other. Development pairs: multi-exposure
#: 0.48-2.78, multi-focus 0.00-0.28 (training split; threshold midway).
EXPOSURE_GAP = 0.38
#: Pairs read per pair folder (spread over it) by :func:`read_folder_tasks`, fewer where a parent
#: holds many folders (:data:`FOLDER_READS` in all, at least one per folder)
FOLDER_SAMPLE = 3
FOLDER_READS = 24

_TASK_WORDS = {"mef": ("multi-exposure", "photographs"), "mff": ("multi-focus", "photographs"), "medical": ("medical", "scans")}


def _luma(x: np.ndarray) -> np.ndarray:
    return x.mean(2) if x.ndim == 3 else x


def read_ab_task(a: np.ndarray, b: np.ndarray) -> str:
    """The A/B task a pair's pixels suggest (float images in [0, 1], grey or colour, any sizes),
    measured against the pair's peak (12-bit data in 16-bit files reads as 8-bit data does):
    ``"medical"`` where both sources are mostly black background (:data:`SCAN_BACKGROUND`),
    else ``"mef"`` where one source is on average much brighter (:data:`EXPOSURE_GAP`), else
    ``"mff"``. On all 341 A/B pairs of the development data (MFIFB, MEFB, MRI_CT, MRI_PET,
    MRI_SPECT) it names each pair's own task."""
    ya, yb = _luma(a), _luma(b)
    peak = max(float(ya.max(initial=0.0)), float(yb.max(initial=0.0))) or 1.0
    if min(float((ya < DARK * peak).mean()), float((yb < DARK * peak).mean())) >= SCAN_BACKGROUND:
        return "medical"
    gap = abs(float(np.log((ya.mean() + 0.02 * peak) / (yb.mean() + 0.02 * peak))))
    return "mef" if gap >= EXPOSURE_GAP else "mff"


def read_pair_task(a: str | Path, b: str | Path) -> str | None:
    """:func:`read_ab_task` of two image files, read quietly (:func:`litefuse.io.unsaid_notes`);
    ``None`` where one cannot be read: the run that fuses them says its notes and errors, in its order."""
    from .io import read_image, unsaid_notes

    try:
        with unsaid_notes():
            return read_ab_task(read_image(a), read_image(b))
    except InputError:
        return None


def read_folder_tasks(folder: str | Path) -> tuple[str, ...]:
    """The A/B tasks the pairs of a folder of ``A/B`` pairs (or of each folder below a parent)
    read as (:func:`read_ab_task` of :data:`FOLDER_SAMPLE` pairs per folder, spread over it),
    sorted; unreadable pairs are left to the run, so none read gives ``()``."""
    folders = pair_folders(folder) or [Path(folder)]
    k = max(1, min(FOLDER_SAMPLE, FOLDER_READS // len(folders)))
    found: set[str | None] = set()
    for f in folders:
        pairs: list[Pair] = find_pairs(f)[0]
        m = min(k, len(pairs))
        found |= {read_pair_task(pairs[i].a, pairs[i].b) for i in {round(j * (len(pairs) - 1) / max(m - 1, 1)) for j in range(m)}}
    return tuple(sorted(found - {None}))


def shared_task(tasks: Sequence[str]) -> str | None:
    """One of ``tasks`` whose default method is every one's (multi-focus and multi-exposure
    pairs share theirs), else ``None`` (none given, or their defaults differ)."""
    return tasks[0] if tasks and len({default_model(t) for t in tasks}) == 1 else None


def read_task_note(tasks: Sequence[str], name: str, subject: str, options: Sequence[str] = ("--task mef|mff|medical", "-m METHOD")) -> str:
    """The note for A/B pairs of unnamed task that :func:`read_ab_task` read as ``tasks`` and
    ``name`` fuses: what they were read as, and the options that say otherwise; where the tasks'
    defaults differ (:func:`shared_task`), that ``name``, the default of unread A/B pairs, fuses them all."""
    groups: dict[str, list[str]] = {}
    for t in tasks:
        kind, noun = _TASK_WORDS[t]
        groups.setdefault(noun, []).append(kind)
    said = " and ".join(f"{' and '.join(kinds)} {noun}" for noun, kinds in groups.items())
    if shared_task(tasks) is None:
        return (f"note: {subject} read as {said}, whose default methods differ: {name} fuses them all; fuse each set on its "
                f"own, or name the task or method ({' or '.join(options)})")
    return f"note: {subject} read as {said} (no task named): {name} fuses them; {' or '.join(options)} to say otherwise"
