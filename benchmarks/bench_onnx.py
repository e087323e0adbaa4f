"""The exportable networks in onnxruntime vs PyTorch, interleaved in one run.

    python benchmarks/bench_onnx.py [--size 640x480] [--rounds 15]

Exports ``densefuse``, ``lwc-densefuse`` and ``aenetv2`` at a fixed size with
:func:`litefuse.export_onnx` (each checked against PyTorch), then times ``model(ir, vi)`` in
PyTorch (``torch.inference_mode``, resident heap as the CLI) and ``session.run`` in
onnxruntime (:func:`litefuse.export.ort_session`: intra-op threads = torch's, no spinning)
round-robin, so load spreads alike. ``bench_inference.py`` adds the training forms and int8.
Reports median (min) ms and the speed-up against ``densefuse`` in the same runtime.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from litefuse._checks import WxH, parse_wxh
from litefuse.bench import (  # the package's machine facts and interleaved timer
    interleaved_times,
    load_average,
    machine_line,
)

MODELS = ("densefuse", "lwc-densefuse", "aenetv2")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=WxH, default="640x480", help="W x H")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)

    import numpy as np
    import onnxruntime as ort
    import torch

    import litefuse
    from litefuse.export import ort_session
    from litefuse.runtime import apply_heap_policy, apply_isa_policy

    apply_heap_policy()
    apply_isa_policy()  # torch as litefuse runs it (float32)
    w, h = parse_wxh(args.size)
    rng = np.random.default_rng(0)
    ir, vi = (rng.random((1, 1, h, w), dtype=np.float32) for _ in range(2))
    tir, tvi = torch.from_numpy(ir), torch.from_numpy(vi)
    calls, errors = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            report = litefuse.export_onnx(name, Path(tmp) / f"{name}.onnx", size=(h, w))
            errors[name] = report.max_abs_error
            session = ort_session(report.path)
            model = litefuse.load_model(name)
            calls[(name, "torch")] = lambda m=model: m(tir, tvi)
            calls[(name, "onnxruntime")] = lambda s=session: s.run(None, {"ir": ir, "vi": vi})
    load_start = load_average()
    with torch.inference_mode():
        times = interleaved_times(calls, args.rounds, args.warmup)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"## PyTorch vs onnxruntime at {w}×{h} (batch 1)\n")
    print(machine_line())
    print(f"- torch {torch.__version__}, onnxruntime {ort.__version__}, {torch.get_num_threads()} threads each")
    print(f"- load average at start {load_start}, at end {load_average()}; {args.warmup} warm-up + {args.rounds} interleaved rounds\n")
    print("| model | runtime | ms median (min) | × faster than densefuse (same runtime) | ONNX max abs diff |")
    print("|---|---|---:|---:|---:|")
    for (name, rt), t in times.items():
        ratio = med[("densefuse", rt)] / med[(name, rt)]
        print(f"| {name} | {rt} | {med[(name, rt)] * 1e3:.1f} ({min(t) * 1e3:.1f}) | {ratio:.2f} | {errors[name]:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
