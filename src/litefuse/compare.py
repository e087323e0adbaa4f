"""Compare fusion methods on the same pairs: metrics table, chart and side-by-side grid.

This is how every quality claim in the docs and model cards is produced: all methods,
the classical ``max`` baseline included, fused and scored in one run, on the uint8 image that
would be saved (colour results converted with the CDDFuse grey rule).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ._files import atomic_write_text, new_folders
from .api import DEFAULT_TILE, Fuser, _first_source, check_ir_norm, warn_ir_norm
from .data.pairs import Pair, PairProblem, find_pairs, pair_dirs, pair_folders, pair_task, unpaired_detail
from .errors import InputError, LitefuseError, OptionError, OutputError
from .evaluation import markdown_table, parallel_map, summarise, write_scores_csv
from .io import Norm, check_norm, check_output_dir, read_image, same_path, save_image
from .tasks import folder_task, outside_task
from .viz import thumbnail

__all__ = ["Comparison", "FusedFolder", "REPORT_FILES", "check_report_dir", "check_scoring", "compare", "compare_pairs", "write_report"]

#: The files :func:`write_report` writes into its folder.
REPORT_FILES = ("scores.csv", "summary.md", "chart.png", "grid.png")


@dataclass
class Comparison:
    """Per-image scores ``rows`` and the fused images kept for the grid."""

    methods: list[str]
    metrics: list[str]
    convention: str
    rows: list[dict] = field(default_factory=list)  # {"set", "image", "method", metric: value}
    previews: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # image → {label: grid-sized array}
    skipped: list[str] = field(default_factory=list)
    protocol: list[str] = field(default_factory=list)  # how the images were made where it is not the default
    notes: list[str] = field(default_factory=list)  # what a reader should know (a method outside its task), as warned

    def means(self, dataset: str | None = None) -> dict[str, dict[str, float]]:
        """Mean of every metric per method (over one ``dataset``, or all)."""
        out = {}
        for method in self.methods:
            rows = [r for r in self.rows if r["method"] == method and (dataset is None or r["set"] == dataset)]
            out[method] = {m: mean for m, (mean, _) in summarise(rows, self.metrics).items()}
        return out

    def means_by_set(self) -> dict[str, dict[str, dict[str, float]]]:
        """:meth:`means` of each set, keyed ``"<set> (<n> pairs)"`` (a chart's group headings)."""
        return {self.heading(dataset): self.means(dataset) for dataset in self.datasets()}

    def datasets(self) -> list[str]:
        """The sets scored, in the order they were given."""
        return list(dict.fromkeys(r["set"] for r in self.rows))

    def heading(self, dataset: str) -> str:
        """``"<set> (<n> pairs)"``: a set as the report, the console and the chart head it."""
        n = len({r["image"] for r in self.rows if r["set"] == dataset})
        return f"{dataset} ({n} pair{'s' * (n != 1)})"

    def protocol_line(self) -> str:
        """How the numbers were made, as the report and the console head them."""
        return f"Convention: `{self.convention}`; mean over images" + "".join(f"; {p}" for p in self.protocol)

    def markdown(self, dataset: str | None = None) -> str:
        """The means as a Markdown table, best per metric in bold."""
        return markdown_table(self.means(dataset), self.metrics)


def _u8_grey(image: np.ndarray) -> np.ndarray:
    from .metrics import grey_from_rgb, to_uint8

    u8 = to_uint8(image)
    return grey_from_rgb(u8) if u8.ndim == 3 else u8


def compare(
    folders: str | Path | Sequence[str | Path],
    methods: str | Fuser | FusedFolder | Sequence[str | Fuser | FusedFolder],
    metrics: Sequence[str] | None = None,
    convention: str = "cddfuse",
    limit: int | None = None,
    preview: int = 4,
    progress: Callable[[Iterable, int], Iterable] | None = None,
    jobs: int = 1,
    ir_norm: Norm = "range",
) -> Comparison:
    """Fuse every pair of every folder with every method and score the results.

    ``folders``: pair folders, or parents of them (each pair folder a dataset of its own), or one.
    ``methods``: one or several: names, ``[label=]name[@weights]`` specs (:class:`~litefuse.api.MethodSpec`) or
    loaded :class:`~litefuse.api.Fuser` objects, and :class:`FusedFolder` objects: another method's stored
    results, scored beside them. ``metrics`` (default: the core metrics) are scored
    under ``convention`` (:data:`~litefuse.metrics.CONVENTIONS`). ``limit``: at most that many
    pairs per folder. ``progress``: ``(iterable, total) -> iterable`` wrapped around the pairs.

    ``jobs > 1`` spreads the pairs over that many worker processes (one torch thread each);
    rows come back in the same order as a serial run. ``preview`` pairs, taken from every
    folder in turn, keep their images for the report's grid. ``ir_norm``: how the first
    source (infrared) is scaled, for fusing and for scoring alike (``fuse --ir-norm``).
    """
    if limit is not None and limit < 1:
        raise OptionError(f"limit must be at least 1 pair per folder (got {limit})")
    if jobs < 1:
        raise OptionError(f"jobs must be at least 1 (got {jobs})")
    folders = expand_folders([folders] if isinstance(folders, (str, Path)) else folders)  # one folder as a string: not its letters
    work: list[tuple[str, Pair]] = []
    unpaired: list[PairProblem] = []
    for folder, label in zip(folders, set_labels(folders)):
        check_ir_norm(ir_norm, folder_task(folder))
        pairs, problems = find_pairs(folder)
        unpaired += problems
        work += [(label, p) for p in pairs[:limit]]
    if not work:
        raise InputError(f"no image pairs found in {', '.join(map(str, folders))}{unpaired_detail(unpaired)}")
    result = compare_pairs(work, methods, metrics, convention, preview, progress, jobs, ir_norm)
    result.skipped[:0] = [str(p) for p in unpaired]
    return result


def expand_folders(given: Sequence[str | Path]) -> list[Path]:
    """The pair folders of ``given``: a pair folder itself, a parent each pair folder below it
    (``data/ivif``: MSRS, TNO, ...), each once; :class:`InputError` for a folder with neither."""
    folders, seen = [], set()
    for root in map(Path, given):
        found = pair_folders(root)
        if not found:
            pair_dirs(root)  # says what is missing: the folder, or its ir/vi (A/B) sub-folders
        for folder in found:
            if folder.resolve() not in seen:
                seen.add(folder.resolve())
                folders.append(folder)
    return folders


def _previewed(work: Sequence[tuple[str, Pair]], preview: int) -> list[bool]:
    """Which pairs keep their images for the grid: ``preview`` of them, the first of every set,
    then the second of every set, ... (the first ``preview`` pairs overall could all be one set's)."""
    rank: dict[str, int] = {}
    order = []
    for n, (dataset, _) in enumerate(work):
        order.append((rank.get(dataset, 0), n))
        rank[dataset] = rank.get(dataset, 0) + 1
    kept = {n for _, n in sorted(order)[:preview]}
    return [n in kept for n in range(len(work))]


@dataclass
class FusedFolder:
    """Another method's results, scored beside litefuse's methods: fused images named by the pairs'
    stems (``name``: a template such as ``"{stem}_fused"``), in ``folder`` itself or, for several
    sets, in ``folder/<set>/`` (``results/MSRS/00001D.png``) or the one folder below whose path
    ends with the set's (``results/day/MSRS/``, as ``fuse -i PARENT`` writes). Any image format :func:`read_image`
    reads; a pair without its image, or with one of another size, is left out of every method's
    means and said, as a pair a method cannot fuse."""

    label: str
    folder: Path
    name: str = "{stem}"

    def __post_init__(self) -> None:
        from .data.pairs import _template

        self.folder = Path(self.folder)
        _template(self.name)  # a template without one {stem}: an OptionError now
        if not self.folder.is_dir():
            raise InputError("not a directory" if self.folder.exists() else "directory not found", self.folder)
        self._index: dict[Path, dict[str, list[Path]]] = {}
        self._where: dict[str, list[Path]] = {}

    def path(self, dataset: str, pair: Pair) -> Path:
        """The fused image of ``pair`` of set ``dataset``; :class:`InputError` when there is none."""
        from .data.pairs import _images_by_stem

        stem = self.name.replace("{stem}", pair.name)  # as data.pairs._template reads it: other braces are text
        for base in self._bases(dataset):
            if base not in self._index:  # unreadable: an InputError, said for the pair as a file that cannot be read
                self._index[base] = _images_by_stem(base) if base.is_dir() else {}
            found = self._index[base].get(stem, [])
            if len(found) > 1:
                raise InputError(f"several fused images named {stem} ({', '.join(p.name for p in found)})", base)
            if found:
                return found[0]
        raise InputError(f"no fused image {stem}.* for this pair (here or in {Path(dataset).name}/)", self.folder)

    def _bases(self, dataset: str) -> list[Path]:
        """Where set ``dataset``'s results may be: ``folder/<set>/``, ``folder/<set's name>/``, the one
        folder below ``folder`` whose path ends as the set's (``fuse -i PARENT`` writes ``out/<path
        below PARENT>/``: ``day/MSRS`` for the set labelled ``MSRS``), then ``folder`` itself."""
        if dataset not in self._where:
            parts = Path(dataset).parts
            below = [p for depth in range(1, 4) for p in self.folder.glob("/".join(["*"] * depth))
                     if p.is_dir() and p.relative_to(self.folder).parts[-len(parts):] == parts]
            self._where[dataset] = list(dict.fromkeys((self.folder / dataset, self.folder / Path(dataset).name,
                                                       *(below if len(below) == 1 else []), self.folder)))
        return self._where[dataset]

    def fuse_images(self, a: np.ndarray, b: np.ndarray, dataset: str, pair: Pair) -> np.ndarray:
        """The stored result of ``pair``, checked to be the sources' size."""
        path = self.path(dataset, pair)
        fused = read_image(path)
        if fused.shape[:2] != a.shape[:2]:
            (h, w), (hf, wf) = a.shape[:2], fused.shape[:2]
            raise InputError(f"size mismatch: {wf}×{hf} here but {w}×{h} for the sources of {pair.name}", path)
        return fused


_SOURCE_LABELS = {True: ("infrared", "visible"), False: ("A", "B")}  # grid columns: IVIF pairs / A/B pairs
GRID_HEIGHT = 200  # pixel rows of each image in the report's grid (and of the previews kept for it)


def set_labels(folders: Sequence[Path]) -> list[str]:
    """A distinct label per folder: its name, with as many parent folders as it takes to tell
    apart folders of the same name (``a/MSRS`` and ``b/MSRS``)."""
    depth = 1
    while True:
        labels = ["/".join(Path(f).parts[-depth:]) for f in folders]
        if len(set(labels)) == len(labels) or depth >= max(len(Path(f).parts) for f in folders):
            return labels
        depth += 1


def compare_pairs(
    work: Sequence[tuple[str, Pair]],
    methods: str | Fuser | FusedFolder | Sequence[str | Fuser | FusedFolder],
    metrics: Sequence[str] | None = None,
    convention: str = "cddfuse",
    preview: int = 4,
    progress: Callable[[Iterable, int], Iterable] | None = None,
    jobs: int = 1,
    ir_norm: Norm = "range",
) -> Comparison:
    """:func:`compare` over given ``(dataset, pair)`` items, e.g. the validation split of
    :func:`~litefuse.data.split_pairs` (pairs a network did not train on)."""
    names = check_scoring(metrics, convention)  # an error now, not a problem per pair after fusing them all
    check_norm(ir_norm)
    methods = [methods] if isinstance(methods, (str, Fuser, FusedFolder)) else list(methods)  # one method: not its letters
    if not methods:
        raise OptionError("no methods to compare; give at least one (e.g. methods=['aenetv2-ivif', 'max'])")
    fusers = [m if isinstance(m, (Fuser, FusedFolder)) else Fuser.from_spec(m) for m in methods]
    labels = [f.label for f in fusers]
    if len(set(labels)) != len(labels):
        twice = next(label for label in labels if labels.count(label) > 1)
        if any(isinstance(f, FusedFolder) and f.label == twice for f in fusers):  # a folder named as a method or another folder
            raise OptionError(f"method {twice!r} given twice (a --fused folder is labelled by its name); "
                              "label it: --fused LABEL=DIR")
        raise OptionError(f"method {twice!r} given twice; give each method once (label=name@weights to compare weights)")
    result = Comparison(labels, names, convention)
    stored = [f.label for f in fusers if isinstance(f, FusedFolder)]
    if stored:  # results made elsewhere: scored as they are, by whatever protocol made them
        result.protocol.append(f"{', '.join(stored)}: results read from folders, scored as they are")
    fusers_here = [f for f in fusers if isinstance(f, Fuser)]
    # which weights a row's numbers come from, where not the shipped ones ("release" = dwsfusion@FILE)
    own = [f"{f.label} = {f.name}@{f.weights}" for f in fusers_here if f.weights is not None]
    if own:
        result.protocol.append("weights: " + ", ".join(own))
    stretched = [f.label for f in fusers_here if f.stretch]  # protocol choices that change every number: said in the report
    if stretched:
        result.protocol.append("fused images min-max stretched before scoring (`--stretch`)"
                               + ("" if len(stretched) == len(fusers_here) else f": {', '.join(stretched)}"))
    nets = [f for f in fusers_here if f.info.kind == "network"]  # as --stretch: another precision or tile changes their numbers
    for option, value in (("--precision", lambda f: None if f.precision == "fp32" else f.precision),
                          ("--tile", lambda f: None if f.tile == getattr(f.model, "tile_size", DEFAULT_TILE) else f.tile)):
        given = {f.label: value(f) for f in nets if value(f) is not None}
        if len(given) == len(nets) and len(set(given.values())) == 1:
            result.protocol.append(f"networks run with `{option} {next(iter(given.values()))}`")
        elif given:
            result.protocol.append(f"`{option}`: " + ", ".join(f"{k} {v}" for k, v in given.items()))
    if ir_norm != "range":
        result.protocol.append(f"infrared read with `--ir-norm {ir_norm:g}`" if isinstance(ir_norm, float)
                               else f"infrared read with `--ir-norm {ir_norm}`")
    for task in sorted({pair_task(pair) for _, pair in work}):  # as fuse and eval --input say it
        for fuser in nets:
            note = outside_task(fuser.label, fuser.info, task)
            if note:
                warnings.warn(note, UserWarning, stacklevel=2)
                result.notes.append(note)
    for fuser in fusers_here:
        warn_ir_norm(fuser, ir_norm)
    tasks = [(dataset, pair, keep) for (dataset, pair), keep in zip(work, _previewed(work, preview))]
    context = dict(fusers=fusers, labels=labels, metrics=result.metrics, convention=convention, ir_norm=ir_norm)
    for out in parallel_map(_score_pair, tasks, jobs, context, progress):
        _merge(result, out)
    return result


def check_scoring(metrics: Sequence[str] | None = None, convention: str = "cddfuse") -> list[str]:
    """The canonical names of ``metrics`` (default: the core metrics), checked with
    ``convention`` before any model is loaded or pair fused: an unknown one is an error."""
    from .metrics import CORE_METRICS, get_convention, resolve_metrics

    get_convention(convention)
    return list(resolve_metrics(metrics or CORE_METRICS))


def _score_pair(task: tuple[str, Pair, bool], ctx: dict) -> tuple[str, Pair, list[dict], dict | None, list[str]]:
    """Fuse and score one pair with every method: (set, pair, rows, previews or None, problems)."""
    from .metrics import evaluate, load_grey_u8

    dataset, pair, keep = task
    rows: list[dict] = []
    problems: list[str] = []
    try:
        a_img, b_img = read_image(pair.a, norm=ctx["ir_norm"]), read_image(pair.b)
        # what fuse and eval refuse is not scored here either: a colour "infrared" source
        task = pair_task(pair)
        a_img = _first_source(a_img, pair.a, task)
        if a_img.shape[:2] != b_img.shape[:2]:  # named as fuse names it (compare resamples nothing)
            (ha, wa), (hb, wb) = a_img.shape[:2], b_img.shape[:2]
            raise InputError(f"size mismatch: {wb}×{hb} here but {wa}×{ha} for its partner {pair.a.name}", pair.b)
        a_u8, b_u8 = load_grey_u8(pair.a, norm=ctx["ir_norm"]), load_grey_u8(pair.b)
    except LitefuseError as exc:
        return dataset, pair, rows, None, [str(exc)]
    # grid-sized previews: full frames of every method, kept to the end, held GBs at 12 MP
    previews = {k: thumbnail(v, GRID_HEIGHT) for k, v in zip(_SOURCE_LABELS[task == "ivif"], (a_img, b_img))} if keep else None
    unscored = 0  # methods fused (every failing one is named, the grid shows the rest) but not scored
    for fuser, label in zip(ctx["fusers"], ctx["labels"]):
        try:
            fused = (fuser.fuse_images(a_img, b_img, dataset, pair) if isinstance(fuser, FusedFolder)
                     else fuser.fuse_images(a_img, b_img))
        except LitefuseError as exc:  # named by the method (a stored folder's error may start with it already)
            problems.append(str(exc) if str(exc).startswith(f"{label}: ") else f"{label}: {exc}")
            continue
        if previews is not None:
            previews[label] = thumbnail(fused, GRID_HEIGHT)
        if problems:  # the pair is out of every method's means already: nothing to score
            unscored += 1
            continue
        try:
            scores = evaluate(a_u8, b_u8, _u8_grey(fused), metrics=ctx["metrics"], convention=ctx["convention"])
        except LitefuseError as exc:  # e.g. a pair smaller than a metric's window: skipped, said
            problems.append(f"{dataset}/{pair.name}: {exc}")  # named with its set, as the other skip lines
            break
        rows.append({"set": dataset, "image": pair.name, "method": label, **scores})
    if problems and (rows or unscored):  # every method is averaged over the same pairs, or the means do not compare
        problems.append(f"{dataset}/{pair.name}: left out of every method's means, as not every method could be scored on it")
        rows = []
    return dataset, pair, rows, previews, problems


def _merge(result: Comparison, out: tuple) -> None:
    dataset, pair, rows, previews, problems = out
    result.rows += rows
    result.skipped += problems
    if previews is not None:
        result.previews[f"{dataset}/{pair.name}"] = previews


def check_report_dir(out_dir: str | Path, overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> Path:
    """Check, before any work, that a report can go into ``out_dir``: a folder that exists or
    can be created, is none of the source folders of the pair folders of ``inputs`` (a report
    there would break their pairing), and holds no earlier report unless ``overwrite``."""
    out_dir = check_output_dir(out_dir)
    for folder in expand_folders(inputs):
        if any(same_path(out_dir, d) for d in pair_dirs(folder)):
            raise OutputError(f"{out_dir}: is a source folder of {folder}; write the report elsewhere")
    found = [name for name in REPORT_FILES if (out_dir / name).exists()]
    if found and not overwrite:
        raise OutputError(f"{out_dir}: holds an earlier report ({', '.join(found)}); pass --overwrite "
                          "(overwrite=True) to replace it, or choose another folder")
    return out_dir


def write_report(result: Comparison, out_dir: str | Path, title: str = "", overwrite: bool = False) -> dict[str, Path]:
    """Write ``scores.csv``, ``summary.md``, ``chart.png`` (where matplotlib is installed) and
    ``grid.png`` into ``out_dir``; the returned paths name what was written. A folder holding
    an earlier report is refused unless ``overwrite`` (then a stale ``chart.png`` or
    ``grid.png`` this report does not write is removed, so the folder shows one report).

    The files are written into a hidden folder inside ``out_dir`` first and moved into place
    once all are written: a failure (a full disk) leaves the earlier report, or none, never
    a mix of the two."""
    import shutil
    import tempfile

    out_dir = check_report_dir(out_dir, overwrite)
    with new_folders(out_dir):
        stage = Path(tempfile.mkdtemp(prefix=".report-", dir=out_dir))
        try:
            staged = _write_report_files(result, stage, title)
            check_report_dir(out_dir, overwrite)  # another run's report may have arrived meanwhile
            paths = {key: out_dir / path.name for key, path in staged.items()}
            for key, path in staged.items():
                os.replace(path, paths[key])  # renames in one folder: no space needed, no half file
        except OSError as exc:
            raise OutputError(f"{out_dir}: cannot write the report ({exc.strerror or exc})") from None
        except OutputError as exc:  # a file's write failed: named where it was to go, not in the stage
            error = OutputError(str(exc).replace(str(stage), str(out_dir)))
            error.errno = getattr(exc, "errno", None)
            raise error from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    for name in REPORT_FILES:
        if name not in {path.name for path in paths.values()}:
            (out_dir / name).unlink(missing_ok=True)  # from an earlier report
    return paths


def _write_report_files(result: Comparison, out_dir: Path, title: str) -> dict[str, Path]:
    """The report's files in ``out_dir``, by kind (csv, markdown, chart, grid)."""
    from .metrics import METRICS
    from .metrics.conventions import scale_notes
    from .viz import image_grid, metric_chart, metric_chart_by_set, plotting_available

    paths = {"csv": out_dir / "scores.csv", "markdown": out_dir / "summary.md"}
    # every row carries how it was made (the same names mean other numbers under another convention,
    # --stretch, --ir-norm or other weights), so rows merged from several reports stay apart
    made = "; ".join(result.protocol)
    write_scores_csv(paths["csv"], ({**r, "convention": result.convention, "protocol": made} for r in result.rows),
                     ["set", "image", "method", *result.metrics, "convention", "protocol"])
    parts = [f"# {title or 'Comparison'}", "", f"{result.protocol_line()}; "
             "↑ higher is better, ↓ lower is better (definitions: litefuse docs/metrics.md).", ""]
    parts += [*(f"Note: {note}" for note in result.notes), ""] if result.notes else []
    for dataset in result.datasets():
        parts += [f"## {result.heading(dataset)}", "", result.markdown(dataset), ""]
    if result.skipped:  # a report over fewer pairs than given says so itself, not only the console
        parts += [f"## Skipped ({len(result.skipped)}; not in the means)", "", *(f"- {p}" for p in result.skipped), ""]
    atomic_write_text(paths["markdown"], "\n".join(parts))
    directions = {m: METRICS[m].arrow for m in result.metrics}
    if plotting_available():
        sets, notes = result.datasets(), scale_notes(result.convention)
        if len(sets) == 1:
            n = len({r["image"] for r in result.rows})
            label = f"{title or sets[0]} — convention {result.convention}, mean over {n} pair{'s' * (n != 1)}"
            paths["chart"] = metric_chart(result.means(), out_dir / "chart.png", title=label, directions=directions, notes=notes)
        else:  # one group per set, as summary.md: a mean pooled over sets hides a loss on a small one
            label = f"{title or ', '.join(sets)} — convention {result.convention}, mean over each set's pairs"
            paths["chart"] = metric_chart_by_set(result.means_by_set(), out_dir / "chart.png", title=label,
                                                 directions=directions, notes=notes)
    if result.previews:
        kinds = {tuple(c for c in cells if c not in result.methods) for cells in result.previews.values()}
        # one set of names, or both (A/B sets beside infrared-visible ones: "source A" read wrong on an IVIF row)
        sources = list(kinds.pop()) if len(kinds) == 1 else ["infrared / A", "visible / B"]
        cols = [*sources, *result.methods]
        rows = [list(cells.values())[:2] + [cells.get(m) for m in result.methods]  # a method that failed: a blank cell
                for cells in result.previews.values()]
        grid = image_grid(rows, col_labels=cols, row_labels=list(result.previews), height=GRID_HEIGHT)
        paths["grid"] = save_image(out_dir / "grid.png", grid)
    return paths
