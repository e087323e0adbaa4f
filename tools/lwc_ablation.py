"""LWC-DenseFuse ablation: every variant trained with the same data and budget, then scored and timed.

    python tools/lwc_ablation.py [--steps-epochs 1] [--crop 96] [--jobs 2] [--limit 20]

Rows: the ablation presets of :data:`litefuse.models.lwc_densefuse.ABLATION_VARIANTS` (DenseFuse's
standard convs inside the same skeleton, depthwise-separable only, + channel attention, +
shuffle, full SC-LWC and two SC-LWC alternatives), all trained with the progressive three-stage
schedule of ``configs/lwc-densefuse.toml``, plus full SC-LWC trained with DenseFuse's constant
λ = 100 over the same number of epochs. Columns: params, MACs and CPU latency at 640×480 (one
interleaved timing run in this process) and the 8 core metrics on the development
infrared–visible sets, with ``max`` scored in the same run. Writes ``docs/lwc-ablation.md``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SETS = ["MSRS", "TNO", "RoadScene"]


def runs(epochs: int) -> dict[str, list[str]]:
    """Run name → extra ``litefuse train lwc-densefuse`` arguments."""
    from litefuse.models.lwc_densefuse import ABLATION_VARIANTS

    progressive = [f"--set=stages=[{{epochs={epochs}, ssim_weight=1.0, grad_weight=0.0}}, "
                   f"{{epochs={epochs}, ssim_weight=10.0, grad_weight=0.5}}, {{epochs={epochs}, ssim_weight=100.0, grad_weight=1.0}}]"]
    out = {v: [f"--set=model_kwargs.variant={v}", *progressive] for v in ABLATION_VARIANTS}
    out["sclwc, constant λ"] = ["--set=model_kwargs.variant=sclwc", f"--set=stages=[{{epochs={3 * epochs}, ssim_weight=100.0, grad_weight=0.0}}]"]
    return out


def train(name: str, extra: list[str], out: Path, crop: int) -> Path:
    run = out / name.replace(", ", "_").replace(" ", "_")
    if (run / "summary.json").is_file():
        return run
    cmd = [sys.executable, "-m", "litefuse", "train", "lwc-densefuse", "--out", str(run), "--no-progress",
           "--set=threads=1", f"--set=crop=[{crop},{crop}]", *extra]
    log = run.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, check=True)
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1, help="epochs per progressive stage (constant λ gets 3×)")
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--jobs", type=int, default=2, help="training runs at a time (1 thread each)")
    ap.add_argument("--limit", type=int, default=None, help="pairs per development set")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "lwc-ablation")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args(argv)

    import json

    import torch

    from litefuse.api import Fuser
    from litefuse.compare import compare
    from litefuse.metrics import METRICS
    from litefuse.models.complexity import count_macs, count_params, keep_heap_resident

    keep_heap_resident()
    plan = runs(args.epochs)
    t0 = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        done = dict(zip(plan, pool.map(lambda kv: train(kv[0], kv[1], args.out, args.crop), plan.items())))
    print(f"trained {len(done)} runs in {(time.time() - t0) / 60:.1f} min")

    fusers = []
    for name, run in done.items():
        variant = json.loads((run / "config.json").read_text())["model_kwargs"]["variant"]
        f = Fuser("lwc-densefuse", weights=run / "model.safetensors", variant=variant)
        f.label = name
        fusers.append(f)
    result = compare([SHARED / "data" / "ivif" / s for s in SETS], [*fusers, Fuser("max")], limit=args.limit, preview=0)
    means = result.means()

    x = torch.rand(1, 1, 480, 640)
    stats, times = {}, {f.label: [] for f in fusers}
    with torch.inference_mode():
        for f in fusers:
            stats[f.label] = (count_params(f.model), count_macs(f.model, (x, x), method="auto"))
            f.model(x, x)
        for _ in range(args.rounds):
            for f in fusers:
                t = time.perf_counter()
                f.model(x, x)
                times[f.label].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}

    metrics = result.metrics
    head = "| variant | params | GMACs | CPU ms | × vs densefuse-convs | " + " | ".join(f"{m} {METRICS[m].direction}" for m in metrics) + " |"
    lines = [head, "|---" * (5 + len(metrics)) + "|"]
    for label in [*done, "max"]:
        p, macs = stats.get(label, (0, 0))
        ms = f"{med[label] * 1e3:.0f}" if label in med else "–"
        ratio = f"{med['densefuse'] / med[label]:.2f}" if label in med else "–"
        cells = " | ".join(f"{means[label][m]:.4f}" for m in metrics)
        lines.append(f"| {label} | {p:,} | {macs / 1e9:.2f} | {ms} | {ratio} | {cells} |")
    n_pairs = len({(r['set'], r['image']) for r in result.rows})
    steps = {name: json.loads((run / 'summary.json').read_text())['steps'] for name, run in done.items()}
    doc = [
        "# LWC-DenseFuse ablation",
        "",
        f"Written by `python tools/lwc_ablation.py --epochs {args.epochs} --crop {args.crop}`"
        + (f" --limit {args.limit}" if args.limit else "") + ". Every row trained with the same data "
        f"(`ivif` + `mff` + `mef` grey crops, {args.crop}² crops, batch 8, seed 0, 1 thread) and the same budget "
        f"({3 * args.epochs} epochs = {max(steps.values())} steps; progressive schedule λ 1→10→100, μ 0→0.5→1 unless "
        "marked constant λ), then scored in one run on "
        f"{n_pairs} development infrared–visible pairs ({', '.join(SETS)}; mean over images; `max` beside) and timed in "
        f"one interleaved CPU run at 640×480 (median of {args.rounds}, 1 image pair per call).",
        "",
        *lines,
        "",
    ]
    (ROOT / "docs" / "lwc-ablation.md").write_text("\n".join(doc))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
