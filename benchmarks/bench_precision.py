"""Reduced precision on the CPU: speed and fusion quality of every network against float32.

    python benchmarks/bench_precision.py [--threads 1] [--precisions bf16] [--quality ../shared/data/ivif/MSRS]

Speed: ``model(ir, vi)`` of :class:`litefuse.Fuser`'s model (the precision wrapper of
:func:`litefuse.runtime.with_precision`) on one random pair at ``--size``, float32 and each of
``--precisions`` timed interleaved in one run (compare the ratios). Quality (``--quality DIR``):
the mean core metrics of the saved uint8 image over ``--pairs`` pairs of DIR (``ir/`` + ``vi/``,
luminance as :func:`litefuse.data.datasets.load_luma_u8` reads it), each precision against float32,
through ``Fuser.fuse_images`` as a user runs it. bf16 pays only on CPUs with AVX-512 BF16 or AMX
(the machine line names the ISA); elsewhere oneDNN emulates it. float32 runs with oneDNN's full
instruction set here (one process holds both precisions), not under the AVX2 cap a float32-only
process gets on AMD Zen 4 (:func:`litefuse.runtime.onednn_isa_cap`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from litefuse._checks import WxH, parse_wxh
from litefuse.bench import (  # the package's machine facts and interleaved timer
    interleaved_times,
    load_average,
    machine_line,
)

NETWORKS = ("densefuse", "lwc-densefuse", "aenetv2", "aenetv2-ivif", "dwsfusion", "dwsfusion-plus")


def _quality(names: list[str], precisions: list[str], folder: Path, count: int, threads: int) -> dict:
    """{(network, precision): {metric: relative change vs fp32}} over ``count`` pairs of ``folder``."""
    import numpy as np

    from litefuse.api import Fuser
    from litefuse.data.datasets import load_luma_u8
    from litefuse.metrics import CORE_METRICS, evaluate, to_uint8

    stems = sorted(p.stem for p in (folder / "ir").iterdir())[:count]
    pairs = [tuple(load_luma_u8(next((folder / d).glob(f"{s}.*"))) for d in ("ir", "vi")) for s in stems]
    out = {}
    for name in names:
        scores = {}
        for p in ["fp32", *precisions]:
            fuser = Fuser(name, precision=p, threads=threads)
            rows = [evaluate(ir, vi, to_uint8(fuser.fuse_images(ir, vi, grey=True)), CORE_METRICS) for ir, vi in pairs]
            scores[p] = {m: float(np.mean([r[m] for r in rows])) for m in CORE_METRICS}
        for p in precisions:
            out[(name, p)] = {m: (scores[p][m] - v) / abs(v) for m, v in scores["fp32"].items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=WxH, default="640x480", help="W x H")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precisions", default="bf16", help="comma-separated: fp16, bf16")
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--quality", type=Path, default=None, metavar="DIR", help="also score the precisions on pairs in DIR")
    ap.add_argument("--pairs", type=int, default=10)
    args = ap.parse_args(argv)
    if args.quality and not (args.quality / "ir").is_dir():  # before the timing, not after it
        ap.error(f"--quality {args.quality}: no pair folder there (ir/ and vi/)")

    import torch

    from litefuse.api import Fuser
    from litefuse.runtime import keep_full_isa, keep_heap_resident

    keep_heap_resident()
    keep_full_isa()  # float32 and bf16 share this process (see the docstring)
    torch.set_num_threads(args.threads)  # Fuser(threads=...) below keeps it (its default follows the load)
    w, h = parse_wxh(args.size)
    ir, vi = (torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(i)) for i in range(2))
    names, precisions = args.networks.split(","), args.precisions.split(",")
    calls, outputs = {}, {}
    for name in names:
        for p in ["fp32", *precisions]:
            calls[(name, p)] = lambda m=Fuser(name, precision=p, threads=args.threads).model: m(ir, vi)
    load_start = load_average()
    with torch.inference_mode():
        outputs = {k: c().float() for k, c in calls.items()}
        times = interleaved_times(calls, args.rounds, args.warmup)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    quality = _quality(names, precisions, args.quality, args.pairs, args.threads) if args.quality else {}

    print(f"## Reduced precision on the CPU at {w}×{h} (batch 1, {args.threads} thread(s))\n")
    print(machine_line())
    print(f"- torch {torch.__version__}; load average at start {load_start}, at end {load_average()}; "
          f"{args.warmup} warm-up + {args.rounds} interleaved rounds")
    if quality:
        print(f"- quality: mean core metrics over the first {args.pairs} pairs of {args.quality}, relative to fp32")
    metrics = list(next(iter(quality.values()))) if quality else []
    print("\n| network | precision | ms median (min) | × vs fp32 | max \\|Δ\\| |" + "".join(f" {m} |" for m in metrics))
    print("|---|---|---:|---:|---:|" + "---:|" * len(metrics))
    for (name, p), t in times.items():
        row = f"| {name} | {p} | {med[(name, p)]:.1f} ({min(t) * 1e3:.1f}) | {med[(name, 'fp32')] / med[(name, p)]:.2f} | "
        row += f"{float((outputs[(name, p)] - outputs[(name, 'fp32')]).abs().max()):.3f} |"
        if metrics:
            row += " " + " | ".join("" if p == "fp32" else f"{100 * quality[(name, p)][m]:+.2f} %" for m in metrics) + " |"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
