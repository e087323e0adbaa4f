"""Peak memory of fusing one large pair with every registered method (markdown table).

    python benchmarks/bench_memory.py                         # 6000x4000, every method
    python benchmarks/bench_memory.py --size 2000x1500 --methods gff,max

Each method runs in a fresh subprocess, so peaks do not mix: it imports litefuse, builds
``litefuse.api.Fuser(method)`` (shipped weights; random initialisation for a network without
them), generates a grey float32 infrared and a colour float32 visible image of ``--size``,
records the resident memory (the baseline), then times ``Fuser.fuse_images(ir, vi)``. The peak
is ``getrusage(RUSAGE_SELF).ru_maxrss`` afterwards; "over baseline" is what the fusion itself
added (inputs and weights excluded). The issue #23 budget is 2.5 GB absolute at 6000x4000.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from litefuse._checks import WxH, parse_wxh
from litefuse.bench import (  # the package's machine facts and interleaved timer
    load_average,
    machine_line,
)

GB = 1e9


def _rss_bytes() -> int:
    """Current resident set size (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child(method: str, width: int, height: int, tile: int | None) -> dict:
    """Fuse one generated pair with ``method`` in this process; the measurements as a dict."""
    import numpy as np

    from litefuse.api import Fuser
    from litefuse.registry import get_model_info

    info = get_model_info(method)
    kwargs = {} if info.has_weights else {"pretrained": False}
    if tile is not None:
        kwargs["tile"] = tile
    fuser = Fuser(method, **kwargs)
    rng = np.random.default_rng(0)
    ir = rng.random((height, width), dtype=np.float32)
    vi = rng.random((height, width, 3), dtype=np.float32)
    baseline = max(_rss_bytes(), _peak_bytes())  # generation has no temporaries: current ≈ peak
    start = time.perf_counter()
    fused = fuser.fuse_images(ir, vi)
    seconds = time.perf_counter() - start
    assert fused.shape == (height, width, 3) and fused.dtype == np.float32, (fused.shape, fused.dtype)
    peak = _peak_bytes()
    return {"method": method, "baseline": baseline, "peak": peak, "seconds": seconds}


def run_one(method: str, size: str, tile: int | None, timeout: float) -> dict:
    """:func:`child` in a fresh interpreter; an ``error`` entry if it fails."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", method, "--size", size]
    cmd += [] if tile is None else ["--tile", str(tile)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"method": method, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"method": method, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=WxH, default="6000x4000", help="W x H (default 6000x4000)")
    parser.add_argument("--methods", default="", help="comma-separated names (default: every registered method)")
    parser.add_argument("--tile", type=int, help="Fuser tile size (default: Fuser's)")
    parser.add_argument("--budget", type=float, default=2.5, help="GB; rows above it are marked (default 2.5)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per method (default 3600)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = parse_wxh(args.size)
    if args.child:
        print(json.dumps(child(args.child, width, height, args.tile)))
        return

    import torch

    from litefuse.registry import list_models

    methods = [m for m in args.methods.split(",") if m] or [m.name for m in list_models()]
    print(f"## Peak memory, fusing one {width}x{height} pair (grey IR + colour VI, float32)\n")
    print(machine_line())
    print(f"- torch {torch.__version__}, load average {load_average()}; one fresh process per method\n")
    print("| method | peak RSS GB | over baseline GB | seconds |")
    print("|---|---:|---:|---:|")
    for method in methods:
        r = run_one(method, args.size, args.tile, args.timeout)
        if "error" in r:
            print(f"| {method} | failed: {r['error']} | | |", flush=True)
            continue
        mark = " ⚠" if r["peak"] > args.budget * GB else ""
        over = (r["peak"] - r["baseline"]) / GB
        print(f"| {method} | {r['peak'] / GB:.2f}{mark} | {over:.2f} | {r['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
