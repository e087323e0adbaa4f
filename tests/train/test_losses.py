"""Training losses against independent numpy references written from the papers."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from litefuse.train.losses import MS_SSIM_WEIGHTS, gradient_l1, ms_ssim, sobel_gradient, ssim

C1, C2 = 0.01**2, 0.03**2


pytestmark = pytest.mark.usefixtures("one_thread")  # one torch thread: grouped convs thrash with two on 2 cores


# --------------------------------------------------------------------------------------------
# numpy references (written from the papers, independent of the torch code)


def _gauss2d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def ref_ssim_cs(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Wang 2004 on 2-D float64 arrays, 'valid' Gaussian filtering: (mean SSIM, mean cs)."""
    w = _gauss2d()
    f = lambda a: correlate2d(a, w, mode="valid")  # noqa: E731
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    cs = (2 * sxy + C2) / (sxx + syy + C2)
    lum = (2 * mx * my + C1) / (mx**2 + my**2 + C1)
    return float((lum * cs).mean()), float(cs.mean())


def ref_ms_ssim(x: np.ndarray, y: np.ndarray, scales: int) -> float:
    """Wang 2003 (reference MATLAB procedure): 2×2 mean filter with symmetric border, keep every
    other pixel; weights renormalised when fewer than five scales are used."""
    w = np.array(MS_SSIM_WEIGHTS[:scales])
    if scales < 5:
        w = w / w.sum()
    out = 1.0
    for j in range(scales):
        s, cs = ref_ssim_cs(x, y)
        out *= (s if j == scales - 1 else cs) ** w[j]
        pad = lambda a: np.pad(a, ((0, 1), (0, 1)), mode="symmetric")  # noqa: E731
        px, py = pad(x), pad(y)
        x = ((px[:-1, :-1] + px[1:, :-1] + px[:-1, 1:] + px[1:, 1:]) / 4)[::2, ::2]
        y = ((py[:-1, :-1] + py[1:, :-1] + py[:-1, 1:] + py[1:, 1:]) / 4)[::2, ::2]
    return out


def _pair_of_images(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((h, w))
    y = np.clip(0.6 * x + 0.4 * rng.random((h, w)), 0, 1)
    return x, y


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))[None, None]


# --------------------------------------------------------------------------------------------
# losses


def test_ssim_identity_and_constant_closed_form():
    x = torch.rand(2, 1, 32, 40)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert ms_ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    a, b = 0.3, 0.7  # constant images: no variance, so SSIM = luminance term only
    expected = (2 * a * b + C1) / (a * a + b * b + C1)
    xa, xb = torch.full((1, 1, 24, 24), a, dtype=torch.float64), torch.full((1, 1, 24, 24), b, dtype=torch.float64)
    assert ssim(xa, xb).item() == pytest.approx(expected, rel=1e-9)
    # 192 px holds five scales: cs = 1 at every scale, luminance at the coarsest with weight 0.1333
    big_a, big_b = torch.full((1, 1, 192, 192), a, dtype=torch.float64), torch.full((1, 1, 192, 192), b, dtype=torch.float64)
    assert ms_ssim(big_a, big_b).item() == pytest.approx(expected**0.1333, rel=1e-9)


def test_ssim_matches_numpy_reference():
    x, y = _pair_of_images(48, 57)
    assert ssim(t(x), t(y)).item() == pytest.approx(ref_ssim_cs(x, y)[0], abs=1e-10)
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        return
    sk = structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(t(x), t(y)).item() == pytest.approx(sk, abs=1e-6)


@pytest.mark.parametrize("shape, scales", [((192, 200), 5), ((67, 90), 3)])
def test_ms_ssim_matches_numpy_reference(shape, scales):
    x, y = _pair_of_images(*shape, seed=1)
    assert ms_ssim(t(x), t(y)).item() == pytest.approx(ref_ms_ssim(x, y, scales), abs=1e-9)


def test_ms_ssim_gradient_is_finite_for_anticorrelated_inputs():
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    value = ms_ssim(x, 1 - x.detach())
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


def test_sobel_gradient_known_values():
    ramp = torch.arange(12, dtype=torch.float64).repeat(10, 1)[None, None]  # x[i, j] = j
    g = sobel_gradient(ramp)[0, 0]
    assert torch.all(g[1:-1, 1:-1] == 8)  # (1 + 2 + 1) · (x[j+1] − x[j−1]) = 4 · 2
    assert torch.all(g[1:-1, 0] == 4)  # zero padding: left neighbour reads 0
    from scipy.ndimage import correlate

    img = np.random.default_rng(2).random((13, 17))
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)
    ref = np.abs(correlate(img, kx, mode="constant")) + np.abs(correlate(img, kx.T, mode="constant"))
    np.testing.assert_allclose(sobel_gradient(t(img))[0, 0].numpy(), ref, atol=1e-12)
    assert gradient_l1(t(img), t(img)).item() == 0.0
    assert gradient_l1(ramp, torch.zeros_like(ramp)).item() == pytest.approx(g.mean().item())




def _sobel_ref(x: np.ndarray) -> np.ndarray:
    kx = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    return np.abs(correlate2d(x, kx, mode="same")) + np.abs(correlate2d(x, kx.T, mode="same"))


def _ssim_map_ref(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    w = _gauss2d()
    f = lambda a: correlate2d(a, w, mode="valid")  # noqa: E731
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    return (2 * mx * my + C1) / (mx**2 + my**2 + C1) * (2 * sxy + C2) / (sxx + syy + C2)


def _saliency_ref(a: np.ndarray, b: np.ndarray, radius: int) -> np.ndarray:
    """AE-Net's activity: (2r+1)² mean of the squared Sobel magnitude, edge-replicated border, + 1e-4."""
    def activity(x):
        e = np.pad(_sobel_ref(x) ** 2, radius, mode="edge")
        k = 2 * radius + 1
        return correlate2d(e, np.full((k, k), 1.0 / k**2), mode="valid") + 1e-4

    sa, sb = activity(a), activity(b)
    return sa / (sa + sb)


def test_ms_ssim_keeps_five_scales_when_the_coarsest_side_equals_the_window():
    """176 px: the fifth scale is 11 px, exactly the window, so all five scales are used
    (the published weights, not renormalised); 175 px holds four."""
    x, y = _pair_of_images(176, 180, seed=3)
    assert ms_ssim(t(x), t(y)).item() == pytest.approx(ref_ms_ssim(x, y, 5), abs=1e-9)
    assert ms_ssim(t(x[:175]), t(y[:175])).item() == pytest.approx(ref_ms_ssim(x[:175], y[:175], 4), abs=1e-9)


def test_saliency_weights_match_a_numpy_reference():
    """``w_a = s_a / (s_a + s_b)`` with ``s = box_r(|∇x|²) + 1e-4`` (replicate border), against
    a scipy re-implementation, near the border included; a small eps matters on flat parts."""
    from litefuse.train.losses import saliency_weights

    rng = np.random.default_rng(4)
    a = rng.random((20, 24)) * 0.05
    b = np.tile(np.linspace(0.0, 0.02, 24), (20, 1))  # a faint ramp: activity near the eps
    for radius in (2, 5):
        w_a, w_b = saliency_weights(t(a), t(b), radius)
        np.testing.assert_allclose(w_a[0, 0].numpy(), _saliency_ref(a, b, radius), atol=1e-9)
        np.testing.assert_allclose((w_a + w_b).numpy(), 1.0, atol=1e-12)


def test_similarity_loss_matches_a_numpy_reference_with_unequal_weights():
    """AE-Net's similarity loss with weights (0.7, 0.3, 0.2) equals
    ``0.7·(1 − mean(w_a·SSIM_a + w_b·SSIM_b)) + 0.3·|f − (w_a·a + w_b·b)| + 0.2·| |∇f| − max(|∇a|, |∇b|) |``
    computed here, the weights centre-cropped to the SSIM map's valid region."""
    from litefuse.train.losses import similarity_loss

    rng = np.random.default_rng(5)
    a, b = rng.random((30, 34)), rng.random((30, 34)) * 0.5
    f = np.clip(0.5 * a + 0.5 * b + 0.05 * rng.random((30, 34)), 0, 1)
    w_a = _saliency_ref(a, b, 5)
    w_b = 1.0 - w_a
    crop = lambda w: w[5:-5, 5:-5]  # noqa: E731  (11-px window: 5 px each side)
    wssim = (crop(w_a) * _ssim_map_ref(f, a) + crop(w_b) * _ssim_map_ref(f, b)).mean()
    inten = np.abs(f - (w_a * a + w_b * b)).mean()
    grad = np.abs(_sobel_ref(f) - np.maximum(_sobel_ref(a), _sobel_ref(b))).mean()
    total, parts = similarity_loss(t(f), t(a), t(b), (0.7, 0.3, 0.2))
    assert parts["wssim"].item() == pytest.approx(wssim, abs=1e-9)
    assert parts["int"].item() == pytest.approx(inten, abs=1e-9)
    assert parts["grad"].item() == pytest.approx(grad, abs=1e-9)
    assert total.item() == pytest.approx(0.7 * (1 - wssim) + 0.3 * inten + 0.2 * grad, abs=1e-9)


@pytest.mark.parametrize("weights", [(0.3, 0.6, 0.0), (0.0, 0.0, 0.5), (2.0, 0.0, 0.25)])
def test_teacher_loss_weights_each_term_in_order(weights):
    """``teacher_loss(f, t, (λ1, λs, λg)) = λ1·|f − t| + λs·(1 − SSIM(f, t)) + λg·mean| |∇f| − |∇t| |``,
    each weight on its own term (reference computed here)."""
    from litefuse.train.losses import teacher_loss

    rng = np.random.default_rng(6)
    f, tt = rng.random((24, 26)), rng.random((24, 26))
    l1w, sw, gw = weights
    expected = (l1w * np.abs(f - tt).mean() + sw * (1 - _ssim_map_ref(f, tt).mean())
                + gw * np.abs(_sobel_ref(f) - _sobel_ref(tt)).mean())
    assert teacher_loss(t(f), t(tt), weights)[0].item() == pytest.approx(expected, abs=1e-9)


def test_autoencoder_loss_weights_ssim_and_gradient_terms():
    """The auto-encoder objective's loss is ``MSE + λ·(1 − SSIM) + μ·gradient L1`` with the
    current λ, μ (here 100 and 0.5), and its PSNR is ``-10·log10(MSE)``."""
    from torch import nn

    from litefuse.train.objectives.autoencoder import AutoEncoderObjective

    class Half(nn.Module):
        def reconstruct(self, x):
            return 0.5 * x + 0.2

    rng = np.random.default_rng(7)
    x = rng.random((24, 24))
    out = 0.5 * x + 0.2
    obj = AutoEncoderObjective()
    obj.model, obj.ssim_weight, obj.grad_weight = Half(), 100.0, 0.5
    mse = ((out - x) ** 2).mean()
    expected = mse + 100.0 * (1 - _ssim_map_ref(out, x).mean()) + 0.5 * np.abs(_sobel_ref(out) - _sobel_ref(x)).mean()
    total, parts = obj.losses(t(x))
    assert total.item() == pytest.approx(expected, abs=1e-9)
    assert obj.validation_step(t(x))["psnr"] == pytest.approx(-10 * np.log10(mse), rel=1e-6)


def test_an_autoencoder_stage_row_sets_both_loss_weights():
    """Entering a stage takes that row's λ (``ssim_weight``) and μ (``grad_weight``), as the
    LWC-DenseFuse schedule (1, 0) → (10, 0.5) → (100, 1) needs."""
    from litefuse.train.objectives.autoencoder import AutoEncoderObjective

    obj = AutoEncoderObjective()
    for index, (lam, mu) in enumerate([(1.0, 0.0), (10.0, 0.5), (100.0, 1.0)]):
        obj.on_stage(index, {"ssim_weight": lam, "grad_weight": mu})
        assert (obj.ssim_weight, obj.grad_weight) == (lam, mu)
