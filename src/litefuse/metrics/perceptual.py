"""Human-vision metrics: Chen–Blum Qcb and Chen–Varshney Qcv (docs/metrics.md, "Metric reference").

Both follow Liu's ``metricChenBlum.m`` / ``metricChen.m`` (VIFB carries copies): min-max
normalise each image to rounded 0..255, filter with a contrast-sensitivity function (CSF) in
the frequency domain, then compare local contrast (Qcb) or block distortion (Qcv).
"""

from __future__ import annotations

import numpy as np

from ._common import filt
from .gradient import _sobel_conv_same

__all__ = ["qcb", "qcv"]


def _normalise(x: np.ndarray) -> np.ndarray:
    """Min-max to 0..255 and round half away from zero; an all-zero image is left as is."""
    lo, hi = x.min(), x.max()
    if lo == 0 and hi == 0:
        return x
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.floor((x - lo) / (hi - lo) * 255.0 + 0.5)


def _radius(shape: tuple[int, int], div: float) -> np.ndarray:
    """Radial frequency on MATLAB's ``freqspace([M N], 'meshgrid')`` grid scaled by (N/div, M/div),
    reordered (``ifftshift``) to line up with an unshifted ``fft2``."""
    m, n = shape
    fu = (np.arange(n) - n // 2) * (2.0 / n) * (n / div)
    fv = (np.arange(m) - m // 2) * (2.0 / m) * (m / div)
    return np.fft.ifftshift(np.sqrt(fu[None, :] ** 2 + fv[:, None] ** 2))


def _csf_filter(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Filter in the frequency domain; the result is complex, as in the reference."""
    return np.fft.ifft2(np.fft.fft2(x) * response)


def _gaussian31(sigma: float) -> np.ndarray:
    """1-D factor of the reference's unnormalised 31×31 Gaussian exp(−r²/2σ²)/(2πσ²)."""
    x = np.arange(-15, 16, dtype=np.float64)
    return np.exp(-(x * x) / (2.0 * sigma * sigma)) / np.sqrt(2.0 * np.pi * sigma * sigma)


_G2, _G4 = _gaussian31(2.0), _gaussian31(4.0)


def _masked_contrast(x: np.ndarray) -> np.ndarray:
    """|G₂*x / G₄*x − 1| (filter2 'same'), then the masking C³/(C² + 1e-4)."""
    c = np.abs(filt(x, _G2, "same") / filt(x, _G4, "same") - 1.0)
    return c**3 / (c**2 + 1e-4)


def qcb(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Chen–Blum Qcb (↑): saliency-weighted preservation of CSF-filtered local contrast.

    CSF: exp(−(r/15.3870)²) − 0.7622·exp(−(r/1.3456)²) on the freqspace grid ×(N/30, M/30).
    The min/max ratios are selected by multiplying with the mask, as the reference does.
    """
    r = _radius(f.shape, 30.0)
    csf = np.exp(-((r / 15.3870) ** 2)) - 0.7622 * np.exp(-((r / 1.3456) ** 2))
    ca, cb, cf = (_masked_contrast(_csf_filter(_normalise(x), csf)) for x in (a, b, f))
    with np.errstate(divide="ignore", invalid="ignore"):
        m = (ca < cf).astype(np.float64)
        qaf = ca / cf * m + cf / ca * (1.0 - m)
        m = (cb < cf).astype(np.float64)
        qbf = cb / cf * m + cf / cb * (1.0 - m)
        wa = ca * ca / (ca * ca + cb * cb)
        wb = cb * cb / (ca * ca + cb * cb)
        return float(np.mean(wa * qaf + wb * qbf))


def _block_sums(x: np.ndarray, size: int = 16) -> np.ndarray:
    """Sums over size×size blocks, zero-padding the bottom/right edge like ``blkproc``."""
    m, n = x.shape
    pm, pn = -m % size, -n % size
    x = np.pad(x, ((0, pm), (0, pn)))
    return x.reshape((m + pm) // size, size, (n + pn) // size, size).sum(axis=(1, 3))


def _sobel_magnitude(x: np.ndarray) -> np.ndarray:
    """Sobel magnitude with zero padding (``filter2 'same'``; the sign convention does not matter)."""
    sx, sy = _sobel_conv_same(x)
    return np.sqrt(sx * sx + sy * sy)


def qcv(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Chen–Varshney Qcv (↓, typically in the hundreds): saliency-weighted CSF-filtered distortion.

    Per 16×16 block: saliency Σ g⁵ of each source's Sobel magnitude, distortion = block mean of the
    complex square of the Mannos–Sakrison-filtered difference S − F (freqspace grid ×(N/8, M/8)).
    Returns the real part of the weighted mean, as the reference does.
    """
    a, b, f = _normalise(a), _normalise(b), _normalise(f)
    r = _radius(f.shape, 8.0)
    csf = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))
    total_w = total = 0.0
    for s in (a, b):
        w = _block_sums(_sobel_magnitude(s) ** 5)
        d = _csf_filter(s - f, csf)
        dist = _block_sums(d * d) / 256.0
        total = total + np.sum(w * dist)
        total_w = total_w + np.sum(w)
    return float(np.real(total / total_w))
