"""AE-Netv2 study variants (block type x pooling): parameters, MACs and CPU latency.

    python benchmarks/bench_aenetv2.py [--runs 20] [--size 640x480] [--only dws,shuffle]
                                       [--allocator default thp resident]

One run measures the default and all 14 study variants at one resolution (default 640x480,
batch 1, one IR + one visible image per call, ``torch.inference_mode``,
``torch.set_num_threads(os.cpu_count())``): ``--warmup`` calls, then median and min of
``--runs`` timed calls; FPS = 1000 / median. MACs: conv layers as declared
(:func:`litefuse.models.complexity.count_macs`, hooks); biases, activations, fusion weights and
the up-sampling are not counted.

These thin networks are memory-bound on CPU, so the allocator decides much of the latency.
Each (variant, allocator) pair is timed in a fresh worker process -- glibc's state left by one
model changes the next one's latency by up to 2x -- under each setting:

* ``default``: glibc as configured: freed feature maps go back to the OS and are page-faulted
  in again on the next call (what a plain ``python`` process gets);
* ``thp``: ``THP_MEM_ALLOC_ENABLE=1``, PyTorch's switch for 2 MiB-aligned huge-page buffers;
* ``resident``: :func:`litefuse.runtime.keep_heap_resident`, freed buffers are reused
  (what jemalloc/tcmalloc give): the arithmetic alone.

Target for the default: >= 30 FPS (<= 33.3 ms) at 640x480.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

from litefuse._checks import WxH, parse_wxh
from litefuse.bench import (  # the package's machine facts and interleaved timer
    load_average,
    machine_line,
)

MODES = ("default", "thp", "resident")


def variants() -> dict[str, dict]:
    from litefuse.models.aenetv2 import DEFAULT_CONFIG, STUDY_VARIANTS

    return {"default": DEFAULT_CONFIG, **STUDY_VARIANTS}


def worker(args: argparse.Namespace, h: int, w: int) -> None:
    """Time one variant in this process (allocator already set up) and print JSON."""
    import torch

    from litefuse.models.aenetv2 import AENetV2
    from litefuse.models.complexity import measure_latency
    from litefuse.runtime import keep_heap_resident

    if args.mode == "resident" and not keep_heap_resident():
        print(json.dumps({"error": "glibc mallopt unavailable"}))
        return
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = AENetV2(**variants()[args.worker]).eval()
    ir, vi = torch.rand(1, 1, h, w), torch.rand(1, 1, h, w)
    stats = measure_latency(lambda: model(ir, vi), warmup=args.warmup, repeats=args.runs)
    print(json.dumps({"median": stats.median, "min": stats.min, "threads": torch.get_num_threads()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--size", type=WxH, default="640x480", help="W x H")
    ap.add_argument("--only", default="", help="comma-separated substrings of variant names (default kept)")
    ap.add_argument("--allocator", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    w, h = parse_wxh(args.size)
    if args.worker:
        worker(args, h, w)
        return

    import torch

    from litefuse.models.aenetv2 import DEFAULT_CONFIG, AENetV2
    from litefuse.models.complexity import count_macs, count_params

    configs = variants()
    if args.only:
        keys = args.only.split(",")
        configs = {k: v for k, v in configs.items() if k == "default" or any(s in k for s in keys)}

    load_start, threads = load_average(), None
    x = torch.rand(1, 1, h, w)
    rows = []
    for name, cfg in configs.items():
        model = AENetV2(**cfg).eval()
        row = (f"| {name} | {cfg['block']} | {'yes' if cfg['pool'] else 'no'} | {cfg['width']} | "
               f"{count_params(model):,} | {count_macs(model, (x, x)) / 1e9:.3f} |")
        del model
        for mode in args.allocator:
            cmd = [sys.executable, __file__, "--worker", name, "--mode", mode, "--size", args.size,
                   "--runs", str(args.runs), "--warmup", str(args.warmup)]
            env = dict(os.environ)
            env.pop("THP_MEM_ALLOC_ENABLE", None)
            if mode == "thp":
                env["THP_MEM_ALLOC_ENABLE"] = "1"
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            data = json.loads(out.strip().splitlines()[-1])
            if "error" in data:
                row += " n/a | n/a |"
                continue
            threads = data["threads"]
            row += f" {data['median'] * 1e3:.1f} ({data['min'] * 1e3:.1f}) | {1 / data['median']:.1f} |"
        rows.append(row)
        print(row, file=sys.stderr, flush=True)  # progress

    print(f"## AE-Netv2 study variants at {w}x{h} (CPU, batch 1, IR + VI per call)\n")
    print(machine_line())
    print(f"- torch {torch.__version__}, {threads} threads; Python {platform.python_version()}")
    print(f"- load average (1/5/15 min) at start: {load_start}; at end: {load_average()}")
    print(f"- latency: {args.warmup} warm-up calls, then median (min) of {args.runs} calls in ms; one fresh")
    print("  worker process per variant and allocator setting (see the script's docstring)")
    print(f"- default config: {DEFAULT_CONFIG}\n")
    header, rule = "| variant | block | pool | width | params | GMACs |", "|---|---|---|---:|---:|---:|"
    for mode in args.allocator:
        header += f" {mode}: ms | FPS |"
        rule += "---:|---:|"
    print(header)
    print(rule)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
