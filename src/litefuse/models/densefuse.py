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

from itertools import accumulate
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from .layers import (
    ParameterSnapshot,
    channel_sum,
    channels_last,
    check_pair,
    conv2d,
    conv_act,
    conv_add_,
    exporting,
    lerp,
    observed,
)

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
        l1 = channel_sum(f if nonnegative else f.abs())
        return F.avg_pool2d(l1, 3, stride=1, padding=1, count_include_pad=False)

    act_ir, act_vi = activity(f_ir), activity(f_vi)
    w_ir = (act_ir + eps) / (act_ir + act_vi + 2 * eps)
    return w_ir, 1.0 - w_ir


def fuse_l1_norm(f_ir: torch.Tensor, f_vi: torch.Tensor, nonnegative: bool = False) -> torch.Tensor:
    """l1-norm rule: ``phi = w_IR * phi_IR + w_VI * phi_VI`` with :func:`l1_norm_weights`.

    Evaluated as ``lerp(phi_VI, phi_IR, w_IR)`` (``w_VI = 1 - w_IR``): one pass, one output.
    """
    w_ir, _ = l1_norm_weights(f_ir, f_vi, nonnegative=nonnegative)
    return lerp(f_vi, f_ir, w_ir)


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
    if h < 3 or w < 3 or torch.compiler.is_exporting():
        # tiny inputs: the strips would overlap. Exported graphs (ONNX): a strip written into a
        # slice becomes a scatter of the whole map (with layout transposes around it), while
        # a reflection pad is one native op
        return conv2d(reflect_pad(x), weight, bias, groups=groups)
    y = conv2d(x, weight, bias, padding=1, groups=groups)
    y[..., :1, :] = conv2d(F.pad(x[..., :2, :], (1, 1, 1, 0), mode="reflect"), weight, bias, groups=groups)
    y[..., -1:, :] = conv2d(F.pad(x[..., -2:, :], (1, 1, 0, 1), mode="reflect"), weight, bias, groups=groups)
    y[..., :, :1] = conv2d(F.pad(x[..., :, :2], (1, 0, 1, 1), mode="reflect"), weight, bias, groups=groups)
    y[..., :, -1:] = conv2d(F.pad(x[..., :, -2:], (0, 1, 1, 1), mode="reflect"), weight, bias, groups=groups)
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

    def forward_pieces(self, pieces: list[torch.Tensor]) -> torch.Tensor:
        """:meth:`forward` of the channel concatenation of ``pieces``, maps already
        reflection-padded by one pixel: a conv per piece (its slice of the weight), summed."""
        y, c0 = None, 0
        for p in pieces:
            c = p.shape[1]
            part = conv2d(p, self.conv.weight[:, c0 : c0 + c], self.conv.bias if y is None else None)
            y, c0 = part if y is None else y + part, c0 + c
        return self.act(y)

    def inference_plan(self, in_perm: torch.Tensor | None = None, grouped: bool = False) -> ConvPlan:
        """This layer on padded maps (see :meth:`FusionAutoEncoder.fuse_for_inference`)."""
        return ConvPlan(self, in_perm)


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

    def padded_pieces(self, x: torch.Tensor) -> list[torch.Tensor]:
        """:meth:`forward`'s output as its pieces (``x``, then each layer's output), each
        reflection-padded by one pixel; layers read the padded pieces before them
        (``forward_pieces``) instead of a concatenation. The form exported graphs use: padding
        commutes with channel concatenation, so each piece is padded once."""
        padded = [reflect_pad(x)]
        for layer in self.layers:
            padded.append(reflect_pad(layer.forward_pieces(padded)))
        return padded


# --------------------------------------------------------------------------------------------
# inference form: the same function on reflection-padded maps, without concatenations


def fill_border_(p: torch.Tensor, replicate: bool = False) -> torch.Tensor:
    """Rewrite the one-pixel border of padded maps ``(..., H + 2, W + 2)`` in place as the
    reflection of their interior (``replicate``: a copy of the edge, for H or W = 1).

    Four small copies instead of a padded copy of the map: the maps of the inference form are
    computed at padded size, so only their border has to be made right.
    """
    a, b = (1, -2) if replicate else (2, -3)
    p[..., 0, 1:-1] = p[..., a, 1:-1]
    p[..., -1, 1:-1] = p[..., b, 1:-1]
    p[..., :, 0] = p[..., :, a]
    p[..., :, -1] = p[..., :, b]
    return p


def _split_columns(weight: torch.Tensor, widths: tuple[int, ...]) -> list[torch.Tensor]:
    """``weight``'s input-channel columns cut into consecutive blocks of ``widths`` (contiguous)."""
    return [w.contiguous() for w in weight.split(list(widths), dim=1)]


class ConvPlan:
    """Inference form of :class:`ConvLayer`: a 3x3 conv on reflection-padded maps.

    The input is a list of padded maps (pieces of the dense block's concatenation, never
    concatenated): one conv per piece, summed in place, bias and ReLU fused into the last
    (oneDNN post-ops on CPU). Zero padding 1 on a padded map keeps the padded size, so the
    output is a padded map whose border is then rewritten by :func:`fill_border_`.
    ``in_perm[i]`` is the channel of the training form stored at input position ``i``.
    """

    out_perm: torch.Tensor | None = None  # outputs in the training form's order

    def __init__(self, layer: ConvLayer, in_perm: torch.Tensor | None = None) -> None:
        w = layer.conv.weight.detach()
        self.weight = w if in_perm is None else w[:, in_perm].contiguous()
        self.bias = None if layer.conv.bias is None else layer.conv.bias.detach()
        self.relu = not isinstance(layer.act, nn.Identity)
        self._pieces: dict[tuple[int, ...], list[torch.Tensor]] = {}

    def __call__(self, pieces: list[torch.Tensor], replicate: bool, sums: list | None = None) -> torch.Tensor:
        widths = tuple(p.shape[1] for p in pieces)
        if widths not in self._pieces:
            self._pieces[widths] = _split_columns(self.weight, widths)
        ws, last = self._pieces[widths], len(pieces) - 1
        out = conv_act(pieces[0], ws[0], self.bias, padding=1, relu=self.relu and last == 0)
        for i in range(1, last + 1):
            conv_add_(out, pieces[i], ws[i], padding=1, relu=self.relu and i == last)  # in place
        return fill_border_(out, replicate)

    def final(self, x: torch.Tensor) -> torch.Tensor:
        """The unpadded ``(B, C_out, H, W)`` output of one padded map (the network's last layer)."""
        y = conv2d(x, self.weight, self.bias)
        return y.relu_() if self.relu else y


def _box_mean3(a: torch.Tensor) -> torch.Tensor:
    """3x3 mean over the pixels inside the image, ``avg_pool2d(a, 3, 1, 1, count_include_pad=False)``
    as two separable sums (the CPU pooling kernel is ~4x slower on one-channel maps)."""

    def box(x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1))
        x = x[..., :-2] + x[..., 1:-1] + x[..., 2:]
        return x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]

    return box(a) / box(torch.ones_like(a[:1]))


class InferencePlan:
    """The DenseFuse skeleton's inference form, built by :meth:`FusionAutoEncoder.fuse_for_inference`.

    Same function as the training form (to float rounding), with far less memory traffic:

    * every map is computed at reflection-padded size and consumed by unpadded convolutions, so no
      layer pads or recomputes a border (:func:`fill_border_` rewrites one pixel per side);
    * the dense block keeps its layers' outputs as separate pieces; a layer convolves each
      piece and sums the results, so nothing is ever concatenated, and the fusion rule writes
      the fused pieces straight into the decoder's input;
    * each block folds what it can into its weights (for SC-LWC: channel shuffle, channel
      attention, grouped pointwise structure; see its ``inference_plan``), with bias, ReLU and
      residual fused into the convolutions (oneDNN post-ops on CPU, :mod:`.layers`);
    * channel permutations a block leaves in its output are absorbed by the next one's weights
      (``out_perm`` / ``in_perm``), so decoder blocks may run their grouped convolutions grouped;
      on CPU a grouped first decoder block gets one map per group (:meth:`decoder_widths`) and
      runs one dense convolution per group, which oneDNN does faster than one grouped conv.

    Pairs are fused one at a time (batch 1), each source encoded on its own.
    """

    def __init__(self, model: FusionAutoEncoder) -> None:
        self.conv1 = model.conv1.inference_plan(None)
        self.dense = [layer.inference_plan(None) for layer in model.dense.layers]
        perm, decoder = None, []
        for block in (model.conv2, model.conv3, model.conv4):
            # grouped execution needs the input in the training form's channel order
            plan = block.inference_plan(perm, grouped=perm is None)
            decoder.append(plan)
            perm = plan.out_perm
        self.decoder = decoder
        self.conv5 = model.conv5.inference_plan(perm)

    def encode(self, x: torch.Tensor, replicate: bool) -> list[torch.Tensor]:
        pieces = [self.conv1([x], replicate)]
        sums: list = [None]  # per piece, filled by the blocks that need statistics of their input
        for layer in self.dense:
            pieces.append(layer(pieces, replicate, sums))
            sums.append(None)
        return pieces

    def decoder_widths(self, pieces: list[torch.Tensor]) -> list[int]:
        """Channels of the maps the fusion rule writes for the decoder: one map, or on CPU one per
        group of a grouped first block (see ``SCLWCPlan.split_widths``) where the encoder's
        pieces do not straddle a group boundary."""
        channels = sum(p.shape[1] for p in pieces)
        split = getattr(self.decoder[0], "split_widths", None)
        if split is None or pieces[0].device.type != "cpu":
            return [channels]
        widths = split(channels)
        edges = set(accumulate(p.shape[1] for p in pieces))
        return widths if set(accumulate(widths)) <= edges else [channels]

    def fuse(self, f_ir: list[torch.Tensor], f_vi: list[torch.Tensor], rule: str, replicate: bool) -> list[torch.Tensor]:
        """The fusion rule applied piece by piece, written into the decoder's padded input maps
        (:meth:`decoder_widths`)."""
        ref = f_ir[0]
        maps = [torch.empty((1, c, *ref.shape[-2:]), dtype=ref.dtype, device=ref.device, memory_format=_layout(ref))
                for c in self.decoder_widths(f_ir)]
        w_ir = None
        if rule == "l1-norm":
            act = torch.cat([_activity(f_ir), _activity(f_vi)])[:, :, 1:-1, 1:-1]  # inside the image
            act = _box_mean3(act)
            eps = 1e-10
            w_ir = (act[:1] + eps) / (act[:1] + act[1:] + 2 * eps)
            w_ir = F.pad(w_ir, (1, 1, 1, 1), mode="replicate" if replicate else "reflect")
        elif rule not in FUSION_RULES:
            raise ValueError(f"unknown fusion_rule {rule!r}; choose from {sorted(FUSION_RULES)}")
        m, c0 = 0, 0
        for a, b in zip(f_ir, f_vi):
            if c0 == maps[m].shape[1]:
                m, c0 = m + 1, 0
            dst = maps[m][:, c0 : c0 + a.shape[1]]
            c0 += a.shape[1]
            # padded maps in, padded map out: the fused border is the reflection of the fused interior
            if w_ir is not None:
                torch.lerp(b, a, w_ir, out=dst)
            else:
                torch.add(a, b, out=dst)
        return [x.mul_(0.5) for x in maps] if rule == "mean" else maps

    def __call__(self, ir: torch.Tensor, vi: torch.Tensor, rule: str) -> torch.Tensor:
        """Fuse one pair ``(1, 1, H, W)``; returns ``(1, 1, H, W)`` in [0, 1]."""
        replicate = min(ir.shape[-2:]) <= 1  # as reflect_pad: too small to reflect
        x = F.pad(torch.cat([ir, vi]), (1, 1, 1, 1), mode="replicate" if replicate else "reflect")
        f_ir, f_vi = (self.encode(_in_layout(x[i : i + 1]), replicate) for i in range(2))
        y = self.fuse(f_ir, f_vi, rule, replicate)
        del f_ir, f_vi
        for plan in self.decoder:
            y = plan(y, replicate)
            y = y if isinstance(y, list) else [y]
        y = y[0] if len(y) == 1 else torch.cat(y, 1)  # (a grouped last block: not in the shipped networks)
        return self.conv5.final(y).clamp_(0.0, 1.0)


def _layout(x: torch.Tensor) -> torch.memory_format:
    # NHWC on CPU, where oneDNN's depthwise and 1x1 kernels are fastest; NCHW elsewhere
    return torch.channels_last if x.device.type == "cpu" else torch.contiguous_format


def _in_layout(x: torch.Tensor) -> torch.Tensor:
    return channels_last(x) if x.device.type == "cpu" else x.contiguous()


def _activity(pieces: list[torch.Tensor]) -> torch.Tensor:
    """Per-pixel sum over every channel of the pieces (non-negative features: the l1 norm), (1, 1, H, W)."""
    ref = pieces[0]
    h, w = ref.shape[-2:]
    if ref.device.type == "cpu" and ref.is_contiguous(memory_format=torch.channels_last):
        # NHWC: a matrix-vector product per piece over the contiguous channel axis
        acc = None
        for p in pieces:
            m = p.permute(0, 2, 3, 1).reshape(h * w, p.shape[1])
            ones = p.new_ones(p.shape[1])
            acc = torch.mv(m, ones) if acc is None else acc.addmv_(m, ones)
        return acc.view(1, 1, h, w)
    acc = None
    for p in pieces:
        s = p.sum(1, keepdim=True)
        acc = s if acc is None else acc.add_(s)
    return acc


# --------------------------------------------------------------------------------------------
# networks


def _channel_sums(pieces: list[torch.Tensor]) -> torch.Tensor:
    """Sum over the channels of all ``pieces`` (exported form of :func:`_activity`)."""
    acc = channel_sum(pieces[0])
    for p in pieces[1:]:
        acc = acc + channel_sum(p)
    return acc


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

    Inference form: in eval mode, when no gradient is needed and no hook watches the layers,
    :meth:`forward` runs :class:`InferencePlan` -- the same function (to float rounding, tested
    to 1e-5) with far less memory traffic. Its folded weights are rebuilt whenever the
    parameters change; :meth:`fuse_for_inference` builds them eagerly or switches the form off.
    """

    # litefuse.Fuser tiles frames above tile_size² pixels: the full-resolution 64-channel maps
    # of this family are the largest of any method (a 6000×4000 pair peaks at 4.6-5.2 GB with
    # 1024² tiles, 2.2 GB with 600²); 600² still fuses a 640×480 frame in one pass
    tile_size = 600

    #: run :class:`InferencePlan` in eval mode (see :meth:`fuse_for_inference`)
    inference_form: bool = True

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
        self._plan: tuple[ParameterSnapshot, InferencePlan | None] | None = None  # (the values it was built from, plan)

    def fuse_for_inference(self, enabled: bool = True) -> FusionAutoEncoder:
        """Build the inference form now (``enabled``), or run the training form in eval mode too.

        The plan is a cache of weights derived from the parameters (channel shuffles, attention
        gates, permutations folded in); it holds no state of its own and is not saved.
        """
        self.inference_form = enabled
        self._plan = None
        if enabled:
            self.inference_plan()
        return self

    def inference_plan(self) -> InferencePlan | None:
        """The current :class:`InferencePlan`, or ``None`` when a block has no inference form."""
        if self._plan is None or not self._plan[0].matches(self):
            with torch.no_grad():
                blocks = (self.conv1, *self.dense.layers, self.conv2, self.conv3, self.conv4, self.conv5)
                plan = InferencePlan(self) if all(hasattr(b, "inference_plan") for b in blocks) else None
            self._plan = (ParameterSnapshot(self), plan)
        return self._plan[1]

    def _use_inference_form(self, *inputs: torch.Tensor) -> bool:
        if self.training or not self.inference_form or torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return False
        if inputs[0].shape[0] == 0:  # an empty batch: the training form returns an empty batch
            return False
        if torch.is_grad_enabled() and any(t.requires_grad for t in (*inputs, *self.parameters())):
            return False  # the plan's weights are detached copies
        return not observed(self)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` image -> ``(B, C, H, W)`` features (C = 64 for DenseFuse)."""
        if self.channels_last:
            x = channels_last(x)
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
        check_pair(ir, vi)
        if exporting():
            return self._export_forward(ir, vi)
        if self._use_inference_form(ir, vi):
            plan = self.inference_plan()
            if plan is not None:
                with torch.no_grad():
                    out = [plan(ir[i : i + 1], vi[i : i + 1], self.fusion_rule) for i in range(ir.shape[0])]
                return (torch.cat(out) if len(out) > 1 else out[0]).contiguous()
        f_ir, f_vi = self.encode(torch.cat([ir, vi], dim=0)).chunk(2, dim=0)  # one encoder pass
        return self.decode(self.fuse_features(f_ir, f_vi)).clamp(0.0, 1.0).contiguous()


    def _export_forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` as exported graphs record it: the same function (to float rounding),
        shaped for runtimes with a blocked channel layout (onnxruntime's NCHWc), which carries
        convolutions but not padding or concatenation -- each ``Pad`` costs a reorder out of the
        layout and back in, each concatenation a copy.

        Each source runs the encoder on its own (no stacked batch to split), the dense block
        keeps its output as padded pieces (:meth:`DenseBlock.padded_pieces`), the fusion rule
        combines padded pieces with a padded weight map (reflection padding commutes with
        per-pixel rules), and C2 reads the fused pieces (``forward_pieces``): no 64-channel
        concatenation, split or pad remains.
        """
        p_ir = self.dense.padded_pieces(self.conv1(ir))
        p_vi = self.dense.padded_pieces(self.conv1(vi))
        if self.fusion_rule == "l1-norm":  # post-ReLU features: no abs
            act_ir, act_vi = (F.avg_pool2d(_channel_sums(ps)[..., 1:-1, 1:-1], 3, stride=1, padding=1, count_include_pad=False)
                              for ps in (p_ir, p_vi))
            eps = 1e-10
            w_ir = reflect_pad((act_ir + eps) / (act_ir + act_vi + 2 * eps))
            fused = [lerp(b, a, w_ir) for a, b in zip(p_ir, p_vi)]
        elif self.fusion_rule in ("addition", "mean"):
            fused = [a + b for a, b in zip(p_ir, p_vi)]
            fused = [f * 0.5 for f in fused] if self.fusion_rule == "mean" else fused
        else:
            raise ValueError(f"unknown fusion_rule {self.fusion_rule!r}; choose from {sorted(FUSION_RULES)}")
        return self.conv5(self.conv4(self.conv3(self.conv2.forward_pieces(fused)))).clamp(0.0, 1.0)


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
