"""DenseFuse vs the LWC-DenseFuse ablation variants: parameters, MACs and CPU latency.

One run measures every variant at one resolution (default 640x480, batch 1, one IR + one
visible image per call, ``torch.inference_mode``) and prints a markdown table.

Timing protocol: each model gets ``--warmup`` calls, then ``--repeats`` rounds in which every
model is called once in turn (interleaved, so load from other processes spreads over all
models alike); median and minimum per model are reported. Speed-ups are against the faster
DenseFuse layout (NCHW or NHWC). With ``--allocator both`` (default) the whole measurement runs
twice: first with glibc's default allocator, then after
:func:`litefuse.models.complexity.keep_heap_resident` (large buffers reused instead of
page-faulted afresh on every call) -- the second setting cannot be undone inside the process,
hence that order.

    python benchmarks/bench_densefuse.py [--height 480 --width 640 --repeats 10 --threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch import nn

from litefuse.models.complexity import count_macs, count_params, keep_heap_resident
from litefuse.models.densefuse import DenseFuse
from litefuse.models.lwc_densefuse import ABLATION_VARIANTS, LWCDenseFuse

BASELINES = ("densefuse", "densefuse (NCHW)")


def build_models() -> dict[str, nn.Module]:
    models: dict[str, nn.Module] = {"densefuse": DenseFuse(), "densefuse (NCHW)": DenseFuse(channels_last=False)}
    for name, kwargs in ABLATION_VARIANTS.items():
        if name != "densefuse":  # the standard-conv preset is DenseFuse itself
            models[f"lwc: {name}"] = LWCDenseFuse(**kwargs)
    return {k: m.eval() for k, m in models.items()}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def time_models(models: dict[str, nn.Module], ir: torch.Tensor, vi: torch.Tensor, warmup: int, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():
            for _ in range(warmup):
                m(ir, vi)
        for _ in range(repeats):
            for name, m in models.items():
                start = time.perf_counter()
                m(ir, vi)
                times[name].append(time.perf_counter() - start)
    return times


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--allocator", choices=("default", "resident", "both"), default="both")
    ap.add_argument("--only", nargs="*", help="subset of model names to time")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = build_models()
    if args.only:
        models = {k: m for k, m in models.items() if k in args.only or k in BASELINES}
    h, w = args.height, args.width
    ir, vi = torch.rand(1, 1, h, w), torch.rand(1, 1, h, w)

    stats = {name: (count_params(m), count_macs(m, (ir, vi))) for name, m in models.items()}
    load_start = load()
    modes = ["default", "resident"] if args.allocator == "both" else [args.allocator]
    results: dict[str, dict[str, list[float]]] = {}
    for mode in modes:
        if mode == "resident" and not keep_heap_resident():
            print("(glibc mallopt unavailable: skipping the resident-heap run)")
            continue
        results[mode] = time_models(models, ir, vi, args.warmup, args.repeats)

    print(f"## DenseFuse vs LWC-DenseFuse at {w}x{h} (CPU, batch 1, IR + VI per call)\n")
    print(f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}")
    print(f"- torch {torch.__version__}, {torch.get_num_threads()} threads, oneDNN {torch.backends.mkldnn.is_available()}")
    print(f"- load average (1/5/15 min) at start: {load_start}; at end: {load()}")
    print(f"- latency: {args.warmup} warm-up calls, then {args.repeats} interleaved rounds; median (min) in ms")
    print("- MACs: conv/linear layers as declared (see litefuse.models.complexity); biases, activations,")
    print("  attention products and the fusion rule are not counted\n")
    header = "| model | params | GMACs |"
    rule = "|---|---:|---:|"
    for mode in results:
        header += f" latency, {mode} malloc | speed-up |"
        rule += "---:|---:|"
    print(header)
    print(rule)
    base = {mode: min(median(t[b]) for b in BASELINES if b in t) for mode, t in results.items()}
    for name in models:
        params, macs = stats[name]
        row = f"| {name} | {params:,} | {macs / 1e9:.3f} |"
        for mode, t in results.items():
            med = median(t[name])
            row += f" {med * 1e3:.0f} ({min(t[name]) * 1e3:.0f}) | {base[mode] / med:.2f}x |"
        print(row)


if __name__ == "__main__":
    main()
