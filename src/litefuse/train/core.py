"""One trainer core for every litefuse network; the model-specific part is an :class:`Objective`.

The :class:`Trainer` owns everything that is the same for all models — seeding, data loading,
the step loop, validation, ReduceLROnPlateau and early stopping on the validation loss, the
time budget, a per-component loss log (CSV, and TensorBoard when installed), atomic
checkpoints with exact resume, and the export of the best weights as safetensors. An
:class:`Objective` owns what differs — its losses, its optimizers (and any extra networks such
as GAN critics), and how a loss weighting changes across the stages of a schedule. Its
``training_step`` performs its own backward and optimizer steps, so an objective with several
optimizers (generator and critics) fits the same loop as a plain reconstruction loss.

Objectives are registered by model name with :func:`register_objective` and live in
``litefuse/train/objectives/<family>.py``; :func:`get_objective` imports them on first use.

Exact resume: a checkpoint is only ever taken between two steps and holds the model, the
objective's state (optimizers, extra nets), the trainer's counters, plateau and early-stopping
state, the best weights so far, and every RNG state. Crops and batch order are pure functions
of ``(seed, epoch, index)``, so a resumed run replays the remaining batches of its epoch exactly;
on the same machine and device the result is bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import random
import signal
import threading
import time
import tomllib
import types
import typing
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module, resources
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data import GreyCropDataset, PairCropDataset
from ..data.pairs import Pair
from .._files import atomic_write_text, publish, temporary_beside
from ..errors import InputError, LitefuseError, ModelError
from .budget import CheckpointSchedule, Deadline, require_progress
from .rundir import CHECKPOINT, CONFIG, LOG, SUMMARY, TENSORBOARD, WEIGHTS, RunFolder
from .trainset import build_datasets

__all__ = [
    "ConfigError",
    "TrainConfig",
    "Objective",
    "Trainer",
    "TrainResult",
    "EarlyStopping",
    "LossLog",
    "register_objective",
    "get_objective",
    "list_objectives",
    "make_optimizer",
    "default_config_path",
    "atomic_torch_save",
]

_FORMAT = 1


class ConfigError(LitefuseError):
    """A bad training configuration: unknown key, wrong type, impossible value."""


# --------------------------------------------------------------------------------------------
# configuration


@dataclass
class TrainConfig:
    """Everything a training run depends on; loaded from TOML, overridable from the CLI.

    TOML format: the scalar fields below as top-level keys, plus three tables::

        model = "lwc-densefuse"
        data = ["../shared/data/ivif", "../shared/data/mff"]   # pair folders or their parents
        crop = [256, 256]                                        # H, W (an int means square)
        batch_size = 8
        lr = 1e-3
        [model_kwargs]            # passed to the model factory (e.g. variant = "dws")
        [objective]               # objective parameters (e.g. ssim_weight = 100.0)
        [[stages]]                # optional staged schedule: one row per stage
        epochs = 10               #   its length in epochs; every other key is an objective
        ssim_weight = 1.0         #   parameter for that stage ("lr" resets the model's lr)

    ``epochs`` defaults to the sum of the stages' epochs; with more epochs than the stages
    cover, the last stage continues. ``max_steps`` and ``max_minutes`` cap a run further
    (``max_minutes`` counts per invocation, data loading and pre-passes included). ``litefuse train``
    resolves a config file's relative ``data`` paths against its folder (:mod:`.trainset`).
    """

    model: str = ""
    objective_name: str = ""  # "" = the model's own objective; "distill" = teacher-student training
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    objective: dict[str, Any] = field(default_factory=dict)
    # data
    data: list[str] = field(default_factory=list)
    crop: tuple[int, int] = (256, 256)
    crops_per_image: int = 1
    small_images: str = "pad"  # images smaller than the crop: "pad" (reflect) or "skip"
    val_fraction: float = 0.1
    batch_size: int = 8
    num_workers: int = 0
    # length and budget
    epochs: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    # initial weights: "" = random (from scratch), "pretrained" = the shipped weights, or a
    # weights file (safetensors / torch; a release checkpoint the model can remap) to fine-tune
    init: str = ""
    # parameters that get no updates: dotted name prefixes of the model's parameters
    # (e.g. ["alpha_net"] or ["encoder", "fusion.conv1"]); a [[stages]] row may set its own
    freeze: list[str] = field(default_factory=list)
    # optimisation
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    # validation, plateau, early stopping (patiences count validations)
    val_every: int = 0  # steps between validations; 0 = at the end of every epoch
    monitor: str = "loss"
    plateau_patience: int | None = None  # torch semantics: cut lr after > patience bad validations; unset = off
    plateau_factor: float = 0.1
    min_lr: float = 1e-6
    early_stopping_patience: int = 0  # stop (or end the stage) after this many bad validations; 0 = off
    # bookkeeping
    log_every: int = 10
    checkpoint_every: int = 200
    checkpoint_minutes: float = 5.0  # also save last.pt this long after the previous save; 0 = steps only
    seed: int = 0
    out_dir: str = ""  # default runs/<model>
    device: str = "auto"
    threads: int = 0  # CPU threads for torch (torch.set_num_threads); 0 = torch's default
    progress: bool = True
    tensorboard: bool = True

    #: fields a resumed run may change; every other field must match the checkpoint
    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {"epochs", "max_steps", "max_minutes", "device", "threads", "num_workers", "progress", "tensorboard",
         "log_every", "checkpoint_every", "checkpoint_minutes", "out_dir"}
    )

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """Build from a plain mapping, checking every key and type."""
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"{source}: unknown key {unknown[0]!r}; known keys: {', '.join(names)}")
        config = cls(**{k: _coerce(k, v, hints[k], source) for k, v in values.items()})
        config.validate(source)
        return config

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        """Read a TOML (or JSON, e.g. a run's ``config.json``) file; ``overrides`` win (``None`` = keep)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            text = path.read_text(encoding="utf-8")
            values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a valid {'JSON' if path.suffix == '.json' else 'TOML'} file ({exc})") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values, source=str(path))

    def replace(self, **overrides: Any) -> "TrainConfig":
        """A copy with ``overrides`` applied (``None`` = keep), checked like :meth:`from_dict`."""
        values = self.to_dict()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return type(self).from_dict(values, source="override")

    def apply_sets(self, assignments: Sequence[str]) -> "TrainConfig":
        """Apply ``key=value`` strings (value in TOML syntax; ``table.key=value`` for tables)."""
        values = self.to_dict()
        for item in assignments:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
            try:
                value = tomllib.loads(f"v = {raw.strip()}")["v"]
            except tomllib.TOMLDecodeError:
                value = raw.strip()  # a bare word: take it as a string
            table, dot, sub = key.partition(".")
            if dot:
                if not isinstance(values.get(table), dict):
                    raise ConfigError(f"--set {item!r}: {table!r} is not a table (model_kwargs, objective)")
                values[table] = {**values[table], sub: value}
            else:
                values[key] = value
        return type(self).from_dict(values, source="--set")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    # -- derived --------------------------------------------------------------------------

    def validate(self, source: str = "config") -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"{source}: {msg}")

        if self.batch_size < 1:
            raise bad(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise bad(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if min(self.crop) < 8:
            raise bad(f"crop must be at least 8×8, got {list(self.crop)}")
        if self.small_images not in ("pad", "skip"):
            raise bad(f"small_images must be 'pad' or 'skip', got {self.small_images!r}")
        if self.optimizer.lower() not in _OPTIMIZERS:
            raise bad(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(_OPTIMIZERS)}")
        if self.lr <= 0:
            raise bad(f"lr must be > 0, got {self.lr}")
        if not 0.0 < self.plateau_factor < 1.0:
            raise bad(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")
        for name in ("epochs", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise bad(f"{name} must be >= 1, got {value}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise bad(f"max_minutes must be > 0, got {self.max_minutes}")
        for name in ("crops_per_image", "log_every"):
            if getattr(self, name) < 1:
                raise bad(f"{name} must be >= 1")
        for name in ("val_every", "checkpoint_every", "checkpoint_minutes", "plateau_patience", "early_stopping_patience",
                     "num_workers", "threads"):
            if (getattr(self, name) or 0) < 0:
                raise bad(f"{name} must be >= 0")
        for i, row in enumerate(self.stages, 1):
            epochs = row.get("epochs")
            if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
                raise bad(f"stage {i}: 'epochs' must be an integer >= 1, got {epochs!r}")
        if self.epochs is None and not self.stages and self.max_steps is None:
            raise bad("set epochs, max_steps or a [[stages]] table")
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise bad(f"device must be auto, cpu or cuda, got {self.device!r}")

    @property
    def total_epochs(self) -> float:
        """Epochs to run: ``epochs``, else the stages' sum, else unbounded (``max_steps`` ends it)."""
        if self.epochs is not None:
            return self.epochs
        if self.stages:
            return sum(row["epochs"] for row in self.stages)
        return math.inf

    def stage_starts(self) -> list[int]:
        """First epoch of every stage (``[0]`` without a stage table)."""
        starts, epoch = [], 0
        for row in self.stages or [{"epochs": 0}]:
            starts.append(epoch)
            epoch += row["epochs"]
        return starts

    def stage_of(self, epoch: int) -> int:
        """Index of the stage ``epoch`` belongs to; the last stage continues past the table."""
        return max(i for i, start in enumerate(self.stage_starts()) if start <= epoch)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir or f"runs/{self.model}")


def _coerce(name: str, value: Any, hint: Any, source: str) -> Any:
    """Check/convert one config value against its field type."""

    def bad(kind: str) -> ConfigError:
        return ConfigError(f"{source}: {name} must be {kind}, got {value!r}")

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if origin is tuple:  # crop
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise bad("an integer or a list [H, W]")
        return (int(value[0]), int(value[1]))
    if origin is list:
        if args[0] is str:
            if isinstance(value, (str, Path)):
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in value):
                raise bad("a list of paths" if name == "data" else "a list of strings")
            return [str(v) for v in value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, dict) for v in value):
            raise bad("an array of tables ([[stages]])")
        return [dict(v) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad("a table")
        return dict(value)
    raise TypeError(f"unsupported config field type {hint}")  # pragma: no cover


def default_config_path(model: str) -> Path | None:
    """The packaged default config of ``model`` (``litefuse/configs/<model>.toml``), if any."""
    path = Path(str(resources.files("litefuse") / "configs" / f"{model}.toml"))
    return path if path.is_file() else None


# --------------------------------------------------------------------------------------------
# optimisers


_OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``adam`` | ``adamw`` | ``sgd`` (momentum 0.9) | ``rmsprop``."""
    name = name.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose from {', '.join(_OPTIMIZERS)}")


# --------------------------------------------------------------------------------------------
# objectives


Batch = Any


class Objective:
    """The model-specific part of training: losses, optimizers, extra nets, staged weights.

    Subclasses set :attr:`defaults` (their parameters, overridable in the config's
    ``[objective]`` table), :attr:`stage_keys` (parameters a ``[[stages]]`` row may set),
    :attr:`data` (``"grey"`` single images or ``"pair"`` registered pairs), and implement
    :meth:`training_step` and :meth:`validation_step`. ``build`` must create the optimizers in
    :attr:`optimizers` (the model's first: plateau and a stage's ``lr`` act on it) and put any
    extra network (e.g. a critic) in :attr:`nets` so that it is checkpointed and switched
    between train and eval mode with the model.
    """

    data: ClassVar[str] = "grey"
    defaults: ClassVar[dict[str, Any]] = {}
    stage_keys: ClassVar[frozenset[str]] = frozenset()
    #: optimizers that ReduceLROnPlateau acts on (``None`` = all of them)
    plateau_on: ClassVar[tuple[str, ...] | None] = None

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.config: TrainConfig | None = None
        self.params: dict[str, Any] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.nets: dict[str, nn.Module] = {}
        self.stage_index: int | None = None
        self.deadline: Deadline | None = None  # the run's time budget (set by the trainer): pre-passes check it

    # -- set-up ---------------------------------------------------------------------------

    def build(self, model: nn.Module, config: TrainConfig) -> None:
        """Bind to ``model`` and check the config's objective parameters and stage rows.

        Subclasses call ``super().build(model, config)`` first, then create their optimizers.
        """
        unknown = sorted(set(config.objective) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(f"[objective]: unknown key {unknown[0]!r} for {config.model}; known keys: {known}")
        for i, row in enumerate(config.stages, 1):
            extra = sorted(set(row) - {"epochs", "lr", "freeze"} - set(self.stage_keys))
            if extra:
                known = ", ".join(["epochs", "freeze", "lr", *sorted(self.stage_keys)])
                raise ConfigError(f"[[stages]] row {i}: unknown key {extra[0]!r}; known keys: {known}")
        names = [name for name, _ in model.named_parameters()]
        for where, prefixes in [("freeze", config.freeze)] + [
            (f"[[stages]] row {i}: freeze", row["freeze"]) for i, row in enumerate(config.stages, 1) if "freeze" in row
        ]:
            if not isinstance(prefixes, list) or not all(isinstance(x, str) for x in prefixes):
                raise ConfigError(f"{where} must be a list of parameter-name prefixes, got {prefixes!r}")
            for prefix in prefixes:
                if not any(_under(name, prefix) for name in names):
                    tops = ", ".join(dict.fromkeys(name.split(".")[0] for name in names))
                    raise ConfigError(f"{where}: {prefix!r} names no parameter of {config.model}; top-level modules: {tops}")
        self.model, self.config = model, config
        self.params = {**self.defaults, **config.objective}
        self._trainable = {name: p.requires_grad for name, p in model.named_parameters()}  # what freeze restores

    def build_datasets(
        self, train: Sequence[Pair], val: Sequence[Pair], config: TrainConfig
    ) -> tuple[Dataset, Dataset | None]:
        """Training and validation datasets from the split pairs (by :attr:`data`); the second may be empty."""
        cls = {"grey": GreyCropDataset, "pair": PairCropDataset}[self.data]
        common = dict(crop=config.crop, small=config.small_images, workers=max(2, os.cpu_count() or 1))
        train_ds = cls(train, train=True, seed=config.seed, crops_per_image=config.crops_per_image, **common)
        val_ds = cls(val, train=False, **common) if val else None
        return train_ds, val_ds

    # -- schedule -------------------------------------------------------------------------

    def stage(self, epoch: int) -> int:
        """Enter the stage of ``epoch``; returns its index. Calls :meth:`on_stage` on a change."""
        assert self.config is not None, "build() first"
        index = self.config.stage_of(epoch)
        if index != self.stage_index:
            row = self.config.stages[index] if self.config.stages else {}
            self.stage_index = index
            self.on_stage(index, {**self.params, **{k: v for k, v in row.items() if k != "epochs"}})
        return index

    def on_stage(self, index: int, params: dict[str, Any]) -> None:
        """Apply a stage's parameters (the ``[objective]`` values updated by the stage row).

        The base version manages learning rates: every stage after the first starts from the
        optimizers' initial lrs (undoing plateau cuts of the previous stage), and a row's ``lr``
        sets the model optimizer's (the first one's). ``freeze`` (the row's, else the config's)
        stops updates of the model parameters under those name prefixes: they get no gradient,
        so the optimizers skip them.
        """
        if self.model is not None and self.config is not None:
            frozen = params.get("freeze", self.config.freeze)
            for name, param in self.model.named_parameters():
                param.requires_grad_(self._trainable[name] and not any(_under(name, prefix) for prefix in frozen))
        if not hasattr(self, "_initial_lrs"):
            self._initial_lrs = {k: [g["lr"] for g in o.param_groups] for k, o in self.optimizers.items()}
        elif index > 0:
            for key, opt in self.optimizers.items():
                for group, lr in zip(opt.param_groups, self._initial_lrs[key]):
                    group["lr"] = lr
        if "lr" in params and self.optimizers:
            for group in next(iter(self.optimizers.values())).param_groups:
                group["lr"] = float(params["lr"])

    # -- steps ----------------------------------------------------------------------------

    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One optimisation step (forward, backward, optimizer steps); returns loss components."""
        raise NotImplementedError

    def validation_step(self, batch: Batch) -> dict[str, float]:
        """Loss components on a held-out batch (called under ``torch.no_grad``, nets in eval mode)."""
        raise NotImplementedError

    def optimize(self, loss: torch.Tensor, name: str | None = None) -> None:
        """zero_grad → backward → optional norm clipping (``grad_clip``) → step of one optimizer."""
        opt = self.optimizers[name] if name is not None else next(iter(self.optimizers.values()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config is not None and self.config.grad_clip > 0:
            params = [p for group in opt.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        opt.step()

    # -- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Optimizers and extra nets (the model itself is saved by the trainer)."""
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "nets": {k: m.state_dict() for k, m in self.nets.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        for key, net in self.nets.items():
            net.load_state_dict(state["nets"][key])


def _under(name: str, prefix: str) -> bool:
    """Whether parameter ``name`` lies under the dotted ``prefix`` (``a.b`` covers ``a.b.weight``, not ``a.bc``)."""
    return name == prefix or name.startswith(prefix + ".")


_OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(*names: str):
    """Class decorator registering an :class:`Objective` for one or more model names."""

    def wrap(cls: type[Objective]) -> type[Objective]:
        for name in names:
            if name in _OBJECTIVES and _OBJECTIVES[name] is not cls:
                raise ValueError(f"objective for {name!r} registered twice")
            _OBJECTIVES[name] = cls
        return cls

    return wrap


def _import_objectives(module: str | None = None) -> None:
    import pkgutil

    from . import objectives

    names = [module] if module else [m.name for m in pkgutil.iter_modules(objectives.__path__)]
    for name in names:
        try:
            import_module(f"{objectives.__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{objectives.__name__}.{name}":
                raise


def get_objective(name: str) -> type[Objective]:
    """The objective class registered for model ``name`` (imports its module on first use)."""
    from . import objectives

    if name not in _OBJECTIVES:
        _import_objectives(objectives.MODULES.get(name))
    if name not in _OBJECTIVES:
        _import_objectives()
    try:
        return _OBJECTIVES[name]
    except KeyError:
        raise ModelError(f"no training objective for model {name!r}; trainable models: {', '.join(list_objectives()) or 'none'}") from None


def list_objectives() -> list[str]:
    """Model names that have a training objective."""
    _import_objectives()
    return sorted(_OBJECTIVES)


# --------------------------------------------------------------------------------------------
# bookkeeping helpers


class EarlyStopping:
    """Counts validations without improvement of at least ``min_delta`` (relative 1e-4)."""

    def __init__(self, patience: int, rel_delta: float = 1e-4) -> None:
        self.patience, self.rel_delta = patience, rel_delta
        self.best, self.bad = math.inf, 0

    def update(self, value: float) -> bool:
        """Record a validation value; True when patience is exhausted."""
        if value < self.best * (1 - self.rel_delta) if self.best > 0 else value < self.best:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        return self.patience > 0 and self.bad >= self.patience

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.best, self.bad = float(state["best"]), int(state["bad"])


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

    def _rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        with temporary_beside(self.path) as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.fields, restval="")
                writer.writeheader()
                writer.writerows(rows)
            publish(tmp, self.path)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a killed run's tail that the resume will redo)."""
        rows = self._rows()
        kept = [r for r in rows if int(r["step"]) <= step]
        if len(kept) != len(rows):
            self._rewrite(kept)

    def write(self, row: Mapping[str, Any]) -> None:
        new = [k for k in row if k not in self.fields]
        if new or not self.path.is_file():
            self.fields += new
            self._rewrite(self._rows())
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.fields, restval="").writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``:
    a crash at any moment leaves either the previous checkpoint or the new one, never half."""
    with temporary_beside(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
        publish(tmp, path, fsync=True)


def _save_safetensors(state: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    with temporary_beside(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
        publish(tmp, path)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_device(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _batch_size(batch: Batch) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, (list, tuple)):
        return _batch_size(batch[0])
    if isinstance(batch, dict):
        return _batch_size(next(iter(batch.values())))
    return 1


@contextmanager
def _stop_on_signal(flag: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``flag`` (the loop stops at the next step boundary and saves);
    a second SIGINT interrupts at once. No-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        if flag.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------------------------
# the trainer


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did."""

    out_dir: Path
    steps: int
    epochs: int
    stop_reason: str
    finished: bool  # False when a budget or a signal cut the run short (resume continues it)
    best_val: float | None
    best_step: int | None
    wall_time_s: float
    weights: Path
    summary: Path


class Trainer:
    """Runs an :class:`Objective` on a model under a :class:`TrainConfig`.

    ``model`` and ``objective`` are built from the registries by ``config.model`` unless given
    (tests, notebooks, architecture studies). Outputs in ``config.run_dir``: ``last.pt``
    (checkpoint), ``log.csv``, ``config.json``, ``model.safetensors`` (best validated weights,
    or the last ones without validation), ``summary.json``, and ``tb/`` when TensorBoard is
    installed.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        model: nn.Module | None = None,
        objective: Objective | None = None,
        console: Any = None,
    ) -> None:
        config.validate()
        if not config.model and (model is None or objective is None):
            raise ConfigError("config has no model name")
        self.config = config
        self._model, self._objective = model, objective
        if console is None:
            from rich.console import Console

            console = Console(stderr=True, highlight=False)
        self.console = console
        self.out = config.run_dir
        self._stop = threading.Event()

    # -- public ---------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> TrainResult:
        """Train (or continue the run in ``config.run_dir`` with ``resume=True``). A start that fails
        before the first checkpoint removes what it wrote (:class:`~.rundir.RunFolder`)."""
        with RunFolder(self.out) as folder:
            return self._fit(resume, folder)

    def _fit(self, resume: bool, folder: RunFolder) -> TrainResult:
        start = time.monotonic()
        ckpt = self._load_checkpoint() if resume else None
        if ckpt is None and (self.out / CHECKPOINT).exists():
            raise ConfigError(f"{self.out} already holds a run; pass --resume to continue it or choose another output folder")
        init = self.config.init
        if ckpt is None and init not in ("", "pretrained") and not Path(init).is_file():  # a resume does not need it
            raise ConfigError(f"init: weights file not found: {init} (use 'pretrained' for the shipped weights)")
        folder.create()
        cfg = self.config
        seed_everything(cfg.seed)
        self.device = _resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)

        self.model = self._build_model(init=ckpt is None).to(self.device).train()
        self.objective = self._objective if self._objective is not None else get_objective(cfg.objective_name or cfg.model)()
        self.objective.build(self.model, cfg)
        self.deadline = self.objective.deadline = Deadline(cfg.max_minutes, start, str(self.out))
        self.train_set, self.val_set = build_datasets(self.objective, cfg, self.console)
        self.steps_per_epoch = len(self.train_set) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise InputError(f"{len(self.train_set)} training crops is fewer than one batch of {cfg.batch_size}")

        # trainer state
        self.step, self.epoch, self.batch = 0, 0, 0
        self.stage_index: int | None = None
        self.best_val, self.best_step, self.best_state = math.inf, None, None
        self.last_val_step = -1
        self.prior_wall = 0.0
        self._early_stop_flag = False
        self._running: dict[str, float] = {}
        self._running_n = 0
        self._start = start
        self._checkpoints = CheckpointSchedule(cfg.checkpoint_every, cfg.checkpoint_minutes)
        self._new_stage_trackers()
        if ckpt is None:
            (self.out / LOG).unlink(missing_ok=True)
        self.log = LossLog(self.out / LOG)
        if ckpt is not None:
            self._restore(ckpt)
            self.log.truncate_after(self.step)
        else:
            atomic_write_text(self.out / CONFIG, json.dumps(cfg.to_dict(), indent=2) + "\n")
        self._tb = self._tensorboard()
        if ckpt is None and cfg.init and self.val_set is not None:
            # step 0: fine-tuning never exports worse than its start. Enter the first stage
            # before (its loss weights, fresh trackers), so the loop does not reset this best.
            self._enter_epoch()
            self._validate(scheduled=False)

        stop_reason = self._loop()
        require_progress(self.step, stop_reason, self.deadline)  # no step: no weights, nothing kept
        finished = stop_reason in ("completed", "max_steps", "early stopping")
        if self.val_set is not None and self.last_val_step != self.step and stop_reason != "interrupted":
            self._validate(scheduled=False)
        self._save_checkpoint()
        summary = self._export(stop_reason, finished)
        if self._tb is not None:
            self._tb.close()
        self.console.print(
            f"{cfg.model}: {stop_reason} after {self.step} steps "
            f"({time.monotonic() - start:.0f} s); weights -> {self.out / WEIGHTS}",
            markup=False,
        )
        return TrainResult(
            self.out, self.step, self.epoch, stop_reason, finished,
            None if math.isinf(self.best_val) else self.best_val, self.best_step,
            time.monotonic() - start, self.out / WEIGHTS, summary,
        )

    # -- building ---------------------------------------------------------------------------

    def _build_model(self, init: bool = True) -> nn.Module:
        """The network to train; ``init`` loads ``config.init`` (a resumed run skips it: the
        checkpoint replaces every weight anyway)."""
        from ..registry import get_model_info, load_model, load_weights

        cfg = self.config
        if self._model is not None:
            model = self._model
        else:
            info = get_model_info(cfg.model)
            if info.kind != "network":
                raise ModelError(f"model {cfg.model!r} is classical; there is nothing to train")
            try:
                model = load_model(cfg.model, pretrained=False, **cfg.model_kwargs)
            except TypeError as exc:
                raise ConfigError(f"[model_kwargs] do not fit {cfg.model}: {exc}") from None
        if init and cfg.init:
            source = self._init_weights_path()
            load_weights(model, source)
            self.console.print(f"init: weights from {source}", markup=False)
        return model

    def _init_weights_path(self) -> Path:
        from ..registry import get_model_info

        cfg = self.config
        if cfg.init != "pretrained":
            return Path(cfg.init)
        path = get_model_info(cfg.model).weights_path if cfg.model else None
        if path is None:
            raise ModelError(f"init = 'pretrained' but {cfg.model or 'this model'!r} ships no weights; pass a weights file")
        return Path(path)

    def _new_stage_trackers(self) -> None:
        """Fresh plateau schedulers, early stopping and best-model tracking (a stage's loss
        weights make its validation loss incomparable with the previous stage's)."""
        cfg = self.config
        self.plateau = {}
        if cfg.plateau_patience is not None:
            for name, opt in self.objective.optimizers.items():
                if self.objective.plateau_on is not None and name not in self.objective.plateau_on:
                    continue
                self.plateau[name] = torch.optim.lr_scheduler.ReduceLROnPlateau(
                    opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
                )
        self.stopper = EarlyStopping(cfg.early_stopping_patience)
        self.best_val, self.best_step, self.best_state = math.inf, None, None

    def _tensorboard(self):
        if not self.config.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out / TENSORBOARD))

    # -- loop -------------------------------------------------------------------------------

    def _loop(self) -> str:
        cfg = self.config
        total = self.steps_per_epoch * cfg.total_epochs
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        with self._progress(int(total)) as advance, _stop_on_signal(self._stop):
            while True:
                reason = self._budget_reason()
                if reason:
                    return reason
                self._enter_epoch()
                jumped = False
                for batch in self._loader():
                    metrics = self.objective.training_step(_to_device(batch, self.device), self.step)
                    self.step += 1
                    self.batch += 1
                    self._accumulate(metrics)
                    if self.step % cfg.log_every == 0:
                        self._log_train()
                    if cfg.val_every and self.step % cfg.val_every == 0:
                        jumped = self._validate(scheduled=True)
                    if self._checkpoints.due(self.step):
                        self._save_checkpoint()
                    advance(self.step, self._running_text())
                    if jumped or self._budget_reason():
                        break
                if not jumped and self.batch >= self.steps_per_epoch:
                    self.epoch += 1
                    self.batch = 0
                    if not cfg.val_every:
                        self._validate(scheduled=True)

    def _budget_reason(self) -> str | None:
        """Why the run must stop now, or None."""
        cfg = self.config
        if self._early_stop_flag:
            return "early stopping"
        if self._stop.is_set():
            return "interrupted"
        if cfg.max_steps is not None and self.step >= cfg.max_steps:
            return "max_steps"
        if self.epoch >= cfg.total_epochs:
            return "completed"
        if self.deadline.expired():
            return "time budget"
        return None

    def _enter_epoch(self) -> None:
        """Apply the epoch's stage (fresh plateau/early-stopping/best tracking on a change)."""
        index = self.objective.stage(self.epoch)
        if index != self.stage_index:
            if self.stage_index is not None:
                self.console.print(f"stage {index + 1} from epoch {self.epoch + 1} (step {self.step})", markup=False)
            self._new_stage_trackers()
            self.stage_index = index
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(self.epoch)

    def _loader(self) -> DataLoader:
        """The remaining batches of the current epoch, in the epoch's seeded order."""
        cfg, bs = self.config, self.config.batch_size
        gen = torch.Generator().manual_seed(_mix(cfg.seed, self.epoch))
        order = torch.randperm(len(self.train_set), generator=gen).tolist()
        batches = [order[b * bs : (b + 1) * bs] for b in range(self.batch, self.steps_per_epoch)]
        return DataLoader(
            self.train_set,
            batch_sampler=batches,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(_mix(cfg.seed, self.epoch, 1)),  # keeps global RNG untouched
        )

    # -- validation -------------------------------------------------------------------------

    def _validate(self, scheduled: bool) -> bool:
        """Evaluate on the validation set; log it; track the best weights. A scheduled
        validation also drives plateau and early stopping. Returns True when early stopping
        ended the current stage (the loop then jumps to the next stage, or ends)."""
        if self.val_set is None:
            return False
        cfg = self.config
        modules = [self.model, *self.objective.nets.values()]
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        sums: dict[str, float] = {}
        count = 0
        loader = DataLoader(self.val_set, batch_size=cfg.batch_size, shuffle=False)  # in-memory crops: no workers
        with torch.no_grad():
            for batch in loader:
                n = _batch_size(batch)
                for k, v in self.objective.validation_step(_to_device(batch, self.device)).items():
                    sums[k] = sums.get(k, 0.0) + float(v) * n
                count += n
        for m, mode in zip(modules, modes):
            m.train(mode)
        metrics = {k: v / count for k, v in sums.items()}
        if cfg.monitor not in metrics:
            raise ConfigError(f"monitor {cfg.monitor!r} is not a validation output; choose from {', '.join(metrics)}")
        value = metrics[cfg.monitor]
        self.last_val_step = self.step
        self._write_row("val", metrics)

        improved = value < self.best_val
        if improved:
            self.best_val, self.best_step = value, self.step
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        self.console.print(
            f"val @ step {self.step}: "
            + " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            + (" *" if improved else ""),
            markup=False,
        )
        if not scheduled:
            return False
        for sched in self.plateau.values():
            sched.step(value)
        if self.stopper.update(value):
            starts = cfg.stage_starts()
            nxt = self.stage_index + 1 if self.stage_index is not None else len(starts)
            if nxt < len(starts) and starts[nxt] < cfg.total_epochs:
                self.console.print(f"early stopping: stage {nxt} ends at step {self.step}", markup=False)
                self.epoch, self.batch = starts[nxt], 0
            else:
                self.console.print(f"early stopping at step {self.step}", markup=False)
                self._early_stop_flag = True
            return True
        return False

    # -- logging ----------------------------------------------------------------------------

    def _accumulate(self, metrics: Mapping[str, float]) -> None:
        for k, v in metrics.items():
            self._running[k] = self._running.get(k, 0.0) + float(v)
        self._running_n += 1

    def _running_text(self) -> str:
        n = max(1, self._running_n)
        return " ".join(f"{k}={v / n:.4g}" for k, v in list(self._running.items())[:4])

    def _log_train(self) -> None:
        n = max(1, self._running_n)
        self._write_row("train", {k: v / n for k, v in self._running.items()})
        self._running, self._running_n = {}, 0

    def _write_row(self, kind: str, metrics: Mapping[str, float]) -> None:
        opts = list(self.objective.optimizers.values())
        lr = opts[0].param_groups[0]["lr"] if opts else float("nan")
        row = {"kind": kind, "step": self.step, "epoch": self.epoch, "stage": (self.stage_index or 0) + 1,
               "lr": lr, "time_s": round(self.prior_wall + time.monotonic() - self._start, 2), **metrics}
        self.log.write(row)
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(f"{kind}/{k}", v, self.step)
            self._tb.add_scalar("lr", lr, self.step)

    @contextmanager
    def _progress(self, total: int):
        if not self.config.progress:
            yield lambda step, text: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=self.console,
        )
        with bar:
            task = bar.add_task(f"train {self.config.model}", total=total, completed=self.step, losses="")
            yield lambda step, text: bar.update(task, completed=step, losses=text)

    # -- checkpoints ------------------------------------------------------------------------

    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step, "epoch": self.epoch, "batch": self.batch, "stage": self.stage_index,
            "best_val": self.best_val, "best_step": self.best_step, "last_val_step": self.last_val_step,
            "early_stopped": self._early_stop_flag,
            "running": dict(self._running), "running_n": self._running_n,
            "stopper": self.stopper.state_dict(),
            "plateau": {k: s.state_dict() for k, s in self.plateau.items()},
            "wall_time_s": self.prior_wall + time.monotonic() - self._start,
        }

    def _save_checkpoint(self) -> None:
        atomic_torch_save(
            {
                "format": _FORMAT,
                "model": self.model.state_dict(),
                "objective": self.objective.state_dict(),
                "trainer": self._trainer_state(),
                "best_model": self.best_state,
                "rng": _rng_state(),
                "config": self.config.to_dict(),
            },
            self.out / CHECKPOINT,
        )

    def _load_checkpoint(self) -> dict[str, Any]:
        path = self.out / CHECKPOINT
        if not path.is_file():
            raise ConfigError(f"{path}: no checkpoint to resume from")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConfigError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}: {exc})") from None
        if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
            raise ConfigError(f"{path}: not a litefuse training checkpoint")
        saved, now = ckpt["config"], self.config.to_dict()
        changed = sorted(k for k in now if k not in TrainConfig.RESUMABLE and now[k] != saved.get(k))
        if changed:
            k = changed[0]
            raise ConfigError(f"cannot resume with a different {k!r} (checkpoint: {saved.get(k)!r}, now: {now[k]!r})")
        return ckpt

    def _restore(self, ckpt: Mapping[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        t = ckpt["trainer"]
        self.step, self.epoch, self.batch = t["step"], t["epoch"], t["batch"]
        self.stage_index = t["stage"]
        if self.stage_index is not None:
            # re-enter the saved stage (its loss weights) *before* the optimizer state restores
            # the lr; if the epoch has moved on, the loop's stage change then happens as it would have
            self.objective.stage(self.config.stage_starts()[self.stage_index])
        self.objective.load_state_dict(ckpt["objective"])
        self.stopper.load_state_dict(t["stopper"])
        for k, s in self.plateau.items():
            if k in t["plateau"]:
                s.load_state_dict(t["plateau"][k])
        self.best_val, self.best_step, self.last_val_step = t["best_val"], t["best_step"], t["last_val_step"]
        self._early_stop_flag = t["early_stopped"]
        self._running, self._running_n = dict(t["running"]), t["running_n"]
        self.best_state = ckpt["best_model"]
        self.prior_wall = t["wall_time_s"]
        _set_rng_state(ckpt["rng"])
        self.console.print(f"resumed {self.out / CHECKPOINT} at step {self.step} (epoch {self.epoch + 1}, batch {self.batch})", markup=False)

    # -- export -----------------------------------------------------------------------------

    def _export(self, stop_reason: str, finished: bool) -> Path:
        cfg = self.config
        state = self.best_state if self.best_state is not None else self.model.state_dict()
        chosen = "best" if self.best_state is not None else "last"
        wall = self.prior_wall + time.monotonic() - self._start
        best = None if math.isinf(self.best_val) else self.best_val
        _save_safetensors(state, self.out / WEIGHTS, {
            "model": cfg.model, "model_kwargs": json.dumps(cfg.model_kwargs), "step": str(self.best_step if chosen == "best" else self.step),
            "val_" + cfg.monitor: str(best), "seed": str(cfg.seed),
        })
        summary = {
            "model": cfg.model,
            "model_kwargs": cfg.model_kwargs,
            "weights": WEIGHTS,
            "weights_from": chosen,
            "params": sum(p.numel() for p in self.model.parameters()),
            "seed": cfg.seed,
            "steps": self.step,
            "epochs_completed": self.epoch,
            "stage": (self.stage_index or 0) + 1,
            "stop_reason": stop_reason,
            "finished": finished,
            "best_val": best,
            "best_step": self.best_step,
            "monitor": cfg.monitor,
            "wall_time_s": round(wall, 2),
            "train_crops": len(self.train_set),
            "val_crops": len(self.val_set) if self.val_set is not None else 0,
            "device": str(self.device),
            "torch": torch.__version__,
            "config": cfg.to_dict(),
        }
        path = self.out / SUMMARY
        atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
        return path


def _mix(*values: int) -> int:
    """Combine integers into one 63-bit seed (stable across runs and platforms)."""
    state = np.random.SeedSequence([int(v) % 2**63 for v in values]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def _resolve_device(device: str) -> torch.device:
    from ..registry import resolve_device

    return resolve_device(device)
