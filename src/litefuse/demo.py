"""A deterministic synthetic infrared–visible scene, generated in code (no data files).

The scene is built so that each source holds something the other lacks, which is what fusion
must keep: the visible image has fine texture (a brick wall, striped awning, lettering) and
colour but hides two people in deep shadow; the infrared image shows those people and a warm
engine as bright targets over a smooth thermal background, with no texture at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import LitefuseError
from .io import check_output_path, read_image, save_image
from .viz import side_by_side

__all__ = ["synthetic_pair", "synthetic_luma_pair", "run_demo"]


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def synthetic_pair(height: int = 240, width: int = 320, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(ir, vi)``: float32 ``H×W`` infrared and ``H×W×3`` visible, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    v, u = yy / height, xx / width

    # visible: sky gradient, textured brick wall, striped awning, road, shadowed alcove
    vi = np.empty((height, width, 3), np.float32)
    vi[..., 0], vi[..., 1], vi[..., 2] = 0.55 + 0.2 * v, 0.7 + 0.1 * v, 0.95 - 0.1 * v
    wall = (v > 0.25) & (v < 0.75)
    row = (yy / 10).astype(int)
    mortar = (yy % 10 < 1.5) | (((xx + 12 * (row % 2)) % 24) < 1.5)
    brick = np.stack([0.62 + 0.0 * u, 0.33 + 0.0 * u, 0.24 + 0.0 * u], -1)
    brick += 0.06 * rng.standard_normal((height, width, 1)).astype(np.float32)
    vi[wall] = np.where(mortar[wall, None], 0.78, brick[wall])
    awning = (v > 0.25) & (v < 0.32)
    stripes = ((xx // 8) % 2 == 0)[..., None]
    vi[awning] = np.where(stripes[awning], [0.9, 0.9, 0.85], [0.15, 0.45, 0.3])
    road = v >= 0.75
    vi[road] = (0.35 + 0.05 * np.sin(xx[road] / 3.0))[:, None] * np.array([1.0, 1.0, 1.05], np.float32)
    alcove = (u > 0.55) & (u < 0.85) & (v > 0.4) & (v < 0.9)
    vi[alcove] *= 0.08  # deep shadow: the people standing here are invisible in the visible image
    vi = np.clip(vi + 0.01 * rng.standard_normal(vi.shape).astype(np.float32), 0.0, 1.0)

    # infrared: smooth background, warm people in the alcove, a warm car engine, cold sky
    ir = 0.25 + 0.15 * v + 0.05 * np.sin(u * 3.0)
    ir[v < 0.25] = 0.12
    for cx in (0.63, 0.76):
        body = _ellipse(yy, xx, 0.68 * height, cx * width, 0.16 * height, 0.04 * width)
        head = _ellipse(yy, xx, 0.47 * height, cx * width, 0.045 * height, 0.03 * width)
        ir[body | head] = 0.9
    engine = _ellipse(yy, xx, 0.85 * height, 0.2 * width, 0.05 * height, 0.09 * width)
    ir[engine] = 0.8
    ir = np.clip(ir + 0.01 * rng.standard_normal(ir.shape), 0.0, 1.0).astype(np.float32)
    return ir, vi


def synthetic_luma_pair(height: int = 240, width: int = 320, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The same scene as the networks see it: float32 ``H×W`` infrared and visible luminance."""
    from .colour import rgb_to_ycbcr

    ir, vi = synthetic_pair(height, width, seed)
    return np.ascontiguousarray(ir, np.float32), np.ascontiguousarray(rgb_to_ycbcr(vi)[0], np.float32)


def run_demo(
    out_dir: str | Path = "litefuse-demo", model: str | Sequence[str] | None = None, device: str = "cpu",
    overwrite: bool = False, threads: int | None = None,
) -> dict[str, Path]:
    """Generate the synthetic pair, fuse it, write ir/vi/fused/side-by-side PNGs.

    ``model`` is one method or several (each writes its own ``demo_fused_<method>.png`` and
    ``demo_side_by_side_<method>.png``; the returned keys are then ``fused_<method>`` and
    ``side_by_side_<method>``). Existing demo images are replaced only with ``overwrite``; every
    method name and output path is checked before any work. The generated sources are the same
    every time, so a folder that already holds them takes another method's result beside the
    earlier ones."""
    from .api import Fuser

    out_dir = Path(out_dir)
    names = [model] if model is None or isinstance(model, str) else list(dict.fromkeys(model))
    fusers = [Fuser(name, device=device, threads=threads) for name in names]
    fusers = list({fuser.name: fuser for fuser in fusers}.values())  # aliases of one method: once
    single = len(fusers) == 1
    targets = {"ir": out_dir / "demo_ir.png", "vi": out_dir / "demo_vi.png"}
    for fuser in fusers:
        suffix = "" if single else f"_{fuser.name}"
        targets[f"fused{suffix}"] = out_dir / f"demo_fused_{fuser.name}.png"
        targets[f"side_by_side{suffix}"] = out_dir / f"demo_side_by_side_{fuser.name}.png"
    ir, vi = synthetic_pair()
    images: dict[str, np.ndarray] = {"ir": ir, "vi": vi}
    # the very source images of an earlier demo are kept as they are, not refused or rewritten
    kept = {key for key, image in images.items() if not overwrite and _holds(targets[key], image)}
    for key, path in targets.items():
        if key not in kept:
            check_output_path(path, overwrite=overwrite)
    for fuser in fusers:
        suffix = "" if single else f"_{fuser.name}"
        fused = fuser.fuse_images(ir, vi)
        images[f"fused{suffix}"] = fused
        images[f"side_by_side{suffix}"] = side_by_side([ir, vi, fused], ["infrared", "visible", f"fused ({fuser.name})"])
    return {key: path if key in kept else save_image(path, images[key]) for key, path in targets.items()}


def _holds(path: Path, image: np.ndarray) -> bool:
    """Whether ``path`` is a file holding ``image`` as :func:`~litefuse.io.save_image` writes it (8 bits)."""
    if not path.is_file():
        return False
    try:
        return np.array_equal(np.round(read_image(path) * 255), np.round(np.clip(image, 0, 1) * 255))
    except LitefuseError:  # unreadable: not ours, so check_output_path decides
        return False
