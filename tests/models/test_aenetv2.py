"""AE-Netv2: every study variant runs forward/backward on odd sizes, the shared encoder is
order-agnostic, and the default fits the budget (<= 20 k params, <= 1.0 G MACs at 640x480)."""

from __future__ import annotations

import pytest
import torch

from litefuse.models.aenetv2 import (
    BLOCKS,
    DEFAULT_CONFIG,
    FUSIONS,
    STUDY_VARIANTS,
    SYMMETRIC_FUSIONS,
    AENetV2,
    Conv2d,
    aenetv2,
    shuffle_concat,
)
from litefuse.models.complexity import count_macs, count_params as n_params
from litefuse.registry import get_model_info, load_model


def pair(h: int = 37, w: int = 53, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1, h, w, generator=g), torch.rand(1, 1, h, w, generator=g)


def test_study_covers_every_block_with_and_without_pooling() -> None:
    assert len(STUDY_VARIANTS) == 2 * len(BLOCKS) == 14
    assert {(c["block"], c["pool"]) for c in STUDY_VARIANTS.values()} == {(b, p) for b in BLOCKS for p in (True, False)}


@pytest.mark.parametrize("name", sorted(STUDY_VARIANTS))
def test_variant_forward_backward_odd_size(name: str) -> None:
    torch.manual_seed(0)
    model = AENetV2(**STUDY_VARIANTS[name])
    ir, vi = pair()
    ir.requires_grad_(True)
    out = model(ir, vi)
    assert out.shape == (1, 1, 37, 53)
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    out.mean().backward()
    assert ir.grad is not None and torch.isfinite(ir.grad).all()
    assert all(p.grad is not None for p in model.parameters())


def test_study_budgets_are_matched() -> None:
    """Pooling changes no parameter; block types stay within 15 % of the median variant's parameters."""
    import statistics

    target = statistics.median(n_params(AENetV2(**cfg)) for cfg in STUDY_VARIANTS.values())
    assert {**DEFAULT_CONFIG} in STUDY_VARIANTS.values()  # the default is one of the studied variants
    for name, cfg in STUDY_VARIANTS.items():
        p = n_params(AENetV2(**cfg))
        assert abs(p - target) <= 0.15 * target, (name, p, target)
        assert p == n_params(AENetV2(**{**cfg, "pool": not cfg["pool"]}))


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (16, 16), (31, 40)])
@pytest.mark.parametrize("pool", [True, False])
def test_any_size(size: tuple[int, int], pool: bool) -> None:
    model = AENetV2(**{**DEFAULT_CONFIG, "pool": pool}).eval()
    with torch.inference_mode():
        out = model(*pair(*size))
    assert out.shape == (1, 1, *size)


def test_batch_items_are_independent() -> None:
    model = AENetV2(**DEFAULT_CONFIG).eval()
    (a, b), (c, d) = pair(seed=1), pair(seed=2)
    with torch.inference_mode():
        both = model(torch.cat([a, c]), torch.cat([b, d]))
        assert torch.allclose(both[:1], model(a, b), atol=1e-6)
        assert torch.allclose(both[1:], model(c, d), atol=1e-6)


@pytest.mark.parametrize("fusion", SYMMETRIC_FUSIONS)
def test_symmetric_fusions_are_order_agnostic(fusion: str) -> None:
    """One encoder for both sources + a symmetric fusion: swapping the inputs changes nothing."""
    torch.manual_seed(0)
    model = AENetV2(**{**DEFAULT_CONFIG, "fusion": fusion}).eval()
    ir, vi = pair()
    with torch.inference_mode():
        assert torch.allclose(model(ir, vi), model(vi, ir), atol=1e-6)


def test_concat_asymmetry_lives_only_in_the_concat_projections() -> None:
    """concat is order-sensitive, but only through the 1x1 projections: swapping their input
    halves turns f(ir, vi) into f(vi, ir), which proves the encoder weights are shared."""
    assert "concat" in FUSIONS and "concat" not in SYMMETRIC_FUSIONS
    torch.manual_seed(0)
    model = AENetV2(**{**DEFAULT_CONFIG, "fusion": "concat"}).eval()
    ir, vi = pair()
    with torch.inference_mode():
        ref = model(ir, vi)
        assert not torch.allclose(ref, model(vi, ir), atol=1e-6)
        for fuse in (model.fuse, model.fuse_skip):
            fuse.proj.weight.copy_(torch.cat(fuse.proj.weight.chunk(2, dim=1)[::-1], dim=1))
        assert torch.allclose(ref, model(vi, ir), atol=1e-6)


@pytest.mark.parametrize("cin,k", [(8, 3), (8, 1), (1, 3), (6, 2)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_conv_fast_paths_match_conv2d(cin: int, k: int, channels_last: bool) -> None:
    """The one-output-channel paths (matrix-vector / depthwise + channel sum) are the same conv."""
    torch.manual_seed(0)
    conv = Conv2d(cin, 1, k, padding=k // 2 if k % 2 else 0)
    x = torch.rand(2, cin, 13, 17, requires_grad=True)
    xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    ref = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=conv.padding)
    out = conv(xin)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5)
    (g_out,) = torch.autograd.grad(out.sum(), conv.weight)
    (g_ref,) = torch.autograd.grad(ref.sum(), conv.weight)
    assert torch.allclose(g_out, g_ref, atol=1e-4)


def test_shuffle_concat_is_cat_then_channel_shuffle() -> None:
    a, b = torch.rand(2, 3, 5, 7), torch.rand(2, 3, 5, 7)
    ref = torch.cat([a, b], 1).view(2, 2, 3, 5, 7).transpose(1, 2).reshape(2, 6, 5, 7)
    assert torch.equal(shuffle_concat(a, b), ref)


def test_default_budget() -> None:
    """<= 20 k parameters and <= 1.0 G MACs at 640x480, counted as declared and as executed."""
    model = aenetv2().eval()
    assert n_params(model) <= 20_000
    x = torch.rand(1, 1, 480, 640)
    assert count_macs(model, (x, x)) <= 1.0e9
    assert count_macs(model, (x, x), method="executed") <= 1.0e9


def test_registered() -> None:
    info = get_model_info("aenetv2")
    assert info.kind == "network" and info.weights == "aenetv2.safetensors"
    assert set(info.tasks) == {"ivif", "mff", "mef", "medical"}
    model = load_model("aenetv2", pretrained=False)
    assert isinstance(model, AENetV2) and not model.training
    assert model.block == DEFAULT_CONFIG["block"] and model.pool == DEFAULT_CONFIG["pool"]


def test_state_dict_is_plain_and_round_trips(tmp_path) -> None:
    """Parameters stay contiguous (channels-last is applied at call time), so safetensors can
    save them as they are."""
    from safetensors.torch import save_file

    from litefuse.registry import load_weights

    model = aenetv2()
    path = tmp_path / "w.safetensors"
    save_file(model.state_dict(), str(path))
    other = load_weights(aenetv2(), path).eval()
    ir, vi = pair()
    with torch.inference_mode():
        assert torch.equal(model.eval()(ir, vi), other(ir, vi))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown block"):
        AENetV2(block="nope")
    with pytest.raises(ValueError, match="unknown fusion"):
        AENetV2(fusion="mean")
    with pytest.raises(ValueError, match="fuse_at"):
        AENetV2(num_blocks=2, fuse_at=3)
    for border in (-1, 1.5, True, "16"):
        with pytest.raises(ValueError, match="border must be a whole number"):
            AENetV2(border=border)


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (9, 13), (37, 53)])
def test_border_is_edge_replication_then_crop(size: tuple[int, int]) -> None:
    """``border=b`` computes the border-free network on the sources edge-replicated by ``b``
    pixels and crops the result back: any size, the batch items still independent."""
    torch.manual_seed(0)
    plain = aenetv2().eval()
    bordered = aenetv2(border=5).eval()
    bordered.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(1)
    ir, vi = torch.rand(2, 1, *size, generator=g), torch.rand(2, 1, *size, generator=g)
    pad = lambda x: torch.nn.functional.pad(x, (5,) * 4, mode="replicate")  # noqa: E731
    with torch.inference_mode():
        out = bordered(ir, vi)
        assert out.shape == ir.shape and out.is_contiguous()
        torch.testing.assert_close(out, plain(pad(ir), pad(vi))[..., 5 : 5 + size[0], 5 : 5 + size[1]], rtol=0, atol=1e-6)
        torch.testing.assert_close(out[1:], bordered(ir[1:], vi[1:]), rtol=0, atol=1e-6)


def _edge_excess(model: torch.nn.Module) -> float:
    """Largest grey-level departure from the centre on two flat sources (45 and 236 of 255)."""
    ir, vi = torch.full((1, 1, 120, 160), 45 / 255), torch.full((1, 1, 120, 160), 236 / 255)
    with torch.inference_mode():
        out = model(ir, vi)[0, 0] * 255
    return float((out - out[60, 80]).abs().max())


def test_shipped_weights_draw_no_frame() -> None:
    """The shipped file records ``border=16`` (its header's ``model_kwargs``): on two flat sources
    the output is flat to the edge. Without the border the same weights draw a frame (their
    zero-padded convs)."""
    shipped = load_model("aenetv2")
    assert shipped.border == 16 and load_model("aenetv2", pretrained=False).border == 0
    assert _edge_excess(shipped) < 1.0
    assert _edge_excess(load_model("aenetv2", border=0)) > 30  # an explicit argument wins over the file's



def test_inference_blocks_equal_the_module_path_and_count_the_same_macs() -> None:
    """Without autograd a standard block runs conv + residual + ReLU as one fused call; with
    autograd, or hooks watching the conv (MAC counting), it runs the module path: same output
    (to float rounding), same MACs."""
    from litefuse.models.aenetv2 import StandardBlock
    from litefuse.models.layers import channels_last

    torch.manual_seed(0)
    block = StandardBlock(8).eval()
    x = channels_last(torch.randn(2, 8, 40, 52))
    with torch.inference_mode():
        fused = block(x)
    reference = block(x.clone().requires_grad_(True))  # autograd records: the module path
    torch.testing.assert_close(fused, reference.detach(), atol=1e-5, rtol=0)
    net = load_model("aenetv2-ivif")
    calls: list[str] = []
    hooks = [m.conv.register_forward_hook(lambda *_, n=n: calls.append(n)) for n, m in enumerate(net.encoder)]
    with torch.inference_mode():
        net(*pair(64, 80))  # a hook on a block's conv: the fused path steps aside
    for h in hooks:
        h.remove()
    assert calls == [0, 1]
    with torch.inference_mode():
        net(*pair(64, 80))  # unwatched again: fused, no module call
    assert calls == [0, 1]
