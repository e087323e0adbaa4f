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


