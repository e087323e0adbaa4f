"""Ship trained weights into the package with model cards and the results tables of the docs.

    python tools/ship_weights.py densefuse=runs/densefuse lwc-densefuse=runs/lwc-densefuse ...

For every ``name=run_dir``: copies ``run_dir/model.safetensors`` to
``src/litefuse/weights/<name>.safetensors``. Then one :func:`litefuse.compare.compare` run scores
every shipped network beside the classical fusers (``max`` always) and, where present, the
DWSFusion release checkpoint, on the development sets in ``../shared/data``; the tables go to
``docs/results.md`` (charts under ``docs/img/``) and into each model's card
``src/litefuse/weights/<name>.md``. Fused-image grids are written to ``out/ship/`` for looking
at, never committed (they contain development images).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WEIGHTS = ROOT / "src" / "litefuse" / "weights"
RELEASE = SHARED / "reference" / "dwsfusion" / "release_generator.pth"

# The command each shipped file was trained with (run from the checkout, ../shared beside it).
RECIPES = {
    "densefuse": "litefuse train densefuse --set threads=1 --out runs/densefuse",
    "lwc-densefuse": "litefuse train lwc-densefuse --set threads=1 --out runs/lwc-densefuse",
    "aenetv2": "litefuse train aenetv2 --set threads=1 --out runs/aenetv2 --max-steps 3323",
    "dwsfusion": "litefuse train dwsfusion --set threads=1 --out runs/dwsfusion --max-steps 549",
    "dwsfusion-plus": "litefuse train dwsfusion-plus --set threads=1 --out runs/dwsfusion-plus --max-steps 354",
}
IVIF_SETS = ["MSRS", "TNO", "RoadScene", "LLVIP"]
OTHER_TASKS = {"mff": ["MFIFB"], "mef": ["MEFB"], "medical": ["MRI_CT", "MRI_PET", "MRI_SPECT"]}
CLASSICAL = ["max", "mean", "laplacian", "wavelet", "gff"]
IVIF_CLASSICAL = ["max", "laplacian", "gff"]  # the strongest three on IVIF; all five on the other tasks


def _progress(items, total):
    from rich.progress import track

    return track(items, total=total, description="fusing + scoring")


def _section(result, title: str) -> str:
    parts = [f"### {title}", ""]
    for dataset in result.datasets():
        n = len({r["image"] for r in result.rows if r["set"] == dataset})
        parts += [f"**{dataset}** ({n} pairs)", "", result.markdown(dataset), ""]
    if len(result.datasets()) > 1:
        parts += [f"**all {title} pairs** (mean over images)", "", result.markdown(), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    from litefuse.api import Fuser
    from litefuse.compare import compare, write_report
    from litefuse.models.complexity import keep_heap_resident
    from litefuse.registry import get_model_info
    from litefuse.train.card import loss_curve, model_card

    keep_heap_resident()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="name=run_dir of runs to ship (already shipped weights are re-scored)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many pairs per set")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for fusing + scoring")
    parser.add_argument("--notes", action="append", default=[], help="name=note for a card's Notes section")
    args = parser.parse_args(argv)

    runs = dict(item.split("=", 1) for item in args.runs)
    for name, run in runs.items():
        WEIGHTS.mkdir(exist_ok=True)
        shutil.copyfile(Path(run) / "model.safetensors", WEIGHTS / f"{name}.safetensors")
    shipped = [n for n in RECIPES if get_model_info(n).weights_path is not None]
    methods: list = [Fuser(n) for n in shipped]
    if RELEASE.is_file():
        release = Fuser("dwsfusion", weights=RELEASE)
        release.label = "dwsfusion (release ckpt)"
        methods.append(release)
    methods += [Fuser(n) for n in IVIF_CLASSICAL]

    ivif = compare([SHARED / "data" / "ivif" / s for s in IVIF_SETS], methods, limit=args.limit, progress=_progress,
                   preview=2, jobs=args.jobs)
    write_report(ivif, ROOT / "out" / "ship" / "ivif", title="Infrared-visible development sets")
    sections = {"ivif": _section(ivif, "Infrared–visible")}
    task_results = {}
    multi = [Fuser(n) for n in shipped if set(get_model_info(n).tasks) > {"ivif"}]
    if multi:
        for task, sets in OTHER_TASKS.items():
            res = compare([SHARED / "data" / task / s for s in sets], [*multi, *[Fuser(n) for n in CLASSICAL]],
                          limit=args.limit, progress=_progress, preview=2, jobs=args.jobs)
            write_report(res, ROOT / "out" / "ship" / task, title=task)
            task_results[task] = res
            sections[task] = _section(res, task)

    img = ROOT / "docs" / "img"
    from litefuse.metrics import METRICS
    from litefuse.viz import metric_chart

    metric_chart(ivif.means(), img / "results_ivif.png", title="Infrared-visible development sets (mean)",
                 directions={m: METRICS[m].direction for m in ivif.metrics})
    doc = [
        "# Results on the development sets",
        "",
        "Written by `python tools/ship_weights.py`: every shipped network, the DWSFusion release",
        "checkpoint and the classical fusers fused and scored in **one run** (CDDFuse convention,",
        "8 core metrics, mean over images; best per column in bold). The development sets are also",
        "the training data (minus a 10 % validation split), so these numbers compare methods; they",
        "are not held-out test scores.",
        "",
        "![ivif chart](img/results_ivif.png)",
        "",
        *sections.values(),
    ]
    (ROOT / "docs" / "results.md").write_text("\n".join(doc))

    notes: dict[str, list[str]] = {}
    for item in args.notes:
        name, note = item.split("=", 1)
        notes.setdefault(name, []).append(note)
    for name in shipped:
        run = Path(runs.get(name, ROOT / "runs" / name))
        if not (run / "summary.json").is_file():
            print(f"{name}: no run folder {run}; card not rewritten", file=sys.stderr)
            continue
        loss_curve(run, img / f"loss_{name}.png", title=f"{name} training loss")
        results = sections["ivif"] + "".join(f"\n{sections[t]}" for t in task_results if t in get_model_info(name).tasks)
        results += f"\n![loss](../../../docs/img/loss_{name}.png)\n"
        card = model_card(name, WEIGHTS / f"{name}.safetensors", run, RECIPES[name], results, notes.get(name, ()))
        (WEIGHTS / f"{name}.md").write_text(card)
        print(f"shipped {name}: {WEIGHTS / (name + '.safetensors')} + card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
