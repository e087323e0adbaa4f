"""Layers shared by litefuse's networks: the CPU convolution policy and channel attention (the
deformable convolution is in :mod:`.deform`).

CPU convolution policy
----------------------
litefuse's networks are thin (1-64 channels) and run at full image resolution, where PyTorch's
default CPU dispatch of ``F.conv2d`` is slow in five ways. :func:`conv2d` is the one place that
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
5. **NCHW 1x1 and one-input-channel convolutions.** On NCHW maps oneDNN is slow for these
   (2->4 1x1 on 640x480: 5.3 ms against 0.4 ms; 1->4 3x3: 2.0 against 1.1 ms), while the
   native op is a plain GEMM: in inference they take it at every size (DWSFusion's heads).

Off CPU :func:`conv2d` is plain ``F.conv2d``; under ``torch.compile`` it traces the same
decisions, under ``torch.export`` it records plain convolutions (see :mod:`litefuse.export`). The fused primitives :func:`conv_act`, :func:`conv_add_` and
:func:`conv_add_act` (conv + bias + ReLU / residual in one pass, oneDNN post-ops) follow the
same policy; the inference forms of the DenseFuse family are built on them.

Channel attention
-----------------
:func:`channel_attention` builds every channel gate ``x * sigmoid(sum_p f(pool_p(x)))`` used in
litefuse: ECA (a 1-D conv across channels) and squeeze-and-excitation (a two-layer MLP), over
the average (LWC-DenseFuse) or average and maximum (CBAM, DWSFusion) descriptors.
"""

from __future__ import annotations

import math

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
    "max_pool2x2",
    "upsample2x",
    "conv_act",
    "conv_add_",
    "conv_add_act",
    "observed",
    "exporting",
    "check_pair",
    "ParameterSnapshot",
    "Conv2d",
    "ECA",
    "SqueezeExcite",
    "FixedGate",
    "channel_attention",
    "eca_kernel_size",
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
    """A Python dispatch mode that is not ``torch.compile``'s own tracing (e.g. the flop counter)."""
    return not torch.compiler.is_compiling() and _dispatch_mode()


def exporting() -> bool:
    """``torch.export`` (the ONNX exporter): record graph-friendly variants of a few ops."""
    return torch.compiler.is_exporting()


def check_pair(ir: torch.Tensor, vi: torch.Tensor) -> None:
    """A fusion network's input contract: two ``(B, 1, H, W)`` tensors of one shape, each image
    at least one pixel (an empty batch is allowed). A clear ``ValueError`` instead of whatever
    the first layer would raise. Not checked under ``torch.export``, whose symbolic sizes have
    their own ranges."""
    if exporting():
        return
    if ir.dim() != 4 or ir.shape[1] != 1 or ir.shape != vi.shape:
        raise ValueError(f"expected two (B, 1, H, W) tensors of equal shape, got {tuple(ir.shape)} and {tuple(vi.shape)}")
    if ir.shape[-2] == 0 or ir.shape[-1] == 0:
        raise ValueError(f"expected images of at least 1x1 pixels, got H x W = {ir.shape[-2]} x {ir.shape[-1]}")


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
    if exporting():
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
    if (fp32 and not nhwc and groups == 1 and dilation == (1, 1) and (k == (1, 1) or x.shape[1] == 1)
            and not _tracing() and not _records_grad(x, weight, bias)):
        # rule 5: the native op is a GEMM here (no im2col for 1x1), oneDNN's NCHW kernel is not
        return torch.ops.aten._slow_conv2d_forward(x.contiguous(), weight.contiguous(), k, bias, stride, padding)
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
        if not _records_grad(x, weight, bias):
            return _MKLDNN._convolution_pointwise(x, weight, bias, list(padding), list(stride), list(dilation), groups, "none", [], None)
        return torch.mkldnn_convolution(x, weight, bias, padding, stride, dilation, groups)
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


def _records_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd records an op on ``tensors``."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


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
    if exporting():
        return start + weight * (end - start)
    return torch.lerp(start, end, weight)


def channel_sum(x: Tensor) -> Tensor:
    """``x.sum(1, keepdim=True)``; traced for export as a 1x1 convolution with unit weights
    (onnxruntime's ``ReduceSum`` over the channel axis of a large map is ~5x slower than a conv)."""
    if exporting():
        return F.conv2d(x, x.new_ones(1, x.shape[1], 1, 1))
    return x.sum(1, keepdim=True)


def max_pool2x2(x: Tensor) -> Tensor:
    """``F.max_pool2d(x, 2)``: on CPU without autograd, the maximum of the four strided 2x2 phases.

    The same values (NaN included), about 10x faster on thin full-resolution maps: ATen's CPU
    kernel also computes argmax indices (4x480x640, 1 thread: 6.7 vs 0.7 ms). Elsewhere, when
    autograd records (its gradient goes to one element of a tie) or while tracing, plain
    ``F.max_pool2d``.
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    if x.device.type != "cpu" or x.dim() != 4 or not h or not w or _records_grad(x) or _tracing():
        return F.max_pool2d(x, 2)
    x = x[..., :h, :w]
    return torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 1::2, 0::2]), torch.maximum(x[..., 0::2, 1::2], x[..., 1::2, 1::2]))


def upsample2x(x: Tensor) -> Tensor:
    """``F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)``; on CPU without
    autograd, for float32 NHWC maps of several channels, as a depthwise transposed convolution of the
    edge-replicated map (per axis the taps 1/4, 3/4, 3/4, 1/4: the same values to float rounding,
    oneDNN's kernel instead of ATen's loop: 8x240x320 0.97 vs 1.91 ms with AVX2, 1.16 vs 1.94
    with AVX-512). Elsewhere (NCHW, one channel, bf16, autograd, tracing) plain ``F.interpolate``,
    which was as fast or faster there (bf16: 3.9 vs 5.5 ms).
    """
    if x.device.type != "cpu" or x.dtype != torch.float32 or not _is_nhwc(x) or x.shape[1] < 2 or _records_grad(x) or _tracing():
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    c = x.shape[1]
    taps = x.new_tensor([0.25, 0.75, 0.75, 0.25])
    weight = (taps[:, None] * taps[None, :]).expand(c, 1, 4, 4).contiguous()
    # padding 3 crops the replicated border's contribution: output 2H x 2W, aligned as interpolate's
    return F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, stride=2, padding=3, groups=c)


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


def conv_add_(
    acc: Tensor, x: Tensor, weight: Tensor, bias: Tensor | None = None, padding: int = 0, relu: bool = False
) -> Tensor:
    """``acc += conv(x) + bias`` in place (stride 1), then ``relu`` in place too: oneDNN's sum
    (and ReLU) post-ops on CPU -- no new tensor, no second pass.

    One group only: oneDNN's binary post-ops run a slow per-group fallback for grouped convs.
    """
    if onednn_ok(x) and not torch.is_grad_enabled():
        p = [padding, padding]
        act = "relu" if relu else None
        return _MKLDNN._convolution_pointwise_.binary(acc, x, weight, bias, p, [1, 1], [1, 1], 1, "add", None, act, [], None)
    acc.add_(conv2d(x, weight, bias, 1, padding))
    return acc.relu_() if relu else acc


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
    if _dispatch_mode_outside_compile() and not exporting():  # tracing modes are not watchers
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


class ParameterSnapshot:
    """A copy of ``module``'s parameter values (and their shapes, dtypes, devices), to tell whether
    a cache derived from them (an inference form's folded weights) is stale: after
    ``load_state_dict``, an optimiser step, ``.to()``, and an in-place update through ``p.data``
    (old-style EMA), which bumps no version counter. The values are compared as one flat
    tensor: about 0.1 ms a call on a CPU for these small networks (74 k parameters at most), one
    synchronisation on a GPU (not one per parameter)."""

    def __init__(self, module: nn.Module) -> None:
        params = [p.detach() for p in module.parameters()]
        self.layout = [(p.shape, p.dtype, p.device) for p in params]
        self.values = _flat(params)

    def matches(self, module: nn.Module) -> bool:
        """Whether ``module``'s parameters still hold the copied values (same shapes, devices, dtypes)."""
        params = [p.detach() for p in module.parameters()]
        if [(p.shape, p.dtype, p.device) for p in params] != self.layout:
            return False
        return all(torch.equal(a, b) for a, b in zip(_flat(params), self.values))


def _flat(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """``params`` as one flat copy per (dtype, device) group (one group for a network)."""
    groups: dict = {}
    for p in params:
        groups.setdefault((p.dtype, p.device), []).append(p.reshape(-1))
    return [torch.cat(g) for g in groups.values()]


# --------------------------------------------------------------------------------------------
# channel attention
# --------------------------------------------------------------------------------------------

POOLS = ("avg", "max")


def _inplace_ok(x: Tensor) -> bool:
    """Gating in place is safe when autograd will not need the overwritten values."""
    return not torch.is_grad_enabled() or not x.requires_grad


def _descriptors(x: Tensor, pools: tuple[str, ...]) -> list[Tensor]:
    if exporting():  # onnxruntime sums a whole map's H*W values in one float32 run (2.8e-4 off on a
        # white 1280x1024 frame); row means first keep each run short
        return [x.mean(3).mean(2) if p == "avg" else x.amax((2, 3)) for p in pools]
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
