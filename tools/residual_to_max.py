"""Where does a fused image depart from M = max(IR, VI)? Residual split by frequency, MI split by source.

    python tools/residual_to_max.py release=dwsfusion:../shared/reference/dwsfusion/release_generator.pth \
        shipped=dwsfusion max=max [--every 10]

DWSFusion's content loss pulls the output towards M (L1, MS-SSIM) and its gradients towards
max(∇IR, ∇VI); the two disagree wherever the brighter source is not the more textured one. For
each ``label=model[:weights]`` this fuses every ``--every``-th development IVIF pair (the
luminance the networks train on, as ``tools/content_loss.py``), rounds to 8 bits and prints means of: MI(F, IR) and
MI(F, VI) in nats (their sum is the MI metric), |F − M| split into a low-frequency part (15×15
box mean of the residual) and the rest (high frequency), the fractions of pixels more than one
grey level above / below M, and std(F) beside std(M).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter

from litefuse.api import Fuser
from litefuse.data.datasets import collect_pairs, load_luma_u8
from litefuse.metrics.information import _mi_pair

SHARED = Path(__file__).resolve().parents[2] / "shared"
COLUMNS = ["MI(F,IR)", "MI(F,VI)", "mean abs F−M", "abs low", "abs high", "F>M+1", "F<M−1", "std F", "std M"]


def residual_stats(ir: np.ndarray, vi: np.ndarray, fused: np.ndarray, box: int = 15) -> list[float]:
    """The ``COLUMNS`` values of one uint8 triple."""
    m = np.maximum(ir, vi).astype(np.float64)
    r = fused.astype(np.float64) - m
    low = uniform_filter(r, box, mode="reflect")
    return [_mi_pair(ir, fused, False), _mi_pair(vi, fused, False), np.abs(r).mean(), np.abs(low).mean(),
            np.abs(r - low).mean(), np.mean(r > 1), np.mean(r < -1), fused.std(), m.std()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("methods", nargs="+", help="label=model[:weights]")
    ap.add_argument("--every", type=int, default=10, help="score every N-th pair (1 = all)")
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "ivif")
    args = ap.parse_args()
    fusers = {}
    for spec in args.methods:
        label, _, rest = spec.partition("=")
        model, _, weights = rest.partition(":")
        fusers[label] = Fuser(model, weights=weights or None)
    rows: dict[str, list[list[float]]] = {k: [] for k in fusers}
    pairs = collect_pairs([args.data])[:: args.every]
    for pair in pairs:
        ir, vi = load_luma_u8(pair.a), load_luma_u8(pair.b)
        for label, fuser in fusers.items():
            f = fuser.fuse_luma(ir / 255.0, vi / 255.0)
            rows[label].append(residual_stats(ir, vi, np.clip(np.rint(f * 255), 0, 255).astype(np.uint8)))
    print(f"{len(pairs)} pairs (every {args.every}th of {args.data})\n")
    print(f"| method | {' | '.join(COLUMNS)} |\n" + "|---" * (len(COLUMNS) + 1) + "|")
    for label, v in rows.items():
        print(f"| {label} | " + " | ".join(f"{x:.3f}" for x in np.mean(v, axis=0)) + " |")


if __name__ == "__main__":
    from litefuse.errors import LitefuseError

    try:
        main()
    except LitefuseError as exc:  # ../shared's data not found, a weights file missing, ...: one line
        sys.exit(f"error: {exc}")
