"""DenseFuse (Li & Wu, IEEE TIP 2019): an auto-encoder baseline for infrared-visible fusion.

The network is trained only to reconstruct single grey images; fusion happens at test time,
between encoder and decoder, with a parameter-free per-pixel rule on the two 64-channel feature
maps. Layout (74,193 parameters)::

    C1 conv3x3 1->16 + ReLU                          160
    dense block: 3 x (conv3x3 -> 16 + ReLU), concat  2,320 + 4,624 + 6,928   (16->32->48->64)
    -- fusion rule (64 + 64 -> 64) --
    C2 64->64, C3 64->32, C4 32->16 (+ ReLU)         36,928 + 18,464 + 4,624
    C5 16->1 (no activation)                         145

Every 3x3 conv uses reflection padding of 1 and a bias; there is no normalisation or pooling,
so any H x W (odd included) comes back exactly H x W.

:class:`FusionAutoEncoder` is the shared skeleton: it takes a ``block(in_ch, out_ch)`` factory
for the dense-block and C2-C4 layers, which is how LWC-DenseFuse swaps in its SC-LWC module.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model

__all__ = [
    "ConvLayer",
    "DenseBlock",
    "FusionAutoEncoder",
    "DenseFuse",
    "FUSION_RULES",
    "fuse_addition",
    "fuse_l1_norm",
    "l1_norm_weights",
    "reflect_pad",
    "reflect_conv3x3",
    "ReflectConv2d",
]


# --------------------------------------------------------------------------------------------
# fusion rules (pure functions on feature maps)


def _inplace_ok(*tensors: torch.Tensor) -> bool:
    """In-place updates are safe when autograd will not need the overwritten values."""
    return not torch.is_grad_enabled() or not any(t.requires_grad for t in tensors)


def fuse_addition(f_ir: torch.Tensor, f_vi: torch.Tensor, mean: bool = False) -> torch.Tensor:
    """Addition rule ``phi = phi_IR + phi_VI``; ``mean=True`` averages instead (one release does)."""
    fused = f_ir + f_vi
    return fused.mul_(0.5) if mean else fused  # add saves nothing for backward: in-place is safe


def l1_norm_weights(
    f_ir: torch.Tensor, f_vi: torch.Tensor, eps: float = 1e-10, nonnegative: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel weights of the l1-norm rule, each ``(B, 1, H, W)``, summing to 1.

    Activity ``C_k = sum_c |phi_k|`` is smoothed by a 3x3 box average (mean over the pixels of
    the window that lie inside the image; the border rule cancels in the ratio), then
    ``w_k = C_k / (C_IR + C_VI)``. ``eps`` is added symmetrically so that zero activity in both
    maps gives 0.5 / 0.5 instead of 0 / 0. ``nonnegative=True`` skips the ``abs`` for features
    known to be >= 0 (post-ReLU encoders): same result, one full-size temporary less per map.
    """

    def activity(f: torch.Tensor) -> torch.Tensor:
        l1 = (f if nonnegative else f.abs()).sum(1, keepdim=True)
        return F.avg_pool2d(l1, 3, stride=1, padding=1, count_include_pad=False)

    act_ir, act_vi = activity(f_ir), activity(f_vi)
    w_ir = (act_ir + eps) / (act_ir + act_vi + 2 * eps)
    return w_ir, 1.0 - w_ir


def fuse_l1_norm(f_ir: torch.Tensor, f_vi: torch.Tensor, nonnegative: bool = False) -> torch.Tensor:
    """l1-norm rule: ``phi = w_IR * phi_IR + w_VI * phi_VI`` with :func:`l1_norm_weights`.

    Evaluated as ``lerp(phi_VI, phi_IR, w_IR)`` (``w_VI = 1 - w_IR``): one pass, one output.
    """
    w_ir, _ = l1_norm_weights(f_ir, f_vi, nonnegative=nonnegative)
    return torch.lerp(f_vi, f_ir, w_ir)


FUSION_RULES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1-norm": fuse_l1_norm,
    "addition": fuse_addition,
    "mean": lambda f_ir, f_vi: fuse_addition(f_ir, f_vi, mean=True),
}


# --------------------------------------------------------------------------------------------
# layers


def reflect_pad(x: torch.Tensor, pad: int = 1) -> torch.Tensor:
    """Reflection padding; replicate padding where the image is too small to reflect (H or W <= pad)."""
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    return F.pad(x, (pad, pad, pad, pad), mode=mode)


def reflect_conv3x3(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, groups: int = 1
) -> torch.Tensor:
    """3x3 stride-1 convolution of ``x`` with reflection padding 1, without a padded copy of ``x``.

    The interior is a zero-padded convolution; only the one-pixel border differs from the
    reflection-padded result, so the four border lines are recomputed from two-pixel-wide
    strips. Equal to ``conv2d(F.pad(x, (1,) * 4, mode="reflect"), ...)`` but saves one full
    read and write (and a large allocation) per layer, which dominates CPU time for thin layers.
    """
    h, w = x.shape[-2:]
    if h < 3 or w < 3:  # tiny inputs: the strips would overlap; pad explicitly
        return F.conv2d(reflect_pad(x), weight, bias, groups=groups)
    y = F.conv2d(x, weight, bias, padding=1, groups=groups)
    y[..., :1, :] = F.conv2d(F.pad(x[..., :2, :], (1, 1, 1, 0), mode="reflect"), weight, bias, groups=groups)
    y[..., -1:, :] = F.conv2d(F.pad(x[..., -2:, :], (1, 1, 0, 1), mode="reflect"), weight, bias, groups=groups)
    y[..., :, :1] = F.conv2d(F.pad(x[..., :, :2], (1, 0, 1, 1), mode="reflect"), weight, bias, groups=groups)
    y[..., :, -1:] = F.conv2d(F.pad(x[..., :, -2:], (0, 1, 1, 1), mode="reflect"), weight, bias, groups=groups)
    return y


class ReflectConv2d(nn.Conv2d):
    """``nn.Conv2d`` 3x3, stride 1, reflection padding 1 (computed by :func:`reflect_conv3x3`).

    A ``Conv2d`` subclass so that state-dict keys, initialisation and MAC-counting hooks are
    those of a plain conv.
    """

    def __init__(self, in_ch: int, out_ch: int, groups: int = 1, bias: bool = True) -> None:
        super().__init__(in_ch, out_ch, 3, padding=1, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reflect_conv3x3(x, self.weight, self.bias, self.groups)


class ConvLayer(nn.Module):
    """Reflection-padded 3x3 conv with bias, optionally followed by ReLU."""

    def __init__(self, in_ch: int, out_ch: int, relu: bool = True) -> None:
        super().__init__()
        self.conv = ReflectConv2d(in_ch, out_ch)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


BlockFactory = Callable[[int, int], nn.Module]


class DenseBlock(nn.Module):
    """Dense block: each layer's ``growth`` output channels are concatenated to its input."""

    def __init__(self, in_ch: int, growth: int, num_layers: int, block: BlockFactory) -> None:
        super().__init__()
        self.layers = nn.ModuleList(block(in_ch + i * growth, growth) for i in range(num_layers))
        self.out_channels = in_ch + num_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x


# --------------------------------------------------------------------------------------------
# networks


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC copy of ``x``; for one channel, with the strides oneDNN recognises as NHWC.

    (A contiguous 1-channel tensor is ambiguous, and a conv on it would fall back to NCHW.)
    """
    if x.is_contiguous(memory_format=torch.channels_last) and (x.shape[1] > 1 or x.stride(1) == 1):
        return x
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last).copy_(x)


class FusionAutoEncoder(nn.Module):
    """DenseFuse skeleton: C1 -> dense block | fusion rule | C2 -> C3 -> C4 -> C5.

    ``block(in_ch, out_ch)`` builds the dense-block layers and C2-C4 (each ends in its own
    activation); C1 and C5 are always standard :class:`ConvLayer` (1 input / 1 output channel).

    Args:
        fusion_rule: ``"l1-norm"`` | ``"addition"`` | ``"mean"``; may be changed on the instance.
        block: factory for the replaceable layers; standard conv3x3 + ReLU when ``None``.
        stem: C1 output channels.
        growth: channels each dense layer adds.
        dense_layers: number of dense-block layers.
        decoder: output channels of C2, C3, C4 (C5 maps the last to 1).
        channels_last: run the activations in NHWC memory layout (the input is converted in
            :meth:`encode`, the convs keep it); faster on CPU for depthwise / pointwise layers.
            The fused output of :meth:`forward` is always returned contiguous.
    """

    def __init__(
        self,
        fusion_rule: str = "l1-norm",
        block: BlockFactory | None = None,
        stem: int = 16,
        growth: int = 16,
        dense_layers: int = 3,
        decoder: tuple[int, int, int] = (64, 32, 16),
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if fusion_rule not in FUSION_RULES:
            raise ValueError(f"unknown fusion_rule {fusion_rule!r}; choose from {sorted(FUSION_RULES)}")
        if len(decoder) != 3:
            raise ValueError(f"decoder needs the widths of C2, C3, C4; got {decoder}")
        self.fusion_rule = fusion_rule
        block = block or ConvLayer
        self.conv1 = ConvLayer(1, stem)
        self.dense = DenseBlock(stem, growth, dense_layers, block)
        self.feature_channels = self.dense.out_channels
        widths = (self.feature_channels, *decoder)
        self.conv2 = block(widths[0], widths[1])
        self.conv3 = block(widths[1], widths[2])
        self.conv4 = block(widths[2], widths[3])
        self.conv5 = ConvLayer(widths[3], 1, relu=False)
        self.channels_last = channels_last  # activations only: weights stay contiguous (safetensors)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` image -> ``(B, C, H, W)`` features (C = 64 for DenseFuse)."""
        if self.channels_last:
            x = _channels_last(x)
        return self.dense(self.conv1(x))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Features -> ``(B, 1, H, W)`` image (not clamped, for training)."""
        return self.conv5(self.conv4(self.conv3(self.conv2(f))))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Auto-encoder pass used for training: ``decode(encode(x))``."""
        return self.decode(self.encode(x))

    def fuse_features(self, f_ir: torch.Tensor, f_vi: torch.Tensor) -> torch.Tensor:
        """Apply the configured fusion rule to two encoder feature maps (non-negative: post-ReLU)."""
        if self.fusion_rule == "l1-norm":  # encoder outputs are post-ReLU: skip the abs
            return fuse_l1_norm(f_ir, f_vi, nonnegative=True)
        try:
            rule = FUSION_RULES[self.fusion_rule]
        except KeyError:
            raise ValueError(f"unknown fusion_rule {self.fusion_rule!r}; choose from {sorted(FUSION_RULES)}") from None
        return rule(f_ir, f_vi)

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """Fuse ``(B, 1, H, W)`` infrared and visible luminance in ``[0, 1]``; returns ``(B, 1, H, W)`` in ``[0, 1]``."""
        if ir.dim() != 4 or ir.shape[1] != 1 or ir.shape != vi.shape:
            raise ValueError(f"expected two (B, 1, H, W) tensors of equal shape, got {tuple(ir.shape)} and {tuple(vi.shape)}")
        f_ir, f_vi = self.encode(torch.cat([ir, vi], dim=0)).chunk(2, dim=0)  # one encoder pass
        return self.decode(self.fuse_features(f_ir, f_vi)).clamp(0.0, 1.0).contiguous()


class DenseFuse(FusionAutoEncoder):
    """Exact DenseFuse (74,193 parameters) with a selectable test-time fusion rule.

    ``channels_last`` only changes the activation memory layout (same weights, same results);
    NHWC is the faster one on CPU here (oneDNN, 640x480: ~20 % less time than NCHW).
    """

    def __init__(self, fusion_rule: str = "l1-norm", channels_last: bool = True) -> None:
        super().__init__(fusion_rule=fusion_rule, channels_last=channels_last)


@register_model(
    "densefuse",
    description="DenseFuse auto-encoder baseline (74,193 params), l1-norm rule",
    weights="densefuse.safetensors",
    tasks=("ivif",),
    paper="Li & Wu, IEEE TIP 2019",
)
def densefuse(**kwargs) -> nn.Module:
    return DenseFuse(**kwargs)
