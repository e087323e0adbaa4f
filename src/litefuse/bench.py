"""Speed on this machine: parameters, MACs and latency of fusion methods, timed in one run.

:func:`benchmark` loads each method as a :class:`~litefuse.api.Fuser` (shipped or given
weights, eval mode, the requested precision and ``torch.compile``), feeds a random
``(B, 1, H, W)`` luminance pair and times the luminance path ``fuse`` runs -- the network as
papers report it, plus the clamp, and tiled where a frame has more than the model's
``tile²`` pixels (the DenseFuse family: 600², so from about 800×450 up), as ``fuse`` is --
**interleaved**: every round calls every method once, after warm-up rounds, so load from
other processes spreads over all of them alike. The classical ``max`` fuser is always in the
run: its time is the floor every method is reported against (``time ÷ max``), and
``densefuse``, when present, is the baseline of the speed-up column. Compare ratios, not
absolute times, across machines; :func:`machine_line` names the CPU and its vector ISA, which
decide these timings.

``litefuse bench`` is the command-line front; ``benchmarks/run.py`` writes the docs' table
with it.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Hashable, Iterable, Sequence

import torch

from ._checks import size_hw, whole
from .io import MAX_SIDE, MIN_SIDE
from .runtime import (
    check_precision,
    compile_backend,
    cpu_facts,
    isa_capped,
    prepare,
    resolve_device,
)

__all__ = [
    "BenchRow",
    "BenchReport",
    "benchmark",
    "default_methods",
    "cpu_features",
    "cpu_name",
    "interleaved_times",
    "load_average",
    "machine_line",
    "median_ms",
]

REFERENCE = "max"  # always timed: the floor of the time ÷ max column
BASELINE = "densefuse"  # the speed-up column's baseline when it is in the run
DEFAULT_CLASSICAL = ("max", "gff")


# --------------------------------------------------------------------------------------------
# the machine


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform reports."""
    return cpu_facts().get("model name") or platform.processor() or "unknown CPU"


def cpu_features() -> str:
    """The vector ISA that decides these timings (AVX2 / AVX-512 / VNNI / AMX), from /proc/cpuinfo.

    int8 convolutions are only fast with VNNI, and oneDNN's float kernels differ between AVX2 and
    AVX-512 hosts, so tables from different hosts are not comparable without it.
    """
    facts = cpu_facts()
    if not facts:
        return "ISA unknown"
    flags = set(facts.get("flags", "").split())
    known = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    present = [f for f in known if f in flags]
    return ", ".join(present) if present else "no AVX2"


def load_average() -> str:
    """The 1/5/15-minute load averages, or n/a."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def machine_line() -> str:
    """``- machine: <CPU>, <n> logical CPUs (<ISA>), <OS>`` (a markdown list item), plus oneDNN's
    instruction-set limit where one is set (by the user, or litefuse's cap on AMD Zen 4)."""
    user = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip()
    capped = f"; ONEDNN_MAX_CPU_ISA={user}" if user else "; oneDNN capped at AVX2 (litefuse.runtime.onednn_isa_cap)" if isa_capped() else ""
    return f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs ({cpu_features()}), {platform.system()} {platform.release()}{capped}"


# --------------------------------------------------------------------------------------------
# timing


def interleaved_times(
    calls: dict[Hashable, Callable[[], object]],
    rounds: int,
    warmup: int,
    sync: Callable[[], object] | None = None,
    progress: Callable[[Iterable, int | None], Iterable] | None = None,
) -> dict[Hashable, list[float]]:
    """Seconds per call of each of ``calls``, timed interleaved: every round calls each once (after
    ``warmup`` untimed rounds), so load from other processes spreads over all of them alike.
    ``sync`` (e.g. ``torch.cuda.synchronize``) runs around every timed call."""
    sync = sync or (lambda: None)
    times: dict[Hashable, list[float]] = {k: [] for k in calls}
    for _ in range(warmup):
        for call in calls.values():
            call()
    for _ in progress(range(rounds), rounds) if progress else range(rounds):
        for key, call in calls.items():
            sync()
            t0 = time.perf_counter()
            call()
            sync()
            times[key].append(time.perf_counter() - t0)
    return times


def median_ms(times: dict[Hashable, list[float]]) -> dict[Hashable, float]:
    """Median of each list, in milliseconds."""
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


# --------------------------------------------------------------------------------------------
# the report


@dataclass(frozen=True)
class BenchRow:
    """One method of a run: size, cost of one fusion and its call times (seconds, one batch each)."""

    name: str
    kind: str  # "network" | "classical"
    params: int
    macs: int  # of one fusion (one pair), independent of device and precision
    times: tuple[float, ...]
    batch_size: int = 1

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1e3

    @property
    def min_ms(self) -> float:
        return min(self.times) * 1e3

    @property
    def pairs_per_s(self) -> float:
        return self.batch_size * 1e3 / self.median_ms


@dataclass
class BenchReport:
    """What :func:`benchmark` measured, with how (``settings``) and where (``machine``)."""

    rows: list[BenchRow]
    size: tuple[int, int]  # (H, W)
    settings: dict = field(default_factory=dict)
    machine: str = ""
    started: str = ""

    def row(self, name: str) -> BenchRow:
        return next(r for r in self.rows if r.name == name)

    def speedup(self, name: str, baseline: str = BASELINE) -> float | None:
        """How many times faster ``name`` runs than ``baseline`` in this run (``None`` if absent)."""
        names = {r.name for r in self.rows}
        return self.row(baseline).median_ms / self.row(name).median_ms if {name, baseline} <= names else None

    def markdown(self) -> str:
        """A markdown table with the run's settings and machine above it."""
        h, w = self.size
        s = self.settings
        base = BASELINE if any(r.name == BASELINE for r in self.rows) else None
        # classical fusers run as they are: float32, uncompiled -- said where the settings differ
        as_is = [x for x, differs in (("fp32", s.get("precision") != "fp32"), ("not compiled", s.get("compile"))) if differs]
        as_is = f" (classical fusers: {', '.join(as_is)})" if as_is and any(r.kind == "classical" for r in self.rows) else ""
        lines = [
            self.machine,
            f"- torch {torch.__version__}, device `{s.get('device')}`, {s.get('threads')} intra-op thread{'s' if s.get('threads') != 1 else ''}, "
            f"{s.get('precision')}, batch {s.get('batch_size')}{', compiled' if s.get('compile') else ''}"
            f"{f', tile {tile}' if (tile := s.get('tile')) else ''}, {w}×{h}{as_is}",
            f"- load average at start {s.get('load_start')}, at end {s.get('load_end')}; "
            f"{s.get('warmup')} warm-up + {s.get('rounds')} interleaved rounds; median (min) ms per call",
            "",
            "| method | params | GMACs | ms median (min) | pairs/s |" + (f" × faster than {base} |" if base else "") + f" time ÷ {REFERENCE} |",
            "|---|---:|---:|---:|---:|" + ("---:|" if base else "") + "---:|",
        ]
        ref = self.row(REFERENCE).median_ms if any(r.name == REFERENCE for r in self.rows) else None
        for r in self.rows:
            counted = r.kind == "network"  # a classical fuser has no weights, and its arithmetic is no MACs counted: "-", as `models` shows it
            cells = [r.name, f"{r.params:,}" if counted else "-", f"{r.macs / 1e9:.3f}" if counted else "-",
                     f"{r.median_ms:.1f} ({r.min_ms:.1f})", f"{r.pairs_per_s:.1f}"]
            if base:
                cells.append(f"{self.speedup(r.name, base):.2f}")
            cells.append(f"{r.median_ms / ref:.1f}" if ref else "–")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def chart(self, path: str | Path) -> Path:
        """Median ms per call as dots (:func:`litefuse.viz.speed_chart`), the 30 FPS line at
        ``batch_size`` × 33 ms (a call fuses that many pairs); needs matplotlib."""
        from .viz import REAL_TIME_MS, speed_chart

        h, w = self.size
        s = self.settings
        title = f"median of each method, {w}×{h}, batch {s.get('batch_size')}, {s.get('precision')}, {s.get('device')}, {s.get('threads')} thread(s)"
        n = s.get("batch_size", 1)
        return speed_chart([{"label": r.name, "ms": r.median_ms, "kind": r.kind} for r in self.rows], path, title=title,
                           real_time_ms=REAL_TIME_MS * n, xlabel=f"ms per call{f' of {n} pairs' if n > 1 else ''} (log scale)")

    def to_dict(self) -> dict:
        """JSON-ready: settings, machine, torch and per method params, MACs (``None`` for classical
        fusers: not counted), ms median/min, pairs/s."""
        return {
            "started": self.started,
            "machine": "\n".join(line.removeprefix("- ") for line in self.machine.splitlines()),  # and the GPU line
            "torch": torch.__version__,  # the table's notes name it too
            "size": f"{self.size[1]}x{self.size[0]}",
            "settings": self.settings,
            "methods": {
                r.name: {"kind": r.kind, "params": r.params, "macs": r.macs if r.kind == "network" else None, "ms_median": r.median_ms,
                         "ms_min": r.min_ms, "pairs_per_s": r.pairs_per_s}
                for r in self.rows
            },
        }


# --------------------------------------------------------------------------------------------
# the run


def default_methods() -> list[str]:
    """Every registered network, then the classical ``max`` and ``gff``."""
    from .registry import list_models

    return [m.name for m in list_models("network")] + list(DEFAULT_CLASSICAL)


def benchmark(
    methods: Sequence[str] | str | None = None,
    *,
    size: tuple[int, int] = (480, 640),
    device: str = "cpu",
    threads: int | None = None,
    precision: str = "fp32",
    batch_size: int = 1,
    compile: bool | str = False,
    rounds: int = 15,
    warmup: int = 3,
    progress: Callable[[Iterable, int | None], Iterable] | None = None,
    tile: int | None = None,
) -> BenchReport:
    """Time ``methods`` (default: :func:`default_methods`; ``max`` is added when missing) on a
    ``size = (H, W)`` luminance pair, ``batch_size`` pairs per call, interleaved.

    A method is a registered name or ``[label=]name[@weights]`` (:class:`~litefuse.api.MethodSpec`):
    trained weights load with the constructor arguments their run recorded, so a variant's params,
    MACs and speed are its own; rows are named by the label.
    Networks run in ``precision`` and, with ``compile``, under ``torch.compile`` (the warm-up
    rounds absorb the compilation); classical fusers run as they are, in float32. MACs are those
    of one frame's fusion as timed (above ``tile²`` pixels: every tile at its size, its context
    included; :func:`~litefuse.tiling.tiled_macs`), counted on a float32 CPU copy. ``tile``: as
    :class:`~litefuse.api.Fuser` takes it (default: the method's), so a frame fused in one pass by
    ``fuse --tile N`` is timed and counted in one pass too.
    On the CPU ``threads`` (default: :func:`~litefuse.runtime.default_threads`, the cores the load
    average leaves free) and the heap policy are applied as every litefuse command applies them.
    """
    from .api import Fuser, MethodSpec
    from .errors import OptionError
    from .models.complexity import count_params
    from .tiling import tile_context, tiled_macs
    from .registry import get_model_info, load_model

    if isinstance(methods, str):  # one name, not its letters
        methods = [methods]
    if methods is not None and not list(methods):
        raise OptionError("no methods given (None times every network, max and gff)")
    if not size_hw(size):
        raise OptionError(f"size must be (H, W) in whole pixels, got {size!r}")
    h, w = size
    if not MIN_SIDE <= min(h, w) <= max(h, w) <= MAX_SIDE:
        raise OptionError(f"size must be {MIN_SIDE} to {MAX_SIDE} pixels a side (as an exported graph), got {w}×{h}")
    if not (whole(batch_size, 1) and whole(rounds, 1) and whole(warmup, 0)):
        raise OptionError(f"batch_size and rounds must be whole numbers of at least 1, warmup at least 0 "
                          f"(got {batch_size!r}, {rounds!r}, {warmup!r})")
    check_precision(precision)
    backend = compile_backend(compile)
    dev = resolve_device(device)
    specs = [MethodSpec.parse(m) for m in dict.fromkeys(methods or default_methods())]
    if not any(s.label == s.name == REFERENCE and s.weights is None for s in specs):  # x=max leaves no row named max
        specs.append(MethodSpec(REFERENCE, REFERENCE))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        twice = next(label for label in labels if labels.count(label) > 1)
        raise OptionError(f"method {twice!r} given twice; give each method once (label=name@weights to time weights)")
    infos = {s.label: get_model_info(s.name) for s in specs}  # unknown names fail here, before any loading
    n_threads = prepare(threads, precision) if dev.type == "cpu" else torch.get_num_threads()

    gen = torch.Generator().manual_seed(0)
    ir, vi = (torch.rand(batch_size, 1, h, w, generator=gen).to(dev) for _ in range(2))
    calls, stats = {}, {}
    with torch.inference_mode():
        for spec in specs:
            n, tasks = spec.label, infos[spec.label].tasks
            model = load_model(spec.name, weights=spec.weights, device="cpu")  # float32, uncompiled: for counting
            fuser = Fuser.from_spec(spec, device=dev, threads=n_threads, precision=precision, compile=backend, tile=tile,
                                    task="ivif" if "ivif" in tasks else tasks[0])
            # the MACs of one frame as fuse runs it: each tile at its size, context included, above tile² pixels
            stats[n] = (count_params(model), tiled_macs(model, h, w, fuser.tile, *tile_context(model, fuser.overlap)))
            calls[n] = lambda f=fuser: f._fuse_tensors(ir, vi)  # the path fuse takes: tiles above tile²
        load_start = load_average()
        sync = torch.cuda.synchronize if dev.type == "cuda" else None
        try:
            times = interleaved_times(calls, rounds, warmup, sync, progress)
        except (MemoryError, RuntimeError) as exc:  # torch's allocator says "can't allocate memory" as a RuntimeError
            if not isinstance(exc, MemoryError) and "allocat" not in str(exc) and "out of memory" not in str(exc):
                raise
            raise OptionError(f"{w}×{h}, batch {batch_size}: more memory than this machine has ({str(exc).splitlines()[0][:120]}); "
                              "time a smaller --size or --batch-size") from None
    rows = [BenchRow(n, infos[n].kind, int(stats[n][0]), int(stats[n][1]), tuple(times[n]), batch_size) for n in labels]
    machine = machine_line() + (f"\n- GPU: {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else "")
    settings = {
        "device": str(dev), "threads": n_threads, "precision": precision, "batch_size": batch_size,
        "compile": backend, "tile": tile, "rounds": rounds, "warmup": warmup, "load_start": load_start, "load_end": load_average(),
    }
    return BenchReport(rows, (h, w), settings, machine, f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
