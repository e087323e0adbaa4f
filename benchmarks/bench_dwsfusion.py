"""CPU latency of DWSFusion and DWSFusion+ with a per-block breakdown (markdown tables).

    python benchmarks/bench_dwsfusion.py                  # 640x480, all cores
    python benchmarks/bench_dwsfusion.py --size 320x240 --threads 1 --ops

Latency is the median of ``--runs`` timed calls of ``model(ir, vi)`` under
``torch.inference_mode`` after ``--warmup`` calls, batch 1, float32. The per-block table comes
from forward hooks (inclusive wall time per module, median over the runs) in a separate pass,
so the hooks do not distort the headline latency. The faithful model loads the released
checkpoint when the parity pack is found (``$LITEFUSE_SHARED`` or ``../shared``), since the
trained dilations decide how much deformable sampling work there is. DWSFusion+ runs at
random init.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from litefuse._checks import WxH, parse_wxh
from litefuse.models.dwsfusion import FA2M, FADC, FreqSelect
from litefuse.registry import load_model

SHARED = Path(os.environ.get("LITEFUSE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
RELEASE = SHARED / "reference" / "dwsfusion" / "release_generator.pth"


def build(name: str) -> nn.Module:
    if name == "dwsfusion" and RELEASE.is_file():
        return load_model(name, weights=RELEASE)
    return load_model(name, pretrained=False)


def latency(model: nn.Module, ir: torch.Tensor, vi: torch.Tensor, runs: int, warmup: int) -> list[float]:
    with torch.inference_mode():
        for _ in range(warmup):
            model(ir, vi)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(ir, vi)
            times.append((time.perf_counter() - start) * 1e3)
    return times


def block_profile(model: nn.Module, ir: torch.Tensor, vi: torch.Tensor, runs: int) -> tuple[float, dict, dict]:
    """Median forward ms of the hooked pass, median inclusive ms per named block (depth <= 2,
    in module order) and per block type (summed over instances)."""
    per_name: dict[str, list[float]] = defaultdict(list)
    per_type: dict[str, list[float]] = defaultdict(list)
    starts: dict[int, float] = {}
    handles = []
    tracked = {n: m for n, m in model.named_modules() if n and n.count(".") <= 1}
    typed = {n: m for n, m in model.named_modules() if isinstance(m, (FADC, FreqSelect, FA2M))}

    def pre(module: nn.Module, args: tuple) -> None:
        starts[id(module)] = time.perf_counter()

    def post_name(name: str):
        def hook(module: nn.Module, args: tuple, out) -> None:
            per_name[name].append((time.perf_counter() - starts[id(module)]) * 1e3)

        return hook

    type_sums: dict[str, float] = defaultdict(float)

    def post_type(module: nn.Module, args: tuple, out) -> None:
        type_sums[type(module).__name__] += (time.perf_counter() - starts[id(module)]) * 1e3

    for name, module in tracked.items():
        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post_name(name))]
    for name, module in typed.items():
        if name not in tracked:
            handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post_type))
    totals = []
    with torch.inference_mode():
        model(ir, vi)
        per_name.clear()
        for _ in range(runs):
            type_sums.clear()
            start = time.perf_counter()
            model(ir, vi)
            totals.append((time.perf_counter() - start) * 1e3)
            for key, value in type_sums.items():
                per_type[key].append(value)
    for h in handles:
        h.remove()
    med_name = {n: (len(per_name[n]) // runs, statistics.median(per_name[n])) for n in tracked if per_name[n]}
    med_type = {n: statistics.median(v) for n, v in per_type.items()}
    return statistics.median(totals), med_name, med_type


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=WxH, default="640x480", help="W x H (default 640x480)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--models", default="dwsfusion,dwsfusion-plus")
    parser.add_argument("--ops", action="store_true", help="also print torch.profiler's top operators")
    args = parser.parse_args()

    w, h = parse_wxh(args.size)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ir, vi = torch.rand(1, 1, h, w), torch.rand(1, 1, h, w)
    print(f"## DWSFusion CPU latency, {w}x{h}, batch 1, float32, {torch.get_num_threads()} threads")
    from litefuse.bench import machine_line

    print(machine_line())
    print(f"- torch {torch.__version__}, load average {os.getloadavg()[0]:.2f} at start\n")
    print("| model | params | weights | median ms | min ms | max ms |")
    print("|---|---:|---|---:|---:|---:|")
    models = {name: build(name) for name in args.models.split(",")}
    for name, model in models.items():
        times = latency(model, ir, vi, args.runs, args.warmup)
        params = sum(p.numel() for p in model.parameters())
        source = "release" if name == "dwsfusion" and RELEASE.is_file() else "random init"
        med, lo, hi = statistics.median(times), min(times), max(times)
        print(f"| {name} | {params:,} | {source} | {med:.1f} | {lo:.1f} | {hi:.1f} |")

    for name, model in models.items():
        total, per_name, per_type = block_profile(model, ir, vi, args.runs)
        print(f"\n### {name}: per-block breakdown (inclusive, median ms; hooked forward {total:.1f} ms)\n")
        print("| block | calls | ms | % of total |")
        print("|---|---:|---:|---:|")
        for block, (calls, ms) in per_name.items():
            indent = "&nbsp;&nbsp;" if "." in block else ""
            print(f"| {indent}{block} | {calls} | {ms * calls:.1f} | {100 * ms * calls / total:.0f}% |")
        fadc, freq = per_type.get("FADC", 0.0), per_type.get("FreqSelect", 0.0)
        print("\n| by kind (all instances) | ms | % of total |")
        print("|---|---:|---:|")
        for label, ms in (
            ("FA2M (attention blocks, incl. their FADC)", per_type.get("FA2M", 0.0)),
            ("FADC total", fadc),
            ("&nbsp;&nbsp;FreqSelect (FFT band split + gates)", freq),
            ("&nbsp;&nbsp;kernel heads + offset/mask conv + deformable conv", fadc - freq),
        ):
            print(f"| {label} | {ms:.1f} | {100 * ms / total:.0f}% |")

    if args.ops:
        from torch.profiler import ProfilerActivity, profile

        for name, model in models.items():
            with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
                model(ir, vi)
            print(f"\n### {name}: top operators (torch.profiler, self CPU time)\n")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
