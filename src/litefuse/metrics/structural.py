"""Structural similarity: SSIM (three variants), Wang's MS-SSIM, and Piella's Qs/Qw, Yang's Qy.

Inputs are float64 arrays with values 0..255 (docs/metrics.md, "Input rules"; definitions under "Metric reference"). The SSIM variants:

* ``cddfuse``: scikit-image 0.19.2 defaults on float32 input — 7×7 uniform window with reflect
  padding, sample covariance, data_range 2 (C1 = 4e-4, C2 = 3.6e-3), 3-px crop, then the mean;
  computed in float32 as the reference is (the other metrics are float64);
* ``wang``: Wang's ``ssim_index.m`` — 11×11 Gaussian (σ 1.5), population moments, L = 255,
  ``'valid'`` map;
* ``matlab``: MATLAB's builtin ``ssim`` on double 0..255 data — 11×11 Gaussian, replicate
  padding, DynamicRange 1 (C1 = 1e-4, C2 = 9e-4), full map.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from ..errors import InputError, OptionError

import numpy as np
from scipy import ndimage

from ._common import filt, gaussian_1d

__all__ = ["SSIM_VARIANTS", "MS_SSIM_MIN_SIDE", "shared_maps", "ssim", "ssim_fused", "ms_ssim", "ms_ssim_fused", "qs", "qw", "qy"]

SSIM_VARIANTS = ("cddfuse", "wang", "matlab")
_G11 = gaussian_1d(11, 1.5)
_G7 = gaussian_1d(7, 1.5)
_WANG_C = ((0.01 * 255) ** 2, (0.03 * 255) ** 2)
_MS_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
MS_SSIM_MIN_SIDE = 11 * 2 ** (len(_MS_WEIGHTS) - 1)  # the 11-px window still fits the 5th scale


def _moments(x: np.ndarray, y: np.ndarray, k: np.ndarray, mode: str):
    """Local means, population variances and covariance under the window ``outer(k, k)``."""
    mx, my = filt(x, k, mode), filt(y, k, mode)
    vx = filt(x * x, k, mode) - mx * mx
    vy = filt(y * y, k, mode) - my * my
    vxy = filt(x * y, k, mode) - mx * my
    return mx, my, vx, vy, vxy


def _ssim_map(mx, my, vx, vy, vxy, c1: float, c2: float) -> np.ndarray:
    return ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim_map_gaussian(x: np.ndarray, y: np.ndarray, k: np.ndarray = _G11, c=_WANG_C, mode: str = "valid"):
    """Gaussian-window SSIM map and the two local variance maps ``(map, σx², σy²)``."""
    mx, my, vx, vy, vxy = _moments(x, y, k, mode)
    return _ssim_map(mx, my, vx, vy, vxy, *c), vx, vy


def _ssim_cddfuse(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-image ``structural_similarity(x, y, data_range=2)`` on float32 input, as CDDFuse
    calls it: every map in float32 (scipy filters a float32 image into float32), the mean of the
    cropped map in float64. Bit-identical to that call; float64 arithmetic differs by up to ~1e-4
    relative where F nearly equals a source, because E[x²] − E[x]² cancels to the size of C2."""
    x, y = x.astype(np.float32), y.astype(np.float32)
    win, pad = 7, 3
    cov_norm = np.float32(win * win / (win * win - 1.0))
    c1, c2 = np.float32((0.01 * 2.0) ** 2), np.float32((0.03 * 2.0) ** 2)
    mx, my = ndimage.uniform_filter(x, win), ndimage.uniform_filter(y, win)
    vx = cov_norm * (ndimage.uniform_filter(x * x, win) - mx * mx)
    vy = cov_norm * (ndimage.uniform_filter(y * y, win) - my * my)
    vxy = cov_norm * (ndimage.uniform_filter(x * y, win) - mx * my)
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s[pad:-pad, pad:-pad].mean(dtype=np.float64))


def ssim(x: np.ndarray, y: np.ndarray, variant: str = "cddfuse") -> float:
    """SSIM of one image pair under ``variant`` (see the module docstring)."""
    if variant == "cddfuse":
        return _ssim_cddfuse(x, y)
    if variant == "wang":
        return float(ssim_map_gaussian(x, y)[0].mean())
    if variant == "matlab":
        return float(ssim_map_gaussian(x, y, c=(1e-4, 9e-4), mode="nearest")[0].mean())
    raise OptionError(f"unknown SSIM variant {variant!r}; expected one of {SSIM_VARIANTS}")


def ssim_fused(a: np.ndarray, b: np.ndarray, f: np.ndarray, variant: str = "cddfuse", combine: str = "sum") -> float:
    """Fusion SSIM (↑): SSIM(F,A) and SSIM(F,B) combined by ``'sum'`` (CDDFuse, VIFB) or ``'mean'`` (Tang)."""
    total = ssim(f, a, variant) + ssim(f, b, variant)
    return total if combine == "sum" else total / 2.0


def _halve(x: np.ndarray) -> np.ndarray:
    """Wang's MS-SSIM down-sampling: 2×2 mean with symmetric padding, every other pixel."""
    p = np.pad(x, ((0, 1), (0, 1)), mode="symmetric")
    avg = (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4.0
    return avg[::2, ::2]


def ms_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang's 5-scale MS-SSIM (11×11 Gaussian, L = 255, ``'valid'``). **Unvalidated**: no
    reference value in the pack; not Tang's MEF-MS-SSIM. Needs both sides ≥ 176 px.

    Each scale's mean contrast-structure term (and the last scale's SSIM) is clamped at 0 before
    its fractional power, as TensorFlow's ``ssim_multiscale`` does: a negative term (a fused image
    anti-correlated with a source at a coarse scale, common against infrared) would give NaN."""
    if min(x.shape) < MS_SSIM_MIN_SIDE:
        raise InputError(f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE}×{MS_SSIM_MIN_SIDE} pixels")
    c1, c2 = _WANG_C
    value = 1.0
    for level, w in enumerate(_MS_WEIGHTS):
        mx, my, vx, vy, vxy = _moments(x, y, _G11, "valid")
        cs = np.mean((2 * vxy + c2) / (vx + vy + c2))
        if level == len(_MS_WEIGHTS) - 1:
            value *= max(float(np.mean(_ssim_map(mx, my, vx, vy, vxy, c1, c2))), 0.0) ** w
        else:
            value *= max(float(cs), 0.0) ** w
            x, y = _halve(x), _halve(y)
    return float(value)


def ms_ssim_fused(a: np.ndarray, b: np.ndarray, f: np.ndarray, combine: str = "sum") -> float:
    """MS-SSIM(F,A) and MS-SSIM(F,B) combined like the convention's SSIM (unvalidated, ↑)."""
    total = ms_ssim(f, a) + ms_ssim(f, b)
    return total if combine == "sum" else total / 2.0


_SHARED = threading.local()  # .maps: Piella's maps (and their arrays) by (id A, id B, id F), inside shared_maps()


@contextmanager
def shared_maps():
    """Within this block, Qs and Qw of the same ``(a, b, f)`` array objects (alive throughout, as
    in one :func:`litefuse.metrics.evaluate` call) share one computation of their maps."""
    outer = getattr(_SHARED, "maps", None)
    _SHARED.maps = {}
    try:
        yield
    finally:
        _SHARED.maps = outer


def _piella_terms(a: np.ndarray, b: np.ndarray, f: np.ndarray):
    """Wang SSIM maps of (F,A), (F,B) and the variance maps of A and B, 0.5 added where both are 0."""
    maps, key = getattr(_SHARED, "maps", None), (id(a), id(b), id(f))
    if maps is not None and key in maps:
        return maps[key][1]
    _, va, vb = ssim_map_gaussian(a, b)
    both_zero = (va + vb) == 0
    va, vb = va + 0.5 * both_zero, vb + 0.5 * both_zero
    lam = va / (va + vb)
    q = lam * ssim_map_gaussian(f, a)[0] + (1.0 - lam) * ssim_map_gaussian(f, b)[0]
    if maps is not None:  # the arrays are kept with their maps: no other array can take their ids meanwhile
        maps[key] = (a, b, f), (q, va, vb)
    return q, va, vb


def qs(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Piella's fusion quality index Qs (Liu ``metricPeilla`` case 1, ↑): mean of
    λ·SSIM(F,A) + (1 − λ)·SSIM(F,B), λ = σ_A²/(σ_A² + σ_B²)."""
    return float(np.mean(_piella_terms(a, b, f)[0]))


def qw(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Piella's weighted fusion quality index Qw (Liu case 2, ↑): the Qs map weighted by
    max(σ_A², σ_B²) normalised to sum 1."""
    q, va, vb = _piella_terms(a, b, f)
    cw = np.maximum(va, vb)
    return float(np.sum(cw / cw.sum() * q))


def qy(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Yang's Qy (Liu ``metricYang``, ↑): 7×7 Gaussian SSIM maps with C1 = C2 = 2e-16.

    Where SSIM(A,B) ≥ 0.75: λ·SSIM(A,F) + (1 − λ)·SSIM(B,F); elsewhere max(SSIM(A,F), SSIM(B,F)).
    The masks multiply, as in the reference, so a NaN weight (σ_A² = σ_B² = 0) propagates.
    """
    c = (2e-16, 2e-16)
    s_ab, va, vb = ssim_map_gaussian(a, b, _G7, c)
    s_af = ssim_map_gaussian(a, f, _G7, c)[0]
    s_bf = ssim_map_gaussian(b, f, _G7, c)[0]
    similar = (s_ab >= 0.75).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = va / (va + vb)
        q = (lam * s_af + (1.0 - lam) * s_bf) * similar + np.fmax(s_af, s_bf) * (1.0 - similar)
    return float(np.mean(q))
