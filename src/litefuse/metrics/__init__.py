"""Fusion quality metrics that reproduce the numbers of the reference codes papers use.

>>> from litefuse.metrics import evaluate, load_grey_u8
>>> scores = evaluate(load_grey_u8("ir.png"), load_grey_u8("vi.png"), load_grey_u8("fused.png"))

Inputs are uint8 grey images (A = infrared, B = visible, F = fused), scored as float64 0..255.
RGB arrays are converted with the CDDFuse grey rule; float arrays must hold integers 0..255
(use :func:`to_uint8` for [0, 1] images). The same metric name means different numbers in
different codes, so every result belongs to a ``convention`` (see :mod:`.conventions`);
the default, ``cddfuse``, is CDDFuse's ``Evaluator.py``. Definitions: docs/metrics.md.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, NamedTuple

import numpy as np

from ..errors import InputError, OptionError
from . import gradient, information, perceptual, statistics, structural, vif
from ._common import as_grey_f64, check_triple, grey_from_rgb, load_grey_u8, to_uint8
from .conventions import CONVENTIONS, Convention, get_convention

__all__ = [
    "evaluate", "METRICS", "CORE_METRICS", "DEFAULT_METRICS", "MetricInfo", "CONVENTIONS", "Convention",
    "get_convention", "load_grey_u8", "to_uint8", "as_grey_f64", "grey_from_rgb", "resolve_metrics", "min_side",
    "register_metric",
]

CORE_METRICS: tuple[str, ...] = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")
DEFAULT_METRICS: tuple[str, ...] = CORE_METRICS + ("AG", "CC", "PSNR")


class MetricInfo(NamedTuple):
    """What a table or a chart needs to know about a metric."""

    higher_is_better: bool
    description: str

    @property
    def arrow(self) -> str:
        """'↑' or '↓', for column headers and axis labels (display only)."""
        return "↑" if self.higher_is_better else "↓"

    def best(self, values: Iterable[float]) -> float:
        """The best of ``values`` by this metric's direction (NaN ignored)."""
        finite = [v for v in values if v == v]
        return (max if self.higher_is_better else min)(finite) if finite else float("nan")


UP, DOWN = True, False  # higher_is_better, for the table below


Compute = Callable[[Convention, np.ndarray, np.ndarray, np.ndarray], float]

# name → (higher is better, description, computation under a convention)
_TABLE: dict[str, tuple[str, str, Compute]] = {
    "EN": (UP, "entropy of F (bits)", lambda c, a, b, f: information.entropy(f)),
    "SD": (UP, "standard deviation of F", lambda c, a, b, f: statistics.sd(f)),
    "SF": (UP, "spatial frequency of F", lambda c, a, b, f: statistics.sf(f, normaliser=c.sf)),
    "AG": (UP, "average gradient of F", lambda c, a, b, f: statistics.ag(f, normaliser=c.ag)),
    "EI": (UP, "edge intensity of F (Sobel magnitude mean)", lambda c, a, b, f: gradient.edge_intensity(f)),
    "MI": (UP, "mutual information I(A;F) + I(B;F)", lambda c, a, b, f: information.mutual_information(
        a, b, f, bits=c.mi_bits, saturate=c.mi_saturate, rebin=c.mi_rebin)),
    "CE": (DOWN, "cross entropy of the source histograms against F", lambda c, a, b, f: information.cross_entropy(a, b, f)),
    "CC": (UP, "mean correlation coefficient (r(A,F) + r(B,F))/2", lambda c, a, b, f: statistics.cc(a, b, f)),
    "SCD": (UP, "sum of the correlations of differences", lambda c, a, b, f: statistics.scd(a, b, f)),
    "MSE": (DOWN, "mean squared error to the sources", lambda c, a, b, f: statistics.mse(a, b, f, scale=c.mse_scale)),
    "RMSE": (DOWN, "root mean squared error to the sources", lambda c, a, b, f: (
        statistics.rmse_vifb(a, b, f) if c.rmse == "vifb" else math.sqrt(statistics.mse(a, b, f, scale=c.mse_scale)))),
    "PSNR": (UP, "peak signal-to-noise ratio (dB; convention-dependent)", lambda c, a, b, f: statistics.psnr(
        a, b, f, kind=c.psnr)),
    "VIF": (UP, "visual information fidelity vifp(A,F) + vifp(B,F)", lambda c, a, b, f: vif.vif(
        a, b, f, flat_value=c.vif_flat)),
    "Qabf": (UP, "Xydeas–Petrović edge preservation Q^AB/F", lambda c, a, b, f: gradient.qabf(
        a, b, f, scale=c.qabf_scale)),
    "Nabf": (DOWN, "Kumar's fusion artefacts N^AB/F", lambda c, a, b, f: gradient.nabf(a, b, f)),
    "Nabf_as_called": (DOWN, "Nabf with Tang's swapped arguments (old tables only)", lambda c, a, b, f: gradient.nabf(
        a, b, f, as_called=True)),
    "SSIM": (UP, "structural similarity to both sources (variant and sum/mean by convention)", lambda c, a, b, f:
             structural.ssim_fused(a, b, f, c.ssim, c.ssim_combine)),
    "MS_SSIM": (UP, "Wang's 5-scale MS-SSIM to both sources (unvalidated)", lambda c, a, b, f:
                structural.ms_ssim_fused(a, b, f, c.ssim_combine)),
    "Qs": (UP, "Piella's fusion quality index", lambda c, a, b, f: structural.qs(a, b, f)),
    "Qw": (UP, "Piella's weighted fusion quality index", lambda c, a, b, f: structural.qw(a, b, f)),
    "Qy": (UP, "Yang's SSIM-based fusion quality", lambda c, a, b, f: structural.qy(a, b, f)),
    "Qcb": (UP, "Chen–Blum perceptual contrast preservation", lambda c, a, b, f: perceptual.qcb(a, b, f)),
    "Qcv": (DOWN, "Chen–Varshney perceptual distortion", lambda c, a, b, f: perceptual.qcv(a, b, f)),
}

METRICS: dict[str, MetricInfo] = {name: MetricInfo(d, text) for name, (d, text, _) in _TABLE.items()}
_BY_LOWER = {name.lower(): name for name in _TABLE}
_MIN_SIDES: dict[str, int] = {}  # of the metrics added by register_metric
_RESERVED = frozenset({"set", "image", "method", "convention", "protocol"})  # the other columns of scores.csv (eval, compare)


def register_metric(
    name: str,
    compute: Callable[[np.ndarray, np.ndarray, np.ndarray], float],
    *,
    higher_is_better: bool,
    description: str,
    min_side: int = 2,
) -> None:
    """Add metric ``name``: ``compute(a, b, f)`` scores the fused image ``f`` against the sources
    ``a`` (infrared) and ``b`` (visible), grey float64 arrays of one shape holding 0..255; it
    then works by name (case-insensitive) wherever a metric does: :func:`evaluate`,
    ``litefuse eval --metrics`` / ``compare --metrics`` and their tables and charts. ``min_side``: the smallest
    image side it is defined on (smaller images are refused). Its value is the same under every
    convention. A name already taken, whatever its case, or one of the score tables' other columns
    (``set``, ``image``, ``method``, ``convention``) raises ``OptionError`` (a ``ValueError``). Worker processes
    (``eval``/``compare -j N``) know the metric when its module is a plugin (:mod:`litefuse.plugins`).
    """
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise OptionError(f"metric name {name!r}: letters, digits and '_' only")
    key = name.lower()
    if key in _BY_LOWER:
        raise OptionError(f"metric {name!r} registered twice (as {_BY_LOWER[key]!r})")
    if key in _RESERVED:  # a score under this key would overwrite the column of the scores tables
        raise OptionError(f"metric name {name!r} is a column of the score tables ({', '.join(sorted(_RESERVED))}); choose another")
    if not callable(compute):
        raise TypeError(f"metric {name!r}: compute must be callable, got {compute!r}")
    _TABLE[name] = (bool(higher_is_better), description, lambda c, a, b, f: compute(a, b, f))
    METRICS[name] = MetricInfo(bool(higher_is_better), description)
    _BY_LOWER[key] = name
    _MIN_SIDES[name] = max(2, int(min_side))


def min_side(name: str, convention: str | Convention = "cddfuse") -> int:
    """The smallest image side ``name`` is defined on: its windows must fit inside the image
    ('valid' maps, crops, scales), else its map is empty and the number would be NaN or noise."""
    conv = get_convention(convention)
    ssim_side = {"cddfuse": 7, "wang": 11, "matlab": 2}[conv.ssim]  # 7×7 crop 3 / 11×11 'valid' / padded
    sides = {"VIF": vif.MIN_SIDE, "MS_SSIM": structural.MS_SSIM_MIN_SIDE, "SSIM": ssim_side, "Qs": 11, "Qw": 11, "Qy": 7}
    return sides.get(name, _MIN_SIDES.get(name, 2))  # differences and gradients need two pixels


def resolve_metrics(metrics: Iterable[str] | str | None, convention: str | Convention = "cddfuse") -> tuple[str, ...]:
    """Canonical metric names (case-insensitive; a string may list them with commas).

    ``None`` gives the convention's own set (:data:`DEFAULT_METRICS` for ``cddfuse``).
    """
    if metrics is None:
        return get_convention(convention).metrics
    if isinstance(metrics, str):
        metrics = [m for m in metrics.replace(" ", "").split(",") if m]
    names = []
    for m in metrics:
        key = m.lower().replace("-", "_")
        if key not in _BY_LOWER:
            from ..plugins import failure_note

            raise OptionError(f"unknown metric {m!r}; known: {', '.join(_TABLE)}{failure_note()}")
        names.append(_BY_LOWER[key])
    if not names:
        raise OptionError("no metrics requested")
    return tuple(dict.fromkeys(names))


def evaluate(
    ir: np.ndarray,
    vi: np.ndarray,
    fused: np.ndarray,
    metrics: Iterable[str] | str | None = None,
    convention: str | Convention = "cddfuse",
    *,
    psnr: str | None = None,
) -> dict[str, float]:
    """Score one fused image against its two sources.

    ``ir``, ``vi``, ``fused``: uint8 grey (or RGB, converted with the CDDFuse grey rule) arrays of
    one shape; float arrays must be integer-valued 0..255 (see :func:`to_uint8`), else
    :class:`~litefuse.errors.InputError`. ``metrics``: names from :data:`METRICS`, default the
    convention's own set. ``convention``: ``cddfuse`` (default), ``tang``, ``vifb`` or ``liu``;
    ``psnr='textbook'`` overrides the PSNR kind. Returns ``{name: value}`` in the requested order.
    """
    conv = get_convention(convention, psnr=psnr)
    names = resolve_metrics(metrics, conv)
    a, b, f = check_triple(ir, vi, fused)
    sides = {n: min_side(n, conv) for n in names}
    small = [f"{n} needs {side}" for n, side in sides.items() if min(f.shape) < side]
    if small:
        h, w = f.shape
        raise InputError(f"{w}×{h} pixels is too small: {', '.join(small)} pixels on each side")
    # NaN where a reference gives NaN, no warning; Qs and Qw computed from one set of maps
    with np.errstate(divide="ignore", invalid="ignore"), structural.shared_maps():
        return {name: float(_TABLE[name][2](conv, a, b, f)) for name in names}
