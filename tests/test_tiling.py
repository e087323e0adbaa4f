"""Overlapping tiles (litefuse.tiling): they cover a frame once, a local model fused tile by
tile equals its single pass, and their MACs are what the tiles compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from litefuse.api import Fuser
from litefuse.models.complexity import count_macs
from litefuse.tiling import run_tiled, tile_context, tile_windows, tiled_macs


class Conv5(torch.nn.Module):
    """A local model: each output pixel reads 2 pixels on every side."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 1, 5, padding=2)

    def forward(self, a, b):
        return self.conv(torch.cat([a, b], 1))


@pytest.mark.parametrize("h, w, tile, overlap, align", [(203, 157, 64, 8, 1), (600, 801, 256, 32, 4), (50, 40, 64, 8, 1)])
def test_windows_keep_each_pixel_once_with_its_context(h, w, tile, overlap, align):
    kept = np.zeros((h, w), int)
    for t in tile_windows(h, w, tile, overlap, align):
        kept[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert t.y0 % align == 0 and t.x0 % align == 0  # the frame's down-sampling grid
        assert t.ty0 == max(0, t.y0 - overlap) and t.ty1 == min(h, t.y1 + overlap)  # context, or the border
        assert t.tx0 == max(0, t.x0 - overlap) and t.tx1 == min(w, t.x1 + overlap)
        assert t.ty1 - t.ty0 <= max(tile, 3 * overlap) and t.tx1 - t.tx0 <= max(tile, 3 * overlap)
    assert (kept == 1).all()


def test_tiled_inference_equals_single_pass_for_local_models():
    """Tiles with more overlap than the receptive field reproduce the single pass exactly."""
    model = Conv5()
    a, b = torch.rand(1, 1, 203, 157), torch.rand(1, 1, 203, 157)
    with torch.no_grad():
        assert torch.allclose(run_tiled(model, a, b, tile=64, overlap=8), model(a, b), atol=1e-6)


def test_tiled_macs_count_every_tile_with_its_context():
    model = Conv5()
    per_pixel = 2 * 25  # a 5×5 conv over 2 channels (plus nothing else): MACs per output pixel
    assert count_macs(model, (torch.rand(1, 1, 30, 20),) * 2) == 30 * 20 * per_pixel
    assert tiled_macs(model, 60, 50, tile=64, overlap=8) == 60 * 50 * per_pixel  # at most tile²: one pass
    windows = tile_windows(203, 157, 64, 8)
    read = sum((t.ty1 - t.ty0) * (t.tx1 - t.tx0) for t in windows)
    assert read > 203 * 157
    assert tiled_macs(model, 203, 157, tile=64, overlap=8) == read * per_pixel


def test_bench_counts_the_macs_of_the_tiles_fuse_runs():
    """lwc-densefuse tiles above 600² pixels: at 640×608 its four tiles, with their context, cost
    more than one pass over the frame, and that is the count beside the tiled time."""
    from litefuse.bench import benchmark

    fuser = Fuser("lwc-densefuse")
    assert fuser.tile ** 2 < 608 * 640
    one_pass = count_macs(fuser.model, (torch.rand(1, 1, 608, 640),) * 2, method="auto")
    tiled = tiled_macs(fuser.model, 608, 640, fuser.tile, *tile_context(fuser.model, fuser.overlap))
    assert 1.1 * one_pass < tiled < 1.5 * one_pass
    report = benchmark(["lwc-densefuse"], size=(608, 640), rounds=1, warmup=0)
    assert next(r for r in report.rows if r.name == "lwc-densefuse").macs == tiled


def test_overlap_is_rounded_up_to_the_alignment_never_down():
    """overlap 6 on a 4-pixel grid is 8: every kept pixel keeps at least the 6 pixels asked for."""
    for t in tile_windows(100, 90, 40, 6, align=4):
        assert t.y0 - t.ty0 == min(8, t.y0) and t.x0 - t.tx0 == min(8, t.x0)
        assert t.ty1 - t.y1 == min(8, 100 - t.y1) and t.tx1 - t.x1 == min(8, 90 - t.x1)


def test_tiles_grow_to_three_overlaps_when_the_tile_is_smaller():
    """tile 20 with overlap 8: the kept step is 8 (tiles 3 × 8 wide), not the 4 that 20 − 2·8 leaves."""
    windows = tile_windows(100, 100, 20, 8)
    assert len(windows) == 13 * 13
    assert {t.y1 - t.y0 for t in windows} == {8, 4}


def test_a_frame_of_exactly_tile_squared_pixels_is_one_pass():
    model = Conv5()
    assert tiled_macs(model, 64, 64, tile=64, overlap=8) == 64 * 64 * 2 * 25


def test_tile_context_is_the_larger_of_overlap_and_the_models_reach():
    from litefuse.registry import load_model

    assert tile_context(Conv5(), 8) == (8, 1)
    assert tile_context(load_model("gff"), 8) == (2 * 45 + 6, 1)
    assert tile_context(load_model("gff"), 200) == (200, 1)
    assert tile_context(load_model("laplacian"), 0) == (2 ** 7, 16)
