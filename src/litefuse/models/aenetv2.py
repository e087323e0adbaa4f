"""AE-Netv2: a tiny, general two-source fusion network (Fang et al., Neurocomputing 2021).

The paper presents the design as the outcome of an architecture study (group, depthwise,
Inception, fire, ShuffleNet and multi-scale modules, with and without early pooling) but gives
no layer list. litefuse fixes one skeleton and makes the studied choices switchable::

    ir, vi ─ stacked on the batch axis ─ stem 3x3 ─┬─ skip fusion ──────────────┐
                                                   down 2x2 (stride 2 if pool)  │
                                                   fuse_at blocks, per source   │
                                                   fusion                       │
                                                   B - fuse_at blocks, fused    │
                                                   1x1 ─ up x2 (if pool) ────── + ─ head 3x3 ─ sigmoid

* Both sources go through the same stem, down-sampling and first ``fuse_at`` blocks, stacked
  on the batch axis: one call per layer, and the encoder cannot tell the sources apart.
* ``pool=True`` makes the 2x2 down-sampling conv stride 2, so the body runs on a quarter of
  the pixels; bilinear up-sampling and a full-resolution skip restore detail. ``pool=False``
  keeps the identical layers (same parameters) at stride 1: that is the study's comparison.
* Full resolution only carries ``skip_width`` channels through a handful of ops; the body runs
  at half resolution. Every conv follows the CPU policy of :mod:`litefuse.models.layers`
  (channels-last activations, one-output-channel convs as depthwise + channel sum).

Fusion modes (used on the body features and, with their own parameters, on the skip):

* ``"max"``      element-wise maximum — symmetric, parameter-free.
* ``"weighted"`` per-pixel softmax over the two sources of a shared 1x1 activity score —
  symmetric (swapping ``ir`` and ``vi`` gives the same output up to float rounding).
* ``"concat"``   concatenate + 1x1 conv — *not* symmetric: the 1x1 sees a fixed source order.

Output (``output``):

* ``"direct"`` — ``sigmoid`` of one head logit (the paper's form). It bounds the result to
  (0, 1) with a non-zero gradient everywhere, whereas a clamp zeroes the gradient of every
  out-of-range pixel and can stall a tiny network early in training.
* ``"blend"`` — a per-pixel weight map and a bounded residual,
  ``F = w·ir + (1 − w)·vi + ρ·tanh(r)`` with ``w = sigmoid(l)``, clamped to [0, 1]. The result
  is a local mixture of the sources' own pixels wherever the residual is small, which keeps
  their grey-level statistics (what MI, VIF and Qabf reward) and is easy for a tiny network to
  learn; ``ρ`` (``residual``, 0 = none) leaves room for contrast a teacher adds beyond either
  source. The head then has 2 output channels (1 with ``residual = 0``).
  ``select = κ > 0`` adds a selection prior to the weight's logit, ``l + κ·(ir − vi)`` with κ a
  learned scale starting at ``select``: an untrained network already picks the brighter source
  per pixel (a soft ``max(ir, vi)``, the strong classical baseline on infrared–visible pairs),
  and training learns where and how to depart from it.

CPU speed note: a 640x480 forward allocates ~40 MB of short-lived tensors. glibc's default
malloc returns them to the OS and page-faults them back on every call, which costs about as
much as the arithmetic; :func:`litefuse.runtime.keep_heap_resident`,
``THP_MEM_ALLOC_ENABLE=1`` (a PyTorch switch) or jemalloc/tcmalloc remove most of that.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from .layers import (  # Conv2d: nn.Conv2d under the shared CPU convolution policy
    Conv2d,
    channels_last,
    check_pair,
    conv_add_act,
    exporting,
    lerp,
    observed,
    upsample2x,
)

__all__ = [
    "AENetV2",
    "BLOCKS",
    "DEFAULT_CONFIG",
    "FUSIONS",
    "IVIF_CONFIG",
    "OUTPUTS",
    "STUDY_VARIANTS",
    "STUDY_WIDTHS",
    "SYMMETRIC_FUSIONS",
    "Conv2d",
    "Fusion",
    "aenetv2",
    "aenetv2_ivif",
    "shuffle_concat",
]


def _conv(
    cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, dilation: int = 1, bias: bool = True
) -> Conv2d:
    """``k x k`` convolution with 'same' padding (for stride 1, odd ``k``)."""
    return Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation, groups=groups, bias=bias)


def _act() -> nn.Module:
    return nn.ReLU(inplace=True)


# --------------------------------------------------------------------------------------------
# body blocks: every block maps (N, C, H, W) -> (N, C, H, W)
# Residuals are added in place into the freshly computed branch output (one full-size buffer
# fewer per block); a conv or cat does not keep its output for backward, so autograd is safe.
# --------------------------------------------------------------------------------------------


class StandardBlock(nn.Module):
    """Plain residual 3x3 conv: ``relu(x + conv(x))``. The reference point of the study."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv(channels, channels)
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or observed(self):  # training, or hooks that count the conv
            return self.act(self.conv(x).add_(x))
        # one pass on CPU: oneDNN's sum and ReLU post-ops (elsewhere the same three ops)
        return conv_add_act(x, x, self.conv.weight, self.conv.bias, padding=1)


class GroupBlock(nn.Module):
    """Grouped 3x3 conv (``groups`` times fewer weights) followed by a 1x1 that mixes groups."""

    def __init__(self, channels: int, groups: int = 4) -> None:
        super().__init__()
        self.conv = _conv(channels, channels, groups=groups)
        self.act1 = _act()
        self.mix = _conv(channels, channels, 1)
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.mix(self.act1(self.conv(x))).add_(x))


class DWSBlock(nn.Module):
    """Depthwise-separable conv (depthwise 3x3, pointwise 1x1, no activation in between as in
    Xception) with a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw = _conv(channels, channels, groups=channels, bias=False)
        self.pw = _conv(channels, channels, 1)
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pw(self.dw(x)).add_(x))


class InceptionBlock(nn.Module):
    """Inception-style block: four parallel paths — 1x1, 1x1→3x3, 1x1→3x3→3x3 (a factorised
    5x5) and avg-pool→1x1, each ``C/4`` wide (the 1x1 path takes the remainder) — concatenated,
    with a residual. The three leading 1x1 convs share one call (same maths, fewer ops)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 4:
            raise ValueError(f"inception block needs at least 4 channels, got {channels}")
        q = channels // 4
        self.splits = (channels - 3 * q, q, q)
        self.reduce = _conv(channels, channels - q, 1)
        self.act_r = _act()
        self.b3 = _conv(q, q)
        self.b5a = _conv(q, q)
        self.act_5 = _act()
        self.b5b = _conv(q, q)
        self.pool_proj = _conv(channels, q, 1)
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1, b3, b5 = self.act_r(self.reduce(x)).split(self.splits, dim=1)
        b3 = self.b3(b3)
        b5 = self.b5b(self.act_5(self.b5a(b5)))
        bp = self.pool_proj(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
        return self.act(torch.cat([b1, b3, b5, bp], dim=1).add_(x))


class FireBlock(nn.Module):
    """SqueezeNet fire module with bypass: squeeze 1x1 to ``C/squeeze``, expand with parallel
    1x1 and 3x3 convs (``C/2`` each), concatenate, add the input."""

    def __init__(self, channels: int, squeeze: int = 4) -> None:
        super().__init__()
        if channels % 2 or channels // squeeze < 1:
            raise ValueError(f"fire block needs even channels >= {squeeze}, got {channels}")
        s = channels // squeeze
        self.squeeze = _conv(channels, s, 1)
        self.act_s = _act()
        self.expand1 = _conv(s, channels // 2, 1)
        self.expand3 = _conv(s, channels // 2)
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.act_s(self.squeeze(x))
        return self.act(torch.cat([self.expand1(s), self.expand3(s)], dim=1).add_(x))


def shuffle_concat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``channel_shuffle(cat([a, b]), groups=2)`` (ShuffleNet) in one copy: channels come out
    interleaved ``a0, b0, a1, b1, ...``, built as a stack on the NHWC channel axis, which also
    returns a channels-last tensor (3x faster than cat + view/transpose on NHWC input)."""
    n, c, h, w = a.shape
    return torch.stack([a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)], dim=-1).view(n, h, w, 2 * c).permute(0, 3, 1, 2)


class ShuffleBlock(nn.Module):
    """ShuffleNetV2 basic unit: split channels in half, transform one half with
    1x1 → depthwise 3x3 → 1x1, concatenate with the untouched half, shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"shuffle block needs even channels, got {channels}")
        h = channels // 2
        self.half = h
        self.pw1 = _conv(h, h, 1)
        self.act1 = _act()
        self.dw = _conv(h, h, groups=h, bias=False)
        self.pw2 = _conv(h, h, 1)
        self.act2 = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep, x2 = x.split(self.half, dim=1)
        x2 = self.act2(self.pw2(self.dw(self.act1(self.pw1(x2)))))
        return shuffle_concat(keep, x2)


class MultiScaleBlock(nn.Module):
    """Multi-scale block: parallel depthwise 3x3 convs at dilations ``(1, 2, 3)`` (receptive
    fields 3, 5, 7), concatenated and merged by a 1x1, with a residual."""

    def __init__(self, channels: int, dilations: tuple[int, ...] = (1, 2, 3)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            _conv(channels, channels, groups=channels, dilation=d, bias=False) for d in dilations
        )
        self.merge = _conv(channels * len(dilations), channels, 1)
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.merge(torch.cat([b(x) for b in self.branches], dim=1)).add_(x))


BLOCKS: dict[str, Callable[[int], nn.Module]] = {
    "standard": StandardBlock,
    "group": GroupBlock,
    "dws": DWSBlock,
    "inception": InceptionBlock,
    "fire": FireBlock,
    "shuffle": ShuffleBlock,
    "multiscale": MultiScaleBlock,
}


# --------------------------------------------------------------------------------------------
# fusion of two feature streams
# --------------------------------------------------------------------------------------------

FUSIONS = ("concat", "max", "weighted")
OUTPUTS = ("direct", "blend")
SYMMETRIC_FUSIONS = ("max", "weighted")


def _halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two sources of a source-stacked batch. ``chunk``, not slicing: its backward
    concatenates instead of zero-filling; under ``torch.export`` a reshape, as ``chunk`` of a
    symbolic batch fixes the batch size the graph takes."""
    if exporting():
        a, b = x.unflatten(0, (2, -1)).unbind(0)
        return a, b
    a, b = x.chunk(2)
    return a, b


class Fusion(nn.Module):
    """Fuse the two halves of a source-stacked batch ``(2N, C, H, W) -> (N, C, H, W)``.

    Taking the stacked tensor lets ``"weighted"`` score both sources in one conv call. Its
    two-way softmax is written as ``sigmoid(s_a - s_b)`` and ``lerp`` (same maths, three ops
    instead of six at full resolution).
    """

    def __init__(self, channels: int, mode: str) -> None:
        super().__init__()
        if mode not in FUSIONS:
            raise ValueError(f"unknown fusion {mode!r}; choose from {', '.join(FUSIONS)}")
        self.mode = mode
        if mode == "concat":
            self.proj = _conv(2 * channels, channels, 1)
        elif mode == "weighted":
            self.score = _conv(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = _halves(x)
        scores = _halves(self.score(x)) if self.mode == "weighted" else ()
        return self.pair(a, b, *scores)

    def pair(self, a: torch.Tensor, b: torch.Tensor, s_a: torch.Tensor | None = None, s_b: torch.Tensor | None = None) -> torch.Tensor:
        """Fuse the two sources given apart (``s_a``, ``s_b``: their scores, when already known)."""
        if self.mode == "max":
            return torch.maximum(a, b)
        if self.mode == "concat":
            return self.proj(torch.cat([a, b], dim=1))
        if s_a is None or s_b is None:
            s_a, s_b = self.score(a), self.score(b)
        w = torch.sigmoid(s_a - s_b)  # softmax([s_a, s_b])[0]
        return lerp(b, a, w)


# --------------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------------


class AENetV2(nn.Module):
    """AE-Netv2 fusion network; ``forward(ir, vi)``: ``(N, 1, H, W)`` x2 in [0, 1] -> same.

    Args:
        block: body block type, a key of :data:`BLOCKS`.
        pool: down-sample by 2 before the body (``False``: the same layers at stride 1).
        width: body channels.
        num_blocks: number of body blocks ``B``.
        fusion: ``"concat"``, ``"max"`` or ``"weighted"``.
        skip_width: channels of the full-resolution stem / skip path.
        fuse_at: body blocks run per source (shared weights) before the fusion; the other
            ``B - fuse_at`` run once on the fused features. ``None``: all ``B`` before fusion.
        output: ``"direct"`` (sigmoid image) or ``"blend"`` (weight map + bounded residual).
        residual: bound ρ of the blend residual (``"blend"`` only; 0 = pure weight map).
        select: initial scale κ of the blend's selection prior (``"blend"`` only; 0 = none).
        border: pixels of edge replication around both sources, cropped off the result. The
            convs pad with zeros, which a network trained on crops turns into a frame around
            the image (the shipped ``aenetv2``: +45 grey levels at the edge of two flat sources);
            16 pixels, about the receptive field of the default, remove it. 0 = none.
    """

    def __init__(
        self,
        block: str = "dws",
        pool: bool = True,
        width: int = 16,
        num_blocks: int = 4,
        fusion: str = "weighted",
        skip_width: int = 8,
        fuse_at: int | None = 2,
        output: str = "direct",
        residual: float = 0.0,
        select: float = 0.0,
        border: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(border, bool) or not isinstance(border, int) or border < 0:
            raise ValueError(f"border must be a whole number of pixels >= 0, got {border!r}")
        self.border = border
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; choose from {', '.join(OUTPUTS)}")
        if residual < 0 or (residual and output != "blend"):
            raise ValueError(f"residual must be >= 0 and needs output='blend', got {residual!r} with {output!r}")
        if select < 0 or (select and output != "blend"):
            raise ValueError(f"select must be >= 0 and needs output='blend', got {select!r} with {output!r}")
        self.output, self.residual = output, float(residual)
        self.select_scale = nn.Parameter(torch.tensor([float(select)])) if select else None
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose from {', '.join(BLOCKS)}")
        fuse_at = num_blocks if fuse_at is None else fuse_at
        if not 0 <= fuse_at <= num_blocks:
            raise ValueError(f"fuse_at must be in [0, {num_blocks}], got {fuse_at}")
        self.block, self.pool, self.fusion = block, pool, fusion
        self.stem = nn.Sequential(_conv(1, skip_width), _act())
        # 2x2 "patchify" down-sampling: each half-res pixel is exactly one 2x2 input block, so
        # bilinear x2 up-sampling (align_corners=False) lands back on the block centres.
        self.down = nn.Sequential(Conv2d(skip_width, width, 2, stride=2 if pool else 1), _act())
        self.encoder = nn.Sequential(*(BLOCKS[block](width) for _ in range(fuse_at)))
        self.fuse = Fusion(width, fusion)
        self.decoder = nn.Sequential(*(BLOCKS[block](width) for _ in range(num_blocks - fuse_at)))
        self.reduce = _conv(width, skip_width, 1)  # few channels before the full-res up-sampling
        self.fuse_skip = Fusion(skip_width, fusion)
        self.act = _act()
        self.head = _conv(skip_width, 2 if self.residual else 1)

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        check_pair(ir, vi)
        if not self.border:
            return self._fuse(ir, vi)
        b, (h, w) = self.border, ir.shape[-2:]
        out = self._fuse(F.pad(ir, (b,) * 4, mode="replicate"), F.pad(vi, (b,) * 4, mode="replicate"))
        return out[..., b : b + h, b : b + w].contiguous()

    def _fuse(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        h, w = ir.shape[-2:]
        # even size for the stride-2 grid (pool) / right-bottom pad for the 2x2 kernel (no pool)
        ph, pw = (h % 2, w % 2) if self.pool else (1, 1)
        # a size-generic traced graph must keep the (maybe empty) pad; a fixed-size one skips it
        symbolic = isinstance(h, torch.SymInt) or isinstance(w, torch.SymInt)

        def down(s: torch.Tensor) -> torch.Tensor:
            return self.down(F.pad(s, (0, pw, 0, ph), mode="replicate") if ph or pw or symbolic else s)

        if exporting():
            # the ONNX graph runs the full-resolution layers per source and stacks only the
            # quarter-size maps: onnxruntime copies where PyTorch takes views (Concat of the
            # inputs, Split of the stem's output and scores), 1.1x its time for aenetv2-ivif
            s_ir, s_vi = self.stem(ir), self.stem(vi)
            skip = self.fuse_skip.pair(s_ir, s_vi)
            f = torch.cat([down(s_ir), down(s_vi)], dim=0)
            del s_ir, s_vi
        else:
            x = torch.cat([ir, vi], dim=0)  # shared encoder: sources stacked on the batch
            s = self.stem(channels_last(x) if x.device.type == "cpu" else x)  # NHWC on CPU (layers.py)
            skip = self.fuse_skip(s)  # fused now, so the two-stream full-res tensor can be freed early
            f = down(s)
            del s
        f = self.reduce(self.decoder(self.fuse(self.encoder(f))))
        if self.pool:
            f = upsample2x(f)[..., :h, :w]
        if exporting():  # in place on the cropped view, a dynamic-size graph scatters whole maps back
            f = self.head(torch.relu(f + skip))
        else:
            f = self.head(self.act(f.add_(skip)))
        if self.output == "direct":
            return f.sigmoid_()
        logit, *res = f.split(1, dim=1)
        if self.select_scale is not None:
            logit = logit + self.select_scale * (ir - vi)
        out = lerp(vi, ir, torch.sigmoid(logit))
        if res:
            out = out + self.residual * torch.tanh(res[0])
        return out.clamp_(0.0, 1.0)


# The architecture study's best trade-off (docs/aenetv2-study.md): standard 3x3 blocks of width 8
# after early pooling sit on the quality/latency Pareto front, ahead of the depthwise-separable
# blocks (width 16, same params) in both quality and latency at equal training time -- at 8
# channels a dense 3x3 conv is cheap and runs at full SIMD width, a depthwise one does not.
DEFAULT_CONFIG: dict = dict(block="standard", pool=True, width=8, num_blocks=4, fuse_at=2, fusion="weighted", skip_width=8)

# Body width per block type matching the default's parameter count (within 15 %; even widths
# only, odd channel counts waste SIMD lanes) at the same depth. Every body layer of a variant
# runs at the same resolution, so matched parameters also mean matched MACs. ``pool`` changes
# no parameter: the no-pool variants cost ~4x the body MACs by design.
STUDY_WIDTHS: dict[str, int] = {  # (standard-pool = the default)
    "standard": 8, "group": 12, "dws": 16, "inception": 14, "fire": 16, "shuffle": 22, "multiscale": 8,
}

STUDY_VARIANTS: dict[str, dict] = {
    f"{block}-{'pool' if pool else 'nopool'}": {**DEFAULT_CONFIG, "block": block, "width": width, "pool": pool}
    for block, width in STUDY_WIDTHS.items()
    for pool in (True, False)
}


@register_model(
    "aenetv2",
    description="AE-Netv2: tiny general fusion network (IVIF, multi-focus, multi-exposure, medical)",
    weights="aenetv2.safetensors",
    tasks=("ivif", "mff", "mef", "medical"),
    paper="Fang et al., Neurocomputing 2021",
)
def aenetv2(**kwargs) -> nn.Module:
    """Build AE-Netv2 from :data:`DEFAULT_CONFIG`, overridden by ``kwargs``."""
    return AENetV2(**{**DEFAULT_CONFIG, **kwargs})


# The real-time infrared-visible default: the same skeleton with a blend head (weight map with the
# selection prior, bounded residual), distilled from DWSFusion (litefuse/configs/aenetv2-ivif.toml;
# docs/distillation.md has the study, the card the recipe and scores). Without the prior the same
# student, trained as long, stays far below its teacher (MI 2.74 vs 3.48 on the validation split).
IVIF_CONFIG: dict = {**DEFAULT_CONFIG, "output": "blend", "residual": 0.25, "select": 40.0}


@register_model(
    "aenetv2-ivif",
    description="AE-Netv2 with a blend head, distilled from DWSFusion: real-time infrared-visible fusion",
    weights="aenetv2-ivif.safetensors",
    tasks=("ivif",),
    paper="Fang et al., Neurocomputing 2021 (architecture); litefuse distillation",
)
def aenetv2_ivif(**kwargs) -> nn.Module:
    """AE-Netv2 from :data:`IVIF_CONFIG`, overridden by ``kwargs``."""
    return AENetV2(**{**IVIF_CONFIG, **kwargs})
