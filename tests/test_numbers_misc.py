"""Numbers behind the colour conversion, fuse_files' infrared scale, the validation split and
the time budget, checked against values computed here."""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import litefuse
from litefuse.colour import fuse_chroma, rgb_to_ycbcr


def test_rgb_to_ycbcr_fills_every_row_of_a_tall_image():
    """Images taller than a conversion block (257 and 513 rows) give the per-pixel BT.601
    values on every row, the last one included."""
    for rows in (257, 513):
        rgb = np.random.default_rng(rows).random((rows, 5, 3)).astype(np.float32)
        y, cb, cr = rgb_to_ycbcr(rgb)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        ey = 0.299 * r + 0.587 * g + 0.114 * b
        np.testing.assert_allclose(y, ey, atol=1e-6)
        np.testing.assert_allclose(cb, 0.564 * (b - ey) + 0.5, atol=1e-6)
        np.testing.assert_allclose(cr, 0.713 * (r - ey) + 0.5, atol=1e-6)


def test_two_neutral_chroma_planes_blend_to_neutral():
    """Where both sources are grey (chroma exactly 0.5) the blend is 0.5, numpy and torch alike,
    so a grey region of two colour sources stays grey."""
    import torch

    half = np.full((4, 6), 0.5, np.float32)
    col = half.copy()
    col[0, 0] = 0.8
    cb, cr = fuse_chroma(half, half, col, half)
    assert cb[0, 0] == pytest.approx(0.8) and np.all(cb.ravel()[1:] == 0.5) and np.all(cr == 0.5)
    tcb, tcr = fuse_chroma(*(torch.from_numpy(x) for x in (half, half, col, half)))
    np.testing.assert_array_equal(tcb.numpy(), cb)
    np.testing.assert_array_equal(tcr.numpy(), cr)


def test_fuse_files_scales_the_infrared_by_ir_norm_without_a_note_for_shipped_weights(tmp_path):
    """``fuse_files(..., ir_norm=4095)``: a 16-bit infrared is read as value / 4095 (12-bit data),
    the visible as its own range; a Fuser without a weights file says nothing about ir_norm."""
    from PIL import Image

    from litefuse.api import fuse_files

    ir = np.full((16, 16), 2000, np.uint16)
    ir[:8] = 4095
    vi = np.full((16, 16), 100, np.uint8)
    Image.fromarray(ir).save(tmp_path / "ir.png")
    Image.fromarray(vi).save(tmp_path / "vi.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fuse_files(tmp_path / "ir.png", tmp_path / "vi.png", tmp_path / "f.png",
                         litefuse.Fuser("max", threads=1), ir_norm=4095, bits=16)
    fused = np.asarray(Image.open(out)).astype(np.float64) / 65535
    np.testing.assert_allclose(fused[:8], 1.0, atol=1e-4)
    np.testing.assert_allclose(fused[8:], 2000 / 4095, atol=1e-4)


def _hash(name: str) -> float:
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") / 2**64


def test_validation_split_holds_out_exactly_the_names_hashed_below_the_fraction():
    """A pair is held out when the SHA-1 number of its name is below ``val_fraction``; a tiny set
    none of whose names qualifies holds out ``ceil(fraction·n)`` of the lowest-hashed names."""
    from litefuse.data.datasets import split_pairs
    from litefuse.data.pairs import Pair

    pairs = [Pair(f"set/{i:03d}", Path(f"a{i}"), Path(f"b{i}")) for i in range(60)]
    train, val = split_pairs(pairs, 0.25)
    assert {p.name for p in val} == {p.name for p in pairs if _hash(p.name) < 0.25}
    assert len(train) + len(val) == 60 and 5 < len(val) < 30
    small = [p for p in pairs if _hash(p.name) >= 0.05][:3]
    lowest = min(small, key=lambda p: _hash(p.name))
    _, val = split_pairs(small, 0.05)  # ceil(0.15) = 1 pair
    assert [p.name for p in val] == [lowest.name]
    two = [p for p in pairs if _hash(p.name) >= 0.6][:2]
    _, val = split_pairs(two, 0.55)  # ceil(0.55·2) = 2, but never every pair
    assert len(val) == 1


def test_a_deadline_counts_minutes_as_sixty_seconds():
    """``Deadline(1)`` started 30 s ago has about 30 s left; one started 61 s ago has expired."""
    from litefuse.train.budget import Deadline

    assert Deadline(1.0, start=time.monotonic() - 30).remaining_s() == pytest.approx(30, abs=2)
    assert Deadline(1.0, start=time.monotonic() - 61).expired()
    assert Deadline(None).remaining_s() == math.inf
