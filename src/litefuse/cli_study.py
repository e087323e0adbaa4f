"""``litefuse study aenetv2``: the AE-Netv2 architecture study (:mod:`litefuse.train.study`).

Trains every block variant (or ``--variants``) with the packaged ``aenetv2`` config under one
budget, evaluates each on a fixed held-out set per task, measures params, MACs and CPU latency
at 640x480, and writes ``study.csv``, ``study.md`` and ``pareto.png`` to ``--out``. This module
defines the command function only; ``cli.py`` registers it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

__all__ = ["study_command"]


def study_command(
    model: str = typer.Argument(..., help="Model family to study (only aenetv2)."),
    budget_minutes: float = typer.Option(140.0, "--budget-minutes", help="Total training budget, split evenly over the variants."),
    per_variant_minutes: Optional[float] = typer.Option(None, "--per-variant-minutes", help="Training minutes per variant (overrides --budget-minutes)."),
    variants: Optional[list[str]] = typer.Option(None, "--variants", metavar="<str>", help="Variants to study (comma-separated or repeated; default: all 14)."),
    out: Optional[Path] = typer.Option(None, "--output", "-o", help="Study folder: runs, table, plot (default: runs/aenetv2-study)."),
    out_alias: Optional[Path] = typer.Option(None, "--out", hidden=True),
    data: Optional[list[Path]] = typer.Option(None, "--data", "-d", metavar="<path>", help="Data roots, one per task; repeat (default: the config's)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training config (default: the packaged aenetv2.toml)."),
    sets: Optional[list[str]] = typer.Option(None, "--set", metavar="<key=value>", help="Override a config field: KEY=VALUE; repeatable."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Also cap every variant at this many steps."),
    eval_pairs: int = typer.Option(4, "--eval-pairs", min=1, help="Held-out pairs per task for the quality columns."),
    eval_size: int = typer.Option(640, "--eval-size", min=8, help="Longer side the evaluation pairs are reduced to (if larger)."),
    references: str = typer.Option("max", "--references", help="Classical fusers scored beside the variants (comma-separated; '' for none)."),
    threads: int = typer.Option(1, "--threads", min=1, help="Torch CPU threads for training and latency."),
    latency_runs: int = typer.Option(10, "--latency-runs", min=1, help="Timed calls per latency measurement."),
    progress: bool = typer.Option(False, "--progress/--no-progress", metavar="", help="Training progress bars."),
) -> None:
    """Train and compare the AE-Netv2 study variants; writes study.csv, study.md and pareto.png."""
    from .cli_common import err_console as err
    from .cli_common import fail, with_alias
    from .errors import LitefuseError

    if model != "aenetv2":
        raise fail(f"no architecture study for {model!r}; available: aenetv2")
    out = with_alias(out, out_alias, "--output", "--out") or Path("runs/aenetv2-study")
    for option, minutes in (("--budget-minutes", budget_minutes), ("--per-variant-minutes", per_variant_minutes)):
        if minutes is not None and not 0 < minutes < math.inf:  # not the derived per-variant share, but the option given
            raise fail(f"{option} must be a finite number of minutes more than 0 (got {minutes:g})")
    names = [v.strip() for item in variants or [] for v in item.split(",") if v.strip()]
    if variants and not names:  # `--variants ""` (an empty shell variable) is not "all 14"
        raise fail("--variants names no variant; leave it out to study all of them")
    from .train.study import StudyInterrupted, run_study

    try:
        rows = run_study(
            names or None, out=out, budget_minutes=budget_minutes, per_variant_minutes=per_variant_minutes,
            max_steps=max_steps, config=config, data=data, sets=sets or (), eval_pairs=eval_pairs,
            eval_size=eval_size, references=[r.strip() for r in references.split(",") if r.strip()],
            threads=threads, latency_runs=latency_runs, progress=progress, console=err,
        )
    except LitefuseError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    except StudyInterrupted as exc:  # the study is unfinished: say so, and exit as an interrupted command does
        import signal

        err.print(f"study interrupted: {exc}; run the same command again to continue (it resumes "
                  f"{out / 'runs' / exc.variant} and reuses the finished runs)", markup=False)
        raise typer.Exit(143 if exc.signal == signal.SIGTERM else 130) from None
    best = max((r for r in rows if r.kind == "variant"), key=lambda r: r.quality)
    typer.echo(f"{len(rows)} rows -> {out / 'study.md'}; best quality: {best.name} ({best.quality:.3f}, {best.latency_ms:.1f} ms)")
