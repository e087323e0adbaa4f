"""Speed against quality: each method's CPU time per frame beside its mean MI and VIF.

Joins a benchmark (``python benchmarks/run.py --json bench.json``) with a comparison's
``scores.csv`` (``litefuse compare`` or ``tools/val_report.py -o``) and draws
:func:`litefuse.viz.speed_quality_chart`; prints the points as a markdown table sorted by time.

    python tools/speed_quality.py --bench bench.json --scores out/val/scores.csv \\
        --map dwsfusion@release=dwsfusion --reference dwsfusion@release -o docs/img/speed_quality.png

A score label takes its speed from the benchmark entry of the same name, or the one ``--map``
names (a checkpoint measures as its architecture). Kind: ``classical`` where that entry has no
parameters, ``reference`` for ``--reference`` labels, else ``network``. Labels without a
benchmark entry are left out with a warning.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

METRICS = ("MI", "VIF")


def mean_scores(path: Path, dataset: str | None, metrics: tuple[str, ...] = METRICS) -> dict[str, dict[str, float]]:
    """Per method label (in first-seen order): the mean of each metric over its rows (of ``dataset`` if given).

    Empty or non-finite cells are left out of a mean; a metric with no values is NaN.
    """
    sums: dict[str, dict[str, list[float]]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [m for m in ("set", "method", *metrics) if m not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: no column {', '.join(missing)}")
        for row in reader:
            if dataset is not None and row["set"] != dataset:
                continue
            per = sums.setdefault(row["method"], {m: [] for m in metrics})
            for m in metrics:
                try:
                    v = float(row[m])
                except (TypeError, ValueError):
                    continue
                if math.isfinite(v):
                    per[m].append(v)
    return {label: {m: (sum(v) / len(v) if v else math.nan) for m, v in per.items()} for label, per in sums.items()}


def build_points(bench: dict, means: dict[str, dict[str, float]], mapping: dict[str, str],
                 references: set[str]) -> list[dict]:
    """One chart point per score label that has a benchmark entry (warns on stderr for the rest)."""
    methods = bench["methods"]
    points = []
    for label, scores in means.items():
        name = mapping.get(label, label)
        entry = methods.get(name)
        if entry is None:
            print(f"warning: {label}: no benchmark entry {name!r} (use --map {label}=BENCHNAME); skipped",
                  file=sys.stderr)
            continue
        kind = "reference" if label in references else ("classical" if entry["params"] == 0 else "network")
        points.append({"label": label, "ms": float(entry["ms_median"]), "kind": kind, **scores})
    return points


def markdown(points: list[dict], metrics: tuple[str, ...] = METRICS) -> str:
    """``| method | CPU ms | MI | VIF |``, fastest first."""
    lines = ["| method | CPU ms | " + " | ".join(metrics) + " |", "|---|---:|" + "---:|" * len(metrics)]
    for p in sorted(points, key=lambda p: p["ms"]):
        lines.append(f"| {p['label']} | {p['ms']:.1f} | " + " | ".join(f"{p[m]:.3f}" for m in metrics) + " |")
    return "\n".join(lines)


def _pair(spec: str) -> tuple[str, str]:
    label, sep, name = spec.partition("=")
    if not sep or not label or not name:
        raise argparse.ArgumentTypeError(f"expected LABEL=BENCHNAME, got {spec!r}")
    return label, name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, required=True, help="JSON from benchmarks/run.py --json")
    ap.add_argument("--scores", type=Path, required=True, help="a comparison's scores.csv")
    ap.add_argument("--set", dest="dataset", default=None, help="only this data set's rows (default: all)")
    ap.add_argument("--map", type=_pair, action="append", default=[], metavar="LABEL=BENCHNAME",
                    help="benchmark entry giving a score label's speed; repeatable")
    ap.add_argument("--reference", action="append", default=[], metavar="LABEL",
                    help="mark this label as a reference; repeatable")
    ap.add_argument("-o", "--out", type=Path, required=True, help="chart PNG")
    args = ap.parse_args(argv)

    from litefuse.viz import speed_quality_chart

    bench = json.loads(args.bench.read_text(encoding="utf-8"))
    if bench.get("device", "cpu") != "cpu":
        print(f"warning: {args.bench} was measured on {bench['device']}, not the CPU", file=sys.stderr)
    means = mean_scores(args.scores, args.dataset)
    if not means:
        print(f"error: {args.scores} has no rows" + (f" for set {args.dataset!r}" if args.dataset else ""),
              file=sys.stderr)
        return 1
    points = build_points(bench, means, dict(args.map), set(args.reference))
    if not points:
        print("error: no score label has a benchmark entry", file=sys.stderr)
        return 1
    size = bench.get("size", "640x480").replace("x", "×")
    title = f"Speed and quality, {args.dataset or 'all sets'}"
    speed_quality_chart(points, args.out, metrics=METRICS, title=title,
                        xlabel=f"{bench.get('device', 'cpu').upper()} ms per frame at {size} (log)")
    print(markdown(points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
