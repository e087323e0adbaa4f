"""Benchmark runner: every registered fusion method at one resolution, in one run.

    python benchmarks/run.py [--size 640x480] [--rounds 15] [--device cpu|cuda] [--out docs/benchmarks.md] [--json bench.json]

For each method (every registered network with its default configuration, plus the classical
``max`` and ``gff`` fusers): parameters, MACs of one fusion and the latency of
``model(ir, vi)`` on a batch-1 ``(1, 1, H, W)`` pair under ``torch.inference_mode``. The
methods are timed **interleaved** (each round calls every method once, after warm-up), so load
from other processes spreads over all of them alike; the table reports median and minimum and
the speed ratio against ``densefuse`` and ``max`` measured in the same run -- compare ratios,
not absolute times, across machines. CPU runs keep freed heap memory resident, as the
``litefuse`` CLI does (see :func:`litefuse.runtime.keep_heap_resident`).

The model-specific scripts beside this one go deeper (allocator settings, ablation variants,
per-block profiles); ``--all`` runs them after the main table and appends their output.
``--json`` also writes the measurements machine-readably (``tools/speed_quality.py`` plots them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from machine import load_average, machine_line  # benchmarks/machine.py (this folder)
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
DETAIL_SCRIPTS = ["bench_densefuse.py", "bench_aenetv2.py", "bench_dwsfusion.py", "bench_metrics.py", "bench_onnx.py", "bench_inference.py", "bench_precision.py"]
CLASSICAL = ("max", "gff")


def machine(device: str) -> str:
    import torch

    lines = [
        machine_line(),
        f"- torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, device `{device}`",
    ]
    if device.startswith("cuda"):
        lines.append(f"- GPU: {torch.cuda.get_device_name(0)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="640x480", help="W x H")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    ap.add_argument("--all", action="store_true", help="run the model-specific benchmarks too")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help="also write the measurements as JSON (params, MACs, ms median/min per method)")
    args = ap.parse_args(argv)

    import torch

    import litefuse
    from litefuse.models.complexity import count_macs, count_params
    from litefuse.runtime import keep_heap_resident

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu":
        keep_heap_resident()
    w, h = (int(v) for v in args.size.lower().split("x"))
    names = [m.name for m in litefuse.list_models("network")] + list(CLASSICAL)
    models = {n: litefuse.load_model(n, pretrained=False, device=args.device) for n in names}
    ir = torch.rand(1, 1, h, w, device=args.device)
    vi = torch.rand(1, 1, h, w, device=args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    stats = {}
    with torch.inference_mode():
        for n, m in models.items():
            stats[n] = (count_params(m), count_macs(m, (ir, vi), method="auto"))
        load_start = load_average()
        for _ in range(args.warmup):
            for m in models.values():
                m(ir, vi)
        times: dict[str, list[float]] = {n: [] for n in models}
        for _ in range(args.rounds):
            for n, m in models.items():
                sync()
                t0 = time.perf_counter()
                m(ir, vi)
                sync()
                times[n].append(time.perf_counter() - t0)

    med = {n: statistics.median(t) for n, t in times.items()}
    lines = [
        f"## All methods at {w}×{h} (batch 1, one IR + one visible per call)",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `python benchmarks/run.py --size {args.size} "
        f"--rounds {args.rounds} --device {args.device}`.",
        "",
        machine(args.device),
        f"- load average at start {load_start}, at end {load_average()}",
        f"- {args.warmup} warm-up rounds, then {args.rounds} interleaved rounds; median (min) ms",
        "",
        "| method | params | GMACs | ms median (min) | FPS | × faster than densefuse | time ÷ max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in models:
        params, macs = stats[n]
        base = med.get("densefuse")
        lines.append(
            f"| {n} | {params:,} | {macs / 1e9:.3f} | {med[n] * 1e3:.1f} ({min(times[n]) * 1e3:.1f}) | {1 / med[n]:.1f} | "
            f"{base / med[n]:.2f} | {med[n] / med['max']:.1f} |"
            if base else f"| {n} | {params:,} | {macs / 1e9:.3f} | {med[n] * 1e3:.1f} | {1 / med[n]:.1f} | – | – |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.json:
        from litefuse._files import atomic_write_text

        record = {
            "machine": machine(args.device),
            "size": f"{w}x{h}",
            "device": args.device,
            "methods": {
                n: {"params": int(stats[n][0]), "macs": int(stats[n][1]),
                    "ms_median": med[n] * 1e3, "ms_min": min(times[n]) * 1e3}
                for n in models
            },
        }
        atomic_write_text(args.json, json.dumps(record, indent=2) + "\n")  # temp file beside it, os.replace
    if args.all:
        for script in DETAIL_SCRIPTS:
            out = subprocess.run([sys.executable, str(HERE / script)], capture_output=True, text=True)
            text += f"\n<!-- {script} -->\n" + (out.stdout if out.returncode == 0 else f"({script} failed: {out.stderr.strip().splitlines()[-1:]})\n")
            print(out.stdout)
    if args.out:
        head = (
            "# Benchmarks\n\nLatest output of `python benchmarks/run.py` (the machine is named in the table's notes). "
            "Timings on these shared machines are noisy: compare the ratios inside one run, not absolute times "
            "across runs. Model-specific scripts (`benchmarks/bench_*.py`) break the time down further.\n\n"
        )
        args.out.write_text(head + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
