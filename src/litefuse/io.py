"""Image reading and writing, and the one input contract of the API and the CLI.

Reading returns float32 arrays in [0, 1]: ``H×W`` for grey images, ``H×W×3`` for colour.
RGBA drops alpha; three identical channels collapse to one grey channel. Every problem raises
:class:`~litefuse.errors.InputError` naming the file (or array).

The input contract (:func:`to_float`, used for files and arrays alike):

- ``uint8`` is divided by 255 and ``uint16`` by 65535 (``norm="range"``, the default: keeps
  the radiometric scale comparable across frames), or stretched per image (``norm="minmax"``:
  raw radiometric infrared that fills a narrow band of the 16-bit range).
- Other integer types (signed, 32/64-bit) carry no known range: they need an explicit
  ``norm`` (``"minmax"`` or a number, the value that maps to 1, e.g. ``4095`` for 12-bit data);
  without one they are refused, never guessed. 16-bit files that a decoder hands over in a
  32-bit container are read as the 16-bit data they are.
- Floats must be finite and in [0, 1]. Values up to ``FLOAT_TOLERANCE`` outside (rounding) are
  clipped; beyond that the image is refused with its value span; floats are never rescaled
  silently (divide by your peak, or pass ``norm="minmax"`` or a number).

Writing is atomic and true to the suffix: PNG (8 or 16 bit), TIFF (8 or 16 bit), JPEG and BMP
(8 bit); the image goes to a temporary file in the destination folder which is then renamed
over the target, so a crash never leaves a half-written output.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._files import check_creatable, check_output_path, publish, same_path, temporary_beside, writable_dir
from .errors import InputError, OptionError, OutputError

__all__ = [
    "IMAGE_EXTENSIONS", "MIN_SIDE", "FLOAT_TOLERANCE", "Norm", "check_norm", "read_image", "to_float", "quantise", "save_image",
    "check_output_path", "check_output_dir", "check_bits", "writable_dir", "value_range", "in_unit_range", "same_path",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".tif", ".tiff", ".webp", ".gif")  # what folders pair: what read_image reads
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")  # what litefuse writes videos as (litefuse.video)
MIN_SIDE = 8  # smaller inputs are not images worth fusing, and break the networks' down-sampling
MAX_SIDE = 16384  # the largest side an exported graph takes and bench times
FLOAT_TOLERANCE = 1e-3  # float inputs this far outside [0, 1] are rounding, clipped; further out refused
RESIZE_HINT = " (pass --resize-vi / resize_vi=True to resample it)"  # a size mismatch's remedy; eval --input has none
Norm = Union[Literal["range", "minmax"], float]
# suffix -> (Pillow format, bit depths it stores)
_WRITERS = {".png": ("PNG", (8, 16)), ".tif": ("TIFF", (8, 16)), ".tiff": ("TIFF", (8, 16)),
            ".jpg": ("JPEG", (8,)), ".jpeg": ("JPEG", (8,)), ".bmp": ("BMP", (8,))}


def check_norm(norm: Norm) -> Norm:
    """Validate a ``norm`` value: ``"range"``, ``"minmax"`` or a positive finite peak value."""
    if isinstance(norm, str):
        if norm in ("range", "minmax"):
            return norm
    elif isinstance(norm, (int, float, np.integer, np.floating)) and not isinstance(norm, bool):
        if np.isfinite(norm) and norm > 0:
            return float(norm)
    raise OptionError(f"norm={norm!r}: expected 'range', 'minmax' or a positive peak value (e.g. 4095)")


def parse_norm(text: str) -> Norm:
    """A ``norm`` as written on a command line or in a file (``"range"``, ``"minmax"``, ``"4095"``),
    checked by :func:`check_norm`; :class:`ValueError` (an ``OptionError`` too) when it is none."""
    text = str(text).strip()
    return check_norm(text if text in ("range", "minmax") else float(text))


def _decode(path: Path) -> np.ndarray:
    """Decode a file to an integer or float array (H×W or H×W×C) without changing its values."""
    if not path.exists():
        if path.is_symlink():
            raise InputError(f"broken link (to {os.readlink(path)}, which does not exist)", path)
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a directory, expected an image file", path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError as exc:
        raise InputError(f"cannot open ({exc.strerror or exc})", path) from None
    # by the file's content, not its name: a PNG saved as .tif, a 16-bit colour PNG saved as .jpg
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):  # TIFF, BigTIFF
        return _decode_tiff(path)
    if _png_16bit_colour(head):
        return _decode_png16(path)
    return _decode_pillow(path)


def pil_array(im: "Image.Image") -> np.ndarray:
    """A loaded Pillow image as the array litefuse reads: palette images expanded (RGBA where
    transparent), CMYK / YCbCr / HSV / LAB converted to RGB, bilevel to grey, and 16-bit data in
    Pillow's 32-bit integer container as uint16."""
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
    elif im.mode in ("CMYK", "YCbCr", "HSV", "LAB"):
        im = im.convert("RGB")
    elif im.mode == "1":
        im = im.convert("L")
    arr = np.asarray(im)
    if im.mode.startswith("I") and arr.dtype != np.uint16 and arr.size and 0 <= arr.min() and arr.max() <= 65535:
        arr = arr.astype(np.uint16)  # 16-bit data in Pillow's 32-bit container
    return arr


def _decode_pillow(path: Path) -> np.ndarray:
    """PNG, JPEG, BMP, WebP, ... (and TIFFs tifffile lacks a codec for) through Pillow, turned
    upright by the file's orientation tag (EXIF), as every viewer shows it."""
    from PIL import ImageOps

    try:
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
            if frames > 1 and im.format in ("PNG", "GIF", "WEBP"):  # animations; a JPEG's MPO preview is not one
                raise InputError(f"animated {im.format} with {frames} frames; litefuse reads one image per file "
                                 "(fuse videos as .mp4/.mkv, or save the frame on its own)", path)
            im.load()
            if im.getexif().get(0x0112, 1) in range(2, 9):  # rotated / mirrored: upright, as viewers show it
                im = ImageOps.exif_transpose(im)
            arr = pil_array(im)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{_first_sentence(exc)}: Pillow refuses images this large (a decompression-bomb guard); "
                         "raise PIL.Image.MAX_IMAGE_PIXELS in Python if the file is trusted", path) from None
    except UnidentifiedImageError:
        raise InputError("not an image (unrecognised format)", path) from None
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc).rstrip(".")
        if "truncated" in msg.lower() or "broken" in msg.lower() or "end of file" in msg.lower():
            raise InputError(f"truncated or corrupt image ({msg})", path) from None
        raise InputError(f"unreadable image ({msg})", path) from None
    return arr


def turned_by_tag(path: str | Path) -> bool:
    """Whether ``path`` carries an orientation tag (EXIF, TIFF) that turns it a quarter turn, so
    read upright its width and height are swapped from the stored pixels'."""
    try:
        with Image.open(path) as im:
            return im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # unreadable here: nothing to say
        return False


def _first_sentence(exc: BaseException) -> str:
    return str(exc).split(" exceeds")[0].strip() or exc.__class__.__name__


def _png_16bit_colour(head: bytes) -> bool:
    """Whether a file starting with ``head`` (26 bytes) is a PNG of 16-bit RGB, RGBA or grey +
    alpha (colour types 2, 6, 4), which Pillow decodes to 8 bits."""
    return len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 4, 6)


def _decode_png16(path: Path) -> np.ndarray:
    """A 16-bit colour PNG at full depth, through pypng (Pillow would cut it to 8 bits)."""
    import png

    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        arr = np.vstack([np.asarray(row, np.uint16) for row in rows])
    except Exception as exc:  # pypng's FormatError, ChunkError, zlib errors
        raise InputError(f"truncated or corrupt image ({exc.__class__.__name__}: {exc})", path) from None
    return arr.reshape(height, width, info["planes"])


_READING_TIFF = threading.local()  # set while this thread decodes a TIFF in :func:`_decode_tiff`


def _tiff_log(record: logging.LogRecord) -> bool:
    """Drops tifffile's log lines about a malformed file ("invalid offset to first page ...")
    while litefuse decodes one (they name no file: litefuse names the file and its problem
    itself); a program's own tifffile calls, in any thread, keep their log lines."""
    return not getattr(_READING_TIFF, "active", False)


def _decode_tiff(path: Path) -> np.ndarray:
    """One TIFF image as H×W or H×W×C (samples last, planar files included), by the file's own
    axes rather than the array's shape: a 3-page grey stack is not an RGB image. Files holding
    several full-size images, and two samples that are not grey + alpha, are refused. Turned
    upright by the Orientation tag, as :func:`_decode_pillow` does by EXIF's."""
    import tifffile

    logger = logging.getLogger("tifffile")
    if _tiff_log not in logger.filters:
        logger.addFilter(_tiff_log)
    _READING_TIFF.active = True
    try:
        with tifffile.TiffFile(str(path)) as tif:
            if not tif.series:  # the first page's offset points past the end
                raise InputError("truncated or corrupt TIFF (no image in it)", path)
            series = tif.series[0]
            page = tif.pages[0]
            photometric, colormap = int(page.photometric), page.colormap
            orientation = page.tags.valueof(274, 1)  # TIFF's own Orientation tag, EXIF's values
            alpha = [int(e) for e in page.extrasamples] if "S" in series.axes else []
            others = sum(1 for extra in tif.series[1:] if not getattr(extra.pages[0], "is_reduced", False))
            try:
                arr, axes = series.asarray(), series.axes
            except ValueError as exc:
                if "imagecodecs" not in str(exc):
                    raise
                return _decode_pillow(path)  # LZW / JPEG / ... without imagecodecs: Pillow's libtiff reads them
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"unreadable TIFF ({exc.__class__.__name__}: {exc})", path) from None
    finally:
        _READING_TIFF.active = False
    if photometric == 5:  # SEPARATED: ink densities, not light
        raise InputError("CMYK (separated) TIFF; convert it to RGB or grey first", path)
    if photometric not in (0, 1, 2, 3, 6):  # CIELab, ICCLab, LogLuv, ...
        raise InputError(f"TIFF colour space {tifffile.PHOTOMETRIC(photometric).name}; convert it to RGB or grey first", path)
    images = int(np.prod([n for a, n in zip(axes, arr.shape) if a not in "YXS"], dtype=np.int64)) + others
    if images > 1:
        raise InputError(f"multi-page TIFF holding {images} images; litefuse reads one image per file "
                         "(save the page to fuse on its own)", path)
    kept = [(a, n) for a, n in zip(axes, arr.shape) if a in "YXS"]
    arr = arr.reshape([n for _, n in kept])
    if kept[0][0] == "S":
        arr = np.moveaxis(arr, 0, -1)  # planar configuration: samples first
    if arr.ndim == 3 and arr.shape[-1] == 2 and not any(e in (1, 2) for e in alpha):
        raise InputError("TIFF with 2 channels that are not grey + alpha; expected grey, RGB or RGBA", path)
    if photometric == 3 and colormap is not None and arr.ndim == 2 and np.issubdtype(arr.dtype, np.integer):
        cmap = np.asarray(colormap)
        cmap = (cmap >> 8 if cmap.max() > 255 else cmap).astype(np.uint8)  # 16-bit entries (×256 or ×257) -> 8-bit, as libtiff
        arr = np.ascontiguousarray(cmap.T[arr])  # palette indices -> RGB
    elif photometric == 0:  # MINISWHITE: 0 is white
        if not np.issubdtype(arr.dtype, np.unsignedinteger):
            raise InputError(f"white-is-zero TIFF of {arr.dtype} samples; save it as black-is-zero", path)
        grey = arr[..., 0] if arr.ndim == 3 else arr
        grey = np.iinfo(arr.dtype).max - grey
        arr = np.dstack([grey, arr[..., 1:]]) if arr.ndim == 3 else grey
    return np.ascontiguousarray(_ORIENT.get(orientation, lambda a: a)(arr))  # rotations are views


# orientation tag (TIFF 274, as EXIF 0x0112) -> the array turned upright, as viewers show it
# (as PIL.ImageOps.exif_transpose: 6 is rotated 90° clockwise to view, 8 counter-clockwise)
_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, -1)[::-1], 8: lambda a: np.rot90(a),
}


def to_float(arr: np.ndarray, norm: Norm = "range", source: str | Path | None = None) -> np.ndarray:
    """Convert an image array to float32 in [0, 1] with 1 or 3 channels, by the input contract.

    ``norm``: ``"range"`` (uint8 / 255, uint16 / 65535, floats as they are), ``"minmax"``
    (stretch this image to [0, 1]) or a number (divide by it). ``source`` names the origin in
    error messages.
    """
    norm = check_norm(norm)
    arr = np.asarray(arr)
    if not arr.dtype.isnative:  # big-endian camera frames (np.frombuffer(buf, ">u2")): the same values
        arr = arr.astype(arr.dtype.newbyteorder("="))
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
        arr = arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        out = _int_to_float(arr, norm, source)
    elif np.issubdtype(arr.dtype, np.floating):
        out = _float_to_unit(arr.astype(np.float32), norm, source)
    else:
        raise InputError(f"unsupported pixel type {arr.dtype}; expected uint8, uint16 or float", source)

    if out.ndim == 3 and equal_channels(out):
        out = out[..., 0]  # grey stored as three identical channels
    return np.ascontiguousarray(out, dtype=np.float32)


def equal_channels(x: np.ndarray) -> bool:
    """Whether an ``H×W×3`` image is grey stored as three identical channels."""
    return bool(np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 0], x[..., 2]))


#: most difference between the channels of a colour-stored image that is read as grey infrared:
#: lossy formats store a grey image with a little chroma noise (a grey WebP from Pillow decodes
#: with channels 1 level apart; a Pillow JPEG of grey RGB measured 0 apart), which no false-colour palette has
NEAR_GREY = 2.5 / 255


def grey_infrared(img: np.ndarray, source: str | Path | None, hint: str) -> np.ndarray:
    """An infrared image as grey ``H×W``: a colour-stored one whose channels agree to within
    :data:`NEAR_GREY` (compression noise) becomes its BT.601 luminance, as the metrics read it
    (:func:`litefuse.metrics.load_grey_u8`); one with distinct colour channels
    is refused, since its luminance would be a false-colour palette's, not the scene's heat
    (read through the input contract, three equal channels are already grey). ``hint`` says
    where two colour sources belong in the caller's terms."""
    if img.ndim == 3:
        if float((img.max(-1) - img.min(-1)).max()) > NEAR_GREY:
            raise InputError(f"infrared image has 3 distinct colour channels; expected grey (1 channel) ({hint})", source)
        from .colour import rgb_to_ycbcr

        img = np.ascontiguousarray(rgb_to_ycbcr(img)[0], dtype=np.float32)
    return img


def _int_to_float(arr: np.ndarray, norm: Norm, source: str | Path | None) -> np.ndarray:
    if norm == "minmax":
        return _stretch(arr.astype(np.float32))
    if norm == "range":
        if arr.dtype not in (np.uint8, np.uint16):
            lo, hi = int(arr.min()), int(arr.max())
            raise InputError(
                f"{arr.dtype} pixels (values {lo}..{hi}) have no known range; convert to uint8/uint16 "
                "or, for an infrared source, give its scale: ir_norm='minmax' or ir_norm=<peak> (read_image, to_float: norm=; "
                "command line: --ir-norm); a visible or A/B source: convert or scale it first",
                source,
            )
        if arr.dtype == np.uint16:  # a file's, an array's or a PIL image's alike
            note_narrow_bits(int(arr.max()), source)
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    if arr.dtype in (np.uint8, np.uint16) and norm > np.iinfo(arr.dtype).max:
        top = np.iinfo(arr.dtype).max
        raise InputError(f"{arr.dtype.itemsize * 8}-bit pixels cannot reach a peak of {norm:g} (at most {top}): the image "
                         f"would fuse darkened; give range or a peak up to {top} for this file", source)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > norm * (1.0 + FLOAT_TOLERANCE):
        raise InputError(f"{arr.dtype} pixels span {lo}..{hi}, outside 0..{norm:g} (the peak given); give the "
                         "sensor's real peak, or norm='minmax' (on the command line --ir-norm minmax | PEAK, for the infrared)", source)
    return _float_to_unit(arr.astype(np.float32) / np.float32(norm), "range", source)


class OnceWarning(UserWarning):
    """A note said for the first case only, in a process and across the workers of
    :func:`~litefuse.evaluation.parallel_map` (which relays a worker's warnings)."""

    once = True


_NARROW_NOTED: list[Path] = []  # the first 16-bit file read near-black, said once per process
_QUIET = threading.local()  # reads of this thread inside unsaid_notes()


@contextmanager
def unsaid_notes() -> Iterator[None]:
    """Reads inside, in this thread, say no notes and leave the once-per-process ones unsaid,
    for the run's own read of the file to say (an A/B pair's task is read from its pixels before
    the run). Per thread: other threads' reads and warnings are untouched (``warnings.catch_warnings``
    would swap the filters of the whole process)."""
    outer = getattr(_QUIET, "on", False)
    _QUIET.on = True
    try:
        yield
    finally:
        _QUIET.on = outer


def note_narrow_bits(peak: int, source: str | Path | None) -> None:
    """Say once when a 16-bit image (a file, an array) holds at most 14 bits of data: a 12- or
    14-bit sensor's raw frames, divided by 65535, fuse near-black (at most 6 % or 25 % grey)
    unless their peak is given."""
    if not 0 < peak < 1 << 14 or _NARROW_NOTED or getattr(_QUIET, "on", False):
        return
    _NARROW_NOTED.append(source)
    bits = peak.bit_length()
    grey = f"{peak / 65535:.0%}" if peak >= 655 else f"{peak / 65535:.1%}"  # 255 reads as 0.4 %, not "0 %"
    article = "an" if bits in (8, 11) else "a"
    warnings.warn(f"{source if source is not None else 'a uint16 array'}: 16-bit image with values up to {peak} ({bits}-bit data?) "
                  f"reads as at most {grey} grey (16-bit images are divided by 65535); for {article} {bits}-bit infrared give "
                  f"its peak (--ir-norm {(1 << bits) - 1}, ir_norm={(1 << bits) - 1}) or minmax; scale a visible image or an "
                  "A/B source (a 12-bit scan) to the full range before fusing: they take no --ir-norm (said for the first such image only)",
                  OnceWarning, stacklevel=2)


def value_range(x: np.ndarray) -> tuple[float, float] | None:
    """``(min, max)`` of a float array, or ``None`` when it holds NaN or infinity: one pass per
    bound (NaN propagates through both), shared by every [0, 1] check of the input contract."""
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None


def in_unit_range(bounds: tuple[float, float] | None) -> bool:
    """Whether :func:`value_range` bounds lie in [0, 1] to :data:`FLOAT_TOLERANCE` (rounding)."""
    return bounds is not None and -FLOAT_TOLERANCE <= bounds[0] and bounds[1] <= 1.0 + FLOAT_TOLERANCE


def _float_to_unit(out: np.ndarray, norm: Norm, source: str | Path | None) -> np.ndarray:
    if value_range(out) is None:
        raise InputError("image contains NaN or infinite values", source)
    if norm == "minmax":
        return _stretch(out)
    if norm != "range":
        out = out / np.float32(norm)
    bounds = value_range(out)
    lo, hi = bounds
    if not in_unit_range(bounds):
        raise InputError(
            f"float image values span [{lo:g}, {hi:g}]; expected [0, 1] (never rescaled silently: divide by "
            "your peak, or give the infrared's scale: ir_norm='minmax' or ir_norm=<peak>; read_image, to_float: norm=; command line: --ir-norm)",
            source,
        )
    return np.clip(out, 0.0, 1.0) if lo < 0.0 or hi > 1.0 else out


def _stretch(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def read_image(path: str | Path, norm: Norm = "range") -> np.ndarray:
    """Read an image file as float32 in [0, 1]: ``H×W`` (grey) or ``H×W×3`` (colour).

    ``norm``: how integer data are scaled (:func:`to_float`): ``"range"`` (uint8 / 255, uint16 /
    65535), ``"minmax"`` (stretched per image) or a peak value such as ``4095`` for 12-bit data.
    A missing, unreadable or out-of-contract file raises :class:`~litefuse.errors.InputError`."""
    path = Path(path)
    return to_float(_decode(path), norm=norm, source=path)


def check_output_dir(folder: str | Path) -> Path:
    """Validate an output folder before any work, without creating it: an existing writable
    folder, or one that can be created under a writable parent, not named as an image or video."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a directory")
    if not folder.exists() and folder.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_SUFFIXES:
        raise OutputError(f"{folder}: names a file, but a folder is written here; give a folder name")
    check_creatable(folder, folder if folder.exists() else folder.parent)
    return folder


# PNG at zlib level 1 (OpenCV's default too): lossless either way, and on a 640×480 colour image
# 40 ms instead of 190 ms at Pillow's level 6 for a file 16 % larger -- at level 6 encoding
# costs more than fusing with the default network, so folder and video throughput would be
# bound by it. zlib's run-length strategy (compress_type 3, Z_RLE) on top: over 8 fused
# development images (MSRS, TNO, RoadScene, LLVIP) 10 % less encoding time and 10 % smaller files
# than the default strategy (16-bit grey: 32 % faster). JPEG at quality 95.
_SAVE_OPTIONS = {"PNG": {"compress_level": 1, "compress_type": 3}, "JPEG": {"quality": 95}}


def check_bits(path: str | Path, bits: int, colour: bool = False) -> str:
    """The format ``path``'s suffix names, after checking it stores ``bits``-bit images (in
    ``colour``: 16-bit colour is TIFF only)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _WRITERS:
        raise OutputError(f"{path}: cannot write {suffix or 'files without a suffix'}; use "
                          + ", ".join(sorted({s for s in _WRITERS})))
    fmt, depths = _WRITERS[suffix]
    if bits not in depths:
        raise OutputError(f"{path}: {fmt} stores {' or '.join(map(str, depths))}-bit images, not {bits}-bit")
    if colour and bits == 16 and fmt != "TIFF":
        raise OutputError(f"{path}: 16-bit colour is written as TIFF only; use a .tif name, 8 bits or a grey image")
    return fmt


def quantise(x: np.ndarray, bits: int = 8) -> np.ndarray:
    """A [0, 1] float image as uint8 / uint16, ``clip(round(peak·x))`` (half to even) in float64 in
    row blocks: what :func:`save_image` writes is what :func:`litefuse.metrics.to_uint8` scores."""
    peak = 255 if bits == 8 else 65535
    out = np.empty(x.shape, np.uint8 if bits == 8 else np.uint16)
    step = max(1, (1 << 22) // max(1, x[0].size))  # ~4 M values (32 MB of float64) a block
    for i in range(0, x.shape[0], step):
        out[i : i + step] = np.clip(np.round(np.clip(x[i : i + step].astype(np.float64), 0.0, 1.0) * peak), 0, peak)
    return out


def save_image(path: str | Path, image: np.ndarray, bits: int = 8, *, overwrite: bool = True) -> Path:
    """Write a float image in [0, 1] (to rounding, as read; never rescaled) or a uint8/uint16
    array atomically, in the format its suffix names: PNG or TIFF (8 or 16 ``bits``; 16-bit
    colour: TIFF only), JPEG or BMP (8 bits). Other suffixes are refused. ``bits`` sets the
    depth floats are written at; a uint8 / uint16 array keeps its own. ``overwrite=False``: a
    file that exists at ``path`` when the image is written is kept, an OutputError (``errno``
    EEXIST), also one another process wrote since ``path`` was checked."""
    path = Path(path)
    suffix = path.suffix.lower()
    fmt = check_bits(path, bits)
    arr = np.asarray(image)
    given = arr.dtype  # errors name what the caller passed, not the 8/16-bit conversion of it
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.size == 0:
        raise OutputError(f"{path}: the image is empty (shape {arr.shape}); nothing written")
    if np.issubdtype(arr.dtype, np.floating):
        bounds = value_range(arr)
        if bounds is None:  # a failed computation, not an image: never written as black
            raise OutputError(f"{path}: the image holds NaN or infinite values; nothing written")
        if not in_unit_range(bounds):  # e.g. 0..255 floats: never clipped to white
            raise OutputError(f"{path}: float image values span [{bounds[0]:g}, {bounds[1]:g}]; expected [0, 1] "
                              "(divide by your peak, or pass uint8 / uint16); nothing written")
        arr = quantise(arr, bits)
    if arr.dtype not in (np.uint8, np.uint16) or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise OutputError(f"{path}: cannot write an array of {given} values and shape {arr.shape}; give H×W or H×W×3 "
                          "floats in [0, 1], uint8 or uint16")
    if arr.dtype == np.uint16:  # a uint16 array keeps its depth, whatever ``bits`` says
        check_bits(path, 16, colour=arr.ndim == 3)
    try:
        writable_dir(path.parent if str(path.parent) else Path("."))
    except OutputError as exc:
        raise OutputError(f"{path}: {exc}") from None
    try:
        with temporary_beside(path, suffix=".tmp" + suffix) as tmp:
            if arr.dtype == np.uint16 and arr.ndim == 3:  # Pillow has no 16-bit RGB mode
                import tifffile

                tifffile.imwrite(tmp, arr, photometric="rgb" if arr.shape[-1] == 3 else None)
            else:
                Image.fromarray(arr).save(tmp, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
            publish(tmp, path, replace=overwrite)
    except FileExistsError as exc:
        error = OutputError(f"{path}: output exists; pass --overwrite (overwrite=True) to replace it")
        error.errno = exc.errno
        raise error from None
    except OSError as exc:
        error = OutputError(f"{path}: cannot write ({exc.strerror or exc})")
        error.errno = exc.errno  # a full disk or a read-only file system stops a folder run
        raise error from None
    return path
