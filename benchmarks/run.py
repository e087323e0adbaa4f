"""Benchmark runner: every registered fusion method at one resolution, in one run.

    python benchmarks/run.py [--size 640x480] [--rounds 15] [--device cpu|cuda] [--out docs/benchmarks.md] [--json bench.json]

The main table is :func:`litefuse.bench.benchmark` (``litefuse bench`` on the command line):
for every registered network with its default configuration, plus the classical ``max`` and
``gff`` fusers, parameters, MACs of one fusion and the latency of the luminance path ``fuse`` runs on a batch-1
``(1, 1, H, W)`` pair, timed **interleaved** (each round calls every method once, after
warm-up), with the speed ratio against ``densefuse`` and ``max`` measured in the same run --
compare ratios, not absolute times, across machines. CPU runs keep freed heap memory resident,
as the ``litefuse`` CLI does (see :func:`litefuse.runtime.keep_heap_resident`).

The model-specific scripts beside this one go deeper (allocator settings, ablation variants,
per-block profiles); ``--all`` runs them after the main table and appends their output.
``--json`` also writes the measurements machine-readably (``tools/speed_quality.py`` plots them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from litefuse._checks import WxH, parse_wxh

HERE = Path(__file__).resolve().parent
DETAIL_SCRIPTS = ["bench_densefuse.py", "bench_aenetv2.py", "bench_dwsfusion.py", "bench_metrics.py", "bench_onnx.py", "bench_inference.py", "bench_precision.py", "bench_isa.py"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=WxH, default="640x480", help="W x H")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    ap.add_argument("--all", action="store_true", help="run the model-specific benchmarks too")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help="also write the measurements as JSON (params, MACs, ms median/min per method)")
    args = ap.parse_args(argv)

    from litefuse._files import atomic_write_text
    from litefuse.bench import benchmark
    from litefuse.errors import LitefuseError

    w, h = parse_wxh(args.size)
    import torch

    # all cores unless told (torch's default), not the load-based default of the litefuse commands
    threads = args.threads or torch.get_num_threads()
    try:
        report = benchmark(size=(h, w), device=args.device, threads=threads, rounds=args.rounds, warmup=args.warmup)
    except LitefuseError as exc:  # CUDA asked for and absent, a size too small, ...: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cmd = f"python benchmarks/run.py --size {args.size} --rounds {args.rounds} --device {args.device}" + (
        f" --threads {args.threads}" if args.threads else "") + (f" --warmup {args.warmup}" if args.warmup != 3 else "")
    text = (f"## All methods at {w}×{h} (batch 1, one IR + one visible per call)\n\n"
            f"Run {report.started} with `{cmd}`.\n\n" + report.markdown())
    print(text)
    if args.json:
        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=2) + "\n")  # temp file beside it, os.replace
    if args.all:
        for script in DETAIL_SCRIPTS:
            out = subprocess.run([sys.executable, str(HERE / script)], capture_output=True, text=True)
            text += f"\n<!-- {script} -->\n" + (out.stdout if out.returncode == 0 else f"({script} failed: {out.stderr.strip().splitlines()[-1:]})\n")
            print(out.stdout)
    if args.out:
        head = (
            "# Benchmarks\n\nLatest output of `python benchmarks/run.py` (the machine is named in the table's notes; "
            "`litefuse bench` runs the same timer on any machine). "
            "Timings on these shared machines are noisy: compare the ratios inside one run, not absolute times "
            "across runs. Model-specific scripts (`benchmarks/bench_*.py`) break the time down further.\n\n"
        )
        atomic_write_text(args.out, head + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
