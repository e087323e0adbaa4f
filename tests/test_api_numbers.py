"""The Fuser's arithmetic around the method, checked against numbers computed here: the clip of
a method's output, per-frame stretching in a batch, the tile bound on batches and the chroma
of two colour sources."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

import litefuse


class _Sum(nn.Module):
    """A "method" whose output leaves [0, 1]: a + b - 0.25."""

    def forward(self, a, b):
        return a + b - 0.25


class _First(nn.Module):
    """Returns its first source, recording the shape of every call."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, a, b):
        self.shapes.append(tuple(a.shape))
        return a.clone()


def _rng_image(seed, shape, lo=0.0, hi=1.0):
    return (lo + (hi - lo) * np.random.default_rng(seed).random(shape)).astype(np.float32)


@pytest.mark.parametrize("tile", [None, 16])
def test_a_method_output_outside_the_unit_range_is_clipped(tile):
    """A method's output beyond [0, 1] comes back clipped, in one pass and tiled alike:
    exactly ``clip(a + b - 0.25, 0, 1)`` for a method computing ``a + b - 0.25``."""
    fuser = litefuse.Fuser("max", tile=tile, threads=1)
    fuser.model = _Sum()
    a, b = _rng_image(0, (40, 36)), _rng_image(1, (40, 36))
    out = fuser.fuse_luma(a, b)
    np.testing.assert_allclose(out, np.clip(a + b - 0.25, 0.0, 1.0), atol=1e-6)
    assert out.min() == 0.0 and out.max() == 1.0


def test_stretch_maps_each_frame_of_a_batch_to_its_own_range():
    """``stretch``: every frame of a network batch is min-max stretched by its own minimum and
    maximum (``(y - lo) / (hi - lo)``), never by the batch's, so a frame's result does not
    depend on the frames fused beside it."""
    fuser = litefuse.Fuser("aenetv2", stretch=True, threads=1)
    fuser.model = spy = _First()
    dim, bright = _rng_image(2, (24, 20), 0.2, 0.4), _rng_image(3, (24, 20), 0.5, 0.9)
    outs = fuser.fuse_luma_batch([dim, bright], [bright, dim])
    assert spy.shapes == [(2, 1, 24, 20)]  # one batch: the path under test
    for out, src in zip(outs, (dim, bright)):
        expected = (src - src.min()) / (src.max() - src.min())
        np.testing.assert_allclose(out, expected, atol=1e-6)
        assert out.min() == 0.0 and out.max() == pytest.approx(1.0)


def test_a_batch_of_frames_above_the_tile_size_runs_tile_by_tile():
    """Frames of more than ``tile²`` pixels are never stacked into one network pass: each goes
    through the tiler (the memory bound), one frame per call and no call larger than a tile
    with its context, and the result is the single-pass one for a point-wise method."""
    fuser = litefuse.Fuser("aenetv2", tile=16, overlap=4, threads=1)
    fuser.model = spy = _First()
    a = [_rng_image(4, (40, 40)), _rng_image(5, (40, 40))]
    outs = fuser.fuse_luma_batch(a, a[::-1])
    assert spy.shapes and all(s[0] == 1 and s[2] * s[3] <= (16 + 2 * 4) ** 2 for s in spy.shapes)
    for out, src in zip(outs, a):
        np.testing.assert_allclose(out, src, atol=1e-6)


def _bt601(rgb):
    r, g, b = rgb[..., 0].astype(np.float64), rgb[..., 1].astype(np.float64), rgb[..., 2].astype(np.float64)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y, 0.564 * (b - y) + 0.5, 0.713 * (r - y) + 0.5


def _saturation_blend(c1, c2):
    w1, w2 = np.abs(c1 - 0.5), np.abs(c2 - 0.5)
    return np.where(w1 + w2 > 1e-8, (c1 * w1 + c2 * w2) / np.maximum(w1 + w2, 1e-8), 0.5 * (c1 + c2))


@pytest.mark.parametrize("on_device", [False, True])
def test_two_colour_sources_keep_saturation_weighted_chroma(on_device):
    """Two colour sources (``task="mef"``, method ``max``): Y = max(Y_a, Y_b) and each of Cb, Cr
    the per-pixel blend of the sources' own plane weighted by ``|C - 0.5|``, recombined by the
    inverse BT.601 transform; computed here independently, on the host and on the device path."""
    a, b = _rng_image(6, (20, 24, 3)), _rng_image(7, (20, 24, 3))
    b[:10] = b[:10].mean(-1, keepdims=True)  # a neutral region: A's colour alone there
    fuser = litefuse.Fuser("max", task="mef", colour_on_device=on_device, threads=1)
    out = fuser.fuse_images(a, b)
    (ya, cba, cra), (yb, cbb, crb) = _bt601(a), _bt601(b)
    y, cb, cr = np.maximum(ya, yb), _saturation_blend(cba, cbb), _saturation_blend(cra, crb)
    expected = np.stack([y + 1.403 * (cr - 0.5), y - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5), y + 1.773 * (cb - 0.5)], -1)
    np.testing.assert_allclose(out, np.clip(expected, 0.0, 1.0), atol=2e-6)
    assert out.dtype == np.float32 and out.shape == a.shape


@pytest.mark.parametrize("size", [(30, 40), (90, 120)])  # 80×60 halved and enlarged: the aspect kept
def test_resize_vi_resamples_as_pil_bicubic_does(size):
    """``resize_b`` resamples the second source with antialiased bicubic interpolation, the
    filter PIL's ``BICUBIC`` applies: down- and up-sampling a grey image to the first source's
    size match PIL's float result (fused with ``max`` against a black first source, so the
    fused image is the resampled one)."""
    from PIL import Image

    vi = _rng_image(8, (60, 80), 0.1, 0.9)
    ir = np.zeros(size, np.float32)
    fuser = litefuse.Fuser("max", threads=1)
    out = fuser.fuse_images(ir, vi, resize_b=True)
    ref = np.asarray(Image.fromarray(vi, "F").resize(size[::-1], Image.BICUBIC))
    assert out.shape == size
    np.testing.assert_allclose(out, np.clip(ref, 0.0, 1.0), atol=2e-4)


def test_resize_vi_warns_when_the_aspect_ratio_changes_by_more_than_one_percent():
    """Resampling that stretches the scene (80×60 to 80×64: 6.7 %) is said; a 2-fold
    down-sampling (same aspect) and a change under 1 % (400×300 to 402×300: 0.5 %) are not."""
    import warnings

    fuser = litefuse.Fuser("max", threads=1)
    with pytest.warns(UserWarning, match="aspect ratio"):
        fuser.fuse_images(np.zeros((64, 80), np.float32), _rng_image(9, (60, 80)), resize_b=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fuser.fuse_images(np.zeros((30, 40), np.float32), _rng_image(9, (60, 80)), resize_b=True)
        fuser.fuse_images(np.zeros((300, 402), np.float32), _rng_image(9, (300, 400)), resize_b=True)
