"""Shared layers: the CPU convolution policy computes F.conv2d, the fused primitives compute
their unfused maths, one channel-attention factory serves LWC-DenseFuse and DWSFusion."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from litefuse.models import layers as L
from litefuse.registry import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "shape, weight, padding, groups, nhwc",
    [
        ((2, 1, 150, 140), (8, 1, 3, 3), 1, 1, True),  # one-channel input, NHWC network
        ((1, 8, 150, 140), (1, 8, 3, 3), 1, 1, True),  # rule 3: C -> 1, k x k
        ((1, 8, 150, 140), (1, 8, 1, 1), 0, 1, True),  # rule 3: C -> 1, 1x1
        ((1, 16, 150, 140), (16, 1, 3, 3), 1, 16, True),  # depthwise
        ((1, 16, 150, 140), (32, 8, 1, 1), 0, 2, True),  # grouped 1x1
        ((1, 4, 20, 15), (8, 4, 3, 3), 1, 1, False),  # rule 4: small NCHW map, native
        ((1, 4, 20, 15), (8, 4, 3, 3), 1, 1, True),  # small NHWC map: oneDNN
        ((1, 4, 150, 140), (8, 4, 3, 3), 1, 1, False),  # large NCHW map stays NCHW
    ],
)
def test_policy_conv_equals_f_conv2d_with_gradients(shape, weight, padding, groups, nhwc) -> None:
    torch.manual_seed(0)
    x = torch.rand(shape)
    x = L.channels_last(x) if nhwc else x
    x.requires_grad_(True)
    w, b = torch.randn(weight, requires_grad=True), torch.randn(weight[0], requires_grad=True)
    y = L.conv2d(x, w, b, 1, padding, 1, groups)
    ref = F.conv2d(x.detach().contiguous(), w.detach(), b.detach(), 1, padding, 1, groups)
    torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-5)
    if weight[0] > 1:  # the output keeps the input's layout
        assert y.is_contiguous(memory_format=torch.channels_last) == nhwc
    with torch.no_grad():  # the inference op
        torch.testing.assert_close(L.conv2d(x, w, b, 1, padding, 1, groups), y.detach(), atol=0, rtol=0)
    y.sum().backward()
    assert x.grad is not None and w.grad is not None and b.grad is not None


@pytest.mark.parametrize(
    "shape, weight, padding",
    [((1, 2, 150, 140), (4, 2, 1, 1), 0), ((2, 3, 150, 140), (5, 3, 1, 1), 1), ((1, 1, 150, 140), (4, 1, 3, 3), 1)],
)
def test_policy_rule5_nchw_pointwise_and_one_channel_convs_in_inference(shape, weight, padding) -> None:
    """Rule 5: the native GEMM path; same values as F.conv2d, NCHW out."""
    torch.manual_seed(0)
    x, w, b = torch.rand(shape), torch.randn(weight), torch.randn(weight[0])
    with torch.no_grad():
        y = L.conv2d(x, w, b, 1, padding)
    torch.testing.assert_close(y, F.conv2d(x, w, b, 1, padding), atol=1e-5, rtol=1e-5)
    assert y.is_contiguous()


def test_fused_primitives() -> None:
    torch.manual_seed(0)
    x = L.channels_last(torch.rand(1, 16, 130, 140))
    w, b = torch.randn(8, 16, 1, 1), torch.randn(8)
    other = L.channels_last(torch.randn(1, 8, 130, 140))
    z = F.conv2d(x, w, b)
    with torch.no_grad():
        torch.testing.assert_close(L.conv_act(x, w, b, relu=True), z.relu(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(L.conv_add_act(x, other, w, b), (z + other).relu(), atol=1e-5, rtol=1e-5)
        acc = other.clone()
        out = L.conv_add_(acc, x, w, b)
        assert out.data_ptr() == acc.data_ptr()
        torch.testing.assert_close(acc, z + other, atol=1e-5, rtol=1e-5)


def test_channel_attention_factory() -> None:
    x = torch.rand(2, 8, 5, 6)
    assert isinstance(L.channel_attention(None, 8), torch.nn.Identity)
    eca = L.channel_attention("eca", 8, pools=("avg", "max"), kernel_size=3)
    desc = torch.stack([x.mean((2, 3)), x.amax((2, 3))]).view(4, 1, 8)
    gate = torch.sigmoid(eca.conv(desc).view(2, 2, 8).sum(0))[:, :, None, None]
    torch.testing.assert_close(eca(x), x * gate)
    se = L.channel_attention("se", 8, reduction=4)
    assert se.fc1.out_channels == 2 and se.fc1.bias is not None
    assert torch.equal(L.channel_attention("se", 4, hidden=0, pools=("avg", "max"))(x[:, :4]), x[:, :4] * 0.5)
    with pytest.raises(ValueError, match="unknown attention"):
        L.channel_attention("cbam", 8)


def test_squeeze_excite_loads_linear_shaped_weights() -> None:
    """DWSFusion's bias-free MLP gate was stored as nn.Linear weights (hidden, C)."""
    se = L.SqueezeExcite(16, hidden=1, pools=("avg", "max"), bias=False)
    state = {"fc1.weight": torch.randn(1, 16), "fc2.weight": torch.randn(16, 1)}
    se.load_state_dict(state)
    torch.testing.assert_close(se.fc1.weight.flatten(1), state["fc1.weight"])


def test_lerp_and_channel_sum_exported_forms_agree() -> None:
    a, b, w = torch.rand(1, 4, 6, 7), torch.rand(1, 4, 6, 7), torch.rand(1, 1, 6, 7)
    torch.testing.assert_close(L.lerp(a, b, w), a + w * (b - a))
    torch.testing.assert_close(L.channel_sum(a), F.conv2d(a, torch.ones(1, 4, 1, 1)))


@pytest.mark.parametrize("shape", [(1, 4, 48, 64), (2, 3, 17, 9), (1, 8, 2, 2), (1, 2, 3, 2)])
@pytest.mark.parametrize("nhwc", [False, True])
def test_max_pool2x2_equals_f_max_pool2d(shape, nhwc) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape)
    x[0, 0, 0, 0] = float("nan")  # NaN propagates as in ATen's kernel
    x = x.contiguous(memory_format=torch.channels_last) if nhwc else x
    with torch.no_grad():
        out = L.max_pool2x2(x)
    ref = F.max_pool2d(x, 2)
    assert out.shape == ref.shape
    assert torch.equal(out.nan_to_num(-9.0), ref.nan_to_num(-9.0))
    assert out[0, 0].isnan().any() == ref[0, 0].isnan().any()


def test_max_pool2x2_keeps_the_aten_gradient_when_autograd_records() -> None:
    x = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]], requires_grad=True)  # a tie
    L.max_pool2x2(x).sum().backward()
    y = x.detach().clone().requires_grad_(True)
    F.max_pool2d(y, 2).sum().backward()
    assert torch.equal(x.grad, y.grad) and x.grad.sum() == 1.0  # all to one element, not split


@pytest.mark.parametrize("shape", [(1, 8, 24, 32), (2, 3, 7, 9), (1, 8, 1, 5), (1, 4, 1, 1), (1, 1, 6, 8)])
@pytest.mark.parametrize("nhwc", [False, True])
def test_upsample2x_equals_bilinear_interpolate(shape, nhwc) -> None:
    """The transposed-conv form (NHWC, several channels) and the plain path agree with ATen's
    bilinear x2 (align_corners=False, edges replicated), at odd and one-pixel sizes too."""
    torch.manual_seed(0)
    x = torch.rand(shape)
    x = x.contiguous(memory_format=torch.channels_last) if nhwc else x
    with torch.inference_mode():
        out = L.upsample2x(x)
    ref = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    if nhwc and shape[1] > 1 and shape[2] * shape[3] > 1:  # stays NHWC for the next conv
        assert out.is_contiguous(memory_format=torch.channels_last)
    y = x.clone().requires_grad_(True)  # under autograd: ATen's op and its gradient
    L.upsample2x(y).sum().backward()
    assert y.grad is not None and torch.allclose(y.grad, torch.full_like(y.grad, 4.0))


@pytest.mark.parametrize("name", ["densefuse", "lwc-densefuse", "aenetv2", "dwsfusion"])
def test_every_network_checks_its_pair(name: str) -> None:
    # check_pair: an empty batch gives an empty batch, an empty image a clear error
    model = load_model(name)
    with torch.no_grad():
        assert model(torch.rand(0, 1, 8, 8), torch.rand(0, 1, 8, 8)).shape == (0, 1, 8, 8)
        with pytest.raises(ValueError, match="at least 1x1 pixels, got H x W = 0 x 5"):
            model(torch.rand(1, 1, 0, 5), torch.rand(1, 1, 0, 5))
        with pytest.raises(ValueError, match="equal shape"):
            model(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))
