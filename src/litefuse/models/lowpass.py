"""Half-spectrum low-pass masks of DWSFusion's FreqSelect (FADC), per frame size.

Built with numpy in eager mode (cached per size; uploaded once per size and device off the CPU)
and from index arithmetic under ``torch.compile``, bit-identical either way.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

__all__ = ["lowpass_masks_like"]


@lru_cache(maxsize=32)
def _lowpass_masks(h: int, w: int, factors: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Half-spectrum low-pass masks for ``irfft``, one (h, k_f) float32 array per factor.

    The release keeps the centred box rows ``round(h/2 - h/2f) : round(h/2 + h/2f)`` (same for
    columns) of the fftshift-ed spectrum and takes the real part of the inverse FFT. The real
    part equals the inverse FFT with the mask symmetrised, ``(M(k) + M(-k)) / 2``, which is
    Hermitian, so the half spectrum suffices. Each mask is cropped to its ``k_f`` leading
    non-zero columns: the inverse transform then only runs over those (``irfft`` zero-fills).
    NumPy, not torch: the masks depend on the size only, so a traced or exported graph takes
    them as constants.
    """
    masks = []
    for f in factors:
        box = np.zeros((h, w))
        (r0, r1), (c0, c1) = _box(h, f), _box(w, f)
        box[r0:r1, c0:c1] = 1.0
        m = np.fft.ifftshift(box)  # back to unshifted frequency layout
        m_neg = np.roll(m[::-1, ::-1], shift=(1, 1), axis=(0, 1))  # M(-k)
        half = ((m + m_neg) / 2)[:, : w // 2 + 1]
        nonzero = np.flatnonzero(np.abs(half).sum(0))
        k = int(nonzero.max()) + 1 if len(nonzero) else 1
        masks.append(np.ascontiguousarray(half[:, :k], dtype=np.float32))
    return tuple(masks)


def lowpass_masks_like(x: Tensor, factors: tuple[int, ...]) -> list[Tensor]:
    """the low-pass masks for ``x``'s size as tensors on its device and dtype. On a GPU they
    are uploaded once per size (cached), not copied from host memory on every call."""
    h, w = (int(v) for v in x.shape[-2:])
    if torch.compiler.is_compiling():
        return _traced_masks(h, w, factors, x)
    if x.device.type == "cpu":
        return [torch.from_numpy(m).to(x) for m in _lowpass_masks(h, w, factors)]  # no copy on CPU
    return list(_device_masks(h, w, factors, x.device, x.dtype))


def _traced_masks(h: int, w: int, factors: tuple[int, ...], like: Tensor) -> list[Tensor]:
    """:func:`_lowpass_masks` from index arithmetic in torch ops, for ``torch.compile``
    (``from_numpy`` inside a compiled region under ``inference_mode`` trips a dynamo guard).

    The box is separable: ``ifftshift`` reads index ``(i + n // 2) % n`` of the centred box, and
    ``M(-k)`` reads index ``-i % n`` of that, so each mask is ``(R C + R' C') / 2`` of 1-D masks.
    """
    u = torch.arange(h, device=like.device)
    v = torch.arange(w // 2 + 1, device=like.device)

    def inside(i, n: int, lo: int, hi: int):
        j = (i + n // 2) % n
        return (j >= lo) & (j < hi)

    masks = []
    for f in factors:
        (r0, r1), (c0, c1) = _box(h, f), _box(w, f)
        cols = [c for c in range(w // 2 + 1) if inside(c, w, c0, c1) or inside(-c % w, w, c0, c1)]
        k = cols[-1] + 1 if cols and r1 > r0 else 1
        pos = inside(u, h, r0, r1)[:, None] & inside(v[:k], w, c0, c1)[None, :]
        neg = inside(-u % h, h, r0, r1)[:, None] & inside(-v[:k] % w, w, c0, c1)[None, :]
        masks.append(0.5 * pos.to(like.dtype) + 0.5 * neg.to(like.dtype))
    return masks


def _box(n: int, f: int) -> tuple[int, int]:
    """The centred box's index range ``[lo, hi)`` along an axis of ``n`` for factor ``f``."""
    return round(n / 2 - n / (2 * f)), round(n / 2 + n / (2 * f))


@lru_cache(maxsize=32)
def _device_masks(h: int, w: int, factors: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
    with torch.inference_mode(False):  # cached tensors must stay usable under autograd
        return tuple(torch.from_numpy(m).to(device, dtype) for m in _lowpass_masks(h, w, factors))
