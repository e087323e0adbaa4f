"""Classical fusers: each one's defining property, on the synthetic scene and small arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
