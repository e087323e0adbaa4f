"""What every ``litefuse`` command shares: the two consoles, the one-line failure and the
progress bar. Its own module so the command modules (``cli.py``, ``cli_eval.py``,
``cli_train.py``, ``cli_study.py``) import it instead of each other."""

from __future__ import annotations

import sys
from enum import Enum

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = [
    "Device", "Precision", "CONVENTION_HELP", "CONVENTION_METAVAR", "DEVICE_HELP", "IR_NORM_HELP", "IR_NORM_METAVAR", "JOBS_HELP",
    "PRECISION_HELP", "STRETCH_HELP", "THREADS_HELP", "TILE_HELP", "console", "err_console", "fail", "one_model", "parse_ir_norm",
    "progress_bar", "with_alias",
]

IR_NORM_HELP = ("Infrared scale: range (8-bit / 255, 16-bit / 65535), minmax (stretch each image), "
                "or the sensor's peak value (e.g. 4095: 12-bit data in 16-bit files).")
STRETCH_HELP = ("Min-max stretch each fused image to the full range before it is saved or scored, as CDDFuse's "
                "test_IVF.py does: a protocol choice that changes every metric; off by default.")
IR_NORM_METAVAR = "<range|minmax|PEAK>"
CONVENTION_METAVAR = "<cddfuse|tang|vifb|liu>"
CONVENTION_HELP = "Metric convention: whose evaluator the numbers follow (they differ; docs/metrics.md)."
DEVICE_HELP = "Where networks run."
PRECISION_HELP = "Networks' arithmetic: fp32, fp16 or bf16 (half precision: faster on GPUs)."
THREADS_HELP = "CPU threads for torch (default: $LITEFUSE_THREADS, else OMP_NUM_THREADS, else the free cores by the load average)."
JOBS_HELP = "Worker processes, pairs in parallel (default: the cores the load average says are free, at most 4)."

TILE_HELP = ("Fuse frames of more than N×N pixels in overlapping tiles of N (bounds memory; default: the method's, "
             "600 for the DenseFuse family, else 1024); a larger N fuses larger frames in one pass.")


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Task(str, Enum):
    ivif = "ivif"
    mff = "mff"
    mef = "mef"
    medical = "medical"


# Piped output (files, CI logs) gets a wide console so metric tables are never truncated.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: <message>`` on stderr; the ``typer.Exit`` to raise (exit 2 by default)."""
    err_console.print(f"error: {message}", markup=False)
    return typer.Exit(code)


def one_model(argument: str | None, option: str | None) -> str | None:
    """The model a command names by position or with ``-m`` (as ``fuse`` and ``bench`` take it),
    or ``None``; naming two different ones is an error."""
    if argument and option and argument != option:
        raise fail(f"two models named ({argument!r} and -m {option!r}); name one")
    return argument or option


def one_method(values: list[str] | None, what: str) -> str | None:
    """The one method of a command whose ``-m`` may be given once: ``-m`` is repeatable for typer
    so that a second one is said (a plain option kept the last one given, in silence)."""
    names = list(dict.fromkeys(values or []))
    if len(names) > 1:
        raise fail(f"-m names {len(names)} methods ({', '.join(names)}); {what}")
    return names[0] if names else None


def with_alias(value, alias_value, name: str, alias: str):
    """An option's value where a hidden second spelling (``--method`` beside ``--model``, the
    older ``--out`` beside ``--output``) may have been used instead: repeatable options
    collect both; a single value given under both spellings must agree."""
    if alias_value in (None, [], ()):
        return value
    if value in (None, [], ()):
        return alias_value
    if isinstance(value, list):
        return [*value, *alias_value]
    if value != alias_value:
        raise fail(f"{name} and {alias} are the same option, given twice ({value} and {alias_value}); give one")
    return value


def progress_bar(description: str):
    """A rich progress tracker usable as ``progress(iterable, total)``."""
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=False,
    )

    def track(iterable, total):
        bar.start()
        try:
            yield from bar.track(iterable, total=total, description=description)
        except BaseException:  # an interrupt (or an error) is ending the run
            try:
                bar.stop()  # joins the display thread
            except KeyboardInterrupt:  # a second Ctrl-C meanwhile: it printed "Exception ignored in:
                pass  # <generator ...>" and a traceback
            raise
        bar.stop()  # a Ctrl-C here, at a normal end, still interrupts

    return track


def say(notes: list[str]) -> None:
    """Each note on its own stderr line."""
    for note in notes:
        err_console.print(note, markup=False)


def saying_first(notes: list[str], progress):
    """``progress`` that first says ``notes``: a folder run calls it once its checks have passed,
    so a run that cannot start shows its error alone."""
    def wrapped(iterable, total):
        say(notes)
        return progress(iterable, total)
    return wrapped


def parse_ir_norm(value: str) -> str | float:
    """``--ir-norm``: ``range``, ``minmax`` or a positive peak value such as ``4095``."""
    from .io import parse_norm

    try:
        return parse_norm(value)
    except ValueError:  # float('x') and check_norm's OptionError alike
        raise fail(f"--ir-norm {value}: give range, minmax or the sensor's peak value (e.g. 4095)") from None
