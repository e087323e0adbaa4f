"""Model cards: what a shipped (or user-trained) weights file is, how it was made, how it scores.

A card is written from a finished training run (``summary.json``, ``config.json``, ``log.csv``
of :class:`~litefuse.train.trainer.Trainer`) plus a :class:`~litefuse.compare.Comparison` that
scored the weights beside the classical ``max`` fuser (and any other reference) in one run.
Params and MACs at 640×480 are measured on the model itself, never copied from a config.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

if TYPE_CHECKING:
    from ..compare import Comparison
    from ..data.pairs import Pair

__all__ = ["RunRecord", "read_run", "model_complexity", "loss_curve", "model_card", "run_card", "validation_pairs"]


@dataclass(frozen=True)
class RunRecord:
    """The facts of one finished training run that a card reports."""

    summary: dict
    config: dict
    val_rows: list[dict]

    @property
    def wall_minutes(self) -> float:
        return float(self.summary.get("wall_time_s", 0.0)) / 60.0


def read_run(run_dir: str | Path) -> RunRecord:
    """Load ``summary.json``, ``config.json`` and the validation rows of ``log.csv``."""
    run = Path(run_dir)
    summary, config = _json_object(run / "summary.json"), _json_object(run / "config.json")
    rows: list[dict] = []
    log = run / "log.csv"
    if log.is_file():
        with log.open(newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("kind") == "val"]
    return RunRecord(summary, config, rows)


def _json_object(path: Path) -> dict:
    """A run file's JSON object; :class:`~litefuse.errors.InputError` naming it when it is missing or damaged."""
    from ..errors import InputError

    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("not found in the run folder", path) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable ({exc.__class__.__name__}: {exc})", path) from None
    if not isinstance(value, dict):
        raise InputError("not a JSON object", path)
    return value


def model_complexity(
    name: str, size: tuple[int, int] = (480, 640), weights: str | Path | None = None, **kwargs
) -> tuple[int, int]:
    """(trainable params, MACs of one fusion of an ``H×W`` pair) of a registered network, built
    as ``weights`` runs (the constructor arguments its header records, ``kwargs`` over them)."""
    from ..models.complexity import count_macs, count_params
    from ..registry import load_model

    model = load_model(name, weights=weights, pretrained=weights is not None, **kwargs)
    x = torch.zeros(1, 1, *size)
    with torch.inference_mode():
        macs = count_macs(model, (x, x), method="auto")
    return count_params(model), macs


def loss_curve(run_dir: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Plot the train/val loss of a run (``log.csv``) to a PNG."""
    from ..viz import plain_log_ticks, pyplot, save_figure

    plt = pyplot()

    train, val = [], []
    with (Path(run_dir) / "log.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            if r.get("loss"):
                (val if r["kind"] == "val" else train).append((int(r["step"]), float(r["loss"])))
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    if train:
        ax.plot(*zip(*train), lw=1, alpha=0.7, label="train")
    if val:
        ax.plot(*zip(*val), "o-", ms=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or Path(run_dir).name)
    return save_figure(fig, Path(out_png))


def _weights_from(summary: dict) -> str:
    """Which weights the run kept: the best validated (its loss and step), or the last ones of a
    run that was never validated (no validation pairs held out: ``best_val`` is null)."""
    best = summary.get("best_val")
    if best is None:
        return f"{summary.get('weights_from')} (step {summary.get('steps')}; no validation loss: the run held out no validation pairs)"
    return f"{summary.get('weights_from')} validation loss {best:.5g} at step {summary.get('best_step')}"


def _init_text(init: str) -> str:
    """How the run started: from scratch, the shipped weights, or a named file (fine-tuning)."""
    if not init:
        return "random (trained from scratch)"
    if init == "pretrained":
        return "the shipped weights (fine-tuned)"
    path = Path(init)  # with its folder: every run's best weights are called model.safetensors
    return f"`{path.parent.name}/{path.name}` (fine-tuned)"


#: development sets whose licence a user of weights trained on them should know
LICENCES = {"LLVIP": "LLVIP's pairs, under a non-commercial licence (check it before any commercial use of these weights)"}


def _licence_note(data: list[str]) -> str:
    """``"; includes ..."`` for each set of :data:`LICENCES` among (or under) the data folders."""
    found = [name for name in LICENCES for d in data if Path(d).name == name or (Path(d) / name).is_dir()]
    return "".join(f"; includes {LICENCES[name]}" for name in dict.fromkeys(found))


def _validation_text(cfg: dict) -> str:
    """Which pairs validated the run: folders of their own (``val_data``) or a held-out share."""
    if cfg.get("val_data"):
        return "the pairs of " + ", ".join(f"`{Path(d).parent.name}/{Path(d).name}`" for d in cfg["val_data"])
    return f"{cfg.get('val_fraction', 0):.0%} of pairs held out by a stable hash of `<dataset>/<stem>`"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_row(weights: Path) -> str:
    """The card's ``weights`` row: file name, size and the start of its sha256."""
    return f"| weights | `{weights.name}` ({weights.stat().st_size / 1024:.1f} KiB, sha256 `{_sha256(weights)[:16]}…`) |"


def model_card(
    name: str,
    weights: str | Path,
    run_dir: str | Path,
    command: str,
    results_md: str,
    notes: Sequence[str] = (),
    model_kwargs: dict | None = None,
    where: str = "From a checkout with `../shared` beside it:",
    results_title: str = "Results on the development sets",
) -> str:
    """Markdown model card for ``weights`` of registered model ``name`` trained in ``run_dir``.

    ``results_md``: evaluation tables (e.g. :meth:`Comparison.markdown` per dataset) that put the
    weights beside the classical ``max`` fuser. ``notes``: honest remarks (deviations, targets missed).
    """
    from ..registry import get_model_info

    info = get_model_info(name)
    run = read_run(run_dir)
    cfg, s = run.config, run.summary
    weights = Path(weights)
    params, macs = model_complexity(name, weights=weights, **(model_kwargs or cfg.get("model_kwargs") or {}))
    if params != s.get("params", params):
        raise ValueError(f"{name}: run trained {s['params']} params but the registered model has {params}")
    data = ", ".join(f"`{Path(d).parent.name}/{Path(d).name}`" for d in cfg.get("data", []))
    stages = cfg.get("stages") or []
    objective = cfg.get("objective") or {}
    last_val = run.val_rows[-1] if run.val_rows else {}
    val_cols = {k: v for k, v in last_val.items() if k not in {"kind", "step", "epoch", "stage", "lr", "time_s"} and v}
    lines = [
        f"# {name} — model card",
        "",
        f"{info.description}. Paper: {info.paper or '—'}.",
        "",
        "| | |",
        "|---|---|",
        weights_row(weights),
        f"| parameters | {params:,} |",
        f"| MACs, one 640×480 fusion | {macs / 1e9:.3f} G |",
        f"| tasks | {', '.join(info.tasks)} |",
        f"| training data | {data} ({s.get('train_crops', '?')} training / {s.get('val_crops', '?')} validation crops per epoch; "
        f"validation = {_validation_text(cfg)})"
        f"{_licence_note(cfg.get('data', []))} |",
        *([f"| infrared scale | `{cfg['ir_norm']}`: fuse with `--ir-norm {cfg['ir_norm']}` |"]
          if cfg.get("ir_norm", "range") != "range" else []),
        f"| crop, batch | {cfg.get('crop')}, {cfg.get('batch_size')} |",
        f"| optimiser | {cfg.get('optimizer')} lr {cfg.get('lr')}, plateau ×{cfg.get('plateau_factor')} "
        f"(patience {cfg.get('plateau_patience')}), early stop patience {cfg.get('early_stopping_patience')} |",
        f"| objective | `{json.dumps(objective)}`" + (f"; stages `{json.dumps(stages)}`" if stages else "") + " |",
        f"| initial weights | {_init_text(cfg.get('init', ''))} |",
        *([f"| frozen parameters | {', '.join(f'`{x}`' for x in cfg['freeze'])} |"] if cfg.get("freeze") else []),
        f"| seed | {s.get('seed')} |",
        f"| steps, epochs | {s.get('steps')} steps, {s.get('epochs_completed')} epochs; stopped by `{s.get('stop_reason')}` |",
        f"| weights taken from | {_weights_from(s)} |",
        f"| training time | {run.wall_minutes:.1f} min on `{s.get('device')}`, torch {s.get('torch')}, {cfg.get('threads') or 'default'} thread(s) |",
        "",
        "## Reproduce",
        "",
        where,
        "",
        "```bash",
        command,
        "```",
        "",
    ]
    if val_cols:
        lines += ["Last validation row: " + ", ".join(f"{k} {float(v):.4g}" for k, v in val_cols.items()) + ".", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += [f"## {results_title}", "", results_md.strip(), ""]
    return "\n".join(lines)


def validation_pairs(config: dict) -> list[tuple[str, "Pair"]]:
    """A run's validation pairs as ``(dataset, pair)``: the pairs of its ``val_data`` folders, else
    the share of its ``data`` the run held out: the trainer's own split (:func:`~.trainset.run_split`)."""
    from ..data import collect_pairs
    from .config import TrainConfig
    from .trainset import run_split

    cfg = TrainConfig.from_dict(config, source="config.json")
    _, val = run_split([] if cfg.val_data else collect_pairs(cfg.data), cfg, [])
    return [(pair.name.split("/")[0], pair) for pair in val]


def _first_per_set(work: list[tuple[str, "Pair"]], limit: int) -> list[tuple[str, "Pair"]]:
    """The first ``limit`` items of each set, in order."""
    counts: dict[str, int] = {}
    kept = []
    for dataset, pair in work:
        counts[dataset] = counts.get(dataset, 0) + 1
        if counts[dataset] <= limit:
            kept.append((dataset, pair))
    return kept


def run_card(
    run_dir: str | Path,
    folders: Sequence[str | Path] = (),
    limit: int | None = None,
    jobs: int = 1,
    progress=None,
) -> tuple[str, "Comparison"]:
    """A model card for the weights a run exported (``model.safetensors``), scored beside the
    shipped weights of its network, the classical ``max`` fuser and ``dwsfusion`` (infrared–visible
    pairs; A/B pairs: ``laplacian``, the multi-focus / multi-exposure default) on the run's
    validation pairs (:func:`validation_pairs`), or on the pairs of ``folders`` (at most ``limit``
    per set); per set, then pooled. Returns the card and the scores."""
    from ..api import Fuser
    from ..compare import compare, compare_pairs, expand_folders
    from ..data.pairs import pair_task
    from ..errors import InputError
    from ..registry import get_model_info, weights_model
    from ..tasks import default_model, folder_task
    from .config import TrainConfig

    run = Path(run_dir)
    weights = run / "model.safetensors"
    name = weights_model(weights)
    record = read_run(run)
    cfg = record.config
    norm = TrainConfig.from_dict(cfg, source=str(run / "config.json")).norm
    ours = Fuser(name, weights=weights)
    ours.label = f"{run.name} (this run)"
    methods = [ours]
    if get_model_info(name).weights_path is not None:
        methods.append(Fuser(name))  # the shipped weights: what a fine-tuned run must beat
        methods[-1].label = f"{name} (shipped)"
    work = None if folders else validation_pairs(cfg)
    if work is not None and not work:
        raise InputError("the run held out no validation pair; score it on folders of pairs (-i DIR)", run)
    if work is None:
        ivif = all(folder_task(f) == "ivif" for f in expand_folders(folders))
    else:
        ivif = all(pair_task(p) == "ivif" for _, p in work)
    # dwsfusion fuses infrared-visible pairs only; on A/B pairs the bar beside max is the
    # classical default for named multi-focus / multi-exposure pairs (laplacian)
    methods += ["max", "dwsfusion"] if ivif else ["max", *sorted({default_model(t) for t in ("mff", "mef")} - {name})]
    if folders:
        result = compare(folders, methods, limit=limit, preview=0, progress=progress, jobs=jobs, ir_norm=norm)
    else:
        if limit is not None:  # the first ``limit`` of each set
            work = _first_per_set(work, limit)
        result = compare_pairs(work, methods, preview=0, progress=progress, jobs=jobs, ir_norm=norm)
    sections = []
    for dataset in result.datasets():
        n = len({r["image"] for r in result.rows if r["set"] == dataset})
        sections += [f"### {dataset} ({n} pair{'s' if n != 1 else ''})", "", result.markdown(dataset), ""]
    if len(result.datasets()) > 1:
        sections += [f"### all sets ({len({(r['set'], r['image']) for r in result.rows})} pairs, pooled)", "",
                     result.markdown(), ""]
    scored = "the pairs of " + ", ".join(map(str, folders)) if folders else "the run's validation pairs"
    results_md = (f"Scored on {scored}; CDDFuse convention, mean per set, best per column in bold; "
                  "`max` is the classical bar a network must beat.\n\n" + "\n".join(sections))
    command = f"litefuse train -c {run / 'config.json'} -o {run.parent / (run.name + '-again')}"
    return model_card(name, weights, run, command, results_md, where="With the data folders its config.json names:",
                      results_title="Results"), result
