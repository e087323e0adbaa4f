"""``litefuse`` command line: a thin typer layer over :mod:`litefuse.api`.

Every user-facing problem is one line on stderr (``error: <file>: <problem>``) with exit code
2, never a traceback (set ``LITEFUSE_DEBUG=1`` to see one).
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ._interrupt import quiet_interrupt

if TYPE_CHECKING:
    from .api import Fuser

with quiet_interrupt():  # Ctrl-C while the command starts: one line, not a traceback
    import typer
    from rich.table import Table

    from ._checks import parse_wxh
    from .cli_common import (TILE_HELP, Device, Precision, CONVENTION_HELP, CONVENTION_METAVAR, DEVICE_HELP, IR_NORM_HELP, IR_NORM_METAVAR, JOBS_HELP,
                             PRECISION_HELP, STRETCH_HELP, THREADS_HELP, console, err_console, fail, one_method, one_model, parse_ir_norm, progress_bar, with_alias)
    from .cli_fuse import fuse_command
    from .errors import LitefuseError

app = typer.Typer(
    name="litefuse",
    help="Small, fast, measurable infrared–visible image fusion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("fuse")(fuse_command)  # first in --help: the main job


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"litefuse {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", metavar="", callback=_print_version, is_eager=True, help="Print the version and exit."),
) -> None:
    pass


@app.command()
def models() -> None:
    """List the registered fusion methods: kind, weights, parameters, tasks and where each is the default."""
    from .models.complexity import count_params
    from .registry import list_models
    from .tasks import TASKS, default_model

    defaults: dict[str, list[str]] = {}
    for task in sorted(TASKS, key=lambda t: t == "ab"):  # "ab" (last): A/B pairs whose task is neither named nor read from their pixels
        try:
            defaults.setdefault(default_model(task), []).append("A/B of unread task" if task == "ab" else task)
        except LitefuseError:
            pass
    table = Table(title="litefuse methods (`litefuse bench -m NAME` times them here)")
    for col, justify in (("name", "left"), ("kind", "left"), ("weights", "left"), ("params", "right"),
                         ("tasks", "left"), ("default for", "left"), ("description", "left")):
        table.add_column(col, justify=justify)
    for info in list_models():
        shipped = "shipped" if info.weights_path else ("-" if info.kind == "classical" else "not yet")
        params = f"{count_params(info.factory()):,}" if info.kind == "network" else "-"
        table.add_row(info.name, info.kind, shipped, params, ",".join(info.tasks), ",".join(defaults.get(info.name, [])),
                      info.description)
    console.print(table)


@app.command()
def demo(
    output: Path = typer.Option(Path("litefuse-demo"), "--output", "-o", help="Folder for the demo images."),
    model: Optional[list[str]] = typer.Option(
        None, "--model", "-m", metavar="<str>", help="Method name, repeatable (each writes its own images); default: the best shipped network."
    ),
    method_alias: Optional[list[str]] = typer.Option(None, "--method", hidden=True),
    device: Device = typer.Option(Device.cpu, "--device", help=DEVICE_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Replace demo images already in the folder."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
) -> None:
    """Fuse a built-in synthetic infrared/visible scene and write the images."""
    from .demo import run_demo

    model = with_alias(model, method_alias, "--model", "--method")
    try:
        paths = run_demo(output, model=model or None, device=device.value, overwrite=overwrite, threads=threads)
    except LitefuseError as exc:
        raise fail(str(exc)) from None
    width = max(map(len, paths))
    for key, path in paths.items():
        console.print(f"{key:>{width}}: {path}", markup=False)


@app.command()
def export(
    model: Optional[str] = typer.Argument(None, help="Network to export (see `litefuse models`), e.g. aenetv2; or -m NAME."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .onnx file."),
    model_option: Optional[list[str]] = typer.Option(None, "--model", "-m", metavar="<str>", help="The network, as `fuse` and `bench` take it."),
    method_alias: Optional[list[str]] = typer.Option(None, "--method", hidden=True),
    weights: Optional[Path] = typer.Option(
        None, "--weights", help="Weights file instead of the shipped ones (a run's model.safetensors also names its network)."
    ),
    size: str = typer.Option("640x480", "--size", metavar="<WxH|dynamic>", help="Frame size WxH baked into the graph, or 'dynamic' for any size."),
    batch_size: str = typer.Option("1", "--batch-size", metavar="<N|dynamic>", help="Pairs per call baked into the graph, or 'dynamic' for any number."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (18 or newer: what torch's exporter writes)."),
    check: bool = typer.Option(True, "--check/--no-check", metavar="", help="Run the graph in onnxruntime and compare with PyTorch."),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Replace an existing file."),
) -> None:
    """Export a network to ONNX (inputs ir, vi: Nx1xHxW luminance in [0, 1]; output fused)."""
    from .export import export_onnx
    from .registry import weights_model

    model = one_model(model, one_method(with_alias(model_option, method_alias, "--model", "--method"), "export writes one network a file"))
    if model is None and weights is None:
        raise fail("name the network to export, e.g. `litefuse export aenetv2 -o aenetv2.onnx` (see `litefuse models`)")
    try:
        model = model or weights_model(weights)
        report = export_onnx(model, output, weights=weights, size=_parse_size(size), opset=opset, check=check,
                             overwrite=overwrite, batch=_parse_batch(batch_size))
    except LitefuseError as exc:
        raise fail(str(exc)) from None
    console.print(report.summary(), markup=False)


@app.command()
def bench(
    methods: Optional[list[str]] = typer.Option(
        None, "--method", "-m", metavar="<str>",
        help="Method as \\[label=]name\\[@weights] (a run's weights time its own variant); repeat "
             "(default: every network, max and gff). `max` is always timed."
    ),
    model_alias: Optional[list[str]] = typer.Option(None, "--model", hidden=True),
    size: str = typer.Option("640x480", "--size", metavar="<WxH>", help="Frame size WxH."),
    device: Device = typer.Option(Device.cpu, "--device", help=DEVICE_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    precision: Precision = typer.Option(Precision.fp32, "--precision", help=PRECISION_HELP),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Pairs per call."),
    compile: bool = typer.Option(False, "--compile", metavar="", help="Networks under torch.compile (warm-up rounds absorb the compilation); for GPUs: on the CPU it measured slower than eager."),
    rounds: int = typer.Option(15, "--rounds", min=1, help="Timed rounds; each calls every method once."),
    warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed rounds first."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the measurements as JSON."),
    chart: Optional[Path] = typer.Option(None, "--chart", help="Also draw the latencies as a PNG bar chart (needs matplotlib)."),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Replace an existing --json / --chart file."),
    tile: Optional[int] = typer.Option(None, "--tile", min=16, help=TILE_HELP),
) -> None:
    """Time fusion methods on this machine: params, MACs, latency and pairs/s, interleaved in one run."""
    import json

    from ._files import atomic_write_text
    from .bench import benchmark
    from .io import check_output_path

    methods = with_alias(methods, model_alias, "--method", "--model")
    hw = _parse_size(size, allow_dynamic=False)
    repeated = sorted({m for m in methods or () if methods.count(m) > 1})
    if repeated:
        err_console.print(f"note: {', '.join(repeated)} given more than once; timed once", markup=False)
    if compile and warmup < 1:
        err_console.print("note: --compile: one warm-up round kept, so the timings leave out the compilation", markup=False)
        warmup = 1
    try:
        if json_path is not None:
            json_path = check_output_path(json_path, (), overwrite, suffixes=(".json",))
        if chart is not None:
            from .viz import PLOT_HINT, plotting_available

            chart = check_output_path(chart, (), overwrite, suffixes=(".png",))
            if not plotting_available():
                raise fail(f"--chart: {PLOT_HINT}")
        report = benchmark(methods, size=hw, device=device.value, threads=threads, precision=precision.value,
                           batch_size=batch_size, compile=compile, rounds=rounds, warmup=warmup, tile=tile,
                           progress=progress_bar("timing rounds"))
        if json_path is not None:
            atomic_write_text(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
        if chart is not None:
            report.chart(chart)
    except LitefuseError as exc:
        raise fail(str(exc)) from None
    console.print(report.markdown(), markup=False)
    for label, path in (("json", json_path), ("chart", chart)):
        if path is not None:
            console.print(f"{label}: {path}", markup=False)


def _parse_batch(text: str) -> int | None:
    """``"4"`` -> 4; ``"dynamic"`` -> None."""
    text = text.strip().lower()
    if text == "dynamic":
        return None
    if not text.isdigit() or int(text) < 1:
        raise fail(f"--batch-size {text!r}: give a number of pairs (1 or more) or 'dynamic'")
    return int(text)


def _parse_size(text: str, allow_dynamic: bool = True) -> tuple[int, int] | None:
    """``"640x480"`` -> ``(480, 640)`` (H, W); ``"dynamic"`` -> None where ``allow_dynamic``."""
    if allow_dynamic and text.strip().lower() == "dynamic":
        return None
    try:
        w, h = parse_wxh(text)
    except ValueError:
        raise fail(f"--size {text!r}: expected WxH (e.g. 640x480){' or dynamic' if allow_dynamic else ''}") from None
    return h, w


def _default_methods(inputs: list[Path]) -> list[str]:
    """What `compare` shows without -m: the default method of each kind of pairs given (for A/B
    pairs, whose task a folder does not say, each A/B task's), `dwsfusion` beside it for
    infrared/visible pairs, and the classical bar `max`."""
    from .compare import expand_folders
    from .tasks import AB_TASKS, default_model, folder_task

    kinds = sorted({folder_task(f) for f in expand_folders(inputs)})
    tasks = [t for kind in kinds for t in ((kind,) if kind == "ivif" else ("ab", *sorted(AB_TASKS)))]
    methods = [default_model(t) for t in tasks] + (["dwsfusion"] if "ivif" in kinds else []) + ["max"]
    return list(dict.fromkeys(methods))


def _method(spec: str, options: dict) -> "Fuser":
    """``compare -m SPEC``'s Fuser; a bad name or weights file is said with the ``-m`` that gave it
    (an error about a weights file already starts with that file)."""
    from .api import Fuser
    from .errors import ModelError, OptionError

    try:
        return Fuser.from_spec(spec, **options)
    except (ModelError, OptionError) as exc:
        text = str(exc)
        raise fail(text if "@" in spec and text.startswith(spec.rpartition("@")[2]) else f"-m {spec}: {text}") from None


def _fused_folder(item: str, name: str | None):
    """``compare --fused [label=]DIR``: a :class:`~litefuse.compare.FusedFolder` (label: DIR's name)."""
    from .compare import FusedFolder

    label, _, folder = item.partition("=") if "=" in item and not Path(item).exists() else ("", "", item)
    return FusedFolder(label or Path(folder).name, Path(folder), name or "{stem}")


@app.command()
def compare(
    inputs: list[Path] = typer.Option(..., "--input", "-i", metavar="<path>", help="Pair folder(s) (ir/vi or A/B), or a parent of such (each pair folder below is a set); repeat."),
    methods: Optional[list[str]] = typer.Option(
        None, "--method", "-m", metavar="<str>",
        help="Method as \\[label=]name\\[@weights], e.g. mine=aenetv2@runs/a/model.safetensors; repeat "
             "(default: the pairs' default methods, dwsfusion for infrared/visible pairs, and max).",
    ),
    model_alias: Optional[list[str]] = typer.Option(None, "--model", hidden=True),
    reference: bool = typer.Option(
        True, "--reference/--no-reference", metavar="",
        help="Add the classical `max` fuser beside networks compared without it: the bar a network must beat.",
    ),
    output: Path = typer.Option(Path("litefuse-compare"), "--output", "-o", help="Report folder."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated metric names (default: the 8 core metrics)."),
    convention: str = typer.Option("cddfuse", "--convention", metavar=CONVENTION_METAVAR, help=CONVENTION_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most this many pairs per folder."),
    preview: int = typer.Option(4, "--preview", min=0, help="Pairs shown in grid.png, each set's first, then second, ... (0: no grid)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help=JOBS_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Replace an earlier report in the --output folder."),
    ir_norm: str = typer.Option("range", "--ir-norm", metavar=IR_NORM_METAVAR, help=IR_NORM_HELP + " Used for fusing and scoring alike."),
    stretch: bool = typer.Option(False, "--stretch", metavar="", help=STRETCH_HELP + " Every method alike."),
    device: Device = typer.Option(Device.cpu, "--device", help=DEVICE_HELP + " Not cpu: one process (-j 1)."),
    precision: Precision = typer.Option(Precision.fp32, "--precision", help=PRECISION_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch with -j 1 (workers of -j N run one each); default as fuse."),
    tile: Optional[int] = typer.Option(None, "--tile", min=16, help=TILE_HELP),
    stored: Optional[list[str]] = typer.Option(
        None, "--fused", metavar="<[label=]dir>",
        help="Another method's results, scored beside: fused images named by the pairs' stems, in DIR or DIR/<set>/; repeat.",
    ),
    fused_name: Optional[str] = typer.Option(
        None, "--fused-name", metavar="<template>", help="How --fused files are named after the pairs' stems, e.g. '{stem}_fused'."
    ),
) -> None:
    """Fuse the same pairs with several methods; write scores.csv, summary.md, chart.png, grid.png."""
    from .api import Fuser
    from .compare import check_report_dir, check_scoring, write_report
    from .compare import compare as run_compare
    from .evaluation import default_jobs

    methods = with_alias(methods, model_alias, "--method", "--model")
    norm = parse_ir_norm(ir_norm)  # a bad value is one line, before any note or model loading
    try:
        check_report_dir(output, overwrite, inputs)
        for option, check in (("--convention", lambda: check_scoring(None, convention)),  # likewise, each named
                              ("--metrics", lambda: check_scoring([m.strip() for m in metrics.split(",")] if metrics else None, convention))):
            try:
                names = check()
            except LitefuseError as exc:
                raise fail(f"{option}: {exc}") from None
        options = dict(stretch=stretch, device=device.value, precision=precision.value, threads=threads, tile=tile)
        if fused_name is not None and not stored:
            raise fail("--fused-name names the files of --fused DIR; give --fused too")
        fusers = [_method(m, options) for m in methods or _default_methods(inputs)]
        folders = [_fused_folder(item, fused_name) for item in stored or []]
        if reference and (folders or any(f.info.kind == "network" for f in fusers)) and not any(f.name == "max" for f in fusers):
            fusers.append(Fuser("max", **options))
            err_console.print("note: `max` added as the classical reference (--no-reference leaves it out)", markup=False)
        if fusers[0].device.type != "cpu":  # the models live on the device: one process uses it
            if (jobs or 1) > 1:
                err_console.print(f"note: -j {jobs} applies on the CPU; on {fusers[0].device} the pairs run in one process",
                                  markup=False)
            jobs = 1
        fusers += folders
        result = run_compare(inputs, fusers, metrics=names, convention=convention, limit=limit, preview=preview,
                             progress=progress_bar("comparing"), jobs=jobs or default_jobs(), ir_norm=norm)
        if not result.rows:
            for problem in result.skipped:
                err_console.print(f"skipped: {problem}", markup=False)
            raise fail(f"nothing could be scored: {len(result.skipped)} problem(s) above; no report written")
        paths = write_report(result, output, title=", ".join(p.name for p in inputs), overwrite=overwrite)
    except LitefuseError as exc:
        raise fail(str(exc)) from None
    for problem in result.skipped:
        err_console.print(f"skipped: {problem}", markup=False)
    console.print(f"\n{result.protocol_line()}", markup=False)  # as summary.md heads it
    for dataset in result.datasets():
        console.print(f"\n{result.heading(dataset)}", markup=False)
        console.print(result.markdown(dataset), markup=False)
    for key, path in paths.items():
        console.print(f"{key:>9}: {path}", markup=False)
    if "chart" not in paths:
        from .viz import PLOT_HINT

        err_console.print(f"note: no chart.png ({PLOT_HINT})", markup=False)
    if result.skipped:  # a report over fewer pairs than given: said by the exit code too, as fuse does
        raise typer.Exit(1)


def _register_module_commands() -> None:
    """Commands that live in their own modules (imported after ``app`` exists, which they use)."""
    from .cli_eval import eval_command
    from .cli_study import study_command
    from .cli_train import card_command, train_command

    app.command("eval")(eval_command)
    app.command("train")(train_command)
    app.command("card")(card_command)
    app.command("study")(study_command)


_register_module_commands()


def _note(message, category, filename, lineno, file=None, line=None) -> None:
    err_console.print(f"note: {message}", markup=False)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so temporary files are removed (and a training run
    saves its checkpoint) as on Ctrl-C."""


_TERMINATED: list[bool] = []  # set by the handler: typer turns either interruption into exit code 130


def _terminated(signum, frame) -> None:
    _TERMINATED.append(True)
    raise Terminated()


def _tolerant_output() -> None:
    """Where stdout / stderr use a legacy encoding (Windows' cp1252 when output is redirected),
    characters it lacks (the tables' ↑ ↓, a path's non-Latin letters) print as ``?`` instead of
    ending the command with a UnicodeEncodeError after its files were written."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            if codecs.lookup(encoding).name != "utf-8" and hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="replace")
        except (LookupError, ValueError, OSError):  # an unknown codec, or a stream that cannot change
            pass


def _empty_value(argv: list[str]) -> str | None:
    """The first option of ``argv``'s command given an empty value (``-o ""``, ``--json=``): typer
    turns it into ``.`` for a path, so ``compare -o ""`` wrote its report into the current folder."""
    if not any(t == "" or t.endswith("=") for t in argv[1:]):  # the common case: no click command built (9 ms)
        return None
    command = typer.main.get_command(app).commands.get(argv[0])  # type: ignore[attr-defined]
    if command is None:
        return None
    takes = {name: max(p.opts, key=len) for p in command.params  # each spelling -> the long one
             if p.param_type_name == "option" and not getattr(p, "is_flag", False) for name in p.opts}
    for i, token in enumerate(argv[1:], 1):
        name, eq, value = token.partition("=")
        if name in takes and ((eq and not value) or (not eq and argv[i + 1:i + 2] == [""])):
            return takes[name]
    return None


def main() -> None:  # pragma: no cover - exercised through the console script
    # The CLI owns its process: freed heap memory stays resident so full-resolution feature maps
    # are not page-faulted anew on every call (litefuse.runtime.keep_heap_resident).
    from .runtime import apply_heap_policy

    _tolerant_output()
    warnings.showwarning = _note  # library warnings as one "note:" line, not file:line + source
    signal.signal(signal.SIGTERM, _terminated)  # a CI timeout or `kill`: clean up as Ctrl-C does
    try:
        apply_heap_policy()  # a bad LITEFUSE_RESIDENT_HEAP: one line
        from .plugins import PluginError, check_plugins

        try:
            check_plugins()  # a plugin that failed to import: one line, before any command runs
        except PluginError as exc:
            if "--help" not in sys.argv[1:] and len(sys.argv) > 1:
                raise
            err_console.print(f"note: {exc}", markup=False)  # help still shows, the failure beside it
        if (empty := _empty_value(sys.argv[1:])) is not None:
            err_console.print(f"error: {empty} is empty: give a value (see: litefuse {sys.argv[1]} --help)", markup=False)
            sys.exit(2)
        code = app(standalone_mode=False)  # usage errors come here, reported as one line
    except typer.Abort:
        err_console.print("terminated" if _TERMINATED else "interrupted", markup=False)
        sys.exit(143 if _TERMINATED else 130)
    except LitefuseError as exc:
        err_console.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except KeyboardInterrupt:  # Terminated too
        err_console.print("terminated" if _TERMINATED else "interrupted", markup=False)
        sys.exit(143 if _TERMINATED else 130)
    except Exception as exc:
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            # click's (or typer's vendored click's) usage errors: bad option, missing value...
            ctx = getattr(exc, "ctx", None)
            # a sub-command's context has a parent; the top one is named after argv[0] ("python -m litefuse");
            # some errors carry none (`--overwrite=false`): the command is then argv's first word, when it is one
            if ctx is not None:
                command = f"litefuse {ctx.info_name}" if ctx.parent is not None else "litefuse"
                if getattr(exc, "possibilities", None):  # click's guesses take hidden aliases too (train --out)
                    hidden = {o for p in ctx.command.params if getattr(p, "hidden", False) for o in p.opts}
                    exc.possibilities = [o for o in exc.possibilities if o not in hidden]
            else:
                names = {c.name or c.callback.__name__ for c in app.registered_commands}
                command = f"litefuse {sys.argv[1]}" if len(sys.argv) > 1 and sys.argv[1] in names else "litefuse"
            message = exc.format_message().replace("Value error, ", "")  # typer's pydantic check prefixes choices with it
            if message.strip():  # empty when the help was shown for missing arguments
                err_console.print(f"error: {message} (see: {command} --help)", markup=False)
            sys.exit(exc.exit_code)
        if os.environ.get("LITEFUSE_DEBUG"):
            raise
        err_console.print(f"error: internal error ({exc.__class__.__name__}: {exc}); set LITEFUSE_DEBUG=1 for details", markup=False)
        sys.exit(3)
    if code == 130:  # typer (0.29) returns Ctrl-C and SIGTERM as exit code 130, silently
        err_console.print("terminated" if _TERMINATED else "interrupted", markup=False)
        sys.exit(143 if _TERMINATED else 130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # `python -m litefuse.cli` as `python -m litefuse` (it did nothing, exit 0)
    main()
