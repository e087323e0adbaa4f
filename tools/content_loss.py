"""Which output does DWSFusion's content loss prefer? L_c and its parts on whole development images.

    python tools/content_loss.py [--every 4] [--weights LABEL=MODEL:PATH ...]

Scores ``F = max(IR, VI)`` (the target M itself), the shipped ``dwsfusion`` and
``dwsfusion-plus`` and the release checkpoint (when ``../shared`` has it) with
:func:`litefuse.train.objectives.dwsfusion.content_loss` — the same function training minimises —
on every ``--every``-th infrared–visible development pair, whole images, Y in [0, 1]. Prints a
markdown table (docs/dwsfusion-ablation.md quotes it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from litefuse.data.datasets import collect_pairs, load_luma_u8
from litefuse.registry import load_model
from litefuse.train.objectives.dwsfusion import content_loss

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
RELEASE = SHARED / "reference" / "dwsfusion" / "release_generator.pth"


def _y(path: Path) -> torch.Tensor:
    return torch.from_numpy(load_luma_u8(path).astype(np.float32) / 255.0)[None, None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=4, help="score every N-th pair (1 = all)")
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "ivif")
    ap.add_argument("--weights", nargs="*", default=[], metavar="LABEL=MODEL:PATH", help="extra networks")
    args = ap.parse_args()
    torch.set_num_threads(1)

    nets = {"dwsfusion (shipped)": load_model("dwsfusion"), "dwsfusion-plus (shipped)": load_model("dwsfusion-plus")}
    if RELEASE.exists():
        nets["release checkpoint"] = load_model("dwsfusion", weights=RELEASE)
    for spec in args.weights:
        label, _, rest = spec.partition("=")
        model, _, path = rest.partition(":")
        nets[label] = load_model(model, weights=path)
    pairs = collect_pairs([args.data])[:: args.every]
    rows: dict[str, list[list[float]]] = {"max (F = M)": [], **{k: [] for k in nets}}
    with torch.inference_mode():
        for pair in pairs:
            ir, vi = _y(pair.a), _y(pair.b)
            outs = {"max (F = M)": torch.maximum(ir, vi), **{k: n(ir, vi) for k, n in nets.items()}}
            for label, fused in outs.items():
                total, parts = content_loss(fused, ir, vi)
                rows[label].append([float(total), float(parts["l1"]), float(parts["grad"]), float(parts["msssim"])])
    print(f"{len(pairs)} pairs (every {args.every}th of {args.data})\n")
    print("| F | L_c | L1(F, M) | L1(∇F, max ∇) | MS-SSIM(F, M) |\n|---|---|---|---|---|")
    for label, values in rows.items():
        print(f"| {label} | " + " | ".join(f"{v:.4f}" for v in np.mean(values, axis=0)) + " |")


if __name__ == "__main__":
    from litefuse.errors import LitefuseError

    try:
        main()
    except LitefuseError as exc:  # ../shared's data not found, a weights file missing, ...: one line
        sys.exit(f"error: {exc}")
