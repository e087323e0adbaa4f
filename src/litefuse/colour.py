"""BT.601 YCbCr conversion used to fuse colour images on luminance only.

The coefficients are those of ``shared/spec/MODELS.md`` ("Colour, sizes and ranges"): the
same full-range BT.601 transform the DWSFusion, DenseFuse and CDDFuse test scripts use, so a
fused result is comparable with theirs. Works on numpy arrays and torch tensors alike, with
the channel axis last (``..., 3``).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

Array = TypeVar("Array")


def rgb_to_ycbcr(rgb: Array) -> tuple[Array, Array, Array]:
    """Split RGB in [0, 1] (channels last) into Y, Cb, Cr, each in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = 0.713 * (r - y) + 0.5
    cb = 0.564 * (b - y) + 0.5
    return y, cb, cr


def ycbcr_to_rgb(y: Array, cb: Array, cr: Array) -> Array:
    """Inverse of :func:`rgb_to_ycbcr`, clamped to [0, 1], channels last."""
    r = y + 1.403 * (cr - 0.5)
    g = y - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5)
    b = y + 1.773 * (cb - 0.5)
    if isinstance(y, np.ndarray):
        return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0)
    import torch

    return torch.stack([r, g, b], dim=-1).clamp(0.0, 1.0)


def fuse_chroma(cb_a: np.ndarray, cr_a: np.ndarray, cb_b: np.ndarray, cr_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blend the chroma of two colour sources (multi-exposure / multi-focus pairs).

    Each chroma plane is weighted per pixel by its saturation ``|C − 0.5|``, so the more
    colourful source wins and a neutral (grey) source contributes nothing; where both are
    neutral the plain mean is used.
    """

    def blend(c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
        w1, w2 = np.abs(c1 - 0.5), np.abs(c2 - 0.5)
        total = w1 + w2
        mixed = np.where(total > 1e-8, (c1 * w1 + c2 * w2) / np.maximum(total, 1e-8), 0.5 * (c1 + c2))
        return mixed.astype(c1.dtype, copy=False)

    return blend(cb_a, cb_b), blend(cr_a, cr_b)
