"""``litefuse train``: train a registered network with the shared trainer core.

The configuration is the model's packaged default (its registry ``config``, under ``litefuse/configs``) or
``--config FILE``; command-line options override single fields, ``--set KEY=VALUE`` any field
(``--set objective.ssim_weight=10``). ``--resume`` continues the run in the output folder from
its ``last.pt`` with the run's own saved configuration (only the budget — epochs, steps,
minutes — and the device may change). ``--init pretrained`` (or ``--init FILE``) fine-tunes
from the shipped weights (or a weights file) instead of a random start. ``--teacher NAME`` (repeatable)
distils other methods' results into any network (:mod:`litefuse.train.objectives.distill`).

Data: ``--data`` paths are relative to the working directory; a config file's relative ``data``
paths to the file's folder, and the packaged configs' ``../shared/...`` to ``$LITEFUSE_SHARED``
when it is set (:mod:`litefuse.train.trainset`). Unusable pairs are skipped and reported. Every
failure is one ``error:`` line on stderr and exit status 2; a run that could take no
optimisation step (e.g. ``--max-minutes`` spent in a pre-pass) writes no weights and fails the same way.
This module defines the command function only; ``cli.py`` registers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli_common import Device, IR_NORM_HELP, IR_NORM_METAVAR, JOBS_HELP

__all__ = ["card_command", "train_command"]


def train_command(
    model: Optional[str] = typer.Argument(None, help="Network to train (see `litefuse models`), e.g. lwc-densefuse; or -m NAME."),
    model_option: Optional[str] = typer.Option(None, "--model", "-m", metavar="<str>", help="The network, as `fuse` and `bench` take it."),
    method_alias: Optional[str] = typer.Option(None, "--method", hidden=True),
    data: Optional[list[Path]] = typer.Option(
        None, "--data", "-d", metavar="<path>", help="Pair folder (ir/vi or A/B) or a parent of such; repeat for several. Default: the config's."
    ),
    val: Optional[list[Path]] = typer.Option(
        None, "--val", metavar="<path>",
        help="Validation pair folder(s); repeat for several. Every --data pair then trains (default: val_fraction of --data is held out).",
    ),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML config (default: the model's packaged config)."),
    out: Optional[Path] = typer.Option(None, "--output", "-o", help="Run folder (default: the config's out_dir, else runs/<model>)."),
    out_alias: Optional[Path] = typer.Option(None, "--out", hidden=True),
    resume: bool = typer.Option(False, "--resume", metavar="", help="Continue the run in the output folder from its last checkpoint."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop cleanly (and save) after this many minutes."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Total epochs (default: the config's / its stages')."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimisation steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Batch size (default: the config's)."),
    init: Optional[str] = typer.Option(
        None, "--init", help="Start from weights instead of random: 'pretrained' (the shipped ones) or a weights file (fine-tuning)."
    ),
    ir_norm: Optional[str] = typer.Option(None, "--ir-norm", metavar=IR_NORM_METAVAR, help=IR_NORM_HELP + " Train on what `fuse --ir-norm` will be given (default: the config's, range)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (weights, crops, batch order)."),
    device: Optional[Device] = typer.Option(None, "--device", help="Where the network trains (default: the config's, auto)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: the config's threads; 0 there: torch's default)."),
    sets: Optional[list[str]] = typer.Option(None, "--set", metavar="<key=value>", help="Override any config field: KEY=VALUE (TOML value); repeatable."),
    teachers: Optional[list[str]] = typer.Option(
        None, "--teacher", "-t", metavar="<str>",
        help="Distil from this method (name, NAME=WEIGHTS or NAME@WEIGHTS, a weights file, or 'bank'); repeat for an ensemble. Any network can be the student.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", metavar="", help="Training progress bar (--no-progress: logs only)."),
) -> None:
    """Train a network; writes last.pt, log.csv, model.safetensors and summary.json to the run folder."""
    from .cli_common import err_console as err
    from .cli_common import fail, one_model, with_alias
    from .errors import LitefuseError

    model = one_model(model, with_alias(model_option, method_alias, "--model", "--method"))
    out = with_alias(out, out_alias, "--output", "--out")
    try:
        model = model or _named_model(config, out, resume)
        if model is None:
            raise fail("name the network to train, e.g. `litefuse train lwc-densefuse -d DATA` (see `litefuse models`)")
        cfg = _build_config(model, data, config, out, resume, max_minutes, epochs, max_steps, batch_size, seed, device, sets, init,
                            teachers, val, ir_norm, threads)
        if not progress:
            cfg = cfg.replace(progress=False)
        from .train import Trainer

        result = Trainer(cfg, console=err).fit(resume=resume)
    except LitefuseError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    if result.best_val is not None:
        best = f"best val {result.best_val:.5g} at step {result.best_step}"
    elif result.stage:  # earlier stages validated, but their losses do not compare with this one's
        best = f"not yet validated in stage {result.stage + 1} (each stage keeps its own best weights), so the last weights"
    else:
        best = "no validation"
    typer.echo(f"{result.stop_reason}: {result.steps} steps, {best}; {result.weights} ({'finished' if result.finished else 'resumable with --resume'})")
    if result.stop_reason == "interrupted":  # scripts (`train && fuse`) must not go on with an unfinished run
        import signal

        raise typer.Exit(143 if result.signal == signal.SIGTERM else 130)  # as every other command


def _named_model(config, out, resume) -> str | None:
    """The network a ``--config`` file names, or with ``--resume`` the run in ``--out`` trained."""
    from .train import TrainConfig

    path = config if config is not None else out / "config.json" if resume and out is not None else None
    if path is None or (config is None and not path.is_file()):
        return None
    model = TrainConfig.read(path).get("model")
    return model if isinstance(model, str) and model else None


def _build_config(model, data, config, out, resume, max_minutes, epochs, max_steps, batch_size, seed, device, sets, init=None,
                  teachers=None, val=None, ir_norm=None, threads=None):
    """The effective :class:`~litefuse.train.TrainConfig` of a command line.

    ``teachers`` set ``[objective] teachers``; a model whose own objective has no teachers
    switches to the ``distill`` objective (its own loss parameters no longer apply).
    """
    from .registry import get_model_info
    from .train import ConfigError, TrainConfig, default_config_path, get_objective
    from .train.trainset import resolve_config_data

    get_model_info(model)  # unknown model -> ModelError listing the known ones
    get_objective(model)  # no objective -> ModelError listing the trainable ones
    run_dir = out if out is not None else Path("runs") / model
    saved = run_dir / "config.json"
    if config is None and resume and saved.is_file():
        config = saved  # the run's own configuration
    elif config is None:
        config = default_config_path(model)
    # --epochs / --max-steps may give the run length a config file leaves out (bad values: named below)
    length = {k: v for k, v in (("epochs", epochs), ("max_steps", max_steps)) if v is not None and v >= 1}
    cfg = TrainConfig.load(config, **length) if config is not None else TrainConfig(model=model, epochs=10)
    if out is None and cfg.out_dir and config != saved:  # a config file's own run folder (as Trainer takes it)
        run_dir = Path(cfg.out_dir)
    if cfg.model and cfg.model != model:
        raise ConfigError(f"{config}: is a config for {cfg.model!r}, not {model!r}")
    if config is not None:  # a config file's relative paths start from its own folder, not from here
        cfg = cfg.replace(data=resolve_config_data(cfg.data, config), val_data=resolve_config_data(cfg.val_data, config))
    cfg = cfg.replace(
        model=model,
        data=[str(Path(p).resolve()) for p in data] if data else None,
        val_data=[str(Path(p).resolve()) for p in val] if val else None,
        out_dir=str(run_dir),
        device=device.value if device is not None else None,
        init=init if init in (None, "", "pretrained") else str(Path(init).resolve()),
    )
    # the settings with an option of their own, by config key
    options = {"data": ("--data", data), "val_data": ("--val", val), "out_dir": ("--output", out), "device": ("--device", device), "init": ("--init", init),
               "max_minutes": ("--max-minutes", max_minutes), "epochs": ("--epochs", epochs),
               "max_steps": ("--max-steps", max_steps), "batch_size": ("--batch-size", batch_size), "seed": ("--seed", seed),
               "ir_norm": ("--ir-norm", ir_norm), "threads": ("--threads", threads)}
    for key in ("max_minutes", "epochs", "max_steps", "batch_size", "seed", "ir_norm", "threads"):  # one at a time: a bad value names its option
        option, value = options[key]
        if value is not None:
            cfg = cfg.replace(option, **{key: value})
    if teachers:
        own = get_objective(cfg.objective_name or model)
        if "teachers" in own.defaults:
            cfg = cfg.replace(objective={**cfg.objective, "teachers": list(teachers)})
        else:
            cfg = cfg.replace(objective_name="distill", objective={"teachers": list(teachers)})
    if sets:
        for assignment in sets:  # the same setting twice: say so rather than let --set win in silence
            key = assignment.partition("=")[0].strip()
            option, value = options.get(key, ("", None))
            if value not in (None, [], ()):
                raise ConfigError(f"--set {key}=... and {option} both set {key}; give one")
        cfg = cfg.apply_sets(sets)
        if cfg.model != model:  # the model is the command's argument; a --set would train another one in silence
            raise ConfigError(f"--set model={cfg.model}: the model is the command's argument ({model}); "
                              f"train {cfg.model} with `litefuse train {cfg.model}`")
    get_objective(cfg.objective_name or model)
    # what is still relative came from the command line (--set data=...), so from the working
    # directory; store every path absolute so that a resumed run finds the same files from anywhere
    return cfg.replace(data=[str(Path(p).resolve()) for p in cfg.data], val_data=[str(Path(p).resolve()) for p in cfg.val_data])


def card_command(
    run: Path = typer.Argument(..., help="A training run folder (model.safetensors, config.json, summary.json, log.csv)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The card (.md), or a folder for MODEL_CARD.md (default: RUN/MODEL_CARD.md); its loss curve is written beside it."),
    folders: Optional[list[Path]] = typer.Option(
        None, "--input", "-i", metavar="<path>", help="Score on these pair folders instead of the run's validation pairs; repeat."
    ),
    folders_alias: Optional[list[Path]] = typer.Option(None, "--eval", hidden=True),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most this many pairs per set."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help=JOBS_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Replace an existing card."),
) -> None:
    """Write a model card for a run's weights: data, recipe, seed, params, MACs, and validation scores beside the shipped weights, max and dwsfusion, per set."""
    from ._files import atomic_write_text
    from .cli_common import console, err_console, fail, progress_bar, with_alias
    from .errors import LitefuseError
    from .evaluation import default_jobs
    from .io import check_output_path
    from .train.card import loss_curve, run_card
    from .viz import PLOT_HINT, plotting_available

    folders = with_alias(folders, folders_alias, "--input", "--eval")
    card_path = output if output is not None else run / "MODEL_CARD.md"
    if output is not None and output.is_dir():  # a folder: the card goes in it
        card_path = output / "MODEL_CARD.md"
    try:
        if not run.is_dir():
            raise fail(f"{run}: {'not a folder' if run.exists() else 'folder not found'} (a training run's folder)")
        if not (run / "summary.json").is_file():
            raise fail(f"{run}: not a finished training run (no summary.json); train first, or --resume it")
        card_path = check_output_path(card_path, overwrite=overwrite, suffixes=(".md",))
        curve_path = None
        if plotting_available() and (run / "log.csv").is_file():  # the log is optional (read_run)
            # written beside the card: an existing file of that name is replaced only with --overwrite, as the card
            curve_path = check_output_path(card_path.with_name(card_path.stem + "_loss.png"), overwrite=overwrite,
                                           folder_checked=True)
        text, result = run_card(run, folders or (), limit=limit, jobs=jobs or default_jobs(), progress=progress_bar("scoring"))
        if not result.rows:
            for problem in result.skipped:
                err_console.print(f"skipped: {problem}", markup=False)
            raise fail(f"nothing could be scored: {len(result.skipped)} problem(s) above; no card written")
        curve = None
        if curve_path is not None:
            curve = loss_curve(run, curve_path)
            text += f"\n![training loss]({curve.name})\n"
        atomic_write_text(card_path, text)
    except LitefuseError as exc:
        raise fail(str(exc)) from None
    for problem in result.skipped:
        err_console.print(f"skipped: {problem}", markup=False)
    console.print(f"model card -> {card_path}", markup=False)
    if curve is None and (run / "log.csv").is_file():  # said as compare says its chart.png
        err_console.print(f"note: no loss curve in the card ({PLOT_HINT})", markup=False)
