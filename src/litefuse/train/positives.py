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

**Cache.** One ``.npz`` per pair under the cache root (``<root>/<key[:2]>/<key>.npz``) holding the
``uint8`` positive sample, the winner's name and the ``5×5`` raw score table. The key is the
SHA-256 of both sources' ``uint8`` luminance pixels (shape, dtype and bytes) and of
:func:`bank_signature` (bank, metrics, rule, working size, version), so a changed pixel, a
changed bank or a changed scoring rule all miss the cache; file names and paths play no part.
Writes go to a temporary file in the same folder and are renamed into place (atomic), so
concurrent builders and killed runs never leave a half-written entry; an unreadable entry is
recomputed. Cache root: the ``root`` argument, else ``$LITEFUSE_POSITIVE_CACHE``, else
``$XDG_CACHE_HOME/litefuse/positives``, else ``~/.cache/litefuse/positives``.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .._files import publish, temporary_beside

__all__ = [
    "BANK",
    "SCORE_METRICS",
    "WORK_SIZE",
    "Positive",
    "PositiveCache",
    "bank_signature",
    "choose_positive",
    "default_cache_dir",
    "pair_key",
    "score_totals",
]

BANK: tuple[str, ...] = ("mean", "max", "laplacian", "wavelet", "gff")
SCORE_METRICS: tuple[str, ...] = ("EN", "SF", "MI", "SCD", "Qabf")
WORK_SIZE = 256
_VERSION = 1  # bump when the choice procedure changes (invalidates every cached entry)


def bank_signature(work_size: int = WORK_SIZE) -> str:
    """Everything besides the pixels that decides a positive sample (part of the cache key)."""
    return f"litefuse-positive/v{_VERSION};bank={','.join(BANK)};score={','.join(SCORE_METRICS)}:minmax-sum;work={work_size}"


def pair_key(a: np.ndarray, b: np.ndarray, signature: str) -> str:
    """SHA-256 hex digest of both sources' pixels (with shape and dtype) and ``signature``."""
    h = hashlib.sha256()
    for img in (a, b):
        img = np.ascontiguousarray(img)
        h.update(f"{img.dtype.str}{img.shape};".encode())
        h.update(img.tobytes())
    h.update(signature.encode())
    return h.hexdigest()


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


def default_cache_dir() -> Path:
    """``$LITEFUSE_POSITIVE_CACHE``, else ``$XDG_CACHE_HOME/litefuse/positives``, else ``~/.cache/litefuse/positives``."""
    if os.environ.get("LITEFUSE_POSITIVE_CACHE"):
        return Path(os.environ["LITEFUSE_POSITIVE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "litefuse" / "positives"


class PositiveCache:
    """Positive samples on disk, keyed by pair content (see the module docstring)."""

    def __init__(self, root: str | Path | None = None, work_size: int = WORK_SIZE) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self.work_size = int(work_size)
        self.signature = bank_signature(self.work_size)
        self.hits = self.misses = 0

    def key(self, a: np.ndarray, b: np.ndarray) -> str:
        return pair_key(a, b, self.signature)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def load(self, a: np.ndarray, b: np.ndarray) -> Positive | None:
        """The cached positive of ``(a, b)``, or ``None`` (absent or unreadable)."""
        path = self.path(self.key(a, b))
        try:
            with np.load(path, allow_pickle=False) as z:
                image, method, scores = z["positive"], str(z["method"]), z["scores"]
        except (OSError, KeyError, ValueError, EOFError):
            return None
        if image.shape != a.shape or image.dtype != np.uint8 or method not in BANK:
            return None
        return Positive(image, method, scores)

    def store(self, a: np.ndarray, b: np.ndarray, positive: Positive) -> Path:
        """Write ``positive`` atomically (temporary file beside the entry, then rename)."""
        path = self.path(self.key(a, b))
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary_beside(path, suffix=".npz.tmp") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, positive=positive.image, method=np.array(positive.method),
                                    scores=positive.scores, signature=np.array(self.signature))
            publish(tmp, path)
        return path

    def get(self, a: np.ndarray, b: np.ndarray) -> Positive:
        """Cached positive of ``(a, b)``, computed and stored on a miss."""
        hit = self.load(a, b)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        positive = choose_positive(a, b, self.work_size)
        self.store(a, b, positive)
        return positive

    def build(self, names: Sequence[str], pairs: Sequence[tuple[np.ndarray, np.ndarray]], progress: bool = True,
              console=None) -> list[np.ndarray]:
        """Positive images of many pairs (a :class:`~litefuse.data.PairCropDataset` ``targets``
        function), with a rich progress bar; prints hits, misses and time."""
        from rich.console import Console

        console = console or Console(stderr=True, highlight=False)
        start, hits0, misses0 = time.monotonic(), self.hits, self.misses
        out: list[np.ndarray] = []
        if progress and len(pairs):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            with Progress(TextColumn("[bold]positive samples"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          TimeRemainingColumn(), TextColumn("{task.fields[name]}"), console=console) as bar:
                task = bar.add_task("positives", total=len(pairs), name="")
                for name, (a, b) in zip(names, pairs):
                    bar.update(task, name=name)
                    out.append(self.get(a, b).image)
                    bar.advance(task)
        else:
            out = [self.get(a, b).image for a, b in pairs]
        console.print(
            f"positive samples: {len(pairs)} pairs, {self.hits - hits0} cached, {self.misses - misses0} computed "
            f"({time.monotonic() - start:.0f} s; cache {self.root})",
            markup=False,
        )
        return out
