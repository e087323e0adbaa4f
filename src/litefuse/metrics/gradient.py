"""Edge metrics: Xydeas–Petrović Qabf, Kumar's Nabf, edge intensity EI (docs/metrics.md, "Metric reference").

Inputs are float64 arrays with values 0..255; the sigmoid constants and thresholds are absolute.
All Sobel kernels are separable ([1 2 1] smoothing × [−1 0 1] difference), so they run as two
1-D passes; on integer data every response is exact.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["qabf", "nabf", "edge_intensity"]

_SMOOTH = np.array([1.0, 2.0, 1.0])
_DIFF = np.array([-1.0, 0.0, 1.0])
_HALF_PI = np.pi / 2.0


def _sobel_conv_same(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S_x = conv2(X, [−1 0 1; −2 0 2; −1 0 1], 'same'), S_y = conv2(X, [1 2 1; 0 0 0; −1 −2 −1], 'same')."""
    sx = ndimage.convolve1d(ndimage.convolve1d(x, _SMOOTH, axis=0, mode="constant"), _DIFF, axis=1, mode="constant")
    sy = ndimage.convolve1d(ndimage.convolve1d(x, -_DIFF, axis=0, mode="constant"), _SMOOTH, axis=1, mode="constant")
    return sx, sy


def _qabf_edges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength g and orientation α = atan(S_y/S_x) (π/2 where S_x = 0; atan, not atan2)."""
    sx, sy = _sobel_conv_same(x)
    g = np.sqrt(sx * sx + sy * sy)
    zero = sx == 0
    alpha = np.where(zero, _HALF_PI, np.arctan(sy / np.where(zero, 1.0, sx)))
    return g, alpha


def _qabf_preservation(gs, als, gf, alf) -> np.ndarray:
    """Q_SF: edge strength and orientation preservation of source S in F."""
    with np.errstate(divide="ignore", invalid="ignore"):
        # The reference's quirk: G = g_F (not 1) where g_S == g_F.
        gsf = np.where(gs > gf, gf / gs, np.where(gs < gf, gs / gf, gf))
    asf = 1.0 - np.abs(als - alf) / _HALF_PI
    qg = 0.9994 / (1.0 + np.exp(-15.0 * (gsf - 0.5)))
    qa = 0.9879 / (1.0 + np.exp(-22.0 * (asf - 0.8)))
    return qg * qa


def qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray, *, scale: float = 1.0) -> float:
    """Qabf = Σ(Q_AF·g_A + Q_BF·g_B) / Σ(g_A + g_B) (↑).

    ``scale``: multiply the inputs first (VIFB scores ``255·x``); it only matters through the
    ``g_S == g_F`` quirk and moves Qabf by < 1e-9.
    """
    if scale != 1.0:
        a, b, f = a * scale, b * scale, f * scale
    ga, ala = _qabf_edges(a)
    gb, alb = _qabf_edges(b)
    gf, alf = _qabf_edges(f)
    qaf = _qabf_preservation(ga, ala, gf, alf)
    qbf = _qabf_preservation(gb, alb, gf, alf)
    return float(np.sum(qaf * ga + qbf * gb) / np.sum(ga + gb))


def _nabf_edges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel/8 by correlation with mirror extension: g and α = atan(g_v/g_h) (0 where both are 0)."""
    gv = ndimage.correlate1d(ndimage.correlate1d(x, _SMOOTH / 8.0, axis=0, mode="mirror"), _DIFF, axis=1, mode="mirror")
    gh = ndimage.correlate1d(ndimage.correlate1d(x, _DIFF, axis=0, mode="mirror"), _SMOOTH / 8.0, axis=1, mode="mirror")
    g = np.sqrt(gh * gh + gv * gv)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.arctan(gv / gh)
    alpha = np.where((gh == 0) & (gv == 0), 0.0, alpha)
    return g, alpha


def _nabf_preservation(gs, als, gf, alf) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where((gs == 0) | (gf == 0), 0.0, np.minimum(gs, gf) / np.maximum(gs, gf))
    ang = np.abs(np.abs(als - alf) - _HALF_PI) / _HALF_PI
    qg = 0.9999 / (1.0 + np.exp(-19.0 * (g - 0.5)))
    qa = 0.9995 / (1.0 + np.exp(-22.0 * (ang - 0.5)))
    return np.sqrt(qg * qa)


def nabf(a: np.ndarray, b: np.ndarray, f: np.ndarray, *, as_called: bool = False) -> float:
    """Kumar's modified fusion-artifact measure Nabf (Tang ``analysis_nabf``, ↓).

    Counts the loss of edge information only where F has stronger edges than both sources,
    weighted by g_S^1.5 where g_S ≥ 2 (0.001 elsewhere). ``as_called=True`` reproduces old Tang
    tables, whose code passes (A, B, F) into the (F, A, B) signature.
    """
    if as_called:
        a, b, f = b, f, a
    ga, ala = _nabf_edges(a)
    gb, alb = _nabf_edges(b)
    gf, alf = _nabf_edges(f)
    qaf = _nabf_preservation(ga, ala, gf, alf)
    qbf = _nabf_preservation(gb, alb, gf, alf)
    wa = np.where(ga >= 2.0, ga**1.5, 0.001)
    wb = np.where(gb >= 2.0, gb**1.5, 0.001)
    artefact = (gf > ga) & (gf > gb)
    return float(np.sum(artefact * ((1.0 - qaf) * wa + (1.0 - qbf) * wb)) / np.sum(wa + wb))


def edge_intensity(f: np.ndarray) -> float:
    """EI (VIFB, ↑) = mean of sqrt(g_x² + g_y²), Sobel by correlation with replicate padding, no /8."""
    gy = ndimage.correlate1d(ndimage.correlate1d(f, -_DIFF, axis=0, mode="nearest"), _SMOOTH, axis=1, mode="nearest")
    gx = ndimage.correlate1d(ndimage.correlate1d(f, _SMOOTH, axis=0, mode="nearest"), -_DIFF, axis=1, mode="nearest")
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))
