"""AE-Netv2 architecture study: train every block variant under one budget, then compare.

For each variant of :data:`~litefuse.models.aenetv2.STUDY_VARIANTS` (block type x early pooling,
widths matched for parameters) the study

1. trains it with the packaged ``aenetv2`` config (same data, seed, crops, loss and positive
   samples for all) for the same wall-clock budget: ``budget_minutes / len(variants)`` each, or
   ``per_variant_minutes``. The datasets (decoded pairs and positive samples) are built once,
   before the first variant, so data loading is charged to no variant's budget;
2. fuses a small fixed held-out set per task with its best validated weights: the first
   ``eval_pairs`` pairs (in :func:`~litefuse.data.pair_hash` order) of the validation split of
   each data root (a root = one task: ``ivif``, ``mff``, ``mef``, ``medical``), luminance only,
   resized (area average) so the longer side is at most ``eval_size``; scores the
   :data:`~litefuse.metrics.CORE_METRICS` (cddfuse convention) and averages them per task;
3. measures parameters, MACs at 640x480 (:func:`~litefuse.models.complexity.count_macs`,
   ``method="auto"``, as the benchmarks and model cards count them) and CPU latency at 640x480, batch 1 (median of ``latency_runs`` calls after two
   warm-up calls, with ``threads`` torch threads, under the process's allocator: the
   ``litefuse`` CLI keeps freed heap resident, see
   :func:`~litefuse.runtime.keep_heap_resident`).

Reference fusers (default: the classical ``max``) are scored and timed beside the variants.

**Quality score** (the Pareto plot's y axis): per task and core metric, values are min–max
normalised over all rows (variants and references; higher is better for every core metric; an
undefined value, e.g. SCD of a flat output, counts as the worst), averaged over the metrics of a
task, then over tasks. It is a *relative* score in [0, 1]:
only comparable inside one study table.

Outputs in ``out``: ``runs/<variant>/`` (each training run), ``study.csv`` (one row per method,
every per-task metric), ``study.md`` (the summary table), ``pareto.png`` (quality vs latency,
Pareto front of the variants drawn) and ``study.json``. A variant whose run folder already has
a ``summary.json`` is not trained again unless that run was interrupted (Ctrl-C, SIGTERM): the
study then stops (:class:`StudyInterrupted`) and the same command continues it, resuming that run
from its ``last.pt`` for what is left of its budget (wall time already spent is counted), so every
variant of the table trains for the same time.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..data import collect_pairs, pair_hash, split_pairs
from ..data.datasets import decode_pairs
from ..errors import InputError, LitefuseError
from ..io import Norm, check_output_dir, writable_dir
from ..registry import read_checkpoint
from .._files import atomic_write_text
from ..viz import PLOT_HINT, plotting_available
from .config import ConfigError, TrainConfig, default_config_path
from .trainer import Trainer
from .trainset import resolve_config_data

__all__ = ["StudyRow", "StudyInterrupted", "run_study", "pareto_front", "quality_scores"]

MODEL = "aenetv2"
LATENCY_SIZE = (480, 640)  # H, W


class StudyInterrupted(KeyboardInterrupt):
    """A signal stopped a variant's training; its run is resumable and the study was not finished."""

    def __init__(self, variant: str, steps: int, signum: int | None) -> None:
        super().__init__(f"{variant} interrupted after {steps} steps")
        self.variant, self.steps, self.signal = variant, steps, signum


@dataclass
class StudyRow:
    """One method of the study table."""

    name: str
    kind: str  # "variant" or "reference"
    params: int
    macs: int | None
    latency_ms: float
    metrics: dict[str, dict[str, float]]  # task -> metric -> mean
    kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    train_s: float | None = None
    best_val: float | None = None
    quality: float = math.nan
    task_quality: dict[str, float] = field(default_factory=dict)
    pareto: bool = False


# --------------------------------------------------------------------------------------------
# evaluation set


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape
    if max(h, w) <= size:
        return img
    s = size / max(h, w)
    return np.array(Image.fromarray(img).resize((max(8, round(w * s)), max(8, round(h * s))), Image.Resampling.BOX))


def eval_set(data: Sequence[str], val_fraction: float, per_task: int, size: int,
             ir_norm: Norm = "range") -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """``{task: [(name, a, b), ...]}``: the first ``per_task`` held-out pairs of each data root
    (an infrared source scaled by ``ir_norm``, as training reads it)."""
    out: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for root in data:
        task = Path(root).name
        _, val = split_pairs(collect_pairs([root]), val_fraction)
        chosen = []
        for pair in sorted(val, key=lambda p: pair_hash(p.name)):
            for _, a, b in decode_pairs([pair], 1, ir_norm)[0]:  # none for an unusable pair (sizes, colour infrared)
                chosen.append((pair.name, _resize(a, size), _resize(b, size)))
            if len(chosen) == per_task:
                break
        if chosen:
            out.setdefault(task, []).extend(chosen)
    if not out:
        raise InputError("no held-out pairs to evaluate the study on; raise val_fraction or add data")
    return out


def _u8(x: torch.Tensor) -> np.ndarray:
    return np.clip(np.rint(x[0, 0].float().cpu().numpy() * 255.0), 0, 255).astype(np.uint8)


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).float().div_(255.0)[None, None]


def score_model(model: torch.nn.Module, tasks: dict[str, list[tuple[str, np.ndarray, np.ndarray]]]) -> dict[str, dict[str, float]]:
    """Mean core metrics per task of ``model``'s fusions of the evaluation set."""
    from ..metrics import CORE_METRICS, evaluate

    result = {}
    for task, items in tasks.items():
        rows = []
        with torch.inference_mode():
            for _, a, b in items:
                with np.errstate(all="ignore"):
                    rows.append(evaluate(a, b, _u8(model(_t(a), _t(b))), CORE_METRICS))
        result[task] = {m: _finite_mean([r[m] for r in rows]) for m in CORE_METRICS}
    return result


def _finite_mean(values: Sequence[float]) -> float:
    """Mean of the defined values (a metric can be undefined, e.g. SCD of a flat output); NaN if none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def complexity(model: torch.nn.Module, runs: int) -> tuple[int, int, float]:
    """Parameters, MACs (hooks) and median latency in ms at 640x480, batch 1."""
    from ..models.complexity import count_macs, count_params, measure_latency

    x = torch.rand(1, 1, *LATENCY_SIZE, generator=torch.Generator().manual_seed(0))
    y = torch.rand(1, 1, *LATENCY_SIZE, generator=torch.Generator().manual_seed(1))
    macs = count_macs(model, (x, y), method="auto")  # hooks alone miss functional convs (DWSFusion: 0.003 G)
    stats = measure_latency(lambda: model(x, y), warmup=2, repeats=runs)
    return count_params(model), macs, 1000.0 * stats.median


# --------------------------------------------------------------------------------------------
# scores


def quality_scores(rows: Sequence[StudyRow]) -> None:
    """Fill ``quality`` and ``task_quality`` of every row (see the module docstring)."""
    tasks = list(rows[0].metrics)
    for task in tasks:
        metrics = list(rows[0].metrics[task])
        norm = np.zeros((len(rows), len(metrics)))
        for j, m in enumerate(metrics):
            v = np.array([r.metrics[task][m] for r in rows], dtype=np.float64)
            ok = np.isfinite(v)  # an undefined value counts as the worst
            if ok.any() and v[ok].max() > v[ok].min():
                lo, hi = v[ok].min(), v[ok].max()
                norm[:, j] = np.where(ok, (np.where(ok, v, lo) - lo) / (hi - lo), 0.0)
            elif ok.any() and not ok.all():
                norm[:, j] = ok  # one defined value: those rows are the best
        for r, q in zip(rows, norm.mean(axis=1)):
            r.task_quality[task] = float(q)
    for r in rows:
        r.quality = float(np.mean([r.task_quality[t] for t in tasks]))


def pareto_front(rows: Sequence[StudyRow]) -> list[StudyRow]:
    """Rows no other row beats on both latency (lower) and quality (higher)."""
    front = []
    for r in rows:
        dominated = any(
            o is not r and o.latency_ms <= r.latency_ms and o.quality >= r.quality
            and (o.latency_ms < r.latency_ms or o.quality > r.quality)
            for o in rows
        )
        if not dominated:
            front.append(r)
    return front


# --------------------------------------------------------------------------------------------
# the study


def _shared_data_objective(memo: dict):
    """An AE-Netv2 objective class whose datasets are built once and reused by every variant."""
    from .objectives.aenetv2 import AENetV2Objective

    class SharedData(AENetV2Objective):
        def build_datasets(self, train, val, config):
            key = (tuple(p.name for p in train), tuple(p.name for p in val), tuple(config.crop), config.seed,
                   config.crops_per_image, config.small_images, json.dumps(config.objective, sort_keys=True))
            if key not in memo:
                memo[key] = super().build_datasets(train, val, config)
            return memo[key]

    return SharedData


#: config fields that do not change what a finished study run learned
_RUN_ONLY = frozenset({"device", "threads", "num_workers", "progress", "tensorboard", "log_every", "checkpoint_every",
                       "checkpoint_minutes", "out_dir"})


def _check_same_recipe(run: Path, cfg: TrainConfig) -> None:
    """A finished run is reused only when it was trained with this study's settings (budget,
    steps, data, hyper-parameters); otherwise the table would mix recipes under one header.
    The run's ``config.json`` is its first invocation's (a resumed run's summary holds the budget
    that was left)."""
    try:
        saved = json.loads((run / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = json.loads((run / "summary.json").read_text(encoding="utf-8")).get("config", {})
    now = json.loads(json.dumps(cfg.to_dict()))  # as stored: tuples as lists
    changed = sorted(k for k in now if k not in _RUN_ONLY and now[k] != saved.get(k))
    if changed:
        k = changed[0]
        raise ConfigError(f"{run}: trained with a different {k!r} ({saved.get(k)!r}, now {now[k]!r}); "
                          "use another --output, or remove that run to train it again")


def _done(run: Path) -> bool:
    """Whether ``run`` is a finished study run (an interrupted one has a summary too, to resume)."""
    try:
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return summary.get("stop_reason") != "interrupted"


def _spent_minutes(run: Path) -> float:
    """Training wall time (minutes) already spent by the resumable run in ``run``."""
    try:
        ckpt = read_checkpoint(run / "last.pt")
        return float(ckpt["trainer"]["wall_time_s"]) / 60.0
    except Exception:  # unreadable: the trainer's resume says so
        return 0.0


def run_study(
    variants: Sequence[str] | None = None,
    *,
    out: str | Path = "runs/aenetv2-study",
    budget_minutes: float = 140.0,
    per_variant_minutes: float | None = None,
    max_steps: int | None = None,
    config: str | Path | None = None,
    data: Sequence[str | Path] | None = None,
    sets: Sequence[str] = (),
    eval_pairs: int = 4,
    eval_size: int = 640,
    references: Sequence[str] = ("max",),
    threads: int = 1,
    latency_runs: int = 10,
    progress: bool = False,
    console: Any = None,
) -> list[StudyRow]:
    """Train, evaluate and measure every variant; write the table and plot (module docstring)."""
    from rich.console import Console

    from ..models.aenetv2 import STUDY_VARIANTS
    from ..registry import load_model

    console = console or Console(stderr=True, highlight=False, soft_wrap=True)
    names = list(variants) if variants else list(STUDY_VARIANTS)
    unknown = [n for n in names if n not in STUDY_VARIANTS]
    if unknown:
        raise ConfigError(f"unknown study variant {unknown[0]!r}; choose from {', '.join(STUDY_VARIANTS)}")
    minutes = per_variant_minutes if per_variant_minutes is not None else budget_minutes / len(names)
    if minutes <= 0:
        raise ConfigError(f"the per-variant budget must be > 0 minutes, got {minutes}")
    out = check_output_dir(out)  # a file or an unwritable place: said now, not after the work; created once the inputs are checked
    if threads:
        torch.set_num_threads(threads)

    path = Path(config) if config is not None else default_config_path(MODEL)
    base = TrainConfig.load(path) if path is not None else TrainConfig(model=MODEL, epochs=40)
    if path is not None:  # a config file's relative data paths start from its folder (see .trainset)
        base = base.replace(data=resolve_config_data(base.data, path))
    if data:
        base = base.replace(data=[str(Path(p).resolve()) for p in data])
    if sets:
        base = base.apply_sets(sets)
    if base.val_data:  # its evaluation set is each data root's held-out pairs, per task
        raise ConfigError("the study holds out val_fraction of each data root; val_data is not used here, remove it")
    base = base.replace(data=[str(Path(p).resolve()) for p in base.data], model=MODEL, max_minutes=minutes,
                        max_steps=max_steps, threads=threads, progress=progress, tensorboard=False)
    console.print(f"study: {len(names)} variants x {minutes:.3g} min{f' / {max_steps} steps' if max_steps else ''}, "
                  f"{threads} thread(s) -> {out}", markup=False)

    refs = {ref: load_model(ref) for ref in references}  # an unknown name fails now, not after the training
    for name in names:  # before any training: reuse only runs of this recipe
        run = out / "runs" / name
        if (run / "summary.json").is_file():
            _check_same_recipe(run, base.replace(model_kwargs=dict(STUDY_VARIANTS[name]), out_dir=str(run)))

    memo: dict = {}
    objective_cls = _shared_data_objective(memo)
    if not all(_done(out / "runs" / n) for n in names):
        # decode the pairs and read/build the positive samples now, outside every variant's budget
        first = base.replace(model_kwargs=dict(STUDY_VARIANTS[names[0]]))
        warm = objective_cls()
        warm.build(load_model(MODEL, pretrained=False, **first.model_kwargs), first)
        warm.build_datasets(*split_pairs(collect_pairs(first.data), first.val_fraction), first)
    tasks = eval_set(base.data, base.val_fraction, eval_pairs, eval_size, base.norm)
    console.print("evaluation set: " + ", ".join(f"{t} {len(v)}" for t, v in tasks.items()), markup=False)
    fresh = not out.exists()
    writable_dir(out)  # (made or vanished since the check above: one line, as there)

    rows: list[StudyRow] = []
    for name in names:
        kwargs = STUDY_VARIANTS[name]
        run = out / "runs" / name
        summary_path = run / "summary.json"
        if not _done(run):
            cfg = base.replace(model_kwargs=dict(kwargs), out_dir=str(run))
            resume = (run / "last.pt").is_file()
            if resume:  # an interrupted run trains for what is left of its budget, not a second one
                cfg = cfg.replace(max_minutes=max(minutes - _spent_minutes(run), 1e-3))
            console.print(f"[{name}] training{f' (resumed, {cfg.max_minutes:.3g} min left)' if resume else ''}",
                          markup=False)
            try:
                result = Trainer(cfg, objective=objective_cls(), console=console).fit(resume=resume)
            except LitefuseError:  # refused at its start (batch, device): its run folder is gone; so is ours, if empty
                for folder in (out / "runs", out) if fresh else ():
                    try:
                        folder.rmdir()
                    except FileNotFoundError:
                        continue
                    except OSError:  # not empty: other runs are there
                        break
                raise
            if result.stop_reason == "interrupted":
                raise StudyInterrupted(name, result.steps, result.signal)
        else:
            console.print(f"[{name}] trained already ({summary_path})", markup=False)
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        model = load_model(MODEL, weights=run / "model.safetensors", **kwargs)
        params, macs, ms = complexity(model, latency_runs)
        rows.append(StudyRow(name, "variant", params, macs, ms, score_model(model, tasks), dict(kwargs),
                             summary.get("steps"), summary.get("wall_time_s"), summary.get("best_val")))
        console.print(f"[{name}] {params} params, {macs / 1e9:.3f} GMACs, {ms:.1f} ms", markup=False)
    for ref, model in refs.items():
        params, macs, ms = complexity(model, latency_runs)
        rows.append(StudyRow(ref, "reference", params, macs or None, ms, score_model(model, tasks)))

    quality_scores(rows)
    for r in pareto_front([r for r in rows if r.kind == "variant"]):
        r.pareto = True
    write_outputs(rows, out, {"per_variant_minutes": minutes, "max_steps": max_steps, "threads": threads,
                              "eval_pairs": eval_pairs, "eval_size": eval_size, "config": base.to_dict(),
                              "eval_set": {t: [n for n, _, _ in v] for t, v in tasks.items()}})
    plot = f", {out / 'pareto.png'}" if plotting_available() else f" (no pareto.png: {PLOT_HINT})"
    console.print(f"study: wrote {out / 'study.csv'}, {out / 'study.md'}{plot}", markup=False)
    return rows


# --------------------------------------------------------------------------------------------
# outputs


def _csv_rows(rows: Sequence[StudyRow]) -> tuple[list[str], list[dict[str, Any]]]:
    tasks = list(rows[0].metrics)
    fields = ["name", "kind", "block", "pool", "width", "params", "gmacs_640x480", "latency_ms", "fps", "steps",
              "train_s", "best_val", "quality", *[f"quality_{t}" for t in tasks], "pareto"]
    fields += [f"{t}.{m}" for t in tasks for m in rows[0].metrics[t]]
    table = []
    for r in rows:
        row = {"name": r.name, "kind": r.kind, "block": r.kwargs.get("block", ""), "pool": r.kwargs.get("pool", ""),
               "width": r.kwargs.get("width", ""), "params": r.params,
               "gmacs_640x480": "" if r.macs is None else f"{r.macs / 1e9:.4f}", "latency_ms": f"{r.latency_ms:.2f}",
               "fps": f"{1000.0 / r.latency_ms:.1f}", "steps": r.steps if r.steps is not None else "",
               "train_s": "" if r.train_s is None else f"{r.train_s:.0f}",
               "best_val": "" if r.best_val is None else f"{r.best_val:.5g}", "quality": f"{r.quality:.4f}",
               "pareto": "yes" if r.pareto else ""}
        row.update({f"quality_{t}": f"{r.task_quality[t]:.4f}" for t in tasks})
        row.update({f"{t}.{m}": f"{v:.5g}" for t in tasks for m, v in r.metrics[t].items()})
        table.append(row)
    return fields, table


def markdown_table(rows: Sequence[StudyRow]) -> str:
    tasks = list(rows[0].metrics)
    head = ["method", "params", "GMACs 640×480", "ms 640×480", "FPS", "steps", "quality", *tasks, "Pareto"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r.kind != "variant", -r.quality)):
        cells = [f"`{r.name}`", f"{r.params:,}", "—" if r.macs is None else f"{r.macs / 1e9:.3f}", f"{r.latency_ms:.1f}",
                 f"{1000.0 / r.latency_ms:.0f}", "—" if r.steps is None else str(r.steps), f"{r.quality:.3f}",
                 *[f"{r.task_quality[t]:.3f}" for t in tasks], "★" if r.pareto else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pareto_plot(rows: Sequence[StudyRow], path: Path) -> Path:
    """Quality vs latency scatter; pooled variants as circles, no-pool as squares, references as
    crosses; the variants' Pareto front as a line."""
    from ..viz import plain_log_ticks, pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    blocks = sorted({r.kwargs.get("block", "") for r in rows if r.kind == "variant"})
    colours = dict(zip(blocks, plt.get_cmap("tab10").colors))
    for r in rows:
        if r.kind == "variant":
            ax.scatter(r.latency_ms, r.quality, s=48, marker="o" if r.kwargs.get("pool") else "s",
                       color=colours[r.kwargs.get("block", "")], edgecolors="black" if r.pareto else "none", zorder=3)
        else:
            ax.scatter(r.latency_ms, r.quality, s=60, marker="x", color="grey", zorder=3)
        ax.annotate(r.name, (r.latency_ms, r.quality), textcoords="offset points", xytext=(4, 4), fontsize=7)
    front = sorted((r for r in rows if r.pareto), key=lambda r: r.latency_ms)
    if len(front) > 1:
        ax.plot([r.latency_ms for r in front], [r.quality for r in front], "--", color="black", lw=0.8, zorder=2)
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel("CPU latency at 640×480, batch 1 (ms, log scale)")
    ax.set_ylabel("relative quality (mean normalised core metrics)")
    ax.set_title("AE-Netv2 architecture study: ○ pool, □ no pool, × reference", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, path)


def write_outputs(rows: Sequence[StudyRow], out: Path, meta: dict[str, Any]) -> None:
    """``study.csv``, ``study.md``, ``study.json`` and ``pareto.png`` (all written atomically)."""
    fields, table = _csv_rows(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(table)
    atomic_write_text(out / "study.csv", buf.getvalue())
    intro = (f"AE-Netv2 study: {meta['per_variant_minutes']:.3g} min per variant"
             + (f" (at most {meta['max_steps']} steps)" if meta.get("max_steps") else "")
             + f", {meta['threads']} CPU thread(s); latency at 640×480, batch 1, {meta['threads']} thread(s). "
             "Quality: core metrics per task, min–max normalised over the rows, averaged (relative to this table).\n\n")
    atomic_write_text(out / "study.md", intro + markdown_table(rows))
    atomic_write_text(out / "study.json", json.dumps({**meta, "rows": [
        {k: v for k, v in r.__dict__.items()} for r in rows]}, indent=2, default=str) + "\n")
    if plotting_available():
        pareto_plot(rows, out / "pareto.png")
