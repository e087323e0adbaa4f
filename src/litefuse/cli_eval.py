"""``litefuse eval``: score fused images against their sources with :mod:`litefuse.metrics`.

Images are paired by file stem across the ``--ir``, ``--vi`` and ``--fused`` folders (any image
extension), scored in parallel processes, written per image to a CSV (atomically) and summarised
as mean ± std per metric. ``--input DIR --model NAME`` fuses the folder first, then scores it.
Exit code: 0 when every image was scored, 1 when some were skipped, 2 when nothing could be
scored or the arguments are bad. This module defines the command function only; ``cli.py``
registers it.
"""

from __future__ import annotations

import csv
import io as _io
import math
import os
import sys
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Optional

import typer

from ._files import atomic_write_text

__all__ = ["eval_command", "pair_by_stem", "score_one", "summarise", "write_csv_atomic"]


def _default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def pair_by_stem(dirs: dict[str, Path]) -> tuple[dict[str, dict[str, Path]], list[str]]:
    """Group the images of each folder by file stem.

    Returns ``{stem: {role: path}}`` for stems present in every folder, and ``'stem: problem'``
    lines for missing partners and ambiguous stems (two files with one stem in a folder).
    """
    from .io import IMAGE_EXTENSIONS

    found: dict[str, dict[str, list[Path]]] = {}
    for role, folder in dirs.items():
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS:
                found.setdefault(path.stem, {}).setdefault(role, []).append(path)
    triples, problems = {}, []
    for stem in sorted(found):
        roles = found[stem]
        missing = [f"--{r} {dirs[r]}" for r in dirs if r not in roles]
        dupes = [", ".join(p.name for p in paths) for paths in roles.values() if len(paths) > 1]
        if missing:
            problems.append(f"{stem}: no partner in {' and '.join(missing)}")
        elif dupes:
            problems.append(f"{stem}: ambiguous, several files with this stem ({'; '.join(dupes)})")
        else:
            triples[stem] = {r: paths[0] for r, paths in roles.items()}
    return triples, problems


def score_one(
    name: str, paths: dict[str, Path], metrics: tuple[str, ...], convention: str, psnr: Optional[str]
) -> tuple[str, Optional[dict[str, float]], Optional[str]]:
    """Load and score one triple; returns ``(name, scores, None)`` or ``(name, None, problem)``.

    Runs in a worker process, so every failure becomes a problem line instead of an exception.
    """
    from .errors import LitefuseError
    from .metrics import evaluate, load_grey_u8

    try:
        ir, vi, fused = (load_grey_u8(paths[r]) for r in ("ir", "vi", "fused"))
        if not ir.shape == vi.shape == fused.shape:
            return name, None, f"size mismatch: ir {_size(ir)}, vi {_size(vi)}, fused {_size(fused)}"
        return name, evaluate(ir, vi, fused, metrics, convention, psnr=psnr), None
    except (LitefuseError, ValueError) as exc:
        return name, None, str(exc)
    except Exception as exc:  # pragma: no cover - a bug, reported without killing the run
        return name, None, f"internal error ({exc.__class__.__name__}: {exc})"


def _size(x) -> str:
    return f"{x.shape[1]}×{x.shape[0]}"


def summarise(rows: dict[str, dict[str, float]], metrics: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """Mean and population standard deviation of each metric over the scored images."""
    out = {}
    for m in metrics:
        values = [rows[name][m] for name in rows]
        mean = math.fsum(values) / len(values)
        out[m] = (mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values)))
    return out


def write_csv_atomic(path: Path, rows: dict[str, dict[str, float]], metrics: tuple[str, ...]) -> None:
    """Per-image scores as CSV (full precision), via a temporary file renamed over ``path``."""
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", *metrics])
    for name in sorted(rows):
        writer.writerow([name, *(repr(rows[name][m]) for m in metrics)])
    atomic_write_text(path, buf.getvalue())


def _executor(jobs: int) -> Executor:
    import multiprocessing as mp

    # fork keeps worker start-up cheap (no re-import of torch); the workers only run numpy/scipy.
    ctx = mp.get_context("fork") if sys.platform.startswith("linux") else None
    return ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)


def _fmt(mean: float, std: float) -> str:
    """mean ± std with 4 decimals, or scientific notation for very small/large magnitudes (e.g. Nabf)."""
    if mean == 0 or 1e-3 <= abs(mean) < 1e5 or not math.isfinite(mean):
        return f"{mean:.4f} ± {std:.4f}"
    return f"{mean:.3e} ± {std:.2e}"


def _markdown_table(summary, metrics, n: int, convention: str, label: str) -> str:
    """CDDFuse's table layout (a row per method, a column per metric), as markdown."""
    from .metrics import METRICS

    lines = [f"Convention `{convention}`, {n} image(s), mean ± std", ""]
    lines.append("| method | " + " | ".join(f"{m} {METRICS[m].direction}" for m in metrics) + " |")
    lines.append("|---" * (len(metrics) + 1) + "|")
    lines.append(f"| {label} | " + " | ".join(_fmt(*summary[m]) for m in metrics) + " |")
    return "\n".join(lines)


def eval_command(
    ir: Optional[Path] = typer.Option(None, "--ir", help="Folder of infrared images."),
    vi: Optional[Path] = typer.Option(None, "--vi", help="Folder of visible images (colour is converted to grey)."),
    fused: Optional[Path] = typer.Option(None, "--fused", help="Folder of fused images, paired by file stem."),
    input_dir: Optional[Path] = typer.Option(
        None, "--input", "-i", help="Pair folder (ir/vi, A/B, ...): fuse it with --model first, then score."
    ),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="With --input: the fusion method (see `litefuse models`)."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="With --input: folder for the fused images (default: ./fused-<model>)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="With --input: replace fused images already in --output."),
    metrics: Optional[str] = typer.Option(
        None, "--metrics", help="Comma-separated metric names (default: the convention's set; cddfuse: 8 core + AG, CC, PSNR)."
    ),
    convention: str = typer.Option("cddfuse", "--convention", help="cddfuse | tang | vifb | liu (the numbers differ!)."),
    psnr: Optional[str] = typer.Option(None, "--psnr", help="Override the PSNR kind, e.g. 'textbook' = 10·log10(255²/MSE)."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write per-image scores to this CSV file."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the summary as a markdown table."),
    jobs: int = typer.Option(_default_jobs(), "--jobs", "-j", help="Worker processes."),
) -> None:
    """Score fused images with the fusion metrics: per-image CSV and a mean ± std table."""
    from rich.table import Table

    from .cli import console, err_console, fail, progress_bar
    from .errors import LitefuseError
    from .metrics import METRICS, get_convention, resolve_metrics

    # ---- arguments
    if input_dir is not None:
        if ir is not None or vi is not None or fused is not None:
            raise fail("give either --input DIR --model NAME, or --ir/--vi/--fused, not both")
        if model is None:
            raise fail("--input needs --model NAME (the method to fuse with)")
    elif ir is None or vi is None or fused is None:
        raise fail("give --ir DIR --vi DIR --fused DIR (or --input DIR --model NAME to fuse first)")
    if jobs < 1:
        raise fail(f"--jobs must be at least 1 (got {jobs})")
    try:
        conv = get_convention(convention, psnr=psnr)
        names = resolve_metrics(metrics, conv)
    except LitefuseError as exc:
        raise fail(str(exc)) from None

    try:
        if csv_path is not None:
            from .io import check_output_path

            check_output_path(csv_path, overwrite=True, suffixes=(".csv",))
        # ---- optionally fuse first (litefuse.api.fuse_folder)
        if input_dir is not None:
            from .api import fuse_folder
            from .data.pairs import pair_dirs

            ir, vi = pair_dirs(input_dir)
            fused = output if output is not None else Path(f"fused-{model}")
            report = fuse_folder(input_dir, fused, model=model, overwrite=overwrite,
                                 progress=progress_bar(f"fusing ({model})"))
            for problem in report.skipped:
                err_console.print(f"fuse skipped: {problem}", markup=False)
            console.print(f"{len(report.fused)} fused -> {fused}", markup=False)
        for flag, folder in (("--ir", ir), ("--vi", vi), ("--fused", fused)):
            if not folder.is_dir():
                raise fail(f"{flag} {folder}: {'not a directory' if folder.exists() else 'directory not found'}")
        triples, problems = pair_by_stem({"ir": ir, "vi": vi, "fused": fused})
    except LitefuseError as exc:
        raise fail(str(exc)) from None

    # ---- score
    rows: dict[str, dict[str, float]] = {}
    track = progress_bar(f"scoring ({conv.name})")
    args = [(name, paths, names, convention, psnr) for name, paths in triples.items()]
    if jobs == 1 or len(args) <= 1:
        results = track((score_one(*a) for a in args), len(args))
        outcomes = list(results)
    else:
        with _executor(min(jobs, len(args))) as pool:
            futures = [pool.submit(score_one, *a) for a in args]
            outcomes = [f.result() for f in track(as_completed(futures), len(futures))]
    for name, scores, problem in outcomes:
        if problem is None:
            rows[name] = scores
        else:
            problems.append(f"{name}: {problem}")
    for line in sorted(problems):
        err_console.print(line, markup=False)

    if not rows:
        raise fail(f"nothing could be scored ({len(problems)} problem(s))")
    if csv_path is not None:
        try:
            write_csv_atomic(csv_path, rows, names)
        except OSError as exc:
            raise fail(f"{csv_path}: cannot write CSV ({exc.strerror or exc})") from None

    # ---- summary
    summary = summarise(rows, names)
    label = model if input_dir is not None else fused.name
    if markdown:
        console.print(_markdown_table(summary, names, len(rows), conv.name, label), markup=False)
    else:  # CDDFuse's layout: one row per method, one column per metric
        table = Table(title=f"litefuse eval — convention {conv.name}, {len(rows)} image(s), mean ± std")
        table.add_column("method")
        for m in names:
            table.add_column(f"{m} {METRICS[m].direction}", justify="right")
        table.add_row(label, *(f"{summary[m][0]:.4g}" for m in names))
        table.add_row("± std", *(f"{summary[m][1]:.3g}" for m in names), style="dim")
        console.print(table)
    tail = f"{len(rows)} scored, {len(problems)} skipped"
    console.print(tail + (f" -> {csv_path}" if csv_path is not None else ""), markup=False)
    raise typer.Exit(0 if not problems else 1)
