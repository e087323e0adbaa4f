"""Score methods on the validation split (pairs the networks did not train on), per data set.

Every method named is fused and scored in one run beside the references (``dwsfusion`` and
``max`` by default); the report counts, per set, on how many of the 8 core metrics each method
is level with ``dwsfusion`` (within 1 %, or better) and beats ``max`` head to head.

    python tools/val_report.py -m aenetv2-ivif -m aenetv2-ivif=runs/kd/model.safetensors --jobs 2
    python tools/val_report.py -m aenetv2 --split all -o out/val   # also writes scores.csv, summary.md, chart, grid
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from litefuse.api import Fuser  # noqa: E402
from litefuse.compare import Comparison, compare_pairs, write_report  # noqa: E402
from litefuse.data import collect_pairs, split_pairs  # noqa: E402
from litefuse.metrics import CORE_METRICS, METRICS  # noqa: E402


def make_fuser(spec: str) -> Fuser:
    """``NAME`` or ``NAME=WEIGHTS`` (label: the spec, shortened to the run folder)."""
    name, _, weights = spec.partition("=")
    fuser = Fuser(name, weights=weights or None)
    path = Path(weights)
    fuser.label = name if not weights else f"{name}@{path.parent.name if path.stem == 'model' else path.stem}"
    return fuser


def level_counts(result: Comparison, dataset: str | None, ref: str = "dwsfusion", base: str = "max",
                 tol: float = 0.01) -> dict[str, tuple[int, int]]:
    """Per method: (metrics within ``tol`` of ``ref`` or better, metrics strictly better than ``base``)."""
    means = result.means(dataset)
    out = {}
    for method in result.methods:
        level = wins = 0
        for m in result.metrics:
            up = METRICS[m].higher_is_better
            v, r, b = means[method][m], means.get(ref, {}).get(m), means.get(base, {}).get(m)
            if r is not None and (v >= r - tol * abs(r) if up else v <= r + tol * abs(r)):
                level += 1
            if b is not None and (v > b if up else v < b):
                wins += 1
        out[method] = (level, wins)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--method", action="append", default=[], help="NAME or NAME=WEIGHTS; repeatable")
    ap.add_argument("--ref", action="append", default=None, help="reference methods (default: dwsfusion, max)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ivif"))
    ap.add_argument("--split", choices=("val", "train", "all"), default="val")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("-o", "--out", default=None, help="also write scores.csv, summary.md, chart.png, grid.png here")
    args = ap.parse_args(argv)

    pairs = collect_pairs([args.data])
    train, val = split_pairs(pairs, args.val_fraction)
    chosen = {"val": val, "train": train, "all": pairs}[args.split]
    work = [(p.name.split("/")[0], p) for p in chosen]
    refs = args.ref if args.ref is not None else ["dwsfusion", "max"]
    fusers = [make_fuser(s) for s in args.method + refs]
    result = compare_pairs(work, fusers, CORE_METRICS, jobs=args.jobs)
    print(f"# {args.split} split of {args.data}: {len(work)} pairs\n")
    for dataset in [*result.datasets(), None]:
        n = len({r["image"] for r in result.rows if dataset is None or r["set"] == dataset})
        print(f"## {dataset or 'all'} ({n} pairs)\n")
        print(result.markdown(dataset))
        counts = level_counts(result, dataset)
        print("\n| method | level with dwsfusion (≤1 % below) | beats max |\n|---|---:|---:|")
        for method, (level, wins) in counts.items():
            print(f"| {method} | {level}/8 | {wins}/8 |")
        print()
    if args.out:
        write_report(result, args.out, title=f"{args.split} split", overwrite=True)
    return 0


if __name__ == "__main__":
    from litefuse.errors import LitefuseError

    try:
        sys.exit(main())
    except LitefuseError as exc:  # ../shared's data not found, a weights file missing, ...: one line
        sys.exit(f"error: {exc}")
