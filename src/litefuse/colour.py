"""BT.601 YCbCr conversion used to fuse colour images on luminance only.

The coefficients (docs/models.md, "Colour, sizes and ranges") are the same full-range BT.601
transform the DWSFusion, DenseFuse and CDDFuse test scripts use, so a
fused result is comparable with theirs. Works on numpy arrays and torch tensors alike, with
the channel axis last (``..., 3``).
"""

from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np

Array = TypeVar("Array")

_BLOCK_ROWS = 256  # rows per block: a few MB of temporaries even for a 6000-pixel-wide frame


def _by_rows(fn: Callable[..., tuple[np.ndarray, ...]], *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """``fn(*arrays)`` for an element-wise ``fn``, computed in blocks of rows.

    The result is identical to one call, but the temporaries of ``fn``'s expression exist for
    one block at a time instead of the whole frame (several full-size planes otherwise: 96 MB
    each at 6000×4000 float32); only the outputs are allocated at full size.
    """
    n = arrays[0].shape[0] if arrays[0].ndim else 0
    if n <= _BLOCK_ROWS:
        return fn(*arrays)
    outs: tuple[np.ndarray, ...] = ()
    for i in range(0, n, _BLOCK_ROWS):
        parts = fn(*(x[i : i + _BLOCK_ROWS] for x in arrays))
        if not outs:
            outs = tuple(np.empty((n, *p.shape[1:]), p.dtype) for p in parts)
        for out, part in zip(outs, parts):
            out[i : i + _BLOCK_ROWS] = part
    return outs


def _rgb_to_ycbcr(rgb: Array) -> tuple[Array, Array, Array]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = 0.713 * (r - y) + 0.5
    cb = 0.564 * (b - y) + 0.5
    return y, cb, cr


def rgb_to_ycbcr(rgb: Array) -> tuple[Array, Array, Array]:
    """Split RGB in [0, 1] (channels last) into Y, Cb, Cr, each in [0, 1]."""
    if isinstance(rgb, np.ndarray) and rgb.ndim > 1:
        return _by_rows(_rgb_to_ycbcr, rgb)
    return _rgb_to_ycbcr(rgb)


def _ycbcr_to_rgb(y: Array, cb: Array, cr: Array) -> tuple[Array]:
    r = y + 1.403 * (cr - 0.5)
    g = y - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5)
    b = y + 1.773 * (cb - 0.5)
    if isinstance(y, np.ndarray):
        return (np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0),)
    import torch

    return (torch.stack([r, g, b], dim=-1).clamp(0.0, 1.0),)


def ycbcr_to_rgb(y: Array, cb: Array, cr: Array) -> Array:
    """Inverse of :func:`rgb_to_ycbcr`, clamped to [0, 1], channels last."""
    if isinstance(y, np.ndarray):
        return _by_rows(_ycbcr_to_rgb, y, cb, cr)[0]
    return _ycbcr_to_rgb(y, cb, cr)[0]


def fuse_chroma(cb_a: Array, cr_a: Array, cb_b: Array, cr_b: Array) -> tuple[Array, Array]:
    """Blend the chroma of two colour sources (multi-exposure / multi-focus pairs).

    Each chroma plane is weighted per pixel by its saturation ``|C − 0.5|``, so the more
    colourful source wins and a neutral (grey) source contributes nothing; where both are
    neutral the plain mean is used. numpy arrays or torch tensors (on any device).
    """
    if not isinstance(cb_a, np.ndarray):
        return _blend_chroma(cb_a, cb_b)[0], _blend_chroma(cr_a, cr_b)[0]
    return _by_rows(_blend_chroma, cb_a, cb_b)[0], _by_rows(_blend_chroma, cr_a, cr_b)[0]


def _blend_chroma(c1: Array, c2: Array) -> tuple[Array]:
    w1, w2 = abs(c1 - 0.5), abs(c2 - 0.5)
    total = w1 + w2
    if isinstance(c1, np.ndarray):
        mixed = np.where(total > 1e-8, (c1 * w1 + c2 * w2) / np.maximum(total, 1e-8), 0.5 * (c1 + c2))
        return (mixed.astype(c1.dtype, copy=False),)
    import torch

    return (torch.where(total > 1e-8, (c1 * w1 + c2 * w2) / total.clamp(min=1e-8), 0.5 * (c1 + c2)),)
