"""Start ``dwsfusion-plus`` from trained ``dwsfusion`` weights without changing what they compute.

    python tools/plus_from_dwsfusion.py runs/full-s2c/model.safetensors runs/plus-warm.safetensors \
        [--data ../shared/data/ivif] [--every 10]

The two models share every weight shape; they differ only in alphaNet's output
(``relu(a)`` in the release design, ``sigmoid(a)`` in the plus one). Trained alphaNets put out an
almost constant α = a0 > 0, so we take a0 as the mean pre-activation over the pairs in ``--data``
and match value and slope there: ``sigmoid(a') = relu(a)`` to first order with
``a' = (a - a0) / s + logit(a0)``, ``s = a0 (1 - a0)``, i.e. the fc weight divided by ``s`` and
the bias shifted. Everything else is copied. The script prints a0, the spread of ``a`` and the
largest difference between the two models' fused images over every ``--every``-th pair.
"""

from __future__ import annotations

import argparse
import sys
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

from litefuse.data.datasets import collect_pairs, load_luma_u8
from litefuse.registry import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _luma(path: Path) -> torch.Tensor:
    return torch.from_numpy(load_luma_u8(path)).float()[None, None] / 255.0


def plus_state(dws: torch.nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[dict, float, float, float]:
    """``dwsfusion-plus`` weights computing what ``dws`` computes on ``pairs``: (state, a0, min a, max a)."""
    with torch.no_grad():
        pre = torch.tensor([dws.alpha_net.logits(torch.cat([ir, vi], dim=1)).item() for ir, vi in pairs])
    a0 = pre.mean().item()
    if pre.min() <= 0 or a0 >= 1:
        raise SystemExit(f"alpha pre-activations span [{pre.min():.4g}, {pre.max():.4g}]: no single sigmoid point matches")
    s = a0 * (1 - a0)
    state = {k: v.detach().clone().contiguous() for k, v in dws.state_dict().items()}
    state["alpha_net.fc.weight"] = state["alpha_net.fc.weight"] / s
    state["alpha_net.fc.bias"] = (state["alpha_net.fc.bias"] - a0) / s + math.log(a0 / (1 - a0))
    return state, a0, pre.min().item(), pre.max().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="dwsfusion weights (safetensors or the release .pth)")
    ap.add_argument("dest", help="dwsfusion-plus weights to write (safetensors)")
    ap.add_argument("--data", default=str(SHARED / "data" / "ivif"))
    ap.add_argument("--every", type=int, default=10, help="check the outputs on every n-th pair")
    args = ap.parse_args()

    dws = load_model("dwsfusion", weights=args.source)  # the registry's checkpoint filter reads the release .pth
    pairs = collect_pairs([args.data])
    loaded = [(_luma(p.a), _luma(p.b)) for p in pairs]
    state, a0, lo, hi = plus_state(dws, loaded)

    plus = load_model("dwsfusion-plus", pretrained=False)
    plus.load_state_dict(state, strict=True)
    plus.eval()
    worst = 0.0
    with torch.no_grad():
        for ir, vi in loaded[:: args.every]:
            worst = max(worst, (plus(ir, vi) - dws(ir, vi)).abs().max().item())
    save_file(state, args.dest)
    print(f"a0 = {a0:.6f} (a spans {lo:.6f} .. {hi:.6f} over {len(pairs)} pairs); "
          f"max |fused_plus - fused_dwsfusion| = {worst:.2e} over {len(loaded[:: args.every])} pairs -> {args.dest}")


if __name__ == "__main__":
    from litefuse.errors import LitefuseError

    try:
        main()
    except LitefuseError as exc:  # ../shared's data not found, a weights file missing, ...: one line
        sys.exit(f"error: {exc}")
