"""Ablations: variants trained with the same data and budget, then scored and timed in one run.

    python tools/ablation.py lwc [--epochs 1] [--crop 96] [--jobs 2] [--limit N]
    python tools/ablation.py dwsfusion [--steps 80] [--jobs 2] [--limit N]

``lwc``: the presets of :data:`litefuse.models.lwc_densefuse.ABLATION_VARIANTS` (DenseFuse's
standard convs in the same skeleton, depthwise-separable only, + channel attention, + shuffle,
full SC-LWC and two SC-LWC alternatives), all trained with the progressive three-stage schedule
of ``configs/lwc-densefuse.toml``, plus full SC-LWC trained with DenseFuse's constant λ = 100
for the same number of epochs. Writes ``docs/lwc-ablation.md``.

``dwsfusion``: the release design (random per-call critic head) and then each DWSFusion+ fix
switched on cumulatively (registered critic head, bounded α, ECA channel gate, signed AWEM
residual, separate AWEM BNs, average pooling = DWSFusion+), each for the same number of steps
with the CPU-saving recipe of ``dwsfusion-plus.toml`` (176×240, batch 8, lr 3e-3, seed 0).
Writes ``docs/dwsfusion-ablation.md``.

Columns: params, MACs and CPU latency at 640×480 (one interleaved timing run in this process)
and the 8 core metrics on development infrared–visible sets, ``max`` scored in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SETS = ["MSRS", "TNO", "RoadScene"]


def lwc_plan(args) -> dict[str, list[str]]:
    """Row name → ``litefuse train`` arguments."""
    from litefuse.models.lwc_densefuse import ABLATION_VARIANTS

    e = args.epochs
    progressive = [f"--set=stages=[{{epochs={e}, ssim_weight=1.0, grad_weight=0.0}}, "
                   f"{{epochs={e}, ssim_weight=10.0, grad_weight=0.5}}, {{epochs={e}, ssim_weight=100.0, grad_weight=1.0}}]"]
    base = ["lwc-densefuse", f"--set=crop=[{args.crop},{args.crop}]"]
    out = {v: [*base, f"--set=model_kwargs.variant={v}", *progressive] for v in ABLATION_VARIANTS}
    out["sclwc, constant λ"] = [*base, "--set=model_kwargs.variant=sclwc",
                                f"--set=stages=[{{epochs={3 * e}, ssim_weight=100.0, grad_weight=0.0}}]"]
    return out


DWS_FIXES = [  # (row name, --set added to everything above it)
    ("registered critic head", "--set=objective.critic_head=registered"),
    ("+ bounded α", "--set=model_kwargs.bounded_alpha=true"),
    ("+ ECA channel gate", "--set=model_kwargs.channel_gate=eca"),
    ("+ signed AWEM residual", "--set=model_kwargs.awem_signed_residual=true"),
    ("+ separate AWEM BNs", "--set=model_kwargs.awem_separate_bn=true"),
    ("+ average pooling (all fixes)", "--set=model_kwargs.awem_pool=avg"),
]


def dws_plan(args) -> dict[str, list[str]]:
    # the CPU-saving recipe these rows were measured with (the packaged dwsfusion.toml until
    # 2026-11-30, dwsfusion-plus.toml still); pinned so the table stays reproducible
    base = ["dwsfusion", f"--max-steps={args.steps}", "--set=crop=[176,240]", "--set=batch_size=8", "--set=lr=3e-3",
            "--set=objective.critic_lr=3e-3", "--seed=0"]
    out = {"release design (random critic head)": [*base, "--set=objective.critic_head=model"]}
    sets: list[str] = []
    for name, item in DWS_FIXES:
        sets.append(item)
        out[name] = [*base, *sets]
    return out


PLANS = {"lwc": (lwc_plan, "lwc-ablation.md", "densefuse"), "dwsfusion": (dws_plan, "dwsfusion-ablation.md", None)}


def train(name: str, extra: list[str], out: Path) -> Path:
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    run = out / slug
    if (run / "summary.json").is_file():
        return run
    cmd = [sys.executable, "-m", "litefuse", "train", extra[0], "--out", str(run), "--no-progress",
           "--set=threads=1", *extra[1:]]
    log = run.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, check=True)
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", choices=sorted(PLANS))
    ap.add_argument("--epochs", type=int, default=1, help="lwc: epochs per progressive stage (constant λ gets 3×)")
    ap.add_argument("--crop", type=int, default=96, help="lwc: square crop side")
    ap.add_argument("--steps", type=int, default=80, help="dwsfusion: generator steps per row")
    ap.add_argument("--jobs", type=int, default=2, help="training runs at a time (1 thread each)")
    ap.add_argument("--limit", type=int, default=None, help="pairs per development set")
    ap.add_argument("--out", type=Path, default=None, help="run folders (default runs/<which>-ablation)")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args(argv)

    import torch

    from litefuse._files import atomic_write_text
    from litefuse.api import Fuser
    from litefuse.compare import compare
    from litefuse.metrics import METRICS
    from litefuse.models.complexity import count_macs, count_params
    from litefuse.runtime import keep_heap_resident

    keep_heap_resident()
    make_plan, doc_name, baseline = PLANS[args.which]
    out = args.out or ROOT / "runs" / f"{args.which}-ablation"
    plan = make_plan(args)
    t0 = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        done = dict(zip(plan, pool.map(lambda kv: train(kv[0], kv[1], out), plan.items())))
    print(f"trained {len(done)} runs in {(time.time() - t0) / 60:.1f} min")

    fusers, steps = [], {}
    for name, run in done.items():
        cfg = json.loads((run / "config.json").read_text())
        f = Fuser(cfg["model"], weights=run / "model.safetensors", **cfg["model_kwargs"])
        f.label = name
        fusers.append(f)
        steps[name] = json.loads((run / "summary.json").read_text())["steps"]
    result = compare([SHARED / "data" / "ivif" / s for s in SETS], [*fusers, Fuser("max")], limit=args.limit, preview=0, jobs=args.jobs)
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
    ref = baseline or next(iter(done))
    head = f"| row | params | GMACs | CPU ms | × vs {ref} | steps | " + " | ".join(f"{m} {METRICS[m].arrow}" for m in metrics) + " |"
    lines = [head, "|---" * (6 + len(metrics)) + "|"]
    best = {m: METRICS[m].best(means[k][m] for k in done) for m in metrics}
    for label in [*done, "max"]:
        p, macs = stats.get(label, (0, 0))
        ms = f"{med[label] * 1e3:.0f}" if label in med else "–"
        ratio = f"{med[ref] / med[label]:.2f}" if label in med else "–"
        cells = " | ".join(
            f"**{means[label][m]:.4f}**" if label in done and means[label][m] == best[m] else f"{means[label][m]:.4f}" for m in metrics
        )
        lines.append(f"| {label} | {p:,} | {macs / 1e9:.2f} | {ms} | {ratio} | {steps.get(label, '–')} | {cells} |")
    n_pairs = len({(r["set"], r["image"]) for r in result.rows})
    cmd = " ".join(["python tools/ablation.py", *(argv if argv is not None else sys.argv[1:])])
    title = {"lwc": "LWC-DenseFuse ablation", "dwsfusion": "DWSFusion+ ablation"}[args.which]
    doc = [
        f"# {title}",
        "",
        f"Written by `{cmd}` in {(time.time() - t0) / 60:.0f} min. Every row trained with the same data, seed (0), "
        "one CPU thread and the same number of steps (the `steps` column), then all rows scored in one run on "
        f"{n_pairs} development infrared–visible pairs ({', '.join(SETS)}; CDDFuse convention, mean over images; "
        f"best network per column in bold; `max` beside) and timed in one interleaved CPU run at 640×480 "
        f"(median of {args.rounds} calls, batch 1). The training commands are in the module docstring of "
        "`tools/ablation.py`; the short, equal budgets make this a comparison of variants, not of final models.",
        "",
        *lines,
        "",
    ]
    atomic_write_text(ROOT / "docs" / doc_name, "\n".join(doc))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
