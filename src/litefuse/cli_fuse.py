"""``litefuse fuse``: one infrared/visible pair (images or videos), one A/B pair, or a folder of
pairs, through :class:`litefuse.Fuser`, :func:`litefuse.api.fuse_files`, :func:`litefuse.fuse_folder`
and :func:`litefuse.fuse_video`. An A/B pair or folder of unnamed task is fused with the default of
the task its pixels show (:mod:`litefuse.tasks`). This module defines the command function only;
``cli.py`` registers it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from .cli_common import (DEVICE_HELP, IR_NORM_HELP, IR_NORM_METAVAR, PRECISION_HELP, STRETCH_HELP, THREADS_HELP, TILE_HELP, Device, Precision,
                         Task, console, err_console, fail, one_method, parse_ir_norm, progress_bar, say, saying_first, with_alias)
from .errors import LitefuseError

__all__ = ["fuse_command", "SKIPS_SHOWN", "SKIPS_FILE"]


def fuse_command(
    ir: Optional[Path] = typer.Option(None, "--ir", help="Infrared image (grey; 8/16-bit PNG, TIFF, JPEG, BMP) or video (.mp4, .mkv, .mov, .avi)."),
    vi: Optional[Path] = typer.Option(None, "--vi", help="Visible image (grey or colour), or video when --ir is one."),
    a: Optional[Path] = typer.Option(None, "--a", help="First source of an A/B pair (multi-focus, multi-exposure, medical; grey or colour)."),
    b: Optional[Path] = typer.Option(None, "--b", help="Second source of an A/B pair."),
    task: Optional[Task] = typer.Option(None, "--task", help="What the pair is, which picks the default method (`litefuse models`): ivif for --ir/--vi (default), mff|mef|medical for --a/--b (default: read from the pixels of an A/B pair or folder)."),
    input_dir: Optional[Path] = typer.Option(
        None, "--input", "-i", help="Folder with ir/vi (or infrared/visible, Inf/Vis, A/B) sub-folders, or a parent of such; pairs by file stem."
    ),
    output: str = typer.Option(..., "--output", "-o", metavar="<path>", help="Output image (pair: .png, .tif, .jpg, .bmp), video file (video pair) or folder (folder mode, or a pair into a folder: an existing one, or a name ending in /)."),
    model: Optional[list[str]] = typer.Option(
        None, "--model", "-m", metavar="<str>",
        help="Method name (see `litefuse models`), or \\[label=]name\\[@weights] as compare takes it; "
             "default: aenetv2-ivif for infrared-visible pairs; for A/B pairs the default of their task (--task, else read "
             "from their pixels): laplacian for mef|mff, aenetv2 for medical.",
    ),
    method_alias: Optional[list[str]] = typer.Option(None, "--method", hidden=True),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Weights file to load instead of the shipped ones (.safetensors or .pth)."),
    device: Device = typer.Option(Device.cpu, "--device", help=DEVICE_HELP),
    grey: bool = typer.Option(False, "--grey", metavar="", help="Write a grey result even when the visible image is colour."),
    resize_vi: bool = typer.Option(False, "--resize-vi", metavar="", help="Resample the visible image to the infrared grid when sizes differ (A/B pairs: B to A's grid)."),
    ir_norm: str = typer.Option("range", "--ir-norm", metavar=IR_NORM_METAVAR, help=IR_NORM_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Replace existing outputs (inputs are never touched)."),
    skip_existing: bool = typer.Option(False, "--skip-existing", metavar="", help="Leave outputs already there as they are: a folder run resumes where it was interrupted; a pair or video whose output exists is not fused again."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    precision: Precision = typer.Option(Precision.fp32, "--precision", help=PRECISION_HELP),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Folder and video mode: same-size pairs (frames) fused per network call (GPU throughput)."),
    shortest: bool = typer.Option(False, "--shortest", metavar="", help="Video mode: when the streams' frame counts differ, stop at the shorter one (default: an error)."),
    bits: int = typer.Option(8, "--bits", help="Bits per sample of fused images: 8, or 16 to keep a 16-bit source's precision (PNG/TIFF; colour and folders: TIFF)."),
    compile: bool = typer.Option(False, "--compile", metavar="", help="Networks under torch.compile (CUDA graphs on GPU): the first batch of each size compiles (slow), then faster (a last, smaller batch runs padded to it); for folders and videos on a GPU (on the CPU it measured slower than eager)."),
    stretch: bool = typer.Option(False, "--stretch", metavar="", help=STRETCH_HELP),
    tile: Optional[int] = typer.Option(None, "--tile", min=16, help=TILE_HELP),
    fmt: Optional[str] = typer.Option(
        None, "--format", metavar="<png|tif|jpg|bmp>",
        help="Folder mode (and a pair into a folder): file format of the fused images (default: png; tif with --bits 16).",
    ),
) -> None:
    """Fuse one infrared/visible pair (images or videos), one A/B pair, or every pair in a folder."""
    from .api import Fuser, fuse_files
    from .folder import fuse_folder, output_suffix
    from .tasks import folder_task, read_ab_task, read_folder_tasks, read_task_note, shared_task, unnamed_ab_note
    from .video import is_video

    model = one_method(with_alias(model, method_alias, "--model", "--method"),
                       "fuse takes one (litefuse compare fuses the same pairs with several and scores them)")
    pair_ab = a is not None or b is not None
    if pair_ab and (ir is not None or vi is not None):
        raise fail("give either --ir/--vi (infrared + visible) or --a/--b (an A/B pair), not both")
    if pair_ab:
        ir, vi = a, b
    sources = "--a and --b" if pair_ab else "--ir and --vi"
    if input_dir is not None and (ir is not None or vi is not None):
        raise fail(f"give either --input DIR or {sources}, not both")
    if input_dir is None and (ir is None or vi is None):
        raise fail(f"give {sources} (one pair) or --input DIR (a folder of pairs)")
    if task is not None and task != Task.ivif and not pair_ab and input_dir is None:
        raise fail(f"--task {task.value} fuses an A/B pair: give --a and --b")
    if task == Task.ivif and pair_ab:
        raise fail("--task ivif fuses an infrared/visible pair: give --ir and --vi")
    if bits not in (8, 16):
        raise fail(f"--bits must be 8 or 16 (got {bits})")
    if overwrite and skip_existing:
        raise fail("--overwrite replaces existing outputs and --skip-existing keeps them; give one")
    norm = parse_ir_norm(ir_norm)
    try:
        suffix = output_suffix(fmt, bits)
    except LitefuseError as exc:
        raise fail(f"--format: {exc}") from None
    if not output.strip():
        raise fail("--output is empty: give a file or folder to write to")
    into_folder = output.endswith(("/", os.sep))  # a pair into a folder that may not exist yet
    output = Path(output)
    into_folder = into_folder or output.is_dir()
    try:
        if input_dir is not None:
            found = folder_task(input_dir)
            if task is not None and (task == Task.ivif) != (found == "ivif"):
                holds = "infrared/visible (ir/vi) pairs" if found == "ivif" else "A/B pairs"
                raise fail(f"--task {task.value} does not fit {input_dir}: it holds {holds}")
            kind = task.value if task is not None else found
        else:
            kind = task.value if task is not None else ("ab" if pair_ab else "ivif")
        single = input_dir is None and not (is_video(ir) or is_video(vi))
        notes: list[str] = []  # said once the checks passed (a bad run's error stands alone): a pair's after it, a folder's as it starts
        # an A/B task none names is read from the pixels: a folder's from a few pairs, a pair's from what fuse_files reads
        unnamed = kind == "ab" and model is None and weights is None
        if single and (batch_size > 1 or compile):
            unused = [o for o, on in (("--batch-size", batch_size > 1), ("--compile", compile)) if on]
            verb = "apply" if len(unused) > 1 else "applies"
            notes.append(f"note: {' and '.join(unused)} {verb} to folders and videos; one pair is fused once, as it is")
            compile = False  # compiling for a single call only costs time

        def load(read: tuple[str, ...] = ()) -> Fuser:
            """The method for ``kind`` (or the task ``read`` from the pixels), and the notes on it."""
            options = dict(device=device.value, task=shared_task(read) or kind, threads=threads, precision=precision.value,
                           compile=compile, stretch=stretch, tile=tile)
            if model is not None and ("@" in model or "=" in model):  # [label=]name[@weights], as compare, eval and bench take it
                if weights is not None and "@" in model:
                    raise fail(f"-m {model} and --weights {weights} both name weights; give one")
                fuser = Fuser.from_spec(model if weights is None else f"{model}@{weights}", **options)
            else:
                fuser = Fuser(model, weights=weights, **options)
            if read:
                notes.append(read_task_note(read, fuser.name, f"the A/B pairs of {input_dir}" if input_dir is not None else f"{ir} and {vi}"))
            elif unnamed and (note := unnamed_ab_note(fuser.name)):
                notes.append(note)
            if fuser.info.kind != "network" and (precision.value != "fp32" or compile):  # as bench's settings line says it
                unused = [o for o, on in ((f"--precision {precision.value}", precision.value != "fp32"), ("--compile", compile)) if on]
                notes.append(f"note: {' and '.join(unused)} {'apply' if len(unused) > 1 else 'applies'} to networks; "
                             f"{fuser.label} runs in float32, as it is")
            return fuser

        fuser = None if unnamed and single else load(read_folder_tasks(input_dir) if unnamed and input_dir is not None else ())
        if input_dir is not None:
            report = fuse_folder(
                input_dir, output, fuser, grey=grey, resize_vi=resize_vi, ir_norm=norm, overwrite=overwrite,
                progress=saying_first(notes, progress_bar(f"fusing ({fuser.label})")), batch_size=batch_size, bits=bits, fmt=fmt,
                skip_existing=skip_existing,
            )
            _print_skips(report.skipped, output)
            written = report.fused or report.existing  # a resumed run's outputs already there count as fused
            console.print(f"{report.summary.split(': ')[0]} -> {output if written else 'nothing written'}", markup=False)
            raise typer.Exit(0 if not report.skipped else (1 if written else 2))
        if is_video(ir) or is_video(vi):
            if bits != 8 or fmt is not None:
                raise fail(f"{'--bits 16' if bits != 8 else '--format'} applies to images; videos are encoded as H.264 with 8 bits")
            _fuse_video(ir, vi, output, fuser, into_folder, sources, grey=grey, resize_vi=resize_vi, overwrite=overwrite,
                        batch_size=batch_size, shortest=shortest, ir_norm=norm, skip_existing=skip_existing)
            say(notes)
            return
        if fmt is not None and not into_folder:
            raise fail(f"--format names the format of fused images written into a folder; {output} names its own (its suffix)")
        out = output / f"{ir.stem}{suffix}" if into_folder else output
        if skip_existing and _kept(out):
            return

        def pick(a_image, b_image) -> Fuser:  # the default of the task the pair's pixels show
            nonlocal fuser
            fuser = load((read_ab_task(a_image, b_image),))
            return fuser
        path = fuse_files(ir, vi, out, fuser or pick, task=kind, grey=grey, resize_vi=resize_vi, ir_norm=norm, overwrite=overwrite, bits=bits)
        say(notes)
        console.print(f"fused ({fuser.label}) -> {path}", markup=False)
    except LitefuseError as exc:
        raise fail(str(exc)) from None


SKIPS_SHOWN = 20  # problems printed one a line; more (thousands of unpaired files) go to a file
SKIPS_FILE = "litefuse-skipped.txt"


def _print_skips(skipped: list[str], output: Path) -> None:
    """One ``skipped:`` line per problem, up to :data:`SKIPS_SHOWN`; beyond that the first ones
    and a count, every problem listed in ``output/litefuse-skipped.txt`` (a list from an earlier
    run there is removed when this one has none to write)."""
    listing = output / SKIPS_FILE
    for problem in skipped[:SKIPS_SHOWN]:
        err_console.print(f"skipped: {problem}", markup=False)
    if len(skipped) <= SKIPS_SHOWN:
        if listing.is_file():
            listing.unlink()
        return
    from ._files import atomic_write_text

    atomic_write_text(listing, "".join(f"{problem}\n" for problem in skipped))
    err_console.print(f"skipped: ... {len(skipped) - SKIPS_SHOWN} more; all {len(skipped)} listed in {listing}", markup=False)


def _kept(out: Path) -> bool:
    """``--skip-existing`` for one pair or video: an output already there is kept, and said."""
    if not out.is_file():
        return False
    console.print(f"{out}: already there, kept (--skip-existing)", markup=False)
    return True


def _fuse_video(ir: Path, vi: Path, output: Path, fuser, into_folder: bool, sources: str, skip_existing: bool = False,
                **kwargs) -> None:
    from .video import fuse_video, is_video

    for path in (ir, vi):
        if not is_video(path):  # sources: "--ir and --vi", or "--a and --b" for an A/B pair
            raise fail(f"{path}: not a video (both {sources} must be videos to fuse a video)")
    out = output / f"{ir.stem}_fused.mp4" if into_folder else output
    if skip_existing and _kept(out):
        return
    report = fuse_video(ir, vi, out, fuser, progress=progress_bar(f"fusing frames ({fuser.label})"), **kwargs)
    console.print(f"fused {report.frames} frame{'s' * (report.frames != 1)} ({fuser.label}, {report.size[0]}×{report.size[1]} @ {report.fps:g} fps) -> {report.path}", markup=False)
    if report.shorter is not None:
        err_console.print(f"note: {report.shorter} ended after {report.frames} frames; the other stream's later frames were not fused", markup=False)
