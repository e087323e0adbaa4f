"""Pictures people would rather look at than read: side-by-side grids and metric charts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["side_by_side", "image_grid", "metric_chart", "save_figure"]

_CAPTION = 18


def _to_rgb_u8(img: np.ndarray) -> np.ndarray:
    img = np.clip(np.asarray(img, np.float32), 0.0, 1.0)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return (img * 255.0 + 0.5).astype(np.uint8)


def _fit(img: np.ndarray, height: int) -> Image.Image:
    pil = Image.fromarray(_to_rgb_u8(img))
    if pil.height != height:
        pil = pil.resize((max(1, round(pil.width * height / pil.height)), height), Image.Resampling.LANCZOS)
    return pil


def image_grid(
    rows: list[list[np.ndarray]],
    col_labels: list[str] | None = None,
    row_labels: list[str] | None = None,
    height: int = 240,
    gap: int = 6,
) -> np.ndarray:
    """Lay out float images (grey or RGB, any sizes) as a captioned grid; uint8 RGB.

    Each image is scaled to ``height`` keeping its aspect; columns take their widest cell.
    """
    cells = [[_fit(img, height) for img in row] for row in rows]
    ncols = max(len(r) for r in cells)
    widths = [max((r[c].width for r in cells if c < len(r)), default=0) for c in range(ncols)]
    label_w = 90 if row_labels else 0
    top = _CAPTION if col_labels else 0
    canvas = Image.new(
        "RGB", (label_w + sum(widths) + gap * (ncols + 1), top + len(cells) * (height + gap) + gap), (255, 255, 255)
    )
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    x = label_w + gap
    for c, w in enumerate(widths):
        if col_labels and c < len(col_labels):
            draw.text((x + 2, 3), col_labels[c], fill=(0, 0, 0), font=font)
        x += w + gap
    for r, row in enumerate(cells):
        y = top + gap + r * (height + gap)
        if row_labels:
            draw.text((4, y + height // 2 - 6), row_labels[r], fill=(0, 0, 0), font=font)
        x = label_w + gap
        for c, cell in enumerate(row):
            canvas.paste(cell, (x, y))
            x += widths[c] + gap
    return np.asarray(canvas)


def side_by_side(images: list[np.ndarray], labels: list[str]) -> np.ndarray:
    """One captioned row of images (e.g. infrared | visible | fused); uint8 RGB."""
    height = max(np.asarray(i).shape[0] for i in images)
    return image_grid([images], col_labels=labels, height=height)


def metric_chart(
    scores: dict[str, dict[str, float]],
    path: str | Path,
    title: str = "",
    directions: dict[str, str] | None = None,
) -> Path:
    """Bar chart, one panel per metric, one bar per method (``scores[method][metric]``).

    Needs matplotlib (``pip install litefuse[plot]``); written atomically as PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(scores)
    metrics = [m for m in next(iter(scores.values()))]
    ncols = min(4, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    colours = plt.get_cmap("tab10").colors
    for ax, metric in zip(axes.flat, metrics):
        values = [scores[m].get(metric, np.nan) for m in methods]
        ax.bar(range(len(methods)), values, color=[colours[i % 10] for i in range(len(methods))])
        arrow = (directions or {}).get(metric, "")
        ax.set_title(f"{metric} {arrow}".strip(), fontsize=10)
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Render a matplotlib figure and write it atomically as PNG (closes the figure)."""
    import matplotlib.pyplot as plt

    from .io import save_image

    fig.tight_layout()
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return save_image(path, rgba)
