"""Image reading and writing.

Reading returns float32 arrays in [0, 1]: ``H×W`` for grey images, ``H×W×3`` for colour.
8-bit files are divided by 255, 16-bit files by 65535 (``norm="range"``, the default: keeps
the radiometric scale comparable across frames) or stretched per image
(``norm="minmax"``: for raw radiometric infrared that occupies a narrow band of the 16-bit
range). RGBA drops alpha; three identical channels collapse to one grey channel. Every
problem raises :class:`~litefuse.errors.InputError` naming the file.

Writing is atomic: the image goes to a temporary file in the destination folder which is
then renamed over the target, so a crash never leaves a half-written output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._files import publish, temporary_beside
from .errors import InputError, OutputError

__all__ = ["IMAGE_EXTENSIONS", "MIN_SIDE", "read_image", "to_float", "save_image", "check_output_path"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MIN_SIDE = 8  # smaller inputs are not images worth fusing, and break the networks' down-sampling
Norm = Literal["range", "minmax"]


def _decode(path: Path) -> np.ndarray:
    """Decode a file to an integer or float array (H×W or H×W×C) without changing its values."""
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a directory, expected an image file", path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path)
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile

            arr = tifffile.imread(str(path))
        except Exception as exc:
            raise InputError(f"unreadable TIFF ({exc.__class__.__name__}: {exc})", path) from None
        if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
            arr = np.moveaxis(arr, 0, -1)  # planar configuration
        return arr
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
            elif im.mode == "CMYK" or im.mode == "YCbCr":
                im = im.convert("RGB")
            elif im.mode == "1":
                im = im.convert("L")
            arr = np.asarray(im)
    except UnidentifiedImageError:
        raise InputError("not an image (unrecognised format)", path) from None
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc).rstrip(".")
        if "truncated" in msg.lower() or "broken" in msg.lower() or "end of file" in msg.lower():
            raise InputError(f"truncated or corrupt image ({msg})", path) from None
        raise InputError(f"unreadable image ({msg})", path) from None
    return arr


def to_float(arr: np.ndarray, norm: Norm = "range", source: str | Path | None = None) -> np.ndarray:
    """Convert an integer or float image array to float32 in [0, 1] with 1 or 3 channels.

    ``source`` only names the origin in error messages.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 2:  # grey + alpha
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:  # RGBA: drop alpha
        arr = arr[..., :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        shape = "×".join(map(str, arr.shape))
        raise InputError(f"unsupported channel layout (shape {shape}); expected grey, RGB or RGBA", source)
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"image is {w}×{h} pixels; at least {MIN_SIDE}×{MIN_SIDE} is needed", source)

    if arr.dtype == np.bool_:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        if norm == "minmax":
            lo, hi = float(arr.min()), float(arr.max())
            out = (arr.astype(np.float32) - lo) / (hi - lo) if hi > lo else np.zeros(arr.shape, np.float32)
        else:
            peak = 255.0 if arr.dtype.itemsize == 1 else float(np.iinfo(arr.dtype).max)
            if arr.dtype.itemsize > 2 and arr.max() <= 65535:  # 32-bit containers holding 16-bit data
                peak = 65535.0 if arr.max() > 255 else 255.0
            out = arr.astype(np.float32) / peak
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise InputError("image contains NaN or infinite values", source)
        lo, hi = float(out.min()), float(out.max())
        if norm == "minmax":
            out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
        elif lo < 0.0 or hi > 1.0:
            if lo >= 0.0 and hi <= 255.0:
                out = out / 255.0  # float array holding 8-bit levels
            else:
                raise InputError(
                    f"float image values span [{lo:g}, {hi:g}]; expected [0, 1] or 0..255 (use norm='minmax')",
                    source,
                )
    else:
        raise InputError(f"unsupported pixel type {arr.dtype}", source)

    if out.ndim == 3 and np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2]):
        out = out[..., 0]  # grey stored as three identical channels
    return np.ascontiguousarray(out, dtype=np.float32)


def read_image(path: str | Path, norm: Norm = "range") -> np.ndarray:
    """Read an image file as float32 in [0, 1]: ``H×W`` (grey) or ``H×W×3`` (colour)."""
    path = Path(path)
    return to_float(_decode(path), norm=norm, source=path)


def check_output_path(
    out: str | Path, inputs: tuple[str | Path, ...] = (), overwrite: bool = False, suffixes: tuple[str, ...] = (".png",)
) -> Path:
    """Validate an output path before any work is done; returns it resolved."""
    out = Path(out)
    resolved = out.resolve()
    for src in inputs:
        if src is not None and Path(src).resolve() == resolved:
            raise OutputError(f"{out}: output path is one of the inputs; refusing to overwrite an input")
    if out.suffix.lower() not in suffixes:
        kinds = "PNG" if suffixes == (".png",) else "/".join(s.lstrip(".") for s in suffixes)
        raise OutputError(f"{out}: outputs are written as {kinds}; use a {' or '.join(suffixes)} file name")
    parent = resolved.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{out}: {parent} is not a directory")
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: output exists; pass --overwrite to replace it")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory")
    return resolved


def save_image(path: str | Path, image: np.ndarray, bits: int = 8) -> Path:
    """Write a float image in [0, 1] (or a uint8/uint16 array) as PNG, atomically."""
    path = Path(path)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if np.issubdtype(arr.dtype, np.floating):
        peak = 255 if bits == 8 else 65535
        arr = np.clip(np.round(np.clip(arr, 0.0, 1.0) * peak), 0, peak).astype(np.uint8 if bits == 8 else np.uint16)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"{path}: {parent} is not a directory") from None
    except PermissionError:
        raise OutputError(f"{path}: cannot create directory {parent} (permission denied)") from None
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: directory {parent} is not writable")
    try:
        with temporary_beside(path, suffix=".tmp.png") as tmp:
            Image.fromarray(arr).save(tmp, format="PNG")
            publish(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path
