"""ONNX export of the fusion networks, checked against PyTorch with onnxruntime.

The exported graph is the network itself: inputs ``ir`` and ``vi``, each ``(N, 1, H, W)``
float32 luminance in [0, 1] (the visible image's Y), output ``fused`` of the same shape.
Colour (fusing on Y and keeping the visible chroma) and range handling stay outside the
graph, as in :class:`litefuse.Fuser`.

``size=(H, W)`` exports a fixed frame size (a camera's resolution; the fastest graph);
``size=None`` exports height and width as dynamic axes. ``batch`` is the number of pairs per
call: 1 (default), a fixed N, or ``None`` for a dynamic batch axis. Needs ``pip install "litefuse[onnx]"``
(onnx, onnxscript, onnxruntime). DWSFusion is not exported: its FreqSelect's FFTs export only as
ONNX ``DFT`` ops, which onnxruntime computes directly (no fast transform) at sizes such as 640:
36-40x slower than PyTorch for one FreqSelect at 640x480 and 3e-4 off, 9x at 512x512 (2026-12-07).

What the graph records. The networks trace their training form with export-friendly variants
of a few ops (:mod:`litefuse.models.layers`): reflection padding as one ``Pad`` (the eager
code's in-place border fix-ups would become whole-map ``ScatterND`` + ``Transpose``), ``lerp``
as ``a + w * (b - a)`` (not the exporter's ``Where``-based decomposition), channel sums and
one-output-channel convolutions as convolutions that onnxruntime's blocked (NCHWc) kernels run
well, and no layout conversions. :func:`ort_session` holds the session options that matter on
CPU: intra-op threads as many as torch uses, no spinning threads, all graph optimisations (the
NCHWc layout transformation where the graph's convolutions are at least as wide as its block). Static int8 quantisation was measured and is not offered:
slower than float32 on AVX2 CPUs without VNNI; 2.3× faster for DenseFuse on AVX-512 VNNI, but 8-bit
decoder activations cost 3–27 % on the fusion metrics (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ._checks import size_hw, whole
from ._files import new_folders, publish, temporary_beside
from .demo import synthetic_luma_pair
from .errors import ModelError, OptionError
from .io import MAX_SIDE, MIN_SIDE, check_output_path
from .registry import get_model_info, load_model

__all__ = ["AB_CONTRACT", "CONTRACT", "TOLERANCE", "ExportReport", "export_onnx", "check_onnx", "ort_session", "nchwc_block", "widest_conv"]

#: the oldest ONNX opset torch's exporter writes (older requests come back as 18, or fail to convert)
MIN_OPSET = 18

#: the largest side and batch an export takes (a dynamic graph's traced bounds)
MAX_BATCH = 4096

#: tolerance of the PyTorch-vs-onnxruntime check (float32 rounding of a different op order)
TOLERANCE = 1e-4


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how closely onnxruntime reproduces PyTorch."""

    path: Path
    model: str
    opset: int
    size: tuple[int, int] | None  # None: dynamic height and width
    bytes: int
    batch: int | None = 1  # None: dynamic batch
    max_abs_error: float | None = None  # over every checked size and batch; None when not checked
    checked: list[tuple[int, int]] = field(default_factory=list)
    checked_batches: list[int] = field(default_factory=list)
    white: tuple[int, int] | None = None  # the white frame's size (H, W), where not among ``checked``
    ort_ms: float | None = None  # onnxruntime latency of one call (a batch) at the first checked size and batch

    def summary(self) -> str:
        """One line for a console: file, model, frame size and batch, opset, size on disk, check."""
        shape = f"{self.size[1]}×{self.size[0]}" if self.size else "dynamic size"  # W×H, as --size takes it
        if self.batch != 1:
            shape += f", batch {self.batch or 'dynamic'}"
        text = f"{self.model} -> {self.path} ({self.bytes / 1024:.1f} KiB, opset {self.opset}, {shape})"
        if self.max_abs_error is not None:
            sizes = ", ".join(f"{w}×{h}" for h, w in self.checked)
            batches = f" (batch {' and '.join(map(str, self.checked_batches))})" if self.checked_batches not in ([], [1]) else ""
            white = f" and a white {self.white[1]}×{self.white[0]} frame" if self.white and self.white not in self.checked else ""
            text += f"; onnxruntime vs PyTorch max |Δ| {self.max_abs_error:.1e} at {sizes}{batches}{white}; {self.ort_ms:.1f} ms per call"
        return text


def _newest_opset() -> int | None:
    """The newest default-domain opset the installed ``onnx`` defines (None without onnx)."""
    try:
        import onnx
    except ImportError:
        return None
    return int(onnx.defs.onnx_opset_version())


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ModelError(f"ONNX export needs {module}: pip install \"litefuse[onnx]\"") from None


def export_onnx(
    model: str,
    path: str | Path,
    weights: str | Path | None = None,
    size: tuple[int, int] | None = (480, 640),
    opset: int = 18,
    batch: int | None = 1,
    check: bool = True,
    overwrite: bool = False,
) -> ExportReport:
    """Export a registered network (shipped weights, or ``weights``) to ONNX at ``path``.

    The file is written atomically; with ``check`` it is run by onnxruntime on the built-in
    synthetic pair (and, for dynamic axes, also at an odd size, and at batch 1 and 3) and
    compared with PyTorch; a difference above :data:`TOLERANCE` is an error and leaves no file
    behind. ``model``: a registered network's name (a classical method or DWSFusion, whose FFTs
    do not export, is a :class:`~litefuse.errors.ModelError`). ``size``: the fixed ``(H, W)``
    of the graph, or ``None`` for dynamic height and width. ``batch``: pairs per call, a fixed
    N or ``None`` for a dynamic batch axis. ``opset``: ONNX opset, 18 or newer. An existing
    ``path`` is an :class:`~litefuse.errors.OutputError` unless ``overwrite``.
    """
    info = get_model_info(model)
    if info.kind != "network":
        raise ModelError(f"{model!r} is a classical method, not a network; there is nothing to export")
    if size is not None and not size_hw(size):
        raise OptionError(f"size must be (H, W) in whole pixels, or None for dynamic sizes (got {size!r})")
    if batch is not None and not whole(batch, 1):
        raise OptionError(f"batch must be a whole number of pairs (1 or more), or None for a dynamic batch (got {batch!r})")
    if size is not None and not MIN_SIDE <= min(size) <= max(size) <= MAX_SIDE:
        raise OptionError(f"export size must be {MIN_SIDE} to {MAX_SIDE} pixels a side, got {size[1]}×{size[0]} (W×H)")
    if batch is not None and batch > MAX_BATCH:
        raise OptionError(f"batch must be at most {MAX_BATCH} pairs (got {batch}); --batch-size dynamic takes any up to it")
    if not whole(opset, MIN_OPSET):
        # torch's exporter writes opset 18 and would down-convert (silently keeping 18, or failing)
        raise OptionError(f"--opset {opset!r}: the exporter writes ONNX opset {MIN_OPSET} or newer (a whole number)")
    newest = _newest_opset()
    if newest is not None and opset > newest:
        raise OptionError(f"--opset {opset}: the newest ONNX opset the installed onnx package knows is {newest}")
    path = check_output_path(path, (weights,) if weights else (), overwrite, suffixes=(".onnx",))
    for module in ("onnx", "onnxscript", *(("onnxruntime",) if check else ())):
        _require(module)  # before the (slow) export
    net = load_model(model, weights=weights, device="cpu").eval()
    reason = getattr(net, "onnx_unsupported", None)
    if reason:
        raise ModelError(f"{model}: cannot be exported to ONNX: {reason}")

    h, w = size if size is not None else (64, 96)
    # a dynamic batch is traced at 2: torch.export fixes an axis its example has at size 1
    with _memory(model, f"exporting at {w}×{h}, batch {batch or 2}", "export a smaller --size or --batch-size"):
        example = _example(h, w, batch or 2)
    dims = {}
    if batch is None:
        dims[0] = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    if size is None:
        dims.update({2: torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE), 3: torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE)})
    dynamic = {"ir": dims, "vi": dims} if dims else None
    with new_folders(path.parent), temporary_beside(path, suffix=".onnx") as tmp:
        try:
            with _quiet(), torch.no_grad():
                torch.onnx.export(
                    net, example, tmp, input_names=["ir", "vi"], output_names=["fused"], opset_version=opset,
                    dynamo=True, dynamic_shapes=dynamic, external_data=False, verbose=False,
                )
        except Exception as exc:  # exporter failures are long; keep the first line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise ModelError(f"{model}: ONNX export failed ({first[:200]})") from None
        _finish_graph(tmp, model, weights, dynamic is not None)
        written = _opset_of(tmp)
        if written != opset:
            raise ModelError(f"{model}: asked for ONNX opset {opset}, the exporter wrote {written}; not written")
        report = ExportReport(path, model, opset, size, Path(tmp).stat().st_size, batch)
        if check:
            sizes = [(h, w)] if size is not None else [(h, w), (75, 101)]
            batches = [batch] if batch is not None else [1, 3]
            white = (h, w) if size is not None else (480, 640)  # where gate-mean drift would show (it grows with pixels)
            checked = ", ".join(f"{cw}×{ch}" for ch, cw in sizes + ([white] if size is None else []))
            smaller = "export a smaller --size or --batch-size, or " if size is not None or batch is not None else ""
            with _memory(model, f"checking the graph (at {checked}, batch {' and '.join(map(str, batches))})",
                         f"{smaller}--no-check writes the graph unchecked"):
                report.max_abs_error, report.ort_ms = check_onnx(tmp, net, sizes, batches, white=white)
            report.checked, report.checked_batches, report.white = sizes, batches, white
            if not report.max_abs_error <= TOLERANCE:  # NaN too
                raise ModelError(
                    f"{model}: the ONNX graph differs from PyTorch by {report.max_abs_error:.2e} (> {TOLERANCE:g}); not written"
                )
        publish(tmp, path)
    return report


@contextlib.contextmanager
def _memory(model: str, doing: str, hint: str):
    """Running out of memory building the example or checking the graph (a large ``--size`` or
    ``--batch-size``; onnxruntime's arena fails as a RuntimeError) as one :class:`ModelError`
    saying what was being done and what to do."""
    try:
        yield
    except Exception as exc:
        text = str(exc)
        if not isinstance(exc, MemoryError) and "allocate" not in text.lower() and "bad_alloc" not in text:
            raise
        raise ModelError(f"{model}: not enough memory {doing}; {hint}") from None


#: the graph's contract, written into every exported file (``doc_string`` and ``metadata_props``)
CONTRACT = {
    "inputs": "ir, vi: float32 Nx1xHxW in [0, 1] (8-bit / 255, 16-bit / 65535), both of one size, each side at least "
              f"{MIN_SIDE} pixels (a dynamic graph takes up to {MAX_SIDE}); ir: the infrared image, one channel "
              "(stored as three equal channels: one of them); vi: the visible image's luma, full-range BT.601 "
              "Y = 0.299R + 0.587G + 0.114B; images upright (EXIF / TIFF orientation applied), any alpha channel dropped",
    "output": "fused: float32 Nx1xHxW, the fused luma, bounded to [0, 1] in the graph; 8-bit: round(255 * fused)",
    "colour": "a colour visible image keeps its chroma: Cb = 0.564(B - Y) + 0.5, Cr = 0.713(R - Y) + 0.5 from the "
              "visible, then R = Y' + 1.403(Cr - 0.5), G = Y' - 0.714(Cr - 0.5) - 0.344(Cb - 0.5), "
              "B = Y' + 1.773(Cb - 0.5) with Y' = fused, each clamped to [0, 1]; a grey visible (one channel, or three "
              "equal ones) gives a grey result, one channel",
}
#: what a graph of a network that also fuses A/B pairs adds to :data:`CONTRACT` (appended per key)
AB_CONTRACT = {
    "inputs": "an A/B pair (two exposures, focal planes or scans) gives each source's luma, A as ir and B as vi",
    "colour": "two colour sources (A/B): each chroma plane is the sources' planes weighted by |C - 0.5| per pixel "
              "(their mean where both are 0.5), as litefuse.colour.fuse_chroma",
}


def _finish_graph(path: str | Path, model: str, weights: str | Path | None, dynamic: bool = False) -> None:
    """Rewrite the exported file once: the oldest IR version its opset allows, its contract, and
    (``dynamic``) the output's axes named as the inputs' (AE-Netv2's even-size padding and crop
    left ``Min(height, 2*((height + Mod(height, 2))//2))`` for ``height``: the same size, which
    tools that match axes by name took for another)."""
    import onnx

    graph_model = onnx.load(str(path), load_external_data=False)
    _lowest_ir_version(graph_model)
    _describe(graph_model, model, weights)
    if dynamic:
        source = graph_model.graph.input[0].type.tensor_type.shape
        graph_model.graph.output[0].type.tensor_type.shape.CopyFrom(source)
    onnx.save(graph_model, str(path))


def _describe(graph_model, model: str, weights: str | Path | None) -> None:
    """Write the graph's contract (:data:`CONTRACT`) into an ONNX model: its ``doc_string`` and
    ``metadata_props``, and each input's and the output's ``doc_string``, so a deployer reads
    from the file itself what to feed and what comes back."""
    import onnx

    from . import __version__
    from .registry import weights_metadata

    source = Path(weights).name if weights else "shipped"
    ab = get_model_info(model).tasks != ("ivif",)
    pairs = "infrared-visible or A/B (two exposures, focal planes, scans)" if ab else "infrared-visible"
    trained = weights_metadata(weights).get("ir_norm", "range") if weights else "range"
    scale = {"range": "8-bit / 255, 16-bit / 65535", "minmax": "each image min-max stretched to [0, 1]"}.get(
        trained, f"divided by {trained}, the sensor's peak (raw data in 16-bit files)")
    contract = {key: f"{text}; {AB_CONTRACT[key]}" if ab and key in AB_CONTRACT else text for key, text in CONTRACT.items()}
    if trained != "range":  # the infrared is scaled as these weights were trained, not by its container's range
        contract["inputs"] += f"; these weights take the infrared {scale} (litefuse.ir_norm)"
    graph_model.doc_string = f"litefuse {__version__} {model} ({source} weights): {pairs} fusion on luminance. " + (
        " ".join(f"{key.capitalize()}: {text}." for key, text in contract.items())
    )
    props = {"litefuse.version": __version__, "litefuse.model": model, "litefuse.weights": source,
             "litefuse.ir_norm": f"{trained}: the infrared scale the weights were trained on, {scale} (litefuse fuse --ir-norm {trained})",
             **{f"litefuse.{key}": text for key, text in contract.items()}}
    del graph_model.metadata_props[:]
    onnx.helper.set_model_props(graph_model, props)
    docs = {"ir": "infrared, float32 Nx1xHxW in [0, 1]", "vi": "visible luma (BT.601 Y), float32 Nx1xHxW in [0, 1]",
            "fused": "fused luma, float32 Nx1xHxW in [0, 1]"}
    for value in (*graph_model.graph.input, *graph_model.graph.output):
        value.doc_string = docs.get(value.name, value.doc_string)


def _lowest_ir_version(model) -> None:
    """Declare the oldest ONNX IR version the graph's opsets allow (8 for opset 18), not the
    newest the exporter knows (10): onnxruntime 1.17 and older refuse IR 10 ("max supported IR
    version: 9") although the graph (float32 tensors, no functions) uses nothing of IR 9 or 10."""
    import onnx

    lowest = onnx.helper.find_min_ir_version_for(list(model.opset_import))
    graph = model.graph
    types = {t.data_type for t in graph.initializer} | {
        v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)
    } | {a.i for n in graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"}
    if model.functions or lowest >= model.ir_version or max(types, default=0) > onnx.TensorProto.BFLOAT16:
        return  # functions, or float8 / 4-bit types (IR 9, 10): keep the exporter's version
    exporters = model.ir_version
    model.ir_version = lowest
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError:  # something of a newer IR after all: keep the exporter's
        model.ir_version = exporters


def _opset_of(path: str | Path) -> int | None:
    """The default-domain ONNX opset a graph file declares."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def nchwc_block(flags: str | None = None) -> int:
    """Channels per block of onnxruntime's NCHWc layout on this CPU: MLAS picks 16 where the CPU
    has AVX-512F and 8 elsewhere (by CPUID; no option changes it). ``flags``: a /proc/cpuinfo
    ``flags`` line, for tests."""
    if flags is None:
        from .runtime import cpu_facts

        flags = cpu_facts().get("flags", "")
    return 16 if "avx512f" in flags.split() else 8


def widest_conv(path: str | Path) -> int | None:
    """The most output channels of any ``Conv`` in the ONNX graph at ``path``, by its weight's
    shape: an initializer's, or the one the exporter recorded for a weight computed from
    initializers (a slice of one, which onnxruntime folds to a constant). ``None`` where the
    file cannot be read with the ``onnx`` package."""
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # no onnx package, or not a plain model file: leave the choice to ORT
        return None
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
    dims.update({t.name: list(t.dims) for t in graph.initializer})
    widths = [dims[n.input[1]][0] for n in graph.node if n.op_type == "Conv" and dims.get(n.input[1])]
    return max(widths, default=0)


def ort_session(path: str | Path, threads: int | None = None, nchwc: bool | None = None, options=None):
    """An onnxruntime CPU session for a litefuse graph with the options that matter on CPU.

    ``threads`` intra-op threads (default: as many as torch uses, i.e. litefuse's thread policy);
    worker threads do not spin after a run (spinning keeps cores busy between frames and
    starves whatever runs next); all graph optimisations. ``nchwc``: whether the NCHWc layout
    transformation runs (``None``: where the graph's widest convolution fills one
    :func:`nchwc_block`). The blocked layout is what makes onnxruntime's wide convolutions fast on
    x86, but it pads every convolution to a whole block: on an AVX-512 CPU (block 16) AE-Netv2's
    8-channel graphs ran 1.2-1.3x faster without it (aenetv2 48.4 -> 36.4 ms, 1 thread), while
    LWC-DenseFuse and DenseFuse (16-64 channels) ran 1.26-1.31x slower (docs/benchmarks.md).
    ``options``: an ``onnxruntime.SessionOptions`` to start from (profiling, a path for the
    optimised graph); the settings above are written into it.
    """
    ort = _require("onnxruntime")
    options = ort.SessionOptions() if options is None else options
    options.log_severity_level = 3
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if nchwc is None:
        widest = widest_conv(path)
        nchwc = widest is None or widest >= nchwc_block()
    disabled = {} if nchwc else {"disabled_optimizers": ["NchwcTransformer"]}
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"], **disabled)


def _example(h: int, w: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` different synthetic pairs (the built-in scene, flipped and mirrored in turn)."""
    ir, vi = (torch.from_numpy(a)[None, None] for a in synthetic_luma_pair(h, w))
    flips = [(), (-1,), (-2,), (-2, -1)]
    pick = [flips[i % 4] for i in range(batch)]
    return tuple(torch.cat([t.flip(f) if f else t for f in pick]).contiguous() for t in (ir, vi))


def check_onnx(
    path: str | Path, net: torch.nn.Module, sizes: list[tuple[int, int]], batches: Sequence[int] = (1,),
    white: tuple[int, int] | None = None,
) -> tuple[float, float]:
    """Max |onnxruntime - PyTorch| over the synthetic pairs at ``sizes`` and ``batches`` and a
    white (saturated) pair at ``white`` (default: the first size) and the first batch (NaN when
    either output is not finite), and the onnxruntime latency (ms per call, best of 3) at the
    first size and batch. The white frame finds what a textured one hides: global means summed
    in one long float32 run, whose drift grows with the frame (so a dynamic graph is checked large)."""
    session = ort_session(path)
    worst, ms = 0.0, float("nan")
    white_pair = torch.ones(batches[0], 1, *(white or sizes[0]))
    pairs = [_example(h, w, n) for h, w in sizes for n in batches] + [(white_pair, white_pair)]
    for i, (ir, vi) in enumerate(pairs):
        feed = {"ir": ir.numpy(), "vi": vi.numpy()}
        got = session.run(None, feed)[0]
        with torch.no_grad():
            ref = net(ir, vi).numpy()
        diff = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("nan")
        worst = diff if not np.isfinite(diff) else max(worst, diff)  # NaN is never "within tolerance"
        if i == 0:
            times = []
            for _ in range(3):
                start = time.perf_counter()
                session.run(None, feed)
                times.append(time.perf_counter() - start)
            ms = 1000 * min(times)
    return worst, ms


@contextlib.contextmanager
def _quiet():
    """The exporter reports its progress on stdout and through warnings and loggers."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
