"""How far can a network trained on AE-Net's positive samples get? The per-pair oracle, measured.

    python tools/positive_ceiling.py out/ship/mff/scores.csv out/ship/mef/scores.csv ... [--model aenetv2]

Reads ``scores.csv`` files written by ``litefuse compare`` (or ``tools/ship_weights.py``) that
hold every fuser of the positive-sample bank beside ``--model``. For each pair it picks the
bank member the positive-sample rule would pick (:func:`litefuse.train.positives.score_totals`
over ``SCORE_METRICS``, here on the full-resolution scores) and averages the 8 core metrics of
that choice: the *oracle*, i.e. a network that reproduced its positive samples exactly. Prints,
per file, the oracle and the model against each classical fuser as "wins / 8" (strictly greater
mean; every core metric is higher-is-better).
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from litefuse.metrics import CORE_METRICS
from litefuse.train.positives import BANK, SCORE_METRICS, score_totals


def oracle_table(path: Path, model: str) -> str:
    """Markdown table: oracle, ``model`` and each bank fuser, with wins of the first two over each."""
    pairs: dict[tuple[str, str], dict[str, dict[str, str]]] = defaultdict(dict)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            pairs[(row["set"], row["image"])][row["method"]] = row
    means: dict[str, list[list[float]]] = defaultdict(list)
    winners: Counter[str] = Counter()
    for key, rows in pairs.items():
        missing = [m for m in (*BANK, model) if m not in rows]
        if missing:
            raise SystemExit(f"error: {path}: pair {'/'.join(key)} has no rows for {', '.join(missing)}")
        totals = score_totals([[float(rows[m][s]) for s in SCORE_METRICS] for m in BANK])
        pick = BANK[int(np.argmax(totals))]
        winners[pick] += 1
        for label, method in (("oracle", pick), (model, model), *((m, m) for m in BANK)):
            means[label].append([float(rows[method][c]) for c in CORE_METRICS])
    mean = {k: np.mean(v, axis=0) for k, v in means.items()}
    picks = ", ".join(f"{m} {n}" for m, n in winners.most_common())
    lines = [f"**{path.parent.name or path}** ({len(pairs)} pairs; positive sample = {picks})", "",
             f"| method | {' | '.join(CORE_METRICS)} | oracle wins | {model} wins |",
             "|---" * (len(CORE_METRICS) + 3) + "|"]
    for label, v in mean.items():
        cells = " | ".join(f"{x:.3f}" for x in v)
        if label in BANK:
            wins = f"{int((mean['oracle'] > v).sum())}/8 | {int((mean[model] > v).sum())}/8"
        else:
            wins = "– | –"
        lines.append(f"| {label} | {cells} | {wins} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scores", nargs="+", type=Path, help="scores.csv files of litefuse compare")
    ap.add_argument("--model", default="aenetv2", help="the network's method label in the files")
    args = ap.parse_args()
    print("\n\n".join(oracle_table(p, args.model) for p in args.scores))


if __name__ == "__main__":
    main()
