"""Tasks: what a pair is, and which method fuses it when none is named.

``ivif`` is an infrared + visible pair; ``mff``, ``mef`` and ``medical`` are A/B pairs
(multi-focus, multi-exposure, medical); ``ab`` is an A/B pair whose task is not said (a folder
of ``A/B`` pairs does not say it). The default method per task follows each method's
:attr:`~litefuse.registry.ModelInfo.default_rank` (docs/models.md, "The default method per task").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .data.pairs import pair_dirs, pair_folders
from .errors import InputError, ModelError, OptionError
from .registry import ModelInfo, list_models

__all__ = ["TASKS", "AB_TASKS", "check_task", "covers", "default_model", "default_rank", "folder_task", "outside_task", "unnamed_ab_note"]

AB_TASKS = frozenset({"mff", "mef", "medical"})
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
