"""Layers shared by litefuse's networks: the CPU convolution policy, channel attention and the
modulated deformable convolution.

CPU convolution policy
----------------------
litefuse's networks are thin (1-64 channels) and run at full image resolution, where PyTorch's
default CPU dispatch of ``F.conv2d`` is slow in four ways. :func:`conv2d` is the one place that
handles them (measured on a 2-core AVX2 EPYC, 640x480, float32; docs/benchmarks.md):

1. **Layout.** oneDNN's depthwise and 1x1 kernels are 2-3x faster on channels-last (NHWC)
   activations, so the thin networks (DenseFuse family, AE-Netv2) run NHWC: they convert their
   one-channel input once with :func:`channels_last` (a one-channel tensor signals NHWC only
   through explicit strides) and every convolution keeps its input's layout. Networks whose
   other ops prefer NCHW (DWSFusion's FFTs and deformable sampling) simply stay NCHW. Weights
   stay plain and contiguous (safetensors).
2. **Dispatch.** ``F.conv2d`` sends 1x1 convolutions of small batches to a GEMM path that also
   drops the NHWC layout; oneDNN is called directly instead.
3. **One output channel.** oneDNN is slow for ``C -> 1`` convolutions (2-3x an 8-channel
   output). On NHWC maps they are computed as a depthwise ``k x k`` (one kernel per input
   channel) followed by a matrix-vector product over the contiguous channel axis -- the same sum.
4. **Small NCHW maps.** Below :data:`ONEDNN_MIN_PIXELS` pixels (batch x height x width: the work
   of one call) every oneDNN call opens a thread-parallel region that costs more than the
   convolution, and on a busy CPU each region can wait a scheduler tick (a 16x16 DWSFusion
   forward: 55 ms native, 0.5-4 s with oneDNN), so small NCHW maps use PyTorch's native
   convolution. The NHWC networks keep oneDNN at every size: their layout has no fast native
   kernel, and one code path at every size keeps ``torch.compile`` (dynamic shapes) exact.

Off CPU :func:`conv2d` is plain ``F.conv2d``; under ``torch.compile`` it traces the same
decisions, under ``torch.export`` it records plain convolutions (see :mod:`litefuse.export`). The fused primitives :func:`conv_act`, :func:`conv_add_` and
:func:`conv_add_act` (conv + bias + ReLU / residual in one pass, oneDNN post-ops) follow the
same policy; the inference forms of the DenseFuse family are built on them.

Channel attention
-----------------
:func:`channel_attention` builds every channel gate ``x * sigmoid(sum_p f(pool_p(x)))`` used in
litefuse: ECA (a 1-D conv across channels) and squeeze-and-excitation (a two-layer MLP), over
the average (LWC-DenseFuse) or average and maximum (CBAM, DWSFusion) descriptors.

Deformable convolution
----------------------
Pure-PyTorch modulated deformable 3x3 convolution with DCNv2 semantics (no mmcv/torchvision):
:func:`modulated_deform_conv3x3` (any offsets, one ``grid_sample``) and
:func:`dilated_deform_conv3x3` (taps at a per-pixel dilation, as FADC uses them: shifted
``lerp``s instead of a sampling grid, about 4x faster on CPU).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ONEDNN_MIN_PIXELS",
    "onednn_ok",
    "conv2d",
    "channels_last",
    "lerp",
    "channel_sum",
    "conv_act",
    "conv_add_",
    "conv_add_act",
    "observed",
    "parameter_key",
    "Conv2d",
    "ECA",
    "SqueezeExcite",
    "FixedGate",
    "channel_attention",
    "eca_kernel_size",
    "modulated_deform_conv3x3",
    "dilated_deform_conv3x3",
    "offsets_to_grid",
]

# --------------------------------------------------------------------------------------------
# CPU convolution policy
# --------------------------------------------------------------------------------------------

#: NCHW maps with fewer pixels (over the whole batch) run PyTorch's native CPU convolution (rule 4)
ONEDNN_MIN_PIXELS = 128 * 128

_CL = torch.channels_last
_MKLDNN = torch.ops.mkldnn
_HAS_ONEDNN = torch.backends.mkldnn.is_available()  # (read once: dynamo cannot trace the call)


def _tracing() -> bool:
    """``torch.compile`` / ``torch.export`` tracing or a Python dispatch mode (e.g. the flop
    counter): no direct oneDNN calls (they have no fake-tensor support or FLOP formula)."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or _dispatch_mode()


def _dispatch_mode_outside_compile() -> bool:
    return not torch.compiler.is_compiling() and _dispatch_mode()


def _exporting() -> bool:
    """``torch.export`` (the ONNX exporter): record graph-friendly variants of a few ops."""
    return torch.compiler.is_exporting()


def _dispatch_mode() -> bool:
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode
    except ImportError:  # pragma: no cover - private API moved
        return False
    return _get_current_dispatch_mode() is not None


def onednn_ok(x: Tensor) -> bool:
    """Whether the fused primitives below run as oneDNN post-ops on ``x``: a float32 CPU batch of
    at least :data:`ONEDNN_MIN_PIXELS` pixels, outside tracing (the direct oneDNN ops have no
    fake-tensor or export support); otherwise they are :func:`conv2d` plus in-place ops."""
    return (
        not _tracing()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.shape[0] * x.shape[-2] * x.shape[-1] >= ONEDNN_MIN_PIXELS
        and _HAS_ONEDNN
        and torch.backends.mkldnn.enabled
    )


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Tensor:
    """``F.conv2d`` (zero padding) under litefuse's CPU convolution policy (module docstring).

    Under ``torch.compile`` the same decisions are traced with traceable ops (oneDNN reached
    through ``F.conv2d``); under ``torch.export`` the graph gets plain convolutions, with rule 3
    kept as a depthwise + 1x1 conv (runtimes' blocked kernels pad one output channel to eight).
    """
    if _exporting():
        if weight.shape[0] == 1 and groups == 1 and weight.shape[1] > 1 and weight.shape[-1] * weight.shape[-2] > 1:
            y = F.conv2d(x, weight.transpose(0, 1), None, stride, padding, dilation, weight.shape[1])
            return F.conv2d(y, torch.ones_like(weight[:, :, :1, :1]), bias)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    if x.device.type != "cpu":
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    fp32 = x.dtype == torch.float32
    nhwc = _is_nhwc(x)
    if fp32 and not nhwc and x.shape[0] * x.shape[-2] * x.shape[-1] < ONEDNN_MIN_PIXELS:
        # (not traced: no fake-tensor support with dynamic shapes, no FLOP formula)
        if groups == 1 and dilation == (1, 1) and not _tracing():
            # rule 4: the native op that F.conv2d reaches with oneDNN switched off, called
            # directly (switching oneDNN off is process-wide, not thread-safe)
            return torch.ops.aten._slow_conv2d_forward(x.contiguous(), weight.contiguous(), weight.shape[-2:], bias, stride, padding)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    k = tuple(weight.shape[-2:])
    if (nhwc and weight.shape[0] == 1 and groups == 1 and stride == (1, 1) and dilation == (1, 1) and x.shape[1] > 1
            and not _dispatch_mode_outside_compile()):  # counted (FlopCounterMode): the plain conv's MACs
        # rule 3: the channel sum of a depthwise conv, as a matrix-vector product over NHWC
        c = x.shape[1]
        if k != (1, 1):
            x = conv2d(x, weight.transpose(0, 1), None, 1, padding, 1, c)
            weight = weight.new_ones(1, c, 1, 1)
        elif padding != (0, 0):
            x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
        return F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias).permute(0, 3, 1, 2)
    # rules 1-2: in the input's layout; float32 calls oneDNN directly (inference: the pointwise
    # op, under autograd the differentiable one). Traced graphs get F.conv2d, which inductor
    # lowers to oneDNN itself (its fusion passes mis-stride a pre-made pointwise op).
    weight = weight.contiguous(memory_format=_CL if nhwc else torch.contiguous_format)
    if fp32 and _HAS_ONEDNN and not _tracing():
        if not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))):
            return _MKLDNN._convolution_pointwise(x, weight, bias, list(padding), list(stride), list(dilation), groups, "none", [], None)
        return torch.mkldnn_convolution(x, weight, bias, padding, stride, dilation, groups)
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


def _is_nhwc(x: Tensor) -> bool:
    """Channels-last strides (for one channel: the explicit ones :func:`channels_last` gives)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=_CL) and (x.shape[1] > 1 or x.stride(1) == 1) and not (
        x.shape[1] > 1 and x.shape[-2] * x.shape[-1] == 1
    )


def channels_last(x: Tensor) -> Tensor:
    """``x`` in NHWC memory layout; a one-channel tensor gets the strides ``(HW, 1, W, 1)`` that
    oneDNN recognises as NHWC (a contiguous one has ``(HW, HW, W, 1)``, read as NCHW)."""
    if _is_nhwc(x):
        return x
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=_CL).copy_(x)


def lerp(start: Tensor, end: Tensor, weight: Tensor) -> Tensor:
    """``torch.lerp``; traced for export as ``start + weight * (end - start)``.

    The ONNX exporter decomposes ``lerp`` into its two-branch precise form (``Less``, ``Where``
    and two products over the full map), which onnxruntime runs ~3x slower than the plain form.
    The two agree to float rounding.
    """
    if _exporting():
        return start + weight * (end - start)
    return torch.lerp(start, end, weight)


def channel_sum(x: Tensor) -> Tensor:
    """``x.sum(1, keepdim=True)``; traced for export as a 1x1 convolution with unit weights
    (onnxruntime's ``ReduceSum`` over the channel axis of a large map is ~5x slower than a conv)."""
    if _exporting():
        return F.conv2d(x, x.new_ones(1, x.shape[1], 1, 1))
    return x.sum(1, keepdim=True)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (zero padding) computed by :func:`conv2d`; parameters, state-dict keys and
    MAC-counting hooks are those of a plain conv."""

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)



def conv_act(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, padding: int = 0, groups: int = 1, relu: bool = False
) -> Tensor:
    """``relu(conv(x) + bias)`` (stride 1) in one pass: oneDNN's ReLU post-op on CPU."""
    if onednn_ok(x) and not torch.is_grad_enabled():
        p = [padding, padding]
        return _MKLDNN._convolution_pointwise(x, weight, bias, p, [1, 1], [1, 1], groups, "relu" if relu else "none", [], None)
    y = conv2d(x, weight, bias, 1, padding, 1, groups)
    return y.relu_() if relu else y


def conv_add_(acc: Tensor, x: Tensor, weight: Tensor, bias: Tensor | None = None, padding: int = 0) -> Tensor:
    """``acc += conv(x) + bias`` in place (stride 1): oneDNN's sum post-op on CPU.

    One group only: oneDNN's binary post-ops run a slow per-group fallback for grouped convs.
    """
    if onednn_ok(x) and not torch.is_grad_enabled():
        p = [padding, padding]
        return _MKLDNN._convolution_pointwise_.binary(acc, x, weight, bias, p, [1, 1], [1, 1], 1, "add", None, None, [], None)
    return acc.add_(conv2d(x, weight, bias, 1, padding))


def conv_add_act(x: Tensor, other: Tensor, weight: Tensor, bias: Tensor | None = None, padding: int = 0) -> Tensor:
    """``relu(conv(x) + bias + other)`` as a new tensor (stride 1, one group), one pass on CPU."""
    if onednn_ok(x) and not torch.is_grad_enabled():
        p = [padding, padding]
        return _MKLDNN._convolution_pointwise.binary(x, other, weight, bias, p, [1, 1], [1, 1], 1, "add", None, "relu", [], None)
    return conv2d(x, weight, bias, 1, padding).add_(other).relu_()


def observed(module: nn.Module) -> bool:
    """Whether anything watches ``module``'s submodule calls: forward hooks or pre-hooks (MAC
    counters, feature extractors) or an active dispatch mode (``FlopCounterMode``). Inference
    forms that compute a network without calling its submodules step aside then."""
    from torch.nn.modules import module as _module

    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return True
    if _dispatch_mode_outside_compile() and not _exporting():  # tracing modes are not watchers
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def parameter_key(module: nn.Module) -> tuple:
    """Identity of ``module``'s parameter values: storage, version counter, device and dtype of
    each. It changes on ``load_state_dict``, optimiser steps and ``.to()``, which is when a cache
    derived from the parameters (an inference form's folded weights) must be rebuilt."""
    key = []
    for p in module.parameters():
        try:
            version = p._version
        except RuntimeError:  # inference tensors keep no version counter: never cache them
            return (object(),)
        key.append((p.data_ptr(), version, p.dtype, p.device))
    return tuple(key)


# --------------------------------------------------------------------------------------------
# channel attention
# --------------------------------------------------------------------------------------------

POOLS = ("avg", "max")


def _inplace_ok(x: Tensor) -> bool:
    """Gating in place is safe when autograd will not need the overwritten values."""
    return not torch.is_grad_enabled() or not x.requires_grad


def _descriptors(x: Tensor, pools: tuple[str, ...]) -> list[Tensor]:
    return [x.mean((2, 3)) if p == "avg" else x.amax((2, 3)) for p in pools]


def _apply_gate(x: Tensor, logit: Tensor, inplace: bool) -> Tensor:
    gate = torch.sigmoid(logit).view(*logit.shape, 1, 1)
    return x.mul_(gate) if inplace and _inplace_ok(x) else x * gate


def eca_kernel_size(channels: int, gamma: float = 2.0, beta: float = 1.0) -> int:
    """ECA-Net adaptive kernel size: nearest odd number to ``(log2 C + beta) / gamma``, at least 3."""
    k = int(abs((math.log2(channels) + beta) / gamma))
    k = k if k % 2 else k + 1
    return max(k, 3)


class ECA(nn.Module):
    """Efficient channel attention: a 1-D conv across the pooled channel descriptor(s), no reduction.

    With two pools (CBAM style) the same conv scores both descriptors and the scores add.
    """

    def __init__(
        self, channels: int, kernel_size: int | None = None, pools: tuple[str, ...] = ("avg",), inplace: bool = False
    ) -> None:
        super().__init__()
        self.pools, self.inplace = tuple(pools), inplace
        k = kernel_size or eca_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def logit(self, desc: list[Tensor]) -> Tensor:
        """``(B, C)`` descriptors (one per pool) -> ``(B, C)`` gate logits."""
        b, c = desc[0].shape
        z = self.conv(torch.stack(desc).view(-1, 1, c)).view(len(desc), b, c)
        return z[0] if len(desc) == 1 else z.sum(0)

    def forward(self, x: Tensor) -> Tensor:
        return _apply_gate(x, self.logit(_descriptors(x, self.pools)), self.inplace)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation gate ``fc2(relu(fc1(.)))`` over the pooled descriptor(s).

    ``hidden`` defaults to ``max(1, channels // reduction)``; the layers are 1x1 convs (older
    litefuse files stored DWSFusion's bias-free MLP as ``nn.Linear`` weights: they still load).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 4,
        hidden: int | None = None,
        pools: tuple[str, ...] = ("avg",),
        bias: bool = True,
        inplace: bool = False,
    ) -> None:
        super().__init__()
        self.pools, self.inplace = tuple(pools), inplace
        hidden = max(1, channels // reduction) if hidden is None else hidden
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)

    def logit(self, desc: list[Tensor]) -> Tensor:
        b, c = desc[0].shape
        z = self.fc2(F.relu(self.fc1(torch.stack(desc).view(-1, c, 1, 1)))).view(len(desc), b, c)
        return z[0] if len(desc) == 1 else z.sum(0)

    def forward(self, x: Tensor) -> Tensor:
        return _apply_gate(x, self.logit(_descriptors(x, self.pools)), self.inplace)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for name in ("fc1.weight", "fc2.weight"):
            w = state_dict.get(prefix + name)
            if w is not None and w.dim() == 2:  # nn.Linear layout
                state_dict[prefix + name] = w[:, :, None, None]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class FixedGate(nn.Module):
    """A constant gate ``x * value`` (an MLP gate of zero hidden width: ``sigmoid(0) = 0.5``)."""

    def __init__(self, value: float = 0.5) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: Tensor) -> Tensor:
        return x * self.value


def channel_attention(
    kind: str | None,
    channels: int,
    *,
    pools: tuple[str, ...] = ("avg",),
    reduction: int = 4,
    hidden: int | None = None,
    bias: bool = True,
    kernel_size: int | None = None,
    inplace: bool = False,
) -> nn.Module:
    """The channel gate ``kind`` for ``channels`` channels.

    ``kind``: ``"eca"`` (:class:`ECA`), ``"se"`` (:class:`SqueezeExcite`; ``hidden`` or
    ``channels // reduction``, at least 1; a hidden width of 0 gives the constant
    :class:`FixedGate`), or ``None`` / ``"none"`` (identity). ``pools``: the descriptors,
    ``("avg",)`` or CBAM's ``("avg", "max")``. ``inplace`` gates the input tensor itself when
    autograd does not need it.
    """
    if any(p not in POOLS for p in pools) or not pools:
        raise ValueError(f"pools must be a non-empty subset of {POOLS}, got {pools!r}")
    if kind is None or kind == "none":
        return nn.Identity()
    if kind == "eca":
        return ECA(channels, kernel_size, pools, inplace)
    if kind == "se":
        if hidden == 0:
            return FixedGate(0.5)
        return SqueezeExcite(channels, reduction, hidden, pools, bias, inplace)
    raise ValueError(f"unknown attention {kind!r}; choose 'eca', 'se' or None")


# --------------------------------------------------------------------------------------------
# modulated deformable convolution (DCNv2 semantics)
# --------------------------------------------------------------------------------------------

# DCN tap layout of a 3x3 kernel: (dy, dx) pairs, row major from (-1, -1) to (1, 1)
_TAP_LIST = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
_TAPS = torch.tensor(_TAP_LIST, dtype=torch.float32)


@lru_cache(maxsize=4)
def _tap_grid(h: int, w: int, hp: int, wp: int) -> Tensor:
    """Normalised (x, y) sampling grid of the 9 undeformed taps, shape (9, h, w, 2).

    Output pixel (i, j) reads the unpadded-conv window of a ``hp x wp`` input centred at
    (i + 1, j + 1); coordinates are normalised for ``grid_sample(align_corners=True)``.
    Built outside inference mode: cached tensors must stay usable under autograd.
    """
    with torch.inference_mode(False):
        sy, sx = 2.0 / max(hp - 1, 1), 2.0 / max(wp - 1, 1)
        ys = torch.arange(h, dtype=torch.float64) + 1.0
        xs = torch.arange(w, dtype=torch.float64) + 1.0
        gy = (ys[None, :, None] + _TAPS[:, 0, None, None].double()) * sy - 1.0  # (9, h, 1)
        gx = (xs[None, None, :] + _TAPS[:, 1, None, None].double()) * sx - 1.0  # (9, 1, w)
        return torch.stack(torch.broadcast_tensors(gx, gy), dim=-1).float().contiguous()


def _base_grid(h: int, w: int, hp: int, wp: int) -> Tensor:
    """:func:`_tap_grid`, cached in eager mode; traced afresh under ``torch.compile`` (which
    would ignore the cache, with a warning)."""
    return _tap_grid.__wrapped__(h, w, hp, wp) if torch.compiler.is_compiling() else _tap_grid(h, w, hp, wp)


def offsets_to_grid(offset: Tensor, in_hw: tuple[int, int]) -> Tensor:
    """DCN offsets (B, 18, H, W), (dy, dx) per tap, to a ``grid_sample`` grid (B, 9, H, W, 2)."""
    b, _, h, w = offset.shape
    hp, wp = in_hw
    base = _base_grid(h, w, hp, wp).to(offset)
    scale = offset.new_tensor([2.0 / max(wp - 1, 1), 2.0 / max(hp - 1, 1)])
    off = offset.view(b, 9, 2, h, w).flip(2).permute(0, 1, 3, 4, 2)  # (B, 9, H, W, [dx, dy])
    return base + off * scale


def _deform_sample(x: Tensor, grid: Tensor) -> Tensor:
    """Bilinear samples of ``x`` (B, C, Hp, Wp) at ``grid`` (B, 9, H, W, 2) -> (B, C, 9, H, W).

    ``align_corners=True`` with zero padding is exactly DCNv2's bilinear rule: corners that
    fall outside the input contribute zero.
    """
    b, k, h, w, _ = grid.shape
    out = F.grid_sample(x, grid.view(b, k * h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.view(b, x.shape[1], k, h, w)


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
    hp, wp = in_hw
    base = _base_grid(h, w, hp, wp).to(dilation)
    scale = _TAPS.to(dilation).flip(1) * dilation.new_tensor([2.0 / max(wp - 1, 1), 2.0 / max(hp - 1, 1)])
    return torch.addcmul(base, (dilation - 1).view(b, 1, h, w, 1), scale.view(9, 1, 1, 2))


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
