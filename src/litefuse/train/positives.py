"""Positive samples: the best classical fusion of each training pair, chosen once and cached.

AE-Net's positive-sample loss pulls the network towards the best result a bank of existing
fusers gives for the same pair. litefuse's bank is its five classical fusers, in this order::

    BANK = (mean, max, laplacian, wavelet, gff)

**Score.** Each candidate is scored with five fusion metrics of :mod:`litefuse.metrics`
(cddfuse convention), all "higher is better"::

    SCORE_METRICS = (EN, SF, MI, SCD, Qabf)

information content (EN), detail (SF), information taken from the sources (MI), complementary
information transferred (SCD) and edge preservation (Qabf). VIF, the usual fifth, is left out
for cost: it alone takes about twice as long as the other four together.

Per pair, every metric is min–max normalised over the five candidates (a metric on which all
candidates tie contributes 0, an undefined value — NaN — counts as the worst) and the normalised values are summed; the positive sample is
the candidate with the highest sum (``argmax``; ties go to the earlier fuser in ``BANK``).
Normalising per pair makes the five metrics count equally whatever their units (bits, grey
levels, ratios).

**Working size.** The candidates are scored on the pair resized (Pillow ``BOX``, area average)
so that its longer side is at most ``work_size`` pixels (default 256; smaller pairs are scored as
they are). Only the winner is then computed at the pair's full resolution, which is the
positive sample. This keeps the one-off cost to about 0.5 s per pair on one CPU thread (measured:
288 s for the 595 development pairs on a 2-core machine busy with two other training runs)
instead of five full-resolution fusions and 25 full-resolution metric evaluations.

**Cache.** :class:`litefuse.train.teachers.TeacherCache` stores the result as the ``"bank"``
teacher, keyed by both sources' pixels and :func:`bank_signature` (bank, metrics, rule, working
size, version), so a changed pixel, bank or scoring rule all miss the cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


__all__ = [
    "BANK",
    "SCORE_METRICS",
    "WORK_SIZE",
    "Positive",
    "bank_signature",
    "choose_positive",
    "score_totals",
]

BANK: tuple[str, ...] = ("mean", "max", "laplacian", "wavelet", "gff")
SCORE_METRICS: tuple[str, ...] = ("EN", "SF", "MI", "SCD", "Qabf")
WORK_SIZE = 256
_VERSION = 1  # bump when the choice procedure changes (invalidates every cached entry)


def bank_signature(work_size: int = WORK_SIZE) -> str:
    """Everything besides the pixels that decides a positive sample (part of the cache key)."""
    return f"litefuse-positive/v{_VERSION};bank={','.join(BANK)};score={','.join(SCORE_METRICS)}:minmax-sum;work={work_size}"


def score_totals(scores: np.ndarray) -> np.ndarray:
    """Per-candidate sum of per-metric min–max normalised scores; ``scores`` is (candidates, metrics)."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    lo = np.where(finite, scores, np.inf).min(axis=0)
    hi = np.where(finite, scores, -np.inf).max(axis=0)
    span = hi - lo
    ok = finite & (span > 0)  # an undefined score (e.g. SCD of a constant difference) counts as the worst
    norm = np.where(ok, (scores - lo) / np.where(span > 0, span, 1.0), 0.0)
    return norm.sum(axis=1)


@dataclass(frozen=True)
class Positive:
    """A pair's positive sample: the ``uint8`` image, the winning fuser and the raw scores."""

    image: np.ndarray
    method: str
    scores: np.ndarray  # (len(BANK), len(SCORE_METRICS)) at the working size

    @property
    def totals(self) -> np.ndarray:
        return score_totals(self.scores)


_FUSERS: dict[str, torch.nn.Module] = {}


def _fuser(name: str) -> torch.nn.Module:
    if name not in _FUSERS:
        from ..registry import load_model

        _FUSERS[name] = load_model(name, device="cpu")
    return _FUSERS[name]


def _fuse_u8(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ta = torch.from_numpy(np.ascontiguousarray(a)).float().div_(255.0)[None, None]
    tb = torch.from_numpy(np.ascontiguousarray(b)).float().div_(255.0)[None, None]
    with torch.no_grad():
        out = _fuser(name)(ta, tb)[0, 0].numpy()
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _resize_u8(img: np.ndarray, work_size: int) -> np.ndarray:
    h, w = img.shape
    scale = work_size / max(h, w)
    if scale >= 1.0:
        return img
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return np.array(Image.fromarray(img).resize(size, Image.Resampling.BOX))


def choose_positive(a: np.ndarray, b: np.ndarray, work_size: int = WORK_SIZE) -> Positive:
    """Score every fuser of :data:`BANK` on ``(a, b)`` (``uint8`` H×W) at the working size and
    return the winner's full-resolution fusion (see the module docstring)."""
    from ..metrics import evaluate

    if a.shape != b.shape or a.ndim != 2 or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"expected two uint8 H×W arrays of one shape, got {a.dtype} {a.shape} and {b.dtype} {b.shape}")
    sa, sb = _resize_u8(a, work_size), _resize_u8(b, work_size)
    fused = {name: _fuse_u8(name, sa, sb) for name in BANK}
    with np.errstate(all="ignore"):  # undefined scores become NaN and count as the worst
        scores = np.array([[evaluate(sa, sb, fused[name], SCORE_METRICS)[m] for m in SCORE_METRICS] for name in BANK])
    winner = BANK[int(np.argmax(score_totals(scores)))]
    image = fused[winner] if sa is a else _fuse_u8(winner, a, b)  # not resized: already full size
    return Positive(image, winner, scores)
