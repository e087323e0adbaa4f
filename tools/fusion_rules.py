"""Test-time fusion rules of the DenseFuse family on the development IVIF pairs (one run).

    python tools/fusion_rules.py [--limit N] [--jobs 2] > out/fusion-rules.md

Fuses every pair with ``densefuse`` and ``lwc-densefuse`` under each rule (``l1-norm``,
``addition``, ``mean``) and ``max`` beside them, and prints the markdown tables (all pairs,
then per dataset). docs/models.md quotes the result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from litefuse.api import Fuser
from litefuse.compare import compare

SETS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ivif"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="at most this many pairs per dataset")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    if not SETS.is_dir():
        sys.exit(f"error: {SETS}: development data not found (../shared beside the checkout)")
    fusers = []
    for model in ("densefuse", "lwc-densefuse"):
        for rule in ("l1-norm", "addition", "mean"):
            fuser = Fuser(model, fusion_rule=rule)
            fuser.label = f"{model}/{rule}"
            fusers.append(fuser)
    fusers.append(Fuser("max"))
    result = compare(sorted(p for p in SETS.iterdir() if p.is_dir()), fusers, limit=args.limit, preview=0, jobs=args.jobs)
    print(result.markdown())
    for dataset in result.datasets():
        print(f"\n{dataset}\n")
        print(result.markdown(dataset))


if __name__ == "__main__":
    main()
