"""Inference forms and onnxruntime: every network's runtimes at one size, interleaved in one run.

    python benchmarks/bench_inference.py [--size 640x480] [--rounds 9] [--threads 1] [--int8 ../shared/data/ivif/MSRS]

Per network, ``model(ir, vi)`` on a batch-1 pair under ``torch.inference_mode``:

* **torch training form** -- the modules as trained (``fuse_for_inference(False)`` for the
  DenseFuse family; the other networks have one form);
* **torch inference form** -- what ``litefuse`` runs (``load_model`` in eval mode);
* **ORT fp32** -- the graph of :func:`litefuse.export_onnx` at this size, in
  :func:`litefuse.export.ort_session` (same intra-op threads, no spinning);
* **ORT int8** (``--int8 DIR``) -- that graph statically quantised with
  ``onnxruntime.quantization`` (QDQ, per-channel int8 weights, uint8 activations), calibrated on
  the first 12 pairs of DIR (``ir/`` + ``vi/``, 640x480 MSRS-style), scored on the next 10
  against ORT fp32 with the core metrics.

All calls are timed round-robin (each round calls everything once) so load from other processes
spreads alike; the table gives median (min) ms, ratios inside the run, and the max |output
difference| of each form against the torch training form on the same random pair.
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

NETWORKS = ("densefuse", "lwc-densefuse", "aenetv2", "aenetv2-ivif", "dwsfusion")


def _pairs(folder: Path, stems: list[str]):
    import numpy as np

    from litefuse.colour import rgb_to_ycbcr
    from litefuse.io import read_image

    for stem in stems:
        ir, vi = (read_image(next((folder / d).glob(f"{stem}.*"))) for d in ("ir", "vi"))
        ir = ir.mean(2) if ir.ndim == 3 else ir
        vi = rgb_to_ycbcr(vi)[0] if vi.ndim == 3 else vi
        yield stem, ir.astype(np.float32)[None, None], vi.astype(np.float32)[None, None]


def quantize_int8(fp32: Path, out: Path, folder: Path, stems: list[str]) -> Path:
    """Static QDQ int8 quantisation of a litefuse graph, calibrated on the pairs ``stems``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.pairs = _pairs(folder, stems)

        def get_next(self):
            item = next(self.pairs, None)
            return None if item is None else {"ir": item[1], "vi": item[2]}

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre))
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=WxH, default="640x480", help="W x H")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--int8", type=Path, default=None, metavar="DIR", help="also quantise, calibrated on pairs in DIR")
    args = ap.parse_args(argv)

    import numpy as np
    import onnxruntime as ort
    import torch

    import litefuse
    from litefuse.export import ort_session
    from litefuse.runtime import prepare

    prepare(args.threads)  # torch as litefuse runs it: resident heap, oneDNN's ISA policy, threads
    w, h = parse_wxh(args.size)
    rng = np.random.default_rng(0)
    ir, vi = (rng.random((1, 1, h, w), dtype=np.float32) for _ in range(2))
    tir, tvi = torch.from_numpy(ir), torch.from_numpy(vi)
    names = args.networks.split(",")
    calls, outputs, notes = {}, {}, []
    tmp = Path(tempfile.mkdtemp())
    stems = sorted(p.stem for p in (args.int8 / "ir").iterdir())[:22] if args.int8 else []
    quality: dict[str, dict] = {}
    for name in names:
        model = litefuse.load_model(name)
        if hasattr(model, "fuse_for_inference"):
            train = litefuse.load_model(name).fuse_for_inference(False)
            calls[(name, "torch training form")] = lambda m=train: m(tir, tvi)
        calls[(name, "torch inference form")] = lambda m=model: m(tir, tvi)
        if getattr(model, "onnx_unsupported", None):
            notes.append(f"{name}: not exportable ({model.onnx_unsupported})")
            continue
        report = litefuse.export_onnx(name, tmp / f"{name}.onnx", size=(h, w))
        session = ort_session(report.path, args.threads)
        calls[(name, "ORT fp32")] = lambda s=session: torch.from_numpy(s.run(None, {"ir": ir, "vi": vi})[0])
        if args.int8:
            q8 = quantize_int8(report.path, tmp / f"{name}.int8.onnx", args.int8, stems[:12])
            s8 = ort_session(q8, args.threads)
            calls[(name, "ORT int8")] = lambda s=s8: torch.from_numpy(s.run(None, {"ir": ir, "vi": vi})[0])
            quality[name] = _quality(session, s8, args.int8, stems[12:22])
    load_start = load_average()
    with torch.inference_mode():
        for key, call in calls.items():
            outputs[key] = call()
        times = interleaved_times(calls, args.rounds, args.warmup - 1)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"## Inference forms and onnxruntime at {w}×{h} (batch 1)\n")
    print(machine_line())
    print(f"- torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} intra-op thread(s) each")
    print(f"- load average at start {load_start}, at end {load_average()}; {args.warmup} warm-up + {args.rounds} interleaved rounds\n")
    print("| network | runtime | ms median (min) | × vs training form | max abs diff vs training form |")
    print("|---|---|---:|---:|---:|")
    for (name, rt), t in times.items():
        base_key = (name, "torch training form") if (name, "torch training form") in med else (name, "torch inference form")
        diff = float((outputs[(name, rt)] - outputs[base_key]).abs().max())
        print(f"| {name} | {rt} | {med[(name, rt)]:.1f} ({min(t) * 1e3:.1f}) | {med[base_key] / med[(name, rt)]:.2f} | {diff:.1e} |")
    if ("densefuse", "torch training form") in med and ("lwc-densefuse", "torch inference form") in med:
        d = med[("densefuse", "torch training form")]
        print(f"\nlwc-densefuse vs densefuse (torch, same run): inference form {d / med[('lwc-densefuse', 'torch inference form')]:.2f}× "
              f"faster than densefuse's training form, {med[('densefuse', 'torch inference form')] / med[('lwc-densefuse', 'torch inference form')]:.2f}× "
              f"than its inference form; training forms {d / med[('lwc-densefuse', 'torch training form')]:.2f}×")
    for name in names:
        if (name, "ORT fp32") in med:
            print(f"- {name}: ORT fp32 / torch inference form = {med[(name, 'ORT fp32')] / med[(name, 'torch inference form')]:.2f}"
                  + (f"; ORT int8 is {med[(name, 'ORT fp32')] / med[(name, 'ORT int8')]:.2f}× ORT fp32" if (name, "ORT int8") in med else ""))
    for note in notes:
        print(f"- {note}")
    if quality:
        print(f"\nint8 vs fp32 (ORT) on {len(stems[12:22])} pairs of {args.int8} (mean core metrics, relative change):\n")
        metric_names = list(next(iter(quality.values()))["int8"])
        print("| network | output | mean \\|Δ\\| (grey levels) | " + " | ".join(metric_names) + " |")
        print("|---|---|---:|" + "---:|" * len(metric_names))
        for name, q in quality.items():
            for i, (key, label) in enumerate((("int8", "ORT int8"), ("noise", "fp32 + Gaussian noise of that |Δ|"))):
                print(f"| {name} | {label} | {q['mean |d|'][i]:.2f} | "
                      + " | ".join(f"{100 * (b - a) / abs(a):+.1f} %" for a, b in q[key].values()) + " |")
    return 0


def _quality(s32, s8, folder: Path, stems: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean core metrics of ORT fp32 and int8 outputs on the pairs ``stems``, plus a noise control.

    ``"noise"`` is the fp32 output with Gaussian noise of the int8 output's mean absolute error
    added before rounding to 8 bits: where it loses as much as int8 does, the loss is the metrics'
    response to sub-grey-level noise, not a defect of the quantised graph. ``"mean |d|"`` is
    that error in grey levels (``(int8, noise)``).
    """
    import numpy as np

    from litefuse.metrics import CORE_METRICS, evaluate, to_uint8

    rng = np.random.default_rng(0)
    scores: dict[str, list[dict]] = {"fp32": [], "int8": [], "noise": []}
    errs: list[tuple[float, float]] = []
    for _, ir, vi in _pairs(folder, stems):
        a, b = to_uint8(ir[0, 0]), to_uint8(vi[0, 0])
        f32, f8 = (s.run(None, {"ir": ir, "vi": vi})[0][0, 0] for s in (s32, s8))
        d = float(np.abs(f8 - f32).mean())
        noisy = f32 + rng.normal(0.0, d * np.sqrt(np.pi / 2), f32.shape).astype(np.float32)  # E|N(0, s)| = s √(2/π)
        errs.append((255 * d, 255 * float(np.abs(noisy - f32).mean())))
        for key, fused in (("fp32", f32), ("int8", f8), ("noise", noisy)):
            scores[key].append(evaluate(a, b, to_uint8(fused), CORE_METRICS))
    out = {k: {m: (float(np.mean([d[m] for d in scores["fp32"]])), float(np.mean([d[m] for d in scores[k]]))) for m in CORE_METRICS}
           for k in ("int8", "noise")}
    out["mean |d|"] = tuple(map(float, np.mean(errs, axis=0)))  # type: ignore[assignment]
    return out

if __name__ == "__main__":
    sys.exit(main())
