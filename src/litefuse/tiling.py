"""Overlapping tiles: how :class:`~litefuse.api.Fuser` fuses a frame of more than ``tile²``
pixels with bounded memory, and what that costs (:func:`tiled_macs`)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

__all__ = ["Window", "tile_context", "tile_windows", "run_tiled", "tiled_macs"]


class Window(NamedTuple):
    """One tile: it reads rows ``ty0:ty1`` and columns ``tx0:tx1`` of the frame and keeps its
    central part, which is written to rows ``y0:y1`` and columns ``x0:x1``."""

    y0: int
    y1: int
    x0: int
    x1: int
    ty0: int
    ty1: int
    tx0: int
    tx1: int


def tile_context(model: nn.Module, overlap: int) -> tuple[int, int]:
    """``(context, align)`` of ``model``'s tiles: ``overlap`` or the context the model declares
    (``tile_context``: the classical fusers' filter reach), whichever is more, and the grid its
    tiles start on (``tile_align``: a model that down-samples 2-fold declares 2)."""
    return max(overlap, getattr(model, "tile_context", 0)), getattr(model, "tile_align", 1)


def tile_windows(h: int, w: int, tile: int, overlap: int, align: int = 1) -> list[Window]:
    """The tiles covering an ``h × w`` frame, row by row.

    Each kept pixel sees ``overlap`` pixels of context on every side (or the frame's border), so a
    model whose output depends on inputs at most that far away reproduces the single pass.
    ``overlap`` and the step are rounded to multiples of ``align``, so every tile starts on a
    multiple of it (the sampling grid of a model that down-samples ``align``-fold lines up
    with the whole frame's). Tiles are ``tile`` pixels wide, or ``3 × overlap`` when that is more.
    """
    overlap = -(-overlap // align) * align
    step = max(tile - 2 * overlap, overlap, align) // align * align
    windows = []
    for y0 in range(0, h, step):
        for x0 in range(0, w, step):
            y1, x1 = min(y0 + step, h), min(x0 + step, w)
            windows.append(Window(y0, y1, x0, x1, max(0, y0 - overlap), min(h, y1 + overlap),
                                  max(0, x0 - overlap), min(w, x1 + overlap)))
    return windows


def run_tiled(model: nn.Module, a: torch.Tensor, b: torch.Tensor, tile: int, overlap: int, align: int = 1) -> torch.Tensor:
    """``model(a, b)`` over the overlapping tiles of :func:`tile_windows`, keeping each tile's central region."""
    out = torch.empty_like(a)
    for t in tile_windows(*a.shape[-2:], tile, overlap, align):
        piece = model(a[..., t.ty0 : t.ty1, t.tx0 : t.tx1], b[..., t.ty0 : t.ty1, t.tx0 : t.tx1])
        out[..., t.y0 : t.y1, t.x0 : t.x1] = piece[..., t.y0 - t.ty0 : t.y1 - t.ty0, t.x0 - t.tx0 : t.x1 - t.tx0]
    return out


def tiled_macs(model: nn.Module, h: int, w: int, tile: int, overlap: int, align: int = 1) -> int:
    """MACs of fusing one ``h × w`` frame as :func:`run_tiled` does: every tile counted at its own
    size, context included (one pass when the frame has at most ``tile²`` pixels)."""
    from .models.complexity import count_macs

    if h * w <= tile * tile:
        shapes = [(h, w)]
    else:
        shapes = [(t.ty1 - t.ty0, t.tx1 - t.tx0) for t in tile_windows(h, w, tile, overlap, align)]
    per_shape = {s: count_macs(model, (torch.rand(1, 1, *s), torch.rand(1, 1, *s)), method="auto") for s in set(shapes)}
    return sum(per_shape[s] for s in shapes)
