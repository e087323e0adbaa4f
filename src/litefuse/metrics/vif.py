"""Pixel-domain multiscale VIF (Sheikh–Bovik ``vifp_mscale``; docs/metrics.md, "Metric reference").

CDDFuse calls it "VIFF", but it is not Han's VIFF. The noise variance σ_n² = 2 is absolute,
so inputs must be float64 0..255.
"""

from __future__ import annotations

import numpy as np

from ._common import filt, gaussian_1d

__all__ = ["vifp", "vif", "MIN_SIDE"]

_SIGMA_NSQ = 2.0
_EPS = 1e-10
_WINDOWS = [gaussian_1d(2 ** (5 - s) + 1, (2 ** (5 - s) + 1) / 5.0) for s in range(1, 5)]
# The smallest side whose every scale keeps a 'valid' map: 17 (scale 1), then each decimation must
# leave at least the next window (9, 5, 3 px), which needs 25, 33 and 41 px. Below it the reference
# (scipy ``convolve2d``) swaps image and window and returns a number that measures nothing.
MIN_SIDE = 41


Scale = tuple[np.ndarray, np.ndarray, np.ndarray]  # image at this scale, local mean, local variance


def _pyramid(x: np.ndarray) -> list[Scale]:
    """Per scale: the image (filtered and decimated for s > 1), μ = filt(X), σ² = max(filt(X²) − μ², 0)."""
    out = []
    for scale, k in enumerate(_WINDOWS):
        if scale > 0:
            x = filt(x, k)[::2, ::2]
        mu = filt(x, k)
        out.append((x, mu, np.maximum(filt(x * x, k) - mu * mu, 0.0)))
    return out


def _vifp(ref: list[Scale], dist: list[Scale]) -> float:
    num = den = 0.0
    for (x, mx, sx), (f, mf, sf), k in zip(ref, dist, _WINDOWS):
        sxf = filt(x * f, k) - mx * mf
        g = sxf / (sx + _EPS)
        v = sf - g * sxf
        flat_x = sx < _EPS  # masks in the reference's order
        g = np.where(flat_x, 0.0, g)
        v = np.where(flat_x, sf, v)
        sx = np.where(flat_x, 0.0, sx)
        flat_f = sf < _EPS
        g = np.where(flat_f, 0.0, g)
        v = np.where(flat_f, 0.0, v)
        neg = g < 0
        v = np.where(neg, sf, v)
        g = np.where(neg, 0.0, g)
        v = np.maximum(v, _EPS)
        num += float(np.sum(np.log10(1.0 + g * g * sx / (v + _SIGMA_NSQ))))
        den += float(np.sum(np.log10(1.0 + sx / _SIGMA_NSQ)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(num) / np.float64(den))


def vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    """vifp(X, F) = Σ_scales num / Σ_scales den; NaN when the reference is flat (den = 0)."""
    return _vifp(_pyramid(ref), _pyramid(dist))


def vif(a: np.ndarray, b: np.ndarray, f: np.ndarray, *, flat_value: float | None = 1.0) -> float:
    """VIF = vifp(A,F) + vifp(B,F) (↑).

    ``flat_value``: what a NaN per-source vifp (flat source) becomes — 1.0 in CDDFuse,
    ``None`` keeps NaN (Tang).
    """
    total, pf = 0.0, _pyramid(f)  # F's pyramid is shared by both sources
    for s in (a, b):
        v = _vifp(_pyramid(s), pf)
        if np.isnan(v) and flat_value is not None:
            v = flat_value
        total += v
    return total
