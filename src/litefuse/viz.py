"""Pictures people would rather look at than read: side-by-side grids and metric charts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import LitefuseError

__all__ = ["side_by_side", "image_grid", "thumbnail", "metric_chart", "metric_chart_by_set", "speed_quality_chart", "speed_chart", "save_figure", "plotting_available",
           "pyplot", "PLOT_HINT", "plain_log_ticks"]

_CAPTION = 18
#: widest cell of a grid, in multiples of its row height: a 16:1 strip would otherwise make a
#: grid of a few methods 16,000 pixels wide (it is scaled down into the box, kept centred)
MAX_ASPECT = 4

#: what a command says when it leaves a chart out
PLOT_HINT = "charts need matplotlib: pip install 'litefuse[plot]'"


def plotting_available() -> bool:
    """Whether matplotlib (the ``[plot]`` extra) imports: charts are optional, grids (Pillow) are not."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend; without matplotlib a :class:`LitefuseError`
    naming the ``[plot]`` extra (a bare ``No module named 'matplotlib'`` named none)."""
    try:
        import matplotlib
    except ImportError:
        raise LitefuseError(PLOT_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _to_rgb_u8(img: np.ndarray) -> np.ndarray:
    img = np.clip(np.asarray(img, np.float32), 0.0, 1.0)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return (img * 255.0 + 0.5).astype(np.uint8)


def thumbnail(img: np.ndarray, height: int) -> np.ndarray:
    """``img`` scaled down into ``height`` rows and ``MAX_ASPECT`` × ``height`` columns (as
    :func:`image_grid` draws it), float32 in [0, 1]; as it is when it fits: a report keeps
    grid-sized previews, not full frames."""
    img = np.asarray(img)
    if img.shape[0] <= height and img.shape[1] <= MAX_ASPECT * height:
        return img
    small = np.asarray(_fit(img, height), np.float32) / 255.0  # RGB
    return small if img.ndim == 3 else small[..., 0]


def _fit(img: np.ndarray, height: int) -> Image.Image:
    """``img`` scaled to ``height`` rows keeping its aspect, or narrower and less tall where that
    would be wider than ``MAX_ASPECT`` × ``height``."""
    pil = Image.fromarray(_to_rgb_u8(img))
    scale = min(height / pil.height, MAX_ASPECT * height / pil.width)
    size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
    if size != pil.size:  # enlarged: pixel blocks, as they are (a smoothed 30×30 result hid its own pixels)
        pil = pil.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST)
    return pil


def _wrap(text: str, width: int, font, max_lines: int = 3) -> list[str]:
    """``text`` in lines of at most ``width`` pixels, broken after ``-_/.@= `` where it can, else
    anywhere; beyond ``max_lines`` the last line ends in an ellipsis."""
    lines: list[str] = []
    rest = text
    while rest:
        if font.getlength(rest) <= width:
            lines.append(rest)
            break
        n = max(1, max((k for k in range(1, len(rest) + 1) if font.getlength(rest[:k]) <= width), default=1))
        breaks = [k + 1 for k in range(n) if rest[k] in "-_/.@= "]
        cut = breaks[-1] if breaks and breaks[-1] > n // 2 else n
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        lines = lines[: max_lines - 1] + [last + "…"]
    return lines


def _font(height: int):
    """Captions in proportion to the cells (about 1/18 of their height, 10 to 24 px): Pillow's
    bundled FreeType font where it has one, else its 10-px bitmap font."""
    try:
        return ImageFont.load_default(size=min(24, max(10, round(height / 18))))
    except (TypeError, ImportError, OSError):  # Pillow < 10.1, or built without FreeType
        return ImageFont.load_default()


def image_grid(
    rows: list[list[np.ndarray | None]],
    col_labels: list[str] | None = None,
    row_labels: list[str] | None = None,
    height: int = 240,
    gap: int = 6,
) -> np.ndarray:
    """Lay out float images (grey or RGB, any sizes) as a captioned grid; uint8 RGB.

    Each image is scaled to ``height`` keeping its aspect (one wider than ``MAX_ASPECT`` ×
    ``height`` to that width, centred in its row); columns take their widest cell; a
    ``None`` cell is left blank (the columns keep their labels). Captions longer than their
    column wrap onto more lines; the row-label margin takes the widest row label (up to 240 px,
    longer ones wrap).
    """
    cells = [[None if img is None else _fit(img, height) for img in row] for row in rows]
    ncols = max(len(r) for r in cells)
    font = _font(height)
    line_h = int(font.size) + 4 if hasattr(font, "size") else _CAPTION - 4
    widths = [max((r[c].width for r in cells if c < len(r) and r[c] is not None), default=0) for c in range(ncols)]
    widths = [max(w or min(height, 160), 64) for w in widths]  # room for a caption over a sliver, or no image
    label_w = min(240, max(font.getlength(t) for t in row_labels) + 10) if row_labels else 0
    row_lines = [_wrap(t, int(label_w) - 8, font, max_lines=max(1, height // line_h)) for t in row_labels or []]
    col_lines = [_wrap(t, w + gap - 4, font) for t, w in zip(col_labels or [], widths)]
    top = (max(len(lines) for lines in col_lines) * line_h + 4) if col_labels else 0
    label_w = int(label_w)
    canvas = Image.new(
        "RGB", (label_w + sum(widths) + gap * (ncols + 1), top + len(cells) * (height + gap) + gap), (255, 255, 255)
    )
    draw = ImageDraw.Draw(canvas)
    x = label_w + gap
    for c, w in enumerate(widths):
        for k, line in enumerate(col_lines[c] if c < len(col_lines) else []):
            draw.text((x + 2, 3 + k * line_h), line, fill=(0, 0, 0), font=font)
        x += w + gap
    for r, row in enumerate(cells):
        y = top + gap + r * (height + gap)
        if r < len(row_lines):
            lines = row_lines[r]
            for k, line in enumerate(lines):
                draw.text((4, y + height // 2 - len(lines) * line_h // 2 + k * line_h), line, fill=(0, 0, 0), font=font)
        x = label_w + gap
        for c, cell in enumerate(row):
            if cell is not None:
                canvas.paste(cell, (x, y + (height - cell.height) // 2))
            x += widths[c] + gap
    return np.asarray(canvas)


def side_by_side(images: list[np.ndarray], labels: list[str]) -> np.ndarray:
    """One captioned row of images (e.g. infrared | visible | fused); uint8 RGB."""
    height = max(np.asarray(i).shape[0] for i in images)
    return image_grid([images], col_labels=labels, height=height)


class _Chars:
    """A "font" one unit wide per character, for :func:`_wrap` on chart labels."""

    getlength = staticmethod(len)


def metric_chart(scores: dict[str, dict[str, float]], path: str | Path, **options) -> Path:
    """Bar chart, one panel per metric, one horizontal bar per method (``scores[method][metric]``).

    Methods run top to bottom in the order given, named once per row of panels (long names
    wrap); each bar carries its value; the best bar of a metric with a direction (``↑``/``↓``
    in ``directions``) has a thick black outline and a bold value, and the ``reference``
    method's bars are hatched, so neither depends on telling colours apart. ``notes``: a short
    line under a metric's panel title (its scale: :func:`litefuse.metrics.conventions.scale_notes`).
    ``options``: ``title``, ``directions``, ``reference``, ``notes``, as
    :func:`metric_chart_by_set` (this is its one-group case). Needs matplotlib
    (``pip install litefuse[plot]``); written atomically as PNG.
    """
    return metric_chart_by_set({"": scores}, path, **options)


def metric_chart_by_set(
    per_set: dict[str, dict[str, dict[str, float]]],
    path: str | Path,
    title: str = "",
    directions: dict[str, str] | None = None,
    reference: str = "max",
    notes: dict[str, str] | None = None,
) -> Path:
    """:func:`metric_chart` with one group of bars per set (``per_set[set][method][metric]``);
    ``reference``: the method whose bars are hatched, ``notes``: a line under a metric's title.

    Each group is headed by its set's name (in bold, where the methods are named); a method
    keeps its colour in every group, and the best bar is outlined within each group: a mean
    pooled over sets lets a large set hide a loss on a small one, and mixes tasks whose scores
    mean different things (an empty set name draws no heading: :func:`metric_chart`).
    """
    plt = pyplot()

    groups = list(per_set.items())
    methods = list(dict.fromkeys(m for _, scores in groups for m in scores))
    metrics = list(dict.fromkeys(k for _, scores in groups for values in scores.values() for k in values))
    directions = directions or {}
    headed = any(name for name, _ in groups)
    rows: list[tuple[float, str, bool]] = []  # (y, label, whether a set's heading)
    group_ys: list[list[float]] = []  # each group's bar positions
    y = 0.0
    for name, scores in groups:
        if headed:
            rows.append((y, name, True))
            y += 1
        group_ys.append([y + i for i in range(len(scores))])
        rows += [(y + i, m, False) for i, m in enumerate(scores)]
        y += len(scores) + 0.5  # a half-row gap between sets
    labels = [label if heading else "\n".join(_wrap(label, 28, _Chars())) for _, label, heading in rows]
    most = max(n.count("\n") + 1 for n in labels)
    bar_rows = sum(len(scores) for _, scores in groups)
    # rows of panels deepen with the methods (and their wrapped names), so bars keep their room
    height = max(1.5, 0.9 + bar_rows * (0.12 + 0.13 * most) + (len(groups) * 0.3 if headed else 0.0))
    label_w = 0.065 * max(len(line) for n in labels for line in n.split("\n")) + 0.3
    ncols = min(4, len(metrics))
    nrows = -(-len(metrics) // ncols)
    # the two-line title (title, key) needs ~0.6 in above the panels and ~4.5 in across
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.8, label_w + 2.7 * ncols), height * nrows + 0.6),
                             squeeze=False, sharey=True)
    colours = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20").colors  # one colour per method up to 20
    colour = {m: colours[i % len(colours)] for i, m in enumerate(methods)}
    for ax, metric in zip(axes.flat, metrics):
        for (_, scores), ys in zip(groups, group_ys):
            values = np.array([scores[m].get(metric, np.nan) for m in scores], float)
            _bars(ax, ys, list(scores), values, directions.get(metric, ""), colour, reference)
        arrow = directions.get(metric, "")
        note = (notes or {}).get(metric)
        ax.set_title(f"{metric} {arrow}".strip() + (f"\n{note}" if note else ""), fontsize=10 if not note else 8.5)
        ax.margins(x=0.22)  # room for the value labels
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(True, axis="x", alpha=0.25)
        ax.set_axisbelow(True)
    axes.flat[0].set_yticks([r[0] for r in rows], labels)
    axes.flat[0].set_ylim(rows[-1][0] + 0.6, rows[0][0] - 0.6)  # the first row on top (shared by every panel)
    for ax in axes.flat:
        ax.tick_params(axis="y", labelleft=ax.get_subplotspec().is_first_col(), length=0, labelsize=8)
        for tick, (_, _, heading) in zip(ax.get_yticklabels(), rows):
            tick.set_fontweight("bold" if heading else "normal")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    arrows = set(directions.values())
    key = " · ".join(text for arrow, text in (("↑", "↑ higher is better"), ("↓", "↓ lower is better")) if arrow in arrows)
    if arrows & {"↑", "↓"}:
        key += " · best" + (" per set" if headed and len(groups) > 1 else "") + ": black outline"
    if reference in methods:
        key += f"{' · ' if key else ''}hatched: {reference} (reference)"
    if title or key:
        # placed in inches from the top: at its default (98 % of the height) a tall chart's
        # two-line title ran into the first row of panel titles
        fig_h = fig.get_figheight()
        fig.suptitle("\n".join(t for t in (title, key) if t), fontsize=10, y=1 - 0.08 / fig_h, va="top")
        fig.set_layout_engine("tight", rect=(0, 0, 1, 1 - 0.12 / fig_h))
    return save_figure(fig, path)


def _bars(ax, ys: list[float], methods: list[str], values: np.ndarray, arrow: str, colour: dict, reference: str) -> None:
    """One group of horizontal bars with their values; the best (by ``arrow``) outlined, the
    ``reference`` method hatched."""
    finite = np.isfinite(values)
    best = None
    if arrow in ("↑", "↓") and finite.any():
        best = float(np.nanmax(values) if arrow == "↑" else np.nanmin(values))
    bars = ax.barh(ys, np.where(finite, values, 0.0), color=[colour[m] for m in methods])
    for y, method, bar, v in zip(ys, methods, bars, values):
        top = best is not None and np.isfinite(v) and v == best
        if method == reference:
            bar.set_hatch("///")
            bar.set_edgecolor("white")
        if top:
            bar.set_edgecolor("black")
            bar.set_linewidth(2.0)
        # 4 significant digits: with 3 the outlined best and the runner-up often read alike (6.6 and 6.6)
        label = f"{v:.4g}" if np.isfinite(v) else str(float(v))  # nan, inf, -inf: as the tables print them
        ax.annotate(label, (bar.get_width(), y), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7, fontweight="bold" if top else "normal")


_KIND_MARKERS = {"network": "o", "classical": "s", "reference": "^"}
REAL_TIME_MS = 1000.0 / 30.0


def speed_quality_chart(
    points: list[dict],
    path: str | Path,
    metrics: tuple[str, ...] | list[str] = ("MI", "VIF"),
    title: str = "",
    xlabel: str = "CPU ms per frame at 640×480",
) -> Path:
    """Speed against quality, one panel per metric: where each method sits on the trade-off.

    ``points``: ``{"label", "ms", "kind", <metric>: value, ...}`` dicts, ``kind`` one of
    ``network`` (circle), ``classical`` (square) or ``reference`` (triangle). x is ``ms`` on a
    log scale (methods span orders of magnitude), y the metric (its direction from
    :data:`litefuse.metrics.METRICS` in the axis label; MI, VIF: higher is better); a dashed line
    marks 33 ms, real time at 30 FPS. Needs matplotlib (``pip install litefuse[plot]``); written
    atomically as PNG.
    """
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    from .metrics import METRICS

    if not points:
        raise ValueError("speed_quality_chart: no points")
    for p in points:
        if p["kind"] not in _KIND_MARKERS:
            raise ValueError(f"{p['label']}: kind {p['kind']!r} is not one of {', '.join(_KIND_MARKERS)}")
        if not p["ms"] > 0:
            raise ValueError(f"{p['label']}: ms must be positive on a log axis, got {p['ms']}")
    colours = dict(zip(_KIND_MARKERS, plt.get_cmap("tab10").colors))
    ms = [float(p["ms"]) for p in points]
    lo, hi = min(ms + [REAL_TIME_MS]), max(ms + [REAL_TIME_MS])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 4.0), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        shown = [(float(p["ms"]), float(p[metric]), p) for p in points
                 if p.get(metric) is not None and np.isfinite(p[metric])]
        span = (max(y for _, y, _ in shown) - min(y for _, y, _ in shown)) or 1.0
        for x, y, p in shown:
            ax.scatter(x, y, marker=_KIND_MARKERS[p["kind"]], s=44, color=colours[p["kind"]],
                       edgecolors="black", linewidths=0.5, zorder=3)
            # a label would run into a point just to its right at about the same height: put it below
            crowded = any(x < x2 < 3 * x and abs(y2 - y) < 0.04 * span for x2, y2, _ in shown)
            ax.annotate(p["label"], (x, y), xytext=(5, -10 if crowded else 3), textcoords="offset points", fontsize=7)
        ax.axvline(REAL_TIME_MS, color="grey", linestyle="--", linewidth=1, zorder=1)
        ax.text(REAL_TIME_MS, 0.02, " real time (30 FPS)", transform=ax.get_xaxis_transform(),
                rotation=90, va="bottom", ha="right", fontsize=7, color="grey")
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.6, hi * 2.5)  # room on the right for the labels
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 1, 10, 100 rather than 10^k
        ax.margins(y=0.12)  # and above the top point's label
        ax.set_xlabel(xlabel, fontsize=9)
        name = f"{metric} {METRICS[metric].arrow if metric in METRICS else ''}".strip()
        ax.set_ylabel(name, fontsize=9)
        ax.set_title(f"{name} against speed", fontsize=10)
        ax.tick_params(labelsize=8)
        ax.grid(True, which="both", alpha=0.25)
    handles = _kind_handles(points, colours)
    handles.append(Line2D([], [], linestyle="--", color="grey", label="real time (30 FPS)"))
    axes.flat[0].legend(handles=handles, fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def _kind_handles(points: list[dict], colours: dict) -> list:
    """Legend entries, one marker per kind of method among ``points`` (network, classical, ...)."""
    from matplotlib.lines import Line2D

    return [Line2D([], [], linestyle="", marker=_KIND_MARKERS[k], color=colours[k], markeredgecolor="black", label=k)
            for k in _KIND_MARKERS if any(p["kind"] == k for p in points)]


def speed_chart(points: list[dict], path: str | Path, title: str = "", xlabel: str = "ms per call (log scale)",
                real_time_ms: float = REAL_TIME_MS) -> Path:
    """Latency as a dot plot, fastest on top: ``points`` are ``{"label", "ms", "kind"}`` dicts
    (``kind`` ``network`` or ``classical`` picks the colour and marker); a dashed line marks
    ``real_time_ms`` (33 ms, real time at 30 FPS; a call of N pairs keeps up at N × 33 ms).
    Dots, not bars: on the log axis these latencies need (0.08 to 150 ms), a bar's length
    would start at an arbitrary left edge and misstate the ratios. Needs matplotlib
    (``pip install litefuse[plot]``); written atomically as PNG."""
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter

    if not points or any(not p["ms"] > 0 for p in points):
        raise ValueError("speed_chart: needs points with positive ms")
    points = sorted(points, key=lambda p: p["ms"], reverse=True)
    colours = dict(zip(_KIND_MARKERS, plt.get_cmap("tab10").colors))
    fig, ax = plt.subplots(figsize=(6.4, 0.42 * len(points) + 1.2))
    ms = [p["ms"] for p in points]
    ax.grid(True, axis="y", linestyle=":", alpha=0.5)  # a guide line across each row, not a bar
    for i, p in enumerate(points):
        ax.scatter(p["ms"], i, marker=_KIND_MARKERS.get(p["kind"], "o"), s=46, color=colours.get(p["kind"], "grey"),
                   edgecolors="black", linewidths=0.5, zorder=3)
        text = f"{p['ms']:.3g}" if p["ms"] < 1000 else f"{p['ms']:,.0f}"  # 3000 ms, not 3e+03
        ax.annotate(text, (p["ms"], i), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(points)), [p["label"] for p in points], fontsize=9)
    ax.axvline(real_time_ms, color="grey", linestyle="--", linewidth=1)
    ax.set_ylim(-0.6, len(points) - 0.1)  # room above the top row for the line's label
    ax.text(real_time_ms, len(points) - 0.15, " 30 FPS", va="top", fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_xlim(min(ms + [real_time_ms]) / 2, max(ms + [real_time_ms]) * 3)  # room for the value labels
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(xlabel, fontsize=9)
    ax.grid(True, axis="x", which="both", alpha=0.25)
    # outside the axes: inside, "lower right" covered the slowest point's value label
    ax.legend(handles=_kind_handles(points, colours), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def plain_log_ticks(axis) -> None:
    """Label a log ``axis`` (``ax.xaxis`` / ``ax.yaxis``) 0.6, 1, 20 rather than
    :math:`6\\times10^{-1}`, :math:`10^0`, :math:`2\\times10^1`; minor ticks too, as a log axis
    spanning less than a decade has one major tick or none."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(LogLocator(subs=(2, 5)))  # 0.2, 0.5, 2, 5, 20, 50: few enough to read
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def save_figure(fig, path: str | Path) -> Path:
    """Render a matplotlib figure and write it atomically as PNG (closes the figure)."""
    import matplotlib.pyplot as plt

    from .io import save_image

    if fig.get_layout_engine() is None:  # a chart that set its own (margins) keeps it
        fig.tight_layout()
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return save_image(path, rgba)
