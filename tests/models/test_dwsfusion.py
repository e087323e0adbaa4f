"""DWSFusion: parity with the public release, sizes, ranges, the + variant, critics, and the
pure-PyTorch deformable convolution against explicit references."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from litefuse.errors import ModelError
from litefuse.models import dwsfusion as dws
from litefuse.models import deform, lowpass
from litefuse.registry import get_model_info, load_model

from conftest import SHARED, host_tensor_counter  # noqa: E402

REF = SHARED / "reference" / "dwsfusion"
ARRAYS = ("alpha", "fused", "w_ir", "w_vi", "f_ir", "f_vi", "ir_w", "vi_w")
CASES = sorted(REF.glob("*.npz")) if REF.is_dir() else []
needs_ref = pytest.mark.skipif(not (REF / "release_generator.pth").is_file(), reason=f"no parity pack at {REF}")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small ops: on a shared CPU extra threads only add scheduling stalls."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def checkpoint_for(case: Path) -> Path:
    name = "awem_active_generator.pth" if case.name.startswith("awem_active") else "release_generator.pth"
    return REF / name


# ------------------------------------------------------------------------------- parity


@pytest.fixture(scope="module")
def release_models() -> dict[Path, torch.nn.Module]:
    return {}


@needs_ref
@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_release_parity(case: Path, release_models: dict) -> None:
    ckpt = checkpoint_for(case)
    if ckpt not in release_models:
        release_models[ckpt] = load_model("dwsfusion", weights=ckpt)
    model = release_models[ckpt]
    data = np.load(case)
    ir = torch.from_numpy(data["ir"])[None, None]
    vi = torch.from_numpy(data["vi_y"])[None, None]
    with torch.inference_mode():
        out = model.forward_all(ir, vi)
        fused = model(ir, vi)
    errors = {k: float(np.abs(out[k].numpy().reshape(-1) - data[k].reshape(-1)).max()) for k in ARRAYS}
    assert all(e <= 1e-4 for e in errors.values()), errors
    assert torch.equal(fused, out["fused"])  # plain inference = the same fused image


@needs_ref
def test_remap_covers_release_checkpoint() -> None:
    state = torch.load(REF / "release_generator.pth", map_location="cpu", weights_only=True)
    model = dws.DWSFusion()
    mapped = model.remap_state_dict(state)
    assert set(mapped) == set(model.state_dict())
    assert model.remap_state_dict(model.state_dict()).keys() == model.state_dict().keys()


@needs_ref
def test_shift_and_grid_samplers_agree_on_release() -> None:
    model = load_model("dwsfusion", weights=REF / "release_generator.pth")
    data = np.load(CASES[0])
    ir = torch.from_numpy(data["ir"][:61, :83].copy())[None, None]
    vi = torch.from_numpy(data["vi_y"][:61, :83].copy())[None, None]
    with torch.inference_mode():
        a = model.forward_all(ir, vi)
        b = model.set_sampler("grid").forward_all(ir, vi)
    for k in ARRAYS:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------- structure


def test_param_counts() -> None:
    assert n_params(dws.DWSFusion()) == 9035
    assert n_params(dws.FADC(2, 1, bias=False)) == 495
    assert n_params(dws.FADC(2, 4)) == 655
    assert n_params(dws.FADC(4, 1)) == 880
    assert n_params(dws.FA2M(4)) == 495
    assert n_params(dws.AWEM()) == 3306
    assert n_params(dws.FAF2M()) == 2042
    assert n_params(dws.AlphaNet()) == 381
    # every fix on: + separate down-block BNs (2 x 24) and 3-tap ECA gates (9 x 3)
    all_fixes = dict(channel_gate="eca", awem_signed_residual=True, awem_separate_bn=True, awem_pool="avg")
    assert n_params(load_model("dwsfusion-plus", pretrained=False, **all_fixes)) == 9035 + 48 + 27 == 9110
    # the shipped DWSFusion+ keeps the fixes that helped (bounded α, trained critic head): no new parameters
    assert n_params(load_model("dwsfusion-plus", pretrained=False)) == 9035


def test_registry_entries() -> None:
    info = get_model_info("dwsfusion")
    assert info.weights == "dwsfusion.safetensors" and info.tasks == ("ivif",)
    assert get_model_info("dwsfusion-plus").weights == "dwsfusion-plus.safetensors"
    model = load_model("dwsfusion-plus", pretrained=False, channel_gate="mlp", awem_pool="max")
    assert model.config == {**dws.PLUS_CONFIG, "channel_gate": "mlp", "awem_pool": "max"}


def test_native_state_dict_passes_through() -> None:
    model = dws.DWSFusion()
    state = model.state_dict()
    assert model.remap_state_dict(state) is state


def test_remap_rejects_unexpected_base_grid() -> None:
    model = dws.DWSFusion()
    bad = {"alphanet.fc1.bias": torch.zeros(1), "Fusion.conv4.dilated_offset": torch.ones(1, 1, 18, 1, 1)}
    with pytest.raises(ModelError):
        model.remap_state_dict(bad)


@pytest.mark.parametrize("name", ["dwsfusion", "dwsfusion-plus"])
@pytest.mark.parametrize("hw", [(37, 53), (16, 16), (9, 30)])
def test_any_size_and_range(name: str, hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = load_model(name, pretrained=False)
    ir, vi = torch.rand(2, 1, *hw), torch.rand(2, 1, *hw)
    with torch.inference_mode():
        fused = model(ir, vi)
        out = model.forward_all(ir, vi)
    assert fused.shape == (2, 1, *hw)
    assert 0.0 <= float(fused.min()) and float(fused.max()) <= 1.0
    for k in ("w_ir", "w_vi", "f_ir", "f_vi", "ir_w", "vi_w"):
        assert out[k].shape == (2, 1, *hw)
    assert out["alpha"].shape == (2, 1, 1, 1)
    assert "f_ir" not in model.forward_all(ir, vi, dual=False)


def test_plus_trains() -> None:
    torch.manual_seed(0)
    all_fixes = dict(channel_gate="eca", awem_signed_residual=True, awem_separate_bn=True, awem_pool="avg")
    model = load_model("dwsfusion-plus", pretrained=False, **all_fixes).train()
    ir, vi = torch.rand(2, 1, 33, 41), torch.rand(2, 1, 33, 41)
    out = model.forward_all(ir, vi)
    loss = (out["fused"] - torch.maximum(ir, vi)).abs().mean()
    loss = loss + (out["w_ir"] - out["f_ir"]).abs().mean() + (out["w_ir"] - (1 - out["w_vi"])).abs().mean()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    # the fixes keep paths alive that the release kills: signed AWEM residual, ECA gate, sigmoid α
    assert grads["awem_ir.up2.bn2.weight"].abs().sum() > 0
    assert grads["awem_ir.att1.channel.conv.weight"].abs().sum() > 0
    alpha = out["alpha"].detach()
    assert 0.0 < float(alpha.min()) and float(alpha.max()) < 1.0


def test_plus_flags_switch_one_by_one() -> None:
    base = dws.DWSFusion()
    assert dws.DWSFusion(bounded_alpha=True).alpha_net.bounded and not base.alpha_net.bounded
    assert dws.DWSFusion(awem_signed_residual=True).awem_ir.up2.final_relu is False
    assert base.awem_ir.up2.final_relu is True
    assert dws.DWSFusion(awem_separate_bn=True).awem_ir.down1.bn2 is not None
    assert base.awem_ir.down1.bn2 is None
    assert dws.DWSFusion(awem_pool="avg").awem_ir.down1.pool == "avg"
    # hidden width 1: 2C weights per gate; AWEM gates have C = 4, 8, 4, 1, FAF2M's C = 4
    assert n_params(dws.DWSFusion(channel_gate="mlp")) == 9035 + 2 * 2 * (4 + 8 + 4 + 1) + 2 * 4
    x = torch.rand(1, 4, 6, 7)
    assert torch.equal(dws.ChannelGate(4)(x), x * 0.5)  # the release's constant gate


# ------------------------------------------------------------------------------- critics


def test_critics() -> None:
    x = torch.rand(2, 1, 48, 64)
    faithful = dws.DWSCritic(registered_head=False).eval()
    with torch.no_grad():
        a, b = faithful(x), faithful(x)
    assert a.shape == (2, 1)
    assert not torch.equal(a, b)  # release quirk: a fresh random head per call
    assert n_params(faithful) == (36 + 4 + 8) + (288 + 8 + 16) + (1152 + 16 + 32)

    assert dws.DWSFusion().make_critic().head is None
    assert load_model("dwsfusion-plus", pretrained=False).make_critic((48, 64)).head is None  # kept off: it hurt
    assert load_model("dwsfusion-plus", pretrained=False, registered_critic_head=True).make_critic((48, 64)).head is not None
    registered = dws.DWSCritic(registered_head=True, patch_size=(48, 64)).eval()
    assert n_params(registered) == n_params(faithful) + 16 * 6 * 8 + 1
    with torch.no_grad():
        assert torch.equal(registered(x), registered(x))
        assert registered(torch.rand(3, 1, 40, 50)).shape == (3, 1)


# ------------------------------------------------------------------------------- FADC pieces


@pytest.mark.parametrize("hw", [(8, 8), (9, 14), (7, 5), (30, 40)])
def test_lowpass_matches_centred_box_definition(hw: tuple[int, int]) -> None:
    """low_f = Re ifft2(ifftshift(fftshift(fft2(x)) * box_f)), box rows/cols by Python round."""
    h, w = hw
    x = torch.rand(2, 3, h, w, dtype=torch.float64)
    fs = dws.FreqSelect(3).double()
    spec = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1))
    for f, low in zip((2, 4, 8), fs.lowpass(x)):
        box = torch.zeros(h, w, dtype=torch.float64)
        rows = slice(round(h / 2 - h / (2 * f)), round(h / 2 + h / (2 * f)))
        cols = slice(round(w / 2 - w / (2 * f)), round(w / 2 + w / (2 * f)))
        box[rows, cols] = 1
        ref = torch.fft.ifft2(torch.fft.ifftshift(spec * box, dim=(-2, -1)), norm="ortho").real
        torch.testing.assert_close(low, ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(fs(x), x, atol=1e-12, rtol=0)  # identity at zero init


def _bilinear_zero_outside(img: np.ndarray, y: float, x: float) -> float:
    h, w = img.shape
    y0, x0 = math.floor(y), math.floor(x)
    val = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                val += wy * wx * img[yy, xx]
    return val


def _slow_deform_conv(x, offset, mask, weight, bias) -> np.ndarray:
    """Explicit DCNv2: loop over pixels and the 9 taps, manual bilinear, zero outside."""
    x, offset, mask, weight, bias = (t.double().numpy() for t in (x, offset, mask, weight, bias))
    b, c, _, _ = x.shape
    o = weight.shape[-4]
    _, _, h, w = offset.shape
    out = np.zeros((b, o, h, w))
    for n in range(b):
        wn = weight[n] if weight.ndim == 5 else weight
        for i in range(h):
            for j in range(w):
                for k in range(9):
                    ky, kx = divmod(k, 3)
                    py, px = i + ky + offset[n, 2 * k, i, j], j + kx + offset[n, 2 * k + 1, i, j]
                    samples = np.array([_bilinear_zero_outside(x[n, ci], py, px) for ci in range(c)])
                    out[n, :, i, j] += mask[n, k, i, j] * (wn[:, :, ky, kx] @ samples)
        out[n] += bias[:, None, None]
    return out


@pytest.mark.parametrize("per_sample", [False, True])
def test_deform_conv_matches_slow_reference(per_sample: bool) -> None:
    torch.manual_seed(1)
    b, c, o, h, w = 2, 3, 2, 5, 6
    x = torch.rand(b, c, h + 2, w + 2)
    offset = 4 * torch.rand(b, 18, h, w) - 2  # some taps land outside: must read zero
    mask = torch.rand(b, 9, h, w)
    weight = torch.randn(b, o, c, 3, 3) if per_sample else torch.randn(o, c, 3, 3)
    bias = torch.randn(o)
    ref = _slow_deform_conv(x, offset, mask, weight, bias)
    out = dws.modulated_deform_conv3x3(x, offset, mask, weight, bias)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


@pytest.mark.parametrize(("c", "o"), [(2, 1), (2, 4), (4, 1)])
def test_dilated_fast_path_matches_reference_and_grads(c: int, o: int) -> None:
    """The shift/lerp path = DCN with offsets (s - 1) * tap, several dilation levels, grads too."""
    torch.manual_seed(2)
    b, h, w = 2, 6, 7
    x = torch.rand(b, c, h + 2, w + 2, dtype=torch.float64, requires_grad=True)
    dilation = (1 + 2.5 * torch.rand(b, 1, h, w, dtype=torch.float64)).requires_grad_()
    mask = torch.rand(b, 9, h, w, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(b, o, c, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(o, dtype=torch.float64)
    taps = dws._TAPS.to(torch.float64).reshape(1, 18, 1, 1)
    offset = (dilation - 1) * taps
    ref = _slow_deform_conv(x.detach(), offset.detach(), mask.detach(), weight.detach(), bias)
    fast = dws.dilated_deform_conv3x3(x, dilation, mask, weight, bias)
    np.testing.assert_allclose(fast.detach().numpy(), ref, atol=1e-9)
    with torch.no_grad():  # the in-place inference branch gives the same numbers
        np.testing.assert_allclose(dws.dilated_deform_conv3x3(x, dilation, mask, weight, bias).numpy(), ref, atol=1e-9)
    grid = dws.modulated_deform_conv3x3(x, offset, mask, weight, bias)
    g_fast = torch.autograd.grad(fast.sum(), (x, dilation, mask, weight))
    g_grid = torch.autograd.grad(grid.sum(), (x, dilation, mask, weight))
    for a, g in zip(g_fast, g_grid):
        torch.testing.assert_close(a, g, atol=1e-5, rtol=1e-5)  # grid path uses a float32 base grid


def test_deform_conv_matches_torchvision() -> None:
    try:
        from torchvision.ops import deform_conv2d
    except Exception:  # not installed, or does not import beside this torch build
        pytest.skip("torchvision not importable")
    torch.manual_seed(3)
    x = torch.rand(2, 3, 9, 10)
    offset = 3 * torch.randn(2, 18, 7, 8)
    mask = torch.rand(2, 9, 7, 8)
    weight, bias = torch.randn(4, 3, 3, 3), torch.randn(4)
    ref = deform_conv2d(x, offset, weight, bias, mask=mask)
    torch.testing.assert_close(dws.modulated_deform_conv3x3(x, offset, mask, weight, bias), ref, atol=1e-5, rtol=1e-5)


def test_dilated_samplers_agree() -> None:
    """The GPU default (one grid_sample gather over all taps) computes what the CPU's shifted
    lerps do; ``auto`` takes the shifts on the CPU."""
    torch.manual_seed(4)
    b, c, o, h, w = 2, 4, 3, 9, 11
    x = torch.rand(b, c, h + 2, w + 2)
    dilation = 1 + 2.5 * torch.rand(b, 1, h, w)
    mask, weight, bias = torch.rand(b, 9, h, w), torch.randn(o, c, 3, 3), torch.randn(o)
    lerp = dws.dilated_deform_conv3x3(x, dilation, mask, weight, bias, sampler="shift")
    grid = dws.dilated_deform_conv3x3(x, dilation, mask, weight, bias, sampler="grid")
    assert torch.equal(grid, deform.deform_conv_from_grid(x, deform.dilation_grid(dilation, (h + 2, w + 2)), mask, weight, bias))
    torch.testing.assert_close(grid, lerp, atol=2e-5, rtol=1e-5)
    assert torch.equal(dws.dilated_deform_conv3x3(x, dilation, mask, weight, bias), lerp)
    with pytest.raises(ValueError, match="sampler"):
        dws.dilated_deform_conv3x3(x, dilation, mask, weight, bias, sampler="triton")


def test_grid_sampler_in_float64_is_as_exact_as_the_shifts() -> None:
    """A float64 model's sampling grid is float64 (it was rounded to float32: 1.6e-5 off the
    shift sampler on a 640-wide frame, 3.6e-6 in float64)."""
    torch.manual_seed(5)
    b, c, o, h, w = 1, 2, 2, 6, 640
    x = torch.rand(b, c, h + 2, w + 2, dtype=torch.float64)
    dilation = 1 + 2.5 * torch.rand(b, 1, h, w, dtype=torch.float64)
    mask, weight, bias = (torch.rand(b, 9, h, w, dtype=torch.float64), torch.randn(o, c, 3, 3, dtype=torch.float64),
                          torch.randn(o, dtype=torch.float64))
    lerp = dws.dilated_deform_conv3x3(x, dilation, mask, weight, bias, sampler="shift")
    grid = dws.dilated_deform_conv3x3(x, dilation, mask, weight, bias, sampler="grid")
    torch.testing.assert_close(grid, lerp, atol=1e-10, rtol=0)


def test_lowpass_masks_cached_per_device() -> None:
    """Off the CPU the FreqSelect masks are uploaded once per size and reused (meta device here)."""
    x = torch.empty(1, 2, 30, 41, device="meta")
    a, b = lowpass.lowpass_masks_like(x, (2, 4, 8)), lowpass.lowpass_masks_like(x, (2, 4, 8))
    assert all(p is q for p, q in zip(a, b)) and a[0].device.type == "meta"
    cpu = lowpass.lowpass_masks_like(torch.zeros(1, 2, 30, 41), (2, 4, 8))
    assert [m.shape for m in cpu] == [m.shape for m in a]
    with torch.inference_mode():
        assert not lowpass.lowpass_masks_like(torch.empty(1, 1, 31, 41, device="meta"), (2, 4, 8))[0].is_inference()  # built here


def test_deformable_grid_constants_made_once_per_device() -> None:
    """The base grid (22 MB at 640x480) and the tap steps are made once per size and device:
    a call builds nothing from host data (on a GPU each would be a blocking upload)."""
    meta = torch.empty(1, 1, 30, 41, device="meta")
    a, b = deform._constants_like(meta, 30, 41, 32, 43), deform._constants_like(meta, 30, 41, 32, 43)
    assert all(p is q and p.device.type == "meta" for p, q in zip(a, b))
    dilation, offset = 1 + torch.rand(2, 1, 30, 41), torch.randn(2, 18, 30, 41)
    expected = deform.dilation_grid(dilation, (32, 43)), deform.offsets_to_grid(offset, (32, 43))
    with host_tensor_counter() as mode:
        got = deform.dilation_grid(dilation, (32, 43)), deform.offsets_to_grid(offset, (32, 43))
    assert mode.count == 0
    assert all(torch.equal(g, e) for g, e in zip(got, expected))
    base = deform._tap_grid(30, 41, 32, 43).float()  # built in float64
    torch.testing.assert_close(deform.dilation_grid(torch.ones(1, 1, 30, 41), (32, 43))[0], base)  # dilation 1: the taps


@pytest.mark.parametrize(("h", "w"), [(64, 96), (61, 83), (7, 5), (480, 640), (2, 9)])
def test_traced_masks_equal_numpy_masks(h: int, w: int) -> None:
    """What torch.compile traces (index arithmetic) is exactly the numpy construction."""
    like = torch.zeros(1, dtype=torch.float32)
    for got, ref in zip(lowpass._traced_masks(h, w, (2, 4, 8), like), lowpass._lowpass_masks(h, w, (2, 4, 8))):
        assert got.shape == ref.shape and torch.equal(got, torch.from_numpy(ref))
