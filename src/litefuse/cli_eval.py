"""``litefuse eval``: score fused images against their sources with :mod:`litefuse.metrics`.

Images are paired by file stem across the ``--ir``, ``--vi`` and ``--fused`` folders (any image
extension; :func:`litefuse.data.pairs.match_stems`), scored in worker processes, written per
image to a CSV (atomically) and summarised as mean ± std per metric, all through
:mod:`litefuse.evaluation`, the engine ``compare`` uses too. ``--input DIR --model NAME`` fuses the folder first, then scores it.
Exit code: 0 when every image was scored, 1 when some were skipped, 2 when nothing could be
scored or the arguments are bad. This module defines the command function only; ``cli.py``
registers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .cli_common import (CONVENTION_HELP, CONVENTION_METAVAR, IR_NORM_HELP, IR_NORM_METAVAR, JOBS_HELP, PRECISION_HELP, STRETCH_HELP,
                         THREADS_HELP, TILE_HELP, Device, Precision, saying_first)

__all__ = ["eval_command", "score_triple"]


def score_triple(task: tuple[str, dict[str, Path]], context: dict[str, Any]) -> tuple[str, Optional[dict[str, float]], Optional[str]]:
    """Load and score one ``(stem, {role: path})`` triple: ``(stem, scores, None)`` or
    ``(stem, None, problem)``.

    Runs in a worker process (see :func:`litefuse.evaluation.parallel_map`), so every failure
    becomes a problem line instead of an exception.
    """
    from .errors import LitefuseError
    from .metrics import evaluate, load_grey_u8

    name, paths = task
    try:
        ir, vi, fused = (load_grey_u8(paths[r], norm=context.get("ir_norm", "range") if r == "ir" else "range")
                         for r in ("ir", "vi", "fused"))
        if not ir.shape == vi.shape == fused.shape:
            return name, None, f"size mismatch: ir {_size(ir)}, vi {_size(vi)}, fused {_size(fused)}"
        return name, evaluate(ir, vi, fused, context["metrics"], context["convention"], psnr=context["psnr"]), None
    except (LitefuseError, ValueError) as exc:
        return name, None, str(exc)
    except Exception as exc:  # pragma: no cover - a bug, reported without killing the run
        return name, None, f"internal error ({exc.__class__.__name__}: {exc})"


def _guess_fused_name(ir: Path, vi: Path, fused: Path) -> tuple[str, int] | None:
    """The ``{stem}`` template most fused files follow after a stem of both ``ir`` and ``vi``."""
    from .data.pairs import guess_template, match_stems

    pairs, _ = match_stems({"ir": ir, "vi": vi})
    stems, _ = match_stems({"fused": fused})
    return guess_template(stems, pairs)


def _size(x) -> str:
    return f"{x.shape[1]}×{x.shape[0]}"


def eval_command(
    ir: Optional[Path] = typer.Option(None, "--ir", help="Folder of infrared images."),
    vi: Optional[Path] = typer.Option(None, "--vi", help="Folder of visible images (colour is converted to grey)."),
    fused: Optional[Path] = typer.Option(None, "--fused", help="Folder of fused images, paired by file stem."),
    fused_name: Optional[str] = typer.Option(
        None, "--fused-name", metavar="<template>",
        help="How the fused files are named after the sources' stem, e.g. '{stem}_fused' (another method's outputs).",
    ),
    input_dir: Optional[Path] = typer.Option(
        None, "--input", "-i", help="Pair folder (ir/vi, A/B, ...): fuse it with --model first, then score."
    ),
    model: Optional[list[str]] = typer.Option(None, "--model", "-m", metavar="<str>", help="With --input: the fusion method (default: the task's default, as fuse; see `litefuse models`), as \\[label=]name\\[@weights] (e.g. aenetv2@runs/a/model.safetensors)."),
    method_alias: Optional[list[str]] = typer.Option(None, "--method", hidden=True),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="With --input: folder for the fused images (default: ./fused-<model>)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Replace an existing --csv file, and (with --input) fused images already in --output."),
    metrics: Optional[str] = typer.Option(
        None, "--metrics", help="Comma-separated metric names (default: the convention's set; cddfuse: 8 core + AG, CC, PSNR)."
    ),
    convention: str = typer.Option("cddfuse", "--convention", metavar=CONVENTION_METAVAR, help=CONVENTION_HELP),
    psnr: Optional[str] = typer.Option(None, "--psnr", metavar="<cddfuse|tang|vifb|textbook>", help="Override the PSNR kind, e.g. 'textbook' = 10·log10(255²/MSE)."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write per-image scores to this CSV file."),
    markdown: bool = typer.Option(False, "--markdown", metavar="", help="Print the summary as a markdown table."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help=JOBS_HELP),
    ir_norm: str = typer.Option("range", "--ir-norm", metavar=IR_NORM_METAVAR, help=IR_NORM_HELP + " Scores the infrared (and with --input fuses it) as `fuse --ir-norm` reads it."),
    stretch: bool = typer.Option(False, "--stretch", metavar="", help="With --input: m" + STRETCH_HELP[1:]),
    device: Device = typer.Option(Device.cpu, "--device", help="With --input: where networks run."),
    precision: Precision = typer.Option(Precision.fp32, "--precision", help="With --input: " + PRECISION_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="With --input: " + THREADS_HELP),
    tile: Optional[int] = typer.Option(None, "--tile", min=16, help="With --input: " + TILE_HELP),
) -> None:
    """Score fused images with the fusion metrics: per-image CSV and a mean ± std table."""
    from rich.table import Table

    from .cli_common import console, err_console, fail, one_method, parse_ir_norm, progress_bar, with_alias
    from .data.pairs import match_stems
    from .errors import LitefuseError
    from .evaluation import default_jobs, format_value, markdown_table, parallel_map, summarise, undefined_note, write_scores_csv
    from .metrics import METRICS, get_convention, resolve_metrics

    # ---- arguments
    model = one_method(with_alias(model, method_alias, "--model", "--method"),
                       "eval --input fuses with one (litefuse compare fuses the same pairs with several and scores them)")
    if input_dir is not None:
        if ir is not None or vi is not None or fused is not None:
            raise fail("give either --input DIR --model NAME, or --ir/--vi/--fused, not both")
        if fused_name is not None:  # --input fuses into <stem>.png itself
            raise fail("--fused-name names the files of --fused DIR; --input fuses them under the sources' names")
    elif ir is None or vi is None or fused is None:
        raise fail("give --ir DIR --vi DIR --fused DIR (or --input DIR --model NAME to fuse first)")
    else:
        given = (("--model", model), ("--output", output), ("--stretch", stretch or None), ("--tile", tile), ("--threads", threads),
                 ("--device", None if device == Device.cpu else device), ("--precision", None if precision == Precision.fp32 else precision))
        unused = [o for o, value in given if value is not None]
        if unused:  # said, as fuse says an unused --batch-size: the --fused images are scored as they are
            verb = "apply" if len(unused) > 1 else "applies"
            err_console.print(f"note: {' and '.join(unused)} {verb} with --input only; --fused {fused} is scored as it is",
                              markup=False)
    if jobs is None:
        jobs = default_jobs()
    norm = parse_ir_norm(ir_norm)
    try:
        conv = get_convention(convention, psnr=psnr)
    except LitefuseError as exc:
        raise fail(f"--convention: {exc}") from None
    try:
        names = resolve_metrics(metrics, conv)
    except LitefuseError as exc:
        raise fail(f"--metrics: {exc}") from None

    guess = None  # how fused files seem named, when no name matches a source pair
    try:
        if csv_path is not None:
            from .io import check_output_path

            check_output_path(csv_path, overwrite=overwrite, suffixes=(".csv",))
        # ---- optionally fuse first (litefuse.folder.fuse_folder)
        if input_dir is not None:
            from .api import Fuser
            from .folder import fuse_folder
            from .data.pairs import pair_dirs
            from .tasks import default_model, folder_task, read_folder_tasks, read_task_note, shared_task, unnamed_ab_note

            ir, vi = pair_dirs(input_dir)
            task = folder_task(input_dir)
            notes = []  # said as the fusion starts, once its checks have passed (as fuse)
            if model is None and task == "ab":  # as fuse: the pairs' task read from their pixels
                read = read_folder_tasks(input_dir)
                task = shared_task(read) or task
                note = (read_task_note(read, default_model(task), f"the A/B pairs of {input_dir}", ("-m METHOD",)) if read else
                        unnamed_ab_note(default_model(task), task_option=False))
                notes += [note] if note else []
            method = Fuser.from_spec(model or default_model(task), task=task, stretch=stretch, device=device.value,  # as compare
                                     precision=precision.value, threads=threads, tile=tile)
            model = method.label
            fused = output if output is not None else Path(f"fused-{model}")
            report = fuse_folder(input_dir, fused, model=method, overwrite=overwrite, ir_norm=norm,
                                 progress=saying_first(notes, progress_bar(f"fusing ({model})")))
            console.print(f"{len(report.fused)} fused -> {fused}", markup=False)
        if input_dir is not None and not report.fused:  # nothing fused (no output folder left): the reasons below
            triples, pair_problems, guess = {}, [], None
        else:
            for flag, folder in (("--ir", ir), ("--vi", vi), ("--fused", fused)):
                if not folder.is_dir():
                    raise fail(f"{flag} {folder}: {'not a directory' if folder.exists() else 'directory not found'}")
            triples, pair_problems = match_stems({"ir": ir, "vi": vi, "fused": fused},
                                                 {"fused": fused_name} if fused_name else None,
                                                 nested="score it with --ir, --vi and --fused of its own")
            guess = _guess_fused_name(ir, vi, fused) if not triples and not fused_name else None
    except LitefuseError as exc:
        raise fail(str(exc)) from None
    problems = [str(p) for p in pair_problems]
    if input_dir is not None:
        # score what this run fused with --model only: an image already in --output (skipped as
        # "output exists") may come from another method and must not be scored under this name;
        # each pair it did not fuse counts as skipped (exit 1), not silently left out of the means
        made = {path.resolve() for path in report.fused}
        from .io import RESIZE_HINT  # eval has no --resize-vi: fuse (--resize-vi) first, then score --fused

        problems = [f"not fused: {p.replace(RESIZE_HINT, '')}" for p in report.skipped]
        triples = {stem: t for stem, t in triples.items() if t["fused"].resolve() in made}

    # ---- score
    context = dict(metrics=names, convention=convention, psnr=psnr, ir_norm=norm)
    outcomes = parallel_map(score_triple, list(triples.items()), jobs, context, progress_bar(f"scoring ({conv.name})"))
    rows: dict[str, dict[str, float]] = {}
    for name, scores, problem in outcomes:
        if problem is None:
            rows[name] = scores
        else:
            problems.append(f"{name}: {problem}")
    for line in sorted(problems):
        err_console.print(line, markup=False)

    if guess:  # another method's outputs, named after the stems: say how, beside the error
        err_console.print(f"note: {guess[1]} fused file(s) are named like '{guess[0]}' after a source pair; "
                          f"pass --fused-name '{guess[0]}' to score them", markup=False)
    if not rows:
        raise fail(f"nothing could be scored: {len(problems)} pair(s) skipped (reasons above)" if problems
                   else "nothing could be scored: no fused image matches a source pair")
    if csv_path is not None:
        # written atomically; a full disk is an OutputError naming the file (one line)
        write_scores_csv(csv_path, ({"image": k, **rows[k], "convention": conv.name} for k in sorted(rows)),
                         ["image", *names, "convention"])  # the same names mean other numbers elsewhere

    # ---- summary
    summary = summarise(rows.values(), names)
    label = model if input_dir is not None else fused.name
    rows_are = "method" if input_dir is not None else "fused folder"  # the first column's heading
    means = {label: {m: mean for m, (mean, _) in summary.items()}}
    if markdown:
        stds = {label: {m: std for m, (_, std) in summary.items()}}
        console.print(f"Convention `{conv.name}`, {len(rows)} image(s), mean ± std\n", markup=False)
        console.print(markdown_table(means, names, stds, label=rows_are), markup=False)
    else:  # CDDFuse's layout: one row per method, one column per metric
        table = Table(title=f"litefuse eval — convention {conv.name}, {len(rows)} image(s), mean ± std")
        table.add_column(rows_are)
        for m in names:
            table.add_column(f"{m} {METRICS[m].arrow}", justify="right")
        # as the markdown table: 4 decimals, or 3 significant digits where that would print 0.0000 (Nabf)
        table.add_row(label, *(format_value(summary[m][0]) for m in names))
        table.add_row("± std", *(format_value(summary[m][1]) for m in names), style="dim")
        console.print(table)
        if note := undefined_note([{m: mean for m, (mean, _) in summary.items()}], names):  # as under --markdown
            console.print(note, markup=False)
    tail = f"{len(rows)} scored, {len(problems)} skipped"
    console.print(tail + (f" -> {csv_path}" if csv_path is not None else ""), markup=False)
    raise typer.Exit(0 if not problems else 1)
