"""Modulated deformable 3x3 convolution with DCNv2 semantics, in pure PyTorch (no mmcv or
torchvision): :func:`modulated_deform_conv3x3` (any offsets, one ``grid_sample``) and
:func:`dilated_deform_conv3x3` (taps at a per-pixel dilation, as FADC uses them: shifted
``lerp``s instead of a sampling grid, about 4x faster on CPU; one gather on GPUs and under
``torch.compile``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "deform_conv_from_grid",
    "dilated_deform_conv3x3",
    "dilation_grid",
    "modulated_deform_conv3x3",
    "offsets_to_grid",
]

# --------------------------------------------------------------------------------------------
# modulated deformable convolution (DCNv2 semantics)
# --------------------------------------------------------------------------------------------

# DCN tap layout of a 3x3 kernel: (dy, dx) pairs, row major from (-1, -1) to (1, 1)
_TAP_LIST = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
_TAPS = torch.tensor(_TAP_LIST, dtype=torch.float32)


def _tap_offsets(dtype: torch.dtype, device: torch.device | str | None) -> tuple[Tensor, Tensor]:
    """The taps' (dy, dx) of :data:`_TAPS` as two (9,) tensors made on ``device`` from index
    arithmetic (no host tensor, nothing for ``torch.compile`` to copy in)."""
    k = torch.arange(9, device=device)
    return (torch.div(k, 3, rounding_mode="floor") - 1).to(dtype), (k % 3 - 1).to(dtype)


def _tap_grid(h: int, w: int, hp: int, wp: int, device: torch.device | str | None = None) -> Tensor:
    """Normalised (x, y) sampling grid of the 9 undeformed taps, shape (9, h, w, 2), float64 on
    ``device`` (default: the CPU); callers round it once to the dtype they sample in.

    Output pixel (i, j) reads the unpadded-conv window of a ``hp x wp`` input centred at
    (i + 1, j + 1); coordinates are normalised for ``grid_sample(align_corners=True)``.
    Built on ``device`` itself: under ``torch.compile`` a CPU-built grid would put CPU ops and
    a host-to-device copy into every call of a GPU graph (and stop CUDA graphs).
    """
    sy, sx = 2.0 / max(hp - 1, 1), 2.0 / max(wp - 1, 1)
    ty, tx = _tap_offsets(torch.float64, device)
    ys = torch.arange(h, dtype=torch.float64, device=device) + 1.0
    xs = torch.arange(w, dtype=torch.float64, device=device) + 1.0
    gy = (ys[None, :, None] + ty[:, None, None]) * sy - 1.0  # (9, h, 1)
    gx = (xs[None, None, :] + tx[:, None, None]) * sx - 1.0  # (9, 1, w)
    return torch.stack(torch.broadcast_tensors(gx, gy), dim=-1)


def _grid_constants(
    h: int, w: int, hp: int, wp: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """The base grid (9, h, w, 2), one input pixel in normalised (x, y) (2,) and the taps'
    (dx, dy) steps (9, 2), on ``device`` in ``dtype``, built there (no host tensor). Built outside
    inference mode: the cached copies must stay usable under autograd."""
    with torch.inference_mode(False):
        sx, sy = 2.0 / max(wp - 1, 1), 2.0 / max(hp - 1, 1)
        # built in float64 and rounded once: a float64 model samples as precisely as its shift path
        scale = torch.where(torch.arange(2, device=device) == 0, torch.full((2,), sx, dtype=torch.float64, device=device), sy)
        ty, tx = _tap_offsets(torch.float64, device)
        steps = torch.stack([tx, ty], dim=1) * scale
        return tuple(t.to(device, dtype).contiguous() for t in (_tap_grid(h, w, hp, wp, device), scale, steps))


# made once per size and device: a GPU call then copies nothing from the host (the base grid of a
# 640x480 frame is 22 MB)
_cached_grid_constants = lru_cache(maxsize=8)(_grid_constants)


def _grid_dtype(dtype: torch.dtype) -> torch.dtype:
    """Sampling grids are float32 at least: a half-precision grid places taps up to a pixel off
    on a 640-pixel row (bf16 keeps 8 bits: steps of 2^-7 of the half width), and ATen's CPU
    ``grid_sample`` returned NaN for finite fp16 inputs; autocast runs ``grid_sample`` in float32
    for the same reasons."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _constants_like(x: Tensor, h: int, w: int, hp: int, wp: int) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_grid_constants` for ``x``'s device, in its grid dtype (:func:`_grid_dtype`): cached
    in eager mode, traced afresh under ``torch.compile`` (which would ignore the cache, with a
    warning)."""
    make = _grid_constants if torch.compiler.is_compiling() else _cached_grid_constants
    return make(h, w, hp, wp, x.device, _grid_dtype(x.dtype))


def offsets_to_grid(offset: Tensor, in_hw: tuple[int, int]) -> Tensor:
    """DCN offsets (B, 18, H, W), (dy, dx) per tap, to a ``grid_sample`` grid (B, 9, H, W, 2)."""
    b, _, h, w = offset.shape
    base, scale, _ = _constants_like(offset, h, w, *in_hw)
    off = offset.view(b, 9, 2, h, w).flip(2).permute(0, 1, 3, 4, 2)  # (B, 9, H, W, [dx, dy])
    return base + off.to(base.dtype) * scale


def _deform_sample(x: Tensor, grid: Tensor) -> Tensor:
    """Bilinear samples of ``x`` (B, C, Hp, Wp) at ``grid`` (B, 9, H, W, 2) -> (B, C, 9, H, W).

    ``align_corners=True`` with zero padding is exactly DCNv2's bilinear rule: corners that
    fall outside the input contribute zero. Sampled in the grid's dtype (float32 for fp16 / bf16
    maps, see :func:`_grid_dtype`), returned in ``x``'s.
    """
    b, k, h, w, _ = grid.shape
    out = F.grid_sample(x.to(grid.dtype), grid.view(b, k * h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.view(b, x.shape[1], k, h, w).to(x.dtype)


def deform_conv_from_grid(x: Tensor, grid: Tensor, mask: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Modulated deformable 3x3 conv, no padding: ``sum_{c,k} W[o,c,k] * m_k * x(p_k)``.

    ``weight`` is (O, C, 3, 3) or per sample (B, O, C, 3, 3); ``mask`` is (B, 9, H, W).
    """
    b, k, h, w, _ = grid.shape
    cols = _deform_sample(x, grid) * mask.unsqueeze(1)  # (B, C, 9, H, W)
    c = cols.shape[1]
    wmat = weight.reshape(-1, weight.shape[-4], c * k)  # (B or 1, O, C*9)
    out = torch.matmul(wmat, cols.view(b, c * k, h * w)).view(b, -1, h, w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def modulated_deform_conv3x3(
    x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, bias: Tensor | None = None
) -> Tensor:
    """DCNv2 3x3 convolution (stride 1, padding 0, dilation 1, one deformable group).

    x: (B, C, H+2, W+2); offset: (B, 18, H, W) as (dy, dx) per tap; mask: (B, 9, H, W);
    weight: (O, C, 3, 3) or per sample (B, O, C, 3, 3). Matches ``torchvision.ops.deform_conv2d``.
    """
    return deform_conv_from_grid(x, offsets_to_grid(offset, x.shape[-2:]), mask, weight, bias)


def dilation_grid(dilation: Tensor, in_hw: tuple[int, int]) -> Tensor:
    """``grid_sample`` grid (B, 9, H, W, 2) of the taps ``p + dilation(p) * (dy, dx)``."""
    b, _, h, w = dilation.shape
    base, _, steps = _constants_like(dilation, h, w, *in_hw)
    return torch.addcmul(base, (dilation - 1).to(base.dtype).view(b, 1, h, w, 1), steps.view(9, 1, 1, 2))


def dilated_deform_conv3x3(
    x: Tensor,
    dilation: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    max_levels: int = 4,
    sampler: str = "auto",
) -> Tensor:
    """Modulated deformable 3x3 conv whose taps sit at ``p + dilation(p) * (dy, dx)``.

    Equal to :func:`modulated_deform_conv3x3` with offsets ``(dilation - 1) * (dy, dx)``, but
    exploits that all nine taps share one per-pixel dilation ``s = n + t``: every bilinear
    corner is an integer shift by ``+-n`` or ``+-(n + 1)`` and every corner weight is ``t`` or
    ``1 - t``. So the channel contraction runs once on the (zero-extended) input and the
    sampling is a handful of shifted ``lerp``s -- no sampling grid, no gathers. Pixels are
    grouped by ``n``; with more than ``max_levels`` distinct values it falls back to
    ``grid_sample``.

    ``sampler``: ``"shift"`` (the above), ``"grid"`` (one ``grid_sample`` gather over all nine
    taps, then one matmul) or ``"auto"``: shifts on the CPU, the gather on other devices and
    under ``torch.compile`` -- on a GPU the shift path's dozens of small kernels and its host
    synchronisation (the dilation levels are read back to pick the shifts) cost more than one
    fused gather, and a compiler cannot trace data-dependent shifts without graph breaks.

    x: (B, C, H+2, W+2); dilation: (B, 1, H, W) >= 0; mask: (B, 9, H, W);
    weight: (O, C, 3, 3) or per sample (B, O, C, 3, 3).
    """
    b, c, hp, wp = x.shape
    h, w = hp - 2, wp - 2
    if sampler not in ("auto", "shift", "grid"):
        raise ValueError(f"unknown sampler {sampler!r}; choose 'auto', 'shift' or 'grid'")
    if sampler == "grid" or (sampler == "auto" and (x.device.type != "cpu" or torch.compiler.is_compiling())):
        return deform_conv_from_grid(x, dilation_grid(dilation, (hp, wp)), mask, weight, bias)
    n = torch.floor(dilation.detach())  # piecewise constant: no gradient, like grid_sample
    lo, hi = (float(v) for v in torch.aminmax(n))
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi - lo >= max_levels:
        return deform_conv_from_grid(x, dilation_grid(dilation, (hp, wp)), mask, weight, bias)
    lo, hi = int(lo), int(hi)
    track_grad = torch.is_grad_enabled() and any(v.requires_grad for v in (x, dilation, mask, weight))
    t = dilation - n
    pad = hi + 1
    z = F.pad(x, (pad, pad, pad, pad))  # zeros: DCN samples outside the input read 0
    hz, wz = z.shape[-2:]
    o = weight.shape[-4]
    wk = weight.reshape(-1, o, c, 9)
    if o <= c:
        # few outputs: contract channels first, once per tap, on the whole extended input,
        # then interpolate O planes per tap
        src = torch.matmul(wk.transpose(2, 3).reshape(-1, o * 9, c), z.view(b, c, hz * wz)).view(b, o, 9, hz, wz)
        out = src[:, :, 4, pad + 1 : pad + 1 + h, pad + 1 : pad + 1 + w] * mask[:, 4:5]  # centre tap
        acc = None
    else:
        # few inputs: interpolate the C input channels per tap into one (B, 9, C, H, W) buffer,
        # then contract (c, k) with a single matmul. Under autograd the taps are stacked
        # instead of written in place.
        src = z.unsqueeze(2).expand(b, c, 9, hz, wz)
        centre = z[:, :, pad + 1 : pad + 1 + h, pad + 1 : pad + 1 + w] * mask[:, 4:5]
        if track_grad:
            acc: Tensor | list[Tensor | None] = [None] * 9
            acc[4] = centre
        else:
            acc = x.new_empty(b, 9, c, h, w)
            acc[:, 4] = centre
        out = None
    t, mask = t.to(src.dtype), mask.to(src.dtype)  # under autocast the tensors above differ in precision

    def at(k: int, dy: int, dx: int) -> Tensor:  # tap k's plane shifted by (dy, dx): (B, *, H, W)
        r0, c0 = pad + 1 + dy, pad + 1 + dx
        return src[:, :, k, r0 : r0 + h, c0 : c0 + w]

    for level in range(lo, hi + 1):
        m = mask if lo == hi else mask * (n == level)
        n0, n1 = level, level + 1
        for k, (ky, kx) in enumerate(_TAP_LIST):
            if k == 4:
                continue
            # the last lerp of a tap writes straight into the buffer on the first level
            dst = acc[:, k] if isinstance(acc, Tensor) and level == lo else None
            if ky == 0:
                v = torch.lerp(at(k, 0, kx * n0), at(k, 0, kx * n1), t, out=dst)
            elif kx == 0:
                v = torch.lerp(at(k, ky * n0, 0), at(k, ky * n1, 0), t, out=dst)
            else:
                top = torch.lerp(at(k, ky * n0, kx * n0), at(k, ky * n0, kx * n1), t)
                bottom = torch.lerp(at(k, ky * n1, kx * n0), at(k, ky * n1, kx * n1), t)
                v = torch.lerp(top, bottom, t, out=dst)
            if acc is None:
                out = out.addcmul_(v, m[:, k : k + 1])
            elif isinstance(acc, list):
                acc[k] = v * m[:, k : k + 1] if acc[k] is None else acc[k] + v * m[:, k : k + 1]
            elif dst is not None:
                dst.mul_(m[:, k : k + 1])
            else:
                acc[:, k].addcmul_(v, m[:, k : k + 1])
    if acc is None:
        return out if bias is None else out.add_(bias.view(1, -1, 1, 1))
    wmat = wk.transpose(2, 3).reshape(-1, o, 9 * c).expand(b, o, 9 * c)  # (k, c) order, like acc
    cols = (torch.stack(acc, dim=1) if isinstance(acc, list) else acc).view(b, 9 * c, h * w)
    if bias is None:
        return torch.bmm(wmat, cols).view(b, o, h, w)
    return torch.baddbmm(bias.view(1, o, 1).expand(b, o, h * w), wmat, cols).view(b, o, h, w)
