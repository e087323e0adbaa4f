"""Folder fusion: every pair of a pair folder, pipelined (decode and encode in worker threads
while the method runs), batched where frames allow it, written atomically in pair order."""

from __future__ import annotations

import errno
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._checks import whole
from .api import Fuser, Prepared, _first_source, check_ir_norm, check_loaded, warn_ir_norm
from .data.pairs import Pair, PairProblem, find_pairs, pair_dirs, pair_folders, pair_task, unpaired_detail
from ._files import missing_folders, remove_empty
from .errors import InputError, LitefuseError, OptionError, OutputError
from .io import Norm, check_output_dir, check_output_path, read_image, same_path, save_image, writable_dir
from .runtime import available_cores, prepare
from .tasks import folder_task, read_folder_tasks, shared_task

__all__ = ["FORMATS", "FolderReport", "fuse_folder", "output_suffix"]

_STOPS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # write errors that end a folder run


def _folder_work(input_dir: Path, out_dir: Path) -> tuple[list[tuple[Pair, Path]], list[PairProblem]]:
    """Every pair of ``input_dir`` with the folder its result goes to: ``out_dir``, or for a parent
    of pair folders ``out_dir/<the pair folder's path below it>``; and the unpaired files."""
    work: list[tuple[Pair, Path]] = []
    problems: list[PairProblem] = []
    for folder in pair_folders(input_dir) or [input_dir]:  # not a pair folder nor a parent: find_pairs says why
        pairs, unpaired = find_pairs(folder)
        target = out_dir / folder.relative_to(input_dir)
        if any(same_path(target, d) for d in pair_dirs(folder)):  # results beside the sources would pair with them next time
            raise OutputError(f"{target}: is a source folder of {folder}; write the fused images elsewhere")
        work += [(pair, target) for pair in pairs]
        problems += unpaired
    return work, problems


@dataclass
class FolderReport:
    """Outcome of :func:`fuse_folder`: the outputs written (``fused``), one line per pair or file
    not fused (``skipped``), and the outputs left as they were (``existing``)."""

    fused: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)  # with ``skip_existing``: outputs already there, left as they are

    @property
    def summary(self) -> str:
        """``"N fused[, E already there], M skipped[: why; ...]"``, as the CLI prints it."""
        text = f"{len(self.fused)} fused" + (f", {len(self.existing)} already there" if self.existing else "")
        text += f", {len(self.skipped)} skipped"
        return text + (": " + "; ".join(self.skipped) if self.skipped else "")


FORMATS = {"png": ".png", "tif": ".tif", "tiff": ".tif", "jpg": ".jpg", "jpeg": ".jpg", "bmp": ".bmp"}


def output_suffix(fmt: str | None = None, bits: int = 8) -> str:
    """The file suffix of fused images written into a folder: ``fmt`` (``png``, ``tif``, ``jpg``,
    ``bmp``; a leading dot allowed), by default ``.png``, or ``.tif`` for ``bits=16`` (the one
    format that holds 16-bit colour; JPEG and BMP hold 8 bits)."""
    if fmt is None:
        return ".png" if bits == 8 else ".tif"
    suffix = FORMATS.get(str(fmt).lower().lstrip("."))
    if suffix is None:
        raise OptionError(f"format {fmt!r}: expected one of png, tif, jpg, bmp")
    if bits == 16 and suffix != ".tif":
        raise OptionError(f"16 bits per sample are written as TIFF in folders (format tif), not {fmt!r}")
    return suffix


def fuse_folder(
    input_dir: str | Path,
    out_dir: str | Path,
    model: str | Fuser | None = None,
    *,
    weights: str | Path | None = None,
    device: str = "cpu",
    grey: bool = False,
    resize_vi: bool = False,
    ir_norm: Norm = "range",
    overwrite: bool = False,
    progress: Callable | None = None,
    threads: int | None = None,
    batch_size: int = 1,
    workers: int | None = None,
    bits: int = 8,
    skip_existing: bool = False,
    fmt: str | None = None,
) -> FolderReport:
    """Fuse every pair in ``input_dir`` (``ir/vi``, ``infrared/visible``, ``Inf/Vis`` or ``A/B``)
    into ``out_dir/<stem>.png`` (``bits=16``: ``<stem>.tif``, 16 bits per sample, grey or colour;
    ``fmt``: another format, ``"jpg"``, ``"tif"`` or ``"bmp"``, see :func:`output_suffix`);
    a parent of pair folders (all of one kind) fuses each into ``out_dir/<its path below>/``. Unpaired and unreadable files are reported and skipped; a
    folder without a single pair, or an output folder that cannot be written, is an error
    before any work.

    Pipelined: ``workers`` threads (default: 2 on the CPU; with a GPU the cores less one, up
    to 8) decode the next pairs and encode finished images while the method runs, and up to
    ``batch_size`` consecutive same-size pairs go through a network as one batch; on a GPU the
    colour conversion runs there too (:attr:`Fuser.colour_on_device`). Results equal
    one-at-a-time fusion (to float rounding) and are written atomically, in pair order.
    ``skip_existing`` leaves outputs already in ``out_dir`` as they are and counts them in
    :attr:`FolderReport.existing` (resuming an interrupted run: every file there is whole, since
    outputs are written atomically); otherwise an existing output is a skipped pair unless ``overwrite``.

    ``model``: a name (loaded with ``weights``, ``device`` and ``threads``) or a loaded
    :class:`Fuser`, which has its own weights and device (giving them too is an
    :class:`~litefuse.errors.OptionError`, as in :func:`litefuse.fuse`); ``threads`` applies either way.
    Without either, the default method of the folder's task: for ``A/B`` pairs, of the task read
    from their pixels (:func:`~litefuse.tasks.read_folder_tasks`; ``"ab"`` where the tasks read
    have different defaults).

    ``grey``, ``resize_vi``, ``ir_norm``: as :func:`litefuse.fuse` takes them.
    ``progress``: optional callable ``(iterable, total) -> iterable`` (e.g. a rich progress
    tracker) wrapped around the pairs.
    """
    if not whole(batch_size, 1) or not (workers is None or whole(workers, 1)):
        raise OptionError(f"batch_size and workers must be whole numbers of at least 1 (got {batch_size!r}, {workers!r})")
    check_loaded(model, weights, device)  # as fuse()
    if bits not in (8, 16):
        raise OptionError(f"bits must be 8 or 16 (got {bits})")
    if overwrite and skip_existing:  # one replaces existing outputs, the other keeps them: never chosen in silence
        raise OptionError("overwrite replaces existing outputs and skip_existing keeps them; give one")
    suffix = output_suffix(fmt, bits)
    out_dir = Path(out_dir)
    work, problems = _folder_work(Path(input_dir), out_dir)
    if not work:
        raise InputError(f"no image pairs found{unpaired_detail(problems)}", input_dir)
    check_output_dir(out_dir)  # before loading the model; created only once everything checked out
    found = folder_task(input_dir)
    check_ir_norm(ir_norm, found)
    if isinstance(model, Fuser):
        fuser = model
        if (fuser.task == "ivif") != (found == "ivif"):  # as `fuse --input DIR --task ...` refuses it
            holds = "infrared/visible (ir/vi) pairs" if found == "ivif" else "A/B pairs"
            remedy = "Fuser(..., task='ivif')" if found == "ivif" else "Fuser(..., task='mef', 'mff' or 'medical')"
            raise OptionError(f"a Fuser for task {fuser.task!r} does not fit {input_dir}: it holds {holds}; use {remedy}")
        if threads is not None:  # as fuse(): the given count, not the one the Fuser was built with
            prepare(threads)
    else:  # no method named: the default of the task the pairs' pixels suggest (as `fuse --input`)
        task = (shared_task(read_folder_tasks(input_dir)) or found) if found == "ab" and model is None and weights is None else found
        fuser = Fuser(model, weights=weights, device=device, task=task, threads=threads)
    warn_ir_norm(fuser, ir_norm)
    made = [p for sub in dict.fromkeys([out_dir, *(sub for _, sub in work)]) for p in missing_folders(sub)]
    try:  # a run that wrote nothing (every pair skipped, or stopped at once) leaves no empty folders
        out_dir = writable_dir(out_dir)
        for folder in dict.fromkeys(sub for _, sub in work):  # a parent's pair folders: one output folder each
            writable_dir(folder)  # a file in the way: an OutputError, as for out_dir itself
        if workers is None:  # a GPU outruns two decoders; on the CPU more would hold more frames in memory
            workers = 2 if fuser.device.type == "cpu" else max(2, min(8, available_cores() - 1))
        report = FolderReport(skipped=[str(p) for p in problems])

        def load(item: tuple[Pair, Path]) -> tuple[Path, Prepared | None]:
            pair, folder = item
            out = folder / f"{pair.name}{suffix}"
            if skip_existing and out.is_file():
                return out, None  # a finished earlier run's (or an interrupted one's) output: kept
            try:
                out = check_output_path(out, (pair.a, pair.b), overwrite=overwrite, suffixes=(suffix,), folder_checked=True)
            except OutputError:
                if skip_existing and out.is_file():  # another run wrote it since the line above: kept too
                    return out, None
                raise
            a, b = read_image(pair.a, norm=ir_norm), read_image(pair.b)
            a = _first_source(a, pair.a, pair_task(pair, fuser.task))
            return out, fuser.prepare(a, b, resize_b=resize_vi, names=(pair.a, pair.b))

        fatal: list[str] = []  # a write no later write can escape: the disk or quota full, a read-only file system

        def write(out: Path, fused_y: np.ndarray, prepared: Prepared) -> Path | str | tuple[Path]:
            # a problem as its message, not as an exception kept in the future: its traceback would
            # hold this frame's images until the end of the run (a full disk: every pair's, GBs)
            if fatal:  # queued before the first such failure was seen (a fast method): not tried
                return fatal[0]
            try:  # never over an output another run (a job array, a loop) wrote since it was checked
                return save_image(out, fuser.finish(fused_y, prepared, grey), bits=bits, overwrite=overwrite)
            except LitefuseError as exc:
                if skip_existing and getattr(exc, "errno", None) == errno.EEXIST:
                    return (out,)  # already there: counted as such, not as fused
                if getattr(exc, "errno", None) in _STOPS:
                    fatal.append(str(exc))
                return str(exc)

        writes: list[Future | str] = []  # in pair order: a pending write, or a problem

        def flush(batch: list[tuple[Path, Prepared]]) -> None:
            lumas = fuser.fuse_prepared([p for _, p in batch], grey)
            for (out, prepared), fused_y in zip(batch, lumas):
                writes.append(pool.submit(write, out, fused_y, prepared))
            batch.clear()

        depth = max(2 * batch_size, workers + 1)  # decoded pairs held ahead of the network
        with ThreadPoolExecutor(workers, thread_name_prefix="litefuse-io") as pool:
            ahead: deque = deque()
            todo = iter(work)
            batch: list[tuple[Path, Prepared]] = []

            def stop() -> OutputError:
                written = sum(1 for w in writes if isinstance(w, Future) and w.done() and isinstance(w.result(), Path))
                return OutputError(f"{fatal[0]}; stopped, {written} fused images written before it")

            for _ in progress(work, len(work)) if progress else work:
                if fatal:  # every later pair would be decoded and fused only to fail the same way
                    raise stop()
                while len(ahead) < depth and (nxt := next(todo, None)) is not None:
                    ahead.append(pool.submit(load, nxt))
                try:
                    out, prepared = ahead.popleft().result()
                except LitefuseError as exc:
                    writes.append(str(exc))
                    continue
                if prepared is None:
                    report.existing.append(out)
                    continue
                if batch and (len(batch) == batch_size or prepared.shape != batch[0][1].shape):
                    flush(batch)
                batch.append((out, prepared))
                if batch_size == 1:
                    flush(batch)
            if batch:
                flush(batch)
            wait([w for w in writes if isinstance(w, Future)])
            if fatal:  # every pair was fused before the first write failed (a fast method): the same stop
                raise stop()
            for item in writes:
                item = item.result() if isinstance(item, Future) else item
                if isinstance(item, tuple):
                    report.existing.append(item[0])
                else:
                    report.fused.append(item) if isinstance(item, Path) else report.skipped.append(item)
    finally:
        remove_empty(made)
    return report
