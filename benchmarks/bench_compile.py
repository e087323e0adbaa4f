"""torch.compile against eager, per network, interleaved in one run (where ``--compile`` pays).

    python benchmarks/bench_compile.py [--device cpu] [--size 640x480] [--rounds 9] [--threads 1]

Each network runs as a user runs it, through :class:`litefuse.Fuser` (``fuse_images`` on one
random grey pair), eager and with ``compile=True`` (inductor; CUDA graphs on a GPU). The first
call of the compiled Fuser is the compilation, reported on its own; then both are timed
round-robin (each round calls every Fuser once), so load from other processes spreads alike.
Prints a markdown table: compile seconds, eager and compiled median ms, and compiled speed as a
multiple of eager's (below 1: slower) with the max |difference| of the outputs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

from litefuse._checks import WxH, parse_wxh
from litefuse.bench import interleaved_times, load_average, machine_line

NETWORKS = ("aenetv2-ivif", "aenetv2", "lwc-densefuse", "densefuse", "dwsfusion")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=WxH, default="640x480", help="W x H")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--networks", default=",".join(NETWORKS))
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from litefuse import Fuser

    w, h = parse_wxh(args.size)
    rng = np.random.default_rng(0)
    ir, vi = (rng.random((h, w), dtype=np.float32) for _ in range(2))
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    start = load_average()
    calls, compile_s, diff = {}, {}, {}
    for name in networks:
        eager = Fuser(name, device=args.device, threads=args.threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the CPU note (api.CPU_COMPILE_NOTE) is what this measures
            compiled = Fuser(name, device=args.device, threads=args.threads, compile=True)
            t0 = time.perf_counter()
            out = compiled.fuse_images(ir, vi)
        compile_s[name] = time.perf_counter() - t0
        diff[name] = float(np.abs(out - eager.fuse_images(ir, vi)).max())
        calls[(name, "eager")] = lambda f=eager: f.fuse_images(ir, vi)
        calls[(name, "compiled")] = lambda f=compiled: f.fuse_images(ir, vi)
        print(f"{name}: compiled in {compile_s[name]:.1f} s", file=sys.stderr, flush=True)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else None
    times = interleaved_times(calls, args.rounds, args.warmup, sync=sync)

    print(f"## torch.compile vs eager at {w}×{h} (batch 1, {args.device})\n")
    print(machine_line())
    print(f"- torch {torch.__version__}, {args.threads} thread(s); load average at start {start}, at end {load_average()}; "
          f"{args.warmup} warm-up + {args.rounds} interleaved rounds\n")
    print("| network | compile s (first call) | eager ms | compiled ms | compiled speed ÷ eager | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in networks:
        e, c = (statistics.median(times[(name, k)]) * 1000 for k in ("eager", "compiled"))
        print(f"| {name} | {compile_s[name]:.1f} | {e:.1f} | {c:.1f} | {e / c:.2f} | {diff[name]:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
