"""Histogram metrics: entropy (EN), mutual information (MI), cross entropy (CE).

Inputs are float64 arrays holding integers 0..255 (see :func:`litefuse.metrics._common.as_grey_f64`);
histograms use the 256 integer levels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["histogram", "entropy", "mutual_information", "cross_entropy", "rebin_minmax"]

LN2 = np.log(2.0)


def _levels(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(np.intp).ravel()


def histogram(x: np.ndarray) -> np.ndarray:
    """Normalised 256-bin histogram h_X of the integer levels of ``x``."""
    h = np.bincount(_levels(x), minlength=256).astype(np.float64)
    return h / h.sum()


def _entropy_of(p: np.ndarray) -> float:
    """−Σ p ln p over the non-zero cells, in nats."""
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def entropy(f: np.ndarray) -> float:
    """EN = −Σ_l h_F(l) log₂ h_F(l), bits (↑)."""
    return _entropy_of(histogram(f)) / LN2 + 0.0  # + 0.0: a constant image scores 0.0, not -0.0


def rebin_minmax(x: np.ndarray) -> np.ndarray:
    """VIFB's re-binning: min-max to [0, 1], then round(255·x) half away from zero.

    On 8-bit input this relabels the levels one-to-one, so MI does not change.
    """
    x = np.asarray(x, dtype=np.float64)
    lo, hi = x.min(), x.max()
    if hi == lo:
        return np.zeros_like(x)
    return np.floor((x - lo) / (hi - lo) * 255.0 + 0.5)


def _mi_pair(x: np.ndarray, f: np.ndarray, saturate: bool) -> float:
    """I(X;F) = H(X) + H(F) − H(X,F) in nats from the 256×256 joint histogram.

    ``saturate``: merge levels 254 and 255 in the joint histogram only (Tang's ``Hab.m`` indexes
    with uint8 ``x+1``, which saturates at 255); the marginal entropies keep all levels.
    """
    lx, lf = _levels(x), _levels(f)
    n = lx.size
    h_x = _entropy_of(np.bincount(lx, minlength=256) / n)
    h_f = _entropy_of(np.bincount(lf, minlength=256) / n)
    if saturate:
        lx, lf = np.minimum(lx, 254), np.minimum(lf, 254)
    h_xf = _entropy_of(np.bincount(lx * 256 + lf, minlength=256 * 256) / n)
    return h_x + h_f - h_xf


def mutual_information(
    a: np.ndarray, b: np.ndarray, f: np.ndarray, *, bits: bool = False, saturate: bool = False, rebin: bool = False
) -> float:
    """MI = I(A;F) + I(B;F) (↑), nats by default (CDDFuse, VIFB); ``bits=True`` for Tang.

    ``saturate``: Tang's 254/255 joint-bin merge. ``rebin``: VIFB's min-max re-binning first.
    """
    if rebin:
        a, b, f = rebin_minmax(a), rebin_minmax(b), rebin_minmax(f)
    mi = _mi_pair(a, f, saturate) + _mi_pair(b, f, saturate)
    return mi / LN2 if bits else mi


def cross_entropy(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """CE (VIFB, ↓) = ½ Σ_S Σ_l h_S(l) log₂(h_S(l)/h_F(l)), skipping bins where either is 0."""
    h_f = histogram(f)
    total = 0.0
    for s in (a, b):
        h_s = histogram(s)
        m = (h_s > 0) & (h_f > 0)
        total += float(np.sum(h_s[m] * np.log2(h_s[m] / h_f[m])))
    return total / 2.0
