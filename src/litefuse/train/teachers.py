"""Teachers: fusion results a student learns to imitate, computed once per pair and cached.

A teacher is named by a string:

* ``"bank"`` — AE-Net's positive sample: the best of the five classical fusers under a fixed
  multi-metric score (:func:`litefuse.train.positives.choose_positive`);
* any registered method, classical or network with its shipped weights (``"dwsfusion"``,
  ``"max"``, ``"gff"``);
* ``"MODEL=PATH"`` — a network with a weights file (``"dwsfusion=runs/dws/model.safetensors"``);
  a bare ``PATH`` to a litefuse run's safetensors works too, since the file names its model.

Several teachers are combined pixel by pixel into one target (``combine``): ``"mean"``
(average), ``"max"`` (largest value) or ``"median"``. A teacher ensemble such as
``["dwsfusion", "max"]`` with ``"mean"`` asks for an image between DWSFusion's contrast and
the sources' own pixels.

**Cache.** One ``.npz`` per pair and teacher under the cache root
(``<root>/<key[:2]>/<key>.npz``, the ``uint8`` result). The key is the SHA-256 of both sources'
``uint8`` luminance and of the teacher's :attr:`Teacher.signature` (its name, and the SHA-256 of
its weights file for networks; the bank's procedure version for ``"bank"``), so changed pixels
or retrained weights miss the cache while file names and paths play no part. Entries are
written atomically (temporary file, then rename): concurrent builders and killed runs never
leave a half-written entry, and an unreadable entry is recomputed. Cache root: the ``root``
argument, else ``$LITEFUSE_TEACHER_CACHE``, else ``$XDG_CACHE_HOME/litefuse/teachers``, else
``~/.cache/litefuse/teachers``.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .._files import publish, temporary_beside
from ..errors import ModelError, OutputError
from .budget import Deadline

__all__ = [
    "COMBINE",
    "Teacher",
    "TeacherCache",
    "combine_targets",
    "default_cache_dir",
    "pair_key",
    "parse_teacher",
]

COMBINE = ("mean", "max", "median")
_VERSION = 1  # bump when a teacher's computation changes (invalidates every cached entry)


def pair_key(a: np.ndarray, b: np.ndarray, signature: str) -> str:
    """SHA-256 hex digest of both sources' pixels (with shape and dtype) and ``signature``."""
    h = hashlib.sha256()
    for img in (a, b):
        img = np.ascontiguousarray(img)
        h.update(f"{img.dtype.str}{img.shape};".encode())
        h.update(img.tobytes())
    h.update(signature.encode())
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Teacher:
    """One teacher: ``name`` (a registered method or ``"bank"``), an optional weights file.

    Calling it on two ``uint8`` ``H×W`` luminance arrays returns its ``uint8`` fusion.
    """

    name: str
    weights: Path | None = None
    work_size: int = 256  # "bank" only: the longer side at which the fuser bank is scored
    _fuser: object = field(default=None, repr=False, compare=False)
    #: everything besides the pixels that decides this teacher's output (part of the cache key),
    #: fixed when the teacher is made: weights replaced later do not pass under the old key
    signature: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        self.signature = self._signature()

    @property
    def label(self) -> str:
        return self.name if self.weights is None else f"{self.name}={self.weights}"

    def _signature(self) -> str:
        if self.name == "bank":
            from .positives import bank_signature

            return bank_signature(self.work_size)
        from ..registry import get_model_info

        info = get_model_info(self.name)
        weights = self.weights or info.weights_path
        digest = _file_digest(Path(weights)) if weights is not None and info.kind == "network" else "-"
        return f"litefuse-teacher/v{_VERSION};{self.name};weights={digest}"

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.name == "bank":
            from .positives import choose_positive

            return choose_positive(a, b, self.work_size).image
        if self._fuser is None:
            from ..api import Fuser

            self._fuser = Fuser(self.name, weights=self.weights, device="cpu")
            if self._signature() != self.signature:
                raise ModelError(f"teacher {self.label}: the weights file changed since the run started")
        out = self._fuser.fuse_luma(a.astype(np.float32) / 255.0, b.astype(np.float32) / 255.0)
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def parse_teacher(spec: str, work_size: int = 256) -> Teacher:
    """A :class:`Teacher` from ``"bank"``, ``"NAME"``, ``"NAME=PATH"`` (or ``"NAME@PATH"``, as
    ``-m`` writes weights) or ``"PATH"`` (see the module docstring)."""
    from ..registry import get_model_info, read_weights_model

    spec = str(spec).strip()
    if spec == "bank":
        return Teacher("bank", work_size=work_size)
    name, sep, path = spec.partition("=")
    if not sep and "@" in spec and not Path(spec).expanduser().is_file():  # NAME@PATH, as -m takes weights
        name, sep, path = spec.partition("@")
    if not sep and (spec.endswith((".safetensors", ".pth", ".pt")) or os.sep in spec):
        path, name = spec, ""
    weights = Path(path).expanduser() if path else None
    if weights is not None and not weights.is_file():
        raise ModelError(f"teacher {spec!r}: weights file not found: {weights}")
    if not name:
        try:
            name = read_weights_model(weights, strict=True) or ""
        except ModelError as exc:  # a cut-off file: said as unreadable, not as naming no model
            raise ModelError(f"teacher {spec!r}: {exc}") from None
        if not name:
            raise ModelError(f"teacher {spec!r}: the file does not name its model; write it as MODEL={path}")
    info = get_model_info(name)  # unknown name -> ModelError listing the known ones
    if weights is not None and info.kind != "network":
        raise ModelError(f"teacher {spec!r}: {name!r} is classical and takes no weights")
    if weights is None and not info.has_weights:
        raise ModelError(f"teacher {spec!r}: {name!r} ships no weights; write it as {name}=PATH")
    return Teacher(name, weights, work_size)


def combine_targets(images: Sequence[np.ndarray], rule: str = "mean") -> np.ndarray:
    """One ``uint8`` target from several teachers' ``uint8`` results, pixel by pixel."""
    if rule not in COMBINE:
        raise ValueError(f"unknown combine rule {rule!r}; choose from {', '.join(COMBINE)}")
    if len(images) == 1:
        return images[0]
    stack = np.stack(images).astype(np.float32)
    out = {"mean": np.mean, "max": np.max, "median": np.median}[rule](stack, axis=0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def default_cache_dir() -> Path:
    """``$LITEFUSE_TEACHER_CACHE``, else ``$XDG_CACHE_HOME/litefuse/teachers``, else ``~/.cache/litefuse/teachers``."""
    if os.environ.get("LITEFUSE_TEACHER_CACHE"):
        return Path(os.environ["LITEFUSE_TEACHER_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "litefuse" / "teachers"


class TeacherCache:
    """Teacher results on disk, keyed by pair content and teacher (see the module docstring)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self.hits = self.misses = 0

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """The cached ``uint8`` result under ``key``, or ``None`` (absent, unreadable or of another shape)."""
        try:
            with np.load(self.path(key), allow_pickle=False) as z:
                image = z["target"]
        except (OSError, KeyError, ValueError, EOFError):
            return None
        return image if image.shape == shape and image.dtype == np.uint8 else None

    def store(self, key: str, image: np.ndarray, signature: str = "") -> Path:
        """Write ``image`` atomically (temporary file beside the entry, then rename)."""
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with temporary_beside(path, suffix=".npz.tmp") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez_compressed(fh, target=image, signature=np.array(signature))
                publish(tmp, path)
        except OSError as exc:
            raise OutputError(
                f"{self.root}: cannot write the teacher cache ({exc.strerror or exc}); "
                "set [objective] teacher_cache or LITEFUSE_TEACHER_CACHE to a writable folder"
            ) from None
        return path

    def get(self, teacher: Teacher, a: np.ndarray, b: np.ndarray, signature: str | None = None) -> np.ndarray:
        """``teacher(a, b)`` from the cache, computed and stored on a miss."""
        signature = signature or teacher.signature
        key = pair_key(a, b, signature)
        hit = self.load(key, a.shape)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        image = teacher(a, b)
        self.store(key, image, signature)
        return image

    def targets(
        self,
        teachers: Sequence[Teacher],
        rule: str = "mean",
        progress: bool = True,
        console=None,
        deadline: Deadline | None = None,
        total: int | None = None,
    ) -> Callable[[list[str], list[tuple[np.ndarray, np.ndarray]]], list[np.ndarray]]:
        """A :class:`~litefuse.data.PairCropDataset` ``targets`` function: every pair's combined
        teacher result, with a rich progress bar; prints hits, misses and time (``split``: the
        pairs' name in that line, e.g. "validation").

        The pre-pass checks ``deadline`` before each pair and raises its
        :class:`~litefuse.train.budget.TimeBudgetError` once it has expired ("pre-pass: N of M
        pairs cached"; the cached ones are reused by the next run). Counts run over every call of
        the function (training, then validation pairs); ``total`` (M) defaults to the pairs seen.
        """
        done = 0  # pairs whose target is in the cache, over every call

        def build(names: list[str], pairs: list[tuple[np.ndarray, np.ndarray]], split: str = "") -> list[np.ndarray]:
            from rich.console import Console

            out_console = console or Console(stderr=True, highlight=False, soft_wrap=True)
            start, hits0, misses0 = time.monotonic(), self.hits, self.misses
            signatures = [t.signature for t in teachers]
            label = "+".join(t.label for t in teachers)
            expected = total if total is not None else done + len(pairs)

            def one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
                nonlocal done
                if deadline is not None and deadline.expired():
                    raise deadline.exhausted(f"pre-pass: {done} of {expected} pairs cached")
                target = combine_targets([self.get(t, a, b, s) for t, s in zip(teachers, signatures)], rule)
                done += 1
                return target

            out: list[np.ndarray] = []
            if progress and pairs:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

                with Progress(TextColumn(f"[bold]teacher {label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                              TimeRemainingColumn(), TextColumn("{task.fields[name]}"), console=out_console) as bar:
                    task = bar.add_task("teachers", total=len(pairs), name="")
                    for name, (a, b) in zip(names, pairs):
                        bar.update(task, name=name)
                        out.append(one(a, b))
                        bar.advance(task)
            else:
                out = [one(a, b) for a, b in pairs]
            how = f" (combined by {rule})" if len(teachers) > 1 else ""
            out_console.print(
                f"teacher {label}{how}{', ' + split if split else ''}: {len(pairs)} pairs, {self.hits - hits0} cached, {self.misses - misses0} computed "
                f"({time.monotonic() - start:.0f} s; cache {self.root})",
                markup=False,
            )
            return out

        return build
