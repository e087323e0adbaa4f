"""DenseFuse, LWC-DenseFuse, their fusion rules, and the complexity counters."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from litefuse.models.complexity import count_macs, count_params
from litefuse.models.densefuse import (
    DenseFuse,
    fuse_addition,
    fuse_l1_norm,
    l1_norm_weights,
    reflect_conv3x3,
)
from litefuse.models.lwc_densefuse import (
    ABLATION_VARIANTS,
    ECA,
    GroupedPointwise,
    LWCDenseFuse,
    SCLWConv,
    SqueezeExcite,
    ablation_kwargs,
    channel_shuffle,
    eca_kernel_size,
)
from litefuse.registry import get_model_info, load_model


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ------------------------------------------------------------------------------------------
# DenseFuse architecture


def test_densefuse_param_count_matches_spec_table() -> None:
    m = DenseFuse()
    assert count_params(m) == 74_193
    per_layer = {
        "conv1": 160,
        "dense.layers.0": 2_320,
        "dense.layers.1": 4_624,
        "dense.layers.2": 6_928,
        "conv2": 36_928,
        "conv3": 18_464,
        "conv4": 4_624,
        "conv5": 145,
    }
    modules = dict(m.named_modules())
    assert {name: count_params(modules[name]) for name in per_layer} == per_layer


def test_densefuse_shapes_and_layers() -> None:
    m = DenseFuse().eval()
    x = torch.rand(2, 1, 12, 10)
    f = m.encode(x)
    assert f.shape == (2, 64, 12, 10)
    assert m.decode(f).shape == (2, 1, 12, 10)
    assert m.reconstruct(x).shape == (2, 1, 12, 10)
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    assert len(convs) == 8 and all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    assert not any(isinstance(mod, (nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d)) for mod in m.modules())


def test_reflect_conv_equals_padded_conv() -> None:
    for shape, groups, out_ch in [((2, 4, 7, 9), 1, 6), ((1, 6, 3, 3), 6, 6), ((1, 4, 2, 5), 2, 4), ((1, 2, 1, 1), 1, 3)]:
        x = torch.randn(shape)
        w = torch.randn(out_ch, shape[1] // groups, 3, 3)
        b = torch.randn(out_ch)
        mode = "reflect" if min(shape[-2:]) > 1 else "replicate"
        ref = F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), w, b, groups=groups)
        torch.testing.assert_close(reflect_conv3x3(x, w, b, groups), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (17, 23), (31, 8)])
@pytest.mark.parametrize("name", ["densefuse", "lwc-densefuse"])
def test_any_size_and_output_range(name: str, size: tuple[int, int]) -> None:
    m = load_model(name, pretrained=False)
    ir, vi = torch.rand(1, 1, *size), torch.rand(1, 1, *size)
    with torch.inference_mode():
        out = m(ir, vi)
    assert out.shape == (1, 1, *size) and out.is_contiguous()
    assert out.min() >= 0 and out.max() <= 1


def test_forward_batches_and_rejects_bad_shapes() -> None:
    m = DenseFuse().eval()
    with torch.inference_mode():
        assert m(torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8)).shape == (3, 1, 8, 8)
        with pytest.raises(ValueError):
            m(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
        with pytest.raises(ValueError):
            m(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))


def test_fusion_rule_argument() -> None:
    ir, vi = torch.rand(1, 1, 9, 9), torch.rand(1, 1, 9, 9)
    base = DenseFuse().eval()
    with torch.inference_mode():
        f_ir, f_vi = base.encode(ir), base.encode(vi)
        for rule, fn in [("addition", fuse_addition), ("l1-norm", fuse_l1_norm)]:
            m = DenseFuse(fusion_rule=rule).eval()
            m.load_state_dict(base.state_dict())
            expected = base.decode(fn(f_ir, f_vi)).clamp(0, 1)
            torch.testing.assert_close(m(ir, vi), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError):
        DenseFuse(fusion_rule="max")


# ------------------------------------------------------------------------------------------
# fusion rules


def test_addition_and_mean_rules() -> None:
    a, b = torch.rand(2, 4, 5, 5), torch.rand(2, 4, 5, 5)
    torch.testing.assert_close(fuse_addition(a, b), a + b)
    torch.testing.assert_close(fuse_addition(a, b, mean=True), (a + b) / 2)


def test_l1_weights_sum_to_one_and_equal_features_are_kept() -> None:
    a, b = torch.randn(2, 8, 6, 7), torch.randn(2, 8, 6, 7)
    w_a, w_b = l1_norm_weights(a, b)
    assert w_a.shape == (2, 1, 6, 7)
    torch.testing.assert_close(w_a + w_b, torch.ones_like(w_a))
    assert (w_a >= 0).all() and (w_b >= 0).all()
    torch.testing.assert_close(fuse_l1_norm(a, a), a)
    zero = torch.zeros(1, 4, 3, 3)  # no activity anywhere: equal weights, no NaN
    w0, _ = l1_norm_weights(zero, zero)
    torch.testing.assert_close(w0, torch.full_like(w0, 0.5))
    assert torch.equal(fuse_l1_norm(zero, zero), zero)


def test_l1_rule_box_average_on_known_array() -> None:
    # IR activity: one channel with a single 9 at the centre of a 5x5 map, two channels so that
    # the channel l1 sum is exercised (|-4| + 5 = 9). VI activity: constant 1 per pixel.
    ir = torch.zeros(1, 2, 5, 5)
    ir[0, 0, 2, 2], ir[0, 1, 2, 2] = -4.0, 5.0
    vi = torch.zeros(1, 2, 5, 5)
    vi[0, 0] = 1.0
    w_ir, w_vi = l1_norm_weights(ir, vi)
    # box average of IR activity: 1 on the 3x3 neighbourhood of the centre, 0 elsewhere;
    # VI's box average is 1 everywhere, so w_IR = 1 / (1 + 1) = 0.5 there and 0 elsewhere.
    expected = torch.zeros(5, 5)
    expected[1:4, 1:4] = 0.5
    torch.testing.assert_close(w_ir[0, 0], expected, atol=1e-6, rtol=0)
    # at the border the window is the part inside the image: a 9 in a corner of a 2x2 map
    # averages over the 4 pixels -> 9/4 at every pixel
    ir2 = torch.zeros(1, 1, 2, 2)
    ir2[0, 0, 0, 0] = 9.0
    vi2 = torch.full((1, 1, 2, 2), 2.25)
    w2, _ = l1_norm_weights(ir2, vi2)
    torch.testing.assert_close(w2, torch.full_like(w2, 0.5))
    fused = fuse_l1_norm(ir, vi)
    torch.testing.assert_close(fused, w_ir * ir + w_vi * vi)


def test_l1_rule_is_differentiable() -> None:
    a = torch.rand(1, 4, 5, 5, requires_grad=True)
    b = torch.rand(1, 4, 5, 5, requires_grad=True)
    fuse_l1_norm(a, b).sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


# ------------------------------------------------------------------------------------------
# LWC-DenseFuse


def test_lwc_param_counts() -> None:
    counts = {name: count_params(LWCDenseFuse(**kw)) for name, kw in ABLATION_VARIANTS.items()}
    assert counts["densefuse"] == 74_193
    assert counts["sclwc"] == 4_835
    assert counts["sclwc-g2"] == count_params(load_model("lwc-densefuse", pretrained=False)) == 6_883  # the default
    assert counts["sclwc-g2"] <= 9_300 and counts["sclwc-g2"] * 8 <= 74_193  # the bound: 1/8 of DenseFuse
    assert counts["dws"] == counts["dws+shuffle"] == 4_817  # shuffle adds no parameters
    assert counts["dws+att"] == counts["sclwc"] == counts["sclwc+res"] == 4_835  # ECA: 6 x 3 weights
    assert all(n <= 9_300 for name, n in counts.items() if name not in ("densefuse", "dws-g1"))
    # hand count of an SC-LWC block 64 -> 64: DW 64*9 + grouped PW 64*64/g + 64 + ECA 3
    assert count_params(SCLWConv(64, 64, groups=4)) == 576 + 1024 + 64 + 3
    assert count_params(SCLWConv(64, 64, groups=2)) == 576 + 2048 + 64 + 3


def test_state_dicts_are_contiguous_for_safetensors() -> None:
    for m in (DenseFuse(), LWCDenseFuse(), LWCDenseFuse(attention="se")):
        assert all(t.is_contiguous() for t in m.state_dict().values())


def test_lwc_standard_equals_densefuse_structure() -> None:
    a, b = DenseFuse(channels_last=False), LWCDenseFuse(conv="standard")
    assert a.state_dict().keys() == b.state_dict().keys()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 1, 11, 13)
    with torch.inference_mode():
        torch.testing.assert_close(a(x, x), b(x, x))


@pytest.mark.parametrize("variant", list(ABLATION_VARIANTS))
def test_every_ablation_variant_builds_forwards_backwards(variant: str) -> None:
    m = load_model("lwc-densefuse", pretrained=False, variant=variant).train()
    x = torch.rand(2, 1, 16, 12)
    loss = F.mse_loss(m.reconstruct(x), x)
    loss.backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with torch.inference_mode():
        out = m.eval()(x[:1], x[1:])
    assert out.shape == (1, 1, 16, 12)


def test_ablation_flags_reach_the_blocks() -> None:
    m = LWCDenseFuse(**ablation_kwargs("dws"))
    blocks = [b for b in m.modules() if isinstance(b, SCLWConv)]
    assert len(blocks) == 6  # 3 dense layers + C2, C3, C4
    assert all(isinstance(b.att, nn.Identity) and not b.pw.shuffle and b.groups == 4 for b in blocks)
    full = [b for b in LWCDenseFuse().modules() if isinstance(b, SCLWConv)]
    assert all(isinstance(b.att, ECA) and b.pw.shuffle for b in full)
    se = [b for b in LWCDenseFuse(attention="se").modules() if isinstance(b, SCLWConv)]
    assert all(isinstance(b.att, SqueezeExcite) for b in se)
    res = [b.residual for b in LWCDenseFuse(residual=True).modules() if isinstance(b, SCLWConv)]
    assert res == [True, False, False, True, False, False]  # only where in == out (16->16, 64->64)
    assert SCLWConv(6, 8, groups=4).groups == 1  # not divisible: falls back to 1
    assert isinstance(LWCDenseFuse(conv="standard").conv2, type(DenseFuse().conv2))
    with pytest.raises(ValueError):
        LWCDenseFuse(conv="ghost")
    with pytest.raises(ValueError):
        LWCDenseFuse(attention="cbam")
    with pytest.raises(ValueError):
        ablation_kwargs("nope")


def test_nhwc_fast_path_equals_nchw_reference() -> None:
    for variant in ("sclwc", "dws", "sclwc-se", "sclwc+res"):
        fast = LWCDenseFuse(**ablation_kwargs(variant), channels_last=True).eval()
        ref = LWCDenseFuse(**ablation_kwargs(variant), channels_last=False).eval()
        for mod in fast.modules():  # non-trivial attention weights
            if isinstance(mod, ECA):
                nn.init.normal_(mod.conv.weight)
        ref.load_state_dict(fast.state_dict())
        ir, vi = torch.rand(2, 1, 19, 21), torch.rand(2, 1, 19, 21)
        with torch.inference_mode():
            torch.testing.assert_close(fast.reconstruct(ir).contiguous(), ref.reconstruct(ir), atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(fast(ir, vi), ref(ir, vi), atol=1e-5, rtol=1e-4)


def test_grouped_pointwise_dense_weight_equals_grouped_conv_and_shuffle() -> None:
    pw = GroupedPointwise(8, 12, groups=4, shuffle=True)
    x = torch.randn(2, 8, 5, 6)
    ref = channel_shuffle(F.conv2d(x, pw.weight, pw.bias, groups=4), 4)
    torch.testing.assert_close(pw(x), ref)
    torch.testing.assert_close(pw(x.contiguous(memory_format=torch.channels_last)), ref, atol=1e-5, rtol=1e-5)
    w, _ = pw.dense_weight()
    assert w.shape == (12, 8) and int((w != 0).sum()) == 12 * 2  # block-diagonal: 8/4 inputs per output


# ------------------------------------------------------------------------------------------
# channel shuffle and attention


def test_channel_shuffle_is_the_known_permutation() -> None:
    c, g = 12, 3
    x = torch.arange(c, dtype=torch.float32).view(1, c, 1, 1).expand(2, c, 2, 3).contiguous()
    y = channel_shuffle(x, g)
    expected = [j * (c // g) + i for i in range(c // g) for j in range(g)]  # out[i*g+j] = in[j*C/g+i]
    assert y[0, :, 0, 0].long().tolist() == expected == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    assert sorted(expected) == list(range(c))  # a permutation
    torch.testing.assert_close(channel_shuffle(y, c // g), x)  # inverse: shuffle with C/g groups
    torch.testing.assert_close(channel_shuffle(x, 1), x)
    with pytest.raises(ValueError):
        channel_shuffle(torch.zeros(1, 10, 1, 1), 4)


def test_attention_never_zero_width() -> None:
    for c in (1, 2, 3, 16, 64):
        se = SqueezeExcite(c, reduction=16)
        assert se.fc1.out_channels >= 1
        assert se(torch.rand(1, c, 3, 3)).shape == (1, c, 3, 3)
        eca = ECA(c)
        assert eca.conv.kernel_size[0] >= 3 and eca.conv.kernel_size[0] % 2 == 1
        assert eca(torch.rand(1, c, 3, 3)).shape == (1, c, 3, 3)
    assert [eca_kernel_size(c) for c in (16, 32, 64, 128, 512)] == [3, 3, 3, 5, 5]


def test_attention_modules_do_not_modify_their_input() -> None:
    x = torch.rand(1, 8, 4, 4)
    keep = x.clone()
    with torch.inference_mode():
        ECA(8)(x)
        SqueezeExcite(8)(x)
    assert torch.equal(x, keep)


# ------------------------------------------------------------------------------------------
# registry and complexity counters


def test_registry_entries() -> None:
    for name, weights in [("densefuse", "densefuse.safetensors"), ("lwc-densefuse", "lwc-densefuse.safetensors")]:
        info = get_model_info(name)
        assert info.weights == weights and info.kind == "network" and info.tasks == ("ivif",)
    assert get_model_info("lwc-densefuse").paper == "Sensors 2026, 26(12), 3748"


def test_count_macs_exact_on_hand_computed_layers() -> None:
    cases = [
        (nn.Conv2d(3, 8, 3, padding=1), torch.rand(2, 3, 10, 12), 2 * 8 * 10 * 12 * 3 * 9),
        (nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.rand(1, 8, 5, 7), 8 * 5 * 7 * 9),  # depthwise
        (nn.Conv2d(8, 12, 1, groups=4), torch.rand(1, 8, 5, 7), 12 * 5 * 7 * 2),  # grouped pointwise
        (nn.Conv2d(4, 6, (3, 5), stride=2), torch.rand(1, 4, 9, 11), 6 * 4 * 4 * 4 * 15),  # 4x4 output
        (nn.Linear(10, 7), torch.rand(3, 10), 3 * 7 * 10),
        (nn.ConvTranspose2d(4, 2, 2, stride=2), torch.rand(1, 4, 3, 3), 1 * 4 * 3 * 3 * 2 * 4),
    ]
    for layer, x, expected in cases:
        assert count_macs(layer, x) == expected
        assert count_macs(layer, x, method="executed") == expected


def test_count_macs_names_an_unknown_method_as_a_litefuse_error() -> None:
    from litefuse.errors import OptionError

    with pytest.raises(OptionError, match="unknown method 'flops'"):
        count_macs(nn.Conv2d(1, 1, 1), torch.rand(1, 1, 4, 4), method="flops")


def test_count_macs_of_the_networks() -> None:
    h, w = 8, 10
    x = torch.rand(1, 1, h, w)
    # DenseFuse per pixel: encoder 9*(16 + 16*16 + 32*16 + 48*16) twice, decoder 9*(64*64 + 64*32 + 32*16 + 16)
    per_pixel = 2 * 9 * (16 + 256 + 512 + 768) + 9 * (4096 + 2048 + 512 + 16)
    assert count_macs(DenseFuse(), (x, x)) == per_pixel * h * w
    # LWC-DenseFuse: depthwise 9*C_in + grouped pointwise C_in*C_out/g per block, ECA 1-D convs
    blocks = [(16, 16), (32, 16), (48, 16)]
    eca = 2 * 3 * 16 * 3 + 3 * (64 + 32 + 16)  # k=3 over each block's channel descriptor
    for g in (2, 4):
        enc = 9 * 16 + sum(9 * ci + ci * co // g for ci, co in blocks)
        dec = sum(9 * ci + ci * co // g for ci, co in [(64, 64), (64, 32), (32, 16)]) + 9 * 16
        assert count_macs(LWCDenseFuse(groups=g), (x, x)) == (2 * enc + dec) * h * w + eca
    with pytest.raises(ValueError):
        count_macs(DenseFuse(), (x, x), method="guess")


def test_weights_from_before_the_default_change_load_by_name(tmp_path) -> None:
    """A g = 4 file without constructor metadata (trained when g = 4 was the default) loads as g = 4."""
    from safetensors.torch import save_file

    from litefuse.errors import ModelError

    old = LWCDenseFuse(groups=4).eval()
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in old.state_dict().items()}, str(path))
    model = load_model("lwc-densefuse", weights=path)
    assert model.config["groups"] == 4 and count_params(model) == 4_835
    x = torch.rand(1, 1, 12, 14)
    with torch.inference_mode():
        torch.testing.assert_close(model(x, x), old(x, x))
    with pytest.raises(ModelError, match="do not fit"):  # an explicit argument still wins
        load_model("lwc-densefuse", weights=path, groups=2)
    standard = tmp_path / "standard.safetensors"  # no SC-LWC layers: nothing to infer
    save_file({k: v.contiguous() for k, v in LWCDenseFuse(conv="standard").state_dict().items()}, str(standard))
    assert load_model("lwc-densefuse", weights=standard, conv="standard").config == {"conv": "standard"}


def test_fuser_tiles_the_densefuse_family_and_keeps_640x480_whole(one_thread):
    """tile_size 600 bounds memory on huge frames (bench_memory.py) while a 640×480 frame still
    goes through in one pass. DenseFuse's receptive field is far inside the tile overlap, so its
    tiled frames equal the single pass (LWC-DenseFuse's ECA pools globally: close, not equal)."""
    import numpy as np

    from litefuse.api import Fuser
    from litefuse.demo import synthetic_pair

    for name in ("densefuse", "lwc-densefuse"):
        tile = Fuser(name).tile
        assert tile == 600 and 640 * 480 <= tile**2
    fuser = Fuser("densefuse", tile=64)
    ir, vi = synthetic_pair(150, 170)  # 3×3 tiles of 64 (+32 overlap)
    y = vi.mean(-1).astype(np.float32)
    tiled = fuser.fuse_luma(ir, y)
    with torch.inference_mode():
        whole = fuser.model(torch.from_numpy(ir)[None, None], torch.from_numpy(y)[None, None])[0, 0].clamp(0, 1).numpy()
    assert np.abs(tiled - whole).max() < 1e-5


def test_count_macs_auto_sees_functional_convs_and_params_can_count_frozen_ones() -> None:
    """A module that runs ``F.conv2d`` on its own weight has 0 MACs by hooks, 4·3·9·6·6 by the
    flop counter, and "auto" reports the larger; ``count_params`` leaves out frozen parameters
    unless ``trainable_only=False``."""
    import torch.nn.functional as F

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.rand(4, 3, 3, 3))
            self.bias = nn.Parameter(torch.rand(4), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, self.weight, self.bias, padding=1)

    x, expected = torch.rand(1, 3, 6, 6), 4 * 3 * 9 * 6 * 6
    assert count_macs(Functional(), x) == 0
    assert count_macs(Functional(), x, method="executed") == count_macs(Functional(), x, method="auto") == expected
    assert count_params(Functional()) == 108 and count_params(Functional(), trainable_only=False) == 112
