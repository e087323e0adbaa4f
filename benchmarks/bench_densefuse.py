"""DenseFuse vs the LWC-DenseFuse ablation variants: parameters, MACs and CPU latency.

One run measures every variant at one resolution (default 640x480, batch 1, one IR + one
visible image per call, ``torch.inference_mode``) and prints a markdown table.

Timing protocol: each model gets ``--warmup`` calls, then ``--repeats`` rounds in which every
model is called once in turn (interleaved, so load from other processes spreads over all
models alike); median and minimum per model are reported. Speed-ups are against DenseFuse in
its default (NHWC) layout; NCHW DenseFuse is listed too.

Memory allocation decides much of the latency of these memory-bound networks on CPU, so the
timing runs once per allocator setting, each in a fresh worker process:

* ``default``: glibc as configured -- every buffer above ~32 MiB is a fresh ``mmap``, page-faulted
  in 4 KiB pages on each call;
* ``thp``: ``THP_MEM_ALLOC_ENABLE=1`` -- PyTorch aligns large CPU buffers to 2 MiB and asks for
  transparent huge pages (useful where THP is ``madvise``), ~30x fewer page faults;
* ``resident``: :func:`litefuse.runtime.keep_heap_resident` -- freed buffers are
  reused, no page faults after warm-up (what jemalloc/tcmalloc would give).

    python benchmarks/bench_densefuse.py [--height 480 --width 640 --repeats 10 --threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from litefuse.bench import load_average, machine_line  # the package's machine facts and interleaved timer
import time

MODES = ("default", "thp", "resident")
BASELINE = "densefuse"


def build_models() -> dict:
    from litefuse.models.densefuse import DenseFuse
    from litefuse.models.lwc_densefuse import ABLATION_VARIANTS, LWCDenseFuse

    models = {"densefuse": DenseFuse(), "densefuse (NCHW)": DenseFuse(channels_last=False)}
    for name, kwargs in ABLATION_VARIANTS.items():
        if name != "densefuse":  # the standard-conv preset is DenseFuse itself
            models[f"lwc: {name}"] = LWCDenseFuse(**kwargs)
    return {k: m.eval() for k, m in models.items()}


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def worker(args: argparse.Namespace) -> None:
    """Time every model in this process (allocator already set up) and print JSON."""
    import torch

    from litefuse.runtime import keep_heap_resident

    if args.worker == "resident" and not keep_heap_resident():
        print(json.dumps({"error": "glibc mallopt unavailable"}))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = build_models()
    ir, vi = torch.rand(1, 1, args.height, args.width), torch.rand(1, 1, args.height, args.width)
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():
            for _ in range(args.warmup):
                m(ir, vi)
        for _ in range(args.repeats):
            for name, m in models.items():
                start = time.perf_counter()
                m(ir, vi)
                times[name].append(time.perf_counter() - start)
    print(json.dumps({"times": times, "threads": torch.get_num_threads()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--allocator", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    import torch

    from litefuse.models.complexity import count_macs, count_params

    models = build_models()
    ir = torch.rand(1, 1, args.height, args.width)
    stats = {name: (count_params(m), count_macs(m, (ir, ir))) for name, m in models.items()}
    del models

    load_start = load_average()
    results: dict[str, dict[str, list[float]]] = {}
    threads = None
    for mode in args.allocator:
        cmd = [sys.executable, __file__, "--worker", mode, "--height", str(args.height), "--width", str(args.width),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        env = dict(os.environ)
        env.pop("THP_MEM_ALLOC_ENABLE", None)
        if mode == "thp":
            env["THP_MEM_ALLOC_ENABLE"] = "1"
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        data = json.loads(out.strip().splitlines()[-1])
        if "error" in data:
            print(f"({mode}: {data['error']}; skipped)")
            continue
        results[mode], threads = data["times"], data["threads"]

    w, h = args.width, args.height
    print(f"## DenseFuse vs LWC-DenseFuse at {w}x{h} (CPU, batch 1, IR + VI per call)\n")
    print(machine_line())
    print(f"- torch {torch.__version__}, {threads} threads, oneDNN {torch.backends.mkldnn.is_available()}")
    print(f"- load average (1/5/15 min) at start: {load_start}; at end: {load_average()}")
    print(f"- latency: {args.warmup} warm-up calls, then {args.repeats} interleaved rounds; median (min) in ms,")
    print("  one worker process per allocator setting (see the script's docstring)")
    print("- MACs: conv/linear layers as declared (see litefuse.models.complexity); biases, activations,")
    print("  attention products and the fusion rule are not counted\n")
    header, rule = "| model | params | GMACs |", "|---|---:|---:|"
    for mode in results:
        header += f" {mode}: ms | speed-up |"
        rule += "---:|---:|"
    print(header)
    print(rule)
    for name, (params, macs) in stats.items():
        row = f"| {name} | {params:,} | {macs / 1e9:.3f} |"
        for mode, t in results.items():
            med = median(t[name])
            row += f" {med * 1e3:.0f} ({min(t[name]) * 1e3:.0f}) | {median(t[BASELINE]) / med:.2f}x |"
        print(row)


if __name__ == "__main__":
    main()
