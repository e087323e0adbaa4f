"""oneDNN's full instruction set against a cap (default AVX2), every network, float32 inference.

    python benchmarks/bench_isa.py [--threads 1,2] [--repeats 3] [--cap AVX2] [--size 640x480]

oneDNN reads its instruction-set limit once per process, so the two arms cannot share one:
each repeat runs ``litefuse bench --json`` in two fresh processes, one with
``ONEDNN_MAX_CPU_ISA=ALL`` and one with ``ONEDNN_MAX_CPU_ISA=<cap>``, alternating which goes
first, and the table gives each network's median over the repeats and the full ÷ capped time
ratio (> 1: the cap is faster). This is the measurement behind
:func:`litefuse.runtime.onednn_isa_cap`; run it on another CPU to see whether the cap pays there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from litefuse._checks import WxH
from litefuse._files import atomic_write_text
from litefuse.bench import load_average, machine_line
from litefuse.registry import list_models


def _bench(isa: str, threads: int, size: str, rounds: int, methods: list[str]) -> dict[str, float]:
    """Median ms per method from one ``litefuse bench`` process with ``ONEDNN_MAX_CPU_ISA=isa``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        args = [sys.executable, "-m", "litefuse", "bench", "--size", size, "--threads", str(threads),
                "--rounds", str(rounds), "--json", str(out)]
        for m in methods:
            args += ["-m", m]
        env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
        proc = subprocess.run(args, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"litefuse bench ({isa}) failed: {proc.stderr.strip().splitlines()[-1:]}")
        data = json.loads(out.read_text())
    return {name: row["ms_median"] for name, row in data["methods"].items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--repeats", type=int, default=3, help="process pairs per thread count")
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds inside each process")
    ap.add_argument("--cap", default="AVX2", help="the capped arm's ONEDNN_MAX_CPU_ISA")
    ap.add_argument("--size", type=WxH, default="640x480", help="W x H")
    ap.add_argument("--networks", default=",".join(m.name for m in list_models("network")))
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = ap.parse_args(argv)
    methods = args.networks.split(",")
    arms = ("ALL", args.cap)
    lines = [f"## oneDNN full instruction set vs `{args.cap}` at {args.size.replace('x', '×')}, float32, batch 1", "",
             machine_line(), f"- load average at start {load_average()}; {args.repeats} process pairs per thread count, "
             f"{args.rounds} timed rounds each (`python benchmarks/bench_isa.py --threads {args.threads} --repeats {args.repeats}`)", ""]
    print("\n".join(lines), flush=True)
    for threads in (int(t) for t in args.threads.split(",")):
        runs: dict[str, list[dict[str, float]]] = {a: [] for a in arms}
        for r in range(args.repeats):
            for isa in arms if r % 2 == 0 else arms[::-1]:
                runs[isa].append(_bench(isa, threads, args.size, args.rounds, methods))
        rows = [f"### {threads} thread(s)", "", f"| method | full ISA ms | {args.cap} ms | full ÷ {args.cap} |", "|---|---:|---:|---:|"]
        for m in runs["ALL"][0]:
            full = statistics.median(run[m] for run in runs["ALL"])
            capped = statistics.median(run[m] for run in runs[args.cap])
            rows.append(f"| {m} | {full:.1f} | {capped:.1f} | {full / capped:.2f} |")
        rows.append("")
        lines += rows
        print("\n".join(rows), flush=True)
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
