"""The evaluation engine shared by ``litefuse eval``, ``litefuse compare`` and the tools.

Scoring itself is :func:`litefuse.metrics.evaluate`; this module holds what every caller needs
around it, once: a worker pool that keeps results in input order (:func:`parallel_map`), the
mean ± std summary (:func:`summarise`), the Markdown table (:func:`markdown_table`, CDDFuse's
layout: a row per method, a column per metric, the best in bold by each metric's direction) and
the per-image CSV (:func:`write_scores_csv`). Pairing files by stem is
:func:`litefuse.data.pairs.match_stems`.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from ._files import atomic_write_text

__all__ = ["INF_NOTE", "NAN_NOTE", "format_value", "markdown_table", "parallel_map", "summarise", "undefined_note", "write_scores_csv"]

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[Iterable, int], Iterable]

_CONTEXT: dict[str, Any] = {}  # a worker process's copy of the context (see parallel_map)


def _init_worker(context: Any) -> None:
    """Spawned worker: keep the context once and stay on one core (the workers share the CPU).
    Ctrl-C is the parent's (see :func:`parallel_map`): ignored here too, since a process spawned
    on Windows does not inherit the parent's ignored SIGINT."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    _CONTEXT["value"] = context


def _call(fn: Callable[[T, Any], R], task: T) -> tuple[R, list[tuple[str, type[Warning]]]]:
    """``fn(task, context)`` in a worker, with the warnings it raised: the parent says them, as
    a serial run would (a worker's own would print as ``file:line`` + source, once per worker)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(task, _CONTEXT["value"])
    return result, [(str(w.message), w.category) for w in caught]


def _relay(outcome: tuple[R, list[tuple[str, type[Warning]]]], said: set) -> R:
    """A worker's result, its warnings warned here: each text once, and a ``once`` category
    (:class:`~litefuse.io.OnceWarning`: "said for the first such file only") once for all workers."""
    result, caught = outcome
    for message, category in caught:
        key = category if getattr(category, "once", False) else (message, category)
        if key not in said:
            said.add(key)
            warnings.warn(message, category, stacklevel=3)
    return result


MAX_DEFAULT_JOBS = 4
_WINDOWS_MAX_WORKERS = 61  # concurrent.futures.process._MAX_WINDOWS_WORKERS


def default_jobs() -> int:
    """Worker processes for ``eval`` and ``compare`` when none are asked for: the cores the load
    average says are free (:func:`litefuse.runtime.free_cores`), at most 4 (each worker imports
    torch and loads its own models, so more rarely pays off)."""
    from .runtime import free_cores

    return min(MAX_DEFAULT_JOBS, free_cores())


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM while worker processes start: held, then acted on as they arrived.

    Ctrl-C is the parent's to handle: a terminal sends it to every process of the group, and a
    worker still importing torch printed its own traceback, or died and broke the pool. Workers
    forked while the signals are blocked inherit the blocked mask, so they never see them. The
    parent only notes a signal that comes meanwhile -- starting a worker writes the pickled
    context while the child imports torch, seconds in which an ignored Ctrl-C was lost and a
    SIGTERM cut the pickle (the worker printed an UnpicklingError) -- and raises it once the
    workers are up. Windows (no signal masks): SIGINT ignored meanwhile, as its workers ignore it.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's
        yield
        return
    if not hasattr(signal, "pthread_sigmask"):
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
        return
    held = {signal.SIGINT, signal.SIGTERM}
    caught: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: caught.append(signum)) for signum in held}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a signal pending meanwhile comes now, to the note above
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        signal.raise_signal(caught[0])  # the usual handler now: KeyboardInterrupt, the CLI's SIGTERM exit


def parallel_map(
    fn: Callable[[T, Any], R],
    tasks: Sequence[T],
    jobs: int = 1,
    context: Any = None,
    progress: Progress | None = None,
) -> list[R]:
    """``[fn(task, context) for task in tasks]``, over ``jobs`` worker processes when ``jobs > 1``.

    ``fn`` must be a module-level function (it is pickled) and should turn its own failures into
    values, so one bad item does not end the run. ``context`` (fusers, metric names, …) is sent
    to each worker once. Workers are *spawned*, never forked: the parent may already run torch's
    OpenMP threads, and a forked child of a threaded process can deadlock. Results come back in
    the order of ``tasks`` whatever the number of workers, so serial and parallel runs agree.
    """
    if jobs <= 1 or len(tasks) <= 1:
        results: Iterable[R] = (fn(task, context) for task in tasks)
        return list(progress(results, len(tasks)) if progress else results)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # Windows waits on at most 61 process handles: ProcessPoolExecutor refuses more workers there
    workers = min(jobs, len(tasks), _WINDOWS_MAX_WORKERS if sys.platform == "win32" else jobs)
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                               initializer=_init_worker, initargs=(context,))  # no worker before the first submit
    try:
        with _signals_held():
            futures = [pool.submit(_call, fn, task) for task in tasks]  # starts the workers
        said: set = set()
        results = (_relay(future.result(), said) for future in futures)  # in input order
        return list(progress(results, len(tasks)) if progress else results)
    finally:
        # interrupted: the items not started are cancelled and the running ones end (one item's
        # time); a worker is never killed, which could cut a result in the pipe and hang the pool.
        # After a full run every future is done, so there is nothing to cancel.
        pool.shutdown(wait=True, cancel_futures=True)


def summarise(rows: Iterable[Mapping[str, float]], metrics: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Mean and population standard deviation of each metric over ``rows`` (NaN when empty)."""
    rows = list(rows)
    out = {}
    for m in metrics:
        values = [float(r[m]) for r in rows]
        if not values:
            out[m] = (math.nan, math.nan)
            continue
        mean = math.fsum(values) / len(values)
        out[m] = (mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values)))
    return out


NAN_NOTE = ("nan: the metric is undefined on at least one image (e.g. CC or SCD where the fused image is "
            "constant or equals a source), as in the reference code; the per-image CSV shows which.")
INF_NOTE = ("inf / -inf: the reference formula's limit on at least one image (PSNR: inf where the fused image "
            "equals its sources, -inf under cddfuse, whose peak is the fused maximum, for an all-black one); "
            "the per-image CSV shows which.")


def format_value(value: float, std: float | None = None) -> str:
    """4 decimals, or scientific notation for very small or large magnitudes (e.g. Nabf);
    ``± std`` when given."""
    plain = value == 0 or not math.isfinite(value) or 1e-3 <= abs(value) < 1e5
    text = f"{value:.4f}" if plain else f"{value:.3e}"
    if std is None:
        return text
    return f"{text} ± {std:.4f}" if plain else f"{text} ± {std:.2e}"


def markdown_table(
    means: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
    stds: Mapping[str, Mapping[str, float]] | None = None,
    bold_best: bool = True,
    label: str = "method",
) -> str:
    """A Markdown table, a row per method (``means``' keys) and a column per metric with its
    direction arrow; with ``stds``, cells read ``mean ± std``; with ``bold_best`` and more than
    one row, the best value of each column is bold (every row showing it: values that print
    the same are tied). ``label``: the first column's heading (what the rows are)."""
    from .metrics import METRICS

    info = {m: METRICS.get(m) for m in metrics}
    head = " | ".join(f"{m} {info[m].arrow}" if info[m] else m for m in metrics)
    lines = [f"| {label} | {head} |", "|---" * (len(metrics) + 1) + "|"]
    best = {}
    if bold_best and len(means) > 1:
        best = {m: info[m].best(row[m] for row in means.values()) for m in metrics if info[m]}
    for label, row in means.items():
        cells = []
        for m in metrics:
            cell = format_value(row[m], None if stds is None else stds[label][m])
            tied = m in best and format_value(row[m]) == format_value(best[m])
            cells.append(f"**{cell}**" if tied else cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", note] if (note := undefined_note(means.values(), metrics)) else []
    return "\n".join(lines)


def undefined_note(rows: Iterable[Mapping[str, float]], metrics: Sequence[str]) -> str:
    """What a table's ``nan`` and ``±inf`` cells mean (``""`` when it has none)."""
    values = [row[m] for row in rows for m in metrics]
    notes = [NAN_NOTE] if any(math.isnan(v) for v in values) else []
    if any(math.isinf(v) for v in values):
        notes.append(INF_NOTE)
    return " ".join(notes)


def write_scores_csv(path, rows: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """Per-image scores as CSV, floats at full precision (``repr``), written atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow([repr(v) if isinstance(v, float) else v for v in (row[f] for f in fields)])
    atomic_write_text(path, buf.getvalue())
