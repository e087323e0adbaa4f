"""Input rules shared by every metric (docs/metrics.md, "Input rules").

Every metric is defined on uint8 grey images scored as float64 with values 0..255; several
constants (VIF's noise variance, Qabf's ``==`` quirk, Nabf's threshold, the SSIM constants)
are absolute, so a [0, 1] image silently gives other numbers. These helpers therefore accept
only integer-valued 0..255 data and convert colour with the CDDFuse grey rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ..errors import InputError

if TYPE_CHECKING:
    from ..io import Norm

__all__ = ["as_grey_f64", "check_triple", "grey_from_rgb", "load_grey_u8", "to_uint8", "gaussian_1d", "filt"]

_LUMA = np.array([0.299, 0.587, 0.114])


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Explicitly map a [0, 1] float image to uint8: ``clip(round(255·x), 0, 255)`` (half to even).

    A uint8 array is returned as it is (already the metrics' 0..255 data); other integer and
    boolean arrays are an :class:`InputError` (their scale is not [0, 1]: 128 would become 255).
    """
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.copy()
    if x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer):
        raise InputError(f"to_uint8 maps [0, 1] floats; got {x.dtype} values (uint8 needs no conversion, "
                         "16-bit data: litefuse.io.to_float first)")
    from ..io import quantise

    try:
        x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"to_uint8 maps [0, 1] floats; got {x.dtype} values") from None
    if not np.all(np.isfinite(x)):
        raise InputError("image contains NaN or infinite values")
    return quantise(x, 8) if x.ndim else quantise(x[None], 8)[0]  # as save_image writes it, pixel for pixel


def grey_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """CDDFuse grey rule: ``round_half_even(0.299 R + 0.587 G + 0.114 B)`` in float64, as uint8.

    R = G = B maps to itself. ``rgb`` is H×W×3 in RGB order with values 0..255.
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    y = rgb[..., 0] * _LUMA[0] + rgb[..., 1] * _LUMA[1] + rgb[..., 2] * _LUMA[2]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def as_grey_f64(x: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate one metric input and return it as a 2-D float64 array with values 0..255.

    Accepts integer arrays within 0..255 and float arrays whose values are integers in 0..255.
    H×W×3 arrays (RGB) are converted with :func:`grey_from_rgb`; H×W×1 is squeezed. Anything
    else raises :class:`InputError`: [0, 1] floats must be converted with :func:`to_uint8` first,
    so that rescaling is never silent.
    """
    if isinstance(x, (str, Path)):  # np.asarray made it a '<U28' array: "unsupported dtype <U28"
        raise InputError(f"{name}: a path ({x}); the metrics take arrays: read a file with load_grey_u8(path)")
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise InputError(f"{name}: unsupported dtype {x.dtype}; expected uint8 grey 0..255")
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] != 3):
        raise InputError(f"{name}: shape {x.shape} is not a grey H×W or RGB H×W×3 image")
    if min(x.shape[:2]) < 2:
        raise InputError(f"{name}: shape {x.shape} is too small to score")
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
            raise InputError(f"{name}: contains NaN or infinite values")
        lo, hi = x.min(), x.max()
        if lo < 0 or hi > 255:
            raise InputError(f"{name}: values span {lo:g}..{hi:g}, outside 0..255; metrics are defined on 8-bit data")
        if np.issubdtype(x.dtype, np.floating) and not np.array_equal(x, np.round(x)):
            raise InputError(
                f"{name}: float values are not integers 0..255 (range {lo:g}..{hi:g}); metrics are defined on "
                "uint8 data — convert [0, 1] images explicitly with litefuse.metrics.to_uint8(x)"
            )
    if x.ndim == 3:
        return grey_from_rgb(x).astype(np.float64)
    return x.astype(np.float64)


def check_triple(ir: np.ndarray, vi: np.ndarray, fused: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate A (infrared), B (visible), F (fused) with :func:`as_grey_f64`; shapes must match."""
    a, b, f = as_grey_f64(ir, "ir"), as_grey_f64(vi, "vi"), as_grey_f64(fused, "fused")
    if not a.shape == b.shape == f.shape:
        raise InputError(f"size mismatch: ir {a.shape}, vi {b.shape}, fused {f.shape}")
    return a, b, f


def load_grey_u8(path: str | Path, norm: "Norm" = "range") -> np.ndarray:
    """Decode an image file to the uint8 grey array that the metrics score.

    Decoding is :mod:`litefuse.io`'s (Pillow; tifffile for TIFF), values unchanged. Then:

    * 8-bit grey stays as is; RGB (also palette/CMYK/YCbCr, decoded to RGB) goes through the
      CDDFuse grey rule (:func:`grey_from_rgb`); an alpha channel is dropped.
    * 16-bit integer images are mapped to 8 bits as ``round(x / 257)`` (= ``x·255/65535``, as
      MATLAB ``im2uint8``): an explicit, documented rescaling, never a per-image stretch.
    * Float images (TIFF) follow the input contract of :func:`litefuse.io.read_image`: values
      in [0, 1] (within its rounding tolerance) map as :func:`to_uint8`; integer-valued floats
      above 1 are taken as 0..255 levels; anything else is an :class:`InputError`.

    ``norm`` (the infrared's ``--ir-norm``): a sensor's peak value (``4095`` for 12-bit data in
    16-bit files) or ``"minmax"`` reads the file as :func:`litefuse.io.read_image` does with that
    norm, then :func:`to_uint8` -- the source a fusion run with the same norm saw, not a
    near-black ``round(x / 257)``.
    """
    from ..io import _decode, check_norm, to_float

    path = Path(path)
    arr = _decode(path)
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        arr = arr[..., :-1]  # drop alpha (LA → L, RGBA → RGB)
    if check_norm(norm) != "range":
        arr = to_uint8(to_float(arr, norm=norm, source=path))
    elif np.issubdtype(arr.dtype, np.integer) and (arr.dtype.itemsize > 1 or arr.dtype.kind == "i"):
        lo, hi = int(arr.min(initial=0)), int(arr.max(initial=0))
        if lo < 0 or hi > 65535:
            raise InputError(f"integer values span {lo}..{hi}, outside 0..65535", path)
        if arr.dtype == np.uint16 or hi > 255:
            if arr.dtype == np.uint16:
                from ..io import note_narrow_bits

                note_narrow_bits(hi, path)  # 12-bit data scores near-black, as it fuses: said once
            arr = np.round(arr.astype(np.float64) / 257.0)
    elif np.issubdtype(arr.dtype, np.floating) and arr.size:
        from ..io import in_unit_range, value_range

        if in_unit_range(value_range(arr)):
            arr = to_uint8(arr)  # the [0, 1] float contract of litefuse.io; grey rule below if RGB
    try:
        grey = as_grey_f64(arr, path.name)
    except InputError as exc:
        raise InputError(exc.problem.removeprefix(f"{path.name}: "), path) from None
    return grey.astype(np.uint8)


def gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)``: ``outer(g, g)`` is that window.

    fspecial zeroes taps below eps·max; for the windows used here (corner/centre ≥ e^-6)
    that never happens, which the assertion checks, so the window is exactly separable.
    """
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    assert g[0] * g[0] > np.finfo(np.float64).eps, "fspecial would truncate this window"
    return g / g.sum()


def filt(x: np.ndarray, k: np.ndarray, mode: str = "valid") -> np.ndarray:
    """Correlate ``x`` with the separable window ``outer(k, k)`` (MATLAB ``filter2``/``imfilter``).

    ``mode``: ``'valid'`` (no padding), ``'same'`` (zero padding) or ``'nearest'`` (replicate
    padding, ``imfilter(...,'replicate')``). ``k`` has odd length.
    """
    pad = "nearest" if mode == "nearest" else "constant"
    out = ndimage.correlate1d(x, k, axis=0, mode=pad)
    out = ndimage.correlate1d(out, k, axis=1, mode=pad)
    if mode == "valid":
        r = len(k) // 2
        out = out[r : x.shape[0] - r, r : x.shape[1] - r]
    return out
