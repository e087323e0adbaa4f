"""Training datasets: random crops of grey images and of registered pairs, held in memory.

Images are decoded once (through :func:`litefuse.io.read_image`), reduced to luminance (BT.601
Y for colour, the single channel for grey) and kept as ``uint8``: the whole development set is a
few hundred megabytes, and cropping from memory keeps a tiny model's training step CPU-bound on
the model rather than on JPEG decoding.

Randomness is a pure function of ``(seed, epoch, index)``: item ``i`` of epoch ``e`` is always
the same crop with the same flips, whatever the number of DataLoader workers and whether the
run was resumed in the middle of the epoch. Call :meth:`set_epoch` before each epoch.

A pair that cannot be used — a source that does not decode (corrupt or truncated file,
unsupported channel layout, ...) or two sources of different sizes — is left out and listed in
the dataset's ``skipped`` as ``"<file>: <problem>"`` (:func:`decode_pairs`), as ``litefuse fuse``
reports it in folder mode; one bad file never aborts a training run.

Images smaller than the crop are **reflect-padded** up to the crop size by default
(``small="pad"``; numpy's ``reflect`` mode, repeated as often as needed) so that small
multi-focus and RoadScene frames still contribute; ``small="skip"`` drops them instead.

Train/validation membership is decided per pair by a stable hash of its name (see
:func:`split_pairs`), so a held-out scene never enters training — neither of its two images.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..colour import rgb_to_ycbcr
from ..errors import InputError
from ..io import Norm, grey_infrared, read_image
from .pairs import Pair, PairProblem, find_pairs, pair_folders, pair_task

__all__ = [
    "GreyCropDataset",
    "PairCropDataset",
    "collect_pairs",
    "split_pairs",
    "pair_hash",
    "load_luma_u8",
    "decode_pairs",
]

Small = Literal["pad", "skip"]
#: a PairCropDataset ``targets`` function: ``(names, [(a, b), ...]) -> [target, ...]``
Targets = Callable[[list[str], list[tuple[np.ndarray, np.ndarray]]], Sequence[np.ndarray]]


# --------------------------------------------------------------------------------------------
# finding and splitting pairs


def collect_pairs(roots: Iterable[str | Path], problems: list[PairProblem] | None = None) -> list[Pair]:
    """Every pair under ``roots``, named ``"<dataset>/<stem>"``.

    A root is either a pair folder (``ir/vi``, ``A/B``, ... sub-folders, see
    :data:`~litefuse.data.PAIR_LAYOUTS`) or a parent of such folders at any depth up to three
    (``shared/data/ivif`` gives MSRS, TNO, RoadScene and LLVIP). ``<dataset>`` is the pair
    folder's name. Unpaired files are left out (appended to ``problems`` when given, as
    :func:`~litefuse.data.find_pairs` reports them); a pair reached twice is kept once.
    """
    pairs: list[Pair] = []
    seen: set[Path] = set()
    seen_folders: set[Path] = set()
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise InputError("not a directory" if root.exists() else "directory not found", root)
        folders = pair_folders(root)
        if not folders:
            try:  # a folder that cannot be listed: say so, not that it holds no pairs
                next(root.iterdir(), None)
            except OSError as exc:
                raise InputError(f"cannot read the folder ({exc.strerror or exc})", root) from None
            raise InputError("no image pair folders found (expected ir/vi or A/B sub-folders, here or below)", root)
        for folder in folders:
            found, unpaired = find_pairs(folder)
            if problems is not None and folder.resolve() not in seen_folders:
                problems.extend(unpaired)
            seen_folders.add(folder.resolve())
            for pair in found:
                key = pair.a.resolve()
                if key not in seen:
                    seen.add(key)
                    pairs.append(Pair(f"{folder.name}/{pair.name}", pair.a, pair.b))
    return pairs


def pair_hash(name: str) -> float:
    """A stable number in ``[0, 1)`` for ``name`` (SHA-1; independent of Python's hash seed)."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big") / 2**64


def split_pairs(pairs: Sequence[Pair], val_fraction: float = 0.1) -> tuple[list[Pair], list[Pair]]:
    """Split into ``(train, val)`` by :func:`pair_hash` of each pair's name.

    A pair is held out when its hash is below ``val_fraction``, so its membership never depends
    on which other files are present. When that leaves the validation set empty although
    ``val_fraction > 0`` (tiny folders), the ``ceil(val_fraction·n)`` lowest hashes are held out.
    Order within each part follows ``pairs``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    hashes = {p.name: pair_hash(p.name) for p in pairs}
    held = {name for name, h in hashes.items() if h < val_fraction}
    if not held and val_fraction > 0 and len(pairs) > 1:
        k = min(len(pairs) - 1, math.ceil(val_fraction * len(pairs)))
        held = set(sorted(hashes, key=hashes.__getitem__)[:k])
    return [p for p in pairs if p.name not in held], [p for p in pairs if p.name in held]


# --------------------------------------------------------------------------------------------
# decoding


def load_luma_u8(path: str | Path, infrared: bool = False, ir_norm: Norm = "range") -> np.ndarray:
    """Read an image as ``uint8`` luminance ``H×W`` (BT.601 Y for colour). An ``infrared``
    source must be grey (three equal channels, or channels within compression noise, count), as
    :func:`litefuse.fuse` requires: the luminance of a false-colour palette is not the scene's
    thermal intensity; it is scaled by ``ir_norm`` (as ``fuse --ir-norm``: e.g. 4095 for 12-bit
    data in 16-bit files)."""
    img = read_image(path, norm=ir_norm if infrared else "range")
    if infrared:
        img = grey_infrared(img, path, "an A/B folder holds two colour sources")
    if img.ndim == 3:
        img = rgb_to_ycbcr(img)[0]
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _read_luma(path: Path, infrared: bool = False, ir_norm: Norm = "range") -> np.ndarray | InputError:
    """:func:`load_luma_u8`, or the :class:`InputError` that says why the file cannot be used."""
    try:
        return load_luma_u8(path, infrared, ir_norm)
    except InputError as exc:
        return exc


def _decode_all(paths: Sequence[Path], workers: int, infrared: Sequence[bool] | None = None,
                ir_norm: Norm = "range") -> list[np.ndarray | InputError]:
    """Decode in a small thread pool (PIL and numpy release the GIL while decoding)."""
    flags = list(infrared) if infrared is not None else [False] * len(paths)
    norms = [ir_norm] * len(paths)
    if workers <= 1 or len(paths) < 4:
        return [_read_luma(p, f, n) for p, f, n in zip(paths, flags, norms)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_read_luma, paths, flags, norms))


def _pair_problem(pair: Pair, a: np.ndarray | InputError, b: np.ndarray | InputError) -> str | None:
    """Why ``pair`` (decoded as ``a``, ``b``) is unusable, as ``"<file>: <problem>"``; None if usable."""
    for decoded in (a, b):
        if isinstance(decoded, InputError):
            return str(decoded)
    if a.shape != b.shape:
        (ha, wa), (hb, wb) = a.shape, b.shape
        return f"{pair.b}: size mismatch: {wb}×{hb} here but {wa}×{ha} for its partner {pair.a.name}"
    return None


def decode_pairs(pairs: Sequence[Pair], workers: int = 2, ir_norm: Norm = "range") -> tuple[list[tuple[Pair, np.ndarray, np.ndarray]], list[str]]:
    """Both sources of every pair as ``uint8`` luminance (infrared scaled by ``ir_norm``): ``(usable, skipped)``.

    ``usable`` holds ``(pair, a, b)`` for the pairs whose sources decode and share one size, in
    order; ``skipped`` says why each other pair was left out (``"<file>: <problem>"``).
    """
    # the first source of an infrared-visible pair (not of an A/B pair) is an infrared image
    infrared = [flag for p in pairs for flag in (pair_task(p) == "ivif", False)]
    flat = _decode_all([path for p in pairs for path in (p.a, p.b)], workers, infrared, ir_norm)
    usable: list[tuple[Pair, np.ndarray, np.ndarray]] = []
    skipped: list[str] = []
    for pair, a, b in zip(pairs, flat[0::2], flat[1::2]):
        problem = _pair_problem(pair, a, b)
        if problem is None:
            usable.append((pair, a, b))
        else:
            skipped.append(problem)
    return usable, skipped


def _as_hw(crop: int | Sequence[int]) -> tuple[int, int]:
    h, w = (crop, crop) if isinstance(crop, int) else tuple(crop)
    if h < 1 or w < 1:
        raise ValueError(f"crop must be positive, got {crop}")
    return int(h), int(w)


# --------------------------------------------------------------------------------------------
# datasets


class _CropDataset(Dataset):
    """Shared machinery: in-memory ``uint8`` images, seeded crop/flip per (epoch, index)."""

    def __init__(
        self,
        crop: int | Sequence[int],
        train: bool,
        seed: int,
        small: Small,
        crops_per_image: int,
        flips: bool,
    ) -> None:
        if small not in ("pad", "skip"):
            raise ValueError(f"small must be 'pad' or 'skip', got {small!r}")
        if crops_per_image < 1:
            raise ValueError(f"crops_per_image must be >= 1, got {crops_per_image}")
        self.crop = _as_hw(crop)
        self.train = train
        self.seed = int(seed)
        self.small = small
        self.crops_per_image = crops_per_image if train else 1
        self.flips = flips and train
        self.epoch = 0
        self.names: list[str] = []
        self.skipped: list[str] = []
        self.num_pairs = 0  # pairs with at least one kept image (a pair may give several images)

    def set_epoch(self, epoch: int) -> None:
        """Select the crops/flips of ``epoch`` (training mode only; validation is fixed)."""
        self.epoch = int(epoch)

    def _fits(self, shape: tuple[int, ...]) -> bool:
        return self.small == "pad" or (shape[0] >= self.crop[0] and shape[1] >= self.crop[1])

    def _too_small(self, path: Path, shape: tuple[int, ...]) -> str:
        """The ``skipped`` entry of an image dropped by ``small="skip"``."""
        return f"{path}: {shape[1]}×{shape[0]} is smaller than the {self.crop[1]}×{self.crop[0]} crop (small_images = 'skip')"

    def _num_images(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return self._num_images() * self.crops_per_image

    def _window(self, index: int, shape: tuple[int, int]) -> tuple[int, int, bool, bool]:
        """Top-left corner and (h-flip, v-flip) for item ``index`` of the current epoch."""
        (h, w), (ch, cw) = shape, self.crop
        if not self.train:
            return max(0, (h - ch) // 2), max(0, (w - cw) // 2), False, False
        rng = np.random.default_rng((self.seed, self.epoch, index))
        top = int(rng.integers(0, max(0, h - ch) + 1))
        left = int(rng.integers(0, max(0, w - cw) + 1))
        hflip, vflip = (bool(f) for f in rng.integers(0, 2, size=2)) if self.flips else (False, False)
        return top, left, hflip, vflip

    def _cut(self, img: np.ndarray, top: int, left: int, hflip: bool, vflip: bool) -> torch.Tensor:
        ch, cw = self.crop
        h, w = img.shape
        if h < ch or w < cw:
            img = np.pad(img, ((0, max(0, ch - h)), (0, max(0, cw - w))), mode="reflect")
        patch = img[top : top + ch, left : left + cw]
        if hflip:
            patch = patch[:, ::-1]
        if vflip:
            patch = patch[::-1, :]
        return torch.from_numpy(np.ascontiguousarray(patch)).float().div_(255.0).unsqueeze(0)


class GreyCropDataset(_CropDataset):
    """Single grey images for auto-encoder training, one random crop per item.

    Both sources of every pair become separate images (visible Y and infrared for IVIF, A and B
    for multi-focus / multi-exposure), so pass the pairs of one split only. Items are
    ``(1, H, W)`` float tensors in ``[0, 1]``. Unusable pairs (an unreadable source, sources of
    different sizes) are left out and listed in :attr:`skipped`.

    Args:
        pairs: the source pairs (e.g. the train part of :func:`split_pairs`).
        crop: crop size, ``int`` or ``(H, W)``; default 256×256.
        train: random crops and flips; ``False`` gives deterministic centre crops, no flips.
        seed: base seed of the crops and flips.
        small: images smaller than the crop are reflect-padded (``"pad"``) or dropped (``"skip"``).
        crops_per_image: items per image and epoch (training only).
        flips: random horizontal and vertical flips (training only).
        workers: decoding threads.
        ir_norm: the infrared's scale (``"range"``, ``"minmax"`` or a peak value, as ``fuse --ir-norm``).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        crop: int | Sequence[int] = 256,
        *,
        train: bool = True,
        seed: int = 0,
        small: Small = "pad",
        crops_per_image: int = 1,
        flips: bool = True,
        workers: int = 2,
        ir_norm: Norm = "range",
    ) -> None:
        super().__init__(crop, train, seed, small, crops_per_image, flips)
        usable, self.skipped = decode_pairs(pairs, workers, ir_norm)
        self.images: list[np.ndarray] = []
        for pair, a, b in usable:
            kept = len(self.images)
            for role, path, img in (("a", pair.a, a), ("b", pair.b, b)):
                if self._fits(img.shape):
                    self.names.append(f"{pair.name}:{role}")
                    self.images.append(img)
                else:
                    self.skipped.append(self._too_small(path, img.shape))
            self.num_pairs += len(self.images) > kept

    def __getitem__(self, index: int) -> torch.Tensor:
        img = self.images[index % len(self.images)]
        return self._cut(img, *self._window(index, img.shape))


class PairCropDataset(_CropDataset):
    """Registered pairs, luminance only, the same random crop and flips on both sources.

    Items are ``(a, b)``: two ``(1, H, W)`` float tensors in ``[0, 1]`` (``a`` = infrared or
    source A, ``b`` = visible Y or source B). Unusable pairs (an unreadable source, sources of
    different sizes) are left out and listed in :attr:`skipped`. Arguments as
    :class:`GreyCropDataset`; default crop 240×320 (H×W, DWSFusion's training patches).

    ``targets``: optional function ``(names, [(a, b), ...]) -> [target, ...]`` called once with
    the kept pairs' ``uint8`` luminance arrays; each target is a ``uint8`` ``H×W`` array of its
    pair's size (e.g. a positive sample / pseudo ground truth). Items then are ``(a, b, target)``
    with one window and one flip for all three, so they stay pixel-aligned. :meth:`add_targets`
    does the same later (e.g. once the kept pairs of every split are known).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        crop: int | Sequence[int] = (240, 320),
        *,
        train: bool = True,
        seed: int = 0,
        small: Small = "pad",
        crops_per_image: int = 1,
        flips: bool = True,
        workers: int = 2,
        targets: Targets | None = None,
        ir_norm: Norm = "range",
    ) -> None:
        super().__init__(crop, train, seed, small, crops_per_image, flips)
        usable, self.skipped = decode_pairs(pairs, workers, ir_norm)
        self.images: list[tuple[np.ndarray, ...]] = []
        for pair, a, b in usable:
            if self._fits(a.shape):
                self.names.append(pair.name)
                self.images.append((a, b))
                self.num_pairs += 1
            else:
                self.skipped.append(self._too_small(pair.a, a.shape))
        if targets is not None:
            self.add_targets(targets)

    def add_targets(self, targets: Targets) -> None:
        """Add every kept pair's target (the ``targets`` function of the class docstring, called once)."""
        if any(len(images) != 2 for images in self.images):
            raise ValueError("this dataset has its targets already")
        extra = list(targets(list(self.names), [(a, b) for a, b in self.images]))
        if len(extra) != len(self.images):
            raise ValueError(f"targets returned {len(extra)} arrays for {len(self.images)} pairs")
        for i, (name, target) in enumerate(zip(self.names, extra)):
            target = np.asarray(target)
            if target.shape != self.images[i][0].shape or target.dtype != np.uint8:
                raise ValueError(f"{name}: target must be uint8 {self.images[i][0].shape}, got {target.dtype} {target.shape}")
            self.images[i] = (*self.images[i], target)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        images = self.images[index % len(self.images)]
        window = self._window(index, images[0].shape)
        return tuple(self._cut(img, *window) for img in images)
