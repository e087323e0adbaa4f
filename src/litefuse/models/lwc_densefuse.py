"""LWC-DenseFuse (Sensors 2026, 26(12), 3748): DenseFuse with self-compensating lightweight convs.

The SC-LWC module replaces every 3x3 conv of the dense block and of decoder C2-C4 (C1 and C5
stay standard convs)::

    depthwise 3x3 (reflection pad) -> grouped pointwise 1x1 (g groups) -> channel shuffle (g)
        -> channel attention (ECA | SE | none) -> [+ identity if in == out and residual] -> ReLU

The depthwise conv has no bias: a per-channel constant before a linear pointwise conv is the
same as a change of the pointwise bias, so it would only add parameters.

The paper leaves the module details open; every choice is a constructor argument and
:data:`ABLATION_VARIANTS` lists the presets of the required ablation. With the defaults
(g = 2, ECA, shuffle, no residual) the network has 6,883 parameters (DenseFuse: 74,193) and
2.60 GMACs per 640x480 fusion (DenseFuse: 27.2). g = 2 rather than the ablation's g = 4
(4,835 parameters, 1.85 GMACs): at the full recipe, over two seeds, g = 2 scored higher EN and
VIF than g = 4 at the same CPU latency (docs/lwc-ablation.md).

CPU notes: these thin layers are bound by memory traffic, not arithmetic, so activations run
in NHWC (oneDNN's fast depthwise path), reflection padding is done without a padded copy
(:func:`~litefuse.models.densefuse.reflect_conv3x3`), the grouped pointwise conv and the
shuffle run as one dense 1x1 conv (:class:`GroupedPointwise`), and gates / ReLU / residual
work in place when autograd does not need the inputs.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from .densefuse import ConvLayer, FusionAutoEncoder, ReflectConv2d, _inplace_ok

__all__ = [
    "channel_shuffle",
    "ECA",
    "SqueezeExcite",
    "GroupedPointwise",
    "SCLWConv",
    "LWCDenseFuse",
    "ABLATION_VARIANTS",
    "ablation_kwargs",
    "eca_kernel_size",
]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle: output channel ``i * groups + j`` is input channel ``j * (C // groups) + i``.

    Interleaves the groups so that the next grouped conv sees channels from every group; the
    inverse is ``channel_shuffle(y, C // groups)``.
    """
    if groups == 1:
        return x
    b, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"{c} channels cannot be shuffled in {groups} groups")
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def eca_kernel_size(channels: int, gamma: float = 2.0, beta: float = 1.0) -> int:
    """ECA-Net adaptive kernel size: nearest odd number to ``(log2 C + beta) / gamma``, at least 3."""
    k = int(abs((math.log2(channels) + beta) / gamma))
    k = k if k % 2 else k + 1
    return max(k, 3)


class ECA(nn.Module):
    """Efficient channel attention: 1-D conv across the globally pooled channel descriptor, no reduction."""

    def __init__(self, channels: int, kernel_size: int | None = None, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        k = kernel_size or eca_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3)).unsqueeze(1)  # (B, 1, C)
        y = torch.sigmoid(self.conv(y)).transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)
        return x.mul_(y) if self.inplace and _inplace_ok(x) else x * y


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation gate with reduction ``r``; the hidden width is never below 1."""

    def __init__(self, channels: int, reduction: int = 4, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x.mul_(y) if self.inplace and _inplace_ok(x) else x * y


def _attention(kind: str | None, channels: int, se_reduction: int, inplace: bool = False) -> nn.Module:
    if kind is None or kind == "none":
        return nn.Identity()
    if kind == "eca":
        return ECA(channels, inplace=inplace)
    if kind == "se":
        return SqueezeExcite(channels, se_reduction, inplace=inplace)
    raise ValueError(f"unknown attention {kind!r}; choose 'eca', 'se' or None")


def _conv1x1(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """1x1 conv; on CPU always through oneDNN.

    ``F.conv2d`` sends 1x1 convs with batch < 16 on one thread to a slow im2col-free GEMM
    path that also drops the NHWC layout; oneDNN keeps NHWC and fuses the bias.
    """
    if (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and not torch.compiler.is_compiling()  # the direct op has no fake-tensor support
    ):
        return torch.mkldnn_convolution(x, weight, bias, (0, 0), (1, 1), (1, 1), 1)
    return F.conv2d(x, weight, bias)


class GroupedPointwise(nn.Conv2d):
    """Grouped 1x1 conv, optionally followed by a channel shuffle over its groups, as one op.

    NCHW input: grouped conv, then :func:`channel_shuffle` (the reference path).
    NHWC input: one dense 1x1 conv with the block-diagonal weight whose rows are permuted by
    the shuffle. On CPU this avoids PyTorch's slow NHWC grouped-conv fallback (per-group
    slices + concat) and the strided shuffle copy; it executes ``groups`` times the MACs
    (zero blocks) but memory, not arithmetic, bounds these thin layers. Both paths compute the same function, and the
    parameters are those of the grouped conv (MACs are reported for the grouped conv too).
    """

    def __init__(self, in_ch: int, out_ch: int, groups: int = 1, shuffle: bool = False) -> None:
        super().__init__(in_ch, out_ch, 1, groups=groups, bias=True)
        self.shuffle = shuffle and groups > 1
        o = out_ch // groups
        perm = torch.arange(out_ch).view(groups, o).t().reshape(-1)  # out[i*g + j] = group j, row i
        self.register_buffer("perm", perm, persistent=False)

    def dense_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(C_out, C_in)`` block-diagonal weight and bias, rows in output (shuffled) order."""
        w = torch.block_diag(*self.weight.flatten(1).chunk(self.groups, 0))
        b = self.bias
        if self.shuffle:
            w = w[self.perm]
            b = None if b is None else b[self.perm]
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last):
            w, b = self.dense_weight()
            return _conv1x1(x, w[:, :, None, None], b)
        y = super().forward(x)
        return channel_shuffle(y, self.groups) if self.shuffle else y


class SCLWConv(nn.Module):
    """Self-compensating lightweight conv: a 3x3 conv replacement at a fraction of the cost.

    Args:
        in_ch, out_ch: channels.
        groups: pointwise groups (and shuffle groups); falls back to 1 when ``in_ch`` or
            ``out_ch`` is not divisible by it.
        shuffle: channel shuffle after the grouped pointwise (no-op when groups fall back to 1).
        attention: ``"eca"`` (default), ``"se"`` or ``None``.
        residual: add the input before the ReLU when ``in_ch == out_ch`` (ignored otherwise).
        se_reduction: SE reduction ``r``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        groups: int = 4,
        shuffle: bool = True,
        attention: str | None = "eca",
        residual: bool = False,
        se_reduction: int = 4,
    ) -> None:
        super().__init__()
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.groups = groups if in_ch % groups == 0 and out_ch % groups == 0 else 1
        self.residual = residual and in_ch == out_ch
        self.dw = ReflectConv2d(in_ch, in_ch, groups=in_ch, bias=False)
        self.pw = GroupedPointwise(in_ch, out_ch, self.groups, shuffle)
        self.att = _attention(attention, out_ch, se_reduction, inplace=True)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.att(self.pw(self.dw(x)))  # pw includes the channel shuffle
        if self.residual:
            y = y.add_(x)  # y is a fresh tensor that no backward needs
        return self.act(y)


_CONV_KINDS = ("sclwc", "dws", "standard")
# "dws" is plain depthwise-separable: its flags default to off, but may be switched on one by one
_FAMILY_DEFAULTS = {
    "sclwc": {"attention": "eca", "shuffle": True, "residual": False},
    "dws": {"attention": None, "shuffle": False, "residual": False},
}
_AUTO = "auto"


class LWCDenseFuse(FusionAutoEncoder):
    """DenseFuse skeleton with SC-LWC in the dense block and decoder C2-C4.

    Args:
        fusion_rule: ``"l1-norm"`` (default) | ``"addition"`` | ``"mean"``.
        conv: ``"sclwc"`` (full module), ``"dws"`` (depthwise-separable; attention, shuffle and
            residual off unless given) or ``"standard"`` (plain DenseFuse, 74,193 params).
        attention: ``"eca"`` | ``"se"`` | ``None``; ``"auto"`` = the ``conv`` family default.
        shuffle, residual: ``None`` = the ``conv`` family default.
        groups: pointwise / shuffle groups (1 where channels are not divisible); 2 by default,
            the ablation presets use 4.
        se_reduction: SE reduction ``r``.
        stem, growth, dense_layers, decoder: channel widths (DenseFuse's by default).
        channels_last: NHWC layout (default), where oneDNN's depthwise / grouped convs are fastest.
    """

    def __init__(
        self,
        fusion_rule: str = "l1-norm",
        conv: str = "sclwc",
        attention: str | None = _AUTO,
        shuffle: bool | None = None,
        groups: int = 2,
        residual: bool | None = None,
        se_reduction: int = 4,
        stem: int = 16,
        growth: int = 16,
        dense_layers: int = 3,
        decoder: tuple[int, int, int] = (64, 32, 16),
        channels_last: bool = True,
    ) -> None:
        if conv not in _CONV_KINDS:
            raise ValueError(f"unknown conv {conv!r}; choose from {_CONV_KINDS}")
        if conv == "standard":
            block = ConvLayer
            config: dict = {"conv": conv}
        else:
            d = _FAMILY_DEFAULTS[conv]
            attention = d["attention"] if attention == _AUTO else attention
            shuffle = d["shuffle"] if shuffle is None else shuffle
            residual = d["residual"] if residual is None else residual
            _attention(attention, 8, se_reduction)  # validate early
            block = partial(
                SCLWConv,
                groups=groups,
                shuffle=shuffle,
                attention=attention,
                residual=residual,
                se_reduction=se_reduction,
            )
            config = dict(conv=conv, attention=attention, shuffle=shuffle, groups=groups, residual=residual)
        super().__init__(fusion_rule, block, stem, growth, dense_layers, tuple(decoder), channels_last)
        self.config = config  # the resolved choices, for logs and reports


# Presets of the required ablation (MODELS.md section 1). The lightweight variants share
# g = 4 grouped pointwise convs so that they differ only in the component under test; "dws-g1"
# is textbook depthwise-separable (full pointwise) for reference, and "sclwc-g2" is the
# shipped default (g = 2).
ABLATION_VARIANTS: dict[str, dict] = {
    "densefuse": {"conv": "standard"},
    "dws-g1": {"conv": "dws", "groups": 1},
    "dws": {"conv": "dws", "groups": 4},
    "dws+att": {"conv": "dws", "groups": 4, "attention": "eca"},
    "dws+shuffle": {"conv": "dws", "groups": 4, "shuffle": True},
    "sclwc": {"conv": "sclwc", "groups": 4},
    "sclwc-se": {"conv": "sclwc", "groups": 4, "attention": "se"},
    "sclwc+res": {"conv": "sclwc", "groups": 4, "residual": True},
    "sclwc-g2": {"conv": "sclwc", "groups": 2},
}


def ablation_kwargs(variant: str) -> dict:
    """Constructor kwargs of an ablation preset (a copy, safe to modify)."""
    try:
        return dict(ABLATION_VARIANTS[variant])
    except KeyError:
        raise ValueError(f"unknown ablation variant {variant!r}; choose from {list(ABLATION_VARIANTS)}") from None


def _infer_kwargs(shapes: dict[str, tuple[int, ...]]) -> dict:
    """``groups`` of a weights file from its first dense-layer convs (files trained before the
    default changed from 4 to 2 carry no ``groups`` in their metadata)."""
    dw, pw = shapes.get("dense.layers.0.dw.weight"), shapes.get("dense.layers.0.pw.weight")
    if dw is None or pw is None or len(pw) != 4 or not pw[1] or dw[0] % pw[1]:
        return {}
    return {"groups": dw[0] // pw[1]}


@register_model(
    "lwc-densefuse",
    description="LWC-DenseFuse: DenseFuse with SC-LWC convs (6,883 params), l1-norm rule",
    weights="lwc-densefuse.safetensors",
    tasks=("ivif",),
    paper="Sensors 2026, 26(12), 3748",
    infer_kwargs=_infer_kwargs,
)
def lwc_densefuse(variant: str | None = None, **kwargs) -> nn.Module:
    """Build LWC-DenseFuse; ``variant`` picks an ablation preset, ``kwargs`` override it."""
    base = ablation_kwargs(variant) if variant is not None else {}
    return LWCDenseFuse(**{**base, **kwargs})
