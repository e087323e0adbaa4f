"""What a run carries between two steps, and how it is written to disk.

:class:`TrainState` is the single list of the trainer's progress — counters, the best weights
so far, the stage's plateau and early-stopping trackers, the running loss sums — and its
``state_dict`` / ``load_state_dict`` are the only place that maps it to and from a checkpoint.
:func:`save_checkpoint` / :func:`load_checkpoint` add the model, the objective, the RNG states
and the config, and write atomically (a crash leaves the previous checkpoint or the new one,
never half of one).

Exact resume: a checkpoint is only ever taken between two steps, and crops and batch order are
pure functions of ``(seed, epoch, index)``, so a resumed run replays the rest of its epoch
exactly; on the same machine and device it is bit-identical to an uninterrupted run.

Also here: the loss log (CSV), the safetensors export and seeding, the run's other
bookkeeping that outlives one process.
"""

from __future__ import annotations

import csv
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch
from torch import nn

from .._files import atomic_write_bytes, atomic_write_text
from ..errors import OutputError
from ..registry import first_line, read_checkpoint
from .config import ConfigError, TrainConfig

if TYPE_CHECKING:
    from .objective import Objective

__all__ = [
    "CHECKPOINT_FORMAT",
    "EarlyStopping",
    "LossLog",
    "TrainState",
    "atomic_torch_save",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "save_safetensors",
    "seed_everything",
    "set_rng_state",
]

#: version of the checkpoint layout below; a checkpoint of another version does not resume
CHECKPOINT_FORMAT = 1


class EarlyStopping:
    """Counts validations without a relative improvement of at least ``rel_delta``."""

    def __init__(self, patience: int, rel_delta: float = 1e-4) -> None:
        self.patience, self.rel_delta = patience, rel_delta
        self.best, self.bad = math.inf, 0

    def update(self, value: float) -> bool:
        """Record a validation value; True when patience is exhausted (never with ``patience`` 0)."""
        if value < self.best * (1 - self.rel_delta) if self.best > 0 else value < self.best:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        return self.patience > 0 and self.bad >= self.patience

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.best, self.bad = float(state["best"]), int(state["bad"])


@dataclass
class TrainState:
    """The trainer's progress; one checkpoint's ``trainer`` entry (plus ``best_model`` beside it).

    ``stopper`` and ``plateau`` belong to the current stage: :meth:`new_stage` replaces them and
    forgets the best weights, since a stage's loss weights make its validation loss incomparable
    with the previous stage's. ``wall_time_s`` is the wall time of earlier invocations of the
    run; :meth:`elapsed_s` adds this one's.
    """

    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches of ``epoch`` already done
    stage: int | None = None  # index of the stage the loop is in (None before the first)
    best_val: float = math.inf
    best_step: int | None = None
    best_model: dict[str, torch.Tensor] | None = None  # CPU copy of the best validated weights
    last_val_step: int = -1
    early_stopped: bool = False
    running: dict[str, float] = field(default_factory=dict)  # loss sums since the last train log row
    running_n: int = 0
    wall_time_s: float = 0.0
    stopper: EarlyStopping = field(default_factory=lambda: EarlyStopping(0))
    plateau: dict[str, torch.optim.lr_scheduler.ReduceLROnPlateau] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)  # this invocation's start (not saved)

    def elapsed_s(self) -> float:
        """Wall time of the whole run so far, every invocation included."""
        return self.wall_time_s + time.monotonic() - self.started

    def new_stage(self, stopper: EarlyStopping, plateau: dict[str, Any]) -> None:
        """Fresh early stopping, plateau schedulers and best-weights tracking for a new stage."""
        self.stopper, self.plateau = stopper, plateau
        self.best_val, self.best_step, self.best_model = math.inf, None, None

    def improve(self, value: float, model: nn.Module, step: int | None = None) -> bool:
        """Keep ``model``'s weights as the best if ``value`` beats the best so far; True if it did.
        ``step``: the step whose weights they are (default: the current one)."""
        if not value < self.best_val:
            return False
        self.best_val, self.best_step = value, self.step if step is None else step
        self.best_model = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return True

    def accumulate(self, losses: Mapping[str, float]) -> None:
        """Add one step's loss components to the running sums."""
        for k, v in losses.items():
            self.running[k] = self.running.get(k, 0.0) + float(v)
        self.running_n += 1

    def running_means(self, reset: bool = False) -> dict[str, float]:
        """Mean loss components since the last reset."""
        n = max(1, self.running_n)
        means = {k: v / n for k, v in self.running.items()}
        if reset:
            self.running, self.running_n = {}, 0
        return means

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``trainer`` entry (``best_model`` is stored beside it, see :func:`save_checkpoint`)."""
        return {
            "step": self.step, "epoch": self.epoch, "batch": self.batch, "stage": self.stage,
            "best_val": self.best_val, "best_step": self.best_step, "last_val_step": self.last_val_step,
            "early_stopped": self.early_stopped, "running": dict(self.running), "running_n": self.running_n,
            "stopper": self.stopper.state_dict(),
            "plateau": {k: s.state_dict() for k, s in self.plateau.items()},
            "wall_time_s": self.elapsed_s(),
        }

    def load_state_dict(self, state: Mapping[str, Any], best_model: dict[str, torch.Tensor] | None = None) -> None:
        """Restore from :meth:`state_dict`; the current ``stopper`` and ``plateau`` take the saved states."""
        self.step, self.epoch, self.batch, self.stage = state["step"], state["epoch"], state["batch"], state["stage"]
        self.best_val, self.best_step, self.last_val_step = state["best_val"], state["best_step"], state["last_val_step"]
        self.early_stopped = state["early_stopped"]
        self.running, self.running_n = dict(state["running"]), state["running_n"]
        self.stopper.load_state_dict(state["stopper"])
        for k, s in self.plateau.items():
            if k in state["plateau"]:
                s.load_state_dict(state["plateau"][k])
        self.wall_time_s = state["wall_time_s"]
        self.best_model = best_model


# --------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(
    path: Path, *, model: nn.Module, objective: Objective, state: TrainState, config: TrainConfig, data: list | None = None,
    start: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Write ``last.pt`` atomically: the whole of what :meth:`~.trainer.Trainer.fit` resumes from
    (``data``: the record of its pairs, :func:`~.trainset.data_record`; ``start``: a fine-tune's
    starting weights, which each stage compares against)."""
    atomic_torch_save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "objective": objective.state_dict(),
            "trainer": state.state_dict(),
            "best_model": state.best_model,
            "rng": rng_state(),
            "config": config.to_dict(),
            "data": data,
            "start": start,
        },
        path,
    )


def load_checkpoint(path: Path, config: TrainConfig) -> tuple[dict[str, Any], TrainConfig]:
    """Read a checkpoint and check that ``config`` may continue it (only :attr:`TrainConfig.RESUMABLE`
    fields may differ): ``(checkpoint, config)``. A config that starts from an ``init`` file and sets
    no ``model_kwargs`` takes the checkpoint's: what the run adopted from that file's record (the
    resume does not need the file)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no checkpoint to resume from")
    try:
        ckpt = read_checkpoint(path)
    except Exception as exc:
        raise ConfigError(f"{path}: unreadable checkpoint ({first_line(exc)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path}: not a litefuse training checkpoint")
    if config.init and not config.model_kwargs:
        config = config.replace(model_kwargs=ckpt["config"].get("model_kwargs") or {})
    # a key the checkpoint lacks was added to TrainConfig after it was written: the run had its default
    saved, now = {**TrainConfig().to_dict(), **ckpt["config"]}, config.to_dict()
    changed = sorted(k for k in now if k not in TrainConfig.RESUMABLE and now[k] != saved.get(k))
    if changed:
        k = changed[0]
        raise ConfigError(f"cannot resume with a different {k!r} (checkpoint: {saved.get(k)!r}, now: {now[k]!r})")
    return ckpt, config


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``:
    a crash at any moment leaves either the previous file or the new one, never half. Serialised
    in memory first: torch's writer turns a full disk into a RuntimeError without the OS error,
    where :func:`~litefuse._files.atomic_write_bytes` raises an OutputError naming the file."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue(), fsync=True)


def save_safetensors(state: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write ``state`` (contiguous CPU copies) as safetensors with ``metadata``, atomically, with
    a canonical header (:func:`canonical_safetensors`): equal weights and metadata give equal
    bytes, so a model card's sha256 is reproducible."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    atomic_write_bytes(path, canonical_safetensors(save(tensors, metadata=metadata)), fsync=True)


def canonical_safetensors(blob: bytes) -> bytes:
    """``blob`` (a safetensors file) with its JSON header's keys sorted.

    The safetensors writer keeps ``metadata`` in a hash map, so its order (and the file's sha256)
    changed from one save to the next. Tensor offsets count from the end of the header, so
    re-ordering the header moves no data; the header stays space-padded to 8 bytes, as the
    format asks."""
    import json
    import struct

    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + n :]


# --------------------------------------------------------------------------------------------
# random number generators


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG state, in a form ``torch.load(weights_only=True)`` reads back."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`rng_state` (CUDA states only on the same number of devices)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------
# loss log


class LossLog:
    """Append-only CSV of loss rows; the header grows when a new component appears.

    Fixed columns: ``kind`` (train/val), ``step``, ``epoch``, ``stage``, ``lr``, ``time_s``;
    then one column per loss component, in order of first appearance.
    """

    BASE = ("kind", "step", "epoch", "stage", "lr", "time_s")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fields: list[str] = list(self.BASE)
        if path.is_file():
            with path.open(newline="") as fh:
                header = next(csv.reader(fh), None)
            if header:
                self.fields = header
        else:  # the run's log exists from its start, rows or not
            self._rewrite([])

    def _rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.fields, restval="", lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a killed run's tail that the resume will redo)."""
        rows = self._rows()
        kept = [r for r in rows if int(r["step"]) <= step]
        if len(kept) != len(rows):
            self._rewrite(kept)

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (floats to 6 significant digits), widening the header first if needed."""
        new = [k for k in row if k not in self.fields]
        if new or not self.path.is_file():
            self.fields += new
            self._rewrite(self._rows())
        try:
            with self.path.open("a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.fields, restval="").writerow({k: _fmt(v) for k, v in row.items()})
        except OSError as exc:  # a full disk: one line naming the log, as every other output
            error = OutputError(f"{self.path}: cannot write ({exc.strerror or exc})")
            error.errno = exc.errno
            raise error from None


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value
