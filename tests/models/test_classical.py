"""Classical fusers: each one's defining property, on the synthetic scene and small arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from litefuse.api import Fuser
from litefuse.colour import rgb_to_ycbcr
from litefuse.demo import synthetic_pair
from litefuse.models.classical import box_filter, collapse_pyramid, guided_filter, laplacian_pyramid
from litefuse.registry import load_model

CLASSICAL = ["mean", "max", "laplacian", "wavelet", "gff"]


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, np.float32))[None, None]


@pytest.mark.parametrize("name", CLASSICAL)
def test_identical_sources_give_the_source(name):
    x = torch.rand(1, 1, 45, 67, generator=torch.Generator().manual_seed(0))
    out = load_model(name)(x, x)
    assert out.shape == x.shape
    assert (out - x).abs().max() < 1e-5


@pytest.mark.parametrize("name", CLASSICAL)
def test_odd_sizes_and_range(name):
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 1, 33, 17, generator=g), torch.rand(2, 1, 33, 17, generator=g)
    out = load_model(name)(a, b)
    assert out.shape == a.shape and out.min() >= 0 and out.max() <= 1


def test_mean_and_max_exact():
    a, b = torch.rand(1, 1, 9, 9), torch.rand(1, 1, 9, 9)
    assert torch.equal(load_model("max")(a, b), torch.maximum(a, b))
    assert torch.allclose(load_model("mean")(a, b), (a + b) / 2)


def test_pyramid_is_an_exact_inverse_for_odd_sizes():
    x = torch.rand(1, 1, 51, 77, dtype=torch.float64)
    assert torch.allclose(collapse_pyramid(laplacian_pyramid(x, 4)), x, atol=1e-12)


@pytest.mark.parametrize("name", ["laplacian", "wavelet", "gff"])
def test_multiscale_keeps_texture_of_either_source(name, demo_pair):
    """Texture present only in the visible image and targets present only in the infrared
    image both survive (unlike the mean, which halves both)."""
    ir, vi = demo_pair
    y = 0.299 * vi[..., 0] + 0.587 * vi[..., 1] + 0.114 * vi[..., 2]
    fused = load_model(name)(_t(ir), _t(y))[0, 0].numpy()
    mean = 0.5 * (ir + y)
    wall = (slice(70, 170), slice(10, 150))  # brick texture, visible only
    assert fused[wall].std() > 1.3 * mean[wall].std()
    target = (slice(140, 200), slice(185, 220))  # warm person in the shadowed alcove, infrared only
    assert fused[target].std() > 1.3 * mean[target].std()


def test_box_filter_matches_direct_window_mean():
    x = torch.rand(1, 1, 23, 31, dtype=torch.float64)
    r = 4
    ref = torch.empty_like(x)
    for i in range(23):
        for j in range(31):
            ref[0, 0, i, j] = x[0, 0, max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1].mean()
    assert torch.allclose(box_filter(x, r), ref, atol=1e-12)
    assert torch.allclose(box_filter(x, 40), x.mean().expand_as(x), atol=1e-12)  # window larger than image


def test_guided_filter_preserves_edges_of_the_guide():
    guide = torch.zeros(1, 1, 40, 40, dtype=torch.float64)
    guide[..., 20:] = 1.0
    out = guided_filter(guide, guide, radius=5, eps=1e-6)
    assert torch.allclose(out, guide, atol=1e-3)  # self-guided with tiny eps: identity (edge kept)


@pytest.fixture(scope="module")
def large_pair() -> tuple[np.ndarray, np.ndarray]:
    """A 900×600 scene: more than one 512² tile, and rows in more than one colour block."""
    ir, vi = synthetic_pair(600, 900)
    return ir, vi


def _tiled_and_whole(name: str, ir: np.ndarray, y: np.ndarray, **declared: int) -> tuple[np.ndarray, np.ndarray]:
    """``Fuser.fuse_luma`` with 512² tiles (``declared`` overrides the model's tiling attributes)
    and the model on the whole frame."""
    fuser = Fuser(name, tile=512, overlap=0)
    for attr, value in declared.items():
        setattr(fuser.model, attr, value)
    whole = fuser.model(_t(ir), _t(y))[0, 0].clamp(0, 1).numpy()
    return fuser.fuse_luma(ir, y), whole


@pytest.mark.parametrize("name", CLASSICAL)
def test_tiles_with_the_declared_context_reproduce_the_single_pass(name, large_pair):
    """Fuser tiles every method; a classical fuser's ``tile_context``/``tile_align`` make the tiled
    result equal the whole-frame one (measured on a 2000×1500 scene with tile 512: 0 for all but
    laplacian, 2.4e-7 there: float rounding)."""
    ir, vi = large_pair
    tiled, whole = _tiled_and_whole(name, ir, rgb_to_ycbcr(vi)[0])
    assert np.abs(tiled - whole).max() <= 1e-5


@pytest.mark.parametrize("name", ["laplacian", "wavelet", "gff"])
def test_tiles_without_context_differ(name, large_pair):
    """The declared context is what makes tiling exact: without it the tile seams show."""
    ir, vi = large_pair
    tiled, whole = _tiled_and_whole(name, ir, rgb_to_ycbcr(vi)[0], tile_context=0, tile_align=1)
    assert np.abs(tiled - whole).max() > 1e-2


def test_tiled_colour_fusion_matches_the_direct_formulas(large_pair):
    """The public colour path (row-blocked YCbCr conversion, tiled luma) gives what the plain
    whole-frame expressions give."""
    ir, vi = large_pair
    r, g, b = vi[..., 0], vi[..., 1], vi[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb, cr = 0.564 * (b - y) + 0.5, 0.713 * (r - y) + 0.5
    fy = torch.maximum(_t(ir), _t(y))[0, 0].numpy()
    rgb = np.stack([fy + 1.403 * (cr - 0.5), fy - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5), fy + 1.773 * (cb - 0.5)], -1)
    out = Fuser("max", tile=256).fuse_images(ir, vi)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.clip(rgb, 0.0, 1.0))


@pytest.mark.parametrize("name", ["laplacian", "wavelet"])
def test_multiscale_fusers_average_the_base_of_flat_sources(name):
    """Flat sources have no detail: the fused image is the averaged base, (0.2 + 0.6)/2 = 0.4."""
    model = load_model(name)
    out = model(torch.full((1, 1, 48, 40), 0.2), torch.full((1, 1, 48, 40), 0.6))
    torch.testing.assert_close(out, torch.full_like(out, 0.4), atol=1e-6, rtol=0)


def test_gff_gives_equal_saliency_to_the_first_source():
    """Li et al.'s P = 1 where S_A = max(S_A, S_B): two flat sources (saliency 0 both) fuse to A."""
    out = load_model("gff")(torch.full((1, 1, 40, 40), 0.2), torch.full((1, 1, 40, 40), 0.7))
    torch.testing.assert_close(out, torch.full_like(out, 0.2), atol=1e-6, rtol=0)


def test_gff_saliency_smoothing_is_the_papers_11x11_gaussian_sigma_5():
    x = np.arange(-5, 6)
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 25.0))
    np.testing.assert_allclose(load_model("gff").gauss[0, 0].numpy(), g / g.sum(), rtol=1e-6)


def test_pyramid_depth_keeps_the_coarsest_level_at_least_8_pixels():
    from litefuse.models.classical import _levels_for

    for side in range(16, 400, 7):
        levels = _levels_for(side, side + 5, 10)
        assert side >> levels >= 8 and side >> (levels + 1) < 8, side
    assert _levels_for(1000, 1000, 4) == 4


def test_guided_filter_windows_fit_inside_small_images():
    from litefuse.models.classical import _fit_radius

    for side in (3, 8, 10, 11, 90, 200):
        r = _fit_radius(torch.zeros(1, 1, side, 300), 45)
        assert 2 * r + 1 <= side and (r == 45 or 2 * r + 3 > side), side


def test_gff_matches_an_independent_scipy_implementation_of_the_paper(demo_pair):
    """GFF re-derived here from Li, Kang & Hu (TIP 2013) with scipy.ndimage (window means
    normalised by the pixels inside the image, replicated borders for the Laplacian and
    Gaussian): two-scale split, saliency, binary maps, guided-filter weights, each scale's
    weights normalised to one. On the demo scene the two detail weights do not sum to one, so
    a missing normalisation shows."""
    from scipy import ndimage

    def mean(x, r):
        r = min(r, (min(x.shape) - 1) // 2)
        size = 2 * r + 1
        return ndimage.uniform_filter(x, size, mode="constant") / ndimage.uniform_filter(np.ones_like(x), size, mode="constant")

    def guided(i, p, r, eps):
        mi, mp = mean(i, r), mean(p, r)
        a = (mean(i * p, r) - mi * mp) / (mean(i * i, r) - mi * mi + eps)
        return mean(a, r) * i + mean(mp - a * mi, r)

    ax = np.arange(-5, 6)
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / 50.0)
    lap = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float)

    def saliency(x):
        return ndimage.correlate(np.abs(ndimage.correlate(x, lap, mode="nearest")), g / g.sum(), mode="nearest")

    ir, vi = demo_pair
    a, b = np.asarray(ir, np.float64), np.asarray(vi, np.float64)
    if b.ndim == 3:
        b = b @ [0.299, 0.587, 0.114]
    base_a, base_b = mean(a, 15), mean(b, 15)
    p_a = (saliency(a) >= saliency(b)).astype(float)
    out = 0.0
    for (r, eps), (xa, xb) in zip(((45, 0.3), (7, 1e-6)), ((base_a, base_b), (a - base_a, b - base_b))):
        wa, wb = (np.clip(guided(s, p, r, eps), 0, 1) for s, p in ((a, p_a), (b, 1 - p_a)))
        if r == 7:
            assert np.abs(wa + wb - 1).max() > 0.05  # the case the normalisation is for
        out = out + (wa * xa + wb * xb) / np.maximum(wa + wb, 1e-8)
    mine = load_model("gff")(_t(a), _t(b))[0, 0].double().numpy()
    np.testing.assert_allclose(mine, np.clip(out, 0, 1), atol=2e-5)
