"""Differentiable image-similarity primitives shared by the training objectives.

All functions take float tensors of shape ``(B, C, H, W)`` with a data range of 1 and are
written with plain ``torch.nn.functional`` ops, so they run on any device and back-propagate.

- :func:`ssim` — Wang et al. (2004): 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03,
  "valid" filtering (no padding; the border where the window does not fit is left out, as in
  Wang's reference code, scikit-image and pytorch-msssim), mean of the SSIM map;
  :func:`ssim_map` gives the map itself (for per-pixel weighting).
- :func:`ms_ssim` — Wang, Simoncelli & Bovik (2003): five scales with the published weights;
  contrast-structure at every scale, luminance at the coarsest only; 2×2 average down-sampling
  with symmetric edge extension for odd sizes (as the reference MATLAB code). Inputs too small
  for five scales use fewer, with the leading weights renormalised to sum to 1.
- :func:`sobel_gradient` — ``|Sobel_x ∗ x| + |Sobel_y ∗ x|`` with zero padding (DWSFusion's ∇).
- :func:`gradient_l1` — mean absolute difference of two gradient maps.
- :func:`saliency_weights`, :func:`similarity_loss` — AE-Net's content terms: the output
  should resemble each source where that source is active (gradient energy).
- :func:`teacher_loss` — how far the output is from a teacher's result (pixel, SSIM, gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "MS_SSIM_WEIGHTS",
    "gaussian_window",
    "ssim",
    "ssim_map",
    "ms_ssim",
    "sobel_gradient",
    "gradient_l1",
    "saliency_weights",
    "similarity_loss",
    "teacher_loss",
]

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_K1, _K2 = 0.01, 0.03


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (odd), centred."""
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def _filter(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """Separable depthwise 'valid' Gaussian filtering of every channel."""
    c = x.shape[1]
    kh = win.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kw = win.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)


def _fit_window(x: torch.Tensor, size: int) -> int:
    """The window actually used: ``size``, shrunk to the largest odd side the input holds."""
    side = min(x.shape[-2:])
    if side >= size:
        return size
    if side < 1:
        raise ValueError(f"ssim needs a non-empty image, got shape {tuple(x.shape)}")
    return side if side % 2 else side - 1


def _ssim_maps(
    x: torch.Tensor, y: torch.Tensor, window_size: int, sigma: float, data_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 'valid' SSIM map and contrast-structure map, each ``(B, C, H - k + 1, W - k + 1)``."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    win = gaussian_window(_fit_window(x, window_size), sigma, x.dtype, x.device)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    mu_x, mu_y = _filter(x, win), _filter(y, win)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = _filter(x * x, win) - mu_xx
    var_y = _filter(y * y, win) - mu_yy
    cov = _filter(x * y, win) - mu_xy
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    s_map = (2 * mu_xy + c1) / (mu_xx + mu_yy + c1) * cs_map
    return s_map, cs_map


def _ssim_terms(
    x: torch.Tensor, y: torch.Tensor, window_size: int, sigma: float, data_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image means of the SSIM map and of its contrast-structure map, each ``(B,)``."""
    s_map, cs_map = _ssim_maps(x, y, window_size, sigma, data_range)
    return s_map.flatten(1).mean(1), cs_map.flatten(1).mean(1)


def ssim_map(
    x: torch.Tensor, y: torch.Tensor, window_size: int = 11, sigma: float = 1.5, data_range: float = 1.0
) -> torch.Tensor:
    """Per-pixel SSIM of two ``(B, C, H, W)`` batches over the 'valid' region.

    Shape ``(B, C, H - k + 1, W - k + 1)`` with ``k`` the window used; value ``i, j`` belongs to
    the window centred on input pixel ``(i + k // 2, j + k // 2)``. Its mean is :func:`ssim`.
    """
    return _ssim_maps(x, y, window_size, sigma, data_range)[0]


def ssim(
    x: torch.Tensor, y: torch.Tensor, window_size: int = 11, sigma: float = 1.5, data_range: float = 1.0
) -> torch.Tensor:
    """Mean SSIM of two ``(B, C, H, W)`` batches (a scalar; 1 for identical inputs).

    Images smaller than the window use the largest odd window that fits.
    """
    return _ssim_terms(x, y, window_size, sigma, data_range)[0].mean()


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """2×2 mean, odd sides extended by repeating the last row/column (MATLAB 'symmetric')."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    window_size: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
) -> torch.Tensor:
    """Multi-scale SSIM of two ``(B, C, H, W)`` batches, averaged over the batch (a scalar).

    ``MS-SSIM = Π_j cs_j^w_j · l_M^w_M``. The number of scales is the largest M ≤ len(weights)
    whose coarsest level still holds the full window; with M < len(weights) the first M weights
    are renormalised. Per-scale terms are clamped to ≥ 1e-6 before the fractional power so that
    anti-correlated inputs give a small value and a finite gradient instead of NaN.
    """
    side = min(x.shape[-2:])
    scales = 1
    while scales < len(weights) and side // 2**scales >= window_size:
        scales += 1
    w = torch.tensor(weights[:scales], dtype=x.dtype, device=x.device)
    if scales < len(weights):
        w = w / w.sum()
    terms = []
    for level in range(scales):
        s, cs = _ssim_terms(x, y, window_size, sigma, data_range)
        terms.append(s if level == scales - 1 else cs)
        if level < scales - 1:
            x, y = _downsample(x), _downsample(y)
    values = torch.stack(terms, dim=0).clamp(min=1e-6)  # (scales, B)
    return torch.prod(values ** w.view(-1, 1), dim=0).mean()


def sobel_gradient(x: torch.Tensor) -> torch.Tensor:
    """``|Sobel_x ∗ x| + |Sobel_y ∗ x|`` per channel, zero padding, same size as ``x``."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    c = x.shape[1]
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1).repeat(c, 1, 1, 1)  # (2C, 1, 3, 3)
    g = F.conv2d(x, kernels, padding=1, groups=c)
    return g.abs().view(x.shape[0], c, 2, *x.shape[-2:]).sum(2)


def gradient_l1(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``mean |∇out − ∇ref|`` with :func:`sobel_gradient` as ∇ (a scalar)."""
    return F.l1_loss(sobel_gradient(out), sobel_gradient(ref))


# --------------------------------------------------------------------------------------------
# composite losses of the fusion objectives

_EPS = 1e-4


def saliency_weights(a: torch.Tensor, b: torch.Tensor, radius: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel weights ``(w_a, w_b)`` from local gradient energy; ``w_a + w_b = 1``.

    Activity of a source ``s = box_r(|∇x|²) + 1e-4`` (a ``(2r+1)²`` mean, replicate border), so
    flat regions get ½/½.
    """

    def activity(x: torch.Tensor) -> torch.Tensor:
        energy = sobel_gradient(x).square()
        if radius > 0:
            energy = F.avg_pool2d(F.pad(energy, (radius,) * 4, mode="replicate"), 2 * radius + 1, stride=1)
        return energy + _EPS

    s_a, s_b = activity(a), activity(b)
    w_a = s_a / (s_a + s_b)
    return w_a, 1.0 - w_a


def _crop_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Centre-crop ``x`` to ``ref``'s spatial size (the SSIM map's 'valid' region)."""
    dh, dw = (x.shape[-2] - ref.shape[-2]) // 2, (x.shape[-1] - ref.shape[-1]) // 2
    return x[..., dh : dh + ref.shape[-2], dw : dw + ref.shape[-1]]


def similarity_loss(
    f: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    intensity_target: str = "weighted",
    radius: int = 5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """AE-Net's similarity loss and its (unweighted) terms ``wssim``, ``int``, ``grad``::

        λ_s·(1 − mean(w_a·SSIM(f, a) + w_b·SSIM(f, b))) + λ_i·|f − I*| + λ_g·| |∇f| − max(|∇a|, |∇b|) |

    with ``(w_a, w_b)`` from :func:`saliency_weights` (cropped to the SSIM map's valid region,
    so each window is weighted by the activity at its centre) and ``I* = w_a·a + w_b·b``
    (``"weighted"``) or ``max(a, b)`` (``"max"``). Terms whose weight is 0 are not computed.
    """
    ls, li, lg = weights
    zero = f.new_zeros(())
    total, parts = zero, {}
    w_a = w_b = None
    if ls or (li and intensity_target == "weighted"):
        w_a, w_b = saliency_weights(a, b, radius)
    if ls:
        map_a, map_b = ssim_map(f, a), ssim_map(f, b)
        parts["wssim"] = (_crop_like(w_a, map_a) * map_a + _crop_like(w_b, map_b) * map_b).mean()
        total = total + ls * (1.0 - parts["wssim"])
    if li:
        target = w_a * a + w_b * b if intensity_target == "weighted" else torch.maximum(a, b)
        parts["int"] = F.l1_loss(f, target)
        total = total + li * parts["int"]
    if lg:
        parts["grad"] = F.l1_loss(sobel_gradient(f), torch.maximum(sobel_gradient(a), sobel_gradient(b)))
        total = total + lg * parts["grad"]
    return total, parts


def teacher_loss(
    f: torch.Tensor, t: torch.Tensor, weights: tuple[float, float, float] = (1.0, 1.0, 0.0)
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Distance of the output ``f`` to a teacher's result ``t`` and its terms::

        λ_1·|f − t| + λ_s·(1 − SSIM(f, t)) + λ_g·| |∇f| − |∇t| |

    (``t_l1``, ``t_ssim`` — the SSIM itself —, ``t_grad``). ``(1, 1, 0)`` is AE-Net's
    positive-sample loss; a gradient term sharpens a distilled student. Zero-weight terms are
    not computed.
    """
    l1w, sw, gw = weights
    total, parts = f.new_zeros(()), {}
    if l1w:
        parts["t_l1"] = F.l1_loss(f, t)
        total = total + l1w * parts["t_l1"]
    if sw:
        parts["t_ssim"] = ssim(f, t)
        total = total + sw * (1.0 - parts["t_ssim"])
    if gw:
        parts["t_grad"] = gradient_l1(f, t)
        total = total + gw * parts["t_grad"]
    return total, parts
