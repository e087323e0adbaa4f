"""Classical (training-free) fusers: the baselines every network is compared against.

All follow the registry contract: ``forward(a, b)`` on ``(B, 1, H, W)`` tensors in [0, 1].
Each also declares what :meth:`litefuse.Fuser.fuse_luma` needs to fuse a large frame in tiles
that reproduce the single pass: ``tile_context``, the pixels of input on each side an output
pixel depends on (0 for per-pixel fusers), and ``tile_align``, the multiple of which a tile's
origin must be so its down-sampling grid lines up with the whole frame's.

- ``mean`` / ``max``: per-pixel average / maximum. ``max`` is a strong baseline on the
  standard metrics and must be reported beside every network.
- ``laplacian``: Laplacian pyramid (Burt & Adelson), max-absolute detail coefficients,
  averaged base (coarsest Gaussian level).
- ``wavelet``: 2-D DWT (PyWavelets, ``db2``), max-absolute detail coefficients, averaged
  approximation.
- ``gff``: guided filtering fusion (Li, Kang & Hu, IEEE TIP 2013): two-scale decomposition,
  Laplacian saliency, guided-filter-refined binary weight maps.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model

__all__ = ["MeanFusion", "MaxFusion", "LaplacianFusion", "WaveletFusion", "GuidedFilterFusion", "box_filter", "guided_filter"]


class MeanFusion(nn.Module):
    """Per-pixel average."""

    tile_context, tile_align = 0, 1

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return 0.5 * (a + b)


class MaxFusion(nn.Module):
    """Per-pixel maximum (brightest source wins: warm targets and lit texture both survive)."""

    tile_context, tile_align = 0, 1

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.maximum(a, b)


def _binomial_kernel(device: torch.device, dtype: torch.dtype) -> Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device, dtype=dtype) / 16.0
    return (k[:, None] * k[None, :]).view(1, 1, 5, 5)


def _blur(x: Tensor) -> Tensor:
    pad = "reflect" if min(x.shape[-2:]) > 2 else "replicate"
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode=pad), _binomial_kernel(x.device, x.dtype))


def _up(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear 2× up-sampling cropped to ``size``: the same sampling grid whatever the size
    (odd ones included), so the pyramid commutes with shifts by 2^levels and tiles reproduce
    the whole frame."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)[..., : size[0], : size[1]]


def laplacian_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """Detail levels (fine to coarse) followed by the coarsest Gaussian level; exact inverse
    is :func:`collapse_pyramid` for any size (odd sizes included)."""
    pyramid = []
    current = x
    for _ in range(levels):
        down = _blur(current)[..., ::2, ::2]
        pyramid.append(current - _up(down, current.shape[-2:]))
        current = down
    pyramid.append(current)
    return pyramid


def collapse_pyramid(pyramid: list[Tensor]) -> Tensor:
    current = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        current = detail + _up(current, detail.shape[-2:])
    return current


def _levels_for(h: int, w: int, max_levels: int) -> int:
    return max(1, min(max_levels, int(math.log2(max(min(h, w), 2))) - 3))


class LaplacianFusion(nn.Module):
    """Laplacian-pyramid fusion: max-absolute details, averaged base."""

    def __init__(self, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels
        # the pyramid's support is about 7·2^levels pixels; 2^(levels+3) also keeps every tile
        # large enough for the full depth (see _levels_for)
        self.tile_context, self.tile_align = 2 ** (levels + 3), 2**levels

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        levels = _levels_for(*a.shape[-2:], self.levels)
        pa, pb = laplacian_pyramid(a, levels), laplacian_pyramid(b, levels)
        fused = [torch.where(da.abs() >= db.abs(), da, db) for da, db in zip(pa[:-1], pb[:-1])]
        fused.append(0.5 * (pa[-1] + pb[-1]))
        return collapse_pyramid(fused).clamp(0.0, 1.0)


class WaveletFusion(nn.Module):
    """DWT fusion (PyWavelets): max-absolute detail coefficients, averaged approximation."""

    def __init__(self, wavelet: str = "db2", levels: int = 3) -> None:
        super().__init__()
        import pywt

        self.wavelet, self.levels = wavelet, levels
        # analysis and synthesis each reach (filter length - 1)·(2^levels - 1) pixels; that also
        # keeps every tile large enough for the full depth (pywt.dwt_max_level)
        reach = 2 * (pywt.Wavelet(wavelet).dec_len - 1) * (2**levels - 1)
        self.tile_context, self.tile_align = reach, 2**levels

    def _fuse_one(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import pywt

        level = min(self.levels, pywt.dwt_max_level(min(a.shape), pywt.Wavelet(self.wavelet).dec_len)) or 1
        ca = pywt.wavedec2(a, self.wavelet, mode="symmetric", level=level)
        cb = pywt.wavedec2(b, self.wavelet, mode="symmetric", level=level)
        fused = [0.5 * (ca[0] + cb[0])]
        for da, db in zip(ca[1:], cb[1:]):
            fused.append(tuple(np.where(np.abs(x) >= np.abs(y), x, y) for x, y in zip(da, db)))
        out = pywt.waverec2(fused, self.wavelet, mode="symmetric")
        return out[: a.shape[0], : a.shape[1]]

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        an = a.detach().cpu().double().numpy()
        bn = b.detach().cpu().double().numpy()
        out = np.stack([self._fuse_one(x[0], y[0])[None] for x, y in zip(an, bn)])
        return torch.from_numpy(out).to(device=a.device, dtype=a.dtype).clamp(0.0, 1.0)


def _window_sum(x: Tensor, radius: int, dim: int) -> Tensor:
    """Sum over a window of 2r+1 along ``dim`` (-1 or -2), clipped at the borders.

    Cumulative sums make the cost independent of the radius; replicate-padding the cumulative
    sum is what clips the window at the image border.
    """
    n = x.shape[dim]
    c = torch.cumsum(x, dim=dim)
    c = torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c], dim=dim)  # c[k] = sum of x[:k]
    pad = (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius)
    c = F.pad(c, pad, mode="replicate")
    return c.narrow(dim, 2 * radius + 1, n) - c.narrow(dim, 0, n)


def box_filter(x: Tensor, radius: int) -> Tensor:
    """Mean over a (2r+1)² window, normalised by the number of pixels inside the image.

    Computed with cumulative sums in float64, so the cost does not grow with the radius
    (GFF's base weights use r = 45).
    """
    if radius <= 0:
        return x
    ones = torch.ones((1, 1, *x.shape[-2:]), dtype=torch.float64, device=x.device)
    total = _window_sum(_window_sum(x.double(), radius, -1), radius, -2)
    count = _window_sum(_window_sum(ones, radius, -1), radius, -2)
    return (total / count).to(x.dtype)


def guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    """Grey-guide guided filter (He, Sun & Tang, 2010/2013)."""
    mean_i, mean_p = box_filter(guide, radius), box_filter(src, radius)
    cov_ip = box_filter(guide * src, radius) - mean_i * mean_p
    var_i = box_filter(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_filter(a, radius) * guide + box_filter(b, radius)


_BASE_RADIUS = 15  # GFF's 31×31 base/detail mean filter


def _fit_radius(x: Tensor, radius: int) -> int:
    """Shrink a window radius so the window fits inside small images."""
    return max(0, min(radius, (min(x.shape[-2:]) - 1) // 2))


class GuidedFilterFusion(nn.Module):
    """GFF (Li, Kang & Hu, IEEE TIP 2013) with the paper's parameters.

    Base/detail split by a 31×31 mean filter; saliency = Gaussian-smoothed (r=5, σ=5)
    absolute Laplacian; binary max-saliency maps refined by guided filtering with the source as
    guide (base: r=45, ε=0.3; detail: r=7, ε=1e-6); weights normalised to sum to one.
    """

    def __init__(self, r1: int = 45, eps1: float = 0.3, r2: int = 7, eps2: float = 1e-6) -> None:
        super().__init__()
        self.r1, self.eps1, self.r2, self.eps2 = r1, eps1, r2, eps2
        # a guided filter reaches 2r (box of box), after the saliency's 1 + 5 pixels
        self.tile_context, self.tile_align = 2 * max(r1, r2, _BASE_RADIUS) + 6, 1
        lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
        ax = torch.arange(-5, 6, dtype=torch.float32)
        g = torch.exp(-(ax**2) / (2 * 5.0**2))
        gauss = g[:, None] * g[None, :]
        self.register_buffer("laplacian", lap, persistent=False)
        self.register_buffer("gauss", (gauss / gauss.sum()).view(1, 1, 11, 11), persistent=False)

    def _saliency(self, x: Tensor) -> Tensor:
        h = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.laplacian.to(x)).abs()
        return F.conv2d(F.pad(h, (5, 5, 5, 5), mode="replicate"), self.gauss.to(x))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        r1, r2, r_base = (_fit_radius(a, r) for r in (self.r1, self.r2, _BASE_RADIUS))
        base_a, base_b = box_filter(a, r_base), box_filter(b, r_base)
        detail_a, detail_b = a - base_a, b - base_b
        sal_a, sal_b = self._saliency(a), self._saliency(b)
        p_a = (sal_a >= sal_b).to(a.dtype)
        p_b = 1.0 - p_a
        wb_a, wb_b = guided_filter(a, p_a, r1, self.eps1), guided_filter(b, p_b, r1, self.eps1)
        wd_a, wd_b = guided_filter(a, p_a, r2, self.eps2), guided_filter(b, p_b, r2, self.eps2)
        wb_a, wb_b, wd_a, wd_b = (w.clamp(0.0, 1.0) for w in (wb_a, wb_b, wd_a, wd_b))
        sum_b = (wb_a + wb_b).clamp_min(1e-8)
        sum_d = (wd_a + wd_b).clamp_min(1e-8)
        base = (wb_a * base_a + wb_b * base_b) / sum_b
        detail = (wd_a * detail_a + wd_b * detail_b) / sum_d
        return (base + detail).clamp(0.0, 1.0)


_CLASSICAL = {
    "mean": (MeanFusion, "Per-pixel average of the two sources"),
    "max": (MaxFusion, "Per-pixel maximum; the strong classical baseline"),
    "laplacian": (LaplacianFusion, "Laplacian pyramid: max-abs details, averaged base"),
    "wavelet": (WaveletFusion, "2-D DWT (db2): max-abs details, averaged approximation"),
    "gff": (GuidedFilterFusion, "Guided filtering fusion (Li, Kang & Hu, IEEE TIP 2013)"),
}

for _name, (_cls, _desc) in _CLASSICAL.items():
    register_model(_name, description=_desc, kind="classical", tasks=("ivif", "mff", "mef", "medical"))(_cls)
