"""Python API: fuse a pair of images, arrays or a folder with any registered method.

>>> import litefuse
>>> fused = litefuse.fuse("ir.png", "vi.png", model="max")   # float32 in [0, 1]
>>> litefuse.save_image("fused.png", fused)

Colour: networks fuse luminance only. A colour visible image is split into BT.601 Y/Cb/Cr,
its Y fused with the infrared and the colour restored from its chroma; two colour sources
(multi-exposure, multi-focus) get saturation-weighted chroma; grey sources give a grey result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .colour import fuse_chroma, rgb_to_ycbcr, ycbcr_to_rgb
from .data.pairs import find_pairs, pair_dirs
from .errors import InputError, LitefuseError
from .io import Norm, check_output_path, read_image, save_image, to_float
from .registry import get_model_info, list_models, load_model, resolve_device

__all__ = ["ImageLike", "Fuser", "default_model", "folder_task", "fuse", "fuse_files", "fuse_folder", "FolderReport"]

ImageLike = Union[str, Path, np.ndarray, "PIL.Image.Image"]  # noqa: F821

# networks first, in order of preference; the first one with shipped weights is the default
_DEFAULT_PREFERENCE = ("aenetv2-ivif", "aenetv2", "lwc-densefuse", "dwsfusion-plus", "dwsfusion", "densefuse", "gff")
_AB_TASKS = frozenset({"mff", "mef", "medical"})


def default_model(task: str = "ivif") -> str:
    """The default method for ``task``: the first preferred network that ships weights and
    covers it, else classical ``gff``. ``task="ab"`` stands for the A/B pair tasks
    (multi-focus, multi-exposure, medical) together, which one general network covers."""
    wanted = _AB_TASKS if task == "ab" else {task}
    available = {m.name for m in list_models() if m.has_weights and wanted <= set(m.tasks)}
    return next((name for name in _DEFAULT_PREFERENCE if name in available), "gff")


def folder_task(folder: str | Path) -> str:
    """``"ab"`` for a folder of ``A/B`` pairs (multi-focus, multi-exposure, medical), else ``"ivif"``."""
    return "ab" if pair_dirs(folder)[0].name.lower() == "a" else "ivif"


def as_image(x: ImageLike, norm: Norm = "range", name: str | None = None) -> np.ndarray:
    """Anything image-like → float32 in [0, 1], ``H×W`` or ``H×W×3``."""
    if isinstance(x, (str, Path)):
        return read_image(x, norm=norm)
    if isinstance(x, np.ndarray):
        return to_float(x, norm=norm, source=name)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    if Image is not None and isinstance(x, Image.Image):
        if x.mode in ("P", "PA", "CMYK", "YCbCr", "1"):
            x = x.convert("RGBA" if x.mode in ("P", "PA") else "RGB")
        return to_float(np.asarray(x), norm=norm, source=name)
    raise InputError(f"cannot read an image from {type(x).__name__}", name)


class Fuser:
    """A loaded fusion method, reused across many pairs.

    ``tile``: networks run on tiles of at most ``tile × tile`` pixels (with ``overlap``
    pixels of context on each side) when an image has more than ``tile²`` pixels, which bounds
    memory for very large frames. Methods with global operators (DWSFusion's FFT and global
    pooling) see each tile separately, so tiled output differs slightly from a single pass.
    """

    def __init__(
        self,
        model: str | None = None,
        weights: str | Path | None = None,
        device: str = "cpu",
        tile: int = 1024,
        overlap: int = 32,
        task: str = "ivif",
        **model_kwargs,
    ) -> None:
        self.name = model or default_model(task)
        self.info = get_model_info(self.name)
        self.device = resolve_device(device)
        self.model: nn.Module = load_model(self.name, weights=weights, device=self.device, **model_kwargs)
        self.tile, self.overlap = tile, overlap

    # -- luminance -------------------------------------------------------------------------
    @torch.inference_mode()
    def fuse_luma(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Fuse two grey float images of equal size; returns float32 ``H×W`` in [0, 1]."""
        ta = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None].to(self.device)
        tb = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))[None, None].to(self.device)
        h, w = a.shape
        if self.info.kind == "network" and h * w > self.tile * self.tile:
            out = _tiled(self.model, ta, tb, self.tile, self.overlap)
        else:
            out = self.model(ta, tb)
        return out[0, 0].clamp(0.0, 1.0).float().cpu().numpy()

    # -- images ----------------------------------------------------------------------------
    def fuse_images(
        self,
        a: np.ndarray,
        b: np.ndarray,
        *,
        grey: bool = False,
        resize_b: bool = False,
        names: tuple[str | Path | None, str | Path | None] = (None, None),
    ) -> np.ndarray:
        """Fuse two float images (grey or colour); the result has ``a``'s H×W."""
        if a.shape[:2] != b.shape[:2]:
            if not resize_b:
                (ha, wa), (hb, wb) = a.shape[:2], b.shape[:2]
                raise InputError(
                    f"size mismatch: {wb}×{hb} here but {wa}×{ha} for its partner {Path(str(names[0])).name} "
                    "(pass --resize-vi / resize_vi=True to resample it)",
                    names[1],
                )
            b = _resize(b, a.shape[:2])
        ya, cba, cra = _split(a)
        yb, cbb, crb = _split(b)
        fused_y = self.fuse_luma(ya, yb)
        if grey or (cba is None and cbb is None):
            return fused_y
        if cba is not None and cbb is not None:
            cb, cr = fuse_chroma(cba, cra, cbb, crb)
        else:
            cb, cr = (cba, cra) if cba is not None else (cbb, crb)
        return ycbcr_to_rgb(fused_y, cb, cr).astype(np.float32)

    def __call__(self, ir: ImageLike, vi: ImageLike, **kwargs) -> np.ndarray:
        return fuse(ir, vi, model=self, **kwargs)


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    if x.ndim == 2:
        return x, None, None
    return rgb_to_ycbcr(x)


def _resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(x).float()
    t = t[None, None] if x.ndim == 2 else t.permute(2, 0, 1)[None]
    t = F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0.0, 1.0)
    out = t[0, 0] if x.ndim == 2 else t[0].permute(1, 2, 0)
    return out.contiguous().numpy()


def _tiled(model: nn.Module, a: torch.Tensor, b: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Run ``model`` over overlapping tiles, keeping each tile's central region."""
    _, _, h, w = a.shape
    step = tile - 2 * overlap
    out = torch.empty_like(a)
    for y0 in range(0, h, step):
        for x0 in range(0, w, step):
            y1, x1 = min(y0 + step, h), min(x0 + step, w)
            ty0, tx0 = max(0, y0 - overlap), max(0, x0 - overlap)
            ty1, tx1 = min(h, y1 + overlap), min(w, x1 + overlap)
            piece = model(a[..., ty0:ty1, tx0:tx1], b[..., ty0:ty1, tx0:tx1])
            out[..., y0:y1, x0:x1] = piece[..., y0 - ty0 : y1 - ty0, x0 - tx0 : x1 - tx0]
    return out


@lru_cache(maxsize=4)
def _cached_fuser(model: str | None, weights: str | None, device: str) -> Fuser:
    return Fuser(model, weights=weights, device=device)


def _is_grey(x: np.ndarray) -> bool:
    return x.ndim == 2


def fuse(
    ir: ImageLike,
    vi: ImageLike,
    model: str | Fuser | None = None,
    *,
    weights: str | Path | None = None,
    device: str = "cpu",
    grey: bool = False,
    resize_vi: bool = False,
    ir_norm: Norm = "range",
) -> np.ndarray:
    """Fuse an infrared and a visible image.

    ``ir``/``vi``: paths, PIL images or numpy arrays (uint8, uint16 or float). Returns a
    float32 array in [0, 1] with the infrared's H×W: ``H×W×3`` when the visible image is
    colour (unless ``grey``), ``H×W`` otherwise. The infrared must be grey (three identical
    channels count as grey).
    """
    fuser = model if isinstance(model, Fuser) else _cached_fuser(model, None if weights is None else str(weights), device)
    ir_name = ir if isinstance(ir, (str, Path)) else "infrared"
    vi_name = vi if isinstance(vi, (str, Path)) else "visible"
    a = as_image(ir, norm=ir_norm, name=ir_name)
    b = as_image(vi, name=vi_name)
    if not _is_grey(a):
        raise InputError("infrared image has 3 distinct colour channels; expected grey (1 channel)", ir_name)
    return fuser.fuse_images(a, b, grey=grey, resize_b=resize_vi, names=(ir_name, vi_name))


def fuse_files(
    ir: str | Path,
    vi: str | Path,
    out: str | Path,
    fuser: Fuser,
    *,
    grey: bool = False,
    resize_vi: bool = False,
    ir_norm: Norm = "range",
    overwrite: bool = False,
    allow_colour_a: bool = False,
) -> Path:
    """Fuse two files and write the result atomically as PNG; checks the output path first."""
    out = check_output_path(out, (ir, vi), overwrite=overwrite)
    a = read_image(ir, norm=ir_norm)
    b = read_image(vi)
    if not allow_colour_a and not _is_grey(a):
        raise InputError("infrared image has 3 distinct colour channels; expected grey (1 channel)", ir)
    fused = fuser.fuse_images(a, b, grey=grey, resize_b=resize_vi, names=(ir, vi))
    return save_image(out, fused)


@dataclass
class FolderReport:
    """Outcome of :func:`fuse_folder`."""

    fused: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        text = f"{len(self.fused)} fused, {len(self.skipped)} skipped"
        return text + (": " + "; ".join(self.skipped) if self.skipped else "")


def fuse_folder(
    input_dir: str | Path,
    out_dir: str | Path,
    model: str | Fuser | None = None,
    *,
    weights: str | Path | None = None,
    device: str = "cpu",
    grey: bool = False,
    resize_vi: bool = False,
    ir_norm: Norm = "range",
    overwrite: bool = False,
    progress: Callable | None = None,
) -> FolderReport:
    """Fuse every pair in ``input_dir`` (``ir/vi``, ``infrared/visible``, ``Inf/Vis`` or ``A/B``)
    into ``out_dir/<stem>.png``. Unpaired and unreadable files are reported and skipped.

    ``progress``: optional callable ``(iterable, total) -> iterable`` (e.g. a rich progress
    tracker) wrapped around the pairs.
    """
    pairs, problems = find_pairs(input_dir)
    if isinstance(model, Fuser):
        fuser = model
    else:
        fuser = Fuser(model, weights=weights, device=device, task=folder_task(input_dir))
    report = FolderReport(skipped=[str(p) for p in problems])
    out_dir = Path(out_dir)
    iterator = progress(pairs, len(pairs)) if progress else pairs
    for pair in iterator:
        try:
            path = fuse_files(
                pair.a, pair.b, out_dir / f"{pair.name}.png", fuser,
                grey=grey, resize_vi=resize_vi, ir_norm=ir_norm, overwrite=overwrite, allow_colour_a=pair.a.parent.name.lower() == "a",
            )
            report.fused.append(path)
        except LitefuseError as exc:
            report.skipped.append(str(exc))
    return report
