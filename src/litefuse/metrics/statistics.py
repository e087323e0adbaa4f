"""Pixel statistics: SD, SF, AG, CC, SCD, MSE, RMSE, PSNR (docs/metrics.md, "Metric reference" and "Conventions").

Inputs are float64 arrays with values 0..255. Where the references disagree the switch is an
argument; :mod:`litefuse.metrics.conventions` picks the values for each convention.
"""

from __future__ import annotations

from ..errors import OptionError

import numpy as np

__all__ = ["sd", "sf", "ag", "corr2", "cc", "scd", "mse", "rmse_vifb", "psnr"]


def sd(f: np.ndarray) -> float:
    """SD = sqrt(mean((F − μ_F)²)), population standard deviation (↑)."""
    return float(np.sqrt(np.mean((f - f.mean()) ** 2)))


def sf(f: np.ndarray, *, normaliser: str = "mean") -> float:
    """Spatial frequency SF = sqrt(RF² + CF²) (↑).

    ``normaliser='mean'`` (CDDFuse, Tang): RF² and CF² are means over the M×(N−1) horizontal and
    (M−1)×N vertical differences. ``'mn'`` (VIFB): both sums are divided by M·N.
    """
    dh = np.diff(f, axis=1) ** 2
    dv = np.diff(f, axis=0) ** 2
    if normaliser == "mean":
        return float(np.sqrt(dh.mean() + dv.mean()))
    if normaliser == "mn":
        return float(np.sqrt((dh.sum() + dv.sum()) / f.size))
    raise OptionError(f"unknown SF normaliser {normaliser!r}")


def ag(f: np.ndarray, *, normaliser: str = "mn") -> float:
    """Average gradient (↑): Σ sqrt((g_x² + g_y²)/2) with ``np.gradient`` (= MATLAB ``gradient``).

    ``normaliser='mn'`` (CDDFuse) divides by M·N; ``'m1n1'`` (Tang, VIFB) by (M−1)(N−1),
    still summing over all M·N pixels.
    """
    gy, gx = np.gradient(f)
    total = np.sum(np.sqrt((gx * gx + gy * gy) / 2.0))
    m, n = f.shape
    if normaliser == "mn":
        return float(total / (m * n))
    if normaliser == "m1n1":
        return float(total / ((m - 1) * (n - 1)))
    raise OptionError(f"unknown AG normaliser {normaliser!r}")


def corr2(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation r(X, Y) of two images (MATLAB ``corr2``)."""
    xc, yc = x - x.mean(), y - y.mean()
    return float(np.sum(xc * yc) / np.sqrt(np.sum(xc * xc) * np.sum(yc * yc)))


def cc(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """CC = (r(A,F) + r(B,F)) / 2 (↑)."""
    return (corr2(a, f) + corr2(b, f)) / 2.0


def scd(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Sum of the correlations of differences, SCD = r(F − B, A) + r(F − A, B) (↑)."""
    return corr2(f - b, a) + corr2(f - a, b)


def mse(a: np.ndarray, b: np.ndarray, f: np.ndarray, *, scale: float = 1.0) -> float:
    """MSE = (mean((A − F)²) + mean((B − F)²)) / 2 on 0..255, divided by ``scale`` (↓).

    Tang reports it on the [0, 1] scale: ``scale = 255²``.
    """
    return float((np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2.0 / scale)


def rmse_vifb(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """VIFB's size-dependent RMSE = ½ Σ_S sqrt(Σ(S − F)²)/(M·N) (↓)."""
    return float((np.sqrt(np.sum((a - f) ** 2)) + np.sqrt(np.sum((b - f) ** 2))) / (2.0 * f.size))


def psnr(a: np.ndarray, b: np.ndarray, f: np.ndarray, *, kind: str = "cddfuse") -> float:
    """PSNR in dB (↑); the references compute four different quantities under this name.

    * ``'cddfuse'``: 10·log₁₀(max(F)²/MSE), the peak is the fused maximum;
    * ``'tang'``: 10·log₁₀(255²/MSE) + 20·log₁₀ 255 (Tang's code adds ≈ 48.13 dB);
    * ``'vifb'``: 20·log₁₀(255/sqrt(RMSE_vifb));
    * ``'textbook'``: 10·log₁₀(255²/MSE), which none of the references computes.
    MSE is :func:`mse` on 0..255; a fused image equal to both sources (MSE 0) scores ``inf``
    (NaN for ``'cddfuse'`` when F is all zero, as the reference).
    """
    if kind == "vifb":
        return float(20.0 * np.log10(255.0 / np.sqrt(rmse_vifb(a, b, f))))
    m = np.float64(mse(a, b, f))  # numpy division: MSE 0 gives inf, not ZeroDivisionError
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "cddfuse":
            return float(10.0 * np.log10(f.max() ** 2 / m))
        if kind == "textbook":
            return float(10.0 * np.log10(255.0**2 / m))
        if kind == "tang":
            return float(10.0 * np.log10(255.0**2 / m) + 20.0 * np.log10(255.0))
    raise OptionError(f"unknown PSNR kind {kind!r}")
