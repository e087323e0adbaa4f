"""A run's training data: where its configured paths point, and the usable pairs they hold.

**Paths.** ``--data`` paths are typed by the user and relative to the working directory. A
relative ``data`` path in a config file is relative to that file's folder, never to the working
directory. The packaged configs' ``../shared/...`` is the development-data convention ("the
``shared`` folder beside the checkout"): with ``$LITEFUSE_SHARED`` set it is resolved against
that folder; otherwise a packaged config's paths start from the checkout root the configs were
written for (``<checkout>/src/litefuse/configs`` → ``<checkout>``), so ``../shared`` is the
folder beside the checkout. A data folder that does not exist is reported with the path tried
and how to point to the data.

**Pairs.** The datasets leave out pairs they cannot use (an unreadable or corrupt file, sources
of different sizes, an unsupported channel layout; see :func:`litefuse.data.datasets.decode_pairs`).
:func:`build_datasets` reports each, and each file without a partner, as ``skipped: <file>:
<problem>`` and their count, as ``litefuse fuse`` does in folder mode, and fails only when no
usable training pair is left.

**Order.** An epoch's batch order is a pure function of ``(seed, epoch)`` (:func:`epoch_loader`),
so a resumed run replays the rest of its epoch exactly, and the global RNGs are left untouched.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data import collect_pairs, split_pairs
from ..data.pairs import Pair, PairProblem, unpaired_detail
from ..errors import InputError
from .config import ConfigError

if TYPE_CHECKING:
    from .config import TrainConfig
    from .objective import Batch, Objective

__all__ = [
    "SHARED_ENV", "batch_size", "build_datasets", "config_base", "epoch_loader", "resolve_config_data", "resolve_data_path",
    "run_split", "to_device", "training_pairs",
]

SHARED_ENV = "LITEFUSE_SHARED"
_SHARED_PREFIX = ("..", "shared")
_HINT = f"point to the data with --data DIR, or set {SHARED_ENV} to the folder that holds data/"


def _packaged_configs() -> Path:
    return Path(str(resources.files("litefuse") / "configs")).resolve()


def config_base(config: str | Path) -> Path:
    """The folder a config file's relative paths start from: its own, or the checkout root for a packaged config."""
    folder = Path(config).resolve().parent
    packaged = _packaged_configs()
    return packaged.parents[2] if folder == packaged else folder


def resolve_data_path(entry: str | Path, base: Path) -> str:
    """Absolute form of one configured data path, relative to ``base`` (``../shared/...``: see the module docstring)."""
    path = Path(entry).expanduser()
    shared = os.environ.get(SHARED_ENV)
    if shared and not path.is_absolute() and path.parts[:2] == _SHARED_PREFIX:
        path = Path(shared).expanduser().resolve().joinpath(*path.parts[2:])
    return str((base / path).resolve())


def resolve_config_data(entries: Sequence[str], config: str | Path) -> list[str]:
    """The ``data`` entries of config file ``config`` as absolute paths."""
    base = config_base(config)
    return [resolve_data_path(entry, base) for entry in entries]


def training_pairs(roots: Sequence[str], unpaired: list[PairProblem] | None = None, validation: bool = False) -> list[Pair]:
    """Every pair under ``roots`` (the training data, or with ``validation`` the ``val_data``
    folders); a missing root names the path tried and how to point to data. Files without a
    partner are appended to ``unpaired`` when given."""
    if not roots:
        raise InputError("no training data; pass --data DIR (a folder with ir/vi or A/B sub-folders, or a parent of such)")
    for root in roots:
        if not Path(root).exists():
            raise InputError("validation folder (val_data, --val) not found" if validation else f"data directory not found; {_HINT}", root)
    problems: list[PairProblem] = []
    try:
        pairs = collect_pairs(roots, problems)
    except OSError as exc:  # e.g. a folder without read permission
        raise InputError(f"cannot read the data folder ({exc.strerror or exc})", exc.filename or roots[0]) from None
    if unpaired is not None:
        unpaired += problems
    if not pairs:
        raise InputError(f"no image pairs found in {'the validation folder(s) ' if validation else ''}{', '.join(roots)}"
                         f"{unpaired_detail(problems)}")
    return pairs


def build_datasets(
    objective: "Objective", config: "TrainConfig", console: Any, pairs: Sequence[Pair] | None = None,
    unpaired: Sequence[PairProblem] = (),
) -> tuple[Dataset, Dataset | None]:
    """The run's split pairs (``pairs``: :func:`training_pairs` of ``config.data``, when the
    caller has them already, with its ``unpaired`` files) turned into the objective's datasets;
    unpaired files and skipped pairs are reported on ``console`` (and counted, as ``fuse`` does),
    and :class:`InputError` is raised when no usable training pair remains."""
    if pairs is None:
        found: list[PairProblem] = []
        pairs, unpaired = training_pairs(config.data, found), found
    unpaired = list(unpaired)  # the validation folders' own unpaired files join them
    train, val = run_split(list(pairs), config, unpaired, console)
    train_ds, val_ds = objective.build_datasets(train, val, config)  # val_ds may be None or empty
    lost = [[str(p) for p in getattr(ds, "skipped", ())] if ds is not None else [] for ds in (train_ds, val_ds)]
    for problem in [*map(str, unpaired), *lost[0], *lost[1]]:
        console.print(f"skipped: {problem}", markup=False)
    # usable pairs on each side: a grey dataset lists each of a pair's two images it drops
    n_train, n_val = (_kept_pairs(ds, split, problems) for ds, split, problems in zip((train_ds, val_ds), (train, val), lost))
    n_skipped = len(train) + len(val) - n_train - n_val + len(unpaired)
    note = f" ({n_skipped} skipped)" if n_skipped else ""
    if len(train_ds) == 0:
        why = f"; val_fraction {config.val_fraction:g} left none of {len(val)} pairs for training" if not train and not config.val_data else ""
        raise InputError(f"no usable training pair in {', '.join(config.data)}{note}{why}")
    val_ds = val_ds if val_ds is not None and len(val_ds) else None
    _check_crop(train_ds, config, console)
    console.print(
        f"data: {n_train} train / {n_val} val pairs{note} -> {len(train_ds)} train / "
        f"{len(val_ds) if val_ds is not None else 0} val crops",
        markup=False,
    )
    return train_ds, val_ds


def _check_crop(train_ds: Dataset, config: "TrainConfig", console: Any) -> None:
    """Refuse a crop more than twice the largest training image (each crop then mostly mirrored
    copies of the image, and a far larger batch: 4096×4096 crops of 160×120 images took 24 GB);
    note how many images a larger crop pads (``small_images = "pad"``)."""
    shapes = [(img[0] if isinstance(img, tuple) else img).shape[:2] for img in getattr(train_ds, "images", ())]
    (ch, cw), padded = config.crop, sum(h < config.crop[0] or w < config.crop[1] for h, w in shapes)
    if not padded:
        return
    h, w = max(h for h, _ in shapes), max(w for _, w in shapes)
    if ch > 2 * h or cw > 2 * w:
        raise ConfigError(f"crop [{ch}, {cw}] (H, W) is more than twice the largest training image ({w}×{h} pixels): its "
                          f"crops would be mostly mirrored copies; give at most --set crop=[{min(ch, h)}, {min(cw, w)}]")
    console.print(f"note: {padded} of {len(shapes)} training images are smaller than the {cw}×{ch} crop: reflect-padded "
                  "up to it (--set small_images=skip leaves them out)", markup=False)


def data_record(pairs: Sequence[Pair]) -> list[list]:
    """What a checkpoint keeps of its data: every pair's source files and their sizes in bytes. A
    resume checks it (:func:`check_same_data`): another pair list changes the split, the crops and
    what the best validation is compared against."""

    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return -1

    return sorted([str(p.a), str(p.b), size(p.a), size(p.b)] for p in pairs)


def check_same_data(saved: list | None, now: list) -> None:
    """Refuse to resume on data other than the checkpoint's (``saved``: None in a checkpoint
    written before the record was kept)."""
    if saved is None or saved == now:
        return
    old, new = ({tuple(r[:2]): r for r in rows} for rows in (saved, now))

    def name(key: tuple) -> str:
        return f"{Path(key[0]).parent.name}/{Path(key[0]).name}"

    gone, added = [k for k in old if k not in new], [k for k in new if k not in old]
    what = (f"{name(gone[0])} gone" if gone else f"{name(added[0])} added" if added
            else f"{name(next(k for k in old if old[k] != new[k]))} changed")
    raise ConfigError(f"cannot resume: the training data changed since the checkpoint ({len(saved)} pairs then, "
                      f"{len(now)} now; {what}); restore it, or start a new run")


def run_split(pairs: list[Pair], config: "TrainConfig", unpaired: list[PairProblem], console: Any = None) -> tuple[list[Pair], list[Pair]]:
    """The run's training and validation pairs: ``pairs`` split by ``val_fraction``, or, with
    ``val_data``, all of ``pairs`` for training and the pairs of ``val_data`` for validation
    (their unpaired files are added to ``unpaired``; a validation pair that is also a training
    pair is said on ``console``: its scores would not measure generalisation)."""
    if not config.val_data:
        return split_pairs(pairs, config.val_fraction)
    val = training_pairs(config.val_data, unpaired, validation=True)
    seen = {(p.a.resolve(), p.b.resolve()) for p in pairs}
    both = [p.name for p in val if (p.a.resolve(), p.b.resolve()) in seen]
    if both and console is not None:
        console.print(f"note: {len(both)} of the {len(val)} validation pairs listed (before unusable ones are skipped) are also training pairs "
                      f"(e.g. {both[0]}): their scores do not measure unseen data", markup=False)
    return list(pairs), val


def _kept_pairs(dataset: Dataset | None, pairs: Sequence[Pair], skipped: Sequence[str]) -> int:
    """How many of ``pairs`` ``dataset`` uses (its ``num_pairs``, else one ``skipped`` entry per lost pair)."""
    kept = getattr(dataset, "num_pairs", None)
    return int(kept) if kept is not None else max(0, len(pairs) - len(skipped))


def epoch_loader(
    dataset: Dataset, config: "TrainConfig", epoch: int, first_batch: int, steps_per_epoch: int, device: torch.device
) -> DataLoader:
    """Batches ``first_batch`` .. ``steps_per_epoch - 1`` of ``epoch``, in the epoch's seeded order."""
    bs = config.batch_size
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(_mix(config.seed, epoch))).tolist()
    batches = [order[b * bs : (b + 1) * bs] for b in range(first_batch, steps_per_epoch)]
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(_mix(config.seed, epoch, 1)),  # keeps global RNG untouched
    )


def to_device(batch: "Batch", device: torch.device) -> "Batch":
    """``batch`` (a tensor, or a tuple/list/dict of them) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def batch_size(batch: "Batch") -> int:
    """Number of samples in ``batch`` (of its first tensor)."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, (list, tuple)):
        return batch_size(batch[0])
    if isinstance(batch, dict):
        return batch_size(next(iter(batch.values())))
    return 1


def _mix(*values: int) -> int:
    """Combine integers into one 63-bit seed (stable across runs and platforms)."""
    state = np.random.SeedSequence([int(v) % 2**63 for v in values]).generate_state(1, np.uint64)[0]
    return int(state) >> 1
