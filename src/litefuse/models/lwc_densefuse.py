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

Speed. In eval mode the network runs its inference form (:class:`SCLWCPlan`, driven by
:class:`~litefuse.models.densefuse.InferencePlan`): per block one depthwise conv per input piece
and one pointwise conv whose weights carry the channel shuffle and the attention gate, with
bias, ReLU and residual fused -- instead of the training form's chain of depthwise, pointwise,
shuffle, gate, ReLU and concatenation passes over full-resolution maps; on CPU the decoder's
grouped blocks take one map per group. The training form runs
activations in NHWC, computes reflection padding without a padded copy
(:func:`~litefuse.models.densefuse.reflect_conv3x3`), runs the grouped pointwise conv and the
shuffle as one dense 1x1 conv (:class:`GroupedPointwise`), and gates / ReLU / residual in place
when autograd does not need the inputs.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..registry import register_model
from .densefuse import ConvLayer, FusionAutoEncoder, ReflectConv2d, fill_border_
from .layers import (
    ECA,
    SqueezeExcite,
    channel_attention,
    conv2d,
    conv_act,
    conv_add_,
    conv_add_act,
    eca_kernel_size,
    exporting,
    observed,
)

__all__ = [
    "channel_shuffle",
    "ECA",
    "SqueezeExcite",
    "GroupedPointwise",
    "SCLWConv",
    "SCLWCPlan",
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


def _attention(kind: str | None, channels: int, se_reduction: int, inplace: bool = False) -> nn.Module:
    """The block's channel gate: ECA or SE over the average-pooled descriptor (or none)."""
    return channel_attention(kind, channels, reduction=se_reduction, inplace=inplace)


def block_diagonal(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """A grouped 1x1 conv's ``(C_out, C_in / groups)`` weight as the ``(C_out, C_in)`` dense weight
    of the same function (zero blocks off the diagonal)."""
    return torch.block_diag(*weight.chunk(groups, 0))


class GroupedPointwise(nn.Conv2d):
    """Grouped 1x1 conv, optionally followed by a channel shuffle over its groups, as one op.

    NCHW input: grouped conv, then :func:`channel_shuffle` (the reference path).
    NHWC input (and exported graphs): one dense 1x1 conv with the block-diagonal weight whose rows are permuted by
    the shuffle. On CPU this avoids PyTorch's slow NHWC grouped-conv fallback (per-group
    slices + concat) and the strided shuffle copy; it executes ``groups`` times the MACs
    (zero blocks) but memory, not arithmetic, bounds these thin layers. Both paths compute the
    same function, and the parameters are those of the grouped conv; when the module is watched
    (hooks, ``FlopCounterMode``) it takes the reference path, so MACs are the grouped conv's.
    """

    def __init__(self, in_ch: int, out_ch: int, groups: int = 1, shuffle: bool = False) -> None:
        super().__init__(in_ch, out_ch, 1, groups=groups, bias=True)
        self.shuffle = shuffle and groups > 1
        o = out_ch // groups
        perm = torch.arange(out_ch).view(groups, o).t().reshape(-1)  # out[i*g + j] = group j, row i
        self.register_buffer("perm", perm, persistent=False)

    def dense_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(C_out, C_in)`` block-diagonal weight and bias, rows in output (shuffled) order."""
        w = block_diagonal(self.weight.flatten(1), self.groups)
        b = self.bias
        if self.shuffle:
            w = w[self.perm]
            b = None if b is None else b[self.perm]
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # watched (MAC counting, hooks): the reference path, so counts are the grouped conv's
        # exported graphs: the dense weight is a constant, where a shuffle is a transpose of the map
        nhwc = x.is_contiguous(memory_format=torch.channels_last)
        if x.shape[1] > 1 and (nhwc or exporting()) and not observed(self):
            w, b = self.dense_weight()
            return conv2d(x, w[:, :, None, None], b)
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

    def forward_pieces(self, pieces: list[torch.Tensor]) -> torch.Tensor:
        """:meth:`forward` of the channel concatenation of ``pieces``, maps already
        reflection-padded by one pixel: per piece a depthwise conv and its columns of the
        (dense, shuffled) pointwise weight, summed -- no concatenated map."""
        w, b = self.pw.dense_weight()
        y, c0 = None, 0
        for p in pieces:
            c = p.shape[1]
            d = conv2d(p, self.dw.weight[c0 : c0 + c], None, groups=c)
            part = conv2d(d, w[:, c0 : c0 + c, None, None], b if y is None else None)
            y, c0 = part if y is None else y + part, c0 + c
        y = self.att(y)
        if self.residual:
            y = y + torch.cat([p[..., 1:-1, 1:-1] for p in pieces], dim=1)
        return self.act(y)

    def inference_plan(self, in_perm: torch.Tensor | None = None, grouped: bool = False) -> SCLWCPlan:
        """This block on padded maps (see :class:`SCLWCPlan`)."""
        return SCLWCPlan(self, in_perm, grouped)


def window_sums(p: torch.Tensor) -> torch.Tensor:
    """``(C, 9)`` sums of a padded map ``p`` ``(1, C, H + 2, W + 2)`` over its nine ``H x W``
    windows, one per 3x3 tap (row major), for H, W >= 2.

    The mean of a depthwise 3x3 conv of ``p`` is then ``(sums * kernel).sum(1) / (H * W)``
    without reading the conv's output: each window is the whole map minus two border rows and
    two border columns (plus their four corners), so one pass over ``p`` and a few border
    strips give all nine.

    Sums are float32 for half-precision maps (a float16 sum over a 640x480 map exceeds its range,
    65,504, and the gate would turn every output into NaN), float64 for float64 ones.
    """
    idx = [0, 1, -2, -1]
    f32 = torch.promote_types(p.dtype, torch.float32)
    # ex[k, i] = 1: border line i (padded 0, 1, H, H + 1) lies outside the window of tap row k
    ex = torch.tensor([[0.0, 0, 1, 1], [1, 0, 0, 1], [1, 1, 0, 0]], dtype=f32, device=p.device)
    total = p.sum((0, 2, 3), dtype=f32)[:, None, None]  # (C, 1, 1)
    rows = p[0][:, idx].sum(-1, dtype=f32) @ ex.t()  # (C, 3): sum of the rows outside each window
    cols = p[0][:, :, idx].sum(-2, dtype=f32) @ ex.t()  # (C, 3)
    corners = ex @ p[0][:, idx][:, :, idx].to(f32) @ ex.t()  # (C, 3, 3): counted twice above
    return (total - rows[:, :, None] - cols[:, None, :] + corners).flatten(1)


def stats_from_input(p: torch.Tensor) -> bool:
    """Whether a block's gate statistics come from its padded input ``p`` by :func:`window_sums`
    (one read per piece, shared by every block reading it: on CPU, where passes over memory
    cost) or from the depthwise output, one reduction per piece and block (elsewhere: a GPU
    reads the map in microseconds, while window sums launch a dozen small kernels and copy
    index tensors from the host)."""
    return p.device.type == "cpu" and min(p.shape[-2:]) >= 4  # H, W >= 2


class SCLWCPlan:
    """Inference form of :class:`SCLWConv` on reflection-padded maps (see
    :class:`~litefuse.models.densefuse.InferencePlan`).

    The training form makes six passes over full-resolution maps (depthwise, pointwise, shuffle,
    attention's mean, gate, ReLU) plus the dense block's concatenation. Here a block makes two
    large passes per input piece -- the depthwise conv, then the pointwise conv with bias, gate,
    residual and ReLU folded in -- plus one read of the depthwise output:

    * **Gate before the pointwise conv.** ECA / SE gate on the spatial mean of the pointwise
      output ``z = W d + b``; the mean of an affine map is the map of the mean, so
      ``mean(z) = W mean(d) + b`` comes from a (cheap) mean of the depthwise output ``d``
      before ``z`` exists. The gate ``s > 0`` then scales the pointwise weights and bias, and
      ``relu(s * z) = s * relu(z)`` lets ReLU fuse into the same conv.
    * **Shuffle as a permutation.** A channel shuffle after a grouped 1x1 conv is a permutation
      of its output channels: either folded into the rows of one dense (block-diagonal) weight,
      or -- with ``grouped`` and the input in its training order -- left in the output of a
      truly grouped conv (half the MACs at g = 2) and absorbed by the next block's weights
      (``out_perm``).
    * **Pieces.** Each input piece (a dense-block layer's output) gets its own depthwise conv and
      its slice of the pointwise weight; the pointwise results are summed in place.
    """

    def __init__(self, block: SCLWConv, in_perm: torch.Tensor | None = None, grouped: bool = False) -> None:
        dw, pw = block.dw.weight.detach(), block.pw
        w, b = pw.dense_weight()  # rows in the shuffled (training output) order
        w, b = w.detach(), b.detach()
        self.out_channels = w.shape[0]
        if in_perm is not None:
            dw, w = dw[in_perm], w[:, in_perm]
        self.dw = dw.contiguous()
        self.w_mean, self.b_mean = w, b  # logical rows: the gate's input order
        self.att = block.att
        self.residual = block.residual
        # grouped execution keeps the pre-shuffle output order; residual needs the input's order
        self.grouped = grouped and in_perm is None and pw.groups > 1 and not self.residual
        if self.grouped:
            self.groups = pw.groups
            self.out_perm = None  # without a shuffle the grouped conv's order is the training order
            if pw.shuffle:
                self.out_perm = torch.empty_like(pw.perm)
                self.out_perm[pw.perm] = torch.arange(len(pw.perm))  # stored channel -> training channel
            self.w_out, self.b_out = pw.weight.detach().flatten(1), pw.bias.detach()
        else:
            self.groups = 1
            self.out_perm = in_perm if self.residual else None
            perm = self.out_perm
            self.w_out, self.b_out = (w, b) if perm is None else (w[perm], b[perm])

    def gate(self, mean_d: torch.Tensor) -> torch.Tensor | None:
        """Per output channel (stored order) gate from the depthwise output's mean, or ``None``."""
        if isinstance(self.att, nn.Identity):
            return None
        mean_z = torch.addmv(self.b_mean, self.w_mean, mean_d)
        s = torch.sigmoid(self.att.logit([mean_z[None]])[0])
        return s if self.out_perm is None else s[self.out_perm]

    def split_widths(self, channels: int) -> list[int]:
        """Channels of the maps this block takes one per group (:meth:`__call__`): its groups'
        input widths when it runs grouped, else ``[channels]``."""
        return [channels // self.groups] * self.groups if self.grouped else [channels]

    def _depthwise(self, pieces: list[torch.Tensor], sums: list | None) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Depthwise conv of each piece, and the pointwise weight and bias with the gate folded in."""
        h, w = pieces[0].shape[-2] - 2, pieces[0].shape[-1] - 2
        ds, c0 = [], 0
        for p in pieces:
            # depthwise 3x3 with zero padding 1 on the padded map: a padded-size output whose
            # interior is exact (its border only feeds the border of the output, rewritten
            # below), so the pointwise conv runs unpadded -- oneDNN's fast 1x1 kernel
            c = p.shape[1]
            ds.append(conv2d(p, self.dw[c0 : c0 + c], None, padding=1, groups=c))
            c0 += c
        weight, bias = self.w_out, self.b_out
        if isinstance(self.att, nn.Identity):
            return ds, weight, bias
        if stats_from_input(pieces[0]):
            # mean(d) from the input's window sums: read once per piece, shared by every
            # block that reads the piece (the dense block's later layers)
            sums = [None] * len(pieces) if sums is None else sums
            for i, p in enumerate(pieces):
                if sums[i] is None:
                    sums[i] = window_sums(p)
            sums_all = torch.cat(sums)
            mean_d = (sums_all * self.dw.flatten(1).to(sums_all.dtype)).sum(1).div_(h * w)
        else:  # float32 sums at least (see window_sums)
            acc = torch.promote_types(ds[0].dtype, torch.float32)
            mean_d = torch.cat([d[..., 1:-1, 1:-1].sum((0, 2, 3), dtype=acc) for d in ds]).div_(h * w)
        s = self.gate(mean_d.to(weight.dtype))
        return ds, weight * s[:, None], bias * s

    def __call__(
        self, pieces: list[torch.Tensor], replicate: bool, sums: list | None = None
    ) -> torch.Tensor | list[torch.Tensor]:
        """Padded maps in (``sums``: their :func:`window_sums`, filled in where ``None``),
        padded map out.

        A grouped block also takes one map per group (:meth:`split_widths`) and then returns
        one map per group, in the same stored channel order: on CPU, two dense 1x1 convs on
        separate 32-channel maps run in 2/3 of the time of one grouped conv on a 64-channel map.
        """
        ds, weight, bias = self._depthwise(pieces, sums)
        if self.grouped:
            if len(ds) == 1:
                groups = self.groups
                if ds[0].device.type == "cpu":
                    # oneDNN's grouped 1x1 ran 2.4x slower than the dense block-diagonal conv with
                    # twice its MACs (AVX2 kernels, 32->16 g = 2 at 640x480: 11.9 vs 4.9 ms; whole
                    # network 276 -> 269 ms), and no faster with AVX-512; the zero blocks are exact
                    weight, groups = block_diagonal(weight, groups), 1
                out = conv_act(ds[0], weight[:, :, None, None], bias, groups=groups, relu=True)
                return fill_border_(out, replicate)
            if [d.shape[1] for d in ds] != self.split_widths(self.dw.shape[0]):
                raise ValueError(f"a grouped block takes one map or one per group, got {[d.shape[1] for d in ds]} channels")
            o = self.out_channels // self.groups
            return [
                fill_border_(conv_act(d, weight[i * o : (i + 1) * o, :, None, None], bias[i * o : (i + 1) * o], relu=True), replicate)
                for i, d in enumerate(ds)
            ]
        ws = [x[:, :, None, None].contiguous() for x in weight.split([d.shape[1] for d in ds], dim=1)]
        last = len(ds) - 1
        if self.residual:  # relu(s * z + x): the (single, in == out) input map is the summand
            assert len(pieces) == 1
            out = conv_add_act(ds[0], pieces[0], ws[0], bias)
        else:
            out = conv_act(ds[0], ws[0], bias, relu=last == 0)
        for i in range(1, last + 1):
            conv_add_(out, ds[i], ws[i], relu=i == last)  # in place: no second output-sized map
        return fill_border_(out, replicate)


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
