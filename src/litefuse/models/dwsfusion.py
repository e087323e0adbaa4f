"""DWSFusion (Pattern Recognition 179 (2026) 113520) and the fixed variant DWSFusion+.

DWSFusion fuses infrared and visible luminance with two per-pixel weight-estimation nets
(AWEM), a learned scalar α mixing them ("cross perception"), and a small fusion head (FAF2M).
Every attention block is CBAM-like with a frequency-adaptive dilated convolution (FADC,
Chen et al., CVPR 2024) as its spatial branch.

The faithful generator :class:`DWSFusion` (9,035 parameters) reproduces the public release,
its quirks included, and loads the released checkpoint through :meth:`DWSFusion.remap_state_dict`.
``dwsfusion-plus`` is the same design with the known weaknesses fixed, each behind its own
constructor flag so an ablation can switch them one at a time (see :data:`PLUS_CONFIG`).

The modulated deformable convolution (DCNv2 semantics, pure PyTorch) lives in
:mod:`litefuse.models.layers`: FADC uses its shift/lerp form (every tap at one per-pixel
dilation: a few shifted ``lerp``s, about 4x faster on CPU than sampling) or, for tracing, the
generic ``grid_sample`` form. Convolutions follow the shared CPU policy of that module (native
kernels for small maps, where oneDNN's per-call threading costs more than the work).

FreqSelect's FFT masks are built once per shape, and its inverse transforms skip the columns the
low-pass masks zero out.
"""

from __future__ import annotations

import re
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ModelError
from ..registry import register_model
from .deform import _TAPS, dilated_deform_conv3x3, modulated_deform_conv3x3, offsets_to_grid
from .layers import channel_attention, check_pair, max_pool2x2
from .layers import conv2d as _policy_conv2d
from .lowpass import lowpass_masks_like


def _conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, padding: int = 0) -> Tensor:
    """A stride-1 convolution of a module's weights under the shared CPU policy (:mod:`.layers`)."""
    return _policy_conv2d(x, weight, bias, 1, padding)

__all__ = [
    "FreqSelect",
    "AdaKernHead",
    "FADC",
    "ChannelGate",
    "FA2M",
    "AWEM",
    "FAF2M",
    "AlphaNet",
    "DWSFusion",
    "DWSCritic",
    "PLUS_CONFIG",
    "modulated_deform_conv3x3",
    "dilated_deform_conv3x3",
    "offsets_to_grid",
]

# --------------------------------------------------------------------------------------------
# FADC: frequency selection, adaptive kernel, adaptive dilation
# --------------------------------------------------------------------------------------------


class FreqSelect(nn.Module):
    """Re-weights frequency bands of the input per pixel (FADC's FreqSelect).

    Bands: ``x - low_2``, ``low_2 - low_4``, ``low_4 - low_8`` each times
    ``2 * sigmoid(conv3x3(x))``, plus ``low_8`` unweighted; identity at (zero) init.
    ``low_f`` keeps the centred (H/f) x (W/f) box of the orthonormal 2-D spectrum.
    """

    def __init__(self, channels: int, factors: tuple[int, ...] = (2, 4, 8)) -> None:
        super().__init__()
        self.factors = tuple(factors)
        self.convs = nn.ModuleList(nn.Conv2d(channels, 1, 3, padding=1) for _ in self.factors)
        for conv in self.convs:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def lowpass(self, x: Tensor) -> list[Tensor]:
        """``[low_f for f in factors]``, each (B, C, H, W): 2-D FFT done as two 1-D passes
        that skip the columns every mask zeroes (about 3x less work than full ``irfft2``)."""
        h, w = x.shape[-2:]
        dtype = x.dtype
        # at least float32: half-precision FFTs need power-of-two sizes on CUDA and lose the
        # low bands' precision anyway; autocast must not cast back inside (float64 stays float64)
        device = x.device.type
        with torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else nullcontext():
            x = x if dtype == torch.float64 else x.float()
            masks = lowpass_masks_like(x, self.factors)
            kmax = max(m.shape[1] for m in masks)
            spec = torch.fft.fft(torch.fft.rfft(x, dim=-1, norm="ortho")[..., :kmax], dim=-2, norm="ortho")
            lows = []
            for m in masks:
                y = torch.fft.ifft(spec[..., : m.shape[1]] * m, dim=-2, norm="ortho")
                lows.append(torch.fft.irfft(y, n=w, dim=-1, norm="ortho").to(dtype))
        return lows

    def forward(self, x: Tensor) -> Tensor:
        lows = self.lowpass(x)
        weight = torch.cat([conv.weight for conv in self.convs])
        bias = torch.cat([conv.bias for conv in self.convs])
        g = 2.0 * torch.sigmoid(_conv2d(x, weight, bias, padding=1))  # (B, n, H, W)
        # sum_i g_i (low_{i-1} - low_i) + low_n, regrouped per low band: the gates are
        # single-channel, so the coefficients are cheap and the C-channel work halves
        coef = torch.cat([g[:, :1], g[:, 1:] - g[:, :-1], 1.0 - g[:, -1:]], dim=1)
        out = x * coef[:, :1]
        for i, low in enumerate(lows):
            out = out.addcmul_(low, coef[:, i + 1 : i + 2])
        return out


class AdaKernHead(nn.Module):
    """FADC attention head: pooled input -> per-sample input-channel and filter gates in (0, 1)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 16) -> None:
        super().__init__()
        self.fc = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.channel_fc = nn.Conv2d(hidden, in_channels, 1)
        self.filter_fc = nn.Conv2d(hidden, out_channels, 1)
        for conv in (self.fc, self.channel_fc, self.filter_fc):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        """pooled: (B, C_in) -> (B, C_in), (B, C_out). The 1x1 convs act on 1x1 maps: linears."""
        z = F.linear(pooled, self.fc.weight.flatten(1))
        z = F.relu(self.bn(z[:, :, None, None])).flatten(1)
        ch = torch.sigmoid(F.linear(z, self.channel_fc.weight.flatten(1), self.channel_fc.bias))
        filt = torch.sigmoid(F.linear(z, self.filter_fc.weight.flatten(1), self.filter_fc.bias))
        return ch, filt


class FADC(nn.Module):
    """Frequency-adaptive dilated 3x3 convolution (kernel 3, stride 1, replication padding 1).

    x <- FreqSelect(x); the kernel's low- (spatial mean) and high-frequency parts are scaled per
    sample by the two AdaKern heads; every pixel gets its own continuous dilation
    ``1 + |conv_offset(x)|`` realised by bilinear sampling, modulated by ``sigmoid(conv_mask(x))``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_channels))
        else:
            self.register_parameter("bias", None)
        self.freq_select = FreqSelect(in_channels)
        self.kern_low = AdaKernHead(in_channels, out_channels)
        self.kern_high = AdaKernHead(in_channels, out_channels)
        self.conv_offset = nn.Conv2d(in_channels, 1, 3)  # per-pixel extra dilation, reads pad(x)
        self.conv_mask = nn.Conv2d(in_channels, 9, 3)  # per-tap modulation, reads pad(x)
        self.sampler = "auto"  # see dilated_deform_conv3x3: shifts on the CPU, one gather on a GPU
        bound = (in_channels * 9) ** -0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.constant_(self.conv_offset.bias, 1e-4)
        nn.init.zeros_(self.conv_mask.weight)
        nn.init.zeros_(self.conv_mask.bias)

    def adaptive_kernel(self, x: Tensor) -> Tensor:
        """Per-sample kernel (B, O, C, 3, 3) from the two attention heads."""
        pooled = x.mean(dim=(2, 3))
        ch1, f1 = self.kern_low(pooled)
        ch2, f2 = self.kern_high(pooled)
        low = self.weight.mean(dim=(2, 3), keepdim=True)
        high = self.weight - low
        s1 = (2 * f1)[:, :, None, None, None] * (2 * ch1)[:, None, :, None, None]
        s2 = (2 * f2)[:, :, None, None, None] * (2 * ch2)[:, None, :, None, None]
        return low * s1 + high * s2

    def forward(self, x: Tensor) -> Tensor:
        x = self.freq_select(x)
        kernel = self.adaptive_kernel(x)
        xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
        om = _conv2d(
            xp,
            torch.cat([self.conv_offset.weight, self.conv_mask.weight]),
            torch.cat([self.conv_offset.bias, self.conv_mask.bias]),
        )
        # DCN offsets |r| * (dy, dx) on top of the unit taps = per-pixel dilation 1 + |r|
        dilation = 1.0 + om[:, :1].abs()
        mask = torch.sigmoid(om[:, 1:])
        return dilated_deform_conv3x3(xp, dilation, mask, kernel, self.bias, sampler=self.sampler)


# --------------------------------------------------------------------------------------------
# FA2M, AWEM, FAF2M, AlphaNet
# --------------------------------------------------------------------------------------------


def ChannelGate(channels: int, mode: str = "release") -> nn.Module:
    """CBAM channel gate ``sigmoid(f(avg) + f(max))``, built by :func:`~.layers.channel_attention`.

    ``mode="release"``: shared bias-free MLP C -> C//16 -> C; for C < 16 the hidden width is 0
    and the gate is the constant 0.5 (release quirk). ``"mlp"``: hidden width ``max(1, C//16)``.
    ``"eca"``: a 3-tap 1-D conv across channels (ECA-Net) -- no hidden ReLU that could die.
    """
    if mode not in ("release", "mlp", "eca"):
        raise ValueError(f"unknown channel gate {mode!r}")
    if mode == "eca":
        return channel_attention("eca", channels, pools=("avg", "max"), kernel_size=3)
    hidden = channels // 16 if mode == "release" else max(1, channels // 16)
    return channel_attention("se", channels, pools=("avg", "max"), hidden=hidden, bias=False)


class FA2M(nn.Module):
    """Frequency-adaptive attention: channel gate, then ``sigmoid(FADC([mean_c, max_c]))``."""

    def __init__(self, channels: int, channel_gate: str = "release") -> None:
        super().__init__()
        self.channel = ChannelGate(channels, channel_gate)
        self.spatial = FADC(2, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.channel(x)
        desc = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(desc))


def _pool2(x: Tensor, mode: str) -> Tensor:
    """2x2 pooling; odd H/W zero-padded by one row/column (bottom/right) first, as released."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    return max_pool2x2(x) if mode == "max" else F.avg_pool2d(x, 2)


class DownBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> pool, twice (1/4 size). The release reuses one BN for both."""

    def __init__(self, cin: int, cout: int, separate_bn: bool = False, pool: str = "max") -> None:
        super().__init__()
        if pool not in ("max", "avg"):
            raise ValueError(f"unknown pooling {pool!r}")
        self.pool = pool
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout) if separate_bn else None

    def forward(self, x: Tensor) -> Tensor:
        x = _pool2(F.relu(self.bn(_conv2d(x, self.conv1.weight, padding=1))), self.pool)
        bn2 = self.bn if self.bn2 is None else self.bn2
        return _pool2(F.relu(bn2(_conv2d(x, self.conv2.weight, padding=1))), self.pool)


class UpBlock(nn.Module):
    """(2x2 stride-2 transposed conv -> BN -> ReLU) twice (x4 size); last ReLU optional."""

    def __init__(self, cin: int, cout: int, final_relu: bool = True) -> None:
        super().__init__()
        self.deconv1 = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.bn1 = nn.BatchNorm2d(cout)
        self.deconv2 = nn.ConvTranspose2d(cout, cout, 2, stride=2)
        self.bn2 = nn.BatchNorm2d(cout)
        self.final_relu = final_relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn2(self.deconv2(F.relu(self.bn1(self.deconv1(x)))))
        return F.relu(x) if self.final_relu else x


class AWEM(nn.Module):
    """Adaptive weight estimation: per-pixel weight ``sigmoid(x + residual(x))`` in (0, 1).

    In the release the residual ends in BN -> ReLU -> (positive gates), so it is >= 0 and
    W >= sigmoid(x) >= 0.5; the loss term L1(W_IR, 1 - W_VI) then pushes it to zero, where the
    ReLU kills it. ``signed_residual=True`` drops that last ReLU so the residual can take
    either sign and keeps its gradient.
    """

    def __init__(
        self,
        channel_gate: str = "release",
        signed_residual: bool = False,
        separate_bn: bool = False,
        pool: str = "max",
    ) -> None:
        super().__init__()
        self.down1 = DownBlock(1, 4, separate_bn, pool)
        self.att1 = FA2M(4, channel_gate)
        self.down2 = DownBlock(4, 8, separate_bn, pool)
        self.att2 = FA2M(8, channel_gate)
        self.up1 = UpBlock(8, 4)
        self.att3 = FA2M(4, channel_gate)
        self.up2 = UpBlock(8, 1, final_relu=not signed_residual)
        self.att4 = FA2M(1, channel_gate)

    def forward(self, x: Tensor) -> Tensor:
        f1 = self.att1(self.down1(x))
        f3 = self.att3(self.up1(self.att2(self.down2(f1))))
        if f3.shape[-2:] != f1.shape[-2:]:
            f3 = F.interpolate(f3, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        r = self.att4(self.up2(torch.cat([f1, f3], dim=1)))
        if r.shape[-2:] != x.shape[-2:]:
            r = F.interpolate(r, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(r + x)


class FAF2M(nn.Module):
    """Fusion head: FADC 2->4 -> FA2M(4) -> + 1x1 skip -> FADC 4->1 -> clamp to [0, 1]."""

    def __init__(self, channel_gate: str = "release") -> None:
        super().__init__()
        self.fadc_in = FADC(2, 4)
        self.att = FA2M(4, channel_gate)
        self.skip = nn.Conv2d(2, 4, 1)
        self.fadc_out = FADC(4, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.att(self.fadc_in(x)) + _conv2d(x, self.skip.weight, self.skip.bias)
        return self.fadc_out(y).clamp(0.0, 1.0)


class AlphaNet(nn.Module):
    """One mixing scalar per image pair: two convs, global average pool, Linear, ReLU/sigmoid."""

    def __init__(self, bounded: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.fc = nn.Linear(8, 1)
        self.bounded = bounded

    def logits(self, x: Tensor) -> Tensor:
        """The scalar before the ReLU/sigmoid, (B, 1)."""
        z = F.relu(_conv2d(x, self.conv1.weight, self.conv1.bias, padding=1))
        z = F.relu(_conv2d(z, self.conv2.weight, self.conv2.bias, padding=1)).mean(dim=(2, 3))
        return self.fc(z)

    def forward(self, x: Tensor) -> Tensor:
        a = self.logits(x)
        a = torch.sigmoid(a) if self.bounded else F.relu(a)
        return a.view(-1, 1, 1, 1)


# --------------------------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------------------------

#: DWSFusion+ defaults: the §3.9 fixes that helped in the equal-budget ablation
#: (docs/dwsfusion-ablation.md); the others stay flags, off by default, and are reported there.
PLUS_CONFIG: dict = dict(
    bounded_alpha=True,  # α = sigmoid(.) in (0, 1): a convex mix, no unbounded extrapolation (helped)
    channel_gate="release",  # "eca" (input-dependent gate) trained markedly worse at equal budget
    awem_signed_residual=False,  # a residual that cannot die trained worse at equal budget
    awem_separate_bn=False,  # one BN per conv in the down blocks (see the ablation)
    awem_pool="max",  # "avg" as the paper's figure draws it (see the ablation)
    registered_critic_head=False,  # a trained critic head pulled training away from the content target (see the ablation)
)

_RELEASE_RULES: list[tuple[str, str]] = [
    (r"^WGet_IR\.", "awem_ir."),
    (r"^WGet_VI\.", "awem_vi."),
    (r"^Fusion\.", "fusion."),
    (r"^alphanet\.fc1\.", "alpha_net.fc."),
    (r"^alphanet\.", "alpha_net."),
    (r"^(awem_\w+)\.conv1\.", r"\1.down1."),
    (r"^(awem_\w+)\.conv2\.", r"\1.down2."),
    (r"^(awem_\w+)\.conv3\.", r"\1.up1."),
    (r"^(awem_\w+)\.conv4\.", r"\1.up2."),
    (r"^(awem_\w+)\.cbam(\d)\.", r"\1.att\2."),
    (r"\.upcbar\.0\.", ".deconv1."),
    (r"\.upcbar\.1\.", ".bn1."),
    (r"\.upcbar\.3\.", ".deconv2."),
    (r"\.upcbar\.4\.", ".bn2."),
    (r"^fusion\.feature_extract\.0\.", "fusion.fadc_in."),
    (r"^fusion\.feature_extract\.1\.", "fusion.att."),
    (r"^fusion\.conv4\.", "fusion.fadc_out."),
    (r"^fusion\.channel_match\.", "fusion.skip."),
    (r"\.channel_attention\.fc\.0\.", ".channel.fc1."),
    (r"\.channel_attention\.fc\.2\.", ".channel.fc2."),
    (r"\.spatial_attention\.conv1\.", ".spatial."),
    (r"\.OMNI_ATT1\.", ".kern_low."),
    (r"\.OMNI_ATT2\.", ".kern_high."),
    (r"\.FS\.freq_weight_conv_list\.", ".freq_select.convs."),
]
_RELEASE_PREFIXES = ("WGet_IR.", "WGet_VI.", "Fusion.", "alphanet.")


class DWSFusion(nn.Module):
    """DWSFusion generator. Defaults are faithful to the public release (9,035 parameters).

    Args:
        bounded_alpha: sigmoid instead of ReLU on α (release: False).
        channel_gate: "release" (constant 0.5 for these widths), "mlp" or "eca".
        awem_signed_residual: drop the ReLU before the AWEM residual add (release: False).
        awem_separate_bn: separate BNs for the two down-block convs (release: False).
        awem_pool: "max" (release) or "avg".
        registered_critic_head: critics built by :meth:`make_critic` own a trained Linear head
            (release: False, a fresh random head per call). Generator weights do not change.
    """

    #: why :func:`litefuse.export.export_onnx` refuses this model
    onnx_unsupported = ("its FFTs export only as ONNX DFT ops, which onnxruntime runs as a direct transform at sizes such as 640 "
                        "(one FreqSelect at 640x480: 36x slower than PyTorch)")
    #: kept in float32 under ``precision="bf16"/"fp16"`` (:class:`litefuse.runtime.HalfPrecision`):
    #: the fusion head writes the output image; in bf16 its rounding moves grey levels of a
    #: near-copy of the sources (MSRS: MI -8 %, SSIM -5 % with it in bf16, -0.6 % / -0.1 % without)
    float32_modules = ("fusion",)

    def __init__(
        self,
        bounded_alpha: bool = False,
        channel_gate: str = "release",
        awem_signed_residual: bool = False,
        awem_separate_bn: bool = False,
        awem_pool: str = "max",
        registered_critic_head: bool = False,
    ) -> None:
        super().__init__()
        self.config = dict(
            bounded_alpha=bounded_alpha,
            channel_gate=channel_gate,
            awem_signed_residual=awem_signed_residual,
            awem_separate_bn=awem_separate_bn,
            awem_pool=awem_pool,
            registered_critic_head=registered_critic_head,
        )
        awem = dict(
            channel_gate=channel_gate,
            signed_residual=awem_signed_residual,
            separate_bn=awem_separate_bn,
            pool=awem_pool,
        )
        self.alpha_net = AlphaNet(bounded_alpha)
        self.awem_ir = AWEM(**awem)
        self.awem_vi = AWEM(**awem)
        self.fusion = FAF2M(channel_gate)

    def forward_all(self, ir: Tensor, vi: Tensor, dual: bool = True) -> dict[str, Tensor]:
        """Every intermediate the losses need: alpha (B,1,1,1), w_ir, w_vi, ir_w, vi_w, fused,
        and with ``dual`` the dual-weight branch f_ir = AWEM_IR(fused), f_vi = AWEM_VI(fused)."""
        alpha = self.alpha_net(torch.cat([ir, vi], dim=1))
        w_ir, w_vi = self.awem_ir(ir), self.awem_vi(vi)
        ir_w = ir * (alpha * w_ir + (1 - alpha) * (1 - w_vi))
        vi_w = vi * (alpha * w_vi + (1 - alpha) * (1 - w_ir))
        fused = self.fusion(torch.cat([ir_w, vi_w], dim=1))
        out = dict(alpha=alpha, fused=fused, w_ir=w_ir, w_vi=w_vi, ir_w=ir_w, vi_w=vi_w)
        if dual:
            out["f_ir"], out["f_vi"] = self.awem_ir(fused), self.awem_vi(fused)
        return out

    def forward(self, ir: Tensor, vi: Tensor) -> Tensor:
        """Fused luminance (B, 1, H, W) in [0, 1]; skips the training-only dual-weight branch."""
        check_pair(ir, vi)
        if ir.shape[0] == 0:  # the FFT of the frequency selection refuses an empty batch
            return ir.new_empty(ir.shape)
        return self.forward_all(ir, vi, dual=False)["fused"]

    def make_critic(self, patch_size: tuple[int, int] = (240, 320)) -> DWSCritic:
        """A critic (D_IR or D_VI) matching this variant's ``registered_critic_head`` flag."""
        return DWSCritic(self.config["registered_critic_head"], patch_size)

    def set_sampler(self, mode: str) -> DWSFusion:
        """Deformable sampling of every FADC: ``"auto"`` (default: ``"shift"`` on the CPU, ``"grid"``
        elsewhere), ``"shift"`` (exact shifted lerps, fastest on CPU) or ``"grid"`` (one
        ``grid_sample`` gather, no data-dependent control flow: for GPUs, tracing, export)."""
        if mode not in ("auto", "shift", "grid"):
            raise ValueError(f"unknown sampler {mode!r}")
        for module in self.modules():
            if isinstance(module, FADC):
                module.sampler = mode
        return self

    def remap_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Map release key names (``WGet_IR.conv1.conv1.weight`` ...) onto this module's names.

        Native state dicts pass through unchanged. The release's zero-width channel-MLP
        weights are dropped when this model has none, and its FADC ``dilated_offset`` buffers
        are checked against the fixed 3x3 tap grid (they are constants, not stored here).
        """
        if not any(k.startswith(_RELEASE_PREFIXES) for k in state):
            return state
        own = self.state_dict()
        taps = _TAPS.flatten()
        out: dict[str, Tensor] = {}
        for key, value in state.items():
            if key.endswith(".dilated_offset"):
                if not torch.equal(value.flatten().to(taps), taps):
                    raise ModelError(f"{key}: unexpected deformable base grid {value.flatten().tolist()}")
                continue
            new = key
            for pattern, repl in _RELEASE_RULES:
                new = re.sub(pattern, repl, new)
            if new not in own and value.numel() == 0:
                continue  # zero-width channel MLP of the release: a constant gate here
            out[new] = value
        return out


@register_model(
    "dwsfusion",
    description="DWSFusion generator, faithful to the public release (9,035 params)",
    weights="dwsfusion.safetensors",
    tasks=("ivif",),
    paper="Pattern Recognition 179 (2026) 113520",
)
def dwsfusion(**kwargs) -> nn.Module:
    return DWSFusion(**kwargs)


@register_model(
    "dwsfusion-plus",
    description=(
        "DWSFusion+: DWSFusion with a sigmoid-bounded alpha (the fix that helped in the ablation)"
    ),
    weights="dwsfusion-plus.safetensors",
    tasks=("ivif",),
    paper="Pattern Recognition 179 (2026) 113520 (fixed variant)",
)
def dwsfusion_plus(**kwargs) -> nn.Module:
    return DWSFusion(**{**PLUS_CONFIG, **kwargs})


# --------------------------------------------------------------------------------------------
# critics
# --------------------------------------------------------------------------------------------


class DWSCritic(nn.Module):
    """WGAN critic: 3 x (conv3x3 -> BN -> ReLU -> avgpool 2) with 4, 8, 16 channels -> Linear.

    ``registered_head=False`` is faithful to the release: the final Linear is built anew, with
    random weights, on every forward call (so the score carries no learned signal).
    ``registered_head=True`` owns a trained Linear over the 16 x (H/8) x (W/8) features of a
    ``patch_size`` input; other input sizes are average-pooled to that grid first.
    """

    def __init__(self, registered_head: bool = False, patch_size: tuple[int, int] = (240, 320)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout in ((1, 4), (4, 8), (8, 16)):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.AvgPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.grid = (patch_size[0] // 8, patch_size[1] // 8)
        self.head = nn.Linear(16 * self.grid[0] * self.grid[1], 1) if registered_head else None

    def forward(self, x: Tensor) -> Tensor:
        z = self.features(x)
        if self.head is None:
            z = z.flatten(1)
            head = nn.Linear(z.shape[1], 1).to(device=z.device, dtype=z.dtype)  # release quirk
            return head(z)
        if z.shape[-2:] != self.grid:
            z = F.adaptive_avg_pool2d(z, self.grid)
        return self.head(z.flatten(1))
